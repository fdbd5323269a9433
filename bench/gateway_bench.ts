/**
 * The JSON gateway beside the gRPC benchmark: `cli.ts serve` against a real
 * etcd 3.4, side by side in one run, the same HTTP/1.1 client (`fetch`,
 * keep-alive) and workloads: put through `POST /v3/kv/put` and a 100-key
 * range through `POST /v3/kv/range`, with 16 requests in flight. For each:
 * ops/s and server CPU µs per op (utime+stime of the server process from
 * /proc/<pid>/stat).
 *
 *   deno task bench:gateway                  # prints a markdown table
 *   REVKV_BENCH_SHORT=1 deno task bench:gateway   # a short check run
 *
 * Both servers fsync (etcd's defaults; serve without --unsafe-no-fsync).
 */

import { startEtcd } from "../tests/etcd_oracle.ts";
import { startServe } from "../tests/server_helpers.ts";
import { sized } from "./bench_mode.ts";

const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux
const IN_FLIGHT = 16;
const PUTS = sized(3000, 200);
const RANGES = sized(1000, 100);
/** Rounds per server, alternating revkv and etcd; medians are printed. */
const ROUNDS = sized(3, 1);

interface Row {
  opsPerSecond: number;
  cpuMicrosPerOp: number;
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

const b64 = (text: string) => btoa(text);

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`);
}

async function measure(
  pid: number,
  ops: number,
  op: (i: number) => Promise<void>,
): Promise<Row> {
  let next = 0;
  const ticks0 = cpuTicks(pid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ops) await op(next++);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = (cpuTicks(pid) - ticks0) / TICKS_PER_SECOND;
  return {
    opsPerSecond: ops / seconds,
    cpuMicrosPerOp: cpuSeconds * 1e6 / ops,
  };
}

async function workloads(
  base: string,
  pid: number,
  round: number,
): Promise<Row[]> {
  const value = b64("v".repeat(64));
  const put = await measure(
    pid,
    PUTS,
    (i) => post(`${base}/v3/kv/put`, { key: b64(`g${round}/${i}`), value }),
  );
  for (let i = 0; i < 100; i++) {
    await post(`${base}/v3/kv/put`, {
      key: b64(`r/${String(i).padStart(3, "0")}`),
      value,
    });
  }
  const range = await measure(
    pid,
    RANGES,
    () => post(`${base}/v3/kv/range`, { key: b64("r/"), range_end: b64("r0") }),
  );
  return [put, range];
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;

const dir = await Deno.makeTempDir({ prefix: "revkv_gateway_bench_" });
const etcd = await startEtcd();
const serve = await startServe(`${dir}/data`);
const revkvRuns: Row[][] = [];
const etcdRuns: Row[][] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    revkvRuns.push(await workloads(serve.endpoint, serve.pid, round));
    etcdRuns.push(await workloads(etcd.endpoint, etcd.pid, round));
  }
} finally {
  await serve.stop();
  await etcd.stop();
  await Deno.remove(dir, { recursive: true });
}

const names = [
  `put, ${IN_FLIGHT} in flight`,
  `range of 100 keys, ${IN_FLIGHT} in flight`,
];
const f = (x: number, digits = 0) => x.toFixed(digits);
console.log(
  `gateway_bench: fetch over HTTP/1.1, ${ROUNDS} rounds, medians (load ${
    Deno.loadavg()[0]?.toFixed(2)
  })\n`,
);
console.log(
  "| workload | revkv ops/s | etcd ops/s | ratio | revkv CPU µs/op | etcd CPU µs/op | CPU ratio |",
);
console.log("|---|---|---|---|---|---|---|");
names.forEach((name, i) => {
  const r = {
    ops: median(revkvRuns.map((run) => run[i]!.opsPerSecond)),
    cpu: median(revkvRuns.map((run) => run[i]!.cpuMicrosPerOp)),
  };
  const e = {
    ops: median(etcdRuns.map((run) => run[i]!.opsPerSecond)),
    cpu: median(etcdRuns.map((run) => run[i]!.cpuMicrosPerOp)),
  };
  console.log(
    `| ${name} | ${f(r.ops)} | ${f(e.ops)} | ${f(r.ops / e.ops, 2)} | ${
      f(r.cpu)
    } | ${f(e.cpu)} | ${f(r.cpu / e.cpu, 2)} |`,
  );
});
