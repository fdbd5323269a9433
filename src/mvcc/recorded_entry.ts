/**
 * One recorded revision of a key, as recovery reads it from a WAL write
 * record or a snapshot's key block: where its key and value lie in a byte
 * buffer, and the revision's numbers.
 *
 * Recovery restores millions of entries, so it builds no object per entry
 * (see `cold_entries.ts` for what that costs): each reader owns one
 * `RecordedEntry`, refills it for every entry and hands it to a sink
 * (`MvccStore.restoreRecorded`, the replay worker's batch writer). A sink
 * reads the fields during the call and never keeps the object; the bytes
 * it needs beyond the call it copies, unless the buffer was adopted
 * (`adoptedChunk`).
 *
 * @module
 */

/** One recorded entry, positions into `bytes` (see the module comment). */
export interface RecordedEntry {
  /** The buffer holding the key and the value. */
  bytes: Uint8Array;
  /** The key is `bytes[keyStart, keyStart + keyLength)`. */
  keyStart: number;
  /** Length of the key in bytes. */
  keyLength: number;
  /** The value is `bytes[valueStart, valueStart + valueLength)`. */
  valueStart: number;
  /** Length of the value in bytes; negative for a tombstone. */
  valueLength: number;
  /** Main revision of the entry. */
  main: number;
  /** Sub revision (position within its revision's txn). */
  sub: number;
  /** The key's create revision at this entry. */
  createRevision: number;
  /** The key's version at this entry. */
  version: number;
  /** The entry's lease (0n = none). */
  lease: bigint;
  /**
   * The restore chunk `bytes` is, when the engine adopted it
   * (`MvccStore.adoptRestoreChunk`), so cold keys point into it instead of
   * copying; -1 otherwise.
   */
  adoptedChunk: number;
}

/** A fresh entry for a reader to refill (see the module comment). */
export function newRecordedEntry(): RecordedEntry {
  return {
    bytes: new Uint8Array(0),
    keyStart: 0,
    keyLength: 0,
    valueStart: 0,
    valueLength: 0,
    main: 0,
    sub: 0,
    createRevision: 0,
    version: 0,
    lease: 0n,
    adoptedChunk: -1,
  };
}
