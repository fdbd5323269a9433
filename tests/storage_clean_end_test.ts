/**
 * The clean-close marker (`wal/CLEAN`): written by a clean close, consumed
 * by the next open before anything is appended, and never a reason to
 * accept a damaged log.
 */
import assert from "node:assert/strict";
import { open, repair, WalCorruptionError } from "../mod.ts";
import {
  frameOffsets,
  lastSegmentPath,
  withTempDir,
} from "./storage_helpers.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("a clean close records the log's end; the next open consumes it before writing", async () => {
  await withTempDir(async (dir) => {
    let db = await open(dir, { durability: "none" });
    await db.put("a", "1");
    await db.close();
    const marker = JSON.parse(await Deno.readTextFile(`${dir}/wal/CLEAN`));
    const segment = await Deno.readFile(await lastSegmentPath(dir));
    assert.equal(marker.offset, frameOffsets(segment).end);

    db = await open(dir, { durability: "none" });
    assert.equal(await exists(`${dir}/wal/CLEAN`), false);
    await db.put("b", "2");
    // What a crash would leave now has no marker.
    assert.equal(await exists(`${dir}/wal/CLEAN`), false);
    await db.close();
    db = await open(dir, { durability: "none" });
    assert.equal((await db.get("b")).kvs[0]?.valueText, "2");
    await db.close();
  });
});

Deno.test("a zeroed frame header inside the log is corruption even after a clean close", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none" });
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, "v".repeat(100));
    await db.close();
    assert.ok(await exists(`${dir}/wal/CLEAN`));
    const path = await lastSegmentPath(dir);
    const bytes = await Deno.readFile(path);
    const { starts } = frameOffsets(bytes);
    const middle = starts[Math.floor(starts.length / 2)]!;
    bytes.fill(0, middle, middle + 12);
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      open(dir, { durability: "none" }),
      (error: unknown) => error instanceof WalCorruptionError,
    );
  });
});

Deno.test("a marker that does not match the log is a contradiction: refused, nothing changed, and repair cuts it", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none" });
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, "v");
    await db.close();
    const path = await lastSegmentPath(dir);
    const bytes = await Deno.readFile(path);
    const { starts } = frameOffsets(bytes);
    // Tear the last frame: the log now ends before the marker's offset,
    // which a clean close cannot leave.
    const last = starts[starts.length - 1]!;
    bytes.fill(0, last + 4, last + 12);
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      open(dir, { durability: "none" }),
      (error: unknown) =>
        error instanceof WalCorruptionError && error.offset === last &&
        /clean-close marker/.test(error.reason),
    );
    assert.deepEqual(await Deno.readFile(path), bytes);
    const report = await repair(dir);
    // Without the marker's word the frame is the last one: repair cuts it
    // as a torn tail, keeping its bytes aside.
    assert.equal(report.tornTail?.offset, last);
    assert.ok(report.tornTail?.keptAside);
    const reopened = await open(dir, { durability: "none" });
    assert.equal((await reopened.get("k18")).count, 1);
    assert.equal((await reopened.get("k19")).count, 0);
    await reopened.close();
  });
});
