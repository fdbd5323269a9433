/**
 * One HTTP/2 connection (RFC 9113) over a byte stream, for either role.
 *
 * The connection owns everything below the request: the preface, SETTINGS
 * and their ACKs, PING answers, HPACK state, stream states (§5.1), flow
 * control in both directions (§5.2) and the error rules (§5.4). Above it,
 * a {@linkcode ConnectionHandler} sees streams: new streams from the peer
 * (server role), their header lists, data and resets. `openStream` starts a
 * stream from our side (client role), so a client reuses all of this.
 *
 * Reading: one loop reads into a reused buffer and processes every complete
 * frame synchronously; payloads handed up are views into that buffer, valid
 * only during the callback (copy to keep). Received DATA is charged to the
 * connection window and credited back at once (each stream's own window
 * bounds what a stream may buffer); a stream's window is credited only when
 * the handler says it consumed the bytes, so a handler that stops reading
 * stops its peer.
 *
 * Writing: frames are appended to one buffer and written in one
 * `conn.write` per event-loop turn (a microtask after the first frame), with
 * at most one write in flight. DATA is queued per stream and sent only
 * within both send windows, round robin over streams; when the unwritten
 * bytes pass a bound, no more DATA is produced and reading pauses until the
 * socket drains, so a peer that does not read cannot grow our memory.
 *
 * Errors: a stream error resets that stream (RST_STREAM); a connection
 * error sends GOAWAY with the last stream we processed and closes the
 * socket. Neither throws out of the connection. Floods of SETTINGS, PING,
 * RST_STREAM (rapid reset), refused streams and empty frames are bounded by
 * token buckets and end the connection with ENHANCE_YOUR_CALM.
 *
 * @module
 */

import {
  CONNECTION_PREFACE,
  decodeGoaway,
  decodePriority,
  decodeSettings,
  DEFAULT_FRAME_BYTES,
  DEFAULT_WINDOW_BYTES,
  ErrorCode,
  FRAME_BYTES_LIMIT,
  FRAME_HEADER_BYTES,
  FrameFlag,
  type FrameHeader,
  FrameType,
  Http2Error,
  newFrameHeader,
  payloadContent,
  type PayloadSpan,
  readUint32,
  SettingId,
  WINDOW_BYTES_MAX,
} from "./frame.ts";
import { FrameWriter } from "./frame_writer.ts";
import {
  IdlePinger,
  type KeepaliveOptions,
  PingEnforcer,
  TOO_MANY_PINGS,
} from "./keepalive.ts";
import {
  DEFAULT_TABLE_BYTES,
  type HeaderList,
  HpackDecoder,
  HpackEncoder,
  HpackError,
} from "./hpack.ts";
import type { SocketConn } from "../socket.ts";

/** Limits a connection enforces on its peer and advertises in SETTINGS. */
export interface ConnectionLimits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: peer streams open at once. */
  maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: what a peer stream may send unread. */
  initialWindowBytes: number;
  /** Connection receive window we keep open (credited on receipt). */
  connectionWindowBytes: number;
  /** SETTINGS_MAX_FRAME_SIZE we accept. */
  maxFrameBytes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a larger list is refused (431). */
  maxHeaderListBytes: number;
  /** Queued DATA per stream before `send` waits (backpressure). */
  streamSendBufferBytes: number;
  /** Unwritten output before DATA stops and reading pauses. */
  pendingWriteBytesMax: number;
  /** Control frames (ACKs, RSTs) queued unwritten before ENHANCE_YOUR_CALM. */
  pendingControlFramesMax: number;
}

/**
 * Defaults. Windows are larger than the RFC's 64 KiB so one etcd request
 * (up to 1.5 MiB) is not throttled by round trips on loopback; every value
 * is a bound on memory per connection: streams × window is what peers can
 * make us buffer (256 × 1 MiB at most, and only for streams whose handler
 * stops reading).
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConcurrentStreams: 256,
  initialWindowBytes: 1 << 20,
  connectionWindowBytes: 16 << 20,
  maxFrameBytes: DEFAULT_FRAME_BYTES,
  maxHeaderListBytes: 16 << 10,
  streamSendBufferBytes: 256 << 10,
  pendingWriteBytesMax: 8 << 20,
  pendingControlFramesMax: 1000,
};

/** Read buffer size: several max-size frames per read. */
const READ_BUFFER_BYTES = 256 << 10;
/**
 * Bound on the bytes of one header block across CONTINUATION frames: a
 * block may be larger than its decoded list when Huffman codes expand
 * (up to 30 bits per octet), so 4× the list limit, plus slack.
 */
const HEADER_BLOCK_FACTOR = 4;
/** CONTINUATION frames per header block (tiny ones are a flood). */
const CONTINUATIONS_PER_BLOCK_MAX = 128;
/** Unanswered PINGs of ours kept waiting for their ACK. */
const PINGS_IN_FLIGHT_MAX = 8;

/** Token bucket for SETTINGS, PING and empty/ignored frames: burst, per s. */
const CONTROL_BURST = 1000;
const CONTROL_PER_SECOND = 200;
/** Token bucket for peer RST_STREAM and refused streams (rapid reset). */
const RESET_BURST = 1000;
const RESET_PER_SECOND = 100;
/** Peer stream limit assumed before its SETTINGS arrive (RFC 9113 §5.1.2). */
const INITIAL_PEER_STREAMS_ASSUMED = 100;
/** Callers waiting for a stream slot (client role) before UNAVAILABLE. */
const STREAM_SLOT_WAITERS_MAX = 10_000;
/** SETTINGS parameters in one frame beyond which it is a flood. */
const SETTINGS_PER_FRAME_MAX = 64;

/** A token bucket: `take()` false means the peer exceeded its rate. */
class FloodGuard {
  #tokens: number;
  #last = performance.now();
  constructor(readonly burst: number, readonly perSecond: number) {
    this.#tokens = burst;
  }
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(
      this.burst,
      this.#tokens + (now - this.#last) * this.perSecond / 1000,
    );
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
  /** Forgives past use (the peer did useful work in between). */
  refill(): void {
    this.#tokens = this.burst;
  }
}

/** Stream states (RFC 9113 §5.1) that a live stream can be in. */
export type StreamState =
  | "open"
  | "half-closed-local"
  | "half-closed-remote"
  | "closed";

