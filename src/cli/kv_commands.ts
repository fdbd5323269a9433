/**
 * `get`, `put`, `del`, `compaction` and `version`: the key-value commands,
 * with etcdctl's argument checks (and their order: arguments, then output
 * format, then the request), errors and exit codes.
 *
 * @module
 */

import type {
  Bytes,
  DeleteOptions,
  KeySelector,
  PutOptions,
  RangeOptions,
  SortOrder,
  SortTarget,
} from "../../mod.ts";
import type { Command } from "./command.ts";
import { API_VERSION, ETCDCTL_VERSION, REVKV_VERSION } from "./command.ts";
import type { CommandContext, FlagView } from "./context.ts";
import {
  CliExit,
  EXIT_BAD_ARGS,
  EXIT_BAD_FEATURE,
  EXIT_ERROR,
} from "./errors.ts";
import { boolFlag, type FlagSpec, parseGoInt } from "./flags.ts";
import { goQuote } from "./go_format.ts";

/**
 * Runs a store call; a store error ends the command with exit 1, as
 * etcdctl. With `timeoutMs` (etcdctl's `--command-timeout`, for the
 * commands etcdctl bounds with it) a call still running then fails with
 * `context deadline exceeded`.
 */
export async function request<T>(
  call: () => Promise<T>,
  wrap: (message: string) => string = (m) => m,
  code = EXIT_ERROR,
  timeoutMs?: number,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    if (timeoutMs === undefined) return await call();
    // Embedded reads settle within a few microtask turns: only arm the
    // timer (whose first use loads Deno's timers, ~8 ms of a cold start)
    // for a call still pending after them.
    const pending = call();
    const early = await settledSoon(pending);
    if (early.settled) return await pending;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("context deadline exceeded")),
        timeoutMs,
      );
    });
    return await Promise.race([pending, deadline]);
  } catch (error) {
    if (error instanceof CliExit) throw error;
    throw new CliExit(code, wrap((error as Error).message));
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Microtask turns `settledSoon` waits before calling a call pending. */
const SETTLE_TURNS = 8;

/** Whether `promise` settles within a few microtask turns. */
async function settledSoon(
  promise: Promise<unknown>,
): Promise<{ settled: boolean }> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let i = 0; i < SETTLE_TURNS && !settled; i++) await Promise.resolve();
  return { settled };
}

/** A revision or count from a flag, as the store's number. */
export function toNumber(value: bigint): number {
  return Number(value);
}

const bool = (name: string, usage: string): FlagSpec =>
  boolFlag(name, "false", usage);

// --- get ------------------------------------------------------------------

/** The `get` flags (also used by `txn`'s `get` requests). */
export const GET_FLAGS: FlagSpec[] = [
  {
    name: "consistency",
    kind: "string",
    defValue: "l",
    usage: "Linearizable(l) or Serializable(s)",
  },
  {
    name: "order",
    kind: "string",
    defValue: "",
    usage: "Order of results; ASCEND or DESCEND (ASCEND by default)",
  },
  {
    name: "sort-by",
    kind: "string",
    defValue: "",
    usage: "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION",
  },
  {
    name: "limit",
    kind: "int64",
    defValue: "0",
    usage: "Maximum number of results",
  },
  bool("prefix", "Get keys with matching prefix"),
  bool(
    "from-key",
    "Get keys that are greater than or equal to the given key using byte compare",
  ),
  {
    name: "rev",
    kind: "int64",
    defValue: "0",
    usage: "Specify the kv revision",
  },
  bool("keys-only", "Get only the keys"),
  bool("count-only", "Get only the count"),
  bool(
    "print-value-only",
    'Only write values when using the "simple" output format',
  ),
];

/** A validated `get`: the key and the store's range options. */
export interface GetOp {
  /** The key. */
  key: Bytes;
  /** Range options. */
  options: RangeOptions;
}

const SORT_ORDERS: Record<string, SortOrder> = {
  ASCEND: "ascend",
  DESCEND: "descend",
  "": "none",
};
const SORT_TARGETS: Record<string, SortTarget> = {
  CREATE: "create",
  KEY: "key",
  MODIFY: "mod",
  VALUE: "value",
  VERSION: "version",
  "": "key",
};

