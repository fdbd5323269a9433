/**
 * The MVCC engine: the ordered tree of keys (wasm B+tree from `src/wasm/`),
 * one `KeyIndex` per key holding its revisions and values, the current and
 * compacted revisions, reads at any kept revision, write transactions that
 * take one main revision each, and incremental compaction.
 *
 * Everything here is synchronous: a read at revision R is a pure function of
 * the state, and a write transaction runs start to end without yielding, so
 * writes are serial by construction. Durability, leases, watch and the public
 * API are layered on top (see `src/store.ts`).
 *
 * @module
 */

import type { RecordedEntry } from "./recorded_entry.ts";
import { BTreeIndex } from "../wasm/btree.ts";
import { KeyIndex, type RevisionEntry } from "./key_index.ts";
import { ByteSlab } from "./byte_slab.ts";
import { ColdEntries } from "./cold_entries.ts";
import { HandleTable } from "./handle_table.ts";
import { CompactedError, FutureRevisionError } from "./errors.ts";

/** How many handles one crossing of the wasm boundary returns during a scan. */
export const SCAN_PAGE_KEYS = 512;
/** How many keys one incremental compaction step visits (bounds its pause). */
export const COMPACT_STEP_KEYS = 4096;
/**
 * How long the store lets one compaction step run, in ms, before it yields:
 * with steps bounded by key count alone, a writer waited up to ~100 ms
 * during compaction + defrag at a million keys on a loaded 2-core VM, past
 * the 50 ms of issue 3 (a key's cost varies with its history and the
 * machine's load). Checked between pages of `COMPACT_PAGE_KEYS`.
 */
export const COMPACT_STEP_MS = 4;
/** Keys per tree page inside a compaction step (the granularity of the time check). */
const COMPACT_PAGE_KEYS = 128;

/**
 * Which keys a read or delete selects: one key (`end === undefined`),
 * `[start, end)` byte-wise, or every key from `start` on (`end === null`).
 */
export interface KeyBounds {
  /** First key (inclusive). */
  start: Uint8Array;
  /** Exclusive end; `null` means unbounded; `undefined` means `start` only. */
  end: Uint8Array | null | undefined;
}

/** One key's revision as changed by a write: a put or a tombstone. */
export interface Change {
  /** The key. */
  key: Uint8Array;
  /** The entry written (its `value` is null for a delete). */
  entry: RevisionEntry;
  /** The key's previous visible entry, if any (for `prev_kv`). */
  prev: RevisionEntry | undefined;
}

/** A key and its entry visible at some revision. */
export interface VisibleKey {
  /** The key's index (its `key` is the key bytes). */
  index: KeyIndex;
  /** The put visible at the read revision. */
  entry: RevisionEntry;
}

/** The MVCC state of one store. */
export class MvccStore {
  /** The newest revision applied (a fresh store is at 1, as etcd). */
  currentRevision = 1;
  /** The revision compaction was last asked for; -1 when never (as etcd). */
  compactRevision = -1;

  readonly #tree = new BTreeIndex();
  /** Key index by tree handle; undefined for a cold key or a free handle. */
  readonly #indexes = new HandleTable<KeyIndex>();
  /** Restored single-put keys not yet turned into `KeyIndex`es. */
  readonly #cold = new ColdEntries();
  readonly #freeHandles: number[] = [];
  /** Copies of the keys the tree holds (see byte_slab.ts). */
  readonly #keySlab = new ByteSlab();
  /** Copies of restored values of keys that are not cold. */
  readonly #restoreSlab = new ByteSlab();
  /** The index `restoreRecorded` used last (a snapshot restores one key's
   * entries in a row). */
  #restoring: KeyIndex | undefined;
  #writing: WriteTxn | undefined;
  /** Keys still to visit by the running compaction, or undefined when idle. */
  #compactCursor:
    | { atRev: number; from: Uint8Array; inclusive: boolean }
    | undefined;
  #valueBytes = 0;
  #keyBytes = 0;
  #entryCount = 0;

