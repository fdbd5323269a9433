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
 * Bytes: a key and its value sit side by side in a chunk: copied into one
 * of `COLD_CHUNK_BYTES` (or a chunk of their own when longer than
 * `COLD_ITEM_BYTES_MAX`), or left where the replay worker put them (an
 * adopted chunk, which also holds the bytes of entries that did not stay
 * cold). A chunk is dropped when its last cold key is taken; `take` copies
 * the bytes out, so a taken key does not pin it. An adopted chunk less than
 * half of which is cold keys when its batch ends is not kept: its cold keys
 * move to chunks of their own. A chunk can still be kept by a few cold keys
 * after most of its keys were taken (bounded by the bytes restored, as
 * with `byte_slab.ts`).
 *
 * @module
 */

import type { RecordedEntry } from "./recorded_entry.ts";
import { ByteSlab } from "./byte_slab.ts";
import { KeyIndex, type RevisionEntry } from "./key_index.ts";

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
  /** Cold keys per chunk (plus one while an adopted chunk is held). */
  readonly #chunkKeys: number[] = [];
  /** Bytes of cold keys and values per chunk. */
  readonly #chunkLiveBytes: number[] = [];
  /**
   * Per chunk, the least and greatest handle added into it while held (an
   * adopted chunk before `releaseChunk`); -1 when none.
   */
  readonly #heldFirst: number[] = [];
  readonly #heldLast: number[] = [];
  /** Where `take` copies a key's bytes to. */
  readonly #takenSlab = new ByteSlab();
  /** Where `#place` put the last item. */
  #placedChunk = 0;
  #placedAt = 0;
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
    const b = handle >>> BLOCK_SHIFT;
    // (Never index past the end: V8's slow path.)
    return b < this.#blocks.length &&
      this.#blocks[b]![(handle & BLOCK_MASK) * FIELDS + MAIN] !== 0;
  }

  /**
   * Makes `handle` a cold key holding the put `entry`, copying its key
   * and value. With `entry.adoptedChunk` (a chunk number from
   * `adoptChunk`, `entry.bytes` being that chunk, the value right after
   * the key), the bytes stay where they are. Returns false, and
   * keeps nothing, when a revision or version does not fit the columns.
   */
  add(handle: number, entry: RecordedEntry): boolean {
    const {
      bytes,
      keyStart,
      keyLength,
      valueStart,
      valueLength,
      main,
      sub,
      createRevision,
      version,
      lease,
      adoptedChunk: adopted,
    } = entry;
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
      if (
        this.#chunks[adopted] !== bytes || valueStart !== keyStart + keyLength
      ) {
        throw new Error("mvcc: cold entry not in the chunk it names");
      }
      if (this.#heldFirst[adopted]! < 0 || handle < this.#heldFirst[adopted]!) {
        this.#heldFirst[adopted] = handle;
      }
      if (handle > this.#heldLast[adopted]!) this.#heldLast[adopted] = handle;
    } else {
      this.#place(length);
      chunkNumber = this.#placedChunk;
      at = this.#placedAt;
    }
    const chunk = this.#chunks[chunkNumber]!;
    if (adopted >= 0) {
      // In place.
    } else if (valueStart === keyStart + keyLength) {
      copyInto(chunk, at, bytes, keyStart, length);
    } else {
      copyInto(chunk, at, bytes, keyStart, keyLength);
      copyInto(chunk, at + keyLength, bytes, valueStart, valueLength);
    }
    this.#chunkKeys[chunkNumber]!++;
    this.#chunkLiveBytes[chunkNumber]! += length;
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
    const chunkNumber = this.#newChunk(chunk);
    // The adopter's hold counts as one key until `releaseChunk`.
    this.#chunkKeys[chunkNumber] = 1;
    return chunkNumber;
  }

  /**
   * Ends the hold on an adopted chunk: dropped if no cold key points into
   * it, and its cold keys moved out if they are less than half of it.
   */
  releaseChunk(chunkNumber: number): void {
    const first = this.#heldFirst[chunkNumber]!;
    const last = this.#heldLast[chunkNumber]!;
    this.#heldFirst[chunkNumber] = -1;
    this.#heldLast[chunkNumber] = -1;
    const chunk = this.#chunks[chunkNumber]!;
    if (first >= 0 && this.#chunkLiveBytes[chunkNumber]! * 2 < chunk.length) {
      // The handles added while it was held lie in [first, last].
      for (let handle = first; handle <= last; handle++) {
        if (!this.has(handle)) continue;
        const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
        const f = (handle & BLOCK_MASK) * FIELDS;
        if (block[f + CHUNK] !== chunkNumber) continue;
        const at = block[f + OFFSET]!;
        const length = block[f + KEY_LENGTH]! + block[f + VALUE_LENGTH]!;
        this.#place(length);
        copyInto(
          this.#chunks[this.#placedChunk]!,
          this.#placedAt,
          chunk,
          at,
          length,
        );
        block[f + CHUNK] = this.#placedChunk;
        block[f + OFFSET] = this.#placedAt;
        this.#chunkKeys[this.#placedChunk]!++;
        this.#chunkLiveBytes[this.#placedChunk]! += length;
        this.#chunkKeys[chunkNumber]!--;
        this.#chunkLiveBytes[chunkNumber]! -= length;
      }
    }
    if (--this.#chunkKeys[chunkNumber]! === 0) {
      this.#chunks[chunkNumber] = undefined;
    }
  }

  /** Bytes held in chunks, and how many of them are cold keys and values. */
  chunkBytes(): { heldBytes: number; liveBytes: number } {
    let heldBytes = 0;
    let liveBytes = 0;
    for (let n = 0; n < this.#chunks.length; n++) {
      const chunk = this.#chunks[n];
      if (chunk === undefined) continue;
      heldBytes += chunk.length;
      liveBytes += this.#chunkLiveBytes[n]!;
    }
    return { heldBytes, liveBytes };
  }

  /** Reserves `length` bytes in a chunk of this table: `#placedChunk`/`#placedAt`. */
  #place(length: number): void {
    if (length > COLD_ITEM_BYTES_MAX) {
      this.#placedChunk = this.#newChunk(new Uint8Array(length));
      this.#placedAt = 0;
      return;
    }
    // (A chunk must exist even for an empty key and value.)
    if (this.#current < 0 || this.#used + length > COLD_CHUNK_BYTES) {
      this.#current = this.#newChunk(new Uint8Array(COLD_CHUNK_BYTES));
      this.#used = 0;
    }
    this.#placedChunk = this.#current;
    this.#placedAt = this.#used;
    this.#used += length;
  }

  #newChunk(chunk: Uint8Array): number {
    this.#chunks.push(chunk);
    this.#chunkKeys.push(0);
    this.#chunkLiveBytes.push(0);
    this.#heldFirst.push(-1);
    this.#heldLast.push(-1);
    return this.#chunks.length - 1;
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

  /** The main revision of a cold handle's put. */
  main(handle: number): number {
    return this.#blocks[handle >>> BLOCK_SHIFT]![
      (handle & BLOCK_MASK) * FIELDS + MAIN
    ]!;
  }

  /**
   * The cold handle's put as a throw-away entry over a view of its chunk:
   * for readers that only look (no `KeyIndex`, unlike `peek`).
   */
  entry(handle: number): RevisionEntry {
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    const chunk = this.#chunks[block[f + CHUNK]!]!;
    const valueAt = block[f + OFFSET]! + block[f + KEY_LENGTH]!;
    return {
      main: block[f + MAIN]!,
      sub: block[f + SUB]!,
      createRevision: block[f + CREATE]!,
      version: block[f + VERSION]!,
      value: new Uint8Array(
        chunk.buffer,
        chunk.byteOffset + valueAt,
        block[f + VALUE_LENGTH]!,
      ),
      lease: this.#leases.size === 0 ? 0n : this.#leases.get(handle) ?? 0n,
    };
  }

  /** A throw-away `KeyIndex` equal to the cold key's (see the module comment). */
  peek(handle: number): KeyIndex {
    return this.#index(handle, false);
  }

  /**
   * The cold key as a `KeyIndex` of its own, its bytes copied out of the
   * chunk; the handle is no longer cold.
   */
  take(handle: number): KeyIndex {
    const index = this.#index(handle, true);
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    const chunkNumber = block[f + CHUNK]!;
    this.#chunkLiveBytes[chunkNumber]! -= block[f + KEY_LENGTH]! +
      block[f + VALUE_LENGTH]!;
    if (--this.#chunkKeys[chunkNumber]! === 0) {
      this.#chunks[chunkNumber] = undefined;
      if (chunkNumber === this.#current) this.#current = -1;
    }
    block[f + MAIN] = 0;
    this.#leases.delete(handle);
    this.#count--;
    return index;
  }

  /** The cold key's index: over views of its chunk, or over copies. */
  #index(handle: number, copy: boolean): KeyIndex {
    const block = this.#blocks[handle >>> BLOCK_SHIFT]!;
    const f = (handle & BLOCK_MASK) * FIELDS;
    const chunk = this.#chunks[block[f + CHUNK]!]!;
    const at = block[f + OFFSET]!;
    const keyEnd = at + block[f + KEY_LENGTH]!;
    const valueEnd = keyEnd + block[f + VALUE_LENGTH]!;
    const index = new KeyIndex(
      copy
        ? this.#takenSlab.copy(chunk, at, keyEnd)
        : chunk.subarray(at, keyEnd),
    );
    index.restore({
      main: block[f + MAIN]!,
      sub: block[f + SUB]!,
      createRevision: block[f + CREATE]!,
      version: block[f + VERSION]!,
      value: copy
        ? this.#takenSlab.copy(chunk, keyEnd, valueEnd)
        : chunk.subarray(keyEnd, valueEnd),
      lease: this.#leases.get(handle) ?? 0n,
    });
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
