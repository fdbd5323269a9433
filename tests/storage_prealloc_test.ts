/**
 * WAL segments grow: a fresh store preallocates a small first segment and
 * each next one doubles up to `segmentBytes`. These tests check that a small
 * store stays small on disk, that a log over several growing segments (with
 * and without a clean close, across snapshots that remove old segments)
 * recovers every write, and that a record larger than its segment still fits.
 *
 * @module
 */

import assert from "node:assert/strict";
import { open } from "../mod.ts";
import { denoFs } from "../src/storage/fs.ts";
import { listSegments } from "../src/storage/wal.ts";
import {
  FIRST_SEGMENT_BYTES,
  segmentCapacityBytes,
} from "../src/storage/wal_writer.ts";
import { withTempDir } from "./storage_helpers.ts";

const MiB = 1024 * 1024;

/** Sum of the sizes of every file under `dir`, in bytes. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) total += await dirBytes(path);
    else if (entry.isFile) total += (await Deno.stat(path)).size;
  }
  return total;
}

/** Sizes of the WAL segment files, oldest first. */
async function segmentSizes(dir: string): Promise<number[]> {
  const sizes: number[] = [];
  for (const segment of await listSegments(denoFs, `${dir}/wal`)) {
    sizes.push((await Deno.stat(`${dir}/wal/${segment.name}`)).size);
  }
  return sizes;
}

/** A value of `bytes` bytes that names its key and index (checkable). */
function valueOf(i: number, bytes: number): string {
  const head = `value-${i}-`;
  return head + "x".repeat(bytes - head.length);
}

/** Copies the data dir of an open store, as a kill -9 would leave it. */
async function copyAsCrashed(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.name === "LOCK") continue; // held by this (live) process
    const path = `${from}/${entry.name}`;
    if (entry.isDirectory) await copyAsCrashed(path, `${to}/${entry.name}`);
    // Only files: a live store's dir also holds its socket (revkv.sock).
    else if (entry.isFile) await Deno.copyFile(path, `${to}/${entry.name}`);
  }
}

Deno.test("segment sizes start at 1 MiB and double up to segmentBytes", () => {
  assert.equal(FIRST_SEGMENT_BYTES, MiB);
  const sizes = [0, 1, 2, 3, 4, 5, 6, 7, 100].map((seq) =>
    segmentCapacityBytes(seq, 64 * MiB)
  );
  assert.deepEqual(sizes, [1, 2, 4, 8, 16, 32, 64, 64, 64].map((n) => n * MiB));
  // A segmentBytes at or below the first size gives every segment that size.
  assert.equal(segmentCapacityBytes(0, 4096), 4096);
  assert.equal(segmentCapacityBytes(9, 4096), 4096);
  assert.equal(segmentCapacityBytes(0, MiB), MiB);
  // Not a power of two: capped at it.
  assert.equal(segmentCapacityBytes(3, 5 * MiB), 5 * MiB);
  assert.equal(segmentCapacityBytes(2, 5 * MiB), 4 * MiB);
  assert.equal(
    segmentCapacityBytes(Number.MAX_SAFE_INTEGER, 64 * MiB),
    64 * MiB,
  );
});

Deno.test("a fresh durable store with a few puts takes under 2 MB on disk", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir);
    for (let i = 0; i < 20; i++) await db.put(`key-${i}`, `value-${i}`);
    const openBytes = await dirBytes(dir);
    await db.close();
    const closedBytes = await dirBytes(dir);
    assert.ok(openBytes < 2_000_000, `open: ${openBytes} bytes`);
    assert.ok(closedBytes < 2_000_000, `closed: ${closedBytes} bytes`);
    // The first segment is still preallocated with real zeros to its size.
    assert.deepEqual(await segmentSizes(dir), [FIRST_SEGMENT_BYTES]);
    const again = await open(dir);
    try {
      assert.equal(again.revision, 21);
      assert.equal((await again.get("key-19")).kvs[0]?.valueText, "value-19");
    } finally {
      await again.close();
    }
  });
});