  /** Number of keys in the tree (including keys kept only for history). */
  get keyCount(): number {
    return this.#tree.size;
  }

  /** Whether a compaction is still reclaiming old revisions. */
  get compacting(): boolean {
    return this.#compactCursor !== undefined;
  }

  /** Approximate bytes held: keys, values and per-entry overhead. */
  get sizeBytes(): number {
    return this.#keyBytes + this.#valueBytes + this.#entryCount * 64 +
      this.#tree.size * 48;
  }

  /** The index of `key`, if the tree holds it. */
  keyIndex(key: Uint8Array): KeyIndex | undefined {
    const handle = this.#tree.get(key);
    return handle < 0 ? undefined : this.#owned(handle);
  }

  /** Number of restored keys still held as columns (see cold_entries.ts). */
  get coldKeyCount(): number {
    return this.#cold.count;
  }

  /** Bytes of chunks the cold keys hold, and how many are their own bytes. */
  coldChunkBytes(): { heldBytes: number; liveBytes: number } {
    return this.#cold.chunkBytes();
  }

  /**
   * Checks that `atRev` can be read (not compacted, not in the future, given
   * that reads see at most `readRev`) and returns the revision to read at.
   */
  resolveReadRevision(atRev: number, readRev: number): number {
    if (atRev > readRev) throw new FutureRevisionError();
    const rev = atRev <= 0 ? readRev : atRev;
    if (rev < this.compactRevision) {
      throw new CompactedError(this.compactRevision);
    }
    return rev;
  }

  /**
   * Calls `visit` for each key in `bounds` that exists at `atRev`, in key
   * order (or reverse key order), paging through the tree so that nothing
   * but one page of handles is held at a time. `visit` returns false to stop.
   * With `forWrite`, every index visited is the key's own (see
   * `forEachKeyIndex`).
   */
  forEachVisible(
    bounds: KeyBounds,
    atRev: number,
    visit: (key: VisibleKey) => boolean | void,
    reverse = false,
    forWrite = false,
  ): void {
    this.forEachKeyIndex(
      bounds,
      (index) => {
        const entry = index.get(atRev);
        if (entry) return visit({ index, entry });
      },
      reverse,
      forWrite,
    );
  }

  /**
   * `forEachVisible` for readers that only look: `visit` gets the key bytes
   * and the visible entry (engine-owned: read, do not keep or change them;
   * a cold key's entry is a throw-away copy over its chunk), without a
   * `VisibleKey` or, for a cold key, a `KeyIndex` per key. `visit` is called
   * for the first `maxVisits` visible keys; the scan goes on counting after
   * that (no objects then) unless `visit` returns false. Returns the number
   * of visible keys counted.
   */
  forEachVisibleEntry(
    bounds: KeyBounds,
    atRev: number,
    visit: (key: Uint8Array, entry: RevisionEntry) => boolean | void,
    reverse = false,
    maxVisits = Infinity,
  ): number {
    let count = 0;
    const indexes = this.#indexes;
    const cold = this.#cold;
    const visitHandle = (handle: number): boolean | void => {
      const index = indexes.get(handle);
      if (index !== undefined) {
        const entry = index.get(atRev);
        if (entry === undefined) return;
        if (count++ < maxVisits) return visit(index.key, entry);
        return;
      }
      // A cold key: one put, visible from its revision on.
      if (cold.main(handle) > atRev) return;
      if (count++ < maxVisits) {
        return visit(cold.key(handle), cold.entry(handle));
      }
    };
    if (bounds.end === undefined) {
      const handle = this.#tree.get(bounds.start);
      if (handle >= 0) visitHandle(handle);
      return count;
    }
    const end = bounds.end;
    if (end !== null && compareBytes(bounds.start, end) >= 0) return count;
    let from = bounds.start;
    let upper = end;
    let inclusive = true;
    let handles = new Array<number>(0);
    for (;;) {
      const page = reverse
        ? this.#tree.scanReverse(bounds.start, upper, false, SCAN_PAGE_KEYS)
        : this.#tree.scan(from, inclusive, end, SCAN_PAGE_KEYS);
      const n = page.length;
      if (n === 0) return count;
      // The page is a view into a buffer the next tree call reuses.
      if (handles.length !== n) handles = new Array<number>(n);
      for (let i = 0; i < n; i++) handles[i] = page[i]!;
      // The page's last key, to continue from (read before visiting).
      const lastHandle = handles[n - 1]!;
      const last = indexes.get(lastHandle)?.key ?? cold.key(lastHandle);
      for (let i = 0; i < n; i++) {
        if (visitHandle(handles[i]!) === false) return count;
      }
      if (n < SCAN_PAGE_KEYS) return count;
      if (reverse) upper = last;
      else from = last;
      inclusive = false;
    }
  }

