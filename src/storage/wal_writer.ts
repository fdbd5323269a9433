/**
 * Appending to the WAL: one batch = one write + one fdatasync at the end of
 * the newest segment, rolling onto a fresh preallocated segment when a batch
 * does not fit, and the clean-close marker at a clean close.
 *
 * Segments grow: segment `seq` is preallocated to `segmentCapacityBytes`
 * (`FIRST_SEGMENT_BYTES` doubled `seq` times, at most `segmentBytes`) and the
 * writer rolls when a batch would pass that size. A fresh or small store so
 * takes about 1 MiB on disk instead of 64 MiB, and a busy one reaches full
 * size after a few segments (1 + 2 + ... + 32 MiB = 63 MiB of log). Reading
 * never needs a segment's size: it reads each file to its end, and a name
 * does not encode the size.
 *
 * The order of writes and syncs here is what `wal_tail.ts` relies on to tell
 * a torn write from corruption: a batch is written whole with one `writeAt`
 * and synced before the next starts; a new segment gets its header synced
 * before it is renamed to its segment name, and the directory is synced
 * after; the clean-close marker is written only after the last batch synced.
 *
 * @module
 */

import type { StorageFile, StorageFs } from "./fs.ts";
import {
  CLEAN_END_FILE,
  type CleanEnd,
  type SegmentName,
  segmentName,
  type WalTail,
} from "./wal.ts";
import { frameBytes, type WalEncoder, type WalRecord } from "./wal_codec.ts";

/** Zero-fill chunk while preallocating (bounds memory and each write's time). */
const PREALLOCATE_CHUNK_BYTES = 1024 * 1024;

/**
 * Preallocated size of the first segment (seq 0): small enough that an empty
 * or small store takes about 1 MiB on disk (Deno KV takes ~36 KB for a few
 * keys), large enough to hold many small batches before the first roll.
 * Each next segment doubles, up to `segmentBytes`.
 */
export const FIRST_SEGMENT_BYTES = 1024 * 1024;

/**
 * Doublings counted at most: 2^20 × 1 MiB is past any real `segmentBytes`,
 * and it keeps the shift below JavaScript's 32-bit limit.
 */
const MAX_SEGMENT_DOUBLINGS = 20;

/**
 * The preallocated size, and the size at which the writer rolls, of segment
 * `seq`: `FIRST_SEGMENT_BYTES` doubled `seq` times, never above
 * `segmentBytes` (so a `segmentBytes` of 1 MiB or less gives every segment
 * that size, as before segments grew). A single batch larger than this is
 * still written whole into one segment, which then grows past it.
 */
export function segmentCapacityBytes(
  seq: number,
  segmentBytes: number,
): number {
  const doublings = Math.min(Math.max(seq, 0), MAX_SEGMENT_DOUBLINGS);
  return Math.min(segmentBytes, FIRST_SEGMENT_BYTES * 2 ** doublings);
}

/**
 * The next segment is prepared (zero-filled and synced, in the background)
 * once the current one is this full: early enough to be ready at the roll,
 * late enough that a fresh or small store does not compete with its own
 * fdatasyncs by writing the next segment's zeros (measured, when every
 * segment was 64 MiB: a fresh store's single writer ran at 82% of the disk's
 * rate while that happened).
 */
const PREPARE_AT_FRACTION = 0.5;

/** Options of the WAL writer. */
export interface WalWriterOptions {
  /** Largest preallocated segment size in bytes (see `segmentCapacityBytes`). */
  segmentBytes: number;
  /** fdatasync each batch (false = `durability: "none"`). */
  sync: boolean;
  /** Frame encoder. */
  encoder: WalEncoder;
  /**
   * Records written right after each new segment's header (metadata and the
   * compaction revision), so that a segment never needs older ones for them.
   */
  preamble?: () => WalRecord[];
}

/**
 * Appends batches to the newest segment, rolling onto a fresh preallocated
 * segment when a batch does not fit. One `append` = one write + one
 * fdatasync (plus, on a roll, the new segment's header and a dir sync).
 */
/**
 * Upper bounds of the fsync duration buckets, in seconds: etcd's
 * `etcd_disk_wal_fsync_duration_seconds` (prometheus.ExponentialBuckets(
 * 0.001, 2, 14): 1 ms to 8.192 s).
 */
