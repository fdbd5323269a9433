/**
 * The grpc-gateway JSON forms (src/wire/etcd_json.ts): every message
 * round-trips through JSON text; output matches a real etcd 3.4 gateway's
 * text byte for byte (its responses re-encoded by `toJsonM(fromJsonM(...))`);
 * input takes what etcd's gateway takes (orig and json names, int64 as number
 * or string, enums by name or number, null) and rejects what it rejects, in
 * its words where they are etcd's (base64, enum names).
 *
 * Random messages use a printed seed; replay with
 * `REVKV_WIRE_SEED=<seed> deno test -A tests/wire_json_test.ts`.
 */
import assert from "node:assert/strict";
import * as json from "../src/wire/etcd_json.ts";
import {
  fromJsonCompare,
  fromJsonLeaseGrantRequest,
  fromJsonPutRequest,
  fromJsonRangeRequest,
  fromJsonTxnRequest,
  JsonDecodeError,
  parseJson,
  stringifyJson,
  toJsonCompare,
  toJsonPutResponse,
  toJsonRangeResponse,
} from "../src/wire/etcd_json.ts";
import { WireDecodeError } from "../src/wire/etcd_messages.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";
import { MODEL, Prng, randomMessage, wireSeed } from "./wire_helpers.ts";

const SEED = wireSeed("tests/wire_json_test.ts");
const enc = new TextEncoder();
const b64 = (text: string) => btoa(text);

type AnyMessage = Record<string, unknown>;
const codecs = json as unknown as Record<string, unknown>;
const toJsonOf = (name: string) =>
  codecs[`toJson${name}`] as (m: AnyMessage) => AnyMessage;
const fromJsonOf = (name: string) =>
  codecs[`fromJson${name}`] as (j: unknown) => AnyMessage;

Deno.test("every message round-trips through JSON text", () => {
  const rng = new Prng(SEED);
  for (const m of MODEL.messages) {
    for (let pick = 0; pick < 5; pick++) {
      const message = randomMessage(m.name, rng, 1, pick);
      const text = JSON.stringify(toJsonOf(m.name)(message));
      assert.deepStrictEqual(
        fromJsonOf(m.name)(parseJson(text)),
        message,
        `${m.name} (seed ${SEED})`,
      );
    }
  }
});

Deno.test("output: orig names, int64 as strings, base64 bytes, enums by name, defaults omitted", () => {
  const out = toJsonRangeResponse({
    header: { clusterId: 18446744073709551615n, revision: 3n },
    kvs: [{
      key: enc.encode("foo"),
      createRevision: 2n,
      modRevision: 3n,
      version: 2n,
      value: new Uint8Array(0),
    }],
    count: 1n,
    more: false,
  });
  assert.equal(
    JSON.stringify(out),
    '{"header":{"cluster_id":"18446744073709551615","revision":"3"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2"}],"count":"1"}',
  );
  assert.deepStrictEqual(toJsonPutResponse({}), {});
  // A set oneof member is written even at its default; enums by name.
  assert.deepStrictEqual(toJsonCompare({ target: 1, version: 0n }), {
    target: "CREATE",
    version: "0",
  });
  // An enum value without a name is written as its number.
  assert.deepStrictEqual(toJsonCompare({ result: 7 }), { result: 7 });
});

Deno.test("input: orig or json names, int64 as number or string, enums by name or number, null", () => {
  const a = fromJsonRangeRequest(
    parseJson(
      '{"key":"Zm9v","range_end":"Zm9w","limit":"10","sortOrder":"DESCEND","sort_target":3,"countOnly":true}',
    ),
  );
  assert.equal(new TextDecoder().decode(a.key), "foo");
  assert.equal(new TextDecoder().decode(a.rangeEnd), "fop");
  assert.equal(a.limit, 10n);
  assert.equal(a.sortOrder, 2);
  assert.equal(a.sortTarget, 3);
  assert.equal(a.countOnly, true);
  const b = fromJsonRangeRequest(
    parseJson('{"key":null,"limit":-1,"revision":" 5","bogus":{"x":1}}'),
  );
  assert.equal(b.key.length, 0);
  assert.equal(b.limit, -1n);
  assert.equal(b.revision, 5n);
  // Field names are case-sensitive: "ttl" is not "TTL" (etcd ignores it too).
  assert.equal(fromJsonLeaseGrantRequest({ ttl: 5 }).TTL, 0n);
  assert.equal(
    fromJsonLeaseGrantRequest({ TTL: 5, ID: "7587869990493519999" }).ID,
    7587869990493519999n,
  );
  // A JSON number beyond 2^53 stays exact through parseJson.
  assert.equal(
    fromJsonLeaseGrantRequest(parseJson('{"ID":7587869990493519999}')).ID,
    7587869990493519999n,
  );
  const txn = fromJsonTxnRequest(parseJson(
    '{"compare":[{"key":"Zm9v","target":"VERSION","result":"EQUAL","version":0}],"success":[{"request_put":{"key":"YQ==","value":"Yg=="}}],"failure":[{"requestRange":{"key":"Zm9v"}}]}',
  ));
  assert.equal(txn.compare[0]!.version, 0n);
  assert.equal(txn.success[0]!.requestPut?.value[0], 0x62);
  assert.ok(txn.failure[0]!.requestRange !== undefined);
  assert.equal(fromJsonCompare({ result: 7 }).result, 7);
});

