/**
 * `connect()` against `npm:etcd3` 1.1.2 (over @grpc/grpc-js), both talking
 * to one real etcd 3.4 on loopback, same workloads and key/value sizes:
 * put with 1 and 64 in flight, get of one key (64 in flight), a 100-key
 * prefix range (16 in flight), a live watch stream (a writer in another
 * process puts N keys, the client's watch receives them) and a watch
 * catching up on N past events. For each: ops/s of wall time and client
 * CPU µs per op, from `process.cpuUsage()` deltas of this process (etcd
 * and the writer are other processes, so only the client's CPU counts).
 *
 * The two clients run alternately (A/B, then B/A, …) for a few rounds after
 * a warm-up; the table shows each one's median and the ratios connect ÷
 * etcd3 (ops/s: higher is better for connect; CPU: lower is).
 *
 *   deno task bench:client                      # full run (~1 min)
 *   REVKV_BENCH_SHORT=1 deno task bench:client  # a few seconds
 *   REVKV_BENCH_ROUNDS=5 deno task bench:client # more rounds
 *   REVKV_BENCH_ONLY=catching REVKV_BENCH_CLIENTS=connect \
 *     deno run -A --lock=tools.lock --cpu-prof bench/client_bench.ts
 *                       # one workload, one client: for a CPU profile
 *
 * Every workload is bounded by its count and by `RUN_MS_MAX` of wall time;
 * the ops a run completed are the ones counted.
 */

// deno-lint-ignore no-import-prefix
import { Etcd3 } from "npm:etcd3@1.1.2";
import process from "node:process";
import { connect } from "../mod.ts";
import { startEtcd } from "../tests/etcd_oracle.ts";
import { BENCH_SHORT, sized } from "./bench_mode.ts";

/** Wall-time bound of one measured run of one workload with one client. */
const RUN_MS_MAX = sized(4_000, 2_000);
/** How long the writer process may take to start and connect. */
const WRITER_START_MS_MAX = 20_000;
/** Measured rounds (each runs both clients once per workload). */
const ROUNDS = Number(Deno.env.get("REVKV_BENCH_ROUNDS") ?? sized(3, 1));
/** Only the workloads whose name contains this text (default: all). */
const ONLY = Deno.env.get("REVKV_BENCH_ONLY") ?? "";
/** The clients to run, comma-separated (default: both). */
const CLIENTS = (Deno.env.get("REVKV_BENCH_CLIENTS") ?? "connect,etcd3")
  .split(",");
/** Warm-up runs use this share of a workload's count. */
const WARMUP_SHARE = 0.1;

const VALUE = "v".repeat(64);
const RANGE_KEYS = 100;

/** What a workload needs from a client. */
interface Client {
  readonly name: string;
  put(key: string, value: string): Promise<unknown>;
  get(key: string): Promise<unknown>;
  range(prefix: string): Promise<number>;
  /**
   * Watches `prefix` from `startRevision` until `count` events arrived (or
   * `signal` aborts); resolves with the number seen. `created` resolves
   * once the watch is open (as far as the client tells).
   */
  watch(
    prefix: string,
    startRevision: number,
    count: number,
    signal: AbortSignal,
  ): { created: Promise<void>; done: Promise<number> };
  revision(): Promise<number>;
  close(): Promise<void>;
}

async function connectClient(endpoint: string): Promise<Client> {
  const db = await connect({ endpoints: [endpoint] });
  return {
    name: "connect",
    put: (key, value) => db.put(key, value),
    get: (key) => db.get(key),
    range: async (prefix) => (await db.get(prefix, { prefix: true })).count,
    watch(prefix, startRevision, count, signal) {
      const done = (async () => {
        let seen = 0;
        for await (
          const res of db.watch(prefix, { prefix: true, startRevision, signal })
        ) {
          seen += res.events.length;
          if (seen >= count) break;
        }
        return seen;
      })();
      return { created: Promise.resolve(), done };
    },
    revision: async () => (await db.get("\0")).header.revision,
    close: () => db.close(),
  };
}

