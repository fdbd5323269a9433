/**
 * etcd's `--auto-compaction-mode` / `--auto-compaction-retention` over a
 * Store (which only compacts when asked):
 *
 * - `periodic`, retention R (ms): every R/10 the current revision is noted
 *   (at most 11 notes kept); the store is compacted to the revision noted R
 *   ago, as etcd 3.4's periodic compactor keeps "the last R of history".
 * - `revision`, retention N: every 5 minutes (etcd's revision compactor
 *   interval) the store is compacted to `revision - N`.
 *
 * A compaction that fails because another compaction got there first is
 * ignored; the timers are unref'd so they never keep the process alive.
 *
 * @module
 */

import type { Store } from "../store.ts";
import { EtcdError } from "../mvcc/errors.ts";
import { runtime } from "../storage/runtime.ts";

/** etcd's revision compactor checks every 5 minutes. */
export const REVISION_COMPACTION_INTERVAL_MS = 5 * 60 * 1000;
/** Periodic mode notes the revision this many times per retention. */
const PERIODIC_NOTES_PER_RETENTION = 10;

/** Starts auto compaction; returns a function that stops it. */
export function startAutoCompaction(
  store: Store,
  mode: "periodic" | "revision",
  retention: number,
): () => void {
  if (retention <= 0) return () => {};
  const compact = (revision: number) => {
    if (revision <= Math.max(store.compactRevision, 1)) return;
    store.compact(revision).catch((error) => {
      if (!(error instanceof EtcdError)) throw error;
    });
  };
  let timer: ReturnType<typeof setInterval>;
  if (mode === "revision") {
    timer = setInterval(
      () => compact(store.revision - retention),
      REVISION_COMPACTION_INTERVAL_MS,
    );
  } else {
    const notes: number[] = [store.revision];
    timer = setInterval(() => {
      notes.push(store.revision);
      if (notes.length > PERIODIC_NOTES_PER_RETENTION + 1) notes.shift();
      if (notes.length === PERIODIC_NOTES_PER_RETENTION + 1) compact(notes[0]!);
    }, Math.max(1, Math.floor(retention / PERIODIC_NOTES_PER_RETENTION)));
  }
  runtime.unrefTimer(timer);
  return () => clearInterval(timer);
}
