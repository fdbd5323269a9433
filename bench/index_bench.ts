/**
 * Index benchmark: the wasm B+tree (`BTreeIndex`) against the best JS
 * alternatives, at 1,000,000 random 16-byte keys.
 *
 * ```sh
 * deno bench -A bench/index_bench.ts
 * ```
 *
 * Each group has a baseline (the wasm tree), so `deno bench` prints the ratio
 * of each JS alternative to it. The wasm side always pays the boundary: keys
 * go in as `Uint8Array`s (copied into wasm memory), handles come out as a
 * `Uint32Array` view. The JS alternatives get the key as a ready-made latin-1
 * string (one char per byte, so string order = byte order) — their fastest
 * form, with no conversion cost charged to them.
 *
 * Setup (built once at module load, timed and printed): the three structures
 * with the same 1M keys in random order. Memory per key is printed too (wasm:
 * allocator live bytes; JS: V8 heap growth while building, which includes the
 * key strings — run with `--v8-flags=--expose-gc` for steadier figures).
 *
 * @module
 */

// A bench-only comparison, by full specifier rather than in deno.json's
// imports: only this bench fetches it.
// deno-lint-ignore no-import-prefix
import * as sortedBtree from "npm:sorted-btree@2.1.0";
import { BTreeIndex } from "../src/wasm/btree.ts";
import { sized } from "./bench_mode.ts";

/** Keys in each structure. */
const KEY_COUNT = sized(1_000_000, 20_000);
/** Bytes per key. */
const KEY_BYTES = 16;
/** Handles per range scan. */
const SCAN_COUNT = 100;
/** Fresh keys cycled through by the insert benchmark. */
const FRESH_COUNT = sized(100_000, 5_000);
/** Distinct probe keys cycled through by lookups and scans: far more paths
 * than the caches hold, so lookups pay the structure's memory latency. */
const PROBE_COUNT = sized(250_000, 5_000);

