/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven
 * slice-by-8 in plain TypeScript.
 *
 * This is the JS baseline the wasm CRC32C is measured against, and the
 * checksum of the TypeScript WAL codec. Both produce the same values as
 * etcd's `crc32.MakeTable(crc32.Castagnoli)` (check value of "123456789" is
 * 0xE3069283).
 *
 * Chaining: `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`, which is what lets
 * every WAL frame's checksum start from the previous frame's.
 *
 * @module
 */

/** 8 tables of 256 entries: table k maps a byte to its CRC after k more zero bytes. */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n]!;
    for (let t = 1; t < 8; t++) {
      c = tables[c & 0xff]! ^ (c >>> 8);
      tables[t * 256 + n] = c >>> 0;
    }
  }
  return tables;
}

/**
 * CRC32C of `bytes[start, end)`, continuing from `crc` (0 for a fresh sum).
 *
 * @param bytes the data.
 * @param crc the CRC of the bytes before (chaining); 0 to start.
 * @param start first byte (default 0).
 * @param end end byte, exclusive (default `bytes.length`).
 * @returns the CRC32C as an unsigned 32-bit number.
 */
export function crc32c(
  bytes: Uint8Array,
  crc = 0,
  start = 0,
  end: number = bytes.length,
): number {
  const t = TABLES;
  let c = ~crc;
  let i = start;
  // Slice-by-8: fold 8 bytes per step through 8 independent table lookups.
  const end8 = end - ((end - i) & 7);
  while (i < end8) {
    const lo = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) |
      (bytes[i + 3]! << 24));
    c = t[1792 + (lo & 0xff)]! ^ t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^ t[1024 + (lo >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^ t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^ t[bytes[i + 7]!]!;
    i += 8;
  }
  while (i < end) c = t[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
