/**
 * `lease grant|revoke|timetolive|list|keep-alive`, with lease IDs printed
 * and read in hex (`%016x`) as etcdctl does, and etcdctl's exit codes (the
 * read-only lease commands fail with 2, as etcdctl treats their errors as
 * connection errors).
 *
 * @module
 */

import type { Command } from "./command.ts";
import type { CommandContext } from "./context.ts";
import {
  CliExit,
  EXIT_BAD_ARGS,
  EXIT_BAD_CONNECTION,
  EXIT_ERROR,
} from "./errors.ts";
import { parseGoInt } from "./flags.ts";
import { hexId } from "./go_format.ts";
import { request } from "./kv_commands.ts";

/**
 * etcdctl's `leaseFromArgs`: a lease ID in hex.
 * @throws CliExit 128 `bad lease ID arg (…), expecting ID in Hex`.
 */
export function leaseFromArg(arg: string): bigint {
  try {
    return parseGoInt(arg, 16);
  } catch (error) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      `bad lease ID arg (${(error as Error).message}), expecting ID in Hex`,
    );
  }
}

async function runGrant(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(EXIT_BAD_ARGS, "lease grant command needs TTL argument");
  }
  let ttl: bigint;
  try {
    ttl = parseGoInt(ctx.args[0]!, 10);
  } catch (error) {
    throw new CliExit(EXIT_BAD_ARGS, `bad TTL (${(error as Error).message})`);
  }
  const db = await ctx.store({ create: true });
  const response = await request(
    () => db.grant(Number(ttl)),
    (m) => `failed to grant lease (${m})`,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  ctx.printer().grant(response);
}

async function runRevoke(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(EXIT_BAD_ARGS, "lease revoke command needs 1 argument");
  }
  const id = leaseFromArg(ctx.args[0]!);
  const db = await ctx.store();
  const response = await request(
    () => db.revoke(id),
    (m) => `failed to revoke lease (${m})`,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  ctx.printer().revoke(id, response);
}

async function runTimeToLive(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "lease timetolive command needs lease ID as argument",
    );
  }
  const db = await ctx.store();
  const id = leaseFromArg(ctx.args[0]!);
  const keys = ctx.bool("keys");
  const response = await request(
    () => db.timeToLive(id, { keys }),
    undefined,
    EXIT_BAD_CONNECTION,
  );
  ctx.printer().timeToLive(response, keys);
}

async function runList(ctx: CommandContext): Promise<void> {
  const db = await ctx.store();
  const response = await request(
    () => db.leases(),
    undefined,
    EXIT_BAD_CONNECTION,
  );
  ctx.printer().leases(response);
}

async function runKeepAlive(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "lease keep-alive command needs lease ID as argument",
    );
  }
  const id = leaseFromArg(ctx.args[0]!);
  const db = await ctx.store({ share: !ctx.bool("once") });
  const printer = ctx.printer();
  if (ctx.bool("once")) {
    const response = await request(
      () => db.keepAlive(id),
      undefined,
      EXIT_BAD_CONNECTION,
    );
    printer.keepAlive(response);
    return;
  }
  try {
    for await (
      const response of db.keepAliveStream(id, { signal: ctx.io.signal })
    ) {
      printer.keepAlive(response);
      await ctx.flush();
    }
  } catch (error) {
    // The lease is gone (expired or revoked): etcdctl's channel closes.
    if (error instanceof CliExit) throw error;
    if (ctx.io.signal?.aborted) return;
    if (!/lease not found/.test((error as Error).message)) {
      throw new CliExit(EXIT_ERROR, (error as Error).message);
    }
  }
  if (ctx.io.signal?.aborted) return;
  if (printer.format === "simple") {
    ctx.out.line(`lease ${hexId(id)} expired or revoked.`);
  }
}

/** The `lease` command group. */
export function leaseCommand(): Command {
  return {
    use: "lease <subcommand>",
    short: "Lease related commands",
    commands: [
      { use: "grant <ttl>", short: "Creates leases", run: runGrant },
      { use: "revoke <leaseID>", short: "Revokes leases", run: runRevoke },
      {
        use: "timetolive <leaseID> [options]",
        short: "Get lease information",
        flags: [{
          name: "keys",
          kind: "bool",
          defValue: "false",
          usage: "Get keys attached to this lease",
        }],
        run: runTimeToLive,
      },
      { use: "list", short: "List all active leases", run: runList },
      {
        use: "keep-alive [options] <leaseID>",
        short: "Keeps leases alive (renew)",
        flags: [{
          name: "once",
          kind: "bool",
          defValue: "false",
          usage:
            "Resets the keep-alive time to its original value and exits immediately",
        }],
        run: runKeepAlive,
      },
    ],
  };
}
