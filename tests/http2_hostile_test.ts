/**
 * Malformed and hostile HTTP/2 peers over a real socket. Each test does one
 * bad thing on one connection, checks the server's answer (the GOAWAY or
 * RST_STREAM code RFC 9113 asks for, or a bounded refusal), and then checks
 * that a fresh connection is still served: no peer takes the server down.
 */

import assert from "node:assert/strict";
import { serveGrpc } from "../src/wire/grpc_server.ts";
import type { GrpcMethod } from "../src/wire/grpc_service.ts";
import { frameMessage } from "../src/wire/grpc_framing.ts";
import {
  CONNECTION_PREFACE,
  ErrorCode,
  FrameFlag,
  FrameType,
  SettingId,
} from "../src/wire/http2/frame.ts";
import { grpcRequest, RawPeer } from "./http2_peer.ts";

const BIG_RESPONSE_BYTES = 100_000;

const methods = new Map<string, GrpcMethod>([
  ["/test.Echo/Echo", { kind: "unary", handle: (request) => request }],
  [
    "/test.Echo/Big",
    { kind: "unary", handle: () => new Uint8Array(BIG_RESPONSE_BYTES).fill(7) },
  ],
  [
    "/test.Echo/Stall",
    {
      kind: "bidi",
      // Never reads: request credit is held back, so the window closes.
      handle: (_requests, _sink, context) =>
        new Promise<void>((resolve) =>
          context.signal.addEventListener("abort", () => resolve())
        ),
    },
  ],
]);

async function withServer(
  fn: (port: number) => Promise<void>,
  limits = {},
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveGrpc({ listener, methods, limits });
  try {
    await fn(server.addr.port);
    await goodCall(server.addr.port);
  } finally {
    await server.shutdown(100);
  }
}

/** One well-formed unary call on a new connection must succeed. */
async function goodCall(port: number, peer?: RawPeer, streamId = 1) {
  const own = !peer;
  peer ??= await RawPeer.connect(port);
  try {
    await peer.request(streamId, grpcRequest("/test.Echo/Echo"));
    peer.writer.data(
      streamId,
      frameMessage(new Uint8Array([1, 2, 3])),
      0,
      8,
      true,
    );
    await peer.flush();
    const ok = await peer.readUntil((frames) =>
      frames.some((f) =>
        f.type === FrameType.HEADERS && f.streamId === streamId &&
        (f.flags & FrameFlag.END_STREAM) !== 0
      )
    );
    assert.ok(ok, "the server answered a good call");
    const lists = peer.headerLists(streamId);
    const trailers = lists[lists.length - 1]!;
    assert.equal(trailers[trailers.indexOf("grpc-status") + 1], "0");
  } finally {
    if (own) peer.close();
  }
}

async function expectGoaway(peer: RawPeer, code: number): Promise<void> {
  await peer.readUntil(() => peer.goaway() !== undefined);
  const goaway = peer.goaway();
  assert.ok(goaway, "the server sent GOAWAY");
  assert.equal(goaway.errorCode, code, `GOAWAY code (${goaway.debug})`);
  assert.ok(await peer.waitClosed(), "the server closed the connection");
}

Deno.test("a bad preface gets GOAWAY(PROTOCOL_ERROR) and the server keeps serving", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port, false);
    await peer.send(
      new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"),
    );
    await expectGoaway(peer, ErrorCode.PROTOCOL_ERROR);
    peer.close();
  });
});

Deno.test("garbage bytes close the connection and the server keeps serving", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port, false);
    await peer.send(new Uint8Array(1000).map((_, i) => (i * 37) & 0xff));
    assert.ok(await peer.waitClosed());
    peer.close();
  });
});

Deno.test("HTTP/1.1 gets a minimal 404 and close", async () => {
  await withServer(async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    assert.match(text, /^HTTP\/1\.1 404 /);
  });
});

Deno.test("a frame over the max frame size gets GOAWAY(FRAME_SIZE_ERROR)", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    await peer.request(1, grpcRequest("/test.Echo/Echo"));
    peer.writer.frameHeader(20_000, FrameType.DATA, 0, 1);
    peer.writer.raw(new Uint8Array(20_000));
    await peer.flush();
    await expectGoaway(peer, ErrorCode.FRAME_SIZE_ERROR);
    peer.close();
  });
});

