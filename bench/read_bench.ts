/**
 * Read benchmark (issue 10): revkv against Deno KV, side by side in one run,
 * through each one's public API, on a durable file each:
 *
 * ```sh
 * deno task bench:read            # = deno run -A --unstable-kv bench/read_bench.ts
 * deno task bench:read --quick    # shorter rounds, 20,000 keys
 * ```
 *
 * Both stores hold the same `KEY_COUNT` keys of `KEY_BYTES` bytes with
 * values of `VALUE_BYTES` bytes; keys come in groups of `RANGE_KEYS` under
 * one prefix. Measured, with 1 and with 64 calls in flight, in `ROUNDS`
 * interleaved rounds (revkv, then Deno KV, then revkv ...) so that both see
 * the same machine:
 *
 * - point get of a random key,
 * - a 100-key prefix range with values (revkv: `get(prefix, { prefix,
 *   limit })`; Deno KV: `list({ start, end }, { limit })` collected),
 * - the same range keys-only (Deno KV has no keys-only: the same `list`),
 * - the count of the range (Deno KV has no count: the same `list`, counted),
 * - the range through `Store.visitRange`, the engine's read for encoders,
 *   which lends the stored bytes instead of building `KeyValue`s (Deno KV:
 *   the same `list`),
 * - durable puts with 64 writers, with the process's CPU time per put
 *   (user + system, from `process.cpuUsage`).
 *
 * Prints µs per call and the ratio (Deno KV / revkv) as a markdown table for
 * bench/RESULTS.md. A script, not a `Deno.bench` file: `deno bench` finds no
 * benchmarks here (the body runs only as the main module).
 *
 * @module
 */

import process from "node:process";
import { open, type Store } from "../mod.ts";

const QUICK = Deno.args.includes("--quick");
/** Keys in each store (the size). */
const KEY_COUNT = QUICK ? 20_000 : 100_000;
/** Bytes per key. */
const KEY_BYTES = 16;
/** Bytes per value. */
const VALUE_BYTES = 256;
/** Keys under one prefix, and the range's limit. */
const RANGE_KEYS = 100;
/** Length of one system's share of a round, per measurement. */
const ROUND_MS = QUICK ? 300 : 1000;
/** Interleaved rounds per measurement. */
const ROUNDS = QUICK ? 2 : 3;
/** How long each put measurement runs. */
const PUT_MS = QUICK ? 1000 : 3000;
/** Writers of the put measurement. */
const PUT_WRITERS = 64;

const PREFIX_BYTES = KEY_BYTES - 2; // the last two digits vary inside a group
const key = (i: number) => `key/${i.toString().padStart(KEY_BYTES - 4, "0")}`;
const prefixOf = (group: number) =>
  `key/${group.toString().padStart(PREFIX_BYTES - 4, "0")}`;
const GROUPS = KEY_COUNT / RANGE_KEYS;

/** mulberry32: a seeded PRNG, so both systems read the same keys. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function valueFor(i: number): Uint8Array {
  const value = new Uint8Array(VALUE_BYTES);
  for (let j = 0; j < VALUE_BYTES; j++) value[j] = (i * 31 + j) & 0xff;
  return value;
}

/** What each system offers the benchmark (the same client code drives both). */
interface Reader {
  name: string;
  get(i: number): Promise<number>;
  range(group: number): Promise<number>;
  keysOnly(group: number): Promise<number>;
  count(group: number): Promise<number>;
  visit(group: number): Promise<number>;
}

type Op = "get" | "range" | "keysOnly" | "count" | "visit";
const OPS: Op[] = ["get", "range", "keysOnly", "count", "visit"];

function revkvReader(db: Store): Reader {
  return {
    name: "revkv",
    get: async (i) => (await db.get(key(i))).kvs.length,
    range: async (g) =>
      (await db.get(prefixOf(g), { prefix: true, limit: RANGE_KEYS })).kvs
        .length,
    keysOnly: async (g) =>
      (await db.get(prefixOf(g), {
        prefix: true,
        limit: RANGE_KEYS,
        keysOnly: true,
      })).kvs.length,
    count: async (g) =>
      (await db.get(prefixOf(g), { prefix: true, countOnly: true })).count,
    visit: (g) => {
      // What the gRPC server will do: read the stored bytes in place.
      let n = 0;
      db.visitRange(prefixOf(g), { prefix: true, limit: RANGE_KEYS }, (kv) => {
        n += kv.value.length > 0 ? 1 : 0;
      });
      return Promise.resolve(n);
    },
  };
}

function denoKvReader(kv: Deno.Kv): Reader {
  const list = async (g: number) => {
    const entries = [];
    for await (
      const entry of kv.list({ start: [prefixOf(g)], end: [prefixOf(g + 1)] }, {
        limit: RANGE_KEYS,
      })
    ) entries.push(entry);
    return entries.length;
  };
  return {
    name: "Deno KV",
    get: async (i) => (await kv.get([key(i)])).value === null ? 0 : 1,
    range: list,
    keysOnly: list,
    count: list,
    visit: list,
  };
}

