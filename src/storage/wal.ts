/**
 * WAL segments: naming, the clean-close marker, and reading them back in
 * order (recovery and explicit repair). Appending is `wal_writer.ts`.
 *
 * A segment is `wal/<seq>-<rev>.wal` (both 16 hex digits): `seq` counts
 * segments, `rev` is the store's revision when the segment was started, so
 * every write in it is above `rev`. Its first frame is a segment header
 * (see `wal_codec.ts`), and the file is preallocated (zero-filled) to its
 * segment's size so that appending never changes the file's size and
 * fdatasync has no metadata to flush. Sizes grow from 1 MiB up to
 * `segmentBytes` (`segmentCapacityBytes` in `wal_writer.ts`); reading never
 * depends on them: each file is read to its own end.
 *
 * Reading streams each segment's frames while they are valid; where a
 * segment stops, `wal_tail.ts` decides from the evidence whether that is the
 * end of the log, a torn write that may be cut (its bytes kept aside first),
 * or corruption, refused with `WalCorruptionError` naming file, offset and
 * what was found. That module's header states the rule and why a torn write
 * cannot look otherwise. `repair` (the deliberate way through) cuts at a
 * corruption instead of refusing.
 *
 * @module
 */

import type { StorageFs } from "./fs.ts";
import { judgeStop, keepAside, lastNonZero } from "./wal_tail.ts";
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
  hex32,
  readFrame,
  RecordType,
  type WalRecord,
} from "./wal_codec.ts";
import {
  decodeRecord,
  restoreWriteChanges,
  writeRecordRevision,
} from "./wal_codec.ts";
import type { RuntimeWorker } from "./runtime.ts";

/** Default segment size, as etcd's (64 MiB). */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
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
      `revkv: WAL corrupted in ${file} at offset ${offset}: ${reason}. ` +
        `This cannot be a torn write, so nothing was changed. Restore from ` +
        `a backup, or call repair(dataDir) to truncate the log at this ` +
        `point (losing every record after it; the dropped bytes are kept ` +
        `in wal/*.torn).`,
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
  /** The file holding the bytes the cut dropped (none when they were zeros). */
  keptAside?: string;
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
  /**
   * Revision of the snapshot recovery starts from: the log may not end
   * below it (its WAL marker was durable; see `wal_tail.ts`, rule 3c).
   */
  snapshotRevision?: number;
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
  repaired:
    | {
      file: string;
      offset: number;
      removed: string[];
      keptAside: string | undefined;
    }
    | undefined;
  /** Number of records read. */
  records: number;
}

/**
 * Reads every segment in order, calling `onRecord` for each record after
 * the segment headers (segment headers are checked, not passed on).
 * Truncates a torn tail (see the module comment); throws
 * `WalCorruptionError` on corruption unless `repair` is set.
 *
 * Each segment is streamed (`LogReplay.stream`) up to the first frame it
 * cannot accept; where that is not the clean end of the log, the segment
 * is read whole and its stop judged (`judgeSegmentStop`): the end of the
 * log, a torn tail to cut, or corruption.
 */
export async function readWal(
  fs: StorageFs,
  walDir: string,
  segments: readonly SegmentName[],
  onRecord: (record: WalRecord) => void,
  options: ReadWalOptions = {},
): Promise<WalReadResult> {
  checkCleanEndSegment(walDir, segments, options.cleanEnd);
  const replay = await LogReplay.start(fs, walDir, segments, onRecord, options);
  const snapshotRevision = options.snapshotRevision ?? 0;
  let torn: TornTail | undefined;
  let tail: WalTail | undefined;
  let prevSegmentCrc: number | undefined;
  try {
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const isLast = i === segments.length - 1;
      const path = `${walDir}/${segment.name}`;
      const streamed = await replay.stream(
        path,
        segment,
        isLast,
        prevSegmentCrc,
      );
      if (
        streamed.clean && !(isLast && replay.lastRevision < snapshotRevision)
      ) {
        tail = {
          segment,
          offset: streamed.offset,
          crc: streamed.crc,
          lastRevision: replay.lastRevision,
        };
        prevSegmentCrc = streamed.crc;
        continue;
      }
      const stop = await judgeSegmentStop(
        fs,
        path,
        segment,
        isLast,
        streamed,
        prevSegmentCrc,
        replay,
        options,
      );
      if (stop.kind === "headerless") {
        torn = stop.torn;
        break;
      }
      const { offset, crc } = stop;
      tail = { segment, offset, crc, lastRevision: replay.lastRevision };
      if (stop.kind === "corrupt") {
        return {
          tail,
          torn,
          repaired: await cutForRepair(
            fs,
            walDir,
            path,
            stop.bytes,
            offset,
            segments.slice(i + 1),
          ),
          records: replay.records,
        };
      }
      torn = stop.torn ?? torn;
      prevSegmentCrc = crc;
    }
  } finally {
    replay.close();
  }
  return { tail, torn, repaired: undefined, records: replay.records };
}

