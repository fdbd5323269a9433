/**
 * The CLI against etcdctl: each scenario runs the same commands through
 * real etcdctl on a fresh real etcd and through `runCli` four times — on
 * a fresh in-memory store, on a fresh `--data-dir`, and in remote mode with
 * `--endpoints` at a fresh `cli.ts serve` and at a second fresh real etcd
 * (revkv's client against etcd's server) — and compares stdout, stderr and
 * exit codes after masking
 * what legitimately differs (cluster/member IDs, raft term, lease IDs —
 * mapped to `<lease#n>` in order of appearance — and etcdctl's client log
 * lines).
 *
 * Lines only revkv prints in help (`--data-dir`, `--count-only`,
 * `--progress-notify`: flags etcdctl 3.4 lacks) are dropped from ours.
 */

import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { open, type Store } from "../mod.ts";
import { runCli } from "../src/cli/main.ts";
import { REVKV_VERSION } from "../src/cli/command.ts";
import { etcdIgnore, type EtcdOracle, startEtcd } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

interface Step {
  /** Arguments; `$L1`, `$L2`… stand for the leases granted so far (hex). */
  args: string[];
  /** Text on stdin. */
  stdin?: string;
  /** Not run on the `--data-dir` side (for a known durable-store bug). */
  skipDataDir?: boolean;
  /** Not run on the remote side, with the reason (revkv lacks something). */
  skipRemote?: string;
  /** Extra masking for this step (e.g. remaining TTLs). */
  mask?: (text: string) => string;
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** One side of the comparison: how it runs a step, and its lease IDs. */
class Side {
  readonly leases: bigint[] = [];
  constructor(
    readonly run: (args: string[], stdin?: string) => Promise<Outcome>,
    /** What this side's endpoint commands call the store. */
    readonly endpoint: string,
    /** A file name of this side's own (`$FILE` in arguments). */
    readonly file: string,
  ) {}

  substitute(args: string[]): string[] {
    return args.map((a) =>
      a.replaceAll("$FILE", this.file).replace(/\$L(\d+)/g, (_, n) => {
        const id = this.leases[Number(n) - 1];
        if (id === undefined) throw new Error(`no lease ${n} yet`);
        return id.toString(16);
      })
    );
  }

