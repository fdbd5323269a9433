/**
 * Opening a data dir: lock, meta, recovery (newest valid snapshot + replay of
 * the WAL after it), and the WAL writer and journal that continue it. Also
 * the offline operations: repair, snapshot status and restore.
 *
 * ```
 * <dir>/LOCK                     held while open (lock.ts)
 * <dir>/meta.json                cluster id, member id, term (meta.ts)
 * <dir>/wal/<seq>-<rev>.wal      segments (wal.ts, wal_codec.ts)
 * <dir>/snap/<rev>.snap          snapshots (snapshot.ts)
 * ```
 *
 * Recovery tries the snapshots newest first; the first that verifies and
 * that the WAL covers wins, and the WAL is replayed after it: write records
 * go straight from the read buffers into the engine, every other record to
 * `ReplayState` (revision, compaction, leases; see `replay_state.ts`). How
 * the end of the log is judged (end, torn tail, corruption) is
 * `wal_tail.ts`. Before recovery, the temp files a crash left are removed;
 * after it, the meta file (this open's term) is written, so an open that
 * recovery refuses changes nothing on disk.
 *
 * A full disk at open: when recovery needed no writes (no torn tail to keep
 * aside and cut) and the WAL has a segment to continue, an open whose meta
 * file cannot be written still succeeds, read-only: the report's
 * `writesRefused` holds the `NoSpaceError` (file and operation) that every
 * write is refused with, and the previous term is kept. Otherwise (a fresh
 * store, a tail to cut, no room even for the lock) the open fails with the
 * `NoSpaceError` and leaves no temp file.
 *
 * @module
 */

import { MvccStore } from "../mvcc/kv_store.ts";
import { NoSpaceError } from "./errors.ts";
import { type StorageFs, withNamedErrors } from "./fs.ts";
import { runtime } from "./runtime.ts";
import { WalJournal } from "./journal.ts";
import { acquireLock, type DirLock } from "./lock.ts";
import {
  FIRST_TERM,
  type Meta,
  randomId,
  readMeta,
  writeMeta,
} from "./meta.ts";
import { startProgress } from "./progress.ts";
import {
  parseSnapshotName,
  SnapshotCorruptionError,
  snapshotName,
  type SnapshotStatus,
  streamSnapshot,
  verifySnapshot,
} from "./snapshot.ts";
import {
  ReplayWorkerError,
  type ReplayWorkerMode,
  ReplayWorkerSlot,
  streamSnapshotInWorker,
  useReplayWorker,
} from "./replay_batch.ts";
import {
  CLEAN_END_FILE,
  DEFAULT_SEGMENT_BYTES,
  listSegments,
  readCleanEnd,
  readWal,
  type TornTail,
} from "./wal.ts";
import { WalWriter } from "./wal_writer.ts";
import { ReplayState } from "./replay_state.ts";
import { WasmWalEncoder } from "./wasm_wal_encoder.ts";
import { DEFAULT_SNAPSHOT_COUNT } from "./snapshot_keeper.ts";
import { type DurableLease, segmentPreamble } from "./segment_preamble.ts";

/** How the durable store syncs: every batch, or never (unsafe, for tests). */
export type Durability = "fsync" | "none";

/** Options of a durable data dir. */
export interface DataDirOptions {
  /** `"fsync"` (default): a write resolves once on disk. `"none"`: never fsync. */
  durability?: Durability;
  /**
   * Largest WAL segment size in bytes (default 64 MiB). Segments start at
   * 1 MiB and double up to it, so a small store stays small on disk.
   */
  segmentBytes?: number;
  /** Entries between automatic snapshots (default 100,000). */
  snapshotCount?: number;
  /** File operations (tests inject faults here). */
  fs?: StorageFs;
  /** Show a progress line when startup takes over a second (default: when stderr is a terminal). */
  progress?: boolean;
  /**
   * Whether recovery reads the WAL in a worker, beside the main thread:
   * `"auto"` (default) for logs over 8 MiB, or `"always"`/`"never"`.
   * Only with the real file system.
   */
  replayWorker?: ReplayWorkerMode;
}

