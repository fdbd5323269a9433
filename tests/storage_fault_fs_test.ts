/**
 * Fault injection, every failure point of the file system: a short workload
 * (open, mixed writes over a segment roll, an automatic snapshot, a
 * compaction, `defrag()`, close) runs through a `StorageFs` that fails the
 * N-th write, sync, rename, remove or open — or cuts the N-th write short —
 * for every N the workload reaches. After each run the store is reopened on
 * the real file system and must hold every acknowledged write at its
 * revision, and the failure, if a caller saw it, must have been a named
 * error (`NoSpaceError`, `StorageFailedError`) naming file and operation.
 * Failures no caller sees are best-effort work by design (the clean-close
 * marker, an automatic snapshot, removing old files); they are counted.
 *
 * Seeded: REVKV_FAULT_SEED replays a run.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NoSpaceError, open, StorageFailedError } from "../mod.ts";
import { denoFs, type StorageFile, type StorageFs } from "../src/storage/fs.ts";
import { prng } from "./storage_helpers.ts";
import {
  type AckedState,
  assertHoldsAcked,
  compactAt,
  emptyState,
  mixedWrites,
} from "./fault_workload.ts";

type Kind = "write" | "sync" | "rename" | "remove" | "open";
const KINDS: Kind[] = ["write", "sync", "rename", "remove", "open"];

/** Fails (or, for writes, cuts short) the `n`-th call of one kind. */
class FailingFs implements StorageFs {
  readonly calls: Record<Kind, number> = {
    write: 0,
    sync: 0,
    rename: 0,
    remove: 0,
    open: 0,
  };
  /** Set when the fault fired. */
  fired = false;
  constructor(
    readonly target?: { kind: Kind; n: number; short: boolean },
  ) {}

