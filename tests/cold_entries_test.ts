/**
 * Cold keys (src/mvcc/cold_entries.ts): keys restored through
 * `MvccStore.restoreRecorded` that hold a single put stay as columns until
 * a write or a point lookup turns them into a `KeyIndex`.
 *
 * Covered: restore of a mix of entries from one buffer (short, long and
 * >4 KiB items, adjacent and split key/value, leases, multi-entry keys,
 * tombstone-first keys); reads, identity and `check()` of cold keys;
 * equivalence with the same state forced hot and with another restore order
 * (scans, history, `hashState`, sizes); writes, range deletes and aborts
 * over cold keys; compaction (full, stepped with writes in between, and
 * the one `restoreRevisions` starts); `forEachLeasedKey`; and the durable
 * store: WAL-only and snapshot + WAL recovery compared with a twin store
 * that was never closed (reads, history, leases, hash), writes and lease
 * revocation after reopening, and a second reopen.
 */
import assert from "node:assert/strict";
import { CompactedError, open, type Store } from "../mod.ts";
import { storeInternals } from "../src/store.ts";
import type { KeyIndex, RevisionEntry } from "../src/mvcc/key_index.ts";
import { type KeyBounds, MvccStore } from "../src/mvcc/kv_store.ts";
import { COLD_ITEM_BYTES_MAX } from "../src/mvcc/cold_entries.ts";
import { hashState } from "../src/storage/snapshot.ts";
import { openDataDir } from "../src/storage/data_dir.ts";
import { withTempDir } from "./storage_helpers.ts";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const enc = (s: string) => textEncoder.encode(s);
const dec = (b: Uint8Array) => textDecoder.decode(b);
const ALL: KeyBounds = { start: new Uint8Array(0), end: null };

// --- engine level: the restored entries and their model -------------------

/** One recorded entry, as recovery hands it to `restoreRecorded`. */
interface Rec {
  key: string;
  /** null: tombstone. */
  value: Uint8Array | null;
  main: number;
  sub: number;
  create: number;
  version: number;
  lease: bigint;
  /** Lay the value before the key in the buffer (not adjacent). */
  split?: boolean;
}

const LEASE_X = 0x1234n;
const LEASE_Y = 0x7fff_ffff_ffff_fff0n;
const LEASE_BIG = 9n;
const LEASE_MANY = 77n;
const MANY = 2000;
const LONG_KEY = "k".repeat(40);

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

const manyKey = (i: number) => `m/${String(i).padStart(4, "0")}`;
const manyValue = (i: number) => enc(`value-${i}-`.padEnd(40, "."));

/** The recorded history, in revision order (as WAL replay gives it). */
function records(): Rec[] {
  const put = (
    key: string,
    value: Uint8Array | string,
    main: number,
    sub: number,
    create: number,
    version: number,
    lease = 0n,
    split = false,
  ): Rec => ({
    key,
    value: typeof value === "string" ? enc(value) : value,
    main,
    sub,
    create,
    version,
    lease,
    split,
  });
  const tomb = (key: string, main: number, sub: number): Rec => ({
    key,
    value: null,
    main,
    sub,
    create: 0,
    version: 0,
    lease: 0n,
  });
  const recs: Rec[] = [
    put("a", "1", 2, 0, 2, 1),
    put("b", "", 2, 1, 2, 1), // empty value
    put("c", "x", 2, 2, 2, 1, 0n, true), // value before the key
    put("big", pattern(COLD_ITEM_BYTES_MAX + 904, 1), 3, 0, 3, 1),
    put("dead", "soon", 3, 1, 3, 1, 5n), // leased, deleted at 10
    put("two", "v1", 4, 0, 4, 1),
    put("unl", "u1", 4, 1, 4, 1, 0x55n), // leased, re-put without at 8
    tomb("tb", 5, 0), // first entry a tombstone
    put("lease/x", "lx", 6, 0, 6, 1, LEASE_X),
    put("lease/y", "ly", 6, 1, 6, 1, LEASE_Y),
    put(
      "lease/big",
      pattern(COLD_ITEM_BYTES_MAX + 4, 2),
      6,
      2,
      6,
      1,
      LEASE_BIG,
    ),
    put("tb", "again", 7, 0, 7, 1),
    put("two", "v2", 8, 0, 4, 2, LEASE_X),
    put("unl", "u2", 8, 1, 4, 2),
    // As a compacted snapshot gives it: version 4, created at 3.
    put("comp", "c4", 9, 0, 3, 4),
    put(LONG_KEY, pattern(100, 3), 9, 1, 9, 1, 0n, true),
    tomb("dead", 10, 0),
  ];
  for (let i = 0; i < MANY; i++) {
    const main = 11 + Math.floor(i / 4);
    recs.push(
      put(
        manyKey(i),
        manyValue(i),
        main,
        i % 4,
        main,
        1,
        i % 100 === 0 ? LEASE_MANY : 0n,
      ),
    );
  }
  return recs;
}

const RECS = records();
const CURRENT = RECS[RECS.length - 1]!.main; // 510
/** Keys whose whole history is one put: cold after restore. */
const COLD_KEYS = (() => {
  const counts = new Map<string, Rec[]>();
  for (const r of RECS) counts.set(r.key, [...(counts.get(r.key) ?? []), r]);
  return [...counts].filter(([, rs]) => rs.length === 1 && rs[0]!.value)
    .map(([k]) => k);
})();
const ALL_KEYS = [...new Set(RECS.map((r) => r.key))].sort(cmpText);