  /** Learns granted lease IDs, then masks everything that may differ. */
  normalize(out: Outcome, step: Step): Outcome {
    for (const text of [out.stdout]) {
      for (
        const m of text.matchAll(
          /lease ([0-9a-f]{16}) granted with TTL\(\d+s\)$/gm,
        )
      ) {
        this.#learn(BigInt("0x" + m[1]));
      }
      if (step.args[0] === "lease" && step.args[1] === "grant") {
        for (const m of text.matchAll(/"ID"\s?:\s?(\d+)/g)) {
          this.#learn(BigInt(m[1]!));
        }
      }
    }
    const mask = (text: string) => {
      let s = text.replaceAll(this.endpoint, "<endpoint>")
        .replaceAll(this.file, "<file>")
        .replace(/"(cluster_id|member_id|raft_term)":\d+/g, '"$1":X')
        .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+/g, '"$1" : X');
      this.leases.forEach((id, i) => {
        const hex = id.toString(16).padStart(16, "0");
        s = s.replaceAll(hex, `<lease#${i + 1}>`)
          .replaceAll(id.toString(16), `<lease#${i + 1}>`)
          .replaceAll(id.toString(), `<lease#${i + 1}>`);
      });
      return step.mask ? step.mask(s) : s;
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

const decoder = new TextDecoder();

function collector(): { write(p: Uint8Array): number; text(): string } {
  const chunks: Uint8Array[] = [];
  return {
    write(p: Uint8Array) {
      chunks.push(p.slice());
      return p.length;
    },
    text() {
      let all = "";
      for (const c of chunks) all += decoder.decode(c, { stream: true });
      return all + decoder.decode();
    },
  };
}

function stdinStream(
  text: string | undefined,
): ReadableStream<Uint8Array> | undefined {
  if (text === undefined) return undefined;
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

/** Help lines for flags only revkv has. */
const OURS_ONLY = /^\s+--(data-dir|count-only|progress-notify)\b.*\n/gm;

/**
 * The line revkv prints on purpose where etcdctl prints nothing: its own
 * version after etcdctl's two (`version`). It is dropped from our output
 * only for `version`, and the test fails if it is missing there. (The root
 * help, which names revkv too, is not compared: etcdctl lists commands
 * revkv does not have; tests/cli_unit_test.ts checks it.)
 */
function dropRevkvLines(args: string[], stdout: string): string {
  if (args.length !== 1 || args[0] !== "version") return stdout;
  const line = `revkv version: ${REVKV_VERSION}\n`;
  if (!stdout.includes(line)) {
    throw new Error(`revkv's own line ${JSON.stringify(line)} is missing`);
  }
  return stdout.replace(line, "");
}

/** etcdctl's client flags as `runCtl` gives them, for revkv's remote side. */
const CLIENT_FLAGS = ["--dial-timeout=5s", "--command-timeout=10s"];

/**
 * Runs `steps` through etcdctl and through revkv four times: on one
 * in-memory store shared by all steps, in embedded mode on a fresh
 * `--data-dir` that every step opens and closes (as separate CLI processes
 * would), and in remote mode against a revkv server and a second fresh
 * etcd.
 */
async function compareScenario(steps: Step[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "revkv_cli_diff_" });
  const store = await open();
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const etcd: EtcdOracle = await startEtcd();
    stops.push(etcd.stop);
    const remote: EtcdOracle = await startEtcd();
    stops.push(remote.stop);
    const serve = await startServe(`${dir}/serve`);
    stops.push(serve.stop);
    // A running etcd is an existing (empty) store: create the data dir's
    // store first, as only a write would (reads refuse a missing store).
    await (await open(`${dir}/data`)).close();
    const theirs = new Side(
      (args, stdin) => etcd.ctl(args, stdin),
      etcd.endpoint,
      `${dir}/etcd.snap`,
    );
    const ourSide = (
      extra: string[],
      endpoint: string,
      file: string,
      withStore?: Store,
    ) =>
      new Side(
        async (args, stdin) => {
          const stdout = collector();
          const stderr = collector();
          const code = await runCli([...extra, ...args], {
            stdout,
            stderr,
            stdin: stdinStream(stdin),
            store: withStore,
          });
          return {
            code,
            stdout: dropRevkvLines(args, stdout.text().replace(OURS_ONLY, "")),
            stderr: stderr.text(),
          };
        },
        endpoint,
        file,
      );
    const ours: [string, Side][] = [
      ["revkv (memory)", ourSide([], "embedded", `${dir}/mem.snap`, store)],
      [
        "revkv (--data-dir)",
        ourSide([`--data-dir=${dir}/data`], `${dir}/data`, `${dir}/dir.snap`),
      ],
      [
        "revkv (--endpoints, revkv serve)",
        ourSide(
          [`--endpoints=${serve.endpoint}`, ...CLIENT_FLAGS],
          serve.endpoint,
          `${dir}/serve.snap`,
        ),
      ],
      [
        REMOTE,
        ourSide(
          [`--endpoints=${remote.endpoint}`, ...CLIENT_FLAGS],
          remote.endpoint,
          `${dir}/remote.snap`,
        ),
      ],
    ];
    const mismatches: string[] = [];
    for (const step of steps) {
      const a = theirs.normalize(
        await theirs.run(theirs.substitute(step.args), step.stdin),
        step,
      );
      for (const [name, side] of ours) {
        if (step.skipDataDir && name === "revkv (--data-dir)") continue;
        if (step.skipRemote && name === REMOTE) continue;
        if (Deno.env.get("REVKV_DIFF_DEBUG")) {
          console.error(name, step.args.join(" "));
        }
        const b = side.normalize(
          await side.run(side.substitute(step.args), step.stdin),
          step,
        );
        try {
          assertEquals(b, a);
        } catch {
          mismatches.push(
            `$ etcdctl ${step.args.join(" ")}\n--- etcdctl: ${
              JSON.stringify(a, null, 1)
            }\n--- ${name}: ${JSON.stringify(b, null, 1)}`,
          );
        }
      }
    }
    store.check();
    if (mismatches.length > 0) {
      throw new Error(
        `${mismatches.length} of ${
          steps.length * ours.length
        } runs differ:\n\n${mismatches.join("\n\n")}`,
      );
    }
  } finally {
    await store.close();
    for (const stop of stops) await stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The side that runs revkv's CLI with `--endpoints` at a real etcd. */
const REMOTE = "revkv (--endpoints, real etcd)";

const ignore = etcdIgnore("CLI differential tests");
const FORMATS = ["simple", "json", "fields", "table"];
const each = (args: string[]): Step[] =>
  FORMATS.map((w) => ({ args: [...args, "-w", w] }));

Deno.test({
  name: "cli put/get/del print as etcdctl in every format",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compareScenario([
      { args: ["get", "foo"] },
      ...each(["get", "foo"]),
      { args: ["put", "foo", "bar"] },
      ...each(["put", "foo", "baz", "--prev-kv"]),
      { args: ["put", "key12", "v12"] },
      { args: ["put", "key2", "v2"] },
      { args: ["put", "key1", "v1"] },
      { args: ["put", "empty", ""] },
      { args: ["put", "--", "dash", "-value"] },
      { args: ["put", "quoted", 'say "hi"\t\u00e9\u0001'] },
      ...each(["get", "key", "--prefix"]),
      ...each(["get", "quoted"]),
      ...each(["get", "empty"]),
      { args: ["get", "key", "--prefix", "--hex"] },
      { args: ["get", "key", "--prefix", "--keys-only"] },
      { args: ["get", "key", "--prefix", "--keys-only", "-w", "json"] },
      { args: ["get", "key", "--prefix", "--print-value-only"] },
      { args: ["get", "key", "--prefix", "--print-value-only", "-w", "json"] },
      { args: ["get", "key1", "key3"] },
      { args: ["get", "key12", "--from-key"] },
      { args: ["get", "", "--prefix", "--keys-only"] },
      { args: ["get", "", "--from-key", "-w", "json"] },
      { args: ["get", "key", "--prefix", "--limit", "2", "-w", "json"] },
      { args: ["get", "key", "--prefix", "--limit=2", "-w", "fields"] },
      { args: ["get", "key", "--prefix", "--order", "DESCEND"] },
      {
        args: ["get", "key", "--prefix", "--order=descend", "--sort-by=value"],
      },
      { args: ["get", "key", "--prefix", "--sort-by", "CREATE", "-w", "json"] },
      {
        args: [
          "get",
          "key",
          "--prefix",
          "--sort-by=modify",
          "--order=DESCEND",
          "--limit=1",
          "-w",
          "json",
        ],
      },
      {
        args: ["get", "key", "--prefix", "--sort-by=version", "--order=ASCEND"],
      },
      {
        args: [
          "get",
          "key",
          "--prefix",
          "--sort-by=key",
          "--order=ascend",
          "-w",
          "json",
        ],
      },
      { args: ["get", "foo", "--rev=2"] },
      { args: ["get", "foo", "--rev", "3", "-w", "json"] },
      { args: ["get", "foo", "--rev=-1"] },
      { args: ["get", "foo", "--rev=100"] },
      { args: ["get", "foo", "--consistency=s"] },
      { args: ["-w", "json", "get", "foo"] },
      { args: ["--write-out=fields", "get", "foo"] },
      { args: ["get", "-wjson", "foo"] },
      { args: ["ge", "foo"] },
      { args: ["put", "foo", "qux", "--prev-kv", "--hex"] },
      ...each(["del", "nothing"]),
      { args: ["del", "key1", "--prev-kv"] },
      { args: ["del", "key", "--prefix", "--prev-kv", "-w", "json"] },
      { args: ["put", "a", "1"] },
      { args: ["put", "b", "2"] },
      { args: ["put", "c", "3"] },
      { args: ["del", "a", "c", "-w", "fields"] },
      { args: ["del", "b", "--from-key", "--prev-kv"] },
      { args: ["del", "", "--prefix", "-w", "json"] },
      { args: ["get", "", "--prefix"] },
      { args: ["put", "fromstdin"], stdin: "line1\nline2 \u00e9\n" },
      { args: ["get", "fromstdin", "-w", "json"] },
      { args: ["get", "fromstdin", "--hex", "-w", "fields"] },
      { args: ["del", "fromstdin", "--prev-kv", "--hex"] },
      { args: ["put", "k", "v", "--lease=0", "-w", "json"] },
      { args: ["get", "k", "--keys-only", "--hex", "-w", "json"] },
      { args: ["put", "foo", "x", "-w", "table"] },
      { args: ["get", "foo"] },
    ]);
  },
});

Deno.test({
  name: "cli argument and flag errors match etcdctl's messages and exit codes",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compareScenario([
      { args: ["put", "k", "v"] },
      { args: ["put"] },
      { args: ["put", "k"] },
      { args: ["put", "k", "v", "--ignore-value"] },
      { args: ["put", "k", "--ignore-value", "--prev-kv"] },
      { args: ["put", "nokey", "--ignore-value"] },
      { args: ["put", "k", "v", "--ignore-lease"] },
      { args: ["put", "k", "v", "--lease=zz"] },
      { args: ["put", "k", "v", "--lease=123"] },
      { args: ["get"] },
      { args: ["get", "k", "--prefix", "--from-key"] },
      { args: ["get", "k", "z", "--prefix"] },
      { args: ["get", "k", "--consistency=x"] },
      { args: ["get", "k", "--order=x"] },
      { args: ["get", "k", "--sort-by=x"] },
      { args: ["get", "k", "--rev=abc"] },
      { args: ["get", "k", "--limit"] },
      { args: ["get", "k", "--bogus"] },
      { args: ["get", "k", "-x"] },
      { args: ["get", "k", "--print-value-only", "-w", "json"] },
      { args: ["get", "k", "-w", "bogus"] },
      { args: ["get", ""] },
      { args: ["get", "k", "--dial-timeout=abc"] },
      { args: ["del"] },
      { args: ["del", "a", "b", "c"] },
      { args: ["del", "a", "--prefix", "--from-key"] },
      { args: ["del", "a", "b", "--prefix"] },
      { args: ["bogus"] },
      { args: ["gte", "foo"] },
      { args: ["compaction"] },
      { args: ["compaction", "abc"] },
      { args: ["compaction", "100"] },
      { args: ["put", "k", "v2"] },
      { args: ["put", "k", "v3"] },
      { args: ["compaction", "3"] },
      { args: ["compaction", "3"] },
      { args: ["compaction", "2"] },
      // In memory only: on a durable store `compact(rev, { physical: true })`
      // never resolves yet (store bug reported; the CLI gives up after
      // --command-timeout with "context deadline exceeded").
      { args: ["compaction", "4", "--physical"], skipDataDir: true },
      { args: ["get", "k", "--rev=2"] },
      { args: ["get", "k", "--rev=4", "-w", "json"] },
      { args: ["get", "k", "-w", "json"] },
      { args: ["version"] },
      { args: ["get", "-h"] },
      { args: ["put", "--help"] },
      { args: ["help", "del"] },
      { args: ["lease"] },
      { args: ["lease", "grant", "-h"] },
      { args: ["txn", "-h"] },
      { args: ["watch", "-h"] },
      { args: ["compaction", "-h"] },
      { args: ["lease", "timetolive", "--help"] },
    ]);
  },
});

const TXN_BASIC =
  'value("foo") = "bar"\n\nput a 1\nget c\ndel c --prev-kv\n\nget foo\nput foo 1 --prev-kv\n\n';

Deno.test({
  name: "cli txn reads etcdctl's grammar and prints its responses",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compareScenario([
      { args: ["put", "c", "3"] },
      { args: ["txn"], stdin: TXN_BASIC },
      { args: ["txn", "-w", "json"], stdin: TXN_BASIC },
      { args: ["txn", "-w", "fields"], stdin: TXN_BASIC },
      { args: ["put", "foo", "bar"] },
      { args: ["put", "c", "3"] },
      { args: ["txn", "-w", "json"], stdin: TXN_BASIC },
      { args: ["put", "c", "3"] },
      { args: ["txn", "-w", "fields"], stdin: TXN_BASIC },
      {
        args: ["txn", "-i"],
        stdin: 'mod("foo") > "0"\nversion("foo") != "0"\n\nget foo\n\n\n',
      },
      {
        args: ["txn"],
        stdin: 'create("foo") < "1"\n\n\nget foo --keys-only\ndel nothing\n\n',
      },
      {
        args: ["txn"],
        stdin:
          'ver("foo") = "1"\nc("foo") > "1"\nm("foo") < "100"\nval("foo") = "1"\n\nput x "hello world"\nput y \'single quoted\'\n\n\n',
      },
      { args: ["get", "x"] },
      { args: ["get", "y"] },
      { args: ["txn", "-w", "json"], stdin: "\nput t1 v\nput t2 v\n\n\n" },
      { args: ["txn"], stdin: "\n\n\n" },
      { args: ["txn", "-w", "table"], stdin: "\nput tab 1\n\n\n" },
      { args: ["get", "tab"] },
      // Errors: nothing is written.
      { args: ["txn"], stdin: "qwe xyz\n" },
      { args: ["txn"], stdin: 'version("foo") > "x"\n' },
      { args: ["txn"], stdin: 'value("foo") = bar\n' },
      { args: ["txn"], stdin: 'nope("foo") = "1"\n' },
      { args: ["txn"], stdin: "\nqwe xyz\n" },
      { args: ["txn"], stdin: "\nput onlykey\n" },
      { args: ["txn"], stdin: "\nget\n" },
      { args: ["txn"], stdin: "\nput k v --bogus\n\n\n" },
      { args: ["txn"], stdin: "\nget k --prefix --from-key\n\n\n" },
      { args: ["txn"], stdin: "\nput d 1\ndel d\n\n\n" },
      { args: ["txn"], stdin: "\nput k v\n" },
      { args: ["txn"], stdin: "" },
      { args: ["txn", "extra"], stdin: "\n\n\n" },
      { args: ["get", "", "--prefix", "-w", "json"] },
    ]);
  },
});

const maskTtl = (s: string) =>
  s.replace(/remaining\(\d+s\)/g, "remaining(Ns)")
    .replace(/"ttl":\d+/g, '"ttl":N')
    .replace(/"TTL" : \d+/g, '"TTL" : N');

Deno.test({
  name: "cli lease commands print and take hex IDs as etcdctl",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compareScenario([
      { args: ["lease", "list"] },
      { args: ["lease", "list", "-w", "json"] },
      { args: ["lease", "grant", "1000"] },
      { args: ["lease", "list"] },
      { args: ["lease", "list", "-w", "json"] },
      { args: ["lease", "list", "-w", "fields"] },
      { args: ["lease", "grant", "600", "-w", "json"] },
      { args: ["lease", "grant", "500", "-w", "fields"] },
      { args: ["put", "k1", "v1", "--lease=$L1"] },
      { args: ["put", "k2", "v2", "--lease", "$L1"] },
      { args: ["get", "k1", "-w", "json"] },
      { args: ["get", "k1", "-w", "fields"] },
      {
        args: ["put", "k1", "v1b", "--ignore-lease", "--prev-kv", "-w", "json"],
      },
      { args: ["put", "k1", "--ignore-value", "--lease=$L2", "-w", "json"] },
      { args: ["lease", "timetolive", "$L1"], mask: maskTtl },
      { args: ["lease", "timetolive", "$L1", "--keys"], mask: maskTtl },
      {
        args: ["lease", "timetolive", "$L1", "--keys", "-w", "json"],
        mask: maskTtl,
      },
      {
        args: ["lease", "timetolive", "$L1", "--keys", "-w", "fields"],
        mask: maskTtl,
      },
      { args: ["lease", "keep-alive", "--once", "$L1"] },
      { args: ["lease", "keep-alive", "--once", "$L1", "-w", "json"] },
      { args: ["lease", "keep-alive", "--once", "$L1", "-w", "fields"] },
      { args: ["lease", "revoke", "$L1", "-w", "json"] },
      { args: ["get", "k", "--prefix"] },
      { args: ["lease", "revoke", "$L1"] },
      { args: ["lease", "timetolive", "$L1"] },
      { args: ["lease", "timetolive", "$L1", "-w", "json"] },
      { args: ["lease", "timetolive", "$L1", "--keys", "-w", "fields"] },
      { args: ["lease", "keep-alive", "--once", "$L1"] },
      { args: ["lease", "keep-alive", "$L1"] },
      { args: ["lease", "revoke", "$L2"] },
      { args: ["lease", "revoke", "$L3", "-w", "fields"] },
      { args: ["put", "k3", "v", "--lease=$L1"] },
      { args: ["lease", "grant"] },
      { args: ["lease", "grant", "x"] },
      { args: ["lease", "grant", "1", "-w", "table"] },
      // A TTL below etcd's minimum is raised to 2 s.
      { args: ["lease", "grant", "0"] },
      { args: ["lease", "revoke"] },
      { args: ["lease", "revoke", "zz"] },
      { args: ["lease", "timetolive"] },
      { args: ["lease", "keep-alive", "xyz"] },
      { args: ["lease", "bogus"] },
      { args: ["get", "", "--prefix", "-w", "json"] },
    ]);
  },
});

