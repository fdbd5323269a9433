/**
 * The durable store's journal: group commit onto the WAL. It owns the queue
 * of records waiting to be written, the one flush running at a time, and
 * fail-stop; it hands snapshots to `snapshot_keeper.ts` and what each new
 * segment starts with to `segment_preamble.ts`.
 *
 * ```
 *   write()/compact()/lease*()  → #append: record + waiter queued
 *   #flushLoop (one at a time)  → batch ≤ BATCH_RECORDS_MAX / BATCH_BYTES_MAX
 *                               → WalWriter.append: one write + one fdatasync
 *                               → waiters resolved in order
 *                               → SnapshotKeeper.maybeSnapshot()
 *                               → JOIN_TICKS microtask turns, next batch
 *   close()                     → flush, await the snapshot, close the WAL
 *                                 (clean-close marker), release the lock
 * ```
 *
 * Group commit, as DESIGN's write path: the store applies a write to the
 * MVCC state and calls `write(revision, changes)`; the record joins the open
 * batch. While no flush is running the batch is flushed at once; while one
 * is, records pile up and form the next batch. A flush is one encode call,
 * one write and one fdatasync (`WalWriter.append`), and only after it are the
 * batch's promises resolved, in order — so the store's committed revision,
 * which reads default to, only ever names durable writes. After a batch of
 * more than one record the journal waits `JOIN_TICKS` microtask turns before
 * the next flush, so that the writers it just woke can join the next batch:
 * with 64 writers a batch holds ~64 records instead of alternating 1 and 63.
 * The queue is bounded by the store's writes in flight
 * (`src/store/writer.ts`): every record comes from an admitted write.
 *
 * Fail-stop: if a write or fdatasync fails, every pending and later write is
 * rejected with `StorageFailedError`; nothing unsynced is acknowledged. (An
 * fsync error may leave the page cache and the disk disagreeing; retrying
 * is unsafe, as PostgreSQL learnt in 2018.)
 *
 * Snapshots (when, how, what they let go) are `snapshot_keeper.ts`: the
 * journal counts entries for it, appends its marker record and tells it
 * after each batch. The WAL file work itself (one write + one fdatasync per
 * batch, rolls) is `wal_writer.ts`.
 *
 * @module
 */

import type { Change } from "../mvcc/kv_store.ts";
import type { MvccStore } from "../mvcc/kv_store.ts";
import { StorageFailedError } from "./errors.ts";
import type { StorageFs } from "./fs.ts";
import type { DirLock } from "./lock.ts";
import type { Meta } from "./meta.ts";
import type { SnapshotStatus } from "./snapshot.ts";
import { SnapshotKeeper } from "./snapshot_keeper.ts";
import type { SyncDurations, WalWriter } from "./wal_writer.ts";
import { type DurableLease, SegmentPreamble } from "./segment_preamble.ts";
import { frameBytes, type WalEncoder, type WalRecord } from "./wal_codec.ts";

export { type DurableLease, segmentPreamble } from "./segment_preamble.ts";
export { DEFAULT_SNAPSHOT_COUNT, SNAPSHOTS_KEPT } from "./snapshot_keeper.ts";
/** Most records in one batch (bounds one write and the time to encode it). */
export const BATCH_RECORDS_MAX = 16_384;
/**
 * Microtask turns the flush loop waits after a batch, so that the writers it
 * just woke (each resumes a few promise hops later) join the next batch.
 */
export const JOIN_TICKS = 16;
/** Most bytes in one batch (a single larger record still goes alone). */
export const BATCH_BYTES_MAX = 16 * 1024 * 1024;

export { StorageFailedError } from "./errors.ts";

