/**
 * The wasm half of the WAL codec, and CRC32C in wasm: the only code that
 * handles the codec's pointers into wasm memory. It knows frames only as
 * the wasm module does (length, type, chained crc; see assembly/wal.ts);
 * what a record's payload holds is the storage's (`src/storage/wal_codec.ts`),
 * which passes its body writer in, so this folder imports nothing above it.
 *
 * Sealing a batch: `walReserve(total)` returns the batch region's address
 * (this may grow memory, so the views are re-derived after it); the caller's
 * `writeBodies` writes the frames' lengths, types and payloads there (keys
 * and values live in JS); then one `walSeal` call zeroes the padding and
 * computes every chained crc of the batch. The sealed bytes are a view of
 * wasm memory, valid until the next call on this sealer.
 *
 * Each sealer has its own wasm instance (own memory), so the B+tree's
 * memory growth never detaches these views, and vice versa.
 *
 * @module
 */

import { instantiateRevkv, type RevkvExports } from "./instance.ts";

/** The WAL exports of the module (see assembly/wal.ts). */
interface WalExports {
  walReserve(bytes: number): number;
  walSeal(ptr: number, len: number, prevCrc: number): number;
  walCrc32c(ptr: number, len: number, crc: number): number;
}

/**
 * Writes a batch's frames without their crcs into `bytes` (through `view`,
 * over the same memory) from `offset` on: each frame's 4-byte little-endian
 * payload length, its type byte, and its payload, at 8-byte aligned offsets.
 */
export type FrameBodyWriter = (
  bytes: Uint8Array,
  view: DataView,
  offset: number,
) => void;

/** Views of an instance's memory, re-derived whenever it grew. */
class MemoryViews {
  #buffer: ArrayBufferLike | undefined;
  bytes: Uint8Array = new Uint8Array(0);
  view: DataView = new DataView(new ArrayBuffer(0));

  constructor(readonly memory: WebAssembly.Memory) {}

  /** Current views (after any call that may have grown memory). */
  refresh(): this {
    const buffer = this.memory.buffer;
    if (buffer !== this.#buffer) {
      this.#buffer = buffer;
      this.bytes = new Uint8Array(buffer);
      this.view = new DataView(buffer);
    }
    return this;
  }
}

function instantiate(): { wasm: RevkvExports & WalExports; mem: MemoryViews } {
  const wasm = instantiateRevkv() as RevkvExports & WalExports;
  return { wasm, mem: new MemoryViews(wasm.memory) };
}

/** Seals batches of WAL frames (padding and chained CRC32C) in wasm. */
export class WasmFrameSealer {
  readonly #wasm: RevkvExports & WalExports;
  readonly #mem: MemoryViews;

  constructor() {
    const { wasm, mem } = instantiate();
    this.#wasm = wasm;
    this.#mem = mem;
  }

  /**
   * Seals a batch of `totalBytes` (a multiple of 8) whose frames
   * `writeBodies` writes, the first frame's crc chained from `prevCrc`.
   * Returns the sealed bytes (valid until the next call) and the crc of the
   * last frame.
   */
  seal(
    totalBytes: number,
    prevCrc: number,
    writeBodies: FrameBodyWriter,
  ): { bytes: Uint8Array; crc: number } {
    const ptr = this.#wasm.walReserve(totalBytes);
    const { bytes, view } = this.#mem.refresh(); // walReserve may have grown memory
    writeBodies(bytes, view, ptr);
    const crc = this.#wasm.walSeal(ptr, totalBytes, prevCrc >>> 0) >>> 0;
    return {
      bytes: this.#mem.refresh().bytes.subarray(ptr, ptr + totalBytes),
      crc,
    };
  }
}

/** CRC32C in wasm over JS bytes (copied into wasm memory in chunks). */
export class WasmCrc32c {
  readonly #wasm: RevkvExports & WalExports;
  readonly #mem: MemoryViews;
  static readonly CHUNK_BYTES = 1024 * 1024;

  constructor() {
    const { wasm, mem } = instantiate();
    this.#wasm = wasm;
    this.#mem = mem;
  }

  /** CRC32C of `data`, continuing from `crc`. */
  crc32c(data: Uint8Array, crc = 0): number {
    const chunk = WasmCrc32c.CHUNK_BYTES;
    const ptr = this.#wasm.walReserve(Math.min(chunk, data.length));
    const bytes = this.#mem.refresh().bytes;
    let c = crc >>> 0;
    for (let at = 0; at < data.length; at += chunk) {
      const part = data.subarray(at, Math.min(data.length, at + chunk));
      bytes.set(part, ptr);
      c = this.#wasm.walCrc32c(ptr, part.length, c) >>> 0;
    }
    return c;
  }

  /**
   * CRC32C of bytes already in this instance's memory (no copy): writes
   * `data` once, then sums it `times` times (the benchmark's in-place rate).
   */
  crc32cInPlace(data: Uint8Array, times: number): number {
    const ptr = this.#wasm.walReserve(data.length);
    this.#mem.refresh().bytes.set(data, ptr);
    let c = 0;
    for (let i = 0; i < times; i++) {
      c = this.#wasm.walCrc32c(ptr, data.length, 0) >>> 0;
    }
    return c;
  }
}