export const SYNC_DURATION_BUCKETS_SECONDS: readonly number[] = Array.from(
  { length: 14 },
  (_, i) => 0.001 * 2 ** i,
);

/** A histogram of fdatasync durations (per bucket, not cumulative). */
export interface SyncDurations {
  /** Syncs per bucket of `SYNC_DURATION_BUCKETS_SECONDS`, then past the last. */
  counts: number[];
  /** The sum of every duration, in seconds. */
  sumSeconds: number;
}

function newSyncDurations(): SyncDurations {
  return {
    counts: new Array(SYNC_DURATION_BUCKETS_SECONDS.length + 1).fill(0),
    sumSeconds: 0,
  };
}

function recordSyncDuration(into: SyncDurations, durationMs: number): void {
  const seconds = durationMs / 1000;
  into.sumSeconds += seconds;
  let bucket = SYNC_DURATION_BUCKETS_SECONDS.findIndex((le) => seconds <= le);
  if (bucket < 0) bucket = SYNC_DURATION_BUCKETS_SECONDS.length;
  into.counts[bucket]!++;
}

export class WalWriter {
  #file: StorageFile;
  #segment: SegmentName;
  #offset: number;
  #crc: number;
  #lastRevision: number;
  #next: Promise<StorageFile> | undefined;
  #nextPath: string;
  /** Bytes of the header and preamble of the current segment. */
  #headerBytes = 0;
  /** Number of fdatasync calls (for the benchmark's fsyncs per write). */
  syncCount = 0;
  /** How long the fdatasyncs took, as etcd's fsync histogram counts them. */
  readonly syncDurations: SyncDurations = newSyncDurations();

  private constructor(
    readonly fs: StorageFs,
    readonly walDir: string,
    readonly options: WalWriterOptions,
    file: StorageFile,
    segment: SegmentName,
    offset: number,
    crc: number,
    lastRevision: number,
  ) {
    this.#file = file;
    this.#segment = segment;
    this.#offset = offset;
    this.#crc = crc;
    this.#lastRevision = lastRevision;
    this.#nextPath = `${walDir}/next.tmp`;
    this.#headerBytes = 0;
  }

  /** Continues the log after `tail`, or starts it when there is none. */
  static async open(
    fs: StorageFs,
    walDir: string,
    tail: WalTail | undefined,
    startRevision: number,
    options: WalWriterOptions,
  ): Promise<WalWriter> {
    await fs.remove(`${walDir}/next.tmp`);
    if (tail === undefined) {
      const writer = new WalWriter(
        fs,
        walDir,
        options,
        undefined as unknown as StorageFile,
        { seq: -1, startRevision, name: "" },
        0,
        0,
        startRevision,
      );
      await writer.#roll(startRevision);
      return writer;
    }
    const file = await fs.open(`${walDir}/${tail.segment.name}`, {
      write: true,
    });
    return new WalWriter(
      fs,
      walDir,
      options,
      file,
      tail.segment,
      tail.offset,
      tail.crc,
      Math.max(tail.lastRevision, startRevision),
    );
  }

  /** The current segment. */
  get segment(): SegmentName {
    return this.#segment;
  }

