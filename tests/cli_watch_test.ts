/**
 * `watch` printing, exec form and endings, against a store whose `watch`
 * yields canned responses (the shapes of `src/watch/watch_hub.ts`). The
 * expected texts are etcdctl 3.4.23's output for the same events (captured
 * from a real etcd: put w1 'v"1', put w1 v2, del w1, watched with
 * `--prefix --prev-kv`), with cluster and member IDs replaced by ours.
 *
 * When the store gains `db.watch`, the same command runs against it and the
 * differential suite covers it.
 */

import { equal } from "node:assert/strict";
import { KeyValue, open, type Store } from "../mod.ts";
import { runCli } from "../src/cli/main.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function kv(
  key: string,
  create: number,
  mod: number,
  version: number,
  value: string,
): KeyValue {
  return new KeyValue(
    enc.encode(key),
    create,
    mod,
    version,
    enc.encode(value),
    0n,
  );
}

const RESPONSES = [
  {
    header: { revision: 19 },
    events: [{ type: "put", kv: kv("w1", 19, 19, 1, 'v"1') }],
    compactRevision: 0,
    canceled: false,
  },
  {
    header: { revision: 20 },
    events: [{
      type: "put",
      kv: kv("w1", 19, 20, 2, "v2"),
      prevKv: kv("w1", 19, 19, 1, 'v"1'),
    }],
    compactRevision: 0,
    canceled: false,
  },
  {
    header: { revision: 21 },
    events: [{
      type: "delete",
      kv: kv("w1", 0, 21, 0, ""),
      prevKv: kv("w1", 19, 20, 2, "v2"),
    }],
    compactRevision: 0,
    canceled: false,
  },
];

/** Gives `store` a `watch` that yields `responses`, then ends (or is canceled). */
function withWatch(store: Store, responses: unknown[]): Store {
  Object.defineProperty(store, "watch", {
    value: (_key: string, _options: unknown) =>
      (async function* () {
        for (const r of responses) yield r;
      })(),
    configurable: true,
  });
  return store;
}

async function run(store: Store, args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: { write: (p) => (stdout += dec.decode(p), p.length) },
    stderr: { write: (p) => (stderr += dec.decode(p), p.length) },
    store,
  });
  return { code, stdout, stderr };
}

Deno.test("cli watch prints events as etcdctl in simple, json and fields", async () => {
  const store = withWatch(await open(), RESPONSES);
  try {
    const { clusterId, memberId } = store.header();
    const simple = await run(store, ["watch", "w", "--prefix", "--prev-kv"]);
    equal(
      simple.stdout,
      'PUT\nw1\nv"1\nPUT\nw1\nv"1\nw1\nv2\nDELETE\nw1\nv2\nw1\n\n',
    );
    // The watch ended without Ctrl-C: etcdctl's "canceled by the server".
    equal(simple.code, 5);
    equal(simple.stderr, "Error: watch is canceled by the server\n");

    const json = await run(store, ["watch", "w", "--prefix", "-w", "json"]);
    const h = (rev: number) =>
      `{"cluster_id":${clusterId},"member_id":${memberId},"revision":${rev},"raft_term":2}`;
    equal(
      json.stdout,
      `{"Header":${
        h(19)
      },"Events":[{"kv":{"key":"dzE=","create_revision":19,"mod_revision":19,"version":1,"value":"diIx"}}],"CompactRevision":0,"Canceled":false,"Created":false}\n` +
        `{"Header":${
          h(20)
        },"Events":[{"kv":{"key":"dzE=","create_revision":19,"mod_revision":20,"version":2,"value":"djI="},"prev_kv":{"key":"dzE=","create_revision":19,"mod_revision":19,"version":1,"value":"diIx"}}],"CompactRevision":0,"Canceled":false,"Created":false}\n` +
        `{"Header":${
          h(21)
        },"Events":[{"type":1,"kv":{"key":"dzE=","mod_revision":21},"prev_kv":{"key":"dzE=","create_revision":19,"mod_revision":20,"version":2,"value":"djI="}}],"CompactRevision":0,"Canceled":false,"Created":false}\n`,
    );

    const fields = await run(store, ["watch", "w", "--prefix", "-w", "fields"]);
    const lines = fields.stdout.split("\n");
    equal(lines[0], `"ClusterID" : ${clusterId}`);
    equal(lines[4], '"Type" : PUT');
    equal(lines[9], '"Value" : "v\\"1"');
    equal(
      lines.slice(31, 45).join("\n"),
      `"RaftTerm" : 2\n"Type" : DELETE\n"PrevKey" : "w1"\n"PrevCreateRevision" : 19\n"PrevModRevision" : 20\n"PrevVersion" : 2\n"PrevValue" : "v2"\n"PrevLease" : 0\n"Key" : "w1"\n"CreateRevision" : 0\n"ModRevision" : 21\n"Version" : 0\n"Value" : ""\n"Lease" : 0`,
    );
  } finally {
    await store.close();
  }
});

Deno.test("cli watch reports a compacted start revision as etcdctl", async () => {
  const store = withWatch(await open(), [{
    header: { revision: 0 },
    events: [],
    compactRevision: 2,
    canceled: true,
  }]);
  try {
    const r = await run(store, ["watch", "w1", "--rev=1", "-w", "json"]);
    const { clusterId, memberId } = store.header();
    equal(
      r.stdout,
      `{"Header":{"cluster_id":${clusterId},"member_id":${memberId},"raft_term":2},"Events":[],"CompactRevision":2,"Canceled":true,"Created":false}\n`,
    );
    equal(
      r.stderr,
      "watch was canceled (etcdserver: mvcc: required revision has been compacted)\nError: watch is canceled by the server\n",
    );
    equal(r.code, 5);
  } finally {
    await store.close();
  }
});

Deno.test("cli watch exec form runs the command per event with ETCD_WATCH_* set", async () => {
  const withoutPrev = RESPONSES.map((r) => ({
    ...r,
    events: r.events.map(({ type, kv }) => ({ type, kv })),
  }));
  const store = withWatch(await open(), withoutPrev);
  try {
    const r = await run(store, [
      "watch",
      "w1",
      "--",
      "sh",
      "-c",
      'echo "rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY val=$ETCD_WATCH_VALUE"',
    ]);
    equal(
      r.stdout,
      'PUT\nw1\nv"1\nrev=19 type="PUT" key="w1" val="v\\"1"\n' +
        'PUT\nw1\nv2\nrev=20 type="PUT" key="w1" val="v2"\n' +
        'DELETE\nw1\n\nrev=21 type="DELETE" key="w1" val=""\n',
    );
  } finally {
    await store.close();
  }
});

Deno.test("cli watch ends cleanly (exit 0) when its signal aborts", async () => {
  const store = await open();
  const controller = new AbortController();
  Object.defineProperty(store, "watch", {
    value: (_key: string, options: { signal: AbortSignal }) =>
      (async function* () {
        yield RESPONSES[0];
        controller.abort();
        if (!options.signal.aborted) throw new Error("signal not passed on");
      })(),
  });
  try {
    let stdout = "";
    const code = await runCli(["watch", "w1"], {
      stdout: { write: (p) => (stdout += dec.decode(p), p.length) },
      stderr: { write: (p) => p.length },
      store,
      signal: controller.signal,
    });
    equal(code, 0);
    equal(stdout, 'PUT\nw1\nv"1\n');
  } finally {
    await store.close();
  }
});
