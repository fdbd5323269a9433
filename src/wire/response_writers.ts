/**
 * Fast-path encoders for the two hot responses: a `RangeResponse` and a
 * `WatchResponse` built straight from stored bytes and revisions, without
 * building `KeyValue` / `Event` objects first.
 *
 * Each writer appends its repeated entries (field 2 `kvs` of RangeResponse,
 * field 11 `events` of WatchResponse) into one growing buffer as they come,
 * then `finish` appends the singular fields (header, more, count, ...) and
 * returns the message. Protobuf lets fields arrive in any order, so the
 * bytes decode to exactly what `encodeRangeResponse` of the same content
 * gives (tests/wire_codec_test.ts checks both ways).
 *
 * Revisions and versions may be given as `number` (exact below 2^53, which
 * revisions and versions are) or `bigint`; lease IDs may exceed 2^53, so
 * pass those as `bigint` when they do.
 *
 * @module
 */

import {
  type PartialMessage,
  type ResponseHeader,
  type WatchResponse,
  writeResponseHeader,
  writeWatchResponse,
} from "./etcd_messages.ts";
import { Writer } from "./protobuf.ts";

/** A 64-bit field given as a safe-integer `number` or a `bigint`. */
export type Int64Input = number | bigint;

/** The parts of one `mvccpb.KeyValue`, as the store holds them. */
export interface KeyValueParts {
  /** The key bytes. */
  key: Uint8Array;
  /** The value bytes. */
  value: Uint8Array;
  /** The revision that created the key. */
  createRevision: Int64Input;
  /** The revision of the last modification. */
  modRevision: Int64Input;
  /** How many times the key was modified since its creation. */
  version: Int64Input;
  /** The lease ID attached to the key; 0 for none. */
  lease: Int64Input;
}

const TAG_RANGE_KVS = (2 << 3) | 2;
const TAG_RANGE_MORE = (3 << 3) | 0;
const TAG_RANGE_COUNT = (4 << 3) | 0;
const TAG_RANGE_HEADER = (1 << 3) | 2;
const TAG_WATCH_EVENTS = (11 << 3) | 2;
const TAG_EVENT_TYPE = (1 << 3) | 0;
const TAG_EVENT_KV = (2 << 3) | 2;
const TAG_EVENT_PREV_KV = (3 << 3) | 2;
const TAG_KV_KEY = (1 << 3) | 2;
const TAG_KV_CREATE_REVISION = (2 << 3) | 0;
const TAG_KV_MOD_REVISION = (3 << 3) | 0;
const TAG_KV_VERSION = (4 << 3) | 0;
const TAG_KV_VALUE = (5 << 3) | 2;
const TAG_KV_LEASE = (6 << 3) | 0;

/** Where a response writer starts; it doubles as entries arrive. */
const RESPONSE_WRITER_INITIAL_BYTES = 4096;

function writeInt64Field(w: Writer, tag: number, value: Int64Input): void {
  if (typeof value === "number") {
    if (value === 0) return;
    w.uint32(tag);
    if (value > 0 && value <= 0x7fffffff) {
      w.uint32(value);
      return;
    }
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(
        `int64 field given as an unsafe number ${value}: pass a bigint`,
      );
    }
    w.int64(BigInt(value));
    return;
  }
  if (value === 0n) return;
  w.uint32(tag);
  w.int64(value);
}

/** Appends the fields of one KeyValue from its parts (no length prefix). */
function writeKeyValueFields(
  w: Writer,
  key: Uint8Array,
  value: Uint8Array,
  createRevision: Int64Input,
  modRevision: Int64Input,
  version: Int64Input,
  lease: Int64Input,
): void {
  if (key.length !== 0) {
    w.uint32(TAG_KV_KEY);
    w.bytes(key);
  }
  writeInt64Field(w, TAG_KV_CREATE_REVISION, createRevision);
  writeInt64Field(w, TAG_KV_MOD_REVISION, modRevision);
  writeInt64Field(w, TAG_KV_VERSION, version);
  if (value.length !== 0) {
    w.uint32(TAG_KV_VALUE);
    w.bytes(value);
  }
  writeInt64Field(w, TAG_KV_LEASE, lease);
}

/**
 * Encodes an `etcdserverpb.RangeResponse` entry by entry.
 *
 * @example Encode two keys and decode them back
 * ```ts
 * import { RangeResponseWriter } from "./response_writers.ts";
 * import { decodeRangeResponse } from "./etcd_messages.ts";
 * const enc = new TextEncoder();
 * const writer = new RangeResponseWriter();
 * writer.addKv(enc.encode("a"), enc.encode("1"), 2, 2, 1, 0);
 * writer.addKv(enc.encode("b"), enc.encode("2"), 3, 5, 2, 7n);
 * const bytes = writer.finish({ revision: 5n }, false, 2n);
 * const decoded = decodeRangeResponse(bytes);
 * if (decoded.kvs.length !== 2 || decoded.kvs[1]!.lease !== 7n) throw new Error();
 * ```
 */
export class RangeResponseWriter {
  private readonly w: Writer;
  private kvs = 0;

