/**
 * The generated etcd codecs: every message round-trips with every field
 * set, encodes to protoc's exact bytes and decodes protoc's bytes, keeps
 * 64-bit edge values exact, writes set oneof members even at their default,
 * skips unknown fields, rejects malformed and too-deep input with
 * WireDecodeError, and the fast response writers agree with the codecs.
 *
 * The protoc comparisons are skipped (with the reason printed) where protoc
 * is not installed. Random messages use a seed printed at the start; replay
 * with `REVKV_WIRE_SEED=<seed> deno test -A tests/wire_codec_test.ts`.
 */
import assert from "node:assert/strict";
import {
  decodeCompare,
  decodeLeaseGrantResponse,
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResponse,
  decodeResponseHeader,
  decodeTxnRequest,
  decodeWatchResponse,
  encodeCompare,
  encodeLeaseGrantResponse,
  encodePutRequest,
  encodeRangeRequest,
  encodeRangeResponse,
  encodeRequestOp,
  encodeResponseHeader,
  encodeTxnRequest,
  encodeWatchRequest,
  Event_EventType,
  type KeyValue,
  RangeRequest_SortOrder,
  WireDecodeError,
} from "../src/wire/etcd_messages.ts";
import {
  RangeResponseWriter,
  WatchResponseWriter,
} from "../src/wire/response_writers.ts";
import { MAX_MESSAGE_DEPTH } from "../src/wire/protobuf.ts";
import {
  decoderOf,
  encoderOf,
  hex,
  MODEL,
  oneofCases,
  Prng,
  PROTOC_AVAILABLE,
  protocDecode,
  protocEncode,
  randomMessage,
  toTextFormat,
  wireSeed,
} from "./wire_helpers.ts";

const SEED = wireSeed("tests/wire_codec_test.ts");
const enc = new TextEncoder();
const PROTOC_SKIP_REASON =
  "protoc is not installed: byte comparison with protoc skipped";
if (!PROTOC_AVAILABLE) console.log(PROTOC_SKIP_REASON);

/** Every message is compared byte for byte with protoc. */
const PROTOC_MESSAGES = MODEL.messages.map((m) => m.name);

Deno.test("every message and enum of rpc.proto, kv.proto and auth.proto is generated", () => {
  // 91 + 2 + 4 `message` blocks and 7 + 1 + 1 `enum` blocks in the three files.
  assert.equal(MODEL.messages.length, 97);
  assert.equal(MODEL.enums.length, 9);
  for (const m of MODEL.messages) {
    encoderOf(m.name);
    decoderOf(m.name);
  }
  assert.deepEqual(RangeRequest_SortOrder, { NONE: 0, ASCEND: 1, DESCEND: 2 });
  assert.deepEqual(Event_EventType, { PUT: 0, DELETE: 1 });
});

Deno.test("every message round-trips with every field set, each oneof member in turn", () => {
  const rng = new Prng(SEED);
  let cases = 0;
  for (const m of MODEL.messages) {
    const encode = encoderOf(m.name);
    const decode = decoderOf(m.name);
    for (let pick = 0; pick < oneofCases(m.name); pick++) {
      const message = randomMessage(m.name, rng, 0, pick);
      const bytes = encode(message);
      assert.deepStrictEqual(
        decode(bytes),
        message,
        `${m.name} (seed ${SEED})`,
      );
      cases++;
    }
    assert.deepStrictEqual(decode(encode({})), decode(new Uint8Array(0)));
    assert.equal(
      encode({}).length,
      0,
      `${m.name}: an empty message has no bytes`,
    );
  }
  assert.equal(cases >= MODEL.messages.length, true);
});

Deno.test("decoding fills every default: empty bytes, 0n, 0, false, empty string, [], undefined", () => {
  const range = decodeRangeResponse(new Uint8Array(0));
  assert.deepStrictEqual(range, {
    header: undefined,
    kvs: [],
    more: false,
    count: 0n,
  });
  const put = decodePutRequest(new Uint8Array(0));
  assert.equal(put.key.length, 0);
  assert.equal(put.lease, 0n);
  assert.equal(put.prevKv, false);
  const compare = decodeCompare(new Uint8Array(0));
  assert.equal(compare.version, undefined);
  assert.equal(compare.value, undefined);
  assert.equal(compare.result, 0);
});

