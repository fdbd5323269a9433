import assert from "node:assert/strict";
import { BTreeIndex } from "../src/wasm/btree.ts";
import { prng, seedFromEnv } from "./_prng.ts";

const enc = new TextEncoder();
const k = (s: string) => enc.encode(s);
const bytes = (...b: number[]) => new Uint8Array(b);
const EMPTY = new Uint8Array(0);

/** Latin-1 string of the bytes: JS string order is then bytes.Compare order. */
function latin1(key: Uint8Array): string {
  let s = "";
  for (const b of key) s += String.fromCharCode(b);
  return s;
}
function fromLatin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

Deno.test("BTreeIndex starts empty and answers misses", () => {
  const t = new BTreeIndex();
  assert.equal(t.size, 0);
  assert.equal(t.get(k("a")), -1);
  assert.equal(t.get(EMPTY), -1);
  assert.equal(t.delete(k("a")), -1);
  assert.equal(t.scan(EMPTY, true, null, 10).length, 0);
  assert.equal(t.scanReverse(EMPTY, null, false, 10).length, 0);
  t.check();
});

Deno.test("BTreeIndex orders keys byte-wise, shorter prefix first, 0x00 and 0xff included", () => {
  const t = new BTreeIndex();
  const keys = [
    bytes(0xff),
    bytes(0xff, 0xff),
    bytes(0x00),
    EMPTY,
    bytes(0x00, 0x00),
    k("a"),
    k("a\x00"),
    k("ab"),
    bytes(0x61, 0xff),
    bytes(0x80),
    bytes(0x7f, 0xff, 0xff, 0xff, 0xff),
  ];
  keys.forEach((key, i) => assert.equal(t.set(key, i), -1));
  assert.equal(t.size, keys.length);
  const order = keys.map((key, i) => [latin1(key), i] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, i]) => i);
  assert.deepEqual([...t.scan(EMPTY, true, null, 100)], order);
  assert.deepEqual(
    [...t.scanReverse(EMPTY, null, false, 100)],
    [...order].reverse(),
  );
  keys.forEach((key, i) => assert.equal(t.get(key), i));
  assert.equal(t.get(bytes(0x00, 0x00, 0x00)), -1);
  assert.equal(t.get(k("a\x00\x00")), -1);
  t.check();
});

Deno.test("BTreeIndex stores the empty key and keys that are prefixes of each other", () => {
  const t = new BTreeIndex();
  let prefix = "";
  for (let i = 0; i < 300; i++) {
    t.set(k(prefix), i);
    prefix += String.fromCharCode(97 + (i % 3));
  }
  t.check();
  prefix = "";
  for (let i = 0; i < 300; i++) {
    assert.equal(t.get(k(prefix)), i);
    prefix += String.fromCharCode(97 + (i % 3));
  }
  assert.deepEqual([...t.scan(EMPTY, true, null, 1000)], [
    ...Array(300).keys(),
  ]);
  assert.equal(t.get(EMPTY), 0);
  assert.equal(t.delete(EMPTY), 0);
  assert.equal(t.get(EMPTY), -1);
  t.check();
});

Deno.test("BTreeIndex handles long keys larger than its scratch region", () => {
  const t = new BTreeIndex();
  const sizes = [1000, 1024, 1025, 5000, 70_000, 1_600_000];
  const keys = sizes.map((n, i) => {
    const key = new Uint8Array(n).fill(0x2f);
    key[n - 1] = i;
    return key;
  });
  keys.forEach((key, i) => t.set(key, i));
  keys.forEach((key, i) => assert.equal(t.get(key), i));
  // Same prefix, differing only in the last byte or in length.
  const probe = new Uint8Array(5000).fill(0x2f);
  assert.equal(t.get(probe), -1);
  t.check();
  assert.deepEqual(
    [...t.scan(keys[0]!, false, keys[5]!, 10)].sort(),
    [1, 2, 3, 4],
  );
  keys.forEach((key, i) => assert.equal(t.delete(key), i));
  assert.equal(t.size, 0);
  t.check();
});

Deno.test("BTreeIndex replaces a key's handle and returns the previous one", () => {
  const t = new BTreeIndex();
  assert.equal(t.set(k("x"), 1), -1);
  assert.equal(t.set(k("x"), 2), 1);
  assert.equal(t.set(k("x"), 0x7fffffff), 2);
  assert.equal(t.get(k("x")), 0x7fffffff);
  assert.equal(t.size, 1);
  assert.throws(() => t.set(k("x"), -1), RangeError);
  assert.throws(() => t.set(k("x"), 0x80000000), RangeError);
  assert.throws(() => t.set(k("x"), 1.5), RangeError);
  t.check();
});

