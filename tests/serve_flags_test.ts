/**
 * `serve`'s flags: etcd's names and defaults, ETCD_* variables (the command
 * line wins), and clear errors for unknown flags and bad values — before
 * anything is opened.
 */
import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  parseServeFlags,
  ServeFlagError,
  serveHelp,
} from "../src/server/serve_flags.ts";
import { runServe } from "../src/cli/serve_command.ts";

Deno.test("serve flags: etcd's defaults", () => {
  const config = parseServeFlags([]);
  assert(config !== "help");
  assertEquals(config.dataDir, "default.revkv");
  assertEquals(config.listenClientUrls.map((u) => u.href), [
    "http://localhost:2379/",
  ]);
  assertEquals(config.advertiseClientUrls, ["http://localhost:2379"]);
  assertEquals(config.snapshotCount, 100000);
  assertEquals(config.maxTxnOps, 128);
  assertEquals(config.maxRequestBytes, 1572864);
  assertEquals(config.quotaBackendBytes, 0);
  assertEquals(config.autoCompactionMode, "periodic");
  assertEquals(config.autoCompactionRetention, 0);
  assertEquals(config.unsafeNoFsync, false);
  assertEquals(config.logLevel, "info");
  assertEquals(config.grpcKeepaliveMinTimeMs, 5_000);
  assertEquals(config.grpcKeepaliveIntervalMs, 2 * 3600 * 1000);
  assertEquals(config.grpcKeepaliveTimeoutMs, 20_000);
  assertEquals(config.listenMetricsUrls, []);
});

Deno.test("serve flags: keepalive durations, log levels and metrics URLs, by flag and ETCD_*", () => {
  const config = parseServeFlags(
    [
      "--grpc-keepalive-min-time=1m30s",
      "--grpc-keepalive-timeout",
      "0",
      "--log-level=debug",
    ],
    {
      ETCD_GRPC_KEEPALIVE_MIN_TIME: "1s",
      ETCD_GRPC_KEEPALIVE_INTERVAL: "250ms",
      ETCD_LOG_LEVEL: "error",
      ETCD_LISTEN_METRICS_URLS: "http://127.0.0.1:0,http://localhost:9000",
    },
  );
  assert(config !== "help");
  assertEquals(config.grpcKeepaliveMinTimeMs, 90_000);
  assertEquals(config.grpcKeepaliveIntervalMs, 250);
  assertEquals(config.grpcKeepaliveTimeoutMs, 0);
  assertEquals(config.logLevel, "debug");
  assertEquals(config.listenMetricsUrls.map((u) => u.href), [
    "http://127.0.0.1:0/",
    "http://localhost:9000/",
  ]);
  for (const level of ["debug", "info", "warn", "error", "panic", "fatal"]) {
    const parsed = parseServeFlags([`--log-level=${level}`]);
    assert(parsed !== "help");
    assertEquals(parsed.logLevel, level);
  }
  const help = serveHelp();
  for (
    const flag of [
      "--grpc-keepalive-min-time '5s'",
      "--grpc-keepalive-interval '2h'",
      "--grpc-keepalive-timeout '20s'",
      "--listen-metrics-urls ''",
      "--log-level 'info'",
    ]
  ) assert(help.includes(flag), flag);
});

Deno.test("serve flags: forms, env, and the command line winning", () => {
  const config = parseServeFlags(
    [
      "--name",
      "n1",
      "-max-txn-ops=7",
      "--unsafe-no-fsync",
      "--listen-client-urls=http://127.0.0.1:0,http://127.0.0.1:0",
      "--auto-compaction-retention=90m",
    ],
    { ETCD_MAX_TXN_OPS: "9", ETCD_QUOTA_BACKEND_BYTES: "4096" },
  );
  assert(config !== "help");
  assertEquals(config.name, "n1");
  assertEquals(config.dataDir, "n1.revkv");
  assertEquals(config.maxTxnOps, 7);
  assertEquals(config.quotaBackendBytes, 4096);
  assertEquals(config.unsafeNoFsync, true);
  assertEquals(config.listenClientUrls.length, 2);
  assertEquals(config.autoCompactionRetention, 90 * 60 * 1000);
  const hours = parseServeFlags(["--auto-compaction-retention", "2"]);
  assert(hours !== "help");
  assertEquals(hours.autoCompactionRetention, 2 * 3600 * 1000);
  const revisions = parseServeFlags([
    "--auto-compaction-mode=revision",
    "--auto-compaction-retention=1000",
  ]);
  assert(revisions !== "help");
  assertEquals(revisions.autoCompactionRetention, 1000);
  assertEquals(parseServeFlags(["--help"]), "help");
});

Deno.test("serve flags: unknown flags and bad values are clear errors", () => {
  const bad: [string[], Record<string, string>, RegExp][] = [
    [["--nope"], {}, /flag provided but not defined: -nope/],
    [["--max-txn-ops=x"], {}, /--max-txn-ops: not an integer/],
    [[], { ETCD_SNAPSHOT_COUNT: "-1" }, /ETCD_SNAPSHOT_COUNT/],
    [["--auto-compaction-mode=daily"], {}, /periodic or revision/],
    [["--auto-compaction-retention=1x"], {}, /not a duration/],
    [["--log-level=loud"], {}, /invalid log level/],
    [["--log-level=INFO"], {}, /only supports debug, info, warn/],
    [[], { ETCD_LOG_LEVEL: "trace" }, /ETCD_LOG_LEVEL/],
    [
      ["--grpc-keepalive-min-time=5"],
      {},
      /--grpc-keepalive-min-time: not a duration/,
    ],
    [
      ["--grpc-keepalive-interval=-1s"],
      {},
      /--grpc-keepalive-interval: not a duration/,
    ],
    [
      [],
      { ETCD_GRPC_KEEPALIVE_TIMEOUT: "zz" },
      /"zz" for ETCD_GRPC_KEEPALIVE_TIMEOUT/,
    ],
    [
      ["--listen-metrics-urls=http://127.0.0.1"],
      {},
      /--listen-metrics-urls: a port is required/,
    ],
    [["--listen-client-urls=https://127.0.0.1:2379"], {}, /http only/],
    [["--listen-client-urls=http://127.0.0.1"], {}, /port is required/],
    [["--advertise-client-urls=:::"], {}, /not a URL/],
    [["--name"], {}, /flag needs an argument: -name/],
    [["stray"], {}, /not a valid flag/],
  ];
  for (const [args, env, message] of bad) {
    assert.throws(() => parseServeFlags(args, env), (error: unknown) => {
      assert(error instanceof ServeFlagError);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("serve: a bad flag exits 2 before opening the data dir", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const errors: string[] = [];
    const code = await runServe(
      [`--data-dir=${dir}/data`, "--max-request-bytes=0"],
      {
        stdout: { write: (p) => p.length },
        stderr: {
          write: (p) => (errors.push(new TextDecoder().decode(p)), p.length),
        },
      },
      () => {
        throw new Error("the transport must not start");
      },
    );
    assertEquals(code, 2);
    assert.match(errors.join(""), /--max-request-bytes/);
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