function cmpText(a: string, b: string): number {
  return compare(enc(a), enc(b));
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** All records laid out in one buffer, with their positions. */
function layout(recs: Rec[]) {
  const parts: Uint8Array[] = [];
  const at: {
    keyStart: number;
    keyLength: number;
    valueStart: number;
    valueLength: number;
  }[] = [];
  let p = 0;
  const push = (bytes: Uint8Array) => {
    parts.push(bytes);
    const start = p;
    p += bytes.length;
    return start;
  };
  for (const r of recs) {
    const key = enc(r.key);
    const value = r.value ?? new Uint8Array(0);
    push(new Uint8Array([0xee, 0xee])); // junk between records
    let keyStart: number;
    let valueStart: number;
    if (r.split) {
      valueStart = push(value);
      push(new Uint8Array([0xdd]));
      keyStart = push(key);
    } else {
      keyStart = push(key);
      valueStart = push(value);
    }
    at.push({
      keyStart,
      keyLength: key.length,
      valueStart,
      valueLength: r.value === null ? -1 : value.length,
    });
  }
  const bytes = new Uint8Array(p);
  let q = 0;
  for (const part of parts) {
    bytes.set(part, q);
    q += part.length;
  }
  return { bytes, at };
}

/** A store restored from `recs` through `restoreRecorded`, from one buffer. */
function restored(
  recs: Rec[] = RECS,
  compactRevision = -1,
): MvccStore {
  const mvcc = new MvccStore();
  const { bytes, at } = layout(recs);
  recs.forEach((r, i) => {
    const a = at[i]!;
    mvcc.restoreRecorded({
      bytes,
      keyStart: a.keyStart,
      keyLength: a.keyLength,
      valueStart: a.valueStart,
      valueLength: a.valueLength,
      main: r.main,
      sub: r.sub,
      createRevision: r.create,
      version: r.version,
      lease: r.lease,
      adoptedChunk: -1,
    });
  });
  // The restore copies: scribbling over the buffer changes nothing.
  bytes.fill(0xab);
  mvcc.restoreRevisions(Math.max(...recs.map((r) => r.main)), compactRevision);
  return mvcc;
}

/** Same store with every key turned into a `KeyIndex`. */
function restoredHot(): MvccStore {
  const mvcc = restored();
  for (const key of ALL_KEYS) assert.ok(mvcc.keyIndex(enc(key)));
  assert.equal(mvcc.coldKeyCount, 0);
  return mvcc;
}

interface Seen {
  key: string;
  value: Uint8Array;
  create: number;
  mod: number;
  sub: number;
  version: number;
  lease: bigint;
}

function seen(key: string, entry: RevisionEntry): Seen {
  return {
    key,
    value: entry.value!.slice(),
    create: entry.createRevision,
    mod: entry.main,
    sub: entry.sub,
    version: entry.version,
    lease: entry.lease,
  };
}

/** What the model says is visible at `rev`, in key order. */
function expectedAt(rev: number, recs: Rec[] = RECS): Seen[] {
  const last = new Map<string, Rec>();
  for (const r of recs) if (r.main <= rev) last.set(r.key, r);
  return [...last.values()].filter((r) => r.value !== null)
    .sort((x, y) => cmpText(x.key, y.key))
    .map((r) => ({
      key: r.key,
      value: r.value!,
      create: r.create,
      mod: r.main,
      sub: r.sub,
      version: r.version,
      lease: r.lease,
    }));
}

function scan(
  mvcc: MvccStore,
  rev: number,
  bounds: KeyBounds = ALL,
  reverse = false,
): Seen[] {
  const out: Seen[] = [];
  mvcc.forEachVisible(bounds, rev, ({ index, entry }) => {
    out.push(seen(dec(index.key), entry));
  }, reverse);
  return out;
}

/** Every key's whole kept history, in key order. */
function history(mvcc: MvccStore) {
  const out: { key: string; entries: RevisionEntry[] }[] = [];
  mvcc.forEachKeyIndex(ALL, (index) => {
    out.push({
      key: dec(index.key),
      entries: index.entries.map((e) => ({
        ...e,
        value: e.value === null ? null : e.value.slice(),
      })),
    });
  });
  return out;
}

const REVS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 200, 509, CURRENT];

// --- 1. restore and read ---------------------------------------------------

Deno.test("restoreRecorded keeps single-put keys cold; reads at every revision match the record", () => {
  const mvcc = restored();
  assert.equal(mvcc.currentRevision, CURRENT);
  assert.equal(mvcc.compactRevision, -1);
  assert.equal(mvcc.compacting, false);
  assert.equal(COLD_KEYS.length, 9 + MANY);
  assert.equal(mvcc.coldKeyCount, COLD_KEYS.length);
  assert.equal(mvcc.keyCount, ALL_KEYS.length);
  mvcc.check();

  for (const rev of REVS) {
    assert.deepEqual(scan(mvcc, rev), expectedAt(rev), `at ${rev}`);
  }
  // A few spot checks of the model itself.
  const now = new Map(scan(mvcc, CURRENT).map((s) => [s.key, s]));
  assert.equal(now.has("dead"), false);
  assert.deepEqual(now.get("b")?.value, new Uint8Array(0));
  assert.equal(now.get("c")?.value.length, 1);
  assert.equal(now.get("big")?.value.length, COLD_ITEM_BYTES_MAX + 904);
  assert.deepEqual(
    now.get("big")?.value,
    pattern(COLD_ITEM_BYTES_MAX + 904, 1),
  );
  assert.deepEqual(now.get(LONG_KEY)?.value, pattern(100, 3));
  assert.deepEqual(
    [now.get("comp")?.version, now.get("comp")?.create, now.get("comp")?.mod],
    [4, 3, 9],
  );
  assert.deepEqual(
    [now.get("tb")?.version, now.get("tb")?.create, now.get("tb")?.mod],
    [1, 7, 7],
  );
  assert.equal(now.get("lease/y")?.lease, LEASE_Y);
  assert.equal(now.get("lease/big")?.lease, LEASE_BIG);
  assert.equal(now.get(manyKey(300))?.lease, LEASE_MANY);
  assert.equal(now.get(manyKey(301))?.lease, 0n);
  assert.equal(now.get(manyKey(1999))?.mod, CURRENT);
  assert.equal(now.get(manyKey(1999))?.sub, 3);
  // Reverse and bounded scans (pages of 512 handles) see cold keys too.
  assert.deepEqual(
    scan(mvcc, CURRENT, ALL, true),
    expectedAt(CURRENT).reverse(),
  );
  const bounded = { start: enc(manyKey(100)), end: enc(manyKey(1700)) };
  assert.deepEqual(
    scan(mvcc, CURRENT, bounded).map((s) => s.key),
    Array.from({ length: 1600 }, (_, i) => manyKey(100 + i)),
  );
  // Reading did not warm anything up.
  assert.equal(mvcc.coldKeyCount, COLD_KEYS.length);
  mvcc.check();
});