Deno.test("BTreeIndex deletes down to empty and frees the nodes", () => {
  const t = new BTreeIndex();
  const n = 20_000;
  for (let i = 0; i < n; i++) t.set(k(`key/${i}`), i);
  t.check();
  for (let i = 0; i < n; i += 2) assert.equal(t.delete(k(`key/${i}`)), i);
  t.check();
  for (let i = 1; i < n; i += 2) assert.equal(t.delete(k(`key/${i}`)), i);
  assert.equal(t.size, 0);
  t.check();
  assert.equal(t.scan(EMPTY, true, null, 10).length, 0);
  assert.equal(t.delete(k("key/1")), -1);
});

Deno.test("BTreeIndex reuses freed memory after deleting everything", () => {
  const t = new BTreeIndex();
  const base = t.memoryStats().liveBytes;
  const n = 30_000;
  const key = (i: number) => k(`/registry/pods/default/pod-${(i * 7919) % n}`);
  for (let i = 0; i < n; i++) t.set(key(i), i);
  const full = t.memoryStats();
  for (let i = 0; i < n; i++) t.delete(key(i));
  const emptied = t.memoryStats();
  assert.ok(
    emptied.liveBytes - base < 4096,
    `live bytes ${emptied.liveBytes} not back near baseline ${base}`,
  );
  for (let i = 0; i < n; i++) t.set(key(i), i);
  const again = t.memoryStats();
  t.check();
  assert.equal(again.memoryBytes, full.memoryBytes, "memory grew on re-insert");
  assert.ok(
    Math.abs(again.liveBytes - full.liveBytes) < full.liveBytes * 0.1,
    `live ${again.liveBytes} vs first fill ${full.liveBytes}`,
  );
});

Deno.test("BTreeIndex scans with every bound combination in both directions", () => {
  const t = new BTreeIndex();
  // Keys "k00".."k99" with handle = number.
  const name = (i: number) => `k${String(i).padStart(2, "0")}`;
  for (let i = 99; i >= 0; i--) t.set(k(name(i)), i);
  const range = (a: number, b: number) => {
    const out: number[] = [];
    for (let i = a; i < b; i++) out.push(i);
    return out;
  };
  const fwd = (s: string, incl: boolean, e: string | null, max = 1000) => [
    ...t.scan(k(s), incl, e === null ? null : k(e), max),
  ];
  const rev = (l: string, u: string | null, incl: boolean, max = 1000) => [
    ...t.scanReverse(k(l), u === null ? null : k(u), incl, max),
  ];
  assert.deepEqual(fwd("", true, null), range(0, 100));
  assert.deepEqual(fwd("k10", true, "k20"), range(10, 20));
  assert.deepEqual(fwd("k10", false, "k20"), range(11, 20));
  assert.deepEqual(fwd("k10", false, null), range(11, 100));
  assert.deepEqual(fwd("k1", true, "k2"), range(10, 20)); // prefix range
  assert.deepEqual(fwd("k1", false, "k2"), range(10, 20)); // "k1" absent
  assert.deepEqual(fwd("k10", true, "k10"), []);
  assert.deepEqual(fwd("k20", true, "k10"), []);
  assert.deepEqual(fwd("k99", false, null), []);
  assert.deepEqual(fwd("l", true, null), []);
  assert.deepEqual(fwd("k10", true, "k20", 3), [10, 11, 12]);
  assert.deepEqual(fwd("k10", true, null, 0), []);
  assert.deepEqual(rev("", null, false), range(0, 100).reverse());
  assert.deepEqual(rev("", null, true), range(0, 100).reverse());
  assert.deepEqual(rev("k10", "k20", false), range(10, 20).reverse());
  assert.deepEqual(rev("k10", "k20", true), range(10, 21).reverse());
  assert.deepEqual(rev("k1", "k2", true), range(10, 20).reverse());
  assert.deepEqual(rev("k10", "k10", true), [10]);
  assert.deepEqual(rev("k10", "k10", false), []);
  assert.deepEqual(rev("k20", "k10", true), []);
  assert.deepEqual(rev("", "k00", false), []);
  assert.deepEqual(rev("", "k00", true), [0]);
  assert.deepEqual(rev("l", null, false), []);
  assert.deepEqual(rev("", "k50", false, 3), [49, 48, 47]);
  assert.deepEqual(rev("k95", null, false, 100), [99, 98, 97, 96, 95]);
  assert.throws(() => t.scan(EMPTY, true, null, -1), RangeError);
  assert.throws(() => t.scan(EMPTY, true, null, 1.5), RangeError);
  assert.equal(t.scan(EMPTY, true, null, Infinity).length, 100);
});

