/**
 * connect()'s own behaviour, beside the shared suite: endpoint forms, a
 * dial that finds nothing, failover past a dead endpoint, unix sockets,
 * typed errors, watch resume after its server restarts, close.
 */

import assert from "node:assert/strict";
import { CompactedError, connect, EtcdError } from "../mod.ts";
import { parseEndpoint } from "../src/client/endpoints.ts";
import { startServe } from "./server_helpers.ts";

/** A loopback port nothing listens on. */
function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("endpoints: etcdctl's forms, and clear errors", () => {
  assert.deepEqual(parseEndpoint("127.0.0.1:2379"), {
    kind: "tcp",
    hostname: "127.0.0.1",
    port: 2379,
    text: "127.0.0.1:2379",
  });
  const tcp = (text: string) =>
    parseEndpoint(text) as { hostname: string; port: number };
  assert.equal(tcp("http://localhost:4001/").port, 4001);
  assert.equal(tcp("http://localhost").port, 2379);
  assert.equal(tcp("[::1]:2379").hostname, "::1");
  assert.deepEqual(parseEndpoint("unix:///tmp/revkv.sock"), {
    kind: "unix",
    path: "/tmp/revkv.sock",
    text: "unix:///tmp/revkv.sock",
  });
  assert.equal(
    (parseEndpoint("unix:data/revkv.sock") as { path: string }).path,
    "data/revkv.sock",
  );
  assert.throws(() => parseEndpoint("localhost"), /missing or bad port/);
  assert.throws(() => parseEndpoint("https://h:1"), /TLS is not supported/);
  assert.throws(() => parseEndpoint("unix:"), /no path/);
});

Deno.test("connect: nothing listening is `context deadline exceeded`", async () => {
  await assert.rejects(
    connect({ endpoints: [`127.0.0.1:${deadPort()}`], dialTimeoutMs: 300 }),
    (e: Error) =>
      e instanceof EtcdError && e.message === "context deadline exceeded",
  );
  await assert.rejects(
    connect({ endpoints: [] }),
    /at least one endpoint/,
  );
});

Deno.test("connect: a dead endpoint is passed over; errors are typed; watch resumes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-client-" });
  let server = await startServe(`${dir}/data`);
  const db = await connect({
    endpoints: [`127.0.0.1:${deadPort()}`, server.address],
    dialTimeoutMs: 5000,
  });
  try {
    assert.equal(db.endpoint, server.address);
    const first = await db.put("k", "1");
    await db.put("k", "2");
    const now = await db.put("k", "3");
    await db.compact(now.header.revision);
    await assert.rejects(
      db.get("k", { revision: first.header.revision }),
      (e: Error) => e instanceof CompactedError,
    );

    // A watch outlives a restart of its server (same data dir, same port).
    const port = Number(server.address.split(":")[1]);
    const watch = db.watch("w", { prefix: true });
    const got: string[] = [];
    const watching = (async () => {
      for await (const res of watch) {
        for (const e of res.events) got.push(e.kv.valueText);
        if (got.length >= 2) break;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await db.put("w", "before");
    await server.stop();
    server = await startServe(`${dir}/data`, [
      `--listen-client-urls=http://127.0.0.1:${port}`,
    ]);
    // The first call after the restart may find the old connection gone.
    for (let i = 0;; i++) {
      try {
        await db.put("w", "after");
        break;
      } catch (error) {
        if (i >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await watching;
    assert.deepEqual(got, ["before", "after"]);
  } finally {
    await db.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
  await assert.rejects(db.get("k"), /store is closed/);
});

Deno.test("connect: a member that stops answering is left after its keepalive PING times out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-client-ka-" });
  const hung = await startServe(`${dir}/a`);
  const healthy = await startServe(`${dir}/b`);
  const seed = await connect({ endpoints: [healthy.address] });
  await seed.put("where", "b");
  await seed.close();
  const db = await connect({
    endpoints: [hung.address, healthy.address],
    keepAliveTimeMs: 1, // raised to the 10 s minimum
    keepAliveTimeoutMs: 500,
  });
  let stopped = false;
  try {
    assert.equal(db.endpoint, hung.address);
    await db.put("where", "a");
    Deno.kill(hung.pid, "SIGSTOP");
    stopped = true;
    // No deadline on the call: only the keepalive can tell the member hung.
    const res = await db.get("where");
    assert.equal(
      res.kvs[0]?.valueText,
      "b",
      "the read went to the other member",
    );
    assert.equal(db.endpoint, healthy.address);
  } finally {
    await db.close();
    if (stopped) Deno.kill(hung.pid, "SIGCONT");
    await hung.stop();
    await healthy.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
