/**
 * Transactions as etcd runs them: validate the whole request (op counts,
 * keys, duplicate writes), evaluate every compare — nested ones included —
 * against the state before the transaction, check the requests of the chosen
 * branches (leases exist, keys exist for ignore_value/ignore_lease, read
 * revisions are readable), and only then apply the ops, all in one write
 * transaction: one main revision, a sub revision per write. A failing check
 * writes nothing.
 *
 * @module
 */

import {
  type Bytes,
  type DeleteOptions,
  type DeleteResponse,
  type KeySelector,
  type PutOptions,
  type PutResponse,
  type RangeOptions,
  type RangeResponse,
  type ResponseHeader,
  toBytes,
} from "../mvcc/kv.ts";
import {
  compareBytes,
  type KeyBounds,
  type WriteTxn,
} from "../mvcc/kv_store.ts";
import { errors, EtcdError } from "../mvcc/errors.ts";
import type { RevisionEntry } from "../mvcc/key_index.ts";
import { resolveBounds } from "../mvcc/key_bounds.ts";

/** etcd's default `--max-txn-ops`. */
export const DEFAULT_MAX_TXN_OPS = 128;

/** What a compare looks at. */
export type CompareTarget = "value" | "version" | "create" | "mod" | "lease";
/** How a compare compares (etcd's EQUAL, NOT_EQUAL, LESS, GREATER). */
export type CompareResult = "==" | "!=" | "<" | ">";

/** One condition of a transaction (etcd's `Compare`), over a key or a range. */
export interface Compare extends KeySelector {
  /** The key (or the start of the range). */
  key: Bytes;
  /** The field compared. */
  target: CompareTarget;
  /** The comparison. */
  result: CompareResult;
  /**
   * The operand: bytes for `value`, a revision or version number for
   * `create`/`mod`/`version`, a lease ID for `lease`.
   */
  value: Bytes | number | bigint;
}

/** One operation of a transaction branch (etcd's `RequestOp`). */
export type RequestOp =
  | { range: { key: Bytes } & RangeOptions }
  | { put: { key: Bytes; value: Bytes } & PutOptions }
  | { deleteRange: { key: Bytes } & DeleteOptions }
  | { txn: TxnRequest };

/** A transaction (etcd's `TxnRequest`). */
export interface TxnRequest {
  /** All must hold for `success` to run; otherwise `failure` runs. */
  compare?: Compare[];
  /** Ops run when every compare holds. */
  success?: RequestOp[];
  /** Ops run otherwise. */
  failure?: RequestOp[];
}

/** The response of one op (etcd's `ResponseOp`). */
export type ResponseOp =
  | { range: RangeResponse }
  | { put: PutResponse }
  | { deleteRange: DeleteResponse }
  | { txn: TxnResponse };

/** The response of a transaction (etcd's `TxnResponse`). */
export interface TxnResponse {
  /** Response header (nested transactions carry only the revision, as etcd). */
  header: ResponseHeader;
  /** Whether every compare held. */
  succeeded: boolean;
  /** One response per op of the branch that ran. */
  responses: ResponseOp[];
}

/** What running a transaction needs from the store. */
export interface TxnHost {
  /** Largest op count of one level (etcd's `--max-txn-ops`). */
  maxTxnOps: number;
  /** Whether a lease exists (puts with an unknown lease fail). */
  leaseExists(id: bigint): boolean;
  /** Range inside the transaction at `readRevision` (header revision = it). */
  range(txn: WriteTxn, key: Bytes, options: RangeOptions): RangeResponse;
  /** Applies a validated put. */
  put(
    txn: WriteTxn,
    key: Bytes,
    value: Bytes,
    options: PutOptions,
  ): PutResponse;
  /** Applies a validated delete. */
  deleteRange(
    txn: WriteTxn,
    key: Bytes,
    options: DeleteOptions,
  ): DeleteResponse;
  /** The visible entry of one key at `revision` (for checks). */
  exists(key: Uint8Array, revision: number): boolean;
  /**
   * Whether `test` holds for every key visible in bounds at `revision`
   * (stopping at the first that fails); undefined when no key is visible.
   */
  everyVisible(
    bounds: KeyBounds,
    revision: number,
    test: (entry: RevisionEntry) => boolean,
  ): boolean | undefined;
  /** Readable-revision check: throws etcd's compacted/future errors. */
  checkReadRevision(revision: number, readRevision: number): void;
}

/** Whether a transaction can write (any put or delete in any branch). */
export function isReadOnly(request: TxnRequest): boolean {
  const ops = [...(request.success ?? []), ...(request.failure ?? [])];
  return ops.every((op) =>
    "range" in op || ("txn" in op && isReadOnly(op.txn))
  );
}

