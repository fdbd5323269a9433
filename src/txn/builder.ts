/**
 * The fluent form of a transaction:
 * `db.txn().if(...).then(...).else(...).commit()`, plus small constructors
 * for compares (`compare.value("k", "==", "v")`) and ops (`op.put("k", "v")`).
 *
 * @module
 */

import type {
  Bytes,
  DeleteOptions,
  KeySelector,
  PutOptions,
  RangeOptions,
} from "../mvcc/kv.ts";
import type {
  Compare,
  CompareResult,
  RequestOp,
  TxnRequest,
  TxnResponse,
} from "./txn.ts";

/** Constructors for the compares of a transaction. */
export const compare = {
  /** Compares the value of `key` (a missing key never matches). */
  value: (
    key: Bytes,
    result: CompareResult,
    value: Bytes,
    range: KeySelector = {},
  ): Compare => ({
    key,
    target: "value",
    result,
    value,
    ...range,
  }),
  /** Compares the version of `key` (0 when missing). */
  version: (
    key: Bytes,
    result: CompareResult,
    version: number,
    range: KeySelector = {},
  ): Compare => ({
    key,
    target: "version",
    result,
    value: version,
    ...range,
  }),
  /** Compares the create revision of `key` (0 when missing). */
  create: (
    key: Bytes,
    result: CompareResult,
    revision: number,
    range: KeySelector = {},
  ): Compare => ({
    key,
    target: "create",
    result,
    value: revision,
    ...range,
  }),
  /** Compares the mod revision of `key` (0 when missing). */
  mod: (
    key: Bytes,
    result: CompareResult,
    revision: number,
    range: KeySelector = {},
  ): Compare => ({
    key,
    target: "mod",
    result,
    value: revision,
    ...range,
  }),
  /** Compares the lease of `key` (0n when missing or none). */
  lease: (
    key: Bytes,
    result: CompareResult,
    lease: bigint,
    range: KeySelector = {},
  ): Compare => ({
    key,
    target: "lease",
    result,
    value: lease,
    ...range,
  }),
};

/** Constructors for the ops of a transaction. */
export const op = {
  /** A range read. */
  get: (key: Bytes, options: RangeOptions = {}): RequestOp => ({
    range: { key, ...options },
  }),
  /** A put. */
  put: (key: Bytes, value: Bytes, options: PutOptions = {}): RequestOp => ({
    put: { key, value, ...options },
  }),
  /** A delete. */
  delete: (key: Bytes, options: DeleteOptions = {}): RequestOp => ({
    deleteRange: { key, ...options },
  }),
  /** A nested transaction. */
  txn: (request: TxnRequest): RequestOp => ({ txn: request }),
};

/**
 * Builds a transaction step by step; `commit()` runs it.
 *
 * @example Compare-and-swap
 * ```ts
 * import { compare, op, open } from "../../mod.ts";
 * const db = await open();
 * await db.put("k", "old");
 * const res = await db.txn()
 *   .if(compare.value("k", "==", "old"))
 *   .then(op.put("k", "new"))
 *   .else(op.get("k"))
 *   .commit();
 * console.log(res.succeeded); // true
 * await db.close();
 * ```
 */
export class TxnBuilder {
  readonly #request: Required<TxnRequest> = {
    compare: [],
    success: [],
    failure: [],
  };

  /**
   * A builder whose `commit()` hands the request to `run`.
   * @param run executes the built request.
   */
  constructor(readonly run: (request: TxnRequest) => Promise<TxnResponse>) {}

  /** Adds compares (all must hold). */
  if(...compares: Compare[]): this {
    this.#request.compare.push(...compares);
    return this;
  }

  /** Adds ops to run when the compares hold. */
  then(...ops: RequestOp[]): this {
    this.#request.success.push(...ops);
    return this;
  }

  /** Adds ops to run when they do not. */
  else(...ops: RequestOp[]): this {
    this.#request.failure.push(...ops);
    return this;
  }

  /** The request as built. */
  get request(): TxnRequest {
    return this.#request;
  }

  /** Runs the transaction. */
  commit(): Promise<TxnResponse> {
    return this.run(this.#request);
  }
}
