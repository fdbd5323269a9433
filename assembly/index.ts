// The entry of revkv's wasm module: the ABI seen by src/wasm/.
//
// Every export here is wrapped exactly once, in src/wasm/ (see
// docs/ARCHITECTURE.md, "The wasm boundary"); nothing else in the code base calls them or handles the
// addresses they take and return. Addresses are byte offsets into the
// module's exported `memory`. Calls that allocate (btreeSet, btreeDelete,
// reserve) may grow that memory, which detaches every JS view of it.
//
// The WAL codec (wal.ts, crc32c.ts) adds its exports below.

export {
  btreeCheck,
  btreeCount,
  btreeDelete,
  btreeGet,
  btreeGetOrSet,
  btreeNodes,
  btreeScan,
  btreeScanReverse,
  btreeSet,
  checkDetails,
  liveBytes,
  reserve,
} from "./btree";
export { outOfMemory } from "./alloc";
export { walCrc32c, walReserve, walSeal } from "./wal";
