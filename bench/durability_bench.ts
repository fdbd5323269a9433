/**
 * Durability benchmarks (issue 3), all in one run on the same disk:
 *
 * ```sh
 * deno run -A --unstable-kv bench/durability_bench.ts [--quick]
 * ```
 *
 * - the disk's own rate of write + fdatasync (the physical limit of one writer),
 *   measured in rounds interleaved with revkv's single writer,
 * - durable put throughput with 1 and 64 concurrent writers, revkv vs Deno KV
 *   (`Deno.openKv` on a file), same key and value sizes, and revkv's fsyncs
 *   per write,
 * - WAL encode throughput (wasm vs TypeScript) and CRC32C (wasm vs JS),
 * - recovery time of a 1,000,000-entry WAL,
 * - the longest write stall while a snapshot is taken at 1,000,000 keys, and
 *   during compaction + defrag.
 *
 * Prints a markdown table for bench/RESULTS.md. Only runs as a script
 * (`deno bench` finds no benchmarks here).
 *
 * @module
 */

import { open } from "../mod.ts";
import { crc32c } from "../src/storage/crc32c.ts";
import { denoFs, type StorageFs } from "../src/storage/fs.ts";
import { TsWalEncoder, type WalRecord } from "../src/storage/wal_codec.ts";
import { WasmCrc32c } from "../src/wasm/wal.ts";
import { WasmWalEncoder } from "../src/storage/wasm_wal_encoder.ts";
import { sized } from "./bench_mode.ts";

const QUICK = Deno.args.includes("--quick");
/** Length of each throughput measurement. */
const RUN_MS = sized(QUICK ? 1000 : 3000, 200);
/** Keys of the large-store measurements. */
const BIG_KEYS = sized(QUICK ? 100_000 : 1_000_000, 10_000);
const KEY_BYTES = 16;
const VALUE_BYTES = 100;
const value = "v".repeat(VALUE_BYTES);
const key = (i: number) => `key/${i.toString().padStart(KEY_BYTES - 4, "0")}`;

const rows: [string, string][] = [];
function report(name: string, result: string): void {
  rows.push([name, result]);
  console.error(`${name}: ${result}`);
}
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits });

/** A StorageFs that counts fdatasyncs. */
function countingFs(): { fs: StorageFs; syncs: () => number } {
  let syncs = 0;
  const fs: StorageFs = {
    ...denoFs,
    async open(path, options) {
      const file = await denoFs.open(path, options);
      return {
        writeAt: (o, b) => file.writeAt(o, b),
        readAt: (o, b) => file.readAt(o, b),
        syncData: () => {
          syncs++;
          return file.syncData();
        },
        truncate: (n) => file.truncate(n),
        size: () => file.size(),
        close: () => file.close(),
      };
    },
  };
  return { fs, syncs: () => syncs };
}

/** Rounds of the interleaved single-writer measurement. */
const ROUNDS = 3;

/**
 * The single writer against the disk's own rate, interleaved: ROUNDS rounds
 * of (raw write + fdatasync loop, then revkv puts), each for RUN_MS / ROUNDS,
 * on a preallocated file and a store opened before the clock starts. The
 * disk's rate drifts by 2x within seconds on this VM, so measuring the two
 * one after the other compared different disks.
 */
async function oneWriterVsDisk(dir: string) {
  const file = await denoFs.open(`${dir}/raw`, { createNew: true });
  await file.writeAt(0, new Uint8Array(64 * 1024 * 1024)); // preallocated, like a segment
  await file.syncData();
  const { fs, syncs } = countingFs();
  const db = await open(`${dir}/revkv-1`, { fs });
  const frame = new Uint8Array(192).fill(7);
  let rawWrites = 0;
  let rawMs = 0;
  let puts = 0;
  let putMs = 0;
  const before = syncs();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let start = performance.now();
      while (performance.now() - start < RUN_MS / ROUNDS) {
        await file.writeAt(rawWrites * 192, frame);
        await file.syncData();
        rawWrites++;
      }
      rawMs += performance.now() - start;
      start = performance.now();
      while (performance.now() - start < RUN_MS / ROUNDS) {
        await db.put(key(puts), value);
        puts++;
      }
      putMs += performance.now() - start;
    }
  } finally {
    file.close();
    await db.close();
  }
  return {
    raw: rawWrites / (rawMs / 1000),
    rate: puts / (putMs / 1000),
    fsyncsPerWrite: (syncs() - before) / puts,
  };
}