Deno.test("keyIndex turns one cold key into its own KeyIndex, kept by identity", () => {
  const mvcc = restored();
  mvcc.check();
  const cold = mvcc.coldKeyCount;
  const before = scan(mvcc, CURRENT);

  // Scans hand out throw-away copies of a cold key: equal, not the same.
  const peeks: KeyIndex[] = [];
  for (let i = 0; i < 2; i++) {
    mvcc.forEachKeyIndex({ start: enc("a"), end: enc("a\0") }, (index) => {
      peeks.push(index);
    });
  }
  assert.equal(peeks.length, 2);
  assert.notEqual(peeks[0], peeks[1]);
  assert.deepEqual(peeks[0]!.entries, peeks[1]!.entries);
  assert.equal(mvcc.coldKeyCount, cold);

  const index = mvcc.keyIndex(enc("a"));
  assert.ok(index);
  assert.equal(dec(index.key), "a");
  assert.equal(index.entries.length, 1);
  assert.deepEqual(seen("a", index.get(CURRENT)!), before[0]);
  assert.equal(mvcc.coldKeyCount, cold - 1);
  assert.equal(mvcc.keyIndex(enc("a")), index);
  assert.equal(mvcc.coldKeyCount, cold - 1);
  // Scans now hand out the key's own index.
  mvcc.forEachKeyIndex({ start: enc("a"), end: enc("b") }, (i) => {
    assert.equal(i, index);
  });
  // A key not in the tree, and a hot key, change nothing.
  assert.equal(mvcc.keyIndex(enc("nope")), undefined);
  const two = mvcc.keyIndex(enc("two"));
  assert.equal(two?.entries.length, 2);
  assert.equal(mvcc.coldKeyCount, cold - 1);

  // The > 4 KiB key (a chunk of its own) and a split key/value.
  const big = mvcc.keyIndex(enc("big"))!;
  assert.deepEqual(
    big.get(CURRENT)?.value,
    pattern(COLD_ITEM_BYTES_MAX + 904, 1),
  );
  const c = mvcc.keyIndex(enc("c"))!;
  assert.deepEqual(c.get(CURRENT)?.value, enc("x"));
  // A scan with forWrite takes cold keys for good.
  const owned: KeyIndex[] = [];
  mvcc.forEachKeyIndex(
    { start: enc("lease/"), end: enc("lease0") },
    (i) => void owned.push(i),
    false,
    true,
  );
  assert.equal(owned.length, 3);
  for (const i of owned) assert.equal(mvcc.keyIndex(i.key), i);
  assert.equal(mvcc.coldKeyCount, cold - 6);
  assert.deepEqual(scan(mvcc, CURRENT), before);
  mvcc.check();

  // Taking every key of whole chunks drops them; the taken keys and the
  // ones still cold read right.
  for (let i = 0; i < MANY / 2; i++) assert.ok(mvcc.keyIndex(enc(manyKey(i))));
  assert.equal(mvcc.coldKeyCount, cold - 6 - MANY / 2);
  assert.deepEqual(scan(mvcc, CURRENT), before);
  for (const rev of REVS) assert.deepEqual(scan(mvcc, rev), expectedAt(rev));
  mvcc.check();
});

/** `sizeBytes` as the model says: keys, values, entries and tree keys. */
function expectedSize(recs: Rec[]): number {
  const keys = new Set(recs.map((r) => r.key));
  let bytes = 0;
  for (const key of keys) bytes += enc(key).length + 48;
  for (const r of recs) bytes += 64 + (r.value?.length ?? 0);
  return bytes;
}

Deno.test("sizeBytes counts cold keys as it counts hot ones", () => {
  const mvcc = restored();
  assert.equal(mvcc.sizeBytes, expectedSize(RECS));
  for (const key of ALL_KEYS) mvcc.keyIndex(enc(key));
  assert.equal(mvcc.sizeBytes, expectedSize(RECS));
  const txn = mvcc.beginWrite();
  txn.put(enc("a"), enc("12345"), 0n);
  txn.commit();
  assert.equal(mvcc.sizeBytes, expectedSize(RECS) + 64 + 5);
});

Deno.test("a chunk dropped during a restore is not written into again", () => {
  // As WAL replay gives it: a key's first put makes it cold (the only key
  // of a fresh chunk), its next entry takes it (the chunk is dropped),
  // then more keys come.
  const recs: Rec[] = [
    {
      key: "x",
      value: enc("x1"),
      main: 2,
      sub: 0,
      create: 2,
      version: 1,
      lease: 0n,
    },
    {
      key: "x",
      value: enc("x2"),
      main: 3,
      sub: 0,
      create: 2,
      version: 2,
      lease: 0n,
    },
    {
      key: "y",
      value: enc("y1"),
      main: 4,
      sub: 0,
      create: 4,
      version: 1,
      lease: 0n,
    },
    {
      key: "x",
      value: null,
      main: 5,
      sub: 0,
      create: 0,
      version: 0,
      lease: 0n,
    },
    {
      key: "z",
      value: enc("z1"),
      main: 6,
      sub: 0,
      create: 6,
      version: 1,
      lease: 3n,
    },
    {
      key: "y",
      value: enc("y2"),
      main: 7,
      sub: 0,
      create: 4,
      version: 2,
      lease: 0n,
    },
    {
      key: "w",
      value: enc("w1"),
      main: 8,
      sub: 0,
      create: 8,
      version: 1,
      lease: 0n,
    },
  ];
  const mvcc = restored(recs);
  assert.equal(mvcc.coldKeyCount, 2); // z and w
  mvcc.check();
  for (let rev = 1; rev <= 8; rev++) {
    assert.deepEqual(scan(mvcc, rev), expectedAt(rev, recs), `at ${rev}`);
  }
  assert.equal(mvcc.sizeBytes, expectedSize(recs));
  // Restoring in key order (a snapshot) reaches the same state.
  const bySnapshot = restored(
    [...recs].sort((a, b) => cmpText(a.key, b.key) || a.main - b.main),
  );
  bySnapshot.check();
  assert.equal(hashState(bySnapshot, 8), hashState(mvcc, 8));
});

