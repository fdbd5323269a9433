/**
 * What a running command sees: its arguments and flags, the output, stdin,
 * and — once its arguments are validated — the store and the printer (in
 * that order, as etcdctl validates arguments before it creates its client
 * and the output format when it does).
 *
 * Remote mode (`--endpoints`, `ETCDCTL_ENDPOINTS`) builds `connect()`'s
 * options from etcdctl's client flags; embedded mode opens `--data-dir`.
 *
 * @module
 */

import { connect, type ConnectOptions, type KvStore, open } from "../../mod.ts";
import {
  CliExit,
  EXIT_BAD_ARGS,
  EXIT_BAD_CONNECTION,
  EXIT_BAD_FEATURE,
  EXIT_ERROR,
} from "./errors.ts";
import type { FlagValue } from "./flags.ts";
import { concatBytes } from "./go_format.ts";
import { PendingStore } from "./pending_store.ts";
import { Output, type OutputFormat, Printer } from "./printers.ts";
import type { RawArgs } from "./raw_args.ts";
import { runtime } from "../storage/runtime.ts";

/** Something bytes can be written to (`Deno.stdout` is one). */
export interface CliWriter {
  /** Writes some of `p`; returns how many bytes were written. */
  write(p: Uint8Array): Promise<number> | number;
}

/** The process around the CLI: streams, environment, and optionally a store. */
export interface CliIO {
  /** Standard output. */
  stdout: CliWriter;
  /** Standard error. */
  stderr: CliWriter;
  /**
   * Standard input (absent: empty). A function is called on the first read:
   * touching `Deno.stdin.readable` loads Deno's streams (~7 ms), which
   * commands that never read stdin should not pay at start-up.
   */
  stdin?: ReadableStream<Uint8Array> | (() => ReadableStream<Uint8Array>);
  /**
   * Use this store instead of opening `--data-dir` or connecting to
   * `--endpoints` (tests: one in-memory store).
   */
  store?: KvStore;
  /** Environment (`ETCDCTL_*` flags); absent: none. */
  env?: Record<string, string>;
  /** Aborted on Ctrl-C: ends `watch` and `lease keep-alive` cleanly. */
  signal?: AbortSignal;
  /**
   * The raw bytes of arguments that are not UTF-8 (`readRawArgs`), so keys
   * and values are stored as the bytes the user gave; absent: none.
   */
  rawArgs?: RawArgs;
}

/** The default data dir of embedded mode. */
export const DEFAULT_DATA_DIR = "default.revkv";
/** The `--data-dir` value that opens a fresh in-memory store. */
export const MEMORY_DATA_DIR = ":memory:";

/** etcdctl's default `--dial-timeout`. */
const DIAL_TIMEOUT_MS_DEFAULT = 2_000;
/** etcdctl's default `--command-timeout`. */
const COMMAND_TIMEOUT_MS_DEFAULT = 5_000;
/** etcdctl's default `--keepalive-time`. */
const KEEPALIVE_TIME_MS_DEFAULT = 2_000;
/** etcdctl's default `--keepalive-timeout`. */
const KEEPALIVE_TIMEOUT_MS_DEFAULT = 6_000;

/** Client flags (TLS, authentication, discovery) revkv's client lacks. */
const UNSUPPORTED_CLIENT_FLAGS = [
  "cert",
  "key",
  "cacert",
  "user",
  "password",
  "discovery-srv",
];

/** The file whose presence marks a data dir that holds a store. */
const STORE_MARKER_FILE = "meta.json";

/** Whether `dir` holds a revkv store (its `meta.json` exists). */
async function holdsStore(dir: string): Promise<boolean> {
  try {
    await runtime.stat(`${dir}/${STORE_MARKER_FILE}`);
    return true;
  } catch (error) {
    if (runtime.isNotFound(error)) return false;
    throw error;
  }
}

/**
 * One line for a permission Deno refused, naming the flag that grants it
 * (instead of Deno's `NotCapable` stack); undefined for other errors.
 */
export function permissionHint(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const isPermission = runtime.isPermissionRefused(error) ||
    error.name === "PermissionDenied" && /--allow-/.test(error.message);
  if (!isPermission) return undefined;
  // Deno's message names the access: `Requires read access to "x", run
  // again with the --allow-read flag`.
  const flag = error.message.match(/--allow-[a-z-]+/)?.[0];
  const what = error.message.match(/Requires ([a-z-]+ access to [^,]+)/)?.[1];
  return `permission denied${what ? `: revkv needs ${what}` : ""}; ` +
    `run deno with ${flag ?? "the missing --allow-* flag"} (or -A)`;
}

