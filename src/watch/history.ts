/**
 * Reading the store's history as watch events: every change to the keys in
 * some bounds with a main revision in `[fromRev, toRev]`, in (revision, sub)
 * order, a bounded page at a time. This is what a watcher replays when it
 * starts at an old revision and what a slow watcher catches up from.
 *
 * The store keeps history per key (see `src/mvcc/key_index.ts`), not as one
 * log ordered by revision as etcd's bolt backend does, so a page is read by
 * visiting every key in the bounds, taking its entries in the revision window
 * (a binary search, then a walk), and sorting what was taken. Memory stays
 * bounded while visiting: whenever more than twice a page of events is held,
 * they are sorted, the window's upper end is lowered to the page's last
 * revision and the rest dropped. A page never splits one revision.
 *
 * A worked example. Key "a" has `put@2 | put@4 | tomb@6`, key "b" has
 * `put@3 | put@5`. Reading `[3, 6]` takes put@4 (prev put@2), tomb@6 (prev
 * put@4) from "a", put@3 and put@5 (prev put@3) from "b", and returns them
 * sorted: 3 b, 4 a, 5 b, 6 a. With at most 2 events a page, the page is
 * `3 b, 4 a` and the next page starts at revision 5.
 *
 * Cost: a page over a single key is a lookup and a binary search; a page over
 * a range visits every key in the range (tombstoned ones included), so
 * catching up over a huge range costs a scan of the range per page.
 *
 * @module
 */

import type { KeyIndex, RevisionEntry } from "../mvcc/key_index.ts";
import type { Change, KeyBounds, MvccStore } from "../mvcc/kv_store.ts";
import { CompactedError, FutureRevisionError } from "../mvcc/errors.ts";

/** One page of history. */
export interface HistoryPage {
  /** The changes, in (revision, sub) order. */
  events: Change[];
  /**
   * Where the next page starts: every change in `[fromRev, nextRevision)` is
   * in this page. Greater than `toRev` when the window is exhausted.
   */
  nextRevision: number;
}

/**
 * Where a watch hub reads revisions and history: the store, in practice
 * {@linkcode MvccWatchSource}.
 */
export interface WatchSource {
  /** The newest committed (durable) revision. */
  committedRevision(): number;
  /** The revision of the last compaction (-1 when never compacted). */
  compactRevision(): number;
  /**
   * Reads the changes to keys in `bounds` with main revision in
   * `[fromRev, toRev]`, at most `maxEvents` (but never splitting a revision)
   * and `maxRevisions` distinct revisions.
   * @throws CompactedError when `fromRev` is below the compaction point.
   * @throws FutureRevisionError when `toRev` is beyond the committed revision.
   */
  readHistory(
    bounds: KeyBounds,
    fromRev: number,
    toRev: number,
    maxEvents: number,
    maxRevisions: number,
  ): HistoryPage;
}

/**
 * Calls `visit` for every key in `bounds` that the store holds any revision
 * of (deleted keys included), in key order, through the engine's paged tree
 * scan; `visit` returns false to stop.
 */
export function forEachKeyIndex(
  store: MvccStore,
  bounds: KeyBounds,
  visit: (index: KeyIndex) => boolean | void,
): void {
  store.forEachKeyIndex(bounds, visit);
}

/** The first position in `entries` with `main >= rev` (entries ascend). */
function firstAtOrAfter(entries: readonly RevisionEntry[], rev: number) {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid]!.main < rev) low = mid + 1;
    else high = mid;
  }
  return low;
}

function byRevision(a: Change, b: Change): number {
  return a.entry.main - b.entry.main || a.entry.sub - b.entry.sub;
}

/**
 * The first revision that must not be in a page of sorted `events`: the one
 * that would bring the page past `maxRevisions` revisions, or that starts
 * after `maxEvents` events are already in; `undefined` when all fit.
 */
function cutRevision(
  events: readonly Change[],
  maxEvents: number,
  maxRevisions: number,
): number | undefined {
  let revisions = 0;
  let last = -1;
  for (let i = 0; i < events.length; i++) {
    const main = events[i]!.entry.main;
    if (main === last) continue;
    if (revisions >= maxRevisions || (revisions > 0 && i >= maxEvents)) {
      return main;
    }
    revisions++;
    last = main;
  }
  return undefined;
}

