/**
 * TEST-ONLY stand-in for revkv's gRPC transport, on `node:http2`, so the
 * services can be driven by real clients before the real transport (own
 * HTTP/2 on Deno.listen, src/server/transport) is merged. Never shipped:
 * Deno's node:http2 server aborts the process when a client that made
 * ~1,000+ requests on one connection hangs up (denoland/deno#36788), which
 * is why the product has its own transport. The short etcdctl runs of the
 * differential tests stay far below that.
 *
 * Select it with REVKV_TEST_TRANSPORT=node-http2 (tests/server_helpers.ts
 * passes it to `serve` through `tests/serve_node_http2.ts`).
 */

import http2 from "node:http2";
import type { StartTransport } from "../src/cli/serve_command.ts";
import {
  GrpcError,
  GrpcStatus,
  type MessageSink,
} from "../src/wire/grpc_service.ts";

/** gRPC's percent-encoding of grpc-message: only '%' and non-printables. */
function percentEncode(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25
      ? "%" + byte.toString(16).toUpperCase().padStart(2, "0")
      : String.fromCharCode(byte);
  }
  return out;
}

function frame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Splits a byte stream into gRPC messages. */
class Deframer {
  #buffer = new Uint8Array(0);
  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    const out: Uint8Array[] = [];
    let at = 0;
    while (joined.length - at >= 5) {
      const length = new DataView(joined.buffer, at + 1, 4).getUint32(0);
      if (joined.length - at - 5 < length) break;
      out.push(joined.slice(at + 5, at + 5 + length));
      at += 5 + length;
    }
    this.#buffer = joined.slice(at);
    return out;
  }
}

/** A StartTransport on node:http2 (tests only; see the module comment). */
export const startNodeHttp2Transport: StartTransport = (listener, methods) => {
  const addr = listener.addr as Deno.NetAddr;
  listener.close(); // node:http2 binds its own socket on the same port
  const server = http2.createServer();
  const streams = new Set<http2.ServerHttp2Stream>();
  server.on("stream", (stream, headers) => {
    streams.add(stream);
    stream.on("close", () => streams.delete(stream));
    const path = String(headers[":path"]);
    const method = methods.get(path);
    const abort = new AbortController();
    stream.on("close", () => abort.abort());
    const finish = (error?: unknown) => {
      if (stream.destroyed || stream.closed) return;
      const status = error === undefined
        ? GrpcStatus.OK
        : error instanceof GrpcError
        ? error.code
        : GrpcStatus.INTERNAL;
      const message = error === undefined
        ? ""
        : percentEncode((error as Error).message);
      if (!stream.headersSent) {
        stream.respond({
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(status),
          ...(message ? { "grpc-message": message } : {}),
        }, { endStream: true });
        return;
      }
      stream.end();
      void message;
    };
    if (method === undefined) {
      finish(new GrpcError(GrpcStatus.UNIMPLEMENTED, `unknown method ${path}`));
      return;
    }
    let pendingTrailers: Record<string, string> = {};
    const respondHeaders = () => {
      if (!stream.headersSent) {
        stream.respond({
          ":status": 200,
          "content-type": "application/grpc",
        }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers(pendingTrailers));
      }
    };
    const sink: MessageSink = {
      send(message) {
        if (stream.destroyed) return Promise.reject(new Error("stream gone"));
        respondHeaders();
        return new Promise((resolve) => {
          if (stream.write(frame(message))) resolve();
          else stream.once("drain", () => resolve());
        });
      },
    };
    const end = (error?: unknown) => {
      if (stream.destroyed || stream.closed) return;
      if (!stream.headersSent) return finish(error);
      const status = error === undefined
        ? GrpcStatus.OK
        : error instanceof GrpcError
        ? error.code
        : GrpcStatus.INTERNAL;
      pendingTrailers = { "grpc-status": String(status) };
      if (error !== undefined) {
        pendingTrailers["grpc-message"] = percentEncode(
          (error as Error).message,
        );
      }
      stream.end();
    };
    const deframer = new Deframer();
    const queue: Uint8Array[] = [];
    let ended = false;
    let wake: (() => void) | undefined;
    stream.on("data", (chunk: Uint8Array) => {
      queue.push(...deframer.push(new Uint8Array(chunk)));
      wake?.();
    });
    stream.on("end", () => {
      ended = true;
      wake?.();
    });
    stream.on("close", () => {
      ended = true;
      wake?.();
    });
    const requests: AsyncIterable<Uint8Array> = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (queue.length > 0) yield queue.shift()!;
          if (ended) return;
          await new Promise<void>((resolve) => wake = resolve);
          wake = undefined;
        }
      },
    };
    const context = {
      path,
      metadata: new Map<string, string>(),
      signal: abort.signal,
    };
    const first = async () => {
      for await (const m of requests) return m;
      return new Uint8Array(0);
    };
    (async () => {
      if (method.kind === "unary") {
        const response = await method.handle(await first(), context);
        await sink.send(response);
      } else if (method.kind === "server-stream") {
        await method.handle(await first(), sink, context);
      } else {
        await method.handle(requests, sink, context);
      }
    })().then(() => end(), (error) => end(error));
  });
  server.listen(addr.port, addr.hostname);
  const closed = new Promise<void>((resolve) => server.on("close", resolve));
  return {
    closed,
    async shutdown(graceMs: number) {
      server.close();
      const deadline = Date.now() + graceMs;
      while (streams.size > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      for (const stream of streams) stream.close();
    },
  };
};
