/**
 * The connections of a remote store: one HTTP/2 connection at a time, to
 * one of several endpoints, and what happens when it fails.
 *
 * - **Dialing.** Endpoints are tried in turn from the one after the last
 *   that failed. A dial is done when the TCP (or unix) connect succeeded
 *   and the server answered a PING, so a member that accepts but never
 *   speaks (stopped, overloaded) counts as down. When no endpoint answers,
 *   dialing goes round again with a growing pause until `dialTimeoutMs`
 *   has passed, then fails with clientv3's `context deadline exceeded`.
 * - **Failover.** A connection that closes, sends GOAWAY, misses a
 *   keepalive PING's answer within `keepAliveTimeoutMs` (PINGs go every
 *   `keepAliveTimeMs`, at least 10 s apart, while streams are open), or whose member
 *   says it has no leader, is dropped and the next call dials the next
 *   endpoint. Streams on it end; their owners (watch, lease keep-alive)
 *   open again through the pool.
 * - **Retries**, as clientv3's retry interceptor decides them: a call that
 *   cannot have reached a server (no connection, a connection already
 *   draining) is retried for every method; a call that may have reached
 *   one is retried only when it is a read (`retry: "reads"`) — a write
 *   that may have been applied is never sent twice. Attempts are bounded
 *   (`ATTEMPTS_PER_ENDPOINT` per endpoint) and by the call's deadline.
 *
 * Every call of every stream shares the active connection: HTTP/2 streams
 * are the multiplexing, and the connection's flow control and stream-slot
 * queue are the bounds.
 *
 * @module
 */

import {
  type CallOptions,
  connectGrpc,
  type GrpcClient,
} from "../wire/grpc_client.ts";
import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";
import { errors } from "../mvcc/errors.ts";
import type { Endpoint } from "./endpoints.ts";
import { deadlineExceeded, fromGrpcError } from "./errors.ts";
import { sleep } from "./stream_reopener.ts";
import { runtime } from "../storage/runtime.ts";

/** How a pool connects and keeps connections alive. */
export interface PoolOptions {
  /** The endpoints, tried in this order first. */
  endpoints: Endpoint[];
  /** How long a call waits for a connection when no endpoint answers. */
  dialTimeoutMs: number;
  /** PING the server after this long (0: no keepalive). */
  keepAliveTimeMs: number;
  /** Drop the connection when a PING is unanswered this long. */
  keepAliveTimeoutMs: number;
  /** Largest response message accepted. */
  maxReceiveMessageBytes?: number;
  /**
   * Whether watches and keep-alive streams wait and reopen while no
   * endpoint answers (default true, as clientv3); false ends them with
   * the dial error (a data dir's local endpoint: its owner is gone).
   */
  reopenStreams?: boolean;
}

/** Whether a call may be sent again after it may have reached a server. */
export type RetryPolicy = "reads" | "unsent";

/**
 * Shortest interval between keepalive PINGs, as grpc-go's client enforces
 * (`keepalive.ClientParameters.Time`): etcd's server allows one PING per 5 s
 * (`--grpc-keepalive-min-time`) and ends a connection after three faster
 * ones with GOAWAY `too_many_pings`. etcdctl's 2 s default becomes this.
 */
const KEEPALIVE_TIME_MIN_MS = 10_000;
/** Attempts of one call per endpoint before its error is the answer. */
const ATTEMPTS_PER_ENDPOINT = 2;
/** First pause between dial rounds and between retries; doubles. */
const BACKOFF_FIRST_MS = 25;
/** Longest pause between dial rounds and retries. */
const BACKOFF_MAX_MS = 500;

/** etcd's texts for a member that cannot serve now: try another. */
const MEMBER_UNAVAILABLE = new Set([
  "etcdserver: no leader",
  "etcdserver: leader changed",
  "etcdserver: not capable",
  "etcdserver: server stopped",
  "revkv: store is closed",
]);

