/**
 * `txn -i` through a real pseudo-terminal (util-linux `script`): type each
 * block only after its prompt appeared, for etcdctl against a fresh etcd
 * and for revkv's CLI on a throwaway in-memory store, and compare the two
 * terminal transcripts (prompts, echoed input, result).
 */

import { equal } from "node:assert/strict";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";

/** How long one prompt or the end of the session may take. */
const WAIT_MS_MAX = 15_000;

function hasScript(): boolean {
  try {
    return Deno.statSync("/usr/bin/script").isFile;
  } catch {
    return false;
  }
}

const PROMPTS = [
  "compares:",
  "success requests (get, put, del):",
  "failure requests (get, put, del):",
];

/** Runs `command` in a pty, typing `blocks[i]` after `PROMPTS[i]` shows. */
async function ptySession(command: string, blocks: string[]): Promise<string> {
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    env: { ETCDCTL_API: "3" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let transcript = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      transcript += decoder.decode(chunk, { stream: true });
    }
  })();
  const killer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS_MAX * 2);
  try {
    const writer = child.stdin.getWriter();
    for (let i = 0; i < PROMPTS.length; i++) {
      const deadline = Date.now() + WAIT_MS_MAX;
      while (!transcript.replaceAll("\r", "").includes(`${PROMPTS[i]!}\n`)) {
        if (Date.now() > deadline) {
          throw new Error(`no prompt ${PROMPTS[i]} in: ${transcript}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await writer.write(new TextEncoder().encode(blocks[i]));
    }
    await writer.close();
    await child.status;
    await reading;
    await child.stderr.cancel();
  } finally {
    clearTimeout(killer);
  }
  return transcript.replaceAll("\r\n", "\n");
}

Deno.test({
  name: "cli txn -i prompts in a terminal as etcdctl does",
  ignore: etcdIgnore("CLI terminal tests") || !hasScript(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const blocks = [
      'version("a") = "0"\n\n',
      "put a 1\nget a\n\n",
      "get b\n\n",
    ];
    const etcd = await startEtcd();
    try {
      const theirs = await ptySession(
        `etcdctl --endpoints=${etcd.endpoint} txn -i`,
        blocks,
      );
      const cli = new URL("../cli.ts", import.meta.url).pathname;
      const ours = await ptySession(
        `deno run -A ${cli} --data-dir=:memory: txn -i`,
        blocks,
      );
      equal(ours, theirs);
      equal(
        theirs,
        'compares:\nversion("a") = "0"\n\nsuccess requests (get, put, del):\n' +
          "put a 1\nget a\n\nfailure requests (get, put, del):\nget b\n\n" +
          "SUCCESS\n\nOK\n\na\n1\n",
      );
    } finally {
      await etcd.stop();
    }
  },
});

/**
 * Runs `command` in a pty, types `line`, waits until `until` shows, then
 * ends stdin. Returns the transcript and the exit code.
 */
async function ptyWatchSession(
  command: string,
  line: string,
  until: string,
): Promise<{ transcript: string; code: number }> {
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    env: { ETCDCTL_API: "3" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let transcript = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      transcript += decoder.decode(chunk, { stream: true });
    }
  })();
  const killer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS_MAX * 2);
  try {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(line));
    const deadline = Date.now() + WAIT_MS_MAX;
    while (!transcript.includes(until)) {
      if (Date.now() > deadline) {
        throw new Error(`no ${until} in: ${transcript}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await writer.close();
    const { code } = await child.status;
    await reading;
    await child.stderr.cancel();
    return { transcript: transcript.replaceAll("\r\n", "\n"), code };
  } finally {
    clearTimeout(killer);
  }
}

Deno.test({
  name:
    "cli watch -i replays history in a terminal and ends at EOF as etcdctl does",
  ignore: etcdIgnore("CLI terminal tests") || !hasScript(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const etcd = await startEtcd();
    const dir = await Deno.makeTempDir({ prefix: "revkv_watch_pty_" });
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    try {
      for (const value of ["bar", "baz"]) {
        await etcd.ctl(["put", "foo", value]);
        const put = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", cli, `--data-dir=${dir}`, "put", "foo", value],
          stdout: "null",
        }).output();
        equal(put.code, 0);
      }
      const line = "watch foo --rev 1\n";
      const theirs = await ptyWatchSession(
        `etcdctl --endpoints=${etcd.endpoint} watch -i`,
        line,
        "baz",
      );
      const ours = await ptyWatchSession(
        `deno run -A ${cli} --data-dir=${dir} watch -i`,
        line,
        "baz",
      );
      equal(ours.transcript, theirs.transcript);
      equal(ours.code, theirs.code);
      equal(
        theirs.transcript,
        "watch foo --rev 1\nPUT\nfoo\nbar\nPUT\nfoo\nbaz\n" +
          "Error: Error reading watch request line: EOF\n",
      );
    } finally {
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
