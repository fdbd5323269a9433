/**
 * The runtime revkv runs on — Deno or Node — behind one small interface, so
 * that no other module knows which one it is.
 *
 * Chosen once, at load, by feature detection: `globalThis.Deno` present means
 * Deno (`runtime_deno.ts`); absent means Node (`runtime_node.ts`, loaded with
 * a dynamic import so that Deno never evaluates `node:` modules, which would
 * cost ~60 ms of start-up).
 *
 * What differs, and so lives here: the real file system (`fs`, with
 * `fdatasync`), the few synchronous reads the data dir lock needs, how an
 * error says "not found" or "already exists", the process (pid, arguments,
 * environment, stdin/stdout/stderr, signals, exit, unref'd timers, child
 * commands). Sockets are in `src/wire/socket.ts`.
 *
 * Workers: a Deno `Worker` or a Node `worker_threads` Worker, behind
 * `startWorker` (main side) and `workerPort` (the worker's side), for the
 * replay worker (`replay_worker.ts`).
 *
 * @module
 */

import type { StorageFs } from "./fs.ts";
import { denoRuntime } from "./runtime_deno.ts";

/** A process stream bytes are written to (stdout, stderr). */
export interface RuntimeWriter {
  /** Writes some of `p`; resolves with how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
  /** Writes all of `p` now (best for short lines such as progress). */
  writeSync(p: Uint8Array): void;
  /** Whether the stream is a terminal. */
  isTerminal(): boolean;
}

/** What a finished child command gave. */
export interface CommandOutput {
  /** Exit code. */
  code: number;
  /** Whether it exited 0. */
  success: boolean;
  /** Its stdout. */
  stdout: Uint8Array;
  /** Its stderr. */
  stderr: Uint8Array;
}

/** A worker thread, as the replay worker's main-thread side uses it. */
export interface RuntimeWorker {
  /** Called with each message the worker posts. */
  onmessage: ((event: { data: unknown }) => void) | null;
  /** Called when the worker fails (uncaught error, failed to load). */
  onerror:
    | ((event: { message: string; preventDefault(): void }) => void)
    | null;
  /** Sends `message`, moving the `transfer` buffers. */
  postMessage(message: unknown, transfer?: Transferable[]): void;
  /** Ends the worker. */
  terminate(): void;
}

/** Inside a worker: the channel to the thread that started it. */
export interface RuntimeWorkerPort {
  /** Sends `message` to the main thread, moving the `transfer` buffers. */
  postMessage(message: unknown, transfer?: Transferable[]): void;
  /** Calls `listener` with each message from the main thread. */
  onMessage(listener: (data: unknown) => void): void;
}

/** The signals revkv listens for. */
export type RuntimeSignal = "SIGINT" | "SIGTERM";

/** The runtime's operations (see the module header). */
export interface Runtime {
  /** Which runtime. */
  readonly name: "deno" | "node";
  /** The real file system. */
  readonly fs: StorageFs;
  /** This process's id. */
  readonly pid: number;
  /** The operating system (`"linux"`, `"darwin"`, …). */
  readonly os: string;
  /** The script's arguments (after the program and script names). */
  args(): string[];
  /** An environment variable; undefined when unset or not readable. */
  env(variable: string): string | undefined;
  /** Whether `path` may be read without asking (Deno's permissions). */
  canRead(path: string | URL): boolean;
  /** Whether sockets may be used without asking (Deno's net permission). */
  canUseNet(): boolean;
  /** Sets a file's mode bits. */
  chmod(path: string, mode: number): Promise<void>;
  /** Reads a whole file synchronously. */
  readFileSync(path: string): Uint8Array;
  /** Whether `path` exists (synchronous stat; follows symlinks). */
  existsSync(path: string): boolean;
  /** Names of every entry of a directory (files, dirs, links). */
  readDirNames(path: string): Promise<string[]>;
  /** A file's size in bytes (stat; follows symlinks). */
  stat(path: string): Promise<{ size: number }>;
  /** Creates an empty temporary file; resolves with its path. */
  makeTempFile(prefix: string): Promise<string>;
  /** Whether `error` says the file does not exist (ENOENT). */
  isNotFound(error: unknown): boolean;
  /** Whether `error` says the file exists (EEXIST). */
  isAlreadyExists(error: unknown): boolean;
  /**
   * Whether `error` is a permission the runtime refused (Deno's
   * `NotCapable`), not a failure of the disk. Never on Node.
   */
  isPermissionRefused(error: unknown): boolean;
  /** Standard output. */
  readonly stdout: RuntimeWriter;
  /** Standard error. */
  readonly stderr: RuntimeWriter;
  /** Standard input (touched on the first call only). */
  stdin(): ReadableStream<Uint8Array>;
  /**
   * Calls `listener` on `signal`; returns what removes it. While it is set
   * the process stays alive (Deno's semantics, on Node too).
   */
  onSignal(signal: RuntimeSignal, listener: () => void): () => void;
  /** Ends the process with `code`. */
  exit(code: number): never;
  /** Makes a timer not keep the process alive on its own. */
  unrefTimer(timer: ReturnType<typeof setTimeout>): void;
  /** Starts the module worker at `url` (a `file:` URL). */
  startWorker(url: URL): RuntimeWorker;
  /** Inside a worker started by `startWorker`: its port. */
  workerPort(): RuntimeWorkerPort;
  /** Runs a command to its end (stdin empty, the environment plus `env`). */
  runCommand(
    command: string,
    args: string[],
    env: Record<string, string>,
  ): Promise<CommandOutput>;
}

/** The runtime this process is on. */
export const runtime: Runtime = "Deno" in globalThis
  ? denoRuntime
  : (await import("./runtime_node.ts")).nodeRuntime;