// --- 2. cold and hot are the same state ------------------------------------

Deno.test("a restored store equals the same store forced hot, and another restore order", () => {
  const cold = restored();
  const hot = restoredHot();
  // Snapshot order: keys in order, each key's entries in a row.
  const byKey = [...RECS].sort((x, y) =>
    cmpText(x.key, y.key) || x.main - y.main || x.sub - y.sub
  );
  const snap = restored(byKey);
  assert.equal(snap.coldKeyCount, COLD_KEYS.length);
  for (const mvcc of [cold, hot, snap]) mvcc.check();

  for (const other of [hot, snap]) {
    assert.equal(other.keyCount, cold.keyCount);
    assert.equal(other.sizeBytes, cold.sizeBytes);
    assert.deepEqual(history(other), history(cold));
    for (const rev of REVS) {
      assert.equal(
        hashState(other, rev),
        hashState(cold, rev),
        `hash at ${rev}`,
      );
      assert.deepEqual(scan(other, rev), scan(cold, rev));
      assert.deepEqual(scan(other, rev, ALL, true), scan(cold, rev, ALL, true));
    }
    for (const compactAt of [3, 8, 10, 300]) {
      assert.equal(
        hashState(other, CURRENT, compactAt),
        hashState(cold, CURRENT, compactAt),
      );
    }
    const pageA = cold.keyPage(enc("m/0500"), false, 700).map((i) =>
      dec(i.key)
    );
    const pageB = other.keyPage(enc("m/0500"), false, 700).map((i) =>
      dec(i.key)
    );
    assert.deepEqual(pageA, pageB);
    assert.equal(pageA[0], "m/0501");
    assert.equal(pageA.length, 700);
  }
  // Reading and hashing did not warm the cold stores.
  assert.equal(cold.coldKeyCount, COLD_KEYS.length);
  assert.equal(snap.coldKeyCount, COLD_KEYS.length);
  assert.notEqual(hashState(cold, CURRENT), hashState(cold, CURRENT - 1));
});

// --- 3. writes over cold keys ----------------------------------------------

Deno.test("a put on a cold key continues its generation and reports prev", () => {
  const mvcc = restored();
  const hot = restoredHot();
  const cold = mvcc.coldKeyCount;
  for (const store of [mvcc, hot]) {
    const txn = store.beginWrite();
    const change = txn.put(enc("comp"), enc("c5"), 0n);
    assert.deepEqual(
      [change.entry.main, change.entry.sub, change.entry.version],
      [CURRENT + 1, 0, 5],
    );
    assert.equal(change.entry.createRevision, 3);
    assert.deepEqual(seen("comp", change.prev!), {
      key: "comp",
      value: enc("c4"),
      create: 3,
      mod: 9,
      sub: 0,
      version: 4,
      lease: 0n,
    });
    assert.equal(dec(change.key), "comp");
    // A lease moves off a cold key, and one goes onto another.
    const off = txn.put(enc("lease/x"), enc("lx2"), 0n);
    assert.equal(off.prev?.lease, LEASE_X);
    assert.equal(off.entry.lease, 0n);
    assert.equal(off.entry.version, 2);
    const on = txn.put(enc(manyKey(7)), enc("m7"), 42n);
    assert.equal(on.entry.lease, 42n);
    assert.equal(on.entry.createRevision, 12);
    assert.equal(on.entry.sub, 2);
    // The txn reads its own writes.
    assert.equal(
      store.keyIndex(enc("comp"))?.get(txn.readRevision)?.version,
      5,
    );
    assert.equal(txn.commit(), CURRENT + 1);
  }
  assert.equal(mvcc.coldKeyCount, cold - 3);
  mvcc.check();
  const comp = mvcc.keyIndex(enc("comp"))!;
  assert.equal(comp.entries.length, 2);
  assert.equal(comp.get(CURRENT)?.version, 4);
  assert.equal(comp.get(CURRENT + 1)?.version, 5);
  for (const rev of [...REVS, CURRENT + 1]) {
    assert.deepEqual(scan(mvcc, rev), scan(hot, rev));
    assert.equal(hashState(mvcc, rev), hashState(hot, rev));
  }
  assert.equal(mvcc.sizeBytes, hot.sizeBytes);
});

Deno.test("deleteRange over cold keys tombstones them all", () => {
  const mvcc = restored();
  const cold = mvcc.coldKeyCount;
  const txn = mvcc.beginWrite();
  const changes = txn.deleteRange({ start: enc("m/"), end: enc("m0") });
  assert.equal(changes.length, MANY);
  changes.forEach((change, i) => {
    assert.equal(dec(change.key), manyKey(i));
    assert.equal(change.entry.value, null);
    assert.deepEqual([change.entry.main, change.entry.sub], [CURRENT + 1, i]);
    assert.deepEqual(change.prev?.value, manyValue(i));
    assert.equal(change.prev?.lease, i % 100 === 0 ? LEASE_MANY : 0n);
    // The change holds the key's own index bytes.
    assert.equal(mvcc.keyIndex(change.key)?.key, change.key);
  });
  // A single-key delete of a cold key, in the same txn.
  const one = txn.deleteRange({ start: enc("big"), end: undefined });
  assert.equal(one.length, 1);
  assert.equal(one[0]!.entry.sub, MANY);
  assert.equal(one[0]!.prev?.value?.length, COLD_ITEM_BYTES_MAX + 904);
  // Nothing is left to delete in that range.
  assert.equal(txn.deleteRange({ start: enc("m/"), end: enc("m0") }).length, 0);
  assert.equal(txn.commit(), CURRENT + 1);
  assert.equal(mvcc.coldKeyCount, cold - MANY - 1);
  mvcc.check();
  const after = scan(mvcc, CURRENT + 1);
  assert.deepEqual(
    after.map((s) => s.key),
    expectedAt(CURRENT).map((s) => s.key).filter((k) =>
      !k.startsWith("m/") && k !== "big"
    ),
  );
  assert.deepEqual(scan(mvcc, CURRENT), expectedAt(CURRENT));
  // Re-creating a deleted key starts a new generation.
  const again = mvcc.beginWrite();
  const change = again.put(enc(manyKey(5)), enc("new"), 0n);
  assert.deepEqual(
    [change.entry.version, change.entry.createRevision, change.prev],
    [1, CURRENT + 2, undefined],
  );
  again.commit();
  mvcc.check();
});

