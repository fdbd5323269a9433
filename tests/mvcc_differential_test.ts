/**
 * Differential test of the MVCC key space: the same puts, deletes, ranges and
 * compactions go to a real etcd 3.4 and to the store, and everything a user
 * sees must agree — header revision, every key-value field (key, value,
 * create/mod revision, version, lease), count, more, deleted, prev_kv(s) and
 * error texts.
 *
 * etcd is driven through `etcdctl -w json` where etcdctl can express the
 * request (text keys, its flags), and through the JSON gateway for the rest:
 * binary keys (0x00, 0xff), count-only (etcdctl 3.4 has no --count-only),
 * min/max mod/create revision filters, negative limits and revisions, empty
 * keys. The random part draws its operations from
 * a seeded PRNG; the seed is printed and REVKV_SEED replays it.
 *
 * What is normalized: etcdctl's JSON leaves out zero values (no `count` when
 * 0, no `more` when false, no `value` when empty, no `lease` when 0) and the
 * gateway prints 64-bit numbers as strings; cluster_id, member_id and
 * raft_term are ignored. Ties of a non-key sort are compared exactly when
 * etcd sorts at most 12 key-values (Go's sort is then an insertion sort, so
 * ties keep ascending key order) and as sets beyond that, where Go's pdqsort
 * leaves their order unspecified.
 */
import assert from "node:assert/strict";
import {
  EtcdError,
  type KeyValue,
  open,
  type RangeOptions,
  type SortOrder,
  type SortTarget,
  type Store,
} from "../mod.ts";
import { etcdIgnore, type EtcdOracle, startEtcd } from "./etcd_oracle.ts";
import { prng, readSeed } from "./_prng.ts";

/** The whole file must finish inside a minute, etcd starts included. */
const FILE_MS_MAX = 55_000;
/** When this file's time is up (counted from when it was loaded). */
const FILE_DEADLINE = Date.now() + FILE_MS_MAX;
/** Random operations per run (each followed by a full-state comparison). */
const RANDOM_OPS = 400;
/** Share of random operations sent through etcdctl rather than the gateway. */
const RANDOM_CTL_SHARE = 0.1;
/** How many etcdctl processes run at once for a batch of reads. */
const READ_CONCURRENCY_MAX = 4;
/** Go's sort.Sort is an insertion sort (stable) up to this many elements. */
const GO_INSERTION_SORT_MAX = 12;

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------
// Operations, as data: one description drives etcdctl, the gateway and the
// store.

type Selector =
  | { kind: "key" }
  | { kind: "range"; end: Uint8Array }
  | { kind: "prefix" }
  | { kind: "fromKey" };

interface PutOp {
  op: "put";
  key: Uint8Array;
  value: Uint8Array;
  prevKv?: boolean;
}

interface DeleteOp {
  op: "delete";
  key: Uint8Array;
  sel: Selector;
  prevKv?: boolean;
}

interface RangeOp {
  op: "range";
  key: Uint8Array;
  sel: Selector;
  revision?: number;
  limit?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

interface CompactOp {
  op: "compact";
  revision: number;
}

type Op = PutOp | DeleteOp | RangeOp | CompactOp;

/** How a request reaches etcd. `auto` prefers etcdctl when it can say it. */
type Via = "ctl" | "gateway" | "auto";

/** A key-value as compared: bytes shown escaped, numbers as numbers. */
interface NKv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
}

/** What one request returned, normalized; absent fields are not compared. */
interface Outcome {
  error?: string;
  grpcCode?: number;
  revision?: number;
  kvs?: NKv[];
  count?: number;
  more?: boolean;
  deleted?: number;
  prevKvs?: NKv[];
  prevKv?: NKv | null;
  /** The sort values in result order, when ties were canonicalized. */
  sortValues?: (string | number)[];
}

const b = (text: string): Uint8Array => encoder.encode(text);
const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
};

