/**
 * WAL segments: naming, reading with torn-tail detection, appending with
 * roll-over onto preallocated files, and explicit repair.
 *
 * A segment is `wal/<seq>-<rev>.wal` (both 16 hex digits): `seq` counts
 * segments, `rev` is the store's revision when the segment was started, so
 * every write in it is above `rev`. Its first frame is a segment header
 * (see `wal_codec.ts`), and the file is preallocated (zero-filled) to the
 * segment size so that appending never changes the file's size and
 * fdatasync has no metadata to flush.
 *
 * Reading decides between a torn tail and corruption. A frame that fails
 * (bad crc, impossible header, runs past the end) at offset o:
 * - in any segment but the last: corruption → `WalCorruptionError`;
 * - in the last segment, when valid frames follow it: corruption as well (a
 *   follower is found by the next frame chained from o's stored crc, or by a
 *   scan for two consecutive frames that chain, 8 bytes at a time);
 * - else it is the tail of a write that never finished: truncated (zeroed
 *   from o on) and reported. Nothing after it was acknowledged, because
 *   writes are acknowledged only after the fdatasync of their whole batch.
 *
 * @module
 */

import type { StorageFile, StorageFs } from "./fs.ts";
import { FileWindow } from "./file_window.ts";
import {
  applyReplayBatch,
  type ReplayTarget,
  type ReplayWorkerMode,
  ReplayWorkerSlot,
  streamSegmentInWorker,
  useReplayWorker,
} from "./replay_batch.ts";
import {
  align8,
  FRAME_HEADER_BYTES,
  frameBytes,
  hex32,
  readFrame,
  RecordType,
  type WalEncoder,
  type WalRecord,
} from "./wal_codec.ts";
import {
  decodeRecord,
  restoreWriteChanges,
  writeRecordRevision,
} from "./wal_codec.ts";

/** Default segment size, as etcd's (64 MiB). */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/**
 * The next segment is prepared (zero-filled and synced, in the background)
 * once the current one is this full: early enough to be ready at the roll,
 * late enough that a fresh or small store does not compete with its own
 * fdatasyncs by writing 64 MiB of zeros (measured: a fresh store's single
 * writer ran at 82% of the disk's rate while that happened).
 */
const PREPARE_AT_FRACTION = 0.5;
/**
 * How far past the end of the log (the first zero frame header of the last
 * segment) the bytes must be zero for the end to be clean. Acknowledged
 * frames after a zeroed header would start within one batch of it — a batch
 * is at most 16 MiB (the journal's BATCH_BYTES_MAX), a single larger record
 * only with a larger `maxRequestBytes` — so this window finds them, without
 * reading the whole preallocated 64 MiB at every open (measured: ~55 ms of a
 * small store's ~77 ms open).
 */
export const TAIL_ZERO_CHECK_BYTES = 16 * 1024 * 1024;
/** Zero-fill chunk while preallocating (bounds memory and each write's time). */
const PREALLOCATE_CHUNK_BYTES = 1024 * 1024;

/** A segment file found in the wal dir. */
export interface SegmentName {
  /** Sequence number. */
  seq: number;
  /** Revision when the segment was started. */
  startRevision: number;
  /** File name (inside `wal/`). */
  name: string;
}

/** A checksum failure in the middle of the log: revkv refuses to open. */
export class WalCorruptionError extends Error {
  /**
   * Corruption found in a WAL segment.
   * @param file the segment file.
   * @param offset byte offset of the bad frame.
   * @param reason what was wrong.
   */
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `revkv: WAL corrupted in ${file} at offset ${offset}: ${reason}; ` +
        `valid records follow, so this is not a torn write. Restore from a ` +
        `backup, or call repair(dataDir) to truncate the log at this point ` +
        `(losing every record after it).`,
    );
    this.name = "WalCorruptionError";
  }
}

/** A torn tail that recovery truncated. */
export interface TornTail {
  /** The segment file. */
  file: string;
  /** Where the log now ends. */
  offset: number;
  /** What was wrong with the frame there. */
  reason: string;
}

/** Formats a segment file name. */
export function segmentName(seq: number, startRevision: number): string {
  return `${hex16(seq)}-${hex16(startRevision)}.wal`;
}

/** Parses a segment file name; undefined for other files. */
export function parseSegmentName(name: string): SegmentName | undefined {
  const match = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  if (!match) return undefined;
  return {
    seq: parseInt(match[1]!, 16),
    startRevision: parseInt(match[2]!, 16),
    name,
  };
}