Deno.test("abort of a txn that touched cold keys restores the state", () => {
  const mvcc = restored();
  const histBefore = history(mvcc);
  const hashBefore = hashState(mvcc, CURRENT);
  const sizeBefore = mvcc.sizeBytes;
  const keysBefore = mvcc.keyCount;
  const cold = mvcc.coldKeyCount;

  const txn = mvcc.beginWrite();
  assert.equal(txn.put(enc("a"), enc("zz"), 0n).entry.version, 2);
  txn.put(enc("brand-new"), enc("n"), 0n);
  assert.equal(
    txn.deleteRange({ start: enc("lease/"), end: enc("lease0") }).length,
    3,
  );
  assert.equal(txn.deleteRange({ start: enc("b"), end: undefined }).length, 1);
  assert.equal(
    txn.deleteRange({ start: enc(manyKey(10)), end: enc(manyKey(20)) }).length,
    10,
  );
  txn.put(enc(manyKey(12)), enc("back"), 0n); // deleted and put again
  assert.equal(mvcc.keyCount, keysBefore + 1);
  txn.abort();

  assert.equal(mvcc.currentRevision, CURRENT);
  assert.equal(mvcc.keyCount, keysBefore);
  assert.equal(mvcc.sizeBytes, sizeBefore);
  assert.equal(mvcc.keyIndex(enc("brand-new")), undefined);
  // Touched keys are no longer cold, but hold what they held.
  assert.equal(mvcc.coldKeyCount, cold - 1 - 3 - 1 - 10);
  mvcc.check();
  assert.deepEqual(history(mvcc), histBefore);
  assert.equal(hashState(mvcc, CURRENT), hashBefore);
  for (const rev of REVS) assert.deepEqual(scan(mvcc, rev), expectedAt(rev));

  // The next write takes the revision the aborted one did not.
  const next = mvcc.beginWrite();
  const change = next.put(enc("a"), enc("2"), 0n);
  assert.deepEqual(
    [change.entry.main, change.entry.version, change.entry.createRevision],
    [CURRENT + 1, 2, 2],
  );
  assert.equal(next.commit(), CURRENT + 1);
  mvcc.check();
});

// --- 4. compaction -----------------------------------------------------------

/** Some writes to hot and cold keys of a restored store. */
function writeSome(mvcc: MvccStore): void {
  for (let round = 0; round < 3; round++) {
    const txn = mvcc.beginWrite();
    txn.put(enc("two"), enc(`v${3 + round}`), 0n);
    txn.put(enc(manyKey(round)), enc(`w${round}`), 0n);
    if (round === 1) txn.deleteRange({ start: enc("tb"), end: undefined });
    txn.commit();
  }
}

Deno.test("compaction keeps cold keys readable and removes what it should", () => {
  const mvcc = restored();
  const hot = restoredHot();
  for (const store of [mvcc, hot]) writeSome(store);
  const cold = mvcc.coldKeyCount;
  assert.equal(cold, COLD_KEYS.length - 3);
  const rev = mvcc.currentRevision;
  const visible = scan(mvcc, rev);
  const keys = mvcc.keyCount;
  for (const store of [mvcc, hot]) {
    store.compact(rev);
    assert.equal(store.compacting, true);
    store.compactAll();
    assert.equal(store.compacting, false);
  }
  assert.equal(mvcc.coldKeyCount, cold);
  // "dead" and "tb" end in tombstones at or below the compaction.
  assert.equal(mvcc.keyCount, keys - 2);
  assert.equal(mvcc.keyIndex(enc("dead")), undefined);
  assert.equal(mvcc.keyIndex(enc("two"))?.entries.length, 1);
  mvcc.check();
  assert.deepEqual(scan(mvcc, rev), visible);
  assert.deepEqual(history(mvcc), history(hot));
  assert.equal(hashState(mvcc, rev), hashState(hot, rev));
  assert.equal(mvcc.sizeBytes, hot.sizeBytes);
  assert.throws(() => mvcc.resolveReadRevision(rev - 1, rev), CompactedError);
  // Cold keys survive into a write after the compaction.
  const txn = mvcc.beginWrite();
  const change = txn.put(enc("comp"), enc("c5"), 0n);
  assert.deepEqual([change.entry.version, change.entry.createRevision], [5, 3]);
  txn.commit();
  mvcc.check();
});

Deno.test("a stepped compaction walks over cold keys while they are written", () => {
  const mvcc = restored();
  const twin = restored();
  for (const store of [mvcc, twin]) writeSome(store);
  const atRev = mvcc.currentRevision;
  mvcc.compact(atRev);
  twin.compact(atRev);
  twin.compactAll();
  let steps = 0;
  let touched = 0;
  const writeBetween = (store: MvccStore, n: number) => {
    // Ahead of, at and behind the cursor: cold keys taken and written.
    const txn = store.beginWrite();
    txn.put(enc(manyKey((n * 37) % MANY)), enc(`s${n}`), 0n);
    if (n % 5 === 0) {
      txn.deleteRange({ start: enc(manyKey((n * 53) % MANY)), end: undefined });
    }
    txn.commit();
  };
  while (!mvcc.compactStep(7)) {
    steps++;
    if (steps % 10 === 0) writeBetween(mvcc, touched++);
    if (steps % 25 === 0) mvcc.check();
  }
  assert.ok(steps > 250, `${steps} steps`);
  for (let n = 0; n < touched; n++) writeBetween(twin, n);
  mvcc.check();
  twin.check();
  const rev = mvcc.currentRevision;
  assert.equal(twin.currentRevision, rev);
  assert.deepEqual(history(mvcc), history(twin));
  assert.equal(hashState(mvcc, rev), hashState(twin, rev));
  assert.deepEqual(scan(mvcc, atRev), scan(twin, atRev));
  assert.deepEqual(scan(mvcc, rev), scan(twin, rev));
});

