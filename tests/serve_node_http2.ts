/**
 * TEST-ONLY: `cli.ts serve` with the node:http2 stand-in transport (see
 * tests/node_http2_transport.ts). Same flags as `cli.ts serve`.
 */
import { runServe } from "../src/cli/serve_command.ts";
import { startNodeHttp2Transport } from "./node_http2_transport.ts";

const code = await runServe(Deno.args, {
  stdout: Deno.stdout,
  stderr: Deno.stderr,
  env: Deno.env.toObject(),
}, startNodeHttp2Transport);
Deno.exit(code);
