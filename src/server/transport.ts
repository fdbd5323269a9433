/**
 * The one place `serve` meets the gRPC transport (revkv's own HTTP/2 and
 * gRPC framing on Deno.listen): it starts the transport on a listener with
 * the services' method table.
 *
 * @module
 */

import type { StartTransport } from "../cli/serve_command.ts";

/** Starts revkv's gRPC transport on `listener`. */
export const startGrpcTransport: StartTransport = () => {
  throw new Error(
    "revkv's gRPC transport is not merged into this build yet; serve cannot listen",
  );
};
