/**
 * The WAL record codec: records ↔ checksummed, 8-byte aligned frames.
 *
 * A frame, little-endian:
 *
 * ```
 *  offset  size  field
 *  0       4     payloadLength   bytes of payload (header and padding excluded)
 *  4       1     type            record type (0 is never written: see below)
 *  5       3     reserved        zero
 *  8       4     crc             CRC32C of bytes [0, 8) and the payload,
 *                                seeded with the previous frame's crc
 *  12      n     payload
 *  12+n    pad   zero bytes up to the next multiple of 8
 * ```
 *
 * A worked example: a put of "a" = "1" at revision 2 is a write record with a
 * 16-byte head (revision, change count, 4 bytes spare) and one change of 40
 * bytes + key + value, so payloadLength = 58 and the frame takes
 * align8(12 + 58) = 72 bytes. Its crc is crc32c(header ++ payload, crc of the
 * frame before it).
 *
 * Because every crc chains from the one before, a frame copied, replayed or
 * left over from an older use of the file does not validate at another
 * position. Segment files are preallocated with zeros, so the end of the log
 * is the first header whose type byte is 0; a frame that runs past the end
 * of the file or fails its crc is either a torn tail (nothing valid after it)
 * or corruption (valid frames follow) — see `wal.ts` for that decision.
 *
 * Record types. The type byte has room to grow: 1–15 are the core records
 * below, 16–31 are reserved for the lessor (issue 4: lease grant = 16,
 * revoke = 17, checkpoint = 18), 32–127 for later needs. Bit 0x80 marks a
 * record as skippable: a reader that does not know such a type skips it;
 * an unknown type without the bit stops recovery with an error (it was
 * written by a newer revkv). To add a record type: pick the number, add an
 * encoder/decoder case here (and in `assembly/wal.ts`), and apply it in the
 * replay of `recovery.ts`; unknown payloads already round-trip as
 * `{ kind: "opaque" }`.
 *
 * Payloads (integers little-endian; u64 holds a JS number < 2^53 or a bigint ID):
 *
 * - segment (1): u32 magic "RKVW", u32 format version, u64 seq, u64 start
 *   revision (every write in the segment is above it), u32 crc of the last
 *   frame of the previous segment. Its own crc is seeded with 0 so a segment
 *   can be checked alone once older segments are removed.
 * - metadata (2): u64 cluster id, u64 member id, u64 term.
 * - write (3): u64 revision, u32 change count, u32 spare; then per change:
 *   u32 sub, u32 flags (bit 0: tombstone), u64 create revision, u64 version,
 *   u64 lease, u32 key length, u32 value length, key, value.
 * - compact (4): u64 revision.
 * - snapshot (5): u64 revision (a snapshot at this revision was started here).
 * - lease grant (16): u64 lease id, u64 TTL seconds, u64 deadline (wall-clock
 *   ms). Also written for every live lease at the start of each segment, so
 *   no segment depends on older ones for its leases.
 * - lease revoke (17): u64 lease id (its keys' deletion is an earlier write).
 * - lease checkpoint (18): u64 lease id, u64 new deadline (keep-alive).
 *
 * @module
 */

import {
  newRecordedEntry,
  type RecordedEntry,
} from "../mvcc/recorded_entry.ts";
import type { RevisionEntry } from "../mvcc/key_index.ts";
import { crc32c } from "./crc32c.ts";
import { ByteSlab } from "../mvcc/byte_slab.ts";

/** Where decoded keys and values are copied to (they outlive the read buffer). */
const decodeSlab = new ByteSlab();

/** Bytes of a frame header (length, type, reserved, crc). */
export const FRAME_HEADER_BYTES = 12;
/** Frames start at multiples of this. */
export const FRAME_ALIGN_BYTES = 8;
/** Largest payload accepted when decoding (a guard against garbage lengths). */
export const FRAME_PAYLOAD_BYTES_MAX = 256 * 1024 * 1024;
/** Fixed bytes of one change inside a write record (before key and value). */
export const CHANGE_HEAD_BYTES = 40;
/** "RKVW": the magic of a segment header record. */
export const SEGMENT_MAGIC = 0x57564b52;
/** On-disk format version of the WAL. */
export const WAL_FORMAT_VERSION = 1;