/** The clean-close marker must name the newest segment, or the log is cut. */
function checkCleanEndSegment(
  walDir: string,
  segments: readonly SegmentName[],
  cleanEnd: CleanEnd | undefined,
): void {
  const newest = segments[segments.length - 1];
  if (cleanEnd && cleanEnd.segment !== newest?.name) {
    corrupt(
      `${walDir}/${cleanEnd.segment}`,
      cleanEnd.offset,
      `the clean-close marker says the log ended here, but the newest ` +
        `segment is ${newest?.name ?? "missing"}`,
    );
  }
}

/**
 * Where the records of a log go while it is read, and how: decoded to
 * `onRecord`, write records straight into `options.writes` (recovery), by
 * a replay worker when the log is large. Counts the records and tracks the
 * newest write revision (the evidence `wal_tail.ts` weighs).
 */
class LogReplay {
  /** Newest write revision delivered (a segment's start revision before). */
  lastRevision: number;
  /** Records delivered. */
  records = 0;
  /** Delivers one checked frame of the read buffer. */
  readonly deliver: FrameSink;
  readonly #fs: StorageFs;
  readonly #options: ReadWalOptions;
  readonly #slot: ReplayWorkerSlot;
  readonly #worker: RuntimeWorker | undefined;
  readonly #target: ReplayTarget | undefined;

  /** A replay of `segments`, with a worker when `options` ask and it pays. */
  static async start(
    fs: StorageFs,
    walDir: string,
    segments: readonly SegmentName[],
    onRecord: (record: WalRecord) => void,
    options: ReadWalOptions,
  ): Promise<LogReplay> {
    const slot = options.workerSlot ?? new ReplayWorkerSlot();
    const useWorker = options.writes !== undefined && segments.length > 0 &&
      await useReplayWorker(
        fs,
        options.replayWorker ?? "auto",
        (bytes) => logReaches(fs, walDir, segments, options.cleanEnd, bytes),
      );
    return new LogReplay(
      fs,
      segments[0]?.startRevision ?? 0,
      onRecord,
      options,
      slot,
      useWorker ? slot.get() : undefined,
    );
  }

  private constructor(
    fs: StorageFs,
    firstRevision: number,
    onRecord: (record: WalRecord) => void,
    options: ReadWalOptions,
    slot: ReplayWorkerSlot,
    worker: RuntimeWorker | undefined,
  ) {
    this.#fs = fs;
    this.#options = options;
    this.#slot = slot;
    this.#worker = worker;
    // A segment's writes are all above its start revision.
    this.lastRevision = firstRevision;
    const writes = options.writes;
    this.deliver = (bytes, view, type, at, length) => {
      if (type === RecordType.write && writes !== undefined) {
        const revision = writeRecordRevision(view, at, length);
        this.lastRevision = revision;
        if (writes.beginWrite(revision)) {
          restoreWriteChanges(bytes, view, at, length, writes.entries);
        }
      } else {
        const record = decodeRecord(bytes, view, type, at, length);
        if (record.kind === "write") this.lastRevision = record.revision;
        onRecord(record);
      }
      this.records++;
    };
    this.#target = writes && {
      beginWrite: (revision) => {
        this.lastRevision = revision;
        this.records++;
        return writes.beginWrite(revision);
      },
      record: (record) => {
        onRecord(record);
        this.records++;
      },
      entries: writes.entries,
    };
  }

  /**
   * Streams one segment through a reused buffer (or the worker), only up
   * to the end of the log: segments are preallocated, most of the last one
   * is zeros. Stops at the first frame it cannot accept; the caller then
   * judges that stop from the whole file, exactly as if nothing had been
   * streamed.
   */
  stream(
    path: string,
    segment: SegmentName,
    isLast: boolean,
    prevSegmentCrc: number | undefined,
  ): Promise<Streamed> {
    const options = this.#options;
    const cleanEnd = isLast && options.cleanEnd?.segment === segment.name
      ? options.cleanEnd
      : undefined;
    const target = this.#target;
    if (this.#worker !== undefined && target !== undefined) {
      return streamSegmentInWorker(
        this.#worker,
        { path, segment, isLast, cleanEnd, prevSegmentCrc },
        (batch) => {
          applyReplayBatch(batch, target);
          options.progress?.(batch.offset, batch.size);
        },
        (c) => new WalCorruptionError(c.file, c.offset, c.reason),
      );
    }
    return streamSegment(
      this.#fs,
      path,
      segment,
      isLast,
      cleanEnd,
      prevSegmentCrc,
      this.deliver,
      options.progress,
    );
  }

  /** Ends the worker unless the caller lent it. */
  close(): void {
    if (this.#slot !== this.#options.workerSlot) this.#slot.close();
  }
}

