/**
 * The durable store's journal: group commit onto the WAL, and snapshots.
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
 *
 * Fail-stop: if a write or fdatasync fails, every pending and later write is
 * rejected with `StorageFailedError`; nothing unsynced is acknowledged. (An
 * fsync error may leave the page cache and the disk disagreeing; retrying
 * is unsafe, as PostgreSQL learnt in 2018.)
 *
 * Snapshots: after `snapshotCount` entries since the last one, a snapshot at
 * the current revision S is written in pages between which writes proceed
 * (incremental compaction is held meanwhile, so no entry at or below S
 * disappears under the iteration); a snapshot marker record goes into the
 * WAL at S, and the file is renamed into place only once the marker (hence
 * every write ≤ S) is durable. Then all but the newest `SNAPSHOTS_KEPT`
 * snapshots are removed, and WAL segments whose writes are all at or below
 * the oldest kept snapshot.
 *
 * @module
 */

import type { Change } from "../mvcc/kv_store.ts";
import type { MvccStore } from "../mvcc/kv_store.ts";
import type { StorageFs } from "./fs.ts";
import type { DirLock } from "./lock.ts";
import type { Meta } from "./meta.ts";
import {
  parseSnapshotName,
  snapshotName,
  type SnapshotStatus,
  verifySnapshot,
  writeSnapshot,
  yieldToEventLoop,
} from "./snapshot.ts";
import { listSegments, type WalWriter } from "./wal.ts";
import { frameBytes, type WalEncoder, type WalRecord } from "./wal_codec.ts";

/** Default entries between snapshots (etcd's `--snapshot-count`). */
export const DEFAULT_SNAPSHOT_COUNT = 100_000;
/** Snapshots kept on disk: the newest, and one to fall back to. */
export const SNAPSHOTS_KEPT = 2;
/** Most records in one batch (bounds one write and the time to encode it). */
export const BATCH_RECORDS_MAX = 16_384;
/**
 * Microtask turns the flush loop waits after a batch, so that the writers it
 * just woke (each resumes a few promise hops later) join the next batch.
 */
export const JOIN_TICKS = 16;
/** Most bytes in one batch (a single larger record still goes alone). */
export const BATCH_BYTES_MAX = 16 * 1024 * 1024;

/** The store stopped because the disk failed; nothing more is accepted. */
export class StorageFailedError extends Error {
  /**
   * The storage failure that stopped the store.
   * @param cause the error of the failed write or fdatasync.
   */
  constructor(cause: unknown) {
    super(
      `revkv: storage failed, the store stopped (fail-stop; writes not ` +
        `acknowledged were not made durable): ${
          (cause as Error)?.message ?? cause
        }`,
      { cause },
    );
    this.name = "StorageFailedError";
  }
}

/**
 * The records that start a segment after its header: the metadata and the
 * compaction revision (when any), so no segment depends on older ones.
 */
export function segmentPreamble(
  meta: Meta,
  compactRevision: number,
  leases: ReadonlyMap<bigint, DurableLease> = new Map(),
): WalRecord[] {
  const records: WalRecord[] = [{
    kind: "metadata",
    clusterId: meta.clusterId,
    memberId: meta.memberId,
    term: meta.term,
  }];
  if (compactRevision >= 0) {
    records.push({ kind: "compact", revision: compactRevision });
  }
  for (const [id, lease] of leases) {
    records.push({ kind: "leaseGrant", id, ...lease });
  }
  return records;
}

/** A lease as the WAL keeps it. */
export interface DurableLease {
  /** Granted TTL in seconds. */
  ttlSeconds: number;
  /** Wall-clock deadline in ms. */
  deadlineMs: number;
}

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
  /** Snapshots written. */
  snapshots: number;
}

/** Group-committing WAL journal with snapshots (see the module comment). */
export class WalJournal {
  readonly #o: JournalOptions;
  #records: WalRecord[] = [];
  #bytes: number[] = [];
  #waiters: Waiter[] = [];
  #flushing = false;
  #idle: Promise<void> = Promise.resolve();
  #idleResolve: (() => void) | undefined;
  #failed: StorageFailedError | undefined;
  #closing = false;
  #snapshotting: Promise<SnapshotStatus> | undefined;
  #compactionHeld = false;
  #entriesSinceSnapshot = 0;
  #snapshotRevision: number;
  #loggedCompactRevision = -1;
  /** Live leases as logged, repeated at the start of every segment. */
  readonly #leases: Map<bigint, DurableLease>;
  readonly stats: JournalStats = {
    batches: 0,
    records: 0,
    syncs: 0,
    snapshots: 0,
  };

  /** @param options what the journal needs. */
  constructor(options: JournalOptions) {
    this.#o = options;
    this.#snapshotRevision = options.snapshotRevision;
    this.#loggedCompactRevision = options.mvcc.compactRevision;
    this.#leases = new Map(options.leases ?? []);
  }

  /** Records written at the start of every new segment. */
  preamble(): WalRecord[] {
    return segmentPreamble(
      this.#o.meta,
      this.#loggedCompactRevision,
      this.#leases,
    );
  }

  /** While true, the store pauses incremental compaction (a snapshot reads history). */
  get compactionHeld(): boolean {
    return this.#compactionHeld;
  }

  /** The failure that stopped the journal, if any. */
  get failure(): Error | undefined {
    return this.#failed;
  }

