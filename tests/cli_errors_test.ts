/**
 * Bad input to the CLI: each case ends with etcdctl's message and exit
 * code, and leaves the store exactly as it was (same revision, same keys
 * and values, same leases). Runs without etcd.
 */

import { deepStrictEqual, equal, match } from "node:assert/strict";
import { open, type Store } from "../mod.ts";
import { runCli } from "../src/cli/main.ts";

const decoder = new TextDecoder();

async function run(
  store: Store,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const sink = (chunks: Uint8Array[]) => ({
    write(p: Uint8Array) {
      chunks.push(p.slice());
      return p.length;
    },
  });
  const text = (chunks: Uint8Array[]) =>
    chunks.map((c) => decoder.decode(c)).join("");
  const code = await runCli(args, {
    stdout: sink(out),
    stderr: sink(err),
    store,
    stdin: stdin === undefined ? undefined : new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(stdin));
        c.close();
      },
    }),
  });
  return { code, stdout: text(out), stderr: text(err) };
}

async function snapshot(store: Store) {
  const { kvs } = await store.get("\0", { fromKey: true });
  const { leases } = await store.leases();
  return {
    revision: store.revision,
    kvs: kvs.map((
      kv,
    ) => [kv.keyText, kv.valueText, kv.version, String(kv.lease)]),
    leases: leases.map((l) => String(l.id)).sort(),
  };
}

interface Case {
  args: string[];
  stdin?: string;
  code: number;
  stderr: RegExp;
}