/**
 * Validates a transaction before anything runs: op counts, empty keys,
 * put flags, and puts/deletes that touch one key twice.
 * @throws EtcdError with etcd's texts.
 */
export function validateTxn(request: TxnRequest, maxTxnOps: number): void {
  checkTxnRequest(request, maxTxnOps);
  checkIntervals(request.success ?? []);
  checkIntervals(request.failure ?? []);
}

function checkTxnRequest(request: TxnRequest, maxTxnOps: number): void {
  const compare = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  const ops = Math.max(compare.length, success.length, failure.length);
  if (ops > maxTxnOps) {
    throw new EtcdError(
      `etcdserver: too many operations in txn request (${ops} operations in one level: ${compare.length} compares, ${success.length} success, ${failure.length} failure; the limit is ${maxTxnOps})`,
      3,
    );
  }
  for (const c of compare) {
    if (toBytes(c.key).length === 0) throw errors.emptyKey();
    if (!COMPARE_TARGETS.has(c.target) || !COMPARE_RESULTS.has(c.result)) {
      throw new TypeError(
        `Invalid compare: target ${String(c.target)}, result ${
          String(c.result)
        }`,
      );
    }
  }
  for (const op of [...success, ...failure]) {
    checkRequestOp(op, maxTxnOps - ops);
  }
}

const COMPARE_TARGETS = new Set(["value", "version", "create", "mod", "lease"]);
const COMPARE_RESULTS = new Set(["==", "!=", "<", ">"]);

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if ("range" in op) {
    if (toBytes(op.range.key).length === 0) throw errors.emptyKey();
  } else if ("put" in op) {
    const put = op.put;
    if (toBytes(put.key).length === 0) throw errors.emptyKey();
    if (put.ignoreValue && toBytes(put.value).length !== 0) {
      throw errors.valueProvided();
    }
    if (put.ignoreLease && (put.lease ?? 0n) !== 0n) {
      throw errors.leaseProvided();
    }
  } else if ("deleteRange" in op) {
    if (toBytes(op.deleteRange.key).length === 0) throw errors.emptyKey();
  } else if ("txn" in op) {
    checkTxnRequest(op.txn, maxTxnOps);
  } else {
    throw errors.keyNotFound();
  }
}

/** A half-open byte interval `[start, end)`; `end === null` is unbounded. */
interface Interval {
  start: Uint8Array;
  end: Uint8Array | null;
}

function intervalOf(bounds: KeyBounds): Interval {
  if (bounds.end === undefined) {
    const end = new Uint8Array(bounds.start.length + 1);
    end.set(bounds.start);
    return { start: bounds.start, end };
  }
  return { start: bounds.start, end: bounds.end };
}

function hits(intervals: Interval[], key: Uint8Array): boolean {
  return intervals.some((iv) =>
    compareBytes(iv.start, key) <= 0 &&
    (iv.end === null || compareBytes(key, iv.end) < 0)
  );
}

function keyString(key: Uint8Array): string {
  // A lossless map from bytes to a string key (each byte one char).
  let s = "";
  for (let i = 0; i < key.length; i++) s += String.fromCharCode(key[i]!);
  return s;
}

/**
 * etcd's duplicate-write check: within one branch (and the branches nested
 * in it), no key may be put twice or put inside a range the same branch
 * deletes. The two branches of one nested txn may put the same key (only
 * one of them runs).
 */
function checkIntervals(
  ops: RequestOp[],
): { puts: Map<string, Uint8Array>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    if ("deleteRange" in op) {
      dels.push(intervalOf(resolveBounds(op.deleteRange.key, op.deleteRange)));
    }
  }
  const puts = new Map<string, Uint8Array>();
  for (const op of ops) {
    if (!("txn" in op)) continue;
    const then = checkIntervals(op.txn.success ?? []);
    const otherwise = checkIntervals(op.txn.failure ?? []);
    for (const [k, key] of then.puts) {
      if (puts.has(k) || hits(dels, key)) throw duplicateKey();
      puts.set(k, key);
    }
    for (const [k, key] of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw duplicateKey();
      if (hits(dels, key)) throw duplicateKey();
      puts.set(k, key);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (!("put" in op)) continue;
    const key = toBytes(op.put.key);
    const k = keyString(key);
    if (puts.has(k) || hits(dels, key)) throw duplicateKey();
    puts.set(k, key);
  }
  return { puts, dels };
}

function duplicateKey(): EtcdError {
  return new EtcdError("etcdserver: duplicate key given in txn request", 3);
}

/**
 * Evaluates the compares of the transaction and of every nested one on the
 * branches taken, all against the state at `revision` (before any write).
 * Returns the path: one boolean per transaction, depth first.
 */
