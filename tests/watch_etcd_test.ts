/**
 * Differential tests of watch against real etcd 3.4: the same writes go to
 * etcd (through etcdctl) and to an engine + watch hub, and the responses of
 * `etcdctl watch -w json` are compared with the hub's, response by response
 * (header revision and every event field, prev_kv included).
 *
 * Every wait is bounded; the etcdctl watch process is killed by its PID.
 */

import assert from "node:assert/strict";
import { MvccStore } from "../src/mvcc/kv_store.ts";
import type { KeyBounds, WriteTxn } from "../src/mvcc/kv_store.ts";
import { prefixEnd } from "../src/mvcc/key_bounds.ts";
import {
  MvccWatchSource,
  WatchHub,
  type WatchOptions,
  type WatchResponse,
} from "../src/watch/watch_hub.ts";
import { etcdIgnore, type EtcdOracle, startEtcd } from "./etcd_oracle.ts";

/** How long to wait for one etcdctl watch line. */
const LINE_MS_MAX = 10_000;

const encoder = new TextEncoder();
const enc = (text: string) => encoder.encode(text);

/** One write, as etcdctl arguments and as engine operations. */
interface Write {
  ctl: string[];
  stdin?: string;
  apply: (txn: WriteTxn) => void;
}

const put = (key: string, value: string): Write => ({
  ctl: ["put", key, value],
  apply: (txn) => txn.put(enc(key), enc(value), 0n),
});
const delPrefix = (prefix: string): Write => ({
  ctl: ["del", prefix, "--prefix"],
  apply: (txn) =>
    txn.deleteRange({ start: enc(prefix), end: prefixEnd(enc(prefix)) }),
});
const del = (key: string): Write => ({
  ctl: ["del", key],
  apply: (txn) => txn.deleteRange({ start: enc(key), end: undefined }),
});
/** A txn without compares whose success branch runs `ops` ("put k v" / "del k"). */
const txn = (...ops: string[]): Write => ({
  ctl: ["txn", "-i"],
  stdin: `\n${ops.join("\n")}\n\n\n`,
  apply: (t) => {
    for (const op of ops) {
      const [verb, key, value] = op.split(" ");
      if (verb === "put") t.put(enc(key!), enc(value!), 0n);
      else t.deleteRange({ start: enc(key!), end: undefined });
    }
  },
});

/** A comparable event: etcd's JSON fields, decoded. */
interface Plain {
  type: string;
  kv: Record<string, string | number>;
  prev?: Record<string, string | number>;
}

function plainKv(kv: {
  key: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Uint8Array;
  lease: bigint;
}): Record<string, string | number> {
  return {
    key: new TextDecoder().decode(kv.key),
    create: kv.createRevision,
    mod: kv.modRevision,
    version: kv.version,
    value: new TextDecoder().decode(kv.value),
    lease: Number(kv.lease),
  };
}

function fromHub(response: WatchResponse) {
  return {
    revision: response.header.revision,
    compactRevision: response.compactRevision,
    canceled: response.canceled,
    events: response.events.map((e): Plain => {
      const plain: Plain = { type: e.type, kv: plainKv(e.kv) };
      if (e.prevKv) plain.prev = plainKv(e.prevKv);
      return plain;
    }),
  };
}

type JsonKv = Record<string, string | number | undefined>;

function fromEtcdKv(kv: JsonKv): Record<string, string | number> {
  const text = (b64: string | number | undefined) =>
    b64 === undefined ? "" : new TextDecoder().decode(
      Uint8Array.from(atob(String(b64)), (c) => c.charCodeAt(0)),
    );
  return {
    key: text(kv.key),
    create: Number(kv.create_revision ?? 0),
    mod: Number(kv.mod_revision ?? 0),
    version: Number(kv.version ?? 0),
    value: text(kv.value),
    lease: Number(kv.lease ?? 0),
  };
}

function fromEtcd(line: string) {
  const json = JSON.parse(line) as {
    Header: { revision?: number };
    Events: { type?: number; kv: JsonKv; prev_kv?: JsonKv }[] | null;
    CompactRevision: number;
    Canceled: boolean;
  };
  return {
    revision: json.Header.revision ?? 0,
    compactRevision: json.CompactRevision,
    canceled: json.Canceled,
    events: (json.Events ?? []).map((e): Plain => {
      const plain: Plain = {
        type: e.type === 1 ? "delete" : "put",
        kv: fromEtcdKv(e.kv),
      };
      if (e.prev_kv) plain.prev = fromEtcdKv(e.prev_kv);
      return plain;
    }),
  };
}

/** A running `etcdctl watch -w json`, read line by line. */
class CtlWatch {
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(etcd: EtcdOracle, args: string[]) {
    this.#child = new Deno.Command("etcdctl", {
      args: [`--endpoints=${etcd.endpoint}`, "watch", "-w", "json", ...args],
      env: { ETCDCTL_API: "3" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
  }

  /** The next line of output (one response). */
  async line(): Promise<string> {
    const deadline = Date.now() + LINE_MS_MAX;
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        if (line.trim() !== "") return line;
        continue;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        this.#reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("etcdctl watch printed nothing in time")),
            Math.max(1, deadline - Date.now()),
          );
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error("etcdctl watch exited");
      this.#buffer += chunk.value;
    }
  }

  /** Kills etcdctl by its PID and waits for it. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#reader.cancel().catch(() => {});
    await this.#child.status;
  }
}

/** The engine + hub side of a scenario. */
class Local {
  readonly mvcc = new MvccStore();
  readonly hub = new WatchHub(new MvccWatchSource(this.mvcc));

