/**
 * The `Store`: revkv's public API, and `open()`. This file is a facade: it
 * checks every request in etcd's words (src/validate.ts, then the size and
 * quota checks here) and hands the work to the parts that own it.
 *
 * The write path, in order (put, delete, txn, compact, lease calls):
 *
 * 1. validate, and refuse before changing anything: bad input, over
 *    `maxRequestBytes`, past the quota (NOSPACE), or writes in flight at
 *    their bound (`etcdserver: too many requests`, src/store/writer.ts);
 * 2. apply to the MVCC engine (src/mvcc/) in one write transaction: one
 *    revision per write that changes something;
 * 3. lease attachments follow the applied keys (src/store/leases.ts);
 * 4. a durable store hands the changes to its journal: the WAL's group
 *    commit (src/storage/) batches concurrent writes into one sync;
 * 5. once synced, the revision is committed (in revision order) and
 *    published to watchers (src/watch/); then the promise resolves.
 *
 * Reads never wait for the writer: they run synchronously at the committed
 * revision and see only durable writes. Compaction marks at once and
 * reclaims in bounded background steps (src/store/compaction.ts). Leases
 * carry wall-clock deadlines through the WAL; `open()` revokes the ones
 * that expired while the store was closed before it resolves. A journal
 * failure stops writes (fail-stop); reads go on. So does a full disk at
 * open, when recovery needed no writes (`RecoveryReport.writesRefused`).
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
import { type Change, MvccStore, type WriteTxn } from "./mvcc/kv_store.ts";
import { ByteSlab, ScratchEncoder } from "./mvcc/byte_slab.ts";
import type { RevisionEntry } from "./mvcc/key_index.ts";
import {
  copyKeyValues,
  rangeKeys,
  type RangeSummary,
  type StoredKeyValue,
  toKeyValue,
  visitRange,
} from "./mvcc/range.ts";
import { CompactedError, errors, FutureRevisionError } from "./mvcc/errors.ts";
import { resolveBounds, successor } from "./mvcc/key_bounds.ts";
import {
  applyTxn,
  checkRequests,
  comparePath,
  DEFAULT_MAX_TXN_OPS,
  innerHeader,
  isReadOnly,
  type TxnHost,
  type TxnRequest,
  type TxnResponse,
  validateTxn,
} from "./txn/txn.ts";
import { TxnBuilder } from "./txn/builder.ts";
import {
  checkKeySelection,
  checkLeaseId,
  checkNumber,
  checkOptions,
  checkPut,
  checkTtlSeconds,
  checkTxnRequest,
} from "./validate.ts";
import type { Clock } from "./lease/lessor.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseService,
  LeaseTimeToLiveResponse,
} from "./lease/lease_service.ts";
import {
  type DataDirOptions,
  type OpenDataDir,
  openDataDir,
  type RecoveryReport,
} from "./storage/data_dir.ts";
import { NoSpaceError } from "./storage/errors.ts";
import { Writer } from "./store/writer.ts";
import type { JournalStats } from "./storage/journal.ts";
import { CompactionScheduler } from "./store/compaction.ts";
import { etcdHashByRev } from "./store/etcd_hash.ts";
import {
  leaseRecords,
  revokeExpiredAtOpen,
  storeLeases,
} from "./store/leases.ts";
import {
  MvccWatchSource,
  WatchHub,
  type WatchLimits,
  type WatchOptions,
  type WatchResponse,
} from "./watch/watch_hub.ts";
import { runtime } from "./storage/runtime.ts";
import {
  hashState,
  type SnapshotStatus,
  writeSnapshot,
} from "./storage/snapshot.ts";

/** etcd's default `--max-request-bytes` (1.5 MiB). */
export const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/**
 * Bytes a request adds to its key and value on the wire (etcd checks the
 * encoded raft request, header and field tags included).
 */
const REQUEST_OVERHEAD_BYTES = 32;
/** The options of a call given none: one shared object, not one per call
 * (the read and put paths count allocations). */
const NO_OPTIONS: Readonly<Record<string, never>> = Object.freeze({});
/** Default number of keys per page of `scan`. */
export const DEFAULT_SCAN_PAGE_KEYS = 256;
export {
  type Journal,
  MAX_WRITE_BYTES_IN_FLIGHT,
  MAX_WRITES_IN_FLIGHT,
} from "./store/writer.ts";

/** etcd's default `--quota-backend-bytes` (2 GiB). */
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * Options of `open`. The durability options (`durability`, `segmentBytes`,
 * `snapshotCount`, `progress`) apply when a path is given.
 */