function etcd3Client(endpoint: string): Client {
  const client = new Etcd3({ hosts: endpoint });
  return {
    name: "etcd3",
    put: (key, value) => client.put(key).value(value).exec(),
    get: (key) => client.get(key).exec(),
    range: async (prefix) =>
      Number((await client.getAll().prefix(prefix).exec()).count),
    watch(prefix, startRevision, count, signal) {
      let seen = 0;
      let finish: (n: number) => void = () => {};
      const done = new Promise<number>((resolve) => finish = resolve);
      const creating = client.watch().prefix(prefix)
        .startRevision(String(startRevision)).create();
      creating.then((watcher) => {
        const end = () => {
          watcher.cancel().catch(() => {});
          finish(seen);
        };
        signal.addEventListener("abort", end, { once: true });
        watcher.on("data", (res) => {
          seen += res.events.length;
          if (seen >= count) end();
        });
      }, () => finish(seen));
      return { created: creating.then(() => {}), done };
    },
    revision: async () =>
      Number((await client.get("\0").exec()).header.revision),
    close: () => Promise.resolve(client.close()),
  };
}

/** One measured run: ops completed, wall seconds, client CPU µs. */
interface Run {
  ops: number;
  seconds: number;
  cpuMicros: number;
}

/** Runs up to `ops` calls of `op`, `inFlight` at a time, within RUN_MS_MAX. */
async function closedLoop(
  ops: number,
  inFlight: number,
  op: (i: number) => Promise<unknown>,
): Promise<Run> {
  let next = 0;
  let done = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stopAt = t0 + RUN_MS_MAX;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < ops && performance.now() < stopAt) {
        await op(next++);
        done++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { ops: done, seconds, cpuMicros: cpu.user + cpu.system };
}

