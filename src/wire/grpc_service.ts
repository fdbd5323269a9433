/**
 * The contract between revkv's gRPC transport and the services on it.
 *
 * The transport (HTTP/2 framing, HPACK, gRPC message framing, deadlines,
 * cancellation) knows nothing of etcd; the services (src/server/) know
 * nothing of HTTP/2. They meet here: a service is a table from a gRPC path
 * (`/etcdserverpb.KV/Range`) to a method that takes encoded request bytes
 * and produces encoded response bytes. A method fails by throwing a
 * `GrpcError`; the transport turns it into the `grpc-status` and
 * `grpc-message` trailers. Anything else thrown is `INTERNAL`.
 *
 * Streams are bounded both ways: `MessageSink.send` resolves only when the
 * transport has room for the message within HTTP/2 flow control and its own
 * per-stream buffer bound, so a client that stops reading pushes back on the
 * method instead of growing memory; the request iterable yields a message
 * only as the method asks for it.
 *
 * @module
 */

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** One of the gRPC status codes. */
export type GrpcStatusCode = typeof GrpcStatus[keyof typeof GrpcStatus];

/** A failure a method reports to its caller: a gRPC status and message. */
export class GrpcError extends Error {
  /** The gRPC status code carried in `grpc-status`. */
  readonly code: GrpcStatusCode;
  /**
   * @param code the gRPC status code
   * @param message the text carried in `grpc-message` (etcd's words)
   */
  constructor(code: GrpcStatusCode, message: string) {
    super(message);
    this.name = "GrpcError";
    this.code = code;
  }
}

/** What a method knows about the call it serves. */
export interface CallContext {
  /** The gRPC path, e.g. `/etcdserverpb.KV/Range`. */
  readonly path: string;
  /** Request metadata: header names lower-cased, pseudo-headers left out. */
  readonly metadata: ReadonlyMap<string, string>;
  /**
   * Aborted when the client cancels (RST_STREAM), the deadline
   * (`grpc-timeout`) passes, the connection closes, or the server shuts down.
   */
  readonly signal: AbortSignal;
  /** The call's deadline on the `Date.now()` clock, when the client set one. */
  readonly deadlineMs?: number;
}

/** Where a streaming method writes its responses. */
export interface MessageSink {
  /**
   * Sends one encoded message. Resolves once the transport has taken it
   * within its bounds (backpressure); rejects when the stream is gone.
   */
  send(message: Uint8Array): Promise<void>;
}

/** A method with one request and one response. */
export interface UnaryMethod {
  /** The method's shape. */
  readonly kind: "unary";
  /** Answers one encoded request with one encoded response. */
  handle(
    request: Uint8Array,
    context: CallContext,
  ): Promise<Uint8Array> | Uint8Array;
}

/** A method with one request and a stream of responses (Maintenance/Snapshot). */
export interface ServerStreamMethod {
  /** The method's shape. */
  readonly kind: "server-stream";
  /** Sends any number of responses to one request; resolving ends the call OK. */
  handle(
    request: Uint8Array,
    responses: MessageSink,
    context: CallContext,
  ): Promise<void>;
}

/** A method with streams both ways (Watch, LeaseKeepAlive). */
export interface BidiStreamMethod {
  /** The method's shape. */
  readonly kind: "bidi";
  /**
   * Reads requests as they come and sends responses; resolving ends the call
   * OK. The request iterable ends when the client half-closes.
   */
  handle(
    requests: AsyncIterable<Uint8Array>,
    responses: MessageSink,
    context: CallContext,
  ): Promise<void>;
}

/** Any gRPC method. */
export type GrpcMethod = UnaryMethod | ServerStreamMethod | BidiStreamMethod;

/** The methods a server offers, by gRPC path. Unknown paths are UNIMPLEMENTED. */
export type GrpcServiceTable = ReadonlyMap<string, GrpcMethod>;
