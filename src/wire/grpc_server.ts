/**
 * revkv's gRPC server: serves a {@linkcode GrpcServiceTable} over HTTP/2
 * (h2c with prior knowledge, as etcd serves plain-text clients) on a
 * `SocketListener` (`socket.ts`: Deno or node:net).
 *
 * Each accepted socket is sniffed: bytes that begin the HTTP/2 preface go
 * to an {@linkcode Http2Connection}; anything else (HTTP/1.1, garbage) goes
 * to the `http1` fallback, by default a minimal 404 and close. On HTTP/2,
 * a request whose content-type is not `application/grpc…` goes to the
 * `http2` fallback, by default 415 (or 404 for a GET). Later, etcd's JSON
 * gateway hangs on those hooks.
 *
 * A gRPC call is one stream: request headers (`:path` names the method,
 * `grpc-timeout` sets a deadline), length-prefixed request messages, then
 * response headers, messages and the `grpc-status`/`grpc-message`
 * trailers. An error before any response is a trailers-only response (one
 * HEADERS frame with END_STREAM). A unary response that fits the windows is
 * written as HEADERS + DATA + trailers in one go from precomputed header
 * blocks, with no allocation beyond the response bytes.
 *
 * Cancellation (RST_STREAM from the client), the deadline, the connection
 * closing and `shutdown` all abort the call's `CallContext.signal`.
 *
 * @module
 */

import {
  type CallContext,
  GrpcError,
  type GrpcMethod,
  type GrpcServiceTable,
  GrpcStatus,
  type GrpcStatusCode,
  type MessageSink,
} from "./grpc_service.ts";
import {
  encodeGrpcMessage,
  MESSAGE_PREFIX_BYTES,
  messagePrefix,
  MessageReader,
  parseGrpcTimeout,
  writeMessagePrefix,
} from "./grpc_framing.ts";
import {
  type ConnectionLimits,
  Http2Connection,
  type Http2Stream,
  type StreamHandler,
} from "./http2/connection.ts";
import { CONNECTION_PREFACE, ErrorCode } from "./http2/frame.ts";
import { type HeaderList, HpackEncoder } from "./http2/hpack.ts";
import type { SocketAddr, SocketConn, SocketListener } from "./socket.ts";
import type { KeepaliveOptions } from "./http2/keepalive.ts";

/** Limits of the server, on top of each connection's. */
export interface GrpcServerLimits extends ConnectionLimits {
  /** Largest request message accepted; bigger is RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
  /** Connections served at once; more are closed on accept. */
  maxConnections: number;
  /** Undelivered request bytes per streaming call before credit is held. */
  streamRequestQueueBytes: number;
}

/**
 * Defaults: etcd accepts requests up to 1.5 MiB (`--max-request-bytes`)
 * plus gRPC overhead, so 2 MiB; etcd itself allows unbounded connections,
 * revkv bounds them.
 */
export const DEFAULT_GRPC_SERVER_LIMITS: GrpcServerLimits = {
  maxConcurrentStreams: 256,
  initialWindowBytes: 1 << 20,
  connectionWindowBytes: 16 << 20,
  maxFrameBytes: 16_384,
  maxHeaderListBytes: 16 << 10,
  streamSendBufferBytes: 256 << 10,
  pendingWriteBytesMax: 8 << 20,
  pendingControlFramesMax: 1000,
  maxReceiveMessageBytes: 2 << 20,
  maxConnections: 1024,
  streamRequestQueueBytes: 64 << 10,
};

/** Where requests that are not gRPC go. */
export interface GrpcFallback {
  /**
   * A connection whose first bytes are not the HTTP/2 preface. `head` holds
   * the bytes already read. The handler owns `conn` and must close it.
   */
  http1?(conn: SocketConn, head: Uint8Array): void | Promise<void>;
  /**
   * An HTTP/2 request that is not gRPC. The handler answers on `stream`
   * (`sendHeaders`, `sendData`) and sets `stream.handler` to read a body.
   */
  http2?(stream: Http2Stream, headers: HeaderList, endStream: boolean): void;
}