Deno.test("BTreeIndex pages through a large range in both directions", () => {
  const t = new BTreeIndex();
  const n = 50_000;
  const key = (i: number) => k(`/p/${String(i).padStart(6, "0")}`);
  for (let i = 0; i < n; i++) t.set(key((i * 48271) % n), (i * 48271) % n);
  t.check();
  const page = 777;
  let seen = 0;
  let start = key(0);
  let incl = true;
  while (true) {
    const got = t.scan(start, incl, key(n - 100), page);
    for (let j = 0; j < got.length; j++) assert.equal(got[j], seen + j);
    seen += got.length;
    if (got.length < page) break;
    start = key(got[got.length - 1]!);
    incl = false;
  }
  assert.equal(seen, n - 100);
  let next = n;
  let upper: Uint8Array | null = null;
  while (true) {
    const got = t.scanReverse(key(100), upper, false, page);
    for (let j = 0; j < got.length; j++) assert.equal(got[j], next - 1 - j);
    next -= got.length;
    if (got.length < page) break;
    upper = key(got[got.length - 1]!);
  }
  assert.equal(next, 100);
});

/** Random keys over a small alphabet (with 0x00/0xff), so that prefixes,
 * equal heads and long shared prefixes (> the node prefix capacity) occur. */
function keyGen(rand: () => number): () => Uint8Array {
  const alphabet = [0x00, 0x01, 0x2f, 0x61, 0x62, 0x7f, 0x80, 0xfe, 0xff];
  const longPrefix = new Uint8Array(60).fill(0x61);
  return () => {
    const r = rand();
    const len = Math.floor(rand() * 7);
    const tail = new Uint8Array(len);
    for (let i = 0; i < len; i++) {
      tail[i] = alphabet[Math.floor(rand() * alphabet.length)]!;
    }
    if (r < 0.6) return tail;
    // Shared long prefixes, cut at varying lengths.
    const cut = Math.floor(rand() * (longPrefix.length + 1));
    const out = new Uint8Array(cut + len);
    out.set(longPrefix.subarray(0, cut));
    out.set(tail, cut);
    return out;
  };
}

class Model {
  keys: string[] = [];
  map = new Map<string, number>();
  lowerBound(s: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.keys[mid]! < s) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  set(s: string, h: number): number {
    const old = this.map.get(s);
    this.map.set(s, h);
    if (old !== undefined) return old;
    this.keys.splice(this.lowerBound(s), 0, s);
    return -1;
  }
  delete(s: string): number {
    const old = this.map.get(s);
    if (old === undefined) return -1;
    this.map.delete(s);
    this.keys.splice(this.lowerBound(s), 1);
    return old;
  }
  scan(
    start: string,
    incl: boolean,
    end: string | null,
    max: number,
  ): number[] {
    const out: number[] = [];
    let i = this.lowerBound(start);
    if (!incl && this.keys[i] === start) i++;
    for (; i < this.keys.length && out.length < max; i++) {
      const key = this.keys[i]!;
      if (end !== null && key >= end) break;
      out.push(this.map.get(key)!);
    }
    return out;
  }
  scanReverse(
    lower: string,
    upper: string | null,
    incl: boolean,
    max: number,
  ): number[] {
    const out: number[] = [];
    let i = upper === null ? this.keys.length : this.lowerBound(upper);
    if (upper !== null && incl && this.keys[i] === upper) i++;
    for (i--; i >= 0 && out.length < max; i--) {
      const key = this.keys[i]!;
      if (key < lower) break;
      out.push(this.map.get(key)!);
    }
    return out;
  }
}

