/**
 * The shared Store suite (`store_contract.ts`) against its four back ends:
 * `open()` in memory, `open(dir)` (with a restart), `connect()` to
 * `cli.ts serve` (with a server restart on the same data dir), and
 * `connect()` to a real etcd 3.4.
 */

import { connect, open } from "../mod.ts";
import { runStoreContract } from "./store_contract.ts";
import { startServe } from "./server_helpers.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";

Deno.test("store contract: open() in memory", async (t) => {
  await runStoreContract(t, async () => {
    const store = await open();
    return { store, dispose: () => store.close() };
  });
});

Deno.test("store contract: open(dir)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-contract-" });
  let store = await open(dir);
  await runStoreContract(t, () =>
    Promise.resolve({
      store,
      restart: async () => {
        await store.close();
        return store = await open(dir);
      },
      dispose: async () => {
        await store.close();
        await Deno.remove(dir, { recursive: true });
      },
    }));
});

Deno.test("store contract: connect() to cli.ts serve", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "revkv-contract-serve-" });
  let server = await startServe(`${dir}/data`);
  let store = await connect({ endpoints: [server.address] });
  await runStoreContract(t, () =>
    Promise.resolve({
      store,
      restart: async () => {
        await store.close();
        await server.stop();
        server = await startServe(`${dir}/data`);
        return store = await connect({ endpoints: [server.address] });
      },
      dispose: async () => {
        await store.close();
        await server.stop();
        await Deno.remove(dir, { recursive: true });
      },
    }));
});

Deno.test({
  name: "store contract: connect() to a real etcd",
  ignore: etcdIgnore("store contract against etcd"),
  async fn(t) {
    const etcd = await startEtcd();
    const store = await connect({ endpoints: [etcd.endpoint] });
    await runStoreContract(t, () =>
      Promise.resolve({
        store,
        dispose: async () => {
          await store.close();
          await etcd.stop();
        },
      }));
  },
});
