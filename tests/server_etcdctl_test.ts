/**
 * Real `etcdctl --endpoints` against `cli.ts serve` and against a real etcd
 * 3.4, the same commands in the same order, outputs compared byte for byte
 * after masking what legitimately differs: cluster/member IDs, raft term
 * and index, lease IDs (mapped to `<lease#n>` in order of appearance),
 * endpoints, db sizes, timings and etcdctl's own log lines.
 */

import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { open, restoreSnapshot, snapshotStatus } from "../mod.ts";
import {
  type CtlResult,
  etcdIgnore,
  runCtl,
  startEtcd,
} from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

interface Step {
  args: string[];
  stdin?: string;
  /** Runs in the background this long, then is killed (watch). */
  forMs?: number;
  /** Waits before running (lets a background watch start). */
  afterMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ctlFor(
  endpoint: string,
  step: Step,
): Promise<CtlResult> {
  if (step.forMs === undefined) {
    return await runCtl(endpoint, step.args, step.stdin);
  }
  const child = new Deno.Command("etcdctl", {
    args: [`--endpoints=${endpoint}`, ...step.args],
    env: { ETCDCTL_API: "3" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await sleep(step.forMs);
  let code = 0;
  try {
    child.kill("SIGINT");
  } catch {
    code = (await child.status).code; // it ended by itself
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

class Masker {
  readonly leases: bigint[] = [];
  constructor(readonly endpoint: string, readonly file: string) {}

  mask(out: CtlResult, step: Step): CtlResult {
    for (const m of out.stdout.matchAll(/lease ([0-9a-f]+) granted/g)) {
      this.#learn(BigInt("0x" + m[1]));
    }
    if (step.args[0] === "lease" && step.args[1] === "grant") {
      for (const m of out.stdout.matchAll(/"ID":(\d+)/g)) {
        this.#learn(BigInt(m[1]!));
      }
    }
    const mask = (text: string) => {
      let s = text.replaceAll(this.endpoint, "<endpoint>")
        .replaceAll(this.endpoint.replace("http://", ""), "<endpoint>")
        .replaceAll(this.file, "<file>")
        .replace(/"(cluster_id|member_id|raft_term|leader)":\d+/g, '"$1":X')
        .replace(/"(raftIndex|raftAppliedIndex|raftTerm)":\d+/g, '"$1":X')
        .replace(/"(dbSize|dbSizeInUse)":\d+/g, '"$1":X')
        .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+/g, '"$1" : X')
        .replace(/\b[0-9a-f]{16}\b/g, "<id>")
        .replace(/took = [\d.]+[µm]?s/g, "took = T")
        .replace(/"(peerURLs|clientURLs)":\["[^"]*"\]/g, '"$1":[U]')
        .replace(/"ID":\d+/g, '"ID":X')
        // HashKV is etcd's HashByRev on both ("HashKV":{... "hash":N});
        // Hash hashes etcd's whole bolt file, which revkv has not.
        .replace(/("HashKV":\{.*?)"hash":(\d+)/g, '$1"hashkv":$2')
        .replace(/"hash":\d+/g, '"hash":H')
        .replace(/"hashkv":/g, '"hash":');
      this.leases.forEach((id, i) => {
        s = s.replaceAll(id.toString(16), `<lease#${i + 1}>`)
          .replaceAll(id.toString(), `<lease#${i + 1}>`);
      });
      return s;
    };
    const stderr = out.stderr.split("\n")
      .filter((line) => !line.startsWith('{"level":'))
      .join("\n");
    return { code: out.code, stdout: mask(out.stdout), stderr: mask(stderr) };
  }

  #learn(id: bigint): void {
    if (!this.leases.includes(id)) this.leases.push(id);
  }
}

async function compare(
  steps: Step[],
  after?: (files: { revkv: string; dir: string }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "revkv_serve_diff_" });
  const etcd = await startEtcd();
  const serve = await startServe(`${dir}/data`, ["--name=oracle"]);
  try {
    const sides = [
      // With a scheme in --endpoints, etcdctl's maintenance calls send
      // ":authority: http://host:port"; the transport must take it.
      {
        endpoint: etcd.endpoint,
        masker: new Masker(etcd.endpoint, `${dir}/etcd.snap`),
        file: `${dir}/etcd.snap`,
      },
      {
        endpoint: serve.endpoint,
        masker: new Masker(serve.endpoint, `${dir}/revkv.snap`),
        file: `${dir}/revkv.snap`,
      },
    ];
    const mismatches: string[] = [];
    for (const step of steps) {
      const results: CtlResult[] = [];
      for (const side of sides) {
        if (step.afterMs) await sleep(step.afterMs);
        const args = step.args.map((a) =>
          a.replaceAll("$FILE", side.file).replace(/\$L(\d+)/g, (_, n) => {
            const id = side.masker.leases[Number(n) - 1];
            if (id === undefined) throw new Error(`no lease ${n}`);
            return id.toString(16);
          })
        );
        results.push(
          side.masker.mask(
            await ctlFor(side.endpoint, { ...step, args }),
            step,
          ),
        );
      }
      try {
        assertEquals(results[1], results[0]);
      } catch {
        mismatches.push(
          `$ etcdctl ${step.args.join(" ")}\n--- etcd: ${
            JSON.stringify(results[0], null, 1)
          }\n--- revkv: ${JSON.stringify(results[1], null, 1)}`,
        );
      }
    }
    await after?.({ revkv: sides[1]!.file, dir });
    if (mismatches.length > 0) {
      throw new Error(
        `${mismatches.length} of ${steps.length} steps differ:\n\n${
          mismatches.join("\n\n")
        }`,
      );
    }
  } finally {
    await serve.stop();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

const ignore = etcdIgnore("server etcdctl differential tests");

Deno.test({
  name: "etcdctl over the wire: kv, txn, compaction errors",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compare([
      { args: ["put", "foo", "bar"] },
      { args: ["put", "foo", "baz", "--prev-kv", "-w", "json"] },
      { args: ["put", "key1", "v1"] },
      { args: ["put", "key2", "v2"] },
      { args: ["get", "foo", "-w", "json"] },
      { args: ["get", "key", "--prefix"] },
      { args: ["get", "key", "--prefix", "-w", "json", "--limit=1"] },
      {
        args: ["get", "key", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"],
      },
      { args: ["get", "foo", "--rev=2"] },
      { args: ["get", "", "--prefix", "--keys-only"] },
      { args: ["get", "", "--from-key", "--count-only", "-w", "json"] },
      { args: ["del", "key1", "--prev-kv"] },
      { args: ["del", "nothing"] },
      {
        args: ["txn", "-w", "json"],
        stdin: 'value("foo") = "baz"\n\nput foo qux\nget key2\n\nput no no\n\n',
      },
      {
        args: ["txn"],
        stdin: 'mod("foo") > "100"\n\nput a b\n\ndel foo\n\n',
      },
      { args: ["compaction", "3"] },
      { args: ["get", "foo", "--rev=2"] },
      { args: ["compaction", "2"] },
      { args: ["compaction", "100"] },
      { args: ["get", "foo", "--rev=100"] },
      { args: ["put", "", "v"] },
      { args: ["txn"], stdin: "\nput d 1\nput d 2\n\n\n" },
      { args: ["txn"], stdin: "\n" + "get k\n".repeat(129) + "\n\n" },
      { args: ["put", "k", "v", "--ignore-value"] },
      { args: ["put", "foo", "v", "--ignore-lease"] },
    ]);
  },
});

Deno.test({
  name: "etcdctl over the wire: leases",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compare([
      { args: ["lease", "grant", "100"] },
      { args: ["put", "lk", "v", "--lease=$L1"] },
      { args: ["lease", "keep-alive", "--once", "$L1"] },
      { args: ["lease", "timetolive", "$L1", "--keys"] },
      { args: ["lease", "list"] },
      { args: ["lease", "revoke", "$L1"] },
      { args: ["get", "lk"] },
      { args: ["lease", "revoke", "$L1"] },
      { args: ["lease", "timetolive", "$L1"] },
      { args: ["put", "x", "y", "--lease=1234"] },
    ]);
  },
});

Deno.test({
  name: "etcdctl over the wire: watch with --rev and --prev-kv",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compare([
      { args: ["put", "w", "1"] },
      { args: ["put", "w", "2"] },
      { args: ["del", "w"] },
      { args: ["put", "w2", "3"] },
      { args: ["watch", "w", "--rev=1", "--prev-kv"], forMs: 1500 },
      {
        args: ["watch", "w", "--prefix", "--rev=2", "-w", "json"],
        forMs: 1500,
      },
      { args: ["compaction", "3"] },
      { args: ["watch", "w", "--rev=2"], forMs: 1500 },
    ]);
  },
});

Deno.test({
  name: "etcdctl over the wire: maintenance and cluster",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compare([
      { args: ["put", "m", "1"] },
      { args: ["endpoint", "health"] },
      { args: ["endpoint", "status", "-w", "json"] },
      { args: ["endpoint", "hashkv", "-w", "json", "--rev=2"] },
      { args: ["alarm", "list"] },
      { args: ["member", "list", "-w", "json"] },
      { args: ["member", "remove", "1234"] },
      { args: ["move-leader", "1234"] },
      { args: ["snapshot", "save", "$FILE"] },
      { args: ["defrag"] },
      { args: ["auth", "disable"] },
      { args: ["user", "list"] },
    ], async ({ revkv, dir }) => {
      // What real etcdctl saved from revkv's stream is a revkv snapshot.
      const status = await snapshotStatus(revkv);
      equal(status.revision, 2);
      equal(status.totalKeys, 1);
      await restoreSnapshot(revkv, `${dir}/restored`);
      const restored = await open(`${dir}/restored`);
      try {
        equal((await restored.get("m")).kvs[0]?.valueText, "1");
      } finally {
        await restored.close();
      }
    });
  },
});
