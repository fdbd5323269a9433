/**
 * revkv's etcdctl-compatible command line. `runCli(args, io)` runs one
 * invocation and resolves to its exit code; `cli.ts` calls it with the real
 * stdio, tests call it many times against one in-memory store.
 *
 * @example Two commands against one in-memory store
 * ```ts
 * import { open } from "../../mod.ts";
 * import { runCli } from "./main.ts";
 *
 * const store = await open();
 * const chunks: Uint8Array[] = [];
 * const stdout = { write: (p: Uint8Array) => (chunks.push(p.slice()), p.length) };
 * const stderr = { write: (p: Uint8Array) => p.length };
 * await runCli(["put", "foo", "bar"], { stdout, stderr, store });
 * const code = await runCli(["get", "foo"], { stdout, stderr, store });
 * console.log(code); // 0; stdout got "OK\nfoo\nbar\n"
 * await store.close();
 * ```
 *
 * @module
 */

import {
  allFlags,
  type Command,
  commandPath,
  findCommand,
  helpText,
  link,
} from "./command.ts";
import {
  type CliIO,
  CommandContext,
  permissionHint,
  writeAll,
} from "./context.ts";
import { CliExit, EXIT_ERROR, EXIT_SUCCESS } from "./errors.ts";
import {
  boolFlag as bool,
  durationFlag as duration,
  FlagError,
  type FlagSpec,
  type FlagValue,
  parseFlags,
  stringFlag as str,
} from "./flags.ts";
import { concatBytes, utf8 } from "./go_format.ts";
import { kvCommands } from "./kv_commands.ts";
import { txnCommand } from "./txn_command.ts";
import { leaseCommand } from "./lease_commands.ts";
import { watchCommand } from "./watch_command.ts";
import { otherCommands } from "./other_commands.ts";
import { runtime } from "../storage/runtime.ts";

export type { CliIO, CliWriter } from "./context.ts";

/**
 * etcdctl's global flags, and `--data-dir` for embedded mode. The TLS and
 * auth flags are accepted for compatibility and have no effect in embedded
 * mode; in remote mode they are refused (revkv's client has neither).
 */
export const GLOBAL_FLAGS: FlagSpec[] = [
  {
    name: "endpoints",
    kind: "strings",
    defValue: "[127.0.0.1:2379]",
    usage: "gRPC endpoints",
  },
  str(
    "data-dir",
    "default.revkv",
    "revkv data directory (embedded mode, when --endpoints is not given; :memory: for a throwaway store)",
  ),
  bool("debug", "false", "enable client-side debug logging"),
  {
    name: "write-out",
    short: "w",
    kind: "string",
    defValue: "simple",
    usage: "set the output format (fields, json, protobuf, simple, table)",
  },
  bool("hex", "false", "print byte strings as hex encoded strings"),
  duration("dial-timeout", "2s", "dial timeout for client connections"),
  duration(
    "command-timeout",
    "5s",
    "timeout for short running command (excluding dial timeout)",
  ),
  duration("keepalive-time", "2s", "keepalive time for client connections"),
  duration(
    "keepalive-timeout",
    "6s",
    "keepalive timeout for client connections",
  ),
  bool(
    "insecure-transport",
    "true",
    "disable transport security for client connections",
  ),
  bool(
    "insecure-discovery",
    "true",
    "accept insecure SRV records describing cluster endpoints",
  ),
  bool(
    "insecure-skip-tls-verify",
    "false",
    "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
  ),
  str("cert", "", "identify secure client using this TLS certificate file"),
  str("key", "", "identify secure client using this TLS key file"),
  str(
    "cacert",
    "",
    "verify certificates of TLS-enabled secure servers using this CA bundle",
  ),
  str(
    "user",
    "",
    "username[:password] for authentication (prompt if password is not supplied)",
  ),
  str(
    "password",
    "",
    "password for authentication (if this option is used, --user option shouldn't include password)",
  ),
  {
    name: "discovery-srv",
    short: "d",
    kind: "string",
    defValue: "",
    usage: "domain name to query for SRV records describing cluster endpoints",
  },
  str(
    "discovery-srv-name",
    "",
    "service name to query when using DNS discovery",
  ),
];

