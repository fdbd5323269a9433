/**
 * The file operations storage uses, behind one small interface so that tests
 * can inject faults (a full disk, a failing fsync) at the fs layer.
 *
 * Everything the WAL, snapshots, meta file and lock do to the disk goes
 * through a `StorageFs`; the real ones are `denoFs` (`runtime_deno.ts`) and
 * `nodeFs` (`runtime_node.ts`), and `runtime.fs` is the one of this process.
 *
 * @module
 */

import { namedStorageError } from "./errors.ts";

export { denoFs } from "./runtime_deno.ts";

/** An open file, as the storage uses it. */
export interface StorageFile {
  /** Writes all of `bytes` at byte `offset` (loops over short writes). */
  writeAt(offset: number, bytes: Uint8Array): Promise<void>;
  /** Reads up to `bytes.length` bytes at `offset`; returns how many were read. */
  readAt(offset: number, bytes: Uint8Array): Promise<number>;
  /** fdatasync: the written data (and the size, if it changed) reach the disk. */
  syncData(): Promise<void>;
  /** Sets the file's length. */
  truncate(length: number): Promise<void>;
  /** The file's length in bytes. */
  size(): Promise<number>;
  /** Closes the file (idempotent). */
  close(): void;
}

/** How to open a file. */
export interface OpenFileOptions {
  /** Create it if missing. */
  create?: boolean;
  /** Fail if it exists (O_EXCL). */
  createNew?: boolean;
  /** Open for writing as well as reading. */
  write?: boolean;
}

/** The file system operations of the storage layer. */
export interface StorageFs {
  /** Opens a file for reading (and writing with `options.write`). */
  open(path: string, options?: OpenFileOptions): Promise<StorageFile>;
  /** Reads a whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Creates, writes and fdatasyncs a whole file (fails if it exists with `createNew`). */
  writeFile(
    path: string,
    bytes: Uint8Array,
    options?: { createNew?: boolean },
  ): Promise<void>;
  /** Names of the entries of a directory (files only). */
  readDir(path: string): Promise<string[]>;
  /** Creates a directory and its parents (no error if it exists). */
  mkdir(path: string): Promise<void>;
  /** Removes a file or an empty directory; missing is not an error. */
  remove(path: string): Promise<void>;
  /** Renames atomically (replacing `to`). */
  rename(from: string, to: string): Promise<void>;
  /** Hard-links `from` to a new name `to`; fails if `to` exists. */
  link(from: string, to: string): Promise<void>;
  /** fsyncs a directory, making renames and creations in it durable. */
  syncDir(path: string): Promise<void>;
  /** Whether a path exists. */
  exists(path: string): Promise<boolean>;
}

/** Marks an fs wrapped by `withNamedErrors`; holds the fs it wraps. */
const NAMED = Symbol("revkv.namedErrors");

/** The fs under `withNamedErrors` (`fs` itself when not wrapped). */
export function unwrapFs(fs: StorageFs): StorageFs {
  return (fs as { [NAMED]?: StorageFs })[NAMED] ?? fs;
}

/**
 * `fs` with every failure turned into a named error (`NoSpaceError`,
 * `StorageFailedError`) that says which file and which operation (see
 * `errors.ts`); what callers test for (`NotFound`, `AlreadyExists`) passes
 * through. The data dir wraps whatever fs it is given, so injected faults
 * surface the same way as real ones.
 */
export function withNamedErrors(fs: StorageFs): StorageFs {
  if (NAMED in fs) return fs;
  // A call, not a promise: an fs may also throw before returning one.
  const named = async <T>(
    call: () => Promise<T>,
    file: string,
    operation: string,
  ): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      throw namedStorageError(error, { file, operation });
    }
  };
  const wrapped: StorageFs & { [NAMED]: StorageFs } = {
    [NAMED]: fs,
    async open(path, options) {
      const file = await named(() => fs.open(path, options), path, "open");
      return {
        writeAt: (offset, bytes) =>
          named(() => file.writeAt(offset, bytes), path, `write at ${offset}`),
        readAt: (offset, bytes) =>
          named(() => file.readAt(offset, bytes), path, `read at ${offset}`),
        syncData: () => named(() => file.syncData(), path, "fdatasync"),
        truncate: (length) =>
          named(() => file.truncate(length), path, `truncate to ${length}`),
        size: () => named(() => file.size(), path, "stat"),
        close: () => file.close(),
      };
    },
    readFile: (path) => named(() => fs.readFile(path), path, "read"),
    writeFile: (path, bytes, options) =>
      named(() => fs.writeFile(path, bytes, options), path, "write"),
    readDir: (path) => named(() => fs.readDir(path), path, "read dir"),
    mkdir: (path) => named(() => fs.mkdir(path), path, "mkdir"),
    remove: (path) => named(() => fs.remove(path), path, "remove"),
    rename: (from, to) =>
      named(() => fs.rename(from, to), from, `rename to ${to}`),
    link: (from, to) => named(() => fs.link(from, to), from, `link to ${to}`),
    syncDir: (path) => named(() => fs.syncDir(path), path, "fsync dir"),
    exists: (path) => named(() => fs.exists(path), path, "stat"),
  };
  return wrapped;
}