/** Runs `op` with `inFlight` callers for `ms`; returns calls and elapsed ms. */
async function timed(
  reader: Reader,
  op: Op,
  inFlight: number,
  ms: number,
  next: () => number,
): Promise<{ calls: number; elapsedMs: number }> {
  const expected = op === "get" ? 1 : RANGE_KEYS;
  let calls = 0;
  const start = performance.now();
  // A clock check, not a timer: revkv's reads resolve in microtasks, which
  // would starve a timer forever.
  const deadline = start + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        const got = await reader[op](next());
        if (got !== expected) {
          throw new Error(`${reader.name} ${op}: got ${got}, not ${expected}`);
        }
        calls++;
      }
    }),
  );
  return { calls, elapsedMs: performance.now() - start };
}

/** µs per call of each reader, interleaved over ROUNDS rounds. */
async function measure(
  readers: Reader[],
  op: Op,
  inFlight: number,
): Promise<number[]> {
  const totals = readers.map(() => ({ calls: 0, elapsedMs: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    for (let r = 0; r < readers.length; r++) {
      // The same probe sequence for every reader in a round.
      const random = rng(round * 7919 + 1);
      const next = op === "get"
        ? () => Math.floor(random() * KEY_COUNT)
        : () => Math.floor(random() * GROUPS);
      const { calls, elapsedMs } = await timed(
        readers[r]!,
        op,
        inFlight,
        ROUND_MS,
        next,
      );
      totals[r]!.calls += calls;
      totals[r]!.elapsedMs += elapsedMs;
    }
  }
  return totals.map((t) => (t.elapsedMs * 1000) / t.calls);
}

/** Durable puts with PUT_WRITERS writers: puts/s and CPU µs per put. */
async function putRate(
  put: (i: number) => Promise<unknown>,
): Promise<{ perSecond: number; cpuMicros: number }> {
  let next = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  const deadline = start + PUT_MS;
  await Promise.all(
    Array.from({ length: PUT_WRITERS }, async () => {
      while (performance.now() < deadline) await put(next++);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    perSecond: next / seconds,
    cpuMicros: (used.user + used.system) / next,
  };
}

const fmt = (n: number, digits = 1) =>
  n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "revkv-read-bench-" });
  const db = await open(`${dir}/revkv`);
  const kv = await Deno.openKv(`${dir}/denokv.sqlite`);
  try {
    let start = performance.now();
    for (let i = 0; i < KEY_COUNT; i += 1000) {
      const puts: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(KEY_COUNT, i + 1000); j++) {
        puts.push(db.put(key(j), valueFor(j)));
      }
      await Promise.all(puts);
    }
    console.error(
      `revkv: ${KEY_COUNT} keys in ${fmt(performance.now() - start, 0)} ms`,
    );
    start = performance.now();
    for (let i = 0; i < KEY_COUNT; i += 500) {
      const atomic = kv.atomic();
      for (let j = i; j < Math.min(KEY_COUNT, i + 500); j++) {
        atomic.set([key(j)], valueFor(j));
      }
      const result = await atomic.commit();
      if (!result.ok) throw new Error("Deno KV fill failed");
    }
    console.error(
      `Deno KV: ${KEY_COUNT} keys in ${fmt(performance.now() - start, 0)} ms`,
    );

    const readers = [revkvReader(db), denoKvReader(kv)];
    // Warm both up (JIT tiers, caches), then measure.
    for (const op of OPS) {
      for (const reader of readers) {
        await timed(reader, op, 8, 200, () => Math.floor(Math.random() * 100));
      }
    }
    const names: Record<Op, string> = {
      get: "point get",
      range: `${RANGE_KEYS}-key prefix range with values`,
      keysOnly: `${RANGE_KEYS}-key prefix range, keys only`,
      count: `count of a ${RANGE_KEYS}-key prefix`,
      visit: `${RANGE_KEYS}-key range, engine visitor (revkv visitRange)`,
    };
    const rows: string[] = [];
    for (const inFlight of [1, 64]) {
      for (const op of OPS) {
        const [revkv, denoKv] = await measure(readers, op, inFlight);
        const row = `| ${names[op]} | ${inFlight} | ${fmt(revkv!, 2)} | ${
          fmt(denoKv!, 1)
        } | ${fmt(denoKv! / revkv!, 1)}× |`;
        console.error(row);
        rows.push(row);
      }
    }

    const revkvPuts = await putRate((i) =>
      db.put(`put/${i.toString().padStart(12, "0")}`, valueFor(i))
    );
    const denoPuts = await putRate((i) =>
      kv.set([`put/${i.toString().padStart(12, "0")}`], valueFor(i))
    );
    const putRow =
      `| durable put, µs of CPU per put (puts/s) | ${PUT_WRITERS} | ${
        fmt(revkvPuts.cpuMicros, 1)
      } (${fmt(revkvPuts.perSecond, 0)}/s) | ${fmt(denoPuts.cpuMicros, 1)} (${
        fmt(denoPuts.perSecond, 0)
      }/s) | ${fmt(revkvPuts.perSecond / denoPuts.perSecond, 1)}× (rate) |`;
    console.error(putRow);
    rows.push(putRow);

    console.log(
      `\n${KEY_COUNT} keys of ${KEY_BYTES} B, values of ${VALUE_BYTES} B, ` +
        `durable file each; ${ROUNDS} interleaved rounds of ${ROUND_MS} ms\n`,
    );
    console.log(
      "| call | in flight | revkv µs/call | Deno KV µs/call | Deno KV / revkv |",
    );
    console.log("| --- | --- | --- | --- | --- |");
    for (const row of rows) console.log(row);
  } finally {
    kv.close();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
