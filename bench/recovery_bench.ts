/**
 * Recovery as a restart sees it: one process writes ENTRIES puts (16-byte
 * keys, 100-byte values, no snapshot) and closes; new processes then time
 * `open` of that data dir, which replays the whole WAL. Prints each run.
 *
 * Run: `deno run -A bench/recovery_bench.ts [entries]` (default 1,000,000)
 */
import { open } from "../mod.ts";

const ENTRIES = Number(Deno.args[1] ?? Deno.args[0] ?? 1_000_000);
const RUNS = 3;
const OPTIONS = { durability: "none", snapshotCount: 10_000_000 } as const;

async function fill(dir: string): Promise<void> {
  const value = new Uint8Array(100).fill(0x61);
  const db = await open(dir, OPTIONS);
  for (let i = 0; i < ENTRIES; i += 1000) {
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

async function timeOpen(dir: string): Promise<void> {
  // Without the clean-close marker, as after a crash: the tail is checked too.
  await Deno.remove(`${dir}/wal/CLEAN`).catch(() => {});
  const started = performance.now();
  const db = await open(dir, OPTIONS);
  const ms = performance.now() - started;
  console.log(
    `recovery of ${db.recovery?.replayedRecords} WAL records: ${
      ms.toFixed(0)
    } ms`,
  );
  await db.close();
}

const self = new URL(import.meta.url).pathname;
if (Deno.args[0] === "--fill") await fill(Deno.args[2]!);
else if (Deno.args[0] === "--open") await timeOpen(Deno.args[2]!);
else {
  const dir = await Deno.makeTempDir({ prefix: "revkv-recovery-bench-" });
  try {
    const run = async (mode: string) => {
      const { code } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", self, mode, String(ENTRIES), dir],
        stdout: "inherit",
        stderr: "inherit",
      }).output();
      if (code !== 0) throw new Error(`${mode} failed`);
    };
    await run("--fill");
    for (let i = 0; i < RUNS; i++) await run("--open");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
