/**
 * `txn` and `txn -i`: reads compares, success and failure requests from
 * stdin (see `txn_reader.ts` for the grammar), prompting for each block in
 * interactive mode, and commits them as one transaction. Any bad line ends
 * the command (exit 3) before the store sees anything.
 *
 * @module
 */

import type { Compare, RequestOp } from "../txn/txn.ts";
import type { Command } from "./command.ts";
import { findCommand } from "./command.ts";
import { type CommandContext, FlagView } from "./context.ts";
import { CliExit, EXIT_BAD_ARGS, EXIT_INVALID_INPUT } from "./errors.ts";
import { FlagError, parseFlags, pflagUsages } from "./flags.ts";
import { commandName, helpFlag } from "./command.ts";
import {
  DEL_FLAGS,
  delOp,
  GET_FLAGS,
  getOp,
  PUT_FLAGS,
  putOp,
  request,
} from "./kv_commands.ts";
import { argify, parseCompare, TxnSyntaxError } from "./txn_reader.ts";

const decoder = new TextDecoder();

/** Reads one trimmed line; EOF before a newline ends the command as etcdctl's `Error: EOF`. */
async function readLine(ctx: CommandContext): Promise<string> {
  const { line, eof } = await ctx.stdin.readLine();
  if (eof) throw new CliExit(EXIT_INVALID_INPUT, "EOF");
  return decoder.decode(line).trim();
}

async function readCompares(ctx: CommandContext): Promise<Compare[]> {
  const compares: Compare[] = [];
  for (;;) {
    const line = await readLine(ctx);
    if (line.length === 0) return compares;
    try {
      compares.push(parseCompare(line));
    } catch (error) {
      if (error instanceof TxnSyntaxError) {
        throw new CliExit(EXIT_INVALID_INPUT, error.message);
      }
      throw error;
    }
  }
}

/** The little command tree etcdctl parses request lines with. */
const REQUEST_TREE: Command = (() => {
  const root: Command = {
    use: "",
    short: "",
    commands: [
      { use: "get [options] <key> [range_end]", short: "", flags: GET_FLAGS },
      {
        use:
          "put [options] <key> <value> (<value> can also be given from stdin)",
        short: "",
        flags: PUT_FLAGS,
      },
      { use: "del [options] <key> [range_end]", short: "", flags: DEL_FLAGS },
    ],
  };
  for (const c of root.commands!) c.parent = root;
  return root;
})();

async function parseRequest(
  ctx: CommandContext,
  line: string,
): Promise<RequestOp> {
  const invalid = () =>
    new CliExit(EXIT_INVALID_INPUT, `invalid txn request: ${line}`);
  let args: string[];
  try {
    args = argify(line);
  } catch (error) {
    throw new CliExit(EXIT_INVALID_INPUT, (error as Error).message);
  }
  if (args.length < 2) {
    throw new CliExit(
      EXIT_INVALID_INPUT,
      `invalid txn compare request: ${line}`,
    );
  }
  const found = findCommand(REQUEST_TREE, args);
  if ("error" in found || found.command === REQUEST_TREE) throw invalid();
  let view: FlagView;
  const flags = [...found.command.flags ?? [], helpFlag(found.command)];
  try {
    const parsed = parseFlags(found.args, flags);
    view = new FlagView(parsed.args, parsed.values);
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    // cobra prints the request command's usage (its default layout) first.
    const usage = `Usage:\n   ${found.command.use} [flags]\n\nFlags:\n${
      pflagUsages(flags).trimEnd()
    }\n\n`;
    throw new CliExit(
      EXIT_INVALID_INPUT,
      `invalid txn request: ${line}`,
      usage,
    );
  }
  // etcdctl hangs on `-h` in a request line; refuse it instead.
  if (view.bool("help")) throw invalid();
  switch (commandName(found.command)) {
    case "get": {
      const { key, options } = getOp(view);
      return { range: { key, ...options } };
    }
    case "put": {
      // As etcdctl: a put without a value takes the rest of stdin.
      const { key, value, options } = await putOp(
        view,
        () => ctx.stdin.readAll(),
      );
      return { put: { key, value, ...options } };
    }
    default: {
      const { key, options } = delOp(view);
      return { deleteRange: { key, ...options } };
    }
  }
}

async function readOps(ctx: CommandContext): Promise<RequestOp[]> {
  const ops: RequestOp[] = [];
  for (;;) {
    const line = await readLine(ctx);
    if (line.length === 0) return ops;
    ops.push(await parseRequest(ctx, line));
  }
}

async function prompt(ctx: CommandContext, text: string): Promise<void> {
  if (!ctx.bool("interactive")) return;
  ctx.out.line(text);
  await ctx.flush();
}

async function runTxn(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 0) {
    throw new CliExit(EXIT_BAD_ARGS, "txn command does not accept argument");
  }
  const db = await ctx.store({ create: true });
  await prompt(ctx, "compares:");
  const compare = await readCompares(ctx);
  await prompt(ctx, "success requests (get, put, del):");
  const success = await readOps(ctx);
  await prompt(ctx, "failure requests (get, put, del):");
  const failure = await readOps(ctx);
  const response = await request(() => db.txn({ compare, success, failure }));
  ctx.printer().txn(response);
}

/** The `txn` command. */
export function txnCommand(): Command {
  return {
    use: "txn [options]",
    short: "Txn processes all the requests in one transaction",
    flags: [{
      name: "interactive",
      short: "i",
      kind: "bool",
      defValue: "false",
      usage: "Input transaction in interactive mode",
    }],
    run: runTxn,
  };
}
