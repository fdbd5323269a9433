/**
 * Recovery with the WAL read in a worker (src/storage/replay_batch.ts)
 * against recovery in-thread: the same log gives the same state (keys,
 * history, hash, leases, revisions), the same torn-tail truncation and the
 * same corruption error, with the worker forced on (`replayWorker:
 * "always"`) and off (`"never"`). The default (`"auto"`) picks the worker
 * for a log over 8 MiB, which is checked too.
 */
import assert from "node:assert/strict";
import { op, open, type Store, WalCorruptionError } from "../mod.ts";
import { COLD_CHUNK_BYTES } from "../src/mvcc/cold_entries.ts";
import { openDataDir } from "../src/storage/data_dir.ts";
import {
  frameOffsets,
  lastSegmentPath,
  withTempDir,
} from "./storage_helpers.ts";

const OPTIONS = { durability: "none", segmentBytes: 1 << 18 } as const;

/** A log with every record kind and every chunk path of the worker. */
async function writeMixedLog(dir: string): Promise<void> {
  const db = await open(dir, { ...OPTIONS, snapshotCount: 1_000_000 });
  try {
    const lease = (await db.grant(600)).id;
    const short = (await db.grant(600)).id;
    for (let i = 0; i < 3000; i++) {
      const key = `k/${(i * 7919 % 1000).toString().padStart(4, "0")}`;
      await db.put(key, `v${i}-${"x".repeat(i % 90)}`, {
        lease: i % 13 === 0 ? lease : i % 17 === 0 ? short : 0n,
      });
      if (i % 101 === 0) {
        await db.delete(`k/${(i % 1000).toString().padStart(4, "0")}`);
      }
      if (i % 250 === 0) {
        await db.txn().then(
          op.put(`t/${i}/a`, "a"),
          op.put(`t/${i}/b`, "b"),
          op.delete("k/0000"),
        ).commit();
      }
    }
    // Values bigger than a chunk of the worker, and a key alone in its chunk.
    await db.put("big/1", new Uint8Array(200_000).fill(7));
    await db.put("big/2", new Uint8Array(70_000).fill(9));
    await db.put("k/0500", "after big");
    await db.compact(1500);
    await db.revoke(short);
    await db.put("last", "one");
  } finally {
    await db.close();
  }
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) {
      await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    } else if (entry.name !== "LOCK" && entry.isFile) {
      await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
    }
  }
}

/** Everything a client can see of a store, for comparison. */
async function observe(db: Store) {
  const all = await db.get("", { prefix: true });
  const leases = (await db.leases()).leases.map((l) => l.id).sort();
  const leaseKeys = await Promise.all(
    leases.map(async (id) =>
      (await db.timeToLive(id, { keys: true })).keys?.map((k) =>
        new TextDecoder().decode(k)
      )
    ),
  );
  const history = await db.get("k/", { prefix: true, revision: 2000 });
  return {
    revision: db.revision,
    hash: db.hash(),
    kvs: all.kvs.map((kv) => ({
      key: kv.keyText,
      value: kv.value.length > 1000 ? kv.value.length : kv.valueText,
      create: kv.createRevision,
      mod: kv.modRevision,
      version: kv.version,
      lease: kv.lease,
    })),
    history: history.kvs.map((kv) => [kv.keyText, kv.modRevision]),
    leases,
    leaseKeys,
  };
}

async function openBoth(
  dir: string,
  prepare: (copy: string) => Promise<void> = async () => {},
) {
  const results: unknown[] = [];
  for (const mode of ["always", "never"] as const) {
    const copy = `${dir}-${mode}`;
    await copyDir(dir, copy);
    try {
      await prepare(copy);
      const db = await open(copy, { ...OPTIONS, replayWorker: mode });
      try {
        db.check();
        results.push({ seen: await observe(db), report: db.recovery });
      } finally {
        await db.close();
      }
    } catch (error) {
      results.push({ error });
    } finally {
      await Deno.remove(copy, { recursive: true });
    }
  }
  return results as (
    | { seen: Awaited<ReturnType<typeof observe>>; report: Store["recovery"] }
    | { error: unknown }
  )[];
}

