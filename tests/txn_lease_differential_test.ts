/**
 * Differential test of transactions and leases: the same requests go to a
 * real etcd 3.4 (through its JSON gateway, which carries every field of
 * TxnRequest) and to the store; revisions, branches, every nested response
 * and every error text must agree. Random txns come from a seeded PRNG:
 * REVKV_SEED replays one.
 */
import assert from "node:assert/strict";
import {
  type Compare,
  type EtcdError,
  open,
  type RequestOp,
  type ResponseOp,
  type Store,
  type TxnRequest,
  type TxnResponse,
} from "../mod.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";
import { prng, seedFromEnv } from "./_prng.ts";

const enc = new TextEncoder();
const b64 = (v: string | Uint8Array) =>
  btoa(String.fromCharCode(...(typeof v === "string" ? enc.encode(v) : v)));

// deno-lint-ignore no-explicit-any
type Json = any;

const TARGETS = {
  value: "VALUE",
  version: "VERSION",
  create: "CREATE",
  mod: "MOD",
  lease: "LEASE",
};
const RESULTS = {
  "==": "EQUAL",
  "!=": "NOT_EQUAL",
  "<": "LESS",
  ">": "GREATER",
};

function rangeEndOf(
  sel: { rangeEnd?: string | Uint8Array; prefix?: boolean; fromKey?: boolean },
  key: string,
): string | undefined {
  if (sel.prefix) {
    const k = enc.encode(key);
    const end = k.slice();
    end[end.length - 1]! += 1;
    return b64(end);
  }
  if (sel.fromKey) return b64("\0");
  if (sel.rangeEnd !== undefined) return b64(sel.rangeEnd);
  return undefined;
}

function compareToJson(c: Compare): Json {
  const out: Json = {
    target: TARGETS[c.target],
    result: RESULTS[c.result],
    key: b64(c.key as string),
  };
  const end = rangeEndOf(c, c.key as string);
  if (end) out.range_end = end;
  if (c.target === "value") out.value = b64(c.value as string);
  else if (c.target === "lease") out.lease = String(c.value);
  else {out[
      c.target === "create"
        ? "create_revision"
        : c.target === "mod"
        ? "mod_revision"
        : "version"
    ] = String(c.value);}
  return out;
}

function opToJson(o: RequestOp): Json {
  if ("range" in o) {
    const { key, ...opts } = o.range;
    const r: Json = { key: b64(key as string) };
    const end = rangeEndOf(opts, key as string);
    if (end) r.range_end = end;
    if (opts.revision) r.revision = String(opts.revision);
    if (opts.limit) r.limit = String(opts.limit);
    if (opts.countOnly) r.count_only = true;
    if (opts.keysOnly) r.keys_only = true;
    return { request_range: r };
  }
  if ("put" in o) {
    const { key, value, ...opts } = o.put;
    const r: Json = { key: b64(key as string), value: b64(value as string) };
    if (opts.lease) r.lease = String(opts.lease);
    if (opts.prevKv) r.prev_kv = true;
    if (opts.ignoreValue) r.ignore_value = true;
    if (opts.ignoreLease) r.ignore_lease = true;
    return { request_put: r };
  }
  if ("deleteRange" in o) {
    const { key, ...opts } = o.deleteRange;
    const r: Json = { key: b64(key as string) };
    const end = rangeEndOf(opts, key as string);
    if (end) r.range_end = end;
    if (opts.prevKv) r.prev_kv = true;
    return { request_delete_range: r };
  }
  return { request_txn: txnToJson(o.txn) };
}

function txnToJson(t: TxnRequest): Json {
  return {
    compare: (t.compare ?? []).map(compareToJson),
    success: (t.success ?? []).map(opToJson),
    failure: (t.failure ?? []).map(opToJson),
  };
}

/** One shape for both sides: strings for numbers, base64 for bytes, zero values left out. */
function kvJson(kv: Json): Json {
  const out: Json = { key: kv.key };
  for (
    const f of ["create_revision", "mod_revision", "version", "value", "lease"]
  ) {
    if (kv[f] !== undefined && kv[f] !== "0" && kv[f] !== "") out[f] = kv[f];
  }
  return out;
}

