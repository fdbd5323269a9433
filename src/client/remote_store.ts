/**
 * `RemoteStore`: the `KvStore` interface over etcd's gRPC API, to a revkv
 * server or a real etcd cluster. Each method is one translation (request
 * out through `wire_codec.ts`, response back) plus the pool's failover and
 * retry policy (`endpoint_pool.ts`): reads — Range, Txn without writes,
 * lease and maintenance queries — are retried on another endpoint when
 * theirs fails; writes only when they cannot have left. Watches resume
 * without gap (`remote_watch.ts`); lease keep-alive streams open again on
 * the next endpoint and go on renewing.
 *
 * @module
 */

import type {
  Bytes,
  CompactResponse,
  DeleteOptions,
  DeleteResponse,
  KeySelector,
  KeyValue,
  PutOptions,
  PutResponse,
  RangeOptions,
  RangeResponse,
  ResponseHeader,
} from "../mvcc/kv.ts";
import { errors } from "../mvcc/errors.ts";
import { successor } from "../mvcc/key_bounds.ts";
import { isReadOnly, type TxnRequest, type TxnResponse } from "../txn/txn.ts";
import { TxnBuilder } from "../txn/builder.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
} from "../lease/lease_service.ts";
import type { WatchOptions, WatchResponse } from "../watch/watch_hub.ts";
import type {
  CompactOptions,
  HashKvResponse,
  KvStore,
  MemberListResponse,
  ScanOptions,
  StatusResponse,
} from "../store_api.ts";
import * as pb from "../wire/etcd_messages.ts";
import { runtime } from "../storage/runtime.ts";
import type { CallOptions } from "../wire/grpc_client.ts";
import type { EndpointPool, RetryPolicy } from "./endpoint_pool.ts";
import { fromGrpcError } from "./errors.ts";
import { remoteWatch, WatchCalls } from "./remote_watch.ts";
import { sleep, StreamReopener } from "./stream_reopener.ts";
import {
  deleteRequest,
  deleteResponse,
  header,
  putRequest,
  putResponse,
  rangeRequest,
  rangeResponse,
  txnRequest,
  txnResponse,
  wireNumber,
} from "./wire_codec.ts";

const KV = "/etcdserverpb.KV/";
const LEASE = "/etcdserverpb.Lease/";
const MAINTENANCE = "/etcdserverpb.Maintenance/";
const CLUSTER = "/etcdserverpb.Cluster/";

/** Keys fetched per page by `scan` unless told otherwise. */
const DEFAULT_SCAN_PAGE_KEYS = 256;
/** Shortest pause between two renewals of a kept-alive lease. */
const KEEPALIVE_MIN_INTERVAL_MS = 500;

/** etcd's AlarmType names by wire number. */
const ALARM_NAMES = ["NONE", "NOSPACE", "CORRUPT"] as const;

/**
 * How responses are decoded: in place. Each message the gRPC client hands
 * over is already a private copy (`MessageReader` copies it out of the read
 * buffer), so the decoder's own copy would be a second one per response:
 * ~3 µs of a 15 µs 100-key RangeResponse decode (bench/wire_bench.ts), and
 * a fifth of the sampled CPU of a 100-key range in a profile of
 * bench/client_bench.ts (allocation and GC of the copy included).
 */
const IN_PLACE: pb.DecodeOptions = { takeInput: true };

type Decoder<T> = (bytes: Uint8Array, options?: pb.DecodeOptions) => T;

/** A store behind the wire. Build one with `connect()`. */
export class RemoteStore implements KvStore {
  readonly #pool: EndpointPool;
  readonly #requestTimeoutMs: number | undefined;
  readonly #watches = new WatchCalls();
  readonly #keepAlives = new Set<AbortController>();

  /**
   * A store over `pool`.
   * @param pool the connections.
   * @param requestTimeoutMs deadline of each unary call (undefined: none).
   */
  constructor(pool: EndpointPool, requestTimeoutMs: number | undefined) {
    this.#pool = pool;
    this.#requestTimeoutMs = requestTimeoutMs;
  }

  /** The endpoint calls go to now (its text as given to `connect`). */
  get endpoint(): string | undefined {
    return this.#pool.currentEndpoint?.text;
  }

