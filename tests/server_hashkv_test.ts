/**
 * HashKV against a real etcd 3.4: the same writes (through each server's
 * JSON gateway), compactions and lease grants with fixed IDs go to
 * `cli.ts serve` and to etcd, and real `etcdctl endpoint hashkv` then
 * prints the same hash and compact revision from both, at the current
 * revision and at older ones; the compacted and future revisions fail with
 * the same error. One scripted history covers etcd's special cases (a key
 * compacted and changed later, a tombstone at the compaction, every key
 * gone so that `Keep` is empty); one seeded random history covers the rest.
 */

import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { etcdIgnore, runCtl, startEtcd } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";
import { Random, seedFromEnv } from "./_prng.ts";

/** Random operations per random history (each one gateway call per side). */
const RANDOM_OPS = 160;
/** Longest a gateway request may take. */
const REQUEST_MS_MAX = 10_000;

const b64 = (text: string) => btoa(text);

/** POSTs JSON to a gateway; throws unless 200. */
async function post(
  endpoint: string,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(endpoint + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_MS_MAX),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`${endpoint}${path} answered ${response.status}: ${text}`);
  }
  return JSON.parse(text);
}

/** `etcdctl endpoint hashkv` as {hash, compact_revision}, or the error. */
async function hashKv(endpoint: string, rev?: number): Promise<unknown> {
  const args = ["endpoint", "hashkv", "-w", "json"];
  if (rev !== undefined) args.push(`--rev=${rev}`);
  const out = await runCtl(endpoint, args);
  if (out.code !== 0) {
    return { error: out.stderr.trim().split("\n").pop() };
  }
  const [entry] = JSON.parse(out.stdout) as {
    HashKV: { hash?: number; compact_revision?: number };
  }[];
  return {
    hash: entry!.HashKV.hash ?? 0,
    compactRevision: entry!.HashKV.compact_revision ?? 0,
  };
}

/** Both servers, the same call to each. */
class Pair {
  constructor(readonly etcd: string, readonly revkv: string) {}

  /** Sends `body` to both; the revisions they answer agree: returns it. */
  async post(path: string, body: unknown): Promise<number> {
    const [a, b] = await Promise.all([
      post(this.etcd, path, body),
      post(this.revkv, path, body),
    ]);
    const revision = (r: Record<string, unknown>) =>
      (r.header as { revision?: string } | undefined)?.revision;
    equal(revision(b), revision(a), `revision after ${path}`);
    return Number(revision(a));
  }

  async assertHashes(revs: (number | undefined)[], label: string) {
    for (const rev of revs) {
      const [a, b] = await Promise.all([
        hashKv(this.etcd, rev),
        hashKv(this.revkv, rev),
      ]);
      assertEquals(b, a, `${label}: hashkv --rev=${rev ?? "(current)"}`);
    }
  }
}

const put = (key: string, value: string, lease?: string) => ({
  key: b64(key),
  value: b64(value),
  ...(lease === undefined ? {} : { lease }),
});

async function withPair(run: (pair: Pair) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "revkv-hashkv-" });
  const etcd = await startEtcd();
  try {
    const serve = await startServe(dir);
    try {
      await run(new Pair(etcd.endpoint, serve.endpoint));
    } finally {
      await serve.stop();
    }
  } finally {
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "hashkv: a scripted history hashes as etcd's, through compactions",
  ignore: etcdIgnore(),
  sanitizeResources: false,
  async fn() {
    await withPair(async (pair) => {
      await pair.assertHashes([undefined], "empty store");
      await pair.post("/v3/kv/put", put("a", "1")); // 2
      await pair.post("/v3/kv/put", put("b", "2")); // 3
      await pair.post("/v3/kv/put", put("a", "3")); // 4
      await pair.post("/v3/kv/put", put("e", "")); // 5: empty value
      await pair.post("/v3/kv/deleterange", { key: b64("a") }); // 6
      // 7: one revision, several sub revisions, a delete among them.
      await pair.post("/v3/kv/txn", {
        success: [
          { request_put: put("c", "x") },
          { request_put: put("d", "y") },
          { request_delete_range: { key: b64("b") } },
        ],
      });
      // 8: a range delete of two keys (two subs in key order).
      await pair.post("/v3/kv/deleterange", {
        key: b64("c"),
        range_end: b64("e"),
      });
      await pair.post("/v3/lease/grant", { TTL: 600, ID: "4660" });
      await pair.post("/v3/kv/put", put("l", "leased", "4660")); // 9
      // The largest lease ID etcd allows: a 9-byte varint in the row.
      const maxLease = "9223372036854775807";
      await pair.post("/v3/lease/grant", { TTL: 600, ID: maxLease });
      await pair.post("/v3/kv/put", put("big", "v".repeat(300), maxLease)); // 10
      await pair.assertHashes([undefined, 1, 5, 8, 10, 11], "before compact");
      await pair.post("/v3/kv/compaction", { revision: 6, physical: true });
      await pair.post("/v3/kv/put", put("e", "again")); // 11: e changed after
      await pair.assertHashes([undefined, 5, 6, 7, 9], "compacted at 6");
      // A tombstone at the compaction, then every key gone: Keep is empty.
      await pair.post("/v3/kv/compaction", { revision: 8, physical: true });
      await pair.post("/v3/lease/revoke", { ID: "4660" }); // 12: deletes l
      await pair.post("/v3/kv/deleterange", {
        key: b64("\0"),
        range_end: b64("\0"),
      }); // 13
      await pair.assertHashes([undefined, 9, 12], "compacted at 8, all gone");
      await pair.post("/v3/kv/compaction", { revision: 13, physical: true });
      await pair.assertHashes([undefined, 13], "compacted at the head");
    });
  },
});

Deno.test({
  name: "hashkv: a seeded random history hashes as etcd's at every step",
  ignore: etcdIgnore(),
  sanitizeResources: false,
  async fn() {
    const random = new Random(seedFromEnv("hashkv random history"));
    const keys = ["a", "ab", "abc", "b", "ba", "c", "d\u00ff", "e"];
    await withPair(async (pair) => {
      let revision = 1;
      let compacted = -1;
      for (let op = 0; op < RANDOM_OPS; op++) {
        const roll = random.int(100);
        const key = random.pick(keys);
        if (roll < 50) {
          revision = await pair.post(
            "/v3/kv/put",
            put(key, `v${op}`.repeat(random.int(4))),
          );
        } else if (roll < 65) {
          // A delete (of one key or a prefix) may delete nothing: then
          // neither server takes a revision.
          revision = await pair.post("/v3/kv/deleterange", {
            key: b64(key),
            ...(random.chance(0.5) ? { range_end: b64(key + "\x7f") } : {}),
          });
        } else if (roll < 85) {
          const a = random.pick(keys);
          const b = random.pick(keys.filter((k) => k !== a));
          const c = random.pick(keys.filter((k) => k !== a && k !== b));
          revision = await pair.post("/v3/kv/txn", {
            success: [
              { request_put: put(a, `t${op}`) },
              { request_delete_range: { key: b64(b) } },
              { request_put: put(c, "") },
            ],
          });
        } else if (roll < 92 && revision > compacted + 1) {
          compacted = random.between(compacted + 1, revision);
          await pair.post("/v3/kv/compaction", {
            revision: compacted,
            physical: true,
          });
        } else {
          const rev = random.between(Math.max(compacted, 0), revision + 1);
          await pair.assertHashes([undefined, rev], `op ${op}`);
        }
      }
      await pair.assertHashes([undefined], "end");
    });
  },
});
