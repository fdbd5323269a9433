/**
 * The maintenance commands: `snapshot save|status|restore`, `defrag`,
 * `endpoint status|health|hashkv`, `alarm list|disarm`, `check perf` and
 * `make-mirror` (in mirror_command.ts).
 *
 * The endpoint commands ask each endpoint in turn (`--endpoints`, or every
 * member's client URL with `--cluster`), each on its own connection, and
 * report a failing one on stderr and go on, as etcdctl does. In embedded
 * mode the one "endpoint" is the data dir; an embedded store reports the
 * nearest facts for what etcd takes from raft (the raft index is the
 * committed revision, the member is always the leader).
 *
 * @module
 */

import {
  type HashKvResponse,
  type KvStore,
  restoreSnapshot,
  type SnapshotStatus,
  snapshotStatus,
  type StatusResponse,
} from "../../mod.ts";
import type { Command } from "./command.ts";
import { type CommandContext, writeAll } from "./context.ts";
import {
  CliExit,
  EXIT_BAD_ARGS,
  EXIT_BAD_FEATURE,
  EXIT_ERROR,
  EXIT_INTERRUPTED,
} from "./errors.ts";
import { boolFlag as bool, stringFlag as str } from "./flags.ts";
import { goQuote, hexUint, jsonString, utf8 } from "./go_format.ts";
import { jsonHeader } from "./printers.ts";
import { runCheckPerf } from "./check_perf.ts";
import { request } from "./kv_commands.ts";
import { makeMirrorCommand } from "./mirror_command.ts";
import { goDuration, humanizeBytes, renderTable } from "./table.ts";
import { runtime } from "../storage/runtime.ts";

function noArgs(ctx: CommandContext, message: string): void {
  if (ctx.args.length !== 0) throw new CliExit(EXIT_BAD_ARGS, message);
}

function unsupported(format: string): CliExit {
  return new CliExit(
    EXIT_BAD_FEATURE,
    `${format} not supported as output format`,
  );
}

/** Go's message for a missing file (`stat x: no such file or directory`). */
function fileError(file: string, error: unknown): string {
  if (runtime.isNotFound(error)) {
    return `stat ${file}: no such file or directory`;
  }
  return (error as Error).message;
}

// --- alarm ----------------------------------------------------------------

const ALARM_TYPES: Record<string, number> = { NONE: 0, NOSPACE: 1, CORRUPT: 2 };

function printAlarms(
  ctx: CommandContext,
  memberId: bigint,
  alarms: string[],
): void {
  const printer = ctx.printer();
  switch (printer.format) {
    case "simple":
      // The protobuf text form etcdctl prints with %+v.
      for (const a of alarms) ctx.out.line(`memberID:${memberId} alarm:${a} `);
      return;
    case "json": {
      // etcd 3.4 answers alarm requests without a header.
      const list = alarms.map((a) =>
        `{"memberID":${memberId},"alarm":${ALARM_TYPES[a] ?? 0}}`
      );
      ctx.out.line(list.length ? `{"alarms":[${list.join(",")}]}` : "{}");
      return;
    }
    case "fields":
      // etcdctl 3.4 crashes here (it prints the missing header); revkv
      // prints the alarms alone.
      for (const a of alarms) {
        ctx.out.line(`"MemberID" : ${memberId}`);
        ctx.out.line(`"AlarmType" : ${a}`);
        ctx.out.line();
      }
      return;
    default:
      throw unsupported(printer.format);
  }
}

/**
 * The alarms and the member they are reported for: the `KvStore` API
 * lists alarm names only, so they are printed for the member answering
 * (asked only when there is an alarm to print).
 */
async function alarmsOf(
  ctx: CommandContext,
  db: KvStore,
): Promise<{ alarms: string[]; memberId: bigint }> {
  const timeoutMs = ctx.commandTimeoutMs();
  const alarms = await request(
    () => db.alarmList(),
    undefined,
    EXIT_ERROR,
    timeoutMs,
  );
  if (alarms.length === 0) return { alarms, memberId: 0n };
  const { header } = await request(
    () => db.status(),
    undefined,
    EXIT_ERROR,
    timeoutMs,
  );
  return { alarms, memberId: BigInt.asUintN(64, header.memberId) };
}

async function runAlarmList(ctx: CommandContext): Promise<void> {
  noArgs(ctx, "alarm list command accepts no arguments");
  const db = await ctx.store();
  const { alarms, memberId } = await alarmsOf(ctx, db);
  printAlarms(ctx, memberId, alarms);
}