/** Builds the command tree (fresh each time: commands hold no state). */
export function commandTree(): Command {
  const root: Command = {
    use: "etcdctl",
    short: "A simple command line client for etcd3.",
    persistentFlags: GLOBAL_FLAGS,
    commands: [
      ...kvCommands(),
      txnCommand(),
      leaseCommand(),
      watchCommand(),
      ...otherCommands(),
    ],
  };
  root.commands!.push({
    use: "help [command]",
    short: "Help about any command",
    long: `Help provides help for any command in the application.
Simply type etcdctl help [path to command] for full details.`,
    run: async (ctx) => {
      const found = findCommand(root, ctx.args);
      if ("error" in found || found.command === root && ctx.args.length > 0) {
        // cobra prints the topic with Go's %#q: [`a` `b`].
        const topic = ctx.args.map((a) => `\`${a}\``).join(" ");
        await writeAll(
          ctx.io.stderr,
          utf8(`Unknown help topic [${topic}]\n`),
        );
        ctx.out.write(helpText(root));
      } else ctx.out.write(helpText(found.command));
    },
  });
  return link(root);
}

/**
 * Runs one etcdctl-style invocation.
 * @param args the arguments after the program name.
 * @param io streams, environment, and optionally the store to use.
 * @returns the exit code (0 success, 1 server error, 2 no store, 3 bad
 *   input, 4 unsupported value, 128 bad arguments — as etcdctl).
 */
export async function runCli(args: string[], io: CliIO): Promise<number> {
  if (args[0] === "serve") {
    // The server has etcd's flags, not etcdctl's; loaded only when asked.
    const { runServe } = await import("./serve_command.ts");
    return await runServe(args.slice(1), io);
  }
  const root = commandTree();
  const found = findCommand(root, args);
  const stderrText = async (text: string) => {
    await writeAll(io.stderr, utf8(text));
  };
  if ("error" in found) {
    await stderrText(
      `Error: ${found.error}\nRun '${
        commandPath(root)
      } --help' for usage.\nError: ${found.error}\n`,
    );
    return EXIT_ERROR;
  }
  const { command } = found;
  let values: Map<string, FlagValue>;
  let positional: string[];
  let argsLenAtDash: number;
  try {
    ({ values, args: positional, argsLenAtDash } = parseFlags(
      found.args,
      allFlags(command),
    ));
    applyEnv(values, command, io.env ?? {});
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    await writeAll(io.stdout, utf8(helpText(command)));
    await stderrText(`Error: ${error.message}\n\nError: ${error.message}\n`);
    return EXIT_ERROR;
  }
  if (values.get("help") === true || !command.run) {
    await writeAll(io.stdout, utf8(helpText(command)));
    return EXIT_SUCCESS;
  }

  const flush = async () => {
    // One write per flush: a prompt and its newline must not be split.
    const chunks = ctx.out.take();
    if (chunks.length > 0) await writeAll(io.stdout, concatBytes(chunks));
  };
  const ctx = new CommandContext(positional, argsLenAtDash, values, io, flush);
  try {
    await command.run(ctx);
    await flush();
    return EXIT_SUCCESS;
  } catch (error) {
    await flush();
    if (error instanceof CliExit) {
      if (error.stderrBefore) await stderrText(error.stderrBefore);
      if (error.message) await stderrText(`Error: ${error.message}\n`);
      return error.code;
    }
    const message = permissionHint(error) ??
      (error as Error).message ?? String(error);
    await stderrText(`Error: ${message}\n`);
    return EXIT_ERROR;
  } finally {
    await ctx.close();
  }
}

/** The environment variable etcdctl reads for a global flag. */
function envName(flag: string): string {
  return "ETCDCTL_" + flag.toUpperCase().replaceAll("-", "_");
}

/**
 * The `ETCDCTL_<FLAG>` variables of the global flags, read one by one from
 * the process environment: only those, so `--allow-env=ETCDCTL_ENDPOINTS,…`
 * is enough, and a variable Deno may not read is skipped without a prompt
 * (the flag keeps its default).
 */
export function etcdctlEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const flag of GLOBAL_FLAGS) {
    const variable = envName(flag.name);
    const value = runtime.env(variable);
    if (value !== undefined) env[variable] = value;
  }
  return env;
}

/**
 * etcdctl's `ETCDCTL_<FLAG>` variables: a global flag not given on the
 * command line takes its value from the environment; a value the flag
 * cannot parse is ignored, as etcdctl ignores it.
 */
function applyEnv(
  values: Map<string, FlagValue>,
  command: Command,
  env: Record<string, string>,
): void {
  const globals = new Set(GLOBAL_FLAGS.map((f) => f.name));
  const specs = allFlags(command).filter((f) => globals.has(f.name));
  for (const spec of specs) {
    if (values.has(spec.name)) continue;
    const value = env[envName(spec.name)];
    if (value === undefined) continue;
    try {
      const parsed = parseFlags([`--${spec.name}=${value}`], [spec]);
      values.set(spec.name, parsed.values.get(spec.name)!);
    } catch (error) {
      // etcdctl ignores a variable its flag cannot parse (the flag keeps
      // its default), as pflag's Set error goes unchecked there.
      if (!(error instanceof FlagError)) throw error;
    }
  }
}
