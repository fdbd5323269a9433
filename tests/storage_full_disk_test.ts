/**
 * A full disk is a revkv error: opening on a full disk fails with
 * `NoSpaceError` naming the file and the operation and leaves no temp file;
 * a store whose disk fills stops writing (fail-stop) but still serves reads,
 * and loses nothing acknowledged.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NoSpaceError, open, StorageFailedError } from "../mod.ts";
import { FaultFs, withTempDir } from "./storage_helpers.ts";

async function filesUnder(dir: string): Promise<string[]> {
  const names: string[] = [];
  const walk = async (sub: string) => {
    for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
      const rel = sub === "" ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory) await walk(rel);
      else names.push(rel);
    }
  };
  await walk("");
  return names.sort();
}

Deno.test("opening a fresh store on a full disk is a NoSpaceError naming the file, and leaves no temp file", async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultFs();
    fs.faults.spaceLeftBytes = 512 * 1024; // less than the first segment (1 MiB)
    await assert.rejects(
      () => open(dir, { fs }),
      (error: unknown) => {
        assert.ok(error instanceof NoSpaceError, String(error));
        assert.match(error.file ?? "", /wal\/next\.tmp$/);
        assert.match(error.operation ?? "", /^write/);
        assert.match(error.message, /no space left on device: write/);
        return true;
      },
    );
    const left = await filesUnder(dir);
    assert.deepEqual(left.filter((n) => n.endsWith(".tmp")), []);
    assert.ok(!left.includes("LOCK"), "the lock is released");
  });
});

Deno.test("opening an existing store on a full disk is a NoSpaceError, leaves no temp file, and a later open has every write", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none", segmentBytes: 65536 });
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, `v${i}`);
    await db.close();
    const before = await filesUnder(dir);
    const fs = new FaultFs();
    fs.faults.spaceLeftBytes = 0;
    await assert.rejects(
      () => open(dir, { fs, segmentBytes: 65536 }),
      (error: unknown) => {
        assert.ok(error instanceof NoSpaceError, String(error));
        assert.ok(error.file !== undefined && error.operation !== undefined);
        return true;
      },
    );
    assert.deepEqual(await filesUnder(dir), before);
    const again = await open(dir, { segmentBytes: 65536 });
    try {
      assert.equal(again.revision, 21);
      assert.equal((await again.get("k19")).kvs[0]?.valueText, "v19");
    } finally {
      await again.close();
    }
  });
});

Deno.test("a disk that fills under an open store stops its writes with a named error and still serves reads", async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultFs();
    const db = await open(dir, { fs, segmentBytes: 64 * 1024 });
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, "v".repeat(100));
    fs.faults.spaceLeftBytes = 500;
    let failure: unknown;
    for (let i = 20; i < 200 && failure === undefined; i++) {
      try {
        await db.put(`k${i}`, "v".repeat(100));
      } catch (error) {
        failure = error;
      }
    }
    assert.ok(failure instanceof StorageFailedError, String(failure));
    assert.ok(failure.stopped);
    // The batch's segment, or the next one being prepared for a roll.
    assert.match(failure.file ?? "", /\.wal$|next\.tmp$/);
    assert.match(failure.operation ?? "", /^write/);
    assert.ok(failure.cause instanceof NoSpaceError);
    assert.equal((await db.get("k3")).kvs[0]?.value.length, 100);
    await db.close();
  });
});