/** What the journal needs. */
export interface JournalOptions {
  /** File operations. */
  fs: StorageFs;
  /** The data dir. */
  dir: string;
  /** The open WAL. */
  writer: WalWriter;
  /** Frame encoder. */
  encoder: WalEncoder;
  /** The engine (for snapshots). */
  mvcc: MvccStore;
  /** Identity and term. */
  meta: Meta;
  /** The data dir lock, released at close. */
  lock: DirLock;
  /** fdatasync batches and snapshots. */
  sync: boolean;
  /** Entries between snapshots. */
  snapshotCount: number;
  /** Newest snapshot revision on disk (0 when none). */
  snapshotRevision: number;
  /** Live leases after recovery (the journal keeps them for segment preambles). */
  leases?: Map<bigint, DurableLease>;
  /** Set when the disk was full at open: every append is refused with it. */
  writesRefused?: Error;
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Counters for tests and benchmarks. */
export interface JournalStats {
  /** Batches flushed. */
  batches: number;
  /** Records flushed. */
  records: number;
  /** fdatasync calls on WAL segments. */
  syncs: number;
  /** How long they took (the writer's histogram, live). */
  readonly syncDurations: Readonly<SyncDurations>;
  /** Snapshots written. */
  snapshots: number;
}

/** Group-committing WAL journal (see the module comment). */
export class WalJournal {
  readonly #o: JournalOptions;
  #records: WalRecord[] = [];
  #bytes: number[] = [];
  #waiters: Waiter[] = [];
  #flushing = false;
  #idle: Promise<void> = Promise.resolve();
  #idleResolve: (() => void) | undefined;
  /** Fail-stop: the failure (or the full disk at open) every append gets. */
  #failed: Error | undefined;
  #closing = false;
  /** What every new segment starts with: metadata, compaction, leases. */
  readonly #preamble: SegmentPreamble;
  /** When snapshots are taken, and what they let go. */
  readonly #snapshots: SnapshotKeeper;
  /** Counters (`snapshots` is the keeper's). */
  readonly stats: JournalStats;

  /** @param options what the journal needs. */
  constructor(options: JournalOptions) {
    this.#o = options;
    this.#failed = options.writesRefused;
    this.#preamble = new SegmentPreamble(
      options.meta,
      options.mvcc.compactRevision,
      options.leases,
    );
    const keeper = new SnapshotKeeper({
      fs: options.fs,
      dir: options.dir,
      mvcc: options.mvcc,
      sync: options.sync,
      snapshotCount: options.snapshotCount,
      snapshotRevision: options.snapshotRevision,
      appendMarker: (revision) => this.#append({ kind: "snapshot", revision }),
      leasesCopy: () => this.#preamble.leasesCopy(),
      isClosing: () => this.#closing,
      currentSegment: () => options.writer.segment.name,
    });
    this.#snapshots = keeper;
    this.stats = {
      batches: 0,
      records: 0,
      syncs: 0,
      syncDurations: options.writer.syncDurations,
      get snapshots() {
        return keeper.taken;
      },
    };
  }

  /** Records written at the start of every new segment. */
  preamble(): WalRecord[] {
    return this.#preamble.records();
  }

  /** While true, the store pauses incremental compaction (a snapshot reads history). */
  get compactionHeld(): boolean {
    return this.#snapshots.compactionHeld;
  }

  /** The failure that stopped the journal, if any. */
  get failure(): Error | undefined {
    return this.#failed;
  }

  /** Records a write transaction at `revision`; resolves once durable. */
  write(revision: number, changes: readonly Change[]): Promise<void> {
    this.#snapshots.counted(changes.length);
    return this.#append({ kind: "write", revision, changes });
  }

  /** Records a compaction; resolves once durable. */
  compact(revision: number): Promise<void> {
    this.#preamble.compacted(revision);
    return this.#append({ kind: "compact", revision });
  }

  /** Records a lease grant; resolves once durable. */
  leaseGrant(
    id: bigint,
    ttlSeconds: number,
    deadlineMs: number,
  ): Promise<void> {
    this.#preamble.granted(id, ttlSeconds, deadlineMs);
    return this.#append({ kind: "leaseGrant", id, ttlSeconds, deadlineMs });
  }

