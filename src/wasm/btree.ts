/**
 * `BTreeIndex`: the typed wrapper over the wasm B+tree (assembly/btree.ts).
 *
 * This is the one place that handles the tree's raw addresses. Each index
 * owns a wasm instance (its own linear memory). Crossing the boundary costs
 * one call per operation: a key is copied into a scratch region of wasm
 * memory, the call runs, and a scan writes all its handles (up to `maxCount`)
 * into an output region in the same call.
 *
 * Memory ownership:
 * - scratch region 0 (keys in): written here, read by the wasm call; holds the
 *   start key followed by the end key for scans. Grown on demand.
 * - scratch region 1 (handles out): written by scans, exposed to the caller
 *   as a `Uint32Array` view that is valid only until the next call on this
 *   index.
 * - Everything else (nodes, key copies) is owned by the wasm module.
 *
 * `memory.grow` detaches every view of the memory: a write through a stale
 * view silently goes nowhere. Calls that allocate (set, delete, reserve) can
 * grow it, so the views are re-derived whenever they are found detached
 * (a detached typed array has length 0) before they are used.
 *
 * @example Usage
 * ```ts
 * import { BTreeIndex } from "./btree.ts";
 * import assert from "node:assert/strict";
 *
 * const index = new BTreeIndex();
 * const enc = new TextEncoder();
 * index.set(enc.encode("b"), 2);
 * index.set(enc.encode("a"), 1);
 * assert.equal(index.get(enc.encode("a")), 1);
 * assert.deepEqual([...index.scan(new Uint8Array(), true, null, 10)], [1, 2]);
 * ```
 *
 * @module
 */

import { instantiateRevkv, type RevkvExports } from "./instance.ts";

/** Largest key accepted, in bytes. etcd caps requests at ~1.5 MiB; this only
 * guards the wasm allocator (blocks up to 2 GiB) against absurd sizes. */
export const KEY_BYTES_MAX = 1 << 28;
/** Largest handle: handles travel as i32 with -1 meaning "none". */
export const HANDLE_MAX = 0x7fffffff;
/** Keys up to this length are copied byte by byte, which beats
 * `Uint8Array.prototype.set` for short keys; longer keys use `set`. */
const COPY_LOOP_BYTES_MAX = 32;
/** Initial size of the key scratch region. */
const SCRATCH_BYTES_MIN = 1024;
/** Initial capacity of the scan output region, in handles. */
const OUT_HANDLES_MIN = 1024;

const CHECK_MESSAGES: Record<number, string> = {
  1: "node fill out of range (node, count, depth)",
  2: "key does not start with its node's prefix (node, index, prefixLen)",
  3: "stale key head (node, index, stored head)",
  4: "keys not strictly ascending in node (node, index)",
  5: "key outside its subtree's bounds (node, index, 0=below/1=above)",
  6: "leaves at different depths (node, depth, first leaf depth)",
  7: "broken leaf chain (node, linked node, where)",
  8: "key count mismatch (counted, recorded)",
  9: "node count mismatch (counted, recorded)",
  10: "allocator live bytes differ from the tree's blocks (live, expected)",
};

/** An ordered map from byte-string keys to u32 handles, in wasm memory. */
export class BTreeIndex {
  #ex: RevkvExports;
  #u8: Uint8Array;
  #u32: Uint32Array;
  #keyPtr = 0;
  #keyCap = 0;
  #outPtr = 0;
  #outCap = 0;
  #broken = false;

  /** New empty tree in a fresh wasm instance. Synchronous. */
  constructor() {
    this.#ex = instantiateRevkv();
    this.#u8 = new Uint8Array(this.#ex.memory.buffer);
    this.#u32 = new Uint32Array(this.#ex.memory.buffer);
    this.#reserveKeys(SCRATCH_BYTES_MIN);
    this.#reserveOut(OUT_HANDLES_MIN);
  }

  /** Number of keys. */
  get size(): number {
    return this.#ex.btreeCount();
  }

  /**
   * Inserts or replaces.
   *
   * @param key The key bytes (copied).
   * @param handle An integer in [0, 2^31 - 1].
   * @returns The previous handle, or -1 when the key was new.
   */
  set(key: Uint8Array, handle: number): number {
    if (!(handle >= 0 && handle <= HANDLE_MAX && Number.isInteger(handle))) {
      throw new RangeError(
        `Cannot set handle ${handle}: handles are integers in [0, ${HANDLE_MAX}]`,
      );
    }
    const len = this.#putKey(key);
    try {
      return this.#ex.btreeSet(this.#keyPtr, len, handle);
    } catch (e) {
      throw this.#trap(e, "set");
    }
  }