/** mulberry32: small seeded PRNG, so every run uses the same keys. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function latin1(key: Uint8Array): string {
  return String.fromCharCode.apply(null, key as unknown as number[]);
}

function randomKeys(rand: () => number, count: number): Uint8Array[] {
  const keys: Uint8Array[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const key = new Uint8Array(KEY_BYTES);
    for (let j = 0; j < KEY_BYTES; j += 4) {
      const r = (rand() * 4294967296) >>> 0;
      key[j] = r >>> 24;
      key[j + 1] = r >>> 16;
      key[j + 2] = r >>> 8;
      key[j + 3] = r;
    }
    keys[i] = key;
  }
  return keys;
}

function shuffled<T>(rand: () => number, items: T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** A sorted array of latin-1 keys with a parallel array of handles. */
class SortedArray {
  keys: string[] = [];
  vals: number[] = [];
  lowerBound(key: string, lo = 0, hi = this.keys.length): number {
    const keys = this.keys;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  get(key: string): number {
    const i = this.lowerBound(key);
    return this.keys[i] === key ? this.vals[i]! : -1;
  }
  set(key: string, handle: number): number {
    const i = this.lowerBound(key);
    if (this.keys[i] === key) {
      const old = this.vals[i]!;
      this.vals[i] = handle;
      return old;
    }
    this.keys.splice(i, 0, key);
    this.vals.splice(i, 0, handle);
    return -1;
  }
  delete(key: string): number {
    const i = this.lowerBound(key);
    if (this.keys[i] !== key) return -1;
    const old = this.vals[i]!;
    this.keys.splice(i, 1);
    this.vals.splice(i, 1);
    return old;
  }
  /** Handles of keys in [start, end), at most max: two binary searches and
   * a copy — the best case for a sorted array. */
  scan(start: string, end: string, max: number, out: Uint32Array): Uint32Array {
    const lo = this.lowerBound(start);
    const hi = this.lowerBound(end, lo, Math.min(lo + max, this.keys.length));
    const vals = this.vals;
    for (let i = lo; i < hi; i++) out[i - lo] = vals[i]!;
    return out.subarray(0, hi - lo);
  }
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// sorted-btree is CommonJS with `exports.default = BTree`.
type SortedBTree = sortedBtree.default<string, number>;
const BTree = sortedBtree.default as unknown as {
  default?: typeof sortedBtree.default;
} & typeof sortedBtree.default;
const BTreeClass = BTree.default ?? BTree;

// ---------------------------------------------------------------------------
// Setup: the same keys in the same random order into all three.

const rand = rng(0x5eed);
const keys = randomKeys(rand, KEY_COUNT);
const keyStrings = keys.map(latin1);
const freshKeys = randomKeys(rng(0xf4e5), FRESH_COUNT);
const freshStrings = freshKeys.map(latin1);
// Probes: existing keys in an order unrelated to insertion order. Each probe
// key is a fresh copy allocated in probe order, as a request decoder would
// hand it over: reading the probe itself is then (nearly) free for every
// contender, and the cache misses measured are the structure's own.
const probeOrder = shuffled(rand, [...Array(KEY_COUNT).keys()]).slice(
  0,
  PROBE_COUNT,
);
const probeKeys = probeOrder.map((i) => keys[i]!.slice());
const probeStrings = probeOrder.map((i) => latin1(keys[i]!));
/** Scan end: the start key with its first byte incremented (a ~4,000-key
 * "prefix" range, so the scan stops at SCAN_COUNT, not at the end key). */
const probeEnds = probeKeys.map((k) => {
  const end = k.slice();
  end[0] = Math.min(end[0]! + 1, 255);
  return end;
});
const probeEndStrings = probeEnds.map(latin1);

const report: string[] = [];

function timeBuild(name: string, build: () => void): void {
  gc();
  const heapBefore = Deno.memoryUsage().heapUsed;
  const t0 = performance.now();
  build();
  const ms = performance.now() - t0;
  gc();
  const heapBytes = Deno.memoryUsage().heapUsed - heapBefore;
  report.push(
    `${name}: build ${ms.toFixed(0)} ms (${
      (ms * 1e6 / KEY_COUNT).toFixed(0)
    } ns/key), ` +
      `heap +${(heapBytes / KEY_COUNT).toFixed(0)} B/key`,
  );
}

let wasm!: BTreeIndex;
timeBuild("wasm B+tree (1M random inserts)", () => {
  wasm = new BTreeIndex();
  for (let i = 0; i < KEY_COUNT; i++) wasm.set(keys[i]!, i);
});
{
  const stats = wasm.memoryStats();
  report.push(
    `wasm B+tree memory: live ${
      (stats.liveBytes / KEY_COUNT).toFixed(1)
    } B/key, ` +
      `linear memory ${(stats.memoryBytes / KEY_COUNT).toFixed(1)} B/key ` +
      `(${(stats.memoryBytes / 2 ** 20).toFixed(1)} MiB)`,
  );
}
let sbt!: SortedBTree;
timeBuild("sorted-btree (1M random inserts, latin-1 string keys)", () => {
  sbt = new BTreeClass<string, number>(undefined, cmp);
  for (let i = 0; i < KEY_COUNT; i++) sbt.set(keyStrings[i]!, i);
});
const sorted = new SortedArray();
timeBuild("sorted array (bulk: sort 1M latin-1 keys)", () => {
  const order = [...Array(KEY_COUNT).keys()].sort((a, b) =>
    cmp(keyStrings[a]!, keyStrings[b]!)
  );
  sorted.keys = order.map((i) => keyStrings[i]!);
  sorted.vals = order;
});
wasm.check();
if (wasm.size !== KEY_COUNT || sbt.size !== KEY_COUNT) {
  throw new Error(
    `setup: sizes ${wasm.size}, ${sbt.size}, expected ${KEY_COUNT}`,
  );
}
console.log(report.join("\n"));

let sink = 0;
let probe = 0;
const nextProbe = () => (probe = probe + 1 === PROBE_COUNT ? 0 : probe + 1);

// ---------------------------------------------------------------------------
// Point lookup of an existing key.

Deno.bench("lookup: wasm B+tree (Uint8Array key in)", {
  group: "lookup",
  baseline: true,
}, () => {
  sink += wasm.get(probeKeys[nextProbe()]!);
});
Deno.bench("lookup: sorted array + binary search (string key)", {
  group: "lookup",
}, () => {
  sink += sorted.get(probeStrings[nextProbe()]!);
});
Deno.bench("lookup: sorted-btree (string key)", { group: "lookup" }, () => {
  sink += sbt.get(probeStrings[nextProbe()]!)!;
});

// ---------------------------------------------------------------------------
// Range scan of 100 keys from an existing key, with an end bound.

Deno.bench("scan 100: wasm B+tree (handles out)", {
  group: "scan",
  baseline: true,
}, () => {
  const i = nextProbe();
  const got = wasm.scan(probeKeys[i]!, true, probeEnds[i]!, SCAN_COUNT);
  sink += got.length + got[0]!;
});
const scanOut = new Uint32Array(SCAN_COUNT);
Deno.bench("scan 100: sorted array + binary search", { group: "scan" }, () => {
  const i = nextProbe();
  const got = sorted.scan(
    probeStrings[i]!,
    probeEndStrings[i]!,
    SCAN_COUNT,
    scanOut,
  );
  sink += got.length + got[0]!;
});
Deno.bench("scan 100: sorted-btree forRange", { group: "scan" }, () => {
  const i = nextProbe();
  let n = 0;
  sbt.forRange(
    probeStrings[i]!,
    probeEndStrings[i]!,
    false,
    (_k: string, v: number) => {
      scanOut[n++] = v;
      // sorted-btree stops the scan when the callback returns {break}.
      if (n === SCAN_COUNT) return { break: true } as unknown as void;
    },
  );
  sink += n + scanOut[0]!;
});

// ---------------------------------------------------------------------------
// Insert a new key and delete it again (keeps the size at 1M).

let fresh = 0;
const nextFresh = () => (fresh = fresh + 1 === FRESH_COUNT ? 0 : fresh + 1);

Deno.bench("insert+delete: wasm B+tree", {
  group: "insert",
  baseline: true,
}, () => {
  const key = freshKeys[nextFresh()]!;
  sink += wasm.set(key, 1) + wasm.delete(key);
});
Deno.bench("insert+delete: sorted array (splice)", { group: "insert" }, () => {
  const key = freshStrings[nextFresh()]!;
  sink += sorted.set(key, 1) + sorted.delete(key);
});
Deno.bench("insert+delete: sorted-btree", { group: "insert" }, () => {
  const key = freshStrings[nextFresh()]!;
  sbt.set(key, 1);
  sink += sbt.delete(key) ? 1 : 0;
});

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
