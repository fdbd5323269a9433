/**
 * etcd's Watch service: one bidirectional stream carrying any number of
 * watchers, each a `store.watch()` iterator, as etcd 3.4's
 * `serverWatchStream` (etcdserver/api/v3rpc/watch.go) behaves:
 *
 * - create: an empty key means `"\0"` (the smallest key); `range_end` `"\0"`
 *   means every key from `key` on; `start_revision` 0 means the next
 *   revision. The `created` response (header at the current revision) goes
 *   out before any event of that watcher. `watch_id` 0 picks the lowest free
 *   ID counting from 0 as etcd; a client-chosen ID that is in use is refused
 *   with `created` + `canceled`, `watch_id` -1 and etcd's reason, as is an
 *   empty range.
 * - events: one response per store response (history replays merged as the
 *   store merges them), with `prev_kv`, the NOPUT/NODELETE filters and
 *   `progress_notify` passed to the store. A start below the compaction
 *   gets `compact_revision` and `canceled`, and that watcher ends.
 * - `fragment`: a response larger than `--max-request-bytes` with two or
 *   more events is split as etcd's `sendFragments` splits it: events are
 *   added while the fragment stays under the limit, every fragment but the
 *   last has `fragment: true`.
 * - cancel: `canceled` with the ID; an unknown ID gets no answer (etcd).
 * - progress request: one response with `watch_id` -1 and the current
 *   revision, as etcd 3.4 sends it.
 * - the client half-closing its side ends the stream OK, as etcd.
 *
 * Bounds: a stream's responses are sent one at a time through the
 * transport's `MessageSink`, whose `send` resolves only when the client has
 * room (HTTP/2 flow control + the transport's per-stream buffer). Each
 * watcher pulls its next store response only after its last one was taken,
 * so a stream holds at most one encoded response per watcher plus one
 * control response. A watcher that is not pulled falls behind inside the
 * store (its queue is bounded: 128 responses / 4096 events), drops out of
 * the synced group and later catches up from history — so a client that
 * stops reading costs its own bounded queues and never blocks writers or
 * other streams. The number of watchers on one stream is bounded by
 * `WATCHERS_PER_STREAM_MAX`; past it, a create is refused like a duplicate
 * ID.
 *
 * @module
 */

import type { Store } from "../store.ts";
import type { WatchResponse } from "../watch/watch_hub.ts";
import type { CallContext, MessageSink } from "../wire/grpc_service.ts";
import * as pb from "../wire/etcd_messages.ts";
import {
  type Authorizer,
  bidi,
  type MethodEntries,
  toNumber,
  wireHeader,
  wireKeyValue,
} from "./method.ts";
import { compareBytes } from "../mvcc/kv_store.ts";

/**
 * Watchers one stream may hold. etcd has no limit; each watcher costs a
 * bounded store queue, so the bound keeps one stream's memory finite.
 * 10,000 is far above what clients open on one stream (clientv3 multiplexes
 * all of a client's watches on one stream per context).
 */
export const WATCHERS_PER_STREAM_MAX = 10_000;

/** clientv3.InvalidWatchID. */
const INVALID_WATCH_ID = -1n;
const DUPLICATE_ID_REASON =
  "mvcc: duplicate watch ID provided on the WatchStream";
const EMPTY_RANGE_REASON = "mvcc: watcher range is empty";
const TOO_MANY_WATCHERS_REASON =
  `revkv: too many watchers on one stream (the limit is ${WATCHERS_PER_STREAM_MAX})`;
const FILTER_NOPUT = pb.WatchCreateRequest_FilterType.NOPUT;
const FILTER_NODELETE = pb.WatchCreateRequest_FilterType.NODELETE;

/** Options of the Watch service. */
export interface WatchServiceOptions {
  /** etcd's `--max-request-bytes`: the size at which `fragment` splits. */
  maxRequestBytes: number;
  /** Aborted when the server shuts down: every stream ends OK at once. */
  closing?: AbortSignal;
}

/** The Watch service's method over `store`. */
export function watchMethods(
  store: Store,
  authorize: Authorizer,
  options: WatchServiceOptions,
): MethodEntries {
  return [[
    "/etcdserverpb.Watch/Watch",
    bidi(
      authorize,
      (requests, responses, context) =>
        new WatchStream(store, responses, context, options).run(requests),
      options.closing,
    ),
  ]];
}

interface ActiveWatcher {
  readonly abort: AbortController;
  readonly fragment: boolean;
}

class WatchStream {
  readonly #store: Store;
  readonly #sink: MessageSink;
  readonly #context: CallContext;
  readonly #maxRequestBytes: number;
  readonly #watchers = new Map<bigint, ActiveWatcher>();
  readonly #loops = new Set<Promise<void>>();
  #nextId = 0n;
  /** Sends, in order, one at a time (see the module comment). */
  #tail: Promise<void> = Promise.resolve();
  #failed: unknown;

  constructor(
    store: Store,
    sink: MessageSink,
    context: CallContext,
    options: WatchServiceOptions,
  ) {
    this.#store = store;
    this.#sink = sink;
    this.#context = context;
    this.#maxRequestBytes = options.maxRequestBytes;
  }