/** Options of {@linkcode serveGrpc}. */
export interface ServeGrpcOptions {
  /** Where to accept connections (`listenTcp({ hostname, port: 0 })`, or `Deno.listen`). */
  listener: SocketListener;
  /** The methods by gRPC path. */
  methods: GrpcServiceTable;
  /** Limits; each defaults to {@linkcode DEFAULT_GRPC_SERVER_LIMITS}. */
  limits?: Partial<GrpcServerLimits>;
  /** Handlers for HTTP/1.1 and non-gRPC HTTP/2. */
  fallback?: GrpcFallback;
  /**
   * gRPC keepalive (ping enforcement and server pings), as grpc-go's
   * server; absent: pings are only answered.
   */
  keepalive?: KeepaliveOptions;
  /** Called for a method's non-GrpcError failure (default: ignored). */
  onError?(error: unknown, path: string): void;
}

/** A running server from {@linkcode serveGrpc}. */
export interface GrpcServer {
  /** The address it listens on. */
  readonly addr: SocketAddr;
  /** Resolves when the listener and every connection are closed. */
  readonly closed: Promise<void>;
  /** Connections open now. */
  readonly connectionCount: number;
  /**
   * Stops accepting, sends GOAWAY on every connection, lets calls in flight
   * finish for up to `graceMs`, then cancels what is left and closes.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** How long `shutdown` waits for calls in flight by default. */
const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

const shared = new HpackEncoder();
/** `:status 200`, `content-type: application/grpc`: every response starts so. */
const RESPONSE_HEADERS = shared.encode([
  ":status",
  "200",
  "content-type",
  "application/grpc",
]);
/** The trailers of a successful call. */
const OK_TRAILERS = shared.encode(["grpc-status", "0"]);

/**
 * Serves gRPC methods on a listener.
 *
 * @example Serve an echo method
 * ```ts ignore
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const server = serveGrpc({
 *   listener,
 *   methods: new Map([["/test.Echo/Echo", { kind: "unary", handle: (r) => r }]]),
 * });
 * await server.shutdown(1000);
 * ```
 */
export function serveGrpc(options: ServeGrpcOptions): GrpcServer {
  const limits: GrpcServerLimits = {
    ...DEFAULT_GRPC_SERVER_LIMITS,
    ...options.limits,
  };
  const connections = new Set<Http2Connection>();
  const rawSockets = new Set<SocketConn>();
  const services = new Set<string>();
  for (const path of options.methods.keys()) {
    services.add(path.slice(1, path.lastIndexOf("/")));
  }
  const ctx: ServerContext = { options, limits, services, shuttingDown: false };
  let stopAccepting = false;

  const acceptLoop = (async () => {
    for (;;) {
      let conn: SocketConn;
      try {
        conn = await options.listener.accept();
      } catch {
        return;
      }
      if (stopAccepting) {
        conn.close();
        return;
      }
      if (connections.size + rawSockets.size >= limits.maxConnections) {
        try {
          conn.close();
        } catch { /* gone */ }
        continue;
      }
      rawSockets.add(conn);
      sniff(conn, limits, options.fallback).then((head) => {
        rawSockets.delete(conn);
        if (head === undefined) return;
        if (ctx.shuttingDown) {
          conn.close();
          return;
        }
        try {
          conn.setNoDelay?.(true);
        } catch { /* not TCP */ }
        const connection: Http2Connection = new Http2Connection(conn, {
          onStream: (stream, headers, endStream) =>
            onStream(ctx, stream, headers, endStream),
          onClose: () => connections.delete(connection),
        }, {
          role: "server",
          limits,
          initialBytes: head,
          keepalive: options.keepalive,
        });
        connections.add(connection);
      }, () => rawSockets.delete(conn));
    }
  })();

  const allClosed = async () => {
    await acceptLoop;
    while (connections.size > 0) {
      await Promise.all([...connections].map((c) => c.closed));
    }
  };
  const closed = allClosed();

  return {
    addr: options.listener.addr,
    closed,
    get connectionCount() {
      return connections.size;
    },
    async shutdown(graceMs = DEFAULT_SHUTDOWN_GRACE_MS) {
      if (!stopAccepting) {
        stopAccepting = true;
        ctx.shuttingDown = true;
        try {
          options.listener.close();
        } catch { /* closed */ }
        for (const conn of rawSockets) {
          try {
            conn.close();
          } catch { /* gone */ }
        }
        for (const connection of connections) connection.goaway();
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([closed, grace]);
      clearTimeout(timer);
      for (const connection of connections) void connection.close();
      await closed;
    },
  };
}

interface ServerContext {
  options: ServeGrpcOptions;
  limits: GrpcServerLimits;
  services: Set<string>;
  shuttingDown: boolean;
}

/** Preface bytes ("PRI * HTTP/2") that make a peer HTTP/2 even if the rest is wrong. */
const PREFACE_SNIFF_BYTES = 12;
/** How long a new connection may take to send its first bytes. */
const SNIFF_TIMEOUT_MS = 10_000;

/**
 * Reads until the bytes are known to be (or not to be) the HTTP/2 preface.
 * Returns the bytes read for HTTP/2, or undefined after handing the socket
 * to the HTTP/1 fallback (or closing it).
 */
async function sniff(
  conn: SocketConn,
  limits: GrpcServerLimits,
  fallback: GrpcFallback | undefined,
): Promise<Uint8Array | undefined> {
  const buffer = new Uint8Array(4096);
  let have = 0;
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* gone */ }
  }, SNIFF_TIMEOUT_MS);
  try {
    while (have < CONNECTION_PREFACE.length) {
      let n: number | null;
      try {
        n = await conn.read(buffer.subarray(have));
      } catch {
        n = null;
      }
      if (n === null) {
        try {
          conn.close();
        } catch { /* gone */ }
        return undefined;
      }
      const before = have;
      have += n;
      const checkEnd = Math.min(have, CONNECTION_PREFACE.length);
      for (let i = before; i < checkEnd; i++) {
        if (buffer[i] !== CONNECTION_PREFACE[i]) {
          clearTimeout(timer);
          // "PRI * HTTP/2.0" that goes wrong later is a broken HTTP/2 peer:
          // the connection answers it with GOAWAY(PROTOCOL_ERROR).
          if (i >= PREFACE_SNIFF_BYTES) return buffer.slice(0, have);
          const head = buffer.slice(0, have);
          if (fallback?.http1) {
            await fallback.http1(conn, head);
          } else {
            await answerHttp1(conn, head);
          }
          return undefined;
        }
      }
    }
  } finally {
    clearTimeout(timer);
  }
  void limits;
  return buffer.slice(0, have);
}

