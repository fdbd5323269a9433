/**
 * The compiled revkv wasm module and its instances.
 *
 * The `WebAssembly.Module` is compiled once per process, synchronously, on
 * first use; every store then instantiates its own `WebAssembly.Instance`
 * (its own linear memory), which is cheap. Only the wrappers in `src/wasm/`
 * use this file.
 *
 * @module
 */

import { wasmBytes } from "./_revkv_wasm.ts";

/** The raw ABI of the module (see assembly/index.ts). Addresses are byte
 * offsets into `memory`. */
export interface RevkvExports {
  /** The module's linear memory; growing it detaches every view. */
  readonly memory: WebAssembly.Memory;
  /** 1 after the allocator failed to grow memory (the call then trapped). */
  readonly outOfMemory: WebAssembly.Global;
  btreeSet(keyPtr: number, keyLen: number, handle: number): number;
  btreeGet(keyPtr: number, keyLen: number): number;
  btreeGetOrSet(keyPtr: number, keyLen: number, handle: number): number;
  btreeDelete(keyPtr: number, keyLen: number): number;
  btreeCount(): number;
  btreeNodes(): number;
  btreeScan(
    startPtr: number,
    startLen: number,
    startInclusive: number,
    endPtr: number,
    endLen: number,
    max: number,
    outPtr: number,
  ): number;
  btreeScanReverse(
    lowerPtr: number,
    lowerLen: number,
    upperPtr: number,
    upperLen: number,
    upperInclusive: number,
    max: number,
    outPtr: number,
  ): number;
  btreeCheck(): number;
  checkDetails(): number;
  liveBytes(): number;
  reserve(slot: number, bytes: number): number;
}

let compiled: WebAssembly.Module | undefined;

/** The compiled module, compiled on first call. */
export function revkvModule(): WebAssembly.Module {
  if (compiled === undefined) {
    compiled = new WebAssembly.Module(wasmBytes() as BufferSource);
  }
  return compiled;
}

/** A fresh instance of the module, with its own memory. */
export function instantiateRevkv(): RevkvExports {
  const instance = new WebAssembly.Instance(revkvModule(), {});
  return instance.exports as unknown as RevkvExports;
}
