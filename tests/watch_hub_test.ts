/**
 * Tests of the watch hub against an in-memory MVCC engine: writes go through
 * `MvccStore.beginWrite()` and are handed to `hub.publish` as the store does
 * after a commit.
 *
 * Randomized tests print their seed; set REVKV_SEED to replay one.
 */

import assert from "node:assert/strict";
import { MvccStore } from "../src/mvcc/kv_store.ts";
import { prefixEnd } from "../src/mvcc/key_bounds.ts";
import type { KeyBounds } from "../src/mvcc/kv_store.ts";
import {
  MvccWatchSource,
  type WatchEvent,
  WatchHub,
  type WatchLimits,
  type WatchOptions,
  type WatchResponse,
} from "../src/watch/watch_hub.ts";
import { IntervalTree } from "../src/watch/interval_tree.ts";
import { readHistory } from "../src/watch/history.ts";
import { prng, seedFromEnv } from "./_prng.ts";

const encoder = new TextEncoder();
const enc = (text: string) => encoder.encode(text);

/** An engine and a hub, with writes that publish as the store will. */
class Harness {
  readonly mvcc = new MvccStore();
  readonly hub: WatchHub;

  constructor(limits: WatchLimits = {}) {
    this.hub = new WatchHub(new MvccWatchSource(this.mvcc), limits);
  }

  put(key: string, value: string, lease = 0n): number {
    return this.txn((txn) => txn.put(enc(key), enc(value), lease));
  }

  del(key: string, end?: string | null): number {
    return this.txn((txn) =>
      txn.deleteRange({
        start: enc(key),
        end: end === undefined || end === null ? end : enc(end),
      })
    );
  }

  txn(
    apply: (txn: ReturnType<MvccStore["beginWrite"]>) => unknown,
  ): number {
    const txn = this.mvcc.beginWrite();
    apply(txn);
    const revision = txn.commit();
    if (txn.changes.length > 0) this.hub.publish(revision, txn.changes);
    return revision;
  }

  compact(revision: number): void {
    this.mvcc.compact(revision);
    this.mvcc.compactAll();
  }
}

const key = (k: string): KeyBounds => ({ start: enc(k), end: undefined });
const prefix = (p: string): KeyBounds => ({
  start: enc(p),
  end: prefixEnd(enc(p)),
});
const range = (a: string, b: string | null): KeyBounds => ({
  start: enc(a),
  end: b === null ? null : enc(b),
});

/** An event as text: `put k=v c2 m3 v2` / `delete k m4`, with `<prev` when set. */
function show(event: WatchEvent): string {
  const kv = event.kv;
  let text = event.type === "put"
    ? `put ${kv.keyText}=${kv.valueText} c${kv.createRevision} m${kv.modRevision} v${kv.version}`
    : `delete ${kv.keyText} m${kv.modRevision}`;
  if (kv.lease !== 0n) text += ` l${kv.lease}`;
  if (event.prevKv) {
    text += ` <${event.prevKv.valueText}@${event.prevKv.modRevision}`;
  }
  return text;
}

/** A response as `[headerRevision, ...events]`. */
function brief(response: WatchResponse): (string | number)[] {
  return [response.header.revision, ...response.events.map(show)];
}

/** Pulls one response, failing after `ms`. */
async function pull(
  watch: AsyncIterableIterator<WatchResponse>,
  ms = 2000,
): Promise<IteratorResult<WatchResponse>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      watch.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no watch response within ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function take(
  watch: AsyncIterableIterator<WatchResponse>,
  count: number,
): Promise<WatchResponse[]> {
  const out: WatchResponse[] = [];
  for (let i = 0; i < count; i++) {
    const result = await pull(watch);
    assert.equal(result.done, false, `watch ended after ${i} responses`);
    out.push(result.value);
  }
  return out;
}

/** Whether a pull is still pending after a few turns of the event loop. */
async function stillPending(
  watch: AsyncIterableIterator<WatchResponse>,
): Promise<{ next: Promise<IteratorResult<WatchResponse>> }> {
  const next = watch.next();
  let settled = false;
  next.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(settled, false, "expected no response");
  return { next };
}