/** The default for non-HTTP/2 bytes: a minimal HTTP/1.1 404, then close. */
async function answerHttp1(conn: SocketConn, head: Uint8Array): Promise<void> {
  try {
    const first = new TextDecoder().decode(head.subarray(0, 16));
    if (/^[A-Z]+ /.test(first)) {
      const body =
        "revkv serves gRPC over HTTP/2 (h2c, prior knowledge) on this port\n";
      const response = "HTTP/1.1 404 Not Found\r\n" +
        "content-type: text/plain\r\n" +
        `content-length: ${body.length}\r\n` +
        "connection: close\r\n\r\n" + body;
      const bytes = new TextEncoder().encode(response);
      let offset = 0;
      while (offset < bytes.length) {
        offset += await conn.write(bytes.subarray(offset));
      }
    }
  } catch {
    // the peer went away
  } finally {
    try {
      conn.close();
    } catch { /* gone */ }
  }
}

/** Header names RFC 9113 §8.2.2 forbids in HTTP/2. */
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

/** True when a header name has an upper-case ASCII letter (malformed, §8.2.1). */
function hasUpperCase(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

function onStream(
  ctx: ServerContext,
  stream: Http2Stream,
  headers: HeaderList,
  endStream: boolean,
): void {
  let method = "";
  let path = "";
  let contentType = "";
  let timeout = "";
  let encoding = "";
  let pseudoDone = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (pseudoDone) return stream.reset(ErrorCode.PROTOCOL_ERROR);
      if (name === ":method") method = value;
      else if (name === ":path") path = value;
      else if (name !== ":scheme" && name !== ":authority") {
        return stream.reset(ErrorCode.PROTOCOL_ERROR);
      }
      continue;
    }
    pseudoDone = true;
    if (hasUpperCase(name) || CONNECTION_SPECIFIC.has(name)) {
      return stream.reset(ErrorCode.PROTOCOL_ERROR);
    }
    if (name === "content-type") contentType = value;
    else if (name === "grpc-timeout") timeout = value;
    else if (name === "grpc-encoding") encoding = value;
    else if (name === "te" && value !== "trailers") {
      return stream.reset(ErrorCode.PROTOCOL_ERROR);
    }
  }
  if (method === "" || path === "") {
    return stream.reset(ErrorCode.PROTOCOL_ERROR);
  }
  if (
    !contentType.startsWith("application/grpc") ||
    (contentType.length > 16 && contentType[16] !== "+" &&
      contentType[16] !== ";")
  ) {
    if (ctx.options.fallback?.http2) {
      ctx.options.fallback.http2(stream, headers, endStream);
    } else {
      answerNotGrpc(stream, method, endStream);
    }
    return;
  }
  if (method !== "POST") {
    stream.resetOnLocalEnd = !endStream;
    stream.sendHeaders([":status", "405", "allow", "POST"], true);
    return;
  }
  const call = new GrpcCall(ctx, stream, path, headers, endStream);
  stream.handler = call;
  if (encoding !== "" && encoding !== "identity") {
    call.finish(
      GrpcStatus.UNIMPLEMENTED,
      `grpc: Decompressor is not installed for grpc-encoding "${encoding}"`,
    );
    return;
  }
  const target = ctx.options.methods.get(path);
  if (!target) {
    const slash = path.lastIndexOf("/");
    const service = path.slice(1, slash);
    call.finish(
      GrpcStatus.UNIMPLEMENTED,
      ctx.services.has(service)
        ? `unknown method ${path.slice(slash + 1)} for service ${service}`
        : `unknown service ${service}`,
    );
    return;
  }
  if (timeout !== "") {
    const timeoutMs = parseGrpcTimeout(timeout);
    if (timeoutMs === undefined) {
      call.finish(
        GrpcStatus.INTERNAL,
        `malformed grpc-timeout: ${timeout}`,
      );
      return;
    }
    call.setDeadline(timeoutMs);
  }
  if (ctx.shuttingDown) {
    call.finish(GrpcStatus.UNAVAILABLE, "server is shutting down");
    return;
  }
  call.start(target);
}

