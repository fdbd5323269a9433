/**
 * Torn tail or corruption: recovery may cut the WAL only where nothing after
 * the cut can be an acknowledged record (see `src/storage/wal_tail.ts`).
 * These tests pin the cases of issue 9: a flipped length bit that makes a
 * frame seem to run off the end, a clean-close marker contradicting a short
 * log, a cut before a snapshot's marker, and that a refused open changes
 * nothing on disk while an accepted cut keeps the dropped bytes aside.
 *
 * @module
 */

import assert from "node:assert/strict";
import { open, WalCorruptionError } from "../mod.ts";
import { frameOffsets, withTempDir } from "./storage_helpers.ts";
import { denoFs } from "../src/storage/fs.ts";
import { listSegments } from "../src/storage/wal.ts";
import { TORN_FILES_KEPT } from "../src/storage/wal_tail.ts";

const SEGMENT_BYTES = 64 * 1024;
/** Frames whose length and type bits are all flipped (40 opens each). */
const FLIPPED_FRAMES = 6;

/** Every file under `dir` (relative path → bytes). */
async function snapshotFiles(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const walk = async (sub: string) => {
    for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
      const rel = sub === "" ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory) await walk(rel);
      else if (entry.isFile) {
        files.set(rel, await Deno.readFile(`${dir}/${rel}`));
      }
    }
  };
  await walk("");
  return files;
}

function assertSameFiles(
  before: Map<string, Uint8Array>,
  after: Map<string, Uint8Array>,
): void {
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  for (const [name, bytes] of before) {
    const now = after.get(name)!;
    assert.equal(now.length, bytes.length, `${name}: size changed`);
    assert.ok(
      now.every((b, i) => b === bytes[i]),
      `${name}: bytes changed`,
    );
  }
}

/** A closed store of `puts` puts in 64 KiB segments, no snapshot. */
async function writeStore(dir: string, puts: number): Promise<void> {
  const db = await open(dir, {
    durability: "none",
    segmentBytes: SEGMENT_BYTES,
  });
  for (let i = 0; i < puts; i++) {
    await db.put(`key-${i}`, `value-${i}`);
  }
  await db.close();
}

async function newestSegment(dir: string): Promise<string> {
  const segments = await listSegments(denoFs, `${dir}/wal`);
  return `${dir}/wal/${segments[segments.length - 1]!.name}`;
}

Deno.test("issue 9 reproduction: a length bit flip mid newest segment is refused, and nothing on disk changes", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 600);
    await Deno.remove(`${dir}/wal/CLEAN`);
    const path = await newestSegment(dir);
    const bytes = await Deno.readFile(path);
    const { starts } = frameOffsets(bytes);
    assert.ok(starts.length > 20, `only ${starts.length} frames`);
    const victim = starts[Math.floor(starts.length / 2)]!;
    bytes[victim + 2] = bytes[victim + 2]! ^ 0x02; // length grows by 128 KiB
    await Deno.writeFile(path, bytes);
    const before = await snapshotFiles(dir);
    await assert.rejects(
      () => open(dir, { durability: "none", segmentBytes: SEGMENT_BYTES }),
      (error: unknown) => {
        assert.ok(error instanceof WalCorruptionError, String(error));
        assert.equal(error.file, path);
        assert.equal(error.offset, victim);
        assert.match(error.reason, /runs past the end/);
        assert.match(error.message, new RegExp(`offset ${victim}`));
        return true;
      },
    );
    assertSameFiles(before, await snapshotFiles(dir));
  });
});