  /**
   * Calls `visit` for every key in `bounds` the tree holds (deleted keys
   * included, as watch history needs them), in key order (or reverse key
   * order), a page of handles at a time; `visit` returns false to stop.
   *
   * A cold key (see cold_entries.ts) is visited as a throw-away copy of its
   * index, unless `forWrite`: then it becomes a `KeyIndex` of its own first,
   * which a caller that writes to the index or keeps its key needs.
   */
  forEachKeyIndex(
    bounds: KeyBounds,
    visit: (index: KeyIndex) => boolean | void,
    reverse = false,
    forWrite = false,
  ): void {
    if (bounds.end === undefined) {
      const handle = this.#tree.get(bounds.start);
      if (handle >= 0) visit(this.#visited(handle, forWrite));
      return;
    }
    const end = bounds.end;
    if (end !== null && compareBytes(bounds.start, end) >= 0) return;
    // Forward pages continue after their last key; reverse pages below it.
    let from = bounds.start;
    let upper = end;
    let inclusive = true;
    for (;;) {
      const page = reverse
        ? this.#tree.scanReverse(bounds.start, upper, false, SCAN_PAGE_KEYS)
        : this.#tree.scan(from, inclusive, end, SCAN_PAGE_KEYS);
      const count = page.length;
      if (count === 0) return;
      // The page is a view into a buffer the next call reuses: take the
      // indexes out before visiting (a visitor may call into the tree).
      const indexes = this.#takePage(page, forWrite);
      for (const index of indexes) if (visit(index) === false) return;
      if (count < SCAN_PAGE_KEYS) return;
      const last = indexes[indexes.length - 1]!.key;
      if (reverse) upper = last;
      else from = last;
      inclusive = false;
    }
  }

  /**
   * Starts the write transaction that will take revision
   * `currentRevision + 1`. Only one may be open at a time.
   */
  beginWrite(): WriteTxn {
    if (this.#writing !== undefined) {
      throw new Error("mvcc: a write transaction is already open");
    }
    const txn = new WriteTxn(this, this.currentRevision + 1);
    this.#writing = txn;
    return txn;
  }

  /**
   * Starts compaction at `atRev`: reads below it fail from now on; the old
   * revisions are reclaimed by `compactStep` calls.
   * @throws CompactedError when `atRev` is at or below the last compaction.
   * @throws FutureRevisionError when `atRev` is beyond the current revision.
   */
  compact(atRev: number): void {
    if (atRev <= this.compactRevision) {
      throw new CompactedError(this.compactRevision);
    }
    if (atRev > this.currentRevision) throw new FutureRevisionError();
    this.compactRevision = atRev;
    // A newer compaction subsumes a running one: restart from the first key.
    this.#compactCursor = { atRev, from: new Uint8Array(0), inclusive: true };
  }

  /**
   * Reclaims old revisions of at most `maxKeys` keys of the running
   * compaction, resuming after the last key the previous step visited, and
   * stops early once `budgetMs` have passed. Returns true when the
   * compaction is complete (or none is running).
   */
  compactStep(maxKeys = COMPACT_STEP_KEYS, budgetMs = Infinity): boolean {
    const cursor = this.#compactCursor;
    if (cursor === undefined) return true;
    const started = budgetMs === Infinity ? 0 : performance.now();
    let visited = 0;
    for (;;) {
      const want = Math.min(COMPACT_PAGE_KEYS, maxKeys - visited);
      const page = this.#tree.scan(cursor.from, cursor.inclusive, null, want);
      const count = page.length;
      // Copy the handles out: removing keys below calls into the tree.
      const handles = Array.from(page);
      // The page's last key, to resume after (read before it can be removed).
      let last: Uint8Array | undefined;
      for (const handle of handles) {
        const index = this.#indexes.get(handle);
        // A cold key holds one put: compaction keeps it.
        if (index === undefined) continue;
        if (handle === handles[count - 1]) last = index.key;
        index.compact(cursor.atRev, this.#forgetEntry);
        if (index.entries.length === 0) this.#removeKey(index, handle);
      }
      if (count > 0) {
        cursor.from = last ?? this.#cold.key(handles[count - 1]!);
        cursor.inclusive = false;
      }
      visited += count;
      if (count < want) {
        this.#compactCursor = undefined;
        return true;
      }
      if (visited >= maxKeys) return false;
      if (budgetMs !== Infinity && performance.now() - started >= budgetMs) {
        return false;
      }
    }
  }

  /** Runs the running compaction to its end, in bounded steps. */
  compactAll(): void {
    while (!this.compactStep()) { /* each step is bounded */ }
  }

  /**
   * Verifies the engine's invariants: tree ↔ key indexes, entry ordering,
   * versions and create revisions, revisions not beyond the current one.
   * Throws with the values involved on the first violation.
   */
  check(): void {
    this.#tree.check();
    let live = 0;
    let previousKey: Uint8Array | undefined;
    this.forEachKeyIndex({ start: new Uint8Array(0), end: null }, (index) => {
      // The tree's copy of the key must find this very index again, and the
      // engine's keys must come in strictly ascending byte order.
      const handle = this.#tree.get(index.key);
      const own = handle < 0 ? undefined : this.#indexes.get(handle);
      const same = own === undefined
        ? handle >= 0 && this.#cold.has(handle) &&
          compareBytes(this.#cold.key(handle), index.key) === 0
        : own === index;
      if (!same) {
        throw new Error(
          `mvcc check: key ${
            hex(index.key)
          } maps to handle ${handle}, not its index`,
        );
      }
      if (previousKey && compareBytes(previousKey, index.key) >= 0) {
        throw new Error(
          `mvcc check: key ${hex(index.key)} after ${hex(previousKey)}`,
        );
      }
      previousKey = index.key;
      if (index.entries.length === 0) {
        throw new Error(`mvcc check: key ${hex(index.key)} has no revisions`);
      }
      let prev: RevisionEntry | undefined;
      for (const entry of index.entries) {
        if (entry.main > this.currentRevision) {
          throw new Error(
            `mvcc check: key ${
              hex(index.key)
            } has revision ${entry.main} > current ${this.currentRevision}`,
          );
        }
        if (prev) {
          if (
            entry.main < prev.main ||
            (entry.main === prev.main && entry.sub <= prev.sub)
          ) {
            throw new Error(
              `mvcc check: key ${
                hex(index.key)
              } revisions out of order: ${entry.main}.${entry.sub} after ${prev.main}.${prev.sub}`,
            );
          }
          if (entry.value !== null && prev.value !== null) {
            if (entry.version !== prev.version + 1) {
              throw new Error(
                `mvcc check: key ${
                  hex(index.key)
                } version ${entry.version} after ${prev.version}`,
              );
            }
            if (entry.createRevision !== prev.createRevision) {
              throw new Error(
                `mvcc check: key ${
                  hex(index.key)
                } create revision changed inside a generation`,
              );
            }
          }
          if (entry.value !== null && prev.value === null) {
            if (entry.version !== 1 || entry.createRevision !== entry.main) {
              throw new Error(
                `mvcc check: key ${
                  hex(index.key)
                } generation at ${entry.main} does not start at version 1`,
              );
            }
          }
        }
        prev = entry;
      }
      live++;
    });
    let mapped = this.#cold.count;
    this.#indexes.forEach((_, handle) => {
      if (this.#cold.has(handle)) {
        throw new Error(`mvcc check: handle ${handle} is both cold and not`);
      }
      mapped++;
    });
    if (mapped !== live || live !== this.#tree.size) {
      throw new Error(
        `mvcc check: ${this.#tree.size} keys in the tree, ${live} visited, ${mapped} handles mapped`,
      );
    }
  }

  /**
   * Up to `maxKeys` key indexes in key order, starting at `from` (or after
   * it, when not `inclusive`): paged iteration that can pause between pages
   * (snapshots, hashing). The indexes are live: read them before yielding.
   */
  keyPage(from: Uint8Array, inclusive: boolean, maxKeys: number): KeyIndex[] {
    const out: KeyIndex[] = [];
    while (out.length < maxKeys) {
      const want = Math.min(SCAN_PAGE_KEYS, maxKeys - out.length);
      const page = this.#takePage(
        this.#tree.scan(from, inclusive, null, want),
        false,
      );
      for (const index of page) out.push(index);
      if (page.length < want) break;
      from = page[page.length - 1]!.key;
      inclusive = false;
    }
    return out;
  }

