/**
 * Helpers of the storage tests: temp dirs, a fault-injecting `StorageFs`,
 * and reading the WAL's frame boundaries.
 *
 * @module
 */

import { denoFs, type StorageFile, type StorageFs } from "../src/storage/fs.ts";
import { listSegments } from "../src/storage/wal.ts";
import { readFrame } from "../src/storage/wal_codec.ts";

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "revkv_storage_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Faults a `FaultFs` can inject. */
export interface Faults {
  /**
   * Fail writes with ENOSPC once this many more bytes were written (a whole
   * file written past it keeps the bytes that fit).
   */
  spaceLeftBytes?: number;
  /** Fail every fdatasync from now on. */
  failSync?: boolean;
}

/** A `StorageFs` over the real one that fails on command. */
export class FaultFs implements StorageFs {
  faults: Faults = {};
  writes = 0;

  #consume(bytes: number): void {
    const left = this.faults.spaceLeftBytes;
    if (left === undefined) return;
    if (bytes > left) {
      this.faults.spaceLeftBytes = 0;
      throw new Error("No space left on device (os error 28)");
    }
    this.faults.spaceLeftBytes = left - bytes;
  }

  async open(
    path: string,
    options?: Parameters<StorageFs["open"]>[1],
  ): Promise<StorageFile> {
    const file = await denoFs.open(path, options);
    // deno-lint-ignore no-this-alias
    const fs = this;
    return {
      writeAt(offset, bytes) {
        fs.writes++;
        fs.#consume(bytes.length);
        return file.writeAt(offset, bytes);
      },
      readAt: (offset, bytes) => file.readAt(offset, bytes),
      syncData() {
        if (fs.faults.failSync) {
          return Promise.reject(new Error("Input/output error (os error 5)"));
        }
        return file.syncData();
      },
      truncate: (length) => file.truncate(length),
      size: () => file.size(),
      close: () => file.close(),
    };
  }
  readFile(path: string) {
    return denoFs.readFile(path);
  }
  async writeFile(
    path: string,
    bytes: Uint8Array,
    options?: { createNew?: boolean },
  ) {
    const left = this.faults.spaceLeftBytes;
    if (left !== undefined && bytes.length > left) {
      // As a real full disk: the bytes that fit reach the file, then ENOSPC
      // (so a caller that does not clean up leaves a partial file).
      await denoFs.writeFile(path, bytes.subarray(0, left), options);
    }
    this.#consume(bytes.length);
    return await denoFs.writeFile(path, bytes, options);
  }
  readDir(path: string) {
    return denoFs.readDir(path);
  }
  mkdir(path: string) {
    return denoFs.mkdir(path);
  }
  remove(path: string) {
    return denoFs.remove(path);
  }
  rename(from: string, to: string) {
    return denoFs.rename(from, to);
  }
  link(from: string, to: string) {
    return denoFs.link(from, to);
  }
  syncDir(path: string) {
    return denoFs.syncDir(path);
  }
  exists(path: string) {
    return denoFs.exists(path);
  }
}

/** Frame start offsets of a segment, and the end of its written data. */
export function frameOffsets(bytes: Uint8Array): {
  starts: number[];
  end: number;
} {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const starts: number[] = [];
  let offset = 0;
  let crc = 0;
  for (;;) {
    const frame = readFrame(bytes, view, offset, bytes.length, crc);
    if (frame.status !== "ok") return { starts, end: offset };
    starts.push(offset);
    crc = frame.crc;
    offset = frame.next;
  }
}

/** Path of the newest WAL segment of a data dir. */
export async function lastSegmentPath(dir: string): Promise<string> {
  const segments = await listSegments(denoFs, `${dir}/wal`);
  return `${dir}/wal/${segments[segments.length - 1]!.name}`;
}

export { prng, seedFromEnv } from "./_prng.ts";