async function timedWriters(
  writers: number,
  put: (i: number) => Promise<unknown>,
): Promise<{ rate: number; writes: number }> {
  let next = 0;
  let stop = false;
  const start = performance.now();
  setTimeout(() => (stop = true), RUN_MS);
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (!stop) await put(next++);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return { rate: next / seconds, writes: next };
}

async function revkvPuts(dir: string, writers: number) {
  const { fs, syncs } = countingFs();
  const db = await open(`${dir}/revkv-${writers}`, { fs });
  const before = syncs();
  const result = await timedWriters(writers, (i) => db.put(key(i), value));
  const used = syncs() - before;
  await db.close();
  return { ...result, fsyncsPerWrite: used / result.writes };
}

interface Kv {
  set(key: string[], value: string): Promise<unknown>;
  close(): void;
}

async function denoKvPuts(dir: string, writers: number) {
  const openKv = (Deno as unknown as { openKv?: (p: string) => Promise<Kv> })
    .openKv;
  if (!openKv) return undefined;
  const kv = await openKv(`${dir}/denokv-${writers}.sqlite`);
  const result = await timedWriters(writers, (i) => kv.set([key(i)], value));
  kv.close();
  return result;
}

function walRecords(count: number): WalRecord[] {
  const enc = new TextEncoder();
  const v = enc.encode(value);
  return Array.from({ length: count }, (_, i) => ({
    kind: "write" as const,
    revision: 1000 + i,
    changes: [{
      key: enc.encode(key(i)),
      entry: {
        main: 1000 + i,
        sub: 0,
        createRevision: 1000 + i,
        version: 1,
        value: v,
        lease: 0n,
      },
    }],
  }));
}

function encodeRate(encoder: { encode: TsWalEncoder["encode"] }) {
  const batch = walRecords(64);
  let bytes = 0;
  let records = 0;
  let crc = 0;
  for (let i = 0; i < 2000; i++) crc = encoder.encode(batch, crc).crc; // warm up
  const start = performance.now();
  while (performance.now() - start < RUN_MS / 2) {
    for (let i = 0; i < 100; i++) {
      const out = encoder.encode(batch, crc);
      crc = out.crc;
      bytes += out.bytes.length;
      records += batch.length;
    }
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    recordsPerSecond: records / seconds,
    mbPerSecond: bytes / seconds / 1e6,
  };
}

function crcRates() {
  const data = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const wasm = new WasmCrc32c();
  const times = 4000;
  const rate = (fn: () => void) => {
    fn(); // warm up (tier-up of both JS and wasm)
    fn();
    const start = performance.now();
    fn();
    return (times * data.length) / ((performance.now() - start) / 1000) / 1e6;
  };
  const js = rate(() => {
    for (let i = 0; i < times; i++) crc32c(data);
  });
  const wasmRate = rate(() => wasm.crc32cInPlace(data, times));
  return { js, wasm: wasmRate };
}

/** Puts BIG_KEYS keys (not durable, to build the state fast). */
async function fill(db: Awaited<ReturnType<typeof open>>, count: number) {
  const chunk = 1000;
  for (let i = 0; i < count; i += chunk) {
    const puts: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(count, i + chunk); j++) {
      puts.push(db.put(key(j), value));
    }
    await Promise.all(puts);
  }
}

/** Runs a writer during `work`; returns the longest put latency, in ms. */
async function longestStall(
  db: Awaited<ReturnType<typeof open>>,
  work: () => Promise<unknown>,
): Promise<{ maxMs: number; puts: number; workMs: number }> {
  let done = false;
  let maxMs = 0;
  let puts = 0;
  const writer = (async () => {
    while (!done) {
      const t = performance.now();
      await db.put(`stall/${puts % 1000}`, value);
      maxMs = Math.max(maxMs, performance.now() - t);
      puts++;
    }
  })();
  const start = performance.now();
  await work();
  const workMs = performance.now() - start;
  done = true;
  await writer;
  return { maxMs, puts, workMs };
}