function answerNotGrpc(
  stream: Http2Stream,
  method: string,
  endStream: boolean,
): void {
  const status = method === "GET" || method === "HEAD" ? "404" : "415";
  stream.resetOnLocalEnd = !endStream;
  stream.sendHeaders([":status", status, "content-type", "text/plain"], false);
  stream.sendData(
    new TextEncoder().encode(
      status === "404"
        ? "not found: this port serves gRPC (content-type application/grpc)\n"
        : "unsupported media type: expected application/grpc\n",
    ),
    true,
  );
}

/** A call's context; the signal is made only when a method asks for it. */
class GrpcCallContext implements CallContext {
  readonly path: string;
  deadlineMs?: number;
  #headers: HeaderList;
  #metadata?: Map<string, string>;
  #controller?: AbortController;
  #abortReason: unknown;

  constructor(path: string, headers: HeaderList) {
    this.path = path;
    this.#headers = headers;
  }

  get metadata(): ReadonlyMap<string, string> {
    if (!this.#metadata) {
      const map = new Map<string, string>();
      const h = this.#headers;
      for (let i = 0; i < h.length; i += 2) {
        const name = h[i]!;
        if (name.charCodeAt(0) === 58) continue;
        const existing = map.get(name);
        map.set(
          name,
          existing === undefined ? h[i + 1]! : `${existing},${h[i + 1]}`,
        );
      }
      this.#metadata = map;
    }
    return this.#metadata;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) {
        this.#controller.abort(this.#abortReason);
      }
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#abortReason !== undefined;
  }

  abort(reason: GrpcError): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }
}

