/**
 * Server CPU per gRPC call on revkv's own HTTP/2 transport.
 *
 * Starts an echo server (this file with `--serve`) in a child process,
 * drives it with `h2load` (nghttp2's C load generator, so the client's cost
 * stays out of the server's) and, for a JS client's view, with
 * `@grpc/grpc-js`; reads the server's CPU time from /proc before and after
 * each run, and prints µs of server CPU per call with 1 and 64 calls in
 * flight on one connection, beside calls/s.
 *
 * Reference figures (issue #11, same machine): a throwaway 170-line h2c
 * server spent 13.5 µs/call at 64 in flight and 52 µs at 1; Deno's
 * node:http2 ~46–52 µs at 64; etcd 3.4 ~60–120 µs per put/get at 64.
 *
 * Run: `deno run -A bench/http2_bench.ts [calls]` (Linux: reads /proc).
 * Profile the server: `REVKV_BENCH_PROFILE=1 deno run -A bench/http2_bench.ts`
 * writes a .cpuprofile of the server under the current directory.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import grpc from "@grpc/grpc-js";
import { serveGrpc } from "../src/wire/grpc_server.ts";
import type { GrpcMethod } from "../src/wire/grpc_service.ts";

/** Calls per measured run: enough for /proc's 10 ms ticks to be < 2% noise. */
const DEFAULT_CALLS = 50_000;
/** Calls per run with one in flight (slower; fewer keep the run short). */
const SERIAL_CALLS_DIVISOR = 5;
/** grpc-js calls per run (the client shares the two cores). */
const GRPC_JS_CALLS = 10_000;
/** Bound on one load-generator run. */
const RUN_MS_MAX = 120_000;

if (Deno.args[0] === "--serve") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const methods = new Map<string, GrpcMethod>([
    ["/bench.Echo/Echo", { kind: "unary", handle: (request) => request }],
  ]);
  const server = serveGrpc({ listener, methods });
  console.log(JSON.stringify({ port: (listener.addr as Deno.NetAddr).port }));
  // Runs until the parent closes our stdin, then ends normally (so that
  // --cpu-prof writes its profile).
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  await server.shutdown(100);
} else {
  await main();
}

function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based) of /proc/pid/stat.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10; // USER_HZ is 100 on Linux
}

async function main(): Promise<void> {
  const calls = Number(Deno.args[0] ?? DEFAULT_CALLS);
  const only = Deno.env.get("REVKV_BENCH_ONLY"); // "64" or "1": one h2load row
  const args = ["run", "-A"];
  if (Deno.env.get("REVKV_BENCH_PROFILE")) {
    args.push("--cpu-prof", "--cpu-prof-dir=.");
  }
  args.push(new URL(import.meta.url).pathname, "--serve");
  const server = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  const { port } = JSON.parse(new TextDecoder().decode(value));
  reader.releaseLock();
  const rows: string[][] = [];
  try {
    const body = await Deno.makeTempFile();
    // A 3-byte message: the transport's cost, not the payload's.
    await Deno.writeFile(body, new Uint8Array([0, 0, 0, 0, 3, 1, 2, 3]));
    // Warm-up so the JIT has compiled the hot path.
    await h2load(port, body, 5_000, 64);
    for (const inFlight of only ? [Number(only)] : [64, 1]) {
      const n = inFlight === 1 ? calls / SERIAL_CALLS_DIVISOR : calls;
      const before = cpuMs(server.pid);
      const result = await h2load(port, body, n, inFlight);
      const after = cpuMs(server.pid);
      rows.push([
        "h2load",
        String(inFlight),
        String(n),
        result.rps.toFixed(0),
        ((after - before) * 1000 / n).toFixed(1),
      ]);
    }
    await Deno.remove(body);
    for (const inFlight of only ? [] : [64, 1]) {
      const n = inFlight === 1
        ? GRPC_JS_CALLS / SERIAL_CALLS_DIVISOR
        : GRPC_JS_CALLS;
      const before = cpuMs(server.pid);
      const rps = await grpcJs(port, n, inFlight);
      const after = cpuMs(server.pid);
      rows.push([
        "grpc-js",
        String(inFlight),
        String(n),
        rps.toFixed(0),
        ((after - before) * 1000 / n).toFixed(1),
      ]);
    }
  } finally {
    await server.stdin.close();
    const timer = setTimeout(() => server.kill("SIGKILL"), RUN_MS_MAX);
    await server.status;
    clearTimeout(timer);
  }
  console.log("| client | in flight | calls | calls/s | server CPU µs/call |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
}

async function h2load(
  port: number,
  body: string,
  n: number,
  inFlight: number,
): Promise<{ rps: number }> {
  const child = new Deno.Command("h2load", {
    args: [
      "-n",
      String(n),
      "-c",
      "1",
      "-m",
      String(inFlight),
      "-d",
      body,
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      `http://127.0.0.1:${port}/bench.Echo/Echo`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), RUN_MS_MAX);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout);
  if (!text.includes(`${n} succeeded`)) {
    throw new Error(`h2load failed:\n${text}`);
  }
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(text)?.[1]);
  return { rps };
}

async function grpcJs(port: number, n: number, inFlight: number) {
  const serialize = (v: Uint8Array) => Buffer.from(v);
  const deserialize = (v: Buffer) => new Uint8Array(v);
  const Client = grpc.makeGenericClientConstructor({
    echo: {
      path: "/bench.Echo/Echo",
      requestStream: false,
      responseStream: false,
      requestSerialize: serialize,
      requestDeserialize: deserialize,
      responseSerialize: serialize,
      responseDeserialize: deserialize,
    },
  }, "Echo");
  // deno-lint-ignore no-explicit-any
  const client: any = new Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
  const request = new Uint8Array([1, 2, 3]);
  const call = () =>
    new Promise<void>((resolve, reject) =>
      client.echo(
        request,
        (error: unknown) => error ? reject(error) : resolve(),
      )
    );
  await call();
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) {
      next++;
      await call();
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  client.close();
  return n / seconds;
}