/** Record type bytes (see the module comment for the ranges). */
export const RecordType = {
  segment: 1,
  metadata: 2,
  write: 3,
  compact: 4,
  snapshot: 5,
  /** A lease and its deadline. */
  leaseGrant: 16,
  /** A lease is gone. */
  leaseRevoke: 17,
  /** A lease's new deadline (keep-alive). */
  leaseCheckpoint: 18,
} as const;
/** Bit of the type byte: unknown types with it set may be skipped. */
export const RECORD_SKIPPABLE = 0x80;

/** One key's change inside a write record. */
export interface WalChange {
  /** The key. */
  key: Uint8Array;
  /** The entry as stored (value null for a tombstone). */
  entry: RevisionEntry;
}

/** A WAL record, decoded. */
export type WalRecord =
  | {
    kind: "segment";
    seq: number;
    startRevision: number;
    prevCrc: number;
  }
  | { kind: "metadata"; clusterId: bigint; memberId: bigint; term: number }
  | { kind: "write"; revision: number; changes: readonly WalChange[] }
  | { kind: "compact"; revision: number }
  | { kind: "snapshot"; revision: number }
  | {
    kind: "leaseGrant";
    id: bigint;
    ttlSeconds: number;
    deadlineMs: number;
  }
  | { kind: "leaseCheckpoint"; id: bigint; deadlineMs: number }
  | { kind: "leaseRevoke"; id: bigint }
  | { kind: "opaque"; type: number; payload: Uint8Array };

/** Encodes batches of records into frames. */
export interface WalEncoder {
  /**
   * Encodes `records` as consecutive frames, the first chained from
   * `prevCrc`. Returns the bytes (a multiple of 8 long; valid until the next
   * call) and the crc of the last frame.
   */
  encode(
    records: readonly WalRecord[],
    prevCrc: number,
  ): { bytes: Uint8Array; crc: number };
}

const U32 = 0x1_0000_0000;

/** Rounds up to a multiple of 8. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Payload length of a record. */
export function payloadBytes(record: WalRecord): number {
  switch (record.kind) {
    case "segment":
      return 28;
    case "metadata":
      return 24;
    case "compact":
    case "snapshot":
    case "leaseRevoke":
      return 8;
    case "leaseCheckpoint":
      return 16;
    case "leaseGrant":
      return 24;
    case "opaque":
      return record.payload.length;
    case "write": {
      let n = 16;
      for (const { key, entry } of record.changes) {
        n += CHANGE_HEAD_BYTES + key.length + (entry.value?.length ?? 0);
      }
      return n;
    }
  }
}

/** The type byte of a record. */
export function recordTypeOf(record: WalRecord): number {
  return record.kind === "opaque" ? record.type : RecordType[record.kind];
}

/** Frame bytes of a record (header, payload, padding). */
export function frameBytes(record: WalRecord): number {
  return align8(FRAME_HEADER_BYTES + payloadBytes(record));
}

/** The TypeScript encoder (the wasm one, `wasm_wal_encoder.ts`, matches it byte for byte). */
export class TsWalEncoder implements WalEncoder {
  #buffer = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buffer.buffer);

  encode(
    records: readonly WalRecord[],
    prevCrc: number,
  ): { bytes: Uint8Array; crc: number } {
    let total = 0;
    for (const record of records) total += frameBytes(record);
    if (total > this.#buffer.length) {
      let size = this.#buffer.length;
      while (size < total) size *= 2;
      this.#buffer = new Uint8Array(size);
      this.#view = new DataView(this.#buffer.buffer);
    }
    const buf = this.#buffer;
    const view = this.#view;
    writeFrameBodies(records, buf, view, 0, total);
    let offset = 0;
    let crc = prevCrc >>> 0;
    for (const record of records) {
      const length = view.getUint32(offset, true);
      const payload = offset + FRAME_HEADER_BYTES;
      if (recordTypeOf(record) === RecordType.segment) crc = 0;
      crc = crc32c(buf, crc, offset, offset + 8);
      crc = crc32c(buf, crc, payload, payload + length);
      view.setUint32(offset + 8, crc, true);
      offset += align8(FRAME_HEADER_BYTES + length);
    }
    return { bytes: buf.subarray(0, total), crc };
  }
}

/**
 * Writes the frames of `records` into `buf[start, start + total)` without
 * their crcs: zeroes the region, then each frame's length, type and payload
 * at its aligned offset. The crcs are computed after, over the whole batch
 * (in JS by `TsWalEncoder`, in wasm by `walSeal`).
 */