Deno.test(
  "encodings match protoc --encode byte for byte, and protoc's bytes decode to the same message",
  {
    ignore: !PROTOC_AVAILABLE,
  },
  async () => {
    const rng = new Prng(SEED ^ 0x5eed);
    for (const name of PROTOC_MESSAGES) {
      for (let pick = 0; pick < oneofCases(name); pick++) {
        const message = randomMessage(name, rng, 1, pick);
        const ours = encoderOf(name)(message);
        const theirs = await protocEncode(name, toTextFormat(name, message));
        assert.equal(
          hex(ours),
          hex(theirs),
          `${name}: our bytes differ from protoc's (seed ${SEED})`,
        );
        assert.deepStrictEqual(decoderOf(name)(theirs), message);
      }
    }
  },
);

Deno.test("int64 and uint64 edges are exact and encode as protoc does", async () => {
  const edges = [0n, 1n, -1n, (1n << 53n) + 1n, (1n << 63n) - 1n, -(1n << 63n)];
  for (const lease of edges) {
    const bytes = encodePutRequest({ lease });
    assert.equal(decodePutRequest(bytes).lease, lease);
  }
  // -1 as int64 is ten bytes: ff ff ff ff ff ff ff ff ff 01.
  assert.equal(
    hex(encodePutRequest({ lease: -1n })),
    "18 ff ff ff ff ff ff ff ff ff 01",
  );
  const header = {
    clusterId: (1n << 64n) - 1n,
    memberId: 1n << 63n,
    revision: (1n << 63n) - 1n,
    raftTerm: (1n << 53n) + 1n,
  };
  assert.deepStrictEqual(
    decodeResponseHeader(encodeResponseHeader(header)),
    header,
  );
  assert.throws(() => encodePutRequest({ lease: 1n << 63n }), RangeError);
  assert.throws(() => encodeResponseHeader({ clusterId: -1n }), RangeError);
  assert.throws(
    () => encodeResponseHeader({ clusterId: 1n << 64n }),
    RangeError,
  );
  // A lease ID above 2^53, as etcd hands out.
  const big = { ID: 0x694d81c0a5b4e10an, TTL: 60n, error: "" };
  const decoded = decodeLeaseGrantResponse(encodeLeaseGrantResponse(big));
  assert.equal(decoded.ID, big.ID);
  if (PROTOC_AVAILABLE) {
    const text = await protocDecode(
      "ResponseHeader",
      encodeResponseHeader(header),
    );
    assert.match(text, /cluster_id: 18446744073709551615/);
    assert.match(text, /member_id: 9223372036854775808/);
    assert.match(text, /revision: 9223372036854775807/);
  } else console.log(PROTOC_SKIP_REASON);
});

Deno.test("a negative int32 or enum is a ten-byte varint, and a ten-byte varint decodes to it", () => {
  const bytes = encodeRangeRequest({ sortOrder: -1 });
  assert.equal(hex(bytes), "28 ff ff ff ff ff ff ff ff ff 01");
  assert.equal(decodeRangeRequest(bytes).sortOrder, -1);
});

Deno.test("a oneof member set to its default is written; an unset one is not", () => {
  assert.equal(hex(encodeCompare({ version: 0n })), "20 00");
  assert.equal(hex(encodeCompare({ value: new Uint8Array(0) })), "3a 00");
  assert.equal(hex(encodeCompare({})), "");
  assert.equal(decodeCompare(encodeCompare({ version: 0n })).version, 0n);
  assert.equal(hex(encodeRequestOp({ requestRange: {} })), "0a 00");
  // The last member on the wire wins, and clears the others.
  const both = new Uint8Array([
    ...encodeCompare({ version: 5n }),
    ...encodeCompare({ modRevision: 7n }),
  ]);
  const decoded = decodeCompare(both);
  assert.equal(decoded.version, undefined);
  assert.equal(decoded.modRevision, 7n);
  assert.equal(hex(encodeWatchRequest({ progressRequest: {} })), "1a 00");
});

