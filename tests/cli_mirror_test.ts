/**
 * `make-mirror` against real etcd: a revkv store mirrored into an etcd
 * while writes go on ends with the same keys and values there (renamed to
 * `--dest-prefix`); and from an etcd source, revkv's mirror and etcdctl's
 * mirror of the same writes end with the same destination contents and
 * fail alike on bad arguments.
 *
 * The writes are random (seed printed, `REVKV_SEED` replays them): puts,
 * deletes, multi-op transactions (several events in one revision) and
 * keys outside the prefix, which must not be copied.
 */

import { deepStrictEqual, equal } from "node:assert/strict";
import { connect, type KvStore, op, open } from "../mod.ts";
import { runCli } from "../src/cli/main.ts";
import { etcdIgnore, type EtcdOracle, startEtcd } from "./etcd_oracle.ts";
import { Random, seedFromEnv } from "./_prng.ts";

/** How long a mirror may take to catch up with the source. */
const CATCH_UP_MS_MAX = 20_000;
/** Writes made while the mirror runs. */
const WRITES = 300;
/** Distinct key names the writes use (so that keys are overwritten and deleted). */
const KEY_NAMES = 40;

const ignore = etcdIgnore("make-mirror tests");
const sink = { write: (p: Uint8Array) => p.length };
const decoder = new TextDecoder();

/** Every key under `prefix` with its value, the prefix cut off. */
async function contents(
  db: KvStore,
  prefix: string,
): Promise<Map<string, string>> {
  const { kvs } = prefix === ""
    ? await db.get("\0", { fromKey: true })
    : await db.get(prefix, { prefix: true });
  return new Map(
    kvs.map((kv) => [kv.keyText.slice(prefix.length), kv.valueText]),
  );
}

