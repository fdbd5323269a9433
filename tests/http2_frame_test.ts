/**
 * Frame codec round-trips: every RFC 9113 frame type written by
 * FrameWriter reads back with the same header fields and payload, header
 * blocks split into HEADERS + CONTINUATION at the max frame size, padding
 * is stripped, and malformed payloads fail with the RFC's error code.
 */

import assert from "node:assert/strict";
import {
  decodeGoaway,
  decodePriority,
  decodeSettings,
  ErrorCode,
  FRAME_HEADER_BYTES,
  FrameFlag,
  type FrameHeader,
  FrameType,
  Http2Error,
  newFrameHeader,
  payloadContent,
  readFrameHeader,
  readUint32,
  SettingId,
} from "../src/wire/http2/frame.ts";
import { FrameWriter } from "../src/wire/http2/frame_writer.ts";

interface Parsed extends FrameHeader {
  payload: Uint8Array;
}

function parseAll(bytes: Uint8Array): Parsed[] {
  const frames: Parsed[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const header = newFrameHeader();
    readFrameHeader(bytes, pos, header);
    const start = pos + FRAME_HEADER_BYTES;
    frames.push({
      ...header,
      payload: bytes.slice(start, start + header.length),
    });
    pos = start + header.length;
  }
  assert.equal(pos, bytes.length);
  return frames;
}

Deno.test("every frame type round-trips through FrameWriter and readFrameHeader", () => {
  const w = new FrameWriter();
  w.data(7, new Uint8Array([1, 2, 3]), 0, 3, true);
  w.headers(9, new Uint8Array([0x82, 0x86]), false, 16_384);
  w.priority(11, 3, 200, true);
  w.rstStream(13, ErrorCode.CANCEL);
  w.settings([[SettingId.INITIAL_WINDOW_SIZE, 1 << 20], [
    SettingId.MAX_FRAME_SIZE,
    32_768,
  ]]);
  w.settingsAck();
  w.pushPromise(15, 16, new Uint8Array([0x82]));
  w.ping(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 0, true);
  w.goaway(0x7fffffff, ErrorCode.ENHANCE_YOUR_CALM, "calm");
  w.windowUpdate(0, 0x7fffffff);
  w.continuation(9, new Uint8Array([0x84]), true);
  const frames = parseAll(w.take());
  assert.deepEqual(frames.map((f) => [f.type, f.flags, f.streamId]), [
    [FrameType.DATA, FrameFlag.END_STREAM, 7],
    [FrameType.HEADERS, FrameFlag.END_HEADERS, 9],
    [FrameType.PRIORITY, 0, 11],
    [FrameType.RST_STREAM, 0, 13],
    [FrameType.SETTINGS, 0, 0],
    [FrameType.SETTINGS, FrameFlag.ACK, 0],
    [FrameType.PUSH_PROMISE, FrameFlag.END_HEADERS, 15],
    [FrameType.PING, FrameFlag.ACK, 0],
    [FrameType.GOAWAY, 0, 0],
    [FrameType.WINDOW_UPDATE, 0, 0],
    [FrameType.CONTINUATION, FrameFlag.END_HEADERS, 9],
  ]);
  const [data, headers, priority, rst, settings, , push, ping, goaway, wu] =
    frames;
  assert.deepEqual(data!.payload, new Uint8Array([1, 2, 3]));
  assert.deepEqual(headers!.payload, new Uint8Array([0x82, 0x86]));
  assert.deepEqual(decodePriority(priority!.payload, 0, 5, 11), {
    exclusive: true,
    dependency: 3,
    weight: 200,
  });
  assert.equal(readUint32(rst!.payload, 0), ErrorCode.CANCEL);
  assert.deepEqual(decodeSettings(settings!.payload, 0, 12), [
    { id: SettingId.INITIAL_WINDOW_SIZE, value: 1 << 20 },
    { id: SettingId.MAX_FRAME_SIZE, value: 32_768 },
  ]);
  assert.equal(readUint32(push!.payload, 0), 16);
  assert.deepEqual(ping!.payload, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual(decodeGoaway(goaway!.payload, 0, goaway!.length), {
    lastStreamId: 0x7fffffff,
    errorCode: ErrorCode.ENHANCE_YOUR_CALM,
    debug: "calm",
  });
  assert.equal(readUint32(wu!.payload, 0), 0x7fffffff);
});

Deno.test("a header block longer than the max frame size becomes HEADERS + CONTINUATION", () => {
  const w = new FrameWriter();
  const block = new Uint8Array(40_000).map((_, i) => i & 0xff);
  w.headers(1, block, true, 16_384);
  const frames = parseAll(w.take());
  assert.deepEqual(frames.map((f) => [f.type, f.flags, f.length]), [
    [FrameType.HEADERS, FrameFlag.END_STREAM, 16_384],
    [FrameType.CONTINUATION, 0, 16_384],
    [FrameType.CONTINUATION, FrameFlag.END_HEADERS, 40_000 - 32_768],
  ]);
  const joined = new Uint8Array(40_000);
  let offset = 0;
  for (const f of frames) {
    joined.set(f.payload, offset);
    offset += f.length;
  }
  assert.deepEqual(joined, block);
});

Deno.test("padding and priority fields are stripped from DATA and HEADERS", () => {
  const payload = new Uint8Array([3, 9, 9, 0, 0, 0]); // pad 3, content [9, 9]
  const span = { start: 0, end: 0 };
  payloadContent(payload, 0, {
    length: 6,
    type: FrameType.DATA,
    flags: FrameFlag.PADDED,
    streamId: 1,
  }, span);
  assert.deepEqual(
    payload.subarray(span.start, span.end),
    new Uint8Array([9, 9]),
  );
  const headers = new Uint8Array([1, 0, 0, 0, 3, 15, 0x82, 0]);
  payloadContent(headers, 0, {
    length: 8,
    type: FrameType.HEADERS,
    flags: FrameFlag.PADDED | FrameFlag.PRIORITY,
    streamId: 1,
  }, span);
  assert.deepEqual(
    headers.subarray(span.start, span.end),
    new Uint8Array([0x82]),
  );
});

Deno.test("malformed payloads fail with the RFC's error codes", () => {
  const check = (fn: () => unknown, code: number, streamId = 0) =>
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof Http2Error);
      assert.equal(error.code, code);
      assert.equal(error.streamId, streamId);
      return true;
    });
  check(
    () => decodeSettings(new Uint8Array(7), 0, 7),
    ErrorCode.FRAME_SIZE_ERROR,
  );
  check(
    () => decodeGoaway(new Uint8Array(7), 0, 7),
    ErrorCode.FRAME_SIZE_ERROR,
  );
  check(
    () => decodePriority(new Uint8Array(4), 0, 4, 3),
    ErrorCode.FRAME_SIZE_ERROR,
    3,
  );
  check(() =>
    payloadContent(new Uint8Array([9, 1]), 0, {
      length: 2,
      type: FrameType.DATA,
      flags: FrameFlag.PADDED,
      streamId: 1,
    }, { start: 0, end: 0 }), ErrorCode.PROTOCOL_ERROR);
});
