/**
 * A real etcd for differential tests: starts a fresh single-member etcd on
 * loopback with its own free ports and temporary data dir, and offers
 * `etcdctl` and the JSON gateway against it.
 *
 * Every wait is bounded, and `stop()` kills the process by its PID and
 * removes the data dir; tests call it in a `finally`.
 *
 * @example Start, use and stop an etcd
 * ```ts ignore
 * import { etcdAvailable, etcdIgnore, startEtcd } from "./etcd_oracle.ts";
 *
 * Deno.test({
 *   name: "a put is visible to a get",
 *   ignore: etcdIgnore(),
 *   async fn() {
 *     const etcd = await startEtcd();
 *     try {
 *       await etcd.ctl(["put", "foo", "bar"]);
 *       const out = await etcd.ctl(["get", "foo", "-w", "json"]);
 *       console.log(out.stdout);
 *     } finally {
 *       await etcd.stop();
 *     }
 *   },
 * });
 * ```
 *
 * @module
 */

/** How long etcd may take to become healthy after it was started. */
const STARTUP_MS_MAX = 15_000;
/** How long etcd may take to exit after SIGTERM before it gets SIGKILL. */
const SHUTDOWN_MS_MAX = 5_000;
/** How long one etcdctl run may take before it is killed. */
const CTL_MS_MAX = 15_000;
/** How long one gateway request may take. */
const GATEWAY_MS_MAX = 10_000;
/** Poll interval while waiting for health. */
const HEALTH_POLL_MS = 50;
/** How many times to start etcd on new ports if a port was taken meanwhile. */
const START_ATTEMPTS_MAX = 3;
/** How much of etcd's log is kept for error messages. */
const LOG_BYTES_MAX = 16_384;

/** Result of one `etcdctl` run. */
export interface CtlResult {
  /** Exit code of etcdctl. */
  code: number;
  /** What etcdctl printed to stdout. */
  stdout: string;
  /** What etcdctl printed to stderr (its logs and `Error: ...`). */
  stderr: string;
}

/** A running etcd, from {@linkcode startEtcd}. */
export interface EtcdOracle {
  /** The client URL, e.g. `http://127.0.0.1:40123`. */
  readonly endpoint: string;
  /** The PID of the etcd process. */
  readonly pid: number;
  /**
   * Runs `etcdctl --endpoints=<endpoint> <args>` with `ETCDCTL_API=3`.
   * @param args the command and its flags, e.g. `["get", "foo", "-w", "json"]`.
   * @param stdin text to feed on standard input (e.g. for `txn -i`).
   * @returns exit code, stdout and stderr.
   */
  ctl(args: string[], stdin?: string): Promise<CtlResult>;
  /**
   * POSTs `body` as JSON to etcd's grpc-gateway at `<endpoint><path>`, e.g.
   * `/v3/kv/range` with base64 `key` / `range_end`. Resolves to the parsed
   * response for success and for gRPC errors alike: an error comes back as
   * `{ error, message, code }` (code = gRPC status) with a non-200 status.
   * @param path the gateway path, starting with `/v3/`.
   * @param body the request message in proto3 JSON.
   * @returns the parsed JSON response.
   */
  gateway(path: string, body: unknown): Promise<unknown>;
  /** Kills etcd (SIGTERM, then SIGKILL) and removes its data dir. Idempotent. */
  stop(): Promise<void>;
}

/** Whether `etcd` and `etcdctl` can be found on the PATH. */
export function etcdAvailable(): boolean {
  return findOnPath("etcd") !== undefined &&
    findOnPath("etcdctl") !== undefined;
}

/**
 * The value for `Deno.test`'s `ignore`: true (with a note on stderr) when
 * etcd is not installed locally. In CI (`CI=true`) it is always false, so a
 * missing etcd fails the test instead of skipping it.
 * @param what names the test group in the note.
 * @returns whether to ignore the test.
 */
export function etcdIgnore(what = "etcd differential tests"): boolean {
  if (etcdAvailable()) return false;
  if (isCI()) return false; // startEtcd() will throw a clear error.
  if (noted.has(what)) return true;
  noted.add(what);
  console.error(
    `note: ${what} are ignored: etcd/etcdctl not found on PATH ` +
      "(apt-get install etcd-server etcd-client); in CI they fail instead.",
  );
  return true;
}

/** Labels already noted as ignored, so that each is said once. */
const noted = new Set<string>();

function isCI(): boolean {
  const ci = Deno.env.get("CI") ?? "";
  return ci !== "" && ci !== "false" && ci !== "0";
}

