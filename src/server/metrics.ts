/**
 * The server's Prometheus metrics, under etcd 3.4's names for what revkv
 * can know, written in the text exposition format 0.0.4 as etcd's Go
 * client writes it (families sorted by name, `# HELP` and `# TYPE` lines,
 * label names sorted, numbers as Go's `strconv.FormatFloat(v, 'g', -1)`:
 * `2.147483648e+09`).
 *
 * What is measured, and how it relates to etcd:
 *
 * - `grpc_server_started_total`, `grpc_server_handled_total` (by
 *   `grpc_code`, grpc-go's code names), `grpc_server_msg_received_total`,
 *   `grpc_server_msg_sent_total` — go-grpc-prometheus's counters, every
 *   method of the table pre-registered at 0 as etcd does, counted by a
 *   wrapper around each method ({@linkcode ServerMetrics.instrument}); the
 *   JSON gateway calls the same table, so its calls count too (etcd's
 *   gateway is a gRPC client of its own server). A call the client
 *   cancelled, or that hit its deadline, counts as `Canceled`.
 * - `etcd_network_client_grpc_received_bytes_total` / `_sent_bytes_total`:
 *   the encoded message bytes, as etcd counts them.
 * - `etcd_mvcc_range_total`, `_put_total`, `_delete_total`, `_txn_total`:
 *   etcd counts these per MVCC transaction of its apply layer: a Put or
 *   DeleteRange with `prev_kv` (or a Put with `ignore_value`/
 *   `ignore_lease`) also reads the key first, and a transaction of more
 *   than one operation counts as a txn; a Txn request reads each compare
 *   in one transaction and then, if it writes, applies its ops in a second.
 *   The KV service reports each request here ({@linkcode MvccCounters}) and
 *   these rules are applied to it. Not counted, unlike etcd: the deletes of
 *   a lease revocation or expiry.
 * - Gauges read at scrape time: `etcd_server_has_leader` and
 *   `etcd_server_is_leader` (always 1: one member is its own leader),
 *   `etcd_mvcc_db_total_size_in_bytes` and `_in_use_in_bytes` (the state's
 *   size, as Status reports it), `etcd_debugging_mvcc_keys_total` (keys
 *   that exist now), current and compact revision, the quota, the server
 *   version and ID.
 * - `etcd_disk_wal_fsync_duration_seconds`: the WAL's fdatasyncs timed
 *   into etcd's buckets (1 ms to 8.192 s, doubling), in a durable store.
 * - revkv's own, where etcd has none: WAL group-commit batches, records
 *   and fdatasyncs (`revkv_wal_*_total`; records per batch is the group
 *   commit's batch size) and the recovery time of the last start.
 *
 * @module
 */

import { type Store, storeInternals } from "../store.ts";
import type {
  BidiStreamMethod,
  CallContext,
  GrpcMethod,
  GrpcServiceTable,
  MessageSink,
  ServerStreamMethod,
  UnaryMethod,
} from "../wire/grpc_service.ts";
import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";
import type * as pb from "../wire/etcd_messages.ts";
import type { TxnResponse } from "../txn/txn.ts";
import { SERVER_VERSION } from "./maintenance.ts";
import { SYNC_DURATION_BUCKETS_SECONDS } from "../storage/wal_writer.ts";

/** The Content-Type of the exposition (text format 0.0.4). */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** grpc-go's `codes.Code.String()`, by code number. */
const GRPC_CODE_NAMES = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
] as const;

/** go-grpc-prometheus's `grpc_type` of each method kind. */
const GRPC_TYPES: Record<GrpcMethod["kind"], string> = {
  unary: "unary",
  "server-stream": "server_stream",
  bidi: "bidi_stream",
};

/**
 * A number as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it, which
 * is how Prometheus's Go client writes sample values.
 */
export function goFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const [mantissa, exponentText] = value.toExponential().split("e") as [
    string,
    string,
  ];
  const exponent = Number(exponentText);
  // Shortest 'g' decides with precision 6: the exponent form outside
  // [1e-4, 1e6), with at least two exponent digits.
  if (exponent < -4 || exponent >= 6) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  return String(value);
}

/** A label value escaped as the text format requires. */
function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll(
    "\n",
    "\\n",
  );
}

/** HELP text escaped as the text format requires. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** One sample: label pairs (name order is the family's) and the value. */
interface Sample {
  labels: readonly (readonly [string, string])[];
  value: number;
}

/** One metric family as written. */
interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  samples: Sample[];
  /**
   * A histogram's lines, already in Go's order (buckets by rising `le`,
   * then `_sum`, then `_count`); written as they are.
   */
  lines?: string[];
}

/**
 * A histogram family without labels: `counts` per bucket (not cumulative;
 * the last one past every bound), `bounds` the buckets' upper bounds.
 */