function normalizeEtcd(resp: Json): Json {
  if (resp.error !== undefined) return { error: resp.message };
  return {
    revision: resp.header?.revision ?? "0",
    succeeded: resp.succeeded ?? false,
    responses: (resp.responses ?? []).map((r: Json) => {
      if (r.response_range) {
        const rr = r.response_range;
        return {
          range: {
            revision: rr.header?.revision ?? "0",
            kvs: (rr.kvs ?? []).map(kvJson),
            count: rr.count ?? "0",
            more: rr.more ?? false,
          },
        };
      }
      if (r.response_put) {
        const rp = r.response_put;
        return {
          put: {
            revision: rp.header?.revision ?? "0",
            prev: rp.prev_kv ? kvJson(rp.prev_kv) : null,
          },
        };
      }
      if (r.response_delete_range) {
        const rd = r.response_delete_range;
        return {
          del: {
            revision: rd.header?.revision ?? "0",
            deleted: rd.deleted ?? "0",
            prev: (rd.prev_kvs ?? []).map(kvJson),
          },
        };
      }
      return { txn: normalizeEtcd(r.response_txn) };
    }),
  };
}

function storeKv(
  kv: {
    key: Uint8Array;
    value: Uint8Array;
    createRevision: number;
    modRevision: number;
    version: number;
    lease: bigint;
  },
): Json {
  return kvJson({
    key: b64(kv.key),
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
    value: b64(kv.value),
    lease: String(kv.lease),
  });
}

function normalizeStore(resp: TxnResponse): Json {
  return {
    revision: String(resp.header.revision),
    succeeded: resp.succeeded,
    responses: resp.responses.map((r: ResponseOp) => {
      if ("range" in r) {
        return {
          range: {
            revision: String(r.range.header.revision),
            kvs: r.range.kvs.map(storeKv),
            count: String(r.range.count),
            more: r.range.more,
          },
        };
      }
      if ("put" in r) {
        return {
          put: {
            revision: String(r.put.header.revision),
            prev: r.put.prevKv ? storeKv(r.put.prevKv) : null,
          },
        };
      }
      if ("deleteRange" in r) {
        return {
          del: {
            revision: String(r.deleteRange.header.revision),
            deleted: String(r.deleteRange.deleted),
            prev: r.deleteRange.prevKvs.map(storeKv),
          },
        };
      }
      return { txn: normalizeStore(r.txn) };
    }),
  };
}

async function runStore(db: Store, t: TxnRequest): Promise<Json> {
  try {
    return normalizeStore(await db.txn(t));
  } catch (e) {
    return { error: (e as EtcdError).message };
  }
}

const KEYS = ["a", "b", "b1", "c", "d"];

function randomTxn(
  rand: () => number,
  leases: bigint[],
  depth = 0,
): TxnRequest {
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
  const compares: Compare[] = [];
  const nCompares = Math.floor(rand() * 3);
  for (let i = 0; i < nCompares; i++) {
    const target = pick(
      ["value", "version", "create", "mod", "lease"] as const,
    );
    const value = target === "value"
      ? pick(["", "v1", "v2", "v3"])
      : target === "lease"
      ? pick([0n, ...leases])
      : Math.floor(rand() * 8);
    const c: Compare = {
      key: pick(KEYS),
      target,
      result: pick(["==", "!=", "<", ">"] as const),
      value,
    };
    if (rand() < 0.2) c.prefix = true;
    compares.push(c);
  }
  const ops = (): RequestOp[] => {
    const list: RequestOp[] = [];
    const n = Math.floor(rand() * 4);
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.45) {
        list.push({
          put: {
            key: pick(KEYS),
            value: pick(["v1", "v2", "v3"]),
            prevKv: rand() < 0.5,
            lease: rand() < 0.2 ? pick([...leases, 999n]) : undefined,
            ignoreValue: undefined,
          },
        });
      } else if (r < 0.7) {
        list.push({
          range: {
            key: pick(KEYS),
            prefix: rand() < 0.3,
            limit: rand() < 0.2 ? 1 : undefined,
            countOnly: rand() < 0.1,
          },
        });
      } else if (r < 0.9) {
        list.push({
          deleteRange: {
            key: pick(KEYS),
            prefix: rand() < 0.3,
            prevKv: rand() < 0.5,
          },
        });
      } else if (depth < 2) {
        list.push({ txn: randomTxn(rand, leases, depth + 1) });
      }
    }
    return list;
  };
  return { compare: compares, success: ops(), failure: ops() };
}