export interface OpenOptions extends DataDirOptions {
  /**
   * Largest state, in bytes, before writes fail with `etcdserver: mvcc:
   * database space exceeded` and the NOSPACE alarm is raised (etcd's
   * `--quota-backend-bytes`, default 2 GiB). Compaction and `defrag()`
   * bring the store back under it.
   */
  quotaBackendBytes?: number;
  /** Largest request accepted, in bytes (etcd's `--max-request-bytes`). */
  maxRequestBytes?: number;
  /** Most ops in one level of a transaction (etcd's `--max-txn-ops`, 128). */
  maxTxnOps?: number;
  /** Bounds of watch delivery (queue sizes, batch sizes, progress interval). */
  watchLimits?: WatchLimits;
  /** Wall clock for lease deadlines, in ms (default `Date.now`; tests inject one). */
  clock?: Clock;
  /** Most writes admitted but not yet durable (default `MAX_WRITES_IN_FLIGHT`). */
  maxWritesInFlight?: number;
  /** Most bytes of writes admitted but not yet durable (default `MAX_WRITE_BYTES_IN_FLIGHT`). */
  maxWriteBytesInFlight?: number;
  /**
   * Serve this data dir's store to other processes of the same user on the
   * unix socket `<dir>/revkv.sock` (mode 0600) while it is open (default
   * true; ignored in memory). A second `open(dir, { whenLocked: "connect" })`
   * — the CLI's, for one — then reaches this store instead of being
   * refused.
   */
  share?: boolean;
  /**
   * What `open(dir)` does when another process holds the data dir:
   * `"fail"` (default) throws `LockedError`; `"connect"` connects to the
   * owner's local endpoint and resolves to a remote `KvStore` with the
   * same semantics (a watch here sees the owner's writes and the other
   * way round). When the owner exits, that store's calls fail; the next
   * `open(dir)` becomes the owner.
   */
  whenLocked?: "fail" | "connect";
}

import type {
  CompactOptions,
  HashKvResponse,
  KvStore,
  MemberListResponse,
  ScanOptions,
  StatusResponse,
} from "./store_api.ts";
import { ETCD_API_VERSION } from "./store_api.ts";
export type { CompactOptions, ScanOptions } from "./store_api.ts";

/**
 * Store methods that are not public API: for revkv's tests and modules,
 * importing `src/store.ts` directly. mod.ts does not export this.
 */
export let storeInternals: {
  /** `get`, answered synchronously (reads never wait for the writer). */
  getSync(store: Store, key: Bytes, options?: RangeOptions): RangeResponse;
  /** Revokes every lease past its deadline now; resolves to how many. */
  expireLeases(store: Store): Promise<number>;
  /** Whether a lease exists. */
  leaseExists(store: Store, id: bigint): boolean;
  /** The journal's counters (batches, records, fsyncs); none in memory. */
  journalStats(store: Store): Readonly<JournalStats> | undefined;
  /** What `close()` runs first (stopping the local endpoint). */
  setBeforeClose(store: Store, stop: () => Promise<void>): void;
};

/**
 * An etcd-compatible MVCC key-value store. Obtain one with `open()`.
 *
 * @example Put and get
 * ```ts
 * import { open } from "../mod.ts";
 * const db = await open();
 * await db.put("greeting", "hello");
 * const { kvs } = await db.get("greeting");
 * console.log(kvs[0]?.valueText); // "hello"
 * await db.close();
 * ```
 */
export class Store implements KvStore {
  readonly #mvcc: MvccStore;
  readonly #keyScratch = new ScratchEncoder();
  /** Read keys live only during the read: encoded into a reused buffer. */
  readonly #readKeyScratch = new ScratchEncoder();
  readonly #encodeReadKey = (key: Bytes): Uint8Array =>
    typeof key === "string" ? this.#readKeyScratch.encode(key) : key;
  readonly #valueSlab = new ByteSlab();
  readonly #maxRequestBytes: number;
  readonly #quotaBackendBytes: number;
  #alarmNoSpace = false;
  readonly #recovery: RecoveryReport | undefined;
  readonly #txnHost: TxnHost;
  readonly #leases: LeaseService;
  readonly #writer: Writer;
  readonly #compaction: CompactionScheduler;
  readonly #clusterId: bigint;
  readonly #memberId: bigint;
  #raftTerm = 2;
  readonly #watchHub: WatchHub;
  #closed = false;
  /** Stops the local endpoint (`OpenOptions.share`), run first by close. */
  #beforeClose: (() => Promise<void>) | undefined;
  /** The close under way or done: every `close()` answers with it. */
  #closing: Promise<void> | undefined;

  static {
    // The internals tests and revkv's own modules use, reachable only by
    // importing this file (not from mod.ts): see `storeInternals`.
    storeInternals = {
      getSync: (store, key, options) => store.#getSync(key, options),
      expireLeases: (store) => store.#expireLeases(),
      leaseExists: (store, id) => store.#leaseExists(id),
      journalStats: (store) => store.#writer.journal?.stats,
      setBeforeClose: (store, stop) => {
        store.#beforeClose = stop;
      },
    };
  }

