/**
 * The end of the log: where reading a segment stopped, is it the end, a torn
 * write that may be cut, or corruption that must be refused?
 *
 * ## What a crash can leave (why a torn write looks the way it does)
 *
 * The journal (`journal.ts`) runs one flush at a time. A flush is one batch
 * of consecutive frames, encoded chained from the crc of the frame before,
 * written with ONE `writeAt` at the end of the log in the newest segment,
 * then made durable with ONE `fdatasync`; only after that fdatasync returns
 * are the batch's writes acknowledged, and only then does the next flush
 * start. Segment files are fresh, preallocated with zeros (and synced) before
 * use, and never reused. A roll writes the new segment's header (and
 * preamble) into the prepared file, fdatasyncs it, renames it to its segment
 * name and syncs the directory, and only then writes the batch into it. So at
 * any instant at most ONE batch is unsynced, it lies at the end of the
 * newest segment, and everything after it is zeros. A crash (kill -9, power
 * loss) may persist any subset of that batch's pages, in any order; nothing
 * else changes.
 *
 * ## The rule
 *
 * Reading stops at offset `o` of a segment: the first frame that is not
 * valid (bad crc, impossible header, runs past the end), or a zero header.
 *
 * 1. A zero header with only zeros after it is the end of the log, except
 *    in the newest segment when the clean-close marker (`wal/CLEAN`) names
 *    another end, or when the log would end below the newest snapshot
 *    (see 3c): those contradictions are refused.
 * 2. In any segment but the newest, anything else is corruption (the batch in
 *    flight is always in the newest).
 * 3. In the newest segment the bytes from `o` on may be cut (a torn tail)
 *    only when ALL of these hold; otherwise it is corruption:
 *    a. no clean-close marker: a clean close synced the last batch before
 *       writing it, so with one there is no batch in flight to tear;
 *    b. no valid frame after `o`: no frame at an 8-aligned offset after `o`
 *       validates chained from the stored crc of the frame at `o`, and no
 *       two consecutive frames after `o` chain (the second validates from
 *       the first's stored crc). The search covers the whole rest of the
 *       segment, past a claimed length that runs off the end too: a frame
 *       whose length field was flipped still has valid frames behind it;
 *    c. the cut loses no revision at or below the newest snapshot loaded:
 *       that snapshot's WAL marker was durable before the snapshot file was
 *       renamed into place, so every write at or below it was synced.
 *
 * Every sync point the store records durably is used: the clean-close
 * marker (end offset and crc of a cleanly closed log), each segment header
 * (it names the crc the previous segment ended with, so older segments are
 * checked whole), and the snapshot files (their revision). A per-batch
 * durable high-water mark (a synced file or a field in the next batch) was
 * not added: a separate synced file doubles the fdatasyncs per batch, and a
 * mark inside the next batch is exactly what is missing when the tail is
 * damaged; rule 3b already finds any later batch, which is the only way an
 * acknowledged write can sit behind a cut.
 *
 * Rule 3b can refuse a genuine torn write: after a power loss the disk may
 * persist a later page of the batch in flight and not an earlier one, which
 * leaves a valid frame after the damaged one. That is the safe direction:
 * the error names file, offset and what was found, and `repair()` is the
 * deliberate way through. A kill -9 never does this (the page cache holds
 * the whole write).
 *
 * What is cut is never destroyed: `keepAside` copies the dropped bytes to
 * `wal/<segment>.<offset>.torn` (at most `TORN_FILES_KEPT` such files, the
 * newest cuts; `snapshot_keeper.ts` removes them with their segment) before
 * the segment is zeroed.
 *
 * @module
 */

import type { StorageFs } from "./fs.ts";
import { align8, FRAME_HEADER_BYTES, readFrame } from "./wal_codec.ts";

/** Most `.torn` files kept in `wal/` (the oldest beyond are removed). */
export const TORN_FILES_KEPT = 4;
/** Suffix of the files holding the bytes a torn-tail cut dropped. */
export const TORN_SUFFIX = ".torn";

/** Where the last clean close left the log's end (see `wal.ts`, `CleanEnd`). */
export interface CleanEndMark {
  /** Segment file name. */
  segment: string;
  /** Offset of the end of the log in it. */
  offset: number;
  /** crc of the last frame. */
  crc: number;
}

/** How reading a segment stopped at `offset`. */
export interface StopPoint {
  /** The segment's path. */
  path: string;
  /** The whole segment. */
  bytes: Uint8Array;
  /** A view of `bytes`. */
  view: DataView;
  /** Where reading stopped. */
  offset: number;
  /** crc of the last frame accepted before `offset`. */
  crc: number;
  /** Why: undefined for a zero header (end of data), else what was wrong. */
  badFrame: { reason: string; storedCrc: number } | undefined;
  /** Whether this is the newest segment. */
  isLast: boolean;
  /** The clean-close marker, when one was found. */
  cleanEnd: CleanEndMark | undefined;
  /** Newest write revision accepted so far. */
  lastRevision: number;
  /** Revision of the snapshot recovery started from (0 when none). */
  snapshotRevision: number;
}

/** The decision about a stop point. */
export type TailVerdict =
  | { kind: "end" }
  | { kind: "torn"; reason: string; droppedEnd: number }
  | { kind: "corrupt"; reason: string };