Deno.test("a key watch delivers each committed revision as one response", async () => {
  const h = new Harness();
  const watch = h.hub.watch(key("foo"));
  h.put("foo", "1"); // 2
  h.put("bar", "x"); // 3: another key
  h.put("foo", "2", 7n); // 4
  h.del("foo"); // 5
  h.put("foo", "3"); // 6
  const got = (await take(watch, 4)).map(brief);
  assert.deepEqual(got, [
    [2, "put foo=1 c2 m2 v1"],
    [4, "put foo=2 c2 m4 v2 l7"],
    [5, "delete foo m5"],
    [6, "put foo=3 c6 m6 v1"],
  ]);
  h.hub.close();
});

Deno.test("a delete event's kv carries only the key and its revision", async () => {
  const h = new Harness();
  const watch = h.hub.watch(key("k"));
  h.put("k", "v", 5n);
  h.del("k");
  const [, deleted] = await take(watch, 2);
  const kv = deleted!.events[0]!.kv;
  assert.equal(deleted!.events[0]!.type, "delete");
  assert.deepEqual(
    [
      kv.keyText,
      kv.createRevision,
      kv.modRevision,
      kv.version,
      kv.value.length,
      kv.lease,
    ],
    ["k", 0, 3, 0, 0, 0n],
  );
  assert.equal(deleted!.compactRevision, 0);
  assert.equal(deleted!.canceled, false);
  h.hub.close();
});

Deno.test("prefix, range and from-key watches see exactly the keys in their bounds", async () => {
  const h = new Harness();
  const pre = h.hub.watch(prefix("app/"));
  const rng = h.hub.watch(range("b", "d"));
  const from = h.hub.watch(range("m", null));
  const ff = h.hub.watch({ start: new Uint8Array([0xff]), end: null });
  for (
    const k of [
      "app",
      "app/",
      "app/x",
      "apq",
      "a",
      "b",
      "c",
      "cz",
      "d",
      "m",
      "zz",
    ]
  ) {
    h.put(k, "v");
  }
  h.txn((txn) => txn.put(new Uint8Array([0xff, 1]), enc("v"), 0n));
  const keys = async (w: AsyncIterableIterator<WatchResponse>, n: number) =>
    (await take(w, n)).map((r) => r.events.map((e) => e.kv.keyText).join());
  assert.deepEqual(await keys(pre, 2), ["app/", "app/x"]);
  assert.deepEqual(await keys(rng, 3), ["b", "c", "cz"]);
  assert.deepEqual(await keys(from, 3), ["m", "zz", "\ufffd\u0001"]);
  const [last] = await take(ff, 1);
  assert.deepEqual([...last!.events[0]!.kv.key], [0xff, 1]);
  h.hub.close();
});

Deno.test("a transaction's events come in one response, in sub revision order, filtered by bounds", async () => {
  const h = new Harness();
  h.put("t/a", "0");
  const watch = h.hub.watch(prefix("t/"), { prevKv: true });
  const other = h.hub.watch(key("t/b"));
  const rev = h.txn((txn) => {
    txn.put(enc("t/c"), enc("1"), 0n);
    txn.put(enc("x"), enc("1"), 0n);
    txn.deleteRange(key("t/a"));
    txn.put(enc("t/b"), enc("2"), 0n);
  });
  const [response] = await take(watch, 1);
  assert.deepEqual(brief(response!), [
    rev,
    "put t/c=1 c3 m3 v1",
    "delete t/a m3 <0@2",
    "put t/b=2 c3 m3 v1",
  ]);
  assert.deepEqual((await take(other, 1)).map(brief), [[
    rev,
    "put t/b=2 c3 m3 v1",
  ]]);
  h.hub.close();
});

