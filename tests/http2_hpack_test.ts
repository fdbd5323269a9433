/**
 * HPACK against RFC 7541 Appendix C (C.2–C.6): every example block decodes
 * to the RFC's header list with the RFC's dynamic table size, across one
 * decoder per sequence; the Huffman encoder reproduces C.4's strings; and
 * malformed blocks fail with HpackError instead of crashing.
 */

import assert from "node:assert/strict";
import {
  HpackDecoder,
  HpackEncoder,
  HpackError,
} from "../src/wire/http2/hpack.ts";
import {
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
} from "../src/wire/http2/huffman.ts";

const hex = (text: string) =>
  new Uint8Array(text.match(/../g)!.map((pair) => parseInt(pair, 16)));
const toHex = (bytes: Uint8Array) =>
  [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

function decodeAll(decoder: HpackDecoder, block: string): string[] {
  const bytes = hex(block);
  return decoder.decode(bytes, 0, bytes.length).fields;
}

Deno.test("HPACK C.2 literal and indexed representations decode", () => {
  const d1 = new HpackDecoder();
  assert.deepStrictEqual(
    decodeAll(d1, "400a637573746f6d2d6b65790d637573746f6d2d686561646572"),
    ["custom-key", "custom-header"],
  );
  assert.deepStrictEqual(d1.tableBytes, 55);
  const d2 = new HpackDecoder();
  assert.deepStrictEqual(decodeAll(d2, "040c2f73616d706c652f70617468"), [
    ":path",
    "/sample/path",
  ]);
  assert.deepStrictEqual(d2.tableBytes, 0);
  const d3 = new HpackDecoder();
  assert.deepStrictEqual(decodeAll(d3, "100870617373776f726406736563726574"), [
    "password",
    "secret",
  ]);
  assert.deepStrictEqual(d3.tableBytes, 0);
  assert.deepStrictEqual(decodeAll(new HpackDecoder(), "82"), [
    ":method",
    "GET",
  ]);
});

const REQUEST_1 = [
  ":method",
  "GET",
  ":scheme",
  "http",
  ":path",
  "/",
  ":authority",
  "www.example.com",
];
const REQUEST_2 = [...REQUEST_1, "cache-control", "no-cache"];
const REQUEST_3 = [
  ":method",
  "GET",
  ":scheme",
  "https",
  ":path",
  "/index.html",
  ":authority",
  "www.example.com",
  "custom-key",
  "custom-value",
];

Deno.test("HPACK C.3 requests without Huffman share one dynamic table", () => {
  const decoder = new HpackDecoder();
  assert.deepStrictEqual(
    decodeAll(decoder, "828684410f7777772e6578616d706c652e636f6d"),
    REQUEST_1,
  );
  assert.deepStrictEqual(decoder.tableBytes, 57);
  assert.deepStrictEqual(
    decodeAll(decoder, "828684be58086e6f2d6361636865"),
    REQUEST_2,
  );
  assert.deepStrictEqual(decoder.tableBytes, 110);
  assert.deepStrictEqual(
    decodeAll(
      decoder,
      "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    ),
    REQUEST_3,
  );
  assert.deepStrictEqual(decoder.tableBytes, 164);
  assert.deepStrictEqual(decoder.tableEntries, 3);
});

Deno.test("HPACK C.4 requests with Huffman share one dynamic table", () => {
  const decoder = new HpackDecoder();
  assert.deepStrictEqual(
    decodeAll(decoder, "828684418cf1e3c2e5f23a6ba0ab90f4ff"),
    REQUEST_1,
  );
  assert.deepStrictEqual(decoder.tableBytes, 57);
  assert.deepStrictEqual(
    decodeAll(decoder, "828684be5886a8eb10649cbf"),
    REQUEST_2,
  );
  assert.deepStrictEqual(decoder.tableBytes, 110);
  assert.deepStrictEqual(
    decodeAll(decoder, "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
    REQUEST_3,
  );
  assert.deepStrictEqual(decoder.tableBytes, 164);
});

const RESPONSE_1 = [
  ":status",
  "302",
  "cache-control",
  "private",
  "date",
  "Mon, 21 Oct 2013 20:13:21 GMT",
  "location",
  "https://www.example.com",
];
const RESPONSE_2 = [":status", "307", ...RESPONSE_1.slice(2)];
const RESPONSE_3 = [
  ":status",
  "200",
  "cache-control",
  "private",
  "date",
  "Mon, 21 Oct 2013 20:13:22 GMT",
  "location",
  "https://www.example.com",
  "content-encoding",
  "gzip",
  "set-cookie",
  "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
];

Deno.test("HPACK C.5 responses without Huffman evict from a 256-byte table", () => {
  const decoder = new HpackDecoder(256);
  assert.deepStrictEqual(
    decodeAll(
      decoder,
      "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    ),
    RESPONSE_1,
  );
  assert.deepStrictEqual(decoder.tableBytes, 222);
  assert.deepStrictEqual(decodeAll(decoder, "4803333037c1c0bf"), RESPONSE_2);
  assert.deepStrictEqual(decoder.tableBytes, 222);
  assert.deepStrictEqual(
    decodeAll(
      decoder,
      "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
    ),
    RESPONSE_3,
  );
  assert.deepStrictEqual(decoder.tableBytes, 215);
  assert.deepStrictEqual(decoder.tableEntries, 3);
});

Deno.test("HPACK C.6 responses with Huffman evict from a 256-byte table", () => {
  const decoder = new HpackDecoder(256);
  assert.deepStrictEqual(
    decodeAll(
      decoder,
      "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
    ),
    RESPONSE_1,
  );
  assert.deepStrictEqual(decoder.tableBytes, 222);
  assert.deepStrictEqual(decodeAll(decoder, "4883640effc1c0bf"), RESPONSE_2);
  assert.deepStrictEqual(decoder.tableBytes, 222);
  assert.deepStrictEqual(
    decodeAll(
      decoder,
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    ),
    RESPONSE_3,
  );
  assert.deepStrictEqual(decoder.tableBytes, 215);
});

Deno.test("Huffman encoding reproduces the strings of C.4 and C.6", () => {
  const cases: [string, string][] = [
    ["www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"],
    ["no-cache", "a8eb10649cbf"],
    ["custom-key", "25a849e95ba97d7f"],
    ["custom-value", "25a849e95bb8e8b4bf"],
    ["302", "6402"],
    ["private", "aec3771a4b"],
    [
      "Mon, 21 Oct 2013 20:13:21 GMT",
      "d07abe941054d444a8200595040b8166e082a62d1bff",
    ],
    ["https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"],
  ];
  for (const [text, encoded] of cases) {
    const out = new Uint8Array(64);
    const end = huffmanEncode(text, out, 0);
    assert.deepStrictEqual(toHex(out.subarray(0, end)), encoded, text);
    assert.deepStrictEqual(huffmanEncodedLength(text), end);
  }
});

Deno.test("Huffman round-trips every octet value", () => {
  let text = "";
  for (let i = 0; i < 256; i++) text += String.fromCharCode(i);
  text += text.split("").reverse().join("");
  const out = new Uint8Array(huffmanEncodedLength(text));
  const end = huffmanEncode(text, out, 0);
  assert.deepStrictEqual(huffmanDecode(out, 0, end), text);
});

Deno.test("the encoder's blocks decode to the same list", () => {
  const encoder = new HpackEncoder();
  const fields = [
    ":status",
    "200",
    "content-type",
    "application/grpc",
    "grpc-status",
    "3",
    "grpc-message",
    "etcdserver: key is not provided",
    "x-binary-bin",
    "\u0000\u00ff\u0080",
    "x-long",
    "v".repeat(300),
  ];
  const block = encoder.encode(fields);
  const decoder = new HpackDecoder();
  assert.deepStrictEqual(decoder.decode(block, 0, block.length).fields, fields);
  assert.deepStrictEqual(decoder.tableBytes, 0, "the encoder never inserts");
});

Deno.test("malformed HPACK blocks fail with HpackError", () => {
  const bad = [
    "80", // index 0
    "ff7f", // index past the tables
    "be", // dynamic index into an empty table
    "000561", // string longer than the block
    "0081000161", // a Huffman-coded name of one zero byte: invalid padding
    "008100", // Huffman string whose padding is zeros
    "0082ffff", // Huffman padding longer than 7 bits
    "3fe13f", // table size update above the 4096 limit
    "8220", // table size update after a field
    "ffffffffff0f", // integer overflow
  ];
  for (const block of bad) {
    const bytes = hex(block);
    assert.throws(
      () => new HpackDecoder().decode(bytes, 0, bytes.length),
      HpackError,
      block,
    );
  }
});

Deno.test("a header list over the limit is flagged and the table stays in step", () => {
  const decoder = new HpackDecoder();
  // Insert one 4000-byte entry, then reference it 10 times (an HPACK bomb).
  const value = "x".repeat(3000);
  const insert = new Uint8Array([
    0x40,
    0x01,
    0x61,
    0x7f,
    ...int7(3000 - 127),
    ...new TextEncoder().encode(value),
  ]);
  const refs = new Uint8Array(10).fill(0xbe);
  const block = new Uint8Array([...insert, ...refs]);
  const result = decoder.decode(block, 0, block.length, 16_384);
  assert.deepStrictEqual(result.oversize, true);
  assert.deepStrictEqual(decoder.tableEntries, 1);
  // The next block still decodes against the same table.
  const next = new Uint8Array([0xbe]);
  assert.deepStrictEqual(decoder.decode(next, 0, 1).fields, ["a", value]);
});

function int7(rest: number): number[] {
  const out: number[] = [];
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}
