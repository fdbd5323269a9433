/**
 * What replaying the WAL after a snapshot builds besides the engine's
 * entries: the revision reached, the compaction revision and the live
 * leases, record by record in log order.
 *
 * - Write records must continue the revisions without a gap: the first one
 *   applied is base + 1 (base: the snapshot's revision, or 1 for a fresh
 *   store), and those at or below base are skipped (the snapshot has them).
 * - A compaction record raises the compaction revision, never beyond the
 *   revision reached (the physical compaction then runs in the background).
 * - Lease records are not tied to revisions: each applies in log order
 *   (every segment starts with every live lease, so reading from any
 *   segment on gives the same map).
 * - An unknown record type stops recovery unless it is marked skippable.
 *
 * Its two callbacks are what `readWal` takes (`writes.beginWrite` and
 * `onRecord`).
 *
 * @module
 */

import type { DurableLease } from "./segment_preamble.ts";
import { isSkippable, type WalRecord } from "./wal_codec.ts";

/** Revision, compaction and leases as the replay reached them. */
export class ReplayState {
  /** Revision of the last write applied (or the base). */
  current: number;
  /** Compaction revision reached. */
  compact: number;
  /** Write and compaction records applied. */
  replayed = 0;

  /**
   * @param base the snapshot's revision (1 without one): writes at or below
   *   it are skipped.
   * @param compactRevision the snapshot's compaction revision (-1: none).
   * @param leases the snapshot's leases, updated in place.
   */
  constructor(
    readonly base: number,
    compactRevision: number,
    readonly leases: Map<bigint, DurableLease>,
  ) {
    this.current = base;
    this.compact = compactRevision;
  }

  /** Whether the write at `revision` is to be applied (throws on a gap). */
  beginWrite = (revision: number): boolean => {
    if (revision <= this.base) return false;
    if (revision !== this.current + 1) {
      throw new Error(
        `revkv: WAL revisions not contiguous: ${revision} after ${this.current}`,
      );
    }
    this.current = revision;
    this.replayed++;
    return true;
  };

  /** Applies a record that is not a write. */
  record = (record: WalRecord): void => {
    switch (record.kind) {
      case "leaseGrant":
        this.leases.set(record.id, {
          ttlSeconds: record.ttlSeconds,
          deadlineMs: record.deadlineMs,
        });
        return;
      case "leaseCheckpoint": {
        const lease = this.leases.get(record.id);
        if (lease) lease.deadlineMs = record.deadlineMs;
        return;
      }
      case "leaseRevoke":
        this.leases.delete(record.id);
        return;
      case "compact":
        if (record.revision > this.compact) {
          if (record.revision > this.current) {
            throw new Error(
              `revkv: WAL compaction at ${record.revision} beyond revision ${this.current}`,
            );
          }
          this.compact = record.revision;
          this.replayed++;
        }
        return;
      case "opaque":
        if (!isSkippable(record.type)) {
          throw new Error(
            `revkv: WAL record type ${record.type} is unknown (written by a newer revkv?)`,
          );
        }
        return;
      default:
        return;
    }
  };
}