Deno.test("repeated occurrences of a singular message field merge, of a scalar the last wins", () => {
  const first = encodeRangeResponse({ header: { revision: 3n, raftTerm: 2n } });
  const second = encodeRangeResponse({ header: { revision: 9n }, count: 4n });
  const decoded = decodeRangeResponse(new Uint8Array([...first, ...second]));
  assert.deepStrictEqual(decoded.header, {
    clusterId: 0n,
    memberId: 0n,
    revision: 9n,
    raftTerm: 2n,
  });
  assert.equal(decoded.count, 4n);
});

Deno.test("packed and unpacked repeated enums both decode", () => {
  // WatchCreateRequest.filters = 5: packed (2a 02 00 01) and unpacked (28 01 28 00).
  const packed = decoderOf("WatchCreateRequest")(
    new Uint8Array([0x2a, 0x02, 0x00, 0x01]),
  );
  assert.deepStrictEqual(packed.filters, [0, 1]);
  const unpacked = decoderOf("WatchCreateRequest")(
    new Uint8Array([0x28, 0x01, 0x28, 0x00]),
  );
  assert.deepStrictEqual(unpacked.filters, [1, 0]);
  assert.equal(
    hex(encoderOf("WatchCreateRequest")({ filters: [0, 1] })),
    "2a 02 00 01",
  );
});

/** Unknown fields of every wire type, on field numbers no etcd message uses. */
const UNKNOWN_FIELDS = new Uint8Array([
  0xf8,
  0x3f,
  0x96,
  0x01, // field 1023 varint 150
  0xf9,
  0x3f,
  1,
  2,
  3,
  4,
  5,
  6,
  7,
  8, // field 1023 fixed64
  0xfa,
  0x3f,
  0x03,
  0x61,
  0x62,
  0x63, // field 1023 LEN "abc"
  0xfd,
  0x3f,
  1,
  2,
  3,
  4, // field 1023 fixed32
  0x98,
  0x06,
  0xff,
  0xff,
  0xff,
  0xff,
  0xff,
  0xff,
  0xff,
  0xff,
  0xff,
  0x01, // field 99, 10-byte varint
]);

Deno.test("unknown fields of every wire type are skipped, anywhere in a message", () => {
  const rng = new Prng(SEED ^ 0xabc);
  for (const m of MODEL.messages) {
    const message = randomMessage(m.name, rng, 2);
    const bytes = encoderOf(m.name)(message);
    const withUnknown = new Uint8Array([
      ...UNKNOWN_FIELDS,
      ...bytes,
      ...UNKNOWN_FIELDS,
    ]);
    assert.deepStrictEqual(decoderOf(m.name)(withUnknown), message, m.name);
  }
  // Inside a nested message too: RangeResponse.header with unknown fields.
  const header = encodeResponseHeader({ revision: 5n });
  const inner = new Uint8Array([...header, ...UNKNOWN_FIELDS]);
  const outer = new Uint8Array([0x0a, inner.length, ...inner]);
  assert.equal(decodeRangeResponse(outer).header?.revision, 5n);
});