Deno.test({
  name: "random transactions answer exactly as etcd's",
  ignore: etcdIgnore("txn differential tests"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const seed = seedFromEnv("txn differential");
    const rand = prng(seed);
    const etcd = await startEtcd();
    await using db = await open();
    try {
      const leases = [0x1001n, 0x1002n];
      for (const id of leases) {
        await etcd.gateway("/v3/lease/grant", { TTL: 600, ID: String(id) });
        await db.grant(600, { id });
      }
      const outcomes = { success: 0, failure: 0, error: 0 };
      for (let i = 0; i < 150; i++) {
        const t = randomTxn(rand, leases);
        const expected = normalizeEtcd(
          await etcd.gateway("/v3/kv/txn", txnToJson(t)),
        );
        const actual = await runStore(db, t);
        outcomes[
          expected.error ? "error" : expected.succeeded ? "success" : "failure"
        ]++;
        assert.deepEqual(
          actual,
          expected,
          `seed ${seed}, txn #${i}: ${JSON.stringify(txnToJson(t))}`,
        );
      }
      db.check();
      console.log("outcomes", outcomes);
      // The generator must exercise both branches and etcd's errors.
      assert.ok(
        outcomes.success > 10 && outcomes.failure > 10,
        JSON.stringify(outcomes),
      );
      assert.ok(outcomes.error > 3, JSON.stringify(outcomes));
    } finally {
      await etcd.stop();
    }
  },
});

Deno.test({
  name:
    "lease grant, attach, time-to-live and revoke match etcd's revisions and keys",
  ignore: etcdIgnore("lease differential tests"),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const etcd = await startEtcd();
    await using db = await open();
    try {
      const id = 0x2a2an;
      const g = await etcd.gateway("/v3/lease/grant", {
        TTL: 1,
        ID: String(id),
      }) as Json;
      const mine = await db.grant(1, { id });
      assert.equal(String(mine.ttl), g.TTL, "TTL raised to the minimum");
      const dup = await etcd.gateway("/v3/lease/grant", {
        TTL: 5,
        ID: String(id),
      }) as Json;
      await assert.rejects(
        db.grant(5, { id }),
        (e: EtcdError) => e.message === dup.message,
      );
      for (const key of ["x", "y", "z"]) {
        const e = await etcd.gateway("/v3/kv/put", {
          key: b64(key),
          value: b64("v"),
          lease: String(id),
        }) as Json;
        const s = await db.put(key, "v", { lease: id });
        assert.equal(String(s.header.revision), e.header.revision);
      }
      await etcd.gateway("/v3/kv/put", { key: b64("y"), value: b64("w") });
      await db.put("y", "w");
      const ettl = await etcd.gateway("/v3/lease/timetolive", {
        ID: String(id),
        keys: true,
      }) as Json;
      const sttl = await db.timeToLive(id, { keys: true });
      // etcd lists a lease's keys in Go map order (random); revkv sorts them.
      assert.deepEqual(sttl.keys.map(b64).sort(), [...ettl.keys].sort());
      assert.equal(String(sttl.grantedTtl), ettl.grantedTTL);
      const unknown = await etcd.gateway("/v3/lease/timetolive", {
        ID: "77",
      }) as Json;
      assert.equal(String((await db.timeToLive(77n)).ttl), unknown.TTL);
      const badPut = await etcd.gateway("/v3/kv/put", {
        key: b64("q"),
        value: b64("v"),
        lease: "77",
      }) as Json;
      await assert.rejects(
        db.put("q", "v", { lease: 77n }),
        (e: EtcdError) => e.message === badPut.message,
      );
      const er = await etcd.gateway("/v3/lease/revoke", {
        ID: String(id),
      }) as Json;
      const sr = await db.revoke(id);
      assert.equal(String(sr.header.revision), er.header.revision);
      const eget = await etcd.gateway("/v3/kv/range", {
        key: b64("a"),
        range_end: b64("\0"),
      }) as Json;
      const sget = await db.get("a", { fromKey: true });
      assert.deepEqual(sget.kvs.map(storeKv), (eget.kvs ?? []).map(kvJson));
      const again = await etcd.gateway("/v3/lease/revoke", {
        ID: String(id),
      }) as Json;
      await assert.rejects(
        db.revoke(id),
        (e: EtcdError) => e.message === again.message,
      );
      const big = await etcd.gateway("/v3/lease/grant", {
        TTL: 9000000001,
      }) as Json;
      await assert.rejects(
        db.grant(9000000001),
        (e: EtcdError) => e.message === big.message,
      );
    } finally {
      await etcd.stop();
    }
  },
});