Deno.test("a log read in the worker restores what in-thread recovery restores", async () => {
  await withTempDir(async (dir) => {
    await writeMixedLog(dir);
    // After a crash (no clean-close marker), and after a clean close.
    for (const crash of [true, false]) {
      const [worker, inThread] = await openBoth(dir, async (copy) => {
        if (crash) await Deno.remove(`${copy}/wal/CLEAN`);
      });
      assert.ok(
        worker && "seen" in worker,
        String((worker as { error?: unknown })?.error),
      );
      assert.ok(inThread && "seen" in inThread);
      assert.deepEqual(worker.seen, inThread.seen);
      assert.equal(
        worker.report?.replayedRecords,
        inThread.report?.replayedRecords,
      );
      assert.ok(worker.seen.kvs.length > 900);
      assert.ok(worker.seen.leaseKeys.flat().length > 50);
    }
  });
});

Deno.test("a torn tail is truncated the same way when the worker reads the log", async () => {
  await withTempDir(async (dir) => {
    await writeMixedLog(dir);
    const [worker, inThread] = await openBoth(dir, async (copy) => {
      await Deno.remove(`${copy}/wal/CLEAN`);
      const path = await lastSegmentPath(copy);
      const bytes = await Deno.readFile(path);
      const { starts, end } = frameOffsets(bytes);
      // Cut the last frame in half, as a write that never finished.
      const last = starts[starts.length - 1]!;
      bytes.fill(0, last + Math.floor((end - last) / 2), end);
      await Deno.writeFile(path, bytes);
    });
    assert.ok(worker && "seen" in worker);
    assert.ok(inThread && "seen" in inThread);
    assert.deepEqual(worker.seen, inThread.seen);
    assert.ok(worker.report?.tornTail);
    assert.equal(
      worker.report?.tornTail?.offset,
      inThread.report?.tornTail?.offset,
    );
    assert.equal(worker.seen.kvs.find((kv) => kv.key === "last"), undefined);
  });
});

Deno.test("corruption in the middle of the log names the same file and offset through the worker", async () => {
  await withTempDir(async (dir) => {
    await writeMixedLog(dir);
    const victims: number[] = [];
    const [worker, inThread] = await openBoth(dir, async (copy) => {
      // The first segment: corruption in a segment that is not the last.
      const first = [...Deno.readDirSync(`${copy}/wal`)]
        .map((e) => e.name).filter((n) => n.endsWith(".wal")).sort()[0]!;
      const path = `${copy}/wal/${first}`;
      const bytes = await Deno.readFile(path);
      const { starts } = frameOffsets(bytes);
      const victim = starts[Math.floor(starts.length / 2)]!;
      victims.push(victim);
      bytes[victim + 20] = bytes[victim + 20]! ^ 0x10;
      await Deno.writeFile(path, bytes);
    });
    for (const result of [worker, inThread]) {
      assert.ok(result && "error" in result);
      assert.ok(
        result.error instanceof WalCorruptionError,
        String(result.error),
      );
      assert.equal(result.error.offset, victims[0]);
      assert.match(result.error.file, /\/0000000000000000-[0-9a-f]{16}\.wal$/);
    }
  });
});

Deno.test("auto mode reads a log over 8 MiB in the worker and a small one in-thread", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, {
      durability: "none",
      snapshotCount: 1_000_000,
    });
    const value = new Uint8Array(1000).fill(1);
    for (let i = 0; i < 9000; i += 500) {
      const puts = [];
      for (let j = i; j < i + 500; j++) puts.push(db.put(`key${j}`, value));
      await Promise.all(puts);
    }
    await db.close();
    let workers = 0;
    const RealWorker = globalThis.Worker;
    globalThis.Worker = class extends RealWorker {
      constructor(url: string | URL, options?: WorkerOptions) {
        super(url, options);
        workers++;
      }
    };
    try {
      const big = await open(dir, { durability: "none" });
      assert.equal(big.revision, 9001);
      await big.close();
      assert.equal(workers, 1);
      await withTempDir(async (small) => {
        const db = await open(small, { durability: "none" });
        await db.put("a", "b");
        await db.close();
        await Deno.remove(`${small}/wal/CLEAN`);
        await (await open(small, { durability: "none" })).close();
      });
      assert.equal(workers, 1);
      // Under 8 MiB over several segments (they grow from 1 MiB): in-thread,
      // with and without the clean-close marker.
      await withTempDir(async (several) => {
        const db = await open(several, { durability: "none" });
        for (let i = 0; i < 3000; i += 500) {
          const puts = [];
          for (let j = i; j < i + 500; j++) {
            puts.push(db.put(`key${j}`, value));
          }
          await Promise.all(puts);
        }
        await db.close();
        const names = [...Deno.readDirSync(`${several}/wal`)]
          .filter((e) => e.name.endsWith(".wal"));
        assert.ok(names.length >= 3, `${names.length} segments`);
        await (await open(several, { durability: "none" })).close();
        await Deno.remove(`${several}/wal/CLEAN`);
        const again = await open(several, { durability: "none" });
        assert.equal(again.revision, 3001);
        await again.close();
      });
      assert.equal(workers, 1);
    } finally {
      globalThis.Worker = RealWorker;
    }
  });
});

