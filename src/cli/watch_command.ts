/**
 * `watch key [range_end]`, `watch -i`, and the exec form
 * `watch key -- command args` (runs the command once per event with
 * `ETCD_WATCH_REVISION`, `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY` and
 * `ETCD_WATCH_VALUE` set, Go-quoted as etcdctl sets them).
 *
 * The watch runs until the store cancels it (exit 5, `watch is canceled by
 * the server`, as etcdctl) or `io.signal` aborts (Ctrl-C: exit 0 after the
 * output is flushed).
 *
 * @module
 */

import {
  type KeySelector,
  type KvStore,
  type ResponseHeader,
  Store,
  type WatchOptions,
  type WatchResponse,
} from "../../mod.ts";
import type { Command } from "./command.ts";
import { type CommandContext, writeAll } from "./context.ts";
import {
  CliExit,
  EXIT_BAD_ARGS,
  EXIT_ERROR,
  EXIT_INTERRUPTED,
  EXIT_INVALID_INPUT,
} from "./errors.ts";
import { FlagError, type FlagSpec, parseFlags } from "./flags.ts";
import { goQuote, utf8 } from "./go_format.ts";
import type { PrintableWatchResponse } from "./printers.ts";
import { argify } from "./txn_reader.ts";
import { type CommandOutput, runtime } from "../storage/runtime.ts";

const BAD_ARGS_NUM = "bad number of arguments";
const BAD_ARGS_SEPARATOR =
  "bad number of arguments (found separator --, but no commands)";
const BAD_ARGS_ENV =
  "bad number of arguments (found conflicting environment key)";

/** The `watch` flags. */
export const WATCH_FLAGS: FlagSpec[] = [
  {
    name: "interactive",
    short: "i",
    kind: "bool",
    defValue: "false",
    usage: "Interactive mode",
  },
  {
    name: "prefix",
    kind: "bool",
    defValue: "false",
    usage: "Watch on a prefix if prefix is set",
  },
  {
    name: "rev",
    kind: "int64",
    defValue: "0",
    usage: "Revision to start watching",
  },
  {
    name: "prev-kv",
    kind: "bool",
    defValue: "false",
    usage: "get the previous key-value pair before the event happens",
  },
  {
    name: "progress-notify",
    kind: "bool",
    defValue: "false",
    usage: "get periodic watch progress notification from server",
  },
];

/** What one watch asks for. */
export interface WatchRequest {
  /** The key or range start. */
  key: string | Uint8Array;
  /** Range end, if given. */
  rangeEnd?: string | Uint8Array;
  /** Watch the prefix `key`. */
  prefix: boolean;
  /** Start revision (0: from now). */
  startRevision: number;
  /** Report the previous key-value with each event. */
  prevKv: boolean;
  /** Ask for progress notifications. */
  progressNotify: boolean;
}

type WatchResponseLike = WatchResponse & {
  header: Partial<PrintableWatchResponse["header"]> & { revision: number };
  created?: boolean;
};

function openWatch(
  db: KvStore,
  request: WatchRequest,
  signal: AbortSignal,
): AsyncIterable<WatchResponseLike> {
  const options: WatchOptions & KeySelector = {
    prevKv: request.prevKv,
    progressNotify: request.progressNotify,
    signal,
  };
  let key = request.key;
  if (request.rangeEnd !== undefined) options.rangeEnd = request.rangeEnd;
  if (request.prefix) {
    // clientv3's WithPrefix: an empty prefix watches every key.
    if (key === "") [key, options.fromKey] = ["\0", true];
    else options.prefix = true;
  }
  if (request.startRevision < 0) {
    if (!(db instanceof Store)) {
      // A server answers a negative start itself, as etcd does.
      options.startRevision = request.startRevision;
    } else {
      // etcd compares a negative start revision with its compacted
      // revision, which is -1 until the first compaction: below it the
      // watch is canceled as compacted (etcdctl exits 5); -1 on a store
      // never compacted finds no history and watches from now. The
      // embedded store's watch takes no negative start, so its compacted
      // revision (which only a local store tells) decides here.
      const compacted = db.compactRevision > 0 ? db.compactRevision : -1;
      if (request.startRevision < compacted) return compactedWatch(compacted);
    }
  }
  if (request.startRevision > 0) options.startRevision = request.startRevision;
  try {
    return db.watch(key, options);
  } catch (error) {
    throw new CliExit(EXIT_BAD_ARGS, (error as Error).message);
  }
}

/** The one response of a watch canceled at once as compacted. */
async function* compactedWatch(
  compactRevision: number,
): AsyncIterable<WatchResponseLike> {
  yield {
    header: { revision: 0 },
    events: [],
    compactRevision,
    canceled: true,
  };
}

/**
 * The IDs a watch response's header may lack (the embedded store's hub
 * sends the revision alone), asked of the store once, when first needed.
 */