export function histogram(
  name: string,
  help: string,
  bounds: readonly number[],
  counts: readonly number[],
  sum: number,
): Family {
  const lines: string[] = [];
  let cumulative = 0;
  bounds.forEach((le, i) => {
    cumulative += counts[i] ?? 0;
    lines.push(`${name}_bucket{le="${goFloat(le)}"} ${cumulative}`);
  });
  cumulative += counts[bounds.length] ?? 0;
  lines.push(`${name}_bucket{le="+Inf"} ${cumulative}`);
  lines.push(`${name}_sum ${goFloat(sum)}`);
  lines.push(`${name}_count ${cumulative}`);
  return { name, help, type: "histogram", samples: [], lines };
}

/** Writes families in the text format, sorted as Go's client sorts them. */
export function writeExposition(families: readonly Family[]): string {
  const out: string[] = [];
  const sorted = [...families].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  for (const family of sorted) {
    out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    out.push(`# TYPE ${family.name} ${family.type}`);
    if (family.lines) {
      out.push(...family.lines);
      continue;
    }
    const lines = family.samples.map((sample) => {
      const labels = [...sample.labels].sort((a, b) =>
        a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
      );
      const key = labels.map(([, v]) => v).join("\u0000");
      const text = labels.length === 0
        ? family.name
        : `${family.name}{${
          labels.map(([n, v]) => `${n}="${escapeLabel(v)}"`).join(",")
        }}`;
      return { key, line: `${text} ${goFloat(sample.value)}` };
    });
    lines.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    for (const { line } of lines) out.push(line);
  }
  return out.join("\n") + "\n";
}

/** Counts of one gRPC method. */
interface MethodCounts {
  service: string;
  method: string;
  type: string;
  started: number;
  /** Completed calls by code number. */
  handled: number[];
  received: number;
  sent: number;
}

/** What the KV service reports for etcd's `etcd_mvcc_*_total` counters. */
export interface MvccCounters {
  /** A Range request was answered. */
  range(): void;
  /** A Put request was applied. */
  put(request: pb.PutRequest): void;
  /** A DeleteRange request was applied. */
  deleteRange(request: pb.DeleteRangeRequest): void;
  /** A Txn request ran, taking the branches in `response`. */
  txn(request: pb.TxnRequest, response: TxnResponse): void;
}

/** Counters that count nothing (a service table without metrics). */
export const NO_MVCC_COUNTERS: MvccCounters = {
  range() {},
  put() {},
  deleteRange() {},
  txn() {},
};

/** Per MVCC transaction: reads, puts, deletes. */
interface TxnTally {
  ranges: number;
  puts: number;
  deletes: number;
}

/** Sees every finished call: its path, gRPC code and error (if any). */
export type CallObserver = (path: string, code: number, error: unknown) => void;

/** Options of {@linkcode ServerMetrics}. */
export interface ServerMetricsOptions {
  /** The backend quota in force (etcd's `--quota-backend-bytes`). */
  quotaBackendBytes: number;
}

/** Every metric of one server, and the writer of its `/metrics` page. */
export class ServerMetrics {
  readonly #store: Store;
  readonly #options: ServerMetricsOptions;
  readonly #methods = new Map<string, MethodCounts>();
  #receivedBytes = 0;
  #sentBytes = 0;
  #ranges = 0;
  #puts = 0;
  #deletes = 0;
  #txns = 0;
  #observe: CallObserver | undefined;

  /** The KV service's reporting point. */
  readonly mvcc: MvccCounters;

  /** @param store the store whose gauges are read at scrape time. */
  constructor(store: Store, options: ServerMetricsOptions) {
    this.#store = store;
    this.#options = options;
    this.mvcc = {
      range: () => this.#end({ ranges: 1, puts: 0, deletes: 0 }),
      put: (req) => {
        const reads = req.prevKv || req.ignoreValue || req.ignoreLease;
        this.#end({ ranges: reads ? 1 : 0, puts: 1, deletes: 0 });
      },
      deleteRange: (req) =>
        this.#end({ ranges: req.prevKv ? 1 : 0, puts: 0, deletes: 1 }),
      txn: (req, res) => this.#countTxn(req, res),
    };
  }