export function comparePath(
  host: TxnHost,
  request: TxnRequest,
  revision: number,
): boolean[] {
  const succeeded = (request.compare ?? []).every((c) =>
    evaluateCompare(host, c, revision)
  );
  const path = [succeeded];
  const ops = succeeded ? request.success ?? [] : request.failure ?? [];
  for (const op of ops) {
    if ("txn" in op) path.push(...comparePath(host, op.txn, revision));
  }
  return path;
}

function evaluateCompare(host: TxnHost, c: Compare, revision: number): boolean {
  const all = host.everyVisible(
    resolveBounds(c.key, c),
    revision,
    (entry) => compareOne(c, entry),
  );
  if (all !== undefined) return all;
  // A value compare on a missing key always fails (nil == empty in gRPC, so
  // there is no way to tell them apart); the others compare zero.
  return c.target !== "value" && compareOne(c, MISSING_KEY);
}

/** What a compare sees of a key that does not exist: zeros. */
const MISSING_KEY: RevisionEntry = {
  main: 0,
  sub: 0,
  createRevision: 0,
  version: 0,
  value: new Uint8Array(0),
  lease: 0n,
};

function compareOne(c: Compare, kv: RevisionEntry): boolean {
  let result: number;
  switch (c.target) {
    case "value": {
      const operand =
        typeof c.value === "string" || c.value instanceof Uint8Array
          ? toBytes(c.value)
          : new TextEncoder().encode(String(c.value));
      result = compareBytes(kv.value!, operand);
      break;
    }
    case "lease":
      result = compareBig(kv.lease, toBig(c.value));
      break;
    default: {
      const field = c.target === "version"
        ? kv.version
        : c.target === "create"
        ? kv.createRevision
        : kv.main;
      result = compareBig(BigInt(field), toBig(c.value));
    }
  }
  switch (c.result) {
    case "==":
      return result === 0;
    case "!=":
      return result !== 0;
    case ">":
      return result > 0;
    case "<":
      return result < 0;
  }
}

function toBig(value: Bytes | number | bigint): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return BigInt(Math.trunc(value));
  const text = typeof value === "string"
    ? value
    : new TextDecoder().decode(value);
  try {
    return BigInt(text);
  } catch {
    throw new TypeError(`Invalid compare operand: ${JSON.stringify(text)}`);
  }
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Checks the requests on the chosen path before any write: puts name
 * existing leases (and existing keys for ignore_value/ignore_lease), ranges
 * ask for readable revisions.
 */
export function checkRequests(
  host: TxnHost,
  request: TxnRequest,
  path: boolean[],
  revision: number,
  writable: boolean,
): number {
  let used = 1;
  const ops = path[0] ? request.success ?? [] : request.failure ?? [];
  for (const op of ops) {
    if ("txn" in op) {
      used += checkRequests(host, op.txn, path.slice(used), revision, writable);
    } else if ("put" in op && writable) {
      const put = op.put;
      if (
        (put.ignoreValue || put.ignoreLease) &&
        !host.exists(toBytes(put.key), revision)
      ) {
        throw errors.keyNotFound();
      }
      const lease = put.lease ?? 0n;
      if (lease !== 0n && !host.leaseExists(lease)) {
        throw errors.leaseNotFound();
      }
    } else if ("range" in op) {
      const rev = op.range.revision ?? 0;
      if (rev !== 0) host.checkReadRevision(rev, revision);
    }
  }
  return used;
}

/**
 * Applies the ops on the path inside `txn` and builds the responses.
 * Nested responses carry a header with only the revision, as etcd's.
 */
export function applyTxn(
  host: TxnHost,
  txn: WriteTxn,
  request: TxnRequest,
  path: boolean[],
): { response: Omit<TxnResponse, "header">; used: number } {
  let used = 1;
  const succeeded = path[0]!;
  const ops = succeeded ? request.success ?? [] : request.failure ?? [];
  const responses: ResponseOp[] = [];
  for (const op of ops) {
    if ("range" in op) {
      const { key, ...options } = op.range;
      responses.push({ range: host.range(txn, key, options) });
    } else if ("put" in op) {
      const { key, value, ...options } = op.put;
      responses.push({ put: host.put(txn, key, value, options) });
    } else if ("deleteRange" in op) {
      const { key, ...options } = op.deleteRange;
      responses.push({ deleteRange: host.deleteRange(txn, key, options) });
    } else {
      const nested = applyTxn(host, txn, op.txn, path.slice(used));
      used += nested.used;
      // etcd leaves a nested transaction's header empty.
      responses.push({ txn: { header: innerHeader(0), ...nested.response } });
    }
  }
  return { response: { succeeded, responses }, used };
}

/** A header as etcd fills nested responses: the revision only. */
export function innerHeader(revision: number): ResponseHeader {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}
