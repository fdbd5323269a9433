/**
 * Watch benchmarks: event delivery throughput to one watcher (live and
 * catching up), and the cost of a publish as watchers on other keys grow
 * (it should stay flat).
 *
 * When etcd and etcdctl are installed, the module also measures, once, the
 * same event throughput against a real etcd (puts through its JSON gateway,
 * events read by `etcdctl watch`) and prints the ratio.
 *
 * Run: `deno bench -A bench/watch_bench.ts`
 */

import { MvccStore } from "../src/mvcc/kv_store.ts";
import type { Change } from "../src/mvcc/kv_store.ts";
import type { RevisionEntry } from "../src/mvcc/key_index.ts";
import { prefixEnd } from "../src/mvcc/key_bounds.ts";
import {
  MvccWatchSource,
  WatchHub,
  type WatchResponse,
  type WatchSource,
} from "../src/watch/watch_hub.ts";
import { etcdAvailable, startEtcd } from "../tests/etcd_oracle.ts";
import { open } from "../mod.ts";
import { sized } from "./bench_mode.ts";

const encoder = new TextEncoder();
const enc = (text: string) => encoder.encode(text);
const EVENTS_PER_ITERATION = 1000;

/** Revisions between compactions, so that history stays bounded. */
const COMPACT_EVERY_REVISIONS = 20_000;

/** Engine + hub, writing as the store will. */
function setup() {
  const mvcc = new MvccStore();
  const hub = new WatchHub(new MvccWatchSource(mvcc));
  const value = enc("v".repeat(32));
  const put = (key: Uint8Array) => {
    const txn = mvcc.beginWrite();
    txn.put(key, value, 0n);
    const revision = txn.commit();
    hub.publish(revision, txn.changes);
    // Keep the last half of the history (watchers here are never that far
    // behind), as a store with auto-compaction would.
    if (revision % COMPACT_EVERY_REVISIONS === 0) {
      mvcc.compact(revision - COMPACT_EVERY_REVISIONS / 2);
      mvcc.compactAll();
    }
  };
  return { mvcc, hub, put };
}

/** Counts events from `watch` until `count` arrived. */
async function consume(
  watch: AsyncIterableIterator<WatchResponse>,
  count: number,
): Promise<void> {
  let seen = 0;
  while (seen < count) {
    const { value, done } = await watch.next();
    if (done) throw new Error("watch ended");
    seen += value.events.length;
  }
}

{
  const { hub, put } = setup();
  const key = enc("bench/key");
  const watch = hub.watch({ start: key, end: undefined });
  Deno.bench({
    name: "1 watcher, live: put + deliver, 1000 events (consumer keeps up)",
    group: "delivery",
    baseline: true,
    async fn() {
      const done = consume(watch, EVENTS_PER_ITERATION);
      for (let i = 0; i < EVENTS_PER_ITERATION; i++) {
        put(key);
        await Promise.resolve();
      }
      await done;
    },
  });
}

{
  const { hub, put } = setup();
  const key = enc("bench/key");
  const watch = hub.watch({ start: key, end: undefined });
  Deno.bench({
    name:
      "1 watcher, burst: 1000 puts, then deliver (queue overflows, catch-up from history)",
    group: "delivery",
    async fn() {
      for (let i = 0; i < EVENTS_PER_ITERATION; i++) put(key);
      await consume(watch, EVENTS_PER_ITERATION);
    },
  });
}

{
  const { put } = setup();
  const key = enc("bench/key");
  Deno.bench({
    name: "no watcher: 1000 puts (the engine's share of the above)",
    group: "delivery",
    fn() {
      for (let i = 0; i < EVENTS_PER_ITERATION; i++) put(key);
    },
  });
}

/** A source that is never read (only live publishes are benchmarked). */
function fixedSource(): WatchSource {
  return {
    committedRevision: () => 1,
    compactRevision: () => -1,
    readHistory: () => {
      throw new Error("not used");
    },
  };
}

function change(key: string, main: number): Change {
  const entry: RevisionEntry = {
    main,
    sub: 0,
    createRevision: 2,
    version: main,
    value: enc("v"),
    lease: 0n,
  };
  return { key: enc(key), entry, prev: undefined };
}

for (const watchers of [10, 10_000]) {
  for (const shape of ["keys", "prefixes"] as const) {
    const hub = new WatchHub(fixedSource());
    for (let i = 0; i < watchers; i++) {
      const start = enc(`other/${i}${shape === "prefixes" ? "/" : ""}`);
      hub.watch({
        start,
        end: shape === "prefixes" ? prefixEnd(start) : undefined,
      });
    }
    let revision = 1;
    const target = change("target/key", 2);
    Deno.bench({
      name: `publish, ${watchers} ${shape} watchers on other keys`,
      group: `fan-out (${shape})`,
      baseline: watchers === 10,
      fn() {
        hub.publish(++revision, [target]);
      },
    });
  }
}