interface Active {
  client: GrpcClient;
  index: number;
  keepAliveTimer?: ReturnType<typeof setInterval>;
}

/** The connections of one remote store. See the module doc. */
export class EndpointPool {
  readonly #options: PoolOptions;
  #next = 0;
  #active: Active | undefined;
  #dialing: Promise<Active> | undefined;
  #closed = false;
  /** A pool over `options.endpoints` (at least one). */
  constructor(options: PoolOptions) {
    if (options.endpoints.length === 0) {
      throw new TypeError("connect: at least one endpoint is required");
    }
    this.#options = options;
  }

  /** The endpoint calls go to now (undefined before the first dial). */
  get currentEndpoint(): Endpoint | undefined {
    const active = this.#active;
    return active && this.#options.endpoints[active.index];
  }

  /** Whether streams wait for an endpoint to answer again (see PoolOptions). */
  get reopenStreams(): boolean {
    return this.#options.reopenStreams ?? true;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The connection to use now: the active one, or a new one to the first
   * endpoint (in turn) that answers.
   * @throws EtcdError `context deadline exceeded` when none answered
   *   within `dialTimeoutMs`; `revkv: store is closed` after `close()`.
   */
  async client(): Promise<GrpcClient> {
    if (this.#closed) throw errors.storeClosed();
    const active = this.#active;
    if (active && !active.client.connection.draining) return active.client;
    if (active) this.failover(active.client);
    this.#dialing ??= this.#dialAny().finally(() => {
      this.#dialing = undefined;
    });
    return (await this.#dialing).client;
  }

  /**
   * Drops `client` if it is still the active connection, so that the next
   * call dials the next endpoint.
   */
  failover(client: GrpcClient): void {
    const active = this.#active;
    if (!active || active.client !== client) return;
    this.#active = undefined;
    this.#next = (active.index + 1) % this.#options.endpoints.length;
    clearInterval(active.keepAliveTimer);
    client.close().catch(() => {});
  }

  /**
   * One unary call with the pool's failover and retries.
   * @throws the call's error as `fromGrpcError` maps it.
   */
  async unary(
    path: string,
    request: Uint8Array,
    retry: RetryPolicy,
    callOptions: CallOptions = {},
  ): Promise<Uint8Array> {
    const deadline = callOptions.timeoutMs === undefined
      ? Infinity
      : Date.now() + callOptions.timeoutMs;
    const attemptsMax = ATTEMPTS_PER_ENDPOINT * this.#options.endpoints.length;
    let backoffMs = BACKOFF_FIRST_MS;
    for (let attempt = 1;; attempt++) {
      const client = await this.client();
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw deadlineExceeded();
      try {
        return await client.unary(path, request, {
          ...callOptions,
          timeoutMs: Number.isFinite(remainingMs) ? remainingMs : undefined,
        });
      } catch (error) {
        if (callOptions.signal?.aborted) throw fromGrpcError(error);
        const kind = this.#classify(client, error);
        if (kind !== "answer") this.failover(client);
        const mayRetry = kind === "unsent" ||
          (retry === "reads" && kind !== "answer");
        if (
          !mayRetry || attempt >= attemptsMax ||
          Date.now() + backoffMs >= deadline || this.#closed
        ) {
          throw fromGrpcError(error);
        }
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
      }
    }
  }

  /**
   * What a failed call tells about its connection: `answer` (the server
   * answered with an error: the call's result), `unsent` (the call never
   * left: the connection was closing), `lost` (the connection or the
   * member failed while the call was out: it may have been applied).
   */
  #classify(
    client: GrpcClient,
    error: unknown,
  ): "answer" | "unsent" | "lost" {
    if (!(error instanceof GrpcError)) return "answer";
    if (
      error.code === GrpcStatus.UNAVAILABLE &&
      /connection (is closing|closed)|too many calls waiting/.test(
        error.message,
      )
    ) return "unsent";
    if (MEMBER_UNAVAILABLE.has(error.message)) return "lost";
    if (
      error.code === GrpcStatus.UNAVAILABLE ||
      (error.code === GrpcStatus.CANCELLED && client.connection.draining)
    ) return "lost";
    return "answer";
  }

