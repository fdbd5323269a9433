/**
 * etcd's JSON gateway over h2c: HTTP/2 requests that are not gRPC (any
 * content-type but `application/grpc…`) on the gRPC port reach the same
 * gateway as HTTP/1.1 ones and answer the same JSON; `/v3/watch` streams
 * one DATA frame per `{"result":…}` line until the client resets the
 * stream; a body past the bound is 413; gRPC on the same connection still
 * works. Driven by a raw HTTP/2 peer, so every frame is seen.
 */

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { open } from "../mod.ts";
import { createServiceTable } from "../src/server/services.ts";
import {
  GRPC_OVERHEAD_BYTES,
  JSON_BODY_INFLATION,
  startGrpcTransport,
} from "../src/server/transport.ts";
import { ErrorCode, FrameFlag, FrameType } from "../src/wire/http2/frame.ts";
import { frameMessage } from "../src/wire/grpc_framing.ts";
import * as pb from "../src/wire/etcd_messages.ts";
import { grpcRequest, RawPeer } from "./http2_peer.ts";

/** `--max-request-bytes` of the test server. */
const MAX_REQUEST_BYTES = 4096;
/** The body bound that follows from it (transport.ts). */
const BODY_BYTES_MAX = (MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES) *
  JSON_BODY_INFLATION;

const b64 = (text: string) => btoa(text);
const decoder = new TextDecoder();

async function withServer(
  fn: (port: number, http1: string) => Promise<void>,
): Promise<void> {
  const store = await open();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const transport = startGrpcTransport(listener, createServiceTable(store), {
    maxRequestBytes: MAX_REQUEST_BYTES,
  });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    await fn(port, `http://127.0.0.1:${port}`);
  } finally {
    await transport.shutdown(100);
    await store.close();
  }
}

/** Sends one h2c request; resolves to status, content-type and body. */
async function h2(
  peer: RawPeer,
  streamId: number,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: string; type: string; body: string }> {
  await peer.request(streamId, [
    ":method",
    method,
    ":scheme",
    "http",
    ":path",
    path,
    ":authority",
    "localhost",
    "content-type",
    "application/json",
  ], body === undefined);
  if (body !== undefined) {
    const bytes = new TextEncoder().encode(body);
    for (let at = 0; at < bytes.length || at === 0; at += 16_384) {
      const end = Math.min(bytes.length, at + 16_384);
      peer.writer.data(streamId, bytes, at, end, end === bytes.length);
      if (end === bytes.length) break;
    }
    await peer.flush();
  }
  const ended = (f: { streamId: number; flags: number; type: number }) =>
    f.streamId === streamId && (f.flags & FrameFlag.END_STREAM) !== 0 &&
    (f.type === FrameType.DATA || f.type === FrameType.HEADERS);
  assert.ok(await peer.readUntil((frames) => frames.some(ended)), path);
  return answerOf(peer, streamId);
}

function answerOf(peer: RawPeer, streamId: number) {
  const [headers] = peer.headerLists(streamId);
  assert.ok(headers, "response headers");
  const value = (name: string) => headers[headers.indexOf(name) + 1] ?? "";
  const body = dataOf(peer, streamId);
  return { status: value(":status"), type: value("content-type"), body };
}

function dataOf(peer: RawPeer, streamId: number): string {
  return peer.frames.filter((f) =>
    f.type === FrameType.DATA && f.streamId === streamId
  ).map((f) => decoder.decode(f.payload)).join("");
}