/** What the layer above sees of a connection. */
export interface ConnectionHandler {
  /**
   * A new stream from the peer, with its first header list (server role).
   * `endStream` means the peer sends nothing more.
   */
  onStream?(stream: Http2Stream, headers: HeaderList, endStream: boolean): void;
  /** The connection closed; every stream was reset or ended before. */
  onClose?(error?: Http2Error): void;
  /** The peer sent GOAWAY. */
  onGoaway?(lastStreamId: number, errorCode: number): void;
}

/** What the layer above sees of one stream. */
export interface StreamHandler {
  /** A header list after the first (trailers, or response headers). */
  onHeaders?(headers: HeaderList, endStream: boolean): void;
  /**
   * DATA content, a view valid only during the call. Call
   * `stream.consumed(n)` when the bytes are used, to reopen the window.
   */
  onData?(data: Uint8Array, endStream: boolean): void;
  /** The stream ended abnormally: peer RST_STREAM or connection loss. */
  onReset?(errorCode: number): void;
  /** Queued send data dropped below the stream's buffer bound. */
  onDrain?(): void;
}

/** One HTTP/2 stream. */
export class Http2Stream {
  /** The stream identifier. */
  readonly id: number;
  /** The RFC 9113 state. */
  state: StreamState = "open";
  /** Callbacks; set by the layer above before returning from `onStream`. */
  handler: StreamHandler = {};
  /** True once a header list was sent by us. */
  headersSent = false;
  /** Bytes we may still send (peer's window for us); may go negative. */
  sendWindow: number;
  /** Bytes the peer may still send us before we credit more. */
  receiveWindow: number;
  /** Received bytes not yet credited back. */
  unconsumedBytes = 0;
  /** @internal queued DATA chunks and progress into the first. */
  queue: Uint8Array[] = [];
  /** @internal offset into queue[0] already sent. */
  queueOffset = 0;
  /** @internal queued bytes not yet sent. */
  queuedBytes = 0;
  /** @internal END_STREAM after the queue drains (no trailers). */
  endAfterQueue = false;
  /** @internal trailers to send after the queue drains. */
  trailersAfterQueue: Uint8Array | undefined;
  /** @internal on the connection's ready list. */
  ready = false;
  /**
   * When set, the stream is reset with NO_ERROR as soon as our END_STREAM
   * is written while the peer is still sending (a gRPC server that ends a
   * call before the client half-closed, RFC 9113 §8.1).
   */
  resetOnLocalEnd = false;
  readonly #connection: Http2Connection;

  /** @internal created by the connection */
  constructor(connection: Http2Connection, id: number) {
    this.#connection = connection;
    this.id = id;
    this.sendWindow = connection.peerInitialWindowBytes;
    this.receiveWindow = connection.limits.initialWindowBytes;
  }

  /** The connection this stream belongs to. */
  get connection(): Http2Connection {
    return this.#connection;
  }

  /** True while we may still send on this stream. */
  get writable(): boolean {
    return (this.state === "open" || this.state === "half-closed-remote") &&
      !this.endAfterQueue && this.trailersAfterQueue === undefined;
  }

  /** Bytes queued for sending but not yet sent. */
  get bufferedBytes(): number {
    return this.queuedBytes;
  }

  /**
   * Sends a header list (HEADERS + CONTINUATION), optionally ending the
   * stream. Trailers after data wait for the data to be sent first.
   */
  sendHeaders(headers: HeaderList, endStream: boolean): void {
    this.sendHeaderBlock(this.#connection.encoder.encode(headers), endStream);
  }

  /** Like `sendHeaders` with an already encoded (stateless) block. */
  sendHeaderBlock(block: Uint8Array, endStream: boolean): void {
    if (!this.writable) return;
    if (this.headersSent && endStream && this.queuedBytes > 0) {
      this.trailersAfterQueue = block;
      this.#connection.markReady(this);
      return;
    }
    this.headersSent = true;
    this.#connection.writeHeaders(this, block, endStream);
  }

  /**
   * Queues data. Returns true when the stream's queue is under its bound
   * (send more), false when the caller should wait for `onDrain`.
   */
  sendData(data: Uint8Array, endStream = false): boolean {
    if (!this.writable) return false;
    if (data.length > 0) {
      this.queue.push(data);
      this.queuedBytes += data.length;
    }
    if (endStream) this.endAfterQueue = true;
    this.#connection.markReady(this);
    return this.queuedBytes < this.#connection.limits.streamSendBufferBytes;
  }

  /** Credits `bytes` of received data back to the peer's stream window. */
  consumed(bytes: number): void {
    this.#connection.consumed(this, bytes);
  }

  /** Resets the stream with an error code (RST_STREAM). */
  reset(errorCode: number = ErrorCode.CANCEL): void {
    this.#connection.resetStream(this, errorCode);
  }
}

/** Options for {@linkcode Http2Connection}. */
export interface ConnectionOptions {
  /** "server" expects the client preface; "client" sends it. */
  role: "server" | "client";
  /** Limits; defaults to {@linkcode DEFAULT_CONNECTION_LIMITS}. */
  limits?: Partial<ConnectionLimits>;
  /** Bytes already read from the socket (after preface sniffing). */
  initialBytes?: Uint8Array;
  /**
   * Server role: gRPC keepalive as grpc-go's server does it (`keepalive.ts`):
   * too-frequent client pings end the connection, idle peers are pinged.
   * Absent: pings are answered, bounded only by the flood guard.
   */
  keepalive?: KeepaliveOptions;
}

/** An HTTP/2 connection over a `SocketConn` (a SocketConn, a node:net socket, or any reader/writer pair). */
export class Http2Connection {
  /** Limits in force. */
  readonly limits: ConnectionLimits;
  /** Our role. */
  readonly role: "server" | "client";
  /** The stateless header encoder. */
  readonly encoder: HpackEncoder = new HpackEncoder();
  /** Peer's SETTINGS_INITIAL_WINDOW_SIZE. */
  peerInitialWindowBytes = DEFAULT_WINDOW_BYTES;
  /** Peer's SETTINGS_MAX_FRAME_SIZE. */
  peerMaxFrameBytes = DEFAULT_FRAME_BYTES;
  /**
   * Peer's SETTINGS_MAX_CONCURRENT_STREAMS. Until the peer's SETTINGS
   * arrive we assume 100, the RFC's recommended minimum, so an eager
   * client is not refused.
   */
  peerMaxConcurrentStreams = INITIAL_PEER_STREAMS_ASSUMED;
  /** Resolves when the socket is closed and every stream ended. */
  readonly closed: Promise<void>;

