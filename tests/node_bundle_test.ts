/**
 * The Node build (#14): `scripts/bundle.ts` writes the package once into a
 * temp dir, then
 * - the portable Store suite (`tests/node/store_core.mjs`) runs under
 *   `node --test` against its `revkv.mjs`;
 * - `node revkv-cli.mjs` and `deno run cli.ts` give the same bytes (stdout,
 *   stderr, exit code) for put, get -w json, txn from stdin, watch (ended by
 *   SIGINT once its history is out) and an error;
 * - `node revkv-cli.mjs serve` answers real `etcdctl` (put, get, txn, del,
 *   endpoint status/hashkv, watch with history and a live event) with the
 *   bytes the Deno server gives, both started on copies of one data dir;
 * - kill -9 of a Node process writing through the bundle (a few seeded
 *   rounds, REVKV_NODE_KILL9_SEED): every acknowledged put survives;
 * - `npm pack` of the package installs offline into an empty project, where
 *   `import("revkv")` opens a store, the `revkv` bin runs, and a TypeScript
 *   consumer type-checks against its `.d.ts`.
 *
 * Nothing is masked in the CLI comparison: the read steps run on two
 * byte-identical copies of one data dir (a fresh store's cluster and member
 * IDs are random, so two fresh dirs could never agree on `-w json`); the
 * first `put` runs on two fresh dirs, as its output names no ID.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
// A test tool, by full specifier (resolved with --lock=tools.lock).
// deno-lint-ignore no-import-prefix
import ts from "npm:typescript@5.9.3";
import { bundle, BUNDLE_FILES } from "../scripts/bundle.ts";
import { open } from "../mod.ts";
import { runCtl } from "./etcd_oracle.ts";
import { type ServeProcess, startServe } from "./server_helpers.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const SUITE = `${ROOT}tests/node/store_core.mjs`;
/** Bound on any one child process. */
const CHILD_TIMEOUT_MS = 60_000;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  command: string,
  args: string[],
  options: { cwd?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<Outcome> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_TIMEOUT_MS),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * Runs a `watch`: once stdout holds `lines` lines, calls `then` (if given)
 * and waits for `thenLines` lines; then sends SIGINT.
 */
async function runWatch(
  command: string,
  args: string[],
  options: {
    cwd?: string;
    env?: Record<string, string>;
    lines: number;
    then?: () => Promise<unknown>;
    thenLines?: number;
  },
): Promise<Outcome> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_TIMEOUT_MS),
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const decoder = new TextDecoder();
  let stdout = "";
  let stage: "history" | "then" | "signalled" = "history";
  let then: Promise<unknown> | undefined;
  for await (const chunk of child.stdout) {
    stdout += decoder.decode(chunk, { stream: true });
    const lines = stdout.split("\n").length - 1;
    if (stage === "history" && lines >= options.lines) {
      if (options.then === undefined) {
        stage = "signalled";
        child.kill("SIGINT");
      } else {
        stage = "then";
        then = options.then();
      }
    }
    if (stage === "then" && lines >= options.thenLines!) {
      stage = "signalled";
      child.kill("SIGINT");
    }
  }
  await then;
  const status = await child.status;
  return { code: status.code, stdout, stderr: await stderr };
}

/** Rounds of the Node kill -9 test (REVKV_NODE_KILL9_ROUNDS). */
const KILL9_ROUNDS = Number(Deno.env.get("REVKV_NODE_KILL9_ROUNDS") ?? 4);
/** Writes run this long at least before the kill… */
const KILL_AFTER_MIN_MS = 100;
/** …and at most this much longer. */
const KILL_AFTER_SPAN_MS = 300;

/**
 * kill -9 of a Node process writing through the bundle, `KILL9_ROUNDS`
 * times at seeded moments: every acknowledged put is there after each
 * kill, read back by the Deno build (same data dir format).
 */