async function runAlarmDisarm(ctx: CommandContext): Promise<void> {
  noArgs(ctx, "alarm disarm command accepts no arguments");
  const db = await ctx.store();
  // etcdctl prints the alarms the disarm deactivated.
  const { alarms, memberId } = await alarmsOf(ctx, db);
  await request(
    () => db.alarmDisarm(),
    undefined,
    EXIT_ERROR,
    ctx.commandTimeoutMs(),
  );
  printAlarms(ctx, memberId, alarms);
}

// --- defrag ---------------------------------------------------------------

async function runDefrag(ctx: CommandContext): Promise<void> {
  // `defrag --data-dir` (etcdctl's offline form) and the global --data-dir
  // are the same flag here: both name the embedded store to defragment.
  let failures = 0;
  for (const { endpoint, store } of await ctx.endpointStores()) {
    try {
      await request(
        () => store.defrag(),
        undefined,
        EXIT_ERROR,
        ctx.commandTimeoutMs(),
      );
      ctx.out.line(`Finished defragmenting etcd member[${endpoint}]`);
    } catch (error) {
      failures++;
      await ctx.flush();
      await writeAll(
        ctx.io.stderr,
        utf8(
          `Failed to defragment etcd member[${endpoint}] (${
            (error as Error).message
          })\n`,
        ),
      );
    }
  }
  if (failures !== 0) throw new CliExit(EXIT_ERROR, "");
}

// --- endpoint -------------------------------------------------------------

/** One endpoint's health, as etcdctl's `epHealth`. */
interface EndpointHealth {
  endpoint: string;
  health: boolean;
  took: string;
  error: string;
}

/**
 * etcdctl's health check of one endpoint: a read of the key `health`
 * (timed, the connection included, as etcdctl times its first request).
 */
async function checkHealth(
  ctx: CommandContext,
  endpoint: string,
  store: KvStore,
): Promise<EndpointHealth> {
  const start = performance.now();
  let error = "";
  try {
    await request(
      () => store.get("health"),
      undefined,
      EXIT_ERROR,
      ctx.commandTimeoutMs(),
    );
  } catch (e) {
    error = (e as Error).message;
  }
  const took = goDuration(performance.now() - start);
  return { endpoint, health: error === "", took, error };
}

async function runEndpointHealth(ctx: CommandContext): Promise<void> {
  const printer = ctx.printer();
  let checks: Promise<EndpointHealth>[];
  try {
    // In embedded mode, the open is not timed (etcdctl's dial is not
    // either when it succeeds at once).
    checks = (await ctx.endpointStores()).map(({ endpoint, store }) =>
      checkHealth(ctx, endpoint, store)
    );
  } catch (e) {
    if (!(e instanceof CliExit) || ctx.remote) throw e;
    // A data dir that cannot be opened is an unhealthy endpoint.
    checks = [Promise.resolve({
      endpoint: ctx.endpointName(),
      health: false,
      took: goDuration(0),
      error: e.message,
    })];
  }
  // Listed as they complete, as etcdctl collects them.
  const list: EndpointHealth[] = [];
  await Promise.all(checks.map((c) => c.then((h) => list.push(h))));
  switch (printer.format) {
    case "simple":
      await ctx.flush();
      for (const h of list) {
        await writeAll(
          ctx.io.stderr,
          utf8(
            h.health
              ? `${h.endpoint} is healthy: successfully committed proposal: took = ${h.took}\n`
              : `${h.endpoint} is unhealthy: failed to commit proposal: ${h.error}\n`,
          ),
        );
      }
      break;
    case "json": {
      const items = list.map((h) => {
        const fields = [
          `"endpoint":${jsonString(h.endpoint)}`,
          `"health":${h.health}`,
          `"took":${jsonString(h.took)}`,
        ];
        if (h.error) fields.push(`"error":${jsonString(h.error)}`);
        return `{${fields.join(",")}}`;
      });
      ctx.out.line(`[${items.join(",")}]`);
      break;
    }
    case "fields":
      for (const h of list) {
        ctx.out.line(`"Endpoint" : ${goQuote(h.endpoint)}`);
        ctx.out.line(`"Health" : ${h.health}`);
        ctx.out.line(`"Took" : ${h.took}`);
        ctx.out.line(`"Error" : ${h.error}`);
        ctx.out.line();
      }
      break;
    case "table":
      ctx.out.write(renderTable(
        ["endpoint", "health", "took", "error"],
        list.map((h) => [h.endpoint, String(h.health), h.took, h.error]),
      ));
      break;
    default:
      throw unsupported(printer.format);
  }
  if (list.some((h) => !h.health)) {
    throw new CliExit(EXIT_ERROR, "unhealthy cluster");
  }
}

