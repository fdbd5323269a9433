/**
 * The one interface user code is written against: etcd's API as revkv
 * offers it, whether the store is in this process (`open()`'s `Store`) or
 * behind the wire (`connect()` to a revkv server or a real etcd cluster).
 *
 * Everything here is asynchronous, because a remote store answers later;
 * the embedded `Store` implements it and adds what only a local store can
 * offer (its recovery report, synchronous `revision`, `stats()`, ...).
 * Errors are the same `EtcdError` classes with etcd's messages on every
 * back end, so code that catches `CompactedError` works unchanged when it
 * moves from `open()` to `connect()`.
 *
 * @module
 */

import type {
  Bytes,
  CompactResponse,
  DeleteOptions,
  DeleteResponse,
  KeySelector,
  KeyValue,
  PutOptions,
  PutResponse,
  RangeOptions,
  RangeResponse,
  ResponseHeader,
} from "./mvcc/kv.ts";
import type { TxnRequest, TxnResponse } from "./txn/txn.ts";
import type { TxnBuilder } from "./txn/builder.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
} from "./lease/lease_service.ts";
import type { WatchOptions, WatchResponse } from "./watch/watch_hub.ts";

/** The etcd API version revkv speaks (Status reports it as the server version). */
export const ETCD_API_VERSION = "3.4.23";

/** Options of `compact`. */
export interface CompactOptions {
  /** Wait until the old revisions are reclaimed (etcdctl's `--physical`). */
  physical?: boolean;
}

/** Options of `scan`: which keys, at which revision, in which order. */
export interface ScanOptions extends KeySelector {
  /** Read at this revision; 0 or absent reads at the current one. */
  revision?: number;
  /** Keys fetched per page (default 256). */
  pageKeys?: number;
  /** Iterate in descending key order. */
  reverse?: boolean;
  /** Yield keys without values. */
  keysOnly?: boolean;
}

/** What a member reports about itself (etcd's StatusResponse). */
export interface StatusResponse {
  /** The answering member's header. */
  header: ResponseHeader;
  /** The server's version ("3.4.23" for revkv, etcd's own for etcd). */
  version: string;
  /** Size of the member's backend in bytes. */
  dbSizeBytes: number;
  /** Size of the backend in use, in bytes. */
  dbSizeInUseBytes: number;
  /** Member ID of the leader (revkv: itself). */
  leader: bigint;
  /** The raft index (revkv: the revision). */
  raftIndex: number;
  /** The raft term. */
  raftTerm: number;
  /** The raft index applied to the state (revkv: the revision). */
  raftAppliedIndex: number;
  /** Whether the member is a raft learner (revkv: never). */
  isLearner: boolean;
  /** Alarms and errors, in etcd's words. */
  errors: string[];
}

/** The KV history hash of a member (etcd's HashKVResponse). */
export interface HashKvResponse {
  /** The answering member's header. */
  header: ResponseHeader;
  /** The hash over every kept revision up to the asked revision. */
  hash: number;
  /** The compaction revision the hash started from. */
  compactRevision: number;
}

/** One member of a cluster (etcd's Member). */
export interface MemberInfo {
  /** Member ID. */
  id: bigint;
  /** Human-readable name (etcd's `--name`). */
  name: string;
  /** Peer URLs (empty for an embedded store). */
  peerUrls: string[];
  /** Client URLs (empty for an embedded store). */
  clientUrls: string[];
  /** Whether the member is a raft learner. */
  isLearner: boolean;
}

/** The members of a cluster (etcd's MemberListResponse). */
export interface MemberListResponse {
  /** The answering member's header. */
  header: ResponseHeader;
  /** Every member. */
  members: MemberInfo[];
}

/**
 * etcd's API over a store that may be local or remote: what `open()` and
 * `connect()` both return. Write application code (and tests) against this
 * type and the back end becomes a one-line choice.
 *
 * @example
 * ```ts
 * import { type KvStore, open } from "../mod.ts";
 *
 * async function bump(db: KvStore, key: string): Promise<number> {
 *   const { kvs } = await db.get(key);
 *   const next = Number(kvs[0]?.valueText ?? "0") + 1;
 *   await db.put(key, String(next));
 *   return next;
 * }
 * const db = await open();
 * console.log(await bump(db, "counter")); // 1
 * await db.close();
 * ```
 */
export interface KvStore {
  /** etcd's Range: one key, a range, or a prefix, with every option. */
  get(key: Bytes, options?: RangeOptions): Promise<RangeResponse>;
  /** Every key of a range, page by page, at one revision. */
  scan(key: Bytes, options?: ScanOptions): AsyncIterable<KeyValue>;
  /** etcd's Put. */
  put(key: Bytes, value: Bytes, options?: PutOptions): Promise<PutResponse>;
  /** etcd's DeleteRange. */
  delete(key: Bytes, options?: DeleteOptions): Promise<DeleteResponse>;
  /** etcd's Txn, from a request. */
  txn(request: TxnRequest): Promise<TxnResponse>;
  /** etcd's Txn, built step by step; `commit()` runs it. */
  txn(): TxnBuilder;
  /** etcd's Compact. */
  compact(revision: number, options?: CompactOptions): Promise<CompactResponse>;
  /** etcd's Watch: responses until the watch is canceled or aborted. */
  watch(
    key: Bytes,
    options?: WatchOptions & KeySelector,
  ): AsyncIterableIterator<WatchResponse>;
  /** Asks every watch of this store for a progress notification. */
  requestWatchProgress(): void;
  /** etcd's LeaseGrant. */
  grant(
    ttlSeconds: number,
    options?: { id?: bigint },
  ): Promise<LeaseGrantResponse>;
  /** etcd's LeaseRevoke. */
  revoke(id: bigint): Promise<LeaseRevokeResponse>;
  /** One keep-alive of a lease. */
  keepAlive(id: bigint): Promise<LeaseKeepAliveResponse>;
  /** Keeps a lease alive until aborted or the lease is gone. */
  keepAliveStream(
    id: bigint,
    options?: { signal?: AbortSignal },
  ): AsyncIterable<LeaseKeepAliveResponse>;
  /** etcd's LeaseTimeToLive. */
  timeToLive(
    id: bigint,
    options?: { keys?: boolean },
  ): Promise<LeaseTimeToLiveResponse>;
  /** etcd's LeaseLeases. */
  leases(): Promise<LeaseLeasesResponse>;
  /** etcd's Status of the member answering. */
  status(): Promise<StatusResponse>;
  /** etcd's HashKV at `revision` (0 or absent = the current revision). */
  hashKv(revision?: number): Promise<HashKvResponse>;
  /** etcd's MemberList. */
  memberList(): Promise<MemberListResponse>;
  /** etcd's AlarmList: the names of the active alarms ("NOSPACE"). */
  alarmList(): Promise<string[]>;
  /** etcd's Alarm DEACTIVATE for every active alarm. */
  alarmDisarm(): Promise<void>;
  /** etcd's Defragment. */
  defrag(): Promise<{ header: ResponseHeader }>;
  /**
   * Writes a snapshot of the store to `file` (etcdctl's `snapshot save`):
   * revkv's snapshot format from revkv, a bolt database from etcd.
   */
  saveSnapshot(file: string): Promise<{ sizeBytes: number }>;
  /** Closes the store (local) or the connections (remote). */
  close(): Promise<void>;
}