  readonly #conn: SocketConn;
  readonly #handler: ConnectionHandler;
  readonly #decoder: HpackDecoder;
  readonly #streams = new Map<number, Http2Stream>();
  #out = new FrameWriter();
  #spare = new FrameWriter();
  #writing = false;
  #flushScheduled = false;
  #pendingControlFrames = 0;
  #drainWaiters: (() => void)[] = [];
  #readyStreams: Http2Stream[] = [];
  #sendWindow = DEFAULT_WINDOW_BYTES;
  #receiveWindow = DEFAULT_WINDOW_BYTES;
  #lastPeerStreamId = 0;
  #nextOwnStreamId: number;
  #goawaySent = false;
  #goawayReceived = false;
  #closing = false;
  #isClosed = false;
  #resolveClosed!: () => void;
  #prefaceExpected: boolean;
  #settingsReceived = false;
  // Header block being assembled across CONTINUATION frames.
  #blockStreamId = 0;
  #blockFlags = 0;
  #blockParts: Uint8Array[] = [];
  #blockBytes = 0;
  #blockContinuations = 0;
  #ownStreams = 0;
  #slotsPromised = 0;
  #slotWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #controlGuard = new FloodGuard(CONTROL_BURST, CONTROL_PER_SECOND);
  // PINGs get their own bucket, refilled whenever we send a response:
  // grpc-go clients ping to estimate bandwidth while data flows, which is
  // legitimate; pings with no traffic in between are the flood.
  #pingGuard = new FloodGuard(CONTROL_BURST, CONTROL_PER_SECOND);
  /** Our unanswered PINGs, oldest first (ACKs come back in order). */
  readonly #pingWaiters: {
    resolve: () => void;
    reject: (error: Error) => void;
  }[] = [];
  #sentSincePing = false;
  #pingEnforcer: PingEnforcer | undefined;
  #idlePinger: IdlePinger | undefined;
  #lastReadMs = performance.now();
  #resetGuard = new FloodGuard(RESET_BURST, RESET_PER_SECOND);
  readonly #header: FrameHeader = newFrameHeader();
  readonly #span: PayloadSpan = { start: 0, end: 0 };

