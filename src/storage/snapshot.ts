/**
 * Snapshot files: the full MVCC state at one revision, checksummed.
 *
 * A snapshot is a sequence of frames in the WAL's framing (`wal_codec.ts`),
 * chained by crc from the first to the last:
 *
 * ```
 *  header (type 1, chained from 0): u32 magic "RKVS", u32 version,
 *                                   u64 revision, u64 compact revision
 *  keys   (type 2), repeated:       key blocks of one page of keys
 *  leases (type 4), repeated:       per live lease: u64 id, u64 TTL seconds,
 *                                   u64 wall-clock deadline ms
 *  footer (type 3):                 u64 key count, u64 entry count,
 *                                   u32 hash, u32 spare
 * ```
 *
 * A key block is u32 key length, u32 entry count, the key, then per entry
 * (oldest first): u64 main, u32 sub, u32 flags (bit 0: tombstone),
 * u64 create revision, u64 version, u64 lease, u32 value length, the value.
 * Only entries with main <= revision are written, and of those only what a
 * compaction at the compact revision keeps (the newest entry at or below it
 * if that is a put, and every later one).
 *
 * The hash is CRC32C over the key blocks in key order, so `hashState()` of
 * a live store at a revision equals the hash of a snapshot taken there (like
 * etcd's HashKV, used by the crash test and `snapshot status`).
 *
 * A snapshot is written to `<name>.tmp`, fdatasynced, renamed into place and
 * the directory synced: a `.snap` name on disk always has all its bytes.
 *
 * @module
 */

import { newRecordedEntry } from "../mvcc/recorded_entry.ts";
import type { KeyIndex } from "../mvcc/key_index.ts";
import type { MvccStore } from "../mvcc/kv_store.ts";
import { crc32c } from "./crc32c.ts";
import type { StorageFs } from "./fs.ts";
import { FileWindow } from "./file_window.ts";
import {
  align8,
  FRAME_HEADER_BYTES,
  readFrame,
  type RecordedEntrySink,
  TsWalEncoder,
  type WalEncoder,
} from "./wal_codec.ts";

/** Keys per page while hashing. */
export const SNAPSHOT_PAGE_KEYS = 2048;
/**
 * Keys per page while writing a snapshot: pages are encoded until
 * `SNAPSHOT_STEP_MS` have passed (or `SNAPSHOT_FRAME_BYTES` are ready),
 * then written as one frame, and the writer yields. Fixed pages of 2,048
 * keys stalled writes for up to ~80 ms on a loaded VM at a million keys.
 */
export const SNAPSHOT_WRITE_PAGE_KEYS = 128;
/** Time one snapshot step may encode before it writes and yields, in ms. */
export const SNAPSHOT_STEP_MS = 4;
/** Most bytes of key blocks in one snapshot frame. */
export const SNAPSHOT_FRAME_BYTES = 1024 * 1024;
/** "RKVS": the magic of a snapshot header. */
export const SNAPSHOT_MAGIC = 0x53564b52;
/** On-disk format version of snapshots. */
export const SNAPSHOT_FORMAT_VERSION = 1;
const TYPE_HEADER = 1;
const TYPE_KEYS = 2;
const TYPE_FOOTER = 3;
const TYPE_LEASES = 4;
/** Bytes of one lease in a leases frame. */
const LEASE_BYTES = 24;
/** Leases per leases frame (bounds one frame to ~1 MiB). */
const LEASES_PER_FRAME = 43_690;

/** A lease as a snapshot keeps it. */
export interface SnapshotLease {
  /** Granted TTL in seconds. */
  ttlSeconds: number;
  /** Wall-clock deadline in ms. */
  deadlineMs: number;
}
const ENTRY_HEAD_BYTES = 44;
const U32 = 0x1_0000_0000;

/** What a snapshot holds (etcd's `snapshot status`, plus revkv's revisions). */
export interface SnapshotStatus {
  /** Hash of the state (see the module comment). */
  hash: number;
  /** Revision of the state. */
  revision: number;
  /** Compaction revision at that point (-1 when never compacted). */
  compactRevision: number;
  /** Number of keys (with any kept revision). */
  totalKeys: number;
  /** Number of revisions of keys kept. */
  totalEntries: number;
  /** File size in bytes. */
  sizeBytes: number;
}

