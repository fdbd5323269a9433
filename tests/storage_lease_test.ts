/**
 * Leases across restarts: grants, attachments, keep-alive deadlines and
 * revocations come back from the WAL (also after segment rolls and
 * snapshots removed old segments), and a lease expires on time across a
 * restart instead of getting its full TTL again.
 */
import assert from "node:assert/strict";
import { open, restoreSnapshot } from "../mod.ts";
import { storeInternals } from "../src/store.ts";
import { withTempDir } from "./storage_helpers.ts";

function manualClock(startMs = Date.now()) {
  let now = startMs;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

Deno.test("leases and their keys survive a restart; revoked ones stay gone", async () => {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    let db = await open(dir, { durability: "none", clock: clock.now });
    const kept = await db.grant(600);
    const gone = await db.grant(600);
    await db.put("k/a", "1", { lease: kept.id });
    await db.put("k/b", "1", { lease: kept.id });
    await db.put("k/c", "1", { lease: gone.id });
    await db.revoke(gone.id);
    await db.close();

    db = await open(dir, { durability: "none", clock: clock.now });
    const ttl = await db.timeToLive(kept.id, { keys: true });
    assert.equal(ttl.grantedTtl, 600);
    assert.deepEqual(ttl.keys.map((k) => new TextDecoder().decode(k)), [
      "k/a",
      "k/b",
    ]);
    assert.equal((await db.timeToLive(gone.id)).ttl, -1);
    assert.deepEqual((await db.leases()).leases.map((l) => l.id), [kept.id]);
    const revision = db.revision;
    await db.revoke(kept.id);
    assert.equal(db.revision, revision + 1);
    assert.equal((await db.get("k/", { prefix: true })).count, 0);
    await db.close();
  });
});

Deno.test("a lease expires on time across a restart, keep-alives included", async () => {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    let db = await open(dir, { durability: "none", clock: clock.now });
    const { id } = await db.grant(100);
    await db.put("eph", "v", { lease: id });
    clock.advance(50_000);
    await db.keepAlive(id); // deadline: +100 s from here
    clock.advance(60_000);
    await db.close();

    // 60 s of the renewed 100 s have passed; etcd 3.4 would restart the TTL.
    db = await open(dir, { durability: "none", clock: clock.now });
    const ttl = await db.timeToLive(id);
    assert.equal(ttl.ttl, 40);
    clock.advance(41_000);
    assert.equal(await storeInternals.expireLeases(db), 1);
    assert.equal((await db.get("eph")).count, 0);
    await db.close();

    // A lease whose deadline passed while the store was closed is revoked
    // by open() itself, before the first read.
    db = await open(dir, { durability: "none", clock: clock.now });
    const late = await db.grant(10);
    await db.put("late", "v", { lease: late.id });
    await db.close();
    clock.advance(20_000);
    db = await open(dir, { durability: "none", clock: clock.now });
    assert.equal((await db.get("late")).count, 0);
    assert.equal(await storeInternals.expireLeases(db), 0);
    await db.close();
  });
});

Deno.test("leases survive segment rolls and snapshots that remove old segments", async () => {
  await withTempDir(async (dir) => {
    const options = {
      durability: "none" as const,
      segmentBytes: 64 * 1024,
      snapshotCount: 500,
    };
    let db = await open(dir, options);
    const { id } = await db.grant(3_600);
    await db.put("leased", "v", { lease: id });
    for (let i = 0; i < 5_000; i++) {
      await db.put(`filler/${i % 50}`, "x".repeat(100));
    }
    await db.close();
    const segments = [...Deno.readDirSync(`${dir}/wal`)].length;
    assert.ok(segments >= 1);

    db = await open(dir, options);
    assert.ok(db.recovery?.snapshot, "recovered from a snapshot");
    const ttl = await db.timeToLive(id, { keys: true });
    assert.equal(ttl.grantedTtl, 3_600);
    assert.equal(ttl.keys.length, 1);
    await db.revoke(id);
    assert.equal((await db.get("leased")).count, 0);
    await db.close();
  });
});

Deno.test("snapshot files carry leases: a restored store keeps them and their keys", async () => {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    const db = await open(dir + "/src", {
      durability: "none",
      clock: clock.now,
    });
    const { id } = await db.grant(300);
    const gone = await db.grant(300);
    await db.put("held", "v", { lease: id });
    await db.revoke(gone.id);
    await db.saveSnapshot(`${dir}/backup.snap`);
    await db.close();

    await restoreSnapshot(`${dir}/backup.snap`, `${dir}/restored`);
    const restored = await open(`${dir}/restored`, {
      durability: "none",
      clock: clock.now,
    });
    assert.deepEqual((await restored.leases()).leases.map((l) => l.id), [id]);
    const ttl = await restored.timeToLive(id, { keys: true });
    assert.equal(ttl.grantedTtl, 300);
    assert.deepEqual(ttl.keys.map((k) => new TextDecoder().decode(k)), [
      "held",
    ]);
    await restored.revoke(id);
    assert.equal((await restored.get("held")).count, 0);
    await restored.close();
  });
});
