/**
 * The gRPC client on revkv's own HTTP/2 connection (client role), over
 * `connectTcp` / `connectUnix` from `socket.ts`, so it runs on Deno and on
 * Node alike: unary and bidirectional calls over encoded bytes. It is the
 * transport under `connect()` (`src/client/`), and revkv's tests use it to
 * drive the server the way a real client does.
 *
 * A call is one stream: request headers (`:path`, `content-type:
 * application/grpc`, `te: trailers`, `grpc-timeout` when a deadline is set),
 * length-prefixed messages, END_STREAM; the answer is response headers,
 * messages, and the `grpc-status` trailers (or one trailers-only HEADERS).
 * A non-zero status rejects with a `GrpcError` carrying the server's code
 * and decoded message. Received messages are credited back to the server's
 * window only as the caller takes them, so a slow reader slows the server
 * instead of buffering without bound.
 *
 * @module
 */

import { GrpcError, GrpcStatus, type GrpcStatusCode } from "./grpc_service.ts";
import {
  decodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  MessageReader,
} from "./grpc_framing.ts";
import {
  type ConnectionLimits,
  Http2Connection,
  type Http2Stream,
  type StreamHandler,
} from "./http2/connection.ts";
import { ErrorCode, Http2Error } from "./http2/frame.ts";
import type { HeaderList } from "./http2/hpack.ts";
import { connectTcp, connectUnix, type SocketConn } from "./socket.ts";

/** Options of one call. */
export interface CallOptions {
  /** Deadline as a timeout from now; sent as `grpc-timeout`. */
  timeoutMs?: number;
  /** Aborting cancels the call (RST_STREAM CANCEL). */
  signal?: AbortSignal;
  /** Extra request metadata (lower-case names). */
  metadata?: Record<string, string>;
}

/** A bidirectional call in progress. */
export interface BidiCall extends AsyncIterable<Uint8Array> {
  /** Sends one message; resolves when the transport took it (backpressure). */
  send(message: Uint8Array): Promise<void>;
  /** Half-closes: no more requests. */
  end(): void;
  /** Cancels the call. */
  cancel(): void;
  /** Resolves on OK, rejects with the call's `GrpcError`. */
  readonly done: Promise<void>;
}

/** A gRPC client on one HTTP/2 connection. */
export interface GrpcClient {
  /** One request, one response. */
  unary(
    path: string,
    request: Uint8Array,
    options?: CallOptions,
  ): Promise<Uint8Array>;
  /**
   * A bidirectional stream. Opens at once: the caller keeps the number of
   * open streams within the server's limit (unary calls wait for a slot).
   */
  bidi(path: string, options?: CallOptions): BidiCall;
  /** Closes the connection (calls in flight fail with CANCELLED). */
  close(): Promise<void>;
  /** The connection underneath. */
  readonly connection: Http2Connection;
}

/** Options of {@linkcode connectGrpc}. */
export interface ConnectGrpcOptions {
  /** Host to connect to (loopback in tests); ignored with `path`. */
  hostname: string;
  /** TCP port; ignored with `path`. */
  port: number;
  /** A unix socket to connect to instead of TCP. */
  path?: string;
  /** Connection limits (windows, frame size, buffers). */
  limits?: Partial<ConnectionLimits>;
  /** Largest response message accepted. */
  maxReceiveMessageBytes?: number;
}

/** The default response size limit: as grpc-go's client (4 MiB). */
const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 << 20;
/** Paths whose encoded request headers are kept (a service has a few). */
const FIXED_BLOCKS_MAX = 64;
/** Undelivered response bytes before window credit is held back. */
const RESPONSE_QUEUE_BYTES = 64 << 10;

