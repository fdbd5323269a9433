/**
 * The store's key space: revisions, versions, every range option, put and
 * delete options, compaction and its errors, bad input, paged scans.
 */
import assert from "node:assert/strict";
import { type EtcdError, open, prefixEnd } from "../mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const keys = (kvs: { keyText: string }[]) => kvs.map((kv) => kv.keyText);

Deno.test("a fresh store is at revision 1 and each write takes the next one", async () => {
  await using db = await open();
  assert.equal(db.revision, 1);
  assert.equal((await db.put("a", "1")).header.revision, 2);
  assert.equal((await db.put("a", "2")).header.revision, 3);
  assert.equal((await db.delete("a")).header.revision, 4);
  assert.equal(db.revision, 4);
});

Deno.test("create_revision, mod_revision and version follow etcd, version resets after delete", async () => {
  await using db = await open();
  await db.put("k", "1"); // 2
  await db.put("k", "2"); // 3
  let kv = (await db.get("k")).kvs[0]!;
  assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [2, 3, 2]);
  await db.delete("k"); // 4
  await db.put("k", "3"); // 5
  kv = (await db.get("k")).kvs[0]!;
  assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [5, 5, 1]);
  // History stays readable at every revision.
  assert.equal((await db.get("k", { revision: 2 })).kvs[0]!.valueText, "1");
  assert.equal((await db.get("k", { revision: 3 })).kvs[0]!.version, 2);
  assert.equal((await db.get("k", { revision: 4 })).count, 0);
  assert.equal((await db.get("k", { revision: 1 })).count, 0);
});

Deno.test("a delete that matches nothing takes no revision", async () => {
  await using db = await open();
  await db.put("a", "1");
  const res = await db.delete("zzz", { prefix: true });
  assert.equal(res.deleted, 0);
  assert.equal(res.header.revision, 2);
  assert.equal(db.revision, 2);
});

Deno.test("ranges compare keys byte-wise: key12 sorts before key2", async () => {
  await using db = await open();
  for (const k of ["key2", "key12", "key1", "key"]) await db.put(k, k);
  const { kvs } = await db.get("key", { prefix: true });
  assert.deepEqual(keys(kvs), ["key", "key1", "key12", "key2"]);
  const range = await db.get("key1", { rangeEnd: "key2" });
  assert.deepEqual(keys(range.kvs), ["key1", "key12"]);
});

Deno.test("binary keys with 0x00 and 0xff order and select correctly", async () => {
  await using db = await open();
  const ks = [[0x61], [0x61, 0x00], [0x61, 0xff], [0xff], [0xff, 0xff], [0x00]]
    .map((b) => new Uint8Array(b));
  for (const k of ks) await db.put(k, "v");
  const all = await db.get(new Uint8Array([0]), { fromKey: true });
  assert.deepEqual(
    all.kvs.map((kv) => Array.from(kv.key)),
    [[0x00], [0x61], [0x61, 0x00], [0x61, 0xff], [0xff], [0xff, 0xff]],
  );
  const pre = await db.get(new Uint8Array([0x61]), { prefix: true });
  assert.equal(pre.count, 3);
  // A key of only 0xff bytes has no prefix end: it runs to the last key.
  assert.deepEqual(Array.from(prefixEnd(new Uint8Array([0xff, 0xff]))), [0]);
  const ffs = await db.get(new Uint8Array([0xff]), { prefix: true });
  assert.equal(ffs.count, 2);
  // rangeEnd "\0" means from-key.
  const fromKey = await db.get("a", { rangeEnd: "\0" });
  assert.equal(fromKey.count, 5);
});

Deno.test("limit keeps count as the total and sets more", async () => {
  await using db = await open();
  for (let i = 0; i < 10; i++) await db.put(`k${i}`, String(i));
  const res = await db.get("k", { prefix: true, limit: 3 });
  assert.deepEqual(keys(res.kvs), ["k0", "k1", "k2"]);
  assert.equal(res.count, 10);
  assert.equal(res.more, true);
  const exact = await db.get("k", { prefix: true, limit: 10 });
  assert.equal(exact.more, false);
  const negative = await db.get("k", { prefix: true, limit: -1 });
  assert.equal(negative.kvs.length, 10, "etcd treats a negative limit as none");
});

