// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8.
//
// The same function as src/storage/crc32c.ts (the JS baseline), over bytes in
// linear memory. `crc` is the running value (0 to start); chaining
// crc32c(b, crc32c(a)) equals crc32c(a ++ b), which the WAL uses to chain
// every frame from the one before.
//
// Memory: one static 8 KiB table region (8 tables × 256 u32), filled on the
// first call. Table k maps a byte to its CRC after k further zero bytes, so
// eight bytes fold in with eight independent lookups per step.

/** 8 × 256 u32 lookup tables. */
const TABLES: usize = memory.data(8 * 256 * 4, 8);
let tablesReady: bool = false;

function buildTables(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c: u32 = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    store<u32>(TABLES + (n << 2), c);
  }
  for (let n: u32 = 0; n < 256; n++) {
    let c = load<u32>(TABLES + (n << 2));
    for (let t: u32 = 1; t < 8; t++) {
      c = load<u32>(TABLES + ((c & 0xff) << 2)) ^ (c >>> 8);
      store<u32>(TABLES + (((t << 8) + n) << 2), c);
    }
  }
  tablesReady = true;
}

// @ts-ignore: decorator
function tab(t: u32, i: u32): u32 {
  return load<u32>(TABLES + (((t << 8) + i) << 2));
}

/** CRC32C of `len` bytes at `ptr`, continuing from `crc`. */
export function crc32c(ptr: usize, len: usize, crc: u32): u32 {
  if (!tablesReady) buildTables();
  let c: u32 = ~crc;
  let p = ptr;
  const end = ptr + len;
  const end8 = end - ((end - p) & 7);
  while (p < end8) {
    const lo = c ^ load<u32>(p);
    const hi = load<u32>(p + 4);
    c = tab(7, lo & 0xff) ^ tab(6, (lo >>> 8) & 0xff) ^
      tab(5, (lo >>> 16) & 0xff) ^ tab(4, lo >>> 24) ^
      tab(3, hi & 0xff) ^ tab(2, (hi >>> 8) & 0xff) ^
      tab(1, (hi >>> 16) & 0xff) ^ tab(0, hi >>> 24);
    p += 8;
  }
  while (p < end) {
    c = tab(0, (c ^ <u32> load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
  }
  return ~c;
}
