/**
 * Leases as the store's users see them (etcd's Lease service): grant,
 * revoke, keep-alive (once and streaming), time-to-live, list, and expiry.
 * The lessor keeps the leases; this service turns requests into the store's
 * writes (a revocation deletes every attached key in ONE revision) and runs
 * the expiry timer off the lessor's deadline heap.
 *
 * @module
 */

import { errors, EtcdError } from "../mvcc/errors.ts";
import type { ResponseHeader } from "../mvcc/kv.ts";
import type { Change } from "../mvcc/kv_store.ts";
import { compareBytes } from "../mvcc/kv_store.ts";
import type { Lease, Lessor } from "./lessor.ts";
import { runtime } from "../storage/runtime.ts";

/** Response of `grant` (etcd's `LeaseGrantResponse`). */
export interface LeaseGrantResponse {
  /** Response header. */
  header: ResponseHeader;
  /** The lease ID. */
  id: bigint;
  /** The granted TTL in seconds (raised to the minimum). */
  ttl: number;
}

/** Response of `revoke` (etcd's `LeaseRevokeResponse`). */
export interface LeaseRevokeResponse {
  /** Response header (at the revision that deleted the keys, if any). */
  header: ResponseHeader;
}

/** Response of `keepAlive` (etcd's `LeaseKeepAliveResponse`). */
export interface LeaseKeepAliveResponse {
  /** Response header. */
  header: ResponseHeader;
  /** The lease ID. */
  id: bigint;
  /** The renewed TTL in seconds. */
  ttl: number;
}

/** Response of `timeToLive` (etcd's `LeaseTimeToLiveResponse`). */
export interface LeaseTimeToLiveResponse {
  /** Response header. */
  header: ResponseHeader;
  /** The lease ID. */
  id: bigint;
  /** Remaining seconds; -1 when the lease does not exist (expired or revoked). */
  ttl: number;
  /** The granted TTL in seconds; 0 when the lease does not exist. */
  grantedTtl: number;
  /** Attached keys, when asked for. */
  keys: Uint8Array[];
}

/** Response of `leases` (etcd's `LeaseLeasesResponse`). */
export interface LeaseLeasesResponse {
  /** Response header. */
  header: ResponseHeader;
  /** Every live lease. */
  leases: { id: bigint }[];
}

/** What the service needs from the store. */
export interface LeaseHost {
  /** Deletes `keys` in one write; returns the header of that write. */
  deleteKeys(keys: Uint8Array[]): Promise<ResponseHeader>;
  /** A header at the committed revision. */
  header(): ResponseHeader;
  /**
   * Throws EtcdError `etcdserver: too many requests` while the store's
   * writes in flight are at their bound (before a request changes anything).
   */
  admit(): void;
  /** Makes a grant durable (resolves when synced). */
  logGrant(id: bigint, ttlSeconds: number, deadlineMs: number): Promise<void>;
  /** Makes a renewal durable. */
  logRenew(id: bigint, deadlineMs: number): Promise<void>;
  /** Makes a revocation durable (after its keys were deleted). */
  logRevoke(id: bigint): Promise<void>;
  /** Whether the store is closed. */
  closed(): boolean;
}

/**
 * Upper bound on leases revoked per expiry pass; the pass continues on the
 * next timer tick, so a burst of expiries never monopolises the writer.
 */
export const EXPIRY_BATCH_LEASES = 256;
/** Longest sleep of the expiry timer (it re-checks the heap then). */
const EXPIRY_MAX_SLEEP_MS = 60_000;
/**
 * Wait of `keepAliveStream` before it retries a renewal the store refused
 * as `too many requests`: short against the 2 s minimum TTL, so a burst of
 * writes does not let a kept-alive lease lapse.
 */
const KEEPALIVE_RETRY_MS = 100;

/** The Lease service over a lessor and a store. */
export class LeaseService {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAtMs = Infinity;
  /** The running expiry pass, if any (passes never overlap). */
  #expiring: Promise<unknown> | undefined;

  /**
   * @param lessor the leases.
   * @param host the store's side.
   */
  constructor(readonly lessor: Lessor, readonly host: LeaseHost) {}

  /** Grants a lease of `ttlSeconds` (raised to 2 s), with a random or given ID. */
  async grant(ttlSeconds: number, id?: bigint): Promise<LeaseGrantResponse> {
    this.host.admit();
    const granted = this.lessor.prepareGrant(ttlSeconds, id);
    const deadlineMs = this.lessor.clock() + granted.ttlSeconds * 1000;
    this.lessor.add(granted.id, granted.ttlSeconds, deadlineMs);
    this.schedule();
    await this.host.logGrant(granted.id, granted.ttlSeconds, deadlineMs);
    return {
      header: this.host.header(),
      id: granted.id,
      ttl: granted.ttlSeconds,
    };
  }

  /**
   * Revokes a lease: every attached key is deleted in one revision.
   * @throws EtcdError `etcdserver: requested lease not found`.
   */
  revoke(id: bigint): Promise<LeaseRevokeResponse> {
    if (!this.lessor.get(id)) return Promise.reject(errors.leaseNotFound());
    try {
      this.host.admit();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#revoke(id);
  }

  /** Revokes an existing lease, admitted already (or by expiry: never refused). */
  async #revoke(id: bigint): Promise<LeaseRevokeResponse> {
    const lease = this.lessor.get(id);
    if (!lease) throw errors.leaseNotFound();
    const keys = [...lease.keys].sort(compareBytes);
    // Remove first, so that puts racing the revocation fail with "lease not
    // found" instead of attaching to a lease that is going away.
    this.lessor.remove(id);
    const header = keys.length > 0
      ? await this.host.deleteKeys(keys)
      : this.host.header();
    await this.host.logRevoke(id);
    return { header };
  }

