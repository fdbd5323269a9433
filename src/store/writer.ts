/**
 * The `Store`'s single writer: every write transaction, compaction record
 * and lease record goes through one `Writer`, which owns
 *
 * - write admission: a refusable write is refused with etcd's
 *   `etcdserver: too many requests` before it changes anything while the
 *   writes admitted and not yet durable are at their bound
 *   (`MAX_WRITES_IN_FLIGHT`, `MAX_WRITE_BYTES_IN_FLIGHT`);
 * - the write path, in order: apply to the engine (one revision per write
 *   transaction) -> lease attachments follow -> hand the changes to the
 *   `Journal` (its WAL group commit resolves once synced) -> mark committed
 *   -> publish to watchers -> build the response;
 * - the committed revision that reads default to: revisions whose sync ends
 *   early wait in `#pendingCommits` for the ones before them, so watchers
 *   see revisions strictly in order and only once durable;
 * - fail-stop: a journal failure refuses every later write (reads go on).
 *
 * In memory there is no journal: a write is committed when applied.
 *
 * @module
 */

import type { Change, MvccStore, WriteTxn } from "../mvcc/kv_store.ts";
import type { SnapshotStatus } from "../storage/snapshot.ts";
import type { JournalStats } from "../storage/journal.ts";
import { errors } from "../mvcc/errors.ts";

/**
 * Most writes (puts, deletes, txns, compactions, lease grants, renewals and
 * revocations) admitted but not yet durable. Past it a write fails at once
 * with `etcdserver: too many requests` and changes nothing, instead of
 * queueing: every waiting write holds its caller's promise, its changes and
 * its WAL record, so under a writer that outpaces the disk an unbounded
 * queue grows until the process dies. 5,000 is etcd's own limit on how far
 * its apply may lag its commit before it refuses requests
 * (`maxGapBetweenApplyAndCommitIndex`); it is also far more than one group
 * commit batch gathers (~64 with 64 writers), so it never costs throughput.
 */
export const MAX_WRITES_IN_FLIGHT = 5_000;
/**
 * Most bytes (keys and values, plus `WRITE_OVERHEAD_BYTES` each) of the
 * writes admitted but not yet durable; past it writes fail with
 * `etcdserver: too many requests`. 64 MiB is four full WAL batches
 * (`BATCH_BYTES_MAX`, 16 MiB): enough that the disk always has the next
 * batch ready, while a burst of large values cannot pile up gigabytes.
 */
export const MAX_WRITE_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
/** Bytes counted per write on top of its keys and values (record framing, bookkeeping). */
const WRITE_OVERHEAD_BYTES = 64;

/**
 * Where committed writes go to become durable. The in-memory store has none;
 * the durable store's journal (src/storage/) appends WAL records and
 * resolves once they are synced.
 */
export interface Journal {
  /** Records a write transaction's changes at `revision`; resolves when durable. */
  write(revision: number, changes: readonly Change[]): Promise<void>;
  /** Records a compaction at `revision`; resolves when durable. */
  compact(revision: number): Promise<void>;
  /** Records a lease grant (ID, TTL, wall-clock deadline); resolves when durable. */
  leaseGrant?(
    id: bigint,
    ttlSeconds: number,
    deadlineMs: number,
  ): Promise<void>;
  /** Records a lease renewal (a new deadline); resolves when durable. */
  leaseRenew?(id: bigint, deadlineMs: number): Promise<void>;
  /** Records that a lease is gone (its keys' deletion was written before). */
  leaseRevoke?(id: bigint): Promise<void>;
  /**
   * While true, incremental compaction waits: a snapshot is reading the
   * history at or below its revision.
   */
  readonly compactionHeld?: boolean;
  /** Writes a snapshot of the current state and drops older WAL (durable stores). */
  snapshot?(): Promise<SnapshotStatus>;
  /** Flushes and releases everything (the data dir lock included). */
  close(): Promise<void>;
  /** Counters of the group commit (batches, records, fsyncs), if kept. */
  readonly stats?: Readonly<JournalStats>;
}

/** What the writer tells the rest of the store. */
export interface WriterHooks {
  /** Throws when the store is closed or failed (checked before each write). */
  assertOpen(): void;
  /** The applied changes of a write, before it is durable (lease attachments). */
  onApplied(changes: readonly Change[]): void;
  /** A newly committed revision and its changes, in revision order (watch). */
  publish(revision: number, changes: readonly Change[]): void;
}