/** The segments in `walDir`, by sequence. */
export async function listSegments(
  fs: StorageFs,
  walDir: string,
): Promise<SegmentName[]> {
  const segments: SegmentName[] = [];
  for (const name of await fs.readDir(walDir)) {
    const segment = parseSegmentName(name);
    if (segment) segments.push(segment);
  }
  segments.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segments.length; i++) {
    if (segments[i]!.seq !== segments[i - 1]!.seq + 1) {
      throw new Error(
        `revkv: WAL segment missing between ${segments[i - 1]!.name} and ${
          segments[i]!.name
        } in ${walDir}`,
      );
    }
  }
  return segments;
}

/** Where appending continues after a read. */
export interface WalTail {
  /** The last segment. */
  segment: SegmentName;
  /** Append offset inside it. */
  offset: number;
  /** crc of its last frame. */
  crc: number;
  /** Newest write revision seen in the WAL (0 if none). */
  lastRevision: number;
}

/** Options of `readWal`. */
export interface ReadWalOptions {
  /** Truncate at a corruption instead of throwing (the repair path). */
  repair?: boolean;
  /** Where the last clean close left the log's end (see `CleanEnd`). */
  cleanEnd?: CleanEnd;
  /** Called with each segment's progress (bytes done, bytes total). */
  progress?: (done: number, total: number) => void;
  /**
   * When set, write records go here instead of to `onRecord`, straight
   * from the read buffer into the engine without record objects
   * (recovery). A large log is then read by a worker (`replay_batch.ts`).
   */
  writes?: WalWriteTarget;
  /** With `writes`: when to read in a worker (default `"auto"`). */
  replayWorker?: ReplayWorkerMode;
  /** The worker to use (kept running); else one is started and ended here. */
  workerSlot?: ReplayWorkerSlot;
}

export type { ReplayWorkerMode } from "./replay_batch.ts";

/** Where recovery puts write records (see `ReadWalOptions.writes`). */
export type WalWriteTarget = Omit<ReplayTarget, "record">;

/** Takes one checked frame's payload (valid only during the call). */
type FrameSink = (
  bytes: Uint8Array,
  view: DataView,
  type: number,
  at: number,
  length: number,
) => void;

/**
 * Where a clean close left the end of the log: written to `wal/CLEAN` after
 * the last batch is synced, and removed (and the removal synced) at open
 * before anything is appended. When the log read at open ends exactly there
 * (same segment, offset and crc), nothing was written after the clean close,
 * so the tail needs no scan for torn or lost frames — which is what makes
 * opening a small store cheap.
 */
export interface CleanEnd {
  /** Segment file name. */
  segment: string;
  /** Offset of the end of the log in it. */
  offset: number;
  /** crc of the last frame. */
  crc: number;
}

/** Name of the clean-close marker in the WAL directory. */
export const CLEAN_END_FILE = "CLEAN";

/** Reads the clean-close marker; undefined when absent or unreadable. */
export async function readCleanEnd(
  fs: StorageFs,
  walDir: string,
): Promise<CleanEnd | undefined> {
  try {
    if (!await fs.exists(`${walDir}/${CLEAN_END_FILE}`)) return undefined;
    const text = new TextDecoder().decode(
      await fs.readFile(`${walDir}/${CLEAN_END_FILE}`),
    );
    const parsed = JSON.parse(text) as CleanEnd;
    if (
      typeof parsed.segment !== "string" ||
      !Number.isInteger(parsed.offset) || !Number.isInteger(parsed.crc)
    ) return undefined;
    return parsed;
  } catch {
    return undefined;
  }
}

/** What `readWal` found. */
export interface WalReadResult {
  /** Where to continue appending; undefined when there are no segments. */
  tail: WalTail | undefined;
  /** The torn tail truncated, if any. */
  torn: TornTail | undefined;
  /** With `repair`: the corruption that was cut off, and segments removed. */
  repaired: { file: string; offset: number; removed: string[] } | undefined;
  /** Number of records read. */
  records: number;
}

/**
 * Reads every segment in order, calling `onRecord` for each record after
 * the segment headers (segment headers are checked, not passed on).
 * Truncates a torn tail (see the module comment); throws
 * `WalCorruptionError` on corruption unless `repair` is set.
 */
