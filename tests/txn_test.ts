/**
 * Transactions: compare rules, branches, one revision per txn, reads that see
 * the txn's own writes, duplicate-key and op-count errors, atomicity.
 */
import assert from "node:assert/strict";
import { compare, type EtcdError, op, open } from "../mod.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("txn takes one revision for all its writes, with sub revisions in order", async () => {
  await using db = await open();
  await db.put("a", "0");
  const res = await db.txn({
    success: [op.put("x", "1"), op.put("y", "2"), op.delete("a")],
  });
  assert.equal(res.succeeded, true);
  assert.equal(res.header.revision, 3);
  assert.equal(db.revision, 3);
  const { kvs } = await db.get("x", { rangeEnd: "z" });
  assert.deepEqual(kvs.map((kv) => [kv.keyText, kv.modRevision]), [["x", 3], [
    "y",
    3,
  ]]);
  assert.equal((await db.get("a")).count, 0);
});

Deno.test("txn reads inside see the txn's earlier writes; header revisions as etcd", async () => {
  await using db = await open();
  await db.put("k", "old");
  const res = await db.txn({
    success: [op.get("k"), op.put("k", "new"), op.get("k"), op.delete("none")],
  });
  const [r1, p, r2, d] = res.responses;
  assert.ok(r1 && "range" in r1 && p && "put" in p && r2 && "range" in r2);
  assert.equal(text(r1.range.kvs[0]!.value), "old");
  assert.equal(r1.range.header.revision, 2);
  assert.equal(p.put.header.revision, 3);
  assert.equal(text(r2.range.kvs[0]!.value), "new");
  assert.equal(r2.range.header.revision, 3);
  assert.ok(d && "deleteRange" in d);
  assert.equal(d.deleteRange.deleted, 0);
  assert.equal(d.deleteRange.header.revision, 3);
});

Deno.test("a value compare on a missing key is false; version/create/mod/lease compare it as 0", async () => {
  await using db = await open();
  const value = await db.txn({ compare: [compare.value("m", "!=", "x")] });
  assert.equal(value.succeeded, false);
  for (
    const c of [
      compare.version("m", "==", 0),
      compare.create("m", "==", 0),
      compare.mod("m", "==", 0),
      compare.lease("m", "==", 0n),
    ]
  ) {
    assert.equal((await db.txn({ compare: [c] })).succeeded, true, c.target);
  }
});

Deno.test("compares evaluate each operator and every key of a range", async () => {
  await using db = await open();
  await db.put("r/a", "1");
  await db.put("r/b", "2");
  await db.put("r/b", "3");
  const cases: [ReturnType<typeof compare.value>, boolean][] = [
    [compare.value("r/a", "==", "1"), true],
    [compare.value("r/a", "<", "2"), true],
    [compare.value("r/a", ">", "0"), true],
    [compare.value("r/a", "!=", "1"), false],
    [compare.version("r/b", "==", 2), true],
    [compare.mod("r/b", ">", 3), true],
    [compare.create("r/b", "==", 3), true],
    [compare.version("r/", ">", 0, { prefix: true }), true],
    [compare.version("r/", "==", 1, { prefix: true }), false],
    [compare.value("r/", "<", "9", { prefix: true }), true],
  ];
  for (const [c, expected] of cases) {
    const res = await db.txn({ compare: [c] });
    assert.equal(res.succeeded, expected, JSON.stringify(c));
  }
});

Deno.test("the failure branch runs when a compare fails, and the fluent builder works", async () => {
  await using db = await open();
  await db.put("k", "v1");
  const res = await db.txn()
    .if(compare.value("k", "==", "other"))
    .then(op.put("k", "won"))
    .else(op.get("k"), op.put("lost", "yes"))
    .commit();
  assert.equal(res.succeeded, false);
  assert.equal(res.responses.length, 2);
  assert.equal((await db.get("k")).kvs[0]!.valueText, "v1");
  assert.equal((await db.get("lost")).count, 1);
});