/** A snapshot that does not verify. */
export class SnapshotCorruptionError extends Error {
  /**
   * Corruption found in a snapshot file.
   * @param file the snapshot file.
   * @param offset where it went wrong.
   * @param reason what was wrong.
   */
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`revkv: snapshot ${file} is corrupt at offset ${offset}: ${reason}`);
    this.name = "SnapshotCorruptionError";
  }
}

/** Snapshot file name for a revision. */
export function snapshotName(revision: number): string {
  return `${revision.toString(16).padStart(16, "0")}.snap`;
}

/** Revision of a snapshot file name; undefined for other files. */
export function parseSnapshotName(name: string): number | undefined {
  const match = /^([0-9a-f]{16})\.snap$/.exec(name);
  return match ? parseInt(match[1]!, 16) : undefined;
}

/** Encodes key blocks into a growable buffer. */
class KeyBlockWriter {
  bytes = new Uint8Array(256 * 1024);
  view = new DataView(this.bytes.buffer);
  length = 0;
  keys = 0;
  entries = 0;

  reset(): void {
    this.length = 0;
  }

  /**
   * Appends `index`'s entries with main <= revision that a compaction at
   * `compactRevision` keeps (so the bytes do not depend on how far the
   * physical compaction got); false if there were none.
   */
  add(index: KeyIndex, revision: number, compactRevision: number): boolean {
    const entries = index.entries;
    // First kept entry: the newest at or below the compaction, if a put.
    let first = 0;
    while (
      first + 1 < entries.length && entries[first + 1]!.main <= compactRevision
    ) first++;
    if (
      first < entries.length && entries[first]!.main <= compactRevision &&
      entries[first]!.value === null
    ) first++;
    let count = 0;
    let bytes = 8 + index.key.length;
    for (let i = first; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.main > revision) break;
      count++;
      bytes += ENTRY_HEAD_BYTES + (entry.value?.length ?? 0);
    }
    if (count === 0) return false;
    this.#reserve(bytes);
    const view = this.view;
    let p = this.length;
    view.setUint32(p, index.key.length, true);
    view.setUint32(p + 4, count, true);
    this.bytes.set(index.key, p + 8);
    p += 8 + index.key.length;
    for (let i = first; i < first + count; i++) {
      const entry = entries[i]!;
      const value = entry.value;
      setU64(view, p, entry.main);
      view.setUint32(p + 8, entry.sub, true);
      view.setUint32(p + 12, value === null ? 1 : 0, true);
      setU64(view, p + 16, entry.createRevision);
      setU64(view, p + 24, entry.version);
      view.setBigUint64(p + 32, BigInt.asUintN(64, entry.lease), true);
      view.setUint32(p + 40, value?.length ?? 0, true);
      if (value !== null) this.bytes.set(value, p + ENTRY_HEAD_BYTES);
      p += ENTRY_HEAD_BYTES + (value?.length ?? 0);
    }
    this.length = p;
    this.keys++;
    this.entries += count;
    return true;
  }

  #reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
}

/** Yields to the event loop (a macrotask), so writes run between pages. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Hash of the state at `revision` (see the module comment), computed in
 * bounded pages. Synchronous: use for tests and small stores; snapshots
 * compute the same value while writing.
 */
export function hashState(
  mvcc: MvccStore,
  revision: number,
  compactRevision: number = mvcc.compactRevision,
): number {
  const blocks = new KeyBlockWriter();
  let crc = 0;
  let from: Uint8Array = new Uint8Array(0);
  let inclusive = true;
  for (;;) {
    const page = mvcc.keyPage(from, inclusive, SNAPSHOT_PAGE_KEYS);
    blocks.reset();
    for (const index of page) blocks.add(index, revision, compactRevision);
    crc = crc32c(blocks.bytes, crc, 0, blocks.length);
    if (page.length < SNAPSHOT_PAGE_KEYS) return crc;
    from = page[page.length - 1]!.key;
    inclusive = false;
  }
}

