/**
 * A range request answered as etcd's apply layer answers it: read the keys
 * visible at the revision, then the revision filters, then sorting, then the
 * limit (so `count` is the total before limit and filters, and `more` says
 * the limit cut the result).
 *
 * Two ways out, one selection (`selectRange`):
 * - `rangeKeys`: public `KeyValue`s. Their bytes are copied, but into one
 *   buffer per response (`copyKeyValues`): a `KeyValue`'s `key` and `value`
 *   are views of it. One `ArrayBuffer` per key and value (the earlier
 *   `slice()`s) cost ~90% of a 100-key range (issue 10).
 * - `visitRange`: the stored bytes themselves, lent to a visitor for the
 *   duration of one call, for encoders (the gRPC server writes a
 *   RangeResponse straight from them) and for `scan()`.
 *
 * @module
 */

import { errors } from "./errors.ts";
import { KeyValue, type RangeOptions, type SortTarget } from "./kv.ts";
import type { RevisionEntry } from "./key_index.ts";
import { compareBytes, type KeyBounds, type MvccStore } from "./kv_store.ts";

/** A range's result before it gets a header. */
export interface RangeResult {
  /** The key-values. */
  kvs: KeyValue[];
  /** Whether the limit cut the result. */
  more: boolean;
  /** Keys in the range at the revision (before limit and filters). */
  count: number;
}

/** What a range says besides its key-values. */
export interface RangeSummary {
  /** Whether the limit cut the result. */
  more: boolean;
  /** Keys in the range at the revision (before limit and filters). */
  count: number;
}

/**
 * One stored key-value lent to a `visitRange` visitor. The same object is
 * reused for every key of a range, and `key` and `value` are views of the
 * engine's own bytes: valid only during the `visit` call that received them.
 * Read or copy them there; never keep them or write into them.
 */
export interface StoredKeyValue {
  /** The key bytes (engine-owned). */
  key: Uint8Array;
  /** The value bytes (engine-owned); empty with `keysOnly`. */
  value: Uint8Array;
  /** Revision of the put that created the key's current generation. */
  createRevision: number;
  /** Revision of the key's last modification. */
  modRevision: number;
  /** Puts since creation (1 after the creating put). */
  version: number;
  /** Attached lease ID, `0n` when none. */
  lease: bigint;
}

/** The keys a range selects, in answer order, and its summary. */
interface Selection extends RangeSummary {
  keys: Uint8Array[];
  entries: RevisionEntry[];
}

interface Hit {
  key: Uint8Array;
  entry: RevisionEntry;
}

const SORT_ORDERS = new Set(["none", "ascend", "descend"]);
const SORT_TARGETS = new Set(["key", "version", "create", "mod", "value"]);
/** `keysOnly` values (a view of nothing: no bytes to share or change). */
const EMPTY: Uint8Array = new Uint8Array(0);
/** Keys and values up to this length are copied byte by byte, which beats
 * `Uint8Array.prototype.set` for short runs. */
const COPY_LOOP_BYTES_MAX = 24;

/**
 * Answers a range over `bounds` with etcd's options, as public `KeyValue`s
 * (copies: see `copyKeyValues`).
 * @param store the engine.
 * @param bounds the keys.
 * @param options etcd's RangeRequest options.
 * @param readRevision the newest revision reads may see (the committed one).
 * @throws EtcdError for a bad sort option, a compacted or future revision.
 */
export function rangeKeys(
  store: MvccStore,
  bounds: KeyBounds,
  options: RangeOptions,
  readRevision: number,
): RangeResult {
  const { keys, entries, more, count } = selectRange(
    store,
    bounds,
    options,
    readRevision,
  );
  const kvs = keys.length === 0
    ? []
    : copyKeyValues(keys, entries, options.keysOnly ?? false);
  return { kvs, more, count };
}