/** A store whose newest snapshot (with leases) is followed by more WAL. */
async function writeSnapshotAndLog(dir: string): Promise<void> {
  await writeMixedLog(dir);
  const db = await open(dir, OPTIONS);
  try {
    await db.defrag(); // a snapshot at the current revision
    const lease = (await db.grant(900)).id;
    for (let i = 0; i < 300; i++) {
      await db.put(`after/${i % 50}`, `a${i}`, { lease: i % 2 ? lease : 0n });
    }
  } finally {
    await db.close();
  }
}

Deno.test("a snapshot read in the worker restores what in-thread recovery restores", async () => {
  await withTempDir(async (dir) => {
    await writeSnapshotAndLog(dir);
    const [worker, inThread] = await openBoth(dir, async (copy) => {
      await Deno.remove(`${copy}/wal/CLEAN`);
    });
    assert.ok(
      worker && "seen" in worker,
      String((worker as { error?: unknown }).error),
    );
    assert.ok(inThread && "seen" in inThread);
    assert.ok(worker.report?.snapshot, "recovered from a snapshot");
    assert.equal(
      worker.report?.snapshot?.revision,
      inThread.report?.snapshot?.revision,
    );
    assert.equal(worker.report?.replayedRecords, 300);
    assert.deepEqual(worker.seen, inThread.seen);
    assert.ok(worker.seen.leaseKeys.flat().length > 50);
  });
});

Deno.test("a corrupt snapshot is refused the same way when the worker reads it", async () => {
  await withTempDir(async (dir) => {
    await writeSnapshotAndLog(dir);
    const snaps = [...Deno.readDirSync(`${dir}/snap`)].map((e) => e.name)
      .filter((n) => n.endsWith(".snap")).sort();
    const newest = snaps[snaps.length - 1]!;
    const results = await openBoth(dir, async (copy) => {
      const path = `${copy}/snap/${newest}`;
      const bytes = await Deno.readFile(path);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      await Deno.writeFile(path, bytes);
    });
    // The WAL before the snapshot is gone, so there is nothing to fall
    // back to: both refuse, naming the snapshot, offset and reason.
    const messages = results.map((result) => {
      assert.ok("error" in result);
      assert.ok(result.error instanceof Error);
      return result.error.message.replaceAll(/-(always|never)/g, "");
    });
    assert.equal(messages[0], messages[1]);
    assert.match(
      messages[0]!,
      /\.snap is corrupt at offset \d+: crc mismatch/,
    );
  });
});

Deno.test("cold keys keep no more of the worker's chunks than their own bytes need", async () => {
  await withTempDir(async (dir) => {
    // 200 keys written once, among 20,000 overwrites of 10 others: every
    // chunk the worker fills holds a few cold keys and many dead values.
    const db = await open(dir, { durability: "none" });
    const value = new Uint8Array(100).fill(3);
    for (let i = 0; i < 20_000; i += 500) {
      const puts = [];
      for (let j = i; j < i + 500; j++) {
        puts.push(db.put(`hot/${j % 10}`, value));
        if (j % 100 === 0) puts.push(db.put(`cold/${j}`, `v${j}`));
      }
      await Promise.all(puts);
    }
    await db.close();
    const opened = await openDataDir(dir, {
      durability: "none",
      replayWorker: "always",
    });
    try {
      const mvcc = opened.mvcc;
      assert.equal(mvcc.coldKeyCount, 200);
      const { heldBytes, liveBytes } = mvcc.coldChunkBytes();
      let ownBytes = 0;
      for (let j = 0; j < 20_000; j += 100) {
        ownBytes += `cold/${j}`.length + `v${j}`.length;
      }
      assert.equal(liveBytes, ownBytes);
      assert.ok(
        heldBytes <= COLD_CHUNK_BYTES,
        `${heldBytes} bytes of chunks held for ${liveBytes} bytes`,
      );
      mvcc.check();
    } finally {
      await opened.journal.close();
    }
    const again = await open(dir, {
      durability: "none",
      replayWorker: "always",
    });
    try {
      assert.equal((await again.get("cold/12300")).kvs[0]?.valueText, "v12300");
      assert.equal((await again.get("cold/", { prefix: true })).count, 200);
    } finally {
      await again.close();
    }
  });
});

