/**
 * The watch hub: every open watch of a store, fed with each committed write
 * transaction's changes, and delivering etcd's watch responses to consumers
 * that pull them through async iterators.
 *
 * Watchers are in one of two groups, as etcd's `watchableStore`:
 *
 * - synced: caught up with the newest published revision. They are indexed
 *   by key, prefix and range (`watcher_group.ts`), and `publish` appends the
 *   revision's matching changes to each one's bounded queue. The cost of a
 *   publish is proportional to the watchers that match.
 * - unsynced (catching up): behind. They are not in the index, so publishing
 *   never touches them; when the consumer has drained its queue, the next
 *   pull reads the next page of history from the store (`history.ts`) and
 *   queues it as one response. Once a page reaches the newest published
 *   revision, the watcher rejoins the synced group — synchronously, so no
 *   publish can fall between the read and the join, and no event is lost or
 *   delivered twice.
 *
 * A watch starting at an old revision begins unsynced. A synced watcher whose
 * queue is full when a matching revision is published drops out to unsynced
 * with that revision as its next one: a slow consumer costs its own queue and
 * a re-read of history, never a blocked writer or a stalled watcher.
 *
 * Responses, as etcd 3.4 sends them (checked with `etcdctl watch -w json`):
 * a live revision is one response whose header revision is that revision; a
 * replay or a catch-up merges the revisions it read (at most
 * `batchRevisionsMax`, etcd's 1000) into one response whose header revision is
 * the newest published revision. revkv also bounds a merged response by
 * `batchEventsMax` events (never splitting a revision); such a cut response
 * carries the last revision it covers instead of etcd's newest revision, so
 * that a header revision always means "everything up to here was delivered".
 * A start revision below the compaction point yields one response with
 * `compactRevision` set, `canceled: true` and header revision 0, then the
 * watch ends.
 *
 * publish() is O(matching watchers), never awaits, and makes no copies: the
 * queues hold references to the store's immutable revision entries, and each
 * consumer copies its events into `KeyValue`s as it pulls them.
 *
 * @module
 */

import { KeyValue } from "../mvcc/kv.ts";
import { type Change, compareBytes, type KeyBounds } from "../mvcc/kv_store.ts";
import { toKeyValue } from "../mvcc/range.ts";
import { type GroupMember, WatcherGroup } from "./watcher_group.ts";
import type { WatchSource } from "./history.ts";

export {
  type HistoryPage,
  MvccWatchSource,
  readHistory,
  type WatchSource,
} from "./history.ts";

/**
 * Responses a watcher's queue holds before it falls behind to catching up:
 * etcd's `chanBufLen` (128), which is per stream there and per watch here.
 */
export const WATCH_QUEUE_RESPONSES_MAX = 128;
/**
 * Events a watcher's queue holds before it falls behind. With the default
 * 1.5 MiB request limit, a value is at most that big, but queued events are
 * references to values the store keeps anyway; the bound keeps the references
 * (and the work a consumer owes) finite.
 */
export const WATCH_QUEUE_EVENTS_MAX = 4096;
/** Distinct revisions in one catch-up response: etcd's `watchBatchMaxRevs`. */
export const WATCH_BATCH_REVISIONS_MAX = 1000;
/**
 * Events in one catch-up response (soft: a revision is never split). Bounds
 * the memory of one history page and the pause of reading it.
 */
export const WATCH_BATCH_EVENTS_MAX = 1024;
/**
 * How often idle watchers that asked for it get a progress response: etcd's
 * default `--experimental-watch-progress-notify-interval`, 10 minutes.
 */
export const WATCH_PROGRESS_INTERVAL_MS = 10 * 60 * 1000;
/**
 * History pages one pull reads before yielding to the event loop when the
 * pages yield nothing for the watcher (its filters dropped every event).
 */
export const WATCH_HISTORY_PAGES_PER_PULL_MAX = 16;

/** Tunables of a {@linkcode WatchHub}; every one defaults to its constant. */
export interface WatchLimits {
  /** {@linkcode WATCH_QUEUE_RESPONSES_MAX}. */
  queueResponsesMax?: number;
  /** {@linkcode WATCH_QUEUE_EVENTS_MAX}. */
  queueEventsMax?: number;
  /** {@linkcode WATCH_BATCH_REVISIONS_MAX}. */
  batchRevisionsMax?: number;
  /** {@linkcode WATCH_BATCH_EVENTS_MAX}. */
  batchEventsMax?: number;
  /** {@linkcode WATCH_PROGRESS_INTERVAL_MS}. */
  progressIntervalMs?: number;
}