/** Writes one endpoint's failure line on stderr (etcdctl goes on with the next). */
async function reportFailure(ctx: CommandContext, line: string): Promise<void> {
  await ctx.flush();
  await writeAll(ctx.io.stderr, utf8(line));
}

async function runEndpointStatus(ctx: CommandContext): Promise<void> {
  const stores = await ctx.endpointStores();
  const printer = ctx.printer();
  const list: { endpoint: string; status: StatusResponse }[] = [];
  let failed = false;
  for (const { endpoint, store } of stores) {
    try {
      const status = await request(
        () => store.status(),
        undefined,
        EXIT_ERROR,
        ctx.commandTimeoutMs(),
      );
      list.push({ endpoint, status });
    } catch (error) {
      failed = true;
      await reportFailure(
        ctx,
        `Failed to get the status of endpoint ${endpoint} (${
          (error as Error).message
        })\n`,
      );
    }
  }
  printStatus(ctx, printer.format, list);
  if (failed) throw new CliExit(EXIT_ERROR, "");
}

function printStatus(
  ctx: CommandContext,
  format: string,
  list: { endpoint: string; status: StatusResponse }[],
): void {
  const rows = list.map(({ endpoint, status }) => {
    const memberId = BigInt.asUintN(64, status.header.memberId);
    return [
      endpoint,
      hexUint(memberId),
      status.version,
      humanizeBytes(status.dbSizeBytes),
      String(BigInt.asUintN(64, status.leader) === memberId),
      "false",
      String(status.raftTerm),
      String(status.raftIndex),
      // etcd 3.4's applied index; the KvStore API reports the raft index.
      String(status.raftIndex),
      status.errors.join(", "),
    ];
  });
  switch (format) {
    case "simple":
      for (const row of rows) ctx.out.line(row.join(", "));
      return;
    case "json": {
      const items = list.map(({ endpoint, status }) => {
        const fields = [
          `"header":${jsonHeader(status.header)}`,
          `"version":${jsonString(status.version)}`,
          `"dbSize":${status.dbSizeBytes}`,
          `"leader":${BigInt.asUintN(64, status.leader)}`,
          `"raftIndex":${status.raftIndex}`,
          `"raftTerm":${status.raftTerm}`,
          `"raftAppliedIndex":${status.raftIndex}`,
        ];
        if (status.errors.length) {
          fields.push(
            `"errors":[${status.errors.map((e) => jsonString(e)).join(",")}]`,
          );
        }
        fields.push(`"dbSizeInUse":${status.dbSizeInUseBytes}`);
        return `{"Endpoint":${jsonString(endpoint)},"Status":{${
          fields.join(",")
        }}}`;
      });
      ctx.out.line(`[${items.join(",")}]`);
      return;
    }
    case "fields":
      for (const { endpoint, status } of list) {
        const header = status.header;
        ctx.out.line(`"ClusterID" : ${BigInt.asUintN(64, header.clusterId)}`);
        ctx.out.line(`"MemberID" : ${BigInt.asUintN(64, header.memberId)}`);
        ctx.out.line(`"Revision" : ${header.revision}`);
        ctx.out.line(`"RaftTerm" : ${header.raftTerm}`);
        ctx.out.line(`"Version" : ${goQuote(status.version)}`);
        ctx.out.line(`"DBSize" : ${status.dbSizeBytes}`);
        ctx.out.line(`"Leader" : ${BigInt.asUintN(64, status.leader)}`);
        ctx.out.line(`"IsLearner" : false`);
        ctx.out.line(`"RaftIndex" : ${status.raftIndex}`);
        ctx.out.line(`"RaftTerm" : ${status.raftTerm}`);
        ctx.out.line(`"RaftAppliedIndex" : ${status.raftIndex}`);
        ctx.out.line(`"Errors" : [${status.errors.join(" ")}]`);
        ctx.out.line(`"Endpoint" : ${goQuote(endpoint)}`);
        ctx.out.line();
      }
      return;
    case "table":
      ctx.out.write(renderTable(
        [
          "endpoint",
          "ID",
          "version",
          "db size",
          "is leader",
          "is learner",
          "raft term",
          "raft index",
          "raft applied index",
          "errors",
        ],
        rows,
      ));
      return;
    default:
      throw unsupported(format);
  }
}

