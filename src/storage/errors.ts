/**
 * Errors of the storage layer. Every failure of the disk reaches the user
 * as one of two named errors that say which file and which operation:
 * `NoSpaceError` for a full disk (and, without a file, for the store's
 * quota, with etcd's text), `StorageFailedError` for any other I/O failure
 * and for a store that stopped because of one (fail-stop). `namedStorageError`
 * turns an error of the file system into them; `fs.ts`'s `withNamedErrors`
 * applies it to every call the storage makes.
 *
 * @module
 */

import { EtcdError } from "../mvcc/errors.ts";
import { runtime } from "./runtime.ts";

/** Which file operation failed, and on what. */
export interface StorageFailure {
  /** The file (or directory) operated on. */
  file: string;
  /** The operation: `open`, `write`, `fdatasync`, `rename`, `remove`, … */
  operation: string;
}

/**
 * No space: the store is past its quota (etcd's ErrGRPCNoSpace,
 * RESOURCE_EXHAUSTED), or the disk is full (then `file` and `operation`
 * say where).
 */
export class NoSpaceError extends EtcdError {
  /** The file being written when the disk was full (undefined: the quota). */
  readonly file: string | undefined;
  /** The operation that found the disk full. */
  readonly operation: string | undefined;
  /**
   * A full disk (with `failure`) or the quota (without).
   * @param failure where the disk was found full; omitted for the quota.
   * @param cause the error of the failed call.
   */
  constructor(failure?: StorageFailure, cause?: unknown) {
    super(
      failure
        ? `revkv: no space left on device: ${failure.operation} ${failure.file}`
        : "etcdserver: mvcc: database space exceeded",
      8,
    );
    this.name = "NoSpaceError";
    this.file = failure?.file;
    this.operation = failure?.operation;
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * The disk failed: an I/O error naming the file and the operation, or (with
 * `stopped`) the fail-stop state of a store whose journal failed: every
 * pending and later write is rejected with it, and nothing unsynced was
 * acknowledged.
 */
export class StorageFailedError extends Error {
  /** The file of the failed operation, when known. */
  readonly file: string | undefined;
  /** The failed operation, when known. */
  readonly operation: string | undefined;
  /** Whether the store stopped on this failure (fail-stop). */
  readonly stopped: boolean;
  /**
   * A storage failure, named by its file and operation.
   * @param cause the error of the failed call (a named error is unwrapped
   *   for its file and operation).
   * @param options `failure`: where; `stopped`: the store stopped on it.
   */
  constructor(
    cause: unknown,
    options: { failure?: StorageFailure; stopped?: boolean } = {},
  ) {
    const named = cause instanceof StorageFailedError ||
        cause instanceof NoSpaceError
      ? cause
      : undefined;
    const file = options.failure?.file ?? named?.file;
    const operation = options.failure?.operation ?? named?.operation;
    const where = file !== undefined ? `: ${operation} ${file}` : "";
    // The OS's own words (a named cause already carries file and operation).
    const why = named !== undefined
      ? (named.cause as Error | undefined)?.message ?? named.message
      : (cause as Error)?.message ?? String(cause);
    super(
      options.stopped
        ? `revkv: storage failed${where}, the store stopped (fail-stop; ` +
          `writes not acknowledged were not made durable): ${why}`
        : `revkv: storage failed${where}: ${why}`,
      { cause },
    );
    this.name = "StorageFailedError";
    this.file = file;
    this.operation = operation;
    this.stopped = options.stopped ?? false;
  }
}

/** Whether `error` is the OS's "no space left on device" (ENOSPC). */
export function isNoSpace(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  return e?.code === "ENOSPC" ||
    (typeof e?.message === "string" &&
      /No space left on device|os error 28\b/.test(e.message));
}

/**
 * The named error for a failed file operation: `NoSpaceError` for ENOSPC,
 * else `StorageFailedError`. Named errors, the conditions callers test for
 * (`NotFound`, `AlreadyExists`), and a permission Deno refused (`NotCapable`:
 * not a disk failure, and the CLI turns it into one line naming the flag)
 * pass through unchanged.
 */
export function namedStorageError(
  error: unknown,
  failure: StorageFailure,
): unknown {
  if (
    error instanceof NoSpaceError || error instanceof StorageFailedError ||
    runtime.isNotFound(error) || runtime.isAlreadyExists(error) ||
    runtime.isPermissionRefused(error)
  ) return error;
  if (isNoSpace(error)) return new NoSpaceError(failure, error);
  return new StorageFailedError(error, { failure });
}

/** The meta file (cluster and member IDs, term) does not verify. */
export class MetaCorruptionError extends Error {
  /**
   * A meta file that does not verify.
   * @param file the meta file.
   * @param offset where it went wrong (0: the file as a whole).
   * @param reason what was wrong.
   */
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`revkv: meta file ${file} is corrupt at offset ${offset}: ${reason}`);
    this.name = "MetaCorruptionError";
  }
}
