/**
 * `cli.ts serve` (and `deno task start`): a single-member etcd v3 server
 * over one revkv data dir.
 *
 * Order of work, so that a bad command line changes nothing: parse and
 * check every flag and `ETCD_*` variable; open (and recover) the data dir;
 * bind every `--listen-client-urls` address; print where it listens, the
 * data dir, the member and cluster IDs and the recovery report; serve.
 *
 * The log (`src/server/log.ts`, stderr, filtered by `--log-level`) has
 * server faults at error and every call at debug.
 *
 * SIGINT/SIGTERM: stop accepting, let in-flight calls finish (watch and
 * keep-alive streams end with a clean status) for up to
 * `SHUTDOWN_GRACE_MS`, close the store (flushes the WAL, releases the
 * lock), exit 0. A second signal exits at once with status 1 (the WAL
 * recovers on the next start).
 *
 * @module
 */

import { DEFAULT_QUOTA_BACKEND_BYTES, open, type Store } from "../store.ts";
import type { RecoveryReport } from "../storage/data_dir.ts";
import { createServiceTable } from "../server/services.ts";
import { startAutoCompaction } from "../server/auto_compaction.ts";
import { ServerMetrics } from "../server/metrics.ts";
import { ServerLog } from "../server/log.ts";
import {
  parseServeFlags,
  type ServeConfig,
  ServeFlagError,
  serveHelp,
} from "../server/serve_flags.ts";
import type { GrpcServiceTable } from "../wire/grpc_service.ts";
import type { KeepaliveOptions } from "../wire/http2/keepalive.ts";
import type { CliIO } from "./context.ts";
import { writeAll } from "./context.ts";
import { utf8 } from "./go_format.ts";
import { runtime } from "../storage/runtime.ts";
import { listenTcp, type SocketListener } from "../wire/socket.ts";

/** How long shutdown waits for in-flight calls before closing anyway. */
export const SHUTDOWN_GRACE_MS = 5_000;

/** A running transport, as the gRPC transport returns it. */
export interface RunningTransport {
  /** Resolves when the listener is closed and every connection is gone. */
  readonly closed: Promise<void>;
  /** Stops accepting; ends calls after `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
}

/** Starts the gRPC transport on a listener with a method table. */
export type StartTransport = (
  listener: SocketListener,
  methods: GrpcServiceTable,
  limits: {
    maxRequestBytes: number;
    /** etcd's `--grpc-keepalive-*` (grpc-go's server keepalive). */
    keepalive?: KeepaliveOptions;
    /** Writes the Prometheus `/metrics` page. */
    metrics?: () => string;
    /** A `--listen-metrics-urls` listener: HTTP `/metrics` and `/health` only. */
    metricsOnly?: boolean;
  },
) => RunningTransport;

/** What a started server is (for tests that run it in-process). */
export interface RunningServer {
  /** The store behind it. */
  readonly store: Store;
  /** The addresses it listens on (`http://127.0.0.1:PORT`). */
  readonly urls: string[];
  /** Stops it as SIGTERM does; resolves once the store is closed. */
  stop(): Promise<void>;
}

function hex(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16);
}

/** The lines `serve` prints about recovery. */
export function describeRecovery(report: RecoveryReport | undefined): string[] {
  if (report === undefined) return ["recovery: none (in memory)"];
  const lines = [
    `recovery: ${
      report.snapshot
        ? `snapshot ${report.snapshot.file} at revision ${report.snapshot.revision}`
        : "no snapshot"
    }, ${report.replayedRecords} WAL records replayed in ${
      Math.round(report.durationMs)
    } ms`,
  ];
  for (const skipped of report.skippedSnapshots) {
    lines.push(`recovery: skipped snapshot ${skipped.file}: ${skipped.reason}`);
  }
  if (report.tornTail) {
    lines.push(
      `recovery: cut a torn WAL tail in ${report.tornTail.file} at offset ${report.tornTail.offset} (${report.tornTail.reason})`,
    );
  }
  if (report.staleLockPid !== undefined) {
    lines.push(
      `recovery: took over the lock of process ${report.staleLockPid}, which is gone`,
    );
  }
  return lines;
}

/**
 * Opens the store and starts serving `config`; prints the start-up lines
 * through `print`, and what `--log-level` lets through to `log`.
 */