Deno.test("sorting happens before limit, for every target and order", async () => {
  await using db = await open();
  await db.put("b", "3"); // 2
  await db.put("a", "1"); // 3
  await db.put("c", "2"); // 4
  await db.put("a", "9"); // 5 (a: version 2)
  const get = (
    sortTarget: "key" | "version" | "create" | "mod" | "value",
    sortOrder: "ascend" | "descend",
    limit = 0,
  ) =>
    db.get("a", { fromKey: true, sortTarget, sortOrder, limit }).then((r) =>
      keys(r.kvs)
    );
  assert.deepEqual(await get("key", "descend"), ["c", "b", "a"]);
  assert.deepEqual(await get("create", "ascend"), ["b", "a", "c"]);
  assert.deepEqual(await get("mod", "descend"), ["a", "c", "b"]);
  assert.deepEqual(await get("value", "ascend"), ["c", "b", "a"]);
  assert.deepEqual(await get("version", "descend"), ["a", "b", "c"]);
  assert.deepEqual(await get("mod", "descend", 1), ["a"]);
  // A non-key target with order none sorts ascending, as etcd.
  const none = await db.get("a", { fromKey: true, sortTarget: "mod" });
  assert.deepEqual(keys(none.kvs), ["b", "c", "a"]);
});

Deno.test("keysOnly, countOnly and the revision filters", async () => {
  await using db = await open();
  await db.put("a", "1"); // 2
  await db.put("b", "2"); // 3
  await db.put("c", "3"); // 4
  await db.put("a", "4"); // 5
  const ko = await db.get("a", { fromKey: true, keysOnly: true });
  assert.equal(ko.kvs[0]!.value.length, 0);
  const co = await db.get("a", { fromKey: true, countOnly: true });
  assert.equal(co.kvs.length, 0);
  assert.equal(co.count, 3);
  const mod = await db.get("a", { fromKey: true, minModRevision: 4 });
  assert.deepEqual(keys(mod.kvs), ["a", "c"]);
  assert.equal(mod.count, 3, "count is taken before the filters, as etcd");
  const maxMod = await db.get("a", { fromKey: true, maxModRevision: 3 });
  assert.deepEqual(keys(maxMod.kvs), ["b"]);
  const create = await db.get("a", {
    fromKey: true,
    minCreateRevision: 3,
    maxCreateRevision: 3,
  });
  assert.deepEqual(keys(create.kvs), ["b"]);
});

Deno.test("put options: prevKv, ignoreValue, ignoreLease, and their errors", async () => {
  await using db = await open();
  const { id } = await db.grant(60);
  await db.put("k", "v1", { lease: id });
  const res = await db.put("k", "v2", { prevKv: true });
  assert.equal(res.prevKv!.valueText, "v1");
  assert.equal(res.prevKv!.lease, id);
  await db.put("k", "", { ignoreValue: true, prevKv: true });
  assert.equal((await db.get("k")).kvs[0]!.valueText, "v2");
  assert.equal((await db.get("k")).kvs[0]!.version, 3);
  const bad: [Promise<unknown>, string][] = [
    [db.put("", "v"), "etcdserver: key is not provided"],
    [db.put("k", "x", { ignoreValue: true }), "etcdserver: value is provided"],
    [
      db.put("k", "", { ignoreLease: true, lease: id }),
      "etcdserver: lease is provided",
    ],
    [db.put("missing", "", { ignoreValue: true }), "etcdserver: key not found"],
    [
      db.put("missing", "v", { ignoreLease: true }),
      "etcdserver: key not found",
    ],
  ];
  const before = db.revision;
  for (const [promise, message] of bad) {
    await assert.rejects(promise, (e: EtcdError) => e.message === message);
  }
  assert.equal(db.revision, before);
});

Deno.test("delete with prevKv returns the deleted key-values", async () => {
  await using db = await open();
  await db.put("p/a", "1");
  await db.put("p/b", "2");
  const res = await db.delete("p/", { prefix: true, prevKv: true });
  assert.equal(res.deleted, 2);
  assert.deepEqual(res.prevKvs.map((kv) => kv.valueText), ["1", "2"]);
});