async function main() {
  const dir = await Deno.makeTempDir({ prefix: "revkv_bench_" });
  // An interrupted run removes its temp dir too (it holds ~1 GB of WAL).
  const onInterrupt = () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } finally {
      Deno.exit(130);
    }
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const rates = new Map<number, number>();
    for (const writers of [1, 64]) {
      if (writers === 1) {
        const one = await oneWriterVsDisk(dir);
        rates.set(1, one.rate);
        report(
          "disk: write 192 B + fdatasync (preallocated file), interleaved",
          `${fmt(one.raw)} /s`,
        );
        report(
          "revkv durable puts, 1 writer, interleaved",
          `${fmt(one.rate)} /s, ${fmt(one.fsyncsPerWrite, 3)} fsyncs/write ` +
            `(${fmt((100 * one.rate) / one.raw, 1)}% of the disk's rate)`,
        );
      } else {
        const revkv = await revkvPuts(dir, writers);
        report(
          `revkv durable puts, ${writers} writers`,
          `${fmt(revkv.rate)} /s, ${fmt(revkv.fsyncsPerWrite, 3)} fsyncs/write`,
        );
        rates.set(writers, revkv.rate);
      }
      const kv = await denoKvPuts(dir, writers);
      if (kv) {
        report(`Deno KV sets, ${writers} writer(s)`, `${fmt(kv.rate)} /s`);
        report(
          `revkv / Deno KV, ${writers} writer(s)`,
          `${fmt(rates.get(writers)! / kv.rate, 1)}×`,
        );
      } else {report(
          `Deno KV, ${writers} writer(s)`,
          "skipped (run with --unstable-kv)",
        );}
    }
    const ts = encodeRate(new TsWalEncoder());
    const wasm = encodeRate(new WasmWalEncoder());
    report(
      "WAL encode, batches of 64 puts (TypeScript)",
      `${fmt(ts.recordsPerSecond)} records/s, ${fmt(ts.mbPerSecond)} MB/s`,
    );
    report(
      "WAL encode, batches of 64 puts (wasm framing + CRC)",
      `${fmt(wasm.recordsPerSecond)} records/s, ${fmt(wasm.mbPerSecond)} MB/s`,
    );
    const crc = crcRates();
    report(
      "CRC32C slice-by-8, 64 KiB buffers",
      `JS ${fmt(crc.js)} MB/s, wasm ${fmt(crc.wasm)} MB/s`,
    );

    // Recovery of a BIG_KEYS-entry WAL (no snapshot).
    const big = `${dir}/big`;
    let db = await open(big, { durability: "none", snapshotCount: 10_000_000 });
    await fill(db, BIG_KEYS);
    await db.close();
    let start = performance.now();
    db = await open(big, { durability: "none", snapshotCount: 10_000_000 });
    const recoveryMs = performance.now() - start;
    report(
      `recovery of a ${fmt(BIG_KEYS)}-entry WAL`,
      `${fmt(recoveryMs)} ms (${
        fmt(db.recovery?.replayedRecords ?? 0)
      } records)`,
    );
    const snap = await longestStall(db, () => db.defrag());
    report(
      `longest put stall while a snapshot of ${fmt(BIG_KEYS)} keys is written`,
      `${fmt(snap.maxMs, 1)} ms (snapshot took ${fmt(snap.workMs)} ms, ${
        fmt(snap.puts)
      } puts meanwhile)`,
    );
    await db.close();
    start = performance.now();
    db = await open(big, { durability: "none", snapshotCount: 10_000_000 });
    report(
      `recovery from that snapshot (+ WAL tail)`,
      `${fmt(performance.now() - start)} ms`,
    );
    // Overwrite half the keys, compact, defrag: the pause a writer sees.
    await fill(db, BIG_KEYS / 2);
    const defrag = await longestStall(db, async () => {
      await db.compact(db.revision, { physical: true });
      await db.defrag();
    });
    report(
      `longest put stall during compaction + defrag at ${fmt(BIG_KEYS)} keys`,
      `${fmt(defrag.maxMs, 1)} ms (took ${fmt(defrag.workMs)} ms)`,
    );
    await db.close();
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await Deno.remove(dir, { recursive: true });
  }
  console.log("| measurement | result |\n|---|---|");
  for (const [name, result] of rows) console.log(`| ${name} | ${result} |`);
}

if (import.meta.main) await main();
