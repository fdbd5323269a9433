/**
 * Compaction scheduling for the `Store`. `MvccStore.compact` only marks the
 * compaction; the old revisions are reclaimed here, in background steps:
 *
 * - `schedule()` starts the steps (once; a running schedule is kept). Each
 *   step is bounded (`COMPACT_STEP_KEYS` keys, `COMPACT_STEP_MS`) and yields
 *   to the event loop before the next, so compaction never stalls reads or
 *   writes long.
 * - While a snapshot reads history (`hold()`, or the journal's
 *   `compactionHeld`), steps wait and retry every `COMPACTION_HELD_RETRY_MS`.
 * - `whenReclaimed()` resolves when the running compaction is done (or the
 *   store closes): `compact({ physical: true })` and `defrag()` wait on it.
 * - `stop()` (on close) cancels the next step and wakes every waiter.
 *
 * @module
 */

import {
  COMPACT_STEP_KEYS,
  COMPACT_STEP_MS,
  type MvccStore,
} from "../mvcc/kv_store.ts";

/** Retry delay of a compaction step while a snapshot holds compaction. */
const COMPACTION_HELD_RETRY_MS = 5;

/** Runs a store's marked compaction in bounded background steps. */
export class CompactionScheduler {
  readonly #mvcc: MvccStore;
  /** Whether the journal holds compaction (a durable snapshot is running). */
  readonly #journalHolds: () => boolean;
  #holds = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #waiters: (() => void)[] = [];
  #stopped = false;

  constructor(mvcc: MvccStore, journalHolds: () => boolean) {
    this.#mvcc = mvcc;
    this.#journalHolds = journalHolds;
  }

  /** Starts the background steps, unless they run already or stopped. */
  schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    const step = () => {
      this.#timer = undefined;
      if (this.#stopped) return;
      if (this.#holds > 0 || this.#journalHolds()) {
        // A snapshot is reading history: try again shortly.
        this.#timer = setTimeout(step, COMPACTION_HELD_RETRY_MS);
        return;
      }
      if (this.#mvcc.compactStep(COMPACT_STEP_KEYS, COMPACT_STEP_MS)) {
        for (const wake of this.#waiters.splice(0)) wake();
        return;
      }
      this.#timer = setTimeout(step, 0);
    };
    this.#timer = setTimeout(step, 0);
  }

  /**
   * Resolves when the running compaction's reclaiming ends (or on stop).
   * Register before `schedule()`: the steps may end before a later call.
   */
  whenReclaimed(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Holds the steps (a snapshot reads history) until `release()`. */
  hold(): void {
    this.#holds++;
  }

  /** Ends one `hold()`. */
  release(): void {
    this.#holds--;
  }

  /** Cancels the next step and wakes every waiter (the store closes). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
