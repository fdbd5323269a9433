/**
 * The way past one machine, shown: `connect()` with all three endpoints of
 * a real etcd cluster carries a writer, a watcher and a kept-alive lease
 * through the death of the member it is connected to and then of the
 * leader. Checked at the end: every acknowledged write is in the cluster,
 * the watcher saw every key exactly once in revision order (no gap, no
 * duplicate), and the lease is alive.
 */

import assert from "node:assert/strict";
import { connect, type WatchEvent } from "../mod.ts";
import { etcdIgnore } from "./etcd_oracle.ts";
import { startEtcdCluster } from "./etcd_cluster.ts";

/** Writes per phase (before, after the first kill, after the second). */
const WRITES_PER_PHASE = 60;
/** Longest the whole scenario may take before it gives up. */
const SCENARIO_MS_MAX = 90_000;

Deno.test({
  name: "connect() fails over across a 3-member etcd cluster: no ack lost",
  ignore: etcdIgnore("etcd cluster failover test"),
  async fn() {
    const cluster = await startEtcdCluster();
    const db = await connect({
      endpoints: cluster.endpoints,
      dialTimeoutMs: 2000,
      requestTimeoutMs: 5000,
      keepAliveTimeMs: 500,
      keepAliveTimeoutMs: 1500,
    });
    const giveUp = AbortSignal.timeout(SCENARIO_MS_MAX);
    try {
      const start = await db.put("fo/start", "0");
      const lease = await db.grant(3);
      const keepAlive = new AbortController();
      let renewals = 0;
      const keeping = (async () => {
        for await (
          const _ of db.keepAliveStream(lease.id, {
            signal: keepAlive.signal,
          })
        ) renewals++;
      })();
      await db.put("fo/leased", "x", { lease: lease.id });

      const seen: WatchEvent[] = [];
      const watchStop = new AbortController();
      const watching = (async () => {
        for await (
          const res of db.watch("fo/w/", {
            prefix: true,
            startRevision: start.header.revision + 1,
            signal: watchStop.signal,
          })
        ) seen.push(...res.events);
      })();

      const acked: string[] = [];
      let attempted = 0;
      const writePhase = async () => {
        for (let i = 0; i < WRITES_PER_PHASE && !giveUp.aborted; i++) {
          const key = `fo/w/${String(attempted++).padStart(5, "0")}`;
          try {
            await db.put(key, "v");
            acked.push(key);
          } catch {
            // Not acknowledged (the member died under it): allowed to be
            // lost, and allowed to have been applied.
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      };

      await writePhase();
      const first = db.endpoint!;
      await cluster.kill(first);
      await writePhase();
      assert.notEqual(db.endpoint, first, "the client moved to another member");
      await cluster.restart(first);
      const leader = await cluster.leader();
      await cluster.kill(leader);
      await writePhase();
      await cluster.restart(leader);
      await writePhase();

      // Every acknowledged write is there; the watcher caught up to the end.
      const final = await db.get("fo/w/", { prefix: true });
      const present = new Set(final.kvs.map((kv) => kv.keyText));
      for (const key of acked) assert.ok(present.has(key), `lost ${key}`);
      const deadline = Date.now() + 15_000;
      while (seen.length < final.count && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      watchStop.abort();
      await watching;
      const seenKeys = seen.map((e) => e.kv.keyText);
      assert.deepEqual(
        seenKeys,
        final.kvs.map((kv) => kv.keyText),
        "the watcher saw every key once, in order",
      );
      const revisions = seen.map((e) => e.kv.modRevision);
      for (let i = 1; i < revisions.length; i++) {
        assert.ok(revisions[i]! > revisions[i - 1]!, "revisions increase");
      }
      assert.ok(acked.length >= WRITES_PER_PHASE * 3, `acked ${acked.length}`);

      // The lease outlived both failovers (its TTL is 3 s).
      const ttl = await db.timeToLive(lease.id, { keys: true });
      assert.ok(ttl.ttl > 0, `lease alive, ttl ${ttl.ttl}`);
      assert.ok(renewals >= 2, `renewals ${renewals}`);
      assert.equal((await db.get("fo/leased")).count, 1);
      keepAlive.abort();
      await keeping;
      console.log(
        `failover: ${acked.length}/${attempted} writes acknowledged, ` +
          `${seen.length} events watched, ${renewals} lease renewals`,
      );
    } finally {
      await db.close();
      await cluster.stop();
    }
  },
});