/** What recovery did. */
export interface RecoveryReport {
  /** The snapshot loaded, if any. */
  snapshot: { file: string; revision: number } | undefined;
  /** Newer snapshots that failed verification, and why. */
  skippedSnapshots: { file: string; reason: string }[];
  /** WAL records replayed (write records above the snapshot, compactions). */
  replayedRecords: number;
  /** The torn tail truncated, if any. */
  tornTail: TornTail | undefined;
  /** pid of a dead process whose stale lock was taken over. */
  staleLockPid: number | undefined;
  /**
   * The disk was full at open, after a recovery that needed no writes: the
   * store serves reads and refuses every write with this error (the NOSPACE
   * alarm is raised) until it is reopened with space. Undefined normally.
   */
  writesRefused: NoSpaceError | undefined;
  /** Time taken, in milliseconds. */
  durationMs: number;
}

/** An open data dir. */
export interface OpenDataDir {
  /** The recovered engine. */
  mvcc: MvccStore;
  /** The journal to hand to the store. */
  journal: WalJournal;
  /** Live leases as recovered (ID → TTL and wall-clock deadline). */
  leases: ReadonlyMap<bigint, DurableLease>;
  /** Identity and this open's term. */
  meta: Meta;
  /** What recovery did. */
  report: RecoveryReport;
}

/** Resolved options. */
function resolve(options: DataDirOptions) {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isInteger(segmentBytes) || segmentBytes < 4096) {
    throw new RangeError(
      `segmentBytes must be an integer of at least 4096, got ${segmentBytes}`,
    );
  }
  const snapshotCount = options.snapshotCount ?? DEFAULT_SNAPSHOT_COUNT;
  if (!Number.isInteger(snapshotCount) || snapshotCount < 1) {
    throw new RangeError(
      `snapshotCount must be a positive integer, got ${snapshotCount}`,
    );
  }
  const durability = options.durability ?? "fsync";
  if (durability !== "fsync" && durability !== "none") {
    throw new TypeError(
      `durability must be "fsync" or "none", got ${durability}`,
    );
  }
  return {
    fs: withNamedErrors(options.fs ?? runtime.fs),
    segmentBytes,
    snapshotCount,
    sync: durability === "fsync",
    encoder: new WasmWalEncoder(),
    progress: options.progress,
    replayWorker: options.replayWorker ?? "auto",
  };
}

/**
 * Opens (creating if needed) the data dir at `dir` and recovers its state.
 * @throws LockedError when another store holds it; WalCorruptionError on a
 *   checksum failure in the middle of the log; Error when no snapshot and
 *   WAL combination covers the history.
 */
