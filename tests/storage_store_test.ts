import assert from "node:assert/strict";
import {
  LockedError,
  NoSpaceError,
  op,
  open,
  restoreSnapshot,
  SnapshotCorruptionError,
  snapshotStatus,
  StorageFailedError,
} from "../mod.ts";
import { storeInternals } from "../src/store.ts";
import { FaultFs, withTempDir } from "./storage_helpers.ts";

Deno.test("a durable store keeps its data, IDs and a term that grows by one per open", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir);
    await db.put("a", "1");
    await db.put("b", "2");
    await db.delete("a");
    const { clusterId, memberId, raftTerm } = db.header();
    assert.equal(raftTerm, 2);
    await db.close();
    const again = await open(dir);
    try {
      const header = again.header();
      assert.equal(header.clusterId, clusterId);
      assert.equal(header.memberId, memberId);
      assert.equal(header.raftTerm, 3);
      assert.equal(again.revision, 4);
      assert.equal((await again.get("a")).count, 0);
      assert.equal(
        (await again.get("a", { revision: 2 })).kvs[0]?.valueText,
        "1",
      );
      assert.equal((await again.get("b")).kvs[0]?.version, 1);
    } finally {
      await again.close();
    }
  });
});

Deno.test("a second opener in the same process gets the lock error", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none" });
    try {
      await assert.rejects(() => open(dir), (error: unknown) => {
        assert.ok(error instanceof LockedError);
        assert.equal(error.pid, Deno.pid);
        return true;
      });
    } finally {
      await db.close();
    }
    await (await open(dir, { durability: "none" })).close();
  });
});

Deno.test("a second process gets the lock error naming the holder's pid, and a dead holder's lock is taken over", async () => {
  await withTempDir(async (dir) => {
    const code = `
      import { open } from ${
      JSON.stringify(new URL("../mod.ts", import.meta.url).href)
    };
      const db = await open(${JSON.stringify(dir)}, { durability: "none" });
      await db.put("from", "child");
      console.log("locked");
      setInterval(() => {}, 1000);`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      assert.match(new TextDecoder().decode(value), /locked/);
      reader.releaseLock();
      await assert.rejects(() => open(dir), (error: unknown) => {
        assert.ok(error instanceof LockedError);
        assert.equal(error.pid, child.pid);
        assert.match(error.message, new RegExp(`process ${child.pid}`));
        return true;
      });
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
    const db = await open(dir, { durability: "none" });
    try {
      assert.equal(db.recovery?.staleLockPid, child.pid);
      assert.equal((await db.get("from")).kvs[0]?.valueText, "child");
    } finally {
      await db.close();
    }
  });
});

Deno.test("64 concurrent writers share fsyncs (group commit) and every write is durable", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir);
    const writes = 64 * 8;
    let n = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let i = 0; i < 8; i++) await db.put(`w${n++}`, "v");
      }),
    );
    await db.close();
    const again = await open(dir);
    try {
      assert.equal(again.revision, 1 + writes);
      assert.equal(
        (await again.get("w", { prefix: true, countOnly: true })).count,
        writes,
      );
    } finally {
      await again.close();
    }
  });
});

Deno.test("reads never see a write before its batch is synced", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir);
    try {
      const pending = db.put("k", "v");
      // Applied in memory, not yet durable: invisible.
      assert.equal(storeInternals.getSync(db, "k").count, 0);
      assert.equal(db.revision, 1);
      await pending;
      assert.equal(storeInternals.getSync(db, "k").count, 1);
    } finally {
      await db.close();
    }
  });
});

Deno.test("a read-only txn answers only once what it read is synced", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir);
    try {
      const pending = db.put("k", "v");
      const res = await db.txn({ success: [op.get("k")] });
      // The txn read the applied state; it may answer only once that
      // state is durable, like every other read.
      const [read] = res.responses;
      assert.ok(read && "range" in read);
      assert.equal(read.range.count, 1);
      assert.ok(db.revision >= 2, `committed revision ${db.revision}`);
      assert.equal(res.header.revision, 2);
      await pending;
    } finally {
      await db.close();
    }
  });
});

Deno.test("a full disk fails the write clearly, stops the store, and loses nothing acknowledged", async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultFs();
    const db = await open(dir, { fs, segmentBytes: 64 * 1024 });
    const acked: number[] = [];
    for (let i = 0; i < 50; i++) {
      acked.push((await db.put(`k${i}`, "v".repeat(100))).header.revision);
    }
    fs.faults.spaceLeftBytes = 3000;
    let failure: unknown;
    for (let i = 50; i < 500 && failure === undefined; i++) {
      try {
        acked.push((await db.put(`k${i}`, "v".repeat(100))).header.revision);
      } catch (error) {
        failure = error;
      }
    }
    assert.ok(failure instanceof StorageFailedError, String(failure));
    assert.match((failure as Error).message, /No space left on device/);
    await assert.rejects(() => db.put("later", "x"), StorageFailedError);
    await db.close();
    const again = await open(dir);
    try {
      for (const revision of acked) {
        const i = revision - 2;
        assert.equal((await again.get(`k${i}`)).kvs[0]?.modRevision, revision);
      }
      again.check();
    } finally {
      await again.close();
    }
  });
});