async function kill9Step(work: string, library: string): Promise<void> {
  const seed = Number(
    Deno.env.get("REVKV_NODE_KILL9_SEED") ??
      Math.floor(Math.random() * 2 ** 31),
  );
  console.log(`REVKV_NODE_KILL9_SEED=${seed}`);
  const random = prng(seed);
  const dir = `${work}/kill9`;
  let acked = 0;
  for (let round = 0; round < KILL9_ROUNDS; round++) {
    const child = new Deno.Command("node", {
      args: [`${ROOT}tests/node/crash_child.mjs`, library, dir, String(acked)],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(CHILD_TIMEOUT_MS),
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const decoder = new TextDecoder();
    let out = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
      if (timer === undefined && out.includes("ready ")) {
        timer = setTimeout(
          () => child.kill("SIGKILL"),
          KILL_AFTER_MIN_MS + random() * KILL_AFTER_SPAN_MS,
        );
      }
    }
    const status = await child.status;
    clearTimeout(timer);
    equal(status.signal, "SIGKILL", `round ${round}: ${await stderr}`);
    const acks = [...out.matchAll(/^ack (\d+)$/gm)].map((m) => Number(m[1]));
    ok(acks.length > 0, `round ${round}: no write acknowledged`);
    const db = await open(dir);
    try {
      for (const i of acks) {
        const got = await db.get(`n${i}`);
        equal(got.kvs[0]?.valueText, `v${i}`, `round ${round}: n${i} lost`);
      }
    } finally {
      await db.close();
    }
    acked = Math.max(acked, ...acks) + 1;
  }
}

/** A small seeded PRNG (mulberry32). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The Node server and the Deno server, etcdctl's bytes compared. */
async function serverStep(work: string, cliPath: string): Promise<void> {
  // One store, copied: both servers start from the same bytes (same IDs,
  // same term after their open), so only the endpoint differs.
  const seed = await open(`${work}/serve-node`);
  await seed.put("seed", "1");
  await seed.close();
  await run("cp", ["-a", `${work}/serve-node`, `${work}/serve-deno`]);
  const nodeServer = await startServe(`${work}/serve-node`, [], [
    "node",
    cliPath,
  ]);
  const denoServer = await startServe(`${work}/serve-deno`);
  try {
    const ctl = async (endpoint: string, args: string[], stdin?: string) => {
      const out = await runCtl(endpoint, args, stdin);
      return {
        code: out.code,
        stdout: out.stdout.replaceAll(endpoint, "<endpoint>"),
        stderr: out.stderr.replaceAll(endpoint, "<endpoint>"),
      };
    };
    const both = async (args: string[], stdin?: string) => {
      const node = await ctl(nodeServer.endpoint, args, stdin);
      const deno = await ctl(denoServer.endpoint, args, stdin);
      deepStrictEqual(node, deno, `etcdctl ${args.join(" ")}`);
      equal(node.code, 0, node.stderr);
      return node;
    };
    equal((await both(["put", "foo", "bar"])).stdout, "OK\n");
    const got = await both(["get", "foo", "-w", "json"]);
    match(got.stdout, /"revision":3,/);
    await both(["put", "foo", "baz", "--prev-kv", "-w", "json"]);
    await both(
      ["txn", "-w", "json"],
      'value("foo") = "baz"\n\nput foo qux\nget seed\n\nput never y\n\n',
    );
    await both(["get", "", "--prefix", "--keys-only"]);
    await both(["del", "seed", "--prev-kv"]);
    await both(["endpoint", "status", "-w", "json"]);
    await both(["endpoint", "hashkv", "-w", "json"]);
    // watch: the history from revision 1 (5 events, 3 lines each, the
    // delete's value empty), then a live put, then Ctrl-C.
    const watch = (server: ServeProcess) =>
      runWatch("etcdctl", [
        `--endpoints=${server.endpoint}`,
        "watch",
        "",
        "--prefix",
        "--rev",
        "1",
      ], {
        env: { ETCDCTL_API: "3" },
        lines: 15,
        then: () => runCtl(server.endpoint, ["put", "live", "1"]),
        thenLines: 18,
      });
    const nodeWatch = await watch(nodeServer);
    const denoWatch = await watch(denoServer);
    deepStrictEqual(nodeWatch.stdout, denoWatch.stdout, "watch");
    match(nodeWatch.stdout, /^PUT\nseed\n1\n/);
    match(nodeWatch.stdout, /PUT\nlive\n1\n$/);
  } finally {
    equal(await nodeServer.stop(), 0);
    equal(await denoServer.stop(), 0);
  }
}

Deno.test("node bundle: library suite, CLI and server bytes equal to Deno's, npm pack installs offline", async (t) => {
  const work = await Deno.makeTempDir({ prefix: "revkv-node-bundle-" });
  try {
    const dist = `${work}/dist`;
    const built = await bundle(dist);
    ok(built.sizes[BUNDLE_FILES.library]! > 0);
    const cliPath = `${dist}/${BUNDLE_FILES.cli}`;
    const cliHead = (await Deno.readTextFile(cliPath)).slice(0, 40);
    match(cliHead, /^#!\/usr\/bin\/env node\n/);

    await t.step(
      "the portable Store suite passes under node --test",
      async () => {
        const out = await run("node", ["--test", SUITE], {
          env: { REVKV_BUNDLE: `${dist}/${BUNDLE_FILES.library}` },
        });
        equal(out.code, 0, out.stdout + out.stderr);
        match(out.stdout, /# pass 13\n/);
        match(out.stdout, /# fail 0\n/);
      },
    );

    await t.step(
      "node revkv-cli.mjs prints the bytes the Deno CLI prints",
      async () => {
        const nodeCwd = `${work}/node-cli`;
        const denoCwd = `${work}/deno-cli`;
        await Deno.mkdir(nodeCwd);
        await Deno.mkdir(denoCwd);
        const sides = {
          node: (args: string[], stdin?: string) =>
            run("node", [cliPath, ...args], { cwd: nodeCwd, stdin }),
          deno: (args: string[], stdin?: string) =>
            run("deno", ["run", "-A", `${ROOT}cli.ts`, ...args], {
              cwd: denoCwd,
              stdin,
            }),
        };
        const both = async (args: string[], stdin?: string) => {
          const node = await sides.node(args, stdin);
          const deno = await sides.deno(args, stdin);
          deepStrictEqual(node, deno, `revkv ${args.join(" ")}`);
          return node;
        };
        // Fresh dirs: "OK", and the store created on stderr.
        const put = await both(["--data-dir", "d", "put", "foo", "bar"]);
        equal(put.stdout, "OK\n");
        match(put.stderr, /created a new store in data dir "d"/);
        // The same store on both sides from here on.
        await Deno.remove(`${denoCwd}/d`, { recursive: true });
        await run("cp", ["-a", `${nodeCwd}/d`, `${denoCwd}/d`]);
        const get = await both(["--data-dir", "d", "get", "foo", "-w", "json"]);
        match(
          get.stdout,
          /^\{"header":\{"cluster_id":\d+,"member_id":\d+,"revision":2,/,
        );
        const txn = await both(
          ["--data-dir", "d", "txn", "-w", "json"],
          'value("foo") = "bar"\n\nput foo baz\nput other x\n\nput never y\n\n',
        );
        match(txn.stdout, /"succeeded":true/);
        const txnSimple = await both(
          ["--data-dir", "d", "txn"],
          'mod("foo") > "100"\n\nput never y\n\nget foo\n\n',
        );
        equal(txnSimple.stdout, "FAILURE\n\nfoo\nbaz\n");
        await both(["--data-dir", "d", "get", "", "--prefix", "-w", "json"]);
        await both(["--data-dir", "d", "del", "other", "--prev-kv"]);
        // watch: the history from revision 1 (3 events, 3 lines each), then
        // Ctrl-C, which ends it with exit 0.
        const watchArgs = [
          "--data-dir",
          "d",
          "watch",
          "",
          "--prefix",
          "--rev",
          "1",
        ];
        const nodeWatch = await runWatch("node", [cliPath, ...watchArgs], {
          cwd: nodeCwd,
          lines: 12,
        });
        const denoWatch = await runWatch(
          "deno",
          ["run", "-A", `${ROOT}cli.ts`, ...watchArgs],
          { cwd: denoCwd, lines: 12 },
        );
        deepStrictEqual(nodeWatch, denoWatch, "watch");
        equal(nodeWatch.code, 0, nodeWatch.stderr);
        equal(
          nodeWatch.stdout,
          "PUT\nfoo\nbar\nPUT\nfoo\nbaz\nPUT\nother\nx\nDELETE\nother\n\n",
        );
        // An error: a read of a dir without a store.
        const missing = await both([
          "--data-dir",
          "nothing-here",
          "get",
          "foo",
        ]);
        equal(missing.code, 2);
      },
    );

    await t.step(
      "node revkv-cli.mjs serve answers etcdctl as the Deno server does",
      () => serverStep(work, cliPath),
    );

    await t.step(
      "kill -9 of a Node writer: every acknowledged put survives",
      () => kill9Step(work, `${dist}/${BUNDLE_FILES.library}`),
    );

    await t.step(
      "npm pack installs offline and import('revkv') opens a store",
      async () => {
        const packed = await run("npm", ["pack", "--silent", dist], {
          cwd: work,
        });
        equal(packed.code, 0, packed.stderr);
        const tarball = `${work}/${packed.stdout.trim().split("\n").at(-1)}`;
        const project = `${work}/project`;
        await Deno.mkdir(project);
        await Deno.writeTextFile(
          `${project}/package.json`,
          JSON.stringify({ name: "consumer", private: true, type: "module" }),
        );
        const install = await run(
          "npm",
          ["install", "--offline", "--no-audit", "--no-fund", tarball],
          { cwd: project },
        );
        equal(install.code, 0, install.stdout + install.stderr);
        const script = `
        import { open } from "revkv";
        const db = await open("data");
        await db.put("greeting", "hello from node");
        const res = await db.get("greeting");
        console.log(res.kvs[0].valueText, res.header.revision);
        await db.close();
        const again = await open("data", { replayWorker: "always" });
        console.log(again.revision);
        await again.close();`;
        const used = await run(
          "node",
          ["--input-type=module", "-e", script],
          { cwd: project },
        );
        equal(used.code, 0, used.stderr);
        equal(used.stdout, "hello from node 2\n2\n");
        // The replay worker shipped beside the bundles.
        ok(
          (await Deno.stat(`${project}/node_modules/revkv/replay-worker.mjs`))
            .isFile,
        );
        const bin = await run(
          `${project}/node_modules/.bin/revkv`,
          ["--data-dir", "data", "get", "greeting", "--print-value-only"],
          { cwd: project },
        );
        deepStrictEqual(bin, {
          code: 0,
          stdout: "hello from node\n",
          stderr: "",
        });
        // The declarations: a consumer type-checks with Node's resolution.
        const consumer = `${project}/consumer.ts`;
        await Deno.writeTextFile(
          consumer,
          `import { open, type RangeResponse, LockedError } from "revkv";
const db = await open();
const res: RangeResponse = await db.get("k", { prefix: true });
const n: number = res.count;
// @ts-expect-error: a revision is a number
const bad: string = res.header.revision;
console.log(n, bad, LockedError.name);
await db.close();
`,
        );
        const program = ts.createProgram([consumer], {
          noEmit: true,
          strict: true,
          target: ts.ScriptTarget.ES2022,
          module: ts.ModuleKind.NodeNext,
          moduleResolution: ts.ModuleResolutionKind.NodeNext,
          // Store is AsyncDisposable: `Symbol.asyncDispose` (in @types/node
          // for a Node project; here the lib that declares it).
          lib: [
            "lib.es2022.d.ts",
            "lib.esnext.disposable.d.ts",
            "lib.dom.d.ts",
          ],
          types: [],
        });
        const diagnostics = ts.getPreEmitDiagnostics(program).map((d) =>
          ts.flattenDiagnosticMessageText(d.messageText, "\n")
        );
        deepStrictEqual(diagnostics, []);
      },
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