  /**
   * Starts the connection: sends our SETTINGS (after the preface in the
   * client role) and begins reading.
   */
  constructor(
    conn: SocketConn,
    handler: ConnectionHandler,
    options: ConnectionOptions,
  ) {
    this.#conn = conn;
    this.#handler = handler;
    this.role = options.role;
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
    this.#decoder = new HpackDecoder(DEFAULT_TABLE_BYTES);
    this.#nextOwnStreamId = this.role === "client" ? 1 : 2;
    this.#prefaceExpected = this.role === "server";
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    if (this.role === "client") this.#out.raw(CONNECTION_PREFACE);
    this.#out.settings([
      [SettingId.ENABLE_PUSH, 0],
      [SettingId.MAX_CONCURRENT_STREAMS, this.limits.maxConcurrentStreams],
      [SettingId.INITIAL_WINDOW_SIZE, this.limits.initialWindowBytes],
      [SettingId.MAX_FRAME_SIZE, this.limits.maxFrameBytes],
      [SettingId.MAX_HEADER_LIST_SIZE, this.limits.maxHeaderListBytes],
    ]);
    const extra = this.limits.connectionWindowBytes - DEFAULT_WINDOW_BYTES;
    if (extra > 0) {
      this.#out.windowUpdate(0, extra);
      this.#receiveWindow += extra;
    }
    this.#scheduleFlush();
    if (options.keepalive && this.role === "server") {
      this.#pingEnforcer = new PingEnforcer(options.keepalive.minTimeMs);
      this.#idlePinger = new IdlePinger({
        lastReadMs: () => this.#lastReadMs,
        // The answer is not awaited: any read counts as life (grpc-go).
        ping: () => void this.ping().catch(() => {}),
        close: () => void this.close(),
      }, options.keepalive);
    }
    this.#readLoop(options.initialBytes).catch(() => {});
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** The highest stream ID the peer opened (for GOAWAY). */
  get lastPeerStreamId(): number {
    return this.#lastPeerStreamId;
  }

  /** True after GOAWAY was sent or received: no new streams. */
  get draining(): boolean {
    return this.#goawaySent || this.#goawayReceived || this.#closing;
  }

  /**
   * Opens a stream from our side (client role) with its request headers:
   * a header list, or a block already encoded statelessly (a client sends
   * the same few blocks again and again; see `HpackEncoder`).
   *
   * @throws {Http2Error} REFUSED_STREAM when the connection is draining or
   *   the peer's concurrency limit is reached
   */
  openStream(
    headers: HeaderList | Uint8Array,
    endStream: boolean,
    handler: StreamHandler = {},
    slotReserved = false,
  ): Http2Stream {
    if (slotReserved) this.#slotsPromised--;
    if (this.draining || this.#isClosed) {
      throw new Http2Error(ErrorCode.REFUSED_STREAM, "connection is closing");
    }
    if (
      this.#ownStreams + (slotReserved ? 0 : this.#slotsPromised) >=
        this.peerMaxConcurrentStreams && !slotReserved
    ) {
      throw new Http2Error(
        ErrorCode.REFUSED_STREAM,
        `peer allows ${this.peerMaxConcurrentStreams} concurrent streams`,
      );
    }
    const stream = new Http2Stream(this, this.#nextOwnStreamId);
    this.#nextOwnStreamId += 2;
    this.#ownStreams++;
    stream.handler = handler;
    this.#streams.set(stream.id, stream);
    if (headers instanceof Uint8Array) {
      stream.sendHeaderBlock(headers, endStream);
    } else stream.sendHeaders(headers, endStream);
    return stream;
  }

  /**
   * Waits until a stream of ours may open within the peer's concurrency
   * limit (client role) and reserves it: pass `slotReserved` to the
   * `openStream` that follows, in the same turn. Rejects when the
   * connection closes or too many callers wait.
   */
  waitForStreamSlot(): Promise<void> {
    if (this.#isClosed || this.draining) {
      return Promise.reject(
        new Http2Error(ErrorCode.REFUSED_STREAM, "connection is closing"),
      );
    }
    if (
      this.#slotWaiters.length === 0 &&
      this.#ownStreams + this.#slotsPromised < this.peerMaxConcurrentStreams
    ) {
      this.#slotsPromised++;
      return Promise.resolve();
    }
    if (this.#slotWaiters.length >= STREAM_SLOT_WAITERS_MAX) {
      return Promise.reject(
        new Http2Error(ErrorCode.REFUSED_STREAM, "too many calls waiting"),
      );
    }
    return new Promise((resolve, reject) =>
      this.#slotWaiters.push({ resolve, reject })
    );
  }

  #wakeSlotWaiters(): void {
    while (
      this.#slotWaiters.length > 0 &&
      this.#ownStreams + this.#slotsPromised < this.peerMaxConcurrentStreams
    ) {
      this.#slotsPromised++;
      this.#slotWaiters.shift()!.resolve();
    }
  }

  /**
   * Sends a PING; resolves when its ACK arrives, rejects when the
   * connection closes first (a client's keepalive: no ACK within its
   * timeout means the peer is gone). At most `PINGS_IN_FLIGHT_MAX`
   * unanswered pings are kept; past that the oldest is dropped unanswered.
   */
  ping(): Promise<void> {
    if (this.#isClosed) {
      return Promise.reject(
        new Http2Error(ErrorCode.REFUSED_STREAM, "connection closed"),
      );
    }
    this.#out.ping(new Uint8Array(8), 0, false);
    this.#scheduleFlush();
    if (this.#pingWaiters.length >= PINGS_IN_FLIGHT_MAX) {
      this.#pingWaiters.shift();
    }
    return new Promise((resolve, reject) =>
      this.#pingWaiters.push({ resolve, reject })
    );
  }

  /**
   * Starts a graceful shutdown: GOAWAY(NO_ERROR) with the last stream we
   * took; streams open keep running. Call `close` when they are done.
   */
  goaway(errorCode: number = ErrorCode.NO_ERROR, debug = ""): void {
    if (this.#goawaySent || this.#isClosed) return;
    this.#goawaySent = true;
    this.#out.goaway(this.#lastPeerStreamId, errorCode, debug);
    this.#scheduleFlush();
    this.#maybeFinish();
  }

  /**
   * Closes the connection: resets every stream still open (their handlers
   * see `onReset(CANCEL)`), flushes what is written, closes the socket.
   */
  async close(): Promise<void> {
    if (this.#closing) return this.closed;
    this.#closing = true;
    if (!this.#goawaySent) this.goaway();
    for (const stream of [...this.#streams.values()]) {
      this.#endStream(stream, ErrorCode.CANCEL, true);
    }
    await this.#flushNow();
    this.#shutdownSocket();
    return this.closed;
  }

  // ---------------------------------------------------------------- writing

  /** @internal */
  writeHeaders(stream: Http2Stream, block: Uint8Array, endStream: boolean) {
    this.#sentSincePing = true;
    this.#pingEnforcer?.sent();
    this.#out.headers(stream.id, block, endStream, this.peerMaxFrameBytes);
    if (endStream) this.#localEnd(stream);
    this.#scheduleFlush();
  }

  /**
   * Writes HEADERS, one DATA and trailers for a whole unary response in one
   * go when the windows allow and nothing is queued; returns false (and
   * writes nothing) otherwise.
   *
   * @internal
   */
  writeWholeResponse(
    stream: Http2Stream,
    headers: Uint8Array,
    prefix: Uint8Array,
    message: Uint8Array,
    trailers: Uint8Array,
  ): boolean {
    const length = prefix.length + message.length;
    if (
      !stream.writable || stream.queuedBytes > 0 ||
      length > this.peerMaxFrameBytes || length > stream.sendWindow ||
      length > this.#sendWindow
    ) return false;
    const out = this.#out;
    this.#sentSincePing = true;
    this.#pingEnforcer?.sent();
    out.headers(stream.id, headers, false, this.peerMaxFrameBytes);
    out.frameHeader(length, FrameType.DATA, 0, stream.id);
    out.raw(prefix);
    out.raw(message);
    stream.sendWindow -= length;
    this.#sendWindow -= length;
    out.headers(stream.id, trailers, true, this.peerMaxFrameBytes);
    stream.headersSent = true;
    this.#localEnd(stream);
    this.#scheduleFlush();
    return true;
  }

  /** @internal */
  markReady(stream: Http2Stream): void {
    if (!stream.ready) {
      stream.ready = true;
      this.#readyStreams.push(stream);
    }
    this.#scheduleFlush();
  }

  /** @internal */
  consumed(stream: Http2Stream, bytes: number): void {
    if (bytes <= 0 || stream.state === "closed") return;
    stream.unconsumedBytes -= bytes;
    const credit = this.limits.initialWindowBytes - stream.receiveWindow -
      stream.unconsumedBytes;
    // Credit in chunks of at least a quarter window to keep frames few.
    if (credit >= this.limits.initialWindowBytes / 4) {
      stream.receiveWindow += credit;
      this.#out.windowUpdate(stream.id, credit);
      this.#scheduleFlush();
    }
  }

  /** @internal */
  resetStream(stream: Http2Stream, errorCode: number): void {
    if (stream.state === "closed") return;
    this.#out.rstStream(stream.id, errorCode);
    this.#pendingControlFrames++;
    this.#endStream(stream, errorCode, true);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#writing || this.#isClosed) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Moves queued DATA into the output buffer within the windows. */
  #pump(): void {
    const ready = this.#readyStreams;
    if (ready.length === 0) return;
    const out = this.#out;
    const limit = this.limits.pendingWriteBytesMax;
    let i = 0;
    // Round robin: one frame per stream per pass while anything moves.
    while (ready.length > 0 && out.length < limit) {
      if (i >= ready.length) i = 0;
      const stream = ready[i]!;
      const progressed = this.#pumpOne(stream);
      if (!stream.ready) {
        ready.splice(i, 1);
        continue;
      }
      if (!progressed) {
        // Blocked on a window; if the connection window is the block, stop.
        if (this.#sendWindow <= 0) break;
        i++;
        if (i >= ready.length && ready.every((s) => s.sendWindow <= 0)) break;
        continue;
      }
      i++;
    }
  }

  /** Sends at most one DATA frame of a stream; true when it moved bytes. */
  #pumpOne(stream: Http2Stream): boolean {
    if (stream.state === "closed" || stream.state === "half-closed-local") {
      stream.ready = false;
      return false;
    }
    if (stream.queuedBytes === 0) {
      stream.ready = false;
      if (stream.trailersAfterQueue) {
        const block = stream.trailersAfterQueue;
        stream.trailersAfterQueue = undefined;
        this.#out.headers(stream.id, block, true, this.peerMaxFrameBytes);
        this.#localEnd(stream);
      } else if (stream.endAfterQueue) {
        stream.endAfterQueue = false;
        this.#out.data(stream.id, new Uint8Array(0), 0, 0, true);
        this.#localEnd(stream);
      }
      return true;
    }
    const budget = Math.min(
      stream.sendWindow,
      this.#sendWindow,
      this.peerMaxFrameBytes,
    );
    if (budget <= 0) return false;
    const chunk = stream.queue[0]!;
    const available = chunk.length - stream.queueOffset;
    const length = Math.min(budget, available);
    const start = stream.queueOffset;
    const last = length === available && stream.queue.length === 1 &&
      stream.endAfterQueue && !stream.trailersAfterQueue;
    this.#out.data(stream.id, chunk, start, start + length, last);
    this.#sentSincePing = true;
    this.#pingEnforcer?.sent();
    stream.sendWindow -= length;
    this.#sendWindow -= length;
    stream.queuedBytes -= length;
    if (length === available) {
      stream.queue.shift();
      stream.queueOffset = 0;
    } else {
      stream.queueOffset += length;
    }
    if (last) {
      stream.endAfterQueue = false;
      stream.ready = false;
      this.#localEnd(stream);
    }
    const bound = this.limits.streamSendBufferBytes;
    if (
      stream.queuedBytes < bound && stream.queuedBytes + length >= bound &&
      stream.handler.onDrain
    ) {
      const s = stream;
      queueMicrotask(() => s.handler.onDrain?.());
    }
    return true;
  }

  #flush(): void {
    if (this.#writing || this.#isClosed) return;
    this.#pump();
    if (this.#out.length === 0) {
      this.#wakeDrainWaiters();
      return;
    }
    const batch = this.#out;
    this.#out = this.#spare;
    this.#spare = batch;
    this.#writing = true;
    this.#pendingControlFrames = 0;
    this.#writeAll(batch.bytes, batch.length).then(
      () => {
        batch.reset();
        this.#writing = false;
        this.#flush();
      },
      () => {
        batch.reset();
        this.#writing = false;
        this.#fail(undefined);
      },
    );
  }

  async #writeAll(bytes: Uint8Array, length: number): Promise<void> {
    let offset = 0;
    while (offset < length) {
      offset += await this.#conn.write(bytes.subarray(offset, length));
    }
  }

  /** Waits until everything written so far reached the socket. */
  async #flushNow(): Promise<void> {
    while (!this.#isClosed && (this.#writing || this.#out.length > 0)) {
      if (!this.#writing) this.#flush();
      await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
    }
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    this.#drainWaiters = [];
    for (const wake of waiters) wake();
  }

  // ---------------------------------------------------------------- reading

  async #readLoop(initialBytes?: Uint8Array): Promise<void> {
    let buffer = new Uint8Array(READ_BUFFER_BYTES);
    let start = 0;
    let end = 0;
    if (initialBytes && initialBytes.length > 0) {
      buffer.set(initialBytes);
      end = initialBytes.length;
    }
    try {
      for (;;) {
        if (end > start) {
          const consumed = this.#processBytes(buffer, start, end);
          start += consumed;
          if (this.#isClosed || this.#closing) return;
        }
        if (start === end) {
          start = end = 0;
        } else if (
          buffer.length - end < FRAME_HEADER_BYTES + this.limits.maxFrameBytes
        ) {
          buffer.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        // Backpressure: a peer that does not read our output stops being read.
        while (
          (this.#writing || this.#out.length > 0) &&
          this.#spare.length + this.#out.length >=
            this.limits.pendingWriteBytesMax &&
          !this.#isClosed
        ) {
          await new Promise<void>((resolve) =>
            this.#drainWaiters.push(resolve)
          );
        }
        if (buffer.length - end === 0) {
          const grown = new Uint8Array(buffer.length * 2);
          grown.set(buffer.subarray(start, end));
          end -= start;
          start = 0;
          buffer = grown;
        }
        let n: number | null;
        try {
          n = await this.#conn.read(buffer.subarray(end));
        } catch {
          n = null;
        }
        if (n === null) {
          this.#peerClosed();
          return;
        }
        this.#lastReadMs = performance.now();
        end += n;
      }
    } catch (error) {
      if (error instanceof Http2Error) {
        this.#connectionError(error);
      } else {
        this.#connectionError(
          new Http2Error(ErrorCode.INTERNAL_ERROR, String(error)),
        );
      }
    }
  }

  /** Processes complete frames; returns the bytes consumed. */
  #processBytes(buffer: Uint8Array, start: number, end: number): number {
    let pos = start;
    if (this.#prefaceExpected) {
      const need = CONNECTION_PREFACE.length;
      const have = Math.min(need, end - pos);
      for (let i = 0; i < have; i++) {
        if (buffer[pos + i] !== CONNECTION_PREFACE[i]) {
          throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "invalid preface");
        }
      }
      if (have < need) return 0;
      pos += need;
      this.#prefaceExpected = false;
    }
    const header = this.#header;
    while (end - pos >= FRAME_HEADER_BYTES) {
      const b = buffer;
      header.length = (b[pos]! << 16) | (b[pos + 1]! << 8) | b[pos + 2]!;
      if (header.length > this.limits.maxFrameBytes) {
        throw new Http2Error(
          ErrorCode.FRAME_SIZE_ERROR,
          `frame of ${header.length} bytes exceeds ${this.limits.maxFrameBytes}`,
        );
      }
      if (end - pos < FRAME_HEADER_BYTES + header.length) break;
      header.type = b[pos + 3]!;
      header.flags = b[pos + 4]!;
      header.streamId = readUint32(b, pos + 5) & 0x7fffffff;
      const payload = pos + FRAME_HEADER_BYTES;
      pos = payload + header.length;
      if (!this.#settingsReceived && this.role === "server") {
        if (
          header.type !== FrameType.SETTINGS || header.flags & FrameFlag.ACK
        ) {
          throw new Http2Error(
            ErrorCode.PROTOCOL_ERROR,
            "the first frame must be SETTINGS",
          );
        }
      }
      try {
        this.#processFrame(buffer, payload, header);
      } catch (error) {
        if (error instanceof Http2Error && error.streamId !== 0) {
          const stream = this.#streams.get(error.streamId);
          if (stream) {
            this.resetStream(stream, error.code);
          } else {
            this.#out.rstStream(error.streamId, error.code);
            this.#pendingControlFrames++;
            this.#scheduleFlush();
          }
        } else {
          throw error;
        }
      }
      if (this.#isClosed || this.#closing) break;
      if (this.#pendingControlFrames > this.limits.pendingControlFramesMax) {
        throw new Http2Error(
          ErrorCode.ENHANCE_YOUR_CALM,
          "too many control frames queued unread",
        );
      }
    }
    return pos - start;
  }

  #processFrame(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (this.#blockStreamId !== 0 && header.type !== FrameType.CONTINUATION) {
      throw new Http2Error(
        ErrorCode.PROTOCOL_ERROR,
        "expected CONTINUATION",
      );
    }
    switch (header.type) {
      case FrameType.DATA:
        return this.#onData(b, payload, header);
      case FrameType.HEADERS:
        return this.#onHeaders(b, payload, header);
      case FrameType.PRIORITY:
        if (header.streamId === 0) {
          throw new Http2Error(
            ErrorCode.PROTOCOL_ERROR,
            "PRIORITY on stream 0",
          );
        }
        decodePriority(b, payload, header.length, header.streamId);
        this.#calm(this.#controlGuard, "PRIORITY flood");
        return;
      case FrameType.RST_STREAM:
        return this.#onRstStream(b, payload, header);
      case FrameType.SETTINGS:
        return this.#onSettings(b, payload, header);
      case FrameType.PUSH_PROMISE:
        throw new Http2Error(
          ErrorCode.PROTOCOL_ERROR,
          "PUSH_PROMISE is not allowed (push disabled)",
        );
      case FrameType.PING:
        if (header.streamId !== 0) {
          throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "PING on a stream");
        }
        if (header.length !== 8) {
          throw new Http2Error(
            ErrorCode.FRAME_SIZE_ERROR,
            "PING must be 8 bytes",
          );
        }
        if (header.flags & FrameFlag.ACK) {
          this.#pingWaiters.shift()?.resolve();
        } else {
          if (this.#sentSincePing) {
            this.#sentSincePing = false;
            this.#pingGuard.refill();
          }
          this.#calm(this.#pingGuard, "PING flood");
          this.#out.ping(b, payload, true);
          this.#pendingControlFrames++;
          this.#scheduleFlush();
          if (
            this.#pingEnforcer &&
            !this.#pingEnforcer.ping(performance.now(), this.#streams.size)
          ) {
            throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, TOO_MANY_PINGS);
          }
        }
        return;
      case FrameType.GOAWAY: {
        if (header.streamId !== 0) {
          throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream");
        }
        const goaway = decodeGoaway(b, payload, header.length);
        this.#goawayReceived = true;
        this.#handler.onGoaway?.(goaway.lastStreamId, goaway.errorCode);
        // Streams of ours above lastStreamId were not processed: reset them.
        for (const stream of [...this.#streams.values()]) {
          if (
            stream.id > goaway.lastStreamId &&
            (stream.id % 2 === 1) === (this.role === "client")
          ) {
            this.#endStream(stream, ErrorCode.REFUSED_STREAM, true);
          }
        }
        this.#maybeFinish();
        return;
      }
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(b, payload, header);
      case FrameType.CONTINUATION:
        return this.#onContinuation(b, payload, header);
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1, §5.5).
        this.#calm(this.#controlGuard, "unknown frame flood");
        return;
    }
  }

  #calm(guard: FloodGuard, what: string): void {
    if (!guard.take()) throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, what);
  }

  #onSettings(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (header.streamId !== 0) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    }
    if (header.flags & FrameFlag.ACK) {
      if (header.length !== 0) {
        throw new Http2Error(
          ErrorCode.FRAME_SIZE_ERROR,
          "SETTINGS ACK with payload",
        );
      }
      return;
    }
    this.#calm(this.#controlGuard, "SETTINGS flood");
    const settings = decodeSettings(b, payload, header.length);
    if (settings.length > SETTINGS_PER_FRAME_MAX) {
      throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, "too many SETTINGS");
    }
    for (const { id, value } of settings) {
      switch (id) {
        case SettingId.ENABLE_PUSH:
          if (value > 1) {
            throw new Http2Error(
              ErrorCode.PROTOCOL_ERROR,
              "ENABLE_PUSH must be 0 or 1",
            );
          }
          if (value === 1 && this.role === "client") {
            throw new Http2Error(
              ErrorCode.PROTOCOL_ERROR,
              "a server cannot enable push",
            );
          }
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          if (value > WINDOW_BYTES_MAX) {
            throw new Http2Error(
              ErrorCode.FLOW_CONTROL_ERROR,
              "INITIAL_WINDOW_SIZE above 2^31-1",
            );
          }
          const delta = value - this.peerInitialWindowBytes;
          this.peerInitialWindowBytes = value;
          for (const stream of this.#streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > WINDOW_BYTES_MAX) {
              throw new Http2Error(
                ErrorCode.FLOW_CONTROL_ERROR,
                "window overflow",
              );
            }
            if (delta > 0 && stream.queuedBytes > 0) this.markReady(stream);
          }
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          if (value < DEFAULT_FRAME_BYTES || value > FRAME_BYTES_LIMIT) {
            throw new Http2Error(
              ErrorCode.PROTOCOL_ERROR,
              `MAX_FRAME_SIZE ${value} out of range`,
            );
          }
          this.peerMaxFrameBytes = value;
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          this.#wakeSlotWaiters();
          break;
        default:
          // HEADER_TABLE_SIZE: our encoder never inserts, so any size works.
          // MAX_HEADER_LIST_SIZE: advisory. Unknown settings: ignored.
          break;
      }
    }
    this.#settingsReceived = true;
    this.#out.settingsAck();
    this.#pendingControlFrames++;
    this.#scheduleFlush();
  }

  #onWindowUpdate(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (header.length !== 4) {
      throw new Http2Error(
        ErrorCode.FRAME_SIZE_ERROR,
        "WINDOW_UPDATE must be 4 bytes",
      );
    }
    const increment = readUint32(b, payload) & 0x7fffffff;
    if (header.streamId === 0) {
      if (increment === 0) {
        throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      }
      this.#sendWindow += increment;
      if (this.#sendWindow > WINDOW_BYTES_MAX) {
        throw new Http2Error(
          ErrorCode.FLOW_CONTROL_ERROR,
          "connection window overflow",
        );
      }
      if (this.#readyStreams.length > 0) this.#scheduleFlush();
      return;
    }
    const stream = this.#streams.get(header.streamId);
    if (increment === 0) {
      throw new Http2Error(
        ErrorCode.PROTOCOL_ERROR,
        "WINDOW_UPDATE of 0",
        header.streamId,
      );
    }
    if (!stream) {
      this.#checkNotIdle(header.streamId, "WINDOW_UPDATE");
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > WINDOW_BYTES_MAX) {
      throw new Http2Error(
        ErrorCode.FLOW_CONTROL_ERROR,
        "stream window overflow",
        stream.id,
      );
    }
    if (
      stream.queuedBytes > 0 || stream.trailersAfterQueue ||
      stream.endAfterQueue
    ) {
      this.markReady(stream);
    }
  }

  #onRstStream(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (header.streamId === 0) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    }
    if (header.length !== 4) {
      throw new Http2Error(
        ErrorCode.FRAME_SIZE_ERROR,
        "RST_STREAM must be 4 bytes",
      );
    }
    this.#calm(this.#resetGuard, "RST_STREAM flood (rapid reset)");
    const stream = this.#streams.get(header.streamId);
    if (!stream) {
      this.#checkNotIdle(header.streamId, "RST_STREAM");
      return;
    }
    this.#endStream(stream, readUint32(b, payload), true);
  }

  /** A frame on an idle stream (never opened) is a connection error. */
  #checkNotIdle(streamId: number, what: string): void {
    const peerOpened = (streamId % 2 === 1) === (this.role === "server");
    const idle = peerOpened
      ? streamId > this.#lastPeerStreamId
      : streamId >= this.#nextOwnStreamId;
    if (idle) {
      throw new Http2Error(
        ErrorCode.PROTOCOL_ERROR,
        `${what} on idle stream ${streamId}`,
      );
    }
  }

  #onData(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (header.streamId === 0) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    }
    // The whole frame (padding too) counts against flow control.
    if (header.length > this.#receiveWindow) {
      throw new Http2Error(
        ErrorCode.FLOW_CONTROL_ERROR,
        "DATA past the connection window",
      );
    }
    this.#receiveWindow -= header.length;
    this.#creditConnection(header.length);
    const span = this.#span;
    payloadContent(b, payload, header, span);
    const stream = this.#streams.get(header.streamId);
    if (!stream) {
      this.#checkNotIdle(header.streamId, "DATA");
      // Closed stream: credit and ignore (we may have reset it, §5.1).
      return;
    }
    if (stream.state === "half-closed-remote" || stream.state === "closed") {
      throw new Http2Error(
        ErrorCode.STREAM_CLOSED,
        "DATA after END_STREAM",
        stream.id,
      );
    }
    if (header.length > stream.receiveWindow) {
      throw new Http2Error(
        ErrorCode.FLOW_CONTROL_ERROR,
        "DATA past the stream window",
        stream.id,
      );
    }
    stream.receiveWindow -= header.length;
    const padding = header.length - (span.end - span.start);
    const endStream = (header.flags & FrameFlag.END_STREAM) !== 0;
    if (span.end === span.start && !endStream) {
      this.#calm(this.#controlGuard, "empty DATA flood");
    }
    stream.unconsumedBytes += span.end - span.start;
    if (padding > 0) {
      stream.unconsumedBytes += padding;
      this.consumed(stream, padding);
    }
    if (endStream) this.#remoteEnd(stream);
    stream.handler.onData?.(b.subarray(span.start, span.end), endStream);
  }

  #creditConnection(bytes: number): void {
    const target = this.limits.connectionWindowBytes;
    if (this.#receiveWindow < target / 2) {
      const credit = target - this.#receiveWindow;
      this.#receiveWindow = target;
      this.#out.windowUpdate(0, credit);
      this.#scheduleFlush();
    }
    void bytes;
  }

  #onHeaders(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (header.streamId === 0) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    }
    const span = this.#span;
    payloadContent(b, payload, header, span);
    if (header.flags & FrameFlag.END_HEADERS) {
      this.#headerBlockDone(
        header.streamId,
        header.flags,
        b,
        span.start,
        span.end,
      );
      return;
    }
    this.#blockStreamId = header.streamId;
    this.#blockFlags = header.flags;
    this.#blockParts = [b.slice(span.start, span.end)];
    this.#blockBytes = span.end - span.start;
    this.#blockContinuations = 0;
    this.#checkBlockBounds();
  }

  #onContinuation(b: Uint8Array, payload: number, header: FrameHeader): void {
    if (this.#blockStreamId === 0 || header.streamId !== this.#blockStreamId) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION");
    }
    this.#blockParts.push(b.slice(payload, payload + header.length));
    this.#blockBytes += header.length;
    this.#blockContinuations++;
    this.#checkBlockBounds();
    if (header.flags & FrameFlag.END_HEADERS) {
      const block = new Uint8Array(this.#blockBytes);
      let offset = 0;
      for (const part of this.#blockParts) {
        block.set(part, offset);
        offset += part.length;
      }
      const streamId = this.#blockStreamId;
      const flags = this.#blockFlags;
      this.#blockStreamId = 0;
      this.#blockParts = [];
      this.#headerBlockDone(streamId, flags, block, 0, block.length);
    }
  }

  #checkBlockBounds(): void {
    if (
      this.#blockBytes >
        HEADER_BLOCK_FACTOR * this.limits.maxHeaderListBytes + 1024 ||
      this.#blockContinuations > CONTINUATIONS_PER_BLOCK_MAX
    ) {
      throw new Http2Error(
        ErrorCode.ENHANCE_YOUR_CALM,
        "header block too large (CONTINUATION flood)",
      );
    }
  }

  #headerBlockDone(
    streamId: number,
    flags: number,
    block: Uint8Array,
    start: number,
    end: number,
  ): void {
    let decoded;
    try {
      decoded = this.#decoder.decode(
        block,
        start,
        end,
        this.limits.maxHeaderListBytes,
      );
    } catch (error) {
      if (error instanceof HpackError) {
        throw new Http2Error(ErrorCode.COMPRESSION_ERROR, error.message);
      }
      throw error;
    }
    const endStream = (flags & FrameFlag.END_STREAM) !== 0;
    const existing = this.#streams.get(streamId);
    if (existing) {
      if (
        existing.state === "half-closed-remote" || existing.state === "closed"
      ) {
        throw new Http2Error(
          ErrorCode.STREAM_CLOSED,
          "HEADERS after END_STREAM",
          streamId,
        );
      }
      if (decoded.oversize) {
        throw new Http2Error(
          ErrorCode.PROTOCOL_ERROR,
          "header list too large",
          streamId,
        );
      }
      if (endStream) this.#remoteEnd(existing);
      existing.handler.onHeaders?.(decoded.fields, endStream);
      return;
    }
    const peerOpened = (streamId % 2 === 1) === (this.role === "server");
    if (!peerOpened) {
      this.#checkNotIdle(streamId, "HEADERS");
      return; // a stream of ours that we already closed
    }
    if (streamId <= this.#lastPeerStreamId) {
      // Closed stream (we reset it, or it ended): trailers arriving late.
      return;
    }
    this.#lastPeerStreamId = streamId;
    if (this.#goawaySent || this.#closing) {
      // After GOAWAY, streams above the announced ID are ignored (§6.8).
      return;
    }
    if (this.#streams.size >= this.limits.maxConcurrentStreams) {
      this.#calm(this.#resetGuard, "stream flood past MAX_CONCURRENT_STREAMS");
      throw new Http2Error(
        ErrorCode.REFUSED_STREAM,
        "too many concurrent streams",
        streamId,
      );
    }
    const stream = new Http2Stream(this, streamId);
    this.#streams.set(streamId, stream);
    if (endStream) stream.state = "half-closed-remote";
    if (decoded.oversize) {
      // 431 and end; the stream never reaches the handler.
      stream.sendHeaders([":status", "431"], true);
      if (stream.state !== "closed") {
        this.resetStream(stream, ErrorCode.NO_ERROR);
      }
      return;
    }
    if (!this.#handler.onStream) {
      this.resetStream(stream, ErrorCode.REFUSED_STREAM);
      return;
    }
    this.#handler.onStream(stream, decoded.fields, endStream);
  }

  // ---------------------------------------------------------------- states

  #remoteEnd(stream: Http2Stream): void {
    if (stream.state === "open") {
      stream.state = "half-closed-remote";
    } else if (stream.state === "half-closed-local") {
      this.#closeStream(stream);
    }
  }

  #localEnd(stream: Http2Stream): void {
    if (stream.state === "open") {
      stream.state = "half-closed-local";
      if (stream.resetOnLocalEnd) this.resetStream(stream, ErrorCode.NO_ERROR);
    } else if (stream.state === "half-closed-remote") {
      this.#closeStream(stream);
    }
  }

  #closeStream(stream: Http2Stream): void {
    stream.state = "closed";
    stream.queue = [];
    stream.queuedBytes = 0;
    this.#streams.delete(stream.id);
    if ((stream.id % 2 === 1) === (this.role === "client")) {
      this.#ownStreams--;
      if (this.#slotWaiters.length > 0) this.#wakeSlotWaiters();
    }
    this.#maybeFinish();
  }

  /** Ends a stream abnormally; tells its handler when `notify`. */
  #endStream(stream: Http2Stream, errorCode: number, notify: boolean): void {
    if (stream.state === "closed") return;
    this.#closeStream(stream);
    if (notify) stream.handler.onReset?.(errorCode);
  }

  /** After GOAWAY both ways or ours, close when no stream is left. */
  #maybeFinish(): void {
    if (
      (this.#goawaySent || this.#goawayReceived) && this.#streams.size === 0
    ) {
      if (!this.#closing) void this.close();
    }
  }

  #connectionError(error: Http2Error): void {
    if (this.#isClosed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.#out.goaway(this.#lastPeerStreamId, error.code, error.message);
    }
    this.#closing = true;
    for (const stream of [...this.#streams.values()]) {
      this.#endStream(stream, ErrorCode.CANCEL, true);
    }
    this.#flushNow().finally(() => this.#fail(error));
  }

  #peerClosed(): void {
    if (this.#isClosed) return;
    this.#closing = true;
    for (const stream of [...this.#streams.values()]) {
      this.#endStream(stream, ErrorCode.CANCEL, true);
    }
    this.#fail(undefined);
  }

  #fail(error: Http2Error | undefined): void {
    if (this.#isClosed) return;
    this.#closing = true;
    for (const stream of [...this.#streams.values()]) {
      this.#endStream(stream, ErrorCode.CANCEL, true);
    }
    this.#shutdownSocket(error);
  }

  #shutdownSocket(error?: Http2Error): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#idlePinger?.stop();
    for (const waiter of this.#slotWaiters.splice(0)) {
      waiter.reject(
        new Http2Error(ErrorCode.REFUSED_STREAM, "connection closed"),
      );
    }
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#wakeDrainWaiters();
    for (const waiter of this.#pingWaiters.splice(0)) {
      waiter.reject(
        new Http2Error(ErrorCode.REFUSED_STREAM, "connection closed"),
      );
    }
    this.#handler.onClose?.(error);
    this.#resolveClosed();
  }
}