export function writeFrameBodies(
  records: readonly WalRecord[],
  buf: Uint8Array,
  view: DataView,
  start: number,
  total: number,
): void {
  buf.fill(0, start, start + total);
  let offset = start;
  for (const record of records) {
    const length = payloadBytes(record);
    view.setUint32(offset, length, true);
    buf[offset + 4] = recordTypeOf(record);
    writePayload(record, buf, view, offset + FRAME_HEADER_BYTES);
    offset += align8(FRAME_HEADER_BYTES + length);
  }
  if (offset !== start + total) {
    throw new Error(
      `wal: frames of the batch take ${
        offset - start
      } bytes, expected ${total}`,
    );
  }
}

function setU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, n % U32, true);
  view.setUint32(at + 4, Math.floor(n / U32), true);
}

function setId(view: DataView, at: number, id: bigint): void {
  if (id === 0n) return; // the buffer is zeroed
  view.setBigUint64(at, BigInt.asUintN(64, id), true);
}

function writePayload(
  record: WalRecord,
  buf: Uint8Array,
  view: DataView,
  at: number,
): void {
  switch (record.kind) {
    case "segment":
      view.setUint32(at, SEGMENT_MAGIC, true);
      view.setUint32(at + 4, WAL_FORMAT_VERSION, true);
      setU64(view, at + 8, record.seq);
      setU64(view, at + 16, record.startRevision);
      view.setUint32(at + 24, record.prevCrc >>> 0, true);
      return;
    case "metadata":
      setId(view, at, record.clusterId);
      setId(view, at + 8, record.memberId);
      setU64(view, at + 16, record.term);
      return;
    case "compact":
    case "snapshot":
      setU64(view, at, record.revision);
      return;
    case "leaseGrant":
      setId(view, at, record.id);
      setU64(view, at + 8, record.ttlSeconds);
      setU64(view, at + 16, record.deadlineMs);
      return;
    case "leaseCheckpoint":
      setId(view, at, record.id);
      setU64(view, at + 8, record.deadlineMs);
      return;
    case "leaseRevoke":
      setId(view, at, record.id);
      return;
    case "opaque":
      buf.set(record.payload, at);
      return;
    case "write": {
      setU64(view, at, record.revision);
      view.setUint32(at + 8, record.changes.length, true);
      let p = at + 16;
      for (const { key, entry } of record.changes) {
        const value = entry.value;
        view.setUint32(p, entry.sub, true);
        view.setUint32(p + 4, value === null ? 1 : 0, true);
        setU64(view, p + 8, entry.createRevision);
        setU64(view, p + 16, entry.version);
        setId(view, p + 24, entry.lease);
        view.setUint32(p + 32, key.length, true);
        view.setUint32(p + 36, value?.length ?? 0, true);
        buf.set(key, p + CHANGE_HEAD_BYTES);
        if (value !== null) buf.set(value, p + CHANGE_HEAD_BYTES + key.length);
        p += CHANGE_HEAD_BYTES + key.length + (value?.length ?? 0);
      }
      return;
    }
  }
}

/** What `readFrame` found at an offset. */
export type FrameRead =
  | {
    status: "ok";
    type: number;
    payloadStart: number;
    payloadLength: number;
    crc: number;
    /** Offset of the next frame. */
    next: number;
  }
  /** A zero header: the end of the written log. */
  | { status: "end" }
  /** Not a valid frame: why, and whether it runs past the end of the bytes. */
  | { status: "bad"; reason: string; pastEnd: boolean; storedCrc: number };

/**
 * Reads and checks the frame at `offset` of `bytes[0, end)`, chained from
 * `prevCrc` (a segment header is checked from 0 whatever `prevCrc` is).
 */
