/**
 * The one Store test suite, written against the `KvStore` interface and
 * run against every back end: `open()` in memory, `open(dir)`,
 * `connect()` to `cli.ts serve`, and `connect()` to a real etcd 3.4. What
 * passes here means the same thing on all four — the promise that moving
 * from embedded to a cluster is a one-line change.
 *
 * Each case works under its own key prefix and asserts revisions relative
 * to what it wrote, so the cases share one store per back end.
 */

import assert from "node:assert/strict";
import {
  CompactedError,
  EtcdError,
  FutureRevisionError,
  type KvStore,
  type WatchResponse,
} from "../mod.ts";

/** A back end under test: a fresh store, and how to reopen it (if it can). */
export interface ContractBackend {
  /** The store to test. */
  store: KvStore;
  /** Closes and reopens the same data (restart); absent when it cannot. */
  restart?: () => Promise<KvStore>;
  /** Releases everything (the store, a server, a temp dir). */
  dispose(): Promise<void>;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Collects watch responses until `count` events arrived (bounded by time). */
async function collectEvents(
  watch: AsyncIterableIterator<WatchResponse>,
  count: number,
  timeoutMs = 10_000,
): Promise<WatchResponse["events"]> {
  const events: WatchResponse["events"] = [];
  const timer = setTimeout(() => watch.return?.(), timeoutMs);
  try {
    for await (const res of watch) {
      events.push(...res.events);
      if (events.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    await watch.return?.();
  }
  return events;
}

/**
 * Registers the suite's cases as steps of `t` against the back end `make`
 * builds. The back end is shared by the steps and disposed at the end.
 */
export async function runStoreContract(
  t: Deno.TestContext,
  make: () => Promise<ContractBackend>,
): Promise<void> {
  const backend = await make();
  let db = backend.store;
  try {
    await t.step("put, get and revisions", async () => {
      const a = await db.put("kv/a", "1");
      const b = await db.put("kv/a", "2", { prevKv: true });
      assert.equal(b.header.revision, a.header.revision + 1);
      assert.equal(b.prevKv?.valueText, "1");
      const got = await db.get("kv/a");
      assert.equal(got.count, 1);
      const kv = got.kvs[0]!;
      assert.equal(kv.valueText, "2");
      assert.equal(kv.version, 2);
      assert.equal(kv.createRevision, a.header.revision);
      assert.equal(kv.modRevision, b.header.revision);
      const old = await db.get("kv/a", { revision: a.header.revision });
      assert.equal(old.kvs[0]?.valueText, "1");
      assert.equal((await db.get("kv/missing")).count, 0);
    });

    await t.step("ranges with every option", async () => {
      for (const [k, v] of [["r/a", "3"], ["r/b", "1"], ["r/c", "2"]]) {
        await db.put(k!, v!);
      }
      const all = await db.get("r/", { prefix: true });
      assert.deepEqual(all.kvs.map((kv) => kv.keyText), ["r/a", "r/b", "r/c"]);
      const limited = await db.get("r/", { prefix: true, limit: 2 });
      assert.equal(limited.kvs.length, 2);
      assert.equal(limited.more, true);
      assert.equal(limited.count, 3);
      const byValue = await db.get("r/", {
        prefix: true,
        sortOrder: "descend",
        sortTarget: "value",
      });
      assert.deepEqual(byValue.kvs.map((kv) => kv.valueText), ["3", "2", "1"]);
      const half = await db.get("r/a", { rangeEnd: "r/c" });
      assert.deepEqual(half.kvs.map((kv) => kv.keyText), ["r/a", "r/b"]);
      const keysOnly = await db.get("r/", { prefix: true, keysOnly: true });
      assert.equal(keysOnly.kvs[0]?.value.length, 0);
      const countOnly = await db.get("r/", { prefix: true, countOnly: true });
      assert.equal(countOnly.count, 3);
      assert.equal(countOnly.kvs.length, 0);
      const fromKey = await db.get("r/b", { fromKey: true, limit: 10 });
      assert.equal(fromKey.kvs[0]?.keyText, "r/b");
      const minMod = await db.get("r/", {
        prefix: true,
        minModRevision: all.kvs[2]!.modRevision,
      });
      assert.deepEqual(minMod.kvs.map((kv) => kv.keyText), ["r/c"]);
      const seen: string[] = [];
      for await (const kv of db.scan("r/", { prefix: true, pageKeys: 2 })) {
        seen.push(kv.keyText);
      }
      assert.deepEqual(seen, ["r/a", "r/b", "r/c"]);
      const reversed: string[] = [];
      for await (
        const kv of db.scan("r/", { prefix: true, pageKeys: 1, reverse: true })
      ) reversed.push(kv.keyText);
      assert.deepEqual(reversed, ["r/c", "r/b", "r/a"]);
    });

    await t.step("delete with prevKv", async () => {
      await db.put("d/1", "x");
      await db.put("d/2", "y");
      const res = await db.delete("d/", { prefix: true, prevKv: true });
      assert.equal(res.deleted, 2);
      assert.deepEqual(res.prevKvs.map((kv) => kv.valueText), ["x", "y"]);
      assert.equal((await db.get("d/", { prefix: true })).count, 0);
    });

    await t.step("txn: compares, branches, nested", async () => {
      const put = await db.put("t/k", "v1");
      const ok = await db.txn({
        compare: [{
          key: "t/k",
          target: "mod",
          result: "==",
          value: put.header.revision,
        }],
        success: [{ put: { key: "t/k", value: "v2" } }, {
          range: { key: "t/k" },
        }],
        failure: [{ put: { key: "t/k", value: "lost" } }],
      });
      assert.equal(ok.succeeded, true);
      const rangeOp = ok.responses[1]!;
      assert.ok("range" in rangeOp);
      assert.equal(rangeOp.range.kvs[0]?.valueText, "v2");
      const failed = await db.txn()
        .if({ key: "t/k", target: "value", result: "==", value: "v1" })
        .then({ put: { key: "t/k", value: "no" } })
        .else({ txn: { success: [{ range: { key: "t/k" } }] } })
        .commit();
      assert.equal(failed.succeeded, false);
      const nested = failed.responses[0]!;
      assert.ok("txn" in nested);
      assert.equal((await db.get("t/k")).kvs[0]?.valueText, "v2");
      await assert.rejects(
        db.txn({
          success: [{ put: { key: "t/d", value: "1" } }, {
            put: { key: "t/d", value: "2" },
          }],
        }),
        (e: Error) =>
          e instanceof EtcdError &&
          e.message === "etcdserver: duplicate key given in txn request",
      );
    });

    await t.step("errors in etcd's words", async () => {
      await assert.rejects(
        db.put("", "x"),
        (e: Error) =>
          e instanceof EtcdError &&
          e.message === "etcdserver: key is not provided",
      );
      const { header } = await db.get("kv/a");
      await assert.rejects(
        db.get("kv/a", { revision: header.revision + 1000 }),
        (e: Error) => e instanceof FutureRevisionError,
      );
      await assert.rejects(
        db.put("kv/x", "1", { lease: 0x7777n }),
        (e: Error) =>
          e instanceof EtcdError &&
          e.message === "etcdserver: requested lease not found",
      );
    });

    await t.step("leases: grant, attach, keep-alive, ttl, revoke", async () => {
      const lease = await db.grant(30);
      assert.ok(lease.id > 0n);
      assert.equal(lease.ttl, 30);
      await db.put("l/k", "v", { lease: lease.id });
      const once = await db.keepAlive(lease.id);
      assert.equal(once.ttl, 30);
      const controller = new AbortController();
      let renewals = 0;
      for await (
        const res of db.keepAliveStream(lease.id, {
          signal: controller.signal,
        })
      ) {
        assert.equal(res.id, lease.id);
        if (++renewals === 1) controller.abort();
      }
      assert.equal(renewals, 1);
      const ttl = await db.timeToLive(lease.id, { keys: true });
      assert.equal(ttl.grantedTtl, 30);
      assert.ok(ttl.ttl > 0 && ttl.ttl <= 30);
      assert.deepEqual(ttl.keys.map(text), ["l/k"]);
      const listed = await db.leases();
      assert.ok(listed.leases.some((l) => l.id === lease.id));
      await db.revoke(lease.id);
      assert.equal((await db.get("l/k")).count, 0);
      assert.equal((await db.timeToLive(lease.id)).ttl, -1);
      await assert.rejects(
        db.keepAlive(lease.id),
        (e: Error) =>
          e instanceof EtcdError &&
          e.message === "etcdserver: requested lease not found",
      );
      await assert.rejects(
        db.revoke(lease.id),
        (e: Error) =>
          e instanceof EtcdError &&
          e.message === "etcdserver: requested lease not found",
      );
    });

    await t.step("watch: live events, history, filters, prevKv", async () => {
      const start = await db.put("w/a", "0");
      const live = db.watch("w/", { prefix: true, prevKv: true });
      const liveEvents = collectEvents(live, 2);
      // The watch is registered once its first response could arrive; a
      // short pause lets the create reach the server first.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await db.put("w/a", "1");
      await db.delete("w/a");
      const events = await liveEvents;
      assert.deepEqual(events.map((e) => e.type), ["put", "delete"]);
      assert.equal(events[0]!.prevKv?.valueText, "0");
      assert.equal(events[1]!.kv.keyText, "w/a");
      const history = await collectEvents(
        db.watch("w/", {
          prefix: true,
          startRevision: start.header.revision,
          noDelete: true,
        }),
        2,
      );
      assert.deepEqual(history.map((e) => e.kv.valueText), ["0", "1"]);
    });

    await t.step("compaction: old revisions are gone", async () => {
      const first = await db.put("c/k", "1");
      await db.put("c/k", "2");
      const now = await db.put("c/k", "3");
      await db.compact(now.header.revision, { physical: true });
      await assert.rejects(
        db.get("c/k", { revision: first.header.revision }),
        (e: Error) => e instanceof CompactedError,
      );
      assert.equal((await db.get("c/k")).kvs[0]?.valueText, "3");
      const watch = db.watch("c/k", { startRevision: first.header.revision });
      const res = await watch.next();
      assert.equal(res.done, false);
      assert.equal(res.value.canceled, true);
      assert.equal(res.value.compactRevision, now.header.revision);
      await watch.return?.();
    });

    await t.step("status, hash, members", async () => {
      const status = await db.status();
      assert.match(status.version, /^3\.4\./);
      assert.ok(status.dbSizeBytes > 0);
      assert.ok(status.raftIndex > 0);
      const hash = await db.hashKv();
      assert.equal(typeof hash.hash, "number");
      const again = await db.hashKv();
      assert.equal(again.hash, hash.hash);
      const members = await db.memberList();
      assert.equal(members.members.length, 1);
      assert.deepEqual(await db.alarmList(), []);
    });

    if (backend.restart) {
      await t.step("restart keeps every acknowledged write", async () => {
        const last = await db.put("restart/k", "kept");
        db = await backend.restart!();
        const got = await db.get("restart/k");
        assert.equal(got.kvs[0]?.valueText, "kept");
        assert.ok(got.header.revision >= last.header.revision);
      });
    }
  } finally {
    await backend.dispose();
  }
}
