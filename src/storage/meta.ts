/**
 * The data dir's `meta.json`: cluster id, member id (generated once) and the
 * term (one more at every open, as a single-member etcd's term grows with
 * each election at start). Written atomically (temp file, fdatasync, rename,
 * dir sync) and checked with a CRC32C of its fields.
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";
import { MetaCorruptionError } from "./errors.ts";
import type { StorageFs } from "./fs.ts";

/** The identity and term of a data dir. */
export interface Meta {
  /** Cluster ID. */
  clusterId: bigint;
  /** Member ID. */
  memberId: bigint;
  /** Raft term reported in headers. */
  term: number;
}

/** Term of a fresh store's first open (a single-member etcd starts at 2). */
export const FIRST_TERM = 2;
const META_VERSION = 1;

function checksum(meta: Meta): number {
  return crc32c(
    new TextEncoder().encode(`${meta.clusterId}/${meta.memberId}/${meta.term}`),
  );
}

/** A random non-zero unsigned 64-bit ID (etcd's member and cluster IDs are uint64). */
export function randomId(): bigint {
  const words = crypto.getRandomValues(new Uint32Array(2));
  const id = (BigInt(words[0]!) << 32n) | BigInt(words[1]!);
  return id === 0n ? 1n : id;
}

/**
 * Reads the meta file (undefined when missing).
 * @throws Error naming the file when it does not parse or check.
 */
export async function readMeta(
  fs: StorageFs,
  path: string,
): Promise<Meta | undefined> {
  if (!(await fs.exists(path))) return undefined;
  const text = new TextDecoder().decode(await fs.readFile(path));
  try {
    const json = JSON.parse(text);
    const meta: Meta = {
      clusterId: BigInt(json.clusterId),
      memberId: BigInt(json.memberId),
      term: Number(json.term),
    };
    if (json.version !== META_VERSION || json.crc !== checksum(meta)) {
      throw new Error("checksum or version mismatch");
    }
    return meta;
  } catch (error) {
    throw new MetaCorruptionError(path, 0, (error as Error).message);
  }
}

/** Writes the meta file atomically. */
export async function writeMeta(
  fs: StorageFs,
  dir: string,
  meta: Meta,
  sync: boolean,
): Promise<void> {
  const text = JSON.stringify({
    version: META_VERSION,
    clusterId: meta.clusterId.toString(),
    memberId: meta.memberId.toString(),
    term: meta.term,
    crc: checksum(meta),
  }) + "\n";
  const tmp = `${dir}/meta.json.tmp`;
  try {
    await fs.writeFile(tmp, new TextEncoder().encode(text));
    await fs.rename(tmp, `${dir}/meta.json`);
  } catch (error) {
    // A full disk must not leave the temp file behind.
    await fs.remove(tmp).catch(() => {});
    throw error;
  }
  if (sync) await fs.syncDir(dir);
}