export function readFrame(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  end: number,
  prevCrc: number,
): FrameRead {
  if (offset + FRAME_HEADER_BYTES > end) {
    // Less than a header left: the end if it is all zeros, else torn.
    for (let i = offset; i < end; i++) {
      if (bytes[i] !== 0) {
        return {
          status: "bad",
          reason: "partial frame header",
          pastEnd: true,
          storedCrc: 0,
        };
      }
    }
    return { status: "end" };
  }
  const length = view.getUint32(offset, true);
  const type = bytes[offset + 4]!;
  const storedCrc = view.getUint32(offset + 8, true);
  if (type === 0) {
    if (length === 0 && storedCrc === 0) return { status: "end" };
    return {
      status: "bad",
      reason: "record type 0",
      pastEnd: false,
      storedCrc,
    };
  }
  if (
    bytes[offset + 5] !== 0 || bytes[offset + 6] !== 0 ||
    bytes[offset + 7] !== 0
  ) {
    return {
      status: "bad",
      reason: "reserved header bytes are not zero",
      pastEnd: false,
      storedCrc,
    };
  }
  if (length > FRAME_PAYLOAD_BYTES_MAX) {
    return {
      status: "bad",
      reason: `payload length ${length} exceeds ${FRAME_PAYLOAD_BYTES_MAX}`,
      pastEnd: false,
      storedCrc,
    };
  }
  const payloadStart = offset + FRAME_HEADER_BYTES;
  if (payloadStart + length > end) {
    return {
      status: "bad",
      reason: `frame of ${length} payload bytes runs past the end`,
      pastEnd: true,
      storedCrc,
    };
  }
  let crc = type === RecordType.segment ? 0 : prevCrc >>> 0;
  crc = crc32c(bytes, crc, offset, offset + 8);
  crc = crc32c(bytes, crc, payloadStart, payloadStart + length);
  if (crc !== storedCrc) {
    return {
      status: "bad",
      reason: `crc mismatch (stored ${hex32(storedCrc)}, computed ${
        hex32(crc)
      })`,
      pastEnd: false,
      storedCrc,
    };
  }
  return {
    status: "ok",
    type,
    payloadStart,
    payloadLength: length,
    crc,
    next: offset + align8(FRAME_HEADER_BYTES + length),
  };
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * U32;
}

/** A lease ID (etcd: int64). */
function getId(view: DataView, at: number): bigint {
  if (view.getUint32(at, true) === 0 && view.getUint32(at + 4, true) === 0) {
    return 0n;
  }
  return BigInt.asIntN(64, view.getBigUint64(at, true));
}

/** A member or cluster ID (etcd: uint64). */
function getUnsignedId(view: DataView, at: number): bigint {
  return view.getBigUint64(at, true);
}

/**
 * Decodes a checked frame's payload. Keys and values are copied out of
 * `bytes` (recovery reuses its read buffer: a decoder must never return
 * views into it). Throws on a malformed payload (a bug or a newer format, since the
 * crc already matched).
 */
export function decodeRecord(
  bytes: Uint8Array,
  view: DataView,
  type: number,
  at: number,
  length: number,
): WalRecord {
  const need = (n: number) => {
    if (length < n) {
      throw new Error(
        `wal: record type ${type} payload of ${length} bytes, expected at least ${n}`,
      );
    }
  };
  switch (type) {
    case RecordType.segment: {
      need(28);
      const magic = view.getUint32(at, true);
      if (magic !== SEGMENT_MAGIC) {
        throw new Error(`wal: bad segment magic ${hex32(magic)}`);
      }
      const version = view.getUint32(at + 4, true);
      if (version !== WAL_FORMAT_VERSION) {
        throw new Error(
          `wal: segment format version ${version}, this revkv reads ${WAL_FORMAT_VERSION}`,
        );
      }
      return {
        kind: "segment",
        seq: getU64(view, at + 8),
        startRevision: getU64(view, at + 16),
        prevCrc: view.getUint32(at + 24, true),
      };
    }
    case RecordType.metadata:
      need(24);
      return {
        kind: "metadata",
        clusterId: getUnsignedId(view, at),
        memberId: getUnsignedId(view, at + 8),
        term: getU64(view, at + 16),
      };
    case RecordType.compact:
      need(8);
      return { kind: "compact", revision: getU64(view, at) };
    case RecordType.snapshot:
      need(8);
      return { kind: "snapshot", revision: getU64(view, at) };
    case RecordType.leaseGrant:
      need(24);
      return {
        kind: "leaseGrant",
        id: getId(view, at),
        ttlSeconds: getU64(view, at + 8),
        deadlineMs: getU64(view, at + 16),
      };
    case RecordType.leaseCheckpoint:
      need(16);
      return {
        kind: "leaseCheckpoint",
        id: getId(view, at),
        deadlineMs: getU64(view, at + 8),
      };
    case RecordType.leaseRevoke:
      need(8);
      return { kind: "leaseRevoke", id: getId(view, at) };
    case RecordType.write: {
      need(16);
      const revision = getU64(view, at);
      const count = view.getUint32(at + 8, true);
      const changes: WalChange[] = new Array(count);
      let p = at + 16;
      const end = at + length;
      for (let i = 0; i < count; i++) {
        if (p + CHANGE_HEAD_BYTES > end) {
          throw new Error("wal: write record truncated");
        }
        const sub = view.getUint32(p, true);
        const tombstone = (view.getUint32(p + 4, true) & 1) === 1;
        const createRevision = getU64(view, p + 8);
        const version = getU64(view, p + 16);
        const lease = getId(view, p + 24);
        const keyLength = view.getUint32(p + 32, true);
        const valueLength = view.getUint32(p + 36, true);
        const keyAt = p + CHANGE_HEAD_BYTES;
        if (keyAt + keyLength + valueLength > end) {
          throw new Error("wal: write record key/value past its end");
        }
        // Copies into shared slabs: one ArrayBuffer per key and value
        // made recovery GC-bound (see byte_slab.ts).
        const key = decodeSlab.copy(bytes, keyAt, keyAt + keyLength);
        const value = tombstone ? null : decodeSlab.copy(
          bytes,
          keyAt + keyLength,
          keyAt + keyLength + valueLength,
        );
        changes[i] = {
          key,
          entry: { main: revision, sub, createRevision, version, value, lease },
        };
        p = keyAt + keyLength + valueLength;
      }
      return { kind: "write", revision, changes };
    }
    default:
      return { kind: "opaque", type, payload: bytes.slice(at, at + length) };
  }
}

