/**
 * A range request answered as etcd's apply layer answers it: read the keys
 * visible at the revision, then the revision filters, then sorting, then the
 * limit (so `count` is the total before limit and filters, and `more` says
 * the limit cut the result).
 *
 * @module
 */

import { errors } from "./errors.ts";
import { KeyValue, type RangeOptions, type SortTarget } from "./kv.ts";
import type { KeyIndex, RevisionEntry } from "./key_index.ts";
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

interface Hit {
  index: KeyIndex;
  entry: RevisionEntry;
}

const SORT_ORDERS = new Set(["none", "ascend", "descend"]);
const SORT_TARGETS = new Set(["key", "version", "create", "mod", "value"]);

/**
 * Answers a range over `bounds` with etcd's options.
 * @param store the engine.
 * @param bounds the keys.
 * @param options etcd's RangeRequest options.
 * @param readRevision the newest revision reads may see (the committed one).
 */
export function rangeKeys(
  store: MvccStore,
  bounds: KeyBounds,
  options: RangeOptions,
  readRevision: number,
): RangeResult {
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

  let count = 0;
  let hits: Hit[] = [];
  store.forEachVisible(bounds, atRev, ({ index, entry }) => {
    count++;
    if (hits.length < fetchMax) hits.push({ index, entry });
  });
  if (options.countOnly) return { kvs: [], more: false, count };

  if (filtered) {
    hits = hits.filter(({ entry }) =>
      (minMod === 0 || entry.main >= minMod) &&
      (maxMod === 0 || entry.main <= maxMod) &&
      (minCreate === 0 || entry.createRevision >= minCreate) &&
      (maxCreate === 0 || entry.createRevision <= maxCreate)
    );
  }
  // Results come in key order; etcd sorts ascending by default only when the
  // target is not the key. Array.prototype.sort is stable, like Go's
  // insertion sort for the small results etcd sorts that way.
  const order = sortTarget !== "key" && sortOrder === "none"
    ? "ascend"
    : sortOrder;
  if (order !== "none") {
    const compare = comparator(sortTarget);
    hits.sort(order === "ascend" ? compare : (a, b) => compare(b, a));
  }
  let more = false;
  if (limit > 0 && hits.length > limit) {
    hits.length = limit;
    more = true;
  }
  const kvs = hits.map(({ index, entry }) =>
    toKeyValue(index.key, entry, options.keysOnly ?? false)
  );
  return { kvs, more, count };
}

/** A copy of the entry as a public `KeyValue` (callers may mutate it). */
export function toKeyValue(
  key: Uint8Array,
  entry: RevisionEntry,
  keysOnly = false,
): KeyValue {
  return new KeyValue(
    key.slice(),
    entry.createRevision,
    entry.main,
    entry.version,
    keysOnly || entry.value === null ? new Uint8Array(0) : entry.value.slice(),
    entry.lease,
  );
}

function comparator(target: SortTarget): (a: Hit, b: Hit) => number {
  switch (target) {
    case "key":
      return (a, b) => compareBytes(a.index.key, b.index.key);
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