Deno.test("stringifyJson escapes as Go's encoding/json, as etcd's gateway writes", () => {
  // etcd 3.4.23 started with --name 'a<b>&c' answers member/list with this name.
  assert.equal(
    stringifyJson({ name: "a<b>&c" }),
    '{"name":"a\\u003cb\\u003e\\u0026c"}',
  );
  assert.equal(
    stringifyJson("\b\f\n\u2028\u2029"),
    '"\\u0008\\u000c\\n\\u2028\\u2029"',
  );
  // An escaped backslash followed by "b" stays as it is.
  assert.equal(stringifyJson("\\b"), '"\\\\b"');
  assert.equal(JSON.parse(stringifyJson({ s: "x<\b\\b>&" })).s, "x<\b\\b>&");
});

function assertJsonError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof JsonDecodeError, `not a JsonDecodeError: ${err}`);
    assert.ok(err instanceof WireDecodeError);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("input: what etcd's gateway rejects is rejected, in its words where they are etcd's", () => {
  // Strict standard base64 with padding (etcd: "illegal base64 data at input byte N").
  assertJsonError(
    () => fromJsonPutRequest({ key: "Zm9" }),
    /illegal base64 data at input byte 0/,
  );
  assertJsonError(
    () => fromJsonPutRequest({ key: "Zm9v_-" }),
    /illegal base64 data at input byte 4/,
  );
  assertJsonError(
    () => fromJsonPutRequest({ key: "Zm9vYg" }),
    /illegal base64 data at input byte 4/,
  );
  assertJsonError(
    () => fromJsonPutRequest({ key: "Zm9v-_==" }),
    /illegal base64 data at input byte 4/,
  );
  assert.deepStrictEqual(
    Array.from(fromJsonPutRequest({ key: "Zm9v+/==" }).key),
    [102, 111, 111, 251],
  );
  assertJsonError(
    () => fromJsonRangeRequest({ sort_order: "NOPE" }),
    /unknown value "NOPE" for enum etcdserverpb.RangeRequest_SortOrder/,
  );
  assertJsonError(
    () => fromJsonRangeRequest(parseJson('{"limit":1.5}')),
    /cannot unmarshal number 1.5 into int64/,
  );
  assertJsonError(
    () => fromJsonRangeRequest(parseJson('{"limit":1e2}')),
    /cannot unmarshal number 1e2 into int64/,
  );
  assertJsonError(() => fromJsonRangeRequest({ limit: "1e2" }), /into int64/);
  assertJsonError(() => fromJsonRangeRequest({ limit: "abc" }), /into int64/);
  assertJsonError(
    () => fromJsonRangeRequest({ limit: "9223372036854775808" }),
    /overflows int64/,
  );
  assertJsonError(
    () => fromJsonRangeRequest({ serializable: "true" }),
    /cannot unmarshal string into bool/,
  );
  assertJsonError(
    () => fromJsonRangeRequest([1]),
    /cannot unmarshal array into a message/,
  );
  assertJsonError(
    () => fromJsonRangeRequest({ key: 5 }),
    /RangeRequest.key: cannot unmarshal number 5 into bytes/,
  );
  assertJsonError(
    () => fromJsonTxnRequest({ compare: {} }),
    /TxnRequest.compare: cannot unmarshal object into a repeated field/,
  );
  assertJsonError(
    () => fromJsonTxnRequest({ success: [{ request_put: { lease: "x" } }] }),
    /TxnRequest.success\[0\].request_put.lease/,
  );
  assertJsonError(
    () => json.fromJsonResponseHeader({ cluster_id: "-1" }),
    /-1 overflows uint64/,
  );
  // Nesting is bounded as in the binary codec.
  let deep: unknown = {};
  for (let i = 0; i < 200; i++) deep = { success: [{ request_txn: deep }] };
  assertJsonError(
    () => fromJsonTxnRequest(deep),
    /nested deeper than 100 levels/,
  );
});