Deno.test("an HPACK bomb past the header list limit gets 431 and the connection lives", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    // One 4 KiB entry inserted, then referenced 20 times: 80 KiB decoded
    // from a block of ~4 KiB.
    const value = "v".repeat(4000);
    const insert = [0x40, 0x01, 0x78, 0x7f, ...int7(4000 - 127)];
    const block = new Uint8Array([
      ...peer.encoder.encode(grpcRequest("/test.Echo/Echo")),
      ...insert,
      ...new TextEncoder().encode(value),
      ...new Array(20).fill(0xbe),
    ]);
    peer.writer.headers(1, block, true, 16_384);
    await peer.flush();
    await peer.readUntil(() => peer.headerLists(1).length > 0);
    const [response] = peer.headerLists(1);
    assert.deepEqual(response!.slice(0, 2), [":status", "431"]);
    // The same connection still serves (the HPACK table stayed in step).
    await goodCall(port, peer, 3);
    peer.close();
  });
});

Deno.test("streams past MAX_CONCURRENT_STREAMS are refused, the others served", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    const open = 16;
    for (let i = 0; i < open + 4; i++) {
      peer.writer.headers(
        1 + 2 * i,
        peer.encoder.encode(grpcRequest("/test.Echo/Echo")),
        false,
        16_384,
      );
    }
    await peer.flush();
    const refused = 1 + 2 * open;
    await peer.readUntil(() => peer.rstCode(refused) !== undefined);
    assert.equal(peer.rstCode(refused), ErrorCode.REFUSED_STREAM);
    // Finish the first stream: it is answered.
    peer.writer.data(1, frameMessage(new Uint8Array([9])), 0, 6, true);
    await peer.flush();
    await peer.readUntil(() =>
      peer.frames.some((f) =>
        f.streamId === 1 && f.type === FrameType.HEADERS &&
        (f.flags & FrameFlag.END_STREAM) !== 0
      )
    );
    assert.equal(peer.goaway(), undefined);
    peer.close();
  }, { maxConcurrentStreams: 16 });
});

Deno.test("a SETTINGS flood gets GOAWAY(ENHANCE_YOUR_CALM)", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    for (let i = 0; i < 3000; i++) {
      peer.writer.settings([[SettingId.MAX_FRAME_SIZE, 16_384]]);
    }
    await peer.flush();
    await expectGoaway(peer, ErrorCode.ENHANCE_YOUR_CALM);
    peer.close();
  });
});

Deno.test("a PING flood gets GOAWAY(ENHANCE_YOUR_CALM)", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    for (let i = 0; i < 3000; i++) {
      peer.writer.ping(new Uint8Array(8), 0, false);
    }
    await peer.flush();
    await expectGoaway(peer, ErrorCode.ENHANCE_YOUR_CALM);
    peer.close();
  });
});

Deno.test("rapid reset (open + RST_STREAM flood) gets GOAWAY(ENHANCE_YOUR_CALM)", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    const block = peer.encoder.encode(grpcRequest("/test.Echo/Echo"));
    for (let i = 0; i < 3000; i++) {
      peer.writer.headers(1 + 2 * i, block, false, 16_384);
      peer.writer.rstStream(1 + 2 * i, ErrorCode.CANCEL);
    }
    await peer.flush();
    await expectGoaway(peer, ErrorCode.ENHANCE_YOUR_CALM);
    peer.close();
  });
});

Deno.test("a CONTINUATION flood gets GOAWAY(ENHANCE_YOUR_CALM)", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    const block = peer.encoder.encode(grpcRequest("/test.Echo/Echo"));
    peer.writer.frameHeader(block.length, FrameType.HEADERS, 0, 1);
    peer.writer.raw(block);
    for (let i = 0; i < 1000; i++) {
      peer.writer.continuation(1, new Uint8Array(0), false);
    }
    await peer.flush();
    await expectGoaway(peer, ErrorCode.ENHANCE_YOUR_CALM);
    peer.close();
  });
});

Deno.test("a frame other than CONTINUATION inside a header block is PROTOCOL_ERROR", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    const block = peer.encoder.encode(grpcRequest("/test.Echo/Echo"));
    peer.writer.frameHeader(block.length, FrameType.HEADERS, 0, 1);
    peer.writer.raw(block);
    peer.writer.ping(new Uint8Array(8), 0, false);
    await peer.flush();
    await expectGoaway(peer, ErrorCode.PROTOCOL_ERROR);
    peer.close();
  });
});

