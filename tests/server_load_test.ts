/**
 * A bounded load test of `cli.ts serve` with troublemakers beside the
 * well-behaved clients: a connection that opens 10,000 streams and never
 * sends their requests, clients that vanish mid-watch, a watch stream that
 * never reads, oversize requests, garbage bytes on the port. The server
 * must keep serving the writers and lose nothing: afterwards, the reopened
 * data dir's `hash()` equals that of a store built by replaying exactly the
 * acknowledged writes in revision order.
 */

import assert from "node:assert/strict";
import { connect, EtcdError, open } from "../mod.ts";
import { connectGrpc } from "../src/wire/grpc_client.ts";
import * as pb from "../src/wire/etcd_messages.ts";
import { grpcRequest, RawPeer } from "./http2_peer.ts";
import { FrameType } from "../src/wire/http2/frame.ts";
import { startServe } from "./server_helpers.ts";

/** Well-behaved writers, each on its own connection. */
const WRITERS = 8;
/** Puts per writer. */
const PUTS_PER_WRITER = 150;
/** Streams the hostile connection opens without ever sending a request. */
const HOSTILE_STREAMS = 10_000;
/** Clients that open a watch and vanish. */
const VANISHING_CLIENTS = 20;

const encoder = new TextEncoder();

Deno.test("serve under a bounded load with hostile clients loses no acknowledged write", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-load-" });
  const server = await startServe(`${dir}/data`);
  const port = Number(server.address.split(":")[1]);
  const acked: { revision: number; key: string; value: string }[] = [];
  let serverStopped = false;
  try {
    // A watch stream that never reads: its window fills, the server stops
    // sending to it, and nothing else slows down.
    const stalled = await connectGrpc({ hostname: "127.0.0.1", port });
    const stalledCall = stalled.bidi("/etcdserverpb.Watch/Watch");
    await stalledCall.send(pb.encodeWatchRequest({
      createRequest: {
        key: encoder.encode("load/"),
        rangeEnd: encoder.encode("load0"),
      },
    }));

    const hostile = (async () => {
      const peer = await RawPeer.connect(port);
      const headers = grpcRequest("/etcdserverpb.KV/Range");
      try {
        for (let i = 0; i < HOSTILE_STREAMS; i++) {
          peer.writer.headers(
            1 + 2 * i,
            peer.encoder.encode(headers),
            false,
            16_384,
          );
          if (i % 500 === 499) await peer.flush();
        }
        await peer.flush();
      } catch {
        // The server may end this connection (a flood): allowed.
      }
      // The server answers the streams past its limit with RST_STREAM
      // (REFUSED_STREAM), or ends the connection with GOAWAY: either way it
      // answered, and holds no unbounded state for this peer.
      const last = 1 + 2 * (HOSTILE_STREAMS - 1);
      await peer.readUntil(() =>
        peer.rstCode(last) !== undefined || peer.goaway() !== undefined ||
        peer.closed
      );
      const refused = peer.frames.filter((f) =>
        f.type === FrameType.RST_STREAM
      ).length;
      const goaway = peer.goaway();
      console.log(
        `hostile connection: ${refused} of ${HOSTILE_STREAMS} streams reset` +
          (goaway ? `, GOAWAY code ${goaway.errorCode}` : ""),
      );
      assert.ok(refused > 0 || goaway !== undefined || peer.closed);
      peer.close();
    })();

    const vanishing = (async () => {
      for (let i = 0; i < VANISHING_CLIENTS; i++) {
        const client = await connect({ endpoints: [server.address] });
        const watch = client.watch("load/", { prefix: true });
        const first = watch.next();
        await new Promise((resolve) => setTimeout(resolve, 20));
        await client.close(); // mid-stream
        await first.catch(() => {});
      }
    })();

    const garbage = (async () => {
      for (let i = 0; i < 10; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(crypto.getRandomValues(new Uint8Array(4096)))
          .catch(() => 0);
        conn.close();
      }
    })();

    const oversize = (async () => {
      const client = await connect({ endpoints: [server.address] });
      try {
        for (let i = 0; i < 3; i++) {
          await assert.rejects(
            client.put("big", new Uint8Array(2 * 1024 * 1024)),
            (e: Error) => e instanceof EtcdError,
          );
        }
        // The connection is kept: a read on it still works.
        await client.get("load/w0/0");
      } finally {
        await client.close();
      }
    })();

    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      const client = await connect({ endpoints: [server.address] });
      try {
        for (let j = 0; j < PUTS_PER_WRITER; j++) {
          const key = `load/w${w}/${j}`;
          const value = `v${w}.${j}`;
          const res = await client.put(key, value);
          acked.push({ revision: res.header.revision, key, value });
        }
      } finally {
        await client.close();
      }
    });

    await Promise.all([...writers, hostile, vanishing, garbage, oversize]);
    stalledCall.cancel();
    await stalled.close();
    assert.equal(acked.length, WRITERS * PUTS_PER_WRITER);

    const code = await server.stop();
    serverStopped = true;
    assert.equal(code, 0, "serve exited cleanly");

    // Only the writers wrote: their revisions are every revision there is.
    acked.sort((a, b) => a.revision - b.revision);
    acked.forEach((a, i) => assert.equal(a.revision, i + 2));
    const replay = await open();
    for (const a of acked) await replay.put(a.key, a.value);
    const reopened = await open(`${dir}/data`, { share: false });
    try {
      assert.equal(reopened.revision, replay.revision);
      assert.equal(reopened.hash().hash, replay.hash().hash);
    } finally {
      await reopened.close();
      await replay.close();
    }
  } finally {
    if (!serverStopped) await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