export async function readWal(
  fs: StorageFs,
  walDir: string,
  segments: readonly SegmentName[],
  onRecord: (record: WalRecord) => void,
  options: ReadWalOptions = {},
): Promise<WalReadResult> {
  let torn: TornTail | undefined;
  let tail: WalTail | undefined;
  let records = 0;
  let lastRevision = 0;
  let prevSegmentCrc: number | undefined;
  const writes = options.writes;
  const deliver: FrameSink = (bytes, view, type, at, length) => {
    if (type === RecordType.write && writes !== undefined) {
      const revision = writeRecordRevision(view, at, length);
      lastRevision = revision;
      if (writes.beginWrite(revision)) {
        restoreWriteChanges(bytes, view, at, length, writes.entries);
      }
    } else {
      const record = decodeRecord(bytes, view, type, at, length);
      if (record.kind === "write") lastRevision = record.revision;
      onRecord(record);
    }
    records++;
  };
  const slot = options.workerSlot ?? new ReplayWorkerSlot();
  const worker = writes !== undefined && segments.length > 0 &&
      await useReplayWorker(
        fs,
        options.replayWorker ?? "auto",
        (bytes) => logReaches(fs, walDir, segments, options.cleanEnd, bytes),
      )
    ? slot.get()
    : undefined;
  const target: ReplayTarget | undefined = writes && {
    beginWrite: (revision) => {
      lastRevision = revision;
      records++;
      return writes.beginWrite(revision);
    },
    record: (record) => {
      onRecord(record);
      records++;
    },
    entries: writes.entries,
  };
  try {
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const isLast = i === segments.length - 1;
      const path = `${walDir}/${segment.name}`;
      const cleanEnd = isLast && options.cleanEnd?.segment === segment.name
        ? options.cleanEnd
        : undefined;
      // Fast path: stream the segment through a reused buffer, only up to the
      // end of the log (segments are preallocated: most of the last one is
      // zeros). It stops at the first frame it cannot accept; the whole file
      // is then read and the decision below (end, torn tail or corruption)
      // is made from there, exactly as if nothing had been streamed.
      const streamed = worker !== undefined && target !== undefined
        ? await streamSegmentInWorker(
          worker,
          { path, segment, isLast, cleanEnd, prevSegmentCrc },
          (batch) => {
            applyReplayBatch(batch, target);
            options.progress?.(batch.offset, batch.size);
          },
          (c) => new WalCorruptionError(c.file, c.offset, c.reason),
        )
        : await streamSegment(
          fs,
          path,
          segment,
          isLast,
          cleanEnd,
          prevSegmentCrc,
          deliver,
          options.progress,
        );
      if (streamed.clean) {
        tail = {
          segment,
          offset: streamed.offset,
          crc: streamed.crc,
          lastRevision,
        };
        prevSegmentCrc = streamed.crc;
        continue;
      }
      const bytes = await fs.readFile(path);
      const view = new DataView(
        bytes.buffer,
        bytes.byteOffset,
        bytes.byteLength,
      );
      let offset = streamed.offset;
      let crc = streamed.crc;
      let problem: { offset: number; reason: string } | undefined;
      let headerOk = streamed.headerDone;
      if (!headerOk) {
        // The header: a segment record chained from 0 that names this segment.
        const head = readFrame(bytes, view, 0, bytes.length, 0);
        if (head.status !== "ok" || head.type !== RecordType.segment) {
          problem = {
            offset: 0,
            reason: head.status === "bad"
              ? head.reason
              : "missing segment header",
          };
        } else {
          checkSegmentHeader(
            path,
            segment,
            prevSegmentCrc,
            decodeRecord(
              bytes,
              view,
              head.type,
              head.payloadStart,
              head.payloadLength,
            ),
          );
          crc = head.crc;
          offset = head.next;
          headerOk = true;
        }
      }
      if (headerOk) {
        for (;;) {
          const frame = readFrame(bytes, view, offset, bytes.length, crc);
          if (frame.status === "end") {
            // Zeros here; valid frames after them would mean lost data.
            if (isLast && validFramesAfter(bytes, view, offset, undefined)) {
              problem = { offset, reason: "zeroed frame header" };
            }
            break;
          }
          if (frame.status === "bad") {
            problem = { offset, reason: frame.reason };
            if (
              isLast && !frame.pastEnd &&
              !validFramesAfter(bytes, view, offset, frame.storedCrc)
            ) {
              // The last frame of the log, torn.
              torn = { file: path, offset, reason: frame.reason };
              problem = undefined;
              await zeroFrom(fs, path, offset, bytes);
            } else if (isLast && frame.pastEnd) {
              torn = { file: path, offset, reason: frame.reason };
              problem = undefined;
              await zeroFrom(fs, path, offset, bytes);
            }
            break;
          }
          deliver(
            bytes,
            view,
            frame.type,
            frame.payloadStart,
            frame.payloadLength,
          );
          crc = frame.crc;
          offset = frame.next;
          if ((records & 0xfff) === 0) options.progress?.(offset, bytes.length);
        }
      }
      if (problem !== undefined) {
        if (isLast && problem.offset === 0 && bytes.every((b) => b === 0)) {
          // A segment that never got its header: a roll cut short.
          torn = { file: path, offset: 0, reason: problem.reason };
          await fs.remove(path);
          break;
        }
        if (!options.repair) {
          throw new WalCorruptionError(path, problem.offset, problem.reason);
        }
        await zeroFrom(fs, path, problem.offset, bytes);
        const removed: string[] = [];
        for (const later of segments.slice(i + 1)) {
          await fs.remove(`${walDir}/${later.name}`);
          removed.push(later.name);
        }
        await fs.syncDir(walDir);
        tail = { segment, offset: problem.offset, crc, lastRevision };
        return {
          tail,
          torn,
          repaired: { file: path, offset: problem.offset, removed },
          records,
        };
      }
      tail = { segment, offset, crc, lastRevision };
      prevSegmentCrc = crc;
    }
  } finally {
    if (slot !== options.workerSlot) slot.close();
  }
  return { tail, torn, repaired: undefined, records };
}

