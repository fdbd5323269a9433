/**
 * The key index: for one key, every revision still kept of it, grouped in
 * generations that end with a tombstone — etcd's `keyIndex`, with the value
 * of each revision kept beside it (so the index is also the revision store).
 *
 * A worked example. The key "foo" is put at revisions 2 and 3, deleted at 5,
 * put again at 7 and 8:
 *
 * ```
 *   entries: put@2 v1 | put@3 v2 | tomb@5 | put@7 v1 | put@8 v2
 *   generations:  {created 2: 2, 3, tomb 5}  {created 7: 7, 8}  (open)
 * ```
 *
 * A read at revision R takes the newest entry with main revision <= R: at 4
 * that is put@3 (version 2, created 2); at 5 or 6 it is the tombstone, so the
 * key does not exist; at 9 it is put@8 (version 2, created 7).
 *
 * Compaction at revision C keeps every entry newer than C and, of the entries
 * at or below C, only the newest, and only if it is a put (a read at C needs
 * it; a tombstone at or below C answers nothing a kept read could ask).
 * Compacting the example at 6 leaves `put@7 | put@8`; at 3 it leaves
 * `put@3 | tomb@5 | put@7 | put@8`. A key left with no entries is removed
 * from the tree.
 *
 * @module
 */

/** One revision of a key: a put with its value, or a tombstone. */
export interface RevisionEntry {
  /** Main revision (the write transaction's revision). */
  readonly main: number;
  /** Sub revision (the operation's index inside the write transaction). */
  readonly sub: number;
  /** Main revision of the put that created this generation (0 for a tombstone). */
  readonly createRevision: number;
  /** Puts since the generation was created, this one included (0 for a tombstone). */
  readonly version: number;
  /** The value, or `null` for a tombstone. */
  readonly value: Uint8Array | null;
  /** Attached lease ID (0n for none). */
  readonly lease: bigint;
}

/** All kept revisions of one key, oldest first. */
export class KeyIndex {
  /** Entries ordered by (main, sub), ascending. */
  entries: RevisionEntry[] = [];

  /** @param key the key bytes (owned by this index; never mutated). */
  constructor(readonly key: Uint8Array) {}

  /** The newest entry, or undefined when there is none. */
  get last(): RevisionEntry | undefined {
    return this.entries[this.entries.length - 1];
  }

  /** Whether the key exists at the newest revision (its last entry is a put). */
  get isLive(): boolean {
    const last = this.last;
    return last !== undefined && last.value !== null;
  }

  /**
   * Appends a put at (main, sub); version and create revision follow from the
   * previous entry (a put after a tombstone starts a new generation).
   */
  put(
    main: number,
    sub: number,
    value: Uint8Array,
    lease: bigint,
  ): RevisionEntry {
    const last = this.last;
    this.assertAfter(last, main, sub);
    const continues = last !== undefined && last.value !== null;
    const entry: RevisionEntry = {
      main,
      sub,
      createRevision: continues ? last.createRevision : main,
      version: continues ? last.version + 1 : 1,
      value,
      lease,
    };
    this.#append(entry);
    return entry;
  }

  /** Appends a tombstone at (main, sub); the key must be live. */
  tombstone(main: number, sub: number): RevisionEntry {
    const last = this.last;
    this.assertAfter(last, main, sub);
    if (last === undefined || last.value === null) {
      throw new Error(
        `mvcc: tombstone of a key that does not exist at ${main}.${sub}`,
      );
    }
    const entry: RevisionEntry = {
      main,
      sub,
      createRevision: 0,
      version: 0,
      value: null,
      lease: 0n,
    };
    this.#append(entry);
    return entry;
  }

  /**
   * Appends an entry restored from a snapshot or the WAL as it was, checking
   * only the ordering.
   */
  restore(entry: RevisionEntry): void {
    this.assertAfter(this.last, entry.main, entry.sub);
    this.#append(entry);
  }

  #append(entry: RevisionEntry): void {
    // Most keys hold one entry: an array literal of one takes 1 slot, where
    // a push onto [] reserves 17 (~130 bytes per key at a million keys).
    if (this.entries.length === 0) this.entries = [entry];
    else this.entries.push(entry);
  }

  /**
   * The put visible at revision `atRev`, or undefined when the key did not
   * exist then (never put, or deleted).
   */
  get(atRev: number): RevisionEntry | undefined {
    const entries = this.entries;
    // Reads are mostly at or near the newest revision: scan from the end,
    // then fall back to a binary search for deep histories.
    let index = entries.length - 1;
    if (index >= 8 && entries[index]!.main > atRev) {
      let low = 0;
      let high = index;
      while (low < high) {
        const mid = (low + high + 1) >>> 1;
        if (entries[mid]!.main <= atRev) low = mid;
        else high = mid - 1;
      }
      index = low;
    } else {
      while (index >= 0 && entries[index]!.main > atRev) index--;
    }
    if (index < 0) return undefined;
    const entry = entries[index]!;
    if (entry.main > atRev || entry.value === null) return undefined;
    return entry;
  }

  /**
   * Drops what compaction at `atRev` makes unreachable (see the module
   * comment), calling `onRemoved` for each dropped entry first. Returns the
   * number of entries removed; the key is empty afterwards when
   * `entries.length === 0`. The array is cut in place: a fresh array per
   * key made every compaction step's survivors the young generation's
   * (GC pauses of 40-60 ms at a million keys).
   */
  compact(
    atRev: number,
    onRemoved?: (entry: RevisionEntry) => void,
  ): number {
    const entries = this.entries;
    let newestAtOrBelow = -1;
    for (let i = 0; i < entries.length && entries[i]!.main <= atRev; i++) {
      newestAtOrBelow = i;
    }
    if (newestAtOrBelow < 0) return 0;
    const keepFrom = entries[newestAtOrBelow]!.value === null
      ? newestAtOrBelow + 1
      : newestAtOrBelow;
    if (keepFrom === 0) return 0;
    if (onRemoved !== undefined) {
      for (let i = 0; i < keepFrom; i++) onRemoved(entries[i]!);
    }
    entries.splice(0, keepFrom);
    return keepFrom;
  }

  private assertAfter(
    last: RevisionEntry | undefined,
    main: number,
    sub: number,
  ): void {
    if (
      last !== undefined &&
      (main < last.main || (main === last.main && sub <= last.sub))
    ) {
      throw new Error(
        `mvcc: revision ${main}.${sub} is not after ${last.main}.${last.sub} for one key`,
      );
    }
  }
}