Deno.test({
  name: "cli edge cases of ranges, compaction and txn match etcdctl",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compareScenario([
      { args: ["put", "a", "1"] },
      { args: ["put", "b", "2"] },
      { args: ["put", "a", "3"] },
      { args: ["del", "b"] },
      { args: ["put", "b", "4"] },
      { args: ["get", "a", "--rev=2", "-w", "json"] },
      { args: ["get", "b", "--rev=4", "-w", "json"] },
      { args: ["get", "b", "a", "-w", "json"] },
      { args: ["get", "a", "a", "-w", "json"] },
      { args: ["del", "b", "a", "-w", "json"] },
      { args: ["get", "a", "--limit=-1", "-w", "json"] },
      {
        args: [
          "get",
          "",
          "--from-key",
          "--sort-by=value",
          "--limit=1",
          "-w",
          "json",
        ],
      },
      {
        args: [
          "get",
          "",
          "--from-key",
          "--sort-by=version",
          "--order=descend",
          "-w",
          "json",
        ],
      },
      { args: ["compaction", "0"] },
      { args: ["compaction", "3"] },
      { args: ["get", "a", "--rev=2"] },
      { args: ["get", "a", "--rev=3", "-w", "json"] },
      { args: ["txn"], stdin: 'mod("a") = "4"\n\nget a --rev=2\n\n\n' },
      {
        args: ["txn", "-w", "json"],
        stdin:
          'create("a") = "2"\nversion("b") = "1"\n\nget a --rev=3\nput c 5\n\n\n',
      },
      { args: ["txn"], stdin: "\nput d 1 --lease=abc\n\n\n" },
      { args: ["txn"], stdin: "\nput nokey --ignore-value\n\n\n" },
      { args: ["txn"], stdin: "\nget a --rev=100\n\n\n" },
      {
        args: ["txn", "-w", "json"],
        stdin: "\ndel a --prev-kv\nget a\nput a 9 --prev-kv\n\n\n",
      },
      { args: ["txn", "-w", "json"], stdin: "\nget a\ndel zz\nget a\n\n\n" },
      { args: ["put", "a", "--ignore-lease", "10", "-w", "json"] },
      { args: ["get", "", "--prefix", "-w", "json"] },
    ]);
  },
});

