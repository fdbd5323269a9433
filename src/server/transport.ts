/**
 * The one place `serve` meets the gRPC transport (revkv's own HTTP/2 and
 * gRPC framing on Deno.listen, src/wire/grpc_server.ts): it starts the
 * transport on a listener with the services' method table and etcd's
 * message-size rule, and etcd's JSON gateway (./gateway.ts) as the
 * HTTP/1.1 fallback on the same port.
 *
 * etcd's gRPC server accepts messages up to `--max-request-bytes` plus
 * `GRPC_OVERHEAD_BYTES` (its `grpcOverheadBytes`, 512 KiB): a request just
 * over the limit reaches the store, which answers etcd's "request is too
 * large"; one far over it is refused by gRPC itself (RESOURCE_EXHAUSTED).
 *
 * @module
 */

import type { StartTransport } from "../cli/serve_command.ts";
import { serveGrpc } from "../wire/grpc_server.ts";
import { createGateway } from "./gateway.ts";

/** etcd's `grpcOverheadBytes`: room for gRPC above `--max-request-bytes`. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** Starts revkv's gRPC transport on `listener`. */
export const startGrpcTransport: StartTransport = (
  listener,
  methods,
  limits,
) => {
  // etcd's JSON gateway on the same port: HTTP/1.1 requests, bounded as
  // gRPC messages are.
  const gateway = createGateway({
    methods,
    maxBodyBytes: limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
  });
  return serveGrpc({
    listener,
    methods,
    limits: {
      maxReceiveMessageBytes: limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    },
    fallback: { http1: (conn, head) => gateway.serveHttp1(conn, head) },
  });
};
