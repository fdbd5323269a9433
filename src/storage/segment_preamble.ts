/**
 * What every new WAL segment starts with, after its header: the metadata
 * (cluster, member, term), the compaction revision and every live lease, so
 * that no segment needs an older one and old segments can go once a
 * snapshot covers them. `SegmentPreamble` keeps that state as the journal
 * logs it (grants, renewals, revocations, compactions).
 *
 * @module
 */

import type { Meta } from "./meta.ts";
import type { WalRecord } from "./wal_codec.ts";

/** A lease as the WAL keeps it. */
export interface DurableLease {
  /** Granted TTL in seconds. */
  ttlSeconds: number;
  /** Wall-clock deadline in ms. */
  deadlineMs: number;
}

/**
 * The records that start a segment after its header: the metadata, the
 * compaction revision (when any) and every live lease.
 */
export function segmentPreamble(
  meta: Meta,
  compactRevision: number,
  leases: ReadonlyMap<bigint, DurableLease> = new Map(),
): WalRecord[] {
  const records: WalRecord[] = [{
    kind: "metadata",
    clusterId: meta.clusterId,
    memberId: meta.memberId,
    term: meta.term,
  }];
  if (compactRevision >= 0) {
    records.push({ kind: "compact", revision: compactRevision });
  }
  for (const [id, lease] of leases) {
    records.push({ kind: "leaseGrant", id, ...lease });
  }
  return records;
}

/** The preamble's state, kept up to date as records are logged. */
export class SegmentPreamble {
  #compactRevision: number;
  readonly #leases: Map<bigint, DurableLease>;

  /**
   * @param meta identity and term.
   * @param compactRevision the compaction revision recovered (-1: none).
   * @param leases live leases recovered (copied).
   */
  constructor(
    readonly meta: Meta,
    compactRevision: number,
    leases: ReadonlyMap<bigint, DurableLease> = new Map(),
  ) {
    this.#compactRevision = compactRevision;
    this.#leases = new Map(
      [...leases].map(([id, lease]) => [id, { ...lease }]),
    );
  }

  /** The records for a new segment now. */
  records(): WalRecord[] {
    return segmentPreamble(this.meta, this.#compactRevision, this.#leases);
  }

  /** A compaction at `revision` was logged. */
  compacted(revision: number): void {
    if (revision > this.#compactRevision) this.#compactRevision = revision;
  }

  /** A lease grant was logged. */
  granted(id: bigint, ttlSeconds: number, deadlineMs: number): void {
    this.#leases.set(id, { ttlSeconds, deadlineMs });
  }

  /** A lease's new deadline was logged. */
  renewed(id: bigint, deadlineMs: number): void {
    const lease = this.#leases.get(id);
    if (lease) lease.deadlineMs = deadlineMs;
  }

  /** A lease revocation was logged. */
  revoked(id: bigint): void {
    this.#leases.delete(id);
  }

  /** A copy of the live leases (for a snapshot). */
  leasesCopy(): Map<bigint, DurableLease> {
    return new Map([...this.#leases].map(([id, lease]) => [id, { ...lease }]));
  }
}