  /**
   * Renews a lease to its full TTL.
   * @throws EtcdError `etcdserver: requested lease not found`.
   */
  async keepAlive(id: bigint): Promise<LeaseKeepAliveResponse> {
    const lease = this.lessor.get(id);
    if (!lease || this.lessor.remainingMs(lease) <= 0) {
      throw errors.leaseNotFound();
    }
    this.host.admit();
    const deadlineMs = this.lessor.clock() + lease.ttlSeconds * 1000;
    this.lessor.renew(id, deadlineMs);
    this.schedule();
    await this.host.logRenew(id, deadlineMs);
    return { header: this.host.header(), id, ttl: lease.ttlSeconds };
  }

  /**
   * Keeps a lease alive until `signal` aborts: renews every third of its
   * TTL and yields each renewal. Ends when the lease is gone.
   */
  async *keepAliveStream(
    id: bigint,
    signal?: AbortSignal,
  ): AsyncGenerator<LeaseKeepAliveResponse> {
    while (!signal?.aborted && !this.host.closed()) {
      let response: LeaseKeepAliveResponse;
      try {
        response = await this.keepAlive(id);
      } catch (error) {
        // Push-back from a busy store: retry soon rather than end the
        // stream (the lease's deadline is unchanged meanwhile).
        if (!isTooManyRequests(error)) throw error;
        if (await sleep(KEEPALIVE_RETRY_MS, signal)) return;
        continue;
      }
      yield response;
      const waitMs = Math.max(500, (response.ttl * 1000) / 3);
      const aborted = await sleep(waitMs, signal);
      if (aborted) return;
    }
  }

  /** Remaining and granted TTL of a lease, and its keys when asked. */
  timeToLive(
    id: bigint,
    options: { keys?: boolean } = {},
  ): LeaseTimeToLiveResponse {
    const lease = this.lessor.get(id);
    if (!lease) {
      return {
        header: this.host.header(),
        id,
        ttl: -1,
        grantedTtl: 0,
        keys: [],
      };
    }
    const remaining = Math.max(0, this.lessor.remainingMs(lease));
    return {
      header: this.host.header(),
      id,
      ttl: Math.floor(remaining / 1000),
      grantedTtl: lease.ttlSeconds,
      keys: options.keys
        ? [...lease.keys].sort(compareBytes).map((key) => key.slice())
        : [],
    };
  }

  /** Every live lease. */
  leases(): LeaseLeasesResponse {
    return {
      header: this.host.header(),
      leases: this.lessor.list().map((lease) => ({ id: lease.id })),
    };
  }

  /** Whether `id` names a live lease. */
  exists(id: bigint): boolean {
    return this.lessor.get(id) !== undefined;
  }

  /**
   * Moves key attachments after a write: a key re-put with another lease
   * (or none) leaves its old lease; a deleted key leaves its lease.
   */
  onChanges(changes: readonly Change[]): void {
    for (const { key, entry, prev } of changes) {
      const oldLease = prev?.lease ?? 0n;
      const newLease = entry.value === null ? 0n : entry.lease;
      if (oldLease === newLease) continue;
      // `key` is the engine's own key bytes: the same object for as long
      // as the key exists, so it identifies the key in the lease's set.
      if (oldLease !== 0n) this.lessor.detach(oldLease, key);
      if (newLease !== 0n) this.lessor.attach(newLease, key);
    }
  }

  /** Attaches a key when restoring state (no change event). */
  restoreAttachment(id: bigint, key: Uint8Array): void {
    this.lessor.attach(id, key);
  }

  /**
   * Revokes every expired lease now (bounded per call), and returns how
   * many it revoked. The timer calls it; tests with a manual clock too. A
   * call while another pass runs waits for it, then makes its own pass, so
   * a result of 0 means no lease was past its deadline when it looked.
   */
  async expireNow(): Promise<number> {
    while (this.#expiring) await this.#expiring.catch(() => {});
    const pass = this.#expirePass();
    this.#expiring = pass;
    try {
      return await pass;
    } finally {
      this.#expiring = undefined;
      this.schedule();
    }
  }

  async #expirePass(): Promise<number> {
    let revoked = 0;
    for (const id of this.lessor.expired(EXPIRY_BATCH_LEASES)) {
      if (this.host.closed()) break;
      if (!this.lessor.get(id)) continue;
      await this.#revoke(id);
      revoked++;
    }
    return revoked;
  }

  /** (Re)arms the expiry timer for the earliest deadline. */
  schedule(): void {
    if (this.host.closed()) return;
    const next = this.lessor.nextDeadlineMs();
    if (next === undefined) {
      this.#clearTimer();
      return;
    }
    if (this.#timer !== undefined && this.#timerAtMs <= next) return;
    this.#clearTimer();
    const delayMs = Math.min(
      EXPIRY_MAX_SLEEP_MS,
      Math.max(0, next - this.lessor.clock()),
    );
    this.#timerAtMs = next;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAtMs = Infinity;
      this.expireNow().catch(() => {/* the store is failing; it reports */});
    }, delayMs);
    // The timer must not keep a program alive on its own.
    runtime.unrefTimer(this.#timer);
  }

  /** Stops the timer (on close). */
  stop(): void {
    this.#clearTimer();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAtMs = Infinity;
  }
}

function isTooManyRequests(error: unknown): boolean {
  return error instanceof EtcdError &&
    error.message === errors.tooManyRequests().message;
}

function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(true);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(false);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export type { Lease };
