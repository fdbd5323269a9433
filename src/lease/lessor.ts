/**
 * The lessor: leases, their deadlines and the keys attached to them, as
 * etcd's lessor. It owns no keys — the store deletes a revoked lease's keys
 * in one write — but it knows which keys each lease holds and which lease
 * expires next (a min-heap by deadline: finding expired leases costs
 * O(log n) each, never a scan of all leases).
 *
 * Deadlines are wall-clock milliseconds from an injectable clock, so a
 * deadline recorded on disk means the same after a restart (unlike etcd
 * 3.4, which refreshes every lease to its full TTL when it restarts).
 *
 * @module
 */

import { errors, EtcdError } from "../mvcc/errors.ts";

/** etcd's largest TTL (`MaxLeaseTTL`), in seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;
/**
 * etcd's minimum TTL with its default election timeout (1 s) and heartbeat
 * (100 ms): ceil(1.5 × election timeout) = 2 s. Shorter requests are raised.
 */
export const MIN_LEASE_TTL_SECONDS = 2;

/** Milliseconds since the epoch; injectable for tests. */
export type Clock = () => number;

/** One lease. */
export interface Lease {
  /** The lease ID (positive, below 2^63, as etcd's). */
  readonly id: bigint;
  /** The granted TTL in seconds (after raising it to the minimum). */
  ttlSeconds: number;
  /** When it expires, in clock milliseconds. */
  deadlineMs: number;
  /**
   * Attached keys, by identity: the engine's own key bytes (`KeyIndex.key`),
   * which stay the same object for as long as the key exists.
   */
  readonly keys: Set<Uint8Array>;
}

interface HeapItem {
  deadlineMs: number;
  lease: Lease;
}

/** Leases, their attached keys and their expiry order. */
export class Lessor {
  readonly #leases = new Map<bigint, Lease>();
  #heap: HeapItem[] = [];

  /** @param clock the time source (default `Date.now`). */
  constructor(readonly clock: Clock = Date.now) {}

  /** Number of live leases. */
  get size(): number {
    return this.#leases.size;
  }

  /** The lease with `id`, if it exists. */
  get(id: bigint): Lease | undefined {
    return this.#leases.get(id);
  }

  /** Every live lease, in ID order. */
  list(): Lease[] {
    return [...this.#leases.values()].sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0
    );
  }

  /**
   * Checks a grant before it is logged; returns the ID and TTL it will get.
   * @throws EtcdError `etcdserver: too large lease TTL`,
   *   `etcdserver: lease already exists`.
   */
  prepareGrant(
    ttlSeconds: number,
    id: bigint | undefined,
  ): { id: bigint; ttlSeconds: number } {
    if (!Number.isFinite(ttlSeconds)) {
      throw new TypeError(`Invalid lease TTL: ${ttlSeconds}`);
    }
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) {
      throw new EtcdError("etcdserver: too large lease TTL", 11);
    }
    if (id !== undefined && id !== 0n) {
      if (id < 0n || id >= 1n << 63n) {
        throw new RangeError(`Lease ID out of range: ${id}`);
      }
      if (this.#leases.has(id)) {
        throw new EtcdError("etcdserver: lease already exists", 9);
      }
    }
    let chosen = id ?? 0n;
    while (chosen === 0n || this.#leases.has(chosen)) chosen = randomLeaseId();
    return {
      id: chosen,
      ttlSeconds: Math.max(MIN_LEASE_TTL_SECONDS, Math.trunc(ttlSeconds)),
    };
  }

  /** Adds a lease (after `prepareGrant`, or when restoring). */
  add(id: bigint, ttlSeconds: number, deadlineMs: number): Lease {
    const lease: Lease = { id, ttlSeconds, deadlineMs, keys: new Set() };
    this.#leases.set(id, lease);
    this.#push({ deadlineMs, lease });
    return lease;
  }

  /** Moves a lease's deadline (keep-alive, or restore of a checkpoint). */
  renew(id: bigint, deadlineMs: number): Lease {
    const lease = this.#leases.get(id);
    if (!lease) throw errors.leaseNotFound();
    lease.deadlineMs = deadlineMs;
    // The old heap item becomes stale; `#popExpired` skips it.
    this.#push({ deadlineMs, lease });
    return lease;
  }

  /** Removes a lease (its keys must have been deleted by the store). */
  remove(id: bigint): void {
    this.#leases.delete(id);
  }

  /** Attaches `key` (the engine's key bytes) to lease `id`, if it exists. */
  attach(id: bigint, key: Uint8Array): void {
    this.#leases.get(id)?.keys.add(key);
  }

  /** Detaches `key` (the engine's key bytes) from lease `id`, if it exists. */
  detach(id: bigint, key: Uint8Array): void {
    this.#leases.get(id)?.keys.delete(key);
  }

  /** Remaining milliseconds of a lease (negative once expired). */
  remainingMs(lease: Lease): number {
    return lease.deadlineMs - this.clock();
  }

  /** IDs of the leases whose deadline has passed, earliest first. */
  expired(max = Infinity): bigint[] {
    const now = this.clock();
    const ids: bigint[] = [];
    const seen = new Set<bigint>();
    while (ids.length < max && this.#heap.length > 0) {
      const top = this.#heap[0]!;
      const live = this.#leases.get(top.lease.id) === top.lease &&
        top.lease.deadlineMs === top.deadlineMs;
      if (!live) {
        this.#pop();
        continue;
      }
      if (top.deadlineMs > now) break;
      this.#pop();
      if (!seen.has(top.lease.id)) {
        seen.add(top.lease.id);
        ids.push(top.lease.id);
      }
    }
    // Put the popped live ones back: they stay until the store revokes them.
    for (const id of ids) {
      const lease = this.#leases.get(id)!;
      this.#push({ deadlineMs: lease.deadlineMs, lease });
    }
    return ids;
  }

  /** Milliseconds until the next deadline, or undefined with no leases. */
  nextDeadlineMs(): number | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (
        this.#leases.get(top.lease.id) === top.lease &&
        top.lease.deadlineMs === top.deadlineMs
      ) {
        return top.deadlineMs;
      }
      this.#pop();
    }
    return undefined;
  }

  #push(item: HeapItem): void {
    this.#siftUp(item);
    // Stale items from renewals are dropped lazily; rebuild when they
    // dominate so the heap stays O(live leases).
    if (this.#heap.length > 64 && this.#heap.length > 4 * this.#leases.size) {
      this.#rebuild();
    }
  }

  /** Appends `item` and moves it up to its place in the min-heap. */
  #siftUp(item: HeapItem): void {
    const heap = this.#heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.deadlineMs <= item.deadlineMs) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = item;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length &&
          heap[right]!.deadlineMs < heap[left]!.deadlineMs
        ? right
        : left;
      if (heap[child]!.deadlineMs >= last.deadlineMs) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }

  #rebuild(): void {
    this.#heap = [];
    for (const lease of this.#leases.values()) {
      this.#siftUp({ deadlineMs: lease.deadlineMs, lease });
    }
  }
}

/** A random lease ID in [1, 2^63), as etcd hands out. */
export function randomLeaseId(): bigint {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return ((BigInt(words[0]! & 0x7fffffff) << 32n) | BigInt(words[1]!)) || 1n;
}
