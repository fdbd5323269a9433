/**
 * The one table from revkv's errors to what an etcd client expects on the
 * wire: a gRPC status code and etcd's exact message (etcd 3.4's
 * `etcdserver/api/v3rpc/rpctypes/error.go`). Clients map these strings back
 * to typed errors (clientv3's `rpctypes.ErrCompacted`, npm:etcd3's
 * `EtcdCompactedError`…), so the text matters as much as the code.
 *
 * revkv's `EtcdError`s already carry etcd's text; some carry more (the
 * too-many-ops error names the counts), so an entry matches a message that
 * equals it or starts with it followed by " (". Anything not in the table
 * keeps its own code if it is an `EtcdError`, a decode failure is
 * INVALID_ARGUMENT, and everything else is INTERNAL with its message.
 *
 * @module
 */

import { EtcdError } from "../mvcc/errors.ts";
import {
  GrpcError,
  GrpcStatus,
  type GrpcStatusCode,
} from "../wire/grpc_service.ts";
import { WireDecodeError } from "../wire/etcd_messages.ts";

/** etcd's messages and their gRPC codes, as rpctypes/error.go has them. */
export const ETCD_GRPC_ERRORS: ReadonlyMap<string, GrpcStatusCode> = new Map<
  string,
  GrpcStatusCode
>([
  ["etcdserver: key is not provided", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: key not found", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: value is provided", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: lease is provided", GrpcStatus.INVALID_ARGUMENT],
  [
    "etcdserver: too many operations in txn request",
    GrpcStatus.INVALID_ARGUMENT,
  ],
  [
    "etcdserver: duplicate key given in txn request",
    GrpcStatus.INVALID_ARGUMENT,
  ],
  [
    "etcdserver: mvcc: required revision has been compacted",
    GrpcStatus.OUT_OF_RANGE,
  ],
  [
    "etcdserver: mvcc: required revision is a future revision",
    GrpcStatus.OUT_OF_RANGE,
  ],
  [
    "etcdserver: mvcc: database space exceeded",
    GrpcStatus.RESOURCE_EXHAUSTED,
  ],
  ["etcdserver: requested lease not found", GrpcStatus.NOT_FOUND],
  ["etcdserver: lease already exists", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: too large lease TTL", GrpcStatus.OUT_OF_RANGE],
  ["etcdserver: request is too large", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: too many requests", GrpcStatus.RESOURCE_EXHAUSTED],
  ["etcdserver: member not found", GrpcStatus.NOT_FOUND],
  ["etcdserver: given member URLs are invalid", GrpcStatus.INVALID_ARGUMENT],
  [
    "etcdserver: can only promote a learner member",
    GrpcStatus.FAILED_PRECONDITION,
  ],
  [
    "etcdserver: re-configuration failed due to not enough started members",
    GrpcStatus.FAILED_PRECONDITION,
  ],
  ["etcdserver: bad leader transferee", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: authentication is not enabled", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: user name not found", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: role name not found", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: permission denied", GrpcStatus.PERMISSION_DENIED],
  ["etcdserver: server stopped", GrpcStatus.UNAVAILABLE],
  ["revkv: store is closed", GrpcStatus.UNAVAILABLE],
]);

/** The message of a closing server (etcd's ErrGRPCStopped). */
export const SERVER_STOPPED = "etcdserver: server stopped";

/** A GrpcError from one of the table's messages. */
export function etcdGrpcError(message: string): GrpcError {
  return new GrpcError(
    ETCD_GRPC_ERRORS.get(message) ?? GrpcStatus.UNKNOWN,
    message,
  );
}

/**
 * Turns anything a service threw into the status a client sees: etcd's code
 * and text for revkv's etcd errors, INVALID_ARGUMENT for undecodable
 * requests and for revkv's argument checks (`TypeError`/`RangeError`),
 * INTERNAL otherwise.
 */
export function toGrpcError(error: unknown): GrpcError {
  if (error instanceof GrpcError) return error;
  if (error instanceof WireDecodeError) {
    return new GrpcError(
      GrpcStatus.INVALID_ARGUMENT,
      `grpc: error unmarshalling request: ${error.message}`,
    );
  }
  if (error instanceof EtcdError) {
    const message = error.message;
    const exact = ETCD_GRPC_ERRORS.get(message);
    if (exact !== undefined) return new GrpcError(exact, message);
    const cut = message.indexOf(" (");
    if (cut > 0) {
      const head = message.slice(0, cut);
      const code = ETCD_GRPC_ERRORS.get(head);
      if (code !== undefined) return new GrpcError(code, head);
    }
    return new GrpcError(error.grpcCode as GrpcStatusCode, message);
  }
  if (error instanceof TypeError || error instanceof RangeError) {
    return new GrpcError(GrpcStatus.INVALID_ARGUMENT, error.message);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new GrpcError(GrpcStatus.INTERNAL, message);
}
