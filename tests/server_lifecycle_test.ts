/**
 * `serve`'s lifecycle: SIGTERM with a watch stream open stops the server
 * with exit code 0, ends the watch, and releases the data dir (it opens
 * again, with every write in it).
 */

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { open } from "../mod.ts";
import { etcdAvailable, runCtl } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

Deno.test({
  name: "serve: SIGTERM ends open watches, exits 0 and releases the data dir",
  ignore: !etcdAvailable(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv_lifecycle_" });
    try {
      const serve = await startServe(`${dir}/data`);
      assert.match(serve.stdout(), /data dir .*data\n/);
      assert.match(
        serve.stdout(),
        /member [0-9a-f]+ \(name default\) of cluster [0-9a-f]+/,
      );
      const put = await runCtl(serve.address, ["put", "k", "v"]);
      assertEquals(put.stdout, "OK\n");
      const watch = new Deno.Command("etcdctl", {
        args: [`--endpoints=${serve.address}`, "watch", "k"],
        env: { ETCDCTL_API: "3" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await new Promise((r) => setTimeout(r, 500));
      assertEquals(await serve.stop(), 0);
      assert.match(serve.stdout(), /shutting down/);
      // etcdctl's watch may retry a closed connection; end it if so.
      try {
        watch.kill("SIGKILL");
      } catch { /* it ended with the server */ }
      await watch.output();
      const reopened = await open(`${dir}/data`);
      try {
        assertEquals((await reopened.get("k")).kvs[0]?.valueText, "v");
      } finally {
        await reopened.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