  /**
   * Inserts `key` with `handle` unless it is present: one boundary crossing
   * for "find or create".
   *
   * @param key The key bytes (copied when inserted): `key[start, end)`.
   * @param handle An integer in [0, 2^31 - 1], stored only when the key is new.
   * @returns The key's existing handle, or -1 when it was inserted.
   */
  getOrSet(
    key: Uint8Array,
    handle: number,
    start = 0,
    end = key.length,
  ): number {
    if (!(handle >= 0 && handle <= HANDLE_MAX && Number.isInteger(handle))) {
      throw new RangeError(
        `Cannot set handle ${handle}: handles are integers in [0, ${HANDLE_MAX}]`,
      );
    }
    const len = this.#putKey(key, start, end);
    try {
      return this.#ex.btreeGetOrSet(this.#keyPtr, len, handle);
    } catch (e) {
      throw this.#trap(e, "set");
    }
  }

  /**
   * Looks a key up.
   *
   * @returns The key's handle, or -1.
   */
  get(key: Uint8Array): number {
    const len = this.#putKey(key);
    return this.#ex.btreeGet(this.#keyPtr, len);
  }

  /**
   * Removes a key.
   *
   * @returns The removed key's handle, or -1 when it was absent.
   */
  delete(key: Uint8Array): number {
    const len = this.#putKey(key);
    try {
      return this.#ex.btreeDelete(this.#keyPtr, len);
    } catch (e) {
      throw this.#trap(e, "delete");
    }
  }

