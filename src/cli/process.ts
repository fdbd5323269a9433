/**
 * The CLI as a process: its arguments, streams, environment and Ctrl-C from
 * the runtime (`src/storage/runtime.ts`, Deno or Node), and its exit code.
 * `cli.ts` runs it on Deno; the Node bundle's `revkv-cli.mjs` is this module.
 *
 * @module
 */

import { etcdctlEnv, runCli } from "./main.ts";
import { readRawArgs } from "./raw_args.ts";
import { runtime } from "../storage/runtime.ts";

/** Runs the command line of this process and exits with its code. */
export async function runCliProcess(): Promise<never> {
  const controller = new AbortController();
  // Ctrl-C ends watch and keep-alive cleanly: they flush and exit 0.
  const removeSignal = runtime.onSignal("SIGINT", () => controller.abort());
  const args = runtime.args();
  let code: number;
  try {
    code = await runCli(args, {
      stdout: runtime.stdout,
      stderr: runtime.stderr,
      stdin: () => runtime.stdin(),
      env: etcdctlEnv(),
      rawArgs: readRawArgs(args),
      signal: controller.signal,
    });
  } finally {
    removeSignal();
  }
  return runtime.exit(code);
}