/** Requests to etcd's gateway whose responses are compared text for text. */
const GATEWAY_CASES: Array<[string, string, unknown]> = [
  ["/v3/kv/put", "PutResponse", { key: b64("foo"), value: b64("bar") }],
  ["/v3/kv/put", "PutResponse", {
    key: b64("foo"),
    value: b64("baz"),
    prev_kv: true,
  }],
  ["/v3/kv/put", "PutResponse", {
    key: b64("empty"),
    value: "",
    prev_kv: true,
  }],
  ["/v3/kv/range", "RangeResponse", { key: b64("a"), range_end: b64("z") }],
  ["/v3/kv/range", "RangeResponse", {
    key: b64("a"),
    range_end: b64("z"),
    limit: 1,
    count_only: false,
  }],
  ["/v3/kv/range", "RangeResponse", {
    key: b64("a"),
    range_end: b64("z"),
    count_only: true,
  }],
  ["/v3/kv/range", "RangeResponse", { key: b64("nothing") }],
  ["/v3/kv/txn", "TxnResponse", {
    compare: [{
      key: b64("foo"),
      target: "VERSION",
      result: "GREATER",
      version: 0,
    }],
    success: [{ request_put: { key: b64("t"), value: b64("1") } }, {
      request_range: { key: b64("foo") },
    }, {
      request_delete_range: { key: b64("empty"), prev_kv: true },
    }],
  }],
  ["/v3/kv/txn", "TxnResponse", {
    compare: [{
      key: b64("foo"),
      target: "VALUE",
      result: "EQUAL",
      value: b64("no"),
    }],
  }],
  ["/v3/kv/deleterange", "DeleteRangeResponse", {
    key: b64("t"),
    prev_kv: true,
  }],
  ["/v3/lease/grant", "LeaseGrantResponse", { TTL: 60 }],
  ["/v3/lease/leases", "LeaseLeasesResponse", {}],
  ["/v3/cluster/member/list", "MemberListResponse", {}],
  ["/v3/maintenance/status", "StatusResponse", {}],
  ["/v3/maintenance/alarm", "AlarmResponse", { action: "GET" }],
  ["/v3/kv/compaction", "CompactionResponse", { revision: 2 }],
];

Deno.test({
  name:
    "output matches a real etcd 3.4 gateway's JSON text for its own responses",
  ignore: etcdIgnore("JSON gateway differential tests"),
  async fn() {
    const etcd = await startEtcd();
    try {
      for (const [path, name, body] of GATEWAY_CASES) {
        const response = await fetch(`${etcd.endpoint}${path}`, {
          method: "POST",
          body: JSON.stringify(body),
        });
        const text = await response.text();
        assert.equal(response.status, 200, `${path}: ${text}`);
        const ours = stringifyJson(
          toJsonOf(name)(fromJsonOf(name)(parseJson(text))),
        );
        assert.equal(ours, text, `${path} ${JSON.stringify(body)}`);
      }
      // A lease TimeToLive with keys, after attaching one.
      const grant = parseJson(
        await (await fetch(`${etcd.endpoint}/v3/lease/grant`, {
          method: "POST",
          body: '{"TTL":100}',
        })).text(),
      ) as { ID: string };
      await fetch(`${etcd.endpoint}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: b64("leased"), lease: grant.ID }),
      }).then((r) => r.text());
      const ttl = await (await fetch(`${etcd.endpoint}/v3/lease/timetolive`, {
        method: "POST",
        body: JSON.stringify({ ID: grant.ID, keys: true }),
      })).text();
      const ours = stringifyJson(
        json.toJsonLeaseTimeToLiveResponse(
          json.fromJsonLeaseTimeToLiveResponse(parseJson(ttl)),
        ),
      );
      assert.equal(ours, ttl);
      assert.match(ttl, /"keys":\["bGVhc2Vk"\]/);
    } finally {
      await etcd.stop();
    }
  },
});
