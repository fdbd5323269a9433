// The portable core of the Store suite, for Node: kv, ranges, txn, leases,
// watch, restart recovery from a data dir, a torn tail, a second opener,
// connect() over the data dir's socket (in this process and another).
// Not named *.test.mjs: `deno test tests/` would pick it up. Runs with
// `node --test` against the bundle named by REVKV_BUNDLE (a path
// to revkv.mjs; tests/node_bundle_test.ts builds it and runs this file).
// Plain JavaScript with node:test and node:assert/strict only: nothing here
// may need Deno.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { dirname } from "node:path";
import { tmpdir } from "node:os";
import { pathToFileURL } from "node:url";

const bundle = process.env.REVKV_BUNDLE;
assert.ok(bundle, "REVKV_BUNDLE names dist/revkv.mjs");
const revkv = await import(pathToFileURL(bundle).href);
const { open, connect, LockedError, EtcdError } = revkv;

const text = (bytes) => new TextDecoder().decode(bytes);

async function withDir(fn) {
  const dir = await mkdtemp(`${tmpdir()}/revkv-node-`);
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("kv: put, get, overwrite, delete and their revisions", async () => {
  const db = await open();
  try {
    const first = await db.put("foo", "bar");
    assert.equal(first.header.revision, 2);
    await db.put("foo", "baz");
    const got = await db.get("foo");
    assert.equal(got.count, 1);
    assert.equal(got.kvs[0].keyText, "foo");
    assert.equal(got.kvs[0].valueText, "baz");
    assert.equal(got.kvs[0].createRevision, 2);
    assert.equal(got.kvs[0].modRevision, 3);
    assert.equal(got.kvs[0].version, 2);
    const old = await db.get("foo", { revision: 2 });
    assert.equal(old.kvs[0].valueText, "bar");
    const deleted = await db.delete("foo");
    assert.equal(deleted.deleted, 1);
    assert.equal((await db.get("foo")).count, 0);
    assert.equal(db.revision, 4);
  } finally {
    await db.close();
  }
});

test("ranges: prefix, range end, limit, count only, sort", async () => {
  const db = await open();
  try {
    for (const k of ["a/1", "a/2", "a/3", "b/1"]) await db.put(k, `v-${k}`);
    const prefix = await db.get("a/", { prefix: true });
    assert.deepEqual(prefix.kvs.map((kv) => kv.keyText), ["a/1", "a/2", "a/3"]);
    const range = await db.get("a/2", { rangeEnd: "b/2" });
    assert.deepEqual(range.kvs.map((kv) => kv.keyText), ["a/2", "a/3", "b/1"]);
    const limited = await db.get("a/", { prefix: true, limit: 2 });
    assert.equal(limited.kvs.length, 2);
    assert.equal(limited.more, true);
    assert.equal(limited.count, 3);
    const counted = await db.get("", { fromKey: true, countOnly: true });
    assert.equal(counted.count, 4);
    assert.equal(counted.kvs.length, 0);
    const sorted = await db.get("a/", {
      prefix: true,
      sortOrder: "descend",
      sortTarget: "key",
    });
    assert.deepEqual(sorted.kvs.map((kv) => kv.keyText), ["a/3", "a/2", "a/1"]);
  } finally {
    await db.close();
  }
});

test("txn: compare-and-swap takes one revision, the failing branch runs else", async () => {
  const db = await open();
  try {
    await db.put("k", "v1");
    const swapped = await db.txn()
      .if(revkv.compare.value("k", "==", "v1"))
      .then(revkv.op.put("k", "v2"), revkv.op.put("other", "x"))
      .else(revkv.op.get("k"))
      .commit();
    assert.equal(swapped.succeeded, true);
    assert.equal(swapped.header.revision, 3);
    const other = await db.get("other");
    assert.equal(other.kvs[0].modRevision, 3);
    const failed = await db.txn()
      .if(revkv.compare.value("k", "==", "v1"))
      .then(revkv.op.put("k", "never"))
      .else(revkv.op.get("k"))
      .commit();
    assert.equal(failed.succeeded, false);
    assert.equal(failed.responses[0].range.kvs[0].valueText, "v2");
    assert.equal(db.revision, 3);
  } finally {
    await db.close();
  }
});

test("errors: etcd's words", async () => {
  const db = await open();
  try {
    await assert.rejects(() => db.put("", "v"), (error) => {
      assert.ok(error instanceof EtcdError);
      assert.equal(error.message, "etcdserver: key is not provided");
      return true;
    });
  } finally {
    await db.close();
  }
});

test("leases: grant, attach, time to live, revoke deletes the keys", async () => {
  const db = await open();
  try {
    const { id, ttl } = await db.grant(60);
    assert.equal(ttl, 60);
    await db.put("session", "alive", { lease: id });
    const ttlResponse = await db.timeToLive(id, { keys: true });
    assert.ok(ttlResponse.ttl > 0 && ttlResponse.ttl <= 60);
    assert.deepEqual(ttlResponse.keys.map(text), ["session"]);
    assert.equal((await db.get("session")).kvs[0].lease, id);
    await db.revoke(id);
    assert.equal((await db.get("session")).count, 0);
    await assert.rejects(() => db.revoke(id), /requested lease not found/);
  } finally {
    await db.close();
  }
});

test("watch: history from a revision, then live events, in order", async () => {
  const db = await open();
  try {
    await db.put("job/1", "queued");
    const controller = new AbortController();
    const seen = [];
    const watching = (async () => {
      for await (
        const res of db.watch("job/", {
          prefix: true,
          startRevision: 1,
          signal: controller.signal,
        })
      ) {
        for (const ev of res.events) {
          seen.push(`${ev.type} ${ev.kv.keyText} ${ev.kv.modRevision}`);
        }
        if (seen.length >= 3) controller.abort();
      }
    })();
    await db.put("job/2", "queued");
    await db.put("other", "ignored");
    await db.delete("job/1");
    await watching;
    assert.deepEqual(seen, ["put job/1 2", "put job/2 3", "delete job/1 5"]);
  } finally {
    await db.close();
  }
});

test("restart: a data dir recovers keys, revisions and leases", async () => {
  await withDir(async (dir) => {
    const db = await open(dir);
    const { id } = await db.grant(3600);
    await db.put("a", "1");
    await db.put("b", "2", { lease: id });
    await db.put("a", "3");
    const header = db.header();
    await db.close();
    const again = await open(dir);
    try {
      assert.equal(again.revision, 4);
      assert.equal(again.header().clusterId, header.clusterId);
      assert.equal(again.header().memberId, header.memberId);
      const a = await again.get("a");
      assert.equal(a.kvs[0].valueText, "3");
      assert.equal(a.kvs[0].version, 2);
      assert.equal(
        (await again.get("a", { revision: 2 })).kvs[0].valueText,
        "1",
      );
      assert.equal((await again.get("b")).kvs[0].lease, id);
      const leases = await again.leases();
      assert.deepEqual(leases.leases.map((l) => l.id), [id]);
      assert.equal(again.recovery.tornTail, undefined);
    } finally {
      await again.close();
    }
  });
});

/** Frame starts of a WAL segment (8-byte aligned, type 0 ends the log). */
function frameStarts(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const starts = [];
  let offset = 0;
  while (offset + 12 <= bytes.length && bytes[offset + 4] !== 0) {
    starts.push(offset);
    const length = view.getUint32(offset, true);
    offset += Math.ceil((12 + length) / 8) * 8;
  }
  return starts;
}

test("torn tail: a damaged last frame is cut, everything before it kept", async () => {
  await withDir(async (dir) => {
    const db = await open(dir);
    for (let i = 1; i <= 20; i++) await db.put(`k${i}`, `v${i}`);
    await db.close();
    // As after a crash: no clean-close marker, the last frame half written.
    await rm(`${dir}/wal/CLEAN`, { force: true });
    const segments = (await readdir(`${dir}/wal`)).filter((n) =>
      n.endsWith(".wal")
    ).sort();
    const path = `${dir}/wal/${segments.at(-1)}`;
    const bytes = new Uint8Array(await readFile(path));
    const starts = frameStarts(bytes);
    const last = starts.at(-1);
    bytes[last + 12] ^= 0xff; // the payload no longer matches its crc
    await writeFile(path, bytes);
    const again = await open(dir);
    try {
      assert.equal(again.revision, 20);
      assert.equal((await again.get("k20")).count, 0);
      assert.equal((await again.get("k19")).kvs[0].valueText, "v19");
      const torn = again.recovery.tornTail;
      assert.ok(torn, "a torn tail is reported");
      assert.equal(torn.file, path);
      assert.equal(torn.offset, last);
      await again.put("k20", "again");
      assert.equal(again.revision, 21);
    } finally {
      await again.close();
    }
  });
});

test("second opener: refused in this process and from another process", async () => {
  await withDir(async (dir) => {
    const db = await open(dir);
    try {
      await assert.rejects(() => open(dir), (error) => {
        assert.ok(error instanceof LockedError);
        assert.equal(error.pid, process.pid);
        assert.match(error.message, /this process: the store is already open/);
        return true;
      });
      const child = spawnSync(process.execPath, [
        "--input-type=module",
        "-e",
        `import { open } from ${JSON.stringify(pathToFileURL(bundle).href)};
         try { await open(${JSON.stringify(dir)}); console.log("opened"); }
         catch (e) { console.log(e.name + ": " + e.message); }`,
      ], { encoding: "utf8", timeout: 30_000 });
      assert.equal(child.status, 0, child.stderr);
      assert.match(
        child.stdout,
        new RegExp(
          `^LockedError: revkv: data dir is locked by process ${process.pid} `,
        ),
      );
    } finally {
      await db.close();
    }
    // Released on close: opening works again.
    const again = await open(dir);
    await again.close();
  });
});

test("connect(): the owner's socket serves this process and another one", async () => {
  await withDir(async (dir) => {
    const owner = await open(dir);
    try {
      const remote = await connect({ endpoints: [`unix://${dir}/revkv.sock`] });
      try {
        const put = await remote.put("n/k", "over the wire");
        assert.equal(put.header.revision, owner.revision);
        assert.equal(
          text((await owner.get("n/k")).kvs[0].value),
          "over the wire",
        );
        const watch = remote.watch("n/", { prefix: true });
        const first = watch.next();
        await new Promise((resolve) => setTimeout(resolve, 100));
        await owner.put("n/w", "seen remotely");
        const { value } = await first;
        assert.equal(text(value.events[0].kv.value), "seen remotely");
        await watch.return();
      } finally {
        await remote.close();
      }
      // Another Node process: open(dir, { whenLocked: "connect" }).
      const out = await new Promise((resolve, reject) => {
        execFile(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            `import { open } from ${JSON.stringify(pathToFileURL(bundle).href)};
           const db = await open(${
              JSON.stringify(dir)
            }, { whenLocked: "connect" });
           await db.put("n/child", "from the child");
           await db.close();
           console.log("done");`,
          ],
          { encoding: "utf8", timeout: 30_000 },
          (error, stdout, stderr) =>
            error
              ? reject(new Error(`${error.message}\n${stderr}`))
              : resolve(stdout),
        );
      });
      assert.equal(out.trim(), "done");
      assert.equal(
        text((await owner.get("n/child")).kvs[0].value),
        "from the child",
      );
    } finally {
      await owner.close();
    }
  });
});