/** etcdctl's `getGetOp`: validates `get`'s arguments and flags. */
export function getOp(ctx: FlagView): GetOp {
  const { args } = ctx;
  if (args.length === 0) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "get command needs one argument as key and an optional argument as range_end",
    );
  }
  const { prefix, fromKey } = prefixOrFromKey(ctx);
  const consistency = ctx.string("consistency", "l");
  if (consistency !== "l" && consistency !== "s") {
    throw new CliExit(
      EXIT_BAD_FEATURE,
      `unknown consistency flag ${goQuote(consistency)}`,
    );
  }
  const options: RangeOptions = {};
  const key = selectKeys(ctx, prefix, fromKey, options);
  const limit = ctx.int("limit");
  if (limit !== 0n) options.limit = toNumber(limit);
  const rev = ctx.int("rev");
  if (rev > 0n) options.revision = toNumber(rev);
  const orderText = ctx.string("order");
  let sortOrder = SORT_ORDERS[orderText.toUpperCase()];
  if (sortOrder === undefined) {
    throw new CliExit(EXIT_BAD_FEATURE, `bad sort order ${orderText}`);
  }
  const targetText = ctx.string("sort-by");
  const sortTarget = SORT_TARGETS[targetText.toUpperCase()];
  if (sortTarget === undefined) {
    throw new CliExit(EXIT_BAD_FEATURE, `bad sort target ${targetText}`);
  }
  // clientv3's WithSort: the server returns keys ascending anyway.
  if (sortTarget === "key" && sortOrder === "ascend") sortOrder = "none";
  if (sortOrder !== "none") options.sortOrder = sortOrder;
  if (sortTarget !== "key") options.sortTarget = sortTarget;
  if (ctx.bool("keys-only")) options.keysOnly = true;
  if (ctx.bool("count-only")) options.countOnly = true;
  return { key, options };
}

/** `--prefix` and `--from-key`, which etcdctl refuses together. */
function prefixOrFromKey(
  ctx: FlagView,
): { prefix: boolean; fromKey: boolean } {
  const prefix = ctx.bool("prefix");
  const fromKey = ctx.bool("from-key");
  if (prefix && fromKey) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "`--prefix` and `--from-key` cannot be set at the same time, choose one",
    );
  }
  return { prefix, fromKey };
}

/**
 * The key and range of `get` and `del` (etcdctl: key, optional range_end,
 * `--prefix` or `--from-key`; an empty key with either means every key).
 * Sets the range options; returns the key.
 */
function selectKeys(
  ctx: FlagView,
  prefix: boolean,
  fromKey: boolean,
  options: KeySelector,
): string | Uint8Array {
  const { args } = ctx;
  let key = ctx.bytesOf(args[0]!);
  if (args.length > 1) {
    if (prefix || fromKey) throw tooManyArgs();
    options.rangeEnd = ctx.bytesOf(args[1]!);
  }
  if (prefix) {
    if (key.length === 0) [key, options.fromKey] = ["\0", true];
    else options.prefix = true;
  }
  if (fromKey) {
    if (key.length === 0) key = "\0";
    options.fromKey = true;
  }
  return key;
}

function tooManyArgs(): CliExit {
  return new CliExit(
    EXIT_BAD_ARGS,
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
  );
}

async function runGet(ctx: CommandContext): Promise<void> {
  const { key, options } = getOp(ctx);
  const db = await ctx.store();
  const response = await request(
    () => db.get(key, options),
    undefined,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  const printer = ctx.printer();
  if (ctx.bool("print-value-only")) {
    if (printer.format !== "simple") {
      throw new CliExit(
        EXIT_BAD_ARGS,
        "print-value-only is only for `--write-out=simple`",
      );
    }
    printer.options.valueOnly = true;
  }
  printer.get(response);
}

// --- put ------------------------------------------------------------------

/** The `put` flags. */
export const PUT_FLAGS: FlagSpec[] = [
  {
    name: "lease",
    kind: "string",
    defValue: "0",
    usage: "lease ID (in hexadecimal) to attach to the key",
  },
  bool("prev-kv", "return the previous key-value pair before modification"),
  bool("ignore-value", "updates the key using its current value"),
  bool("ignore-lease", "updates the key using its current lease"),
];

/** A validated `put`. */
export interface PutOp {
  /** The key. */
  key: Bytes;
  /** The value (bytes when read from stdin). */
  value: string | Uint8Array;
  /** Put options. */
  options: PutOptions;
}

const PUT_NEEDS_ARGS =
  "put command needs 1 argument and input from stdin or 2 arguments";

/**
 * etcdctl's `getPutOp`; `stdin` supplies the value when it is not an
 * argument (`txn` passes none: there the value must be an argument).
 */
export async function putOp(
  ctx: FlagView,
  stdin?: () => Promise<Uint8Array>,
): Promise<PutOp> {
  const { args } = ctx;
  if (args.length === 0) throw new CliExit(EXIT_BAD_ARGS, PUT_NEEDS_ARGS);
  const key = ctx.bytesOf(args[0]!);
  const ignoreValue = ctx.bool("ignore-value");
  if (ignoreValue && args.length > 1) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "put command needs only 1 argument when 'ignore-value' is set",
    );
  }
  let value: string | Uint8Array = "";
  if (!ignoreValue) {
    if (args.length > 1) value = ctx.bytesOf(args[1]!);
    else {
      const bytes = stdin ? await stdin() : new Uint8Array(0);
      if (bytes.length === 0) throw new CliExit(EXIT_BAD_ARGS, PUT_NEEDS_ARGS);
      value = bytes;
    }
  }
  let lease: bigint;
  try {
    lease = parseGoInt(ctx.string("lease", "0"), 16);
  } catch (error) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      `bad lease ID (${(error as Error).message}), expecting ID in Hex`,
    );
  }
  const options: PutOptions = {};
  if (lease !== 0n) options.lease = lease;
  if (ctx.bool("prev-kv")) options.prevKv = true;
  if (ignoreValue) options.ignoreValue = true;
  if (ctx.bool("ignore-lease")) options.ignoreLease = true;
  return { key, value, options };
}