  /** Use `open()`; the constructor is internal. */
  constructor(options: OpenOptions = {}, durable?: OpenDataDir) {
    this.#maxRequestBytes = options.maxRequestBytes ??
      DEFAULT_MAX_REQUEST_BYTES;
    this.#quotaBackendBytes = options.quotaBackendBytes ??
      DEFAULT_QUOTA_BACKEND_BYTES;
    this.#mvcc = durable?.mvcc ?? new MvccStore();
    const journal = durable?.journal;
    this.#writer = new Writer(this.#mvcc, journal, options, {
      assertOpen: () => this.#assertOpen(),
      onApplied: (changes) => this.#leases.onChanges(changes),
      publish: (revision, changes) => this.#watchHub.publish(revision, changes),
    });
    this.#compaction = new CompactionScheduler(
      this.#mvcc,
      () => journal?.compactionHeld === true,
    );
    this.#recovery = durable?.report;
    // A full disk at open: reads are served, writes refused (and NOSPACE).
    const writesRefused = durable?.report.writesRefused;
    if (writesRefused) this.#writer.refuseWrites(writesRefused);
    this.#clusterId = durable?.meta.clusterId ?? randomId();
    this.#memberId = durable?.meta.memberId ?? randomId();
    this.#raftTerm = durable?.meta.term ?? 2;
    this.#watchHub = new WatchHub(
      new MvccWatchSource(this.#mvcc, () => this.#writer.committedRevision),
      options.watchLimits,
    );
    this.#txnHost = this.#makeTxnHost(options.maxTxnOps ?? DEFAULT_MAX_TXN_OPS);
    this.#leases = storeLeases({
      clock: options.clock,
      writer: this.#writer,
      mvcc: this.#mvcc,
      header: (revision) => this.header(revision),
      closed: () => this.#closed,
      restored: durable?.leases,
    });
    // Recovery leaves the replayed compaction to the background steps.
    if (this.#mvcc.compacting) this.#compaction.schedule();
  }

  /** What recovery did when the store was opened from a data dir. */
  get recovery(): RecoveryReport | undefined {
    return this.#recovery;
  }

  /** The newest committed revision (what reads see by default). */
  get revision(): number {
    return this.#writer.committedRevision;
  }

  /** The revision of the last compaction (-1 when never compacted, as etcd). */
  get compactRevision(): number {
    return this.#mvcc.compactRevision;
  }

  /** A response header at the committed revision. */
  header(revision: number = this.#writer.committedRevision): ResponseHeader {
    return {
      clusterId: this.#clusterId,
      memberId: this.#memberId,
      revision,
      raftTerm: this.#raftTerm,
    };
  }

  /**
   * Reads a key or a range of keys (etcd's Range).
   *
   * @param key the key, or the start of the range.
   * @param options range end / prefix / from-key, revision, limit, sort,
   *   keys-only, count-only and revision filters, as etcd's RangeRequest.
   * @returns the key-values, `count` (all keys in range) and `more`.
   * @throws EtcdError with etcd's text for an empty key, a compacted or a
   *   future revision.
   *
   * @example Prefix read, newest first by modification
   * ```ts
   * import { open } from "../mod.ts";
   * const db = await open();
   * await db.put("app/a", "1");
   * await db.put("app/b", "2");
   * const res = await db.get("app/", { prefix: true, sortTarget: "mod", sortOrder: "descend" });
   * console.log(res.kvs.map((kv) => kv.keyText)); // ["app/b", "app/a"]
   * await db.close();
   * ```
   */
  get(key: Bytes, options: RangeOptions = NO_OPTIONS): Promise<RangeResponse> {
    try {
      return Promise.resolve(this.#getSync(key, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `get`, answered synchronously (reads never wait for the writer). */
  #getSync(key: Bytes, options: RangeOptions = NO_OPTIONS): RangeResponse {
    checkKeySelection(key, options);
    this.#assertReadable();
    const bounds = resolveBounds(key, options, this.#encodeReadKey);
    const result = rangeKeys(
      this.#mvcc,
      bounds,
      options,
      this.#writer.committedRevision,
    );
    return { header: this.header(), ...result };
  }

  /**
   * @ignore For encoders (the gRPC server), not part of the public API:
   * `get` without `KeyValue` objects. Calls `visit` once per key of the
   * answer, in answer order, with every option of etcd's RangeRequest
   * applied (revision, limit, sort, keysOnly, countOnly, min/max mod and
   * create revisions), then returns the header, `more` and `count`; nothing
   * is visited with `countOnly`. Throws as `get` does, before visiting.
   *
   * Lifetime: `visit` gets one `StoredKeyValue` object, reused for every
   * key, whose `key` and `value` are views of the store's own bytes. They
   * are valid only during that `visit` call: encode or copy them there,
   * never keep them, never write into them. `visit` must not call into the
   * store.
   */
  visitRange(
    key: Bytes,
    options: RangeOptions,
    visit: (kv: StoredKeyValue) => void,
  ): RangeSummary & { header: ResponseHeader } {
    this.#assertReadable();
    const header = this.header();
    const summary = visitRange(
      this.#mvcc,
      resolveBounds(key, options, this.#encodeReadKey),
      options,
      this.#writer.committedRevision,
      visit,
    );
    return { header, more: summary.more, count: summary.count };
  }

  /**
   * Iterates over a range of any size at one revision, a page at a time, so
   * that memory stays bounded however many keys match.
   *
   * @throws CompactedError if a compaction passes the scan's revision while
   *   it is paused between pages.
   *
   * @example Count keys under a prefix without loading them at once
   * ```ts
   * import { open } from "../mod.ts";
   * const db = await open();
   * for (let i = 0; i < 1000; i++) await db.put(`k/${i}`, "v");
   * let n = 0;
   * for await (const _kv of db.scan("k/", { prefix: true })) n++;
   * console.log(n); // 1000
   * await db.close();
   * ```
   */
  async *scan(key: Bytes, options: ScanOptions = {}): AsyncGenerator<KeyValue> {
    checkKeySelection(key, options);
    this.#assertReadable();
    const bounds = resolveBounds(key, options);
    const atRev = this.#mvcc.resolveReadRevision(
      options.revision ?? 0,
      this.#writer.committedRevision,
    );
    const pageKeys = Math.max(1, options.pageKeys ?? DEFAULT_SCAN_PAGE_KEYS);
    const keysOnly = options.keysOnly ?? false;
    const reverse = options.reverse ?? false;
    let cursor = { ...bounds };
    for (;;) {
      this.#assertReadable();
      if (atRev < this.#mvcc.compactRevision) {
        throw new CompactedError(this.#mvcc.compactRevision);
      }
      const keys: Uint8Array[] = [];
      const entries: RevisionEntry[] = [];
      // The position comes from the engine's own key bytes: the yielded
      // copies belong to the caller, who may change them.
      let last: Uint8Array | undefined;
      this.#mvcc.forEachVisibleEntry(cursor, atRev, (key, entry) => {
        keys.push(key);
        entries.push(entry);
        last = key;
        return keys.length < pageKeys;
      }, reverse);
      // One copy per page (see copyKeyValues), made before yielding.
      const page = keys.length === 0
        ? []
        : copyKeyValues(keys, entries, keysOnly);
      for (const kv of page) yield kv;
      if (page.length < pageKeys || cursor.end === undefined) return;
      if (last === undefined) return;
      cursor = reverse
        ? { start: cursor.start, end: last }
        : { start: successor(last), end: cursor.end };
    }
  }

  /**
   * Puts a value at a key, taking the next revision (etcd's Put).
   *
   * @param key the key (non-empty).
   * @param value the value; must be empty with `ignoreValue`.
   * @param options lease, prevKv, ignoreValue, ignoreLease.
   * @returns the header at the new revision, and the previous key-value when asked.
   *
   * @example
   * ```ts
   * import { open } from "../mod.ts";
   * const db = await open();
   * const { header } = await db.put("a", "1");
   * console.log(header.revision); // 2
   * await db.close();
   * ```
   */
  put(
    key: Bytes,
    value: Bytes,
    options: PutOptions = NO_OPTIONS,
  ): Promise<PutResponse> {
    return this.#writer.write((txn) => {
      const change = this.#applyPut(txn, key, value, options);
      return (revision: number): PutResponse => {
        const response: PutResponse = { header: this.header(revision) };
        if (options.prevKv && change.prev) {
          response.prevKv = toKeyValue(change.key, change.prev);
        }
        return response;
      };
    });
  }

  /**
   * Deletes a key or a range of keys (etcd's DeleteRange). A delete that
   * matches nothing takes no revision.
   *
   * @example
   * ```ts
   * import { open } from "../mod.ts";
   * const db = await open();
   * await db.put("a", "1");
   * const { deleted } = await db.delete("a");
   * console.log(deleted); // 1
   * await db.close();
   * ```
   */
  delete(key: Bytes, options: DeleteOptions = {}): Promise<DeleteResponse> {
    return this.#writer.write((txn) => {
      const changes = this.#applyDelete(txn, key, options);
      return (revision: number): DeleteResponse => ({
        header: this.header(revision),
        deleted: changes.length,
        prevKvs: options.prevKv
          ? changes.map((change) => toKeyValue(change.key, change.prev!))
          : [],
      });
    });
  }

  /**
   * Runs a transaction (etcd's Txn): if every compare holds, the `success`
   * ops run, else the `failure` ops; all writes take one revision. Without
   * an argument, returns a fluent builder.
   *
   * @throws EtcdError `etcdserver: duplicate key given in txn request` when
   *   a branch writes one key twice, `etcdserver: too many operations in txn
   *   request` past `maxTxnOps`, and the errors of its ops; nothing is
   *   written then.
   *
   * @example
   * ```ts
   * import { compare, op, open } from "../mod.ts";
   * const db = await open();
   * const res = await db.txn({
   *   compare: [compare.version("lock", "==", 0)],
   *   success: [op.put("lock", "me")],
   *   failure: [op.get("lock")],
   * });
   * console.log(res.succeeded); // true
   * await db.close();
   * ```
   */
  txn(request: TxnRequest): Promise<TxnResponse>;
  /** Starts a fluent transaction: `.if(...).then(...).else(...).commit()`. */
  txn(): TxnBuilder;
  txn(request?: TxnRequest): Promise<TxnResponse> | TxnBuilder {
    if (request === undefined) {
      return new TxnBuilder((built) => this.txn(built));
    }
    return this.#writer.write((txn) => {
      checkTxnRequest(request);
      validateTxn(request, this.#txnHost.maxTxnOps);
      const before = txn.readRevision;
      const path = comparePath(this.#txnHost, request, before);
      checkRequests(this.#txnHost, request, path, before, !isReadOnly(request));
      const { response } = applyTxn(this.#txnHost, txn, request, path);
      return (revision: number): TxnResponse => ({
        header: this.header(revision),
        ...response,
      });
    });
  }

  /**
   * Compacts the history: reads below `revision` fail from now on, and the
   * revisions they would need are reclaimed in bounded steps.
   *
   * @throws EtcdError `etcdserver: mvcc: required revision has been compacted`
   *   when `revision` is not above the last compaction, and
   *   `etcdserver: mvcc: required revision is a future revision` beyond the
   *   current revision.
   */
  compact(
    revision: number,
    options: CompactOptions = {},
  ): Promise<CompactResponse> {
    try {
      checkNumber("revision", revision);
      checkOptions("options", options);
      this.#assertOpen();
      this.#writer.admit();
      this.#mvcc.compact(revision);
    } catch (error) {
      return Promise.reject(error);
    }
    // The record joins the WAL batch in order after the writes it follows;
    // the response waits for it to be durable, like any write.
    const logged = this.#writer.inFlight(
      0,
      this.#writer.journal?.compact(revision),
    );
    // Register for the end of the reclaiming before it can possibly end:
    // the steps run on timers while the WAL record is being synced.
    const reclaimed = options.physical
      ? this.#compaction.whenReclaimed()
      : Promise.resolve();
    this.#compaction.schedule();
    const response = { header: this.header() };
    return logged.then(
      () => reclaimed.then(() => response),
      (error) => this.#writer.stop(error),
    );
  }

  /**
   * Verifies the store's invariants (tree ↔ key index, revision order,
   * versions, committed ≤ current); throws on the first violation.
   */
  check(): void {
    this.#mvcc.check();
    if (this.#writer.committedRevision > this.#mvcc.currentRevision) {
      throw new Error(
        `store check: committed revision ${this.#writer.committedRevision} > current ${this.#mvcc.currentRevision}`,
      );
    }
  }

  /** Engine statistics: keys, approximate bytes, wasm memory. */
  stats(): {
    keys: number;
    sizeBytes: number;
    wasmLiveBytes: number;
    wasmMemoryBytes: number;
    writesInFlight: number;
    writeBytesInFlight: number;
  } {
    const memory = this.#mvcc.treeMemory();
    return {
      keys: this.#mvcc.keyCount,
      sizeBytes: this.#mvcc.sizeBytes,
      wasmLiveBytes: memory.liveBytes,
      wasmMemoryBytes: memory.memoryBytes,
      writesInFlight: this.#writer.writesInFlight,
      writeBytesInFlight: this.#writer.writeBytesInFlight,
    };
  }

  /**
   * Closes the store; later calls fail. Pending compaction stops. A durable
   * store flushes what is pending, cancels a running snapshot and releases
   * its data dir.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    // Other processes' calls on the local endpoint finish first.
    await this.#beforeClose?.().catch(() => {});
    this.#closed = true;
    this.#leases.stop();
    this.#watchHub.close();
    this.#compaction.stop();
    await this.#writer.journal?.close();
  }

  // --- durability ---------------------------------------------------------

  /**
   * A hash of the key-value history at `revision` (default: the committed
   * revision), like etcd's HashKV: CRC32C over every kept revision of every
   * key up to `revision`, in key order. Two stores with the same history
   * and compaction have the same hash; a snapshot at that revision reports
   * it too.
   */
  hash(revision: number = this.#writer.committedRevision): {
    hash: number;
    revision: number;
    compactRevision: number;
  } {
    this.#assertReadable();
    if (revision > this.#writer.committedRevision) {
      throw new RangeError(
        `Cannot hash at revision ${revision}: beyond the committed revision ${this.#writer.committedRevision}`,
      );
    }
    return {
      hash: hashState(this.#mvcc, revision),
      revision,
      compactRevision: this.#mvcc.compactRevision,
    };
  }

  /**
   * etcd's Status for this store: it is its own leader, its raft index is
   * its revision, its size is the state's size.
   */
  status(): Promise<StatusResponse> {
    return this.#guard(() => {
      const header = this.header();
      const sizeBytes = this.stats().sizeBytes;
      const memberId = BigInt.asUintN(64, header.memberId);
      return Promise.resolve({
        header,
        version: ETCD_API_VERSION,
        dbSizeBytes: sizeBytes,
        dbSizeInUseBytes: sizeBytes,
        leader: memberId,
        raftIndex: header.revision,
        raftTerm: header.raftTerm,
        raftAppliedIndex: header.revision,
        isLearner: false,
        errors: this.alarms().map((name) =>
          `memberID:${memberId} alarm:${name} `
        ),
      });
    });
  }

  /**
   * etcd's HashKV at `revision` (0 or absent = current), computed as etcd
   * 3.4's `HashByRev` does (`src/store/etcd_hash.ts`), so the same history
   * and compaction hash equal on revkv and on etcd; with etcd's errors for
   * a future revision or one at or below the compaction.
   */
  hashKv(revision = 0): Promise<HashKvResponse> {
    return this.#guard(() => {
      this.#assertReadable();
      const current = this.#writer.committedRevision;
      const compactRevision = this.#mvcc.compactRevision;
      if (revision > 0 && revision <= compactRevision) {
        throw new CompactedError(compactRevision);
      }
      if (revision > current) throw new FutureRevisionError();
      return Promise.resolve({
        header: this.header(),
        hash: etcdHashByRev(
          this.#mvcc,
          revision > 0 ? revision : current,
          compactRevision,
        ),
        compactRevision,
      });
    });
  }

  /** etcd's MemberList: an embedded store is one member, with no URLs. */
  memberList(): Promise<MemberListResponse> {
    const header = this.header();
    return Promise.resolve({
      header,
      members: [{
        id: BigInt.asUintN(64, header.memberId),
        name: "default",
        peerUrls: [],
        clientUrls: [],
        isLearner: false,
      }],
    });
  }

  /** The active alarms, as {@linkcode Store.alarms}, for the async API. */
  alarmList(): Promise<string[]> {
    return Promise.resolve(this.alarms());
  }

  /** Disarms every alarm, as {@linkcode Store.disarmAlarms}. */
  alarmDisarm(): Promise<void> {
    this.disarmAlarms();
    return Promise.resolve();
  }

  /**
   * Writes a consistent snapshot of the live store (at the committed
   * revision) to `file` (etcdctl's `snapshot save`). Writes go on while it
   * is written, in pages; compaction waits until it is done.
   *
   * @returns the snapshot's status (hash, revision, keys, size).
   *
   * @example
   * ```ts
   * import { open, restoreSnapshot, snapshotStatus } from "../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const db = await open();
   * await db.put("a", "1");
   * await db.saveSnapshot(`${dir}/backup.snap`);
   * await db.close();
   * console.log((await snapshotStatus(`${dir}/backup.snap`)).totalKeys); // 1
   * await restoreSnapshot(`${dir}/backup.snap`, `${dir}/data`);
   * const restored = await open(`${dir}/data`);
   * console.log((await restored.get("a")).kvs[0]?.valueText); // "1"
   * await restored.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async saveSnapshot(file: string): Promise<SnapshotStatus> {
    this.#assertReadable();
    const revision = this.#writer.committedRevision;
    this.#compaction.hold();
    try {
      return await writeSnapshot(
        runtime.fs,
        file,
        this.#mvcc,
        revision,
        this.#mvcc.compactRevision,
        {
          sync: true,
          leases: leaseRecords(this.#leases),
        },
      );
    } finally {
      this.#compaction.release();
    }
  }

  /**
   * Reclaims space (etcd's Defragment): finishes the running compaction,
   * and in a durable store writes a snapshot and removes the WAL before it.
   * Both run in bounded steps between which writes proceed. Afterwards the
   * NOSPACE alarm is cleared if the store is back under its quota.
   */
  async defrag(): Promise<{ header: ResponseHeader }> {
    this.#assertOpen();
    if (this.#mvcc.compacting) {
      const reclaimed = this.#compaction.whenReclaimed();
      this.#compaction.schedule();
      await reclaimed;
    }
    if (this.#writer.journal?.snapshot) await this.#writer.journal.snapshot();
    if (this.#mvcc.sizeBytes <= this.#quotaBackendBytes) {
      this.#alarmNoSpace = false;
    }
    return { header: this.header() };
  }

  /**
   * Active alarms (etcd's `alarm list`): `["NOSPACE"]` when over quota, or
   * when the store was opened on a full disk (see
   * `RecoveryReport.writesRefused`; that one lasts until a reopen).
   */
  alarms(): string[] {
    return this.#alarmNoSpace || this.#recovery?.writesRefused !== undefined
      ? ["NOSPACE"]
      : [];
  }

  /**
   * Clears the NOSPACE alarm (etcd's alarm DEACTIVATE, `alarm disarm`); a
   * later put past the quota raises it again.
   */
  disarmAlarms(): void {
    this.#alarmNoSpace = false;
  }

  /** Closes the store (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- the write path -----------------------------------------------------

  /**
   * Validates and applies a put inside an open write transaction (also the
   * building block of txn). Throws before changing anything on bad input.
   */
  #applyPut(
    txn: WriteTxn,
    key: Bytes,
    value: Bytes,
    options: PutOptions,
  ): Change {
    checkPut(key, value, options);
    // The key is only looked at here (the engine copies a key it keeps), so
    // a string key is encoded into a reused buffer; values go into the
    // store's slabs (see byte_slab.ts).
    const keyBytes = typeof key === "string"
      ? this.#keyScratch.encode(key)
      : key;
    let valueBytes = typeof value === "string"
      ? this.#valueSlab.encode(value)
      : value;
    const lease = options.lease ?? 0n;
    if (keyBytes.length === 0) throw errors.emptyKey();
    if (options.ignoreValue && valueBytes.length !== 0) {
      throw errors.valueProvided();
    }
    if (options.ignoreLease && lease !== 0n) throw errors.leaseProvided();
    this.#checkSize(keyBytes.length + valueBytes.length);
    this.#checkQuota(keyBytes.length + valueBytes.length);
    if (lease !== 0n && !this.#leaseExists(lease)) throw errors.leaseNotFound();
    let leaseToStore = lease;
    if (options.ignoreValue || options.ignoreLease) {
      const current = this.#mvcc.keyIndex(keyBytes)?.get(txn.readRevision);
      if (current === undefined) throw errors.keyNotFound();
      if (options.ignoreValue) valueBytes = current.value!;
      if (options.ignoreLease) leaseToStore = current.lease;
    }
    // Copy what the caller gave: it may reuse its buffer after the call.
    const stored = valueBytes === value
      ? this.#valueSlab.copy(valueBytes)
      : valueBytes;
    return txn.put(keyBytes, stored, leaseToStore);
  }

  /** Validates and applies a delete inside an open write transaction. */
  #applyDelete(txn: WriteTxn, key: Bytes, options: KeySelector): Change[] {
    checkKeySelection(key, options);
    const bounds = resolveBounds(key, options);
    this.#checkSize(bounds.start.length + (bounds.end?.length ?? 0));
    return txn.deleteRange(bounds);
  }

  #makeTxnHost(maxTxnOps: number): TxnHost {
    const mvcc = this.#mvcc;
    return {
      maxTxnOps,
      leaseExists: (id) => this.#leaseExists(id),
      range: (txn, key, options) => ({
        header: innerHeader(txn.readRevision),
        ...rangeKeys(
          mvcc,
          resolveBounds(key, options),
          options,
          txn.readRevision,
        ),
      }),
      put: (txn, key, value, options) => {
        const change = this.#applyPut(txn, key, value, options);
        const response: PutResponse = { header: innerHeader(txn.revision) };
        if (options.prevKv && change.prev) {
          response.prevKv = toKeyValue(change.key, change.prev);
        }
        return response;
      },
      deleteRange: (txn, key, options) => {
        const changes = this.#applyDelete(txn, key, options);
        return {
          header: innerHeader(txn.readRevision),
          deleted: changes.length,
          prevKvs: options.prevKv
            ? changes.map((change) => toKeyValue(change.key, change.prev!))
            : [],
        };
      },
      exists: (key, revision) =>
        mvcc.keyIndex(key)?.get(revision) !== undefined,
      everyVisible: (bounds, revision, test) => {
        let all: boolean | undefined;
        mvcc.forEachVisible(bounds, revision, ({ entry }) => {
          all = test(entry);
          return all;
        });
        return all;
      },
      checkReadRevision: (revision, readRevision) => {
        mvcc.resolveReadRevision(revision, readRevision);
      },
    };
  }

  // --- watch --------------------------------------------------------------

  /**
   * Watches a key or a range (etcd's Watch): yields a response per committed
   * revision with its events (history first from `startRevision`, then
   * live), in revision order, exactly once, only once durable. End it with
   * `options.signal` or by leaving the `for await`. A `startRevision` below
   * the compaction ends the watch with a response carrying
   * `compactRevision` and `canceled: true`. A slow consumer falls behind
   * into a catching-up group fed from history; it never blocks writers.
   *
   * @example
   * ```ts
   * import { open } from "../mod.ts";
   * const db = await open();
   * const controller = new AbortController();
   * const seen = (async () => {
   *   for await (const res of db.watch("job/", { prefix: true, signal: controller.signal })) {
   *     for (const ev of res.events) console.log(ev.type, ev.kv.keyText);
   *     controller.abort();
   *   }
   * })();
   * await db.put("job/1", "queued");
   * await seen; // prints: put job/1
   * await db.close();
   * ```
   */
  watch(
    key: Bytes,
    options: WatchOptions & KeySelector = {},
  ): AsyncIterableIterator<WatchResponse> {
    this.#assertOpen();
    checkKeySelection(key, options);
    return this.#watchHub.watch(resolveBounds(key, options), options);
  }

  /** Asks every watch for a progress response (etcd's RequestProgress). */
  requestWatchProgress(): void {
    this.#assertOpen();
    this.#watchHub.requestProgress();
  }

  // --- leases -------------------------------------------------------------

  /**
   * Grants a lease (etcd's LeaseGrant). TTLs below etcd's minimum (2 s) are
   * raised to it; the ID is random (positive, 63 bits) unless given.
   *
   * @throws EtcdError `etcdserver: lease already exists` for a taken ID,
   *   `etcdserver: too large lease TTL` past 9,000,000,000 s.
   *
   * @example A key that lives as long as its lease
   * ```ts
   * import { open } from "../mod.ts";
   * const db = await open();
   * const { id } = await db.grant(10);
   * await db.put("session", "alive", { lease: id });
   * await db.revoke(id); // deletes "session"
   * console.log((await db.get("session")).count); // 0
   * await db.close();
   * ```
   */
  grant(
    ttlSeconds: number,
    options: { id?: bigint } = {},
  ): Promise<LeaseGrantResponse> {
    return this.#guard(() => {
      checkTtlSeconds(ttlSeconds);
      checkOptions("options", options);
      if (options.id !== undefined) checkLeaseId("options.id", options.id);
      return this.#leases.grant(ttlSeconds, options.id);
    });
  }

  /**
   * Revokes a lease; every key attached to it is deleted in one revision.
   * @throws EtcdError `etcdserver: requested lease not found`.
   */
  revoke(id: bigint): Promise<LeaseRevokeResponse> {
    return this.#guard(() => {
      checkLeaseId("id", id);
      return this.#leases.revoke(id);
    });
  }

  /**
   * Renews a lease to its full TTL once; returns the TTL.
   * @throws EtcdError `etcdserver: requested lease not found`.
   */
  keepAlive(id: bigint): Promise<LeaseKeepAliveResponse> {
    return this.#guard(() => {
      checkLeaseId("id", id);
      return this.#leases.keepAlive(id);
    });
  }

  /**
   * Keeps a lease alive, renewing it every third of its TTL, until `signal`
   * aborts; yields each renewal. Throws when the lease is gone.
   */
  keepAliveStream(
    id: bigint,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<LeaseKeepAliveResponse> {
    this.#assertOpen();
    checkLeaseId("id", id);
    return this.#leases.keepAliveStream(id, options.signal);
  }

  /**
   * Granted and remaining TTL of a lease, and its keys with `keys: true`. An
   * unknown (expired or revoked) lease is not an error: its TTL is -1.
   */
  timeToLive(
    id: bigint,
    options: { keys?: boolean } = {},
  ): Promise<LeaseTimeToLiveResponse> {
    return this.#guard(() => {
      checkLeaseId("id", id);
      checkOptions("options", options);
      return Promise.resolve(this.#leases.timeToLive(id, options));
    });
  }

  /** Lists the live leases. */
  leases(): Promise<LeaseLeasesResponse> {
    return this.#guard(() => Promise.resolve(this.#leases.leases()));
  }

  /** Revokes every lease past its deadline now; returns how many. */
  #expireLeases(): Promise<number> {
    return this.#guard(() => this.#leases.expireNow());
  }

  /** Whether a lease exists. */
  #leaseExists(id: bigint): boolean {
    return this.#leases.exists(id);
  }

  #guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      this.#assertOpen();
      return run();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * etcd's quota check: a put that would take the state past the quota
   * raises the NOSPACE alarm; while it is raised, puts fail (deletes,
   * compaction and reads keep working).
   */
  #checkQuota(bytes: number): void {
    if (
      !this.#alarmNoSpace &&
      this.#mvcc.sizeBytes + bytes + REQUEST_OVERHEAD_BYTES >
        this.#quotaBackendBytes
    ) {
      this.#alarmNoSpace = true;
    }
    if (this.#alarmNoSpace) throw new NoSpaceError();
  }

  #checkSize(bytes: number): void {
    if (bytes + REQUEST_OVERHEAD_BYTES > this.#maxRequestBytes) {
      throw errors.requestTooLarge();
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw errors.storeClosed();
    if (this.#writer.failure) throw this.#writer.failure;
  }

  /** Reads go on after a fail-stop: the committed state is still durable. */
  #assertReadable(): void {
    if (this.#closed) throw errors.storeClosed();
  }
}

