/**
 * What every service method shares: the one authorization point every
 * request passes, the error translation, and the conversions between the
 * store's types (numbers for revisions, `KeyValue` objects) and the wire's
 * (bigint int64s, plain messages).
 *
 * A service declares its methods with `unary`, `serverStream` and `bidi`;
 * each wraps the handler so that (1) the `Authorizer` is asked first, (2)
 * whatever the handler throws becomes etcd's gRPC status via
 * `toGrpcError`. Auth (users, roles, permissions) slots in by replacing the
 * authorizer; no service changes.
 *
 * @module
 */

import type { KeyValue, ResponseHeader } from "../mvcc/kv.ts";
import type {
  BidiStreamMethod,
  CallContext,
  GrpcMethod,
  MessageSink,
  ServerStreamMethod,
  UnaryMethod,
} from "../wire/grpc_service.ts";
import type * as pb from "../wire/etcd_messages.ts";
import { toGrpcError } from "./errors.ts";

/**
 * Decides whether a call may run. Throws a GrpcError (PERMISSION_DENIED,
 * UNAUTHENTICATED) to refuse it. Today's server allows every call.
 */
export type Authorizer = (context: CallContext) => void | Promise<void>;

/** The authorizer of a server without auth: every call is allowed. */
export const allowAll: Authorizer = () => {};

/** One service's methods, by gRPC path. */
export type MethodEntries = [string, GrpcMethod][];

/** A unary method: decode, authorize, handle, encode. */
export function unary<Req, Res>(
  authorize: Authorizer,
  decode: (bytes: Uint8Array) => Req,
  encode: (response: Partial<Res>) => Uint8Array,
  handle: (
    request: Req,
    context: CallContext,
  ) => Partial<Res> | Promise<Partial<Res>>,
): UnaryMethod {
  return {
    kind: "unary",
    async handle(bytes, context) {
      try {
        await authorize(context);
        const request = decode(bytes);
        return encode(await handle(request, context));
      } catch (error) {
        throw toGrpcError(error);
      }
    },
  };
}

/** A unary method whose handler encodes its own response (hot paths). */
export function unaryEncoded<Req>(
  authorize: Authorizer,
  decode: (bytes: Uint8Array) => Req,
  handle: (request: Req, context: CallContext) => Uint8Array,
): UnaryMethod {
  return {
    kind: "unary",
    async handle(bytes, context) {
      try {
        await authorize(context);
        return handle(decode(bytes), context);
      } catch (error) {
        throw toGrpcError(error);
      }
    },
  };
}

/** A server-streaming method (Snapshot). */
export function serverStream<Req>(
  authorize: Authorizer,
  decode: (bytes: Uint8Array) => Req,
  handle: (
    request: Req,
    responses: MessageSink,
    context: CallContext,
  ) => Promise<void>,
): ServerStreamMethod {
  return {
    kind: "server-stream",
    async handle(bytes, responses, context) {
      try {
        await authorize(context);
        await handle(decode(bytes), responses, context);
      } catch (error) {
        throw toGrpcError(error);
      }
    },
  };
}

/**
 * A bidirectional method (Watch, LeaseKeepAlive); requests stay encoded.
 * When `closing` aborts (the server is shutting down), the handler's
 * request stream ends as if the client had half-closed, so the call ends
 * with OK instead of waiting for the client.
 */
export function bidi(
  authorize: Authorizer,
  handle: (
    requests: AsyncIterable<Uint8Array>,
    responses: MessageSink,
    context: CallContext,
  ) => Promise<void>,
  closing?: AbortSignal,
): BidiStreamMethod {
  return {
    kind: "bidi",
    async handle(requests, responses, context) {
      try {
        await authorize(context);
        const stream = closing === undefined
          ? requests
          : untilAborted(requests, closing);
        await handle(stream, responses, context);
      } catch (error) {
        throw toGrpcError(error);
      }
    },
  };
}

/** `requests`, ending early (as a half-close) once `signal` aborts. */
export async function* untilAborted<T>(
  requests: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncGenerator<T> {
  if (signal.aborted) return;
  const iterator = requests[Symbol.asyncIterator]();
  let onAbort: () => void = () => {};
  const aborted = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next === "aborted" || next.done) return;
      yield next.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    // Not awaited: a transport's iterator may be parked on a read.
    void iterator.return?.();
  }
}

/** A store header as the wire's ResponseHeader. */
export function wireHeader(header: ResponseHeader): pb.ResponseHeader {
  return {
    clusterId: BigInt.asUintN(64, header.clusterId),
    memberId: BigInt.asUintN(64, header.memberId),
    revision: BigInt(header.revision),
    raftTerm: BigInt(header.raftTerm),
  };
}

/** A store KeyValue as the wire's mvccpb.KeyValue. */
export function wireKeyValue(kv: KeyValue): pb.KeyValue {
  return {
    key: kv.key,
    createRevision: BigInt(kv.createRevision),
    modRevision: BigInt(kv.modRevision),
    version: BigInt(kv.version),
    value: kv.value,
    lease: kv.lease,
  };
}

/**
 * An int64 from the wire as a store revision/count. Revisions beyond 2^53
 * cannot exist in a store (see src/mvcc/kv.ts), so they are clamped to the
 * largest safe integer, which every check then treats as "future".
 */
export function toNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (value < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(value);
}
