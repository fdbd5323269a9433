/**
 * Leases: grant/revoke/keep-alive/time-to-live/list, attachment rules,
 * expiry with a controllable clock (one revision per revoked lease), and the
 * deadline heap at scale.
 */
import assert from "node:assert/strict";
import { type EtcdError, open } from "../mod.ts";
import { storeInternals } from "../src/store.ts";

function manualClock(startMs = 1_000_000) {
  let now = startMs;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

Deno.test("grant raises short TTLs to 2 s and hands out unique positive IDs", async () => {
  await using db = await open();
  const a = await db.grant(1);
  const b = await db.grant(60);
  assert.equal(a.ttl, 2);
  assert.equal(b.ttl, 60);
  assert.notEqual(a.id, b.id);
  assert.ok(a.id > 0n && a.id < 1n << 63n);
  assert.equal(db.revision, 1, "granting takes no revision");
  const listed = (await db.leases()).leases.map((l) => l.id).sort();
  assert.deepEqual(listed, [a.id, b.id].sort());
});

Deno.test("a chosen lease ID that exists gives etcd's error; too large TTL too", async () => {
  await using db = await open();
  await db.grant(10, { id: 0x1234n });
  await assert.rejects(
    db.grant(10, { id: 0x1234n }),
    (e: EtcdError) => e.message === "etcdserver: lease already exists",
  );
  await assert.rejects(
    db.grant(9_000_000_001),
    (e: EtcdError) => e.message === "etcdserver: too large lease TTL",
  );
});

Deno.test("revoke deletes every attached key in one revision", async () => {
  await using db = await open();
  const { id } = await db.grant(30);
  await db.put("l/a", "1", { lease: id });
  await db.put("l/b", "2", { lease: id });
  await db.put("other", "3");
  assert.equal(db.revision, 4);
  const res = await db.revoke(id);
  assert.equal(res.header.revision, 5);
  assert.equal((await db.get("l/", { prefix: true })).count, 0);
  assert.equal((await db.get("other")).count, 1);
  const ttl = await db.timeToLive(id);
  assert.equal(ttl.ttl, -1);
  assert.equal(ttl.grantedTtl, 0);
  await assert.rejects(
    db.revoke(id),
    (e: EtcdError) => e.message === "etcdserver: requested lease not found",
  );
});

Deno.test("revoking a lease with no keys takes no revision", async () => {
  await using db = await open();
  const { id } = await db.grant(30);
  await db.revoke(id);
  assert.equal(db.revision, 1);
});

Deno.test("re-put without a lease detaches; ignoreLease keeps it; delete detaches", async () => {
  await using db = await open();
  const { id } = await db.grant(30);
  await db.put("a", "1", { lease: id });
  await db.put("b", "1", { lease: id });
  await db.put("c", "1", { lease: id });
  await db.put("a", "2");
  await db.put("b", "2", { ignoreLease: true });
  await db.delete("c");
  const { keys } = await db.timeToLive(id, { keys: true });
  assert.deepEqual(keys.map((k) => new TextDecoder().decode(k)), ["b"]);
  assert.equal((await db.get("b")).kvs[0]!.lease, id);
  assert.equal((await db.get("a")).kvs[0]!.lease, 0n);
  await db.revoke(id);
  assert.equal((await db.get("a")).count, 1);
  assert.equal((await db.get("b")).count, 0);
});

Deno.test("put with an unknown lease fails and changes nothing", async () => {
  await using db = await open();
  await assert.rejects(
    db.put("a", "1", { lease: 77n }),
    (e: EtcdError) => e.message === "etcdserver: requested lease not found",
  );
  assert.equal(db.revision, 1);
});

Deno.test("expired leases are revoked by the store, each its own revision", async () => {
  const clock = manualClock();
  await using db = await open(undefined, { clock: clock.now });
  const short = await db.grant(5);
  const long = await db.grant(50);
  await db.put("s1", "v", { lease: short.id });
  await db.put("s2", "v", { lease: short.id });
  await db.put("l1", "v", { lease: long.id });
  clock.advance(4_000);
  assert.equal(await storeInternals.expireLeases(db), 0);
  assert.equal((await db.timeToLive(short.id)).ttl, 1);
  clock.advance(1_001);
  assert.equal(await storeInternals.expireLeases(db), 1);
  assert.equal(db.revision, 5);
  assert.equal((await db.get("s", { prefix: true })).count, 0);
  assert.equal((await db.get("l1")).count, 1);
});

Deno.test("keep-alive renews to the full TTL and fails for an unknown lease", async () => {
  const clock = manualClock();
  await using db = await open(undefined, { clock: clock.now });
  const { id } = await db.grant(10);
  clock.advance(9_000);
  const renewed = await db.keepAlive(id);
  assert.equal(renewed.ttl, 10);
  clock.advance(9_000);
  assert.equal(await storeInternals.expireLeases(db), 0);
  assert.equal((await db.timeToLive(id)).ttl, 1);
  await assert.rejects(
    db.keepAlive(123n),
    (e: EtcdError) => e.message === "etcdserver: requested lease not found",
  );
});

Deno.test("the expiry timer revokes a lease on time without being asked", async () => {
  await using db = await open();
  const { id } = await db.grant(2);
  await db.put("ephemeral", "v", { lease: id });
  const deadline = Date.now() + 6_000;
  while ((await db.get("ephemeral")).count > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await db.get("ephemeral")).count, 0);
});

Deno.test("the keep-alive stream renews until aborted", async () => {
  await using db = await open();
  const { id } = await db.grant(2);
  const controller = new AbortController();
  let renewals = 0;
  for await (
    const res of db.keepAliveStream(id, { signal: controller.signal })
  ) {
    assert.equal(res.id, id);
    if (++renewals === 2) controller.abort();
  }
  assert.equal(renewals, 2);
});

Deno.test("100,000 leases expire in deadline order without scanning them all", async () => {
  const clock = manualClock();
  await using db = await open(undefined, { clock: clock.now });
  const ids: bigint[] = [];
  for (let i = 0; i < 100_000; i++) {
    ids.push((await db.grant(10 + (i % 100))).id);
  }
  await db.put("k", "v", { lease: ids[0]! });
  clock.advance(10_500);
  let revoked = 0;
  for (
    let n = await storeInternals.expireLeases(db);
    n > 0;
    n = await storeInternals.expireLeases(db)
  ) {
    revoked += n;
  }
  assert.equal(revoked, 1_000);
  assert.equal((await db.leases()).leases.length, 99_000);
  assert.equal((await db.get("k")).count, 0);
});

Deno.test("many keep-alives on few leases keep the deadline heap small and right", async () => {
  const clock = manualClock();
  await using db = await open(undefined, { clock: clock.now });
  const a = await db.grant(10);
  const b = await db.grant(20);
  // 500 renewals leave stale heap items behind; the heap is rebuilt.
  for (let i = 0; i < 500; i++) {
    clock.advance(10);
    await db.keepAlive(a.id);
  }
  clock.advance(10_001);
  assert.equal(await storeInternals.expireLeases(db), 1);
  assert.equal((await db.timeToLive(a.id)).ttl, -1);
  assert.ok((await db.timeToLive(b.id)).ttl > 0);
  clock.advance(10_000);
  assert.equal(await storeInternals.expireLeases(db), 1);
  assert.equal((await db.leases()).leases.length, 0);
});