const CASES: Case[] = [
  {
    args: ["bogus"],
    code: 1,
    stderr:
      /^Error: unknown command "bogus" for "etcdctl"\nRun 'etcdctl --help' for usage\.\nError: unknown command "bogus" for "etcdctl"\n$/,
  },
  {
    args: ["get", "k", "--bogus"],
    code: 1,
    stderr: /^Error: unknown flag: --bogus\n\nError: unknown flag: --bogus\n$/,
  },
  {
    args: ["put", "k", "v", "-z"],
    code: 1,
    stderr: /unknown shorthand flag: 'z' in -z/,
  },
  {
    args: ["get", "k", "--rev=abc"],
    code: 1,
    stderr:
      /invalid argument "abc" for "--rev" flag: strconv\.ParseInt: parsing "abc": invalid syntax/,
  },
  {
    args: ["get", "k", "--rev"],
    code: 1,
    stderr: /flag needs an argument: --rev/,
  },
  {
    args: ["get", "k", "--rev=99"],
    code: 1,
    stderr:
      /^Error: etcdserver: mvcc: required revision is a future revision\n$/,
  },
  {
    args: ["put"],
    code: 128,
    stderr:
      /^Error: put command needs 1 argument and input from stdin or 2 arguments\n$/,
  },
  {
    args: ["put", "k"],
    stdin: "",
    code: 128,
    stderr: /put command needs 1 argument/,
  },
  {
    args: ["put", "k", "v", "--lease=xyz"],
    code: 128,
    stderr:
      /^Error: bad lease ID \(strconv\.ParseInt: parsing "xyz": invalid syntax\), expecting ID in Hex\n$/,
  },
  {
    args: ["put", "k", "v", "--lease=abc"],
    code: 1,
    stderr: /^Error: etcdserver: requested lease not found\n$/,
  },
  {
    args: ["put", "", "v"],
    code: 1,
    stderr: /^Error: etcdserver: key is not provided\n$/,
  },
  {
    args: ["put", "nokey", "--ignore-value"],
    code: 1,
    stderr: /^Error: etcdserver: key not found\n$/,
  },
  { args: ["get"], code: 128, stderr: /get command needs one argument as key/ },
  {
    args: ["get", "k", "--order=up"],
    code: 4,
    stderr: /^Error: bad sort order up\n$/,
  },
  {
    args: ["get", "k", "-w", "yaml"],
    code: 4,
    stderr: /^Error: unsupported output format\n$/,
  },
  { args: ["del"], code: 128, stderr: /del command needs one argument as key/ },
  {
    args: ["del", "k", "--prefix", "--from-key"],
    code: 128,
    stderr: /cannot be set at the same time/,
  },
  {
    args: ["compaction"],
    code: 128,
    stderr: /^Error: compaction command needs 1 argument\n$/,
  },
  {
    args: ["compaction", "x1"],
    code: 1,
    stderr: /^Error: strconv\.ParseInt: parsing "x1": invalid syntax\n$/,
  },
  { args: ["compaction", "1000"], code: 1, stderr: /future revision/ },
  {
    args: ["txn"],
    stdin: "qwe xyz\n",
    code: 3,
    stderr: /^Error: malformed comparison: qwe xyz\n$/,
  },
  {
    args: ["txn"],
    stdin: 'mod("k") >= "1"\n\n\n',
    code: 3,
    stderr: /unknown operator >=/,
  },
  {
    args: ["txn"],
    stdin: 'value("k") = "v"\n\nput a 1\nput b 2\nbogus c\n\n\n',
    code: 3,
    stderr: /^Error: invalid txn request: bogus c\n$/,
  },
  {
    args: ["txn"],
    stdin: "\nput a 1\n\nput b 2\n",
    code: 3,
    stderr: /^Error: EOF\n$/,
  },
  {
    args: ["txn"],
    stdin: "\nput a 1\ndel a\n\n\n",
    code: 1,
    stderr: /duplicate key given in txn request/,
  },
  {
    args: ["txn", "x"],
    code: 128,
    stderr: /txn command does not accept argument/,
  },
  {
    args: ["lease", "grant"],
    code: 128,
    stderr: /lease grant command needs TTL argument/,
  },
  {
    args: ["lease", "grant", "ten"],
    code: 128,
    stderr:
      /^Error: bad TTL \(strconv\.ParseInt: parsing "ten": invalid syntax\)\n$/,
  },
  { args: ["lease", "revoke", "g1"], code: 128, stderr: /bad lease ID arg/ },
  {
    args: ["lease", "revoke", "1234"],
    code: 1,
    stderr:
      /^Error: failed to revoke lease \(etcdserver: requested lease not found\)\n$/,
  },
  {
    args: ["lease", "keep-alive", "--once", "1234"],
    code: 2,
    stderr: /^Error: etcdserver: requested lease not found\n$/,
  },
  { args: ["watch"], code: 128, stderr: /^Error: bad number of arguments\n$/ },
  {
    args: ["watch", "k", "--"],
    code: 128,
    stderr: /found separator --, but no commands/,
  },
  {
    args: ["watch", "a", "b", "--prefix"],
    code: 128,
    stderr: /mutually exclusive/,
  },
];

Deno.test("cli bad input fails with etcdctl's message and code and leaves the store unchanged", async () => {
  const store = await open();
  try {
    await run(store, ["put", "k", "v"]);
    await run(store, ["put", "other", "x"]);
    await store.grant(1000);
    for (const c of CASES) {
      const before = await snapshot(store);
      const result = await run(store, c.args, c.stdin);
      const label = `etcdctl ${c.args.join(" ")}`;
      equal(
        result.code,
        c.code,
        `${label}: exit code (stderr: ${result.stderr})`,
      );
      match(result.stderr, c.stderr, label);
      deepStrictEqual(await snapshot(store), before, `${label}: store changed`);
      store.check();
    }
  } finally {
    await store.close();
  }
});

