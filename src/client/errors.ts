/**
 * What a failed call looks like to the caller: the same error classes the
 * embedded store throws, with etcd's messages. The server sends etcd's
 * text in `grpc-message` with etcd's code (`src/server/errors.ts` is that
 * table); here the text picks the class back, so `catch (e) { if (e
 * instanceof CompactedError) … }` works unchanged over the wire.
 *
 * The compaction revision is not on the wire for a read (etcd sends only
 * the text), so a remote `CompactedError` carries `compactRevision` 0;
 * watches learn it from the watch response instead.
 *
 * Transport failures (no endpoint reachable, a deadline) become etcd
 * client's words: `context deadline exceeded`, as etcdctl prints them.
 *
 * @module
 */

import {
  CompactedError,
  EtcdError,
  FutureRevisionError,
} from "../mvcc/errors.ts";
import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";

const COMPACTED = "etcdserver: mvcc: required revision has been compacted";
const FUTURE = "etcdserver: mvcc: required revision is a future revision";

/** clientv3's text for a call whose deadline passed (context.DeadlineExceeded). */
export const DEADLINE_EXCEEDED = "context deadline exceeded";

/** The error a caller sees for a GrpcError (or anything else) from a call. */
export function fromGrpcError(error: unknown): Error {
  if (error instanceof EtcdError) return error;
  if (!(error instanceof GrpcError)) {
    return error instanceof Error ? error : new Error(String(error));
  }
  if (error.message === COMPACTED) return new CompactedError(0);
  if (error.message === FUTURE) return new FutureRevisionError();
  if (error.code === GrpcStatus.DEADLINE_EXCEEDED) {
    return new EtcdError(DEADLINE_EXCEEDED, GrpcStatus.DEADLINE_EXCEEDED);
  }
  return new EtcdError(error.message, error.code);
}

/** The deadline error (every endpoint down, or a call past its timeout). */
export function deadlineExceeded(): EtcdError {
  return new EtcdError(DEADLINE_EXCEEDED, GrpcStatus.DEADLINE_EXCEEDED);
}