/** Options of a watch (etcd's `WatchCreateRequest`, less the keys). */
export interface WatchOptions {
  /**
   * First revision to deliver; 0 or absent means the next revision. An old
   * revision replays history first; a future one waits for it.
   */
  startRevision?: number;
  /** Attach each event's previous key-value (etcd's `prev_kv`). */
  prevKv?: boolean;
  /** Leave out put events (etcd's `NOPUT` filter). */
  noPut?: boolean;
  /** Leave out delete events (etcd's `NODELETE` filter). */
  noDelete?: boolean;
  /** Send a progress response when idle for a progress interval. */
  progressNotify?: boolean;
  /** Ends the watch when aborted. */
  signal?: AbortSignal;
}

/** One event of a watch response (etcd's `mvccpb.Event`). */
export interface WatchEvent {
  /** What happened. */
  type: "put" | "delete";
  /**
   * The key-value after the event; for a delete only `key` and
   * `modRevision` are set (the rest are zero), as etcd.
   */
  kv: KeyValue;
  /** The key-value before the event, with `prevKv` (absent when none). */
  prevKv?: KeyValue;
}

/** A watch response (etcd's `WatchResponse`). */
export interface WatchResponse {
  /** `revision`: the revision the response brings the watcher up to. */
  header: { revision: number };
  /** The events, in (revision, sub revision) order; empty for progress. */
  events: WatchEvent[];
  /** Non-zero when the watch ended because its start revision is compacted. */
  compactRevision: number;
  /** Whether the watch ended (compaction, an invalid watch, or close). */
  canceled: boolean;
  /** Set on progress responses (periodic or requested). */
  progressNotify?: boolean;
  /** Why the watch was canceled, when not compaction. */
  cancelReason?: string;
}

/** Counters of a hub's work (for tests and monitoring). */
export interface WatchHubStats {
  /** Open watches. */
  watchers: number;
  /** Watches in the synced group. */
  synced: number;
  /** Watches catching up from history. */
  unsynced: number;
  /** Index probes made by publishes (map lookups, interval-tree nodes). */
  probes: number;
  /** Watchers a publish handed a revision to (matching, before filters). */
  matched: number;
  /** Times a synced watcher fell behind because its queue was full. */
  overflows: number;
  /** History pages read for replays and catch-ups. */
  historyPages: number;
}

/** Text of etcd's error for a watch whose range is empty. */
const EMPTY_RANGE_REASON = "mvcc: watcher range is empty";
/** Why watches end when the hub closes. */
const CLOSED_REASON = "revkv: store is closed";

/** A response waiting in a watcher's queue (events not yet copied). */
interface Pending {
  /** Header revision. */
  revision: number;
  /** The changes, already filtered. */
  changes: readonly Change[];
  progress?: boolean;
  compactRevision?: number;
  cancelReason?: string;
  /** The watch ends once this response is delivered. */
  final?: boolean;
}

type WatcherState = "synced" | "unsynced" | "ending" | "ended";

class Watcher implements GroupMember {
  state: WatcherState = "synced";
  /** The next revision this watcher has not seen. */
  minRev = 0;
  readonly queue: Pending[] = [];
  queuedEvents = 0;
  /** Pulls waiting for a response. */
  wakers: (() => void)[] = [];
  /** No events queued since the last progress tick. */
  idle = true;
  /** A requested progress response not yet queued. */
  progressPending = false;
  onAbort: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly bounds: KeyBounds,
    readonly prevKv: boolean,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly progressNotify: boolean,
    readonly signal: AbortSignal | undefined,
  ) {}
}

/**
 * All watches of one store.
 *
 * @example Watch a prefix, publish a write, read the response
 * ```ts
 * import { MvccStore } from "../mvcc/kv_store.ts";
 * import { MvccWatchSource, WatchHub } from "./watch_hub.ts";
 *
 * const mvcc = new MvccStore();
 * const hub = new WatchHub(new MvccWatchSource(mvcc));
 * const text = new TextEncoder();
 * const watch = hub.watch(
 *   { start: text.encode("app/"), end: text.encode("app0") },
 *   {},
 * );
 * const txn = mvcc.beginWrite();
 * txn.put(text.encode("app/port"), text.encode("2379"), 0n);
 * const revision = txn.commit();
 * hub.publish(revision, txn.changes);
 * const { value } = await watch.next();
 * console.log(value?.header.revision, value?.events[0]?.kv.valueText); // 2 "2379"
 * hub.close();
 * ```
 */
