/**
 * Small byte strings (keys and values) packed into shared slabs.
 *
 * Why: every `Uint8Array.slice()` or `TextEncoder.encode()` allocates its own
 * `ArrayBuffer`, and V8 pays for each one beyond its bytes (a backing store
 * object, external-memory accounting that triggers full GCs, sweeping). At a
 * million stored values that dominated both the write path and recovery
 * (measured: ~1.3 µs per retained buffer on the 2-core VM, against ~0.1 µs
 * for a view into a shared slab). A slab is one `ArrayBuffer` of
 * `SLAB_BYTES`; each stored string is a `subarray` view of it.
 *
 * Ownership: a view handed out by a slab is owned by whoever asked for it
 * and never written again by the slab (the slab only appends). The stored
 * bytes are never exposed to users: reads copy them (`copyKeyValues` in
 * range.ts), or lend them for one call (`visitRange`).
 *
 * Cost: a slab stays alive while any of its views does, so after heavy
 * overwrites and compaction up to `SLAB_BYTES` can be held per surviving
 * value (worst case; values written together tend to die together). Strings
 * longer than `SLAB_ITEM_BYTES_MAX` get their own buffer, which bounds how
 * much one survivor can pin relative to its own size.
 *
 * @module
 */

/** Bytes of one slab (small enough that a pinned slab wastes little). */
export const SLAB_BYTES = 16 * 1024;
/** Longer strings get their own buffer instead of a slab view. */
export const SLAB_ITEM_BYTES_MAX = 1024;

const textEncoder = new TextEncoder();

/** Appends byte strings into slabs; each returned view is an independent copy. */
export class ByteSlab {
  #slab = new Uint8Array(0);
  #used = 0;

  /** A copy of `src[start, end)`. */
  copy(src: Uint8Array, start = 0, end = src.length): Uint8Array {
    const length = end - start;
    if (length > SLAB_ITEM_BYTES_MAX) return src.slice(start, end);
    const at = this.#reserve(length);
    const slab = this.#slab;
    if (length <= 32) {
      for (let i = 0; i < length; i++) slab[at + i] = src[start + i]!;
    } else {
      slab.set(src.subarray(start, end), at);
    }
    this.#used = at + length;
    return view(slab, at, length);
  }

  /** `text` encoded as UTF-8. */
  encode(text: string): Uint8Array {
    const length = text.length;
    if (length > SLAB_ITEM_BYTES_MAX) return textEncoder.encode(text);
    // ASCII fast path: a charCodeAt loop beats the encoder's native call
    // for short strings.
    let at = this.#reserve(length);
    let slab = this.#slab;
    let i = 0;
    for (; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      slab[at + i] = c;
    }
    if (i === length) {
      this.#used = at + length;
      return view(slab, at, length);
    }
    const most = length * 3;
    if (most > SLAB_ITEM_BYTES_MAX) return textEncoder.encode(text);
    at = this.#reserve(most);
    slab = this.#slab;
    const { written } = textEncoder.encodeInto(
      text,
      slab.subarray(at, at + most),
    );
    this.#used = at + written;
    return view(slab, at, written);
  }

  /** Offset in the current slab with `length` free bytes after it. */
  #reserve(length: number): number {
    if (this.#used + length > this.#slab.length) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#used = 0;
    }
    return this.#used;
  }
}

/**
 * Encodes keys into one reused buffer: for bytes that are only looked at
 * during a call (a key to look up; the store copies it when it keeps it).
 */
export class ScratchEncoder {
  #buffer = new Uint8Array(256);

  /** `text` as UTF-8, in a view that the next call overwrites. */
  encode(text: string): Uint8Array {
    const length = text.length;
    if (length * 3 > this.#buffer.length) {
      let size = this.#buffer.length;
      while (size < length * 3) size *= 2;
      this.#buffer = new Uint8Array(size);
    }
    const buffer = this.#buffer;
    let i = 0;
    for (; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      buffer[i] = c;
    }
    if (i === length) return view(buffer, 0, length);
    const { written } = textEncoder.encodeInto(text, buffer);
    return view(buffer, 0, written);
  }
}

/**
 * `bytes[at, at + length)` as a view; `bytes` starts at offset 0 of its
 * buffer. The constructor takes ~60% of the time `subarray` does (no species
 * lookup), which counts on the put path (two views per put).
 */
function view(bytes: Uint8Array, at: number, length: number): Uint8Array {
  return new Uint8Array(bytes.buffer, at, length);
}