async function runEndpointHashKv(ctx: CommandContext): Promise<void> {
  const stores = await ctx.endpointStores();
  const printer = ctx.printer();
  const rev = Number(ctx.int("rev"));
  const list: { endpoint: string; hash: HashKvResponse }[] = [];
  let failure: string | undefined;
  for (const { endpoint, store } of stores) {
    try {
      const hash = await request(
        () => store.hashKv(rev > 0 ? rev : 0),
        undefined,
        EXIT_ERROR,
        ctx.commandTimeoutMs(),
      );
      list.push({ endpoint, hash });
    } catch (error) {
      failure = (error as Error).message;
      await reportFailure(
        ctx,
        `Failed to get the hash of endpoint ${endpoint} (${failure})\n`,
      );
    }
  }
  printHashKv(ctx, printer.format, list);
  if (failure !== undefined) throw new CliExit(EXIT_ERROR, failure);
}

function printHashKv(
  ctx: CommandContext,
  format: string,
  list: { endpoint: string; hash: HashKvResponse }[],
): void {
  switch (format) {
    case "simple":
      for (const { endpoint, hash } of list) {
        ctx.out.line(`${endpoint}, ${hash.hash >>> 0}`);
      }
      return;
    case "json": {
      const items = list.map(({ endpoint, hash }) => {
        const fields = [
          `"header":${jsonHeader(hash.header)}`,
          `"hash":${hash.hash >>> 0}`,
        ];
        if (hash.compactRevision !== 0) {
          fields.push(`"compact_revision":${hash.compactRevision}`);
        }
        return `{"Endpoint":${jsonString(endpoint)},"HashKV":{${
          fields.join(",")
        }}}`;
      });
      ctx.out.line(`[${items.join(",")}]`);
      return;
    }
    case "fields":
      for (const { endpoint, hash } of list) {
        const header = hash.header;
        ctx.out.line(`"ClusterID" : ${BigInt.asUintN(64, header.clusterId)}`);
        ctx.out.line(`"MemberID" : ${BigInt.asUintN(64, header.memberId)}`);
        ctx.out.line(`"Revision" : ${header.revision}`);
        ctx.out.line(`"RaftTerm" : ${header.raftTerm}`);
        ctx.out.line(`"Endpoint" : ${goQuote(endpoint)}`);
        ctx.out.line(`"Hash" : ${hash.hash >>> 0}`);
        ctx.out.line();
      }
      return;
    case "table":
      ctx.out.write(
        renderTable(
          ["endpoint", "hash"],
          list.map(({ endpoint, hash }) => [endpoint, String(hash.hash >>> 0)]),
        ),
      );
      return;
    default:
      throw unsupported(format);
  }
}

// --- snapshot -------------------------------------------------------------

async function runSnapshotSave(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(EXIT_BAD_ARGS, "snapshot save expects one argument");
  }
  const file = ctx.args[0]!;
  const db = await ctx.store();
  try {
    await db.saveSnapshot(file);
  } catch (error) {
    throw new CliExit(EXIT_INTERRUPTED, fileError(file, error));
  }
  ctx.out.line(`Snapshot saved at ${file}`);
}

function printDbStatus(ctx: CommandContext, s: SnapshotStatus): void {
  const printer = ctx.printer();
  const hash = s.hash >>> 0;
  switch (printer.format) {
    case "simple":
      ctx.out.line(
        `${hash.toString(16)}, ${s.revision}, ${s.totalKeys}, ${
          humanizeBytes(s.sizeBytes)
        }`,
      );
      return;
    case "json":
      ctx.out.line(
        `{"hash":${hash},"revision":${s.revision},"totalKey":${s.totalKeys},"totalSize":${s.sizeBytes}}`,
      );
      return;
    case "fields":
      ctx.out.line(`"Hash" : ${hash}`);
      ctx.out.line(`"Revision" : ${s.revision}`);
      ctx.out.line(`"Keys" : ${s.totalKeys}`);
      ctx.out.line(`"Size" : ${s.sizeBytes}`);
      return;
    case "table":
      ctx.out.write(renderTable(
        ["hash", "revision", "total keys", "total size"],
        [[
          hash.toString(16),
          String(s.revision),
          String(s.totalKeys),
          humanizeBytes(s.sizeBytes),
        ]],
      ));
      return;
    default:
      throw unsupported(printer.format);
  }
}