  #hit(kind: Kind): boolean {
    this.calls[kind]++;
    if (this.target?.kind !== kind || this.calls[kind] !== this.target.n) {
      return false;
    }
    this.fired = true;
    return true;
  }

  #error(kind: Kind): Error {
    return kind === "write"
      ? new Error("No space left on device (os error 28)")
      : new Error("Input/output error (os error 5)");
  }

  async open(
    path: string,
    options?: Parameters<StorageFs["open"]>[1],
  ): Promise<StorageFile> {
    if (this.#hit("open")) throw this.#error("open");
    const file = await denoFs.open(path, options);
    return {
      writeAt: async (offset, bytes) => {
        if (this.#hit("write")) {
          if (this.target!.short && bytes.length > 1) {
            await file.writeAt(offset, bytes.subarray(0, bytes.length >> 1));
          }
          throw this.#error("write");
        }
        return file.writeAt(offset, bytes);
      },
      readAt: (offset, bytes) => file.readAt(offset, bytes),
      syncData: () => {
        if (this.#hit("sync")) return Promise.reject(this.#error("sync"));
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
    if (this.#hit("write")) {
      if (this.target!.short) {
        await denoFs.writeFile(
          path,
          bytes.subarray(0, bytes.length >> 1),
          options,
        );
      }
      throw this.#error("write");
    }
    return denoFs.writeFile(path, bytes, options);
  }
  readDir(path: string) {
    return denoFs.readDir(path);
  }
  mkdir(path: string) {
    return denoFs.mkdir(path);
  }
  async remove(path: string) {
    if (this.#hit("remove")) throw this.#error("remove");
    return await denoFs.remove(path);
  }
  async rename(from: string, to: string) {
    if (this.#hit("rename")) throw this.#error("rename");
    return await denoFs.rename(from, to);
  }
  link(from: string, to: string) {
    return denoFs.link(from, to);
  }
  async syncDir(path: string) {
    if (this.#hit("sync")) throw this.#error("sync");
    return await denoFs.syncDir(path);
  }
  exists(path: string) {
    return denoFs.exists(path);
  }
}

const OPTIONS = {
  segmentBytes: 4096,
  snapshotCount: 40,
  replayWorker: "never" as const,
};

/**
 * The workload: everything acknowledged goes into `state`. Returns the first
 * error a caller saw (the workload stops there), or undefined.
 */
async function workload(
  dir: string,
  fs: StorageFs,
  seed: number,
  state: AckedState,
): Promise<unknown> {
  const rand = prng(seed);
  let db;
  try {
    db = await open(dir, { ...OPTIONS, fs });
  } catch (error) {
    return error;
  }
  let seen: unknown;
  try {
    await mixedWrites(db, rand, 50, state, 60); // rolls, a snapshot at 40
    await compactAt(db, state);
    await mixedWrites(db, rand, 10, state, 60);
    await db.defrag();
    await mixedWrites(db, rand, 5, state, 60);
  } catch (error) {
    seen = error;
  }
  try {
    await db.close();
  } catch (error) {
    seen ??= error;
  }
  return seen;
}

function isNamed(error: unknown): boolean {
  return (error instanceof NoSpaceError ||
    error instanceof StorageFailedError) &&
    typeof error.file === "string" && typeof error.operation === "string";
}

Deno.test("every failure point of the file system: acknowledged writes survive, failures are named", async () => {
  const fromEnv = Deno.env.get("REVKV_FAULT_SEED");
  const seed = fromEnv ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
  console.log(
    `fs-fault suite: seed ${seed} (replay with REVKV_FAULT_SEED=${seed})`,
  );
  // Fast fsyncs when the box has a tmpfs: the failure points are the same.
  const base = await Deno.stat("/dev/shm").then(
    () => "/dev/shm",
    () => undefined,
  );
  const root = await Deno.makeTempDir({ dir: base, prefix: "revkv_fsfault_" });
  try {
    // A dry run counts the calls of each kind.
    const dry = new FailingFs();
    const dryState = emptyState();
    assert.equal(await workload(`${root}/dry`, dry, seed, dryState), undefined);
    console.log(`fs-fault suite: calls ${JSON.stringify(dry.calls)}`);
    // The workload reaches a segment roll, snapshots and a compaction.
    const walNames = [...Deno.readDirSync(`${root}/dry/wal`)].map((e) =>
      e.name
    );
    assert.ok(
      walNames.some((n) => /^0{15}[1-9a-f]-/.test(n)),
      `no segment roll: ${walNames}`,
    );
    const snaps = [...Deno.readDirSync(`${root}/dry/snap`)];
    // defrag's, and the automatic one unless defrag joined it (timing).
    assert.ok(snaps.length >= 1, "a snapshot");
    const dryDb = await open(`${root}/dry`, OPTIONS);
    assert.ok(dryDb.hash().compactRevision > 0, "a compaction");
    await dryDb.close();
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    let trial = 0;
    for (const kind of KINDS) {
      for (const short of kind === "write" ? [false, true] : [false]) {
        for (let n = 1; n <= dry.calls[kind]; n++) {
          const dir = `${root}/t${trial++}`;
          const what = `${short ? "short " : ""}${kind} #${n}, seed ${seed}`;
          const fs = new FailingFs({ kind, n, short });
          const state = emptyState();
          const seen = await workload(dir, fs, seed, state);
          if (!fs.fired) {
            // Timing (group commit, the background segment preparation)
            // moved the N-th call past the end of this run.
            assert.equal(seen, undefined, `${what}: ${seen}`);
            count("not reached");
          } else if (seen !== undefined) {
            assert.ok(isNamed(seen), `${what}: not a named error: ${seen}`);
            count("surfaced named");
          } else {
            count(`absorbed (${kind})`);
          }
          const db = await open(dir, { ...OPTIONS, replayWorker: "never" });
          try {
            await assertHoldsAcked(db, state, what);
            db.check();
          } finally {
            await db.close();
          }
          await Deno.remove(dir, { recursive: true });
        }
      }
    }
    assert.ok(
      (outcomes.get("not reached") ?? 0) * 10 < trial,
      "most failure points were reached",
    );
    const summary = [...outcomes].map(([k, n]) => `${k} ${n}`).join(", ");
    console.log(`fs-fault suite: ${trial} runs: ${summary}; acked losses 0`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
