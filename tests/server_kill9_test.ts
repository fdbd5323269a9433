/**
 * `kill -9` of `cli.ts serve` while 16 clients write over gRPC, repeated:
 * after every restart, every write a client saw acknowledged is there with
 * its value. Rounds and their length are bounded (REVKV_KILL9_ROUNDS,
 * default 12); the kill moment is drawn from a seeded PRNG
 * (REVKV_KILL9_SEED, printed).
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import { Etcd3 } from "npm:etcd3@1.1.2";
import { prng } from "./_prng.ts";
import { startServe } from "./server_helpers.ts";

const CLIENTS = 16;
const ROUNDS = Number(Deno.env.get("REVKV_KILL9_ROUNDS") ?? 12);
/** Writes run this long at least before the kill… */
const KILL_AFTER_MIN_MS = 150;
/** …and at most this long. */
const KILL_AFTER_SPAN_MS = 400;

Deno.test({
  name:
    `kill -9 while ${CLIENTS} clients write: every acknowledged write survives (${ROUNDS} rounds)`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seed = Number(
      Deno.env.get("REVKV_KILL9_SEED") ?? Math.floor(Math.random() * 2 ** 31),
    );
    console.log(`REVKV_KILL9_SEED=${seed}`);
    const random = prng(seed);
    const dir = await Deno.makeTempDir({ prefix: "revkv_kill9_" });
    const acked = new Map<string, string>();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const serve = await startServe(`${dir}/data`);
        // Check what every earlier round acknowledged.
        const checker = new Etcd3({ hosts: serve.address });
        try {
          const all = await checker.getAll().prefix("c").strings();
          for (const [key, value] of acked) {
            assertEquals(all[key], value, `round ${round}: ${key}`);
          }
        } finally {
          checker.close();
        }
        const clients = Array.from(
          { length: CLIENTS },
          () => new Etcd3({ hosts: serve.address }),
        );
        let stop = false;
        const writers = clients.map(async (client, c) => {
          for (let n = 0; !stop; n++) {
            const key = `c${c}/${round}/${n}`;
            const value = `v${round}.${n}`;
            try {
              await client.put(key).value(value);
            } catch {
              return; // the server is gone: unacknowledged
            }
            acked.set(key, value);
          }
        });
        await new Promise((r) =>
          setTimeout(r, KILL_AFTER_MIN_MS + random() * KILL_AFTER_SPAN_MS)
        );
        await serve.kill();
        stop = true;
        for (const client of clients) client.close();
        await Promise.all(writers);
      }
      const serve = await startServe(`${dir}/data`);
      const checker = new Etcd3({ hosts: serve.address });
      try {
        const all = await checker.getAll().prefix("c").strings();
        for (const [key, value] of acked) assertEquals(all[key], value, key);
        console.log(`${acked.size} acknowledged writes over ${ROUNDS} kills`);
      } finally {
        checker.close();
        await serve.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
