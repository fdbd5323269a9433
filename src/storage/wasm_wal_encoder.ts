/**
 * The WAL encoder revkv uses by default: the storage's record layout
 * (`wal_codec.ts` writes each frame's length, type and payload) sealed in
 * wasm (`src/wasm/wal.ts` pads the frames and chains their CRC32C in one
 * call per batch). Byte for byte the output of `TsWalEncoder`.
 *
 * It lives here, not in `src/wasm/`, so that the wasm wrapper knows nothing
 * of records and depends on nothing above it.
 *
 * @module
 */

import { WasmFrameSealer } from "../wasm/wal.ts";
import {
  frameBytes,
  type WalEncoder,
  type WalRecord,
  writeFrameBodies,
} from "./wal_codec.ts";

/** The WAL encoder with framing and CRC32C in wasm. */
export class WasmWalEncoder implements WalEncoder {
  readonly #sealer = new WasmFrameSealer();

  encode(
    records: readonly WalRecord[],
    prevCrc: number,
  ): { bytes: Uint8Array; crc: number } {
    let total = 0;
    for (const record of records) total += frameBytes(record);
    return this.#sealer.seal(
      total,
      prevCrc,
      (bytes, view, offset) =>
        writeFrameBodies(records, bytes, view, offset, total),
    );
  }
}
