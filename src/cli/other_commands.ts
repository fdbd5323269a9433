/**
 * The maintenance commands over an embedded store: `snapshot
 * save|status|restore`, `defrag`, `endpoint status|health|hashkv`, `alarm
 * list|disarm`; and `check perf` / `make-mirror`, which accept etcdctl's
 * flags but are not available yet (exit 4, etcdctl's code for a valid
 * request it cannot serve).
 *
 * In embedded mode the "endpoint" these commands name is the data dir.
 * Values etcd takes from raft are mapped to the store's nearest facts: the
 * raft index is the committed revision, the member is always the leader.
 *
 * @module
 */

import {
  restoreSnapshot,
  type SnapshotStatus,
  snapshotStatus,
  type Store,
} from "../../mod.ts";
import { type Command, ETCDCTL_VERSION } from "./command.ts";
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
import { goDuration, humanizeBytes, renderTable } from "./table.ts";
import { runtime } from "../storage/runtime.ts";

function notYet(what: string): (ctx: CommandContext) => Promise<void> {
  return async (ctx) => {
    await ctx.store();
    throw new CliExit(
      EXIT_BAD_FEATURE,
      `${what} is not available yet in revkv's embedded mode`,
    );
  };
}

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

function printAlarms(ctx: CommandContext, db: Store, alarms: string[]): void {
  const printer = ctx.printer();
  const memberId = BigInt.asUintN(64, db.header().memberId);
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

async function runAlarmList(ctx: CommandContext): Promise<void> {
  noArgs(ctx, "alarm list command accepts no arguments");
  const db = await ctx.store();
  printAlarms(ctx, db, db.alarms());
}

async function runAlarmDisarm(ctx: CommandContext): Promise<void> {
  noArgs(ctx, "alarm disarm command accepts no arguments");
  const db = await ctx.store();
  const alarms = db.alarms();
  if (alarms.length > 0) {
    // The store clears NOSPACE only in defrag, once back under the quota.
    throw new CliExit(
      EXIT_BAD_FEATURE,
      `disarming alarms (${alarms.join(", ")}) is not available yet: ` +
        "compact, then run defrag, which clears NOSPACE once under the quota",
    );
  }
  printAlarms(ctx, db, alarms);
}

// --- defrag ---------------------------------------------------------------

async function runDefrag(ctx: CommandContext): Promise<void> {
  // `defrag --data-dir` (etcdctl's offline form) and the global --data-dir
  // are the same flag here: both name the embedded store to defragment.
  const db = await ctx.store();
  const endpoint = ctx.endpointName();
  try {
    await db.defrag();
  } catch (error) {
    throw new CliExit(
      EXIT_ERROR,
      "",
      `Failed to defragment etcd member[${endpoint}] (${
        (error as Error).message
      })\n`,
    );
  }
  ctx.out.line(`Finished defragmenting etcd member[${endpoint}]`);
}

// --- endpoint -------------------------------------------------------------

async function runEndpointHealth(ctx: CommandContext): Promise<void> {
  const printer = ctx.printer();
  const endpoint = ctx.endpointName();
  let start = performance.now();
  let error = "";
  try {
    const db = await ctx.store();
    // As etcdctl: time the read, not the connection (here: the open).
    start = performance.now();
    await db.get("health");
  } catch (e) {
    error = e instanceof CliExit ? e.message : (e as Error).message;
  }
  const took = goDuration(performance.now() - start);
  const health = error === "";
  switch (printer.format) {
    case "simple":
      await ctx.flush();
      await writeAll(
        ctx.io.stderr,
        utf8(
          health
            ? `${endpoint} is healthy: successfully committed proposal: took = ${took}\n`
            : `${endpoint} is unhealthy: failed to commit proposal: ${error}\n`,
        ),
      );
      break;
    case "json": {
      const fields = [
        `"endpoint":${jsonString(endpoint)}`,
        `"health":${health}`,
        `"took":${jsonString(took)}`,
      ];
      if (error) fields.push(`"error":${jsonString(error)}`);
      ctx.out.line(`[{${fields.join(",")}}]`);
      break;
    }
    case "fields":
      ctx.out.line(`"Endpoint" : ${goQuote(endpoint)}`);
      ctx.out.line(`"Health" : ${health}`);
      ctx.out.line(`"Took" : ${took}`);
      ctx.out.line(`"Error" : ${error}`);
      ctx.out.line();
      break;
    case "table":
      ctx.out.write(renderTable(
        ["endpoint", "health", "took", "error"],
        [[endpoint, String(health), took, error]],
      ));
      break;
    default:
      throw unsupported(printer.format);
  }
  if (!health) throw new CliExit(EXIT_ERROR, "unhealthy cluster");
}

async function runEndpointStatus(ctx: CommandContext): Promise<void> {
  const db = await ctx.store();
  const printer = ctx.printer();
  const endpoint = ctx.endpointName();
  const header = db.header();
  const memberId = BigInt.asUintN(64, header.memberId);
  const sizeBytes = db.stats().sizeBytes;
  // The committed revision stands in for raft's index (revkv has no raft).
  const raftIndex = db.revision;
  const errors = db.alarms().map((a) => `memberID:${memberId} alarm:${a} `);
  // The row of the simple and table formats.
  const row = [
    endpoint,
    hexUint(memberId),
    ETCDCTL_VERSION,
    humanizeBytes(sizeBytes),
    "true",
    "false",
    String(header.raftTerm),
    String(raftIndex),
    String(raftIndex),
    errors.join(", "),
  ];
  switch (printer.format) {
    case "simple":
      ctx.out.line(row.join(", "));
      return;
    case "json": {
      const status = [
        `"header":${jsonHeader(header)}`,
        `"version":${jsonString(ETCDCTL_VERSION)}`,
        `"dbSize":${sizeBytes}`,
        `"leader":${memberId}`,
        `"raftIndex":${raftIndex}`,
        `"raftTerm":${header.raftTerm}`,
        `"raftAppliedIndex":${raftIndex}`,
      ];
      if (errors.length) {
        status.push(`"errors":[${errors.map((e) => jsonString(e)).join(",")}]`);
      }
      status.push(`"dbSizeInUse":${sizeBytes}`);
      ctx.out.line(
        `[{"Endpoint":${jsonString(endpoint)},"Status":{${status.join(",")}}}]`,
      );
      return;
    }
    case "fields":
      ctx.out.line(`"ClusterID" : ${BigInt.asUintN(64, header.clusterId)}`);
      ctx.out.line(`"MemberID" : ${memberId}`);
      ctx.out.line(`"Revision" : ${header.revision}`);
      ctx.out.line(`"RaftTerm" : ${header.raftTerm}`);
      ctx.out.line(`"Version" : ${goQuote(ETCDCTL_VERSION)}`);
      ctx.out.line(`"DBSize" : ${sizeBytes}`);
      ctx.out.line(`"Leader" : ${memberId}`);
      ctx.out.line(`"IsLearner" : false`);
      ctx.out.line(`"RaftIndex" : ${raftIndex}`);
      ctx.out.line(`"RaftTerm" : ${header.raftTerm}`);
      ctx.out.line(`"RaftAppliedIndex" : ${raftIndex}`);
      ctx.out.line(`"Errors" : [${errors.join(" ")}]`);
      ctx.out.line(`"Endpoint" : ${goQuote(endpoint)}`);
      ctx.out.line();
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
        [row],
      ));
      return;
    default:
      throw unsupported(printer.format);
  }
}

