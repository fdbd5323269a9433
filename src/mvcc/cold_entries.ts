/**
 * Restored keys that hold a single put, kept as columns until something
 * writes or looks the key up: per tree handle, the entry's revisions in
 * typed arrays and its key and value bytes in shared chunks — no JS object
 * per key.
 *
 * Why: recovery builds a million keys in one go. As `KeyIndex` objects
 * (an index, its entries array, a `RevisionEntry`, key and value views)
 * that was ~7 heap objects and ~450 bytes of V8 heap per key, and
 * promoting and marking them was the largest cost of opening a store
 * (2.1 of 4.4 s at 1,000,000 entries). Most restored keys are never
 * touched before the next restart, or only read.
 *
 * Ownership: `MvccStore` decides when a key is cold (restored, single put)
 * and turns it into a `KeyIndex` (`take`) before any write to it, or when a
 * point lookup asks for it. Scans read cold keys through `peek`, a
 * throw-away `KeyIndex` over the same bytes: a cold key never changes, so
 * a copy is as good as the original, except that its identity is not kept
 * (writers and lease attachments need `take`).
 *
 * Bytes: a key and its value are copied side by side into a chunk of
 * `COLD_CHUNK_BYTES` (or a chunk of their own when longer than
 * `COLD_ITEM_BYTES_MAX`). A chunk is dropped from the table when its last
 * cold key is taken; views handed out keep it alive as long as they live
 * (the same trade-off as `byte_slab.ts`).
 *
 * @module
 */

import { KeyIndex } from "./key_index.ts";

/** Bytes of one shared chunk of cold keys and values. */
export const COLD_CHUNK_BYTES = 64 * 1024;
/** A key and value longer than this together get a chunk of their own. */
export const COLD_ITEM_BYTES_MAX = 4 * 1024;

/**
 * Handles per block of columns. Columns grow a block at a time, never by
 * copying: fresh memory is what recovery pays most for (first touch of a
 * page costs ~20 µs on the VMs measured, ~5 ms per MB), and doubling
 * arrays touched every byte twice.
 */
const BLOCK_HANDLES = 1 << 16;
const BLOCK_SHIFT = 16;
const BLOCK_MASK = BLOCK_HANDLES - 1;
/**
 * u32 per handle in a block: main revision (0 when not cold), create
 * revision, version, sub revision, chunk, offset, key length, value length.
 * Revisions and versions of 2^32 and more are not kept cold.
 */
const FIELDS = 8;
const MAIN = 0;
const CREATE = 1;
const VERSION = 2;
const SUB = 3;
const CHUNK = 4;
const OFFSET = 5;
const KEY_LENGTH = 6;
const VALUE_LENGTH = 7;
const U32_MAX = 0xffff_ffff;

/** Single-put keys as columns, by tree handle. */
export class ColdEntries {
  /** Blocks of `FIELDS` u32 per handle. */
  readonly #blocks: Uint32Array[] = [];
  /** Non-zero leases only (most keys carry none). */
  readonly #leases = new Map<number, bigint>();
  /** Chunks by number; undefined once no cold key lives in it. */
  readonly #chunks: (Uint8Array | undefined)[] = [];
  /** Cold keys per chunk. */
  readonly #chunkKeys: number[] = [];
  /** The chunk being filled, and how much of it is used. */
  #current = -1;
  #used = COLD_CHUNK_BYTES;
  #count = 0;

  /** Number of cold keys. */
  get count(): number {
    return this.#count;
  }

  /** Whether `handle` is a cold key. */
  has(handle: number): boolean {
    const block = this.#blocks[handle >>> BLOCK_SHIFT];
    return block !== undefined &&
      block[(handle & BLOCK_MASK) * FIELDS + MAIN] !== 0;
  }

