/**
 * Errors of the MVCC layer and of request validation, carrying etcd's exact
 * error texts so that users (and the gRPC server later) see what etcd says.
 *
 * @module
 */

/** Base class of every error revkv raises for an etcd-defined condition. */
export class EtcdError extends Error {
  /** gRPC status code etcd uses for this error (e.g. 3 INVALID_ARGUMENT, 11 OUT_OF_RANGE). */
  readonly grpcCode: number;
  /**
   * An error with etcd's message and gRPC code.
   * @param message etcd's error text, e.g. `etcdserver: mvcc: required revision has been compacted`.
   * @param grpcCode the gRPC status code etcd returns with it.
   */
  constructor(message: string, grpcCode: number) {
    super(message);
    this.name = "EtcdError";
    this.grpcCode = grpcCode;
  }
}

/** A read or compaction asked for a revision that compaction has removed. */
export class CompactedError extends EtcdError {
  /** The store's compacted revision at the time of the request. */
  readonly compactRevision: number;
  /**
   * The compaction error, naming the compacted revision.
   * @param compactRevision the compacted revision.
   */
  constructor(compactRevision: number) {
    super("etcdserver: mvcc: required revision has been compacted", 11);
    this.name = "CompactedError";
    this.compactRevision = compactRevision;
  }
}

/** A read or compaction asked for a revision beyond the current revision. */
export class FutureRevisionError extends EtcdError {
  constructor() {
    super("etcdserver: mvcc: required revision is a future revision", 11);
    this.name = "FutureRevisionError";
  }
}

/** Request validation failures, with etcd's texts (all INVALID_ARGUMENT). */
export const errors = {
  emptyKey: () => new EtcdError("etcdserver: key is not provided", 3),
  valueProvided: () => new EtcdError("etcdserver: value is provided", 3),
  leaseProvided: () => new EtcdError("etcdserver: lease is provided", 3),
  requestTooLarge: () => new EtcdError("etcdserver: request is too large", 3),
  leaseNotFound: () =>
    new EtcdError("etcdserver: requested lease not found", 5),
  invalidSortOption: () => new EtcdError("etcdserver: invalid sort option", 3),
  keyNotFound: () => new EtcdError("etcdserver: key not found", 3),
  storeClosed: () => new EtcdError("revkv: store is closed", 9),
  /** Writes in flight are at their bound (RESOURCE_EXHAUSTED, as etcd). */
  tooManyRequests: () => new EtcdError("etcdserver: too many requests", 8),
} as const;