/** How long a watch may take to print what it is waiting for. */
const WATCH_MS_MAX = 10_000;

async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + WATCH_MS_MAX;
  while (!done() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Where revkv's CLI runs a watch: a store handed in, or global flags. */
interface OurWatchSide {
  /** Flags before the command (`--endpoints=…` for the remote side). */
  flags: string[];
  /** The store handed to `runCli`, if any. */
  store?: Store;
}

/**
 * Runs `etcdctl watch <args>` and `runCli(["watch", ...args])` on each of
 * `sides` while `writes` are applied on each (after `delayMs`), stops each
 * once its output contains `sentinel`, and compares the outputs.
 */
async function compareWatch(
  etcd: EtcdOracle,
  sides: OurWatchSide[],
  args: string[],
  writes: string[][],
  sentinel: string,
  delayMs: number,
): Promise<void> {
  const decoderStream = new TextDecoder();
  const child = new Deno.Command("etcdctl", {
    args: [`--endpoints=${etcd.endpoint}`, "watch", ...args],
    env: { ETCDCTL_API: "3" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let theirs = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      theirs += decoderStream.decode(chunk, { stream: true });
    }
  })();
  try {
    await new Promise((r) => setTimeout(r, delayMs));
    for (const w of writes) await etcd.ctl(w);
    await until(() => theirs.includes(sentinel));
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
  }

  const mask = (s: string) =>
    s.replace(/"(cluster_id|member_id|raft_term)":\d+/g, '"$1":X')
      .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+/g, '"$1" : X');
  for (const side of sides) {
    const controller = new AbortController();
    let ours = "";
    const running = runCli([...side.flags, "watch", ...args], {
      stdout: {
        write: (p) => (ours += decoder.decode(p), p.length),
      },
      stderr: { write: (p) => p.length },
      store: side.store,
      signal: controller.signal,
    });
    await new Promise((r) => setTimeout(r, Math.max(50, delayMs)));
    const sink = { write: (p: Uint8Array) => p.length };
    for (const w of writes) {
      await runCli([...side.flags, ...w], {
        stdout: sink,
        stderr: sink,
        store: side.store,
      });
    }
    await until(() => ours.includes(sentinel));
    controller.abort();
    equal(await running, 0);
    equal(
      mask(ours),
      mask(theirs),
      `watch ${args.join(" ")} (${side.store ? "memory" : side.flags[0]})`,
    );
  }
}

