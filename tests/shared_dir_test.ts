/**
 * One data dir, several processes: the owner serves its store on the dir's
 * unix socket (0600) and a second `open(dir, { whenLocked: "connect" })`
 * reaches it — a watch in the owner sees the other process's put, a lease
 * granted by one is kept alive by the other — and after the owner exits
 * the next opener owns the dir.
 */

import assert from "node:assert/strict";
import { open, Store } from "../mod.ts";

const MOD = new URL("../mod.ts", import.meta.url).href;

/** Runs a script in another Deno process; resolves to its stdout. */
async function inOtherProcess(script: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`child failed: ${text.decode(out.stderr)}`);
  }
  return text.decode(out.stdout);
}

Deno.test("shared data dir: a second process reaches the owner's store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-shared-" });
  const owner = await open(dir);
  try {
    const socket = await Deno.stat(`${dir}/revkv.sock`);
    assert.equal(socket.mode! & 0o777, 0o600, "socket is private to its user");

    const watch = owner.watch("job/", { prefix: true });
    const seen = (async () => {
      for await (const res of watch) {
        if (res.events.length > 0) return res.events[0]!.kv.valueText;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const out = await inOtherProcess(`
      import { open, Store } from "${MOD}";
      const db = await open(${JSON.stringify(dir)}, { whenLocked: "connect" });
      console.log(db instanceof Store ? "embedded" : "remote");
      const put = await db.put("job/1", "from-child");
      const lease = await db.grant(60);
      console.log(put.header.revision, String(lease.id));
      await db.close();
    `);
    const [kind, line] = out.trim().split("\n");
    assert.equal(kind, "remote");
    assert.equal(await seen, "from-child");
    const [revision, leaseId] = line!.split(" ");
    assert.equal(owner.revision, Number(revision));
    const ttl = await owner.timeToLive(BigInt(leaseId!));
    assert.equal(ttl.grantedTtl, 60);
  } finally {
    await owner.close();
  }
  // The socket goes with its owner; the next opener owns the dir.
  await assert.rejects(Deno.stat(`${dir}/revkv.sock`), Deno.errors.NotFound);
  const next = await open(dir, { whenLocked: "connect" });
  try {
    assert.ok(next instanceof Store);
    assert.equal((await next.get("job/1")).kvs[0]?.valueText, "from-child");
  } finally {
    await next.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shared data dir: an owner that does not share is still a clear LockedError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-shared-" });
  const owner = await open(dir, { share: false });
  try {
    const out = await inOtherProcess(`
      import { open } from "${MOD}";
      try {
        await open(${JSON.stringify(dir)}, { whenLocked: "connect" });
        console.log("opened");
      } catch (error) {
        console.log(error.name + ": " + error.message);
      }
    `);
    assert.match(out, /^LockedError: revkv: data dir is locked by process/);
    assert.match(out, /is not shared/);
  } finally {
    await owner.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shared data dir: when the owner exits, the other side's calls and watches fail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-shared-" });
  const owner = await open(dir);
  // In one process the lock is held too: the second opener connects.
  const other = await open(dir, { whenLocked: "connect" });
  try {
    assert.ok(!(other instanceof Store));
    await other.put("k", "v");
    const watch = other.watch("k");
    const ended = (async () => {
      try {
        for await (const _ of watch) { /* until the owner goes */ }
        return "ended";
      } catch (error) {
        return (error as Error).message;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await owner.close();
    assert.equal(await ended, "context deadline exceeded");
    await assert.rejects(other.get("k"), /context deadline exceeded/);
  } finally {
    await other.close();
    await owner.close();
    await Deno.remove(dir, { recursive: true });
  }
});