/** Options of `writeSnapshot`. */
export interface WriteSnapshotOptions {
  /** fdatasync the file and its directory. */
  sync: boolean;
  /** Frame encoder. */
  encoder?: WalEncoder;
  /** Keys per page (default `SNAPSHOT_WRITE_PAGE_KEYS`). */
  pageKeys?: number;
  /** Called between pages; default yields a macrotask so writes proceed. */
  pause?: () => Promise<void>;
  /** Called before the rename into place (e.g. waits for the WAL marker). */
  beforeRename?: () => Promise<void>;
  /** The live leases at `revision` (a copy: it is read after pauses). */
  leases?: ReadonlyMap<bigint, SnapshotLease>;
}

/**
 * Writes the state at `revision` to `path` (via `path.tmp`). The caller must
 * keep compaction from removing entries at or below `revision` until this
 * resolves (the store holds incremental compaction meanwhile).
 */
export async function writeSnapshot(
  fs: StorageFs,
  path: string,
  mvcc: MvccStore,
  revision: number,
  compactRevision: number,
  options: WriteSnapshotOptions,
): Promise<SnapshotStatus> {
  const encoder = options.encoder ?? new TsWalEncoder();
  const pageKeys = options.pageKeys ?? SNAPSHOT_WRITE_PAGE_KEYS;
  const pause = options.pause ?? yieldToEventLoop;
  const tmp = `${path}.tmp`;
  await fs.remove(tmp);
  const file = await fs.open(tmp, { createNew: true });
  let offset = 0;
  let crc = 0;
  const emit = async (type: number, payload: Uint8Array) => {
    const framed = encoder.encode([{ kind: "opaque", type, payload }], crc);
    crc = framed.crc;
    await file.writeAt(offset, framed.bytes);
    offset += framed.bytes.length;
  };
  let hash = 0;
  const blocks = new KeyBlockWriter();
  try {
    const header = new Uint8Array(24);
    const hv = new DataView(header.buffer);
    hv.setUint32(0, SNAPSHOT_MAGIC, true);
    hv.setUint32(4, SNAPSHOT_FORMAT_VERSION, true);
    setU64(hv, 8, revision);
    setI64(hv, 16, compactRevision);
    await emit(TYPE_HEADER, header);
    let from: Uint8Array = new Uint8Array(0);
    let inclusive = true;
    for (let last = false; !last;) {
      // Encode pages synchronously (the indexes are live objects) for one
      // time-bounded step, then write them and yield so that the write path
      // runs between steps.
      const started = performance.now();
      blocks.reset();
      for (;;) {
        const page = mvcc.keyPage(from, inclusive, pageKeys);
        for (const index of page) blocks.add(index, revision, compactRevision);
        if (page.length < pageKeys) {
          last = true;
          break;
        }
        from = page[page.length - 1]!.key;
        inclusive = false;
        if (
          blocks.length >= SNAPSHOT_FRAME_BYTES ||
          performance.now() - started >= SNAPSHOT_STEP_MS
        ) break;
      }
      if (blocks.length > 0) {
        const payload = blocks.bytes.subarray(0, blocks.length);
        hash = crc32c(payload, hash);
        await emit(TYPE_KEYS, payload);
      }
      if (!last) await pause();
    }
    const leases = [...(options.leases ?? [])];
    for (let i = 0; i < leases.length; i += LEASES_PER_FRAME) {
      const chunk = leases.slice(i, i + LEASES_PER_FRAME);
      const payload = new Uint8Array(chunk.length * LEASE_BYTES);
      const lv = new DataView(payload.buffer);
      chunk.forEach(([id, lease], j) => {
        lv.setBigUint64(j * LEASE_BYTES, BigInt.asUintN(64, id), true);
        setU64(lv, j * LEASE_BYTES + 8, lease.ttlSeconds);
        setU64(lv, j * LEASE_BYTES + 16, lease.deadlineMs);
      });
      await emit(TYPE_LEASES, payload);
    }
    const footer = new Uint8Array(24);
    const fv = new DataView(footer.buffer);
    setU64(fv, 0, blocks.keys);
    setU64(fv, 8, blocks.entries);
    fv.setUint32(16, hash, true);
    await emit(TYPE_FOOTER, footer);
    if (options.sync) await file.syncData();
  } catch (error) {
    // A failed (or cancelled) snapshot leaves no temp file behind.
    file.close();
    await fs.remove(tmp).catch(() => {});
    throw error;
  } finally {
    file.close();
  }
  try {
    await options.beforeRename?.();
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.remove(tmp).catch(() => {});
    throw error;
  }
  if (options.sync) await fs.syncDir(dirname(path));
  return {
    hash,
    revision,
    compactRevision,
    totalKeys: blocks.keys,
    totalEntries: blocks.entries,
    sizeBytes: offset,
  };
}