/** Applies the rule of the module comment to where reading stopped. */
export function judgeStop(stop: StopPoint): TailVerdict {
  const { bytes, view, offset, badFrame, isLast, cleanEnd } = stop;
  const dataEnd = lastNonZero(bytes, offset);
  if (badFrame === undefined && dataEnd <= offset) {
    // Rule 1: zeros from here on.
    if (isLast && cleanEnd !== undefined) {
      if (cleanEnd.offset !== offset || cleanEnd.crc !== stop.crc) {
        return {
          kind: "corrupt",
          reason: `the log ends here (crc ${hex(stop.crc)}) but the ` +
            `clean-close marker says it ended at offset ${cleanEnd.offset} ` +
            `(crc ${hex(cleanEnd.crc)})`,
        };
      }
    }
    if (isLast && stop.lastRevision < stop.snapshotRevision) {
      return { kind: "corrupt", reason: belowSnapshot("the log ends", stop) };
    }
    return { kind: "end" };
  }
  const found = badFrame === undefined
    ? "a zero frame header with data after it"
    : badFrame.reason;
  if (!isLast) return { kind: "corrupt", reason: found };
  if (cleanEnd !== undefined) {
    return {
      kind: "corrupt",
      reason: `${found}, but the clean-close marker says the log ended ` +
        `cleanly at offset ${cleanEnd.offset}`,
    };
  }
  const follower = findValidFrameAfter(
    bytes,
    view,
    offset,
    badFrame?.storedCrc,
  );
  if (follower >= 0) {
    return {
      kind: "corrupt",
      reason: `${found}; a valid frame follows at offset ${follower}`,
    };
  }
  if (stop.lastRevision < stop.snapshotRevision) {
    return {
      kind: "corrupt",
      reason: belowSnapshot(`${found}; the log would end`, stop),
    };
  }
  return { kind: "torn", reason: found, droppedEnd: dataEnd };
}

/**
 * Offset of a valid frame after a bad one at `offset` (-1 when none): one
 * that validates chained from `storedCrc` (the bad frame's crc field), or
 * the second of two consecutive frames that chain. Every 8-aligned offset
 * to the end of `bytes` is tried.
 */
export function findValidFrameAfter(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  storedCrc: number | undefined,
): number {
  const end = bytes.length;
  for (let p = align8(offset + 1); p + FRAME_HEADER_BYTES <= end; p += 8) {
    const type = bytes[p + 4]!;
    if (type === 0 || bytes[p + 5] !== 0 || bytes[p + 6] !== 0) continue;
    if (bytes[p + 7] !== 0) continue;
    const length = view.getUint32(p, true);
    if (p + FRAME_HEADER_BYTES + length > end) continue;
    if (
      storedCrc !== undefined &&
      readFrame(bytes, view, p, end, storedCrc).status === "ok"
    ) return p;
    const next = p + align8(FRAME_HEADER_BYTES + length);
    if (next + FRAME_HEADER_BYTES > end) continue;
    const crcAtP = view.getUint32(p + 8, true);
    if (readFrame(bytes, view, next, end, crcAtP).status === "ok") return next;
  }
  return -1;
}

/** One past the last nonzero byte at or after `from` (`from` when none). */
export function lastNonZero(bytes: Uint8Array, from: number): number {
  let last = bytes.length;
  while (last > from && bytes[last - 1] === 0) last--;
  return last;
}

/**
 * Copies `bytes[from, to)` of segment `segmentPath` to
 * `<segmentPath>.<from>.torn` (synced), keeping at most `TORN_FILES_KEPT`
 * such files in its directory. Returns the file's path.
 */
export async function keepAside(
  fs: StorageFs,
  segmentPath: string,
  bytes: Uint8Array,
  from: number,
  to: number,
): Promise<string> {
  const slash = segmentPath.lastIndexOf("/");
  const dir = segmentPath.slice(0, slash);
  const name = `${segmentPath.slice(slash + 1)}.${from}${TORN_SUFFIX}`;
  // Oldest first: by segment (names sort by seq), then by offset as a
  // number ("9984" is before "10240").
  const existing = (await fs.readDir(dir))
    .filter((n) => n.endsWith(TORN_SUFFIX) && n !== name)
    .map((n) => {
      const stem = n.slice(0, -TORN_SUFFIX.length);
      const dot = stem.lastIndexOf(".");
      return {
        n,
        segment: stem.slice(0, dot),
        offset: Number(stem.slice(dot + 1)),
      };
    })
    .sort((a, b) =>
      a.segment < b.segment
        ? -1
        : a.segment > b.segment
        ? 1
        : a.offset - b.offset
    )
    .map((e) => e.n);
  for (
    const old of existing.slice(
      0,
      Math.max(0, existing.length - (TORN_FILES_KEPT - 1)),
    )
  ) {
    await fs.remove(`${dir}/${old}`);
  }
  const path = `${dir}/${name}`;
  try {
    await fs.writeFile(path, bytes.subarray(from, to));
  } catch (error) {
    // A full disk must not leave half a copy behind (nothing was cut yet).
    await fs.remove(path).catch(() => {});
    throw error;
  }
  await fs.syncDir(dir);
  return path;
}

function belowSnapshot(what: string, stop: StopPoint): string {
  return `${what} at revision ${stop.lastRevision}, below the snapshot at ` +
    `${stop.snapshotRevision} whose WAL marker was durable`;
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