  /**
   * Whether a stream's failure means its connection (or member) failed, so
   * that the stream should be opened again elsewhere; drops the connection
   * when so.
   */
  streamFailed(client: GrpcClient, error: unknown): boolean {
    const kind = this.#classify(client, error);
    if (kind === "answer" && !client.connection.draining) return false;
    this.failover(client);
    return true;
  }

  /** Closes the connection; calls in flight fail, later calls are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    const active = this.#active;
    this.#active = undefined;
    if (active) {
      clearInterval(active.keepAliveTimer);
      await active.client.close().catch(() => {});
    }
    await this.#dialing?.then((a) => a.client.close()).catch(() => {});
  }

  async #dialAny(): Promise<Active> {
    const endpoints = this.#options.endpoints;
    const deadline = Date.now() + this.#options.dialTimeoutMs;
    let backoffMs = BACKOFF_FIRST_MS;
    let lastError: unknown;
    for (;;) {
      for (let i = 0; i < endpoints.length; i++) {
        if (this.#closed) throw errors.storeClosed();
        const index = (this.#next + i) % endpoints.length;
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) break;
        try {
          const client = await dial(
            endpoints[index]!,
            Math.min(remainingMs, this.#options.dialTimeoutMs),
            this.#options.maxReceiveMessageBytes,
          );
          if (this.#closed) {
            await client.close();
            throw errors.storeClosed();
          }
          return this.#activate(client, index);
        } catch (error) {
          lastError = error;
        }
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) {
        const error = deadlineExceeded();
        (error as Error & { cause?: unknown }).cause = lastError;
        throw error;
      }
      await sleep(Math.min(backoffMs, remainingMs));
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    }
  }

  #activate(client: GrpcClient, index: number): Active {
    const active: Active = { client, index };
    this.#active = active;
    this.#next = index;
    client.connection.closed.then(() => this.failover(client));
    const { keepAliveTimeoutMs } = this.#options;
    const keepAliveTimeMs = this.#options.keepAliveTimeMs > 0
      ? Math.max(this.#options.keepAliveTimeMs, KEEPALIVE_TIME_MIN_MS)
      : 0;
    if (keepAliveTimeMs > 0) {
      let waiting = false;
      active.keepAliveTimer = setInterval(() => {
        // As grpc-go's client without PermitWithoutStream: an idle
        // connection is not pinged (etcd counts such pings as strikes).
        if (waiting || client.connection.streamCount === 0) return;
        waiting = true;
        withTimeout(client.connection.ping(), keepAliveTimeoutMs).then(
          () => (waiting = false),
          () => this.failover(client),
        );
      }, keepAliveTimeMs);
      runtime.unrefTimer(active.keepAliveTimer!);
    }
    return active;
  }
}

/** Connects to one endpoint and waits for the server's PING answer. */
async function dial(
  endpoint: Endpoint,
  timeoutMs: number,
  maxReceiveMessageBytes: number | undefined,
): Promise<GrpcClient> {
  const connecting = connectGrpc(
    endpoint.kind === "unix"
      ? { hostname: "", port: 0, path: endpoint.path, maxReceiveMessageBytes }
      : {
        hostname: endpoint.hostname,
        port: endpoint.port,
        maxReceiveMessageBytes,
      },
  );
  const started = Date.now();
  let client: GrpcClient;
  try {
    client = await withTimeout(connecting, timeoutMs);
  } catch (error) {
    connecting.then((late) => late.close()).catch(() => {});
    throw error;
  }
  try {
    await withTimeout(
      client.connection.ping(),
      Math.max(1, timeoutMs - (Date.now() - started)),
    );
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
  return client;
}

/** `promise`, or a rejection with the deadline error after `timeoutMs`. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(deadlineExceeded()), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