export class WatchHub {
  readonly #source: WatchSource;
  readonly #queueResponsesMax: number;
  readonly #queueEventsMax: number;
  readonly #batchRevisionsMax: number;
  readonly #batchEventsMax: number;
  readonly #progressIntervalMs: number;
  readonly #group = new WatcherGroup<Watcher>();
  readonly #all = new Set<Watcher>();
  readonly #progressWatchers = new Set<Watcher>();
  readonly #matched: Watcher[] = [];
  #progressTimer: ReturnType<typeof setInterval> | undefined;
  #revision: number;
  #unsynced = 0;
  #nextId = 1;
  #closed = false;
  #matchedCount = 0;
  #overflows = 0;
  #historyPages = 0;

  /**
   * @param source where revisions and history are read.
   * @param limits queue and batch bounds, progress interval.
   */
  constructor(source: WatchSource, limits: WatchLimits = {}) {
    this.#source = source;
    this.#queueResponsesMax = positive(
      "queueResponsesMax",
      limits.queueResponsesMax ?? WATCH_QUEUE_RESPONSES_MAX,
    );
    this.#queueEventsMax = positive(
      "queueEventsMax",
      limits.queueEventsMax ?? WATCH_QUEUE_EVENTS_MAX,
    );
    this.#batchRevisionsMax = positive(
      "batchRevisionsMax",
      limits.batchRevisionsMax ?? WATCH_BATCH_REVISIONS_MAX,
    );
    this.#batchEventsMax = positive(
      "batchEventsMax",
      limits.batchEventsMax ?? WATCH_BATCH_EVENTS_MAX,
    );
    this.#progressIntervalMs = positive(
      "progressIntervalMs",
      limits.progressIntervalMs ?? WATCH_PROGRESS_INTERVAL_MS,
    );
    this.#revision = source.committedRevision();
  }

  /** The newest published revision. */
  get revision(): number {
    return this.#revision;
  }

  /** Work counters. */
  stats(): WatchHubStats {
    return {
      watchers: this.#all.size,
      synced: this.#group.size,
      unsynced: this.#unsynced,
      probes: this.#group.probes,
      matched: this.#matchedCount,
      overflows: this.#overflows,
      historyPages: this.#historyPages,
    };
  }

  /**
   * Hands the hub a committed write transaction. Called by the store after
   * the transaction is durable, once per revision, in revision order, with
   * its changes in sub revision order. Only enqueues: never awaits, never
   * copies values.
   * @throws Error when `revision` is not the one after the last published.
   */
  publish(revision: number, changes: readonly Change[]): void {
    if (revision !== this.#revision + 1) {
      throw new Error(
        `watch: published revision ${revision} does not follow ${this.#revision}`,
      );
    }
    this.#revision = revision;
    if (this.#closed || this.#group.size === 0 || changes.length === 0) return;
    if (changes.length === 1) {
      const matched = this.#matched;
      this.#group.forEachMatch(changes[0]!.key, (w) => {
        matched.push(w);
      });
      // Deliver after the lookup: a watcher that falls behind leaves the
      // index, which must not change under the lookup.
      for (const w of matched) this.#deliver(w, revision, changes);
      this.#matchedCount += matched.length;
      matched.length = 0;
      return;
    }
    const batches = new Map<Watcher, Change[]>();
    for (const change of changes) {
      this.#group.forEachMatch(change.key, (w) => {
        const batch = batches.get(w);
        if (batch === undefined) batches.set(w, [change]);
        else batch.push(change);
      });
    }
    for (const [w, batch] of batches) this.#deliver(w, revision, batch);
    this.#matchedCount += batches.size;
  }

  /**
   * Opens a watch on `bounds`. Responses come from the returned iterator;
   * it ends after `options.signal` aborts, after `return()`, after a
   * canceled response, or after `close()`.
   * @throws RangeError for a negative or fractional start revision.
   */
  watch(
    bounds: KeyBounds,
    options: WatchOptions = {},
  ): AsyncIterableIterator<WatchResponse> {
    const start = options.startRevision ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new RangeError(
        `Cannot watch from revision ${start}: it must be a non-negative integer`,
      );
    }
    const w = new Watcher(
      this.#nextId++,
      bounds,
      options.prevKv ?? false,
      options.noPut ?? false,
      options.noDelete ?? false,
      options.progressNotify ?? false,
      options.signal,
    );
    const iterator: AsyncIterableIterator<WatchResponse> = {
      next: () => this.#next(w),
      return: (value?: unknown) => {
        this.#end(w);
        return Promise.resolve({ done: true, value });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    const end = bounds.end;
    if (
      this.#closed ||
      (end !== undefined && end !== null &&
        compareBytes(bounds.start, end) >= 0)
    ) {
      // As etcd: the watch is created canceled, with the reason.
      w.state = "ending";
      this.#push(w, {
        revision: this.#revision,
        changes: [],
        cancelReason: this.#closed ? CLOSED_REASON : EMPTY_RANGE_REASON,
        final: true,
      });
      return iterator;
    }
    if (options.signal?.aborted) {
      w.state = "ended";
      return iterator;
    }
    this.#all.add(w);
    if (start === 0 || start > this.#revision) {
      w.minRev = start === 0 ? this.#revision + 1 : start;
      w.state = "synced";
      this.#group.add(w);
    } else {
      w.minRev = start;
      w.state = "unsynced";
      this.#unsynced++;
    }
    if (w.progressNotify) {
      this.#progressWatchers.add(w);
      if (this.#progressTimer === undefined) {
        this.#progressTimer = setInterval(
          () => this.#tick(),
          this.#progressIntervalMs,
        );
      }
    }
    if (w.signal !== undefined) {
      w.onAbort = () => this.#end(w);
      w.signal.addEventListener("abort", w.onAbort, { once: true });
    }
    return iterator;
  }

  /**
   * Asks for a progress response on every watch: each gets one at the
   * newest published revision as soon as it is synced (at once when it is;
   * after catching up when it is behind).
   */
  requestProgress(): void {
    for (const w of this.#all) {
      if (w.state === "synced" && this.#fits(w, 0)) this.#pushProgress(w);
      else w.progressPending = true;
    }
  }

  /**
   * Ends every watch: each gets what is already queued, then a canceled
   * response (`cancelReason` "revkv: store is closed"). Later watches are
   * created canceled. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#all]) {
      this.#retire(w);
      w.state = "ending";
      this.#push(w, {
        revision: this.#revision,
        changes: [],
        cancelReason: CLOSED_REASON,
        final: true,
      });
    }
    if (this.#progressTimer !== undefined) clearInterval(this.#progressTimer);
    this.#progressTimer = undefined;
  }

  // --- delivery -----------------------------------------------------------

  /** Queues a published revision's matching changes for a synced watcher. */
  #deliver(w: Watcher, revision: number, changes: readonly Change[]): void {
    if (revision < w.minRev) return; // A future start revision: not yet.
    const events = filter(w, changes);
    if (events.length === 0) return; // As etcd: nothing to send.
    if (!this.#fits(w, events.length)) {
      // Fall behind: this revision and later ones come from history.
      this.#group.delete(w);
      w.state = "unsynced";
      w.minRev = revision;
      this.#unsynced++;
      this.#overflows++;
      return;
    }
    w.minRev = revision + 1;
    this.#push(w, { revision, changes: events });
  }

  /** Whether `w`'s queue takes a response of `eventCount` more events. */
  #fits(w: Watcher, eventCount: number): boolean {
    return w.queue.length === 0 ||
      (w.queue.length < this.#queueResponsesMax &&
        w.queuedEvents + eventCount <= this.#queueEventsMax);
  }

  #push(w: Watcher, pending: Pending): void {
    w.queue.push(pending);
    w.queuedEvents += pending.changes.length;
    if (pending.changes.length > 0) w.idle = false;
    if (w.wakers.length > 0) {
      for (const wake of w.wakers.splice(0)) wake();
    }
  }

  #pushProgress(w: Watcher): void {
    w.progressPending = false;
    this.#push(w, { revision: this.#revision, changes: [], progress: true });
  }

  #tick(): void {
    // As etcd's sendLoop: a watcher that got no events for a whole interval
    // gets a progress response, if it is synced and has room for it.
    for (const w of this.#progressWatchers) {
      if (w.idle && w.state === "synced" && this.#fits(w, 0)) {
        this.#pushProgress(w);
      }
      w.idle = true;
    }
  }

  // --- the consumer side --------------------------------------------------

  async #next(w: Watcher): Promise<IteratorResult<WatchResponse>> {
    for (;;) {
      const pending = w.queue.shift();
      if (pending !== undefined) {
        w.queuedEvents -= pending.changes.length;
        if (pending.final) w.state = "ended";
        return { done: false, value: toResponse(w, pending) };
      }
      if (w.state === "ending" || w.state === "ended") {
        w.state = "ended";
        return { done: true, value: undefined };
      }
      if (w.state === "unsynced") {
        if (!this.#catchUp(w)) await yieldToEventLoop();
        continue;
      }
      if (w.progressPending) {
        this.#pushProgress(w);
        continue;
      }
      await new Promise<void>((resolve) => w.wakers.push(resolve));
    }
  }

  /**
   * Reads history for an unsynced watcher whose queue is empty, until it
   * queued a response, changed state, or read the page budget. Returns
   * whether anything happened.
   */
  #catchUp(w: Watcher): boolean {
    for (let page = 0; page < WATCH_HISTORY_PAGES_PER_PULL_MAX; page++) {
      const compactRev = this.#source.compactRevision();
      if (w.minRev < compactRev) {
        this.#retire(w);
        w.state = "ending";
        this.#push(w, {
          revision: 0,
          changes: [],
          compactRevision: compactRev,
          final: true,
        });
        return true;
      }
      const toRev = this.#revision;
      if (w.minRev > toRev) {
        this.#join(w);
        return true;
      }
      let events: readonly Change[];
      let nextRevision: number;
      try {
        ({ events, nextRevision } = this.#source.readHistory(
          w.bounds,
          w.minRev,
          toRev,
          this.#batchEventsMax,
          this.#batchRevisionsMax,
        ));
      } catch (error) {
        this.#retire(w);
        w.state = "ending";
        this.#push(w, {
          revision: this.#revision,
          changes: [],
          cancelReason: error instanceof Error ? error.message : String(error),
          final: true,
        });
        return true;
      }
      this.#historyPages++;
      if (nextRevision <= w.minRev) {
        throw new Error(
          `watch: history page from ${w.minRev} did not advance (next ${nextRevision})`,
        );
      }
      w.minRev = nextRevision;
      const done = nextRevision > toRev;
      const filtered = filter(w, events);
      if (filtered.length > 0) {
        this.#push(w, {
          revision: done ? toRev : nextRevision - 1,
          changes: filtered,
        });
      }
      if (done) this.#join(w);
      if (done || filtered.length > 0) return true;
    }
    return false;
  }

  /** Moves a caught-up watcher into the synced group. */
  #join(w: Watcher): void {
    this.#unsynced--;
    w.state = "synced";
    w.minRev = Math.max(w.minRev, this.#revision + 1);
    this.#group.add(w);
    if (w.progressPending && this.#fits(w, 0)) this.#pushProgress(w);
  }

  /** Ends a watch at once (abort, `return()`): queued responses are dropped. */
  #end(w: Watcher): void {
    if (w.state === "ended") return;
    if (w.state !== "ending") this.#retire(w);
    w.state = "ended";
    w.queue.length = 0;
    w.queuedEvents = 0;
    for (const wake of w.wakers.splice(0)) wake();
  }

  /** Takes a watch out of every group and set (it gets no more events). */
  #retire(w: Watcher): void {
    if (w.state === "synced") this.#group.delete(w);
    else if (w.state === "unsynced") this.#unsynced--;
    this.#all.delete(w);
    if (this.#progressWatchers.delete(w) && this.#progressWatchers.size === 0) {
      clearInterval(this.#progressTimer);
      this.#progressTimer = undefined;
    }
    if (w.onAbort !== undefined) {
      w.signal?.removeEventListener("abort", w.onAbort);
      w.onAbort = undefined;
    }
  }
}

