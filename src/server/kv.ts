/**
 * etcd's KV service (Range, Put, DeleteRange, Txn, Compact) as a thin
 * translation of each wire request onto the Store: field for field, no
 * semantics of its own. The store already validates what etcd validates
 * (empty keys, ignore_value/ignore_lease, duplicate keys in a txn, too many
 * ops, leases, request size, quota, compacted and future revisions), and
 * its errors carry etcd's texts, which `errors.ts` maps to gRPC codes.
 *
 * `serializable` is accepted and ignored: a single member always answers
 * from its own committed state, which is what a linearizable read sees.
 *
 * @module
 */

import type { Store } from "../store.ts";
import type { RangeOptions, RangeResponse } from "../mvcc/kv.ts";
import type {
  Compare,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from "../txn/txn.ts";
import { errors } from "../mvcc/errors.ts";
import type { StoredKeyValue } from "../mvcc/range.ts";
import * as pb from "../wire/etcd_messages.ts";
import { RangeResponseWriter } from "../wire/response_writers.ts";
import {
  COMPARE_RESULTS,
  COMPARE_TARGETS,
  SORT_ORDERS,
  SORT_TARGETS,
} from "../wire_enums.ts";
import { type MvccCounters, NO_MVCC_COUNTERS } from "./metrics.ts";
import {
  type Authorizer,
  type MethodEntries,
  toNumber,
  unary,
  unaryEncoded,
  wireHeader,
  wireKeyValue,
} from "./method.ts";

/**
 * The KV service's methods over `store`; each applied request is reported
 * to `counters` (etcd's `etcd_mvcc_*_total`).
 */
export function kvMethods(
  store: Store,
  authorize: Authorizer,
  counters: MvccCounters = NO_MVCC_COUNTERS,
): MethodEntries {
  let rangeWriter = new RangeResponseWriter();
  const addToRange = (kv: StoredKeyValue) => rangeWriter.addKeyValue(kv);
  return [
    [
      "/etcdserverpb.KV/Range",
      unaryEncoded(authorize, pb.decodeRangeRequest, (req) => {
        // Synchronous from read to bytes, so one writer serves every call;
        // the stored bytes are encoded as they are visited, with no
        // KeyValue per key.
        try {
          const res = store.visitRange(req.key, rangeOptions(req), addToRange);
          counters.range();
          return rangeWriter.finish(
            wireHeader(res.header),
            res.more,
            res.count,
          );
        } catch (error) {
          // A refused range writes nothing, but never reuse a writer that
          // may hold part of an answer.
          rangeWriter = new RangeResponseWriter();
          throw error;
        }
      }),
    ],
    [
      "/etcdserverpb.KV/Put",
      unary(
        authorize,
        pb.decodePutRequest,
        pb.encodePutResponse,
        async (req) => {
          const res = await store.put(req.key, req.value, {
            lease: req.lease,
            prevKv: req.prevKv,
            ignoreValue: req.ignoreValue,
            ignoreLease: req.ignoreLease,
          });
          counters.put(req);
          return {
            header: wireHeader(res.header),
            prevKv: res.prevKv && wireKeyValue(res.prevKv),
          };
        },
      ),
    ],
    [
      "/etcdserverpb.KV/DeleteRange",
      unary(
        authorize,
        pb.decodeDeleteRangeRequest,
        pb.encodeDeleteRangeResponse,
        async (req) => {
          const res = await store.delete(req.key, {
            rangeEnd: nonEmpty(req.rangeEnd),
            prevKv: req.prevKv,
          });
          counters.deleteRange(req);
          return {
            header: wireHeader(res.header),
            deleted: BigInt(res.deleted),
            prevKvs: res.prevKvs.map(wireKeyValue),
          };
        },
      ),
    ],
    [
      "/etcdserverpb.KV/Txn",
      unary(
        authorize,
        pb.decodeTxnRequest,
        pb.encodeTxnResponse,
        async (req) => {
          const res = await store.txn(txnRequest(req));
          counters.txn(req, res);
          return wireTxn(res);
        },
      ),
    ],
    [
      "/etcdserverpb.KV/Compact",
      unary(
        authorize,
        pb.decodeCompactionRequest,
        pb.encodeCompactionResponse,
        async (req) => {
          const res = await store.compact(toNumber(req.revision), {
            physical: req.physical,
          });
          return { header: wireHeader(res.header) };
        },
      ),
    ],
  ];
}

function nonEmpty(bytes: Uint8Array): Uint8Array | undefined {
  return bytes.length === 0 ? undefined : bytes;
}

/** A wire RangeRequest's options for the store. */
export function rangeOptions(req: pb.RangeRequest): RangeOptions {
  const sortOrder = SORT_ORDERS[req.sortOrder];
  const sortTarget = SORT_TARGETS[req.sortTarget];
  if (sortOrder === undefined || sortTarget === undefined) {
    throw errors.invalidSortOption();
  }
  return {
    rangeEnd: nonEmpty(req.rangeEnd),
    limit: toNumber(req.limit),
    revision: toNumber(req.revision),
    sortOrder,
    sortTarget,
    keysOnly: req.keysOnly,
    countOnly: req.countOnly,
    minModRevision: toNumber(req.minModRevision),
    maxModRevision: toNumber(req.maxModRevision),
    minCreateRevision: toNumber(req.minCreateRevision),
    maxCreateRevision: toNumber(req.maxCreateRevision),
  };
}

function wireRange(res: RangeResponse): Partial<pb.RangeResponse> {
  return {
    header: wireHeader(res.header),
    kvs: res.kvs.map(wireKeyValue),
    more: res.more,
    count: BigInt(res.count),
  };
}

function compare(c: pb.Compare): Compare {
  const target = COMPARE_TARGETS[c.target];
  const result = COMPARE_RESULTS[c.result];
  if (target === undefined || result === undefined) {
    throw new TypeError("etcdserver: invalid compare target or result");
  }
  let value: Compare["value"];
  switch (target) {
    case "version":
      value = toNumber(c.version ?? 0n);
      break;
    case "create":
      value = toNumber(c.createRevision ?? 0n);
      break;
    case "mod":
      value = toNumber(c.modRevision ?? 0n);
      break;
    case "value":
      value = c.value ?? new Uint8Array(0);
      break;
    case "lease":
      value = c.lease ?? 0n;
      break;
  }
  return { key: c.key, rangeEnd: nonEmpty(c.rangeEnd), target, result, value };
}

function requestOp(op: pb.RequestOp): RequestOp {
  if (op.requestRange) {
    const r = op.requestRange;
    return { range: { key: r.key, ...rangeOptions(r) } };
  }
  if (op.requestPut) {
    const p = op.requestPut;
    return {
      put: {
        key: p.key,
        value: p.value,
        lease: p.lease,
        prevKv: p.prevKv,
        ignoreValue: p.ignoreValue,
        ignoreLease: p.ignoreLease,
      },
    };
  }
  if (op.requestDeleteRange) {
    const d = op.requestDeleteRange;
    return {
      deleteRange: {
        key: d.key,
        rangeEnd: nonEmpty(d.rangeEnd),
        prevKv: d.prevKv,
      },
    };
  }
  if (op.requestTxn) return { txn: txnRequest(op.requestTxn) };
  // etcd's v3rpc checkRequestOp answers an empty op with ErrGRPCKeyNotFound.
  throw errors.keyNotFound();
}

/** A wire TxnRequest (nested txns included) as the store's. */
export function txnRequest(req: pb.TxnRequest): TxnRequest {
  return {
    compare: req.compare.map(compare),
    success: req.success.map(requestOp),
    failure: req.failure.map(requestOp),
  };
}

function responseOp(op: ResponseOp): pb.ResponseOp {
  if ("range" in op) {
    return { responseRange: wireRange(op.range) as pb.RangeResponse };
  }
  if ("put" in op) {
    return {
      responsePut: {
        header: wireHeader(op.put.header),
        prevKv: op.put.prevKv && wireKeyValue(op.put.prevKv),
      },
    };
  }
  if ("deleteRange" in op) {
    const d = op.deleteRange;
    return {
      responseDeleteRange: {
        header: wireHeader(d.header),
        deleted: BigInt(d.deleted),
        prevKvs: d.prevKvs.map(wireKeyValue),
      },
    };
  }
  return { responseTxn: wireTxn(op.txn) as pb.TxnResponse };
}

function wireTxn(res: TxnResponse): Partial<pb.TxnResponse> {
  return {
    header: wireHeader(res.header),
    succeeded: res.succeeded,
    responses: res.responses.map(responseOp),
  };
}