Deno.test("gateway over h2c: the same JSON as over HTTP/1.1, errors, health, version", async () => {
  await withServer(async (port, http1) => {
    const peer = await RawPeer.connect(port);
    try {
      const put = await h2(
        peer,
        1,
        "POST",
        "/v3/kv/put",
        JSON.stringify({ key: b64("k"), value: b64("v") }),
      );
      assertEquals([put.status, put.type], ["200", "application/json"]);
      assert.match(put.body, /"revision":"2"/);
      const range = JSON.stringify({ key: b64("k") });
      const viaH2 = await h2(peer, 3, "POST", "/v3beta/kv/range", range);
      const viaHttp1 = await fetch(`${http1}/v3beta/kv/range`, {
        method: "POST",
        body: range,
      });
      assertEquals(
        [viaH2.status, viaH2.body],
        [String(viaHttp1.status), await viaHttp1.text()],
      );
      const bad = await h2(peer, 5, "POST", "/v3/kv/put", "{not json");
      assertEquals(bad.status, "400");
      assertEquals(JSON.parse(bad.body).code, 3);
      const noKey = await h2(peer, 7, "POST", "/v3/kv/put", "{}");
      assertEquals(
        [noKey.status, JSON.parse(noKey.body)],
        ["400", {
          error: "etcdserver: key is not provided",
          message: "etcdserver: key is not provided",
          code: 3,
        }],
      );
      assertEquals(
        (await h2(peer, 9, "GET", "/health")).body,
        '{"health":"true"}',
      );
      assert.match((await h2(peer, 11, "GET", "/version")).body, /etcdserver/);
      assertEquals(
        [(await h2(peer, 13, "GET", "/nope")).status],
        ["404"],
      );
      // Past the body bound: 413 at once, the store unchanged.
      const big = await h2(
        peer,
        15,
        "POST",
        "/v3/kv/put",
        JSON.stringify({ key: b64("big"), value: "A".repeat(BODY_BYTES_MAX) }),
      );
      assertEquals(big.status, "413");
      const after = await fetch(`${http1}/v3/kv/range`, {
        method: "POST",
        body: JSON.stringify({ key: b64("big") }),
      });
      assert.doesNotMatch(await after.text(), /"kvs"/);
      // gRPC on the same connection is still gRPC.
      await peer.request(17, grpcRequest("/etcdserverpb.KV/Range"));
      const request = frameMessage(
        pb.encodeRangeRequest({ key: new TextEncoder().encode("k") }),
      );
      peer.writer.data(17, request, 0, request.length, true);
      await peer.flush();
      assert.ok(
        await peer.readUntil((frames) =>
          frames.some((f) =>
            f.streamId === 17 && f.type === FrameType.HEADERS &&
            (f.flags & FrameFlag.END_STREAM) !== 0
          )
        ),
      );
      const lists = peer.headerLists(17);
      const trailers = lists[lists.length - 1]!;
      assertEquals(trailers[trailers.indexOf("grpc-status") + 1], "0");
      // /v3/auth/*: revkv's Auth service (auth off; enabling is refused).
      const enable = await h2(peer, 19, "POST", "/v3/auth/enable", "{}");
      assertEquals(
        [enable.status, JSON.parse(enable.body).code],
        ["501", 12],
      );
      assertEquals(
        JSON.parse(
          (await h2(peer, 21, "POST", "/v3/auth/user/list", "{}")).body,
        )
          .header.revision,
        "2",
      );
    } finally {
      peer.close();
    }
  });
});

Deno.test("gateway over h2c: /v3/watch streams lines until the client resets the stream", async () => {
  await withServer(async (port, http1) => {
    const peer = await RawPeer.connect(port);
    try {
      await peer.request(1, [
        ":method",
        "POST",
        ":scheme",
        "http",
        ":path",
        "/v3/watch",
        ":authority",
        "localhost",
        "content-type",
        "application/json",
      ]);
      const body = new TextEncoder().encode(
        JSON.stringify({ create_request: { key: b64("w") } }),
      );
      peer.writer.data(1, body, 0, body.length, true);
      await peer.flush();
      const lines = () =>
        dataOf(peer, 1).split("\n").filter((l) => l !== "").map((l) =>
          JSON.parse(l)
        );
      assert.ok(await peer.readUntil(() => lines().length >= 1));
      assertEquals(lines()[0].result.created, true);
      assertEquals(answerOf(peer, 1).status, "200");
      const put = await fetch(`${http1}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: b64("w"), value: b64("1") }),
      });
      await put.body?.cancel();
      assert.ok(await peer.readUntil(() => lines().length >= 2));
      assertEquals(atob(lines()[1].result.events[0].kv.value), "1");
      // The client goes away from the stream: the watch ends; the
      // connection keeps serving.
      peer.writer.rstStream(1, ErrorCode.CANCEL);
      await peer.flush();
      const health = await h2(peer, 3, "GET", "/health");
      assertEquals(health.body, '{"health":"true"}');
      const again = await fetch(`${http1}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: b64("w"), value: b64("2") }),
      });
      await again.body?.cancel();
      await h2(peer, 5, "GET", "/health");
      assertEquals(lines().length, 2, "no event after the reset");
    } finally {
      peer.close();
    }
  });
});