  /** Records a write transaction at `revision`; resolves once durable. */
  write(revision: number, changes: readonly Change[]): Promise<void> {
    this.#entriesSinceSnapshot += changes.length;
    return this.#append({ kind: "write", revision, changes });
  }

  /** Records a compaction; resolves once durable. */
  compact(revision: number): Promise<void> {
    if (revision > this.#loggedCompactRevision) {
      this.#loggedCompactRevision = revision;
    }
    return this.#append({ kind: "compact", revision });
  }

  /** Records a lease grant; resolves once durable. */
  leaseGrant(
    id: bigint,
    ttlSeconds: number,
    deadlineMs: number,
  ): Promise<void> {
    this.#leases.set(id, { ttlSeconds, deadlineMs });
    return this.#append({ kind: "leaseGrant", id, ttlSeconds, deadlineMs });
  }

  /** Records a lease's new deadline (keep-alive); resolves once durable. */
  leaseRenew(id: bigint, deadlineMs: number): Promise<void> {
    const lease = this.#leases.get(id);
    if (lease) lease.deadlineMs = deadlineMs;
    return this.#append({ kind: "leaseCheckpoint", id, deadlineMs });
  }

  /** Records that a lease is gone; resolves once durable. */
  leaseRevoke(id: bigint): Promise<void> {
    this.#leases.delete(id);
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
      this.#maybeSnapshot();
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
    this.#failed = error instanceof StorageFailedError
      ? error
      : new StorageFailedError(error);
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

  #maybeSnapshot(): void {
    if (
      this.#entriesSinceSnapshot >= this.#o.snapshotCount &&
      this.#snapshotting === undefined && !this.#closing
    ) {
      this.snapshot().catch(() => {
        // A failed automatic snapshot is retried after the next
        // snapshotCount entries; the WAL still holds everything.
      });
    }
  }

  /**
   * Writes a snapshot at the current revision now (or joins the running
   * one), then removes old snapshots and segments.
   */
  snapshot(): Promise<SnapshotStatus> {
    if (this.#snapshotting) return this.#snapshotting;
    const running = this.#takeSnapshot().finally(() => {
      this.#snapshotting = undefined;
    });
    this.#snapshotting = running;
    return running;
  }

  async #takeSnapshot(): Promise<SnapshotStatus> {
    const { fs, dir, mvcc, sync } = this.#o;
    const revision = mvcc.currentRevision;
    const compactRevision = mvcc.compactRevision;
    this.#entriesSinceSnapshot = 0;
    const path = `${dir}/snap/${snapshotName(revision)}`;
    if (revision === this.#snapshotRevision && await fs.exists(path)) {
      return await verifySnapshot(fs, path);
    }
    const marker = this.#append({ kind: "snapshot", revision });
    marker.catch(() => {}); // awaited below; a failure surfaces there
    this.#compactionHeld = true;
    let status: SnapshotStatus;
    try {
      status = await writeSnapshot(fs, path, mvcc, revision, compactRevision, {
        sync,
        // Not the WAL's encoder: its output buffer is reused by the next
        // batch while this snapshot's write of it may still be in flight.
        pause: async () => {
          if (this.#closing) {
            throw new Error("revkv: snapshot cancelled by close");
          }
          await yieldToEventLoop();
        },
        beforeRename: () => marker,
        leases: new Map(
          [...this.#leases].map(([id, lease]) => [id, { ...lease }]),
        ),
      });
    } finally {
      this.#compactionHeld = false;
    }
    this.#snapshotRevision = revision;
    this.stats.snapshots++;
    await this.#removeOld();
    return status;
  }

  /** Removes snapshots beyond the newest `SNAPSHOTS_KEPT`, and the segments before them. */
  async #removeOld(): Promise<void> {
    const { fs, dir, sync } = this.#o;
    const snapDir = `${dir}/snap`;
    const names = await fs.readDir(snapDir);
    const revisions = names.map(parseSnapshotName)
      .filter((r): r is number => r !== undefined)
      .sort((a, b) => b - a);
    for (const name of names) {
      if (name.endsWith(".tmp") && !this.#snapshotting) {
        await fs.remove(`${snapDir}/${name}`);
      }
    }
    for (const revision of revisions.slice(SNAPSHOTS_KEPT)) {
      await fs.remove(`${snapDir}/${snapshotName(revision)}`);
    }
    const oldestKept =
      revisions[Math.min(SNAPSHOTS_KEPT, revisions.length) - 1];
    if (oldestKept === undefined) return;
    const walDir = `${dir}/wal`;
    const segments = await listSegments(fs, walDir);
    // Segment i holds writes at or below segment i+1's start revision.
    let removed = 0;
    for (let i = 0; i + 1 < segments.length; i++) {
      const next = segments[i + 1]!;
      if (next.startRevision > oldestKept) break;
      if (segments[i]!.name === this.#o.writer.segment.name) break;
      await fs.remove(`${walDir}/${segments[i]!.name}`);
      removed++;
    }
    if (removed > 0 && sync) await fs.syncDir(walDir);
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
    try {
      await this.#snapshotting;
    } catch { /* cancelled */ }
    // A clean end is recorded only when every batch made it to disk.
    await this.#o.writer.close(this.#failed === undefined);
    await this.#o.lock.release();
  }
}