/** Waits (bounded) until `db` has `key`. */
async function waitForKey(db: KvStore, key: string): Promise<void> {
  const deadline = Date.now() + CATCH_UP_MS_MAX;
  while (Date.now() < deadline) {
    if ((await db.get(key)).count > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${key} did not arrive within ${CATCH_UP_MS_MAX} ms`);
}

/** One random write under `prefix` (or, sometimes, outside it). */
async function randomWrite(
  db: KvStore,
  random: Random,
  prefix: string,
  i: number,
): Promise<void> {
  const key = () => `${prefix}k${random.int(KEY_NAMES)}`;
  const roll = random.int(10);
  if (roll < 5) await db.put(key(), `v${i}`);
  else if (roll < 7) await db.delete(key());
  else if (roll < 9) {
    // Several events in one revision: the mirror replays them as one txn
    // (on distinct keys: etcd refuses a txn that writes a key twice).
    const keys = new Set<string>();
    for (let n = 1 + random.int(3); n > 0; n--) keys.add(key());
    const ops = [...keys].map((k) =>
      random.chance(0.7) ? op.put(k, `t${i}`) : op.delete(k)
    );
    await db.txn({ compare: [], success: ops, failure: [] });
  } else await db.put(`outside/${random.int(KEY_NAMES)}`, `o${i}`);
}

Deno.test({
  name:
    "make-mirror copies a revkv store into a real etcd and follows it while writes go on",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const random = new Random(seedFromEnv("make-mirror revkv → etcd"));
    const etcd = await startEtcd();
    const source = await open();
    const dest = await connect({ endpoints: [etcd.endpoint] });
    const controller = new AbortController();
    try {
      for (let i = 0; i < 100; i++) {
        await randomWrite(source, random, "src/", i);
      }
      await source.put("src/~start", ".");
      await dest.put("unrelated", "stays");
      let out = "";
      let err = "";
      const running = runCli(
        ["make-mirror", "--prefix=src/", "--dest-prefix=dst/", etcd.endpoint],
        {
          stdout: { write: (p) => (out += decoder.decode(p), p.length) },
          stderr: { write: (p) => (err += decoder.decode(p), p.length) },
          store: source,
          signal: controller.signal,
        },
      );
      // The copy is done once its last key arrived; then the writes go
      // through the mirror's watch.
      await waitForKey(dest, "dst/~start");
      for (let i = 100; i < 100 + WRITES; i++) {
        await randomWrite(source, random, "src/", i);
      }
      await source.put("src/~end", ".");
      await waitForKey(dest, "dst/~end");
      controller.abort();
      equal(await running, 0, `stderr: ${err}`);
      equal(out, "", "nothing printed before the first 30 s report");

      const want = await contents(source, "src/");
      deepStrictEqual(await contents(dest, "dst/"), want);
      // Nothing outside the prefix was copied, nothing else was touched.
      const all = await dest.get("", { fromKey: true, keysOnly: true });
      equal(all.count, want.size + 1);
      equal((await dest.get("unrelated")).kvs[0]?.valueText, "stays");
    } finally {
      controller.abort();
      await dest.close();
      await source.close();
      await etcd.stop();
    }
  },
});

/** Runs etcdctl with `args` until `signal` aborts; resolves to its exit code. */
function etcdctlUntil(
  args: string[],
  signal: AbortSignal,
): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command("etcdctl", {
    args,
    env: { ETCDCTL_API: "3" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  };
  signal.addEventListener("abort", kill, { once: true });
  return child.output().then((o) => {
    signal.removeEventListener("abort", kill);
    return { code: o.code, stderr: decoder.decode(o.stderr) };
  });
}

Deno.test({
  name:
    "make-mirror from an etcd source ends with what etcdctl's make-mirror makes, and fails alike",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const random = new Random(seedFromEnv("make-mirror etcd → etcd"));
    const etcds: EtcdOracle[] = [];
    const clients: KvStore[] = [];
    const controller = new AbortController();
    try {
      for (let i = 0; i < 3; i++) etcds.push(await startEtcd());
      const [sourceEtcd, theirEtcd, ourEtcd] = etcds as [
        EtcdOracle,
        EtcdOracle,
        EtcdOracle,
      ];
      for (const e of etcds) {
        clients.push(await connect({ endpoints: [e.endpoint] }));
      }
      const [source, theirDest, ourDest] = clients as [
        KvStore,
        KvStore,
        KvStore,
      ];

      // Bad arguments first: same words, same exit code.
      const errors = [
        ["make-mirror"],
        ["make-mirror", "a", "b"],
        [
          "make-mirror",
          "--dest-prefix=x",
          "--no-dest-prefix",
          ourEtcd.endpoint,
        ],
      ];
      for (const args of errors) {
        const full = [`--endpoints=${sourceEtcd.endpoint}`, ...args];
        const theirs = await etcdctlUntil(full, AbortSignal.timeout(10_000));
        let err = "";
        const code = await runCli(full, {
          stdout: sink,
          stderr: { write: (p) => (err += decoder.decode(p), p.length) },
        });
        equal(code, theirs.code, args.join(" "));
        equal(err, theirs.stderr, args.join(" "));
      }

      for (let i = 0; i < 100; i++) await randomWrite(source, random, "p/", i);
      await source.put("p/~start", ".");
      const mirrorArgs = ["make-mirror", "--prefix=p/", "--no-dest-prefix"];
      const theirs = etcdctlUntil(
        [
          `--endpoints=${sourceEtcd.endpoint}`,
          ...mirrorArgs,
          theirEtcd.endpoint,
        ],
        controller.signal,
      );
      let err = "";
      const ours = runCli(
        [`--endpoints=${sourceEtcd.endpoint}`, ...mirrorArgs, ourEtcd.endpoint],
        {
          stdout: sink,
          stderr: { write: (p) => (err += decoder.decode(p), p.length) },
          signal: controller.signal,
        },
      );
      await waitForKey(theirDest, "~start");
      await waitForKey(ourDest, "~start");
      for (let i = 100; i < 100 + WRITES; i++) {
        await randomWrite(source, random, "p/", i);
      }
      await source.put("p/~end", ".");
      await waitForKey(theirDest, "~end");
      await waitForKey(ourDest, "~end");
      controller.abort();
      equal(await ours, 0, `stderr: ${err}`);
      await theirs;

      const want = await contents(source, "p/");
      deepStrictEqual(await contents(theirDest, ""), want, "etcdctl's mirror");
      deepStrictEqual(await contents(ourDest, ""), want, "revkv's mirror");
    } finally {
      controller.abort();
      for (const c of clients) await c.close();
      for (const e of etcds) await e.stop();
    }
  },
});