test("stale lock: a dead holder's lock is taken over", async () => {
  await withDir(async (dir) => {
    const db = await open(dir);
    await db.close();
    // A pid that is not running (the child has exited).
    const child = spawnSync(process.execPath, [
      "-e",
      "console.log(process.pid)",
    ], {
      encoding: "utf8",
    });
    const deadPid = Number(child.stdout.trim());
    await writeFile(`${dir}/LOCK`, `pid ${deadPid}\nstart 1\n`);
    const again = await open(dir);
    try {
      assert.equal(again.recovery.staleLockPid, deadPid);
    } finally {
      await again.close();
    }
  });
});

test("replay worker: recovery in a worker thread gives the same store", async () => {
  await withDir(async (dir) => {
    const db = await open(dir, { durability: "none" });
    for (let i = 0; i < 500; i++) await db.put(`k${i % 200}`, `v${i}`);
    await db.compact(100);
    const { hash } = db.hash();
    const revision = db.revision;
    await db.close();
    for (const replayWorker of ["always", "never"]) {
      const again = await open(dir, { replayWorker });
      try {
        assert.equal(again.revision, revision, replayWorker);
        assert.equal(again.hash().hash, hash, replayWorker);
      } finally {
        await again.close();
      }
    }
  });
});

test("replay worker: a worker thread loads and reads; a broken one falls back in-thread", async () => {
  await withDir(async (dir) => {
    // Copies of the package: one whose worker marks that it loaded, one
    // whose worker throws as it loads.
    const worker = await readFile(
      `${dirname(bundle)}/replay-worker.mjs`,
      "utf8",
    );
    const mark = `${dir}/worker-loaded`;
    const packages = { marking: `${dir}/marking`, broken: `${dir}/broken` };
    for (const copy of Object.values(packages)) {
      await mkdir(copy);
      await copyFile(bundle, `${copy}/revkv.mjs`);
    }
    await writeFile(
      `${packages.marking}/replay-worker.mjs`,
      `import { writeFileSync as markLoaded } from "node:fs";\n` +
        `markLoaded(${JSON.stringify(mark)}, "loaded");\n` + worker,
    );
    await writeFile(
      `${packages.broken}/replay-worker.mjs`,
      'throw new Error("worker file replaced by the test");\n',
    );
    const data = `${dir}/data`;
    const db = await open(data, { durability: "none" });
    for (let i = 0; i < 300; i++) await db.put(`k${i % 50}`, `v${i}`);
    const { hash } = db.hash();
    await db.close();
    for (const [name, copy] of Object.entries(packages)) {
      const lib = await import(pathToFileURL(`${copy}/revkv.mjs`).href);
      const again = await lib.open(data, { replayWorker: "always" });
      try {
        assert.equal(again.revision, 301, name);
        assert.equal(again.hash().hash, hash, name);
      } finally {
        await again.close();
      }
    }
    assert.equal(await readFile(mark, "utf8"), "loaded");
  });
});
