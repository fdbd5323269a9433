/**
 * The flags of `cli.ts serve`, named as etcd 3.4's, with etcd's defaults and
 * meanings, and the `ETCD_*` environment variables etcd reads for each (a
 * flag given on the command line wins over its variable). Parsing is the
 * first thing `serve` does: an unknown flag or a bad value is an error
 * before any file is opened or any port is bound.
 *
 * Accepted forms, as Go's flag package: `--name=value`, `--name value`,
 * `-name=value`, `-name value`; booleans also bare (`--unsafe-no-fsync`).
 *
 * @module
 */

/** What `serve` was asked for, every value checked. */
export interface ServeConfig {
  /** `--data-dir` (revkv default `<name>.revkv`, as etcd's `<name>.etcd`). */
  dataDir: string;
  /** `--name` (default `default`). */
  name: string;
  /** `--listen-client-urls`: where to listen (http://host:port each). */
  listenClientUrls: URL[];
  /** `--advertise-client-urls`: what MemberList shows. */
  advertiseClientUrls: string[];
  /** `--initial-advertise-peer-urls`: what MemberList shows as peer URLs. */
  peerUrls: string[];
  /** `--snapshot-count`: WAL entries between snapshots. */
  snapshotCount: number;
  /** `--quota-backend-bytes` (0: etcd's default, 2 GiB). */
  quotaBackendBytes: number;
  /** `--max-txn-ops`. */
  maxTxnOps: number;
  /** `--max-request-bytes`. */
  maxRequestBytes: number;
  /** `--auto-compaction-mode`. */
  autoCompactionMode: "periodic" | "revision";
  /**
   * `--auto-compaction-retention`: for `periodic`, a duration in ms (a bare
   * number is hours, as etcd); for `revision`, a revision count. 0: off.
   */
  autoCompactionRetention: number;
  /** `--unsafe-no-fsync`. */
  unsafeNoFsync: boolean;
  /** `--log-level`. */
  logLevel: LogLevel;
  /**
   * `--grpc-keepalive-min-time`: least time between client pings (closer
   * ones are strikes; the third ends the connection); 0: grpc-go's 5 min.
   */
  grpcKeepaliveMinTimeMs: number;
  /** `--grpc-keepalive-interval`: idle time before the server pings (0: never). */
  grpcKeepaliveIntervalMs: number;
  /** `--grpc-keepalive-timeout`: wait for a pinged peer before closing (0: never ping). */
  grpcKeepaliveTimeoutMs: number;
  /** `--listen-metrics-urls`: extra listeners for /metrics and /health only. */
  listenMetricsUrls: URL[];
}

/** The levels `--log-level` accepts, as etcd 3.4. */
export const LOG_LEVELS = [
  "debug",
  "info",
  "warn",
  "error",
  "panic",
  "fatal",
] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** A bad command line or environment, in words that name the flag. */
export class ServeFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServeFlagError";
  }
}

interface Spec {
  name: string;
  defValue: string;
  usage: string;
  bool?: boolean;
}

/** The flags `serve` accepts, with etcd 3.4's defaults. */
export const SERVE_FLAGS: readonly Spec[] = [
  {
    name: "data-dir",
    defValue: "${name}.revkv",
    usage: "Path to the data directory.",
  },
  {
    name: "name",
    defValue: "default",
    usage: "Human-readable name for this member.",
  },
  {
    name: "listen-client-urls",
    defValue: "http://localhost:2379",
    usage:
      "List of URLs to listen on for client traffic (comma-separated; http only).",
  },
  {
    name: "advertise-client-urls",
    defValue: "http://localhost:2379",
    usage:
      "List of this member's client URLs to advertise to the public (comma-separated).",
  },
  {
    name: "initial-advertise-peer-urls",
    defValue: "http://localhost:2380",
    usage:
      "List of this member's peer URLs to advertise (shown by member list; revkv has no peers).",
  },
  {
    name: "snapshot-count",
    defValue: "100000",
    usage: "Number of committed transactions to trigger a snapshot to disk.",
  },
  {
    name: "quota-backend-bytes",
    defValue: "0",
    usage:
      "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
  },
  {
    name: "max-txn-ops",
    defValue: "128",
    usage: "Maximum number of operations permitted in a transaction.",
  },
  {
    name: "max-request-bytes",
    defValue: "1572864",
    usage: "Maximum client request size in bytes the server will accept.",
  },
  {
    name: "auto-compaction-mode",
    defValue: "periodic",
    usage: "Interpret 'auto-compaction-retention' one of: periodic|revision.",
  },
  {
    name: "auto-compaction-retention",
    defValue: "0",
    usage:
      "Auto compaction retention for mvcc key value store. 0 means disable auto compaction.",
  },
  {
    name: "unsafe-no-fsync",
    defValue: "false",
    bool: true,
    usage: "Disables fsync, unsafe, will cause data loss.",
  },
  {
    name: "log-level",
    defValue: "info",
    usage:
      "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
  },
  {
    name: "grpc-keepalive-min-time",
    defValue: "5s",
    usage:
      "Minimum duration interval that a client should wait before pinging server.",
  },
  {
    name: "grpc-keepalive-interval",
    defValue: "2h",
    usage:
      "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
  },
  {
    name: "grpc-keepalive-timeout",
    defValue: "20s",
    usage:
      "Additional duration of wait before closing a non-responsive connection (0 to disable).",
  },
  {
    name: "listen-metrics-urls",
    defValue: "",
    usage:
      "List of URLs to listen on for the metrics and health endpoints (comma-separated; http only).",
  },
];

