// A B+tree over byte-string keys mapped to u32 handles, in wasm linear memory.
//
// Keys are arbitrary byte strings (0 .. 2^30 bytes) ordered like Go's
// bytes.Compare: byte-wise unsigned comparison of the common length, then the
// shorter key first. The value of a key is a u32 "handle" that the TypeScript
// side gives meaning to (an index into its revision store). One tree per wasm
// instance: the root lives in a global.
//
// ## Who owns which bytes
//
// - A *key block* holds one key: [u32 length][bytes]. Every key in a leaf has
//   its own block, owned by that leaf slot; it is freed when the key is
//   deleted. Internal nodes own their own separator blocks (never shared with
//   leaves), so deleting a leaf key never leaves a dangling separator.
// - A *node* is one fixed-size block (NODE_BYTES), owned by its parent's child
//   slot (the root by the `root` global).
// - Two scratch regions (slot 0: input keys, slot 1: scan output) are owned by
//   the host wrapper, which sizes them through `reserve`; the tree only reads
//   keys from them and writes handles into them.
//
// ## Node layout (CAP = 64: NODE_BYTES = 64 + 12*64 + 4 = 836)
//
//   offset        size       field
//   0             u32        flags: bit 0 = leaf
//   4             u32        count n: keys (leaf) or separators (internal)
//   8             u32        prefixLen p: bytes every key of the node starts with
//   12            u32        next leaf (leaf only; 0 = none)
//   16            u32        previous leaf (leaf only; 0 = none)
//   20            u32        reserved
//   24            40 bytes   the prefix bytes (p <= PREFIX_MAX = 40)
//   64            CAP x u32  heads: bytes p..p+3 of each key as a big-endian
//                            u32 (missing bytes read as 0)
//   64+4CAP       CAP x u32  key block addresses
//   64+8CAP       CAP x u32  handles (leaf), or CAP+1 child addresses (internal)
//
// The prefix is stored once per node and a lookup compares it once; the
// binary search then runs over the compact heads array (4 bytes per key, 16
// keys per cache line) without touching the key blocks. Only keys whose head
// equals the searched head are compared in full. The prefix is a common prefix
// of the node's keys, not necessarily the longest: it is recomputed when a node
// is split, merged or rebalanced, and shrunk when an insert at either end of
// the node brings a key that does not share it (keys are sorted, so a key
// inserted between two others always shares their common prefix).
//
// Worked example, a leaf holding "/app/a", "/app/b1", "/app/b2\x00\xff":
//
//   count=3 prefixLen=5 prefix="/app/"
//   heads = [0x61000000 ("a"), 0x62310000 ("b1"), 0x623200ff ("b2\0\xff")]
//   keys  = [&"/app/a", &"/app/b1", &"/app/b2\0\xff"]   (6, 7 and 9 byte blocks)
//   vals  = [h1, h2, h3]
//
// A search for "/app/b2" compares "/app/" (equal), computes its head
// 0x62320000, binary-searches the heads to index 2 (0x623200ff > 0x62320000)
// and never reads a key block. A search for "/apz" differs inside the prefix
// ('z' > 'p'), so it is past every key of the node without any search.
//
// Internal nodes have n separators and n+1 children; child i holds the keys k
// with sep[i-1] <= k < sep[i]. Separators are the shortest byte strings
// between the last key of the left subtree and the first of the right one
// (suffix truncation), which keeps them short and their heads decisive.
//
// Fill: nodes hold at most CAP entries. A node that drops below MIN_FILL after
// a delete merges with a sibling when both fit in one node, else takes entries
// from it, so memory of emptied nodes is freed. The rightmost leaf splits so
// that the left half stays full when a key is appended at the very end (an
// ascending insert run fills leaves instead of leaving them half empty);
// therefore the checked invariant for non-root nodes is 1 <= n <= CAP.

import { alloc, allocLiveBytes, blockSize, free } from "./alloc";

const CAP: u32 = 64;
/** Below this many entries a non-root node is merged or refilled. A quarter
 * (not a half) avoids merge/split ping-pong on alternating insert/delete. */
const MIN_FILL: u32 = CAP / 4;
const PREFIX_MAX: u32 = 40;
/** Tree height bound: with CAP 64 even a minimally filled tree of 2^32 keys
 * is far below this. */
const DEPTH_MAX: u32 = 32;

const F_FLAGS: usize = 0;
const F_COUNT: usize = 4;
const F_PLEN: usize = 8;
const F_NEXT: usize = 12;
const F_PREV: usize = 16;
const F_PREFIX: usize = 24;
const F_HEADS: usize = 64;
const F_KEYS: usize = F_HEADS + (<usize> CAP << 2);
const F_VALS: usize = F_KEYS + (<usize> CAP << 2);
const NODE_BYTES: usize = F_VALS + ((<usize> CAP + 1) << 2);

