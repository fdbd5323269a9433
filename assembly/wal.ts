// The WAL codec's wasm half: sealing a batch of frames.
//
// Frame layout (little-endian; the full description with every record's
// payload is in src/storage/wal_codec.ts):
//
//   offset  size  field
//   0       4     payloadLength
//   4       1     type            (1 = segment header: its crc starts from 0)
//   5       3     reserved        zero
//   8       4     crc             CRC32C of bytes [0, 8) ++ payload, chained
//                                 from the previous frame's crc
//   12      n     payload
//   12+n    pad   zero up to a multiple of 8
//
// Ownership: the batch region belongs to this module. `walReserve` hands its
// address to src/wasm/wal.ts, which writes each frame's length, type and
// payload there (the keys and values come from JS), then calls `walSeal` once
// for the whole batch: one boundary crossing per batch, whatever its size.
// Recovery verifies frames in TypeScript (src/storage/wal_codec.ts), where
// the bytes read from disk already are.

import { alloc, free } from "./alloc";
import { crc32c } from "./crc32c";

const HEADER: usize = 12;
const TYPE_SEGMENT: u8 = 1;

let region: usize = 0;
let regionBytes: usize = 0;

/** A region of at least `bytes` bytes for a batch (reused; may grow memory). */
export function walReserve(bytes: u32): usize {
  if (<usize> bytes > regionBytes) {
    if (region != 0) free(region, regionBytes);
    let size: usize = 64 * 1024;
    while (size < <usize> bytes) size <<= 1;
    region = alloc(size);
    regionBytes = size;
  }
  return region;
}

/**
 * Seals the frames in [ptr, ptr+len): zeroes the reserved bytes and the
 * padding, computes each chained crc and stores it. Returns the last crc,
 * or traps (unreachable) if a length runs past `len` (a wrapper bug).
 */
export function walSeal(ptr: usize, len: usize, prevCrc: u32): u32 {
  let crc = prevCrc;
  let p = ptr;
  const end = ptr + len;
  while (p < end) {
    const length = <usize> load<u32>(p);
    const type = load<u8>(p + 4);
    store<u8>(p + 5, 0);
    store<u16>(p + 6, 0);
    const frame = (HEADER + length + 7) & ~(<usize> 7);
    if (p + frame > end) unreachable();
    for (let q = p + HEADER + length; q < p + frame; q++) store<u8>(q, 0);
    if (type == TYPE_SEGMENT) crc = 0;
    crc = crc32c(p, 8, crc);
    crc = crc32c(p + HEADER, length, crc);
    store<u32>(p + 8, crc);
    p += frame;
  }
  return crc;
}

/** CRC32C of `len` bytes at `ptr` from `crc` (for the benchmark and tests). */
export function walCrc32c(ptr: usize, len: usize, crc: u32): u32 {
  return crc32c(ptr, len, crc);
}