/** Shows bytes readably: printable ASCII as is, the rest as `\xNN`. */
function show(data: Uint8Array): string {
  let out = "";
  for (const byte of data) {
    out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c
      ? String.fromCharCode(byte)
      : `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return out;
}

function toBase64(data: Uint8Array): string {
  let binary = "";
  for (const byte of data) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string | undefined): Uint8Array {
  if (text === undefined || text === "") return new Uint8Array();
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** clientv3's GetPrefixRangeEnd, with its empty-key rule (whole key space). */
function clientPrefixEnd(key: Uint8Array): Uint8Array {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i]! < 0xff) {
      const end = key.slice(0, i + 1);
      end[i]! += 1;
      return end;
    }
  }
  return bytes(0);
}

function describeSel(sel: Selector): string {
  switch (sel.kind) {
    case "key":
      return "";
    case "range":
      return ` .. ${show(sel.end)}`;
    case "prefix":
      return " --prefix";
    case "fromKey":
      return " --from-key";
  }
}

function describe(op: Op): string {
  switch (op.op) {
    case "put":
      return `put ${show(op.key)} = ${show(op.value)}` +
        (op.prevKv ? " --prev-kv" : "");
    case "delete":
      return `delete ${show(op.key)}${describeSel(op.sel)}` +
        (op.prevKv ? " --prev-kv" : "");
    case "compact":
      return `compact ${op.revision}`;
    case "range": {
      const { op: _op, key: _key, sel: _sel, ...options } = op;
      return `range ${show(op.key)}${describeSel(op.sel)} ` +
        JSON.stringify(options);
    }
  }
}

// ---------------------------------------------------------------------------
// Normalizing etcd's JSON (etcdctl and gateway) and the store's responses.

// deno-lint-ignore no-explicit-any
type Json = any;

const num = (value: unknown): number => value === undefined ? 0 : Number(value);

function etcdKv(kv: Json): NKv {
  return {
    key: show(fromBase64(kv.key)),
    value: show(fromBase64(kv.value)),
    createRevision: num(kv.create_revision),
    modRevision: num(kv.mod_revision),
    version: num(kv.version),
    lease: String(kv.lease ?? "0"),
  };
}

function storeKv(kv: KeyValue): NKv {
  return {
    key: show(kv.key),
    value: show(kv.value),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: String(kv.lease),
  };
}

/** The etcd response body of a successful request, normalized for `op`. */
function etcdOutcome(op: Op, body: Json): Outcome {
  const revision = num(body.header?.revision);
  switch (op.op) {
    case "put":
      return {
        revision,
        prevKv: body.prev_kv === undefined ? null : etcdKv(body.prev_kv),
      };
    case "delete":
      return {
        revision,
        deleted: num(body.deleted),
        prevKvs: (body.prev_kvs ?? []).map(etcdKv),
      };
    case "range":
      return {
        revision,
        kvs: (body.kvs ?? []).map(etcdKv),
        count: num(body.count),
        more: body.more === true,
      };
    case "compact":
      return { revision };
  }
}

/** Runs `op` on the store, catching its error as an outcome. */
async function runStore(db: Store, op: Op): Promise<Outcome> {
  try {
    switch (op.op) {
      case "put": {
        const res = await db.put(op.key, op.value, { prevKv: op.prevKv });
        return {
          revision: res.header.revision,
          prevKv: res.prevKv === undefined ? null : storeKv(res.prevKv),
        };
      }
      case "delete": {
        const res = await db.delete(op.key, {
          ...storeSelector(op.sel),
          prevKv: op.prevKv,
        });
        return {
          revision: res.header.revision,
          deleted: res.deleted,
          prevKvs: res.prevKvs.map(storeKv),
        };
      }
      case "range": {
        const { op: _op, key: _key, sel, ...rest } = op;
        const options: RangeOptions = { ...storeSelector(sel), ...rest };
        const res = await db.get(op.key, options);
        return {
          revision: res.header.revision,
          kvs: res.kvs.map(storeKv),
          count: res.count,
          more: res.more,
        };
      }
      case "compact": {
        const res = await db.compact(op.revision);
        return { revision: res.header.revision };
      }
    }
  } catch (error) {
    if (error instanceof EtcdError) {
      return { error: error.message, grpcCode: error.grpcCode };
    }
    // Not an etcd error: show it whole, so the mismatch says what happened.
    return { error: `(not an EtcdError) ${String(error)}` };
  }
}

function storeSelector(sel: Selector): RangeOptions {
  switch (sel.kind) {
    case "key":
      return {};
    case "range":
      return { rangeEnd: sel.end };
    case "prefix":
      return { prefix: true };
    case "fromKey":
      return { fromKey: true };
  }
}

// ---------------------------------------------------------------------------
// Sending an operation to etcd.

/** The text of `data` when etcdctl can take it as an argument, else undefined. */
function argText(data: Uint8Array): string | undefined {
  if (data.includes(0)) return undefined;
  try {
    return strictDecoder.decode(data);
  } catch {
    return undefined;
  }
}

const CTL_SORT_TARGET: Record<SortTarget, string> = {
  key: "KEY",
  version: "VERSION",
  create: "CREATE",
  mod: "MODIFY",
  value: "VALUE",
};
const WIRE_SORT_TARGET: Record<SortTarget, string> = {
  key: "KEY",
  version: "VERSION",
  create: "CREATE",
  mod: "MOD",
  value: "VALUE",
};

/** etcdctl's arguments for `op`, or undefined when etcdctl cannot say it. */
function ctlArgs(op: Op): string[] | undefined {
  if (op.op === "compact") return ["compact", "--", String(op.revision)];
  const key = argText(op.key);
  // An empty key would be changed by etcdctl (prefix/from-key) or rejected
  // client-side; the gateway sends it as is.
  if (key === undefined || key === "") return undefined;
  if (op.op === "put") {
    const value = argText(op.value);
    if (value === undefined) return undefined;
    const flags = op.prevKv ? ["--prev-kv"] : [];
    return ["put", "-w", "json", ...flags, "--", key, value];
  }
  const flags: string[] = ["-w", "json"];
  const positional = [key];
  switch (op.sel.kind) {
    case "range": {
      const end = argText(op.sel.end);
      if (end === undefined || end === "") return undefined;
      positional.push(end);
      break;
    }
    case "prefix":
      flags.push("--prefix");
      break;
    case "fromKey":
      flags.push("--from-key");
      break;
  }
  if (op.op === "delete") {
    if (op.prevKv) flags.push("--prev-kv");
    return ["del", ...flags, "--", ...positional];
  }
  // etcdctl 3.4 has no --count-only and no revision filters.
  if (
    op.countOnly || op.minModRevision || op.maxModRevision ||
    op.minCreateRevision || op.maxCreateRevision
  ) {
    return undefined;
  }
  if (op.revision !== undefined) flags.push(`--rev=${op.revision}`);
  if (op.limit !== undefined) flags.push(`--limit=${op.limit}`);
  if (op.sortTarget !== undefined) {
    flags.push(`--sort-by=${CTL_SORT_TARGET[op.sortTarget]}`);
  }
  if (op.sortOrder !== undefined && op.sortOrder !== "none") {
    flags.push(`--order=${op.sortOrder.toUpperCase()}`);
  }
  if (op.keysOnly) flags.push("--keys-only");
  return ["get", ...flags, "--", ...positional];
}

/** The gateway path and body for `op`. */
function gatewayRequest(op: Op): [string, Json] {
  if (op.op === "compact") {
    return ["/v3/kv/compaction", { revision: String(op.revision) }];
  }
  if (op.op === "put") {
    return ["/v3/kv/put", {
      key: toBase64(op.key),
      value: toBase64(op.value),
      prev_kv: op.prevKv ?? false,
    }];
  }
  // clientv3 turns an empty key with a prefix or from-key into "\0".
  let key = op.key;
  let end: Uint8Array | undefined;
  switch (op.sel.kind) {
    case "range":
      end = op.sel.end;
      break;
    case "prefix":
      if (key.length === 0) key = bytes(0);
      end = clientPrefixEnd(op.key);
      break;
    case "fromKey":
      if (key.length === 0) key = bytes(0);
      end = bytes(0);
      break;
  }
  const selector: Json = { key: toBase64(key) };
  if (end !== undefined) selector.range_end = toBase64(end);
  if (op.op === "delete") {
    return ["/v3/kv/deleterange", { ...selector, prev_kv: op.prevKv ?? false }];
  }
  const body: Json = { ...selector };
  if (op.revision !== undefined) body.revision = String(op.revision);
  if (op.limit !== undefined) body.limit = String(op.limit);
  if (op.sortOrder !== undefined) body.sort_order = op.sortOrder.toUpperCase();
  if (op.sortTarget !== undefined) {
    body.sort_target = WIRE_SORT_TARGET[op.sortTarget];
  }
  if (op.keysOnly) body.keys_only = true;
  if (op.countOnly) body.count_only = true;
  if (op.minModRevision !== undefined) {
    body.min_mod_revision = String(op.minModRevision);
  }
  if (op.maxModRevision !== undefined) {
    body.max_mod_revision = String(op.maxModRevision);
  }
  if (op.minCreateRevision !== undefined) {
    body.min_create_revision = String(op.minCreateRevision);
  }
  if (op.maxCreateRevision !== undefined) {
    body.max_create_revision = String(op.maxCreateRevision);
  }
  return ["/v3/kv/range", body];
}

/** The text etcdctl printed after `Error: `, or its whole stderr. */
function ctlErrorText(stderr: string): string {
  const lines = stderr.trim().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (line.startsWith("Error: ")) return line.slice("Error: ".length);
  }
  return `(etcdctl failed without an Error line) ${stderr.trim()}`;
}

/** Runs `op` on etcd; `fields` lists what that path can report. */
async function runEtcd(
  etcd: EtcdOracle,
  op: Op,
  via: Via,
): Promise<{ outcome: Outcome; via: "ctl" | "gateway" }> {
  const args = via === "gateway" ? undefined : ctlArgs(op);
  if (via === "ctl" && args === undefined) {
    throw new Error(`etcdctl cannot express: ${describe(op)}`);
  }
  if (args !== undefined) {
    const result = await etcd.ctl(args);
    if (result.code !== 0) {
      return { outcome: { error: ctlErrorText(result.stderr) }, via: "ctl" };
    }
    if (op.op === "compact") {
      // etcdctl prints "compacted revision N", never the header.
      assert.equal(result.stdout.trim(), `compacted revision ${op.revision}`);
      return { outcome: {}, via: "ctl" };
    }
    return { outcome: etcdOutcome(op, JSON.parse(result.stdout)), via: "ctl" };
  }
  const [path, body] = gatewayRequest(op);
  const response: Json = await etcd.gateway(path, body);
  if (response.error !== undefined || response.code !== undefined) {
    return {
      outcome: { error: String(response.error), grpcCode: response.code },
      via: "gateway",
    };
  }
  return { outcome: etcdOutcome(op, response), via: "gateway" };
}

/** Keeps only the fields that etcd reported (e.g. no header from etcdctl compact). */
function alignFields(store: Outcome, etcd: Outcome): Outcome {
  const aligned: Outcome = {};
  for (const field of Object.keys(etcd) as (keyof Outcome)[]) {
    // deno-lint-ignore no-explicit-any
    (aligned as any)[field] = store[field];
  }
  // An error on one side only must show, whatever the other side reported.
  if (store.error !== undefined) aligned.error = store.error;
  return aligned;
}

// ---------------------------------------------------------------------------
// Sort ties.

function sortValue(kv: NKv, target: SortTarget): string | number {
  switch (target) {
    case "key":
      return kv.key;
    case "version":
      return kv.version;
    case "create":
      return kv.createRevision;
    case "mod":
      return kv.modRevision;
    case "value":
      return kv.value;
  }
}

/**
 * For a non-key sort over more than 12 key-values, etcd's order of ties is
 * unspecified: put each run of ties in key order on both sides, and leave
 * out the run that `limit` cut (its members may differ) after checking the
 * sort values themselves.
 */
function canonicalTies(outcome: Outcome, target: SortTarget): Outcome {
  if (outcome.kvs === undefined) return outcome;
  const kvs = outcome.kvs;
  const runs: NKv[][] = [];
  for (const kv of kvs) {
    const run = runs[runs.length - 1];
    if (run && sortValue(run[0]!, target) === sortValue(kv, target)) {
      run.push(kv);
    } else {
      runs.push([kv]);
    }
  }
  if (outcome.more && runs.length > 0) runs.pop();
  const byKey = (x: NKv, y: NKv) => x.key < y.key ? -1 : x.key > y.key ? 1 : 0;
  return {
    ...outcome,
    kvs: runs.flatMap((run) => [...run].sort(byKey)),
    sortValues: kvs.map((kv) => sortValue(kv, target)),
  };
}

// ---------------------------------------------------------------------------
// The differ: one etcd, one store, one log of what happened.

class Differ {
  readonly history: string[] = [];
  steps = 0;
  ctlSteps = 0;

  constructor(
    readonly etcd: EtcdOracle,
    readonly db: Store,
    readonly context: string,
    readonly deadline: number,
  ) {}

  /** Runs `op` on both sides and asserts that they agree; returns etcd's outcome. */
  async step(op: Op, via: Via = "auto"): Promise<Outcome> {
    this.checkTime();
    return await this.verify(op, await runEtcd(this.etcd, op, via));
  }

  /**
   * Runs read-only `ops` (no write between them): etcd answers them
   * concurrently, which saves etcdctl's start-up time, then each is compared.
   */
  async reads(ops: RangeOp[], via: Via = "auto"): Promise<void> {
    this.checkTime();
    const answers: Awaited<ReturnType<typeof runEtcd>>[] = [];
    for (let i = 0; i < ops.length; i += READ_CONCURRENCY_MAX) {
      const batch = ops.slice(i, i + READ_CONCURRENCY_MAX);
      answers.push(
        ...await Promise.all(batch.map((op) => runEtcd(this.etcd, op, via))),
      );
    }
    for (const [i, op] of ops.entries()) await this.verify(op, answers[i]!);
  }

  checkTime(): void {
    if (Date.now() > this.deadline) {
      throw new Error(
        `${this.context}: out of time after ${this.steps} steps ` +
          `(this file is bounded to ${FILE_MS_MAX} ms)`,
      );
    }
  }

  async verify(
    op: Op,
    answer: { outcome: Outcome; via: "ctl" | "gateway" },
  ): Promise<Outcome> {
    const { outcome: expected, via: used } = answer;
    this.steps++;
    if (used === "ctl") this.ctlSteps++;
    const actual = alignFields(await runStore(this.db, op), expected);
    this.history.push(
      `${used === "ctl" ? "etcdctl" : "gateway"}: ${describe(op)}`,
    );
    if (this.history.length > 12) this.history.shift();

    let left = actual;
    let right = expected;
    if (
      op.op === "range" && op.sortTarget !== undefined &&
      op.sortTarget !== "key" && expected.kvs !== undefined &&
      expected.error === undefined
    ) {
      const sorted = await this.sortedLength(op, expected);
      if (sorted > GO_INSERTION_SORT_MAX) {
        left = canonicalTies(actual, op.sortTarget);
        right = canonicalTies(expected, op.sortTarget);
      }
    }
    this.assertSame(left, right, `${describe(op)} (via ${used})`);
    if (expected.error === undefined && op.op !== "range") {
      assert.equal(
        this.db.revision,
        expected.revision ?? this.db.revision,
        `${this.context}: db.revision after ${describe(op)}`,
      );
    }
    return expected;
  }

  /** How many key-values etcd sorted for `op` (before its limit). */
  async sortedLength(op: RangeOp, outcome: Outcome): Promise<number> {
    if (!outcome.more) return outcome.kvs!.length;
    const { limit: _limit, ...unlimited } = op;
    const { outcome: all } = await runEtcd(
      this.etcd,
      { ...unlimited, countOnly: false },
      "gateway",
    );
    return all.kvs?.length ?? 0;
  }

  /** Compares the whole key space at `revision` (0: current), via the gateway. */
  async compareAll(revision = 0): Promise<void> {
    await this.step({
      op: "range",
      key: bytes(0),
      sel: { kind: "fromKey" },
      revision,
    }, "gateway");
  }

  assertSame(actual: Outcome, expected: Outcome, what: string): void {
    try {
      assert.deepStrictEqual(actual, expected);
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new Error(
        `${this.context}: the store disagrees with etcd on ${what}\n` +
          `  (actual = store, expected = etcd)\n${detail}\n` +
          `  last steps:\n    ${this.history.join("\n    ")}`,
      );
    }
  }
}

async function withDiffer(
  context: string,
  body: (differ: Differ) => Promise<void>,
): Promise<void> {
  const started = Date.now();
  const deadline = FILE_DEADLINE;
  const etcd = await startEtcd();
  try {
    const db = await open();
    try {
      const differ = new Differ(etcd, db, context, deadline);
      await body(differ);
      db.check();
      console.log(
        `${context}: ${differ.steps} steps compared ` +
          `(${differ.ctlSteps} through etcdctl) in ${Date.now() - started} ms`,
      );
    } finally {
      await db.close();
    }
  } finally {
    await etcd.stop();
  }
}

// ---------------------------------------------------------------------------
// Scripted cases.

const SORT_TARGETS: SortTarget[] = ["key", "version", "create", "mod", "value"];
const SORT_ORDERS: (SortOrder | undefined)[] = [
  undefined,
  "ascend",
  "descend",
];

Deno.test({
  name: "the store matches etcd on scripted puts, deletes and ranges",
  ignore: etcdIgnore("mvcc differential tests"),
  async fn() {
    await withDiffer("scripted", async (d) => {
      const put = (key: string, value: string, prevKv = false) =>
        d.step({ op: "put", key: b(key), value: b(value), prevKv });
      const get = (key: string, extra: Partial<RangeOp> = {}) =>
        d.step({ op: "range", key: b(key), sel: { kind: "key" }, ...extra });
      const rq = (
        key: string,
        sel: Selector,
        extra: Partial<RangeOp> = {},
      ): RangeOp => ({ op: "range", key: b(key), sel, ...extra });
      const getSel = (
        key: string,
        sel: Selector,
        extra: Partial<RangeOp> = {},
      ) => d.step(rq(key, sel, extra));
      const del = (key: string, sel: Selector, prevKv = false) =>
        d.step({ op: "delete", key: b(key), sel, prevKv });
      const prefix: Selector = { kind: "prefix" };
      const fromKey: Selector = { kind: "fromKey" };
      const range = (end: string): Selector => ({ kind: "range", end: b(end) });

      // A fresh store is at revision 1 and empty.
      await get("foo");
      await getSel("a", fromKey);

      // Puts take one revision each; prev_kv returns the old version.
      await put("foo", "bar");
      await put("foo", "baz", true);
      await put("foo", "", true); // an empty value (etcdctl omits it)
      await put("foo", "qux", true);
      await get("foo");
      await get("missing");

      // Byte-wise key order: key1 < key12 < key2 < key3.
      for (const key of ["key2", "key12", "key1", "key3", "key", "kez"]) {
        await put(key, `v-${key}`);
      }
      await put("key2", "v-key2-again");
      await d.reads([
        rq("key", prefix),
        rq("key1", range("key2")),
        rq("key12", range("key3")),
        rq("key2", fromKey),
        rq("key3", range("key1")), // range_end below key: nothing
        rq("key", range("key")), // empty range
        // limit / more / count, keys-only, count-only.
        ...[1, 2, 5, 6, 7, 0].map((limit) => rq("key", prefix, { limit })),
        rq("key", prefix, { keysOnly: true }),
        rq("key", prefix, { keysOnly: true, limit: 2 }),
        rq("key", prefix, { countOnly: true }),
        rq("key", prefix, { countOnly: true, limit: 2 }),
        rq("nothing", prefix, { countOnly: true }),
      ]);

      // Sorting, with and without a limit (sort happens before the limit).
      await put("key1", "v-key1-2"); // versions: ties and not
      await put("key1", "a-lowest");
      await d.reads([
        ...SORT_TARGETS.flatMap((sortTarget) =>
          SORT_ORDERS.flatMap((sortOrder) => [
            rq("key", prefix, { sortTarget, sortOrder }),
            rq("key", prefix, { sortTarget, sortOrder, limit: 2 }),
          ])
        ),
        rq("key", prefix, { sortTarget: "version", keysOnly: true }),
        rq("key", prefix, {
          sortTarget: "value",
          sortOrder: "descend",
          countOnly: true,
        }),
      ]);

      // Reads at every past revision, at 0 (current), and in the future.
      const now = d.db.revision;
      await d.reads([
        ...Array.from(
          { length: now },
          (_, i) => rq("foo", fromKey, { revision: i + 1 }),
        ),
        rq("key", prefix, { revision: 0 }),
        rq("foo", { kind: "key" }, { revision: now + 1 }),
        rq("foo", { kind: "key" }, { revision: now + 100 }),
      ]);

      // Deletes: nothing matched takes no revision.
      await del("missing", { kind: "key" });
      await del("missing", prefix, true);
      await del("zzz", fromKey, true);
      await del("key3", range("key1"));
      await del("foo", { kind: "key" }, true);
      await get("foo");
      await del("key1", range("key2"), true); // key1, key12
      await del("kez", fromKey, true);
      await getSel("a", fromKey);
      await del("key", prefix, true);
      await getSel("a", fromKey);

      // Delete, then recreate: version back to 1, a new create_revision;
      // the old generation stays readable at its revisions.
      await put("gen", "1");
      await put("gen", "2");
      const deletedAt = (await del("gen", { kind: "key" }, true)).revision!;
      await get("gen");
      await put("gen", "3", true);
      await put("gen", "4", true);
      await d.reads(
        Array.from(
          { length: d.db.revision - deletedAt + 4 },
          (_, i) => rq("gen", { kind: "key" }, { revision: deletedAt - 3 + i }),
        ),
      );

      // Revision filters (only the gateway has them), with sort, limit and
      // count-only; count stays the total of the range.
      for (const key of ["f1", "f2", "f3", "f4", "f5"]) await put(key, key);
      await put("f2", "f2-again");
      await put("f4", "f4-again");
      const base = d.db.revision;
      for (
        const filter of [
          { minModRevision: base - 3 },
          { maxModRevision: base - 3 },
          { minModRevision: base - 4, maxModRevision: base - 1 },
          { minCreateRevision: base - 5 },
          { maxCreateRevision: base - 5 },
          { minCreateRevision: base - 6, maxCreateRevision: base - 4 },
          { minModRevision: base + 10 },
          { maxCreateRevision: 1 },
        ]
      ) {
        await getSel("f", prefix, filter);
        await getSel("f", prefix, { ...filter, limit: 1 });
        await getSel("f", prefix, { ...filter, countOnly: true });
        await getSel("f", prefix, {
          ...filter,
          sortTarget: "mod",
          sortOrder: "descend",
          limit: 2,
        });
        await getSel("f", prefix, { ...filter, revision: base - 2 });
      }

      // Negative limit (no limit) and negative revision (current).
      await getSel("f", prefix, { limit: -1 });
      await d.step({
        op: "range",
        key: b("f"),
        sel: prefix,
        limit: -1,
        revision: -3,
      }, "gateway");

      // The empty key is an error for a plain request.
      await d.step({ op: "range", key: b(""), sel: { kind: "key" } });
      await d.step({ op: "put", key: b(""), value: b("x") });
      await d.step({ op: "delete", key: b(""), sel: { kind: "key" } });
      await d.step({
        op: "range",
        key: b(""),
        sel: { kind: "range", end: b("z") },
      });
      await d.compareAll();
    });
  },
});

Deno.test({
  name: "the store matches etcd on binary keys compared byte-wise",
  ignore: etcdIgnore("mvcc differential tests"),
  async fn() {
    await withDiffer("binary keys", async (d) => {
      const keys = [
        bytes(0),
        bytes(0, 0),
        bytes(0, 1),
        bytes(1),
        b("a"),
        concat(b("a"), bytes(0)),
        concat(b("a"), bytes(0, 0xff)),
        concat(b("a"), bytes(0xff)),
        concat(b("a"), bytes(0xff, 0xff)),
        b("a\u00e9"), // UTF-8 0xc3 0xa9
        b("b"),
        bytes(0x7f),
        bytes(0x80),
        bytes(0xfe, 0xff),
        bytes(0xff),
        bytes(0xff, 0),
        bytes(0xff, 0xff),
      ];
      for (const [i, key] of keys.entries()) {
        await d.step({
          op: "put",
          key,
          value: i % 3 === 0 ? bytes(0, 0xff, i) : b(`v${i}`),
        });
      }
      await d.compareAll();
      const sel = (end: Uint8Array): Selector => ({ kind: "range", end });
      for (
        const [key, s] of [
          [bytes(0), sel(bytes(0, 1))],
          [bytes(0), sel(bytes(1))],
          [b("a"), sel(b("b"))],
          [b("a"), { kind: "prefix" }],
          [concat(b("a"), bytes(0)), { kind: "prefix" }],
          [concat(b("a"), bytes(0xff)), { kind: "prefix" }], // end "b"
          [bytes(0xff), { kind: "prefix" }], // all 0xff: from-key
          [bytes(0xff, 0xff), { kind: "prefix" }],
          [bytes(0xfe), { kind: "fromKey" }],
          [bytes(0x80), sel(bytes(0xff))],
          [bytes(0xff), sel(bytes(0x80))], // end below key
          [b("a"), sel(bytes(0))], // "\0" as end: from-key
        ] as [Uint8Array, Selector][]
      ) {
        await d.step({ op: "range", key, sel: s });
        await d.step({
          op: "range",
          key,
          sel: s,
          sortTarget: "value",
          sortOrder: "descend",
        });
        await d.step({ op: "range", key, sel: s, limit: 2, keysOnly: true });
      }
      await d.step({
        op: "delete",
        key: concat(b("a"), bytes(0xff)),
        sel: { kind: "prefix" },
        prevKv: true,
      });
      await d.step({
        op: "delete",
        key: bytes(0xff),
        sel: { kind: "prefix" },
        prevKv: true,
      });
      await d.step({
        op: "delete",
        key: bytes(0),
        sel: { kind: "range", end: b("a") },
        prevKv: true,
      });
      await d.compareAll();
      await d.step({
        op: "delete",
        key: bytes(0),
        sel: { kind: "fromKey" },
        prevKv: true,
      });
      await d.compareAll();
      await d.compareAll(d.db.revision - 1);
    });
  },
});

Deno.test({
  name: "the store matches etcd on compaction and its errors",
  ignore: etcdIgnore("mvcc differential tests"),
  async fn() {
    await withDiffer("compaction", async (d) => {
      const compact = (revision: number, via: Via = "auto") =>
        d.step({ op: "compact", revision }, via);
      const all = (revision: number): RangeOp => ({
        op: "range",
        key: b("a"),
        sel: { kind: "fromKey" },
        revision,
      });
      const getAll = (revision: number) => d.step(all(revision));

      // On a fresh store (revision 1) nothing was compacted yet: 0 and 1 are
      // both above etcd's initial compacted revision (-1).
      await compact(2); // future
      await compact(0, "gateway");
      await compact(0, "gateway"); // now compacted
      await compact(-1, "gateway");
      await compact(1, "gateway");
      await compact(1); // twice: compacted

      await d.step({ op: "put", key: b("a"), value: b("1") }); // 2
      await d.step({ op: "put", key: b("b"), value: b("1") }); // 3
      await d.step({ op: "put", key: b("a"), value: b("2") }); // 4
      await d.step({ op: "delete", key: b("b"), sel: { kind: "key" } }); // 5
      await d.step({ op: "put", key: b("c"), value: b("1") }); // 6
      await d.step({ op: "put", key: b("b"), value: b("2") }); // 7
      await d.step({ op: "put", key: b("a"), value: b("3") }); // 8
      await d.step({ op: "delete", key: b("c"), sel: { kind: "key" } }); // 9
      await d.reads(Array.from({ length: 9 }, (_, i) => all(i + 1)));

      await compact(5); // b's tombstone is exactly at 5
      await d.reads([
        all(5), // exactly the compacted revision: readable
        all(4), // below: compacted
        all(1),
        all(6),
        all(0),
        all(10), // future
      ]);
      await compact(5); // again
      await compact(3); // below
      await compact(10); // future
      await compact(100, "gateway");
      await compact(6, "gateway");
      await getAll(5);
      await d.step({
        op: "range",
        key: b("a"),
        sel: { kind: "fromKey" },
        revision: 6,
        countOnly: true,
      });
      await d.step({
        op: "range",
        key: b("a"),
        sel: { kind: "fromKey" },
        revision: 6,
        minModRevision: 4,
      });
      // Versions survive compaction: a is still at version 3.
      await d.step({ op: "put", key: b("a"), value: b("4"), prevKv: true });
      await compact(d.db.revision); // the current revision itself
      await getAll(d.db.revision);
      await getAll(d.db.revision - 1);
      // Compaction takes no revision; the next put gets the next one.
      await d.step({ op: "put", key: b("c"), value: b("2"), prevKv: true });
      await d.step({
        op: "delete",
        key: b("a"),
        sel: { kind: "fromKey" },
        prevKv: true,
      });
      await compact(d.db.revision, "gateway");
      await getAll(0);
    });
  },
});

Deno.test({
  name:
    "the store reads and deletes the whole key space for an empty key with prefix or fromKey, as clientv3 does",
  ignore: etcdIgnore("mvcc differential tests"),
  async fn() {
    // clientv3's WithPrefix and WithFromKey turn an empty key into "\0"
    // (etcdctl `get "" --prefix` lists everything); the store's `prefix` and
    // `fromKey` options are the same options.
    await withDiffer("empty key", async (d) => {
      for (const key of ["a", "b/c", "z"]) {
        await d.step({ op: "put", key: b(key), value: b(key) });
      }
      await d.step({ op: "range", key: b(""), sel: { kind: "prefix" } });
      await d.step({ op: "range", key: b(""), sel: { kind: "fromKey" } });
      await d.step({
        op: "range",
        key: b(""),
        sel: { kind: "prefix" },
        countOnly: true,
      });
      await d.step({
        op: "delete",
        key: b(""),
        sel: { kind: "prefix" },
        prevKv: true,
      });
      await d.step({ op: "put", key: b("a"), value: b("again") });
      await d.step({
        op: "delete",
        key: b(""),
        sel: { kind: "fromKey" },
        prevKv: true,
      });
      await d.compareAll();
    });
  },
});

// ---------------------------------------------------------------------------
// Random operations from a seeded PRNG.

/** Keys with shared prefixes, byte-wise traps and binary bytes. */
const RANDOM_KEYS: Uint8Array[] = [
  b("a"),
  b("a/1"),
  b("a/12"),
  b("a/2"),
  b("ab"),
  b("b"),
  b("key1"),
  b("key12"),
  b("key2"),
  b("z"),
  bytes(0),
  concat(b("a"), bytes(0)),
  concat(b("a"), bytes(0xff)),
  bytes(0xff),
];
const RANDOM_VALUES: Uint8Array[] = [
  b(""),
  b("0"),
  b("1"),
  b("10"),
  b("9"),
  b("x"),
  bytes(0, 0xff),
  bytes(0xff),
];

Deno.test({
  name: "the store matches etcd on seeded random operations",
  ignore: etcdIgnore("mvcc differential tests"),
  async fn() {
    const seed = readSeed();
    console.log(
      `mvcc differential: seed=${seed} (replay with REVKV_SEED=${seed})`,
    );
    await withDiffer(`random (REVKV_SEED=${seed})`, async (d) => {
      const random = prng(seed);
      const int = (n: number) => Math.floor(random() * n);
      const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
      const chance = (p: number) => random() < p;
      let compacted = 0;

      const randomSel = (): Selector => {
        const r = random();
        if (r < 0.3) return { kind: "key" };
        if (r < 0.6) return { kind: "range", end: pick(RANDOM_KEYS) };
        if (r < 0.8) return { kind: "prefix" };
        return { kind: "fromKey" };
      };
      const randomRevision = (): number => {
        const now = d.db.revision;
        const r = random();
        if (r < 0.5) return 0;
        if (r < 0.9) return compacted + int(now - compacted + 1);
        if (r < 0.95) return now + 1 + int(3);
        return Math.max(-1, compacted - 1 - int(3));
      };
      const maybeRev = (): number | undefined =>
        chance(0.3) ? undefined : Math.max(0, randomRevision());

      for (let i = 0; i < RANDOM_OPS; i++) {
        const via: Via = chance(RANDOM_CTL_SHARE) ? "auto" : "gateway";
        const r = random();
        let op: Op;
        if (r < 0.4) {
          op = {
            op: "put",
            key: pick(RANDOM_KEYS),
            value: pick(RANDOM_VALUES),
            prevKv: chance(0.5),
          };
        } else if (r < 0.55) {
          op = {
            op: "delete",
            key: pick(RANDOM_KEYS),
            sel: randomSel(),
            prevKv: chance(0.5),
          };
        } else if (r < 0.95) {
          const range: RangeOp = {
            op: "range",
            key: pick(RANDOM_KEYS),
            sel: randomSel(),
          };
          const revision = maybeRev();
          if (revision !== undefined) range.revision = revision;
          if (chance(0.3)) range.limit = int(5) - 1;
          if (chance(0.5)) {
            range.sortTarget = pick(SORT_TARGETS);
            const order = pick(SORT_ORDERS);
            if (order !== undefined) range.sortOrder = order;
          }
          if (chance(0.15)) range.keysOnly = true;
          if (chance(0.1)) range.countOnly = true;
          if (chance(0.2)) {
            const now = d.db.revision;
            const field = pick(
              [
                "minModRevision",
                "maxModRevision",
                "minCreateRevision",
                "maxCreateRevision",
              ] as const,
            );
            range[field] = int(now + 2);
          }
          op = range;
        } else {
          // Mostly a revision that can be compacted; sometimes an error.
          const now = d.db.revision;
          const revision = chance(0.7)
            ? compacted + 1 + int(Math.max(0, now - compacted))
            : randomRevision();
          op = { op: "compact", revision };
        }
        const outcome = await d.step(op, via);
        if (op.op === "compact" && outcome.error === undefined) {
          compacted = op.revision;
        }
        if (op.op !== "range") await d.compareAll();
        if (chance(0.05)) await d.compareAll(Math.max(0, randomRevision()));
      }
    });
  },
});
