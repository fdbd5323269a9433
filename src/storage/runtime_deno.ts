/**
 * The runtime layer on Deno (see `runtime.ts`): the real file system through
 * `Deno.open` and friends (`denoFs`), and the process through `Deno.*`.
 *
 * @module
 */

import type { StorageFile, StorageFs } from "./fs.ts";
import type {
  CommandOutput,
  Runtime,
  RuntimeWorker,
  RuntimeWorkerPort,
  RuntimeWriter,
} from "./runtime.ts";

/** Bytes per read call of `readFile`. */
const READ_CHUNK_BYTES = 8 * 1024 * 1024;

class DenoFile implements StorageFile {
  #closed = false;
  /**
   * The file position after the last read or write, or -1 when unknown (a
   * call failed midway). The WAL appends where its last write ended, so
   * tracking it saves a seek (one async op) per batch.
   */
  #position = 0;
  constructor(readonly file: Deno.FsFile) {}

  async #seek(offset: number): Promise<void> {
    if (this.#position === offset) return;
    this.#position = -1;
    await this.file.seek(offset, Deno.SeekMode.Start);
    this.#position = offset;
  }

  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    await this.#seek(offset);
    this.#position = -1;
    let done = 0;
    while (done < bytes.length) {
      const n = await this.file.write(bytes.subarray(done));
      if (n <= 0) throw new Error(`short write at offset ${offset + done}`);
      done += n;
    }
    this.#position = offset + done;
  }

  async readAt(offset: number, bytes: Uint8Array): Promise<number> {
    await this.#seek(offset);
    this.#position = -1;
    let done = 0;
    while (done < bytes.length) {
      const n = await this.file.read(bytes.subarray(done));
      if (n === null) break;
      done += n;
    }
    this.#position = offset + done;
    return done;
  }

  syncData(): Promise<void> {
    return this.file.syncData();
  }

  truncate(length: number): Promise<void> {
    return this.file.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.file.stat()).size;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.file.close();
  }
}

/** The real file system, through Deno's APIs. */
export const denoFs: StorageFs = {
  async open(path, options = {}) {
    const file = await Deno.open(path, {
      read: true,
      write: options.write || options.create || options.createNew,
      create: options.create,
      createNew: options.createNew,
    });
    return new DenoFile(file);
  },
  async readFile(path) {
    // One allocation of the file's size, filled in large reads: on the VMs
    // measured, Deno.readFile took 2-3x longer on 64 MiB segments.
    const file = await Deno.open(path, { read: true });
    try {
      const bytes = new Uint8Array((await file.stat()).size);
      let done = 0;
      while (done < bytes.length) {
        const n = await file.read(
          bytes.subarray(done, Math.min(bytes.length, done + READ_CHUNK_BYTES)),
        );
        if (n === null) break;
        done += n;
      }
      return done === bytes.length ? bytes : bytes.subarray(0, done);
    } finally {
      file.close();
    }
  },
  async writeFile(path, bytes, options = {}) {
    const file = await Deno.open(path, {
      write: true,
      create: true,
      createNew: options.createNew,
      truncate: !options.createNew,
    });
    try {
      let done = 0;
      while (done < bytes.length) {
        done += await file.write(bytes.subarray(done));
      }
      await file.syncData();
    } finally {
      file.close();
    }
  },
  async readDir(path) {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) {
      if (entry.isFile) names.push(entry.name);
    }
    return names;
  },
  mkdir: (path) => Deno.mkdir(path, { recursive: true }),
  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  },
  rename: (from, to) => Deno.rename(from, to),
  link: (from, to) => Deno.link(from, to),
  async syncDir(path) {
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  },
  async exists(path) {
    try {
      await Deno.lstat(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  },
};

function denoWriter(stream: typeof Deno.stdout): RuntimeWriter {
  return {
    write: (p) => stream.write(p),
    writeSync(p) {
      let done = 0;
      while (done < p.length) done += stream.writeSync(p.subarray(done));
    },
    isTerminal: () => stream.isTerminal(),
  };
}

/** The runtime layer on Deno. */
export const denoRuntime: Runtime = {
  name: "deno",
  fs: denoFs,
  get pid() {
    return Deno.pid;
  },
  get os() {
    return Deno.build.os;
  },
  args: () => Deno.args,
  env(variable) {
    const { state } = Deno.permissions.querySync({ name: "env", variable });
    return state === "granted" ? Deno.env.get(variable) : undefined;
  },
  canRead(path) {
    return Deno.permissions.querySync({ name: "read", path }).state ===
      "granted";
  },
  canUseNet: () =>
    Deno.permissions.querySync({ name: "net" }).state === "granted",
  chmod: (path, mode) => Deno.chmod(path, mode),
  readFileSync: (path) => Deno.readFileSync(path),
  existsSync(path) {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  },
  async readDirNames(path) {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names;
  },
  stat: (path) => Deno.stat(path),
  makeTempFile: (prefix) => Deno.makeTempFile({ prefix }),
  isNotFound: (error) => error instanceof Deno.errors.NotFound,
  isAlreadyExists: (error) => error instanceof Deno.errors.AlreadyExists,
  isPermissionRefused: (error) => error instanceof Deno.errors.NotCapable,
  get stdout() {
    return denoWriter(Deno.stdout);
  },
  get stderr() {
    return denoWriter(Deno.stderr);
  },
  stdin: () => Deno.stdin.readable,
  onSignal(signal, listener) {
    Deno.addSignalListener(signal, listener);
    return () => Deno.removeSignalListener(signal, listener);
  },
  exit: (code) => Deno.exit(code),
  // A number in Deno (node's types call it Timeout).
  unrefTimer: (timer) => Deno.unrefTimer(timer as unknown as number),
  startWorker: (url) =>
    new Worker(url.href, { type: "module" }) as unknown as RuntimeWorker,
  workerPort(): RuntimeWorkerPort {
    // The worker's global scope (`self` in a Deno worker).
    const scope = globalThis as unknown as {
      postMessage(message: unknown, transfer: Transferable[]): void;
      onmessage: ((event: MessageEvent) => void) | null;
    };
    return {
      postMessage: (message, transfer = []) =>
        scope.postMessage(message, transfer),
      onMessage(listener) {
        scope.onmessage = (event) => listener(event.data);
      },
    };
  },
  async runCommand(command, args, env): Promise<CommandOutput> {
    const output = await new Deno.Command(command, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: output.code,
      success: output.success,
      stdout: output.stdout,
      stderr: output.stderr,
    };
  },
};
