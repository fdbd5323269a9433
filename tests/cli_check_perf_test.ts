/**
 * `check perf` against the embedded store: a bounded load (shortened with
 * REVKV_CHECK_PERF_SECONDS), etcdctl's verdict lines, the keys removed
 * afterwards, and etcdctl's errors for a used prefix or an unknown load.
 */
import assert from "node:assert/strict";
import { open } from "../mod.ts";
import { runCli } from "../src/cli/main.ts";

const decoder = new TextDecoder();

async function run(args: string[], store: Awaited<ReturnType<typeof open>>) {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (to: string[]) => ({
    write(p: Uint8Array) {
      to.push(decoder.decode(p));
      return p.length;
    },
  });
  const code = await runCli(args, {
    stdout: sink(out),
    stderr: sink(err),
    store,
  });
  return { code, stdout: out.join(""), stderr: err.join("") };
}

Deno.test("check perf runs a bounded load, passes, and removes its keys", async () => {
  Deno.env.set("REVKV_CHECK_PERF_SECONDS", "2");
  try {
    await using db = await open();
    const res = await run(["check", "perf", "--auto-compact"], db);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.split("\n");
    assert.ok(lines[0]!.includes("2 / 2 ["), lines[0]);
    assert.match(res.stdout, /^PASS: Throughput is \d+ writes\/s$/m);
    assert.match(res.stdout, /^PASS: Slowest request took \d+\.\d{6}s$/m);
    assert.match(res.stdout, /^PASS: Stddev is \d+\.\d{6}s$/m);
    assert.match(res.stdout, /^PASS$/m);
    assert.equal(
      (await db.get("/etcdctl-check-perf/", { prefix: true })).count,
      0,
    );
    assert.ok(db.revision > 250, `about 300 puts were made: ${db.revision}`);
  } finally {
    Deno.env.delete("REVKV_CHECK_PERF_SECONDS");
  }
});

Deno.test("check perf refuses a prefix that has keys, and an unknown load", async () => {
  await using db = await open();
  await db.put("/etcdctl-check-perf/x", "y");
  const used = await run(["check", "perf"], db);
  assert.equal(used.code, 3);
  assert.equal(
    used.stderr,
    'Error: prefix "/etcdctl-check-perf/" has keys. Delete with etcdctl del --prefix /etcdctl-check-perf/ first\n',
  );
  const unknown = await run(["check", "perf", "--load", "q"], db);
  assert.equal(unknown.code, 4);
  assert.equal(unknown.stderr, "Error: unknown load option q\n");
});