function findOnPath(name: string): string | undefined {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) {
        return candidate;
      }
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** Picks a free TCP port on 127.0.0.1 (the OS's choice). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}

/** Keeps the last `LOG_BYTES_MAX` bytes of a stream, draining it fully. */
class LogTail {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#drain(stream);
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream) {
        this.#chunks.push(chunk);
        this.#bytes += chunk.length;
        while (
          this.#bytes > LOG_BYTES_MAX && this.#chunks.length > 1
        ) {
          this.#bytes -= this.#chunks.shift()!.length;
        }
      }
    } catch {
      // The process died; what we have is all there is.
    }
  }

  text(): string {
    const all = new Uint8Array(this.#bytes);
    let offset = 0;
    for (const chunk of this.#chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(all);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts a fresh etcd on loopback and waits (at most 15 s) until it is
 * healthy.
 * @param options.args more etcd flags (e.g. `--quota-backend-bytes=…`).
 * @returns the running etcd; call `stop()` in a `finally`.
 * @throws Error when etcd is missing, exits, or does not become healthy.
 */
export async function startEtcd(
  options: { args?: string[] } = {},
): Promise<EtcdOracle> {
  if (!etcdAvailable()) {
    throw new Error(
      "etcd/etcdctl not found on PATH: install them " +
        "(apt-get install etcd-server etcd-client); .ci/run does this in CI",
    );
  }
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS_MAX; attempt++) {
    try {
      return await startOnce(options.args ?? []);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

async function startOnce(extraArgs: string[]): Promise<EtcdOracle> {
  const clientPort = freePort();
  let peerPort = freePort();
  while (peerPort === clientPort) peerPort = freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const dataDir = await Deno.makeTempDir({ prefix: "revkv_etcd_" });
  const name = "oracle";

  const child = new Deno.Command("etcd", {
    args: [
      `--name=${name}`,
      `--data-dir=${dataDir}/data`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${name}=${peerUrl}`,
      "--initial-cluster-state=new",
      `--initial-cluster-token=revkv-oracle-${clientPort}`,
      // The metrics listener would take another port; keep it off.
      "--listen-metrics-urls=",
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
      ...extraArgs,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = new LogTail(child.stderr);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => {
    exited = s;
    return s;
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (exited === undefined) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        status.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), SHUTDOWN_MS_MAX);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        await status;
      }
    }
    await log.done;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  };

  try {
    await waitHealthy(endpoint, () => exited, log);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    endpoint,
    pid: child.pid,
    ctl: (args, stdin) => runCtl(endpoint, args, stdin),
    gateway: (path, body) => postGateway(endpoint, path, body),
    stop,
  };
}

async function waitHealthy(
  endpoint: string,
  exited: () => Deno.CommandStatus | undefined,
  log: LogTail,
): Promise<void> {
  const deadline = Date.now() + STARTUP_MS_MAX;
  let lastProblem = "no answer yet";
  while (Date.now() < deadline) {
    const status = exited();
    if (status !== undefined) {
      await log.done;
      throw new Error(
        `etcd exited with code ${status.code} while starting:\n${log.text()}`,
      );
    }
    try {
      const response = await fetch(`${endpoint}/health`, {
        signal: AbortSignal.timeout(1_000),
      });
      const text = await response.text();
      if (response.ok && JSON.parse(text).health === "true") return;
      lastProblem = `/health said ${response.status} ${text}`;
    } catch (error) {
      lastProblem = String(error);
    }
    await sleep(HEALTH_POLL_MS);
  }
  throw new Error(
    `etcd at ${endpoint} not healthy within ${STARTUP_MS_MAX} ms ` +
      `(${lastProblem}):\n${log.text()}`,
  );
}

/** Runs etcdctl against any endpoint (see `EtcdOracle.ctl`). */
export async function runCtl(
  endpoint: string,
  args: string[],
  stdin?: string,
): Promise<CtlResult> {
  const child = new Deno.Command("etcdctl", {
    args: [
      `--endpoints=${endpoint}`,
      "--dial-timeout=5s",
      "--command-timeout=10s",
      ...args,
    ],
    env: { ETCDCTL_API: "3" },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, CTL_MS_MAX);
  try {
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    }
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

async function postGateway(
  endpoint: string,
  path: string,
  body: unknown,
): Promise<unknown> {
  const response = await fetch(`${endpoint}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(GATEWAY_MS_MAX),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(
      `gateway ${path} answered ${response.status} with non-JSON: ${text}`,
    );
  }
}