/**
 * Reads and verifies a whole snapshot file (`snapshot status`, `snapshot
 * restore`, an existing snapshot at the journal's revision), keeping
 * nothing: `streamSnapshot` with no one to take the entries.
 * @throws SnapshotCorruptionError when a frame, the footer or the hash does
 *   not check.
 */
export function verifySnapshot(
  fs: StorageFs,
  path: string,
): Promise<SnapshotStatus> {
  return streamSnapshot(fs, path, discardEntries, () => {});
}

/** Takes restored entries and keeps nothing. */
const discardEntries: RecordedEntrySink = { restoreRecorded() {} };

/**
 * Passes every entry of the key blocks in `bytes[start, end)` to `entries`,
 * counting keys and entries into `found`.
 */
function restoreKeyBlocks(
  bytes: Uint8Array,
  view: DataView,
  start: number,
  end: number,
  entries: RecordedEntrySink,
  found: { keys: number; entries: number },
): void {
  const entry = newRecordedEntry();
  entry.bytes = bytes;
  let p = start;
  while (p < end) {
    const keyLength = view.getUint32(p, true);
    const count = view.getUint32(p + 4, true);
    entry.keyStart = p + 8;
    entry.keyLength = keyLength;
    p += 8 + keyLength;
    for (let i = 0; i < count; i++) {
      const tombstone = (view.getUint32(p + 12, true) & 1) === 1;
      const valueLength = view.getUint32(p + 40, true);
      const leaseLo = view.getUint32(p + 32, true);
      const leaseHi = view.getUint32(p + 36, true);
      entry.valueStart = p + ENTRY_HEAD_BYTES;
      entry.valueLength = tombstone ? -1 : valueLength;
      entry.main = getU64(view, p);
      entry.sub = view.getUint32(p + 8, true);
      entry.createRevision = getU64(view, p + 16);
      entry.version = getU64(view, p + 24);
      entry.lease = leaseLo === 0 && leaseHi === 0
        ? 0n
        : BigInt.asIntN(64, view.getBigUint64(p + 32, true));
      entries.restoreRecorded(entry);
      p += ENTRY_HEAD_BYTES + valueLength;
      found.entries++;
    }
    found.keys++;
  }
}

/** Throws unless the footer's counts are what was found. */
function checkCounts(
  path: string,
  offset: number,
  totalKeys: number,
  totalEntries: number,
  found: { keys: number; entries: number },
): void {
  if (found.keys !== totalKeys || found.entries !== totalEntries) {
    throw new SnapshotCorruptionError(
      path,
      offset,
      `footer counts ${totalKeys} keys / ${totalEntries} entries, found ${found.keys} / ${found.entries}`,
    );
  }
}

/**
 * Reads a snapshot as a stream, through a reused window (memory: one
 * window, not the file), checking every frame as it comes and passing
 * entries and leases on at once; the header, the footer's counts and the
 * hash are checked as their frames arrive. Entries are passed before the
 * whole file is verified: on a
 * `SnapshotCorruptionError` the caller must discard what it was given.
 * `afterFrame` is called after each frame (the replay worker sends batches
 * there).
 */