/** Where recovery puts the entries of write records (the engine). */
export interface RecordedEntrySink {
  /** See `MvccStore.restoreRecorded`. */
  restoreRecorded(entry: RecordedEntry): void;
}

/** The entry `restoreWriteChanges` refills for every change (synchronous use only). */
const changeEntry: RecordedEntry = newRecordedEntry();

/** The revision of a checked write frame's payload. */
export function writeRecordRevision(
  view: DataView,
  at: number,
  length: number,
): number {
  if (length < 16) {
    throw new Error(
      `wal: record type ${RecordType.write} payload of ${length} bytes, expected at least 16`,
    );
  }
  return getU64(view, at);
}

/**
 * Hands every change of a checked write frame's payload to `sink` as byte
 * positions in `bytes`, without decoding it into objects (recovery: see
 * `cold_entries.ts` for why objects per entry matter). Same checks as
 * `decodeRecord`.
 */
export function restoreWriteChanges(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  length: number,
  sink: RecordedEntrySink,
): void {
  const revision = writeRecordRevision(view, at, length);
  const count = view.getUint32(at + 8, true);
  const entry = changeEntry;
  entry.bytes = bytes;
  entry.main = revision;
  entry.adoptedChunk = -1;
  let p = at + 16;
  const end = at + length;
  for (let i = 0; i < count; i++) {
    if (p + CHANGE_HEAD_BYTES > end) {
      throw new Error("wal: write record truncated");
    }
    const tombstone = (view.getUint32(p + 4, true) & 1) === 1;
    const keyLength = view.getUint32(p + 32, true);
    const valueLength = view.getUint32(p + 36, true);
    const keyAt = p + CHANGE_HEAD_BYTES;
    if (keyAt + keyLength + valueLength > end) {
      throw new Error("wal: write record key/value past its end");
    }
    entry.keyStart = keyAt;
    entry.keyLength = keyLength;
    entry.valueStart = keyAt + keyLength;
    entry.valueLength = tombstone ? -1 : valueLength;
    entry.sub = view.getUint32(p, true);
    entry.createRevision = getU64(view, p + 8);
    entry.version = getU64(view, p + 16);
    entry.lease = getId(view, p + 24);
    sink.restoreRecorded(entry);
    p = keyAt + keyLength + valueLength;
  }
}

/** Whether an unknown type byte may be skipped by an older reader. */
export function isSkippable(type: number): boolean {
  return (type & RECORD_SKIPPABLE) !== 0;
}

/** `0x0000abcd` formatting for messages. */
export function hex32(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}