async function runSnapshotStatus(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "snapshot status requires exactly one argument",
    );
  }
  ctx.printer();
  const file = ctx.args[0]!;
  let status: SnapshotStatus;
  try {
    status = await snapshotStatus(file);
  } catch (error) {
    throw new CliExit(EXIT_ERROR, fileError(file, error));
  }
  printDbStatus(ctx, status);
}

async function runSnapshotRestore(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "snapshot restore requires exactly one argument",
    );
  }
  const file = ctx.args[0]!;
  const dataDir = ctx.string("data-dir") ||
    `${ctx.string("name", "default")}.revkv`;
  try {
    await restoreSnapshot(file, dataDir);
  } catch (error) {
    throw new CliExit(EXIT_ERROR, fileError(file, error));
  }
}

/** The maintenance commands. */
export function otherCommands(): Command[] {
  const cluster = bool(
    "cluster",
    "false",
    "use all endpoints from the cluster member list",
  );
  return [
    {
      use: "alarm <subcommand>",
      short: "Alarm related commands",
      commands: [
        { use: "disarm", short: "Disarms all alarms", run: runAlarmDisarm },
        { use: "list", short: "Lists all alarms", run: runAlarmList },
      ],
    },
    {
      use: "defrag",
      short: "Defragments the storage of the etcd members with given endpoints",
      flags: [
        str(
          "data-dir",
          "",
          "Optional. If present, defragments a data directory not in use by etcd.",
        ),
      ],
      persistentFlags: [cluster],
      run: runDefrag,
    },
    {
      use: "endpoint <subcommand>",
      short: "Endpoint related commands",
      persistentFlags: [cluster],
      commands: [
        {
          use: "health",
          short:
            "Checks the healthiness of endpoints specified in `--endpoints` flag",
          run: runEndpointHealth,
        },
        {
          use: "status",
          short:
            "Prints out the status of endpoints specified in `--endpoints` flag",
          long:
            `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
`,
          run: runEndpointStatus,
        },
        {
          use: "hashkv",
          short: "Prints the KV history hash for each endpoint in --endpoints",
          persistentFlags: [{
            name: "rev",
            kind: "int64",
            defValue: "0",
            usage: "maximum revision to hash (default: all revisions)",
          }],
          run: runEndpointHashKv,
        },
      ],
    },
    {
      use: "snapshot <subcommand>",
      short: "Manages etcd node snapshots",
      commands: [
        {
          use: "save <filename>",
          short: "Stores an etcd node backend snapshot to a given file",
          run: runSnapshotSave,
        },
        {
          use: "status <filename>",
          short: "Gets backend snapshot status of a given file",
          long:
            `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
          run: runSnapshotStatus,
        },
        {
          use: "restore <filename> [options]",
          short: "Restores an etcd member snapshot to an etcd directory",
          flags: [
            str("data-dir", "", "Path to the data directory"),
            str(
              "wal-dir",
              "",
              "Path to the WAL directory (use --data-dir if none given)",
            ),
            str(
              "initial-cluster",
              "default=http://localhost:2380",
              "Initial cluster configuration for restore bootstrap",
            ),
            str(
              "initial-cluster-token",
              "etcd-cluster",
              "Initial cluster token for the etcd cluster during restore bootstrap",
            ),
            str(
              "initial-advertise-peer-urls",
              "http://localhost:2380",
              "List of this member's peer URLs to advertise to the rest of the cluster",
            ),
            str("name", "default", "Human-readable name for this member"),
            bool(
              "skip-hash-check",
              "false",
              "Ignore snapshot integrity hash value (required if copied from data directory)",
            ),
          ],
          run: runSnapshotRestore,
        },
      ],
    },
    {
      use: "check <subcommand>",
      short: "commands for checking properties of the etcd cluster",
      commands: [{
        use: "perf [options]",
        short: "Check the performance of the etcd cluster",
        flags: [
          str(
            "load",
            "s",
            "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
          ),
          str(
            "prefix",
            "/etcdctl-check-perf/",
            "The prefix for writing the performance check's keys.",
          ),
          bool(
            "auto-compact",
            "false",
            "Compact storage with last revision after test is finished.",
          ),
          bool(
            "auto-defrag",
            "false",
            "Defragment storage after test is finished.",
          ),
        ],
        run: runCheckPerf,
      }],
    },
    makeMirrorCommand(),
  ];
}
