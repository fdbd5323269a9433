/**
 * The runtime layer on Node (see `runtime.ts`): the real file system on raw
 * file descriptors of `node:fs` (`nodeFs`: positioned reads and writes, so no
 * seeks; `fdatasync`), workers on `worker_threads`, and the process through
 * `process`.
 *
 * Raw descriptors rather than `FileHandle`s: `StorageFile.close` is
 * synchronous, and closing a `FileHandle`'s descriptor behind its back would
 * let it close a reused descriptor later.
 *
 * Loaded only on Node (`runtime.ts` imports it dynamically).
 *
 * @module
 */

import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import process from "node:process";
import { Readable } from "node:stream";
import type { Writable } from "node:stream";
import { parentPort, Worker } from "node:worker_threads";
import type { OpenFileOptions, StorageFile, StorageFs } from "./fs.ts";
import type {
  CommandOutput,
  Runtime,
  RuntimeWorker,
  RuntimeWriter,
} from "./runtime.ts";

/** Bytes per read call of `readFile`. */
const READ_CHUNK_BYTES = 8 * 1024 * 1024;

/** The longest interval a timer takes (keeps the process alive, idle). */
const KEEP_ALIVE_INTERVAL_MS = 2 ** 31 - 1;

/** `fn(...args, callback)` as a promise. */
function call<T>(
  fn: (...args: never[]) => void,
  ...args: unknown[]
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    (fn as (...a: unknown[]) => void)(
      ...args,
      (error: Error | null, value: T) => error ? reject(error) : resolve(value),
    );
  });
}

function openFlags(options: OpenFileOptions): number {
  const c = fs.constants;
  const write = options.write || options.create || options.createNew;
  return (write ? c.O_RDWR : c.O_RDONLY) |
    (options.create || options.createNew ? c.O_CREAT : 0) |
    (options.createNew ? c.O_EXCL : 0);
}

async function writeAll(
  fd: number,
  bytes: Uint8Array,
  offset: number | null,
): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = await call<number>(
      fs.write as never,
      fd,
      bytes,
      done,
      bytes.length - done,
      offset === null ? null : offset + done,
    );
    if (n <= 0) {
      throw new Error(`short write at offset ${(offset ?? 0) + done}`);
    }
    done += n;
  }
}

async function readInto(
  fd: number,
  bytes: Uint8Array,
  offset: number,
  chunkBytes = bytes.length,
): Promise<number> {
  let done = 0;
  while (done < bytes.length) {
    const n = await call<number>(
      fs.read as never,
      fd,
      bytes,
      done,
      Math.min(chunkBytes, bytes.length - done),
      offset + done,
    );
    if (n === 0) break;
    done += n;
  }
  return done;
}

class NodeFile implements StorageFile {
  #closed = false;
  constructor(readonly fd: number) {}

  writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    return writeAll(this.fd, bytes, offset);
  }

  readAt(offset: number, bytes: Uint8Array): Promise<number> {
    return readInto(this.fd, bytes, offset);
  }

  syncData(): Promise<void> {
    return call<void>(fs.fdatasync as never, this.fd);
  }

  truncate(length: number): Promise<void> {
    return call<void>(fs.ftruncate as never, this.fd, length);
  }

  async size(): Promise<number> {
    return (await call<fs.Stats>(fs.fstat as never, this.fd)).size;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.fd);
  }
}

