/**
 * The data types of etcd's key space as revkv exposes them: key-value pairs,
 * response headers, and the options of range, put and delete requests.
 *
 * Revisions and versions are JS numbers: a store would need 2^53 writes
 * (285 years at a million writes a second) to leave the exact range.
 * Lease IDs are `bigint`, because etcd picks them at random over 64 bits.
 *
 * @module
 */

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/** Bytes or text; text is encoded as UTF-8. */
export type Bytes = string | Uint8Array;

/** Encodes `string | Uint8Array` to bytes (strings as UTF-8). */
export function toBytes(input: Bytes): Uint8Array {
  return typeof input === "string" ? textEncoder.encode(input) : input;
}

/**
 * One version of a key, as etcd's `mvccpb.KeyValue`.
 *
 * A `KeyValue` the store hands out is the holder's own copy: no later
 * write, delete, compaction or defrag changes or frees what it shows, and
 * writing into its `key` or `value` changes nothing in the store. The
 * key-values of one response share one buffer (each `key` and `value` is a
 * view of its own bytes in it), so `kv.value.buffer` is larger than the
 * value: use `kv.value`, or `kv.value.slice()` for a buffer of its own.
 */
export class KeyValue {
  /**
   * A key-value pair as the store returns it.
   * @param key the key bytes.
   * @param createRevision revision of the put that created the current generation.
   * @param modRevision revision of the last modification.
   * @param version modifications since creation (1 after the creating put).
   * @param value the value bytes (empty when `keysOnly`).
   * @param lease the attached lease ID, `0n` when none.
   */
  constructor(
    readonly key: Uint8Array,
    readonly createRevision: number,
    readonly modRevision: number,
    readonly version: number,
    readonly value: Uint8Array,
    readonly lease: bigint,
  ) {}

  /** The key decoded as UTF-8. */
  get keyText(): string {
    return textDecoder.decode(this.key);
  }

  /** The value decoded as UTF-8. */
  get valueText(): string {
    return textDecoder.decode(this.value);
  }
}

/** The header every response carries, as etcd's `ResponseHeader`. */
export interface ResponseHeader {
  /** ID of the cluster (generated once per data dir). */
  clusterId: bigint;
  /** ID of the member that answered. */
  memberId: bigint;
  /** The store's revision when the request was answered. */
  revision: number;
  /** The store's term (grows by one each time the store is opened). */
  raftTerm: number;
}

/** How a range's results are ordered. */
export type SortOrder = "none" | "ascend" | "descend";
/** Which field a range's results are ordered by. */
export type SortTarget = "key" | "version" | "create" | "mod" | "value";

/**
 * Selects keys: `key` alone, `[key, rangeEnd)`, a prefix, or every key from
 * `key` on. At most one of `rangeEnd`, `prefix`, `fromKey` may be given.
 */
export interface KeySelector {
  /** End of the range, exclusive, compared byte-wise; `"\0"` means from-key. */
  rangeEnd?: Bytes;
  /** Select every key that starts with `key`. */
  prefix?: boolean;
  /** Select every key greater than or equal to `key`. */
  fromKey?: boolean;
}

/** Options of a range request (etcd's `RangeRequest`). */
export interface RangeOptions extends KeySelector {
  /** Read at this revision; 0 or absent reads at the current revision. */
  revision?: number;
  /** Return at most this many keys (after sorting); 0 or negative means no limit. */
  limit?: number;
  /** Sort order; default `"none"` (key order). */
  sortOrder?: SortOrder;
  /** Sort field; default `"key"`. */
  sortTarget?: SortTarget;
  /** Return keys without values. */
  keysOnly?: boolean;
  /** Return only the count. */
  countOnly?: boolean;
  /** Keep only keys with `modRevision >= minModRevision` (0: no filter). */
  minModRevision?: number;
  /** Keep only keys with `modRevision <= maxModRevision` (0: no filter). */
  maxModRevision?: number;
  /** Keep only keys with `createRevision >= minCreateRevision` (0: no filter). */
  minCreateRevision?: number;
  /** Keep only keys with `createRevision <= maxCreateRevision` (0: no filter). */
  maxCreateRevision?: number;
}

/** Result of a range (etcd's `RangeResponse`). */
export interface RangeResponse {
  /** Response header. */
  header: ResponseHeader;
  /** The matching key-values (empty with `countOnly`). */
  kvs: KeyValue[];
  /** Whether `limit` cut the result. */
  more: boolean;
  /** How many keys are in the range (before `limit` and revision filters, as etcd). */
  count: number;
}

/** Options of a put (etcd's `PutRequest`). */
export interface PutOptions {
  /** Attach the key to this lease (0n: none). */
  lease?: bigint;
  /** Return the previous key-value. */
  prevKv?: boolean;
  /** Keep the current value (the key must exist); the value must be empty. */
  ignoreValue?: boolean;
  /** Keep the current lease (the key must exist); `lease` must be absent. */
  ignoreLease?: boolean;
}

/** Result of a put (etcd's `PutResponse`). */
export interface PutResponse {
  /** Response header. */
  header: ResponseHeader;
  /** The previous key-value, when asked for and the key existed. */
  prevKv?: KeyValue;
}

/** Options of a delete (etcd's `DeleteRangeRequest`). */
export interface DeleteOptions extends KeySelector {
  /** Return the deleted key-values. */
  prevKv?: boolean;
}

/** Result of a delete (etcd's `DeleteRangeResponse`). */
export interface DeleteResponse {
  /** Response header. */
  header: ResponseHeader;
  /** How many keys were deleted. */
  deleted: number;
  /** The deleted key-values, when asked for. */
  prevKvs: KeyValue[];
}

/** Result of a compaction (etcd's `CompactionResponse`). */
export interface CompactResponse {
  /** Response header. */
  header: ResponseHeader;
}