Deno.test("a watch from an old revision replays history in one response, then goes live without gaps or duplicates", async () => {
  const h = new Harness();
  h.put("k/a", "1"); // 2
  h.put("k/b", "1"); // 3
  h.put("z", "1"); // 4
  h.put("k/a", "2"); // 5
  h.del("k/b"); // 6
  const watch = h.hub.watch(prefix("k/"), { startRevision: 3 });
  h.put("k/c", "1"); // 7: published before the first pull, so in the replay
  const [replay] = await take(watch, 1);
  // As etcd: the replay merges revisions, headed by the newest revision.
  assert.deepEqual(brief(replay!), [
    7,
    "put k/b=1 c3 m3 v1",
    "put k/a=2 c2 m5 v2",
    "delete k/b m6",
    "put k/c=1 c7 m7 v1",
  ]);
  h.put("k/a", "3"); // 8
  h.put("k/d", "1"); // 9
  assert.deepEqual((await take(watch, 2)).map(brief), [
    [8, "put k/a=3 c2 m8 v3"],
    [9, "put k/d=1 c9 m9 v1"],
  ]);
  assert.equal(h.hub.stats().unsynced, 0);
  h.hub.close();
});

Deno.test("prevKv is attached to live and replayed events, never to creations", async () => {
  const h = new Harness();
  h.put("p", "1"); // 2: create
  h.put("p", "2"); // 3
  h.del("p"); // 4
  h.put("p", "3"); // 5: create again
  const replayed = h.hub.watch(key("p"), { startRevision: 1, prevKv: true });
  const live = h.hub.watch(key("p"), { prevKv: true });
  const plain = h.hub.watch(key("p"), { startRevision: 2 });
  h.put("p", "4"); // 6
  h.del("p"); // 7
  // The replay is read at the first pull, so it covers revisions 6 and 7.
  assert.deepEqual((await take(replayed, 1)).map(brief), [[
    7,
    "put p=1 c2 m2 v1",
    "put p=2 c2 m3 v2 <1@2",
    "delete p m4 <2@3",
    "put p=3 c5 m5 v1",
    "put p=4 c5 m6 v2 <3@5",
    "delete p m7 <4@6",
  ]]);
  assert.deepEqual((await take(live, 2)).map(brief), [
    [6, "put p=4 c5 m6 v2 <3@5"],
    [7, "delete p m7 <4@6"],
  ]);
  const [first] = await take(plain, 1);
  assert.ok(first!.events.every((e) => e.prevKv === undefined));
  h.hub.close();
});

Deno.test("noPut and noDelete filter events, and a fully filtered revision sends nothing", async () => {
  const h = new Harness();
  h.put("f", "0"); // 2
  const noPut = h.hub.watch(key("f"), { noPut: true });
  const noDelete = h.hub.watch(key("f"), { noDelete: true });
  const replayNoPut = h.hub.watch(key("f"), { noPut: true, startRevision: 2 });
  h.put("f", "1"); // 3
  h.del("f"); // 4
  h.put("f", "2"); // 5
  h.del("f"); // 6
  assert.deepEqual((await take(noPut, 2)).map(brief), [
    [4, "delete f m4"],
    [6, "delete f m6"],
  ]);
  assert.deepEqual((await take(noDelete, 2)).map(brief), [
    [3, "put f=1 c2 m3 v2"],
    [5, "put f=2 c5 m5 v1"],
  ]);
  assert.deepEqual((await take(replayNoPut, 1)).map(brief), [
    [6, "delete f m4", "delete f m6"],
  ]);
  await stillPending(noPut);
  h.hub.close();
});

Deno.test("a start revision below the compaction point ends the watch with the compact revision", async () => {
  const h = new Harness();
  for (let i = 0; i < 5; i++) h.put("c", `${i}`); // 2..6
  h.compact(4);
  const compacted = h.hub.watch(key("c"), { startRevision: 3 });
  const result = await pull(compacted);
  assert.deepEqual(result.value, {
    header: { revision: 0 },
    events: [],
    compactRevision: 4,
    canceled: true,
  });
  assert.equal((await pull(compacted)).done, true);
  // At the compaction point itself the watch works, as etcd.
  const atCompact = h.hub.watch(key("c"), { startRevision: 4 });
  assert.deepEqual((await take(atCompact, 1)).map(brief), [
    [6, "put c=2 c2 m4 v3", "put c=3 c2 m5 v4", "put c=4 c2 m6 v5"],
  ]);
  assert.equal(h.hub.stats().watchers, 1);
  h.hub.close();
});