Deno.test("every length and type bit of 6 frames of the newest segment: refused or whole, never cut", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 600);
    await Deno.remove(`${dir}/wal/CLEAN`);
    const path = await newestSegment(dir);
    const original = await Deno.readFile(path);
    const { starts } = frameOffsets(original);
    // Frames 0, 1 are the header and metadata; the last one is left out:
    // a bad last frame with nothing after it is a torn tail by rule.
    const victims = starts.slice(2, -1).filter((_, i, all) =>
      i % Math.max(1, Math.floor(all.length / FLIPPED_FRAMES)) === 0
    ).slice(0, FLIPPED_FRAMES);
    const probe = await open(dir, {
      durability: "none",
      segmentBytes: SEGMENT_BYTES,
    });
    const revision = probe.revision;
    const hash = probe.hash().hash;
    await probe.close();
    await Deno.remove(`${dir}/wal/CLEAN`);
    let refused = 0;
    let whole = 0;
    for (const victim of victims) {
      for (const byte of [0, 1, 2, 3, 4]) {
        for (let bit = 0; bit < 8; bit++) {
          const bytes = original.slice();
          bytes[victim + byte] = bytes[victim + byte]! ^ (1 << bit);
          await Deno.writeFile(path, bytes);
          try {
            const db = await open(dir, {
              durability: "none",
              segmentBytes: SEGMENT_BYTES,
            });
            try {
              assert.equal(
                db.revision,
                revision,
                `frame ${victim} byte ${byte} bit ${bit}`,
              );
              assert.equal(db.hash().hash, hash);
              whole++;
            } finally {
              await db.close();
              await Deno.remove(`${dir}/wal/CLEAN`);
            }
          } catch (error) {
            if (!(error instanceof WalCorruptionError)) throw error;
            assert.equal(error.file, path);
            refused++;
          }
          const now = await Deno.readFile(path);
          assert.ok(
            now.every((b, i) => b === bytes[i]),
            `frame ${victim} byte ${byte} bit ${bit}: the segment changed`,
          );
        }
      }
    }
    console.log(`length/type flips: ${refused} refused, ${whole} whole, 0 cut`);
    assert.equal(refused + whole, victims.length * 40);
  });
});

Deno.test("a clean-close marker and a log that ends before it are a contradiction, refused", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 50);
    const path = await newestSegment(dir);
    const bytes = await Deno.readFile(path);
    const { starts, end } = frameOffsets(bytes);
    const cut = starts[starts.length - 3]!;
    bytes.fill(0, cut, end);
    await Deno.writeFile(path, bytes);
    const before = await snapshotFiles(dir);
    await assert.rejects(
      () => open(dir, { durability: "none", segmentBytes: SEGMENT_BYTES }),
      (error: unknown) => {
        assert.ok(error instanceof WalCorruptionError, String(error));
        assert.equal(error.file, path);
        assert.equal(error.offset, cut);
        assert.match(error.reason, /clean/);
        return true;
      },
    );
    assertSameFiles(before, await snapshotFiles(dir));
  });
});

Deno.test("a torn last frame is cut, and the dropped bytes are kept aside and named in the report", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 50);
    await Deno.remove(`${dir}/wal/CLEAN`);
    const path = await newestSegment(dir);
    const bytes = await Deno.readFile(path);
    const { starts, end } = frameOffsets(bytes);
    const last = starts[starts.length - 1]!;
    // Half the last frame reached the disk.
    bytes.fill(0, last + Math.floor((end - last) / 2), end);
    await Deno.writeFile(path, bytes);
    const dropped = bytes.slice(last, end);
    const db = await open(dir, {
      durability: "none",
      segmentBytes: SEGMENT_BYTES,
    });
    try {
      assert.equal(db.revision, 50);
      const torn = db.recovery?.tornTail;
      assert.ok(torn);
      assert.equal(torn.file, path);
      assert.equal(torn.offset, last);
      assert.ok(torn.keptAside, "the dropped bytes are kept aside");
      const aside = await Deno.readFile(torn.keptAside);
      assert.ok(aside.length > 0);
      assert.deepEqual(aside, dropped.subarray(0, aside.length));
      assert.ok(dropped.subarray(aside.length).every((b) => b === 0));
      const now = await Deno.readFile(path);
      assert.ok(now.subarray(last).every((b) => b === 0), "the cut is zeroed");
    } finally {
      await db.close();
    }
  });
});

Deno.test("a cut before the newest snapshot's WAL marker is refused", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, {
      durability: "none",
      segmentBytes: SEGMENT_BYTES,
    });
    for (let i = 0; i < 30; i++) await db.put(`k${i}`, "v");
    await db.defrag(); // writes a snapshot
    await db.close();
    await Deno.remove(`${dir}/wal/CLEAN`);
    const path = await newestSegment(dir);
    const bytes = await Deno.readFile(path);
    const { starts, end } = frameOffsets(bytes);
    // Zero everything from a frame before the snapshot marker on.
    const cut = starts[starts.length - 5]!;
    bytes.fill(0, cut, end);
    await Deno.writeFile(path, bytes);
    const before = await snapshotFiles(dir);
    await assert.rejects(
      () => open(dir, { durability: "none", segmentBytes: SEGMENT_BYTES }),
      (error: unknown) => {
        assert.ok(error instanceof WalCorruptionError, String(error));
        assert.equal(error.offset, cut);
        assert.match(error.reason, /snapshot/);
        return true;
      },
    );
    assertSameFiles(before, await snapshotFiles(dir));
  });
});