Deno.test("cli embedded mode keeps data in --data-dir across invocations, reaches a sharing owner and names a held lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv_cli_" });
  try {
    const sink = { write: (p: Uint8Array) => p.length };
    let out = "";
    let err = "";
    const stdout = {
      write: (p: Uint8Array) => (out += decoder.decode(p), p.length),
    };
    const stderr = {
      write: (p: Uint8Array) => (err += decoder.decode(p), p.length),
    };
    const dataDir = `--data-dir=${dir}/data`;
    equal(
      await runCli(["put", "k", "v", dataDir], { stdout: sink, stderr }),
      0,
      err,
    );
    equal(await runCli([dataDir, "get", "k"], { stdout, stderr }), 0, err);
    equal(out, "k\nv\n");

    // A dir another opener holds and shares is read through that opener.
    const shared = await open(`${dir}/data`);
    try {
      out = "";
      equal(await runCli(["get", "k", dataDir], { stdout, stderr: sink }), 0);
      equal(out, "k\nv\n");
      equal(
        await runCli(["put", "k", "v2", dataDir], {
          stdout: sink,
          stderr: sink,
        }),
        0,
      );
      equal((await shared.get("k")).kvs[0]?.valueText, "v2");
    } finally {
      await shared.close();
    }
    // One that does not share (as a server) is named, with the way to it.
    const held = await open(`${dir}/data`, { share: false });
    try {
      err = "";
      equal(await runCli(["get", "k", dataDir], { stdout: sink, stderr }), 2);
      match(
        err,
        /^Error: cannot open data dir ".*": revkv: data dir is locked by process \d+/,
      );
      match(err, /use --endpoints/);
      equal((await held.get("k")).count, 1);
    } finally {
      await held.close();
    }

    // Remote mode where no server listens: etcdctl's words and exit code.
    err = "";
    const remote = await runCli(
      ["--endpoints=127.0.0.1:1", "--dial-timeout=200ms", "get", "k"],
      { stdout: sink, stderr },
    );
    equal(remote, 1);
    equal(err, "Error: context deadline exceeded\n");
    err = "";
    equal(
      await runCli(["--endpoints=", "get", "k"], { stdout: sink, stderr }),
      2,
    );
    equal(err, "Error: etcdclient: no available endpoints\n");
    // TLS or a login asked for is refused, never sent in plain text.
    for (const flag of ["--cacert=ca.pem", "--user=root:pw"]) {
      err = "";
      equal(
        await runCli(["--endpoints=127.0.0.1:1", flag, "get", "k"], {
          stdout: sink,
          stderr,
        }),
        2,
      );
      match(err, /^Error: --(cacert|user) is not supported: revkv's client/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli get --count-only (etcdctl 3.5's flag) prints only the count", async () => {
  const store = await open();
  try {
    await run(store, ["put", "a", "1"]);
    await run(store, ["put", "b", "2"]);
    const { clusterId, memberId } = store.header();
    const json = await run(store, [
      "get",
      "",
      "--from-key",
      "--count-only",
      "-w",
      "json",
    ]);
    equal(
      json.stdout,
      `{"header":{"cluster_id":${clusterId},"member_id":${memberId},"revision":3,"raft_term":2},"count":2}\n`,
    );
    const simple = await run(store, ["get", "a", "b", "--count-only"]);
    equal(simple.stdout, "");
    equal(simple.code, 0);
  } finally {
    await store.close();
  }
});

Deno.test("cli takes global flags from ETCDCTL_* variables unless given", async () => {
  const store = await open();
  try {
    let out = "";
    const io = {
      stdout: {
        write: (p: Uint8Array) => (out += decoder.decode(p), p.length),
      },
      stderr: { write: (p: Uint8Array) => p.length },
      store,
      env: { ETCDCTL_WRITE_OUT: "fields", ETCDCTL_HEX: "true" },
    };
    await runCli(["put", "k", "v"], io);
    out = "";
    equal(await runCli(["get", "k"], io), 0);
    match(out, /^"ClusterID" : \d+\n/);
    out = "";
    equal(await runCli(["get", "k", "-w", "simple"], io), 0);
    equal(out, "\\x6b\n\\x76\n");
    // A value the flag cannot parse is ignored, as etcdctl ignores it.
    out = "";
    const bad = {
      ...io,
      env: { ETCDCTL_HEX: "abc", ETCDCTL_DIAL_TIMEOUT: "x" },
    };
    equal(await runCli(["get", "k"], bad), 0);
    equal(out, "k\nv\n");
  } finally {
    await store.close();
  }
});