Deno.test("nested txns evaluate their compares against the state before the outer txn", async () => {
  await using db = await open();
  await db.put("n", "1");
  const res = await db.txn({
    success: [
      op.put("n", "2"),
      op.txn({
        compare: [compare.value("n", "==", "1")],
        success: [op.put("inner", "saw-old")],
        failure: [op.put("inner", "saw-new")],
      }),
    ],
  });
  const nested = res.responses[1];
  assert.ok(nested && "txn" in nested);
  assert.equal(nested.txn.succeeded, true);
  assert.equal(nested.txn.header.revision, 0);
  assert.equal((await db.get("inner")).kvs[0]!.valueText, "saw-old");
  assert.equal(db.revision, 3);
});

Deno.test("a key written twice in one txn fails whole with etcd's duplicate key error", async () => {
  await using db = await open();
  await db.put("d/a", "1");
  const bad = [
    [op.put("x", "1"), op.put("x", "2")],
    [op.delete("d/", { prefix: true }), op.put("d/b", "1")],
    [op.put("d/z", "1"), op.delete("d/", { prefix: true })],
    [op.put("y", "1"), op.txn({ success: [op.put("y", "2")] })],
  ];
  for (const success of bad) {
    await assert.rejects(
      db.txn({ success }),
      (e: EtcdError) =>
        e.message === "etcdserver: duplicate key given in txn request",
    );
  }
  // Both branches of one nested txn may put the same key: only one runs.
  await db.txn({
    success: [op.txn({
      success: [op.put("same", "a")],
      failure: [op.put("same", "b")],
    })],
  });
  assert.equal(db.revision, 3);
  assert.equal((await db.get("d/a")).count, 1);
});

Deno.test("too many operations fail with etcd's error and the counts", async () => {
  await using db = await open(undefined, { maxTxnOps: 4 });
  const ops = Array.from({ length: 5 }, (_, i) => op.put(`k${i}`, "v"));
  await assert.rejects(
    db.txn({ success: ops }),
    (e: EtcdError) =>
      e.message.startsWith(
        "etcdserver: too many operations in txn request",
      ) && e.message.includes("5") && e.message.includes("4"),
  );
  assert.equal(db.revision, 1);
  await db.txn({ success: ops.slice(0, 4) });
  assert.equal(db.revision, 2);
});

Deno.test("a txn whose chosen branch fails a check writes nothing", async () => {
  await using db = await open();
  await db.put("a", "1");
  await assert.rejects(
    db.txn({
      success: [op.put("b", "1"), op.put("c", "", { ignoreValue: true })],
    }),
    (e: EtcdError) => e.message === "etcdserver: key not found",
  );
  await assert.rejects(
    db.txn({ success: [op.put("b", "1"), op.put("c", "1", { lease: 42n })] }),
    (e: EtcdError) => e.message === "etcdserver: requested lease not found",
  );
  await assert.rejects(
    db.txn({ success: [op.put("b", "1"), op.get("a", { revision: 99 })] }),
    (e: EtcdError) =>
      e.message === "etcdserver: mvcc: required revision is a future revision",
  );
  assert.equal(db.revision, 2);
  assert.equal((await db.get("b")).count, 0);
  // The failure branch is not checked when the success branch runs.
  const ok = await db.txn({
    success: [op.put("b", "1")],
    failure: [op.put("c", "1", { lease: 42n })],
  });
  assert.equal(ok.succeeded, true);
  db.check();
});

Deno.test("a read-only txn takes no revision", async () => {
  await using db = await open();
  await db.put("a", "1");
  const res = await db.txn({ success: [op.get("a")] });
  assert.equal(res.header.revision, 2);
  assert.equal(db.revision, 2);
});

Deno.test("concurrent compare-and-swap chains stay atomic", async () => {
  await using db = await open();
  await db.put("counter", "0");
  const increment = async () => {
    for (;;) {
      const { kvs } = await db.get("counter");
      const kv = kvs[0]!;
      const res = await db.txn({
        compare: [compare.mod("counter", "==", kv.modRevision)],
        success: [op.put("counter", String(Number(kv.valueText) + 1))],
      });
      if (res.succeeded) return;
    }
  };
  await Promise.all(Array.from({ length: 50 }, increment));
  assert.equal((await db.get("counter")).kvs[0]!.valueText, "50");
  assert.equal(db.revision, 52);
});