Deno.test("BTreeIndex agrees with a sorted model over random operations", () => {
  const seed = seedFromEnv("wasm btree random test");
  const rand = prng(seed);
  const nextKey = keyGen(rand);
  const t = new BTreeIndex();
  const m = new Model();
  const phases = [
    { ops: 25_000, setP: 0.8, delP: 0.05 }, // grow to several levels
    { ops: 15_000, setP: 0.45, delP: 0.45 }, // churn
    { ops: 25_000, setP: 0.05, delP: 0.8 }, // shrink: merges and borrows
  ];
  let op = 0;
  const present = () => m.keys[Math.floor(rand() * m.keys.length)];
  for (const phase of phases) {
    for (let i = 0; i < phase.ops; i++, op++) {
      const r = rand();
      const ctx = `op ${op}, seed ${seed}`;
      if (r < phase.setP) {
        const key = nextKey();
        const h = Math.floor(rand() * 0x7fffffff);
        assert.equal(t.set(key, h), m.set(latin1(key), h), `set ${ctx}`);
      } else if (r < phase.setP + phase.delP) {
        const s = rand() < 0.7 && m.keys.length > 0
          ? present()!
          : latin1(nextKey());
        assert.equal(t.delete(fromLatin1(s)), m.delete(s), `delete ${ctx}`);
      } else {
        const a = latin1(nextKey());
        const b = rand() < 0.2 ? null : latin1(nextKey());
        const incl = rand() < 0.5;
        const max = rand() < 0.1 ? 0 : Math.floor(rand() * 300);
        const choice = rand();
        if (choice < 0.3) {
          assert.equal(t.get(fromLatin1(a)), m.map.get(a) ?? -1, `get ${ctx}`);
        } else if (choice < 0.65) {
          assert.deepEqual(
            [...t.scan(
              fromLatin1(a),
              incl,
              b === null ? null : fromLatin1(b),
              max,
            )],
            m.scan(a, incl, b, max),
            `scan ${ctx}`,
          );
        } else {
          assert.deepEqual(
            [...t.scanReverse(
              fromLatin1(a),
              b === null ? null : fromLatin1(b),
              incl,
              max,
            )],
            m.scanReverse(a, b, incl, max),
            `scanReverse ${ctx}`,
          );
        }
      }
      if (op % 2500 === 0) {
        t.check();
        assert.equal(t.size, m.keys.length, `size ${ctx}`);
      }
    }
    t.check();
    assert.equal(t.size, m.keys.length);
  }
  // Drain and compare the full order once more on the way.
  assert.deepEqual(
    [...t.scan(EMPTY, true, null, Infinity)],
    m.scan("", true, null, Infinity),
  );
  for (const s of [...m.keys]) {
    assert.equal(t.delete(fromLatin1(s)), m.delete(s));
  }
  assert.equal(t.size, 0);
  t.check();
});

Deno.test("BTreeIndex survives many inserts in ascending and descending order", () => {
  for (const dir of [1, -1]) {
    const t = new BTreeIndex();
    const n = 40_000;
    for (let i = 0; i < n; i++) {
      const v = dir > 0 ? i : n - 1 - i;
      t.set(k(`r/${String(v).padStart(8, "0")}`), v);
    }
    t.check();
    assert.equal(t.size, n);
    const all = t.scan(EMPTY, true, null, Infinity);
    for (let i = 0; i < n; i++) assert.equal(all[i], i);
    for (let i = 0; i < n; i++) {
      assert.equal(t.delete(k(`r/${String(i).padStart(8, "0")}`)), i);
      if (i % 9999 === 0) t.check();
    }
    t.check();
  }
});

Deno.test("BTreeIndex instances are independent", () => {
  const a = new BTreeIndex();
  const b = new BTreeIndex();
  a.set(k("x"), 1);
  assert.equal(b.get(k("x")), -1);
  assert.equal(b.size, 0);
  assert.throws(() => a.get("x" as unknown as Uint8Array), TypeError);
});

Deno.test("BTreeIndex getOrSet inserts a missing key and leaves a present one alone", () => {
  const index = new BTreeIndex();
  assert.equal(index.getOrSet(k("b"), 2), -1);
  assert.equal(index.getOrSet(k("b"), 9), 2);
  assert.equal(index.get(k("b")), 2);
  // Many keys, ascending then interleaved, as a writer finding or creating keys.
  for (let i = 0; i < 5000; i++) {
    assert.equal(index.getOrSet(k(`k${String(i).padStart(5, "0")}`), i), -1);
  }
  for (let i = 0; i < 5000; i += 7) {
    assert.equal(index.getOrSet(k(`k${String(i).padStart(5, "0")}`), 1), i);
  }
  assert.equal(index.size, 5001);
  index.check();
});