Deno.test("stores recovering at once in one process read their own logs", async () => {
  // In-thread streaming reads through pooled windows; one shared window
  // would let each recovery read the others' bytes between its awaits.
  await withTempDir(async (dir) => {
    const dirs = [0, 1, 2, 3].map((n) => `${dir}/${n}`);
    for (const [n, d] of dirs.entries()) {
      const db = await open(d, { durability: "none" });
      const value = new Uint8Array(150).fill(n + 1);
      for (let i = 0; i < 12_000; i += 1000) {
        const puts = [];
        for (let j = i; j < i + 1000; j++) {
          puts.push(db.put(`${n}/${j}`, value));
        }
        await Promise.all(puts);
      }
      await db.close();
      await Deno.remove(`${d}/wal/CLEAN`); // the tail is checked too
    }
    for (let round = 0; round < 2; round++) {
      const stores = await Promise.all(
        dirs.map((d) => open(d, { durability: "none", replayWorker: "never" })),
      );
      try {
        for (const [n, db] of stores.entries()) {
          assert.equal(db.recovery?.tornTail, undefined);
          db.check();
          const all = await db.get("", { prefix: true });
          assert.equal(all.count, 12_000);
          assert.ok(all.kvs.every((kv) => kv.keyText.startsWith(`${n}/`)));
          assert.ok(all.kvs.every((kv) => kv.value.every((b) => b === n + 1)));
        }
      } finally {
        await Promise.all(stores.map((db) => db.close()));
      }
      for (const d of dirs) await Deno.remove(`${d}/wal/CLEAN`);
    }
  });
});

Deno.test("a replay worker that fails is replaced by in-thread recovery", async () => {
  await withTempDir(async (dir) => {
    await writeSnapshotAndLog(dir);
    const [, inThread] = await openBoth(dir);
    assert.ok(inThread && "seen" in inThread);
    const RealWorker = globalThis.Worker;
    let started = 0;
    // A worker that fails as soon as it is asked anything (as one that
    // crashed, or could not load its module).
    class FailingWorker extends EventTarget {
      onmessage: ((event: MessageEvent) => void) | null = null;
      onerror: ((event: ErrorEvent) => void) | null = null;
      constructor() {
        super();
        started++;
      }
      postMessage(): void {
        setTimeout(() =>
          this.onerror?.(new ErrorEvent("error", { message: "boom" }))
        );
      }
      terminate(): void {}
    }
    globalThis.Worker = FailingWorker as unknown as typeof Worker;
    try {
      const db = await open(dir, { ...OPTIONS, replayWorker: "always" });
      try {
        db.check();
        assert.deepEqual(await observe(db), inThread.seen);
      } finally {
        await db.close();
      }
    } finally {
      globalThis.Worker = RealWorker;
    }
    assert.equal(started, 1);
  });
});

Deno.test("a program allowed to read only its data dir recovers in-thread", async () => {
  await withTempDir(async (dir) => {
    await writeMixedLog(dir);
    const script = `
      import { open } from ${
      JSON.stringify(new URL("../mod.ts", import.meta.url).href)
    };
      const db = await open(${
      JSON.stringify(dir)
    }, { durability: "none", replayWorker: "always" });
      console.log(db.revision);
      await db.close();`;
    const file = `${dir}.script.ts`;
    await Deno.writeTextFile(file, script);
    try {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", `--allow-read=${dir}`, `--allow-write=${dir}`, file],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(stderr);
      assert.equal(code, 0, err);
      assert.doesNotMatch(err, /worker/i);
      const db = await open(dir, OPTIONS);
      try {
        assert.equal(Number(new TextDecoder().decode(stdout)), db.revision);
      } finally {
        await db.close();
      }
    } finally {
      await Deno.remove(file);
    }
  });
});