/** A writer process putting `count` keys under `prefix` once told to. */
async function startWriter(endpoint: string, prefix: string, count: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--lock=${new URL("../tools.lock", import.meta.url).pathname}`,
      import.meta.filename!,
      "--writer",
      endpoint,
      prefix,
      String(count),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  const timer = setTimeout(() => child.kill("SIGKILL"), WRITER_START_MS_MAX);
  const first = await lines.read();
  clearTimeout(timer);
  if (!first.value?.startsWith("ready")) {
    throw new Error(`watch writer did not start: ${first.value}`);
  }
  const stdin = child.stdin.getWriter();
  return {
    go: () => stdin.write(new TextEncoder().encode("go\n")),
    async finish() {
      const timer = setTimeout(() => child.kill("SIGKILL"), RUN_MS_MAX);
      await stdin.close().catch(() => {});
      await lines.cancel().catch(() => {});
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** The writer's side (`--writer endpoint prefix count`). */
async function writerMain(endpoint: string, prefix: string, count: number) {
  const db = await connect({ endpoints: [endpoint] });
  console.log("ready");
  const stdin = Deno.stdin.readable.getReader();
  await stdin.read();
  let next = 0;
  const stopAt = performance.now() + RUN_MS_MAX;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < count && performance.now() < stopAt) {
        await db.put(`${prefix}${String(next++).padStart(6, "0")}`, VALUE);
      }
    }),
  );
  await db.close();
}

/** A watch receiving what a writer process puts now. */
async function liveWatch(
  client: Client,
  endpoint: string,
  prefix: string,
  count: number,
): Promise<Run> {
  const writer = await startWriter(endpoint, prefix, count);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), RUN_MS_MAX + 2_000);
  try {
    const from = (await client.revision()) + 1;
    const watch = client.watch(prefix, from, count, abort.signal);
    await watch.created;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await writer.go();
    const seen = await watch.done;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { ops: seen, seconds, cpuMicros: cpu.user + cpu.system };
  } finally {
    clearTimeout(timer);
    await writer.finish();
  }
}

/** A watch catching up on `count` past events from `startRevision`. */
async function catchUpWatch(
  client: Client,
  prefix: string,
  startRevision: number,
  count: number,
): Promise<Run> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), RUN_MS_MAX);
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const watch = client.watch(prefix, startRevision, count, abort.signal);
    const seen = await watch.done;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { ops: seen, seconds, cpuMicros: cpu.user + cpu.system };
  } finally {
    clearTimeout(timer);
  }
}

interface Workload {
  name: string;
  count: number;
  run(client: Client, count: number, tag: string): Promise<Run>;
}

function workloads(endpoint: string, catchUpFrom: () => number): Workload[] {
  const key = (prefix: string, i: number) =>
    `${prefix}${String(i % 1000).padStart(6, "0")}`;
  return [
    {
      name: "put, 1 in flight",
      count: sized(300, 100),
      run: (c, n) => closedLoop(n, 1, (i) => c.put(key("p1/", i), VALUE)),
    },
    {
      name: "put, 64 in flight",
      count: sized(2000, 1000),
      run: (c, n) => closedLoop(n, 64, (i) => c.put(key("p64/", i), VALUE)),
    },
    {
      name: "get one key, 64 in flight",
      count: sized(3000, 2000),
      run: (c, n) => closedLoop(n, 64, () => c.get("g/key")),
    },
    {
      name: `range of ${RANGE_KEYS} keys, 16 in flight`,
      count: sized(1000, 300),
      run: (c, n) =>
        closedLoop(n, 16, async () => {
          const got = await c.range("r/");
          if (got !== RANGE_KEYS) throw new Error(`range got ${got} keys`);
        }),
    },
    {
      name: "watch, live (writer: 64 puts in flight)",
      count: sized(2000, 500),
      run: (c, n, tag) => liveWatch(c, endpoint, `w/${tag}/`, n),
    },
    {
      name: "watch, catching up",
      count: sized(10_000, 2000),
      run: (c, n) => catchUpWatch(c, "c/", catchUpFrom(), n),
    },
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main() {
  const etcd = await startEtcd();
  const endpoint = etcd.endpoint.replace("http://", "");
  const clients: Client[] = [];
  try {
    const setup = await connectClient(endpoint);
    clients.push(setup);
    if (CLIENTS.includes("etcd3")) clients.push(etcd3Client(endpoint));
    await setup.put("g/key", VALUE);
    for (let i = 0; i < RANGE_KEYS; i++) {
      await setup.put(`r/${String(i).padStart(3, "0")}`, VALUE);
    }
    const list = workloads(endpoint, () => catchUpFrom);
    const catchUpCount = list.at(-1)!.count;
    const catchUpFrom = (await setup.revision()) + 1;
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < catchUpCount) {
        const i = next++;
        await setup.put(`c/${String(i).padStart(6, "0")}`, VALUE);
      }
    }));

    const runs = new Map<string, Run[]>();
    const measured = clients.filter((c) => CLIENTS.includes(c.name));
    for (const w of list.filter((w) => w.name.includes(ONLY))) {
      for (const c of measured) {
        await w.run(c, Math.ceil(w.count * WARMUP_SHARE), `warm-${c.name}`);
      }
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? measured : [...measured].reverse();
        for (const c of order) {
          const run = await w.run(c, w.count, `${round}-${c.name}`);
          const id = `${w.name}|${c.name}`;
          runs.set(id, [...(runs.get(id) ?? []), run]);
        }
      }
    }
    report(list, runs);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await etcd.stop();
  }
}

function report(list: Workload[], runs: Map<string, Run[]>) {
  const f = (x: number, digits = 0) => x.toFixed(digits);
  console.log(
    `client_bench${BENCH_SHORT ? " (short)" : ""}: connect() vs ` +
      `npm:etcd3 1.1.2, one etcd 3.4 on loopback, ${ROUNDS} round(s), medians\n`,
  );
  console.log(
    "| workload | ops | connect ops/s | etcd3 ops/s | ops/s ratio | connect CPU µs/op | etcd3 CPU µs/op | CPU ratio |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const w of list.filter((w) => runs.has(`${w.name}|${CLIENTS[0]}`))) {
    const stat = (name: string) => {
      const rs = runs.get(`${w.name}|${name}`) ?? [];
      return {
        ops: median(rs.map((r) => r.ops)),
        opsPerSecond: median(rs.map((r) => r.ops / r.seconds)),
        cpuPerOp: median(rs.map((r) => r.cpuMicros / Math.max(1, r.ops))),
      };
    };
    const a = stat("connect");
    const b = stat("etcd3");
    console.log(
      `| ${w.name} | ${f(Math.min(a.ops, b.ops))} | ${f(a.opsPerSecond)} | ${
        f(b.opsPerSecond)
      } | ${f(a.opsPerSecond / b.opsPerSecond, 2)} | ${f(a.cpuPerOp, 1)} | ${
        f(b.cpuPerOp, 1)
      } | ${f(a.cpuPerOp / b.cpuPerOp, 2)} |`,
    );
  }
}

if (import.meta.main) {
  const [mode, endpoint, prefix, count] = Deno.args;
  if (mode === "--writer") {
    await writerMain(endpoint!, prefix!, Number(count));
  } else {
    await main();
  }
}