  /**
   * Makes `handle` a cold key holding one put, copying the key
   * (`bytes[keyStart, keyStart + keyLength)`) and the value
   * (`bytes[valueStart, valueStart + valueLength)`). With `adopted` (a
   * chunk number from `adoptChunk`, `bytes` being that chunk, the value
   * right after the key), the bytes stay where they are. Returns false, and
   * keeps nothing, when a revision or version does not fit the columns.
   */
  add(
    handle: number,
    bytes: Uint8Array,
    keyStart: number,
    keyLength: number,
    valueStart: number,
    valueLength: number,
    main: number,
    sub: number,
    createRevision: number,
    version: number,
    lease: bigint,
    adopted = -1,
  ): boolean {
    if (
      !(main > 0 && main <= U32_MAX && createRevision <= U32_MAX &&
        version <= U32_MAX && sub <= U32_MAX)
    ) return false;
    while (handle >>> BLOCK_SHIFT >= this.#blocks.length) {
      this.#blocks.push(new Uint32Array(BLOCK_HANDLES * FIELDS));
    }
    const length = keyLength + valueLength;
    let chunkNumber: number;
    let at: number;
    if (adopted >= 0) {
      chunkNumber = adopted;
      at = keyStart;
    } else if (length > COLD_ITEM_BYTES_MAX) {
      chunkNumber = this.#chunks.length;
      this.#chunks.push(new Uint8Array(length));
      this.#chunkKeys.push(0);
      at = 0;
    } else {
      // (A chunk must exist even for an empty key and value.)
      if (this.#current < 0 || this.#used + length > COLD_CHUNK_BYTES) {
        this.#current = this.#chunks.length;
        this.#chunks.push(new Uint8Array(COLD_CHUNK_BYTES));
        this.#chunkKeys.push(0);
        this.#used = 0;
      }
      chunkNumber = this.#current;
      at = this.#used;
      this.#used = at + length;
    }
    const chunk = this.#chunks[chunkNumber]!;
    if (adopted >= 0) {
      if (chunk !== bytes || valueStart !== keyStart + keyLength) {
        throw new Error("mvcc: cold entry not in the chunk it names");
      }
    } else if (valueStart === keyStart + keyLength) {
      copyInto(chunk, at, bytes, keyStart, length);
    } else {
      copyInto(chunk, at, bytes, keyStart, keyLength);
      copyInto(chunk, at + keyLength, bytes, valueStart, valueLength);
    }
    this.#chunkKeys[chunkNumber]!++;
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    block[f + MAIN] = main;
    block[f + CREATE] = createRevision;
    block[f + VERSION] = version;
    block[f + SUB] = sub;
    block[f + CHUNK] = chunkNumber;
    block[f + OFFSET] = at;
    block[f + KEY_LENGTH] = keyLength;
    block[f + VALUE_LENGTH] = valueLength;
    if (lease !== 0n) this.#leases.set(handle, lease);
    this.#count++;
    return true;
  }

  /**
   * Takes over `chunk` (filled by someone else, e.g. the WAL replay worker,
   * and never written again) as a chunk that `add` can point into; returns
   * its number. Call `releaseChunk` once every entry in it was added.
   */
  adoptChunk(chunk: Uint8Array): number {
    this.#chunks.push(chunk);
    // The adopter's hold counts as one key until `releaseChunk`.
    this.#chunkKeys.push(1);
    return this.#chunks.length - 1;
  }

  /** Lets go of an adopted chunk if no cold key points into it. */
  releaseChunk(chunkNumber: number): void {
    if (--this.#chunkKeys[chunkNumber]! === 0) {
      this.#chunks[chunkNumber] = undefined;
    }
  }

  /** The key bytes of a cold handle (a view: do not change them). */
  key(handle: number): Uint8Array {
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    const at = block[f + OFFSET]!;
    return this.#chunks[block[f + CHUNK]!]!.subarray(
      at,
      at + block[f + KEY_LENGTH]!,
    );
  }

  /** A throw-away `KeyIndex` equal to the cold key's (see the module comment). */
  peek(handle: number): KeyIndex {
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    const chunk = this.#chunks[block[f + CHUNK]!]!;
    const at = block[f + OFFSET]!;
    const keyEnd = at + block[f + KEY_LENGTH]!;
    const index = new KeyIndex(chunk.subarray(at, keyEnd));
    index.restore({
      main: block[f + MAIN]!,
      sub: block[f + SUB]!,
      createRevision: block[f + CREATE]!,
      version: block[f + VERSION]!,
      value: chunk.subarray(keyEnd, keyEnd + block[f + VALUE_LENGTH]!),
      lease: this.#leases.get(handle) ?? 0n,
    });
    return index;
  }

  /** The cold key as a `KeyIndex` of its own; the handle is no longer cold. */
  take(handle: number): KeyIndex {
    const index = this.peek(handle);
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    const chunkNumber = block[f + CHUNK]!;
    if (--this.#chunkKeys[chunkNumber]! === 0) {
      // The views in `index` keep the bytes; the table lets go of them.
      this.#chunks[chunkNumber] = undefined;
      if (chunkNumber === this.#current) this.#current = -1;
    }
    block[f + MAIN] = 0;
    this.#leases.delete(handle);
    this.#count--;
    return index;
  }

  /** The cold handles whose put carries a lease. */
  leasedHandles(): number[] {
    return [...this.#leases.keys()];
  }
}

/** Copies `length` bytes; a loop beats `set` + `subarray` for short runs. */
function copyInto(
  target: Uint8Array,
  at: number,
  source: Uint8Array,
  start: number,
  length: number,
): void {
  if (length <= 32) {
    for (let i = 0; i < length; i++) target[at + i] = source[start + i]!;
  } else {
    target.set(source.subarray(start, start + length), at);
  }
}
