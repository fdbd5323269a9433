/**
 * `cli.ts serve` against a real etcd 3.4, side by side in one run, with the
 * same client (npm:etcd3 over @grpc/grpc-js, one connection) and the same
 * workloads: put with 1 and 64 in flight, get (64 in flight), a 100-key
 * range, txn compare-and-swap, and a watch event stream. For each: ops/s,
 * latency p50/p99, and server CPU µs per op (utime+stime of the server
 * process from /proc/<pid>/stat, clock ticks), and WAL fsyncs per op from
 * each server's own /metrics (etcd's `etcd_disk_wal_fsync_duration_seconds`
 * count, revkv's `revkv_wal_fsyncs_total`).
 *
 *   deno run -A bench/server_bench.ts            # prints a markdown table
 *   REVKV_BENCH_SCALE=0.2 deno run -A bench/server_bench.ts   # shorter
 *
 * Both servers fsync (etcd's defaults; serve without --unsafe-no-fsync).
 */

// deno-lint-ignore no-import-prefix
import { Etcd3 } from "npm:etcd3@1.1.2";
import { startEtcd } from "../tests/etcd_oracle.ts";
import { startServe } from "../tests/server_helpers.ts";

const SCALE = Number(Deno.env.get("REVKV_BENCH_SCALE") ?? 1);
const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux

export interface Row {
  workload: string;
  ops: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuMicrosPerOp: number;
  fsyncsPerOp: number;
}

/** A server under test: its client address, PID and fsync counter. */
export interface Target {
  address: string;
  pid: number;
  /** The WAL fsyncs the server has made so far (from its /metrics). */
  fsyncs(): Promise<number>;
}

/** Sums the samples of counter `name` in the Prometheus text at `url`. */
export async function metricSum(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** Runs `ops` calls of `op` with `inFlight` at a time; times each. */
async function measure(
  workload: string,
  target: Target,
  ops: number,
  inFlight: number,
  op: (i: number) => Promise<unknown>,
): Promise<Row> {
  const latencies: number[] = [];
  let next = 0;
  const fsyncs0 = await target.fsyncs();
  const ticks0 = cpuTicks(target.pid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < ops) {
        const i = next++;
        const start = performance.now();
        await op(i);
        latencies.push(performance.now() - start);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = (cpuTicks(target.pid) - ticks0) / TICKS_PER_SECOND;
  const fsyncs = (await target.fsyncs()) - fsyncs0;
  latencies.sort((a, b) => a - b);
  return {
    workload,
    fsyncsPerOp: fsyncs / ops,
    ops,
    opsPerSecond: ops / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    cpuMicrosPerOp: (cpuSeconds * 1e6) / ops,
  };
}

async function watchEvents(
  client: Etcd3,
  target: Target,
  ops: number,
): Promise<Row> {
  const watcher = await client.watch().prefix("watched/").create();
  let seen = 0;
  let allSeen: () => void = () => {};
  const done = new Promise<void>((resolve) => allSeen = resolve);
  const sentAt: number[] = [];
  const latencies: number[] = [];
  watcher.on("put", (kv) => {
    const i = Number(kv.key.toString().slice("watched/".length));
    latencies.push(performance.now() - sentAt[i]!);
    if (++seen === ops) allSeen();
  });
  const fsyncs0 = await target.fsyncs();
  const ticks0 = cpuTicks(target.pid);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < ops) {
        const i = next++;
        sentAt[i] = performance.now();
        await client.put(`watched/${i}`).value("v");
      }
    }),
  );
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = (cpuTicks(target.pid) - ticks0) / TICKS_PER_SECOND;
  const fsyncs = (await target.fsyncs()) - fsyncs0;
  await watcher.cancel();
  latencies.sort((a, b) => a - b);
  return {
    workload: "watch: put→event, 64 puts in flight",
    fsyncsPerOp: fsyncs / ops,
    ops,
    opsPerSecond: ops / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    cpuMicrosPerOp: (cpuSeconds * 1e6) / ops,
  };
}

