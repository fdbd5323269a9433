/**
 * The read path of issue 10: what a read hands out is the caller's.
 *
 * - A `KeyValue` from a range (with values, keys-only), a single get, a
 *   `scan` page or a watch event never changes under its holder: not after
 *   the keys are overwritten and deleted, the store compacted and
 *   defragmented (a snapshot in a durable store), nor when new writes fill
 *   the slabs the old bytes came from; also for keys restored cold
 *   (src/mvcc/cold_entries.ts), at the Store and at the engine level.
 * - Writing into a held `KeyValue` changes nothing in the store nor in the
 *   other `KeyValue`s of the same response (they share one buffer).
 * - `Store.visitRange` (the encoders' read) visits exactly what `get`
 *   returns, in the same order, with `more` and `count`, for every option.
 *
 * @module
 */

import assert from "node:assert/strict";
import { open, type RangeOptions, type Store } from "../mod.ts";
import type { KeyValue } from "../src/mvcc/kv.ts";
import { MvccStore } from "../src/mvcc/kv_store.ts";
import { rangeKeys } from "../src/mvcc/range.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const KEYS = 40;
const keyOf = (i: number) => `r/${i.toString().padStart(3, "0")}`;
/** Values of different lengths: short ones are copied byte by byte, long
 * ones with `set`, and large responses get their own buffer. */
const valueOf = (i: number, round: number) =>
  `${round}:`.padEnd(1 + (i * 37) % 300, String.fromCharCode(97 + i % 26));

/** What a held KeyValue must keep showing. */
interface Seen {
  kv: KeyValue;
  key: string;
  value: string;
  modRevision: number;
}

function remember(kvs: KeyValue[]): Seen[] {
  return kvs.map((kv) => ({
    kv,
    key: dec.decode(kv.key),
    value: dec.decode(kv.value),
    modRevision: kv.modRevision,
  }));
}

function assertUnchanged(seen: Seen[], what: string): void {
  for (const { kv, key, value, modRevision } of seen) {
    assert.equal(dec.decode(kv.key), key, `${what}: key of ${key}`);
    assert.equal(dec.decode(kv.value), value, `${what}: value of ${key}`);
    assert.equal(kv.modRevision, modRevision, `${what}: revision of ${key}`);
  }
}

async function fill(db: Store, round: number): Promise<void> {
  for (let i = 0; i < KEYS; i++) await db.put(keyOf(i), valueOf(i, round));
}

/** Holds what every kind of read returns now. */
async function holdReads(db: Store): Promise<Seen[]> {
  const held: Seen[] = [];
  const range = await db.get("r/", { prefix: true });
  assert.equal(range.kvs.length, KEYS);
  held.push(...remember(range.kvs));
  held.push(
    ...remember((await db.get("r/", { prefix: true, keysOnly: true })).kvs),
  );
  held.push(
    ...remember(
      (await db.get("r/", { prefix: true, sortTarget: "value" })).kvs,
    ),
  );
  held.push(...remember((await db.get(keyOf(3))).kvs));
  held.push(...remember((await db.get(keyOf(KEYS - 1))).kvs));
  const scanned: KeyValue[] = [];
  for await (const kv of db.scan("r/", { prefix: true, pageKeys: 7 })) {
    scanned.push(kv);
  }
  assert.equal(scanned.length, KEYS);
  held.push(...remember(scanned));
  return held;
}

/** Overwrites, deletes, compacts, defrags and writes anew. */
async function churn(db: Store, held: Seen[]): Promise<void> {
  await fill(db, 1);
  assertUnchanged(held, "after overwrite");
  for (let i = 0; i < KEYS; i += 2) await db.delete(keyOf(i));
  assertUnchanged(held, "after delete");
  await db.compact(db.revision);
  assertUnchanged(held, "after compact");
  await db.defrag();
  assertUnchanged(held, "after defrag");
  // New writes fill fresh slabs; old ones are not reused.
  for (let i = 0; i < 200; i++) await db.put(`z/${i}`, "x".repeat(i));
  await db.get("z/", { prefix: true });
  assertUnchanged(held, "after new writes and reads");
}