/** Writes `count` puts of `valueBytes` each, checking nothing. */
async function putMany(
  db: Awaited<ReturnType<typeof open>>,
  from: number,
  count: number,
  valueBytes: number,
): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await db.put(`k${i % 50}`, valueOf(i, valueBytes));
  }
}

/** Checks that the newest put of each of the 50 keys is there. */
async function checkLatest(
  db: Awaited<ReturnType<typeof open>>,
  total: number,
  valueBytes: number,
): Promise<void> {
  assert.equal(db.revision, total + 1);
  for (let i = Math.max(0, total - 50); i < total; i++) {
    const kv = (await db.get(`k${i % 50}`)).kvs[0];
    assert.equal(
      kv?.valueText,
      valueOf(i, valueBytes),
      `k${i % 50} after ${i}`,
    );
  }
}

for (const snapshotCount of [100_000, 40]) {
  Deno.test(`a log over growing segments recovers every write (snapshotCount ${snapshotCount})`, async () => {
    await withTempDir(async (root) => {
      const dir = `${root}/store`;
      const segmentBytes = 4 * MiB;
      const valueBytes = 100 * 1024;
      const options = { segmentBytes, snapshotCount };
      // 1 + 2 + 4 + 4 MiB of segments: 10 MiB of values fill three.
      const first = 100;
      const db = await open(dir, options);
      await putMany(db, 0, first, valueBytes);
      const sizes = await segmentSizes(dir);
      if (snapshotCount === 100_000) {
        // Every segment kept, at its own preallocated size.
        assert.deepEqual(sizes.slice(0, 3), [1, 2, 4].map((n) => n * MiB));
        assert.ok(sizes.length >= 4, `segments: ${sizes}`);
      }
      for (const size of sizes) assert.ok(size <= segmentBytes, `${sizes}`);
      // As a kill -9 leaves it: no clean-close marker.
      const crashed = `${root}/crashed`;
      await copyAsCrashed(dir, crashed);
      await db.close();

      const fromCrash = await open(crashed, options);
      try {
        await checkLatest(fromCrash, first, valueBytes);
      } finally {
        await fromCrash.close();
      }

      // Clean close, reopen, keep writing onto the tail segment and beyond.
      const again = await open(dir, options);
      await checkLatest(again, first, valueBytes);
      await putMany(again, first, 60, valueBytes);
      await again.close();
      const third = await open(dir, options);
      try {
        await checkLatest(third, first + 60, valueBytes);
      } finally {
        await third.close();
      }
      for (const size of await segmentSizes(dir)) {
        assert.ok(size <= segmentBytes);
      }
    });
  });
}

Deno.test("a record larger than its segment still fits (the segment grows)", async () => {
  await withTempDir(async (root) => {
    const dir = `${root}/store`;
    const options = { segmentBytes: 8 * MiB, maxRequestBytes: 8 * MiB };
    const db = await open(dir, options);
    // Into the fresh first segment (only its header before it).
    await db.put("big0", valueOf(0, Math.round(1.5 * MiB)));
    // Rolls onto the 2 MiB second segment, which grows to hold it.
    await db.put("big1", valueOf(1, 3 * MiB));
    // The second segment is past its size: this one rolls onto the third.
    await db.put("after", "a");
    const sizes = await segmentSizes(dir);
    assert.ok(sizes[0]! > MiB, `${sizes}`);
    assert.ok(sizes[1]! > 3 * MiB, `${sizes}`);
    assert.equal(sizes[2], 4 * MiB);
    const crashed = `${root}/crashed`;
    await copyAsCrashed(dir, crashed);
    await db.close();
    for (const path of [dir, crashed]) {
      const again = await open(path, options);
      try {
        assert.equal(again.revision, 4);
        assert.equal(
          (await again.get("big0")).kvs[0]?.valueText,
          valueOf(0, Math.round(1.5 * MiB)),
        );
        assert.equal(
          (await again.get("big1")).kvs[0]?.valueText,
          valueOf(1, 3 * MiB),
        );
        assert.equal((await again.get("after")).kvs[0]?.valueText, "a");
        await again.put("more", "m");
      } finally {
        await again.close();
      }
    }
  });
});