const HOUR_MS = 60 * 60 * 1000;

/** `serve --help`. */
export function serveHelp(): string {
  const lines = [
    "Usage: revkv serve [flags]",
    "",
    "Serves the etcd v3 gRPC API from one revkv data dir (a single-member etcd).",
    "Every flag may also be given as ETCD_<FLAG> (e.g. ETCD_DATA_DIR).",
    "",
  ];
  for (const spec of SERVE_FLAGS) {
    lines.push(`  --${spec.name} '${spec.defValue}'`, `      ${spec.usage}`);
  }
  return lines.join("\n") + "\n";
}

/** The etcd environment variable of a flag: `ETCD_DATA_DIR`. */
export function envName(flag: string): string {
  return "ETCD_" + flag.toUpperCase().replaceAll("-", "_");
}

/**
 * Parses `serve`'s arguments and environment.
 * @returns the config, or `"help"` for `-h`/`--help`.
 * @throws ServeFlagError naming the flag or variable that is wrong.
 */
export function parseServeFlags(
  args: readonly string[],
  env: Record<string, string> = {},
): ServeConfig | "help" {
  const specs = new Map(SERVE_FLAGS.map((spec) => [spec.name, spec]));
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-h" || arg === "--help" || arg === "-help") return "help";
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      throw new ServeFlagError(
        `'${arg}' is not a valid flag (serve takes no arguments)`,
      );
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    const spec = specs.get(name);
    if (spec === undefined) {
      throw new ServeFlagError(`flag provided but not defined: -${name}`);
    }
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (spec.bool) value = "true";
    else {
      const next = args[i + 1];
      if (next === undefined) {
        throw new ServeFlagError(`flag needs an argument: -${name}`);
      }
      value = next;
      i++;
    }
    given.set(name, value);
  }
  const raw = (name: string): { value: string; from: string } => {
    const flag = given.get(name);
    if (flag !== undefined) return { value: flag, from: `--${name}` };
    const variable = env[envName(name)];
    if (variable !== undefined) return { value: variable, from: envName(name) };
    return { value: specs.get(name)!.defValue, from: `--${name}` };
  };
  const int = (name: string, min: number): number => {
    const { value, from } = raw(name);
    if (!/^-?\d+$/.test(value.trim())) {
      throw new ServeFlagError(
        `invalid value "${value}" for ${from}: not an integer`,
      );
    }
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) {
      throw new ServeFlagError(
        `invalid value "${value}" for ${from}: must be an integer >= ${min}`,
      );
    }
    return n;
  };
  const duration = (name: string): number => {
    const { value, from } = raw(name);
    const ms = parseDurationMs(value);
    if (ms === undefined) {
      throw new ServeFlagError(
        `invalid value "${value}" for ${from}: not a duration (e.g. 5s, 2h, 500ms, 0)`,
      );
    }
    return ms;
  };
  const urls = (name: string, optional = false): string[] => {
    const { value, from } = raw(name);
    const list = value.split(",").map((u) => u.trim()).filter((u) => u !== "");
    if (list.length === 0 && optional) return [];
    if (list.length === 0) {
      throw new ServeFlagError(`invalid value "${value}" for ${from}: no URL`);
    }
    for (const u of list) {
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        throw new ServeFlagError(`invalid value "${u}" for ${from}: not a URL`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new ServeFlagError(
          `invalid value "${u}" for ${from}: URL scheme must be http or https`,
        );
      }
    }
    return list;
  };

  const listenUrls = (name: string, optional = false): URL[] => {
    const list = urls(name, optional).map((u) => new URL(u));
    for (const url of list) {
      if (url.protocol !== "http:") {
        throw new ServeFlagError(
          `invalid value "${url.href}" for --${name}: revkv serves plain-text http only (no TLS yet)`,
        );
      }
      if (url.port === "") {
        throw new ServeFlagError(
          `invalid value "${url.href}" for --${name}: a port is required`,
        );
      }
    }
    return list;
  };
  const name = raw("name").value;
  const listen = listenUrls("listen-client-urls");
  const mode = raw("auto-compaction-mode");
  if (mode.value !== "periodic" && mode.value !== "revision") {
    throw new ServeFlagError(
      `invalid auto-compaction-mode "${mode.value}" (${mode.from}): must be periodic or revision`,
    );
  }
  const retention = raw("auto-compaction-retention");
  let retentionValue: number;
  if (mode.value === "revision") {
    retentionValue = int("auto-compaction-retention", 0);
  } else if (/^\d+$/.test(retention.value)) {
    retentionValue = Number(retention.value) * HOUR_MS; // bare number: hours
  } else {
    const ms = parseDurationMs(retention.value);
    if (ms === undefined) {
      throw new ServeFlagError(
        `invalid value "${retention.value}" for ${retention.from}: not a duration (e.g. 1h, 30m) or a number of hours`,
      );
    }
    retentionValue = ms;
  }
  const fsync = raw("unsafe-no-fsync");
  if (!/^(1|0|t|f|true|false|TRUE|FALSE|True|False)$/.test(fsync.value)) {
    throw new ServeFlagError(
      `invalid boolean value "${fsync.value}" for ${fsync.from}`,
    );
  }
  const level = raw("log-level");
  if (!(LOG_LEVELS as readonly string[]).includes(level.value)) {
    throw new ServeFlagError(
      `invalid log level "${level.value}" (${level.from}): only supports ${
        LOG_LEVELS.join(", ")
      }`,
    );
  }
  const dataDir = raw("data-dir").value.replace("${name}", name);
  if (dataDir === "") {
    throw new ServeFlagError('invalid value "" for --data-dir: empty path');
  }
  return {
    dataDir,
    name,
    listenClientUrls: listen,
    advertiseClientUrls: urls("advertise-client-urls"),
    peerUrls: urls("initial-advertise-peer-urls"),
    snapshotCount: int("snapshot-count", 1),
    quotaBackendBytes: int("quota-backend-bytes", 0),
    maxTxnOps: int("max-txn-ops", 1),
    maxRequestBytes: int("max-request-bytes", 1),
    autoCompactionMode: mode.value,
    autoCompactionRetention: retentionValue,
    unsafeNoFsync: /^(1|t|true|TRUE|True)$/.test(fsync.value),
    logLevel: level.value as LogLevel,
    grpcKeepaliveMinTimeMs: duration("grpc-keepalive-min-time"),
    grpcKeepaliveIntervalMs: duration("grpc-keepalive-interval"),
    grpcKeepaliveTimeoutMs: duration("grpc-keepalive-timeout"),
    listenMetricsUrls: listenUrls("listen-metrics-urls", true),
  };
}

/**
 * Go's time.ParseDuration (units h, m, s, ms, us/µs, ns; a bare "0") as ms;
 * undefined when malformed or negative (revkv refuses what etcd would
 * silently treat as "disabled").
 */
export function parseDurationMs(text: string): number | undefined {
  if (text === "0" || text === "+0") return 0;
  const units: Record<string, number> = {
    h: HOUR_MS,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 1e-3,
    "\u00b5s": 1e-3,
    "\u03bcs": 1e-3,
    ns: 1e-6,
  };
  const body = text.startsWith("+") ? text.slice(1) : text;
  const parts = [
    ...body.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|h|m|s)/g),
  ];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== body) {
    return undefined;
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0);
}