/** The real file system, through `node:fs`. */
export const nodeFs: StorageFs = {
  async open(path, options = {}) {
    const fd = await call<number>(fs.open as never, path, openFlags(options));
    return new NodeFile(fd);
  },
  async readFile(path) {
    const fd = await call<number>(
      fs.open as never,
      path,
      fs.constants.O_RDONLY,
    );
    try {
      const size = (await call<fs.Stats>(fs.fstat as never, fd)).size;
      const bytes = new Uint8Array(size);
      const done = await readInto(fd, bytes, 0, READ_CHUNK_BYTES);
      return done === bytes.length ? bytes : bytes.subarray(0, done);
    } finally {
      fs.closeSync(fd);
    }
  },
  async writeFile(path, bytes, options = {}) {
    const c = fs.constants;
    const fd = await call<number>(
      fs.open as never,
      path,
      c.O_WRONLY | c.O_CREAT | (options.createNew ? c.O_EXCL : c.O_TRUNC),
    );
    try {
      await writeAll(fd, bytes, null);
      await call<void>(fs.fdatasync as never, fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  async readDir(path) {
    const entries = await fsp.readdir(path, { withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name);
  },
  async mkdir(path) {
    await fsp.mkdir(path, { recursive: true });
  },
  async remove(path) {
    try {
      const stat = await fsp.lstat(path);
      await (stat.isDirectory() ? fsp.rmdir(path) : fsp.unlink(path));
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") throw error;
    }
  },
  rename: (from, to) => fsp.rename(from, to),
  link: (from, to) => fsp.link(from, to),
  async syncDir(path) {
    const fd = await call<number>(
      fs.open as never,
      path,
      fs.constants.O_RDONLY,
    );
    try {
      await call<void>(fs.fsync as never, fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  async exists(path) {
    try {
      await fsp.lstat(path);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return false;
      throw error;
    }
  },
};

function nodeWriter(stream: Writable & { isTTY?: boolean }, fd: number) {
  const writer: RuntimeWriter = {
    write: (p) =>
      new Promise<number>((resolve, reject) => {
        // Resolves once the stream is done with `p`: the caller may reuse
        // it then.
        stream.write(
          p,
          (error) => error ? reject(error) : resolve(p.length),
        );
      }),
    writeSync(p) {
      let done = 0;
      while (done < p.length) done += fs.writeSync(fd, p, done);
    },
    isTerminal: () => stream.isTTY === true,
  };
  return writer;
}

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null | undefined)?.code;
}

let stdout: RuntimeWriter | undefined;
let stderr: RuntimeWriter | undefined;

/** The runtime layer on Node. */
export const nodeRuntime: Runtime = {
  name: "node",
  fs: nodeFs,
  pid: process.pid,
  os: process.platform,
  args: () => process.argv.slice(2),
  env: (variable) => process.env[variable],
  canRead: () => true,
  canUseNet: () => true,
  chmod: (path, mode) => fsp.chmod(path, mode),
  readFileSync: (path) => fs.readFileSync(path),
  existsSync: (path) => fs.existsSync(path),
  readDirNames: (path) => fsp.readdir(path),
  stat: (path) => fsp.stat(path),
  async makeTempFile(prefix) {
    const path = `${tmpdir()}/${prefix}${randomUUID()}`;
    await fsp.writeFile(path, new Uint8Array(0), { flag: "wx", mode: 0o600 });
    return path;
  },
  isNotFound: (error) => errorCode(error) === "ENOENT",
  isAlreadyExists: (error) => errorCode(error) === "EEXIST",
  isPermissionRefused: () => false,
  get stdout() {
    return stdout ??= nodeWriter(process.stdout, 1);
  },
  get stderr() {
    return stderr ??= nodeWriter(process.stderr, 2);
  },
  stdin: () =>
    Readable.toWeb(process.stdin) as unknown as ReadableStream<Uint8Array>,
  onSignal(signal, listener) {
    process.on(signal, listener);
    // As on Deno, a signal listener keeps the process alive (a CLI `watch`
    // waits for nothing else); Node's does not on its own.
    const alive = setInterval(() => {}, KEEP_ALIVE_INTERVAL_MS);
    return () => {
      clearInterval(alive);
      process.off(signal, listener);
    };
  },
  exit: (code) => process.exit(code),
  unrefTimer: (timer) => void (timer as { unref?: () => void }).unref?.(),
  startWorker(url) {
    const worker = new Worker(url);
    const wrapped: RuntimeWorker = {
      onmessage: null,
      onerror: null,
      postMessage: (message, transfer) =>
        worker.postMessage(message, transfer as never),
      terminate: () => void worker.terminate(),
    };
    worker.on("message", (data) => wrapped.onmessage?.({ data }));
    worker.on(
      "error",
      (error: Error) =>
        wrapped.onerror?.({ message: error.message, preventDefault() {} }),
    );
    return wrapped;
  },
  workerPort() {
    const port = parentPort;
    if (port === null) throw new Error("revkv: not in a worker thread");
    return {
      postMessage: (message, transfer) =>
        port.postMessage(message, transfer as never),
      onMessage: (listener) => void port.on("message", listener),
    };
  },
  runCommand(command, args, env): Promise<CommandOutput> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const out: Uint8Array[] = [];
      const err: Uint8Array[] = [];
      child.stdout.on("data", (chunk: Uint8Array) => out.push(chunk));
      child.stderr.on("data", (chunk: Uint8Array) => err.push(chunk));
      child.on("error", reject);
      child.on("close", (code) =>
        resolve({
          code: code ?? 1,
          success: code === 0,
          stdout: new Uint8Array(Buffer.concat(out)),
          stderr: new Uint8Array(Buffer.concat(err)),
        }));
    });
  },
};