Deno.test("a held KeyValue never changes: overwrite, delete, compact, defrag (in memory)", async () => {
  const db = await open();
  try {
    await fill(db, 0);
    const held = await holdReads(db);
    await churn(db, held);
  } finally {
    await db.close();
  }
});

Deno.test("a held KeyValue never changes: durable store, keys restored cold", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-read-path-" });
  try {
    let db = await open(dir);
    await fill(db, 0);
    await db.close();
    // Reopened: every key holds one put, so it comes back cold.
    db = await open(dir);
    try {
      const held = await holdReads(db);
      const events: Seen[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (
          const res of db.watch("r/", {
            prefix: true,
            prevKv: true,
            signal: controller.signal,
          })
        ) {
          for (const event of res.events) {
            events.push(...remember([event.kv]));
            if (event.prevKv) events.push(...remember([event.prevKv]));
          }
          if (events.length >= 2 * KEYS) controller.abort();
        }
      })();
      await churn(db, held);
      await watching;
      assert.ok(events.length >= 2 * KEYS);
      assertUnchanged(held, "after the watch");
      for (let i = 0; i < 100; i++) await db.put(`y/${i}`, "w".repeat(i));
      assertUnchanged(events, "watch events after new writes");
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a held KeyValue of a cold key never changes (engine level)", () => {
  const mvcc = new MvccStore();
  const chunk = new Uint8Array(64 * 1024);
  let at = 0;
  let main = 2;
  for (let i = 0; i < KEYS; i++) {
    const key = enc.encode(keyOf(i));
    const value = enc.encode(valueOf(i, 0));
    chunk.set(key, at);
    chunk.set(value, at + key.length);
    mvcc.restoreRecorded({
      bytes: chunk,
      keyStart: at,
      keyLength: key.length,
      valueStart: at + key.length,
      valueLength: value.length,
      main,
      sub: 0,
      createRevision: main,
      version: 1,
      lease: 0n,
      adoptedChunk: -1,
    });
    at += key.length + value.length;
    main++;
  }
  mvcc.restoreRevisions(main - 1, -1);
  assert.equal(mvcc.coldKeyCount, KEYS);
  const all = { start: enc.encode("r/"), end: enc.encode("r0") };
  const held = remember(rangeKeys(mvcc, all, {}, mvcc.currentRevision).kvs);
  held.push(
    ...remember(
      rangeKeys(
        mvcc,
        { start: enc.encode(keyOf(5)), end: undefined },
        {},
        mvcc.currentRevision,
      ).kvs,
    ),
  );
  // A cold key is visible from its revision on (key i was put at i + 2).
  const atRev = 12;
  const early = rangeKeys(mvcc, all, { revision: atRev }, mvcc.currentRevision);
  assert.equal(early.count, atRev - 1);
  assert.deepEqual(
    early.kvs.map((kv) => kv.keyText),
    Array.from({ length: atRev - 1 }, (_, i) => keyOf(i)),
  );
  assert.equal(
    rangeKeys(mvcc, all, { revision: atRev, countOnly: true }, atRev + 5).count,
    atRev - 1,
  );
  assert.equal(mvcc.coldKeyCount, KEYS, "reads leave cold keys cold");
  // Restore copies out of its buffer: scribbling over it changes nothing.
  chunk.fill(0x21);
  assertUnchanged(held, "after the restore buffer changed");
  // Writes take the cold keys (their bytes move); compaction drops history.
  const txn = mvcc.beginWrite();
  for (let i = 0; i < KEYS; i++) {
    txn.put(enc.encode(keyOf(i)), enc.encode("new"), 0n);
  }
  txn.commit();
  const del = mvcc.beginWrite();
  del.deleteRange(all);
  del.commit();
  mvcc.compact(mvcc.currentRevision);
  mvcc.compactAll();
  assert.equal(mvcc.keyCount, 0);
  assertUnchanged(held, "after overwrite, delete and compaction");
});

