/**
 * The way past one machine, shown: `connect()` with all three endpoints of
 * a real etcd cluster carries a writer, a watcher and a kept-alive lease
 * through the death of the member it is connected to and then of the
 * leader. Checked at the end: every acknowledged write is in the cluster,
 * the watcher saw every key exactly once in revision order (no gap, no
 * duplicate), and the lease is alive. Then `make-mirror` copies a revkv
 * store into such a cluster and follows it while writes go on, until every
 * member holds what the source holds.
 */

import assert from "node:assert/strict";
import { connect, open, type WatchEvent } from "../mod.ts";
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

Deno.test({
  name:
    "make-mirror copies a revkv store into a 3-member etcd and follows it while writes go on",
  ignore: etcdIgnore("etcd cluster mirror test"),
  async fn() {
    const cluster = await startEtcdCluster();
    const dir = await Deno.makeTempDir({ prefix: "revkv-mirror-cluster-" });
    // The source is a durable store owned by this process; the mirror, in
    // another process, reaches it through the data dir's socket.
    const source = await open(`${dir}/data`);
    const dest = await connect({ endpoints: cluster.endpoints });
    let mirror: Deno.ChildProcess | undefined;
    try {
      for (let i = 0; i < 50; i++) await source.put(`m/${i}`, `v${i}`);
      mirror = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../cli.ts", import.meta.url).pathname,
          `--data-dir=${dir}/data`,
          "make-mirror",
          "--prefix=m/",
          cluster.endpoints[0]!,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const waitFor = async (key: string, value: string) => {
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          const got = await dest.get(key);
          if (got.kvs[0]?.valueText === value) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        throw new Error(`${key}=${value} not mirrored in 30 s`);
      };
      await waitFor("m/49", "v49");
      for (let i = 0; i < 200; i++) {
        if (i % 3 === 0) await source.delete(`m/${i % 50}`);
        else await source.put(`m/${i % 70}`, `w${i}`);
      }
      await source.put("m/end", "1");
      await waitFor("m/end", "1");
      const want = (await source.get("m/", { prefix: true })).kvs.map((kv) =>
        `${kv.keyText}=${kv.valueText}`
      );
      const got = (await dest.get("m/", { prefix: true })).kvs.map((kv) =>
        `${kv.keyText}=${kv.valueText}`
      );
      assert.deepEqual(got, want, "the cluster holds what the source holds");
      // Every member agrees (the cluster's own consistency, asked of each).
      for (const endpoint of cluster.endpoints) {
        const one = await connect({ endpoints: [endpoint] });
        try {
          assert.equal(
            (await one.get("m/", { prefix: true, countOnly: true })).count,
            want.length,
          );
        } finally {
          await one.close();
        }
      }
    } finally {
      if (mirror) {
        try {
          mirror.kill("SIGINT");
        } catch { /* gone */ }
        await mirror.status;
        await mirror.stderr.cancel().catch(() => {});
      }
      await dest.close();
      await source.close();
      await cluster.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
