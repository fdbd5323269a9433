/**
 * The client's half of the translation between revkv's API types and etcd's
 * wire messages: requests out (`RangeOptions` → `RangeRequest`, a
 * `TxnRequest` with its compares and nested ops → the wire's), responses in
 * (wire `KeyValue`s → `KeyValue` objects, int64 revisions → numbers, lease
 * IDs stay `bigint`). The server's services do the inverse in
 * `src/server/kv.ts`; the two are kept field for field alike so that a
 * request means the same thing embedded and remote.
 *
 * Keys are resolved exactly as the embedded store resolves them (one key,
 * `rangeEnd`, `prefix`, `fromKey`, through `resolveBounds`), so bad input
 * fails with the same error before anything is sent.
 *
 * @module
 */

import {
  type Bytes,
  type DeleteOptions,
  type DeleteResponse,
  type KeySelector,
  KeyValue,
  type PutOptions,
  type PutResponse,
  type RangeOptions,
  type RangeResponse,
  type ResponseHeader,
  toBytes,
} from "../mvcc/kv.ts";
import { resolveBounds } from "../mvcc/key_bounds.ts";
import type {
  Compare,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from "../txn/txn.ts";
import type { WatchEvent } from "../watch/watch_hub.ts";
import * as pb from "../wire/etcd_messages.ts";
import {
  COMPARE_RESULTS,
  COMPARE_TARGETS,
  SORT_ORDERS,
  SORT_TARGETS,
  wireEnum,
} from "../wire_enums.ts";

const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array([0]);

/** A revision or count from the wire as a number (int64 revisions fit). */
export function wireNumber(value: bigint | undefined): number {
  return value === undefined ? 0 : Number(value);
}

/** A request's key and its range end on the wire (`""` = the key alone). */
export function wireKeys(
  key: Bytes,
  selector: KeySelector = {},
): { key: Uint8Array; rangeEnd: Uint8Array } {
  const bounds = resolveBounds(key, selector);
  return {
    key: bounds.start,
    rangeEnd: bounds.end === undefined
      ? EMPTY
      : bounds.end === null
      ? ZERO_KEY
      : bounds.end,
  };
}

/** etcd's RangeRequest for a key and its options. */
export function rangeRequest(
  key: Bytes,
  options: RangeOptions = {},
): pb.PartialMessage<pb.RangeRequest> {
  const sortOrder = wireEnum(SORT_ORDERS, options.sortOrder ?? "none");
  const sortTarget = wireEnum(SORT_TARGETS, options.sortTarget ?? "key");
  if (sortOrder === undefined || sortTarget === undefined) {
    throw new TypeError(
      `invalid sort option: ${options.sortOrder} by ${options.sortTarget}`,
    );
  }
  return {
    ...wireKeys(key, options),
    limit: wireInt("limit", Math.max(0, options.limit ?? 0)),
    revision: wireInt("revision", options.revision ?? 0),
    sortOrder,
    sortTarget,
    keysOnly: options.keysOnly ?? false,
    countOnly: options.countOnly ?? false,
    minModRevision: wireInt("minModRevision", options.minModRevision ?? 0),
    maxModRevision: wireInt("maxModRevision", options.maxModRevision ?? 0),
    minCreateRevision: wireInt(
      "minCreateRevision",
      options.minCreateRevision ?? 0,
    ),
    maxCreateRevision: wireInt(
      "maxCreateRevision",
      options.maxCreateRevision ?? 0,
    ),
  };
}

/** etcd's PutRequest. */
export function putRequest(
  key: Bytes,
  value: Bytes,
  options: PutOptions = {},
): pb.PartialMessage<pb.PutRequest> {
  return {
    key: toBytes(key),
    value: toBytes(value),
    lease: options.lease ?? 0n,
    prevKv: options.prevKv ?? false,
    ignoreValue: options.ignoreValue ?? false,
    ignoreLease: options.ignoreLease ?? false,
  };
}

/** etcd's DeleteRangeRequest. */
export function deleteRequest(
  key: Bytes,
  options: DeleteOptions = {},
): pb.PartialMessage<pb.DeleteRangeRequest> {
  return { ...wireKeys(key, options), prevKv: options.prevKv ?? false };
}

/** etcd's TxnRequest, nested transactions included. */
export function txnRequest(
  request: TxnRequest,
): pb.PartialMessage<pb.TxnRequest> {
  return {
    compare: (request.compare ?? []).map(wireCompare) as pb.Compare[],
    success: (request.success ?? []).map(requestOp) as pb.RequestOp[],
    failure: (request.failure ?? []).map(requestOp) as pb.RequestOp[],
  };
}

function wireCompare(c: Compare): pb.PartialMessage<pb.Compare> {
  const target = wireEnum(COMPARE_TARGETS, c.target);
  const result = wireEnum(COMPARE_RESULTS, c.result);
  if (target === undefined || result === undefined) {
    throw new TypeError(`invalid compare: ${c.target} ${c.result}`);
  }
  const wire: pb.PartialMessage<pb.Compare> = {
    ...wireKeys(c.key, c),
    target,
    result,
  };
  switch (c.target) {
    case "value":
      wire.value = typeof c.value === "string" || c.value instanceof Uint8Array
        ? toBytes(c.value)
        : toBytes(String(c.value));
      break;
    case "lease":
      wire.lease = BigInt(c.value as number | bigint);
      break;
    case "version":
      wire.version = BigInt(c.value as number | bigint);
      break;
    case "create":
      wire.createRevision = BigInt(c.value as number | bigint);
      break;
    case "mod":
      wire.modRevision = BigInt(c.value as number | bigint);
      break;
  }
  return wire;
}

function requestOp(op: RequestOp): pb.PartialMessage<pb.RequestOp> {
  if ("range" in op) {
    const { key, ...options } = op.range;
    return { requestRange: rangeRequest(key, options) as pb.RangeRequest };
  }
  if ("put" in op) {
    const { key, value, ...options } = op.put;
    return { requestPut: putRequest(key, value, options) as pb.PutRequest };
  }
  if ("deleteRange" in op) {
    const { key, ...options } = op.deleteRange;
    return {
      requestDeleteRange: deleteRequest(key, options) as pb.DeleteRangeRequest,
    };
  }
  return { requestTxn: txnRequest(op.txn) as pb.TxnRequest };
}

function wireInt(name: string, value: number): bigint {
  if (!Number.isSafeInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${value}`);
  }
  return BigInt(value);
}

/** A wire header as revkv's. */
export function header(wire: pb.ResponseHeader | undefined): ResponseHeader {
  return {
    clusterId: wire?.clusterId ?? 0n,
    memberId: wire?.memberId ?? 0n,
    revision: wireNumber(wire?.revision),
    raftTerm: wireNumber(wire?.raftTerm),
  };
}

/** A wire KeyValue as revkv's. */
export function keyValue(kv: pb.KeyValue): KeyValue {
  return new KeyValue(
    kv.key,
    wireNumber(kv.createRevision),
    wireNumber(kv.modRevision),
    wireNumber(kv.version),
    kv.value,
    kv.lease,
  );
}

/** A wire RangeResponse as revkv's. */
export function rangeResponse(res: pb.RangeResponse): RangeResponse {
  return {
    header: header(res.header),
    kvs: res.kvs.map(keyValue),
    more: res.more,
    count: wireNumber(res.count),
  };
}

/** A wire PutResponse as revkv's. */
export function putResponse(res: pb.PutResponse): PutResponse {
  const out: PutResponse = { header: header(res.header) };
  if (res.prevKv) out.prevKv = keyValue(res.prevKv);
  return out;
}

/** A wire DeleteRangeResponse as revkv's. */
export function deleteResponse(res: pb.DeleteRangeResponse): DeleteResponse {
  return {
    header: header(res.header),
    deleted: wireNumber(res.deleted),
    prevKvs: res.prevKvs.map(keyValue),
  };
}

/** A wire TxnResponse as revkv's. */
export function txnResponse(res: pb.TxnResponse): TxnResponse {
  return {
    header: header(res.header),
    succeeded: res.succeeded,
    responses: res.responses.map(responseOp),
  };
}

function responseOp(op: pb.ResponseOp): ResponseOp {
  if (op.responseRange) return { range: rangeResponse(op.responseRange) };
  if (op.responsePut) return { put: putResponse(op.responsePut) };
  if (op.responseDeleteRange) {
    return { deleteRange: deleteResponse(op.responseDeleteRange) };
  }
  if (op.responseTxn) return { txn: txnResponse(op.responseTxn) };
  throw new TypeError("empty ResponseOp from the server");
}

/** A wire Event as revkv's WatchEvent. */
export function watchEvent(event: pb.Event): WatchEvent {
  const kv = event.kv
    ? keyValue(event.kv)
    : new KeyValue(EMPTY, 0, 0, 0, EMPTY, 0n);
  const out: WatchEvent = {
    type: event.type === pb.Event_EventType.DELETE ? "delete" : "put",
    kv,
  };
  if (event.prevKv) out.prevKv = keyValue(event.prevKv);
  return out;
}
