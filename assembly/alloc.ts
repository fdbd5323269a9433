// The module's own allocator over wasm linear memory.
//
// Why not AssemblyScript's runtime allocator: the module is compiled with
// `--runtime stub` (no GC, no managed objects), and the B+tree and the WAL
// codec need nothing but raw blocks of bytes whose lifetime they manage
// themselves. A size-class allocator with free lists on top of a bump arena is
// the smallest thing that reuses freed bytes, which is what compaction needs:
// memory given back by deleted keys and merged nodes must serve the next
// inserts, so a compacted store stops growing.
//
// Layout of linear memory:
//
//   0 .. __heap_base          static data (AssemblyScript's, plus the free
//                             list table and other `memory.data` regions)
//   __heap_base .. top        the arena: blocks handed out by `alloc`, some of
//                             them sitting on free lists
//   top .. memory.size()      not yet used; `alloc` bumps `top` into it and
//                             grows memory when it runs out
//
// Size classes (every block is 8-byte aligned and at least 8 bytes):
//
//   requested size   class size                      free-list index
//   1 .. 4096        rounded up to a multiple of 8   size / 8        (1..512)
//   4097 .. 2^31     rounded up to a power of two    512 + log2(size) (525..543)
//
// Worked example: alloc(20) hands out a 24-byte block (class 3). free(p, 20)
// pushes it on list 3 — the first 4 bytes of a free block hold the next free
// block's address — and the next alloc(17..24) pops it again. A 1.5 MiB key
// (alloc(1572868)) takes a 2 MiB block from list 533.
//
// Ownership: a block belongs to whoever called `alloc` until it calls
// `free(ptr, size)` with the same size it asked for (the allocator keeps no
// per-block header, so the caller must remember the size). Blocks are never
// returned to the host: wasm memory cannot shrink, but freed blocks are reused.

/** Largest request served by the fine-grained (8-byte step) classes. */
const SMALL_MAX: u32 = 4096;
/** Number of free-list heads: 513 small classes + 32 power-of-two classes. */
const CLASS_COUNT: u32 = 576;
/** Memory is grown by at least this many 64 KiB pages, so that a run of
 * small allocations does not call `memory.grow` (which detaches every JS view
 * of the memory) over and over. */
const GROW_PAGES_MIN: i32 = 16;

/** Free-list heads, one u32 address per size class (0 = empty list). */
const freeTable: usize = memory.data(CLASS_COUNT << 2, 8);

/** First never-allocated byte of the arena (0 until the first alloc). */
let top: usize = 0;
/** Bytes in blocks currently handed out (by class size, not request size). */
let liveBytes: usize = 0;

/** Set when memory could not grow; the caller traps right after. */
export let outOfMemory: i32 = 0;

/** Class size for a request of `size` bytes. */

export function blockSize(size: usize): usize {
  if (size <= SMALL_MAX) {
    const rounded = (size + 7) & ~(<usize> 7);
    return rounded < 8 ? 8 : rounded;
  }
  return (<usize> 1) << (<usize> 32 - clz<u32>(<u32> size - 1));
}

/** Free-list index for a class size as returned by `blockSize`. */

function classIndex(blockBytes: usize): usize {
  if (blockBytes <= SMALL_MAX) return blockBytes >> 3;
  return 512 + <usize> ctz<u32>(<u32> blockBytes);
}

/** Allocates a block of at least `size` bytes (8-byte aligned). Traps when
 * memory cannot grow (after setting `outOfMemory`). */
export function alloc(size: usize): usize {
  if (size > 0x80000000) {
    outOfMemory = 1;
    unreachable();
  }
  const bytes = blockSize(size);
  const slot = freeTable + (classIndex(bytes) << 2);
  const head = <usize> load<u32>(slot);
  liveBytes += bytes;
  if (head != 0) {
    store<u32>(slot, load<u32>(head));
    return head;
  }
  if (top == 0) top = (__heap_base + 7) & ~(<usize> 7);
  const ptr = top;
  const end = ptr + bytes;
  const have = (<usize> memory.size()) << 16;
  if (end > have || end < ptr) grow(end - have, end < ptr);
  top = end;
  return ptr;
}

function grow(missingBytes: usize, overflow: bool): void {
  const current = memory.size();
  let pages = <i32> ((missingBytes + 0xffff) >> 16);
  // Grow geometrically (by a quarter) to amortize the cost, but never past
  // what wasm32 can address.
  let extra = current >> 2;
  if (extra < GROW_PAGES_MIN) extra = GROW_PAGES_MIN;
  if (pages < extra && current + extra <= 65536) pages = extra;
  if (overflow || current + pages > 65536 || memory.grow(pages) < 0) {
    outOfMemory = 1;
    unreachable();
  }
}

/** Returns a block to its size class. `size` must be the size passed to the
 * `alloc` call that returned `ptr`. */
export function free(ptr: usize, size: usize): void {
  const bytes = blockSize(size);
  const slot = freeTable + (classIndex(bytes) << 2);
  store<u32>(ptr, load<u32>(slot));
  store<u32>(slot, <u32> ptr);
  liveBytes -= bytes;
}

/** Bytes in blocks currently handed out. */
export function allocLiveBytes(): usize {
  return liveBytes;
}
