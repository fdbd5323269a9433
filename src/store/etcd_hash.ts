/**
 * etcd's HashKV, computed over revkv's engine so that the same history
 * hashes to the same number on revkv and on a real etcd 3.4.
 *
 * etcd 3.4 (`mvcc/kvstore.go`, `HashByRev(rev)`) walks its bolt "key"
 * bucket — one row per kept revision, in revision order — and feeds a
 * CRC32C (Castagnoli):
 *
 * 1. the bucket name, the 3 bytes `key`;
 * 2. for each row with main revision <= `rev`: the row's key, the revision
 *    as 8 bytes big-endian main, `_`, 8 bytes big-endian sub, then `t` for
 *    a tombstone (18 bytes) — and the row's value, the marshalled
 *    `mvccpb.KeyValue` (fields 1 key, 2 create_revision, 3 mod_revision,
 *    4 version, 5 value, 6 lease, zero values omitted; a tombstone stores
 *    only the key).
 *
 * Rows at or below the compact revision C are what the compaction kept: of
 * each key, its newest revision at or below C, if that is a put. Among
 * those, HashByRev hashes only the ones also in `kvindex.Keep(rev)` — the
 * newest revision at or below `rev` of each key that exists at `rev` —
 * unless that set is empty (no key exists at `rev`), when it hashes every
 * kept row. So a key compacted at C and changed after C contributes only
 * its later rows. The rule is applied here from the revisions, so the
 * result does not depend on how far revkv's incremental compaction got
 * (etcd's filter makes its own result independent of it too, except in the
 * empty case, where etcd hashes whatever its physical compaction has left).
 *
 * Rows are visited in revision order, which is not key order: the included
 * entries are collected, sorted by (main, sub) and hashed. This is linear
 * in the kept history, as etcd's walk is; HashKV is a maintenance call.
 *
 * @module
 */

import type { KeyIndex, RevisionEntry } from "../mvcc/key_index.ts";
import type { MvccStore } from "../mvcc/kv_store.ts";
import { crc32c } from "../storage/crc32c.ts";

/** Keys per page while collecting. */
const HASH_PAGE_KEYS = 2048;
/** etcd's `keyBucketName`. */
const KEY_BUCKET_NAME = new TextEncoder().encode("key");
/** etcd's revision key: 8 bytes main, `_`, 8 bytes sub (`revBytesLen`). */
const REV_BYTES = 17;
/** 2^32, to split a safe integer into 32-bit halves. */
const U32 = 0x1_0000_0000;
/** etcd's `markTombstone`. */
const TOMBSTONE_MARK = 0x74; // 't'

/**
 * etcd 3.4's `HashByRev` of the history in `mvcc` at `revision` (see the
 * module comment). The caller checks `revision` against the compact and
 * current revisions, as etcd does.
 *
 * @param mvcc the engine.
 * @param revision the revision to hash at (the current one for 0 in etcd).
 * @param compactRevision the compact revision (-1 when never compacted).
 * @returns the unsigned 32-bit hash.
 */
export function etcdHashByRev(
  mvcc: MvccStore,
  revision: number,
  compactRevision: number,
): number {
  const rows: Row[] = [];
  // Rows at or below the compaction that a compaction keeps, and whether
  // each is also in Keep(revision).
  const compacted: { row: Row; kept: boolean }[] = [];
  let keepEmpty = true;
  let from: Uint8Array = new Uint8Array(0);
  let inclusive = true;
  for (;;) {
    const page = mvcc.keyPage(from, inclusive, HASH_PAGE_KEYS);
    for (const index of page) {
      const entries = index.entries;
      // Newest entry at or below `revision`: in Keep(revision) if a put.
      let newest = -1;
      while (
        newest + 1 < entries.length && entries[newest + 1]!.main <= revision
      ) newest++;
      const keep = newest >= 0 && entries[newest]!.value !== null;
      if (keep) keepEmpty = false;
      // Newest entry at or below the compaction: kept by it if a put.
      let base = -1;
      while (
        base + 1 < entries.length && entries[base + 1]!.main <= compactRevision
      ) base++;
      if (base >= 0 && entries[base]!.value !== null && base <= newest) {
        compacted.push({
          row: { index, entry: entries[base]! },
          kept: keep && base === newest,
        });
      }
      for (let i = base + 1; i <= newest; i++) {
        rows.push({ index, entry: entries[i]! });
      }
    }
    if (page.length < HASH_PAGE_KEYS) break;
    from = page[page.length - 1]!.key;
    inclusive = false;
  }
  for (const { row, kept } of compacted) {
    if (keepEmpty || kept) rows.push(row);
  }
  rows.sort((a, b) => a.entry.main - b.entry.main || a.entry.sub - b.entry.sub);
  let crc = crc32c(KEY_BUCKET_NAME);
  const rowKey = new Uint8Array(REV_BYTES + 1);
  const view = new DataView(rowKey.buffer);
  rowKey[8] = 0x5f; // '_'
  const value = new KeyValueWriter();
  for (const { index, entry } of rows) {
    // Revisions are safe integers: two big-endian 32-bit halves each.
    view.setUint32(0, Math.floor(entry.main / U32));
    view.setUint32(4, entry.main >>> 0);
    view.setUint32(9, Math.floor(entry.sub / U32));
    view.setUint32(13, entry.sub >>> 0);
    const tombstone = entry.value === null;
    rowKey[REV_BYTES] = TOMBSTONE_MARK;
    crc = crc32c(rowKey, crc, 0, tombstone ? REV_BYTES + 1 : REV_BYTES);
    value.encode(index.key, entry);
    crc = crc32c(value.bytes, crc, 0, value.length);
  }
  return crc;
}

interface Row {
  index: KeyIndex;
  entry: RevisionEntry;
}

/** Marshals `mvccpb.KeyValue` as gogo-protobuf does, into a reused buffer. */
class KeyValueWriter {
  bytes = new Uint8Array(1024);
  length = 0;

  /** Encodes the row of `entry` of `key` (a tombstone: the key only). */
  encode(key: Uint8Array, entry: RevisionEntry): void {
    const value = entry.value;
    this.length = 0;
    this.#reserve(key.length + (value?.length ?? 0) + 64);
    this.#bytesField(1, key);
    if (value === null) return;
    this.#numberField(2, entry.createRevision);
    this.#numberField(3, entry.main);
    this.#numberField(4, entry.version);
    if (value.length > 0) this.#bytesField(5, value);
    if (entry.lease !== 0n) {
      this.bytes[this.length++] = 6 << 3;
      // int64: a negative ID is its two's complement (10 bytes).
      let v = BigInt.asUintN(64, entry.lease);
      while (v >= 0x80n) {
        this.bytes[this.length++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      this.bytes[this.length++] = Number(v);
    }
  }

  #bytesField(field: number, data: Uint8Array): void {
    this.bytes[this.length++] = (field << 3) | 2;
    this.#varint(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  /** A non-negative safe-integer field (revisions, versions). */
  #numberField(field: number, n: number): void {
    if (n === 0) return;
    this.bytes[this.length++] = field << 3;
    this.#varint(n);
  }

  #varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.bytes[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.bytes[this.length++] = v;
  }

  #reserve(size: number): void {
    if (size <= this.bytes.length) return;
    this.bytes = new Uint8Array(Math.max(size, this.bytes.length * 2));
  }
}
