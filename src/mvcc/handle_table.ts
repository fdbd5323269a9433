/**
 * The engine's table from tree handle to key index: an array that grows a
 * block at a time.
 *
 * Why not one JS array: growing an array of a million slots copies it into
 * a fresh backing store half again as large, and fresh memory is what costs
 * on the VMs measured (~5 ms per MB at first touch): the first new key
 * after opening a 1M-key store waited ~40 ms for that copy, and recovery
 * paid it at every growth. Blocks of `HANDLE_BLOCK_SLOTS` are allocated as
 * needed (only those holding a set slot: cold keys' handles have none) and
 * never copied. Reads never index past the end of an array (V8's slow path).
 *
 * @module
 */

/** Slots per block. */
export const HANDLE_BLOCK_SLOTS = 1 << 14;
const SHIFT = 14;
const MASK = HANDLE_BLOCK_SLOTS - 1;

/** Values by small integer (handle), with `undefined` for empty slots. */
export class HandleTable<T> {
  readonly #blocks: ((T | undefined)[] | undefined)[] = [];
  #length = 0;

  /** One more than the largest handle set so far. */
  get length(): number {
    return this.#length;
  }

  /** The value at `handle`, or undefined. */
  get(handle: number): T | undefined {
    const b = handle >>> SHIFT;
    if (b >= this.#blocks.length) return undefined;
    const block = this.#blocks[b];
    return block === undefined ? undefined : block[handle & MASK];
  }

  /** Sets the value at `handle` (undefined empties the slot). */
  set(handle: number, value: T | undefined): void {
    const b = handle >>> SHIFT;
    while (b >= this.#blocks.length) this.#blocks.push(undefined);
    let block = this.#blocks[b];
    if (block === undefined) {
      if (value === undefined) return this.claim(handle);
      block = new Array(HANDLE_BLOCK_SLOTS).fill(undefined);
      this.#blocks[b] = block;
    }
    block[handle & MASK] = value;
    if (handle >= this.#length) this.#length = handle + 1;
  }

  /** Counts `handle` as used while its slot stays empty (a cold key's). */
  claim(handle: number): void {
    if (handle >= this.#length) this.#length = handle + 1;
  }

  /** Calls `visit` for every value that is set, in handle order. */
  forEach(visit: (value: T, handle: number) => void): void {
    for (let b = 0; b < this.#blocks.length; b++) {
      const block = this.#blocks[b];
      if (block === undefined) continue;
      const end = Math.min(
        HANDLE_BLOCK_SLOTS,
        this.#length - b * HANDLE_BLOCK_SLOTS,
      );
      for (let i = 0; i < end; i++) {
        const value = block[i];
        if (value !== undefined) visit(value, b * HANDLE_BLOCK_SLOTS + i);
      }
    }
  }
}