/**
 * Answers a range over `bounds` with every option of etcd's
 * RangeRequest (revision, limit, sort, keysOnly, countOnly, min/max
 * mod/create revisions) without building `KeyValue`s: calls `visit` once per
 * key of the answer, in answer order, with the stored bytes (see
 * `StoredKeyValue` for how long they are valid), then returns `more` and
 * `count`. Nothing is visited with `countOnly`. Throws before visiting
 * anything (bad sort option, compacted or future revision).
 *
 * Meant for encoders: a RangeResponse's `kvs` can be written from the
 * visited slices, then `more` and `count` (protobuf does not care about
 * field order).
 */
export function visitRange(
  store: MvccStore,
  bounds: KeyBounds,
  options: RangeOptions,
  readRevision: number,
  visit: (kv: StoredKeyValue) => void,
): RangeSummary {
  const { keys, entries, more, count } = selectRange(
    store,
    bounds,
    options,
    readRevision,
  );
  const keysOnly = options.keysOnly ?? false;
  const lent: StoredKeyValue = {
    key: EMPTY,
    value: EMPTY,
    createRevision: 0,
    modRevision: 0,
    version: 0,
    lease: 0n,
  };
  for (let i = 0; i < keys.length; i++) {
    const entry = entries[i]!;
    lent.key = keys[i]!;
    lent.value = keysOnly ? EMPTY : entry.value!;
    lent.createRevision = entry.createRevision;
    lent.modRevision = entry.main;
    lent.version = entry.version;
    lent.lease = entry.lease;
    visit(lent);
  }
  return { more, count };
}

/** The keys of a range's answer, filtered, sorted and cut as etcd does. */
function selectRange(
  store: MvccStore,
  bounds: KeyBounds,
  options: RangeOptions,
  readRevision: number,
): Selection {
  const sortOrder = options.sortOrder ?? "none";
  const sortTarget = options.sortTarget ?? "key";
  if (!SORT_ORDERS.has(sortOrder) || !SORT_TARGETS.has(sortTarget)) {
    throw errors.invalidSortOption();
  }
  const atRev = store.resolveReadRevision(options.revision ?? 0, readRevision);
  const limit = options.limit !== undefined && options.limit > 0
    ? Math.floor(options.limit)
    : 0;
  const minMod = options.minModRevision ?? 0;
  const maxMod = options.maxModRevision ?? 0;
  const minCreate = options.minCreateRevision ?? 0;
  const maxCreate = options.maxCreateRevision ?? 0;
  const filtered = minMod !== 0 || maxMod !== 0 || minCreate !== 0 ||
    maxCreate !== 0;
  // As etcd: fetch everything when sorting or filtering, else one past the
  // limit so that `more` can be told.
  const fetchMax = options.countOnly
    ? 0
    : sortOrder !== "none" || filtered || limit === 0
    ? Infinity
    : limit + 1;

  let keys: Uint8Array[] = [];
  let entries: RevisionEntry[] = [];
  const count = store.forEachVisibleEntry(
    bounds,
    atRev,
    (key, entry) => {
      keys.push(key);
      entries.push(entry);
    },
    false,
    fetchMax,
  );
  if (options.countOnly) return { keys: [], entries: [], more: false, count };

  // Results come in key order; etcd sorts ascending by default only when the
  // target is not the key. Array.prototype.sort is stable, like Go's
  // insertion sort for the small results etcd sorts that way.
  const order = sortTarget !== "key" && sortOrder === "none"
    ? "ascend"
    : sortOrder;
  if (filtered || order !== "none") {
    let hits: Hit[] = keys.map((key, i) => ({ key, entry: entries[i]! }));
    if (filtered) {
      hits = hits.filter(({ entry }) =>
        (minMod === 0 || entry.main >= minMod) &&
        (maxMod === 0 || entry.main <= maxMod) &&
        (minCreate === 0 || entry.createRevision >= minCreate) &&
        (maxCreate === 0 || entry.createRevision <= maxCreate)
      );
    }
    if (order !== "none") {
      const compare = comparator(sortTarget);
      hits.sort(order === "ascend" ? compare : (a, b) => compare(b, a));
    }
    keys = hits.map((hit) => hit.key);
    entries = hits.map((hit) => hit.entry);
  }
  let more = false;
  if (limit > 0 && keys.length > limit) {
    keys.length = limit;
    entries.length = limit;
    more = true;
  }
  return { keys, entries, more, count };
}