  apply(write: Write): void {
    const t = this.mvcc.beginWrite();
    write.apply(t);
    const revision = t.commit();
    if (t.changes.length > 0) this.hub.publish(revision, t.changes);
  }
}

async function applyBoth(etcd: EtcdOracle, local: Local, writes: Write[]) {
  for (const write of writes) {
    const result = await etcd.ctl(write.ctl, write.stdin);
    assert.equal(
      result.code,
      0,
      `etcdctl ${write.ctl.join(" ")}: ${result.stderr}`,
    );
    local.apply(write);
  }
}

async function pullLocal(
  watch: AsyncIterableIterator<WatchResponse>,
): Promise<WatchResponse> {
  const result = await watch.next();
  assert.equal(result.done, false);
  return result.value;
}

/** Compares the next response of both sides (WATCH_DEBUG=1 prints etcd's). */
async function expectSame(
  watch: AsyncIterableIterator<WatchResponse>,
  remote: CtlWatch,
): Promise<void> {
  const line = await remote.line();
  if (Deno.env.get("WATCH_DEBUG")) console.log(line);
  assert.deepEqual(fromHub(await pullLocal(watch)), fromEtcd(line));
}

/**
 * Runs writes on both sides, opens the same watch on both, compares the
 * first `initial` responses, runs `live` writes, compares `liveCount` more.
 */
async function compareWatch(
  etcd: EtcdOracle,
  local: Local,
  ctlArgs: string[],
  bounds: KeyBounds,
  options: WatchOptions,
  initial: number,
  live: Write[],
  liveCount: number,
): Promise<void> {
  const remote = new CtlWatch(etcd, ctlArgs);
  const watch = local.hub.watch(bounds, options);
  try {
    for (let i = 0; i < initial; i++) {
      await expectSame(watch, remote);
    }
    if (live.length > 0) {
      // Let etcd's watcher reach the synced group before live writes, so
      // each live revision is its own response on both sides.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await applyBoth(etcd, local, live);
    }
    for (let i = 0; i < liveCount; i++) {
      await expectSame(watch, remote);
    }
  } finally {
    await remote.stop();
    await watch.return!();
  }
}

Deno.test({
  name:
    "watch responses match etcd's: replay, live, prefix, range, prev_kv, txns and compaction",
  ignore: etcdIgnore("watch differential tests"),
  sanitizeResources: false,
  async fn() {
    const etcd = await startEtcd();
    const local = new Local();
    try {
      await applyBoth(etcd, local, [
        put("k/a", "1"), // 2
        put("k/b", "1"), // 3
        put("x", "1"), // 4
        put("k/a", "2"), // 5
        del("k/b"), // 6
        txn("put k/c 1", "put x 2", "put k/d 1", "del k/a"), // 7
        put("k/c", "2"), // 8
      ]);
      const prefix = { start: enc("k/"), end: prefixEnd(enc("k/")) };
      // Replay from 3 with prev_kv, then live writes.
      await compareWatch(
        etcd,
        local,
        ["--rev", "3", "--prefix", "--prev-kv", "k/"],
        prefix,
        { startRevision: 3, prevKv: true },
        1,
        [
          put("k/e", "1"), // 9
          txn("put k/e 2", "put k/f 1", "put y 1"), // 10
          put("y", "2"), // 11: not watched
          delPrefix("k/"), // 12
          put("k/a", "3"), // 13
        ],
        4,
      );
      // A range [k/b, k/e) from the start, without prev_kv.
      await compareWatch(
        etcd,
        local,
        ["--rev", "1", "k/b", "k/e"],
        { start: enc("k/b"), end: enc("k/e") },
        { startRevision: 1 },
        1,
        [],
        0,
      );
      // A single key, live only.
      await compareWatch(
        etcd,
        local,
        ["--prev-kv", "k/a"],
        { start: enc("k/a"), end: undefined },
        { prevKv: true },
        0,
        [put("k/a", "4"), put("k/b", "x"), del("k/a")], // 14, 15, 16
        2,
      );
      // Compaction: below the point the watch is canceled with the compact
      // revision; at the point it replays what was kept.
      const compacted = await etcd.ctl(["compact", "10"]);
      assert.equal(compacted.code, 0, compacted.stderr);
      local.mvcc.compact(10);
      local.mvcc.compactAll();
      await compareWatch(
        etcd,
        local,
        ["--rev", "9", "--prefix", "k/"],
        prefix,
        { startRevision: 9 },
        1,
        [],
        0,
      );
      await compareWatch(
        etcd,
        local,
        ["--rev", "10", "--prefix", "--prev-kv", "k/"],
        prefix,
        { startRevision: 10, prevKv: true },
        1,
        [],
        0,
      );
    } finally {
      local.hub.close();
      await etcd.stop();
    }
  },
});
