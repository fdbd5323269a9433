/**
 * Recovery reads in a worker: the batch format the worker sends, the
 * worker's side that fills batches (`ReplayBatchWriter`), and the main
 * thread's side that streams a WAL segment (`streamSegmentInWorker`) or a
 * snapshot file (`streamSnapshotInWorker`) through the worker.
 *
 * Why: recovery of a large WAL is reading, checking crcs and copying every
 * key and value into fresh memory (whose first touch costs ~5 ms per MB on
 * the VMs measured), then inserting every key into the index. The worker
 * does the first part — it streams the segment exactly as `streamSegment`
 * does in-thread and copies each change's key and value into chunks — while
 * the main thread inserts the keys of the previous batch and adopts the
 * chunks as they are (`MvccStore.adoptRestoreChunk`), so the two halves
 * run side by side on two cores.
 *
 * A batch, in log order: rows of `ROW_FIELDS` numbers — a write record's
 * start (its revision) or one change of it (revisions, where its key and
 * value are in the batch's chunks, and its lease) — and the other records
 * (leases, compactions), decoded, each placed before a row. A snapshot's
 * entries come as change rows with no write row before them, its leases as
 * `leaseGrant` records. Chunks and rows are transferred, not copied.
 *
 * @module
 */

import { type StorageFs, unwrapFs } from "./fs.ts";
import type { SnapshotStatus } from "./snapshot.ts";
import type { RecordedEntrySink, WalRecord } from "./wal_codec.ts";
import {
  newRecordedEntry,
  type RecordedEntry,
} from "../mvcc/recorded_entry.ts";
import { runtime, type RuntimeWorker } from "./runtime.ts";

/** A change's key and value up to this size share a chunk with others. */
export const REPLAY_CHUNK_BYTES = 64 * 1024;
/** The worker sends a batch once its chunks hold this much. */
export const REPLAY_BATCH_BYTES = 1024 * 1024;

/** Numbers per row. */
export const ROW_FIELDS = 10;
const KIND = 0;
const MAIN = 1;
const SUB = 2;
const CREATE = 3;
const VERSION = 4;
const CHUNK = 5;
const OFFSET = 6;
const KEY_LENGTH = 7;
/** Value length, -1 for a tombstone. */
const VALUE_LENGTH = 8;
/** Index into the batch's leases, -1 for none. */
const LEASE = 9;
const ROW_WRITE = 0;
const ROW_CHANGE = 1;

/** One batch from the worker. */
export interface ReplayBatch {
  type: "batch";
  rows: Float64Array<ArrayBuffer>;
  rowCount: number;
  chunks: Uint8Array<ArrayBuffer>[];
  leases: bigint[];
  /** Records that are not writes, each before row `before`. */
  records: { before: number; record: WalRecord }[];
  /** Progress through the segment. */
  offset: number;
  size: number;
}

/** Where a segment's stream ended (see `streamSegment`). */
export interface StreamedSegment {
  headerDone: boolean;
  clean: boolean;
  offset: number;
  crc: number;
}

/**
 * What the worker is asked: to stream a segment, or to take back the rows of
 * an applied batch for reuse (fresh memory is what costs most).
 */
export type ReplayRequest = SegmentRequest | SnapshotRequest | {
  type: "rows";
  rows: Float64Array<ArrayBuffer>;
};

/** Stream one snapshot file. */
export interface SnapshotRequest {
  type: "snapshot";
  path: string;
}

/** Stream one segment. */
export interface SegmentRequest {
  type: "segment";
  path: string;
  segment: { seq: number; startRevision: number; name: string };
  isLast: boolean;
  cleanEnd: { segment: string; offset: number; crc: number } | undefined;
  prevSegmentCrc: number | undefined;
}

/** What the worker answers, after its batches. */
export type ReplayReply =
  | ReplayBatch
  | ReplayDone
  | {
    type: "error";
    message: string;
    corruption?: ReplayCorruption;
  };

/** The end of a request: where a segment's stream ended, or a snapshot's status. */
export type ReplayDone =
  | { type: "done"; streamed: StreamedSegment }
  | { type: "snapshotDone"; status: SnapshotStatus };