export async function streamSnapshot(
  fs: StorageFs,
  path: string,
  entries: RecordedEntrySink,
  onLease: (id: bigint, lease: SnapshotLease) => void,
  afterFrame: () => void = () => {},
): Promise<SnapshotStatus> {
  const file = await fs.open(path);
  let window: FileWindow | undefined;
  try {
    const size = await file.size();
    window = new FileWindow(file, size);
    let offset = 0;
    let crc = 0;
    let hash = 0;
    let head: { revision: number; compactRevision: number } | undefined;
    const found = { keys: 0, entries: 0 };
    for (;;) {
      if (offset + FRAME_HEADER_BYTES > size) {
        throw new SnapshotCorruptionError(path, offset, "no footer");
      }
      await window.ensure(offset, FRAME_HEADER_BYTES);
      const length = window.view.getUint32(offset - window.base, true);
      if (offset + FRAME_HEADER_BYTES + length > size) {
        throw new SnapshotCorruptionError(
          path,
          offset,
          `frame of ${length} payload bytes runs past the end`,
        );
      }
      await window.ensure(
        offset,
        Math.min(align8(FRAME_HEADER_BYTES + length), size - offset),
      );
      const at = offset - window.base;
      const frame = readFrame(window.bytes, window.view, at, window.end, crc);
      if (frame.status === "end") {
        throw new SnapshotCorruptionError(path, offset, "no footer");
      }
      if (frame.status === "bad") {
        throw new SnapshotCorruptionError(path, offset, frame.reason);
      }
      const { bytes, view } = window;
      const start = frame.payloadStart;
      const end = start + frame.payloadLength;
      if (head === undefined) {
        if (frame.type !== TYPE_HEADER) {
          throw new SnapshotCorruptionError(path, 0, "no header");
        }
        head = checkHeader(path, view, start, frame.payloadLength);
      } else if (frame.type === TYPE_KEYS) {
        hash = crc32c(bytes, hash, start, end);
        restoreKeyBlocks(bytes, view, start, end, entries, found);
      } else if (frame.type === TYPE_LEASES) {
        forEachLease(view, start, end, onLease);
      } else if (frame.type === TYPE_FOOTER) {
        const totalKeys = getU64(view, start);
        const totalEntries = getU64(view, start + 8);
        if (view.getUint32(start + 16, true) !== hash) {
          throw new SnapshotCorruptionError(path, offset, "hash mismatch");
        }
        checkCounts(path, offset, totalKeys, totalEntries, found);
        return {
          hash,
          revision: head.revision,
          compactRevision: head.compactRevision,
          totalKeys,
          totalEntries,
          sizeBytes: size,
        };
      }
      afterFrame();
      crc = frame.crc;
      offset += frame.next - at;
    }
  } finally {
    window?.release();
    file.close();
  }
}

/** Checks a header frame's magic and version; returns its revisions. */
function checkHeader(
  path: string,
  view: DataView,
  start: number,
  length: number,
): { revision: number; compactRevision: number } {
  if (length < 24 || view.getUint32(start, true) !== SNAPSHOT_MAGIC) {
    throw new SnapshotCorruptionError(path, 0, "bad magic");
  }
  const version = view.getUint32(start + 4, true);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotCorruptionError(
      path,
      0,
      `format version ${version}, this revkv reads ${SNAPSHOT_FORMAT_VERSION}`,
    );
  }
  return {
    revision: getU64(view, start + 8),
    compactRevision: getI64(view, start + 16),
  };
}

/** Passes every lease of a leases frame's payload `[start, end)`. */
function forEachLease(
  view: DataView,
  start: number,
  end: number,
  onLease: (id: bigint, lease: SnapshotLease) => void,
): void {
  for (let p = start; p + LEASE_BYTES <= end; p += LEASE_BYTES) {
    onLease(BigInt.asIntN(64, view.getBigUint64(p, true)), {
      ttlSeconds: getU64(view, p + 8),
      deadlineMs: getU64(view, p + 16),
    });
  }
}

function setU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, n % U32, true);
  view.setUint32(at + 4, Math.floor(n / U32), true);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * U32;
}

function setI64(view: DataView, at: number, n: number): void {
  view.setBigInt64(at, BigInt(n), true);
}

function getI64(view: DataView, at: number): number {
  return Number(view.getBigInt64(at, true));
}

/** The directory part of a path. */
export function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}