  /** @param initialBytes the starting buffer size; it grows as needed */
  constructor(initialBytes: number = RESPONSE_WRITER_INITIAL_BYTES) {
    this.w = new Writer(initialBytes);
  }

  /** How many KeyValues have been added. */
  get kvCount(): number {
    return this.kvs;
  }

  /** The encoded size so far, in bytes (for size limits). */
  get byteLength(): number {
    return this.w.pos;
  }

  /** Appends one `KeyValue` to `kvs` from its parts. */
  addKv(
    key: Uint8Array,
    value: Uint8Array,
    createRevision: Int64Input,
    modRevision: Int64Input,
    version: Int64Input,
    lease: Int64Input,
  ): void {
    const w = this.w;
    w.uint32(TAG_RANGE_KVS);
    const start = w.fork();
    writeKeyValueFields(
      w,
      key,
      value,
      createRevision,
      modRevision,
      version,
      lease,
    );
    w.join(start);
    this.kvs++;
  }

  /** Appends one `KeyValue` given as an object of parts. */
  addKeyValue(kv: KeyValueParts): void {
    this.addKv(
      kv.key,
      kv.value,
      kv.createRevision,
      kv.modRevision,
      kv.version,
      kv.lease,
    );
  }

  /**
   * Appends the header, `more` and `count` and returns the encoded
   * response (a copy). The writer is empty again afterwards.
   */
  finish(
    header: PartialMessage<ResponseHeader> | undefined,
    more: boolean,
    count: Int64Input,
  ): Uint8Array {
    const w = this.w;
    if (header !== undefined) {
      w.uint32(TAG_RANGE_HEADER);
      const start = w.fork();
      writeResponseHeader(w, header);
      w.join(start);
    }
    if (more) {
      w.uint32(TAG_RANGE_MORE);
      w.bool(true);
    }
    writeInt64Field(w, TAG_RANGE_COUNT, count);
    const out = w.finish();
    w.pos = 0;
    this.kvs = 0;
    return out;
  }
}

/**
 * Encodes an `etcdserverpb.WatchResponse` event by event.
 *
 * @example One PUT event with its previous value
 * ```ts
 * import { WatchResponseWriter } from "./response_writers.ts";
 * import { decodeWatchResponse, Event_EventType } from "./etcd_messages.ts";
 * const enc = new TextEncoder();
 * const writer = new WatchResponseWriter();
 * const kv = { key: enc.encode("k"), value: enc.encode("v2"), createRevision: 2, modRevision: 3, version: 2, lease: 0 };
 * writer.addEvent(Event_EventType.PUT, kv, { ...kv, value: enc.encode("v1"), modRevision: 2, version: 1 });
 * const decoded = decodeWatchResponse(writer.finish({ header: { revision: 3n }, watchId: 1n }));
 * if (decoded.events[0]!.prevKv!.version !== 1n) throw new Error();
 * ```
 */
export class WatchResponseWriter {
  private readonly w: Writer;
  private events = 0;

  /** @param initialBytes the starting buffer size; it grows as needed */
  constructor(initialBytes: number = RESPONSE_WRITER_INITIAL_BYTES) {
    this.w = new Writer(initialBytes);
  }

  /** How many events have been added. */
  get eventCount(): number {
    return this.events;
  }

  /** The encoded size so far, in bytes (for fragmenting). */
  get byteLength(): number {
    return this.w.pos;
  }

  /**
   * Appends one `Event`.
   *
   * @param type `Event_EventType.PUT` (0) or `DELETE` (1)
   * @param kv the key-value of the event
   * @param prevKv the key-value before the event, when the watcher asked
   */
  addEvent(type: number, kv: KeyValueParts, prevKv?: KeyValueParts): void {
    const w = this.w;
    w.uint32(TAG_WATCH_EVENTS);
    const eventStart = w.fork();
    if (type !== 0) {
      w.uint32(TAG_EVENT_TYPE);
      w.int32(type);
    }
    w.uint32(TAG_EVENT_KV);
    const kvStart = w.fork();
    writeKeyValueFields(
      w,
      kv.key,
      kv.value,
      kv.createRevision,
      kv.modRevision,
      kv.version,
      kv.lease,
    );
    w.join(kvStart);
    if (prevKv !== undefined) {
      w.uint32(TAG_EVENT_PREV_KV);
      const prevStart = w.fork();
      writeKeyValueFields(
        w,
        prevKv.key,
        prevKv.value,
        prevKv.createRevision,
        prevKv.modRevision,
        prevKv.version,
        prevKv.lease,
      );
      w.join(prevStart);
    }
    w.join(eventStart);
    this.events++;
  }

  /**
   * Appends the response's other fields (header, watchId, created, ...;
   * any `events` given there are written after the added ones) and returns
   * the encoded response (a copy). The writer is empty again afterwards.
   */
  finish(fields: PartialMessage<WatchResponse>): Uint8Array {
    const w = this.w;
    writeWatchResponse(w, fields);
    const out = w.finish();
    w.pos = 0;
    this.events = 0;
    return out;
  }
}