/** A `WalCorruptionError` or `SnapshotCorruptionError`, as data. */
export interface ReplayCorruption {
  kind: "wal" | "snapshot";
  file: string;
  offset: number;
  reason: string;
}

/**
 * The worker's side: takes frames in log order and fills batches; `send`
 * posts one (transferring its buffers).
 */
export class ReplayBatchWriter implements RecordedEntrySink {
  #rows = new Float64Array(4096 * ROW_FIELDS);
  #rowCount = 0;
  #chunks: Uint8Array<ArrayBuffer>[] = [];
  #chunk = new Uint8Array(0);
  #used = 0;
  #bytes = 0;
  #leases: bigint[] = [];
  #records: { before: number; record: WalRecord }[] = [];
  readonly #spareRows: Float64Array<ArrayBuffer>[] = [];

  /** @param send posts a full batch. */
  constructor(readonly send: (batch: ReplayBatch) => void) {}

  /** Drops what is not sent (after a send, or a failed request). */
  discard(): void {
    this.#rowCount = 0;
    this.#chunks = [];
    this.#chunk = new Uint8Array(0);
    this.#used = 0;
    this.#bytes = 0;
    this.#leases = [];
    this.#records = [];
  }

  /** Takes back the rows of a batch the main thread has applied. */
  recycle(rows: Float64Array<ArrayBuffer>): void {
    this.#spareRows.push(rows);
  }

  /** A write record of `revision` starts; its changes follow. */
  beginWrite(revision: number): void {
    const f = this.#row();
    this.#rows[f + KIND] = ROW_WRITE;
    this.#rows[f + MAIN] = revision;
  }

  /** A record that is not a write, in log order. */
  record(record: WalRecord): void {
    this.#records.push({ before: this.#rowCount, record });
  }

  /** One change of the current write record: its bytes are copied into a chunk. */
  restoreRecorded(entry: RecordedEntry): void {
    const { bytes, keyStart, keyLength, valueStart, valueLength, lease } =
      entry;
    const length = keyLength + Math.max(0, valueLength);
    if (this.#used + length > this.#chunk.length) {
      this.#chunk = new Uint8Array(Math.max(REPLAY_CHUNK_BYTES, length));
      this.#chunks.push(this.#chunk);
      this.#used = 0;
    }
    const chunk = this.#chunk;
    const at = this.#used;
    for (let i = 0; i < keyLength; i++) chunk[at + i] = bytes[keyStart + i]!;
    if (valueLength > 0) {
      chunk.set(
        bytes.subarray(valueStart, valueStart + valueLength),
        at + keyLength,
      );
    }
    this.#used = at + length;
    this.#bytes += length;
    const f = this.#row();
    const rows = this.#rows;
    rows[f + KIND] = ROW_CHANGE;
    rows[f + MAIN] = entry.main;
    rows[f + SUB] = entry.sub;
    rows[f + CREATE] = entry.createRevision;
    rows[f + VERSION] = entry.version;
    rows[f + CHUNK] = this.#chunks.length - 1;
    rows[f + OFFSET] = at;
    rows[f + KEY_LENGTH] = keyLength;
    rows[f + VALUE_LENGTH] = valueLength;
    if (lease === 0n) rows[f + LEASE] = -1;
    else rows[f + LEASE] = this.#leases.push(lease) - 1;
  }