// Path recorded by insert/delete: node address and child index per level.
const pathNodes: usize = memory.data(<i32> DEPTH_MAX << 2, 4);
const pathIdx: usize = memory.data(<i32> DEPTH_MAX << 2, 4);

let root: usize = 0;
let keyCount: u32 = 0;
let nodeCount: u32 = 0;

// ---------------------------------------------------------------------------
// Node field access

function isLeaf(n: usize): bool {
  return (load<u32>(n + F_FLAGS) & 1) != 0;
}

function cnt(n: usize): u32 {
  return load<u32>(n + F_COUNT);
}

function setCnt(n: usize, c: u32): void {
  store<u32>(n + F_COUNT, c);
}

function keyAt(n: usize, i: u32): usize {
  return <usize> load<u32>(n + F_KEYS + (<usize> i << 2));
}

function setKey(n: usize, i: u32, kb: usize): void {
  store<u32>(n + F_KEYS + (<usize> i << 2), <u32> kb);
}

function valAt(n: usize, i: u32): u32 {
  return load<u32>(n + F_VALS + (<usize> i << 2));
}

function setVal(n: usize, i: u32, v: u32): void {
  store<u32>(n + F_VALS + (<usize> i << 2), v);
}

function childAt(n: usize, i: u32): usize {
  return <usize> load<u32>(n + F_VALS + (<usize> i << 2));
}

function headAt(n: usize, i: u32): u32 {
  return load<u32>(n + F_HEADS + (<usize> i << 2));
}

function kbLen(kb: usize): u32 {
  return load<u32>(kb);
}

function newNode(leaf: bool): usize {
  const n = alloc(NODE_BYTES);
  memory.fill(n, 0, F_HEADS);
  store<u32>(n + F_FLAGS, leaf ? 1 : 0);
  nodeCount++;
  return n;
}

function freeNode(n: usize): void {
  free(n, NODE_BYTES);
  nodeCount--;
}

function newKeyBlock(k: usize, klen: u32): usize {
  const kb = alloc(<usize> klen + 4);
  store<u32>(kb, klen);
  memory.copy(kb + 4, k, klen);
  return kb;
}

function freeKeyBlock(kb: usize): void {
  free(kb, <usize> kbLen(kb) + 4);
}

// ---------------------------------------------------------------------------
// Byte comparison

/** memcmp: <0, 0, >0 over n bytes, unsigned, 8 bytes at a time. */
function cmpBytes(a: usize, b: usize, n: usize): i32 {
  let i: usize = 0;
  while (i + 8 <= n) {
    const x = load<u64>(a + i);
    const y = load<u64>(b + i);
    if (x != y) return bswap<u64>(x) < bswap<u64>(y) ? -1 : 1;
    i += 8;
  }
  while (i < n) {
    const x = load<u8>(a + i);
    const y = load<u8>(b + i);
    if (x != y) return x < y ? -1 : 1;
    i++;
  }
  return 0;
}

