/**
 * What a long-lived stream (a watch, a lease keep-alive) does when its
 * connection fails: open again through the pool on the next endpoint, after
 * a pause that doubles while failures repeat (from
 * `REOPEN_BACKOFF_FIRST_MS` to `REOPEN_BACKOFF_MAX_MS`) and starts afresh
 * once the stream delivers again — for as long as its owner wants it (its
 * signal not aborted, the store not closed). While no endpoint answers it
 * waits and tries again, as clientv3 does, unless the pool says streams are
 * not reopened (a data dir's local endpoint: its owner is gone).
 *
 * @module
 */

import type { GrpcClient } from "../wire/grpc_client.ts";
import type { EndpointPool } from "./endpoint_pool.ts";
import { fromGrpcError } from "./errors.ts";

/** First pause before a stream opens again after a failure; doubles. */
export const REOPEN_BACKOFF_FIRST_MS = 25;
/** Longest pause between reopen attempts. */
export const REOPEN_BACKOFF_MAX_MS = 1000;

/** The reopening of one stream. See the module doc. */
export class StreamReopener {
  #backoffMs = REOPEN_BACKOFF_FIRST_MS;

  /**
   * @param pool the connections.
   * @param signal the owner's: aborted, the stream is no longer wanted.
   */
  constructor(
    readonly pool: EndpointPool,
    readonly signal?: AbortSignal,
  ) {}

  /** Whether the stream is still wanted. */
  get wanted(): boolean {
    return !this.signal?.aborted && !this.pool.closed;
  }

  /**
   * The connection to open the stream on, waiting while no endpoint
   * answers; undefined once the stream is no longer wanted.
   * @throws the dial error when the pool does not reopen streams.
   */
  async client(): Promise<GrpcClient | undefined> {
    while (this.wanted) {
      try {
        return await this.pool.client();
      } catch (error) {
        if (!this.pool.reopenStreams) throw error;
        await this.#pause();
      }
    }
    return undefined;
  }

  /** The stream delivered: a later failure pauses from the start again. */
  delivered(): void {
    this.#backoffMs = REOPEN_BACKOFF_FIRST_MS;
  }

  /**
   * The stream on `client` failed with `error`. Resolves true (after the
   * pause) when it should be opened again, false when it is no longer
   * wanted.
   * @throws the error as the caller sees it when it was the server's answer
   *   to the stream, not a failure of its connection.
   */
  async failed(client: GrpcClient, error: unknown): Promise<boolean> {
    if (!this.wanted) return false;
    if (!this.pool.streamFailed(client, error)) throw fromGrpcError(error);
    await this.#pause();
    return true;
  }

  async #pause(): Promise<void> {
    await sleep(this.#backoffMs, this.signal);
    this.#backoffMs = Math.min(this.#backoffMs * 2, REOPEN_BACKOFF_MAX_MS);
  }
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