/** HTTP status → gRPC code when a response is not gRPC (grpc/doc/http-grpc-status-mapping.md). */
function statusFromHttp(status: string): GrpcStatusCode {
  switch (status) {
    case "400":
      return GrpcStatus.INTERNAL;
    case "401":
      return GrpcStatus.UNAUTHENTICATED;
    case "403":
      return GrpcStatus.PERMISSION_DENIED;
    case "404":
      return GrpcStatus.UNIMPLEMENTED;
    case "429":
    case "502":
    case "503":
    case "504":
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * Connects to a gRPC server over h2c (prior knowledge).
 *
 * @example Call a unary method
 * ```ts ignore
 * const client = await connectGrpc({ hostname: "127.0.0.1", port: 2379 });
 * const response = await client.unary("/etcdserverpb.KV/Range", request);
 * await client.close();
 * ```
 */
export async function connectGrpc(
  options: ConnectGrpcOptions,
): Promise<GrpcClient> {
  const conn: SocketConn = options.path !== undefined
    ? await connectUnix(options.path)
    : await connectTcp({ hostname: options.hostname, port: options.port });
  if (options.path === undefined) {
    try {
      conn.setNoDelay?.(true);
    } catch { /* not TCP */ }
  }
  const connection = new Http2Connection(conn, {}, {
    role: "client",
    limits: options.limits,
  });
  const authority = options.path !== undefined
    ? "localhost"
    : `${options.hostname}:${options.port}`;
  const maxReceive = options.maxReceiveMessageBytes ??
    DEFAULT_MAX_RECEIVE_MESSAGE_BYTES;

  // The fixed part of each request's headers, HPACK-encoded once per path:
  // the encoder is stateless, so blocks concatenate, and re-encoding (with
  // Huffman) the same six headers was a tenth of a unary call's CPU.
  const fixedBlocks = new Map<string, Uint8Array>();
  const fixedBlock = (path: string): Uint8Array => {
    let block = fixedBlocks.get(path);
    if (block === undefined) {
      block = connection.encoder.encode([
        ":method",
        "POST",
        ":scheme",
        "http",
        ":path",
        path,
        ":authority",
        authority,
        "content-type",
        "application/grpc",
        "te",
        "trailers",
      ]);
      if (fixedBlocks.size >= FIXED_BLOCKS_MAX) fixedBlocks.clear();
      fixedBlocks.set(path, block);
    }
    return block;
  };

  const open = (
    path: string,
    callOptions: CallOptions,
    call: ClientCall,
    slotReserved = false,
  ) => {
    let block = fixedBlock(path);
    const { timeoutMs, metadata } = callOptions;
    if (timeoutMs !== undefined || metadata !== undefined) {
      const extra: HeaderList = [];
      if (timeoutMs !== undefined) {
        extra.push("grpc-timeout", formatGrpcTimeout(timeoutMs));
      }
      for (const [name, value] of Object.entries(metadata ?? {})) {
        extra.push(name.toLowerCase(), value);
      }
      const tail = connection.encoder.encode(extra);
      const joined = new Uint8Array(block.length + tail.length);
      joined.set(block);
      joined.set(tail, block.length);
      block = joined;
    }
    let stream: Http2Stream;
    try {
      stream = connection.openStream(block, false, call, slotReserved);
    } catch (error) {
      const message = error instanceof Http2Error
        ? error.message
        : String(error);
      throw new GrpcError(GrpcStatus.UNAVAILABLE, message);
    }
    call.stream = stream;
    if (callOptions.signal) {
      const signal = callOptions.signal;
      if (signal.aborted) call.cancel();
      else {signal.addEventListener("abort", () => call.cancel(), {
          once: true,
        });}
    }
    return stream;
  };

  const slot = () =>
    connection.waitForStreamSlot().catch((error) => {
      throw new GrpcError(GrpcStatus.UNAVAILABLE, String(error?.message));
    });

  return {
    connection,
    async unary(path, request, callOptions = {}) {
      await slot();
      const call = new ClientCall(maxReceive);
      const stream = open(path, callOptions, call, true);
      stream.sendData(frameMessage(request), true);
      await call.done;
      if (call.messages.length !== 1) {
        throw new GrpcError(
          GrpcStatus.INTERNAL,
          `expected one response message, got ${call.messages.length}`,
        );
      }
      return call.messages[0]!;
    },
    bidi(path, callOptions = {}) {
      const call = new ClientCall(maxReceive);
      const stream = open(path, callOptions, call);
      call.done.catch(() => {});
      return {
        done: call.done,
        send(message) {
          if (!stream.writable) {
            return Promise.reject(
              call.error ?? new GrpcError(GrpcStatus.CANCELLED, "call ended"),
            );
          }
          if (stream.sendData(frameMessage(message))) return Promise.resolve();
          return new Promise((resolve) => call.drainWaiters.push(resolve));
        },
        end() {
          stream.sendData(new Uint8Array(0), true);
        },
        cancel() {
          call.cancel();
        },
        [Symbol.asyncIterator]: () => call.iterate(),
      };
    },
    async close() {
      await connection.close();
    },
  };
}

/** The client side of one call: a StreamHandler collecting the answer. */
class ClientCall implements StreamHandler {
  stream: Http2Stream | undefined;
  readonly messages: Uint8Array[] = [];
  readonly drainWaiters: (() => void)[] = [];
  readonly done: Promise<void>;
  error: GrpcError | undefined;
  #reader: MessageReader;
  #httpStatus = "";
  #ended = false;
  #resolve!: () => void;
  #reject!: (error: GrpcError) => void;
  #wake: (() => void) | undefined;
  #queuedBytes = 0;
  #heldCredit = 0;
  #streaming = false;

  constructor(maxReceiveMessageBytes: number) {
    this.#reader = new MessageReader(maxReceiveMessageBytes);
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  onHeaders(headers: HeaderList, endStream: boolean): void {
    let grpcStatus: string | undefined;
    let grpcMessage = "";
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name === ":status") this.#httpStatus = headers[i + 1]!;
      else if (name === "grpc-status") grpcStatus = headers[i + 1]!;
      else if (name === "grpc-message") grpcMessage = headers[i + 1]!;
    }
    if (!endStream) return;
    if (grpcStatus === undefined) {
      this.#finish(
        this.#httpStatus !== "200" && this.#httpStatus !== ""
          ? statusFromHttp(this.#httpStatus)
          : GrpcStatus.INTERNAL,
        `server closed the stream without grpc-status (HTTP ${this.#httpStatus})`,
      );
      return;
    }
    this.#finish(
      Number(grpcStatus) as GrpcStatusCode,
      decodeGrpcMessage(grpcMessage),
    );
  }

  onData(data: Uint8Array, endStream: boolean): void {
    const stream = this.stream!;
    try {
      this.#reader.push(data, (message) => {
        this.messages.push(message);
        this.#queuedBytes += message.length;
      });
    } catch (error) {
      stream.consumed(data.length);
      this.#finish((error as GrpcError).code, (error as GrpcError).message);
      stream.reset(ErrorCode.CANCEL);
      return;
    }
    if (!this.#streaming || this.#queuedBytes < RESPONSE_QUEUE_BYTES) {
      stream.consumed(data.length);
    } else {
      this.#heldCredit += data.length;
    }
    this.#wakeReader();
    if (endStream) {
      this.#finish(
        GrpcStatus.INTERNAL,
        "server ended the stream without trailers",
      );
    }
  }

  onReset(errorCode: number): void {
    this.#finish(
      GrpcStatus.CANCELLED,
      errorCode === ErrorCode.CANCEL
        ? "call cancelled"
        : `stream reset with HTTP/2 error ${errorCode}`,
    );
  }

  onDrain(): void {
    const waiters = this.drainWaiters.splice(0);
    for (const wake of waiters) wake();
  }

  cancel(): void {
    if (this.#ended) return;
    this.stream?.reset(ErrorCode.CANCEL);
    this.#finish(GrpcStatus.CANCELLED, "call cancelled");
  }

  async *iterate(): AsyncGenerator<Uint8Array> {
    this.#streaming = true;
    for (;;) {
      while (this.messages.length > 0) {
        const message = this.messages.shift()!;
        this.#queuedBytes -= message.length;
        if (this.#heldCredit > 0 && this.#queuedBytes < RESPONSE_QUEUE_BYTES) {
          this.stream?.consumed(this.#heldCredit);
          this.#heldCredit = 0;
        }
        yield message;
      }
      if (this.#ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #finish(code: GrpcStatusCode, message: string): void {
    if (this.#ended) return;
    this.#ended = true;
    if (code === GrpcStatus.OK) {
      this.#resolve();
    } else {
      this.error = new GrpcError(code, message);
      this.#reject(this.error);
    }
    this.#wakeReader();
    this.onDrain();
  }
}
