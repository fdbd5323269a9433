/**
 * revkv: an embeddable, etcd-compatible MVCC key-value store for Deno.
 *
 * etcd's data model in-process — revisions, `create_revision` /
 * `mod_revision` / `version`, ranges with every option of etcd's
 * RangeRequest, compaction — with its ordered index in WebAssembly.
 *
 * @example
 * ```ts
 * import { open } from "./mod.ts";
 *
 * const db = await open(); // in memory
 * await db.put("config/port", "2379");
 * await db.put("config/host", "127.0.0.1");
 * const { kvs, count } = await db.get("config/", { prefix: true });
 * console.log(count, kvs.map((kv) => `${kv.keyText}=${kv.valueText}`));
 * // 2 [ "config/host=127.0.0.1", "config/port=2379" ]
 * await db.close();
 * ```
 *
 * @module
 */

export {
  type CompactOptions,
  DEFAULT_MAX_REQUEST_BYTES,
  DEFAULT_QUOTA_BACKEND_BYTES,
  open,
  type OpenOptions,
  type ScanOptions,
  Store,
} from "./src/store.ts";
export { connect, type ConnectOptions } from "./src/client/connect.ts";
export { RemoteStore } from "./src/client/remote_store.ts";
export type {
  HashKvResponse,
  KvStore,
  MemberInfo,
  MemberListResponse,
  StatusResponse,
} from "./src/store_api.ts";
export {
  type Bytes,
  type CompactResponse,
  type DeleteOptions,
  type DeleteResponse,
  type KeySelector,
  KeyValue,
  type PutOptions,
  type PutResponse,
  type RangeOptions,
  type RangeResponse,
  type ResponseHeader,
  type SortOrder,
  type SortTarget,
} from "./src/mvcc/kv.ts";
export {
  CompactedError,
  EtcdError,
  FutureRevisionError,
} from "./src/mvcc/errors.ts";
export { prefixEnd } from "./src/mvcc/key_bounds.ts";
export {
  type Compare,
  type CompareResult,
  type CompareTarget,
  DEFAULT_MAX_TXN_OPS,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from "./src/txn/txn.ts";
export { compare, op, TxnBuilder } from "./src/txn/builder.ts";
export type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
} from "./src/lease/lease_service.ts";
export {
  type Clock,
  MAX_LEASE_TTL_SECONDS,
  MIN_LEASE_TTL_SECONDS,
} from "./src/lease/lessor.ts";
export {
  type DataDirOptions,
  type Durability,
  type RecoveryReport,
  repairDataDir as repair,
  type RepairReport,
  restoreSnapshot,
  snapshotStatus,
} from "./src/storage/data_dir.ts";
export { type SnapshotStatus } from "./src/storage/snapshot.ts";
export {
  type ReplayWorkerMode,
  WalCorruptionError,
} from "./src/storage/wal.ts";
export { SnapshotCorruptionError } from "./src/storage/snapshot.ts";
export type { TornTail } from "./src/storage/wal.ts";
export type {
  OpenFileOptions,
  StorageFile,
  StorageFs,
} from "./src/storage/fs.ts";
export { LockedError } from "./src/storage/lock.ts";
export { StorageFailedError } from "./src/storage/journal.ts";
export { MetaCorruptionError, NoSpaceError } from "./src/storage/errors.ts";
export type {
  WatchEvent,
  WatchLimits,
  WatchOptions,
  WatchResponse,
} from "./src/watch/watch_hub.ts";