export async function startServer(
  config: ServeConfig,
  startTransport: StartTransport,
  print: (line: string) => void,
  log?: ServerLog,
): Promise<RunningServer> {
  const store = await open(config.dataDir, {
    durability: config.unsafeNoFsync ? "none" : "fsync",
    snapshotCount: config.snapshotCount,
    quotaBackendBytes: config.quotaBackendBytes > 0
      ? config.quotaBackendBytes
      : undefined,
    maxTxnOps: config.maxTxnOps,
    maxRequestBytes: config.maxRequestBytes,
    progress: true,
  });
  const listeners: SocketListener[] = [];
  const transports: RunningTransport[] = [];
  let stopCompaction = () => {};
  const closing = new AbortController();
  const metricsListeners: SocketListener[] = [];
  try {
    const metrics = new ServerMetrics(store, {
      quotaBackendBytes: config.quotaBackendBytes > 0
        ? config.quotaBackendBytes
        : DEFAULT_QUOTA_BACKEND_BYTES,
    });
    const methods = metrics.instrument(
      createServiceTable(store, {
        maxRequestBytes: config.maxRequestBytes,
        closing: closing.signal,
        member: {
          name: config.name,
          peerUrls: config.peerUrls,
          clientUrls: config.advertiseClientUrls,
        },
        mvccCounters: metrics.mvcc,
      }),
      log && ((path, code, error) => log.call(path, code, error)),
    );
    const listen = (url: URL) => {
      const hostname = url.hostname === "localhost"
        ? "127.0.0.1"
        : url.hostname.replace(/^\[(.*)\]$/, "$1");
      return listenTcp({ hostname, port: Number(url.port) });
    };
    for (const url of config.listenClientUrls) {
      listeners.push(await listen(url));
    }
    for (const url of config.listenMetricsUrls) {
      metricsListeners.push(await listen(url));
    }
    const render = () => metrics.render();
    for (const listener of listeners) {
      transports.push(
        startTransport(listener, methods, {
          maxRequestBytes: config.maxRequestBytes,
          keepalive: {
            minTimeMs: config.grpcKeepaliveMinTimeMs,
            intervalMs: config.grpcKeepaliveIntervalMs,
            timeoutMs: config.grpcKeepaliveTimeoutMs,
          },
          metrics: render,
        }),
      );
    }
    for (const listener of metricsListeners) {
      transports.push(
        startTransport(listener, methods, {
          maxRequestBytes: config.maxRequestBytes,
          metrics: render,
          metricsOnly: true,
        }),
      );
    }
    stopCompaction = startAutoCompaction(
      store,
      config.autoCompactionMode,
      config.autoCompactionRetention,
    );
  } catch (error) {
    for (const listener of [...listeners, ...metricsListeners]) {
      try {
        listener.close();
      } catch { /* already closed */ }
    }
    await store.close();
    throw error;
  }
  const urlOf = (l: SocketListener) => {
    const addr = l.addr;
    const host = addr.hostname.includes(":")
      ? `[${addr.hostname}]`
      : addr.hostname;
    return `http://${host}:${addr.port}`;
  };
  const urls = listeners.map(urlOf);
  const header = store.header();
  for (const url of urls) print(`revkv: serving the etcd v3 API on ${url}`);
  for (const listener of metricsListeners) {
    print(`revkv: serving /metrics and /health on ${urlOf(listener)}`);
  }
  print(`revkv: data dir ${config.dataDir}`);
  print(
    `revkv: member ${hex(header.memberId)} (name ${config.name}) of cluster ${
      hex(header.clusterId)
    }, revision ${store.revision}`,
  );
  for (const line of describeRecovery(store.recovery)) print(`revkv: ${line}`);
  let stopping: Promise<void> | undefined;
  return {
    store,
    urls,
    stop: () =>
      stopping ??= (async () => {
        stopCompaction();
        // Streams end first (OK status), then in-flight unary calls finish.
        closing.abort();
        await Promise.allSettled(
          transports.map((t) => t.shutdown(SHUTDOWN_GRACE_MS)),
        );
        await store.close();
      })(),
  };
}

/**
 * Runs `serve` until SIGINT/SIGTERM; resolves to the exit code.
 * @param args the arguments after `serve`.
 */
export async function runServe(
  args: string[],
  io: CliIO,
  startTransport?: StartTransport,
): Promise<number> {
  const err = (text: string) => writeAll(io.stderr, utf8(text));
  let config: ServeConfig | "help";
  try {
    config = parseServeFlags(args, io.env ?? {});
  } catch (error) {
    if (!(error instanceof ServeFlagError)) throw error;
    await err(
      `revkv serve: ${error.message}\nRun 'revkv serve --help' for usage.\n`,
    );
    return 2;
  }
  if (config === "help") {
    await writeAll(io.stdout, utf8(serveHelp()));
    return 0;
  }
  const transport = startTransport ?? await loadTransport();
  let server: RunningServer;
  const lines: string[] = [];
  const log = new ServerLog(config.logLevel, err);
  try {
    server = await startServer(
      config,
      transport,
      (line) => lines.push(line),
      log,
    );
  } catch (error) {
    await err(`revkv serve: ${(error as Error).message}\n`);
    return 1;
  }
  await writeAll(io.stdout, utf8(lines.join("\n") + "\n"));
  let signals = 0;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = () => {
      signals++;
      if (signals > 1) runtime.exit(1);
      void writeAll(io.stdout, utf8("revkv: shutting down\n"));
      server.stop().then(async () => {
        await log.flush();
        resolve(0);
      }, async (error) => {
        await log.flush();
        await err(`revkv serve: shutdown: ${(error as Error).message}\n`);
        resolve(1);
      });
    };
    runtime.onSignal("SIGINT", onSignal);
    runtime.onSignal("SIGTERM", onSignal);
  });
  return await stopped;
}

/** The transport module (revkv's own HTTP/2 + gRPC framing). */
async function loadTransport(): Promise<StartTransport> {
  const { startGrpcTransport } = await import("../server/transport.ts");
  return startGrpcTransport;
}
