/**
 * What a newcomer meets first at the CLI (issue 15, issue 9 items 7–8):
 * reads never create a store and a created store is announced; revkv names
 * itself in `version` and the root help; a leading `--` behaves as in
 * etcdctl; only the `ETCDCTL_*` variables are read and a missing permission
 * is one line naming the flag; non-UTF-8 arguments keep their bytes; and
 * watch start revisions etcdctl refuses are refused the same way.
 */

import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { open } from "../mod.ts";
import { runCli } from "../src/cli/main.ts";
import { REVKV_HELP_LINE, REVKV_VERSION } from "../src/cli/command.ts";
import { matchRawArgs } from "../src/cli/raw_args.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

function collector() {
  const chunks: Uint8Array[] = [];
  return {
    write(p: Uint8Array) {
      chunks.push(p.slice());
      return p.length;
    },
    text: () => chunks.map((c) => decoder.decode(c)).join(""),
  };
}

async function cli(args: string[], io: { signal?: AbortSignal } = {}) {
  const stdout = collector();
  const stderr = collector();
  const code = await runCli(args, { stdout, stderr, ...io });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** Runs a shell line (for arguments that are not UTF-8: `$'\xff'`). */
async function sh(line: string, env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: ["-c", line],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  return {
    code,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("a read on a data dir without a store fails and creates nothing; a write creates it and says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv_newcomer_" });
  try {
    const data = `${dir}/typo`;
    for (const args of [["get", "foo"], ["del", "foo"], ["watch", "foo"]]) {
      const out = await cli([`--data-dir=${data}`, ...args]);
      equal(out.code, 2, args.join(" "));
      equal(
        out.stderr,
        `Error: no revkv store in data dir ${JSON.stringify(data)}: ` +
          "nothing was created (a write such as `put` creates it; check --data-dir)\n",
      );
      equal(await exists(data), false, "nothing created");
    }
    const put = await cli([`--data-dir=${data}`, "put", "foo", "bar"]);
    equal(put.code, 0);
    equal(put.stdout, "OK\n");
    equal(
      put.stderr,
      `revkv: created a new store in data dir ${JSON.stringify(data)}\n`,
    );
    const again = await cli([`--data-dir=${data}`, "put", "foo", "baz"]);
    equal(again.stderr, "", "said once, when created");
    const get = await cli([`--data-dir=${data}`, "get", "foo"]);
    assertEquals([get.code, get.stdout, get.stderr], [0, "foo\nbaz\n", ""]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("version and root help name revkv after etcdctl's lines", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  equal(REVKV_VERSION, config.version, "deno.json's version");
  const version = await cli(["version"]);
  equal(
    version.stdout,
    `etcdctl version: 3.4.23\nAPI version: 3.4\nrevkv version: ${REVKV_VERSION}\n`,
  );
  for (const args of [[], ["--help"], ["help"]]) {
    const help = await cli(args);
    equal(help.code, 0);
    ok(
      help.stdout.startsWith(
        "NAME:\n\tetcdctl - A simple command line client for etcd3.\n" +
          `${REVKV_HELP_LINE}\n\nUSAGE:\n`,
      ),
      help.stdout.slice(0, 200),
    );
  }
  // Subcommand help stays etcdctl's (compared in cli_differential_test).
  ok(!(await cli(["put", "--help"])).stdout.includes(REVKV_HELP_LINE));
});

Deno.test("a leading -- prints the root help, exit 0, and writes nothing (as etcdctl)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv_newcomer_" });
  try {
    const out = await cli([`--data-dir=${dir}/d`, "--", "put", "k", "v"]);
    equal(out.code, 0);
    ok(out.stdout.startsWith("NAME:\n\tetcdctl"));
    equal(await exists(`${dir}/d`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLI needs no --allow-env and reads only ETCDCTL_* variables it knows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv_newcomer_" });
  try {
    const base =
      `deno run --allow-read=${dir} --allow-write=${dir} ${CLI} --data-dir=${dir}/d`;
    const put = await sh(`${base} put k v`);
    equal(put.code, 0, put.stderr);
    // Without env permission the variable is skipped, without a prompt.
    const plain = await sh(`${base} get k`, { ETCDCTL_WRITE_OUT: "json" });
    assertEquals([plain.code, plain.stdout], [0, "k\nv\n"]);
    // With permission for just that variable, it applies.
    const json = await sh(
      `deno run --allow-env=ETCDCTL_WRITE_OUT --allow-read=${dir} --allow-write=${dir} ${CLI} --data-dir=${dir}/d get k`,
      { ETCDCTL_WRITE_OUT: "json" },
    );
    equal(json.code, 0, json.stderr);
    ok(json.stdout.startsWith('{"header":'), json.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing permission is one line naming the flag, not a stack trace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "revkv_newcomer_" });
  try {
    const noRead = await sh(`deno run ${CLI} --data-dir=${dir}/d get k`);
    equal(noRead.code, 2);
    equal(
      noRead.stderr,
      `Error: permission denied: revkv needs read access to "${dir}/d/meta.json"; ` +
        "run deno with --allow-read (or -A)\n",
    );
    const noWrite = await sh(
      `deno run --allow-read ${CLI} --data-dir=${dir}/d put k v`,
    );
    equal(noWrite.code, 2);
    equal(noWrite.stderr.split("\n").length, 2, noWrite.stderr);
    ok(noWrite.stderr.includes("run deno with --allow-write"), noWrite.stderr);
    ok(!noWrite.stderr.includes("NotCapable"), noWrite.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("raw argv: cmdline entries line up with Deno.args from the end", () => {
  const enc = (parts: (string | number[])[]) => {
    const bytes: number[] = [];
    for (const p of parts) {
      bytes.push(
        ...(typeof p === "string" ? new TextEncoder().encode(p) : p),
        0,
      );
    }
    return new Uint8Array(bytes);
  };
  const key = [0xff, 0x01, 0x6b];
  const cmdline = enc(["deno", "run", "-A", "cli.ts", "put", key, "v"]);
  const raw = matchRawArgs(cmdline, ["put", "\ufffd\u0001k", "v"]);
  assertEquals(raw, new Map([["\ufffd\u0001k", new Uint8Array(key)]]));
  // All UTF-8: nothing to recover.
  equal(matchRawArgs(enc(["deno", "x", "put", "k"]), ["put", "k"]), undefined);
  // Entries that do not decode to Deno.args are not trusted.
  equal(matchRawArgs(cmdline, ["get", "\ufffd\u0001k", "v"]), undefined);
  // Two different bad byte strings that decode alike cannot be told apart.
  const both = enc(["deno", [0xff], [0xfe]]);
  assertEquals(
    matchRawArgs(both, ["\ufffd", "\ufffd"]),
    new Map([["\ufffd", null]]),
  );
});

Deno.test({
  name: "cli put of a non-UTF-8 key and value stores their bytes, as etcdctl",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv_newcomer_" });
    try {
      const ours = `deno run -A ${CLI} --data-dir=${dir}/d`;
      equal((await sh(`${ours} put $'\\xff\\x01k' $'v\\xfe'`)).code, 0);
      const got = await sh(`${ours} get $'\\xff\\x01k' --hex`);
      assertEquals([got.code, got.stdout], [
        0,
        "\\xff\\x01\\x6b\n\\x76\\xfe\n",
      ]);
      const json = await sh(`${ours} get '' --prefix -w json`);
      ok(json.stdout.includes('"key":"/wFr"'), json.stdout);
      ok(json.stdout.includes('"value":"dv4="'), json.stdout);
      if (etcdIgnore("etcdctl comparison of non-UTF-8 arguments")) return;
      const etcd = await startEtcd();
      try {
        const theirs = `ETCDCTL_API=3 etcdctl --endpoints=${etcd.endpoint}`;
        equal((await sh(`${theirs} put $'\\xff\\x01k' $'v\\xfe'`)).code, 0);
        const want = await sh(`${theirs} get $'\\xff\\x01k' --hex`);
        assertEquals([got.code, got.stdout], [want.code, want.stdout]);
      } finally {
        await etcd.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cli watch start revisions etcdctl refuses: negative and compacted end with exit 5; a future one waits",
  ignore: etcdIgnore("watch start revision comparison"),
  async fn() {
    const refused =
      "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n" +
      "Error: watch is canceled by the server\n";
    const etcd = await startEtcd();
    const store = await open();
    try {
      const ours = (args: string[]) =>
        runCli(args, {
          stdout: collector(),
          stderr: collector(),
          store,
        });
      // Never compacted: etcd's compacted revision is -1, so -5 is below it.
      const fresh = await etcd.ctl(["watch", "a", "--rev", "-5"]);
      assertEquals([fresh.code, fresh.stdout, fresh.stderr], [5, "", refused]);
      const stdout = collector();
      const stderr = collector();
      const code = await runCli(["watch", "a", "--rev", "-5"], {
        stdout,
        stderr,
        store,
      });
      assertEquals([code, stdout.text(), stderr.text()], [5, "", refused]);
      for (
        const args of [["put", "a", "1"], ["put", "a", "2"], [
          "compaction",
          "3",
        ]]
      ) {
        equal((await etcd.ctl(args)).code, 0);
        equal(await ours(args), 0);
      }
      for (const rev of ["-1", "1", "2"]) {
        const want = await etcd.ctl(["watch", "a", "--rev", rev]);
        const out = collector();
        const err = collector();
        const got = await runCli(["watch", "a", "--rev", rev], {
          stdout: out,
          stderr: err,
          store,
        });
        assertEquals(
          [got, out.text(), err.text()],
          [want.code, want.stdout, want.stderr],
          `--rev ${rev}`,
        );
      }
      // A future revision is not refused: the watch waits for it and shows
      // it when it comes (etcd does the same; its run is not compared, as
      // etcdctl never ends by itself).
      const controller = new AbortController();
      const out = collector();
      const watching = runCli(["watch", "a", "--rev", "5"], {
        stdout: out,
        stderr: collector(),
        store,
        signal: controller.signal,
      });
      await store.put("a", "3"); // revision 4: before the start
      await store.put("a", "4"); // revision 5
      for (let i = 0; i < 1000 && !out.text().includes("\n4\n"); i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      controller.abort();
      equal(await watching, 0);
      equal(out.text(), "PUT\na\n4\n");
    } finally {
      await store.close();
      await etcd.stop();
    }
  },
});