/** The changes a watcher's filters let through. */
function filter(w: Watcher, changes: readonly Change[]): readonly Change[] {
  if (!w.noPut && !w.noDelete) return changes;
  return changes.filter((change) =>
    change.entry.value === null ? !w.noDelete : !w.noPut
  );
}

const EMPTY = new Uint8Array(0);

/** Builds the public response, copying the events out of the store. */
function toResponse(w: Watcher, pending: Pending): WatchResponse {
  const response: WatchResponse = {
    header: { revision: pending.revision },
    events: pending.changes.map((change) => toEvent(change, w.prevKv)),
    compactRevision: pending.compactRevision ?? 0,
    canceled: pending.final ?? false,
  };
  if (pending.progress) response.progressNotify = true;
  if (pending.cancelReason !== undefined) {
    response.cancelReason = pending.cancelReason;
  }
  return response;
}

function toEvent(change: Change, prevKv: boolean): WatchEvent {
  const { key, entry, prev } = change;
  let event: WatchEvent;
  if (entry.value === null) {
    // As etcd: a delete's kv carries the key and the delete's revision only.
    event = {
      type: "delete",
      kv: new KeyValue(key.slice(), 0, entry.main, 0, EMPTY, 0n),
    };
  } else {
    event = { type: "put", kv: toKeyValue(key, entry) };
  }
  // As etcd: a create event has no previous key-value.
  const create = entry.value !== null && entry.createRevision === entry.main;
  if (prevKv && prev !== undefined && !create) {
    event.prevKv = toKeyValue(key, prev);
  }
  return event;
}

function positive(name: string, value: number): number {
  if (!(value >= 1) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot use ${name} ${value}: it must be a finite number of at least 1`,
    );
  }
  return value;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
