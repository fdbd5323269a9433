/**
 * Random frames after a valid preface: many connections each get a burst
 * of frames with random types, flags, stream IDs and payloads (some
 * well-formed requests mixed in). Whatever they do, the server answers
 * within the protocol (GOAWAY, RST_STREAM or responses), never crashes,
 * and a well-formed call on a fresh connection still succeeds. The seed is
 * printed; replay with REVKV_SEED.
 */

import assert from "node:assert/strict";
import { serveGrpc } from "../src/wire/grpc_server.ts";
import type { GrpcMethod } from "../src/wire/grpc_service.ts";
import { frameMessage } from "../src/wire/grpc_framing.ts";
import { ErrorCode, FrameFlag, FrameType } from "../src/wire/http2/frame.ts";
import { RawPeer } from "./http2_peer.ts";
import { prng, seedFromEnv } from "./storage_helpers.ts";

const CONNECTIONS = 60;
const FRAMES_PER_CONNECTION = 40;

const REQUEST = [
  ":method",
  "POST",
  ":scheme",
  "http",
  ":path",
  "/test.Echo/Echo",
  ":authority",
  "x",
  "content-type",
  "application/grpc",
];

Deno.test("random frames never take the server down", async () => {
  const random = prng(seedFromEnv("http2 fuzz"));
  const int = (n: number) => Math.floor(random() * n);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const methods = new Map<string, GrpcMethod>([
    ["/test.Echo/Echo", { kind: "unary", handle: (r) => r }],
    ["/test.Echo/Bidi", {
      kind: "bidi",
      async handle(requests, responses) {
        for await (const r of requests) await responses.send(r);
      },
    }],
  ]);
  const server = serveGrpc({ listener, methods });
  try {
    for (let c = 0; c < CONNECTIONS; c++) {
      const peer = await RawPeer.connect(server.addr.port);
      for (let f = 0; f < FRAMES_PER_CONNECTION; f++) {
        const streamId = int(4) === 0 ? 0 : 1 + 2 * int(8);
        const choice = int(10);
        if (choice < 3) {
          peer.writer.headers(
            streamId,
            peer.encoder.encode(REQUEST),
            int(2) === 0,
            16_384,
          );
        } else if (choice < 5) {
          const message = frameMessage(
            new Uint8Array(int(64)).map(() => int(256)),
          );
          peer.writer.data(streamId, message, 0, message.length, int(2) === 0);
        } else {
          const length = int(3) === 0 ? int(20) : int(300);
          const type = int(4) === 0 ? int(256) : int(10);
          const flags = int(2) === 0 ? int(256) : FrameFlag.END_HEADERS;
          peer.writer.frameHeader(length, type, flags, streamId);
          peer.writer.raw(new Uint8Array(length).map(() => int(256)));
        }
      }
      await peer.flush();
      await peer.readUntil(
        (frames) => frames.some((frame) => frame.type === FrameType.GOAWAY),
        100,
      );
      // INTERNAL_ERROR would mean our code threw where it should not.
      const goaway = peer.goaway();
      assert.notEqual(
        goaway?.errorCode,
        ErrorCode.INTERNAL_ERROR,
        `connection ${c}: ${goaway?.debug}`,
      );
      peer.close();
    }
    // A good call on a fresh connection.
    const peer = await RawPeer.connect(server.addr.port);
    await peer.request(1, REQUEST);
    peer.writer.data(1, frameMessage(new Uint8Array([1])), 0, 6, true);
    await peer.flush();
    await peer.readUntil((frames) =>
      frames.some((f) =>
        f.type === FrameType.HEADERS && f.streamId === 1 &&
        (f.flags & FrameFlag.END_STREAM) !== 0
      )
    );
    const lists = peer.headerLists(1);
    assert.deepEqual(lists[lists.length - 1], ["grpc-status", "0"]);
    peer.close();
  } finally {
    await server.shutdown(100);
  }
});