class HeaderIds {
  #ids: Promise<ResponseHeader> | undefined;
  constructor(readonly db: KvStore) {}

  /** The response's header, completed with the store's IDs if needed. */
  async complete(
    header: WatchResponseLike["header"],
  ): Promise<ResponseHeader> {
    if (
      header.clusterId !== undefined && header.memberId !== undefined &&
      header.raftTerm !== undefined
    ) {
      return header as ResponseHeader;
    }
    this.#ids ??= this.db.status().then((s) => s.header);
    return { ...(await this.#ids), ...header };
  }
}

async function toPrintable(
  ids: HeaderIds,
  r: WatchResponseLike,
): Promise<PrintableWatchResponse> {
  return {
    header: await ids.complete(r.header),
    events: (r.events ?? []).map((e) => ({
      type: e.type.toUpperCase() === "DELETE" ? "DELETE" : "PUT",
      kv: e.kv,
      prevKv: e.prevKv,
    })),
    compactRevision: r.compactRevision,
    canceled: r.canceled,
    created: r.created,
  };
}

/** etcdctl's `getWatchChan` checks: a key, and no range_end with --prefix. */
function watchRequest(
  args: string[],
  flags: { prefix: boolean; rev: bigint; prevKv: boolean; progress: boolean },
): WatchRequest | string {
  if (args.length < 1) return BAD_ARGS_NUM;
  const request: WatchRequest = {
    key: args[0]!,
    prefix: flags.prefix,
    startRevision: Number(flags.rev),
    prevKv: flags.prevKv,
    progressNotify: flags.progress,
  };
  if (args.length === 2) {
    if (flags.prefix) {
      return "`range_end` and `--prefix` are mutually exclusive";
    }
    request.rangeEnd = args[1]!;
  }
  return request;
}

/** clientv3's `WatchResponse.Err()` text for a canceled watch. */
function cancelText(r: WatchResponseLike): string {
  if (r.compactRevision) {
    return "etcdserver: mvcc: required revision has been compacted";
  }
  return r.cancelReason ||
    "etcdserver: mvcc: required revision is a future revision";
}

/** Prints a watch's responses until it ends. */
async function printWatch(
  ctx: CommandContext,
  ids: HeaderIds,
  stream: AsyncIterable<WatchResponseLike>,
  execArgs: string[],
  signal: AbortSignal,
): Promise<void> {
  const printer = ctx.printer();
  for await (const response of stream) {
    if (signal.aborted) return;
    if (response.canceled) {
      await ctx.flush();
      await writeAll(
        ctx.io.stderr,
        utf8(`watch was canceled (${cancelText(response)})\n`),
      );
    }
    if (response.progressNotify) {
      ctx.out.line(`progress notify: ${response.header.revision}`);
    }
    const printable = await toPrintable(ids, response);
    printer.watch(printable);
    await ctx.flush();
    if (execArgs.length > 0) {
      for (const event of printable.events) {
        await runExec(ctx, execArgs, printable.header.revision, event);
      }
    }
  }
}

async function runExec(
  ctx: CommandContext,
  execArgs: string[],
  revision: number,
  event: PrintableWatchResponse["events"][number],
): Promise<void> {
  const env: Record<string, string> = {
    ETCD_WATCH_REVISION: String(revision),
    ETCD_WATCH_EVENT_TYPE: goQuote(event.type),
    ETCD_WATCH_KEY: goQuote(event.kv.key),
    ETCD_WATCH_VALUE: goQuote(event.kv.value),
  };
  let output: CommandOutput;
  try {
    output = await runtime.runCommand(execArgs[0]!, execArgs.slice(1), env);
  } catch (error) {
    throw new CliExit(
      EXIT_ERROR,
      "",
      `command ${goSliceQuote(execArgs)} error (${(error as Error).message})\n`,
    );
  }
  await writeAll(ctx.io.stdout, output.stdout);
  await writeAll(ctx.io.stderr, output.stderr);
  if (!output.success) {
    throw new CliExit(
      EXIT_ERROR,
      "",
      `command ${goSliceQuote(execArgs)} error (exit status ${output.code})\n`,
    );
  }
}

function goSliceQuote(items: string[]): string {
  return `[${items.map((s) => goQuote(s)).join(" ")}]`;
}

async function runWatch(ctx: CommandContext): Promise<void> {
  const env = ctx.io.env ?? {};
  const envKey = env["ETCDCTL_WATCH_KEY"] ?? "";
  const envRange = env["ETCDCTL_WATCH_RANGE_END"] ?? "";
  if (envKey === "" && envRange !== "") {
    throw new CliExit(
      EXIT_BAD_ARGS,
      `ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=${
        goQuote(envRange)
      }`,
    );
  }
  if (ctx.bool("interactive")) {
    return await runInteractive(ctx, envKey, envRange);
  }

  const dash = ctx.argsLenAtDash;
  let watchArgs = dash < 0 ? ctx.args : ctx.args.slice(0, dash);
  const execArgs = dash < 0 ? [] : ctx.args.slice(dash);
  if (dash >= 0 && execArgs.length === 0) {
    throw new CliExit(EXIT_BAD_ARGS, BAD_ARGS_SEPARATOR);
  }
  if (envKey !== "") {
    if (watchArgs.length > 0) throw new CliExit(EXIT_BAD_ARGS, BAD_ARGS_ENV);
    watchArgs = envRange !== "" ? [envKey, envRange] : [envKey];
  }
  if (watchArgs.length === 0) throw new CliExit(EXIT_BAD_ARGS, BAD_ARGS_NUM);
  const db = await ctx.store({ share: true });
  const request = watchRequest(watchArgs, {
    prefix: ctx.bool("prefix"),
    rev: ctx.int("rev"),
    prevKv: ctx.bool("prev-kv"),
    progress: ctx.bool("progress-notify"),
  });
  if (typeof request === "string") throw new CliExit(EXIT_BAD_ARGS, request);
  const signal = ctx.io.signal ?? new AbortController().signal;
  await printWatch(
    ctx,
    new HeaderIds(db),
    openWatch(db, request, signal),
    execArgs,
    signal,
  );
  if (signal.aborted) return;
  throw new CliExit(EXIT_INTERRUPTED, "watch is canceled by the server");
}

async function runInteractive(
  ctx: CommandContext,
  envKey: string,
  envRange: string,
): Promise<void> {
  const db = await ctx.store({ share: true });
  const signal = ctx.io.signal ?? new AbortController().signal;
  // The session's watches end with it: when reading a request line fails,
  // etcdctl exits at once, so nothing of the closing store may be printed.
  const session = new AbortController();
  const endSession = () => session.abort();
  signal.addEventListener("abort", endSession, { once: true });
  const running: Promise<void>[] = [];
  const ids = new HeaderIds(db);
  const stderr = (text: string) => writeAll(ctx.io.stderr, utf8(text));
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { line: bytes, eof } = await ctx.stdin.readLine();
      if (eof) {
        if (signal.aborted) return;
        throw new CliExit(
          EXIT_INVALID_INPUT,
          "Error reading watch request line: EOF",
        );
      }
      const line = decoder.decode(bytes).replace(/\n$/, "");
      const args = argify(line);
      if (args.length < 1) {
        await stderr(
          `Invalid command: ${line} (watch and progress supported)\n`,
        );
        continue;
      }
      if (args[0] === "progress") {
        db.requestWatchProgress();
        continue;
      }
      if (args[0] !== "watch") {
        await stderr(`Invalid command ${line} (only support watch)\n`);
        continue;
      }
      if (args.length < 2 && envKey === "") {
        await stderr(
          `Invalid command ${line} (command type or key is not provided)\n`,
        );
        continue;
      }
      let parsed;
      try {
        parsed = parseFlags(args.slice(1), WATCH_FLAGS);
      } catch (error) {
        if (error instanceof FlagError) {
          throw new CliExit(EXIT_BAD_ARGS, error.message);
        }
        throw error;
      }
      const dash = parsed.argsLenAtDash;
      let watchArgs = dash < 0 ? parsed.args : parsed.args.slice(0, dash);
      const execArgs = dash < 0 ? [] : parsed.args.slice(dash);
      if (dash >= 0 && execArgs.length === 0) {
        throw new CliExit(EXIT_BAD_ARGS, BAD_ARGS_SEPARATOR);
      }
      if (envKey !== "") {
        if (dash < 0 && watchArgs.length > 0) {
          throw new CliExit(EXIT_BAD_ARGS, BAD_ARGS_ENV);
        }
        watchArgs = [envKey, ...(envRange ? [envRange] : []), ...watchArgs];
      }
      const request = watchRequest(watchArgs, {
        prefix: parsed.values.get("prefix") === true,
        rev: (parsed.values.get("rev") as bigint | undefined) ?? 0n,
        prevKv: parsed.values.get("prev-kv") === true,
        progress: parsed.values.get("progress-notify") === true,
      });
      if (typeof request === "string") {
        await stderr(`Invalid command ${line} (${request})\n`);
        continue;
      }
      running.push(
        printWatch(
          ctx,
          ids,
          openWatch(db, request, session.signal),
          execArgs,
          session.signal,
        ),
      );
    }
  } finally {
    session.abort();
    signal.removeEventListener("abort", endSession);
    if (signal.aborted) await Promise.allSettled(running);
  }
}

/** The `watch` command. */
export function watchCommand(): Command {
  return {
    use:
      "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
    short: "Watches events stream on keys or prefixes",
    flags: WATCH_FLAGS,
    run: runWatch,
  };
}
