/**
 * A remote store the CLI can use before its connection is up: etcdctl's
 * client dials without blocking, so an unreachable endpoint is not an error
 * of its own — the first request fails (with `context deadline exceeded`)
 * and the command reports it in its own words (`Failed to get the status
 * of endpoint …`, `failed to grant lease (…)`, exit 5 for `snapshot save`).
 *
 * `PendingStore` gives the CLI that order: it wraps the promise of a
 * connection and forwards each call once it resolves, so a failed
 * connection reaches every command through the same error path as a failed
 * request.
 *
 * @module
 */

import {
  type Bytes,
  type CompactOptions,
  type CompactResponse,
  type DeleteOptions,
  type DeleteResponse,
  type HashKvResponse,
  type KeySelector,
  type KeyValue,
  type KvStore,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveResponse,
  type MemberListResponse,
  type PutOptions,
  type PutResponse,
  type RangeOptions,
  type RangeResponse,
  type ResponseHeader,
  type ScanOptions,
  type StatusResponse,
  TxnBuilder,
  type TxnRequest,
  type TxnResponse,
  type WatchOptions,
  type WatchResponse,
} from "../../mod.ts";

/** A `KvStore` whose calls wait for a connection that is being made. */
export class PendingStore implements KvStore {
  readonly #ready: Promise<KvStore>;
  /** The connected store, once there is one. */
  #store: KvStore | undefined;

  /** @param connecting resolves to the connected store (or rejects). */
  constructor(connecting: Promise<KvStore>) {
    this.#ready = connecting.then((store) => this.#store = store);
    // A command may end before its first request (a bad argument): the
    // failed connection is then nobody's error.
    this.#ready.catch(() => {});
  }

  /** The connected store; rejects as the connection did. */
  connected(): Promise<KvStore> {
    return this.#ready;
  }

  async get(key: Bytes, options?: RangeOptions): Promise<RangeResponse> {
    return (await this.#ready).get(key, options);
  }

  async *scan(key: Bytes, options?: ScanOptions): AsyncIterable<KeyValue> {
    yield* (await this.#ready).scan(key, options);
  }

  async put(
    key: Bytes,
    value: Bytes,
    options?: PutOptions,
  ): Promise<PutResponse> {
    return (await this.#ready).put(key, value, options);
  }

  async delete(key: Bytes, options?: DeleteOptions): Promise<DeleteResponse> {
    return (await this.#ready).delete(key, options);
  }

  txn(request: TxnRequest): Promise<TxnResponse>;
  txn(): TxnBuilder;
  txn(request?: TxnRequest): Promise<TxnResponse> | TxnBuilder {
    if (request === undefined) return new TxnBuilder((r) => this.txn(r));
    return this.#ready.then((store) => store.txn(request));
  }

  async compact(
    revision: number,
    options?: CompactOptions,
  ): Promise<CompactResponse> {
    return (await this.#ready).compact(revision, options);
  }

  async *watch(
    key: Bytes,
    options?: WatchOptions & KeySelector,
  ): AsyncIterableIterator<WatchResponse> {
    yield* (await this.#ready).watch(key, options);
  }

  requestWatchProgress(): void {
    // Without a connection there is no watch to ask.
    this.#store?.requestWatchProgress();
  }

  async grant(
    ttlSeconds: number,
    options?: { id?: bigint },
  ): Promise<LeaseGrantResponse> {
    return (await this.#ready).grant(ttlSeconds, options);
  }

  async revoke(id: bigint): Promise<LeaseRevokeResponse> {
    return (await this.#ready).revoke(id);
  }

  async keepAlive(id: bigint): Promise<LeaseKeepAliveResponse> {
    return (await this.#ready).keepAlive(id);
  }

  async *keepAliveStream(
    id: bigint,
    options?: { signal?: AbortSignal },
  ): AsyncIterable<LeaseKeepAliveResponse> {
    yield* (await this.#ready).keepAliveStream(id, options);
  }

  async timeToLive(
    id: bigint,
    options?: { keys?: boolean },
  ): Promise<LeaseTimeToLiveResponse> {
    return (await this.#ready).timeToLive(id, options);
  }

  async leases(): Promise<LeaseLeasesResponse> {
    return (await this.#ready).leases();
  }

  async status(): Promise<StatusResponse> {
    return (await this.#ready).status();
  }

  async hashKv(revision?: number): Promise<HashKvResponse> {
    return (await this.#ready).hashKv(revision);
  }

  async memberList(): Promise<MemberListResponse> {
    return (await this.#ready).memberList();
  }

  async alarmList(): Promise<string[]> {
    return (await this.#ready).alarmList();
  }

  async alarmDisarm(): Promise<void> {
    return (await this.#ready).alarmDisarm();
  }

  async defrag(): Promise<{ header: ResponseHeader }> {
    return (await this.#ready).defrag();
  }

  async saveSnapshot(file: string): Promise<{ sizeBytes: number }> {
    return (await this.#ready).saveSnapshot(file);
  }

  /** Closes the connection if one was made. */
  async close(): Promise<void> {
    let store: KvStore;
    try {
      store = await this.#ready;
    } catch {
      return;
    }
    await store.close();
  }
}