  /** etcd's `metricsTxnWrite.End`: add the tally; >1 operation is a txn. */
  #end(tally: TxnTally): void {
    this.#ranges += tally.ranges;
    this.#puts += tally.puts;
    this.#deletes += tally.deletes;
    if (tally.ranges + tally.puts + tally.deletes > 1) this.#txns++;
  }

  #countTxn(req: pb.TxnRequest, res: TxnResponse): void {
    // First transaction: the compares along the taken path, and, when the
    // request writes, the reads of its checks (puts with ignore_*).
    const compares: TxnTally = { ranges: 0, puts: 0, deletes: 0 };
    const ops: TxnTally = { ranges: 0, puts: 0, deletes: 0 };
    let checks = 0;
    const walk = (rt: pb.TxnRequest, rs: TxnResponse) => {
      compares.ranges += rt.compare.length;
      const branch = rs.succeeded ? rt.success : rt.failure;
      branch.forEach((op, i) => {
        if (op.requestRange) ops.ranges++;
        else if (op.requestPut) {
          const p = op.requestPut;
          if (p.ignoreValue || p.ignoreLease) checks++;
          if (p.prevKv || p.ignoreValue || p.ignoreLease) ops.ranges++;
          ops.puts++;
        } else if (op.requestDeleteRange) {
          if (op.requestDeleteRange.prevKv) ops.ranges++;
          ops.deletes++;
        } else if (op.requestTxn) {
          const nested = rs.responses[i];
          if (nested && "txn" in nested) walk(op.requestTxn, nested.txn);
        }
      });
    };
    walk(req, res);
    if (writes(req)) {
      compares.ranges += checks;
      this.#end(compares);
      this.#end(ops);
    } else {
      this.#end({
        ranges: compares.ranges + ops.ranges,
        puts: 0,
        deletes: 0,
      });
    }
  }

  /**
   * The same methods, each counted: started, handled by code, messages
   * and bytes both ways. Every method is registered at 0 at once.
   */
  instrument(
    table: GrpcServiceTable,
    observe?: CallObserver,
  ): GrpcServiceTable {
    this.#observe = observe;
    const out = new Map<string, GrpcMethod>();
    for (const [path, method] of table) {
      const slash = path.lastIndexOf("/");
      const counts: MethodCounts = {
        service: path.slice(1, slash),
        method: path.slice(slash + 1),
        type: GRPC_TYPES[method.kind],
        started: 0,
        handled: new Array(GRPC_CODE_NAMES.length).fill(0),
        received: 0,
        sent: 0,
      };
      this.#methods.set(path, counts);
      out.set(path, this.#wrap(method, counts));
    }
    return out;
  }

  #received(counts: MethodCounts, bytes: Uint8Array): void {
    counts.received++;
    this.#receivedBytes += bytes.length;
  }

  #sent(counts: MethodCounts, bytes: Uint8Array): void {
    counts.sent++;
    this.#sentBytes += bytes.length;
  }

  #handled(counts: MethodCounts, error: unknown, context: CallContext): void {
    let code: number = GrpcStatus.OK;
    if (error !== undefined) {
      code = error instanceof GrpcError ? error.code : GrpcStatus.INTERNAL;
    } else if (context.signal.aborted) {
      code = GrpcStatus.CANCELLED;
    }
    counts.handled[code]!++;
    this.#observe?.(context.path, code, error);
  }

  #wrap(method: GrpcMethod, counts: MethodCounts): GrpcMethod {
    const handled = (error: unknown, context: CallContext) =>
      this.#handled(counts, error, context);
    if (method.kind === "unary") {
      const wrapped: UnaryMethod = {
        kind: "unary",
        handle: async (request, context) => {
          counts.started++;
          this.#received(counts, request);
          try {
            const response = await method.handle(request, context);
            this.#sent(counts, response);
            handled(undefined, context);
            return response;
          } catch (error) {
            handled(error ?? new Error("failed"), context);
            throw error;
          }
        },
      };
      return wrapped;
    }
    const sink = (responses: MessageSink): MessageSink => ({
      send: (message) => {
        this.#sent(counts, message);
        return responses.send(message);
      },
    });
    if (method.kind === "server-stream") {
      const wrapped: ServerStreamMethod = {
        kind: "server-stream",
        handle: async (request, responses, context) => {
          counts.started++;
          this.#received(counts, request);
          try {
            await method.handle(request, sink(responses), context);
            handled(undefined, context);
          } catch (error) {
            handled(error ?? new Error("failed"), context);
            throw error;
          }
        },
      };
      return wrapped;
    }
    const received = (request: Uint8Array) => this.#received(counts, request);
    const wrapped: BidiStreamMethod = {
      kind: "bidi",
      handle: async (requests, responses, context) => {
        counts.started++;
        async function* counted(): AsyncIterable<Uint8Array> {
          for await (const request of requests) {
            received(request);
            yield request;
          }
        }
        try {
          await method.handle(counted(), sink(responses), context);
          handled(undefined, context);
        } catch (error) {
          handled(error ?? new Error("failed"), context);
          throw error;
        }
      },
    };
    return wrapped;
  }

  /** The `/metrics` page now. */
  render(): string {
    const store = this.#store;
    const header = store.header();
    const size = store.stats().sizeBytes;
    const liveKeys = storeInternals.getSync(store, new Uint8Array([0]), {
      rangeEnd: new Uint8Array([0]),
      countOnly: true,
    }).count;
    const journal = storeInternals.journalStats(store);
    const gauge = (
      name: string,
      help: string,
      value: number,
      labels: [string, string][] = [],
    ): Family => ({ name, help, type: "gauge", samples: [{ labels, value }] });
    const counter = (name: string, help: string, value: number): Family => ({
      name,
      help,
      type: "counter",
      samples: [{ labels: [], value }],
    });
    const families: Family[] = [
      gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        1,
      ),
      gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        1,
      ),
      gauge(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        0,
      ),
      gauge(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        1,
        [["server_id", BigInt.asUintN(64, header.memberId).toString(16)]],
      ),
      gauge(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        1,
        [["server_version", SERVER_VERSION]],
      ),
      gauge(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        this.#options.quotaBackendBytes,
      ),
      gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        size,
      ),
      gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        size,
      ),
      gauge(
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys.",
        liveKeys,
      ),
      gauge(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        store.revision,
      ),
      gauge(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
        store.compactRevision,
      ),
      counter(
        "etcd_mvcc_range_total",
        "Total number of ranges seen by this member.",
        this.#ranges,
      ),
      counter(
        "etcd_mvcc_put_total",
        "Total number of puts seen by this member.",
        this.#puts,
      ),
      counter(
        "etcd_mvcc_delete_total",
        "Total number of deletes seen by this member.",
        this.#deletes,
      ),
      counter(
        "etcd_mvcc_txn_total",
        "Total number of txns seen by this member.",
        this.#txns,
      ),
      counter(
        "etcd_network_client_grpc_received_bytes_total",
        "The total number of bytes received from grpc clients.",
        this.#receivedBytes,
      ),
      counter(
        "etcd_network_client_grpc_sent_bytes_total",
        "The total number of bytes sent to grpc clients.",
        this.#sentBytes,
      ),
    ];
    if (journal !== undefined) {
      families.push(
        counter(
          "revkv_wal_batches_total",
          "WAL group-commit batches flushed (one write and one fdatasync each).",
          journal.batches,
        ),
        counter(
          "revkv_wal_records_total",
          "WAL records flushed; divided by batches, the group-commit batch size.",
          journal.records,
        ),
        counter(
          "revkv_wal_fsyncs_total",
          "fdatasync calls on WAL segments.",
          journal.syncs,
        ),
        histogram(
          "etcd_disk_wal_fsync_duration_seconds",
          "The latency distributions of fsync called by WAL.",
          SYNC_DURATION_BUCKETS_SECONDS,
          journal.syncDurations.counts,
          journal.syncDurations.sumSeconds,
        ),
        counter(
          "revkv_snapshots_total",
          "Snapshots written since the start.",
          journal.snapshots,
        ),
      );
    }
    const recovery = store.recovery;
    if (recovery !== undefined) {
      families.push(gauge(
        "revkv_recovery_duration_seconds",
        "How long opening the data dir (snapshot load and WAL replay) took at start.",
        recovery.durationMs / 1000,
      ));
    }
    const methods = [...this.#methods.values()];
    const labels = (m: MethodCounts): [string, string][] => [
      ["grpc_method", m.method],
      ["grpc_service", m.service],
      ["grpc_type", m.type],
    ];
    families.push(
      {
        name: "grpc_server_started_total",
        help: "Total number of RPCs started on the server.",
        type: "counter",
        samples: methods.map((m) => ({ labels: labels(m), value: m.started })),
      },
      {
        name: "grpc_server_handled_total",
        help:
          "Total number of RPCs completed on the server, regardless of success or failure.",
        type: "counter",
        samples: methods.flatMap((m) =>
          m.handled.map((value, code) => ({
            labels: [["grpc_code", GRPC_CODE_NAMES[code]!], ...labels(m)] as [
              string,
              string,
            ][],
            value,
          }))
        ),
      },
      {
        name: "grpc_server_msg_received_total",
        help: "Total number of RPC stream messages received on the server.",
        type: "counter",
        samples: methods.map((m) => ({ labels: labels(m), value: m.received })),
      },
      {
        name: "grpc_server_msg_sent_total",
        help: "Total number of gRPC stream messages sent by the server.",
        type: "counter",
        samples: methods.map((m) => ({ labels: labels(m), value: m.sent })),
      },
    );
    return writeExposition(families);
  }
}

/** etcd's `!isTxnReadonly`: does any branch, at any depth, write? */
function writes(rt: pb.TxnRequest): boolean {
  for (const op of [...rt.success, ...rt.failure]) {
    if (op.requestPut || op.requestDeleteRange) return true;
    if (op.requestTxn && writes(op.requestTxn)) return true;
  }
  return false;
}