Deno.test("compaction errors and reads at the boundaries match etcd", async () => {
  await using db = await open();
  for (let i = 0; i < 5; i++) await db.put("k", String(i)); // revisions 2..6
  const compacted = "etcdserver: mvcc: required revision has been compacted";
  const future = "etcdserver: mvcc: required revision is a future revision";
  await assert.rejects(db.compact(7), (e: EtcdError) => e.message === future);
  await db.compact(4);
  assert.equal(db.compactRevision, 4);
  await assert.rejects(
    db.compact(4),
    (e: EtcdError) => e.message === compacted,
  );
  await assert.rejects(
    db.compact(3),
    (e: EtcdError) => e.message === compacted,
  );
  await assert.rejects(
    db.get("k", { revision: 3 }),
    (e: EtcdError) => e.message === compacted,
  );
  assert.equal((await db.get("k", { revision: 4 })).kvs[0]!.valueText, "2");
  await assert.rejects(
    db.get("k", { revision: 7 }),
    (e: EtcdError) => e.message === future,
  );
  assert.equal((await db.get("k")).kvs[0]!.version, 5);
});

Deno.test("compaction reclaims deleted keys and old revisions", async () => {
  await using db = await open();
  for (let i = 0; i < 20_000; i++) await db.put(`key/${i}`, "x".repeat(100));
  const before = db.stats();
  await db.delete("key/", { prefix: true });
  await db.compact(db.revision, { physical: true });
  db.check();
  const after = db.stats();
  assert.equal(after.keys, 0);
  assert.ok(
    after.sizeBytes < before.sizeBytes / 100,
    `${after.sizeBytes} vs ${before.sizeBytes}`,
  );
  assert.ok(after.wasmLiveBytes < before.wasmLiveBytes / 10);
});

Deno.test("oversized requests fail with etcd's error and change nothing", async () => {
  await using db = await open(undefined, { maxRequestBytes: 1024 });
  await assert.rejects(
    db.put("k", "x".repeat(2000)),
    (e: EtcdError) => e.message === "etcdserver: request is too large",
  );
  assert.equal(db.revision, 1);
});

Deno.test("range_end before key selects nothing, as etcd", async () => {
  await using db = await open();
  await db.put("a", "1");
  await db.put("b", "1");
  assert.equal((await db.get("b", { rangeEnd: "a" })).count, 0);
  assert.equal((await db.delete("b", { rangeEnd: "a" })).deleted, 0);
  assert.equal(db.revision, 3);
});

Deno.test("scan pages through any range in both directions at one revision", async () => {
  await using db = await open();
  for (let i = 0; i < 1_000; i++) {
    await db.put(`s/${String(i).padStart(4, "0")}`, String(i));
  }
  const rev = db.revision;
  const seen: string[] = [];
  for await (const kv of db.scan("s/", { prefix: true, pageKeys: 7 })) {
    seen.push(kv.keyText);
    if (seen.length === 500) await db.put("s/0000", "changed");
  }
  assert.equal(seen.length, 1_000);
  assert.deepEqual(seen, [...seen].sort());
  const reversed: string[] = [];
  for await (
    const kv of db.scan("s/", {
      prefix: true,
      pageKeys: 13,
      reverse: true,
      revision: rev,
    })
  ) {
    reversed.push(kv.keyText);
  }
  assert.deepEqual(reversed, [...seen].reverse());
  const first = await db.scan("s/0000", { revision: rev }).next();
  assert.equal(first.value?.valueText, "0");
});

Deno.test("values returned are copies: mutating them does not change the store", async () => {
  await using db = await open();
  const value = enc("abc");
  await db.put("k", value);
  value[0] = 0x7a;
  const got = (await db.get("k")).kvs[0]!;
  got.value[1] = 0x7a;
  assert.equal((await db.get("k")).kvs[0]!.valueText, "abc");
});

Deno.test("a closed store refuses calls", async () => {
  const db = await open();
  await db.close();
  await assert.rejects(db.put("a", "1"), /closed/);
});