/** The single writer of a store: admission, journal, committed revision. */
export class Writer {
  readonly #mvcc: MvccStore;
  readonly journal: Journal | undefined;
  readonly #hooks: WriterHooks;
  readonly #maxWritesInFlight: number;
  readonly #maxWriteBytesInFlight: number;
  #failure: Error | undefined;
  #committedRevision: number;
  /** Synced revisions waiting for an earlier one (bounded by writes in flight). */
  readonly #pendingCommits = new Map<number, readonly Change[]>();
  /** No-change writes waiting for the revision they read to be synced. */
  #commitWaiters: {
    revision: number;
    resolve: () => void;
    reject: (error: unknown) => void;
  }[] = [];
  /** Writes admitted and not yet durable, and their bytes (see `admit`). */
  #writesInFlight = 0;
  #writeBytesInFlight = 0;

  constructor(
    mvcc: MvccStore,
    journal: Journal | undefined,
    limits: { maxWritesInFlight?: number; maxWriteBytesInFlight?: number },
    hooks: WriterHooks,
  ) {
    this.#mvcc = mvcc;
    this.journal = journal;
    this.#hooks = hooks;
    this.#maxWritesInFlight = limits.maxWritesInFlight ?? MAX_WRITES_IN_FLIGHT;
    this.#maxWriteBytesInFlight = limits.maxWriteBytesInFlight ??
      MAX_WRITE_BYTES_IN_FLIGHT;
    this.#committedRevision = mvcc.currentRevision;
  }

  /** The newest committed revision (what reads see by default). */
  get committedRevision(): number {
    return this.#committedRevision;
  }

  /** The journal failure that stopped writes, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Writes admitted and not yet durable. */
  get writesInFlight(): number {
    return this.#writesInFlight;
  }

  /** Bytes of the writes admitted and not yet durable. */
  get writeBytesInFlight(): number {
    return this.#writeBytesInFlight;
  }

  /**
   * Runs `apply` as one write transaction: it takes one revision if it
   * changed anything, and its response is built once the revision is
   * committed. A `refusable` write is refused when writes in flight are at
   * their bound (internal ones — a lease's revocation — never are).
   */
  async write<T>(
    apply: (txn: WriteTxn) => (revision: number) => T,
    refusable = true,
  ): Promise<T> {
    this.#hooks.assertOpen();
    if (refusable) this.admit();
    const txn = this.#mvcc.beginWrite();
    let respond: (revision: number) => T;
    try {
      respond = apply(txn);
    } catch (error) {
      txn.abort();
      throw error;
    }
    const revision = txn.commit();
    const changes = txn.changes;
    if (changes.length === 0) {
      // Nothing written, but what was read (a read-only txn's ranges and
      // compares) is the applied state: answer once that is durable, as
      // every read sees only committed revisions.
      if (revision > this.#committedRevision) {
        await this.inFlight(0, this.#whenCommitted(revision));
      }
      return respond(this.#committedRevision);
    }
    // Lease attachments follow the applied state at once, so that a
    // revocation right after sees every key it must delete.
    this.#hooks.onApplied(changes);
    // Committed: in memory at once; in a durable store only once its WAL
    // batch is synced (awaited here, without an extra async layer).
    const journal = this.journal;
    if (journal !== undefined) {
      if (this.#failure) throw this.#failure;
      const bytes = changeBytes(changes);
      this.#writesInFlight++;
      this.#writeBytesInFlight += bytes;
      try {
        await journal.write(revision, changes);
      } catch (error) {
        this.stop(error);
      } finally {
        this.#writesInFlight--;
        this.#writeBytesInFlight -= bytes;
      }
    }
    this.#markCommitted(revision, changes);
    return respond(revision);
  }

  /**
   * Push-back, as etcd's `etcdserver: too many requests`: refuses a write
   * before it changes anything while the writes admitted and not yet
   * durable are at `maxWritesInFlight` or `maxWriteBytesInFlight`. This
   * bounds the journal's pending records and `#pendingCommits` too: every
   * record the journal queues comes from an admitted write, and a pending
   * commit waits only for earlier writes still in flight.
   */
  admit(): void {
    if (
      this.#writesInFlight >= this.#maxWritesInFlight ||
      this.#writeBytesInFlight >= this.#maxWriteBytesInFlight
    ) {
      throw errors.tooManyRequests();
    }
  }

  /** Counts `pending` (of `bytes` bytes) as a write in flight until it settles. */
  async inFlight(
    bytes: number,
    pending: Promise<void> | undefined,
  ): Promise<void> {
    if (pending === undefined) return;
    this.#writesInFlight++;
    this.#writeBytesInFlight += bytes + WRITE_OVERHEAD_BYTES;
    try {
      await pending;
    } finally {
      this.#writesInFlight--;
      this.#writeBytesInFlight -= bytes + WRITE_OVERHEAD_BYTES;
    }
  }

  /** Fail-stop: the journal failed; every later write is refused. */
  stop(error: unknown): never {
    this.refuseWrites(error as Error);
    throw error;
  }

  /**
   * Refuses every write from now on with `error` (reads go on): fail-stop,
   * or a store opened read-only on a full disk.
   */
  refuseWrites(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#commitWaiters.splice(0)) waiter.reject(error);
  }

  /**
   * Moves the committed revision forward and hands each newly committed
   * revision's changes to the watchers, strictly in revision order (a
   * revision whose sync completes early waits here for the ones before it).
   */
  #markCommitted(revision: number, changes: readonly Change[]): void {
    if (revision <= this.#committedRevision) return;
    if (
      revision === this.#committedRevision + 1 &&
      this.#pendingCommits.size === 0
    ) {
      // The usual case: the next revision, nothing waiting behind it.
      this.#committedRevision = revision;
      this.#hooks.publish(revision, changes);
    } else {
      this.#pendingCommits.set(revision, changes);
      for (;;) {
        const next = this.#committedRevision + 1;
        const ready = this.#pendingCommits.get(next);
        if (ready === undefined) break;
        this.#pendingCommits.delete(next);
        this.#committedRevision = next;
        this.#hooks.publish(next, ready);
      }
    }
    if (this.#commitWaiters.length > 0) this.#wakeCommitWaiters();
  }

  /** Resolves once `revision` is committed (at once if it is). */
  #whenCommitted(revision: number): Promise<void> {
    if (revision <= this.#committedRevision) return Promise.resolve();
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#commitWaiters.push({ revision, resolve, reject });
    });
  }

  #wakeCommitWaiters(): void {
    const waiting = this.#commitWaiters;
    this.#commitWaiters = [];
    for (const waiter of waiting) {
      if (waiter.revision <= this.#committedRevision) waiter.resolve();
      else this.#commitWaiters.push(waiter);
    }
  }
}

/** Bytes a write's changes hold while in flight (keys, values, overhead). */
function changeBytes(changes: readonly Change[]): number {
  let bytes = WRITE_OVERHEAD_BYTES;
  for (const { key, entry } of changes) {
    bytes += key.length + (entry.value?.length ?? 0);
  }
  return bytes;
}