/** A revkv server as a target (`endpoint` is its `http://host:port`). */
export function revkvTarget(
  server: { address: string; endpoint: string; pid: number },
): Target {
  return {
    address: server.address,
    pid: server.pid,
    fsyncs: () =>
      metricSum(`${server.endpoint}/metrics`, "revkv_wal_fsyncs_total"),
  };
}

/** A real etcd as a target (`endpoint` is its `http://host:port`). */
export function etcdTarget(etcd: { endpoint: string; pid: number }): Target {
  return {
    address: etcd.endpoint.replace("http://", ""),
    pid: etcd.pid,
    fsyncs: () =>
      metricSum(
        `${etcd.endpoint}/metrics`,
        "etcd_disk_wal_fsync_duration_seconds_count",
      ),
  };
}

/** Runs every workload against `target`. */
export async function runWorkloads(target: Target): Promise<Row[]> {
  const client = new Etcd3({ hosts: target.address });
  const n = (count: number) => Math.max(10, Math.round(count * SCALE));
  try {
    const rows: Row[] = [];
    await client.put("warm").value("up");
    rows.push(
      await measure(
        "put, 1 in flight",
        target,
        n(300),
        1,
        (i) => client.put(`p1/${i}`).value("v".repeat(64)).exec(),
      ),
    );
    rows.push(
      await measure(
        "put, 64 in flight",
        target,
        n(5000),
        64,
        (i) => client.put(`p64/${i}`).value("v".repeat(64)).exec(),
      ),
    );
    rows.push(
      await measure(
        "get, 64 in flight",
        target,
        n(5000),
        64,
        (i) => client.get(`p64/${i % 1000}`).string(),
      ),
    );
    for (let i = 0; i < 100; i++) {
      await client.put(`r/${String(i).padStart(3, "0")}`).value("x".repeat(64));
    }
    rows.push(
      await measure(
        "range of 100 keys, 16 in flight",
        target,
        n(1000),
        16,
        () => client.getAll().prefix("r/").strings(),
      ),
    );
    rows.push(
      await measure(
        "txn CAS, 16 in flight",
        target,
        n(2000),
        16,
        (i) =>
          client.if(`cas/${i}`, "Version", "==", 0)
            .then(client.put(`cas/${i}`).value("1"))
            .commit(),
      ),
    );
    rows.push(await watchEvents(client, target, n(5000)));
    return rows;
  } finally {
    client.close();
  }
}

if (import.meta.main) {
  const dir = await Deno.makeTempDir({ prefix: "revkv_server_bench_" });
  const etcd = await startEtcd();
  const serve = await startServe(`${dir}/data`);
  let etcdRows: Row[];
  let revkvRows: Row[];
  try {
    revkvRows = await runWorkloads(revkvTarget(serve));
    etcdRows = await runWorkloads(etcdTarget(etcd));
  } finally {
    await serve.stop();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }

  const f = (x: number, digits = 0) => x.toFixed(digits);
  console.log(
    `server_bench (scale ${SCALE}), npm:etcd3 1.1.2, one connection\n`,
  );
  console.log(
    "| workload | ops | revkv ops/s | etcd ops/s | ratio | revkv p50/p99 ms | etcd p50/p99 ms | revkv CPU µs/op | etcd CPU µs/op | CPU ratio | revkv fsyncs/op | etcd fsyncs/op |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (let i = 0; i < revkvRows.length; i++) {
    const r = revkvRows[i]!;
    const e = etcdRows[i]!;
    console.log(
      `| ${r.workload} | ${r.ops} | ${f(r.opsPerSecond)} | ${
        f(e.opsPerSecond)
      } | ${f(r.opsPerSecond / e.opsPerSecond, 2)} | ${f(r.p50Ms, 2)}/${
        f(r.p99Ms, 2)
      } | ${f(e.p50Ms, 2)}/${f(e.p99Ms, 2)} | ${f(r.cpuMicrosPerOp)} | ${
        f(e.cpuMicrosPerOp)
      } | ${f(r.cpuMicrosPerOp / e.cpuMicrosPerOp, 2)} | ${
        f(r.fsyncsPerOp, 3)
      } | ${f(e.fsyncsPerOp, 3)} |`,
    );
  }
}
