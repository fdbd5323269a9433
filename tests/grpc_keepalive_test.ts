/**
 * gRPC keepalive as grpc-go's server (etcd's) does it: the ping-strike
 * rules on a fake clock, then over a real socket — a client that pings too
 * often gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (and the same from a
 * real etcd 3.4, compared), one whose pings are separated by responses does
 * not, and an idle client is pinged and dropped when it does not answer
 * (also compared with etcd started with short keepalive flags).
 */

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { serveGrpc } from "../src/wire/grpc_server.ts";
import type { GrpcMethod } from "../src/wire/grpc_service.ts";
import { frameMessage } from "../src/wire/grpc_framing.ts";
import { ErrorCode, FrameFlag, FrameType } from "../src/wire/http2/frame.ts";
import {
  IdlePinger,
  type KeepaliveClock,
  type KeepaliveOptions,
  MAX_PING_STRIKES,
  PING_WITHOUT_STREAM_MS,
  PingEnforcer,
  TOO_MANY_PINGS,
} from "../src/wire/http2/keepalive.ts";
import { grpcRequest, RawPeer } from "./http2_peer.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

/** Short server-ping times for the socket tests (ms). */
const QUICK_INTERVAL_MS = 100;
const QUICK_TIMEOUT_MS = 100;
/** Longest a socket test waits for the server to ping or close. */
const WAIT_MS_MAX = 8_000;

Deno.test("PingEnforcer: the third strike ends it; responses between pings forgive", () => {
  const withStreams = new PingEnforcer(5_000);
  // First ping never strikes; then two strikes are tolerated.
  assert.equal(withStreams.ping(0, 1), true);
  assert.equal(withStreams.ping(1_000, 1), true); // strike 1
  assert.equal(withStreams.ping(2_000, 1), true); // strike 2
  assert.equal(MAX_PING_STRIKES, 2);
  assert.equal(withStreams.ping(3_000, 1), false); // strike 3

  const spaced = new PingEnforcer(5_000);
  for (let i = 0; i < 10; i++) assert.equal(spaced.ping(i * 5_000, 1), true);

  const forgiven = new PingEnforcer(5_000);
  forgiven.ping(0, 1);
  forgiven.ping(10, 1); // strike 1
  forgiven.ping(20, 1); // strike 2
  forgiven.sent(); // a response went out: strikes reset
  assert.equal(forgiven.ping(30, 1), true);
  assert.equal(forgiven.ping(40, 1), true); // strike 1 again
  assert.equal(forgiven.ping(50, 1), true); // strike 2
  assert.equal(forgiven.ping(60, 1), false);

  // No stream open: pings closer than 2 h apart are strikes.
  const idle = new PingEnforcer(5_000);
  idle.ping(0, 0);
  idle.ping(60_000, 0);
  idle.ping(120_000, 0);
  assert.equal(idle.ping(PING_WITHOUT_STREAM_MS - 1, 0), false);
  const idleSlow = new PingEnforcer(5_000);
  for (let i = 0; i < 5; i++) {
    assert.equal(idleSlow.ping(i * PING_WITHOUT_STREAM_MS, 0), true);
  }
  // 0 = grpc-go's default policy, 5 minutes.
  const defaults = new PingEnforcer(0);
  defaults.ping(0, 1);
  defaults.ping(60_000, 1);
  defaults.ping(120_000, 1);
  assert.equal(defaults.ping(180_000, 1), false);
});

/** A clock the test advances by hand. */
class FakeClock implements KeepaliveClock {
  nowMs = 0;
  #timers: { at: number; run: () => void }[] = [];
  now(): number {
    return this.nowMs;
  }
  after(ms: number, run: () => void): () => void {
    const timer = { at: this.nowMs + Math.max(0, ms), run };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }
  /** Advances to `ms`, firing due timers in order. */
  advanceTo(ms: number): void {
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (next === undefined || next.at > ms) break;
      this.#timers.shift();
      this.nowMs = next.at;
      next.run();
    }
    this.nowMs = ms;
  }
  get pending(): number {
    return this.#timers.length;
  }
}

Deno.test("IdlePinger: pings after the interval idle, closes after the timeout, waits while reads arrive", () => {
  const clock = new FakeClock();
  const events: string[] = [];
  let lastRead = 0;
  const options: KeepaliveOptions = {
    minTimeMs: 0,
    intervalMs: 1_000,
    timeoutMs: 300,
  };
  const pinger = new IdlePinger(
    {
      lastReadMs: () => lastRead,
      ping: () => events.push(`ping@${clock.now()}`),
      close: () => events.push(`close@${clock.now()}`),
    },
    options,
    clock,
  );
  // Reads keep arriving: no ping; the next check is an interval after them.
  clock.advanceTo(500);
  lastRead = 500;
  clock.advanceTo(1_000);
  assertEquals(events, []);
  clock.advanceTo(1_499);
  assertEquals(events, []);
  clock.advanceTo(1_500);
  assertEquals(events, ["ping@1500"]);
  // The peer answers (a read): no close; a new idle interval starts.
  lastRead = 1_600;
  clock.advanceTo(1_800);
  assertEquals(events, ["ping@1500"]);
  clock.advanceTo(2_600);
  assertEquals(events, ["ping@1500", "ping@2600"]);
  // No answer this time: closed once the timeout has passed.
  clock.advanceTo(2_899);
  assertEquals(events.length, 2);
  clock.advanceTo(2_900);
  assertEquals(events, ["ping@1500", "ping@2600", "close@2900"]);
  assert.equal(clock.pending, 0, "no timer left after close");
  pinger.stop();

  // 0 for either time: never pings (etcd sets ServerParameters only if both > 0).
  const off = new FakeClock();
  let calls = 0;
  new IdlePinger(
    {
      lastReadMs: () => 0,
      ping: () => calls++,
      close: () => calls++,
    },
    { minTimeMs: 0, intervalMs: 0, timeoutMs: 300 },
    off,
  );
  off.advanceTo(10 * PING_WITHOUT_STREAM_MS);
  assert.equal(off.pending, 0);
  assert.equal(calls, 0);
});