function assertWireError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WireDecodeError, `not a WireDecodeError: ${err}`);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("malformed messages throw WireDecodeError with what is wrong", () => {
  assertWireError(() => decodePutRequest(new Uint8Array([0x0a])), /truncated/);
  assertWireError(
    () => decodePutRequest(new Uint8Array([0x18, 0xff])),
    /truncated/,
  );
  assertWireError(
    () => decodePutRequest(new Uint8Array([0x0a, 0x05, 0x61])),
    /runs past the end/,
  );
  assertWireError(
    () =>
      decodePutRequest(
        new Uint8Array([0x18, ...new Array(10).fill(0xff), 0x01]),
      ),
    /longer than 10 bytes/,
  );
  // key (field 1) must be LEN, lease (field 3) VARINT.
  assertWireError(
    () => decodePutRequest(new Uint8Array([0x08, 0x01])),
    /wrong wire type 0 for field 1 of etcdserverpb.PutRequest/,
  );
  assertWireError(
    () => decodePutRequest(new Uint8Array([0x1a, 0x00])),
    /wrong wire type 2 for field 3/,
  );
  // Groups (wire types 3 and 4) and the reserved 6 and 7.
  for (const tag of [0xfb, 0xfc, 0xfe, 0xff]) {
    assertWireError(
      () => decodePutRequest(new Uint8Array([tag, 0x3f])),
      /unsupported wire type/,
    );
  }
  assertWireError(
    () => decodePutRequest(new Uint8Array([0x00, 0x00])),
    /field number 0/,
  );
  // A nested message whose length runs past its parent.
  assertWireError(
    () => decodeRangeResponse(new Uint8Array([0x0a, 0x03, 0x18, 0x01])),
    /runs past the end/,
  );
  // A field inside a nested message may not cross the nested message's end.
  assertWireError(
    () => decodeRangeResponse(new Uint8Array([0x0a, 0x01, 0x18, 0x01])),
    /truncated/,
  );
  // Unknown fixed64/fixed32 cut short.
  assertWireError(
    () => decodePutRequest(new Uint8Array([0xf9, 0x3f, 1, 2])),
    /truncated/,
  );
  assertWireError(
    () => decodePutRequest(new Uint8Array([0xfd, 0x3f, 1])),
    /truncated/,
  );
});

function nestedTxn(levels: number): Uint8Array {
  // TxnRequest{success: [RequestOp{request_txn: TxnRequest{...}}]}, innermost empty.
  let bytes: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < levels; i++) {
    bytes = encodeTxnRequest({
      success: [{ requestTxn: decodeTxnRequest(bytes) }],
    });
  }
  return bytes;
}

Deno.test("nesting is bounded: nested txns up to the depth limit decode, deeper ones throw", () => {
  // Each txn level is two messages deep (TxnRequest, RequestOp).
  const allowed = Math.floor(MAX_MESSAGE_DEPTH / 2);
  let txn = decodeTxnRequest(nestedTxn(allowed));
  let depth = 0;
  while (txn.success.length > 0) {
    txn = txn.success[0]!.requestTxn!;
    depth++;
  }
  assert.equal(depth, allowed);
  assertWireError(
    () => decodeTxnRequest(nestedTxn(allowed + 1)),
    /nested deeper than 100 levels/,
  );
  // A hostile 200,000-level nest is rejected by the limit, not a stack overflow.
  assertWireError(
    () => decodeTxnRequest(rawNest(200_000)),
    /nested deeper than 100 levels/,
  );
  assertWireError(
    () => decodeTxnRequest(rawNest(MAX_MESSAGE_DEPTH + 1)),
    /nested deeper/,
  );
  decodeTxnRequest(rawNest(MAX_MESSAGE_DEPTH));
});

/**
 * `levels` nested messages, TxnRequest.success (0x12) then
 * RequestOp.request_txn (0x22) alternating, built innermost first.
 */
function rawNest(levels: number): Uint8Array {
  const reversed: number[] = [];
  for (let i = levels - 1; i >= 0; i--) {
    let length = reversed.length;
    const varint: number[] = [];
    while (length > 0x7f) {
      varint.push((length & 0x7f) | 0x80);
      length >>>= 7;
    }
    varint.push(length);
    for (let k = varint.length - 1; k >= 0; k--) reversed.push(varint[k]!);
    reversed.push(i % 2 === 0 ? 0x12 : 0x22);
  }
  return new Uint8Array(reversed.reverse());
}

