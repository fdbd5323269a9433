/**
 * revkv's command line: etcdctl's commands, flags and output over an
 * embedded store (`--data-dir`, default `./default.revkv`).
 *
 * ```sh
 * deno run -A cli.ts put foo bar
 * deno run -A cli.ts get foo -w json
 * deno task ctl txn -i                              # no `--` after `ctl`
 * deno run -A cli.ts --data-dir=:memory: txn -i   # a throwaway store
 * ```
 *
 * Only a write creates a store (and says so on stderr); other commands on a
 * data dir without one fail with exit 2. Permissions: `--allow-read` and
 * `--allow-write` for the data dir; `--allow-env` only for the `ETCDCTL_*`
 * variables wanted.
 *
 * Remote mode (`--endpoints`) needs revkv's gRPC client, which comes with
 * the server; until then it says so and exits 2.
 *
 * @module
 */

import { runCliProcess } from "./src/cli/process.ts";

export { runCli } from "./src/cli/main.ts";
export type { CliIO, CliWriter } from "./src/cli/main.ts";
export type { RawArgs } from "./src/cli/raw_args.ts";

if (import.meta.main) await runCliProcess();