/** One gRPC call on one stream. */
class GrpcCall implements StreamHandler, MessageSink {
  readonly #ctx: ServerContext;
  readonly #stream: Http2Stream;
  readonly context: GrpcCallContext;
  #reader: MessageReader;
  #method: GrpcMethod | undefined;
  #done = false;
  #remoteEnded: boolean;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // Unary / server-stream: the one request.
  #request: Uint8Array | undefined;
  #requestCount = 0;
  // Bidi: undelivered requests, credit held back, and the waiting reader.
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #heldCredit = 0;
  #wake: (() => void) | undefined;
  #drainWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(
    ctx: ServerContext,
    stream: Http2Stream,
    path: string,
    headers: HeaderList,
    endStream: boolean,
  ) {
    this.#ctx = ctx;
    this.#stream = stream;
    this.context = new GrpcCallContext(path, headers);
    this.#reader = new MessageReader(ctx.limits.maxReceiveMessageBytes);
    this.#remoteEnded = endStream;
  }

  setDeadline(timeoutMs: number): void {
    this.context.deadlineMs = Date.now() + timeoutMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const error = new GrpcError(
        GrpcStatus.DEADLINE_EXCEEDED,
        "context deadline exceeded",
      );
      this.context.abort(error);
      this.finish(error.code, error.message);
    }, timeoutMs);
  }

  start(method: GrpcMethod): void {
    this.#method = method;
    if (method.kind === "bidi") {
      this.#stream.resetOnLocalEnd = !this.#remoteEnded;
      this.#run(() =>
        method.handle(this.#requests(), this, this.context).then(() => {
          this.finish(GrpcStatus.OK, "");
        })
      );
    } else if (this.#remoteEnded) {
      this.#dispatchSingle();
    }
  }

  // StreamHandler ------------------------------------------------------

  onData(data: Uint8Array, endStream: boolean): void {
    if (this.#done) {
      this.#stream.consumed(data.length);
      return;
    }
    const bidi = this.#method?.kind === "bidi";
    try {
      this.#reader.push(data, (message) => {
        if (bidi) {
          this.#queue.push(message);
          this.#queuedBytes += message.length;
        } else {
          this.#requestCount++;
          this.#request = message;
        }
      });
    } catch (error) {
      this.#stream.consumed(data.length);
      const e = error as GrpcError;
      this.context.abort(e);
      this.finish(e.code, e.message);
      return;
    }
    if (!bidi || this.#queuedBytes < this.#ctx.limits.streamRequestQueueBytes) {
      this.#stream.consumed(data.length);
    } else {
      this.#heldCredit += data.length;
    }
    if (endStream) this.#remoteEnded = true;
    if (bidi) {
      this.#wakeReader();
    } else if (endStream && this.#method) {
      this.#dispatchSingle();
    }
  }

  onHeaders(_headers: HeaderList, endStream: boolean): void {
    // Request trailers carry nothing gRPC uses; they end the stream.
    if (endStream) this.onData(new Uint8Array(0), true);
  }

  onReset(errorCode: number): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    const error = new GrpcError(
      GrpcStatus.CANCELLED,
      errorCode === ErrorCode.CANCEL || errorCode === ErrorCode.NO_ERROR
        ? "context canceled"
        : `stream reset with HTTP/2 error ${errorCode}`,
    );
    this.context.abort(error);
    this.#wakeReader();
    this.#rejectDrainWaiters(error);
  }

  onDrain(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  // MessageSink --------------------------------------------------------

  send(message: Uint8Array): Promise<void> {
    if (this.#done || !this.#stream.writable) {
      return Promise.reject(
        new GrpcError(GrpcStatus.CANCELLED, "the stream is closed"),
      );
    }
    const stream = this.#stream;
    if (!stream.headersSent) stream.sendHeaderBlock(RESPONSE_HEADERS, false);
    stream.sendData(messagePrefix(message.length));
    if (stream.sendData(message)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#drainWaiters.push({ resolve, reject });
    });
  }

  // --------------------------------------------------------------------

  async *#requests(): AsyncGenerator<Uint8Array> {
    for (;;) {
      while (this.#queue.length > 0) {
        const message = this.#queue.shift()!;
        this.#queuedBytes -= message.length;
        if (
          this.#heldCredit > 0 &&
          this.#queuedBytes < this.#ctx.limits.streamRequestQueueBytes
        ) {
          this.#stream.consumed(this.#heldCredit);
          this.#heldCredit = 0;
        }
        yield message;
      }
      if (this.#done) return;
      if (this.#remoteEnded) {
        if (this.#reader.partial) {
          throw new GrpcError(GrpcStatus.INTERNAL, "grpc: truncated message");
        }
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      wake();
    }
  }

  #dispatchSingle(): void {
    if (this.#done) return;
    const method = this.#method!;
    if (this.#requestCount !== 1 || this.#reader.partial) {
      this.finish(
        GrpcStatus.INTERNAL,
        this.#requestCount === 0
          ? "grpc: no request message received for a unary call"
          : "grpc: client streaming protocol violation: more than one request",
      );
      return;
    }
    const request = this.#request!;
    this.#request = undefined;
    if (method.kind === "unary") {
      let result: Promise<Uint8Array> | Uint8Array;
      try {
        result = method.handle(request, this.context);
      } catch (error) {
        this.#fail(error);
        return;
      }
      if (result instanceof Uint8Array) {
        this.#respondUnary(result);
      } else {
        result.then((r) => this.#respondUnary(r), (e) => this.#fail(e));
      }
    } else if (method.kind === "server-stream") {
      this.#run(() =>
        method.handle(request, this, this.context).then(() =>
          this.finish(GrpcStatus.OK, "")
        )
      );
    }
  }

  #run(body: () => Promise<void>): void {
    let promise: Promise<void>;
    try {
      promise = body();
    } catch (error) {
      this.#fail(error);
      return;
    }
    promise.catch((error) => this.#fail(error));
  }

  #respondUnary(response: Uint8Array): void {
    if (this.#done) return;
    if (!(response instanceof Uint8Array)) {
      this.#fail(new TypeError("a unary method must return a Uint8Array"));
      return;
    }
    this.#done = true;
    this.#clearTimer();
    const stream = this.#stream;
    const prefix = PREFIX_SCRATCH;
    writeMessagePrefix(prefix, 0, response.length);
    if (
      stream.connection.writeWholeResponse(
        stream,
        RESPONSE_HEADERS,
        prefix,
        response,
        OK_TRAILERS,
      )
    ) return;
    stream.sendHeaderBlock(RESPONSE_HEADERS, false);
    stream.sendData(messagePrefix(response.length));
    stream.sendData(response);
    stream.sendHeaderBlock(OK_TRAILERS, true);
  }

  #fail(error: unknown): void {
    if (error instanceof GrpcError) {
      this.finish(error.code, error.message);
      return;
    }
    this.#ctx.options.onError?.(error, this.context.path);
    this.finish(
      GrpcStatus.INTERNAL,
      error instanceof Error ? error.message : String(error),
    );
  }

  /** Ends the call with a status: trailers, or trailers-only. */
  finish(code: GrpcStatusCode, message: string): void {
    const wasDone = this.#done;
    this.#done = true;
    this.#clearTimer();
    this.#wakeReader();
    if (code !== GrpcStatus.OK) {
      this.context.abort(new GrpcError(code, message));
    }
    this.#rejectDrainWaiters(
      new GrpcError(GrpcStatus.CANCELLED, "the call has ended"),
    );
    const stream = this.#stream;
    if (!stream.writable || (wasDone && code === GrpcStatus.OK)) return;
    stream.resetOnLocalEnd = !this.#remoteEnded;
    if (code === GrpcStatus.OK && stream.headersSent) {
      stream.sendHeaderBlock(OK_TRAILERS, true);
      return;
    }
    const trailers: HeaderList = stream.headersSent ? [] : [
      ":status",
      "200",
      "content-type",
      "application/grpc",
    ];
    trailers.push("grpc-status", String(code));
    if (message !== "") {
      trailers.push("grpc-message", encodeGrpcMessage(message));
    }
    stream.sendHeaders(trailers, true);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #rejectDrainWaiters(error: GrpcError): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}

/** Scratch for the unary fast path: the prefix is copied out at once. */
const PREFIX_SCRATCH = new Uint8Array(MESSAGE_PREFIX_BYTES);