/** How a segment that did not end cleanly while streaming ends. */
type SegmentEnd =
  /** A last segment that never got its header: removed (a cut roll). */
  | { kind: "headerless"; torn: TornTail }
  /** The log continues (or ends) at `offset`; `torn` when a tail was cut. */
  | { kind: "end"; offset: number; crc: number; torn: TornTail | undefined }
  /** Corruption at `offset`, and `repair` asked to cut there. */
  | { kind: "corrupt"; offset: number; crc: number; bytes: Uint8Array };

/**
 * Reads a segment whole from where streaming stopped, delivering the rest
 * of its frames, and judges the stop by `wal_tail.ts`'s rule: the end of
 * the log, a torn tail (cut, its bytes kept aside), or corruption (thrown,
 * or handed back for `repair`).
 * @throws WalCorruptionError for corruption without `repair`.
 */
async function judgeSegmentStop(
  fs: StorageFs,
  path: string,
  segment: SegmentName,
  isLast: boolean,
  streamed: Streamed,
  prevSegmentCrc: number | undefined,
  replay: LogReplay,
  options: ReadWalOptions,
): Promise<SegmentEnd> {
  const bytes = await fs.readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stop = readToStop(
    bytes,
    view,
    streamed,
    path,
    segment,
    prevSegmentCrc,
    replay.deliver,
    options.progress,
  );
  if (stop === "headerless") {
    if (!isLast || options.cleanEnd !== undefined) {
      corrupt(path, 0, "missing segment header");
    }
    // A segment that never got its header: a roll cut short (only
    // possible without fsync; a roll syncs the header before the name).
    await fs.remove(path);
    return {
      kind: "headerless",
      torn: { file: path, offset: 0, reason: "missing segment header" },
    };
  }
  const { offset, crc, badFrame } = stop;
  const verdict = judgeStop({
    path,
    bytes,
    view,
    offset,
    crc,
    badFrame,
    isLast,
    cleanEnd: options.cleanEnd,
    lastRevision: replay.lastRevision,
    snapshotRevision: options.snapshotRevision ?? 0,
  });
  if (verdict.kind === "corrupt") {
    if (!options.repair) corrupt(path, offset, verdict.reason);
    return { kind: "corrupt", offset, crc, bytes };
  }
  const torn = verdict.kind === "torn"
    ? await cutTornTail(fs, path, bytes, offset, verdict)
    : undefined;
  return { kind: "end", offset, crc, torn };
}

/** Where reading a whole segment in memory stopped (see `readToStop`). */
interface SegmentStop {
  /** Offset of the first frame not accepted. */
  offset: number;
  /** crc of the last frame accepted. */
  crc: number;
  /** What was wrong there; undefined for a zero header. */
  badFrame: { reason: string; storedCrc: number } | undefined;
}

/**
 * Reads the rest of a segment held in memory, from where streaming
 * stopped: its header first if not yet checked, then frames, delivering
 * each, up to the first it cannot accept. `"headerless"` for a segment that
 * is all zeros (no header at all).
 * @throws WalCorruptionError for a bad header.
 */