Deno.test("an fsync failure rejects every pending write (fail-stop)", async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultFs();
    const db = await open(dir, { fs });
    await db.put("ok", "1");
    fs.faults.failSync = true;
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => db.put(`p${i}`, "v")),
    );
    assert.ok(results.every((r) => r.status === "rejected"));
    assert.equal(db.revision, 2);
    await db.close();
    const again = await open(dir);
    try {
      assert.equal((await again.get("ok")).kvs[0]?.valueText, "1");
    } finally {
      await again.close();
    }
  });
});

Deno.test("snapshots are taken at the entry count, old segments go, and recovery uses them", async () => {
  await withTempDir(async (dir) => {
    const options = {
      durability: "none" as const,
      segmentBytes: 8192,
      snapshotCount: 100,
    };
    const db = await open(dir, options);
    for (let i = 0; i < 1000; i++) await db.put(`k${i % 50}`, `v${i}`);
    await db.compact(900);
    for (let i = 0; i < 20; i++) await db.put(`z${i}`, "after");
    await db.defrag(); // a snapshot now
    const hash = db.hash();
    await db.close();
    const snaps = [...Deno.readDirSync(`${dir}/snap`)].map((e) => e.name);
    assert.equal(snaps.length, 2, snaps.join());
    const segments = [...Deno.readDirSync(`${dir}/wal`)].length;
    assert.ok(segments < 10, `${segments} segments kept`);
    const again = await open(dir, options);
    try {
      assert.ok(again.recovery?.snapshot);
      assert.deepEqual(again.hash(), hash);
      assert.equal(again.compactRevision, 900);
      again.check();
    } finally {
      await again.close();
    }
  });
});

Deno.test("a corrupt newest snapshot falls back to the older one and the WAL", async () => {
  await withTempDir(async (dir) => {
    const options = {
      durability: "none" as const,
      segmentBytes: 8192,
      snapshotCount: 100,
    };
    const db = await open(dir, options);
    for (let i = 0; i < 450; i++) await db.put(`k${i % 30}`, `v${i}`);
    await db.defrag();
    const hash = db.hash();
    await db.close();
    const snaps = [...Deno.readDirSync(`${dir}/snap`)].map((e) => e.name)
      .sort();
    const newest = `${dir}/snap/${snaps[snaps.length - 1]}`;
    const bytes = await Deno.readFile(newest);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x10;
    await Deno.writeFile(newest, bytes);
    await assert.rejects(() => snapshotStatus(newest), SnapshotCorruptionError);
    const again = await open(dir, options);
    try {
      assert.equal(again.recovery?.skippedSnapshots.length, 1);
      assert.equal(again.recovery?.skippedSnapshots[0]?.file, newest);
      assert.deepEqual(again.hash(), hash);
    } finally {
      await again.close();
    }
  });
});

Deno.test("snapshot save, status and restore make an equal store", async () => {
  await withTempDir(async (dir) => {
    const db = await open(`${dir}/a`, { durability: "none" });
    for (let i = 0; i < 300; i++) await db.put(`k${i % 40}`, `v${i}`);
    await db.delete("k1");
    const saved = await db.saveSnapshot(`${dir}/backup.snap`);
    const hash = db.hash();
    await db.close();
    const status = await snapshotStatus(`${dir}/backup.snap`);
    assert.deepEqual(status, saved);
    assert.equal(status.revision, 302);
    assert.equal(status.totalKeys, 40);
    assert.equal(status.hash, hash.hash);
    await restoreSnapshot(`${dir}/backup.snap`, `${dir}/b`);
    await assert.rejects(() =>
      restoreSnapshot(`${dir}/backup.snap`, `${dir}/b`)
    );
    const restored = await open(`${dir}/b`, { durability: "none" });
    try {
      assert.equal(restored.revision, 302);
      assert.deepEqual(restored.hash(), hash);
      await restored.put("new", "write");
      assert.equal(restored.revision, 303);
    } finally {
      await restored.close();
    }
  });
});

Deno.test("past the quota puts fail with etcd's error and an alarm, deletes work, and compaction + defrag clear it", async () => {
  const db = await open(undefined, { quotaBackendBytes: 64 * 1024 });
  try {
    let failure: unknown;
    for (let i = 0; i < 1000 && failure === undefined; i++) {
      try {
        await db.put(`k${i % 20}`, "x".repeat(1000));
      } catch (error) {
        failure = error;
      }
    }
    assert.ok(failure instanceof NoSpaceError);
    assert.equal(
      (failure as Error).message,
      "etcdserver: mvcc: database space exceeded",
    );
    assert.deepEqual(db.alarms(), ["NOSPACE"]);
    await assert.rejects(() => db.put("small", "1"), NoSpaceError);
    assert.equal((await db.get("k1")).count, 1); // reads work
    await db.delete("k1"); // deletes work
    await db.compact(db.revision);
    await db.defrag();
    assert.deepEqual(db.alarms(), []);
    await db.put("small", "1");
  } finally {
    await db.close();
  }
});

Deno.test("a physical compaction of a durable store resolves once reclaimed", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none" });
    await db.put("k", "v1");
    await db.put("k", "v2");
    await db.put("k", "v3");
    await db.compact(3, { physical: true });
    assert.equal(db.compactRevision, 3);
    assert.equal((await db.get("k", { revision: 3 })).kvs[0]!.valueText, "v2");
    db.check();
    await db.close();
  });
});