  async run(requests: AsyncIterable<Uint8Array>): Promise<void> {
    const onAbort = () => this.#stopAll();
    this.#context.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const bytes of requests) {
        if (this.#context.signal.aborted) break;
        const request = pb.decodeWatchRequest(bytes);
        if (request.createRequest) await this.#create(request.createRequest);
        else if (request.cancelRequest) {
          await this.#cancel(request.cancelRequest.watchId);
        } else if (request.progressRequest) {
          await this.#send({
            header: wireHeader(this.#store.header()),
            watchId: INVALID_WATCH_ID,
          });
        }
        if (this.#failed !== undefined) throw this.#failed;
      }
    } finally {
      this.#context.signal.removeEventListener("abort", onAbort);
      this.#stopAll();
      await Promise.allSettled([...this.#loops]);
    }
    if (this.#failed !== undefined) throw this.#failed;
  }

  async #create(req: pb.WatchCreateRequest): Promise<void> {
    const key = req.key.length === 0 ? new Uint8Array([0]) : req.key;
    const rangeEnd = req.rangeEnd.length === 0 ? undefined : req.rangeEnd;
    const header = wireHeader(this.#store.header());
    const refuse = (reason: string) =>
      this.#send({
        header,
        watchId: INVALID_WATCH_ID,
        created: true,
        canceled: true,
        cancelReason: reason,
      });
    let id = req.watchId;
    if (id !== 0n && this.#watchers.has(id)) {
      return refuse(DUPLICATE_ID_REASON);
    }
    if (this.#watchers.size >= WATCHERS_PER_STREAM_MAX) {
      return refuse(TOO_MANY_WATCHERS_REASON);
    }
    const isFromKey = rangeEnd !== undefined && rangeEnd.length === 1 &&
      rangeEnd[0] === 0;
    if (
      rangeEnd !== undefined && !isFromKey && compareBytes(key, rangeEnd) >= 0
    ) {
      return refuse(EMPTY_RANGE_REASON);
    }
    if (id === 0n) {
      while (this.#watchers.has(this.#nextId)) this.#nextId++;
      id = this.#nextId++;
    }
    const start = toNumber(req.startRevision);
    const abort = new AbortController();
    // Registered now, so that "the next revision" means after this request.
    const iterator = this.#store.watch(key, {
      rangeEnd,
      startRevision: start <= 0 ? this.#store.revision + 1 : start,
      prevKv: req.prevKv,
      noPut: req.filters.includes(FILTER_NOPUT),
      noDelete: req.filters.includes(FILTER_NODELETE),
      progressNotify: req.progressNotify,
      signal: abort.signal,
    });
    const watcher: ActiveWatcher = { abort, fragment: req.fragment };
    this.#watchers.set(id, watcher);
    await this.#send({ header, watchId: id, created: true });
    const loop = this.#pump(id, watcher, iterator);
    this.#loops.add(loop);
    loop.finally(() => this.#loops.delete(loop));
  }

  async #pump(
    id: bigint,
    watcher: ActiveWatcher,
    iterator: AsyncIterableIterator<WatchResponse>,
  ): Promise<void> {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done || watcher.abort.signal.aborted) return;
        const res = next.value;
        // A watch the store canceled for its own reasons (store closing)
        // ends the whole stream with etcd's "server stopped"; compaction
        // ends only this watcher, with compact_revision.
        if (res.canceled && res.compactRevision === 0) {
          this.#watchers.delete(id);
          return;
        }
        const message: Partial<pb.WatchResponse> = {
          header: wireHeader(this.#store.header(res.header.revision)),
          watchId: id,
          events: res.events.map((event) => ({
            type: event.type === "put"
              ? pb.Event_EventType.PUT
              : pb.Event_EventType.DELETE,
            kv: wireKeyValue(event.kv),
            prevKv: event.prevKv && wireKeyValue(event.prevKv),
          })),
          compactRevision: BigInt(res.compactRevision),
          canceled: res.canceled,
        };
        if (watcher.fragment) await this.#sendFragments(message);
        else await this.#send(message);
        if (res.canceled) {
          if (this.#watchers.get(id) === watcher) this.#watchers.delete(id);
          return;
        }
      }
    } catch (error) {
      if (!watcher.abort.signal.aborted) this.#failed ??= error;
    } finally {
      await iterator.return?.();
    }
  }

  async #cancel(id: bigint): Promise<void> {
    const watcher = this.#watchers.get(id);
    if (watcher === undefined) return;
    this.#watchers.delete(id);
    watcher.abort.abort();
    await this.#send({
      header: wireHeader(this.#store.header()),
      watchId: id,
      canceled: true,
    });
  }

  /** etcd's sendFragments: split by size, never below one event a fragment. */
  async #sendFragments(message: Partial<pb.WatchResponse>): Promise<void> {
    const events = message.events ?? [];
    const whole = pb.encodeWatchResponse(message);
    if (whole.length < this.#maxRequestBytes || events.length < 2) {
      return this.#sendBytes(whole);
    }
    const baseBytes =
      pb.encodeWatchResponse({ ...message, events: [], fragment: true })
        .length;
    let index = 0;
    while (index < events.length) {
      const chunk: pb.Event[] = [];
      let size = baseBytes;
      while (index < events.length) {
        const event = events[index]!;
        const eventBytes = pb.encodeEvent(event).length;
        const added = 1 + varintSize(eventBytes) + eventBytes;
        if (chunk.length > 0 && size + added >= this.#maxRequestBytes) break;
        chunk.push(event);
        size += added;
        index++;
      }
      await this.#send({
        ...message,
        events: chunk,
        fragment: index < events.length,
      });
    }
  }

  #send(message: Partial<pb.WatchResponse>): Promise<void> {
    return this.#sendBytes(pb.encodeWatchResponse(message));
  }

  #sendBytes(bytes: Uint8Array): Promise<void> {
    const sent = this.#tail.then(() => this.#sink.send(bytes));
    // The chain itself never rejects, so one failed send does not poison
    // the order of the others; the caller sees the failure.
    this.#tail = sent.catch(() => {});
    return sent;
  }

  #stopAll(): void {
    for (const watcher of this.#watchers.values()) watcher.abort.abort();
    this.#watchers.clear();
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}