  /** Memory held by the wasm tree. */
  treeMemory(): { liveBytes: number; memoryBytes: number } {
    return this.#tree.memoryStats();
  }

  // --- recovery -----------------------------------------------------------

  /**
   * Restores one entry as it was recorded (snapshot load or WAL replay),
   * straight from the bytes it was read from: the key is
   * `bytes[keyStart, keyStart + keyLength)`, the value
   * `bytes[valueStart, valueStart + valueLength)`, or a tombstone when
   * `valueLength` is negative. The bytes are copied. Entries of one key must
   * come in revision order. A key that is new and starts with a put is kept
   * cold (see cold_entries.ts) until it is touched. With `adoptedChunk`
   * (from `adoptRestoreChunk`, `bytes` being that chunk), a cold key's
   * bytes are not copied.
   */
  restoreRecorded(entry: RecordedEntry): void {
    const { bytes, keyStart, keyLength, valueStart, valueLength } = entry;
    let index = this.#restoring;
    if (
      index === undefined ||
      !equalBytesAt(index.key, bytes, keyStart, keyLength)
    ) {
      const free = this.#freeHandles;
      const newHandle = free.length > 0
        ? free[free.length - 1]!
        : this.#indexes.length;
      const handle = this.#tree.getOrSet(
        bytes,
        newHandle,
        keyStart,
        keyStart + keyLength,
      );
      if (handle >= 0) {
        index = this.#owned(handle);
      } else {
        if (free.length > 0) free.pop();
        else this.#indexes.claim(newHandle);
        this.#keyBytes += keyLength;
        if (
          valueLength >= 0 && this.#cold.add(newHandle, entry)
        ) {
          this.#entryCount++;
          this.#valueBytes += valueLength;
          this.#restoring = undefined;
          return;
        }
        index = new KeyIndex(
          this.#keySlab.copy(bytes, keyStart, keyStart + keyLength),
        );
        this.#indexes.set(newHandle, index);
      }
      this.#restoring = index;
    }
    const revision: RevisionEntry = {
      main: entry.main,
      sub: entry.sub,
      createRevision: entry.createRevision,
      version: entry.version,
      value: valueLength < 0 ? null : this.#restoreSlab.copy(
        bytes,
        valueStart,
        valueStart + valueLength,
      ),
      lease: entry.lease,
    };
    index.restore(revision);
    this.noteEntry(revision);
  }

  /**
   * Takes over a chunk of restored key and value bytes that nobody writes
   * again; `restoreRecorded` calls that name its number point into it
   * instead of copying. Release it after the last such call.
   */
  adoptRestoreChunk(chunk: Uint8Array): number {
    return this.#cold.adoptChunk(chunk);
  }

  /** Ends `adoptRestoreChunk`: the chunk is dropped unless a cold key uses it. */
  releaseRestoreChunk(chunkNumber: number): void {
    this.#cold.releaseChunk(chunkNumber);
  }

  /**
   * Calls `visit` for every key whose put visible at the current revision
   * carries a lease, with the key's own index (lease attachments keep the
   * key bytes by identity). Not in key order.
   */
  forEachLeasedKey(
    visit: (index: KeyIndex, entry: RevisionEntry) => void,
  ): void {
    for (const handle of this.#cold.leasedHandles()) this.#owned(handle);
    this.#indexes.forEach((index) => {
      const entry = index.get(this.currentRevision);
      if (entry !== undefined && entry.lease !== 0n) visit(index, entry);
    });
  }

  /**
   * Sets the revisions after a restore. Compaction of the restored state, if
   * `compactRevision` is newer than what the entries reflect, runs in steps.
   */
  restoreRevisions(currentRevision: number, compactRevision: number): void {
    if (compactRevision > currentRevision) {
      throw new Error(
        `mvcc restore: compact revision ${compactRevision} > current ${currentRevision}`,
      );
    }
    this.#restoring = undefined;
    this.currentRevision = currentRevision;
    this.compactRevision = compactRevision;
    if (compactRevision >= 0) {
      this.#compactCursor = {
        atRev: compactRevision,
        from: new Uint8Array(0),
        inclusive: true,
      };
    }
  }

  // --- used by WriteTxn ---------------------------------------------------

  /**
   * @internal Returns the key's index, creating it (and its tree entry);
   * a new index keeps a copy of `key`, or `key` itself when `adopt`.
   */
  indexForWrite(key: Uint8Array, adopt = false): KeyIndex {
    // One call finds the key or inserts it under the next free handle.
    const free = this.#freeHandles;
    const newHandle = free.length > 0
      ? free[free.length - 1]!
      : this.#indexes.length;
    const handle = this.#tree.getOrSet(key, newHandle);
    if (handle >= 0) return this.#owned(handle);
    if (free.length > 0) free.pop();
    const index = new KeyIndex(adopt ? key : this.#keySlab.copy(key));
    this.#indexes.set(newHandle, index);
    this.#keyBytes += key.length;
    return index;
  }

  /** @internal Accounts for a new entry. */
  noteEntry(entry: RevisionEntry): void {
    this.#entryCount++;
    if (entry.value !== null) this.#valueBytes += entry.value.length;
  }

  /** @internal Removes the newest entry of a key (rollback of a write). */
  undoEntry(index: KeyIndex): void {
    const entry = index.entries.pop();
    if (entry) this.#forget(entry);
    if (index.entries.length === 0) {
      const handle = this.#tree.get(index.key);
      if (handle >= 0) this.#removeKey(index, handle);
    }
  }

  /** @internal Ends the open write transaction. */
  endWrite(txn: WriteTxn, changed: boolean): void {
    if (this.#writing !== txn) throw new Error("mvcc: not the open write");
    this.#writing = undefined;
    if (changed) this.currentRevision = txn.revision;
  }

  readonly #forgetEntry = (entry: RevisionEntry): void => this.#forget(entry);

  #forget(entry: RevisionEntry): void {
    this.#entryCount--;
    if (entry.value !== null) this.#valueBytes -= entry.value.length;
  }

  #removeKey(index: KeyIndex, handle: number): void {
    if (this.#restoring === index) this.#restoring = undefined;
    this.#tree.delete(index.key);
    this.#indexes.set(handle, undefined);
    this.#freeHandles.push(handle);
    this.#keyBytes -= index.key.length;
  }

  /** The key index of a handle the tree maps, turning a cold key into one. */
  #owned(handle: number): KeyIndex {
    const index = this.#indexes.get(handle);
    if (index !== undefined) return index;
    const taken = this.#cold.take(handle);
    this.#indexes.set(handle, taken);
    return taken;
  }

  /** The index a scan visits: a cold key's copy, or its own when `forWrite`. */
  #visited(handle: number, forWrite: boolean): KeyIndex {
    return this.#indexes.get(handle) ??
      (forWrite ? this.#owned(handle) : this.#cold.peek(handle));
  }

  /** The indexes of a page of handles (cold keys as copies unless `forWrite`). */
  #takePage(page: Uint32Array, forWrite: boolean): KeyIndex[] {
    const indexes: KeyIndex[] = new Array(page.length);
    for (let i = 0; i < page.length; i++) {
      indexes[i] = this.#visited(page[i]!, forWrite);
    }
    return indexes;
  }
}