/** Writes every byte of `data`. */
export async function writeAll(w: CliWriter, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await w.write(data.subarray(offset));
  }
}

/** Reads lines from a stream as Go's `bufio.Reader.ReadString('\n')`. */
export class LineReader {
  readonly #source:
    | ReadableStream<Uint8Array>
    | (() => ReadableStream<Uint8Array>)
    | undefined;
  #opened: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #buffer: Uint8Array = new Uint8Array(0);
  #eof = false;

  constructor(
    stream:
      | ReadableStream<Uint8Array>
      | (() => ReadableStream<Uint8Array>)
      | undefined,
  ) {
    this.#source = stream;
  }

  /** The stream's reader, opened on first use. */
  get #reader(): ReadableStreamDefaultReader<Uint8Array> | undefined {
    if (this.#opened === undefined && this.#source !== undefined) {
      const stream = typeof this.#source === "function"
        ? this.#source()
        : this.#source;
      this.#opened = stream.getReader();
    }
    return this.#opened;
  }

  /** The next line with its `\n`, or `{ partial, eof: true }` at the end. */
  async readLine(): Promise<{ line: Uint8Array; eof: boolean }> {
    for (;;) {
      const nl = this.#buffer.indexOf(0x0a);
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl + 1);
        this.#buffer = this.#buffer.slice(nl + 1);
        return { line, eof: false };
      }
      if (this.#eof || !this.#reader) {
        const line = this.#buffer;
        this.#buffer = new Uint8Array(0);
        return { line, eof: true };
      }
      const { value, done } = await this.#reader.read();
      if (done) this.#eof = true;
      else this.#buffer = concatBytes([this.#buffer, value]);
    }
  }

  /** Everything left. */
  async readAll(): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [this.#buffer];
    this.#buffer = new Uint8Array(0);
    while (this.#reader && !this.#eof) {
      const { value, done } = await this.#reader.read();
      if (done) this.#eof = true;
      else chunks.push(value);
    }
    return concatBytes(chunks);
  }

  /** Lets go of the stream. */
  release(): void {
    try {
      this.#opened?.releaseLock();
    } catch {
      // A pending read holds it; the process is ending anyway.
    }
  }
}

/** Positional arguments and flag values, with typed accessors. */
export class FlagView {
  constructor(
    /** Positional arguments. */
    readonly args: string[],
    /** Flag values by long name (only the flags that were given). */
    readonly flags: Map<string, FlagValue>,
    /** Raw bytes of the arguments that are not UTF-8. */
    readonly rawArgs?: RawArgs,
  ) {}

  /**
   * A key or value argument as the user gave it: its raw bytes when it is
   * not UTF-8 and the platform kept them, else the string.
   * @throws CliExit 128 when two different non-UTF-8 arguments decode alike.
   */
  bytesOf(text: string): string | Uint8Array {
    const raw = this.rawArgs?.get(text);
    if (raw === undefined) return text;
    if (raw === null) {
      throw new CliExit(
        EXIT_BAD_ARGS,
        "two arguments that are not UTF-8 decode to the same text; " +
          "revkv cannot tell their bytes apart (give one on stdin)",
      );
    }
    return raw;
  }

  /** A boolean flag. */
  bool(name: string): boolean {
    return (this.flags.get(name) as boolean | undefined) ?? false;
  }

  /** A string flag (its default when not set). */
  string(name: string, defValue = ""): string {
    return (this.flags.get(name) as string | undefined) ?? defValue;
  }

  /** An int64 flag. */
  int(name: string): bigint {
    return (this.flags.get(name) as bigint | undefined) ?? 0n;
  }

  /** Whether the flag was given. */
  has(name: string): boolean {
    return this.flags.has(name);
  }
}

/** A command's view of its invocation. */
export class CommandContext extends FlagView {
  /** What the command prints on stdout (flushed by `runCli`). */
  readonly out = new Output();
  /** Standard input, line by line. */
  readonly stdin: LineReader;
  #printer: Printer | undefined;
  #store: KvStore | undefined;
  #ownStore = false;

  constructor(
    args: string[],
    /** Positional arguments before `--` (-1: no `--`). */
    readonly argsLenAtDash: number,
    flags: Map<string, FlagValue>,
    readonly io: CliIO,
    /** Flushes `out` to stdout now (for streaming commands). */
    readonly flush: () => Promise<void>,
  ) {
    super(args, flags, io.rawArgs);
    this.stdin = new LineReader(io.stdin);
  }

