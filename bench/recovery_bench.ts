/**
 * Recovery as a restart sees it: one process writes ENTRIES puts (16-byte
 * keys, 100-byte values) and closes; new processes then time `open` of that
 * data dir. Two stores: one whose whole history is in the WAL (no snapshot:
 * issue 3's "recovery of a 1,000,000-entry WAL"), and one written with the
 * default snapshot count (100,000), which a restart finds as its newest
 * snapshot plus the WAL after it (see `fill`). Prints each run, then the
 * medians.
 *
 * Run: `deno run -A bench/recovery_bench.ts [entries] [--in-thread]`
 * (default 1,000,000 entries; `--in-thread` opens with `replayWorker:
 * "never"`, to see what the replay worker is worth).
 */
import { open } from "../mod.ts";
import { sized } from "./bench_mode.ts";

const IN_THREAD = Deno.args.includes("--in-thread");
const args = Deno.args.filter((a) => a !== "--in-thread");
const ENTRIES = Number(
  (args[0]?.startsWith("--") ? args[1] : args[0]) ?? sized(1_000_000, 10_000),
);
const RUNS = sized(5, 1);
const SHAPES = {
  wal: { durability: "none", snapshotCount: 10_000_000 },
  snapshot: { durability: "none" },
} as const;
type Shape = keyof typeof SHAPES;

async function fill(dir: string, shape: Shape): Promise<void> {
  const value = new Uint8Array(100).fill(0x61);
  const db = await open(dir, SHAPES[shape]);
  // The snapshot store: a snapshot at 95% (written to its end: writes this
  // fast outrun automatic snapshots), then 5% more in the WAL — half of the
  // default snapshot count, the average a restart finds after the newest.
  const snapshotAt = shape === "snapshot"
    ? Math.floor(ENTRIES * 0.95 / 1000) * 1000
    : -1;
  for (let i = 0; i < ENTRIES; i += 1000) {
    if (i === snapshotAt) {
      await db.defrag(); // joins a running snapshot...
      await db.defrag(); // ...then takes one at this revision
    }
    const puts = [];
    for (let j = i; j < Math.min(ENTRIES, i + 1000); j++) {
      puts.push(
        db.put(
          `k${(j * 2654435761 % 2 ** 32).toString(16)}`.padEnd(16, "-"),
          value,
        ),
      );
    }
    await Promise.all(puts);
  }
  await db.close();
}

async function timeOpen(dir: string, shape: Shape): Promise<void> {
  // Without the clean-close marker, as after a crash: the tail is checked too.
  await Deno.remove(`${dir}/wal/CLEAN`).catch(() => {});
  const started = performance.now();
  const db = await open(dir, {
    ...SHAPES[shape],
    replayWorker: IN_THREAD ? "never" : "auto",
  });
  const ms = performance.now() - started;
  const snapshot = db.recovery?.snapshot;
  console.log(
    JSON.stringify({
      shape,
      replayWorker: IN_THREAD ? "never" : "auto",
      ms: Math.round(ms),
      snapshotRevision: snapshot?.revision ?? 0,
      walRecords: db.recovery?.replayedRecords,
      keys: (await db.get("", { prefix: true, countOnly: true })).count,
      rssMB: Math.round(Deno.memoryUsage().rss / 2 ** 20),
      heapMB: Math.round(Deno.memoryUsage().heapUsed / 2 ** 20),
    }),
  );
  await db.close();
}

async function child(args: string[]): Promise<string> {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`${args[0]} failed`);
  return new TextDecoder().decode(stdout);
}

if (args[0] === "--fill") {
  await fill(args[2]!, args[3] as Shape);
} else if (args[0] === "--open") {
  await timeOpen(args[2]!, args[3] as Shape);
} else {
  const dirs: Record<string, string> = {};
  try {
    for (const shape of Object.keys(SHAPES) as Shape[]) {
      dirs[shape] = await Deno.makeTempDir({ prefix: "revkv-recovery-" });
      await child(["--fill", String(ENTRIES), dirs[shape]!, shape]);
    }
    // Let the kernel write the fresh files back first: recovery timed
    // during that writeback was ~25% slower.
    await new Deno.Command("sync").output();
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const times: Record<string, number[]> = { wal: [], snapshot: [] };
    // Interleaved, so that both shapes see the same machine.
    for (let run = 0; run < RUNS; run++) {
      for (const shape of Object.keys(SHAPES) as Shape[]) {
        const line = await child([
          "--open",
          String(ENTRIES),
          dirs[shape]!,
          shape,
          ...(IN_THREAD ? ["--in-thread"] : []),
        ]);
        console.log(line.trim());
        times[shape]!.push(JSON.parse(line).ms);
      }
    }
    for (const [shape, ms] of Object.entries(times)) {
      const sorted = [...ms].sort((a, b) => a - b);
      console.log(
        `${shape}: median ${sorted[sorted.length >> 1]} ms, min ${
          sorted[0]
        } ms, max ${sorted[sorted.length - 1]} ms over ${ms.length} opens`,
      );
    }
  } finally {
    for (const dir of Object.values(dirs)) {
      await Deno.remove(dir, { recursive: true });
    }
  }
}