Deno.test("invalid UTF-8 in a string field decodes with U+FFFD, as etcd's unmarshalers accept it", () => {
  // AuthUserAddRequest.name = 1 (string): bytes ff fe.
  const decoded = decoderOf("AuthUserAddRequest")(
    new Uint8Array([0x0a, 0x02, 0xff, 0xfe]),
  );
  assert.equal(decoded.name, "\ufffd\ufffd");
});

Deno.test("decoded bytes fields never alias the caller's buffer", () => {
  const bytes = encodePutRequest({
    key: enc.encode("key"),
    value: enc.encode("value"),
  });
  const decoded = decodePutRequest(bytes);
  bytes.fill(0);
  assert.equal(new TextDecoder().decode(decoded.key), "key");
  assert.equal(new TextDecoder().decode(decoded.value), "value");
});

Deno.test("with takeInput, decoded bytes fields view the input itself", () => {
  const bytes = encodePutRequest({ key: enc.encode("key") });
  const decoded = decodePutRequest(bytes, { takeInput: true });
  assert.equal(decoded.key.buffer, bytes.buffer);
  bytes[2] = 0x4b; // 'K'
  assert.equal(new TextDecoder().decode(decoded.key), "Key");
});

function kv(i: number, lease: bigint): KeyValue {
  return {
    key: enc.encode(`key-${i}`),
    value: enc.encode(`value-${i}`.repeat(i % 40)),
    createRevision: BigInt(i + 1),
    modRevision: BigInt(i * 3 + 1),
    version: BigInt(i % 5),
    lease,
  };
}

Deno.test("RangeResponseWriter produces what encodeRangeResponse would, entry by entry", () => {
  const kvs = Array.from(
    { length: 100 },
    (_, i) => kv(i, i % 7 === 0 ? 0x7fff_ffff_ffff_fff0n : BigInt(i)),
  );
  const header = {
    clusterId: 14841639068965178418n,
    memberId: 10276657743932975437n,
    revision: 301n,
    raftTerm: 2n,
  };
  const writer = new RangeResponseWriter(16);
  for (const x of kvs) {
    writer.addKv(
      x.key,
      x.value,
      Number(x.createRevision),
      x.modRevision,
      Number(x.version),
      x.lease,
    );
  }
  assert.equal(writer.kvCount, 100);
  const fast = writer.finish(header, true, 250n);
  const expected = { header, kvs, more: true, count: 250n };
  assert.deepStrictEqual(decodeRangeResponse(fast), expected);
  assert.equal(fast.length, encodeRangeResponse(expected).length);
  // The writer is reusable and empty after finish.
  assert.deepStrictEqual(
    decodeRangeResponse(writer.finish(undefined, false, 0)),
    {
      header: undefined,
      kvs: [],
      more: false,
      count: 0n,
    },
  );
  assert.throws(
    () => writer.addKv(enc.encode("k"), enc.encode("v"), 2 ** 60, 1, 1, 0),
    RangeError,
  );
});

Deno.test("WatchResponseWriter produces what encodeWatchResponse would, with prev_kv", () => {
  const writer = new WatchResponseWriter(8);
  const events = [];
  for (let i = 0; i < 20; i++) {
    const type = i % 3 === 0 ? Event_EventType.DELETE : Event_EventType.PUT;
    const now = kv(i, BigInt(i));
    const prev = i % 2 === 0 ? kv(i + 100, 0n) : undefined;
    writer.addEvent(type, now, prev);
    events.push({ type, kv: now, prevKv: prev });
  }
  assert.equal(writer.eventCount, 20);
  const fields = { header: { revision: 40n }, watchId: 7n, fragment: true };
  const bytes = writer.finish(fields);
  const decoded = decodeWatchResponse(bytes);
  const expected = decodeWatchResponse(
    encoderOf("WatchResponse")({ ...fields, events }),
  );
  assert.deepStrictEqual(decoded, expected);
  assert.equal(decoded.events[1]!.type, Event_EventType.PUT);
  assert.equal(decoded.events[1]!.prevKv, undefined);
});