Deno.test("a watch from a future revision waits for it", async () => {
  const h = new Harness();
  const watch = h.hub.watch(key("w"), { startRevision: 4 });
  h.put("w", "a"); // 2
  const { next } = await stillPending(watch);
  h.put("w", "b"); // 3
  h.put("w", "c"); // 4
  assert.deepEqual(brief((await next).value), [4, "put w=c c2 m4 v3"]);
  h.hub.close();
});

Deno.test("a slow consumer falls behind, catches up from history exactly once, and never blocks writers or other watchers", async () => {
  const limits = {
    queueResponsesMax: 4,
    queueEventsMax: 8,
    batchEventsMax: 7,
    batchRevisionsMax: 5,
  };
  const h = new Harness(limits);
  const slow = h.hub.watch(prefix("s/"), { prevKv: true });
  const fast = h.hub.watch(prefix("s/"));
  const fastSeen: number[] = [];
  const fastDone = (async () => {
    for await (const response of fast) {
      for (const e of response.events) fastSeen.push(e.kv.modRevision);
      if (fastSeen.length === 300) return;
    }
  })();
  // 300 writes while the slow consumer reads nothing: every publish returns
  // at once; yield now and then so the fast consumer keeps up.
  const started = performance.now();
  for (let i = 0; i < 300; i++) {
    h.put(`s/${i % 7}`, `${i}`);
    if (i % 3 === 0) await Promise.resolve();
    if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const writeMs = performance.now() - started;
  await fastDone;
  assert.deepEqual(fastSeen, Array.from({ length: 300 }, (_, i) => i + 2));
  let stats = h.hub.stats();
  assert.ok(stats.overflows >= 1, "the slow watcher fell behind");
  assert.equal(stats.unsynced, 1);
  // The slow watcher's queue never held more than its bound.
  const seen: number[] = [];
  let responses = 0;
  while (seen.length < 300) {
    const value: WatchResponse = (await pull(slow)).value;
    responses++;
    const revisions = new Set(value.events.map((e) => e.kv.modRevision));
    assert.ok(value.events.length <= 8);
    assert.ok(revisions.size <= 5);
    for (const e of value.events) {
      seen.push(e.kv.modRevision);
      const i = e.kv.modRevision - 2;
      assert.equal(e.kv.valueText, `${i}`);
      if (i >= 7) assert.equal(e.prevKv?.valueText, `${i - 7}`);
    }
  }
  assert.deepEqual(seen, Array.from({ length: 300 }, (_, i) => i + 2));
  assert.ok(responses > 4);
  // Caught up: back in the synced group, and live again.
  const { next } = await stillPending(slow);
  h.put("s/x", "live");
  assert.deepEqual(brief((await next).value), [
    302,
    "put s/x=live c302 m302 v1",
  ]);
  stats = h.hub.stats();
  assert.equal(stats.unsynced, 0);
  assert.equal(stats.synced, 1); // the fast consumer's loop ended its watch
  console.log(
    `300 writes with a stalled watcher took ${writeMs.toFixed(1)} ms`,
  );
  h.hub.close();
});

Deno.test("an abort signal and return() end a watch, waking a pending pull", async () => {
  const h = new Harness({ progressIntervalMs: 5 });
  const controller = new AbortController();
  const watch = h.hub.watch(key("a"), {
    signal: controller.signal,
    progressNotify: true,
  });
  const other = h.hub.watch(prefix("a"));
  assert.equal(h.hub.stats().watchers, 2);
  const pending = watch.next();
  controller.abort();
  assert.equal((await pending).done, true);
  assert.equal((await watch.next()).done, true);
  h.put("a", "1");
  assert.equal(h.hub.stats().watchers, 1);
  assert.deepEqual((await other.return!()).done, true);
  assert.equal((await other.next()).done, true);
  assert.deepEqual(h.hub.stats().watchers, 0);
  // An already aborted signal gives a watch that is over.
  const dead = h.hub.watch(key("a"), { signal: AbortSignal.abort() });
  assert.equal((await dead.next()).done, true);
  // for-await's break calls return().
  const loop = h.hub.watch(key("a"));
  h.put("a", "2");
  for await (const _ of loop) break;
  assert.equal(h.hub.stats().watchers, 0);
  h.hub.close();
});

Deno.test("an idle watch with progressNotify gets progress responses at the current revision", async () => {
  const h = new Harness({ progressIntervalMs: 15 });
  h.put("x", "1");
  const idle = h.hub.watch(key("quiet"), { progressNotify: true });
  const [progress] = await take(idle, 1);
  assert.deepEqual(progress, {
    header: { revision: 2 },
    events: [],
    compactRevision: 0,
    canceled: false,
    progressNotify: true,
  });
  h.put("y", "1");
  const [again] = await take(idle, 1);
  assert.equal(again!.header.revision, 3);
  assert.equal(again!.progressNotify, true);
  h.hub.close();
});

Deno.test("requestProgress answers synced watches at once and catching-up ones after their history", async () => {
  const h = new Harness();
  h.put("r", "1"); // 2
  h.put("r", "2"); // 3
  const synced = h.hub.watch(key("r"));
  const behind = h.hub.watch(key("r"), { startRevision: 2 });
  h.hub.requestProgress();
  assert.deepEqual(
    (await take(synced, 1)).map((r) => [r.header.revision, r.progressNotify]),
    [[3, true]],
  );
  const [history, progress] = await take(behind, 2);
  assert.deepEqual(brief(history!), [
    3,
    "put r=1 c2 m2 v1",
    "put r=2 c2 m3 v2",
  ]);
  assert.deepEqual([
    progress!.header.revision,
    progress!.progressNotify,
    progress!.events.length,
  ], [3, true, 0]);
  h.hub.close();
});

Deno.test("with 10,000 watchers on other keys a write touches only the matching ones", async () => {
  const h = new Harness();
  const watches: AsyncIterableIterator<WatchResponse>[] = [];
  for (let i = 0; i < 10_000; i++) watches.push(h.hub.watch(key(`key/${i}`)));
  for (let i = 0; i < 1_000; i++) {
    watches.push(h.hub.watch(prefix(`pre/${i}/`)));
  }
  for (let i = 0; i < 1_000; i++) {
    watches.push(h.hub.watch(range(`rng/${i}/a`, `rng/${i}/b`)));
  }
  const target = h.hub.watch(key("key/5000"));
  const before = h.hub.stats();
  h.put("key/5000", "v");
  h.put("pre/7/x", "v");
  h.put("rng/9/am", "v");
  h.put("nobody", "v");
  const after = h.hub.stats();
  // Matched: two key watchers, one prefix watcher, one range watcher.
  assert.equal(after.matched - before.matched, 4);
  // Index work: a map probe, two prefix lengths ("pre/N/" is 6 or 7
  // bytes; 8 for 3-digit N) and an interval-tree descent per write.
  const probes = after.probes - before.probes;
  console.log(`4 writes, 13,001 watchers: ${probes} index probes`);
  assert.ok(probes < 4 * 40, `${probes} probes`);
  assert.equal((await take(target, 1))[0]!.events[0]!.kv.keyText, "key/5000");
  h.hub.close();
  assert.equal(h.hub.stats().watchers, 0);
});

Deno.test("close ends every watch with a canceled response after what was queued", async () => {
  const h = new Harness();
  const a = h.hub.watch(key("a"));
  const b = h.hub.watch(key("b"), { startRevision: 1 });
  h.put("a", "1");
  h.hub.close();
  assert.deepEqual(brief((await pull(a)).value), [2, "put a=1 c2 m2 v1"]);
  const end = (await pull(a)).value as WatchResponse;
  assert.deepEqual([end.canceled, end.cancelReason], [
    true,
    "revkv: store is closed",
  ]);
  assert.equal((await pull(a)).done, true);
  assert.equal((await pull(b)).value.canceled, true);
  assert.equal((await pull(b)).done, true);
  const late = h.hub.watch(key("a"));
  assert.equal((await pull(late)).value.canceled, true);
  h.put("a", "2"); // publishing after close is harmless
});

Deno.test("a watch on an empty range is canceled as etcd does", async () => {
  const h = new Harness();
  const watch = h.hub.watch(range("b", "a"));
  const { value } = await pull(watch);
  assert.deepEqual(value, {
    header: { revision: 1 },
    events: [],
    compactRevision: 0,
    canceled: true,
    cancelReason: "mvcc: watcher range is empty",
  });
  assert.equal((await pull(watch)).done, true);
  assert.throws(() => h.hub.watch(key("a"), { startRevision: -1 }), RangeError);
  h.hub.close();
});

Deno.test("publish rejects a revision that does not follow the last one", () => {
  const h = new Harness();
  assert.throws(
    () => h.hub.publish(5, []),
    /published revision 5 does not follow 1/,
  );
  h.hub.close();
});

// --- building blocks ---------------------------------------------------------

Deno.test("the interval tree finds exactly the intervals that contain a key", () => {
  const random = prng(seedFromEnv("interval tree"));
  const word = () => {
    let text = "";
    const length = 1 + Math.floor(random() * 3);
    for (let i = 0; i < length; i++) text += "abcd"[Math.floor(random() * 4)];
    return text;
  };
  const tree = new IntervalTree<number>();
  const live = new Map<
    number,
    { start: Uint8Array; end: Uint8Array | null; id: number; value: number }
  >();
  for (let step = 0; step < 3000; step++) {
    if (live.size > 0 && random() < 0.4) {
      const ids = [...live.keys()];
      const id = ids[Math.floor(random() * ids.length)]!;
      assert.equal(tree.delete(live.get(id)!), true);
      live.delete(id);
    } else {
      let a = word();
      let b = word();
      if (a === b) continue;
      if (a > b) [a, b] = [b, a];
      const item = {
        start: enc(a),
        end: random() < 0.2 ? null : enc(b),
        id: step,
        value: step,
      };
      tree.insert(item);
      live.set(step, item);
    }
    const probe = enc(word());
    const found: number[] = [];
    tree.stab(probe, (value) => found.push(value));
    const expected = [...live.values()].filter((item) =>
      compare(item.start, probe) <= 0 &&
      (item.end === null || compare(probe, item.end) < 0)
    ).map((item) => item.value);
    assert.deepEqual(
      found.sort((x, y) => x - y),
      expected.sort((x, y) => x - y),
    );
    assert.equal(tree.size, live.size);
  }
});

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

Deno.test("readHistory pages never split a revision and resume where they stopped", () => {
  const h = new Harness();
  h.txn((txn) => {
    for (let i = 0; i < 10; i++) txn.put(enc(`h/${i}`), enc("big"), 0n);
  }); // 2: ten events
  for (let i = 0; i < 6; i++) h.put(`h/${i}`, "small"); // 3..8
  const bounds = prefix("h/");
  const first = readHistory(h.mvcc, bounds, 1, 8, 3, 100);
  assert.equal(first.events.length, 10);
  assert.equal(first.nextRevision, 3);
  const second = readHistory(h.mvcc, bounds, 3, 8, 3, 100);
  assert.deepEqual(second.events.map((c) => c.entry.main), [3, 4, 5]);
  assert.equal(second.nextRevision, 6);
  const third = readHistory(h.mvcc, bounds, 6, 8, 100, 2);
  assert.deepEqual(third.events.map((c) => c.entry.main), [6, 7]);
  assert.equal(third.nextRevision, 8);
  h.hub.close();
});

// --- a randomized model check ------------------------------------------------

interface ModelEvent {
  rev: number;
  text: string;
  key: string;
  type: "put" | "delete";
}

Deno.test("randomized: every watch sees exactly the model's events, in order, whatever its pace", async () => {
  const random = prng(seedFromEnv("watch model"));
  const h = new Harness({
    queueResponsesMax: 3,
    queueEventsMax: 6,
    batchEventsMax: 5,
    batchRevisionsMax: 4,
  });
  const keys = ["a", "a/1", "a/2", "b", "b/1", "c"];
  const log: ModelEvent[] = [];
  const values = new Map<
    string,
    { value: string; create: number; version: number; mod: number }
  >();
  const write = () => {
    const rev = h.mvcc.currentRevision + 1;
    let sub = 0;
    const txn = h.mvcc.beginWrite();
    const touched = new Set<string>();
    const ops = 1 + Math.floor(random() * 3);
    for (let i = 0; i < ops; i++) {
      const k = keys[Math.floor(random() * keys.length)]!;
      if (touched.has(k)) continue;
      touched.add(k);
      const current = values.get(k);
      if (current && random() < 0.3) {
        txn.deleteRange(key(k));
        values.delete(k);
        log.push({
          rev,
          key: k,
          type: "delete",
          text: `delete ${k} m${rev} <${current.value}@${current.mod}`,
        });
      } else {
        const value = `${rev}.${sub}`;
        txn.put(enc(k), enc(value), 0n);
        const next = current
          ? {
            value,
            create: current.create,
            version: current.version + 1,
            mod: rev,
          }
          : { value, create: rev, version: 1, mod: rev };
        values.set(k, next);
        const prev = current ? ` <${current.value}@${current.mod}` : "";
        log.push({
          rev,
          key: k,
          type: "put",
          text:
            `put ${k}=${value} c${next.create} m${rev} v${next.version}${prev}`,
        });
      }
      sub++;
    }
    const committed = txn.commit();
    if (txn.changes.length > 0) h.hub.publish(committed, txn.changes);
  };
  for (let i = 0; i < 30; i++) write();

  const selectors: [string, KeyBounds, (k: string) => boolean][] = [
    ["key a", key("a"), (k) => k === "a"],
    ["prefix a/", prefix("a/"), (k) => k.startsWith("a/")],
    ["range [a/2, b/1)", range("a/2", "b/1"), (k) => k >= "a/2" && k < "b/1"],
    ["from b", range("b", null), (k) => k >= "b"],
  ];
  const consumers = [];
  for (let i = 0; i < 12; i++) {
    const [name, bounds, matches] = selectors[i % selectors.length]!;
    const startRevision = random() < 0.5
      ? 0
      : 1 + Math.floor(random() * h.mvcc.currentRevision);
    const options: WatchOptions = {
      startRevision,
      prevKv: true,
      noPut: random() < 0.15,
      noDelete: random() < 0.15,
    };
    const from = startRevision === 0
      ? h.mvcc.currentRevision + 1
      : startRevision;
    const watch = h.hub.watch(bounds, options);
    const pace = Math.floor(random() * 4); // 0: eager … 3: very slow
    consumers.push({
      name,
      watch,
      pace,
      from,
      matches,
      options,
      got: [] as string[],
    });
  }
  const runs = consumers.map(async (c) => {
    for (;;) {
      if (c.pace > 0) {
        await new Promise((resolve) =>
          setTimeout(resolve, c.pace * random() * 3)
        );
      }
      const result = await c.watch.next();
      if (result.done) return;
      const response = result.value;
      let last = -1;
      for (const e of response.events) {
        assert.ok(e.kv.modRevision >= last, "events in revision order");
        last = e.kv.modRevision;
        c.got.push(show(e));
      }
      assert.ok(response.header.revision >= last);
    }
  });
  for (let i = 0; i < 300; i++) {
    write();
    if (random() < 0.3) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const expected = consumers.map((c) =>
    log.filter((e) =>
      e.rev >= c.from && c.matches(e.key) &&
      !(e.type === "put" ? c.options.noPut : c.options.noDelete)
    ).map((e) =>
      // No prevKv on a create, as etcd.
      e.text.includes(` c${e.rev} m${e.rev} v1`)
        ? e.text.replace(/ <.*$/, "")
        : e.text
    )
  );
  const deadline = Date.now() + 10_000;
  while (consumers.some((c, i) => c.got.length < expected[i]!.length)) {
    assert.ok(Date.now() < deadline, "consumers did not receive every event");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // A little longer, so that a duplicate would show up.
  await new Promise((resolve) => setTimeout(resolve, 30));
  for (const c of consumers) await c.watch.return!();
  await Promise.all(runs);
  consumers.forEach((c, i) => {
    assert.deepEqual(
      c.got,
      expected[i],
      `${c.name} from ${c.from} pace ${c.pace}`,
    );
  });
  const stats = h.hub.stats();
  console.log(
    `model: ${stats.overflows} overflows, ${stats.historyPages} history pages`,
  );
  h.hub.close();
});
