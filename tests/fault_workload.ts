/**
 * The workload of the fault-injection suites: a seeded mix of puts, deletes,
 * transactions, leases (grant, put with lease, revoke) and a compaction, with
 * a model of what was acknowledged, and the check that a reopened store
 * holds every acknowledged write at its revision.
 *
 * @module
 */

import assert from "node:assert/strict";
import { compare, op, type Store } from "../mod.ts";

/** What the acknowledged writes left: key → value, as of `revision`. */
export interface AckedState {
  /** Live keys and values after the last acknowledged write. */
  keys: Map<string, string>;
  /** Revision of the last acknowledged write. */
  revision: number;
}

/** An empty model of a fresh store (revision 1). */
export function emptyState(): AckedState {
  return { keys: new Map(), revision: 1 };
}

/** Lease TTL of the workload: long enough never to expire during a test. */
const LEASE_TTL_SECONDS = 3600;

/**
 * Runs `steps` seeded mixed writes against `db`, updating `state` after each
 * acknowledged one. The first rejected write is rethrown (with the state
 * holding everything acknowledged before it).
 */
export async function mixedWrites(
  db: Store,
  rand: () => number,
  steps: number,
  state: AckedState,
  valueBytes = 40,
): Promise<void> {
  const leased = new Map<bigint, string[]>();
  for (let i = 0; i < steps; i++) {
    const key = `k${Math.floor(rand() * 40)}`;
    const value = `${i}-${"v".repeat(Math.floor(rand() * valueBytes))}`;
    const roll = rand();
    if (roll < 0.55) {
      const r = await db.put(key, value);
      state.keys.set(key, value);
      state.revision = r.header.revision;
    } else if (roll < 0.7) {
      const r = await db.delete(key);
      if (r.deleted > 0) {
        state.keys.delete(key);
        state.revision = r.header.revision;
      }
    } else if (roll < 0.85) {
      const other = `t${Math.floor(rand() * 10)}`;
      const r = await db.txn({
        compare: [compare.version(key, ">", 0)],
        success: [op.put(other, value), op.delete(key)],
        failure: [op.put(key, value)],
      });
      if (r.succeeded) {
        state.keys.set(other, value);
        state.keys.delete(key);
      } else state.keys.set(key, value);
      state.revision = r.header.revision;
    } else if (roll < 0.93 || leased.size === 0) {
      const lease = await db.grant(LEASE_TTL_SECONDS);
      const lkey = `l${i}`;
      const r = await db.put(lkey, value, { lease: lease.id });
      leased.set(lease.id, [lkey]);
      state.keys.set(lkey, value);
      state.revision = r.header.revision;
    } else {
      const [id, keys] = leased.entries().next().value!;
      const r = await db.revoke(id);
      leased.delete(id);
      for (const k of keys) state.keys.delete(k);
      state.revision = r.header.revision;
    }
  }
}

/** Compacts at the last acknowledged revision (acknowledged: recorded). */
export async function compactAt(db: Store, state: AckedState): Promise<void> {
  await db.compact(state.revision);
}

/**
 * Asserts that `db` holds every acknowledged write: its revision is at least
 * the last acknowledged one, and the keys as of that revision are exactly
 * the model's (unacknowledged writes may be present, after it).
 */
export async function assertHoldsAcked(
  db: Store,
  state: AckedState,
  what: string,
): Promise<void> {
  assert.ok(
    db.revision >= state.revision,
    `${what}: revision ${db.revision} < acknowledged ${state.revision}`,
  );
  const got = await db.get("\0", {
    fromKey: true,
    revision: state.revision,
  });
  const keys = new Map(got.kvs.map((kv) => [kv.keyText, kv.valueText]));
  assert.deepEqual(
    [...keys].sort(),
    [...state.keys].sort(),
    `${what}: keys at revision ${state.revision}`,
  );
}