/**
 * Whether the log holds at least `bytes`: more than one segment does, else
 * the only one must have data at `bytes` (known from the clean-close marker,
 * else probed).
 */
async function logReaches(
  fs: StorageFs,
  walDir: string,
  segments: readonly SegmentName[],
  cleanEnd: CleanEnd | undefined,
  bytes: number,
): Promise<boolean> {
  if (segments.length !== 1) return segments.length > 1;
  const segment = segments[0]!;
  if (cleanEnd?.segment === segment.name) return cleanEnd.offset >= bytes;
  const file = await fs.open(`${walDir}/${segment.name}`);
  try {
    const probe = new Uint8Array(4096);
    const got = await file.readAt(Math.max(0, bytes - probe.length), probe);
    return probe.subarray(0, Math.max(0, got)).some((b) => b !== 0);
  } finally {
    file.close();
  }
}

/** Throws unless `header` is the segment header of `segment`, chained from the previous one. */
function checkSegmentHeader(
  path: string,
  segment: SegmentName,
  prevSegmentCrc: number | undefined,
  header: WalRecord,
): void {
  if (header.kind !== "segment" || header.seq !== segment.seq) {
    throw new WalCorruptionError(
      path,
      0,
      `segment header names another segment`,
    );
  }
  if (prevSegmentCrc !== undefined && header.prevCrc !== prevSegmentCrc) {
    throw new WalCorruptionError(
      path,
      0,
      `segment chains from crc ${hex32(header.prevCrc)} but the previous ` +
        `segment ends with ${hex32(prevSegmentCrc)}`,
    );
  }
}

/** Where streaming a segment stopped. */
interface Streamed {
  /** The segment header was read and checked. */
  headerDone: boolean;
  /** The log ends cleanly at `offset` (nothing left to decide). */
  clean: boolean;
  /** Offset of the first frame not accepted (or the end). */
  offset: number;
  /** crc of the last frame accepted. */
  crc: number;
}

/**
 * Streams a segment's frames in order while they are valid, calling
 * `deliver` for each after the header. Stops at the first frame it cannot
 * accept, without judging it (the caller does, from the whole file).
 */