Deno.test({
  name: "cli watch prints history and live events as etcdctl",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const etcd = await startEtcd();
    const remote = await startEtcd();
    const store = await open();
    const sink = { write: (p: Uint8Array) => p.length };
    const sides: OurWatchSide[] = [
      { flags: [], store },
      { flags: [`--endpoints=${remote.endpoint}`, ...CLIENT_FLAGS] },
    ];
    try {
      const history = [
        ["put", "w/a", "1"],
        ["put", "w/b", "2"],
        ["put", "w/a", "3"],
        ["del", "w/b"],
        ["put", "other", "x"],
        ["put", "w/end", "."],
        ["put", "neg", "old"],
      ];
      for (const w of history) {
        await etcd.ctl(w);
        for (const side of sides) {
          await runCli([...side.flags, ...w], {
            stdout: sink,
            stderr: sink,
            store: side.store,
          });
        }
      }
      // History replays: one merged response, as etcd sends it.
      await compareWatch(
        etcd,
        sides,
        ["w/", "--prefix", "--rev=1"],
        [],
        "w/end",
        0,
      );
      await compareWatch(
        etcd,
        sides,
        ["w/", "--prefix", "--rev=2", "--prev-kv", "-w", "json"],
        [],
        "dy9lbmQ=",
        0,
      );
      await compareWatch(
        etcd,
        sides,
        ["w/a", "w/z", "--rev=3", "-w", "fields"],
        [],
        '"w/end"',
        0,
      );
      // Live events: one response per revision.
      await compareWatch(
        etcd,
        sides,
        ["live", "--prev-kv", "-w", "json"],
        [["put", "live", "1"], ["put", "live", "2"], ["del", "live"], [
          "put",
          "live",
          "end",
        ]],
        "ZW5k",
        1_000,
      );
      // A negative start on a store never compacted: no history, from now.
      await compareWatch(
        etcd,
        sides,
        ["neg", "--rev=-1"],
        [["put", "neg", "now"]],
        "now",
        1_000,
      );
      await compareWatch(
        etcd,
        sides,
        ["l", "--prefix", "--hex"],
        [["put", "l1", "x"], ["del", "l1"], ["put", "lz", "end"]],
        "\\x65\\x6e\\x64",
        1_000,
      );
    } finally {
      await store.close();
      await etcd.stop();
      await remote.stop();
    }
  },
});

