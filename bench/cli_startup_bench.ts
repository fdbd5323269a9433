/**
 * Start-up time of one CLI command, cold (a new process each time),
 * embedded, on a small store: `deno run -A cli.ts --data-dir <dir> get foo`,
 * beside `version` (no store) and a bare `deno eval` (Deno's own start-up)
 * measured in the same run. Prints medians over RUNS processes.
 *
 * Run: `deno run -A bench/cli_startup_bench.ts`
 */

import { sized } from "./bench_mode.ts";

const RUNS = sized(15, 1);
/** Keys in the small store the commands run on. */
const STORE_KEYS = sized(100, 3);
const cli = new URL("../cli.ts", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "revkv-cli-bench-" });

async function timeCommand(args: string[]): Promise<number> {
  const started = performance.now();
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

try {
  // A small store: 100 keys.
  for (let i = 0; i < STORE_KEYS; i++) {
    await timeCommand([
      "run",
      "-A",
      cli,
      "--data-dir",
      dir,
      "put",
      `k${i}`,
      "v",
    ]);
  }
  await timeCommand(["run", "-A", cli, "--data-dir", dir, "put", "foo", "bar"]);
  const cases: [string, string[]][] = [
    ["deno eval (Deno's own start-up)", ["eval", "0"]],
    ["cli.ts version (no store)", ["run", "-A", cli, "version"]],
    ["cli.ts get foo (embedded, 101 keys)", [
      "run",
      "-A",
      cli,
      "--data-dir",
      dir,
      "get",
      "foo",
    ]],
    ["cli.ts put foo (embedded, durable)", [
      "run",
      "-A",
      cli,
      "--data-dir",
      dir,
      "put",
      "foo",
      "baz",
    ]],
  ];
  const results: Record<string, number[]> = {};
  for (let run = 0; run < RUNS; run++) {
    for (const [name, args] of cases) {
      (results[name] ??= []).push(await timeCommand(args));
    }
  }
  console.log(`| command | median of ${RUNS} cold runs |`);
  console.log("| --- | ---: |");
  for (const [name] of cases) {
    console.log(`| ${name} | ${median(results[name]!).toFixed(0)} ms |`);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
