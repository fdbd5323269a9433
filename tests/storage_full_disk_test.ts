/**
 * A full disk is a revkv error (issue 9, item 4). Opening on a full disk
 * either opens read-only, when recovery needed no writes (reads served,
 * every write refused with the `NoSpaceError` naming the meta file, the
 * NOSPACE alarm raised, nothing on disk changed), or fails with
 * `NoSpaceError` naming the file and the operation and leaves no temp file
 * (a fresh store, no room for the lock, a torn tail to keep aside, a lease
 * to revoke). A store whose disk fills stops writing (fail-stop) but still
 * serves reads, and loses nothing acknowledged.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NoSpaceError, open, StorageFailedError } from "../mod.ts";
import { FaultFs, frameOffsets, withTempDir } from "./storage_helpers.ts";
import { denoFs } from "../src/storage/fs.ts";
import { listSegments } from "../src/storage/wal.ts";

/**
 * Bytes left on the disk that the lock file (`pid N\nstart T\n`, under 30
 * bytes) fits in and the meta file (over 60 bytes of JSON) does not.
 */
const ROOM_FOR_THE_LOCK_BYTES = 48;

/** Every file under `dir` (relative path → bytes). */
async function fileBytes(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const name of await filesUnder(dir)) {
    files.set(name, await Deno.readFile(`${dir}/${name}`));
  }
  return files;
}

async function newestSegment(dir: string): Promise<string> {
  const segments = await listSegments(denoFs, `${dir}/wal`);
  return `${dir}/wal/${segments[segments.length - 1]!.name}`;
}

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

Deno.test("opening a store on a disk with room for the lock only serves reads, refuses writes with NoSpaceError and NOSPACE, and changes nothing", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none", segmentBytes: 65536 });
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, `v${i}`);
    const term = db.header().raftTerm;
    await db.close();
    const before = await fileBytes(dir);
    const fs = new FaultFs();
    fs.faults.spaceLeftBytes = ROOM_FOR_THE_LOCK_BYTES;
    const full = await open(dir, { fs, segmentBytes: 65536 });
    try {
      const refused = full.recovery?.writesRefused;
      assert.ok(refused instanceof NoSpaceError, String(refused));
      assert.match(refused.file ?? "", /meta\.json\.tmp$/);
      assert.equal(refused.operation, "write");
      assert.equal(full.revision, 21);
      assert.equal((await full.get("k19")).kvs[0]?.valueText, "v19");
      assert.equal((await full.get("k", { prefix: true })).count, 20);
      assert.equal(full.header().raftTerm, term, "no new term was durable");
      assert.deepEqual(full.alarms(), ["NOSPACE"]);
      await assert.rejects(() => full.put("k20", "v"), (error: unknown) => {
        assert.equal(error, refused);
        return true;
      });
      await assert.rejects(() => full.delete("k0"), NoSpaceError);
      await assert.rejects(() => full.grant(60), NoSpaceError);
      await assert.rejects(() => full.compact(5), NoSpaceError);
      assert.equal(full.revision, 21, "a refused write changed nothing");
      assert.equal((await full.get("k0")).count, 1);
    } finally {
      await full.close();
    }
    const after = await fileBytes(dir);
    assert.deepEqual([...after.keys()], [...before.keys()]);
    for (const [name, bytes] of before) {
      assert.deepEqual(after.get(name), bytes, `${name} changed`);
    }
    // With space again, the store takes writes where it left off.
    const again = await open(dir, { segmentBytes: 65536 });
    try {
      assert.equal(again.recovery?.writesRefused, undefined);
      assert.deepEqual(again.alarms(), []);
      assert.equal((await again.put("k20", "v20")).header.revision, 22);
    } finally {
      await again.close();
    }
  });
});

Deno.test("opening on a full disk a store with a lease to revoke is a NoSpaceError, and nothing on disk changes", async () => {
  await withTempDir(async (dir) => {
    let now = Date.now();
    const clock = () => now;
    const db = await open(dir, { durability: "none", clock });
    const { id } = await db.grant(10);
    await db.put("leased", "v", { lease: id });
    await db.put("plain", "v");
    await db.close();
    now += 60_000; // the lease expired while the store was closed
    const before = await fileBytes(dir);
    const fs = new FaultFs();
    fs.faults.spaceLeftBytes = ROOM_FOR_THE_LOCK_BYTES;
    // Serving reads would show "leased" after its deadline (item 5): refused.
    await assert.rejects(() => open(dir, { fs, clock }), (error: unknown) => {
      assert.ok(error instanceof NoSpaceError, String(error));
      assert.match(error.file ?? "", /meta\.json\.tmp$/);
      return true;
    });
    const after = await fileBytes(dir);
    assert.deepEqual([...after.keys()], [...before.keys()]);
    for (const [name, bytes] of before) {
      assert.deepEqual(after.get(name), bytes, `${name} changed`);
    }
    const again = await open(dir, { clock });
    try {
      assert.equal((await again.get("leased")).count, 0);
      assert.equal((await again.get("plain")).count, 1);
    } finally {
      await again.close();
    }
  });
});

Deno.test("opening on a full disk a store whose torn tail must be kept aside is a NoSpaceError naming the .torn file, and nothing is cut", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none", segmentBytes: 65536 });
    for (let i = 0; i < 50; i++) await db.put(`key-${i}`, `value-${i}`);
    await db.close();
    await Deno.remove(`${dir}/wal/CLEAN`);
    const path = await newestSegment(dir);
    const bytes = await Deno.readFile(path);
    const { starts, end } = frameOffsets(bytes);
    const last = starts[starts.length - 1]!;
    bytes.fill(0, last + Math.floor((end - last) / 2), end); // half reached the disk
    await Deno.writeFile(path, bytes);
    const before = await fileBytes(dir);
    const fs = new FaultFs();
    fs.faults.spaceLeftBytes = ROOM_FOR_THE_LOCK_BYTES;
    await assert.rejects(
      () => open(dir, { fs, segmentBytes: 65536 }),
      (error: unknown) => {
        assert.ok(error instanceof NoSpaceError, String(error));
        assert.match(error.file ?? "", /\.torn$/);
        assert.equal(error.operation, "write");
        return true;
      },
    );
    const after = await fileBytes(dir);
    assert.deepEqual([...after.keys()], [...before.keys()]);
    for (const [name, bytes] of before) {
      assert.deepEqual(after.get(name), bytes, `${name} changed`);
    }
    const again = await open(dir, { segmentBytes: 65536 });
    try {
      assert.equal(again.revision, 50);
      assert.ok(again.recovery?.tornTail?.keptAside);
    } finally {
      await again.close();
    }
  });
});
