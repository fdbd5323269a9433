/**
 * How the `Store` wires leases to its writer. The lease logic itself lives
 * in src/lease/ (`Lessor`: deadlines and expiry timers; `LeaseService`:
 * grant, renew, revoke, keep-alive streams, key attachments); this file
 * connects it:
 *
 * - `storeLeases` builds the store's `LeaseService`: a revocation deletes
 *   its keys through the single writer in one revision (never refused by
 *   admission: the lease call that leads there was admitted already), and
 *   grants, renewals and revocations are journaled as writes in flight.
 * - At open, the leases of a durable store come back with their
 *   wall-clock deadlines and their attachments (from the lease IDs the
 *   live keys carry); `revokeExpiredAtOpen` then revokes those whose
 *   deadline passed while the store was closed, before `open()` resolves.
 * - `leaseRecords` is what a snapshot stores of the leases.
 *
 * @module
 */

import { type Clock, Lessor } from "../lease/lessor.ts";
import { LeaseService } from "../lease/lease_service.ts";
import type { MvccStore } from "../mvcc/kv_store.ts";
import type { ResponseHeader } from "../mvcc/kv.ts";
import type { Writer } from "./writer.ts";

/** A lease as the WAL and snapshots keep it. */
export type LeaseRecord = { ttlSeconds: number; deadlineMs: number };

/** What `storeLeases` needs of the store. */
export interface LeaseWiring {
  /** Wall clock for deadlines, in ms (default `Date.now`). */
  clock?: Clock;
  writer: Writer;
  mvcc: MvccStore;
  /** A response header at `revision` (default: the committed one). */
  header(revision?: number): ResponseHeader;
  /** Whether the store is closed (keep-alive streams end). */
  closed(): boolean;
  /** The leases recovered from a data dir, if any. */
  restored?: ReadonlyMap<bigint, LeaseRecord>;
}

/** Builds a store's lease service over its writer, restoring recovered leases. */
export function storeLeases(wiring: LeaseWiring): LeaseService {
  const { writer, header } = wiring;
  const leases = new LeaseService(new Lessor(wiring.clock), {
    // Admitted by the lease call that leads here (or internal: expiry),
    // so never refused halfway through a revocation.
    deleteKeys: (keys) =>
      writer.write((txn) => {
        for (const key of keys) {
          txn.deleteRange({ start: key, end: undefined });
        }
        return (revision) => header(revision);
      }, false),
    header: () => header(),
    admit: () => writer.admit(),
    logGrant: (id, ttl, deadline) =>
      writer.inFlight(0, writer.journal?.leaseGrant?.(id, ttl, deadline)),
    logRenew: (id, deadline) =>
      writer.inFlight(0, writer.journal?.leaseRenew?.(id, deadline)),
    logRevoke: (id) => writer.inFlight(0, writer.journal?.leaseRevoke?.(id)),
    closed: wiring.closed,
  });
  if (wiring.restored !== undefined && wiring.restored.size > 0) {
    restoreLeases(leases, wiring.mvcc, wiring.restored);
  }
  return leases;
}

/**
 * Brings back the leases of a durable store and their attachments (from
 * the lease IDs the live keys carry). Deadlines are wall-clock, so a lease
 * whose deadline passed while the store was closed expires at once, and
 * the others expire on time — unlike etcd 3.4, which restarts every
 * lease's full TTL. `open()` revokes the expired ones before it resolves.
 */
function restoreLeases(
  leases: LeaseService,
  mvcc: MvccStore,
  restored: ReadonlyMap<bigint, LeaseRecord>,
): void {
  const lessor = leases.lessor;
  for (const [id, lease] of restored) {
    lessor.add(id, lease.ttlSeconds, lease.deadlineMs);
  }
  mvcc.forEachLeasedKey((index, entry) => {
    leases.restoreAttachment(entry.lease, index.key);
  });
  leases.schedule();
}

/**
 * Revokes, before anyone can read, the leases whose deadline passed while
 * the store was closed (each in one revision, durable): etcd never shows a
 * key past its lease's deadline once its lessor has run. On failure the
 * store is closed and the error thrown.
 */
export async function revokeExpiredAtOpen(
  expireNow: () => Promise<number>,
  close: () => Promise<void>,
): Promise<void> {
  try {
    while ((await expireNow()) > 0) { /* next pass */ }
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** The live leases as a snapshot records them. */
export function leaseRecords(leases: LeaseService): Map<bigint, LeaseRecord> {
  return new Map(
    leases.lessor.list().map((lease) => [lease.id, {
      ttlSeconds: lease.ttlSeconds,
      deadlineMs: lease.deadlineMs,
    }]),
  );
}