/**
 * Opens a store. With no path it is purely in memory; with a path it is
 * durable: the data dir is created if needed, locked against other
 * openers, and recovered (newest valid snapshot + WAL replay). A write's
 * promise resolves only once it is on disk (`durability: "fsync"`, the
 * default); `durability: "none"` never fsyncs and loses recent writes on a
 * crash or power loss (like etcd's `--unsafe-no-fsync`: tests only).
 *
 * @throws LockedError when another process (or store) holds the data dir;
 *   WalCorruptionError when the WAL is damaged in the middle (see `repair`).
 *
 * @example In memory
 * ```ts
 * import { open } from "../mod.ts";
 * const db = await open();
 * await db.put("k", "v");
 * console.log((await db.get("k")).kvs[0]?.valueText); // "v"
 * await db.close();
 * ```
 *
 * @example Durable
 * ```ts
 * import { open } from "../mod.ts";
 * const dir = await Deno.makeTempDir();
 * let db = await open(dir);
 * await db.put("k", "v"); // resolved: on disk
 * await db.close();
 * db = await open(dir);
 * console.log((await db.get("k")).kvs[0]?.valueText); // "v"
 * await db.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function open(
  path: string,
  options: OpenOptions & { whenLocked: "connect" },
): Promise<KvStore>;
/**
 * Opens a store: in memory without a path, durable in the data dir `path`
 * (see the first signature for `whenLocked: "connect"`).
 *
 * @throws LockedError when another process (or store) holds the data dir.
 */