Deno.test("protocol violations get the RFC's connection errors", async () => {
  const cases: [string, (peer: RawPeer) => void, number][] = [
    [
      "DATA on stream 0",
      (p) => p.writer.data(0, new Uint8Array(1), 0, 1, false),
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "a client stream with an even ID",
      (p) =>
        p.writer.headers(
          2,
          p.encoder.encode(grpcRequest("/test.Echo/Echo")),
          true,
          16_384,
        ),
      ErrorCode.PROTOCOL_ERROR,
    ],
    ["PING of 7 bytes", (p) => {
      p.writer.frameHeader(7, FrameType.PING, 0, 0);
      p.writer.raw(new Uint8Array(7));
    }, ErrorCode.FRAME_SIZE_ERROR],
    ["SETTINGS of 5 bytes", (p) => {
      p.writer.frameHeader(5, FrameType.SETTINGS, 0, 0);
      p.writer.raw(new Uint8Array(5));
    }, ErrorCode.FRAME_SIZE_ERROR],
    [
      "INITIAL_WINDOW_SIZE above 2^31-1",
      (p) => p.writer.settings([[SettingId.INITIAL_WINDOW_SIZE, 0x80000000]]),
      ErrorCode.FLOW_CONTROL_ERROR,
    ],
    [
      "WINDOW_UPDATE of 0 on the connection",
      (p) => p.writer.windowUpdate(0, 0),
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "RST_STREAM on an idle stream",
      (p) => p.writer.rstStream(99, ErrorCode.CANCEL),
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "PUSH_PROMISE from a client",
      (p) => p.writer.pushPromise(1, 2, new Uint8Array([0x82])),
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "an invalid HPACK block",
      (p) => p.writer.headers(1, new Uint8Array([0x80]), true, 16_384),
      ErrorCode.COMPRESSION_ERROR,
    ],
    ["padding longer than the frame", (p) => {
      p.writer.frameHeader(2, FrameType.DATA, FrameFlag.PADDED, 1);
      p.writer.raw(new Uint8Array([5, 0]));
    }, ErrorCode.PROTOCOL_ERROR],
  ];
  await withServer(async (port) => {
    for (const [what, act, code] of cases) {
      const peer = await RawPeer.connect(port);
      if (what.startsWith("padding")) {
        await peer.request(1, grpcRequest("/test.Echo/Echo"));
      }
      act(peer);
      await peer.flush();
      await peer.readUntil(() => peer.goaway() !== undefined);
      assert.equal(peer.goaway()?.errorCode, code, what);
      peer.close();
    }
  });
});

Deno.test("PRIORITY and unknown frame types are ignored", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    peer.writer.priority(1, 0, 16, false);
    peer.writer.frameHeader(3, 0xfa, 0xff, 0);
    peer.writer.raw(new Uint8Array(3));
    peer.writer.frameHeader(3, 0xfb, 0, 5);
    peer.writer.raw(new Uint8Array(3));
    await peer.flush();
    await goodCall(port, peer, 1);
    assert.equal(peer.goaway(), undefined);
    peer.close();
  });
});

Deno.test("a window of 0 holds DATA back; WINDOW_UPDATEs release exactly what they allow", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port, false);
    peer.writer.raw(CONNECTION_PREFACE);
    peer.writer.settings([[SettingId.INITIAL_WINDOW_SIZE, 0]]);
    await peer.flush();
    await peer.request(1, grpcRequest("/test.Echo/Big"));
    peer.writer.data(1, frameMessage(new Uint8Array(0)), 0, 5, true);
    await peer.flush();
    await peer.readUntil((frames) =>
      frames.some((f) => f.type === FrameType.HEADERS && f.streamId === 1)
    );
    const dataBytes = () =>
      peer.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1)
        .reduce((sum, f) => sum + f.length, 0);
    await peer.readUntil(() => false, 300); // a short wait: nothing may come
    assert.equal(dataBytes(), 0, "no DATA with a window of 0");
    let granted = 0;
    const total = BIG_RESPONSE_BYTES + 5;
    while (granted < total) {
      const step = Math.min(30_000, total - granted);
      granted += step;
      peer.writer.windowUpdate(1, step);
      peer.writer.windowUpdate(0, step);
      await peer.flush();
      await peer.readUntil(() => dataBytes() >= granted);
      assert.equal(
        dataBytes(),
        granted,
        `DATA stays within the window (${dataBytes()} vs ${granted}; frames ${
          peer.frames.map((f) => f.type + ":" + f.length).join(",")
        })`,
      );
    }
    await peer.readUntil((frames) =>
      frames.some((f) =>
        f.type === FrameType.HEADERS && f.streamId === 1 &&
        (f.flags & FrameFlag.END_STREAM) !== 0
      )
    );
    const lists = peer.headerLists(1);
    assert.deepEqual(lists[lists.length - 1], ["grpc-status", "0"]);
    peer.close();
  }, {});
});

