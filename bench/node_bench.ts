/**
 * The Node build against the Deno original (#14): bundle sizes, cold start
 * of one CLI command, and the server benchmark's workloads
 * (`bench/server_bench.ts`: npm:etcd3, one connection) against
 * `node revkv-cli.mjs serve`, `deno run -A cli.ts serve` and etcd 3.4.
 *
 *   deno run -A --lock=tools.lock bench/node_bench.ts
 *   REVKV_BENCH_SCALE=0.2 deno run -A --lock=tools.lock bench/node_bench.ts
 *
 * Cold start: `get foo` on a one-key store, alternating Node and Deno,
 * `RUNS` processes each, median and min. Both servers fsync.
 */

import { bundle, BUNDLE_FILES } from "../scripts/bundle.ts";
import {
  etcdTarget,
  revkvTarget,
  type Row,
  runWorkloads,
} from "./server_bench.ts";
import { startEtcd } from "../tests/etcd_oracle.ts";
import { startServe } from "../tests/server_helpers.ts";

const RUNS = 10;
const cli = new URL("../cli.ts", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "revkv-node-bench-" });

async function timeCommand(program: string, args: string[]): Promise<number> {
  const started = performance.now();
  const { code, stderr } = await new Deno.Command(program, {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `${program} ${args.join(" ")} failed: ${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const f = (x: number, digits = 0) => x.toFixed(digits);

try {
  const dist = `${work}/dist`;
  const built = await bundle(dist);
  const nodeCli = `${dist}/${BUNDLE_FILES.cli}`;
  console.log("| file | bytes | gzip bytes |\n|---|---:|---:|");
  for (const [name, bytes] of Object.entries(built.sizes)) {
    if (name.endsWith("/")) {
      console.log(`| ${name} (all .d.ts) | ${bytes} | |`);
      continue;
    }
    const gzipped = await new Response(
      (await Deno.open(`${dist}/${name}`)).readable.pipeThrough(
        new CompressionStream("gzip"),
      ),
    ).arrayBuffer();
    console.log(`| ${name} | ${bytes} | ${gzipped.byteLength} |`);
  }

  const store = `${work}/store`;
  await timeCommand("node", [
    nodeCli,
    "--data-dir",
    store,
    "put",
    "foo",
    "bar",
  ]);
  const node: number[] = [];
  const deno: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    node.push(
      await timeCommand("node", [nodeCli, "--data-dir", store, "get", "foo"]),
    );
    deno.push(
      await timeCommand(Deno.execPath(), [
        "run",
        "-A",
        cli,
        "--data-dir",
        store,
        "get",
        "foo",
      ]),
    );
  }
  console.log(`\ncold start of \`get foo\`, ${RUNS} runs each (ms)\n`);
  console.log("| CLI | median | min |\n|---|---:|---:|");
  console.log(
    `| node revkv-cli.mjs | ${f(median(node), 1)} | ${
      f(Math.min(...node), 1)
    } |`,
  );
  console.log(
    `| deno run -A cli.ts | ${f(median(deno), 1)} | ${
      f(Math.min(...deno), 1)
    } |`,
  );

  const servers: { name: string; rows: Row[] }[] = [];
  const nodeServer = await startServe(`${work}/serve-node`, [], [
    "node",
    nodeCli,
  ]);
  try {
    servers.push({
      name: "node",
      rows: await runWorkloads(revkvTarget(nodeServer)),
    });
  } finally {
    await nodeServer.stop();
  }
  const denoServer = await startServe(`${work}/serve-deno`);
  try {
    servers.push({
      name: "deno",
      rows: await runWorkloads(revkvTarget(denoServer)),
    });
  } finally {
    await denoServer.stop();
  }
  const etcd = await startEtcd();
  try {
    servers.push({
      name: "etcd",
      rows: await runWorkloads(etcdTarget(etcd)),
    });
  } finally {
    await etcd.stop();
  }
  console.log(
    `\nserver workloads (REVKV_BENCH_SCALE ${
      Deno.env.get("REVKV_BENCH_SCALE") ?? 1
    }), npm:etcd3 1.1.2, one connection\n`,
  );
  console.log(
    "| workload | ops | node ops/s | deno ops/s | etcd ops/s | node/deno | node p50/p99 ms | deno p50/p99 ms | node CPU µs/op | deno CPU µs/op | etcd CPU µs/op |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|");
  const [n, d, e] = servers.map((s) => s.rows) as [Row[], Row[], Row[]];
  for (let i = 0; i < n.length; i++) {
    const [a, b, c] = [n[i]!, d[i]!, e[i]!];
    console.log(
      `| ${a.workload} | ${a.ops} | ${f(a.opsPerSecond)} | ${
        f(b.opsPerSecond)
      } | ${f(c.opsPerSecond)} | ${f(a.opsPerSecond / b.opsPerSecond, 2)} | ${
        f(a.p50Ms, 2)
      }/${f(a.p99Ms, 2)} | ${f(b.p50Ms, 2)}/${f(b.p99Ms, 2)} | ${
        f(a.cpuMicrosPerOp)
      } | ${f(b.cpuMicrosPerOp)} | ${f(c.cpuMicrosPerOp)} |`,
    );
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