export function open(path?: string, options?: OpenOptions): Promise<Store>;
export async function open(
  path?: string,
  options: OpenOptions = {},
): Promise<Store | KvStore> {
  if (path === undefined) return new Store(options);
  let durable: OpenDataDir;
  try {
    durable = await openDataDir(path, options);
  } catch (error) {
    if (
      options.whenLocked !== "connect" ||
      (error as Error).name !== "LockedError"
    ) throw error;
    // Loaded only here: the client is not part of an embedded store.
    const { connectToOwner } = await import("./client/shared_dir.ts");
    return await connectToOwner(
      path,
      error as Error,
      () => open(path, { ...options, whenLocked: "fail" }),
    );
  }
  const store = new Store(options, durable);
  if (durable.leases.size > 0) {
    await revokeExpiredAtOpen(
      () => storeInternals.expireLeases(store),
      () => store.close(),
    );
  }
  if (options.share ?? true) {
    // Loaded only here: the server's modules cost nothing to stores that
    // do not share (the CLI's short commands, in-memory stores).
    const { serveLocalEndpoint } = await import(
      "./server/local_endpoint.ts"
    );
    try {
      const stop = await serveLocalEndpoint(
        store,
        path,
        options.maxRequestBytes,
      );
      if (stop) storeInternals.setBeforeClose(store, stop);
    } catch (error) {
      await store.close();
      throw error;
    }
  }
  return store;
}

function randomId(): bigint {
  const words = crypto.getRandomValues(new Uint32Array(2));
  const id = (BigInt(words[0]!) << 32n) | BigInt(words[1]!);
  return id === 0n ? 1n : id;
}