  async #call<T>(
    path: string,
    request: Uint8Array,
    decode: Decoder<T>,
    retry: RetryPolicy,
    options: CallOptions = {},
  ): Promise<T> {
    const bytes = await this.#pool.unary(path, request, retry, {
      timeoutMs: this.#requestTimeoutMs,
      ...options,
    });
    return decode(bytes, IN_PLACE);
  }

  /** etcd's Range. */
  async get(key: Bytes, options: RangeOptions = {}): Promise<RangeResponse> {
    const request = pb.encodeRangeRequest(rangeRequest(key, options));
    const res = await this.#call(
      `${KV}Range`,
      request,
      pb.decodeRangeResponse,
      "reads",
    );
    return rangeResponse(res);
  }

  /**
   * Every key of a range at one revision, fetched `pageKeys` at a time: the
   * first page fixes the revision, later pages read at it (so a compaction
   * past it fails the scan with `CompactedError`, as embedded).
   */
  async *scan(key: Bytes, options: ScanOptions = {}): AsyncGenerator<KeyValue> {
    const pageKeys = Math.max(1, options.pageKeys ?? DEFAULT_SCAN_PAGE_KEYS);
    const reverse = options.reverse ?? false;
    const selector: KeySelector = {
      rangeEnd: options.rangeEnd,
      prefix: options.prefix,
      fromKey: options.fromKey,
    };
    const first = rangeRequest(key, selector);
    let start = first.key as Uint8Array;
    let end = first.rangeEnd as Uint8Array;
    let revision = options.revision ?? 0;
    for (;;) {
      const res = await this.get(start, {
        rangeEnd: end.length === 0 ? undefined : end,
        revision,
        limit: pageKeys,
        keysOnly: options.keysOnly,
        sortOrder: reverse ? "descend" : "ascend",
        sortTarget: "key",
      });
      if (revision === 0) revision = res.header.revision;
      for (const kv of res.kvs) yield kv;
      const last = res.kvs.at(-1);
      if (!res.more || last === undefined || end.length === 0) return;
      if (reverse) end = last.key;
      else start = successor(last.key);
    }
  }

  /** etcd's Put (not retried once it may have reached a member). */
  async put(
    key: Bytes,
    value: Bytes,
    options: PutOptions = {},
  ): Promise<PutResponse> {
    const request = pb.encodePutRequest(putRequest(key, value, options));
    const res = await this.#call(
      `${KV}Put`,
      request,
      pb.decodePutResponse,
      "unsent",
    );
    return putResponse(res);
  }

  /** etcd's DeleteRange. */
  async delete(
    key: Bytes,
    options: DeleteOptions = {},
  ): Promise<DeleteResponse> {
    const request = pb.encodeDeleteRangeRequest(deleteRequest(key, options));
    const res = await this.#call(
      `${KV}DeleteRange`,
      request,
      pb.decodeDeleteRangeResponse,
      "unsent",
    );
    return deleteResponse(res);
  }

  /** etcd's Txn, from a request. */
  txn(request: TxnRequest): Promise<TxnResponse>;
  /** etcd's Txn, built step by step; `commit()` runs it. */
  txn(): TxnBuilder;
  txn(request?: TxnRequest): Promise<TxnResponse> | TxnBuilder {
    const run = async (req: TxnRequest): Promise<TxnResponse> => {
      const bytes = pb.encodeTxnRequest(txnRequest(req));
      const res = await this.#call(
        `${KV}Txn`,
        bytes,
        pb.decodeTxnResponse,
        isReadOnly(req) ? "reads" : "unsent",
      );
      return txnResponse(res);
    };
    // `run` is async: bad input rejects, it never throws.
    return request === undefined ? new TxnBuilder(run) : run(request);
  }

  /** etcd's Compact. */
  async compact(
    revision: number,
    options: CompactOptions = {},
  ): Promise<CompactResponse> {
    const request = pb.encodeCompactionRequest({
      revision: BigInt(revision),
      physical: options.physical ?? false,
    });
    const res = await this.#call(
      `${KV}Compact`,
      request,
      pb.decodeCompactionResponse,
      "unsent",
    );
    return { header: header(res.header) };
  }

  /**
   * etcd's Watch, resumed on another endpoint after a failure with no
   * event lost or repeated. Ends on cancel, compaction, `signal` or close.
   */
  watch(
    key: Bytes,
    options: WatchOptions & KeySelector = {},
  ): AsyncIterableIterator<WatchResponse> {
    if (this.#pool.closed) throw errors.storeClosed();
    return remoteWatch(this.#pool, this.#watches, key, options);
  }

  /** Asks every watch of this store for a progress notification. */
  requestWatchProgress(): void {
    this.#watches.requestProgress();
  }

  /** etcd's LeaseGrant. */
  async grant(
    ttlSeconds: number,
    options: { id?: bigint } = {},
  ): Promise<LeaseGrantResponse> {
    const request = pb.encodeLeaseGrantRequest({
      TTL: BigInt(ttlSeconds),
      ID: options.id ?? 0n,
    });
    const res = await this.#call(
      `${LEASE}LeaseGrant`,
      request,
      pb.decodeLeaseGrantResponse,
      "unsent",
    );
    return { header: header(res.header), id: res.ID, ttl: wireNumber(res.TTL) };
  }

  /** etcd's LeaseRevoke. */
  async revoke(id: bigint): Promise<LeaseRevokeResponse> {
    const request = pb.encodeLeaseRevokeRequest({ ID: id });
    const res = await this.#call(
      `${LEASE}LeaseRevoke`,
      request,
      pb.decodeLeaseRevokeResponse,
      "unsent",
    );
    return { header: header(res.header) };
  }

  /**
   * One keep-alive of a lease.
   * @throws EtcdError `etcdserver: requested lease not found` when the
   *   lease is gone (etcd answers TTL 0; the embedded store throws).
   */
  async keepAlive(id: bigint): Promise<LeaseKeepAliveResponse> {
    const client = await this.#pool.client();
    const call = client.bidi(`${LEASE}LeaseKeepAlive`, {
      timeoutMs: this.#requestTimeoutMs,
    });
    try {
      await call.send(pb.encodeLeaseKeepAliveRequest({ ID: id }));
      call.end();
      for await (const message of call) {
        return keepAliveResponse(
          pb.decodeLeaseKeepAliveResponse(message, IN_PLACE),
        );
      }
      await call.done;
      throw errors.leaseNotFound();
    } catch (error) {
      this.#pool.streamFailed(client, error);
      throw fromGrpcError(error);
    } finally {
      call.cancel();
    }
  }

  /**
   * Keeps a lease alive, renewing it every third of its TTL, until
   * `signal` aborts or the store closes; yields each renewal. A failed
   * endpoint does not end it: the stream opens again on the next one.
   * @throws EtcdError `etcdserver: requested lease not found` when the
   *   lease is gone.
   */
  async *keepAliveStream(
    id: bigint,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<LeaseKeepAliveResponse> {
    const stop = new AbortController();
    const outer = options.signal;
    const onAbort = () => stop.abort();
    outer?.addEventListener("abort", onAbort, { once: true });
    if (outer?.aborted) stop.abort();
    this.#keepAlives.add(stop);
    const signal = stop.signal;
    const reopener = new StreamReopener(this.#pool, signal);
    try {
      for (;;) {
        const client = await reopener.client();
        if (client === undefined) return;
        const call = client.bidi(`${LEASE}LeaseKeepAlive`);
        const cancel = () => call.cancel();
        signal.addEventListener("abort", cancel, { once: true });
        const responses = call[Symbol.asyncIterator]();
        try {
          while (!signal.aborted) {
            await call.send(pb.encodeLeaseKeepAliveRequest({ ID: id }));
            const next = await responses.next();
            if (next.done) {
              await call.done;
              break;
            }
            reopener.delivered();
            const response = keepAliveResponse(
              pb.decodeLeaseKeepAliveResponse(next.value, IN_PLACE),
            );
            yield response;
            await sleep(
              Math.max(KEEPALIVE_MIN_INTERVAL_MS, (response.ttl * 1000) / 3),
              signal,
            );
          }
          if (!signal.aborted) this.#pool.failover(client);
        } catch (error) {
          if (!(await reopener.failed(client, error))) return;
        } finally {
          signal.removeEventListener("abort", cancel);
          call.cancel();
        }
      }
    } finally {
      outer?.removeEventListener("abort", onAbort);
      this.#keepAlives.delete(stop);
    }
  }

  /** etcd's LeaseTimeToLive. */
  async timeToLive(
    id: bigint,
    options: { keys?: boolean } = {},
  ): Promise<LeaseTimeToLiveResponse> {
    const request = pb.encodeLeaseTimeToLiveRequest({
      ID: id,
      keys: options.keys ?? false,
    });
    const res = await this.#call(
      `${LEASE}LeaseTimeToLive`,
      request,
      pb.decodeLeaseTimeToLiveResponse,
      "reads",
    );
    return {
      header: header(res.header),
      id: res.ID,
      ttl: wireNumber(res.TTL),
      grantedTtl: wireNumber(res.grantedTTL),
      keys: res.keys,
    };
  }

  /** etcd's LeaseLeases. */
  async leases(): Promise<LeaseLeasesResponse> {
    const res = await this.#call(
      `${LEASE}LeaseLeases`,
      pb.encodeLeaseLeasesRequest({}),
      pb.decodeLeaseLeasesResponse,
      "reads",
    );
    return {
      header: header(res.header),
      leases: res.leases.map((lease) => ({ id: lease.ID })),
    };
  }

  /** etcd's Status of the member answering. */
  async status(): Promise<StatusResponse> {
    const res = await this.#call(
      `${MAINTENANCE}Status`,
      pb.encodeStatusRequest({}),
      pb.decodeStatusResponse,
      "reads",
    );
    return {
      header: header(res.header),
      version: res.version,
      dbSizeBytes: wireNumber(res.dbSize),
      dbSizeInUseBytes: wireNumber(res.dbSizeInUse),
      leader: res.leader,
      raftIndex: wireNumber(res.raftIndex),
      raftTerm: wireNumber(res.raftTerm),
      raftAppliedIndex: wireNumber(res.raftAppliedIndex),
      isLearner: res.isLearner,
      errors: res.errors,
    };
  }

  /** etcd's HashKV at `revision` (0 = the current revision). */
  async hashKv(revision = 0): Promise<HashKvResponse> {
    const res = await this.#call(
      `${MAINTENANCE}HashKV`,
      pb.encodeHashKVRequest({ revision: BigInt(revision) }),
      pb.decodeHashKVResponse,
      "reads",
    );
    return {
      header: header(res.header),
      hash: res.hash,
      compactRevision: wireNumber(res.compactRevision),
    };
  }

  /** etcd's MemberList. */
  async memberList(): Promise<MemberListResponse> {
    const res = await this.#call(
      `${CLUSTER}MemberList`,
      pb.encodeMemberListRequest({}),
      pb.decodeMemberListResponse,
      "reads",
    );
    return {
      header: header(res.header),
      members: res.members.map((m) => ({
        id: m.ID,
        name: m.name,
        peerUrls: m.peerURLs,
        clientUrls: m.clientURLs,
        isLearner: m.isLearner,
      })),
    };
  }

  async #alarms(): Promise<pb.AlarmMember[]> {
    const res = await this.#call(
      `${MAINTENANCE}Alarm`,
      pb.encodeAlarmRequest({ action: pb.AlarmRequest_AlarmAction.GET }),
      pb.decodeAlarmResponse,
      "reads",
    );
    return res.alarms;
  }

  /** etcd's AlarmList: the names of the active alarms ("NOSPACE"). */
  async alarmList(): Promise<string[]> {
    return (await this.#alarms()).map((a) =>
      ALARM_NAMES[a.alarm] ?? String(a.alarm)
    );
  }

  /** etcd's Alarm DEACTIVATE for every active alarm. */
  async alarmDisarm(): Promise<void> {
    for (const alarm of await this.#alarms()) {
      await this.#call(
        `${MAINTENANCE}Alarm`,
        pb.encodeAlarmRequest({
          action: pb.AlarmRequest_AlarmAction.DEACTIVATE,
          memberID: alarm.memberID,
          alarm: alarm.alarm,
        }),
        pb.decodeAlarmResponse,
        "unsent",
      );
    }
  }

  /** etcd's Defragment of the member answering. */
  async defrag(): Promise<{ header: ResponseHeader }> {
    const res = await this.#call(
      `${MAINTENANCE}Defragment`,
      pb.encodeDefragmentRequest({}),
      pb.decodeDefragmentResponse,
      "unsent",
      { timeoutMs: undefined },
    );
    return { header: header(res.header) };
  }

  /**
   * Streams the member's snapshot into `file` (written to `file.part`,
   * synced, then renamed, so a failed transfer leaves no `file`).
   */
  async saveSnapshot(file: string): Promise<{ sizeBytes: number }> {
    const client = await this.#pool.client();
    const call = client.bidi(`${MAINTENANCE}Snapshot`);
    const partFile = `${file}.part`;
    const fs = runtime.fs;
    const out = await fs.open(partFile, { create: true, write: true });
    let sizeBytes = 0;
    try {
      await out.truncate(0);
      await call.send(pb.encodeSnapshotRequest({}));
      call.end();
      for await (const message of call) {
        const res = pb.decodeSnapshotResponse(message, IN_PLACE);
        await out.writeAt(sizeBytes, res.blob);
        sizeBytes += res.blob.length;
      }
      await call.done;
      await out.syncData();
      out.close();
      await fs.rename(partFile, file);
      return { sizeBytes };
    } catch (error) {
      out.close();
      await fs.remove(partFile).catch(() => {});
      this.#pool.streamFailed(client, error);
      throw fromGrpcError(error);
    }
  }

  /** Ends every watch and keep-alive and closes the connection. */
  async close(): Promise<void> {
    for (const stop of this.#keepAlives) stop.abort();
    this.#watches.cancelAll();
    await this.#pool.close();
  }
}

function keepAliveResponse(
  res: pb.LeaseKeepAliveResponse,
): LeaseKeepAliveResponse {
  // etcd answers a keep-alive of an unknown lease with TTL 0.
  if (res.TTL <= 0n) throw errors.leaseNotFound();
  return { header: header(res.header), id: res.ID, ttl: wireNumber(res.TTL) };
}