/**
 * Public `KeyValue`s of `entries` (the puts of `keys`), their bytes copied
 * into one new buffer: each `key` and `value` is a view of it, so a response
 * costs one `ArrayBuffer`, not two per key. The copies are the caller's: no
 * later write, compaction or defrag of the store changes or frees them, and
 * changing them changes nothing in the store (nor in another `KeyValue`,
 * whose bytes lie elsewhere in the buffer).
 */
export function copyKeyValues(
  keys: readonly Uint8Array[],
  entries: readonly RevisionEntry[],
  keysOnly = false,
): KeyValue[] {
  const n = keys.length;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    bytes += keys[i]!.length;
    const value = entries[i]!.value;
    if (!keysOnly && value !== null) bytes += value.length;
  }
  const region = responseRegion(bytes);
  const arrayBuffer = region.buffer;
  const offset = region.byteOffset;
  const kvs: KeyValue[] = new Array(n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const entry = entries[i]!;
    const key = keys[i]!;
    // `new Uint8Array(buffer, offset, length)` makes a view in ~60% of the
    // time `subarray` takes (no species lookup).
    const keyView = new Uint8Array(arrayBuffer, offset + at, key.length);
    at = copyAt(region, at, key);
    let value: Uint8Array = EMPTY;
    if (!keysOnly && entry.value !== null) {
      value = new Uint8Array(arrayBuffer, offset + at, entry.value.length);
      at = copyAt(region, at, entry.value);
    }
    kvs[i] = new KeyValue(
      keyView,
      entry.createRevision,
      entry.main,
      entry.version,
      value,
      entry.lease,
    );
  }
  return kvs;
}

/**
 * Responses up to this many bytes share a slab of `RESPONSE_SLAB_BYTES`
 * (a single get then allocates no `ArrayBuffer` at all); larger ones get a
 * buffer of their own, which bounds what one held `KeyValue` can pin to
 * `RESPONSE_SLAB_BYTES`, as in byte_slab.ts.
 */
const RESPONSE_SLAB_ITEM_BYTES_MAX = 2 * 1024;
/** Bytes of one shared slab of small responses. */
const RESPONSE_SLAB_BYTES = 32 * 1024;
let responseSlab = new Uint8Array(0);
let responseSlabUsed = 0;

/** `bytes` fresh bytes that nobody else is handed. */
function responseRegion(bytes: number): Uint8Array {
  if (bytes > RESPONSE_SLAB_ITEM_BYTES_MAX) return new Uint8Array(bytes);
  if (responseSlabUsed + bytes > responseSlab.length) {
    responseSlab = new Uint8Array(RESPONSE_SLAB_BYTES);
    responseSlabUsed = 0;
  }
  const at = responseSlabUsed;
  responseSlabUsed += bytes;
  return responseSlab.subarray(at, at + bytes);
}

/** A copy of one entry as a public `KeyValue` (see `copyKeyValues`). */
export function toKeyValue(
  key: Uint8Array,
  entry: RevisionEntry,
  keysOnly = false,
): KeyValue {
  return copyKeyValues([key], [entry], keysOnly)[0]!;
}

/** Copies `bytes` into `buffer` at `at`; returns the offset after them. */
function copyAt(buffer: Uint8Array, at: number, bytes: Uint8Array): number {
  const length = bytes.length;
  if (length <= COPY_LOOP_BYTES_MAX) {
    for (let i = 0; i < length; i++) buffer[at + i] = bytes[i]!;
  } else {
    buffer.set(bytes, at);
  }
  return at + length;
}

function comparator(target: SortTarget): (a: Hit, b: Hit) => number {
  switch (target) {
    case "key":
      return (a, b) => compareBytes(a.key, b.key);
    case "version":
      return (a, b) => a.entry.version - b.entry.version;
    case "create":
      return (a, b) => a.entry.createRevision - b.entry.createRevision;
    case "mod":
      return (a, b) => a.entry.main - b.entry.main;
    case "value":
      return (a, b) => compareBytes(a.entry.value!, b.entry.value!);
  }
}