export async function streamSegment(
  fs: StorageFs,
  path: string,
  segment: SegmentName,
  isLast: boolean,
  cleanEnd: CleanEnd | undefined,
  prevSegmentCrc: number | undefined,
  deliver: FrameSink,
  progress: ((done: number, total: number) => void) | undefined,
): Promise<Streamed> {
  const file = await fs.open(path);
  let window: FileWindow | undefined;
  try {
    window = new FileWindow(file, await file.size());
    const size = window.size;
    let offset = 0;
    let crc = 0;
    let headerDone = false;
    let frames = 0;
    for (;;) {
      if (offset + FRAME_HEADER_BYTES > size) break;
      await window.ensure(offset, FRAME_HEADER_BYTES);
      const length = window.view.getUint32(offset - window.base, true);
      if (window.bytes[offset - window.base + 4] !== 0) {
        if (offset + FRAME_HEADER_BYTES + length > size) break;
        await window.ensure(
          offset,
          Math.min(align8(FRAME_HEADER_BYTES + length), size - offset),
        );
      }
      const at = offset - window.base;
      const frame = readFrame(
        window.bytes,
        window.view,
        at,
        window.end,
        headerDone ? crc : 0,
      );
      if (frame.status === "end") {
        const clean = headerDone &&
          (!isLast ||
            (cleanEnd?.offset === offset && cleanEnd.crc === crc) ||
            await window.zerosFrom(offset, TAIL_ZERO_CHECK_BYTES));
        return { headerDone, clean, offset, crc };
      }
      if (frame.status === "bad") break;
      if (!headerDone && frame.type !== RecordType.segment) break;
      if (!headerDone) {
        checkSegmentHeader(
          path,
          segment,
          prevSegmentCrc,
          decodeRecord(
            window.bytes,
            window.view,
            frame.type,
            frame.payloadStart,
            frame.payloadLength,
          ),
        );
        headerDone = true;
      } else {
        deliver(
          window.bytes,
          window.view,
          frame.type,
          frame.payloadStart,
          frame.payloadLength,
        );
      }
      crc = frame.crc;
      offset += frame.next - at;
      if ((++frames & 0xfff) === 0) progress?.(offset, size);
    }
    return { headerDone, clean: false, offset, crc };
  } finally {
    window?.release();
    file.close();
  }
}

/**
 * Whether valid frames follow a bad frame at `offset`: the frame right after
 * it (chained from its stored crc, when its length is plausible), or any two
 * consecutive frames that chain, at an 8-byte aligned offset.
 */
function validFramesAfter(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  storedCrc: number | undefined,
): boolean {
  const end = bytes.length;
  let first = -1;
  for (let i = offset; i < end; i++) {
    if (bytes[i] !== 0) {
      first = i;
      break;
    }
  }
  if (first < 0) return false;
  if (storedCrc !== undefined) {
    const length = view.getUint32(offset, true);
    const next = offset + align8(FRAME_HEADER_BYTES + length);
    if (length < end && next + FRAME_HEADER_BYTES <= end) {
      if (readFrame(bytes, view, next, end, storedCrc).status === "ok") {
        return true;
      }
    }
  }
  for (let p = align8(offset + 1); p + FRAME_HEADER_BYTES <= end; p += 8) {
    const type = bytes[p + 4]!;
    if (type === 0 || bytes[p + 5] !== 0 || bytes[p + 6] !== 0) continue;
    if (bytes[p + 7] !== 0) continue;
    const length = view.getUint32(p, true);
    if (p + FRAME_HEADER_BYTES + length > end) continue;
    const next = p + align8(FRAME_HEADER_BYTES + length);
    if (next + FRAME_HEADER_BYTES > end) continue;
    const crcAtP = view.getUint32(p + 8, true);
    if (readFrame(bytes, view, next, end, crcAtP).status === "ok") return true;
  }
  return false;
}

/** Zeroes a segment from `offset` to its last nonzero byte, and syncs. */
async function zeroFrom(
  fs: StorageFs,
  path: string,
  offset: number,
  bytes: Uint8Array,
): Promise<void> {
  let last = bytes.length;
  while (last > offset && bytes[last - 1] === 0) last--;
  if (last <= offset) return;
  const file = await fs.open(path, { write: true });
  try {
    await file.writeAt(offset, new Uint8Array(last - offset));
    await file.syncData();
  } finally {
    file.close();
  }
}

/** Options of the WAL writer. */
export interface WalWriterOptions {
  /** Segment size in bytes. */
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
      this.#offset + total > this.options.segmentBytes &&
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
      await this.#file.syncData();
      this.syncCount++;
    }
    this.#offset += total;
    this.#crc = crc;
    this.#lastRevision = lastRevision;
    if (
      this.#next === undefined &&
      this.#offset >= this.options.segmentBytes * PREPARE_AT_FRACTION
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

  /** Creates `next.tmp` zero-filled to the segment size (sparse without sync). */
  async #prepare(): Promise<StorageFile> {
    await this.fs.remove(this.#nextPath);
    const file = await this.fs.open(this.#nextPath, { createNew: true });
    try {
      const size = this.options.segmentBytes;
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
      file.close();
      throw error;
    }
  }
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}
