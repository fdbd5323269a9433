/**
 * Push-back under a disk slower than the writers: writes admitted but not
 * yet durable are bounded (`MAX_WRITES_IN_FLIGHT`, or the byte bound), past
 * it every kind of write fails at once with etcd's `etcdserver: too many
 * requests` and changes nothing, no acknowledged write is lost, and once
 * the disk catches up the store serves writes again.
 *
 * The slow disk is the storage's own fs interface with its fdatasync held
 * at a gate, so nothing becomes durable until the test opens it.
 */
import assert from "node:assert/strict";
import { EtcdError, open } from "../mod.ts";
import { MAX_WRITES_IN_FLIGHT, storeInternals } from "../src/store.ts";
import { denoFs, type StorageFs } from "../src/storage/fs.ts";
import { withTempDir } from "./storage_helpers.ts";

/** A `StorageFs` whose fdatasyncs wait while the gate is shut. */
function gatedSyncFs(): { fs: StorageFs; shut(): void; open(): void } {
  let gate: Promise<void> = Promise.resolve();
  let release = () => {};
  const fs: StorageFs = {
    ...denoFs,
    async open(path, options) {
      const file = await denoFs.open(path, options);
      return {
        writeAt: (offset, bytes) => file.writeAt(offset, bytes),
        readAt: (offset, bytes) => file.readAt(offset, bytes),
        syncData: async () => {
          await gate;
          await file.syncData();
        },
        truncate: (length) => file.truncate(length),
        size: () => file.size(),
        close: () => file.close(),
      };
    },
  };
  return {
    fs,
    shut() {
      gate = new Promise((resolve) => (release = resolve));
    },
    open() {
      release();
    },
  };
}

function isTooManyRequests(result: PromiseSettledResult<unknown>): boolean {
  return result.status === "rejected" &&
    result.reason instanceof EtcdError &&
    result.reason.message === "etcdserver: too many requests" &&
    result.reason.grpcCode === 8;
}

Deno.test("writes past MAX_WRITES_IN_FLIGHT are refused, none acknowledged is lost, and the store recovers", async () => {
  await withTempDir(async (dir) => {
    const disk = gatedSyncFs();
    let db = await open(dir, { fs: disk.fs });
    await db.put("before", "x");
    const start = db.revision;

    disk.shut();
    const total = MAX_WRITES_IN_FLIGHT + 1_000;
    const puts = [];
    for (let i = 0; i < total; i++) puts.push(db.put(`k/${i}`, `v${i}`));
    // Memory is bounded: the admitted writes, no more, wait for the disk.
    assert.equal(db.stats().writesInFlight, MAX_WRITES_IN_FLIGHT);
    // Every kind of write is refused meanwhile, and changes nothing.
    const refused = await Promise.allSettled([
      db.delete("before"),
      db.txn({ compare: [], success: [{ put: { key: "t", value: "v" } }] }),
      db.grant(60),
      db.compact(start),
    ]);
    for (const result of refused) assert.ok(isTooManyRequests(result));
    // Reads never wait for the writer: they see the last durable revision.
    assert.equal(storeInternals.getSync(db, "before").kvs[0]?.valueText, "x");
    assert.equal(db.revision, start);

    disk.open();
    const results = await Promise.allSettled(puts);
    const acked = results.flatMap((r, i) =>
      r.status === "fulfilled" ? [i] : []
    );
    assert.equal(acked.length, MAX_WRITES_IN_FLIGHT);
    assert.ok(
      results.every((r) => r.status === "fulfilled" || isTooManyRequests(r)),
    );
    assert.equal(db.stats().writesInFlight, 0);
    assert.equal(db.stats().writeBytesInFlight, 0);
    // Back to serving once the disk caught up.
    const after = await db.put("after", "y");
    assert.equal(after.header.revision, start + MAX_WRITES_IN_FLIGHT + 1);
    assert.ok(await db.grant(60));
    await db.close();

    // Nothing acknowledged lost, nothing refused present.
    db = await open(dir);
    const stored = await db.get("k/", { prefix: true });
    assert.equal(stored.count, MAX_WRITES_IN_FLIGHT);
    const byKey = new Map(stored.kvs.map((kv) => [kv.keyText, kv]));
    for (const [n, i] of acked.entries()) {
      const kv = byKey.get(`k/${i}`);
      assert.equal(kv?.valueText, `v${i}`);
      assert.equal(kv?.modRevision, start + 1 + n);
    }
    assert.equal((await db.get("before")).count, 1);
    assert.equal((await db.get("t")).count, 0);
    await db.close();
  });
});

Deno.test("the byte bound refuses large values in flight; a keep-alive stream retries a refused renewal", async () => {
  await withTempDir(async (dir) => {
    const disk = gatedSyncFs();
    const valueBytes = 64 * 1024;
    const boundBytes = 1024 * 1024;
    const db = await open(dir, {
      fs: disk.fs,
      maxWriteBytesInFlight: boundBytes,
    });
    const { id } = await db.grant(60);
    disk.shut();
    const value = new Uint8Array(valueBytes).fill(7);
    const puts = [];
    for (let i = 0; i < 64; i++) puts.push(db.put(`big/${i}`, value));
    const inFlight = db.stats();
    assert.ok(inFlight.writeBytesInFlight >= boundBytes);
    assert.ok(inFlight.writeBytesInFlight < boundBytes + 2 * valueBytes);
    assert.ok(inFlight.writesInFlight < 64);
    // A keep-alive is refused as well; a stream of them retries instead.
    assert.ok(
      isTooManyRequests((await Promise.allSettled([db.keepAlive(id)]))[0]!),
    );
    const controller = new AbortController();
    const stream = db.keepAliveStream(id, { signal: controller.signal });
    const first = stream.next();
    disk.open();
    const results = await Promise.allSettled(puts);
    const acked = results.filter((r) => r.status === "fulfilled").length;
    assert.equal(acked, inFlight.writesInFlight);
    assert.equal((await first).value?.ttl, 60);
    controller.abort();
    await stream.return(undefined);
    assert.equal(
      (await db.get("big/", { prefix: true, countOnly: true })).count,
      acked,
    );
    await db.close();
  });
});
