/**
 * Starts `cli.ts serve` as a child process on a free loopback port, for the
 * tests and the benchmark that talk to it over the wire: waits for the
 * start-up lines, learns the port from them, and stops the child by PID
 * (SIGTERM, or SIGKILL for crash tests).
 */

const ROOT = new URL("../", import.meta.url);
/** Longest wait for the start-up lines (recovery of a small data dir). */
const STARTUP_MS_MAX = 30_000;
/** Longest wait for a SIGTERM'd server to exit. */
const SHUTDOWN_MS_MAX = 15_000;

/** A running `cli.ts serve`. */
export interface ServeProcess {
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** `127.0.0.1:PORT`. */
  readonly address: string;
  /** The child's PID. */
  readonly pid: number;
  /** What it printed on stdout so far. */
  stdout(): string;
  /** What it printed on stderr so far (its log). */
  stderr(): string;
  /** SIGTERM and wait: resolves to the exit code. */
  stop(): Promise<number>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

/**
 * Starts `cli.ts serve --data-dir=<dataDir> <args>` on a free port;
 * `program` runs another CLI instead (e.g. `["node", "dist/revkv-cli.mjs"]`).
 */
export async function startServe(
  dataDir: string,
  args: string[] = [],
  program: string[] = [
    Deno.execPath(),
    "run",
    "-A",
    new URL("cli.ts", ROOT).pathname,
  ],
): Promise<ServeProcess> {
  const child = new Deno.Command(program[0]!, {
    args: [
      ...program.slice(1),
      "serve",
      `--data-dir=${dataDir}`,
      "--listen-client-urls=http://127.0.0.1:0",
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const decoder = new TextDecoder();
  const drain = async (
    stream: ReadableStream<Uint8Array>,
    add: (text: string) => void,
  ) => {
    for await (const chunk of stream) add(decoder.decode(chunk));
  };
  const drained = Promise.all([
    drain(child.stdout, (t) => out += t),
    drain(child.stderr, (t) => err += t),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const deadline = Date.now() + STARTUP_MS_MAX;
  let address: string | undefined;
  while (Date.now() < deadline && !exited) {
    const m = out.match(/serving the etcd v3 API on http:\/\/([\d.]+:\d+)/);
    if (m && out.includes("recovery:")) {
      address = m[1];
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const kill = async (signal: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch { /* gone */ }
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, SHUTDOWN_MS_MAX);
    const s = await status;
    clearTimeout(timer);
    await drained;
    return s.code;
  };
  if (address === undefined) {
    await kill("SIGKILL");
    throw new Error(`serve did not start:\n${out}\n${err}`);
  }
  return {
    endpoint: `http://${address}`,
    address,
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    stop: () => kill("SIGTERM"),
    kill: async () => {
      await kill("SIGKILL");
    },
  };
}