/** Masks what differs between two stores by nature: hashes, sizes, indexes, durations. */
const maskShape = (s: string) =>
  // `snapshot status` prints its hash as unpadded hex first on the line: a
  // hash below 0x10000000 has fewer than 8 digits.
  s.replace(/^[0-9a-f]{1,16}(?=, )/gm, "H")
    .replace(/\b[0-9a-f]{8,16}\b/g, "H")
    .replace(/\d+(\.\d+)?\s?(ns|µs|ms|s|B|kB|MB)\b/g, "Q")
    .replace(/-?\d+/g, "N");

/**
 * A snapshot saved from a real etcd is etcd's bolt database, which revkv's
 * `snapshot status` does not read (it reads revkv's snapshot format).
 */
const BOLT = "snapshot status reads revkv snapshots, not etcd's bolt files";

Deno.test({
  name: "cli maintenance commands print in etcdctl's shapes",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await compareScenario([
      { args: ["put", "a", "1"] },
      { args: ["put", "b", "2"] },
      { args: ["endpoint", "status"], mask: maskShape },
      { args: ["endpoint", "status", "-w", "json"], mask: maskShape },
      { args: ["endpoint", "status", "-w", "fields"], mask: maskShape },
      { args: ["endpoint", "hashkv"], mask: maskShape },
      { args: ["endpoint", "hashkv", "-w", "json"], mask: maskShape },
      { args: ["endpoint", "hashkv", "-w", "fields"], mask: maskShape },
      { args: ["endpoint", "hashkv", "--rev=100"] },
      { args: ["endpoint", "health"], mask: maskShape },
      { args: ["endpoint", "health", "-w", "json"], mask: maskShape },
      { args: ["endpoint", "health", "-w", "fields"], mask: maskShape },
      { args: ["alarm", "list"] },
      { args: ["alarm", "list", "-w", "json"] },
      { args: ["alarm", "disarm", "-w", "json"] },
      { args: ["alarm", "list", "x"] },
      { args: ["alarm", "list", "-w", "table"] },
      { args: ["defrag"] },
      { args: ["snapshot", "save"] },
      { args: ["snapshot", "save", "$FILE"] },
      {
        args: ["snapshot", "status", "$FILE"],
        mask: maskShape,
        skipRemote: BOLT,
      },
      {
        args: ["snapshot", "status", "$FILE", "-w", "json"],
        mask: maskShape,
        skipRemote: BOLT,
      },
      {
        args: ["snapshot", "status", "$FILE", "-w", "fields"],
        mask: maskShape,
        skipRemote: BOLT,
      },
      { args: ["snapshot", "status", "nope.snap"] },
      { args: ["snapshot", "status"] },
      { args: ["snapshot", "restore"] },
      { args: ["get", "", "--prefix"] },
    ]);
  },
});

