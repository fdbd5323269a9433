/**
 * npm:etcd3 (which talks gRPC through @grpc/grpc-js) against `cli.ts
 * serve`: put/get/range/delete, txn, a lease kept alive past its TTL,
 * watch with history, and its Lock and Election recipes. Every test runs
 * the same expectations against a real etcd too, so they are etcd's.
 */

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
// A test-only client, pinned here rather than in deno.json (users never fetch it).
// deno-lint-ignore no-import-prefix
import { Etcd3 } from "npm:etcd3@1.1.2";
import { startServe } from "./server_helpers.ts";
import { etcdAvailable, startEtcd } from "./etcd_oracle.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `run` against `cli.ts serve`, and against a real etcd when installed. */
async function withClient(
  run: (client: Etcd3) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "revkv_etcd3_" });
  const serve = await startServe(`${dir}/data`, ["--unsafe-no-fsync"]);
  const client = new Etcd3({ hosts: serve.address });
  try {
    await run(client);
  } finally {
    client.close();
    await serve.stop();
    await Deno.remove(dir, { recursive: true });
  }
  if (!etcdAvailable()) return;
  // The same expectations hold for etcd itself (they are etcd's behaviour).
  const etcd = await startEtcd();
  const etcdClient = new Etcd3({ hosts: etcd.endpoint.replace("http://", "") });
  try {
    await run(etcdClient);
  } finally {
    etcdClient.close();
    await etcd.stop();
  }
}

Deno.test({
  name: "npm:etcd3: kv, range, delete, txn",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withClient(async (client) => {
      await client.put("app/a").value("1");
      await client.put("app/b").value("2");
      await client.put("other").value("x");
      assertEquals(await client.get("app/a").string(), "1");
      assertEquals(await client.getAll().prefix("app/").strings(), {
        "app/a": "1",
        "app/b": "2",
      });
      assertEquals(await client.getAll().prefix("app/").count(), 2);
      const deleted = await client.delete().key("app/a").exec();
      assertEquals(deleted.deleted, "1");
      assertEquals(await client.get("app/a").string(), null);
      const txn = await client.if("app/b", "Value", "==", "2")
        .then(client.put("app/b").value("3"))
        .else(client.get("app/b"))
        .commit();
      assert(txn.succeeded);
      assertEquals(await client.get("app/b").string(), "3");
      const failed = await client.if("app/b", "Version", ">", 10)
        .then(client.put("never").value("1"))
        .else(client.get("app/b"))
        .commit();
      assert(!failed.succeeded);
      assertEquals(
        failed.responses[0]!.response_range!.kvs[0]!.value.toString(),
        "3",
      );
    });
  },
});

Deno.test({
  name:
    "npm:etcd3: a lease kept alive outlives its TTL, then dies with its keys",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withClient(async (client) => {
      // TTL 3 s: keep-alives every second leave two spare chances under load.
      const lease = client.lease(3);
      let keptAlive = 0;
      const t0 = Date.now();
      const log: string[] = [];
      lease.on("keepaliveSucceeded", () => {
        keptAlive++;
        log.push(`keep-alive at ${Date.now() - t0} ms`);
      });
      lease.on("lost", (e) => log.push(`lost at ${Date.now() - t0}: ${e}`));
      await lease.put("session").value("on");
      log.push(`put at ${Date.now() - t0} ms`);
      await sleep(4500);
      assert(keptAlive >= 1, `keep-alives: ${keptAlive}`);
      assertEquals(
        await client.get("session").string(),
        "on",
        log.join("; "),
      );
      await lease.revoke();
      assertEquals(await client.get("session").string(), null);
    });
  },
});

Deno.test({
  name: "npm:etcd3: watch with history, then live events",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withClient(async (client) => {
      await client.put("w/1").value("a"); // revision 2
      await client.put("w/2").value("b"); // revision 3
      const seen: string[] = [];
      const watcher = await client.watch().prefix("w/").startRevision("2")
        .create();
      watcher.on("put", (kv) => seen.push(`put ${kv.key}=${kv.value}`));
      watcher.on("delete", (kv) => seen.push(`del ${kv.key}`));
      await client.delete().key("w/1");
      const deadline = Date.now() + 5000;
      while (seen.length < 3 && Date.now() < deadline) await sleep(20);
      await watcher.cancel();
      assertEquals(seen, ["put w/1=a", "put w/2=b", "del w/1"]);
    });
  },
});

Deno.test({
  name: "npm:etcd3: Lock excludes, Election elects",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withClient(async (client) => {
      // npm:etcd3's Lock does not wait: a held lock fails to acquire.
      const lock = client.lock("the-lock").ttl(5);
      await lock.acquire();
      await assert.rejects(
        () => client.lock("the-lock").ttl(5).acquire(),
        /Failed to acquire a lock on the-lock/,
      );
      await lock.release();
      const ran = await client.lock("the-lock").ttl(5).do(() =>
        Promise.resolve("ran")
      );
      assertEquals(ran, "ran");

      const election = client.election("leader", 5);
      const first = election.campaign("first");
      await new Promise<void>((resolve, reject) => {
        first.on("elected", () => resolve());
        first.on("error", reject);
      });
      assertEquals(await election.leader(), "first");
      const second = election.campaign("second");
      await sleep(300);
      assertEquals(await election.leader(), "first");
      await first.resign();
      await new Promise<void>((resolve, reject) => {
        second.on("elected", () => resolve());
        second.on("error", reject);
      });
      assertEquals(await election.leader(), "second");
      await second.resign();
    });
  },
});