async function runPut(ctx: CommandContext): Promise<void> {
  const { key, value, options } = await putOp(ctx, () => ctx.stdin.readAll());
  const db = await ctx.store({ create: true });
  const response = await request(
    () => db.put(key, value, options),
    undefined,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  ctx.printer().put(response);
}

// --- del ------------------------------------------------------------------

/** The `del` flags. */
export const DEL_FLAGS: FlagSpec[] = [
  bool("prefix", "delete keys with matching prefix"),
  bool("prev-kv", "return deleted key-value pairs"),
  bool(
    "from-key",
    "delete keys that are greater than or equal to the given key using byte compare",
  ),
];

/** A validated `del`. */
export interface DelOp {
  /** The key. */
  key: Bytes;
  /** Delete options. */
  options: DeleteOptions;
}

/** etcdctl's `getDelOp`. */
export function delOp(ctx: FlagView): DelOp {
  const { args } = ctx;
  if (args.length === 0 || args.length > 2) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "del command needs one argument as key and an optional argument as range_end",
    );
  }
  const { prefix, fromKey } = prefixOrFromKey(ctx);
  const options: DeleteOptions = {};
  const key = selectKeys(ctx, prefix, fromKey, options);
  if (ctx.bool("prev-kv")) options.prevKv = true;
  return { key, options };
}

async function runDel(ctx: CommandContext): Promise<void> {
  const { key, options } = delOp(ctx);
  const db = await ctx.store();
  const response = await request(
    () => db.delete(key, options),
    undefined,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  ctx.printer().del(response);
}

// --- compaction, version --------------------------------------------------

async function runCompaction(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(EXIT_BAD_ARGS, "compaction command needs 1 argument");
  }
  let rev: bigint;
  try {
    rev = parseGoInt(ctx.args[0]!, 10);
  } catch (error) {
    throw new CliExit(EXIT_ERROR, (error as Error).message);
  }
  const db = await ctx.store();
  const physical = ctx.bool("physical");
  await request(
    () => db.compact(toNumber(rev), { physical }),
    undefined,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  ctx.out.line(`compacted revision ${rev}`);
}

function runVersion(ctx: CommandContext): Promise<void> {
  ctx.out.line(`etcdctl version: ${ETCDCTL_VERSION}`);
  ctx.out.line(`API version: ${API_VERSION}`);
  // revkv's own line comes after etcdctl's two, which scripts parse.
  ctx.out.line(`revkv version: ${REVKV_VERSION}`);
  return Promise.resolve();
}

/** The key-value commands. */
export function kvCommands(): Command[] {
  return [
    {
      use: "get [options] <key> [range_end]",
      short: "Gets the key or a range of keys",
      flags: GET_FLAGS,
      run: runGet,
    },
    {
      use: "put [options] <key> <value> (<value> can also be given from stdin)",
      short: "Puts the given key into the store",
      long: `
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
`,
      flags: PUT_FLAGS,
      run: runPut,
    },
    {
      use: "del [options] <key> [range_end]",
      short: "Removes the specified key or range of keys [key, range_end)",
      flags: DEL_FLAGS,
      run: runDel,
    },
    {
      use: "compaction [options] <revision>",
      short: "Compacts the event history in etcd",
      flags: [
        bool(
          "physical",
          "'true' to wait for compaction to physically remove all old revisions",
        ),
      ],
      run: runCompaction,
    },
    {
      use: "version",
      short: "Prints the version of etcdctl",
      run: runVersion,
    },
  ];
}