/**
 * One write transaction: every put and delete in it takes the same main
 * revision (`revision`) and the next sub revision. Reads through it see its
 * own earlier writes, as in etcd. `commit()` makes the revision current when
 * anything changed; a transaction that changed nothing takes no revision.
 */
export class WriteTxn {
  /** Changes in order (sub revision = position); read, do not replace. */
  changes: Change[] = [];
  #sub = 0;
  #done = false;

  /**
   * @param store the engine.
   * @param revision the main revision this transaction's writes take.
   */
  constructor(readonly store: MvccStore, readonly revision: number) {}

  /** The revision reads inside the transaction see. */
  get readRevision(): number {
    return this.changes.length > 0 ? this.revision : this.revision - 1;
  }

  /** Puts `value` at `key` with `lease`; returns the change. */
  put(key: Uint8Array, value: Uint8Array, lease: bigint): Change {
    this.#assertOpen();
    const index = this.store.indexForWrite(key);
    const prev = index.get(this.readRevision);
    const entry = index.put(this.revision, this.#sub++, value, lease);
    this.store.noteEntry(entry);
    const change: Change = { key: index.key, entry, prev };
    // Most write transactions are one put: an array literal of one takes 1
    // slot, where a push onto [] reserves 17 (as KeyIndex's entries).
    if (this.changes.length === 0) this.changes = [change];
    else this.changes.push(change);
    return change;
  }

  /** Deletes every key in `bounds` that exists; returns the changes. */
  deleteRange(bounds: KeyBounds): Change[] {
    this.#assertOpen();
    const victims: VisibleKey[] = [];
    this.store.forEachVisible(
      bounds,
      this.readRevision,
      (visible) => {
        victims.push(visible);
      },
      false,
      true,
    );
    const changes: Change[] = [];
    for (const { index, entry: prev } of victims) {
      const entry = index.tombstone(this.revision, this.#sub++);
      this.store.noteEntry(entry);
      const change: Change = { key: index.key, entry, prev };
      this.changes.push(change);
      changes.push(change);
    }
    return changes;
  }

  /** Commits: returns the store's revision afterwards. */
  commit(): number {
    this.#assertOpen();
    this.#done = true;
    this.store.endWrite(this, this.changes.length > 0);
    return this.store.currentRevision;
  }

  /** Undoes every change and ends the transaction without a revision. */
  abort(): void {
    this.#assertOpen();
    this.#done = true;
    for (let i = this.changes.length - 1; i >= 0; i--) {
      const change = this.changes[i]!;
      const index = this.store.keyIndex(change.key);
      if (index) this.store.undoEntry(index);
    }
    this.changes.length = 0;
    this.store.endWrite(this, false);
  }

  #assertOpen(): void {
    if (this.#done) throw new Error("mvcc: write transaction already ended");
  }
}

/** Whether `key` equals `bytes[start, start + length)`. */
function equalBytesAt(
  key: Uint8Array,
  bytes: Uint8Array,
  start: number,
  length: number,
): boolean {
  if (key.length !== length) return false;
  for (let i = 0; i < length; i++) {
    if (key[i] !== bytes[start + i]) return false;
  }
  return true;
}

/** Byte-wise comparison, as Go's `bytes.Compare`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < length; i++) {
    const diff = a[i]! - b[i]!;
    if (diff !== 0) return diff < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function hex(bytes: Uint8Array): string {
  return Array.from(
    bytes.subarray(0, 32),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