function readToStop(
  bytes: Uint8Array,
  view: DataView,
  streamed: Streamed,
  path: string,
  segment: SegmentName,
  prevSegmentCrc: number | undefined,
  deliver: FrameSink,
  progress: ((done: number, total: number) => void) | undefined,
): SegmentStop | "headerless" {
  let offset = streamed.offset;
  let crc = streamed.crc;
  if (!streamed.headerDone) {
    // The header: a segment record chained from 0 that names this segment.
    const head = readFrame(bytes, view, 0, bytes.length, 0);
    if (head.status !== "ok" || head.type !== RecordType.segment) {
      if (lastNonZero(bytes, 0) === 0) return "headerless";
      corrupt(
        path,
        0,
        head.status === "bad" ? head.reason : "missing segment header",
      );
    }
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
  }
  for (let frames = 1;; frames++) {
    const frame = readFrame(bytes, view, offset, bytes.length, crc);
    if (frame.status === "end") return { offset, crc, badFrame: undefined };
    if (frame.status === "bad") {
      return {
        offset,
        crc,
        badFrame: { reason: frame.reason, storedCrc: frame.storedCrc },
      };
    }
    deliver(bytes, view, frame.type, frame.payloadStart, frame.payloadLength);
    crc = frame.crc;
    offset = frame.next;
    if ((frames & 0xfff) === 0) progress?.(offset, bytes.length);
  }
}

/**
 * Whether the log holds at least `bytes`: the sizes of the older segments
 * plus the newest one's data (known from the clean-close marker, else
 * probed at the offset still needed).
 */
async function logReaches(
  fs: StorageFs,
  walDir: string,
  segments: readonly SegmentName[],
  cleanEnd: CleanEnd | undefined,
  bytes: number,
): Promise<boolean> {
  // Segments grow from 1 MiB, so a second segment no longer means a large
  // log: every segment but the newest counts as its file size (it was
  // filled to about that before the roll), the newest as far as its data.
  let before = 0;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const isLast = i === segments.length - 1;
    const need = bytes - before;
    if (need <= 0) return true;
    if (isLast && cleanEnd?.segment === segment.name) {
      return cleanEnd.offset >= need;
    }
    const file = await fs.open(`${walDir}/${segment.name}`);
    try {
      if (!isLast) {
        before += await file.size();
        continue;
      }
      const probe = new Uint8Array(4096);
      const got = await file.readAt(Math.max(0, need - probe.length), probe);
      return probe.subarray(0, Math.max(0, got)).some((b) => b !== 0);
    } finally {
      file.close();
    }
  }
  return before >= bytes;
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
        // With a clean-close marker the log must end exactly there (else
        // `judgeStop` refuses the contradiction); without one, the bytes
        // after the end must be zeros.
        const clean = headerDone &&
          (!isLast ||
            (cleanEnd !== undefined
              ? cleanEnd.offset === offset && cleanEnd.crc === crc
              : await window.zerosFrom(offset, TAIL_ZERO_CHECK_BYTES)));
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
 * Cuts a torn tail at `offset`: its bytes are copied aside first
 * (`keepAside`), then zeroed on disk.
 */
async function cutTornTail(
  fs: StorageFs,
  path: string,
  bytes: Uint8Array,
  offset: number,
  verdict: { reason: string; droppedEnd: number },
): Promise<TornTail> {
  const keptAside = await keepAside(
    fs,
    path,
    bytes,
    offset,
    verdict.droppedEnd,
  );
  await zeroFrom(fs, path, offset, bytes);
  return { file: path, offset, reason: verdict.reason, keptAside };
}

/**
 * `repair`: cuts the log at a corruption (the bytes kept aside, then
 * zeroed) and removes every later segment.
 */
async function cutForRepair(
  fs: StorageFs,
  walDir: string,
  path: string,
  bytes: Uint8Array,
  offset: number,
  later: readonly SegmentName[],
): Promise<NonNullable<WalReadResult["repaired"]>> {
  const end = lastNonZero(bytes, offset);
  const keptAside = end > offset
    ? await keepAside(fs, path, bytes, offset, end)
    : undefined;
  await zeroFrom(fs, path, offset, bytes);
  const removed: string[] = [];
  for (const segment of later) {
    await fs.remove(`${walDir}/${segment.name}`);
    removed.push(segment.name);
  }
  await fs.syncDir(walDir);
  return { file: path, offset, removed, keptAside };
}

/** Throws the `WalCorruptionError` for `file` at `offset`. */
function corrupt(file: string, offset: number, reason: string): never {
  throw new WalCorruptionError(file, offset, reason);
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

function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}