  /** Sends the batch if it is full enough (or `force` and not empty). */
  flush(offset: number, size: number, force: boolean): void {
    if (this.#rowCount === 0 && this.#records.length === 0) return;
    if (!force && this.#bytes < REPLAY_BATCH_BYTES) return;
    // Sending transfers (detaches) the buffers: size the next rows first.
    const rowsLength = this.#rows.length;
    this.send({
      type: "batch",
      rows: this.#rows,
      rowCount: this.#rowCount,
      chunks: this.#chunks,
      leases: this.#leases,
      records: this.#records,
      offset,
      size,
    });
    const spare = this.#spareRows.pop();
    this.#rows = spare !== undefined && spare.length >= rowsLength
      ? spare
      : new Float64Array(rowsLength);
    this.discard();
  }

  #row(): number {
    if ((this.#rowCount + 1) * ROW_FIELDS > this.#rows.length) {
      const grown = new Float64Array(this.#rows.length * 2);
      grown.set(this.#rows);
      this.#rows = grown;
    }
    return this.#rowCount++ * ROW_FIELDS;
  }
}

/** Where the main thread puts what a batch holds. */
export interface ReplayTarget {
  /** A write record starts: whether to restore its changes (may throw). */
  beginWrite(revision: number): boolean;
  /** Any other record. */
  record(record: WalRecord): void;
  /** The engine. */
  entries: RecordedEntrySink & {
    adoptRestoreChunk(chunk: Uint8Array): number;
    releaseRestoreChunk(chunkNumber: number): void;
  };
}

/** Applies one batch to `target`, in log order. */
export function applyReplayBatch(
  batch: ReplayBatch,
  target: ReplayTarget,
): void {
  if (batch.rows.length < batch.rowCount * ROW_FIELDS) {
    throw new Error(
      `revkv: WAL replay batch of ${batch.rowCount} rows holds ${batch.rows.length} numbers`,
    );
  }
  const entries = target.entries;
  const entry = newRecordedEntry();
  const chunkNumbers = batch.chunks.map((chunk) =>
    entries.adoptRestoreChunk(chunk)
  );
  try {
    const rows = batch.rows;
    const records = batch.records;
    let next = 0;
    // A snapshot's rows are changes only; a WAL batch starts at a record.
    let restoring = true;
    for (let i = 0; i < batch.rowCount; i++) {
      while (next < records.length && records[next]!.before === i) {
        target.record(records[next++]!.record);
      }
      const f = i * ROW_FIELDS;
      const kind = rows[f + KIND];
      if (kind === ROW_WRITE) {
        restoring = target.beginWrite(rows[f + MAIN]!);
        continue;
      }
      if (kind !== ROW_CHANGE) {
        throw new Error(`revkv: WAL replay batch row ${i} of kind ${kind}`);
      }
      if (!restoring) continue;
      const chunk = rows[f + CHUNK]!;
      const offset = rows[f + OFFSET]!;
      const keyLength = rows[f + KEY_LENGTH]!;
      const lease = rows[f + LEASE]!;
      entry.bytes = batch.chunks[chunk]!;
      entry.keyStart = offset;
      entry.keyLength = keyLength;
      entry.valueStart = offset + keyLength;
      entry.valueLength = rows[f + VALUE_LENGTH]!;
      entry.main = rows[f + MAIN]!;
      entry.sub = rows[f + SUB]!;
      entry.createRevision = rows[f + CREATE]!;
      entry.version = rows[f + VERSION]!;
      entry.lease = lease < 0 ? 0n : batch.leases[lease]!;
      entry.adoptedChunk = chunkNumbers[chunk]!;
      entries.restoreRecorded(entry);
    }
    while (next < records.length) target.record(records[next++]!.record);
  } finally {
    for (const chunkNumber of chunkNumbers) {
      entries.releaseRestoreChunk(chunkNumber);
    }
  }
}

/**
 * Where the worker's module is. The Node bundle (`scripts/bundle.ts`)
 * rewrites this to its `replay-worker.mjs`, beside the bundle.
 */
const WORKER_URL = new URL("./replay_worker.ts", import.meta.url);

/**
 * Whether recovery can read in a worker: the real file system, workers
 * (`Worker` on Deno, `worker_threads` on Node), and the worker's module
 * there and readable without asking (a program run with `--allow-read`
 * for its data dir only cannot load it; it recovers in-thread).
 */
export function replayWorkerUsable(fs: StorageFs): boolean {
  if (unwrapFs(fs) !== runtime.fs || WORKER_URL.protocol !== "file:") {
    return false;
  }
  if (runtime.name === "deno" && typeof Worker !== "function") return false;
  try {
    return runtime.canRead(WORKER_URL) &&
      (runtime.name === "deno" ||
        runtime.existsSync(decodeURIComponent(WORKER_URL.pathname)));
  } catch {
    return false;
  }
}

/**
 * When recovery reads a WAL or snapshot in the worker: when it is over
 * `REPLAY_WORKER_MIN_BYTES` (`"auto"`), `"always"` or `"never"`.
 */
export type ReplayWorkerMode = "auto" | "always" | "never";

/**
 * Files shorter than this are not worth the worker (~40 ms of the main
 * thread to start it).
 */
export const REPLAY_WORKER_MIN_BYTES = 8 * 1024 * 1024;

/**
 * Whether to read in the worker: it is usable (`replayWorkerUsable`) and
 * `mode` is `"always"`, or `"auto"` and `bytesAtLeast` says the data reaches
 * `REPLAY_WORKER_MIN_BYTES`.
 */
export async function useReplayWorker(
  fs: StorageFs,
  mode: ReplayWorkerMode,
  bytesAtLeast: (bytes: number) => Promise<boolean>,
): Promise<boolean> {
  if (mode === "never" || !replayWorkerUsable(fs)) return false;
  return mode === "always" || await bytesAtLeast(REPLAY_WORKER_MIN_BYTES);
}

/**
 * The replay worker failed for a reason of its own (it could not start,
 * crashed, or hit an error that is not corruption): recovery starts over
 * in-thread, which meets the same data the same way.
 */
export class ReplayWorkerError extends Error {
  constructor(message: string) {
    super(`revkv: replay worker: ${message}`);
    this.name = "ReplayWorkerError";
  }
}

/**
 * One replay worker (`replay_worker.ts`), started on first use and shared
 * by the snapshot and WAL phases of a recovery; `close` ends it.
 */
export class ReplayWorkerSlot {
  #worker: RuntimeWorker | undefined;

  /** The worker, started now if it is not running. */
  get(): RuntimeWorker {
    return this.#worker ??= runtime.startWorker(WORKER_URL);
  }

  /** Terminates the worker, if one was started. */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
  }
}

/**
 * Streams one segment through `worker`, applying each batch as it arrives;
 * resolves with where the stream ended. Rejects with the worker's error (a
 * corruption is rebuilt by `corruption`), or with the first error `apply`
 * throws.
 */
export async function streamSegmentInWorker(
  worker: RuntimeWorker,
  request: Omit<SegmentRequest, "type">,
  apply: (batch: ReplayBatch) => void,
  corruption: (c: ReplayCorruption) => Error,
): Promise<StreamedSegment> {
  const done = await ask(
    worker,
    { type: "segment", ...request },
    apply,
    corruption,
  );
  if (done.type !== "done") throw new Error("revkv: replay worker mixed up");
  return done.streamed;
}

/**
 * Streams a snapshot file through `worker` into `target` (see
 * `streamSnapshot`: on a corruption, what was applied must be discarded).
 */
export async function streamSnapshotInWorker(
  worker: RuntimeWorker,
  path: string,
  target: ReplayTarget,
  corruption: (c: ReplayCorruption) => Error,
): Promise<SnapshotStatus> {
  const done = await ask(
    worker,
    { type: "snapshot", path },
    (batch) => applyReplayBatch(batch, target),
    corruption,
  );
  if (done.type !== "snapshotDone") {
    throw new Error("revkv: replay worker mixed up");
  }
  return done.status;
}

function ask(
  worker: RuntimeWorker,
  request: SegmentRequest | SnapshotRequest,
  apply: (batch: ReplayBatch) => void,
  corruption: (c: ReplayCorruption) => Error,
): Promise<ReplayDone> {
  return new Promise((resolve, reject) => {
    let failed = false;
    worker.onmessage = (event) => {
      if (failed) return;
      const reply = event.data as ReplayReply;
      try {
        if (reply.type === "batch") {
          apply(reply);
          const back: ReplayRequest = { type: "rows", rows: reply.rows };
          worker.postMessage(back, [reply.rows.buffer]);
        } else if (reply.type === "error") {
          throw reply.corruption
            ? corruption(reply.corruption)
            : new ReplayWorkerError(reply.message);
        } else {
          resolve(reply);
        }
      } catch (error) {
        failed = true;
        reject(error);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      failed = true;
      reject(new ReplayWorkerError(event.message));
    };
    worker.postMessage(request);
  });
}
