/**
 * Fault injection, every bit: a small store (a few hundred mixed writes in
 * 2–3 small WAL segments plus one snapshot) has one bit flipped in one of
 * its files, on a copy, and is opened. Each outcome must be one of exactly
 * two: the store opens with every acknowledged write at its revision (same
 * revision, same hash, same leases), or the open is refused with a named
 * corruption error that says which file and where. Anything else — above
 * all an open that silently lost writes — fails the test.
 *
 * The flips: every header byte of every frame type in every WAL segment and
 * in the snapshot (a random bit each), one random header byte of every
 * frame, and a seeded sample of every other byte of every file (payloads,
 * padding, the preallocated zeros, meta.json, the clean-close marker).
 * Seeded: REVKV_FAULT_SEED replays a run; REVKV_FAULT_SAMPLES sets the size
 * of the random sample per file.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  MetaCorruptionError,
  open,
  SnapshotCorruptionError,
  WalCorruptionError,
} from "../mod.ts";
import { frameOffsets, prng, withTempDir } from "./storage_helpers.ts";
import { compactAt, emptyState, mixedWrites } from "./fault_workload.ts";

const SEGMENT_BYTES = 8192;
/** Random byte flips per file, besides the header sweep. */
const SAMPLES_PER_FILE = Number(Deno.env.get("REVKV_FAULT_SAMPLES") ?? 250);
const OPTIONS = {
  durability: "none" as const,
  segmentBytes: SEGMENT_BYTES,
  snapshotCount: 1_000_000,
  replayWorker: "never" as const,
};

function seedFromEnv(): number {
  const fromEnv = Deno.env.get("REVKV_FAULT_SEED");
  const seed = fromEnv ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
  console.log(
    `bit-flip suite: seed ${seed} (replay with REVKV_FAULT_SEED=${seed})`,
  );
  return seed;
}

interface Expected {
  revision: number;
  hash: number;
  compactRevision: number;
  leases: string[];
}

async function observe(dir: string): Promise<Expected> {
  const db = await open(dir, OPTIONS);
  try {
    const { hash, compactRevision } = db.hash();
    const leases = (await db.leases()).leases.map((l) => String(l.id)).sort();
    return { revision: db.revision, hash, compactRevision, leases };
  } finally {
    await db.close();
  }
}

async function copyDir(from: string, to: string): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) {
      await Deno.mkdir(`${to}/${entry.name}`);
      await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    } else if (entry.isFile) {
      await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
    }
  }
}

/** One flip: file (relative), byte offset, bit. */
interface Flip {
  file: string;
  at: number;
  bit: number;
  why: string;
}

Deno.test("every bit of a small store's files: whole or refused with file and offset, never silently lost", async () => {
  const seed = seedFromEnv();
  const rand = prng(seed);
  await withTempDir(async (root) => {
    const base = `${root}/base`;
    // Build: writes, a compaction, a snapshot, then enough writes after it
    // for 2–3 segments; closed cleanly (the state a flip would meet).
    const db = await open(base, OPTIONS);
    const state = emptyState();
    await mixedWrites(db, rand, 120, state);
    await compactAt(db, state);
    await db.defrag(); // the snapshot
    await mixedWrites(db, rand, 180, state);
    await db.close();
    const expected = await observe(base);

    const files: string[] = [];
    for (const sub of ["", "wal", "snap"]) {
      for await (const e of Deno.readDir(`${base}/${sub}`)) {
        if (e.isFile) files.push(sub ? `${sub}/${e.name}` : e.name);
      }
    }
    const segments = files.filter((f) => f.endsWith(".wal"));
    assert.ok(
      segments.length >= 2 && segments.length <= 3,
      `${segments.length} segments`,
    );
    assert.equal(files.filter((f) => f.endsWith(".snap")).length, 1);

    const flips: Flip[] = [];
    const walTypes = new Set<number>();
    const bitOf = () => Math.floor(rand() * 8);
    for (const file of files) {
      const bytes = await Deno.readFile(`${base}/${file}`);
      let dataEnd = bytes.length;
      if (file.endsWith(".wal") || file.endsWith(".snap")) {
        const { starts, end } = frameOffsets(bytes);
        dataEnd = end;
        const typesSwept = new Set<number>();
        for (const start of starts) {
          const type = bytes[start + 4]!;
          if (file.endsWith(".wal")) walTypes.add(type);
          if (!typesSwept.has(type)) {
            // The first frame of each type: every header byte.
            typesSwept.add(type);
            for (let b = 0; b < 12; b++) {
              flips.push({
                file,
                at: start + b,
                bit: bitOf(),
                why: `header byte ${b} of type ${type}`,
              });
            }
          }
          const b = Math.floor(rand() * 12);
          flips.push({
            file,
            at: start + b,
            bit: bitOf(),
            why: `header byte ${b}`,
          });
        }
      }
      for (let i = 0; i < SAMPLES_PER_FILE; i++) {
        // Most in the written data, some past it (preallocated zeros).
        const at = rand() < 0.85 || dataEnd === bytes.length
          ? Math.floor(rand() * dataEnd)
          : dataEnd + Math.floor(rand() * (bytes.length - dataEnd));
        flips.push({ file, at, bit: bitOf(), why: "sampled byte" });
      }
    }

    // segment, metadata, write, compact, snapshot marker, lease grant, revoke
    for (const type of [1, 2, 3, 4, 16, 17]) {
      assert.ok(walTypes.has(type), `no WAL frame of type ${type}`);
    }
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    let trial = 0;
    for (const flip of flips) {
      const dir = `${root}/t${trial++}`;
      await Deno.mkdir(dir);
      await copyDir(base, dir);
      const path = `${dir}/${flip.file}`;
      const bytes = await Deno.readFile(path);
      bytes[flip.at] = bytes[flip.at]! ^ (1 << flip.bit);
      await Deno.writeFile(path, bytes);
      const where =
        `${flip.file} byte ${flip.at} bit ${flip.bit} (${flip.why}), seed ${seed}`;
      let got: Expected | undefined;
      try {
        got = await observe(dir);
      } catch (error) {
        if (
          error instanceof WalCorruptionError ||
          error instanceof SnapshotCorruptionError ||
          error instanceof MetaCorruptionError
        ) {
          assert.ok(error.file.startsWith(dir), `${where}: ${error.file}`);
          assert.ok(Number.isInteger(error.offset), where);
          count(`refused: ${error.name}`);
        } else {
          throw new Error(`${where}: not a named corruption error: ${error}`, {
            cause: error,
          });
        }
      }
      if (got !== undefined) {
        assert.deepEqual(got, expected, `${where}: opened with other state`);
        count("whole");
      }
      await Deno.remove(dir, { recursive: true });
    }
    const summary = [...outcomes].map(([k, n]) => `${k} ${n}`).join(", ");
    console.log(
      `bit-flip suite: ${flips.length} flips: ${summary}; silent losses 0`,
    );
  });
});