  /** Append offset in the current segment. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Encodes `records` (one boundary call for the whole batch), writes them
   * with one write and makes them durable with one fdatasync.
   */
  async append(records: readonly WalRecord[]): Promise<void> {
    let total = 0;
    let lastRevision = this.#lastRevision;
    for (const record of records) {
      total += frameBytes(record);
      if (record.kind === "write") lastRevision = record.revision;
    }
    if (
      this.#offset + total > this.#capacity() &&
      this.#offset > this.#headerBytes
    ) {
      await this.#roll(this.#lastRevision);
    }
    const { bytes, crc } = this.options.encoder.encode(records, this.#crc);
    // Assert before writing: the encoder produced what the sizes promised.
    if (bytes.length !== total) {
      throw new Error(
        `wal: encoder produced ${bytes.length} bytes for a batch of ${total}`,
      );
    }
    await this.#file.writeAt(this.#offset, bytes);
    if (this.options.sync) {
      const startMs = performance.now();
      await this.#file.syncData();
      this.syncCount++;
      recordSyncDuration(this.syncDurations, performance.now() - startMs);
    }
    this.#offset += total;
    this.#crc = crc;
    this.#lastRevision = lastRevision;
    if (
      this.#next === undefined &&
      this.#offset >= this.#capacity() * PREPARE_AT_FRACTION
    ) {
      // Prepare the next segment in the background, off the write path.
      const next = this.#prepare();
      next.catch(() => {}); // a failure surfaces at the next roll
      this.#next = next;
    }
  }

  /**
   * Closes the current segment and any prepared one. With `clean`, records
   * where the log ends (`CleanEnd`) for a fast next open: only after the
   * last batch was synced, so the marker never names unsynced bytes.
   */
  async close(clean = false): Promise<void> {
    this.#file?.close();
    if (clean && this.#segment.name !== "") {
      const marker: CleanEnd = {
        segment: this.#segment.name,
        offset: this.#offset,
        crc: this.#crc,
      };
      const tmp = `${this.walDir}/${CLEAN_END_FILE}.tmp`;
      try {
        await this.fs.writeFile(
          tmp,
          new TextEncoder().encode(JSON.stringify(marker)),
        );
        await this.fs.rename(tmp, `${this.walDir}/${CLEAN_END_FILE}`);
      } catch {
        // Best effort: without the marker the next open scans the tail.
        await this.fs.remove(tmp).catch(() => {});
      }
    }
    const next = this.#next;
    this.#next = undefined;
    if (next) {
      try {
        (await next).close();
      } catch { /* preparing failed; nothing to close */ }
      await this.fs.remove(this.#nextPath);
    }
  }

  /**
   * Starts segment seq+1 at `startRevision`. Ordering for crash safety:
   * the prepared file gets its header and is synced before it is renamed to
   * its segment name, and the directory is synced after, so a segment name
   * on disk always has a durable header.
   */
  async #roll(startRevision: number): Promise<void> {
    const seq = this.#segment.seq + 1;
    const file = await (this.#next ?? this.#prepare());
    this.#next = undefined;
    const name = segmentName(seq, startRevision);
    const { bytes, crc } = this.options.encoder.encode([{
      kind: "segment",
      seq,
      startRevision,
      prevCrc: this.#crc,
    }, ...(this.options.preamble?.() ?? [])], 0);
    await file.writeAt(0, bytes);
    if (this.options.sync) await file.syncData();
    await this.fs.rename(this.#nextPath, `${this.walDir}/${name}`);
    if (this.options.sync) await this.fs.syncDir(this.walDir);
    this.#file?.close();
    this.#file = file;
    this.#segment = { seq, startRevision, name };
    this.#offset = bytes.length;
    this.#headerBytes = bytes.length;
    this.#crc = crc;
  }

  /** Preallocated size of the current segment: the writer rolls past it. */
  #capacity(): number {
    return segmentCapacityBytes(this.#segment.seq, this.options.segmentBytes);
  }

  /**
   * Creates `next.tmp` for segment seq+1, filled with real zeros to that
   * segment's size and synced, so that appending into it changes no file
   * metadata (sparse, by truncate, without sync: nothing is synced then).
   */
  async #prepare(): Promise<StorageFile> {
    await this.fs.remove(this.#nextPath);
    const file = await this.fs.open(this.#nextPath, { createNew: true });
    try {
      const size = segmentCapacityBytes(
        this.#segment.seq + 1,
        this.options.segmentBytes,
      );
      if (!this.options.sync) {
        await file.truncate(size);
        return file;
      }
      const zeros = new Uint8Array(Math.min(PREALLOCATE_CHUNK_BYTES, size));
      for (let at = 0; at < size; at += zeros.length) {
        await file.writeAt(
          at,
          zeros.subarray(0, Math.min(zeros.length, size - at)),
        );
      }
      await file.syncData();
      return file;
    } catch (error) {
      // A full disk must not leave a half-filled next.tmp behind.
      file.close();
      await this.fs.remove(this.#nextPath).catch(() => {});
      throw error;
    }
  }
}