Deno.test("writing into a held KeyValue changes neither the store nor its neighbours", async () => {
  const db = await open();
  try {
    await fill(db, 0);
    const { kvs } = await db.get("r/", { prefix: true });
    const before = remember(kvs);
    kvs[1]!.value.fill(0x40);
    kvs[1]!.key.fill(0x40);
    assertUnchanged([before[0]!, ...before.slice(2)], "neighbours");
    const again = await db.get("r/", { prefix: true });
    assert.deepEqual(
      again.kvs.map((kv) => [dec.decode(kv.key), dec.decode(kv.value)]),
      before.map(({ key, value }) => [key, value]),
    );
    const single = (await db.get(keyOf(2))).kvs[0]!;
    single.value.fill(0x40);
    assert.equal((await db.get(keyOf(2))).kvs[0]!.valueText, valueOf(2, 0));
  } finally {
    await db.close();
  }
});

Deno.test("visitRange visits what get returns, for every RangeRequest option", async () => {
  const db = await open();
  try {
    await fill(db, 0);
    for (let i = 0; i < KEYS; i += 3) await db.put(keyOf(i), `again ${i}`);
    await db.delete(keyOf(4));
    const midRevision = db.revision;
    for (let i = 1; i < KEYS; i += 5) await db.put(keyOf(i), `third ${i}`);
    const optionSets: RangeOptions[] = [
      {},
      { limit: 5 },
      { limit: KEYS * 2 },
      { keysOnly: true },
      { keysOnly: true, limit: 3 },
      { countOnly: true },
      { countOnly: true, limit: 2 },
      { revision: midRevision },
      { revision: midRevision, limit: 4, sortOrder: "descend" },
      { sortOrder: "descend" },
      { sortTarget: "value" },
      { sortTarget: "version", sortOrder: "descend", limit: 6 },
      { sortTarget: "create", sortOrder: "ascend" },
      { sortTarget: "mod", sortOrder: "descend", limit: 10 },
      { minModRevision: midRevision },
      { maxModRevision: midRevision, limit: 7 },
      { minCreateRevision: 10, maxCreateRevision: 30 },
    ];
    for (const options of optionSets) {
      for (const selector of [{ prefix: true }, { rangeEnd: "r/020" }]) {
        const all = { ...options, ...selector };
        const got = await db.get("r/", all);
        const visited: unknown[] = [];
        const summary = db.visitRange("r/", all, (kv) => {
          visited.push([
            dec.decode(kv.key),
            dec.decode(kv.value),
            kv.createRevision,
            kv.modRevision,
            kv.version,
            kv.lease,
          ]);
        });
        const what = JSON.stringify(all);
        assert.deepEqual(
          visited,
          got.kvs.map((kv) => [
            kv.keyText,
            kv.valueText,
            kv.createRevision,
            kv.modRevision,
            kv.version,
            kv.lease,
          ]),
          what,
        );
        assert.equal(summary.count, got.count, what);
        assert.equal(summary.more, got.more, what);
        assert.equal(summary.header.revision, got.header.revision, what);
      }
    }
    // Single keys, present and absent.
    let visits = 0;
    assert.equal(db.visitRange(keyOf(1), {}, () => visits++).count, 1);
    assert.equal(db.visitRange(keyOf(4), {}, () => visits++).count, 0);
    assert.equal(visits, 1);
    // It fails as get fails, before visiting.
    assert.throws(
      () => db.visitRange("r/", { revision: db.revision + 1 }, () => visits++),
      /future revision/,
    );
    await db.compact(db.revision);
    assert.throws(
      () => db.visitRange("r/", { revision: midRevision }, () => visits++),
      /compacted/,
    );
    assert.equal(visits, 1);
  } finally {
    await db.close();
  }
});