  /**
   * Forward scan: handles of keys k with start <= k (start < k when
   * `startInclusive` is false) and k < end (`end` null = unbounded),
   * ascending, at most `maxCount`.
   *
   * @returns A view into a reusable buffer, valid only until the next call
   * on this index.
   */
  scan(
    start: Uint8Array,
    startInclusive: boolean,
    end: Uint8Array | null,
    maxCount: number,
  ): Uint32Array {
    const max = this.#pageSize(maxCount);
    if (max === 0) return new Uint32Array(0);
    const startLen = this.#putKeys(start, end);
    const got = this.#ex.btreeScan(
      this.#keyPtr,
      startLen,
      startInclusive ? 1 : 0,
      this.#keyPtr + startLen,
      end === null ? -1 : end.length,
      max,
      this.#outPtr,
    );
    const at = this.#outPtr >>> 2;
    return this.#u32.subarray(at, at + got);
  }

  /**
   * Backward scan: handles of keys k with lower <= k and k < upper (`upper`
   * null = unbounded; `upperInclusive` makes it k <= upper), descending, at
   * most `maxCount`.
   *
   * @returns A view into a reusable buffer, valid only until the next call
   * on this index.
   */
  scanReverse(
    lower: Uint8Array,
    upper: Uint8Array | null,
    upperInclusive: boolean,
    maxCount: number,
  ): Uint32Array {
    const max = this.#pageSize(maxCount);
    if (max === 0) return new Uint32Array(0);
    const lowerLen = this.#putKeys(lower, upper);
    const got = this.#ex.btreeScanReverse(
      this.#keyPtr,
      lowerLen,
      this.#keyPtr + lowerLen,
      upper === null ? -1 : upper.length,
      upperInclusive ? 1 : 0,
      max,
      this.#outPtr,
    );
    const at = this.#outPtr >>> 2;
    return this.#u32.subarray(at, at + got);
  }

  /** Bytes of linear memory in use by the allocator (live), and the total
   * memory size. */
  memoryStats(): { liveBytes: number; memoryBytes: number } {
    return {
      liveBytes: this.#ex.liveBytes() >>> 0,
      memoryBytes: this.#ex.memory.buffer.byteLength,
    };
  }

  /** Verifies the tree's invariants (ordering, prefixes and heads, fill,
   * leaf chain, counts, allocator accounting); throws with the values
   * involved on a violation. */
  check(): void {
    const code = this.#ex.btreeCheck();
    if (code === 0) return;
    this.#views();
    const at = this.#ex.checkDetails() >>> 2;
    const details = Array.from(this.#u32.subarray(at, at + 3));
    throw new Error(
      `B+tree check failed: ${CHECK_MESSAGES[code] ?? `code ${code}`}: ` +
        details.join(", "),
    );
  }

  // -------------------------------------------------------------------------

  /** Re-derives the views when `memory.grow` has detached them. */
  #views(): void {
    if (this.#u8.length === 0) {
      const buffer = this.#ex.memory.buffer;
      this.#u8 = new Uint8Array(buffer);
      this.#u32 = new Uint32Array(buffer);
    }
  }

  #reserveKeys(bytes: number): void {
    let cap = Math.max(this.#keyCap * 2, SCRATCH_BYTES_MIN);
    while (cap < bytes) cap *= 2;
    this.#keyPtr = this.#reserve(0, cap);
    this.#keyCap = cap;
  }

  #reserveOut(handles: number): void {
    let cap = Math.max(this.#outCap * 2, OUT_HANDLES_MIN);
    while (cap < handles) cap *= 2;
    this.#outPtr = this.#reserve(1, cap * 4);
    this.#outCap = cap;
  }

  #reserve(slot: number, bytes: number): number {
    try {
      return this.#ex.reserve(slot, bytes) >>> 0;
    } catch (e) {
      throw this.#trap(e, "reserve scratch memory for");
    } finally {
      this.#views();
    }
  }

  #checkKey(key: Uint8Array): void {
    if (!(key instanceof Uint8Array)) {
      throw new TypeError(`Key must be a Uint8Array, got ${typeof key}`);
    }
    if (key.length > KEY_BYTES_MAX) {
      throw new RangeError(
        `Key of ${key.length} bytes exceeds the maximum of ${KEY_BYTES_MAX}`,
      );
    }
  }

  /** Copies one key (`key[start, end)`) into scratch region 0; returns its length. */
  #putKey(key: Uint8Array, start = 0, end = key.length): number {
    if (this.#broken) throw this.#brokenError();
    this.#checkKey(key);
    const len = end - start;
    if (!(start >= 0 && len >= 0 && end <= key.length)) {
      throw new RangeError(
        `Key range [${start}, ${end}) is outside its buffer of ${key.length} bytes`,
      );
    }
    if (len > this.#keyCap) this.#reserveKeys(len);
    this.#views();
    if (len <= COPY_LOOP_BYTES_MAX) {
      const u8 = this.#u8;
      const ptr = this.#keyPtr;
      for (let i = 0; i < len; i++) u8[ptr + i] = key[start + i]!;
    } else {
      this.#u8.set(key.subarray(start, end), this.#keyPtr);
    }
    return len;
  }

  /** Copies `a` then `b` into scratch region 0; returns a's length. */
  #putKeys(a: Uint8Array, b: Uint8Array | null): number {
    if (this.#broken) throw this.#brokenError();
    this.#checkKey(a);
    if (b !== null) this.#checkKey(b);
    const total = a.length + (b === null ? 0 : b.length);
    if (total > this.#keyCap) this.#reserveKeys(total);
    this.#views();
    this.#copy(a, this.#keyPtr);
    if (b !== null) this.#copy(b, this.#keyPtr + a.length);
    return a.length;
  }

  #copy(key: Uint8Array, ptr: number): void {
    const len = key.length;
    if (len <= COPY_LOOP_BYTES_MAX) {
      const u8 = this.#u8;
      for (let i = 0; i < len; i++) u8[ptr + i] = key[i]!;
    } else {
      this.#u8.set(key, ptr);
    }
  }

  /** Output capacity for a scan of `maxCount`, growing the output region. */
  #pageSize(maxCount: number): number {
    if (
      !(maxCount >= 0) || (!Number.isInteger(maxCount) && maxCount !== Infinity)
    ) {
      throw new RangeError(
        `Scan maxCount must be a non-negative integer or Infinity, got ${maxCount}`,
      );
    }
    if (maxCount <= this.#outCap) return maxCount;
    // Larger than the output region: no scan returns more than the size.
    const max = Math.min(maxCount, this.#ex.btreeCount());
    if (max > this.#outCap) this.#reserveOut(max);
    return max;
  }

  /** Converts a wasm trap into an error; the instance is unusable after. */
  #trap(e: unknown, what: string): Error {
    if (!(e instanceof WebAssembly.RuntimeError)) return e as Error;
    this.#broken = true;
    if (this.#ex.outOfMemory.value === 1) {
      return new RangeError(
        `Cannot ${what} key: wasm memory exhausted at ${this.#ex.memory.buffer.byteLength} bytes`,
        { cause: e },
      );
    }
    return new Error(`B+tree trapped in ${what}: ${e.message}`, { cause: e });
  }

  #brokenError(): Error {
    return new Error(
      "B+tree index is unusable: an earlier call trapped (out of memory)",
    );
  }
}