/**
 * Reads a page of history from an `MvccStore` (see the module comment).
 * @param store the engine.
 * @param bounds the keys.
 * @param fromRev the first revision (must not be below the compaction point).
 * @param toRev the last revision.
 * @param maxEvents soft bound on events (a revision is never split).
 * @param maxRevisions bound on distinct revisions.
 * @returns the page and where the next one starts.
 */
export function readHistory(
  store: MvccStore,
  bounds: KeyBounds,
  fromRev: number,
  toRev: number,
  maxEvents: number,
  maxRevisions: number,
): HistoryPage {
  if (maxEvents < 1 || maxRevisions < 1) {
    throw new RangeError(
      `Cannot read history pages of ${maxEvents} events and ${maxRevisions} revisions: both must be at least 1`,
    );
  }
  const compactRev = store.compactRevision;
  if (fromRev < compactRev) throw new CompactedError(compactRev);
  let limitRev = toRev;
  let events: Change[] = [];
  if (fromRev > limitRev) return { events, nextRevision: fromRev };
  let holdMax = 2 * maxEvents;
  forEachKeyIndex(store, bounds, (index) => {
    const entries = index.entries;
    for (
      let i = firstAtOrAfter(entries, fromRev);
      i < entries.length && entries[i]!.main <= limitRev;
      i++
    ) {
      const entry = entries[i]!;
      const before = i > 0 ? entries[i - 1] : undefined;
      // As etcd, the previous value is what a read at `main - 1` returns:
      // nothing when that revision is compacted or the key did not exist.
      const prev = before !== undefined && before.value !== null &&
          entry.main - 1 >= compactRev
        ? before
        : undefined;
      events.push({ key: index.key, entry, prev });
    }
    if (events.length > holdMax) {
      events.sort(byRevision);
      const cut = cutRevision(events, maxEvents, maxRevisions);
      if (cut !== undefined) {
        limitRev = cut - 1;
        events = events.filter((change) => change.entry.main <= limitRev);
      }
      // One huge revision may hold more than a page: sort again only after
      // the held events double, so that visiting stays O(n log n).
      holdMax = Math.max(holdMax, 2 * events.length);
    }
  });
  events.sort(byRevision);
  const cut = cutRevision(events, maxEvents, maxRevisions);
  if (cut !== undefined) {
    limitRev = cut - 1;
    events = events.filter((change) => change.entry.main <= limitRev);
  }
  return { events, nextRevision: limitRev + 1 };
}

/**
 * The {@linkcode WatchSource} of an `MvccStore` whose committed revision the
 * store keeps (reads of history never go past it).
 *
 * @example
 * ```ts
 * import { MvccStore } from "../mvcc/kv_store.ts";
 * import { MvccWatchSource } from "./history.ts";
 *
 * const mvcc = new MvccStore();
 * const txn = mvcc.beginWrite();
 * txn.put(new TextEncoder().encode("a"), new TextEncoder().encode("1"), 0n);
 * const revision = txn.commit();
 * const source = new MvccWatchSource(mvcc, () => revision);
 * const page = source.readHistory(
 *   { start: new TextEncoder().encode("a"), end: undefined },
 *   1, revision, 100, 100,
 * );
 * console.log(page.events.length, page.nextRevision); // 1 3
 * ```
 */
export class MvccWatchSource implements WatchSource {
  /**
   * @param store the engine.
   * @param committed returns the newest committed revision.
   */
  constructor(
    readonly store: MvccStore,
    readonly committed: () => number = () => store.currentRevision,
  ) {}

  /** The newest committed revision. */
  committedRevision(): number {
    return this.committed();
  }

  /** The revision of the last compaction (-1 when never). */
  compactRevision(): number {
    return this.store.compactRevision;
  }

  /** See {@linkcode WatchSource.readHistory}. */
  readHistory(
    bounds: KeyBounds,
    fromRev: number,
    toRev: number,
    maxEvents: number,
    maxRevisions: number,
  ): HistoryPage {
    if (toRev > this.committed()) throw new FutureRevisionError();
    return readHistory(
      this.store,
      bounds,
      fromRev,
      toRev,
      maxEvents,
      maxRevisions,
    );
  }
}
