/**
 * Sequential reads of a large file through a reused buffer: the window
 * that WAL segments and snapshot files are streamed through.
 *
 * Buffers are pooled, not allocated per file: a fresh 64 MiB buffer per
 * segment cost ~1 s on the VM (first touch of fresh memory is what costs),
 * and a pool rather than one shared buffer lets two stores recover at the
 * same time in one process.
 *
 * @module
 */

import type { StorageFile } from "./fs.ts";

/** Bytes of a window's buffer (it grows for a longer read). */
export const STREAM_CHUNK_BYTES = 4 * 1024 * 1024;

/** Buffers of released windows, for the next ones. */
const spareBuffers: Uint8Array<ArrayBuffer>[] = [];
/** How many released buffers are kept. */
const SPARE_BUFFERS_MAX = 2;

/**
 * A window onto a file: `bytes[0, end)` holds the file's bytes from `base`.
 * Call `release` when done (the buffer goes back to the pool).
 */
export class FileWindow {
  /** The buffer; `bytes[0, end)` is the file from `base`. */
  bytes: Uint8Array<ArrayBuffer>;
  /** A view of `bytes`. */
  view: DataView;
  /** File offset of `bytes[0]`. */
  base = 0;
  /** Valid bytes in `bytes`. */
  end = 0;
  /**
   * Bytes a refill reads at least: starts small (a small store's log is a
   * few KiB of a 64 MiB file) and doubles per refill up to the buffer.
   */
  #readAheadBytes = 64 * 1024;

  /**
   * @param file the file, read with `readAt`.
   * @param size its size in bytes.
   */
  constructor(readonly file: StorageFile, readonly size: number) {
    this.bytes = spareBuffers.pop() ?? new Uint8Array(STREAM_CHUNK_BYTES);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Gives the buffer back to the pool; the window is unusable afterwards. */
  release(): void {
    if (spareBuffers.length < SPARE_BUFFERS_MAX) spareBuffers.push(this.bytes);
    this.bytes = new Uint8Array(0);
    this.view = new DataView(this.bytes.buffer);
    this.end = 0;
  }

  /** Makes the file's bytes [offset, offset + n) available (n <= size - offset). */
  async ensure(offset: number, n: number): Promise<void> {
    if (offset >= this.base && offset + n <= this.base + this.end) return;
    let kept = 0;
    if (offset >= this.base && offset < this.base + this.end) {
      kept = this.base + this.end - offset;
    }
    if (n > this.bytes.length) {
      const grown = new Uint8Array(Math.max(n, this.bytes.length * 2));
      grown.set(
        this.bytes.subarray(offset - this.base, offset - this.base + kept),
      );
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    } else if (kept > 0) {
      this.bytes.copyWithin(0, offset - this.base, offset - this.base + kept);
    }
    this.base = offset;
    this.end = kept;
    const want = Math.min(
      this.bytes.length,
      this.size - offset,
      Math.max(n, this.#readAheadBytes),
    );
    this.#readAheadBytes = Math.min(
      this.#readAheadBytes * 2,
      this.bytes.length,
    );
    while (this.end < n) {
      const got = await this.file.readAt(
        offset + this.end,
        this.bytes.subarray(this.end, want),
      );
      if (got <= 0) {
        throw new Error(
          `short read at offset ${
            offset + this.end
          } of a ${this.size}-byte file`,
        );
      }
      this.end += got;
    }
  }

  /**
   * Whether every byte of the file from `offset` on is zero, up to
   * `maxBytes` past it.
   */
  async zerosFrom(offset: number, maxBytes = Infinity): Promise<boolean> {
    const stop = Math.min(this.size, offset + maxBytes);
    for (let at = offset; at < stop;) {
      const n = Math.min(this.bytes.length, stop - at);
      this.base = at;
      this.end = 0;
      await this.ensure(at, n);
      // 4 bytes at a time over the aligned part, then the rest.
      const words = new Int32Array(this.bytes.buffer, 0, n >> 2);
      for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
      for (let i = n & ~3; i < n; i++) if (this.bytes[i] !== 0) return false;
      at += n;
    }
    return true;
  }
}