async function runEndpointHashKv(ctx: CommandContext): Promise<void> {
  const db = await ctx.store();
  const printer = ctx.printer();
  const endpoint = ctx.endpointName();
  const rev = Number(ctx.int("rev"));
  let result: ReturnType<Store["hash"]>;
  try {
    result = db.hash(rev > 0 ? rev : db.revision);
  } catch (error) {
    const message = error instanceof RangeError
      ? "etcdserver: mvcc: required revision is a future revision"
      : (error as Error).message;
    throw new CliExit(
      EXIT_ERROR,
      message,
      `Failed to get the hash of endpoint ${endpoint} (${message})\n`,
    );
  }
  const header = db.header();
  const hash = result.hash >>> 0;
  switch (printer.format) {
    case "simple":
      ctx.out.line(`${endpoint}, ${hash}`);
      return;
    case "json": {
      const fields = [`"header":${jsonHeader(header)}`, `"hash":${hash}`];
      if (result.compactRevision !== 0) {
        fields.push(`"compact_revision":${result.compactRevision}`);
      }
      ctx.out.line(
        `[{"Endpoint":${jsonString(endpoint)},"HashKV":{${fields.join(",")}}}]`,
      );
      return;
    }
    case "fields":
      ctx.out.line(`"ClusterID" : ${BigInt.asUintN(64, header.clusterId)}`);
      ctx.out.line(`"MemberID" : ${BigInt.asUintN(64, header.memberId)}`);
      ctx.out.line(`"Revision" : ${header.revision}`);
      ctx.out.line(`"RaftTerm" : ${header.raftTerm}`);
      ctx.out.line(`"Endpoint" : ${goQuote(endpoint)}`);
      ctx.out.line(`"Hash" : ${hash}`);
      ctx.out.line();
      return;
    case "table":
      ctx.out.write(
        renderTable(["endpoint", "hash"], [[endpoint, String(hash)]]),
      );
      return;
    default:
      throw unsupported(printer.format);
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
    {
      use: "make-mirror [options] <destination>",
      short: "Makes a mirror at the destination etcd cluster",
      flags: [
        str("prefix", "", "Key-value prefix to mirror"),
        str(
          "dest-prefix",
          "",
          "destination prefix to mirror a prefix to a different prefix in the destination cluster",
        ),
        bool(
          "no-dest-prefix",
          "false",
          "mirror key-values to the root of the destination cluster",
        ),
        str(
          "dest-cert",
          "",
          "Identify secure client using this TLS certificate file for the destination cluster",
        ),
        str("dest-key", "", "Identify secure client using this TLS key file"),
        str(
          "dest-cacert",
          "",
          "Verify certificates of TLS enabled secure servers using this CA bundle",
        ),
        bool(
          "dest-insecure-transport",
          "true",
          "Disable transport security for client connections",
        ),
      ],
      run: notYet("make-mirror (it needs the gRPC client)"),
    },
  ];
}