/** bytes.Compare(a, b), skipping the first `from` bytes known to be equal. */
function cmpKeys(a: usize, alen: u32, b: usize, blen: u32, from: u32): i32 {
  const m = alen < blen ? alen : blen;
  if (from < m) {
    const c = cmpBytes(a + from, b + from, m - from);
    if (c != 0) return c;
  }
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/** Length of the common prefix of a and b, at most `max`. */
function commonPrefix(a: usize, alen: u32, b: usize, blen: u32, max: u32): u32 {
  let m = alen < blen ? alen : blen;
  if (m > max) m = max;
  let i: u32 = 0;
  while (i + 8 <= m && load<u64>(a + i) == load<u64>(b + i)) i += 8;
  while (i < m && load<u8>(a + i) == load<u8>(b + i)) i++;
  return i;
}

/** Bytes p..p+3 of the key as a big-endian u32, missing bytes as 0. */
function headOf(k: usize, klen: u32, p: u32): u32 {
  if (klen >= p + 4) return bswap<u32>(load<u32>(k + p));
  let h: u32 = 0;
  for (let i: u32 = 0; i < 4; i++) {
    h <<= 8;
    if (p + i < klen) h |= <u32> load<u8>(k + p + i);
  }
  return h;
}

// ---------------------------------------------------------------------------
// Search inside one node

/**
 * First index i in [0, n] whose key is >= k (strict: > k). For an internal
 * node with strict = true this is the child that may hold k.
 */
function searchNode(node: usize, k: usize, klen: u32, strict: bool): u32 {
  const n = cnt(node);
  const p = load<u32>(node + F_PLEN);
  if (p != 0) {
    const m = klen < p ? klen : p;
    const c = cmpBytes(k, node + F_PREFIX, m);
    if (c != 0) return c < 0 ? 0 : n;
    // k is a proper prefix of the node's prefix: shorter, so before all keys.
    if (klen < p) return 0;
  }
  const h = headOf(k, klen, p);
  const heads = node + F_HEADS;
  // First head >= h.
  let lo: u32 = 0;
  let hi: u32 = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (load<u32>(heads + (<usize> mid << 2)) < h) lo = mid + 1;
    else hi = mid;
  }
  if (lo == n || load<u32>(heads + (<usize> lo << 2)) != h) return lo;
  // Keys lo.. share the head; compare them in full (binary search, the run
  // of equal heads is sorted too).
  let end = lo + 1;
  while (end < n && load<u32>(heads + (<usize> end << 2)) == h) end++;
  const from = p + 4 < klen ? p + 4 : (p < klen ? p : klen);
  hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const kb = keyAt(node, mid);
    const klenB = kbLen(kb);
    const f = from < klenB ? from : klenB;
    const c = cmpKeys(kb + 4, klenB, k, klen, f);
    if (c < 0 || (strict && c == 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Recomputes the node's prefix and every head from its keys. */
function rebuildNode(node: usize): void {
  const n = cnt(node);
  let p: u32 = 0;
  if (n > 0) {
    const first = keyAt(node, 0);
    const last = keyAt(node, n - 1);
    p = commonPrefix(
      first + 4,
      kbLen(first),
      last + 4,
      kbLen(last),
      PREFIX_MAX,
    );
    memory.copy(node + F_PREFIX, first + 4, p);
  }
  store<u32>(node + F_PLEN, p);
  for (let i: u32 = 0; i < n; i++) {
    const kb = keyAt(node, i);
    store<u32>(node + F_HEADS + (<usize> i << 2), headOf(kb + 4, kbLen(kb), p));
  }
}

/** Stores key block kb at index i (slot already made) and fixes its head, or
 * the whole node when kb does not share the node's prefix. */
function placeKey(node: usize, i: u32, kb: usize): void {
  setKey(node, i, kb);
  const p = load<u32>(node + F_PLEN);
  const len = kbLen(kb);
  if (len >= p && (p == 0 || cmpBytes(kb + 4, node + F_PREFIX, p) == 0)) {
    store<u32>(node + F_HEADS + (<usize> i << 2), headOf(kb + 4, len, p));
  } else {
    rebuildNode(node);
  }
}

/** Opens a gap of one slot at index i in heads, keys and vals/children
 * (`extra` = 1 for internal nodes, which have one more child than keys). */
function openSlot(
  node: usize,
  i: u32,
  n: u32,
  valShiftFrom: u32,
  extra: u32,
): void {
  const heads = node + F_HEADS + (<usize> i << 2);
  memory.copy(heads + 4, heads, <usize> (n - i) << 2);
  const keys = node + F_KEYS + (<usize> i << 2);
  memory.copy(keys + 4, keys, <usize> (n - i) << 2);
  const vals = node + F_VALS + (<usize> valShiftFrom << 2);
  memory.copy(vals + 4, vals, <usize> (n + extra - valShiftFrom) << 2);
}

/** Closes the slot at index i in heads and keys, and slot j in vals. */
function closeSlot(node: usize, i: u32, j: u32, n: u32, extra: u32): void {
  const heads = node + F_HEADS + (<usize> i << 2);
  memory.copy(heads, heads + 4, <usize> (n - i - 1) << 2);
  const keys = node + F_KEYS + (<usize> i << 2);
  memory.copy(keys, keys + 4, <usize> (n - i - 1) << 2);
  const vals = node + F_VALS + (<usize> j << 2);
  memory.copy(vals, vals + 4, <usize> (n + extra - j - 1) << 2);
}

/** The shortest key s with a < s <= b (requires a < b): b cut just after the
 * first byte where it differs from a. Returns a new key block. */
function separator(a: usize, b: usize): usize {
  const alen = kbLen(a);
  const blen = kbLen(b);
  const common = commonPrefix(a + 4, alen, b + 4, blen, 0xffffffff);
  const len = common + 1 <= blen ? common + 1 : blen;
  return newKeyBlock(b + 4, len);
}

// ---------------------------------------------------------------------------
// Public operations

function ensureRoot(): void {
  if (root == 0) root = newNode(true);
}

/** Descends to the leaf that may hold k, recording the path. Returns depth. */
function descend(k: usize, klen: u32): u32 {
  let node = root;
  let depth: u32 = 0;
  while (!isLeaf(node)) {
    if (depth >= DEPTH_MAX) unreachable();
    const i = searchNode(node, k, klen, true);
    store<u32>(pathNodes + (<usize> depth << 2), <u32> node);
    store<u32>(pathIdx + (<usize> depth << 2), i);
    depth++;
    node = childAt(node, i);
  }
  store<u32>(pathNodes + (<usize> depth << 2), <u32> node);
  return depth;
}

function leafFor(k: usize, klen: u32): usize {
  let node = root;
  while (!isLeaf(node)) node = childAt(node, searchNode(node, k, klen, true));
  return node;
}

/** Handle stored under the key at k[0..klen), or -1. */
export function btreeGet(k: usize, klen: u32): i32 {
  ensureRoot();
  const leaf = leafFor(k, klen);
  const i = searchNode(leaf, k, klen, false);
  if (i >= cnt(leaf)) return -1;
  const kb = keyAt(leaf, i);
  if (cmpKeys(kb + 4, kbLen(kb), k, klen, 0) != 0) return -1;
  return <i32> valAt(leaf, i);
}

/** Inserts or replaces; returns the previous handle or -1. */
export function btreeSet(k: usize, klen: u32, handle: u32): i32 {
  return upsert(k, klen, handle, true);
}

/**
 * Inserts the key with `handle` when it is absent (returns -1), else leaves
 * it alone and returns its handle: a lookup and an insert in one call, for
 * the writer's "find or create the key" (one boundary crossing and one key
 * copy instead of two).
 */
export function btreeGetOrSet(k: usize, klen: u32, handle: u32): i32 {
  return upsert(k, klen, handle, false);
}

function upsert(k: usize, klen: u32, handle: u32, replace: bool): i32 {
  ensureRoot();
  const depth = descend(k, klen);
  const leaf = <usize> load<u32>(pathNodes + (<usize> depth << 2));
  const n = cnt(leaf);
  const i = searchNode(leaf, k, klen, false);
  if (i < n) {
    const kb = keyAt(leaf, i);
    if (cmpKeys(kb + 4, kbLen(kb), k, klen, 0) == 0) {
      const old = valAt(leaf, i);
      if (replace) setVal(leaf, i, handle);
      return <i32> old;
    }
  }
  const kb = newKeyBlock(k, klen);
  keyCount++;
  if (n < CAP) {
    openSlot(leaf, i, n, i, 0);
    setCnt(leaf, n + 1);
    setVal(leaf, i, handle);
    placeKey(leaf, i, kb);
    return -1;
  }
  splitLeafAndInsert(leaf, depth, i, kb, handle);
  return -1;
}

function splitLeafAndInsert(
  leaf: usize,
  depth: u32,
  i: u32,
  kb: usize,
  handle: u32,
): void {
  const right = newNode(true);
  // Appending past the end of the last leaf: keep the left leaf full.
  const at: u32 = i == CAP && load<u32>(leaf + F_NEXT) == 0 ? CAP : CAP / 2;
  const moved = CAP - at;
  memory.copy(
    right + F_KEYS,
    leaf + F_KEYS + (<usize> at << 2),
    <usize> moved << 2,
  );
  memory.copy(
    right + F_VALS,
    leaf + F_VALS + (<usize> at << 2),
    <usize> moved << 2,
  );
  setCnt(leaf, at);
  setCnt(right, moved);
  // Link right after leaf.
  const next = <usize> load<u32>(leaf + F_NEXT);
  store<u32>(right + F_NEXT, <u32> next);
  store<u32>(right + F_PREV, <u32> leaf);
  store<u32>(leaf + F_NEXT, <u32> right);
  if (next != 0) store<u32>(next + F_PREV, <u32> right);
  // Insert into the half the key belongs to (heads are rebuilt below).
  const target = i <= at && !(i == at && moved == 0) ? leaf : right;
  const j = target == leaf ? i : i - at;
  const tn = cnt(target);
  openSlot(target, j, tn, j, 0);
  setKey(target, j, kb);
  setVal(target, j, handle);
  setCnt(target, tn + 1);
  rebuildNode(leaf);
  rebuildNode(right);
  const sep = separator(keyAt(leaf, cnt(leaf) - 1), keyAt(right, 0));
  insertIntoParent(depth, sep, right);
}

/** Inserts separator `sep` and its right child into the parent of the node
 * at `depth` on the recorded path, splitting upwards as needed. */
function insertIntoParent(depth: u32, sep: usize, right: usize): void {
  if (depth == 0) {
    const left = root;
    const r = newNode(false);
    setCnt(r, 1);
    setKey(r, 0, sep);
    store<u32>(r + F_VALS, <u32> left);
    store<u32>(r + F_VALS + 4, <u32> right);
    rebuildNode(r);
    root = r;
    return;
  }
  const parent = <usize> load<u32>(pathNodes + (<usize> (depth - 1) << 2));
  const i = load<u32>(pathIdx + (<usize> (depth - 1) << 2));
  const n = cnt(parent);
  if (n < CAP) {
    openSlot(parent, i, n, i + 1, 1);
    setCnt(parent, n + 1);
    store<u32>(parent + F_VALS + (<usize> (i + 1) << 2), <u32> right);
    placeKey(parent, i, sep);
    return;
  }
  // Split the full parent: separators [0, mid) stay, sep[mid] moves up,
  // (mid, CAP) go right with children (mid, CAP].
  const mid: u32 = CAP / 2;
  const up = keyAt(parent, mid);
  const r = newNode(false);
  const moved = CAP - mid - 1;
  memory.copy(
    r + F_KEYS,
    parent + F_KEYS + (<usize> (mid + 1) << 2),
    <usize> moved << 2,
  );
  memory.copy(
    r + F_VALS,
    parent + F_VALS + (<usize> (mid + 1) << 2),
    <usize> (moved + 1) << 2,
  );
  setCnt(parent, mid);
  setCnt(r, moved);
  let target = parent;
  let j = i;
  if (i > mid) {
    target = r;
    j = i - mid - 1;
  }
  const tn = cnt(target);
  openSlot(target, j, tn, j + 1, 1);
  setKey(target, j, sep);
  store<u32>(target + F_VALS + (<usize> (j + 1) << 2), <u32> right);
  setCnt(target, tn + 1);
  rebuildNode(parent);
  rebuildNode(r);
  insertIntoParent(depth - 1, up, r);
}

/** Removes the key; returns its handle or -1. */
export function btreeDelete(k: usize, klen: u32): i32 {
  ensureRoot();
  const depth = descend(k, klen);
  const leaf = <usize> load<u32>(pathNodes + (<usize> depth << 2));
  const n = cnt(leaf);
  const i = searchNode(leaf, k, klen, false);
  if (i >= n) return -1;
  const kb = keyAt(leaf, i);
  if (cmpKeys(kb + 4, kbLen(kb), k, klen, 0) != 0) return -1;
  const old = valAt(leaf, i);
  freeKeyBlock(kb);
  closeSlot(leaf, i, i, n, 0);
  setCnt(leaf, n - 1);
  keyCount--;
  if (depth > 0 && n - 1 < MIN_FILL) rebalance(leaf, depth);
  return <i32> old;
}

/** Replaces separator idx of node with kb (freeing the old block). */
function replaceSep(node: usize, idx: u32, kb: usize): void {
  freeKeyBlock(keyAt(node, idx));
  placeKey(node, idx, kb);
}

/** Moves entries between `node` (at `depth`, underfull) and a sibling:
 * merges the two when they fit in one node, else evens them out. */
function rebalance(node: usize, depth: u32): void {
  const parent = <usize> load<u32>(pathNodes + (<usize> (depth - 1) << 2));
  const ci = load<u32>(pathIdx + (<usize> (depth - 1) << 2));
  const sepIdx: u32 = ci > 0 ? ci - 1 : 0;
  const left = childAt(parent, sepIdx);
  const right = childAt(parent, sepIdx + 1);
  const nl = cnt(left);
  const nr = cnt(right);
  if (isLeaf(node)) {
    if (nl + nr <= CAP) {
      memory.copy(
        left + F_KEYS + (<usize> nl << 2),
        right + F_KEYS,
        <usize> nr << 2,
      );
      memory.copy(
        left + F_VALS + (<usize> nl << 2),
        right + F_VALS,
        <usize> nr << 2,
      );
      setCnt(left, nl + nr);
      const next = <usize> load<u32>(right + F_NEXT);
      store<u32>(left + F_NEXT, <u32> next);
      if (next != 0) store<u32>(next + F_PREV, <u32> left);
      freeNode(right);
      rebuildNode(left);
      removeFromParent(parent, sepIdx, true, depth - 1);
      return;
    }
    const target = (nl + nr) >> 1;
    if (nl < target) {
      const m = target - nl;
      memory.copy(
        left + F_KEYS + (<usize> nl << 2),
        right + F_KEYS,
        <usize> m << 2,
      );
      memory.copy(
        left + F_VALS + (<usize> nl << 2),
        right + F_VALS,
        <usize> m << 2,
      );
      memory.copy(
        right + F_KEYS,
        right + F_KEYS + (<usize> m << 2),
        <usize> (nr - m) << 2,
      );
      memory.copy(
        right + F_VALS,
        right + F_VALS + (<usize> m << 2),
        <usize> (nr - m) << 2,
      );
      setCnt(left, nl + m);
      setCnt(right, nr - m);
    } else {
      const m = nl - target;
      memory.copy(
        right + F_KEYS + (<usize> m << 2),
        right + F_KEYS,
        <usize> nr << 2,
      );
      memory.copy(
        right + F_VALS + (<usize> m << 2),
        right + F_VALS,
        <usize> nr << 2,
      );
      memory.copy(
        right + F_KEYS,
        left + F_KEYS + (<usize> (nl - m) << 2),
        <usize> m << 2,
      );
      memory.copy(
        right + F_VALS,
        left + F_VALS + (<usize> (nl - m) << 2),
        <usize> m << 2,
      );
      setCnt(left, nl - m);
      setCnt(right, nr + m);
    }
    rebuildNode(left);
    rebuildNode(right);
    replaceSep(
      parent,
      sepIdx,
      separator(keyAt(left, cnt(left) - 1), keyAt(right, 0)),
    );
    return;
  }
  const sep = keyAt(parent, sepIdx);
  if (nl + 1 + nr <= CAP) {
    setKey(left, nl, sep);
    memory.copy(
      left + F_KEYS + (<usize> (nl + 1) << 2),
      right + F_KEYS,
      <usize> nr << 2,
    );
    memory.copy(
      left + F_VALS + (<usize> (nl + 1) << 2),
      right + F_VALS,
      <usize> (nr + 1) << 2,
    );
    setCnt(left, nl + 1 + nr);
    freeNode(right);
    rebuildNode(left);
    removeFromParent(parent, sepIdx, false, depth - 1);
    return;
  }
  const target = (nl + nr) >> 1;
  let up: usize;
  if (nl < target) {
    // Rotate m separators left through the parent.
    const m = target - nl;
    setKey(left, nl, sep);
    memory.copy(
      left + F_KEYS + (<usize> (nl + 1) << 2),
      right + F_KEYS,
      <usize> (m - 1) << 2,
    );
    memory.copy(
      left + F_VALS + (<usize> (nl + 1) << 2),
      right + F_VALS,
      <usize> m << 2,
    );
    up = keyAt(right, m - 1);
    memory.copy(
      right + F_KEYS,
      right + F_KEYS + (<usize> m << 2),
      <usize> (nr - m) << 2,
    );
    memory.copy(
      right + F_VALS,
      right + F_VALS + (<usize> m << 2),
      <usize> (nr - m + 1) << 2,
    );
    setCnt(left, nl + m);
    setCnt(right, nr - m);
  } else {
    // Rotate m separators right through the parent.
    const m = nl - target;
    memory.copy(
      right + F_KEYS + (<usize> m << 2),
      right + F_KEYS,
      <usize> nr << 2,
    );
    memory.copy(
      right + F_VALS + (<usize> m << 2),
      right + F_VALS,
      <usize> (nr + 1) << 2,
    );
    memory.copy(
      right + F_KEYS,
      left + F_KEYS + (<usize> (nl - m + 1) << 2),
      <usize> (m - 1) << 2,
    );
    setKey(right, m - 1, sep);
    memory.copy(
      right + F_VALS,
      left + F_VALS + (<usize> (nl - m + 1) << 2),
      <usize> m << 2,
    );
    up = keyAt(left, nl - m);
    setCnt(left, nl - m);
    setCnt(right, nr + m);
  }
  rebuildNode(left);
  rebuildNode(right);
  placeKey(parent, sepIdx, up);
}

/** Removes separator sepIdx and child sepIdx+1 from an internal node at
 * `depth`, then fixes the node's own fill. */
function removeFromParent(
  node: usize,
  sepIdx: u32,
  freeSep: bool,
  depth: u32,
): void {
  const n = cnt(node);
  if (freeSep) freeKeyBlock(keyAt(node, sepIdx));
  closeSlot(node, sepIdx, sepIdx + 1, n, 1);
  setCnt(node, n - 1);
  if (depth == 0) {
    if (n - 1 == 0) {
      root = childAt(node, 0);
      freeNode(node);
    }
    return;
  }
  if (n - 1 < MIN_FILL) rebalance(node, depth);
}

/** Number of keys in the tree. */
export function btreeCount(): u32 {
  return keyCount;
}

// ---------------------------------------------------------------------------
// Scans: one call per page, handles written to `out`.

/** Whether every key of the leaf (n > 0) is certainly below `e`, decided
 * from the prefix and the last head alone, so that a scan does not load a key
 * block (a cache miss) per leaf. False means "search to find out". */
function belowEnd(leaf: usize, n: u32, e: usize, elen: u32): bool {
  const p = load<u32>(leaf + F_PLEN);
  if (p != 0) {
    const c = cmpBytes(e, leaf + F_PREFIX, elen < p ? elen : p);
    if (c != 0) return c > 0;
    if (elen < p) return false;
  }
  // head(last) < head(e) implies last < e (see searchNode).
  return headAt(leaf, n - 1) < headOf(e, elen, p);
}

/**
 * Writes the handles of keys k with start <= k (start < k when !startIncl)
 * and k < end (no end when endLen < 0), ascending, at most max, to out.
 * Returns how many were written.
 */
export function btreeScan(
  s: usize,
  slen: u32,
  startIncl: bool,
  e: usize,
  endLen: i32,
  max: u32,
  out: usize,
): u32 {
  ensureRoot();
  if (max == 0) return 0;
  let leaf = leafFor(s, slen);
  let pos = searchNode(leaf, s, slen, !startIncl);
  let got: u32 = 0;
  while (true) {
    const n = cnt(leaf);
    if (pos < n) {
      let endPos = n;
      if (endLen >= 0 && !belowEnd(leaf, n, e, <u32> endLen)) {
        endPos = searchNode(leaf, e, <u32> endLen, false);
      }
      if (endPos <= pos) break;
      let take = endPos - pos;
      if (take > max - got) take = max - got;
      memory.copy(
        out + (<usize> got << 2),
        leaf + F_VALS + (<usize> pos << 2),
        <usize> take << 2,
      );
      got += take;
      if (got >= max || endPos < n) break;
    }
    leaf = <usize> load<u32>(leaf + F_NEXT);
    if (leaf == 0) break;
    pos = 0;
  }
  return got;
}

/**
 * Writes the handles of keys k with lower <= k and k < upper (k <= upper
 * when upperIncl; no upper when upperLen < 0), descending, at most max, to
 * out. Returns how many were written.
 */
export function btreeScanReverse(
  l: usize,
  llen: u32,
  u: usize,
  upperLen: i32,
  upperIncl: bool,
  max: u32,
  out: usize,
): u32 {
  ensureRoot();
  if (max == 0) return 0;
  let leaf: usize;
  let pos: u32;
  if (upperLen < 0) {
    leaf = root;
    while (!isLeaf(leaf)) leaf = childAt(leaf, cnt(leaf));
    pos = cnt(leaf);
  } else {
    leaf = leafFor(u, <u32> upperLen);
    pos = searchNode(leaf, u, <u32> upperLen, upperIncl);
  }
  let got: u32 = 0;
  while (true) {
    if (pos > 0) {
      let lowPos: u32 = 0;
      if (llen > 0) {
        const first = keyAt(leaf, 0);
        if (cmpKeys(first + 4, kbLen(first), l, llen, 0) < 0) {
          lowPos = searchNode(leaf, l, llen, false);
        }
      }
      if (lowPos >= pos) break;
      let take = pos - lowPos;
      if (take > max - got) take = max - got;
      for (let i: u32 = 0; i < take; i++) {
        store<u32>(out + (<usize> (got + i) << 2), valAt(leaf, pos - 1 - i));
      }
      got += take;
      if (got >= max || lowPos > 0) break;
    }
    leaf = <usize> load<u32>(leaf + F_PREV);
    if (leaf == 0) break;
    pos = cnt(leaf);
  }
  return got;
}

// ---------------------------------------------------------------------------
// Scratch regions owned by the host (0: input keys, 1: scan output).

const scratchPtr: usize = memory.data(8, 4);
const scratchCap: usize = memory.data(8, 4);

/** Returns the address of scratch region `slot` (0 or 1), grown to at least
 * `bytes` bytes. Contents are not preserved when it grows. May grow memory. */
export function reserve(slot: u32, bytes: u32): usize {
  const at = <usize> (slot & 1) << 2;
  const cap = load<u32>(scratchCap + at);
  let ptr = <usize> load<u32>(scratchPtr + at);
  if (ptr != 0 && cap >= bytes) return ptr;
  if (ptr != 0) free(ptr, cap);
  const size = <u32> blockSize(bytes);
  ptr = alloc(size);
  store<u32>(scratchPtr + at, <u32> ptr);
  store<u32>(scratchCap + at, size);
  return ptr;
}

// ---------------------------------------------------------------------------
// Statistics and the invariant checker

/** Bytes in allocator blocks currently handed out. */
export function liveBytes(): usize {
  return allocLiveBytes();
}

/** Number of nodes (leaves and internal). */
export function btreeNodes(): u32 {
  return nodeCount;
}

// Details of the last check failure, read by the host.
const checkInfo: usize = memory.data(16, 4);
let checkKeys: u32 = 0;
let checkBlockBytes: usize = 0;
let checkNodes: u32 = 0;
let checkLeafDepth: i32 = -1;
let checkPrevLeaf: usize = 0;

function fail(code: i32, a: u32, b: u32, c: u32): i32 {
  store<u32>(checkInfo, a);
  store<u32>(checkInfo + 4, b);
  store<u32>(checkInfo + 8, c);
  return code;
}

/** Address of the 3 u32 details of the last `btreeCheck` failure. */
export function checkDetails(): usize {
  return checkInfo;
}

function cmpBlocks(a: usize, b: usize): i32 {
  return cmpKeys(a + 4, kbLen(a), b + 4, kbLen(b), 0);
}

/**
 * Verifies the tree's invariants; returns 0, or a failure code (see the host
 * wrapper for the messages) with details at `checkDetails()`.
 */
export function btreeCheck(): i32 {
  ensureRoot();
  checkKeys = 0;
  checkBlockBytes = 0;
  checkNodes = 0;
  checkLeafDepth = -1;
  checkPrevLeaf = 0;
  const r = checkNode(root, 0, 0, 0);
  if (r != 0) return r;
  if (checkKeys != keyCount) return fail(8, checkKeys, keyCount, 0);
  if (checkNodes != nodeCount) return fail(9, checkNodes, nodeCount, 0);
  if (load<u32>(checkPrevLeaf + F_NEXT) != 0) {
    return fail(7, <u32> checkPrevLeaf, 0, 0);
  }
  // Every live allocator byte is a node, a key block or a scratch region.
  let expected = checkBlockBytes + <usize> nodeCount * blockSize(NODE_BYTES);
  expected += <usize> load<u32>(scratchCap) + <usize> load<u32>(scratchCap + 4);
  if (expected != allocLiveBytes()) {
    return fail(10, <u32> allocLiveBytes(), <u32> expected, 0);
  }
  return 0;
}

/** Checks the subtree at node; all its keys must lie in [lo, hi) (0 = open). */
function checkNode(node: usize, depth: i32, lo: usize, hi: usize): i32 {
  checkNodes++;
  const n = cnt(node);
  const leaf = isLeaf(node);
  if (n > CAP || (node != root && n == 0)) {
    return fail(1, <u32> node, n, <u32> depth);
  }
  const p = load<u32>(node + F_PLEN);
  if (p > PREFIX_MAX) return fail(2, <u32> node, p, 0);
  for (let i: u32 = 0; i < n; i++) {
    const kb = keyAt(node, i);
    const len = kbLen(kb);
    checkBlockBytes += blockSize(<usize> len + 4);
    if (len < p || cmpBytes(kb + 4, node + F_PREFIX, p) != 0) {
      return fail(2, <u32> node, i, p);
    }
    if (headAt(node, i) != headOf(kb + 4, len, p)) {
      return fail(3, <u32> node, i, headAt(node, i));
    }
    if (i > 0 && cmpBlocks(keyAt(node, i - 1), kb) >= 0) {
      return fail(4, <u32> node, i, 0);
    }
    if (lo != 0 && cmpBlocks(kb, lo) < 0) return fail(5, <u32> node, i, 0);
    if (hi != 0 && cmpBlocks(kb, hi) >= 0) return fail(5, <u32> node, i, 1);
  }
  if (leaf) {
    checkKeys += n;
    if (checkLeafDepth < 0) checkLeafDepth = depth;
    else if (checkLeafDepth != depth) {
      return fail(6, <u32> node, <u32> depth, <u32> checkLeafDepth);
    }
    if (load<u32>(node + F_PREV) != <u32> checkPrevLeaf) {
      return fail(7, <u32> node, <u32> checkPrevLeaf, 1);
    }
    if (checkPrevLeaf != 0 && load<u32>(checkPrevLeaf + F_NEXT) != <u32> node) {
      return fail(7, <u32> checkPrevLeaf, <u32> node, 2);
    }
    checkPrevLeaf = node;
    return 0;
  }
  if (depth >= <i32> DEPTH_MAX) {
    return fail(6, <u32> node, <u32> depth, DEPTH_MAX);
  }
  for (let i: u32 = 0; i <= n; i++) {
    const child = childAt(node, i);
    const clo = i == 0 ? lo : keyAt(node, i - 1);
    const chi = i == n ? hi : keyAt(node, i);
    const r = checkNode(child, depth + 1, clo, chi);
    if (r != 0) return r;
  }
  return 0;
}