Deno.test("the compaction a restore starts skips cold keys and reaches the same state", () => {
  const uncompacted = restored();
  const mvcc = restored(RECS, 10);
  assert.equal(mvcc.compactRevision, 10);
  assert.equal(mvcc.compacting, true);
  assert.equal(mvcc.coldKeyCount, COLD_KEYS.length);
  mvcc.compactAll();
  assert.equal(mvcc.compacting, false);
  assert.equal(mvcc.coldKeyCount, COLD_KEYS.length);
  // "dead" (put@3, tomb@10) is gone; "tb" and "two" keep their put.
  assert.equal(mvcc.keyCount, ALL_KEYS.length - 1);
  assert.deepEqual(
    mvcc.keyIndex(enc("tb"))?.entries.map((e) => e.main),
    [7],
  );
  assert.deepEqual(
    mvcc.keyIndex(enc("two"))?.entries.map((e) => e.main),
    [8],
  );
  mvcc.check();
  for (const rev of [10, 11, 200, CURRENT]) {
    assert.deepEqual(scan(mvcc, rev), expectedAt(rev));
    assert.equal(hashState(mvcc, rev), hashState(uncompacted, rev, 10));
  }
  assert.throws(() => mvcc.resolveReadRevision(9, CURRENT), CompactedError);
});

// --- 5. forEachLeasedKey ---------------------------------------------------

Deno.test("forEachLeasedKey visits exactly the keys whose visible put has a lease, with their own index", () => {
  const mvcc = restored();
  const cold = mvcc.coldKeyCount;
  const expected = expectedAt(CURRENT).filter((s) => s.lease !== 0n);
  // Cold ones (3 + 20) and the hot "two"; not "dead" nor "unl".
  assert.equal(expected.length, 24);
  const visited = new Map<string, { index: KeyIndex; entry: RevisionEntry }>();
  mvcc.forEachLeasedKey((index, entry) => {
    const key = dec(index.key);
    assert.equal(visited.has(key), false, `${key} visited twice`);
    visited.set(key, { index, entry });
  });
  assert.deepEqual(
    [...visited.keys()].sort(cmpText),
    expected.map((s) => s.key),
  );
  for (const s of expected) {
    const { index, entry } = visited.get(s.key)!;
    assert.deepEqual(seen(s.key, entry), s);
    assert.equal(entry.lease, s.lease);
    assert.equal(mvcc.keyIndex(enc(s.key)), index);
  }
  assert.equal(mvcc.coldKeyCount, cold - 23);
  // A second pass hands out the same objects.
  mvcc.forEachLeasedKey((index) => {
    assert.equal(visited.get(dec(index.key))?.index, index);
  });
  mvcc.check();
  assert.deepEqual(scan(mvcc, CURRENT), expectedAt(CURRENT));
  // After the lease leaves a key by a write, it is no longer visited.
  const txn = mvcc.beginWrite();
  txn.put(enc("lease/x"), enc("free"), 0n);
  txn.deleteRange({ start: enc(manyKey(100)), end: undefined });
  txn.commit();
  let count = 0;
  mvcc.forEachLeasedKey((index) => {
    assert.notEqual(dec(index.key), "lease/x");
    assert.notEqual(dec(index.key), manyKey(100));
    count++;
  });
  assert.equal(count, 22);
});

// --- a zero-length item ----------------------------------------------------

Deno.test({
  name:
    "an empty key with an empty value restores (ColdEntries.add, zero-length item)",
  // Was a bug: an item of 0 bytes never opened a chunk while none was open
  // (or after `take` dropped the current one), so it pointed at no chunk.
  fn() {
    const mvcc = new MvccStore();
    mvcc.restoreRecorded({
      bytes: new Uint8Array(0),
      keyStart: 0,
      keyLength: 0,
      valueStart: 0,
      valueLength: 0,
      main: 2,
      sub: 0,
      createRevision: 2,
      version: 1,
      lease: 0n,
      adoptedChunk: -1,
    });
    mvcc.restoreRevisions(2, -1);
    mvcc.check();
    assert.deepEqual(scan(mvcc, 2).map((s) => s.value), [new Uint8Array(0)]);
  },
});

// --- 6. and 7. the durable store -------------------------------------------

function manualClock(startMs = Date.now()) {
  let now = startMs;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

const LEASES = [101n, 202n, 303n];

interface Dump {
  revision: number;
  hash: { hash: number; revision: number; compactRevision: number };
  all: unknown[];
  count: number;
  prefixCounts: number[];
  history: unknown[][];
  leases: bigint[];
  leaseKeys: string[][];
}

function kvRows(
  kvs: {
    keyText: string;
    value: Uint8Array;
    createRevision: number;
    modRevision: number;
    version: number;
    lease: bigint;
  }[],
): unknown[] {
  return kvs.map((kv) => [
    kv.keyText,
    kv.value.length > 64
      ? `${kv.value.length}:${dec(kv.value.subarray(0, 16))}`
      : dec(kv.value),
    kv.createRevision,
    kv.modRevision,
    kv.version,
    kv.lease,
  ]);
}

/** Everything the public API tells about the state (reads do not promote). */
async function dump(db: Store, historyRevs: number[]): Promise<Dump> {
  const all = await db.get("", { prefix: true });
  const prefixCounts: number[] = [];
  for (const prefix of ["k/0", "k/1", "k/", "t/", "z"]) {
    prefixCounts.push(
      (await db.get(prefix, { prefix: true, countOnly: true })).count,
    );
  }
  const history: unknown[][] = [];
  for (const revision of historyRevs) {
    history.push(kvRows((await db.get("k/1", { prefix: true, revision })).kvs));
  }
  const leaseKeys: string[][] = [];
  for (const id of LEASES) {
    const ttl = await db.timeToLive(id, { keys: true });
    leaseKeys.push([String(ttl.ttl), ...ttl.keys.map(dec)]);
  }
  return {
    revision: db.revision,
    hash: db.hash(),
    all: kvRows(all.kvs),
    count: all.count,
    prefixCounts,
    history,
    leases: (await db.leases()).leases.map((l) => l.id).sort(),
    leaseKeys,
  };
}

/** Single-key gets of `keys` (these do promote cold keys). */
async function pointReads(db: Store, keys: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const key of keys) out.push(kvRows((await db.get(key)).kvs));
  return out;
}

