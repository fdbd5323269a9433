/**
 * A lease whose deadline passed while the store was closed is revoked
 * before `open()` resolves: the first read of a fresh process never shows
 * its keys, `timeToLive` reports it gone, the revocation takes one revision
 * for all of the lease's keys, and it is durable (a second reopen agrees).
 * Also through the CLI: `cli.ts --data-dir D get k` after the deadline.
 */
import assert from "node:assert/strict";
import { open } from "../mod.ts";
import { storeInternals } from "../src/store.ts";
import { withTempDir } from "./storage_helpers.ts";

function manualClock(startMs = Date.now()) {
  let now = startMs;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

Deno.test("a lease past its deadline at open is revoked before the first read", async () => {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    let db = await open(dir, { clock: clock.now });
    const short = await db.grant(5);
    const long = await db.grant(600);
    await db.put("k/a", "1", { lease: short.id });
    await db.put("k/b", "2", { lease: short.id });
    await db.put("k/c", "3", { lease: long.id });
    await db.put("plain", "4");
    const closedAt = db.revision;
    await db.close();

    clock.advance(6_000);
    db = await open(dir, { clock: clock.now });
    // The very first read, synchronously after open resolved.
    const first = storeInternals.getSync(db, "k/", { prefix: true });
    assert.deepEqual(first.kvs.map((kv) => kv.keyText), ["k/c"]);
    assert.equal((await db.get("plain")).count, 1);
    const ttl = await db.timeToLive(short.id);
    assert.equal(ttl.ttl, -1);
    assert.equal(ttl.grantedTtl, 0);
    assert.deepEqual((await db.leases()).leases.map((l) => l.id), [long.id]);
    // Both keys went in one revision, as etcd's expiry.
    assert.equal(db.revision, closedAt + 1);
    const deleted = await db.get("k/a", { revision: closedAt });
    assert.equal(deleted.count, 1);
    await db.close();

    // Durable: without the lease expiring again, the revocation is there.
    db = await open(dir, { clock: clock.now });
    assert.equal(db.revision, closedAt + 1);
    assert.equal((await db.get("k/", { prefix: true })).count, 1);
    assert.equal((await db.timeToLive(short.id)).ttl, -1);
    await db.close();
  });
});

Deno.test("more expired leases than one expiry pass are all revoked at open", async () => {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    let db = await open(dir, { durability: "none", clock: clock.now });
    const count = 300; // more than EXPIRY_BATCH_LEASES (256)
    for (let i = 0; i < count; i++) {
      const { id } = await db.grant(3);
      await db.put(`e/${i}`, "v", { lease: id });
    }
    const closedAt = db.revision;
    await db.close();
    clock.advance(4_000);
    db = await open(dir, { durability: "none", clock: clock.now });
    assert.equal(storeInternals.getSync(db, "e/", { prefix: true }).count, 0);
    assert.equal((await db.leases()).leases.length, 0);
    assert.equal(db.revision, closedAt + count);
    await db.close();
  });
});

Deno.test("the CLI's first get after a lease's deadline does not show its key", async () => {
  await withTempDir(async (dir) => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", cli, "--data-dir", dir, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return text;
    };
    // A real clock: a 2 s lease (etcd's minimum), then wait past it.
    const granted = await run("lease", "grant", "2");
    const id = /lease ([0-9a-f]+) granted/.exec(granted)?.[1];
    assert.ok(id, granted);
    await run("put", "k", "v", "--lease", id);
    assert.equal(await run("get", "k"), "k\nv\n");
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    assert.equal(await run("get", "k"), "");
    assert.match(await run("lease", "timetolive", id), /already expired/);
  });
});