export async function openDataDir(
  dir: string,
  options: DataDirOptions = {},
): Promise<OpenDataDir> {
  const started = performance.now();
  const o = resolve(options);
  const { fs } = o;
  await fs.mkdir(`${dir}/wal`);
  await fs.mkdir(`${dir}/snap`);
  const lock = await acquireLock(fs, dir);
  try {
    await removeLeftovers(fs, dir);
    const progress = startProgress(`revkv: opening ${dir}`, o.progress);
    const previous = await readMeta(fs, `${dir}/meta.json`);
    let meta: Meta = previous
      ? { ...previous, term: previous.term + 1 }
      : { clusterId: randomId(), memberId: randomId(), term: FIRST_TERM };

    // Recovery first: an open it refuses changes nothing on disk.
    const recovered = await recover(
      fs,
      dir,
      (message) => progress.update(message),
      o.replayWorker,
    );
    let writesRefused: NoSpaceError | undefined;
    try {
      await writeMeta(fs, dir, meta, o.sync);
    } catch (error) {
      // A full disk after a recovery that wrote nothing: serve reads.
      if (
        !(error instanceof NoSpaceError) || previous === undefined ||
        recovered.tail === undefined
      ) throw error;
      writesRefused = error;
      meta = previous; // no new term was made durable
    }
    if (writesRefused === undefined) {
      // The clean-close marker describes the log as it was read just now;
      // it must be gone (durably) before anything is appended, or a later
      // open could trust it for a log that has grown. (Read-only, nothing
      // is appended: it stays true.)
      await fs.remove(`${dir}/wal/${CLEAN_END_FILE}`);
      if (o.sync) await fs.syncDir(`${dir}/wal`);
    }
    const holder: { journal?: WalJournal } = {};
    const writer = await WalWriter.open(
      fs,
      `${dir}/wal`,
      recovered.tail,
      recovered.mvcc.currentRevision,
      {
        segmentBytes: o.segmentBytes,
        sync: o.sync,
        encoder: o.encoder,
        preamble: () =>
          holder.journal?.preamble() ??
            segmentPreamble(
              meta,
              recovered.mvcc.compactRevision,
              recovered.leases,
            ),
      },
    );
    const journal = new WalJournal({
      fs,
      dir,
      writer,
      encoder: o.encoder,
      mvcc: recovered.mvcc,
      meta,
      lock,
      sync: o.sync,
      snapshotCount: o.snapshotCount,
      snapshotRevision: recovered.snapshot?.revision ?? 0,
      leases: recovered.leases,
      writesRefused,
    });
    holder.journal = journal;
    const durationMs = performance.now() - started;
    progress.done(
      `recovered revision ${recovered.mvcc.currentRevision} (${recovered.replayed} WAL records)`,
    );
    return {
      mvcc: recovered.mvcc,
      leases: recovered.leases,
      journal,
      meta,
      report: {
        snapshot: recovered.snapshot,
        skippedSnapshots: recovered.skipped,
        replayedRecords: recovered.replayed,
        tornTail: recovered.torn,
        staleLockPid: lock.tookOverPid,
        writesRefused,
        durationMs,
      },
    };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/**
 * Removes the temporary files a crash or a full disk left behind: every
 * `*.tmp` of the data dir, `wal/` (`next.tmp`, `CLEAN.tmp`) and `snap/`
 * (a snapshot being written). Only called with the lock held, so no other
 * store is writing them; none of them is ever read by recovery.
 */
async function removeLeftovers(fs: StorageFs, dir: string): Promise<void> {
  for (const sub of [dir, `${dir}/wal`, `${dir}/snap`]) {
    for (const name of await fs.readDir(sub)) {
      if (name.endsWith(".tmp")) await fs.remove(`${sub}/${name}`);
    }
  }
}

async function recover(
  fs: StorageFs,
  dir: string,
  progress: (message: string) => void,
  replayWorker: ReplayWorkerMode,
) {
  // One worker (if any) serves the snapshot and the WAL.
  const workers = new ReplayWorkerSlot();
  try {
    return await recoverWith(fs, dir, progress, replayWorker, workers);
  } catch (error) {
    if (!(error instanceof ReplayWorkerError)) throw error;
    // Nothing the worker read was judged or changed on disk (torn tails
    // are cut in-thread): start over without it.
    workers.close();
    return await recoverWith(fs, dir, progress, "never", workers);
  } finally {
    workers.close();
  }
}

async function recoverWith(
  fs: StorageFs,
  dir: string,
  progress: (message: string) => void,
  replayWorker: ReplayWorkerMode,
  workers: ReplayWorkerSlot,
) {
  const skipped: { file: string; reason: string }[] = [];
  const snapDir = `${dir}/snap`;
  const walDir = `${dir}/wal`;
  const revisions = (await fs.readDir(snapDir)).map(parseSnapshotName)
    .filter((r): r is number => r !== undefined)
    .sort((a, b) => b - a);
  const segments = await listSegments(fs, walDir);
  const cleanEnd = await readCleanEnd(fs, walDir);
  let corruptSnapshot: SnapshotCorruptionError | undefined;
  for (const revision of [...revisions, 0]) {
    const mvcc = new MvccStore();
    // Leases the snapshot holds; the WAL's lease records after the start of
    // the first segment read then apply in order (see `apply` below).
    const leases = new Map<bigint, DurableLease>();
    let snapshot: { file: string; revision: number } | undefined;
    let compactRevision = -1;
    if (revision > 0) {
      const file = `${snapDir}/${snapshotName(revision)}`;
      progress(`loading snapshot ${file}`);
      try {
        // Streamed: entries arrive before the footer is checked, so a
        // corrupt snapshot leaves this attempt's `mvcc` half-filled — it is
        // dropped with it (`continue` below).
        const status = await loadSnapshot(
          fs,
          file,
          mvcc,
          leases,
          replayWorker,
          workers,
        );
        compactRevision = status.compactRevision;
        snapshot = { file, revision };
      } catch (error) {
        if (!(error instanceof SnapshotCorruptionError)) throw error;
        corruptSnapshot ??= error;
        skipped.push({ file, reason: error.message });
        continue;
      }
    }
    const base = Math.max(1, revision);
    // The newest segment that starts at or below the base revision.
    let first = -1;
    for (let i = 0; i < segments.length; i++) {
      if (segments[i]!.startRevision <= base) first = i;
    }
    if (segments.length > 0 && first < 0) {
      if (revision > 0) {
        skipped.push({
          file: `${snapDir}/${snapshotName(revision)}`,
          reason: `the WAL starts after it (at revision ${
            segments[0]!.startRevision
          })`,
        });
        continue;
      }
      // The snapshot that would have covered the start is corrupt: that
      // is the damage to name (file and offset), not the missing history.
      if (corruptSnapshot !== undefined) throw corruptSnapshot;
      throw new Error(
        `revkv: cannot recover ${dir}: no valid snapshot, and the WAL starts at revision ` +
          `${segments[0]!.startRevision}` +
          (skipped.length
            ? `; snapshots rejected: ${skipped.map((s) => s.reason).join("; ")}`
            : ""),
      );
    }
    const replay = new ReplayState(base, compactRevision, leases);
    const read = await readWal(
      fs,
      walDir,
      segments.slice(Math.max(first, 0)),
      replay.record,
      {
        cleanEnd,
        snapshotRevision: revision,
        replayWorker,
        workerSlot: workers,
        // Write records go straight from the read buffers into the engine.
        writes: {
          beginWrite: replay.beginWrite,
          entries: mvcc,
        },
        progress: (done, total) =>
          progress(
            `replaying WAL ${Math.round((100 * done) / Math.max(1, total))}%`,
          ),
      },
    );
    mvcc.restoreRevisions(replay.current, replay.compact);
    return {
      mvcc,
      leases,
      snapshot,
      skipped,
      replayed: replay.replayed,
      torn: read.torn,
      tail: read.tail,
    };
  }
  throw new Error("unreachable");
}

/** What `repair` did. */
export interface RepairReport {
  /** The segment cut, and where; undefined when nothing was wrong. */
  truncated: { file: string; offset: number } | undefined;
  /** The file holding the bytes the cut dropped, if any. */
  keptAside: string | undefined;
  /** Later segments removed. */
  removedSegments: string[];
  /** A torn tail truncated on the way. */
  tornTail: TornTail | undefined;
}

/**
 * Repairs a data dir whose WAL has a checksum failure in the middle: the
 * log is truncated at the bad frame and later segments are removed. Every
 * record after that point is lost; call this only on purpose (the error of
 * `open` says where the damage is). The store must not be open.
 */
export async function repairDataDir(
  dir: string,
  options: { fs?: StorageFs } = {},
): Promise<RepairReport> {
  const fs = withNamedErrors(options.fs ?? runtime.fs);
  const lock: DirLock = await acquireLock(fs, dir);
  try {
    const walDir = `${dir}/wal`;
    const segments = await listSegments(fs, walDir);
    const read = await readWal(fs, walDir, segments, () => {}, {
      repair: true,
    });
    // The log changed: a clean-close marker no longer describes it.
    await fs.remove(`${walDir}/${CLEAN_END_FILE}`);
    await fs.syncDir(walDir);
    return {
      truncated: read.repaired && {
        file: read.repaired.file,
        offset: read.repaired.offset,
      },
      keptAside: read.repaired?.keptAside,
      removedSegments: read.repaired?.removed ?? [],
      tornTail: read.torn,
    };
  } finally {
    await lock.release();
  }
}

/**
 * Reads and verifies a snapshot file (etcdctl's `snapshot status`).
 * @throws SnapshotCorruptionError when it does not verify.
 */
export function snapshotStatus(
  file: string,
  options: { fs?: StorageFs } = {},
): Promise<SnapshotStatus> {
  return verifySnapshot(withNamedErrors(options.fs ?? runtime.fs), file);
}

/**
 * Creates a new data dir from a snapshot file (etcdctl's `snapshot
 * restore`). The new store gets new cluster and member IDs, starts at the
 * snapshot's revision, and has an empty WAL.
 * @throws Error when `dataDir` exists and is not empty;
 *   SnapshotCorruptionError when the file does not verify.
 */
export async function restoreSnapshot(
  file: string,
  dataDir: string,
  options: { fs?: StorageFs; durability?: Durability } = {},
): Promise<SnapshotStatus> {
  const fs = withNamedErrors(options.fs ?? runtime.fs);
  const sync = (options.durability ?? "fsync") === "fsync";
  const status = await verifySnapshot(fs, file);
  if (await fs.exists(dataDir)) {
    let entries: string[] = [];
    try {
      entries = await runtime.readDirNames(dataDir);
    } catch { /* not a directory: the mkdir below fails clearly */ }
    if (entries.length > 0) {
      throw new Error(
        `revkv: cannot restore into ${dataDir}: it exists and is not empty`,
      );
    }
  }
  await fs.mkdir(`${dataDir}/snap`);
  await fs.mkdir(`${dataDir}/wal`);
  const bytes = await fs.readFile(file);
  const target = `${dataDir}/snap/${snapshotName(status.revision)}`;
  await fs.writeFile(`${target}.tmp`, bytes);
  await fs.rename(`${target}.tmp`, target);
  if (sync) await fs.syncDir(`${dataDir}/snap`);
  return status;
}

/**
 * Loads a snapshot into `mvcc` and `leases`, in the replay worker when that
 * pays (see `ReplayWorkerMode`: files over 8 MiB), else in-thread; both
 * stream the file (see `streamSnapshot`).
 */
async function loadSnapshot(
  fs: StorageFs,
  file: string,
  mvcc: MvccStore,
  leases: Map<bigint, DurableLease>,
  mode: ReplayWorkerMode,
  workers: ReplayWorkerSlot,
): Promise<SnapshotStatus> {
  const onLease = (id: bigint, lease: DurableLease) =>
    void leases.set(id, {
      ttlSeconds: lease.ttlSeconds,
      deadlineMs: lease.deadlineMs,
    });
  const useWorker = await useReplayWorker(
    fs,
    mode,
    async (bytes) => await fileSize(fs, file) >= bytes,
  );
  if (!useWorker) return await streamSnapshot(fs, file, mvcc, onLease);
  return await streamSnapshotInWorker(
    workers.get(),
    file,
    {
      beginWrite: () => true,
      record: (record) => {
        if (record.kind !== "leaseGrant") {
          throw new Error(`revkv: a ${record.kind} record in a snapshot`);
        }
        onLease(record.id, record);
      },
      entries: mvcc,
    },
    (c) => new SnapshotCorruptionError(c.file, c.offset, c.reason),
  );
}

async function fileSize(fs: StorageFs, path: string): Promise<number> {
  const file = await fs.open(path);
  try {
    return await file.size();
  } finally {
    file.close();
  }
}