  /**
   * The printer for `--write-out` and `--hex`.
   * @throws CliExit 4 `unsupported output format` for an unknown format.
   */
  printer(): Printer {
    if (this.#printer) return this.#printer;
    const format = this.string("write-out", "simple");
    if (!["simple", "json", "fields", "table", "protobuf"].includes(format)) {
      throw new CliExit(EXIT_BAD_FEATURE, "unsupported output format");
    }
    this.#printer = new Printer(format as OutputFormat, this.out, {
      hex: this.bool("hex"),
    });
    return this.#printer;
  }

  /**
   * The store: the one given in `io`, a client of `--endpoints` in remote
   * mode (connecting in the background, see {@linkcode PendingStore}), or
   * the data dir opened in embedded mode. Validates the output format
   * first, as etcdctl does when it creates its client.
   *
   * A data dir that holds no store yet is created only for a command that
   * writes (`options.create`), and the CLI says so on stderr; any other
   * command gets a clear error and creates nothing, as etcdctl fails
   * against an endpoint where no etcd runs (a mistyped `--data-dir` must
   * not silently start an empty store).
   *
   * A data dir another process holds is reached through that process's
   * store (its local endpoint), with the same semantics. A long-running
   * command (`watch`, `lease keep-alive`, `make-mirror`) asks to `share`
   * the dir it opens in turn, so that `put` in another terminal reaches
   * it; a short one does not start serving for the moment it runs.
   * @throws CliExit 2 when the store cannot be opened, or no endpoint is given.
   */
  async store(
    options: { create?: boolean; share?: boolean } = {},
  ): Promise<KvStore> {
    this.printer();
    if (this.#store) return this.#store;
    if (this.io.store) return this.#store = this.io.store;
    if (this.remote) {
      this.#store = this.#connect(this.endpoints());
      this.#ownStore = true;
      return this.#store;
    }
    const dir = this.string("data-dir", DEFAULT_DATA_DIR);
    if (dir === MEMORY_DATA_DIR) {
      // A fresh in-memory store for this one invocation (for trying
      // commands out, and for terminal tests of `txn -i`).
      this.#store = await open();
      this.#ownStore = true;
      return this.#store;
    }
    let created = false;
    try {
      if (!(await holdsStore(dir))) {
        if (!options.create) {
          throw new CliExit(
            EXIT_BAD_CONNECTION,
            `no revkv store in data dir ${JSON.stringify(dir)}: ` +
              "nothing was created (a write such as `put` creates it; " +
              "check --data-dir)",
          );
        }
        created = true;
      }
      // A dir another process holds is reached through that owner; a
      // long-running command shares the dir in turn (see `options.share`).
      this.#store = await open(dir, {
        whenLocked: "connect",
        share: options.share ?? false,
      });
    } catch (error) {
      if (error instanceof CliExit) throw error;
      const permission = permissionHint(error);
      if (permission) throw new CliExit(EXIT_BAD_CONNECTION, permission);
      // An owner that does not share (a running server, a program opened
      // with share: false) holds the lock; the CLI can talk to a server.
      const hint = (error as Error).name === "LockedError"
        ? "; if that process is a revkv server, use --endpoints with its " +
          "client address (default 127.0.0.1:2379) instead of --data-dir"
        : "";
      throw new CliExit(
        EXIT_BAD_CONNECTION,
        `cannot open data dir ${JSON.stringify(dir)}: ${
          (error as Error).message
        }${hint}`,
      );
    }
    this.#ownStore = true;
    if (created) {
      await writeAll(
        this.io.stderr,
        new TextEncoder().encode(
          `revkv: created a new store in data dir ${JSON.stringify(dir)}\n`,
        ),
      );
    }
    return this.#store;
  }

  /** etcdctl's `--command-timeout` in milliseconds (default 5 s). */
  commandTimeoutMs(): number {
    return this.#duration("command-timeout", COMMAND_TIMEOUT_MS_DEFAULT);
  }

  #duration(name: string, defaultMs: number): number {
    return (this.flags.get(name) as number | undefined) ?? defaultMs;
  }

  /**
   * Whether the command talks to servers (`--endpoints` or
   * `ETCDCTL_ENDPOINTS` given) rather than an embedded store.
   */
  get remote(): boolean {
    return this.io.store === undefined && this.has("endpoints");
  }

  /** `--endpoints` as given (etcdctl prints them so). */
  endpoints(): string[] {
    return (this.flags.get("endpoints") as string[] | undefined) ??
      ["127.0.0.1:2379"];
  }

  /**
   * The options `connect()` gets for `endpoints`: etcdctl's dial, command
   * and keep-alive flags (`--dial-timeout` 2 s, `--command-timeout` 5 s,
   * `--keepalive-time` 2 s, `--keepalive-timeout` 6 s by default), the
   * endpoints trimmed of spaces as etcdctl trims them.
   */
  clientOptions(endpoints: string[]): ConnectOptions {
    return {
      endpoints: endpoints.map((e) => e.trim()),
      dialTimeoutMs: this.#duration("dial-timeout", DIAL_TIMEOUT_MS_DEFAULT),
      requestTimeoutMs: this.commandTimeoutMs(),
      keepAliveTimeMs: this.#duration(
        "keepalive-time",
        KEEPALIVE_TIME_MS_DEFAULT,
      ),
      keepAliveTimeoutMs: this.#duration(
        "keepalive-timeout",
        KEEPALIVE_TIMEOUT_MS_DEFAULT,
      ),
    };
  }

  /** Connections this context made, closed with it. */
  readonly #connections: KvStore[] = [];

  /**
   * A client of `endpoints` that connects in the background, as etcdctl's
   * dial does not block: an unreachable endpoint fails the first request
   * (`context deadline exceeded`), in the words of the command making it.
   * @throws CliExit 2 `etcdclient: no available endpoints` for none.
   */
  #connect(endpoints: string[]): KvStore {
    const options = this.clientOptions(endpoints);
    const secure = UNSUPPORTED_CLIENT_FLAGS.find((f) => this.has(f));
    if (
      secure !== undefined ||
      this.has("insecure-transport") && !this.bool("insecure-transport")
    ) {
      // Connecting in plain text when TLS or a login was asked for would
      // send what the user meant to protect: refuse instead.
      throw new CliExit(
        EXIT_BAD_CONNECTION,
        `--${secure ?? "insecure-transport=false"} is not supported: ` +
          "revkv's client speaks plain-text gRPC without authentication",
      );
    }
    if (options.endpoints.length === 0) {
      throw new CliExit(
        EXIT_BAD_CONNECTION,
        "etcdclient: no available endpoints",
      );
    }
    return new PendingStore(connect(options));
  }

  /**
   * A client of one endpoint, for a command that asks each endpoint in
   * turn (closed with the context).
   */
  connectTo(endpoint: string): KvStore {
    this.printer();
    const store = this.#connect([endpoint]);
    this.#connections.push(store);
    return store;
  }

  /**
   * What the endpoint commands call the store: the data dir in embedded
   * mode, `embedded` for a store handed in by the caller.
   */
  endpointName(): string {
    if (this.io.store) return "embedded";
    if (this.remote) return this.endpoints()[0] ?? "";
    return this.string("data-dir", DEFAULT_DATA_DIR) || DEFAULT_DATA_DIR;
  }

  /**
   * The stores the endpoint commands (`endpoint status|health|hashkv`,
   * `defrag`) address one by one, with the names they print: the one store
   * in embedded mode (named as {@linkcode endpointName}), one connection
   * per endpoint in remote mode, as etcdctl asks each endpoint itself.
   */
  async endpointStores(): Promise<{ endpoint: string; store: KvStore }[]> {
    if (!this.remote) {
      return [{ endpoint: this.endpointName(), store: await this.store() }];
    }
    const endpoints = this.bool("cluster")
      ? await this.#clusterEndpoints()
      : this.endpoints();
    return endpoints.map((endpoint) => ({
      endpoint,
      store: this.connectTo(endpoint),
    }));
  }

  /** etcdctl's `--cluster`: every client URL of the cluster's members. */
  async #clusterEndpoints(): Promise<string[]> {
    try {
      const { members } = await (await this.store()).memberList();
      return members.flatMap((m) => m.clientUrls);
    } catch (error) {
      if (error instanceof CliExit) throw error;
      throw new CliExit(
        EXIT_ERROR,
        "failed to fetch endpoints from etcd cluster member list: " +
          (error as Error).message,
      );
    }
  }

  /** Closes the store if this context opened it. */
  async close(): Promise<void> {
    this.stdin.release();
    const closing = this.#connections.map((c) => c.close());
    if (this.#ownStore && this.#store) closing.push(this.#store.close());
    await Promise.all(closing);
  }
}