const methods = new Map<string, GrpcMethod>([
  ["/test.Echo/Echo", { kind: "unary", handle: (request) => request }],
]);

async function withServer(
  keepalive: KeepaliveOptions,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveGrpc({ listener, methods, keepalive });
  try {
    await fn(server.addr.port);
  } finally {
    await server.shutdown(100);
  }
}

/** Sends `count` PINGs in one write. */
async function pings(peer: RawPeer, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    peer.writer.ping(new Uint8Array(8).fill(i + 1), 0, false);
  }
  await peer.flush();
}

/** The GOAWAY code and debug data after too many pings, and the close. */
async function tooManyPings(port: number): Promise<unknown> {
  const peer = await RawPeer.connect(port);
  try {
    await pings(peer, MAX_PING_STRIKES + 2);
    await peer.readUntil(() => peer.goaway() !== undefined, WAIT_MS_MAX);
    const goaway = peer.goaway();
    const acks = peer.frames.filter((f) =>
      f.type === FrameType.PING && (f.flags & FrameFlag.ACK) !== 0
    ).length;
    return {
      errorCode: goaway?.errorCode,
      debug: goaway?.debug,
      acks,
      closed: await peer.waitClosed(),
    };
  } finally {
    peer.close();
  }
}

Deno.test("keepalive over a socket: too many pings get GOAWAY ENHANCE_YOUR_CALM too_many_pings", async () => {
  await withServer(
    { minTimeMs: 5_000, intervalMs: 0, timeoutMs: 0 },
    async (port) => {
      assertEquals(await tooManyPings(port), {
        errorCode: ErrorCode.ENHANCE_YOUR_CALM,
        debug: TOO_MANY_PINGS,
        acks: MAX_PING_STRIKES + 2,
        closed: true,
      });
      // Pings each after a response (as grpc-go's BDP pings) are fine.
      const peer = await RawPeer.connect(port);
      try {
        for (let call = 0; call < 6; call++) {
          const streamId = 2 * call + 1;
          await pings(peer, 1);
          await peer.request(streamId, grpcRequest("/test.Echo/Echo"));
          peer.writer.data(
            streamId,
            frameMessage(new Uint8Array([1])),
            0,
            6,
            true,
          );
          await peer.flush();
          assert.ok(
            await peer.readUntil((frames) =>
              frames.some((f) =>
                f.type === FrameType.HEADERS && f.streamId === streamId &&
                (f.flags & FrameFlag.END_STREAM) !== 0
              )
            ),
            `call ${call} answered`,
          );
        }
        assert.equal(peer.goaway(), undefined);
        assert.ok(!peer.closed);
      } finally {
        peer.close();
      }
    },
  );
});

/** Waits for a server PING; answers it `answers` times; reports the close. */
async function idleClient(port: number, answers: number): Promise<unknown> {
  const peer = await RawPeer.connect(port);
  const serverPings = () =>
    peer.frames.filter((f) =>
      f.type === FrameType.PING && (f.flags & FrameFlag.ACK) === 0
    );
  try {
    for (let answered = 0; answered < answers; answered++) {
      const want = answered + 1;
      await peer.readUntil(() => serverPings().length >= want, WAIT_MS_MAX);
      const ping = serverPings()[answered];
      if (ping === undefined) return { pinged: answered };
      peer.writer.ping(ping.payload, 0, true);
      await peer.flush();
    }
    await peer.readUntil(() => serverPings().length > answers, WAIT_MS_MAX);
    const pinged = serverPings().length;
    const closed = await peer.readUntil(() => peer.closed, WAIT_MS_MAX);
    return { pinged: Math.min(pinged, answers + 1), closed };
  } finally {
    peer.close();
  }
}

Deno.test("keepalive over a socket: an idle client is pinged, kept while it answers, dropped when it does not", async () => {
  await withServer(
    {
      minTimeMs: 5_000,
      intervalMs: QUICK_INTERVAL_MS,
      timeoutMs: QUICK_TIMEOUT_MS,
    },
    async (port) => {
      assertEquals(await idleClient(port, 0), { pinged: 1, closed: true });
      assertEquals(await idleClient(port, 2), { pinged: 3, closed: true });
    },
  );
});

Deno.test({
  name:
    "keepalive against etcd: the same GOAWAY, the same idle pings and close",
  ignore: etcdIgnore(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const flags = [
      "--grpc-keepalive-min-time=5s",
      "--grpc-keepalive-interval=1s",
      "--grpc-keepalive-timeout=1s",
    ];
    const dir = await Deno.makeTempDir({ prefix: "revkv-keepalive-" });
    const etcd = await startEtcd({ args: flags });
    try {
      const serve = await startServe(dir, flags);
      try {
        const port = (endpoint: string) => Number(new URL(endpoint).port);
        const [a, b] = await Promise.all([
          tooManyPings(port(etcd.endpoint)),
          tooManyPings(port(serve.endpoint)),
        ]);
        assertEquals(b, a, "too many pings");
        assertEquals((a as { debug: string }).debug, TOO_MANY_PINGS);
        const [c, d] = await Promise.all([
          idleClient(port(etcd.endpoint), 1),
          idleClient(port(serve.endpoint), 1),
        ]);
        assertEquals(d, c, "idle pings");
        assertEquals(c, { pinged: 2, closed: true });
      } finally {
        await serve.stop();
      }
    } finally {
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
