/**
 * The wasm half of the WAL codec behind the storage's `WalEncoder`
 * interface, and CRC32C in wasm: the only code that handles the codec's
 * pointers into wasm memory.
 *
 * Encoding a batch: `walReserve(total)` returns the batch region's address
 * (this may grow memory, so the views are re-derived after it); the frames'
 * lengths, types and payloads are written there from JS (keys and values
 * live in JS); then one `walSeal` call zeroes the padding and computes every
 * chained crc of the batch. The encoded bytes are a view of wasm memory,
 * valid until the next call on this encoder.
 *
 * Each encoder has its own wasm instance (own memory), so the B+tree's
 * memory growth never detaches these views, and vice versa.
 *
 * @module
 */

import { instantiateRevkv, type RevkvExports } from "./instance.ts";
import {
  frameBytes,
  type WalEncoder,
  type WalRecord,
  writeFrameBodies,
} from "../storage/wal_codec.ts";

/** The WAL exports of the module (see assembly/wal.ts). */
interface WalExports {
  walReserve(bytes: number): number;
  walSeal(ptr: number, len: number, prevCrc: number): number;
  walVerify(ptr: number, len: number, prevCrc: number): number;
  walVerifiedCrc(): number;
  walCrc32c(ptr: number, len: number, crc: number): number;
}

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

/** The WAL encoder with framing and CRC32C in wasm. */
export class WasmWalEncoder implements WalEncoder {
  readonly #wasm: RevkvExports & WalExports;
  readonly #mem: MemoryViews;

  constructor() {
    const { wasm, mem } = instantiate();
    this.#wasm = wasm;
    this.#mem = mem;
  }

  encode(
    records: readonly WalRecord[],
    prevCrc: number,
  ): { bytes: Uint8Array; crc: number } {
    let total = 0;
    for (const record of records) total += frameBytes(record);
    const ptr = this.#wasm.walReserve(total);
    const { bytes, view } = this.#mem.refresh(); // walReserve may have grown memory
    writeFrameBodies(records, bytes, view, ptr, total);
    const crc = this.#wasm.walSeal(ptr, total, prevCrc >>> 0) >>> 0;
    return { bytes: this.#mem.refresh().bytes.subarray(ptr, ptr + total), crc };
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
