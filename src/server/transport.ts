/**
 * The one place `serve` meets the gRPC transport (revkv's own HTTP/2 and
 * gRPC framing on Deno.listen, src/wire/grpc_server.ts): it starts the
 * transport on a listener with the services' method table and etcd's
 * message-size rule, and etcd's JSON gateway (./gateway.ts) as the
 * HTTP/1.1 and non-gRPC h2c fallback on the same port.
 *
 * etcd's gRPC server accepts messages up to `--max-request-bytes` plus
 * `GRPC_OVERHEAD_BYTES` (its `grpcOverheadBytes`, 512 KiB): a request just
 * over the limit reaches the store, which answers etcd's "request is too
 * large"; one far over it is refused by gRPC itself (RESOURCE_EXHAUSTED).
 *
 * @module
 */

import type { RunningTransport, StartTransport } from "../cli/serve_command.ts";
import { serveGrpc } from "../wire/grpc_server.ts";
import { createGateway, type Gateway } from "./gateway.ts";
import type { SocketConn, SocketListener } from "../wire/socket.ts";

/** etcd's `grpcOverheadBytes`: room for gRPC above `--max-request-bytes`. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * How much larger than the message limit an HTTP JSON body may be: base64
 * alone makes bytes 4/3 larger, and a body is only refused unread (413)
 * when it could not fit the limit at all; a body within it is decoded and
 * then measured as etcd's gateway does.
 */
export const JSON_BODY_INFLATION = 8;

/**
 * Starts revkv's gRPC transport on `listener` — or, for a
 * `--listen-metrics-urls` listener (`metricsOnly`), an HTTP/1.1 server of
 * `/metrics` and `/health` only.
 */
export const startGrpcTransport: StartTransport = (
  listener,
  methods,
  limits,
) => {
  const maxMessageBytes = limits.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  // etcd's JSON gateway on the same port: HTTP/1.1 requests whose encoded
  // message is bounded as a gRPC message is.
  const gateway = createGateway({
    methods,
    maxMessageBytes,
    maxBodyBytes: maxMessageBytes * JSON_BODY_INFLATION,
    metrics: limits.metrics,
    metricsOnly: limits.metricsOnly,
  });
  if (limits.metricsOnly) return serveHttp1Only(listener, gateway);
  return serveGrpc({
    listener,
    methods,
    limits: { maxReceiveMessageBytes: maxMessageBytes },
    keepalive: limits.keepalive,
    fallback: {
      http1: (conn, head) => gateway.serveHttp1(conn, head),
      http2: (stream, headers, endStream) =>
        gateway.serveHttp2(stream, headers, endStream),
    },
  });
};

/** Connections of a metrics listener served at once; more are closed. */
const METRICS_CONNECTIONS_MAX = 64;

/** Serves HTTP/1.1 only (a metrics listener): each connection to `gateway`. */
function serveHttp1Only(
  listener: SocketListener,
  gateway: Gateway,
): RunningTransport {
  const conns = new Set<SocketConn>();
  const served = new Set<Promise<void>>();
  const accepting = (async () => {
    for (;;) {
      let conn: SocketConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      if (conns.size >= METRICS_CONNECTIONS_MAX) {
        conn.close();
        continue;
      }
      conns.add(conn);
      const done = gateway.serveHttp1(conn, new Uint8Array(0)).finally(() => {
        conns.delete(conn);
        served.delete(done);
      });
      served.add(done);
    }
  })();
  const closed = (async () => {
    await accepting;
    await Promise.allSettled([...served]);
  })();
  return {
    closed,
    shutdown: async () => {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await closed;
    },
  };
}