Deno.test("DATA past a stream's window is a stream error FLOW_CONTROL_ERROR", async () => {
  await withServer(async (port) => {
    const peer = await RawPeer.connect(port);
    await peer.request(1, grpcRequest("/test.Echo/Stall"));
    const chunk = new Uint8Array(16_384);
    for (let i = 0; i < 5; i++) {
      peer.writer.data(1, chunk, 0, chunk.length, false);
    }
    await peer.flush();
    await peer.readUntil(() => peer.rstCode(1) !== undefined);
    assert.equal(peer.rstCode(1), ErrorCode.FLOW_CONTROL_ERROR);
    assert.equal(peer.goaway(), undefined, "only the stream fails");
    await goodCall(port, peer, 3);
    peer.close();
  }, { initialWindowBytes: 65_535, streamRequestQueueBytes: 0 });
});

Deno.test("many connections opened and dropped mid-call leave the server serving", async () => {
  await withServer(async (port) => {
    for (let i = 0; i < 50; i++) {
      const peer = await RawPeer.connect(port);
      await peer.request(1, grpcRequest("/test.Echo/Echo"));
      peer.writer.data(1, new Uint8Array([0, 0, 0, 0, 9, 1]), 0, 6, false);
      await peer.flush();
      peer.close();
    }
  });
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

Deno.test("a peer that stops reading blocks the method's sends instead of growing memory", async () => {
  let sent = 0;
  let stopped: unknown;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveGrpc({
    listener,
    methods: new Map<string, GrpcMethod>([...methods, ["/test.Echo/Flood", {
      kind: "server-stream",
      async handle(_request, responses) {
        try {
          for (let i = 0; i < 10_000; i++) {
            await responses.send(new Uint8Array(64 * 1024));
            sent++;
          }
        } catch (error) {
          stopped = error;
        }
      },
    }]]),
  });
  try {
    const peer = await RawPeer.connect(server.addr.port);
    await peer.request(1, grpcRequest("/test.Echo/Flood"));
    peer.writer.data(1, frameMessage(new Uint8Array(0)), 0, 5, true);
    await peer.flush();
    // Never sends WINDOW_UPDATE: the 64 KiB window fills, then the 256 KiB
    // per-stream send buffer, then send() waits.
    await peer.readUntil(() => false, 500);
    assert.ok(sent <= 8, `sends stopped at the bound (${sent} sent)`);
    peer.close();
    const until = Date.now() + 5_000;
    while (stopped === undefined && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(stopped, "the waiting send rejected when the peer went away");
    await goodCall(server.addr.port);
  } finally {
    await server.shutdown(100);
  }
});

Deno.test("shutdown sends GOAWAY with the last stream ID, finishes that call, ignores newer streams", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveGrpc({
    listener,
    methods: new Map<string, GrpcMethod>([["/test.Echo/Wait", {
      kind: "unary",
      handle: async (request) => {
        await released;
        return request;
      },
    }]]),
  });
  const peer = await RawPeer.connect(server.addr.port);
  try {
    await peer.request(1, grpcRequest("/test.Echo/Wait"));
    peer.writer.data(1, frameMessage(new Uint8Array([4])), 0, 6, true);
    await peer.flush();
    await new Promise((r) => setTimeout(r, 50));
    const shutdown = server.shutdown(5_000);
    await peer.readUntil(() => peer.goaway() !== undefined);
    assert.deepEqual(peer.goaway(), {
      lastStreamId: 1,
      errorCode: ErrorCode.NO_ERROR,
      debug: "",
    });
    // A stream opened after GOAWAY is not processed.
    await peer.request(3, grpcRequest("/test.Echo/Wait"), true);
    release();
    assert.ok(await peer.waitClosed(), "the server closed after the last call");
    const lists = peer.headerLists(1);
    assert.deepEqual(lists[lists.length - 1], ["grpc-status", "0"]);
    assert.deepEqual(peer.headerLists(3), []);
    await shutdown;
  } finally {
    peer.close();
    await server.shutdown(10);
  }
});