/** A loopback port nothing listens on (the OS's pick, closed again). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Runs real etcdctl with exactly `args` and `env` (no endpoint added). */
async function etcdctlRaw(
  args: string[],
  env: Record<string, string> = {},
): Promise<Outcome> {
  const output = await new Deno.Command("etcdctl", {
    args,
    env: { ETCDCTL_API: "3", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test({
  name:
    "cli remote mode: unreachable and several endpoints, ETCDCTL_ENDPOINTS, fail and report as etcdctl",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const etcd = await startEtcd();
    const dir = await Deno.makeTempDir({ prefix: "revkv_cli_remote_" });
    try {
      await etcd.ctl(["put", "k", "v"]);
      const dead = `127.0.0.1:${closedPort()}`;
      const live = etcd.endpoint;
      // etcdctl's dial does not block: it fails at --command-timeout;
      // revkv's client at --dial-timeout. Both print the same.
      const timeouts = ["--dial-timeout=1s", "--command-timeout=1s"];
      const cases: { args: string[]; env?: Record<string, string> }[] = [
        { args: [`--endpoints=${dead}`, "get", "k"] },
        { args: [`--endpoints=${dead}`, "put", "k", "v2"] },
        { args: [`--endpoints=${dead}`, "lease", "grant", "10"] },
        { args: [`--endpoints=${dead}`, "snapshot", "save", `${dir}/x.snap`] },
        { args: [`--endpoints=${dead},${live}`, "endpoint", "status"] },
        { args: [`--endpoints=${dead},${live}`, "endpoint", "hashkv"] },
        {
          args: [
            `--endpoints=${dead},${live}`,
            "endpoint",
            "health",
            "-w",
            "json",
          ],
        },
        { args: [`--endpoints=${live},${dead}`, "defrag"] },
        { args: ["--endpoints=", "get", "k"] },
        { args: ["get", "k", "-w", "json"], env: { ETCDCTL_ENDPOINTS: live } },
        // etcdctl trims the spaces of --endpoints for its client (but not
        // in the names `endpoint status` asks for: not copied).
        { args: ["get", "k"], env: { ETCDCTL_ENDPOINTS: ` ${live}` } },
        {
          args: ["endpoint", "status", "-w", "json"],
          env: { ETCDCTL_ENDPOINTS: live },
        },
        {
          args: ["endpoint", "hashkv", "--cluster", "-w", "json"],
          env: { ETCDCTL_ENDPOINTS: live },
        },
      ];
      const mask = (s: string) =>
        maskShape(
          s.replaceAll(dead, "<dead>").replaceAll(live, "<live>")
            .replaceAll(dir, "<dir>")
            .split("\n").filter((l) => !l.startsWith('{"level":')).join("\n"),
        );
      const mismatches: string[] = [];
      for (const c of cases) {
        const args = [...timeouts, ...c.args];
        const theirs = await etcdctlRaw(args, c.env);
        const stdout = collector();
        const stderr = collector();
        const code = await runCli(args, { stdout, stderr, env: c.env });
        const a = {
          code: theirs.code,
          out: mask(theirs.stdout),
          err: mask(theirs.stderr),
        };
        const b = { code, out: mask(stdout.text()), err: mask(stderr.text()) };
        try {
          assertEquals(b, a);
        } catch {
          mismatches.push(
            `$ ${JSON.stringify(c)}\n--- etcdctl: ${
              JSON.stringify(a)
            }\n--- revkv: ${JSON.stringify(b)}`,
          );
        }
      }
      if (mismatches.length > 0) {
        throw new Error(
          `${mismatches.length} differ:\n\n${mismatches.join("\n\n")}`,
        );
      }
    } finally {
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cli remote mode against a full etcd (NOSPACE): refused puts, alarm list, status and disarm as etcdctl",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Two etcds with the same small quota, filled alike: one for etcdctl,
    // one for revkv's CLI.
    const quota = ["--quota-backend-bytes=200000"];
    const etcds: EtcdOracle[] = [];
    try {
      etcds.push(await startEtcd({ args: quota }));
      etcds.push(await startEtcd({ args: quota }));
      const [theirs, ours] = etcds as [EtcdOracle, EtcdOracle];
      const big = "x".repeat(50_000);
      const sides = [
        new Side(
          (args, stdin) => theirs.ctl(args, stdin),
          theirs.endpoint,
          "-",
        ),
        new Side(
          async (args, stdin) => {
            const stdout = collector();
            const stderr = collector();
            const code = await runCli(
              [`--endpoints=${ours.endpoint}`, ...CLIENT_FLAGS, ...args],
              { stdout, stderr, stdin: stdinStream(stdin) },
            );
            return { code, stdout: stdout.text(), stderr: stderr.text() };
          },
          ours.endpoint,
          "-",
        ),
      ] as const;
      const mask = (s: string) =>
        s.replace(/memberID:\d+/g, "memberID:X")
          .replace(/"memberID":\d+/g, '"memberID":X');
      // Where the quota is hit depends on the backend's page growth, and
      // etcd measures its size only after a backend commit (every 100 ms):
      // fill each side until its put is refused (bounded: 60 puts, a pause
      // after each so that the size catches up), then compare.
      for (const side of sides) {
        let refused: Outcome | undefined;
        for (let i = 0; i < 60 && refused === undefined; i++) {
          const out = await side.run(["put", `big${i}`, big]);
          if (out.code !== 0) refused = side.normalize(out, { args: [] });
          else await new Promise((resolve) => setTimeout(resolve, 150));
        }
        assertEquals(refused, {
          code: 1,
          stdout: "",
          stderr: "Error: etcdserver: mvcc: database space exceeded\n",
        });
      }
      const steps: Step[] = [
        { args: ["put", "small", "v"] },
        { args: ["alarm", "list"], mask },
        { args: ["alarm", "list", "-w", "json"], mask },
        { args: ["endpoint", "status"], mask: (s) => maskShape(mask(s)) },
        {
          args: ["endpoint", "status", "-w", "json"],
          mask: (s) => maskShape(mask(s)),
        },
        { args: ["endpoint", "health"], mask: maskShape },
        { args: ["get", "small"] },
        { args: ["del", "big0"] },
        { args: ["alarm", "disarm"], mask },
        { args: ["alarm", "list"] },
      ];
      const mismatches: string[] = [];
      for (const step of steps) {
        const [a, b] = await Promise.all(
          sides.map(async (side) =>
            side.normalize(await side.run(step.args, step.stdin), step)
          ),
        );
        try {
          assertEquals(b, a);
        } catch {
          mismatches.push(
            `$ etcdctl ${step.args.join(" ").slice(0, 60)}\n--- etcdctl: ${
              JSON.stringify(a)
            }\n--- revkv: ${JSON.stringify(b)}`,
          );
        }
      }
      if (mismatches.length > 0) {
        throw new Error(
          `${mismatches.length} differ:\n\n${mismatches.join("\n\n")}`,
        );
      }
    } finally {
      for (const e of etcds) await e.stop();
    }
  },
});
