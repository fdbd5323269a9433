/**
 * Watch through the Store: events of puts, deletes, txns and lease
 * revocations arrive in revision order, once, after commit; compacted start
 * revisions cancel; a consumer that never reads does not slow writers.
 */
import assert from "node:assert/strict";
import { op, open, type WatchResponse } from "../mod.ts";

async function take(
  it: AsyncIterableIterator<WatchResponse>,
  count: number,
): Promise<WatchResponse[]> {
  const out: WatchResponse[] = [];
  while (out.length < count) {
    const next = await it.next();
    if (next.done) break;
    out.push(next.value);
  }
  await it.return?.();
  return out;
}

Deno.test("db.watch delivers puts, a txn's writes in one response, and deletes", async () => {
  await using db = await open();
  const it = db.watch("w/", { prefix: true, prevKv: true });
  const pending = take(it, 3);
  await db.put("w/a", "1");
  await db.txn({ success: [op.put("w/b", "2"), op.put("w/a", "3")] });
  await db.delete("w/", { prefix: true });
  const responses = await pending;
  assert.deepEqual(
    responses.map((r) => [
      r.header.revision,
      r.events.map((e) => `${e.type} ${e.kv.keyText}`),
    ]),
    [
      [2, ["put w/a"]],
      [3, ["put w/b", "put w/a"]],
      [4, ["delete w/a", "delete w/b"]],
    ],
  );
  const del = responses[2]!.events[0]!;
  assert.equal(del.kv.modRevision, 4);
  assert.equal(del.kv.version, 0);
  assert.equal(del.prevKv?.valueText, "3");
});

Deno.test("a lease revocation shows as delete events in one revision", async () => {
  await using db = await open();
  const { id } = await db.grant(60);
  await db.put("l/a", "1", { lease: id });
  await db.put("l/b", "1", { lease: id });
  const it = db.watch("l/", { prefix: true, startRevision: db.revision + 1 });
  const pending = take(it, 1);
  await db.revoke(id);
  const [res] = await pending;
  assert.equal(res!.header.revision, 4);
  assert.deepEqual(res!.events.map((e) => e.type), ["delete", "delete"]);
});

Deno.test("history replays from startRevision, then live, without gaps or duplicates", async () => {
  await using db = await open();
  for (let i = 0; i < 5; i++) await db.put("h", String(i)); // revisions 2..6
  const it = db.watch("h", { startRevision: 3 });
  const revisions: number[] = [];
  const pending = (async () => {
    for await (const res of it) {
      revisions.push(...res.events.map((e) => e.kv.modRevision));
      if (revisions.length >= 9) break;
    }
  })();
  for (let i = 5; i < 10; i++) await db.put("h", String(i)); // 7..11
  await pending;
  assert.deepEqual(revisions, [3, 4, 5, 6, 7, 8, 9, 10, 11]);
});

Deno.test("a watch from a compacted revision is canceled with the compact revision", async () => {
  await using db = await open();
  for (let i = 0; i < 5; i++) await db.put("c", String(i));
  await db.compact(4);
  const [res] = await take(db.watch("c", { startRevision: 2 }), 1);
  assert.equal(res!.canceled, true);
  assert.equal(res!.compactRevision, 4);
});

Deno.test("a watcher that never reads does not block writers", async () => {
  await using db = await open();
  const stuck = db.watch("s/", { prefix: true });
  const started = performance.now();
  for (let i = 0; i < 20_000; i++) await db.put(`s/${i % 100}`, "v");
  const elapsedMs = performance.now() - started;
  // Not a timing assertion: the writes completed while nothing was read.
  assert.equal(db.revision, 20_001);
  const first = await stuck.next();
  assert.equal(first.value?.events[0]?.kv.modRevision, 2);
  await stuck.return?.();
  console.log(`20,000 puts with a stalled watcher: ${elapsedMs.toFixed(0)} ms`);
});

Deno.test("closing the store ends its watches", async () => {
  const db = await open();
  const it = db.watch("x");
  const pending = take(it, 5);
  await db.close();
  const responses = await pending;
  assert.ok(responses.length <= 1);
  assert.ok(responses.every((r) => r.canceled));
});
