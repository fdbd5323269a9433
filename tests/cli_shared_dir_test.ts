/**
 * etcdctl's habit on one embedded data dir, across processes: `watch` in
 * one process and `put` in another prints the event (as etcdctl against
 * etcd does); `lease keep-alive` in one and `lease timetolive` in another
 * sees the lease. The long-running command owns the dir and shares it on
 * `<dir>/revkv.sock`; the short one reaches the store through it.
 *
 * Every wait is bounded; children are stopped by their PID.
 */

import { equal, match } from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";

/** How long a child may take to start, open the dir and answer. */
const CHILD_MS_MAX = 20_000;

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A CLI process whose stdout is collected as it comes. */
function spawnCli(args: string[]): {
  child: Deno.ChildProcess;
  stdout: () => string;
  done: Promise<void>;
} {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let text = "";
  const done = (async () => {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
    }
  })();
  return { child, stdout: () => text, done };
}

/** Runs the CLI in a process of its own to the end. */
async function cliProcess(args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS_MAX),
  }).output();
}

async function until(what: string, done: () => Promise<boolean> | boolean) {
  const deadline = Date.now() + CHILD_MS_MAX;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Stops a child with Ctrl-C and returns its exit code. */
async function interrupt(child: Deno.ChildProcess): Promise<number> {
  try {
    child.kill("SIGINT");
  } catch {
    // Already gone.
  }
  return (await child.status).code;
}

Deno.test({
  name:
    "cli on one data dir: watch in one process prints a put made by another",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv_cli_shared_" });
    const dataDir = `--data-dir=${dir}/data`;
    const sink = { write: (p: Uint8Array) => p.length };
    // The store exists first (a watch refuses a dir that holds none).
    equal(
      await runCli([dataDir, "put", "other", "x"], {
        stdout: sink,
        stderr: sink,
      }),
      0,
    );
    const watch = spawnCli([dataDir, "watch", "foo"]);
    try {
      await until(
        "the watch to own and share the dir",
        () => exists(`${dir}/data/revkv.sock`),
      );
      const put = await cliProcess([dataDir, "put", "foo", "bar"]);
      equal(decoder.decode(put.stderr), "");
      equal(put.code, 0);
      equal(decoder.decode(put.stdout), "OK\n");
      await until("the event", () => watch.stdout().includes("bar\n"));
      equal(await interrupt(watch.child), 0);
      await watch.done;
      // What etcdctl's watch prints for that put.
      equal(watch.stdout(), "PUT\nfoo\nbar\n");
    } finally {
      await interrupt(watch.child);
      await watch.done;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cli on one data dir: lease keep-alive in one process, timetolive in another",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv_cli_shared_" });
    const dataDir = `--data-dir=${dir}/data`;
    let granted = "";
    const stdout = {
      write: (p: Uint8Array) => (granted += decoder.decode(p), p.length),
    };
    const sink = { write: (p: Uint8Array) => p.length };
    equal(
      await runCli([dataDir, "lease", "grant", "60"], { stdout, stderr: sink }),
      0,
    );
    const id = granted.match(/^lease ([0-9a-f]+) granted/)?.[1];
    if (id === undefined) throw new Error(`no lease in ${granted}`);
    const keepAlive = spawnCli([dataDir, "lease", "keep-alive", id]);
    try {
      await until(
        "keep-alive to own and share the dir",
        () => exists(`${dir}/data/revkv.sock`),
      );
      await until("a keep-alive", () => keepAlive.stdout().includes("TTL(60)"));
      const ttl = await cliProcess([dataDir, "lease", "timetolive", id]);
      equal(ttl.code, 0, decoder.decode(ttl.stderr));
      match(
        decoder.decode(ttl.stdout),
        new RegExp(
          `^lease ${id} granted with TTL\\(60s\\), remaining\\(\\d+s\\)\\n$`,
        ),
      );
      equal(await interrupt(keepAlive.child), 0);
      await keepAlive.done;
      match(
        keepAlive.stdout(),
        new RegExp(`^(lease ${id} keepalived with TTL\\(60\\)\\n)+$`),
      );
    } finally {
      await interrupt(keepAlive.child);
      await keepAlive.done;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