const storeKey = (i: number) => `k/${String(i).padStart(4, "0")}`;
const STORE_KEYS = 2000;

/** The lease `fill` first puts key `i` with. */
const leaseOf = (i: number): bigint =>
  i % 10 === 3
    ? LEASES[Math.floor(i / 10) % 2]!
    : i % 13 === 4
    ? LEASES[2]!
    : 0n;

/** Fills a store; every op goes to both stores. */
async function fill(stores: Store[]): Promise<void> {
  const each = (f: (db: Store) => Promise<unknown>) =>
    Promise.all(stores.map(f));
  for (const id of LEASES) await each((db) => db.grant(3_600, { id }));
  for (let i = 0; i < STORE_KEYS; i++) {
    const key = storeKey(i);
    const value = i % 400 === 1 ? "L".repeat(5000) + i : `v${i}`;
    const lease = leaseOf(i);
    await each((db) => db.put(key, value, { lease }));
  }
  for (let i = 0; i < STORE_KEYS; i += 7) {
    await each((db) => db.put(storeKey(i), `w${i}`));
    await each((db) => db.put(storeKey(i), `x${i}`));
  }
  // Keys leased by the third lease and re-put without it leave it.
  for (let i = 4; i < STORE_KEYS; i += 26) {
    await each((db) => db.put(storeKey(i), `u${i}`));
  }
  for (let i = 5; i < STORE_KEYS; i += 11) {
    await each((db) => db.delete(storeKey(i)));
  }
  // Several keys in one revision (sub revisions > 0).
  await each((db) =>
    db.txn({
      compare: [],
      success: [0, 1, 2, 3, 4].map((j) => ({
        put: { key: `t/${j}`, value: `t${j}`, lease: j === 2 ? LEASES[0] : 0n },
      })),
      failure: [],
    })
  );
  await each((db) => db.put("z", "last"));
}

/** Writes after a reopen, mostly over keys that were cold; to both stores. */
async function writeAfterReopen(stores: Store[]): Promise<unknown[]> {
  const results: unknown[] = [];
  const each = async (f: (db: Store) => Promise<unknown>) => {
    const [a, b] = await Promise.all(stores.map(f));
    assert.deepEqual(a, b);
    results.push(a);
  };
  const strip = (r: { header: { revision: number } }) => ({
    ...r,
    header: r.header.revision,
  });
  // Put on single-put keys: versions continue; prev is reported.
  for (const i of [1, 2, 3, 1999]) {
    await each(async (db) => {
      const r = await db.put(storeKey(i), `after${i}`, { prevKv: true });
      return { ...strip(r), prevKv: kvRows(r.prevKv ? [r.prevKv] : []) };
    });
  }
  await each(async (db) => kvRows((await db.get(storeKey(2))).kvs));
  // ignoreValue keeps the cold value; a lease goes onto a cold key.
  await each(async (db) =>
    strip(
      await db.put(storeKey(8), "", { ignoreValue: true, lease: LEASES[2] }),
    )
  );
  // Deletes of ranges full of cold keys, and of one cold key.
  await each(async (db) => {
    const r = await db.delete("k/10", { prefix: true, prevKv: true });
    return {
      header: r.header.revision,
      deleted: r.deleted,
      prev: kvRows(r.prevKvs),
    };
  });
  await each(async (db) => (await db.delete(storeKey(1500))).deleted);
  // A txn comparing and writing cold keys.
  await each(async (db) => {
    const r = await db.txn({
      compare: [
        { key: storeKey(1600), target: "version", result: "==", value: 1 },
        { key: storeKey(1601), target: "create", result: ">", value: 1 },
      ],
      success: [
        { put: { key: storeKey(1600), value: "txn", prevKv: true } },
        { deleteRange: { key: storeKey(1602), prevKv: true } },
        { range: { key: storeKey(1603) } },
      ],
      failure: [],
    });
    return { succeeded: r.succeeded, revision: r.header.revision };
  });
  // Revoking a lease deletes its (formerly cold) keys in one revision.
  await each(async (db) => {
    const before = await db.timeToLive(LEASES[1]!, { keys: true });
    const r = await db.revoke(LEASES[1]!);
    const left = await db.get("k/", { prefix: true, countOnly: true });
    for (const key of before.keys) {
      assert.equal((await db.get(key)).count, 0, dec(key));
    }
    return {
      revoked: before.keys.map(dec),
      revision: r.header.revision,
      left: left.count,
    };
  });
  assert.ok(
    (results[results.length - 1] as { revoked: string[] }).revoked.length > 50,
  );
  return results;
}

/** A data dir's recovered engine, looked at without a Store (then released). */
async function inspect(
  dir: string,
  look: (mvcc: MvccStore) => void,
): Promise<void> {
  const opened = await openDataDir(dir, { durability: "none" });
  try {
    look(opened.mvcc);
  } finally {
    await opened.journal.close();
  }
}

/**
 * Test 6, over one WAL segment (replayed in-thread) or many small ones
 * (replayed by the worker, whose chunks the cold keys adopt).
 */