{
  // The matching side: one write delivered to 10,000 prefix watchers, each
  // pulling its response (a copy of the event each).
  const hub = new WatchHub(fixedSource());
  const watches: AsyncIterableIterator<WatchResponse>[] = [];
  for (let i = 0; i < 10_000; i++) {
    watches.push(
      hub.watch({ start: enc("shared/"), end: prefixEnd(enc("shared/")) }),
    );
  }
  let revision = 1;
  const target = change("shared/key", 2);
  Deno.bench({
    name: "publish + 10000 matching watchers each pull the event",
    group: "fan-out (matching)",
    async fn() {
      hub.publish(++revision, [target]);
      await Promise.all(watches.map((watch) => watch.next()));
    },
  });
}

// --- against real etcd (once, when installed) --------------------------------

/** Events for the one-shot throughput comparison with etcd. */
const ETCD_EVENTS = sized(5000, 200);
/** Puts in flight against etcd's gateway. */
const ETCD_PUT_CONCURRENCY = 32;

async function etcdThroughput(): Promise<number> {
  const etcd = await startEtcd();
  try {
    const child = new Deno.Command("etcdctl", {
      args: [`--endpoints=${etcd.endpoint}`, "watch", "--prefix", "bench/"],
      env: { ETCDCTL_API: "3" },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let seen = 0;
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => resolveDone = resolve);
    const reading = (async () => {
      let buffer = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          if (buffer.slice(0, newline) === "PUT") seen++;
          buffer = buffer.slice(newline + 1);
        }
        if (seen >= ETCD_EVENTS) resolveDone();
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const value = btoa("v".repeat(32));
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: ETCD_PUT_CONCURRENCY }, async () => {
        while (next < ETCD_EVENTS) {
          const i = next++;
          await etcd.gateway("/v3/kv/put", {
            key: btoa(`bench/${i % 100}`),
            value,
          });
        }
      }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      done,
      new Promise((resolve) => timer = setTimeout(resolve, 30_000)),
    ]);
    clearTimeout(timer);
    const ms = performance.now() - started;
    child.kill("SIGKILL");
    await reading.catch(() => {});
    await child.status;
    if (seen < ETCD_EVENTS) throw new Error(`etcd delivered ${seen} events`);
    return ETCD_EVENTS / (ms / 1000);
  } finally {
    await etcd.stop();
  }
}

async function revkvThroughput(): Promise<number> {
  const { hub, put } = setup();
  const watch = hub.watch({
    start: enc("bench/"),
    end: prefixEnd(enc("bench/")),
  });
  const started = performance.now();
  const done = consume(watch, ETCD_EVENTS);
  for (let i = 0; i < ETCD_EVENTS; i++) {
    put(enc(`bench/${i % 100}`));
    await Promise.resolve();
  }
  await done;
  const ms = performance.now() - started;
  hub.close();
  return ETCD_EVENTS / (ms / 1000);
}

/**
 * The same through a durable Store (fsync on), with as many puts in flight
 * as etcd gets: what a user of `open(dir)` + `db.watch` sees.
 */
async function revkvDurableThroughput(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "revkv-watch-bench-" });
  const db = await open(dir);
  try {
    const controller = new AbortController();
    let seen = 0;
    const started = performance.now();
    const done = (async () => {
      for await (
        const res of db.watch("bench/", {
          prefix: true,
          signal: controller.signal,
        })
      ) {
        seen += res.events.length;
        if (seen >= ETCD_EVENTS) break;
      }
    })();
    let next = 0;
    const worker = async () => {
      while (next < ETCD_EVENTS) {
        const i = next++;
        await db.put(`bench/${i % 100}`, "v".repeat(32));
      }
    };
    await Promise.all(
      Array.from({ length: ETCD_PUT_CONCURRENCY }, worker),
    );
    await done;
    controller.abort();
    return ETCD_EVENTS / ((performance.now() - started) / 1000);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (etcdAvailable() && Deno.env.get("WATCH_BENCH_ETCD") !== "0") {
  const ours = await revkvThroughput();
  const durable = await revkvDurableThroughput();
  const theirs = await etcdThroughput();
  console.log(
    `watch event throughput, ${ETCD_EVENTS} puts on 100 keys under a prefix, 1 watcher:\n` +
      `  revkv (engine + hub, in process): ${Math.round(ours)} events/s\n` +
      `  revkv durable store (fsync, puts x${ETCD_PUT_CONCURRENCY}, db.watch): ${
        Math.round(durable)
      } events/s\n` +
      `  etcd 3.4 (gateway puts x${ETCD_PUT_CONCURRENCY}, etcdctl watch): ${
        Math.round(theirs)
      } events/s\n` +
      `  ratios: ${(ours / theirs).toFixed(1)}x in process, ${
        (durable / theirs).toFixed(1)
      }x durable`,
  );
}
