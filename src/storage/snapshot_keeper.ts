/**
 * When snapshots are taken, how, and what they let go: the journal's
 * snapshot scheduling, apart from its group commit.
 *
 * The life of one snapshot at revision S (the current revision when it
 * starts):
 *
 * ```
 *   counted(n) ... n ≥ snapshotCount after a batch → maybeSnapshot()
 *   1. marker     a `snapshot` record at S is appended to the WAL (not awaited)
 *   2. hold       compaction is held: no entry at or below S may disappear
 *   3. pages      the state at S is written to snap/<S>.snap.tmp in pages;
 *                 writes proceed between pages (a close cancels here)
 *   4. rename     only once the marker, hence every write ≤ S, is durable
 *   5. release    compaction resumes
 *   6. remove     all but the newest SNAPSHOTS_KEPT snapshots, the segments
 *                 whose writes are all at or below the oldest kept one, and
 *                 the `.torn` bytes recovery kept aside from those segments
 * ```
 *
 * A snapshot's `.tmp` left by a crash or a full disk is not removed here
 * (one may be the running snapshot's own); the next open removes it
 * (`data_dir.ts`, before recovery).
 *
 * One snapshot runs at a time: `snapshot()` during a running one joins it.
 * An automatic snapshot that fails is retried after the next
 * `snapshotCount` entries; the WAL still holds everything, so nothing is
 * lost by a failed snapshot.
 *
 * Why segment i may go once the oldest kept snapshot is at or above segment
 * i+1's start revision: every write in segment i is at or below that start
 * revision (`wal_codec.ts`, the segment record), so the snapshot holds it.
 * The segment being written is never removed.
 *
 * The keeper is given what it needs of the journal as callbacks (append the
 * marker, the live leases, whether the journal is closing, the current
 * segment), so that it knows nothing of batches or waiters.
 *
 * @module
 */

import type { MvccStore } from "../mvcc/kv_store.ts";
import type { StorageFs } from "./fs.ts";
import type { DurableLease } from "./segment_preamble.ts";
import {
  parseSnapshotName,
  snapshotName,
  type SnapshotStatus,
  verifySnapshot,
  writeSnapshot,
  yieldToEventLoop,
} from "./snapshot.ts";
import { listSegments } from "./wal.ts";
import { TORN_SUFFIX } from "./wal_tail.ts";

/** Default entries between snapshots (etcd's `--snapshot-count`). */
export const DEFAULT_SNAPSHOT_COUNT = 100_000;
/** Snapshots kept on disk: the newest, and one to fall back to. */
export const SNAPSHOTS_KEPT = 2;

/** What the snapshot keeper needs. */
export interface SnapshotKeeperOptions {
  /** File operations. */
  fs: StorageFs;
  /** The data dir. */
  dir: string;
  /** The engine whose state is written. */
  mvcc: MvccStore;
  /** fdatasync snapshots and the WAL dir after removals. */
  sync: boolean;
  /** Entries between automatic snapshots. */
  snapshotCount: number;
  /** Newest snapshot revision on disk (0 when none). */
  snapshotRevision: number;
  /** Appends the snapshot marker record at `revision`; resolves once durable. */
  appendMarker(revision: number): Promise<void>;
  /** A copy of the live leases (`SegmentPreamble.leasesCopy`). */
  leasesCopy(): Map<bigint, DurableLease>;
  /** Whether the journal is closing (a running snapshot is cancelled). */
  isClosing(): boolean;
  /** Name of the segment being written (never removed). */
  currentSegment(): string;
}

/** Schedules, writes and cleans up after snapshots (see the module comment). */
export class SnapshotKeeper {
  readonly #o: SnapshotKeeperOptions;
  #running: Promise<SnapshotStatus> | undefined;
  #compactionHeld = false;
  #entriesSinceSnapshot = 0;
  #snapshotRevision: number;
  #taken = 0;

  /** @param options what the keeper needs. */
  constructor(options: SnapshotKeeperOptions) {
    this.#o = options;
    this.#snapshotRevision = options.snapshotRevision;
  }

  /** While true, the store pauses incremental compaction (a snapshot reads history). */
  get compactionHeld(): boolean {
    return this.#compactionHeld;
  }

  /** Snapshots written since open. */
  get taken(): number {
    return this.#taken;
  }

  /** Counts `entries` more entries logged since the last snapshot. */
  counted(entries: number): void {
    this.#entriesSinceSnapshot += entries;
  }

  /** Starts a snapshot if `snapshotCount` entries were logged since the last. */
  maybeSnapshot(): void {
    if (
      this.#entriesSinceSnapshot >= this.#o.snapshotCount &&
      this.#running === undefined && !this.#o.isClosing()
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
    if (this.#running) return this.#running;
    const running = this.#take().finally(() => {
      this.#running = undefined;
    });
    this.#running = running;
    return running;
  }

  /** Resolves once no snapshot is running (a failed one included). */
  async settled(): Promise<void> {
    try {
      await this.#running;
    } catch { /* failed or cancelled: the WAL still holds everything */ }
  }

  async #take(): Promise<SnapshotStatus> {
    const { fs, dir, mvcc, sync } = this.#o;
    const revision = mvcc.currentRevision;
    const compactRevision = mvcc.compactRevision;
    this.#entriesSinceSnapshot = 0;
    const path = `${dir}/snap/${snapshotName(revision)}`;
    if (revision === this.#snapshotRevision && await fs.exists(path)) {
      return await verifySnapshot(fs, path);
    }
    const marker = this.#o.appendMarker(revision);
    marker.catch(() => {}); // awaited below; a failure surfaces there
    this.#compactionHeld = true;
    let status: SnapshotStatus;
    try {
      status = await writeSnapshot(fs, path, mvcc, revision, compactRevision, {
        sync,
        // Not the WAL's encoder: its output buffer is reused by the next
        // batch while this snapshot's write of it may still be in flight.
        pause: async () => {
          if (this.#o.isClosing()) {
            throw new Error("revkv: snapshot cancelled by close");
          }
          await yieldToEventLoop();
        },
        beforeRename: () => marker,
        leases: this.#o.leasesCopy(),
      });
    } finally {
      this.#compactionHeld = false;
    }
    this.#snapshotRevision = revision;
    this.#taken++;
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
      if (segments[i]!.name === this.#o.currentSegment()) break;
      await fs.remove(`${walDir}/${segments[i]!.name}`);
      removed++;
    }
    // Bytes a torn-tail cut kept aside (wal_tail.ts) go with their segment:
    // the snapshots now hold everything before it.
    const live = new Set(segments.slice(removed).map((s) => s.name));
    for (const name of await fs.readDir(walDir)) {
      if (!name.endsWith(TORN_SUFFIX)) continue;
      if (!live.has(name.slice(0, name.indexOf(".wal.") + 4))) {
        await fs.remove(`${walDir}/${name}`);
      }
    }
    if (removed > 0 && sync) await fs.syncDir(walDir);
  }
}
