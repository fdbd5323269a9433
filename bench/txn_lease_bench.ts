/**
 * Benchmarks of issue 4's transactions and leases, side by side in one run:
 *
 * - compare-and-swap with 64 independent chains: revkv's txn (compare mod,
 *   put) against Deno KV's `atomic().check().set()`, both in memory and —
 *   when durable stores are available — both on disk;
 * - put latency with 100,000 live leases against none.
 *
 * Run: `deno bench -A --unstable-kv bench/txn_lease_bench.ts`
 */
import { compare, op, open, type Store } from "../mod.ts";

const CHAINS = 64;
const VALUE = "x".repeat(64);

async function revkvCasRound(db: Store): Promise<void> {
  await Promise.all(
    Array.from({ length: CHAINS }, async (_, chain) => {
      const key = `chain/${chain}`;
      for (;;) {
        const { kvs } = await db.get(key);
        const mod = kvs[0]?.modRevision ?? 0;
        const res = await db.txn({
          compare: [compare.mod(key, "==", mod)],
          success: [op.put(key, VALUE)],
        });
        if (res.succeeded) return;
      }
    }),
  );
}

async function kvCasRound(kv: Deno.Kv): Promise<void> {
  await Promise.all(
    Array.from({ length: CHAINS }, async (_, chain) => {
      const key = ["chain", chain];
      for (;;) {
        const entry = await kv.get(key);
        const res = await kv.atomic().check(entry).set(key, VALUE).commit();
        if (res.ok) return;
      }
    }),
  );
}

const memStore = await open();
const memKv = await Deno.openKv(":memory:");

Deno.bench({
  name: "revkv txn CAS, 64 chains (in memory)",
  group: "cas-memory",
  baseline: true,
  async fn() {
    await revkvCasRound(memStore);
  },
});

Deno.bench({
  name: "Deno KV atomic check+set, 64 chains (in memory)",
  group: "cas-memory",
  async fn() {
    await kvCasRound(memKv);
  },
});

// Durable variants: only when `open(path)` works (issue 3).
const tmp = await Deno.makeTempDir({ prefix: "revkv-bench-" });
let diskStore: Store | undefined;
try {
  diskStore = await open(`${tmp}/revkv`);
} catch {
  diskStore = undefined;
}
const diskKv = await Deno.openKv(`${tmp}/kv.sqlite`);

if (diskStore) {
  const store = diskStore;
  Deno.bench({
    name: "revkv txn CAS, 64 chains (durable, fsync)",
    group: "cas-disk",
    baseline: true,
    async fn() {
      await revkvCasRound(store);
    },
  });
}

Deno.bench({
  name: "Deno KV atomic check+set, 64 chains (file)",
  group: "cas-disk",
  async fn() {
    await kvCasRound(diskKv);
  },
});

// Put latency with and without 100,000 live leases (in memory, so that the
// lease bookkeeping is what differs).
const noLeases = await open();
const manyLeases = await open();
const leaseIds: bigint[] = [];
for (let i = 0; i < 100_000; i++) {
  leaseIds.push((await manyLeases.grant(3_600)).id);
}
let n = 0;

Deno.bench({
  name: "put, store without leases",
  group: "put-leases",
  baseline: true,
  async fn() {
    await noLeases.put(`k/${n++ % 10_000}`, VALUE);
  },
});

Deno.bench({
  name: "put, store with 100,000 live leases",
  group: "put-leases",
  async fn() {
    await manyLeases.put(`k/${n++ % 10_000}`, VALUE);
  },
});

Deno.bench({
  name: "put moving its key to another of 100,000 live leases",
  group: "put-leases",
  async fn() {
    const i = n++;
    await manyLeases.put(`k/${i % 10_000}`, VALUE, {
      lease: leaseIds[i % leaseIds.length]!,
    });
  },
});

globalThis.addEventListener("unload", () => {
  memKv.close();
  diskKv.close();
  try {
    Deno.removeSync(tmp, { recursive: true });
  } catch {
    // Best effort.
  }
});