async function reopenOverWal(segmentBytes?: number): Promise<void> {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    const options = {
      durability: "none" as const,
      clock: clock.now,
      segmentBytes,
    };
    const twin = await open(undefined, options);
    let db = await open(dir, options);
    try {
      await fill([db, twin]);
      const revs = [2, 500, 1000, 2100, db.revision];
      const before = await dump(db, revs);
      assert.deepEqual(await dump(twin, revs), before);
      assert.equal(before.count, STORE_KEYS - 182 + 6);
      const sample = Array.from({ length: 120 }, (_, i) => storeKey(i * 17));
      const pointsBefore = await pointReads(db, sample);
      db.check();
      await db.close();

      // Recovery keeps single-put keys cold: those written once.
      let singlePut = 0;
      for (let i = 0; i < STORE_KEYS; i++) {
        if (i % 7 !== 0 && !(i % 26 === 4) && i % 11 !== 5) singlePut++;
      }
      singlePut += 6; // t/0..t/4 (t/2 leased) and "z"
      await inspect(dir, (mvcc) => {
        assert.equal(mvcc.coldKeyCount, singlePut);
        mvcc.check();
        // A cold key with a lease, found cold and then taken.
        const cold = mvcc.coldKeyCount;
        const index = mvcc.keyIndex(enc(storeKey(3)))!;
        assert.equal(index.get(mvcc.currentRevision)?.lease, leaseOf(3));
        assert.equal(leaseOf(3), LEASES[0]);
        assert.equal(mvcc.coldKeyCount, cold - 1);
      });

      db = await open(dir, options);
      assert.equal(db.recovery?.snapshot, undefined);
      db.check();
      assert.deepEqual(await dump(db, revs), before);
      assert.deepEqual(await pointReads(db, sample), pointsBefore);
      assert.deepEqual(db.hash(before.revision), before.hash);

      const results = await writeAfterReopen([db, twin]);
      assert.ok(results.length > 5);
      db.check();
      const revsAfter = [...revs, db.revision - 1, db.revision];
      const after = await dump(db, revsAfter);
      assert.deepEqual(after, await dump(twin, revsAfter));
      assert.deepEqual(db.hash(before.revision), before.hash);
      assert.equal(after.leases.includes(LEASES[1]!), false);
      const allKeys = Array.from({ length: STORE_KEYS }, (_, i) => storeKey(i));
      assert.deepEqual(
        await pointReads(db, allKeys),
        await pointReads(twin, allKeys),
      );
      await db.close();

      // Once more: the writes after the first reopen came back too.
      db = await open(dir, options);
      db.check();
      assert.deepEqual(await dump(db, revsAfter), after);
      assert.deepEqual(
        await pointReads(db, allKeys),
        await pointReads(twin, allKeys),
      );
      await db.revoke(LEASES[0]!);
      await twin.revoke(LEASES[0]!);
      assert.deepEqual(await dump(db, revsAfter), await dump(twin, revsAfter));
      db.check();
    } finally {
      await db.close();
      await twin.close();
    }
    if (segmentBytes !== undefined) {
      const segments = [...Deno.readDirSync(`${dir}/wal`)]
        .filter((e) => e.name.endsWith(".wal"));
      assert.ok(segments.length > 1, `${segments.length} segments`);
    }
  });
}

Deno.test("a durable store reopens equal over its WAL, with cold keys, and goes on as a never-closed one", async () => {
  await reopenOverWal();
});

Deno.test("the same over many WAL segments (the replay worker's path)", async () => {
  await reopenOverWal(64 * 1024);
});

Deno.test("a durable store reopens equal from a snapshot plus WAL, cold keys with compacted history included", async () => {
  await withTempDir(async (dir) => {
    const clock = manualClock();
    const options = {
      durability: "none" as const,
      clock: clock.now,
      snapshotCount: 700,
      segmentBytes: 64 * 1024,
    };
    const twin = await open(undefined, options);
    let db = await open(dir, options);
    try {
      await fill([db, twin]);
      // Compact so that overwritten keys keep a single put (version 3).
      const compactAt = db.revision - 10;
      await db.compact(compactAt, { physical: true });
      await twin.compact(compactAt, { physical: true });
      await db.defrag(); // a snapshot now
      // More WAL after the snapshot: over keys it holds, and new ones.
      for (let i = 0; i < 50; i++) {
        await Promise.all(
          [db, twin].map(async (s) => {
            await s.put(storeKey(i * 40 + 1), `post${i}`);
            if (i % 5 === 0) await s.delete(storeKey(i * 40 + 2));
            await s.put(`n/${i}`, `new${i}`, {
              lease: i % 10 === 0 ? LEASES[2] : 0n,
            });
          }),
        );
      }
      const revs = [compactAt, compactAt + 5, db.revision - 30, db.revision];
      const before = await dump(db, revs);
      assert.deepEqual(await dump(twin, revs), before);
      assert.equal(before.hash.compactRevision, compactAt);
      db.check();
      await db.close();

      await inspect(dir, (mvcc) => {
        assert.ok(mvcc.coldKeyCount > 1000, `${mvcc.coldKeyCount} cold`);
        mvcc.check();
        // k/0007 was put 3 times before the compaction: one kept put.
        const cold = mvcc.coldKeyCount;
        const index = mvcc.keyIndex(enc(storeKey(7)))!;
        assert.equal(mvcc.coldKeyCount, cold - 1);
        assert.equal(index.entries.length, 1);
        const entry = index.entries[0]!;
        assert.equal(entry.version, 3);
        assert.ok(entry.createRevision < entry.main);
      });

      db = await open(dir, options);
      assert.ok(db.recovery?.snapshot, "recovered from a snapshot");
      assert.ok((db.recovery?.replayedRecords ?? 0) > 50);
      db.check();
      assert.deepEqual(await dump(db, revs), before);
      assert.throws(() =>
        storeInternals.getSync(db, "k/0007", { revision: compactAt - 1 })
      );
      // A put continues the compacted key's generation.
      const [a, b] = await Promise.all(
        [db, twin].map((s) => s.put(storeKey(7), "again", { prevKv: true })),
      );
      assert.deepEqual(kvRows([a!.prevKv!]), kvRows([b!.prevKv!]));
      const kv = (await db.get(storeKey(7))).kvs[0]!;
      assert.equal(kv.version, 4);
      assert.equal(kv.createRevision, a!.prevKv!.createRevision);
      await writeAfterReopen([db, twin]);
      db.check();
      const revsAfter = [...revs, db.revision];
      const after = await dump(db, revsAfter);
      assert.deepEqual(after, await dump(twin, revsAfter));
      assert.deepEqual(db.hash(before.revision), before.hash);
      await db.close();

      db = await open(dir, options);
      db.check();
      assert.deepEqual(await dump(db, revsAfter), after);
      const allKeys = Array.from({ length: STORE_KEYS }, (_, i) => storeKey(i));
      assert.deepEqual(
        await pointReads(db, allKeys),
        await pointReads(twin, allKeys),
      );
      db.check();
    } finally {
      await db.close();
      await twin.close();
    }
  });
});