  /** Records a lease's new deadline (keep-alive); resolves once durable. */
  leaseRenew(id: bigint, deadlineMs: number): Promise<void> {
    this.#preamble.renewed(id, deadlineMs);
    return this.#append({ kind: "leaseCheckpoint", id, deadlineMs });
  }

  /** Records that a lease is gone; resolves once durable. */
  leaseRevoke(id: bigint): Promise<void> {
    this.#preamble.revoked(id);
    return this.#append({ kind: "leaseRevoke", id });
  }

  /** Appends any record (the lessor's records of issue 4 come this way). */
  append(record: WalRecord): Promise<void> {
    return this.#append(record);
  }

  #append(record: WalRecord): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closing) {
      return Promise.reject(new Error("revkv: journal is closing"));
    }
    const promise = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
    this.#records.push(record);
    this.#bytes.push(frameBytes(record));
    if (!this.#flushing) this.#startFlushing();
    return promise;
  }

  #startFlushing(): void {
    this.#flushing = true;
    this.#idle = new Promise((resolve) => (this.#idleResolve = resolve));
    this.#flushLoop().finally(() => {
      this.#flushing = false;
      this.#idleResolve?.();
    });
  }

  async #flushLoop(): Promise<void> {
    while (this.#records.length > 0 && !this.#failed) {
      // Take a bounded batch off the front.
      let count = 0;
      let bytes = 0;
      while (
        count < this.#records.length && count < BATCH_RECORDS_MAX &&
        (count === 0 || bytes + this.#bytes[count]! <= BATCH_BYTES_MAX)
      ) {
        bytes += this.#bytes[count]!;
        count++;
      }
      const records = this.#records.splice(0, count);
      this.#bytes.splice(0, count);
      const waiters = this.#waiters.splice(0, count);
      try {
        await this.#o.writer.append(records);
      } catch (error) {
        this.#fail(error, waiters);
        return;
      }
      this.stats.batches++;
      this.stats.records += count;
      this.stats.syncs = this.#o.writer.syncCount;
      for (const waiter of waiters) waiter.resolve();
      this.#snapshots.maybeSnapshot();
      // Let the writers just woken issue their next writes into this batch:
      // a few microtask turns cover a writer's await chain. (A macrotask
      // yield, setTimeout(0), cost 1-4 ms per batch, longer than an
      // fdatasync on a fast disk.)
      if (count > 1) {
        for (let i = 0; i < JOIN_TICKS; i++) await null;
      }
    }
  }

  #fail(error: unknown, inFlight: Waiter[]): void {
    this.#failed = error instanceof StorageFailedError && error.stopped
      ? error
      : new StorageFailedError(error, { stopped: true });
    const all = [...inFlight, ...this.#waiters.splice(0)];
    this.#records.length = 0;
    this.#bytes.length = 0;
    for (const waiter of all) waiter.reject(this.#failed);
  }

  /** Resolves when every record appended so far is durable (or failed). */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#idle;
    if (this.#failed) throw this.#failed;
  }

  /**
   * Writes a snapshot at the current revision now (or joins the running
   * one), then removes old snapshots and segments (`snapshot_keeper.ts`).
   */
  snapshot(): Promise<SnapshotStatus> {
    return this.#snapshots.snapshot();
  }

  /**
   * Flushes what is pending, cancels a running snapshot, closes the WAL and
   * releases the lock.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    try {
      await this.flush();
    } catch { /* failed: still release */ }
    this.#closing = true;
    await this.#snapshots.settled();
    try {
      // A clean end is recorded only when every batch made it to disk.
      await this.#o.writer.close(this.#failed === undefined);
    } finally {
      // Released even when closing the WAL failed: nothing is written after.
      await this.#o.lock.release();
    }
  }
}