Deno.test("leftover temp files of a crash or a full disk are removed at open", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 5);
    await Deno.writeFile(
      `${dir}/snap/0000000000000009.snap.tmp`,
      new Uint8Array(1000),
    );
    await Deno.writeFile(`${dir}/wal/next.tmp`, new Uint8Array(1000));
    await Deno.writeFile(`${dir}/wal/CLEAN.tmp`, new Uint8Array(10));
    await Deno.writeFile(`${dir}/meta.json.tmp`, new Uint8Array(10));
    const db = await open(dir, {
      durability: "none",
      segmentBytes: SEGMENT_BYTES,
    });
    try {
      assert.equal(db.revision, 6);
      const names = [...(await snapshotFiles(dir)).keys()];
      assert.deepEqual(names.filter((n) => n.endsWith(".tmp")), []);
    } finally {
      await db.close();
    }
  });
});

Deno.test("bytes kept aside go with their segment once a snapshot covers it", async () => {
  await withTempDir(async (dir) => {
    const options = { durability: "none" as const, segmentBytes: 4096 };
    const db = await open(dir, options);
    for (let i = 0; i < 10; i++) await db.put(`k${i}`, "v");
    await db.close();
    await Deno.remove(`${dir}/wal/CLEAN`);
    const path = await newestSegment(dir);
    const bytes = await Deno.readFile(path);
    const { starts, end } = frameOffsets(bytes);
    bytes.fill(0, starts[starts.length - 1]! + 16, end); // tear the last
    await Deno.writeFile(path, bytes);
    const reopened = await open(dir, options);
    try {
      const kept = reopened.recovery?.tornTail?.keptAside;
      assert.ok(kept && await Deno.stat(kept).then(() => true));
      for (let i = 0; i < 100; i++) await reopened.put(`z${i}`, "x".repeat(60));
      await reopened.defrag(); // a snapshot past the torn segment
      await assert.rejects(() => Deno.stat(kept), Deno.errors.NotFound);
    } finally {
      await reopened.close();
    }
  });
});

Deno.test("kept-aside bytes are bounded: the newest TORN_FILES_KEPT cuts stay, by offset", async () => {
  await withTempDir(async (dir) => {
    const options = {
      durability: "none" as const,
      segmentBytes: SEGMENT_BYTES,
    };
    let db = await open(dir, options);
    // The first cut lands below offset 10,000 and later ones above it, so
    // keeping "the newest" must compare offsets as numbers, not as names.
    for (let i = 0; i < 100; i++) await db.put(`key-${i}`, `value-${i}`);
    await db.close();
    const cuts: string[] = [];
    for (let round = 0; round < TORN_FILES_KEPT + 2; round++) {
      await Deno.remove(`${dir}/wal/CLEAN`);
      const path = await newestSegment(dir);
      const bytes = await Deno.readFile(path);
      const { starts, end } = frameOffsets(bytes);
      bytes.fill(0, starts[starts.length - 1]! + 16, end); // tear the last
      await Deno.writeFile(path, bytes);
      db = await open(dir, options);
      const kept = db.recovery?.tornTail?.keptAside;
      assert.ok(kept, `round ${round}: a cut kept aside`);
      cuts.push(kept.slice(kept.lastIndexOf("/") + 1));
      for (let i = 0; i < 40; i++) await db.put(`r${round}-${i}`, `v${i}`);
      await db.close();
    }
    const offsets = cuts.map((name) => Number(name.split(".")[2]));
    assert.ok(offsets[0]! < 10_000 && offsets.at(-1)! >= 10_000, `${offsets}`);
    const torn = (await Array.fromAsync(Deno.readDir(`${dir}/wal`)))
      .map((e) => e.name).filter((n) => n.endsWith(".torn")).sort();
    assert.deepEqual(torn, cuts.slice(-TORN_FILES_KEPT).sort());
  });
});
