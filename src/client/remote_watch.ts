/**
 * A watch over the wire that survives failover: etcd's Watch stream, one
 * HTTP/2 stream per watch, opened again on the next endpoint when its
 * connection or member fails, from the revision after the last one the
 * caller was given — so no event is lost and none is delivered twice.
 *
 * The resume point is evidence-based, as clientv3's: after events, the
 * revision after the last event's `mod_revision`; after a progress
 * notification (which etcd sends only to a synced watcher), the revision
 * after its header's; for a watch that started "now", the revision after
 * the `created` response's header. A canceled response (compaction, or
 * the store closing) ends the watch; other stream errors are the caller's.
 *
 * Responses are pulled: the HTTP/2 window is credited back only as the
 * caller takes them (`grpc_client.ts`), so a slow consumer slows its
 * stream on the server, never this process's memory.
 *
 * @module
 */

import type { Bytes, KeySelector } from "../mvcc/kv.ts";
import type { WatchOptions, WatchResponse } from "../watch/watch_hub.ts";
import type { BidiCall } from "../wire/grpc_client.ts";
import * as pb from "../wire/etcd_messages.ts";
import type { EndpointPool } from "./endpoint_pool.ts";
import { StreamReopener } from "./stream_reopener.ts";
import { header, watchEvent, wireKeys, wireNumber } from "./wire_codec.ts";

const WATCH_PATH = "/etcdserverpb.Watch/Watch";

/** The open watch calls of a store, for progress requests and close. */
export class WatchCalls {
  readonly #calls = new Set<BidiCall>();

  /** Adds a call while it is open. */
  add(call: BidiCall): void {
    this.#calls.add(call);
  }

  /** Removes an ended call. */
  delete(call: BidiCall): void {
    this.#calls.delete(call);
  }

  /** Asks every open watch stream for a progress notification. */
  requestProgress(): void {
    const request = pb.encodeWatchRequest({ progressRequest: {} });
    for (const call of this.#calls) call.send(request).catch(() => {});
  }

  /** Cancels every open watch stream. */
  cancelAll(): void {
    for (const call of this.#calls) call.cancel();
    this.#calls.clear();
  }
}

/**
 * Watches `key` (with its selector and options) through `pool`, resuming
 * on another endpoint after a failure. See the module doc.
 */
export async function* remoteWatch(
  pool: EndpointPool,
  calls: WatchCalls,
  key: Bytes,
  options: WatchOptions & KeySelector,
): AsyncGenerator<WatchResponse> {
  const keys = wireKeys(key, options);
  const filters: number[] = [];
  if (options.noPut) filters.push(pb.WatchCreateRequest_FilterType.NOPUT);
  if (options.noDelete) {
    filters.push(pb.WatchCreateRequest_FilterType.NODELETE);
  }
  const signal = options.signal;
  let nextRevision = options.startRevision ?? 0;
  const reopener = new StreamReopener(pool, signal);
  for (;;) {
    const client = await reopener.client();
    if (client === undefined) return;
    const call = client.bidi(WATCH_PATH);
    calls.add(call);
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await call.send(pb.encodeWatchRequest({
        createRequest: {
          ...keys,
          startRevision: BigInt(nextRevision),
          progressNotify: options.progressNotify ?? false,
          filters,
          prevKv: options.prevKv ?? false,
        },
      }));
      for await (const message of call) {
        // In place: the message is the transport's private copy.
        const res = pb.decodeWatchResponse(message, { takeInput: true });
        reopener.delivered();
        if (res.created && !res.canceled) {
          if (nextRevision === 0) {
            nextRevision = wireNumber(res.header?.revision) + 1;
          }
          continue;
        }
        const response: WatchResponse = {
          header: { revision: header(res.header).revision },
          events: res.events.map(watchEvent),
          compactRevision: wireNumber(res.compactRevision),
          canceled: res.canceled,
        };
        if (res.cancelReason !== "") response.cancelReason = res.cancelReason;
        const last = response.events.at(-1);
        if (last) nextRevision = last.kv.modRevision + 1;
        else if (!res.canceled) {
          response.progressNotify = true;
          nextRevision = Math.max(nextRevision, response.header.revision + 1);
        }
        yield response;
        if (res.canceled) return;
      }
      // The server ended the stream without canceling this watch (it is
      // shutting down): open it again elsewhere.
      pool.failover(client);
    } catch (error) {
      if (!(await reopener.failed(client, error))) return;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      calls.delete(call);
      call.cancel();
    }
  }
}
