/**
 * A randomized robustness test of the store against a model of etcd's MVCC
 * semantics written in the plainest way we could find.
 *
 * The model keeps, for every key, the list of its versions (a put, or a
 * delete) by revision, and never forgets any of them. A read at revision R
 * takes, for each key in `[key, end)` (compared byte-wise; keys are latin1
 * strings here, whose `<` is byte order), the newest version at or below R.
 * Compaction only moves the revision below which reads fail: what a read at
 * or above it returns does not change. Everything else follows etcd 3.4's
 * code paths step by step:
 *
 * - `mvcc/kvstore_txn.go` rangeKeys: a future revision fails before a
 *   compacted one; a revision <= 0 reads the current one; reading at exactly
 *   the compacted revision works; `count` is every key in range at R.
 * - `etcdserver/apply.go` Range: fetch everything when sorting or filtering,
 *   else `limit + 1` keys in key order; then the four revision filters, then
 *   the sort (ascending by default when the target is not the key; ties keep
 *   key order, as Go's insertion sort does for small results), then the
 *   limit with `more`, then `keysOnly` blanks the values.
 * - `etcdserver/apply.go` Put / DeleteRange and `v3rpc/key.go`: the request
 *   checks in etcd's order (an unknown lease before a missing key), the key
 *   must exist for `ignoreValue` / `ignoreLease`, a delete that matches
 *   nothing takes no revision. An empty key is an error except with prefix or
 *   from-key, which select every key (clientv3 `WithPrefix` / `WithFromKey`).
 * - Leases: revoking one deletes, in one revision, the keys whose current
 *   version carries it (none: no revision). The store's clock is frozen, so
 *   nothing expires on its own.
 * - `scan` (revkv's own): the range at one revision in key order or reverse;
 *   it fails with the compacted error at the first page it fetches after a
 *   compaction passed its revision.
 *
 * Every answer of the store — key-values field by field, `count`, `more`,
 * `deleted`, `prevKvs`, header revisions, error texts, and the store's
 * revision and compacted revision after each operation — is compared with the
 * model's. The store's buffers are also checked for aliasing: after each call
 * the test scribbles over the bytes it passed in and the bytes it got back.
 *
 * The seed is printed; replay a failure with
 * `REVKV_SEED=<seed> deno test -A tests/mvcc_model_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type DeleteOptions,
  type KeyValue,
  open,
  type PutOptions,
  type RangeOptions,
  type ScanOptions,
  type SortOrder,
  type SortTarget,
  type Store,
} from "../mod.ts";
import { Random, readSeed } from "./_prng.ts";

/** Operations of the small-key-space test (about a second on a 2-core VM). */
const SMALL_OPS = 8_000;
/** How often the small test runs `db.check()`. */
const SMALL_CHECK_EVERY_OPS = 200;
/**
 * Base keys of the large test; with the variants derived from them the
 * store holds ~100k keys: ~195 pages of the engine's 512-handle scans and
 * ~25 incremental compaction steps of 4096 keys.
 */
const LARGE_BASE_KEYS = 75_000;
/** Overwrites of random existing keys in the large test (history to read). */
const LARGE_OVERWRITES = 8_000;
/**
 * Rounds of the large test's compaction phase: each lets about one 4096-key
 * compaction step run, so this outlasts a compaction over every key.
 */
const LARGE_COMPACTION_ROUNDS = 45;
/** Random operations per round of the compaction phase. */
const LARGE_OPS_PER_ROUND = 6;

const COMPACTED = "etcdserver: mvcc: required revision has been compacted";
const FUTURE = "etcdserver: mvcc: required revision is a future revision";
const KEY_NOT_PROVIDED = "etcdserver: key is not provided";
const VALUE_PROVIDED = "etcdserver: value is provided";
const LEASE_PROVIDED = "etcdserver: lease is provided";
const KEY_NOT_FOUND = "etcdserver: key not found";
const LEASE_NOT_FOUND = "etcdserver: requested lease not found";
const LEASE_EXISTS = "etcdserver: lease already exists";
/** TTL of the test's leases; the store's clock is frozen, so they never expire. */
const LEASE_TTL_SECONDS = 60;

/** The seed of this run: `REVKV_SEED` when given, else a random one. */
const SEED = readSeed();
const REPLAY = `REVKV_SEED=${SEED} deno test -A tests/mvcc_model_test.ts`;

// --- bytes as latin1 strings ------------------------------------------------

/** Bytes as a latin1 string: one char per byte, so `<` is byte order. */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

function bytesOf(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    assert.ok(code <= 0xff, `not a latin1 string: ${JSON.stringify(text)}`);
    bytes[i] = code;
  }
  return bytes;
}

/** A latin1 string shown with every byte outside printable ASCII as \xNN. */
function show(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out += code >= 0x20 && code < 0x7f && code !== 0x5c
      ? text[i]
      : `\\x${code.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** Overwrites bytes the store was given or gave back, to expose aliasing. */
function scribble(bytes: Uint8Array | undefined): void {
  bytes?.fill(0xee);
}

// --- the model -------------------------------------------------------------

/** One version of a key in the model. */
interface ModelKv {
  readonly key: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly value: string;
  readonly lease: bigint;
}

/** A key's state from `revision` on: a put (`kv`) or deleted (undefined). */
interface HistoryEntry {
  readonly revision: number;
  readonly kv: ModelKv | undefined;
}

/** Keys `[start, end)`; `end` null: every key from `start`; undefined: `start` only. */
interface ModelBounds {
  readonly start: string;
  readonly end: string | null | undefined;
}

/** What a key-value looks like when compared: key and value as latin1. */
interface PlainKv {
  key: string;
  createRevision: number;
  modRevision: number;
  version: number;
  value: string;
  lease: bigint;
}

type Outcome = Record<string, unknown>;

class ModelError extends Error {}

/** etcdctl's prefix end: drop trailing 0xff bytes, add one to the last. */
function modelPrefixEnd(key: string): string {
  let kept = key;
  while (kept.length > 0 && kept.charCodeAt(kept.length - 1) === 0xff) {
    kept = kept.slice(0, -1);
  }
  if (kept.length === 0) return "\x00";
  const last = kept.charCodeAt(kept.length - 1);
  return kept.slice(0, -1) + String.fromCharCode(last + 1);
}

/**
 * The keys a request selects. An empty key is an error, except with prefix
 * or from-key, which then select every key: etcd's client sends those as
 * key "\0", range end "\0" (clientv3 `WithPrefix` / `WithFromKey`).
 */
function modelBounds(
  key: string,
  selector: { rangeEnd?: unknown; prefix?: boolean; fromKey?: boolean },
): ModelBounds {
  if (key === "") {
    if (selector.prefix || selector.fromKey) {
      return { start: "\x00", end: null };
    }
    throw new ModelError(KEY_NOT_PROVIDED);
  }
  let end: string | undefined;
  if (selector.prefix) end = modelPrefixEnd(key);
  else if (selector.fromKey) end = "\x00";
  else if (selector.rangeEnd !== undefined) {
    assert.ok(selector.rangeEnd instanceof Uint8Array, "rangeEnd as bytes");
    end = latin1(selector.rangeEnd);
  }
  if (end === undefined || end === "") return { start: key, end: undefined };
  if (end === "\x00") return { start: key, end: null };
  return { start: key, end };
}

function plainFromModel(kv: ModelKv, keysOnly = false): PlainKv {
  return {
    key: kv.key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    value: keysOnly ? "" : kv.value,
    lease: kv.lease,
  };
}

function plainFromStore(kv: KeyValue): PlainKv {
  return {
    key: latin1(kv.key),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    value: latin1(kv.value),
    lease: kv.lease,
  };
}

function compareBy(
  target: SortTarget,
): (a: ModelKv, b: ModelKv) => number {
  const field = (kv: ModelKv): number | string => {
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
  };
  return (a, b) => {
    const x = field(a);
    const y = field(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
}

/** etcd's key space, kept as every version of every key, never compacted. */
class Model {
  revision = 1;
  compactRevision = -1;
  /** Granted leases (they never expire: the store's clock is frozen). */
  readonly leases = new Set<bigint>();
  readonly #history = new Map<string, HistoryEntry[]>();
  #sortedKeys: string[] | undefined;

  /** The answer to `op`, or `{ error }` with etcd's text. */
  apply(op: Op): Outcome {
    try {
      switch (op.kind) {
        case "put":
          return this.put(latin1(op.key), latin1(op.value), op.options);
        case "get":
          return this.range(latin1(op.key), op.options);
        case "delete":
          return this.delete(latin1(op.key), op.options);
        case "scan":
          return { kvs: this.scan(latin1(op.key), op.options) };
        case "compact":
          return this.compact(op.revision);
        case "grant":
          return this.grant(op.id);
        case "revoke":
          return this.revoke(op.id);
        case "yield":
          return {};
      }
    } catch (error) {
      if (error instanceof ModelError) return { error: error.message };
      throw error;
    }
  }

  /** The version of `key` visible at `revision`, if it existed then. */
  kvAt(key: string, revision: number): ModelKv | undefined {
    const history = this.#history.get(key) ?? [];
    for (let i = history.length - 1; i >= 0; i--) {
      if (history[i]!.revision <= revision) return history[i]!.kv;
    }
    return undefined;
  }

  /** Every key ever written, in byte order. */
  sortedKeys(): readonly string[] {
    this.#sortedKeys ??= [...this.#history.keys()].sort();
    return this.#sortedKeys;
  }

  /** The key-values in `bounds` at `revision`, in key order. */
  visible(bounds: ModelBounds, revision: number): ModelKv[] {
    if (bounds.end === undefined) {
      const kv = this.kvAt(bounds.start, revision);
      return kv === undefined ? [] : [kv];
    }
    const found: ModelKv[] = [];
    const keys = this.sortedKeys();
    for (let i = lowerBound(keys, bounds.start); i < keys.length; i++) {
      const key = keys[i]!;
      if (bounds.end !== null && key >= bounds.end) break;
      const kv = this.kvAt(key, revision);
      if (kv !== undefined) found.push(kv);
    }
    return found;
  }

  put(key: string, value: string, options: PutOptions): Outcome {
    const lease = options.lease ?? 0n;
    if (key === "") throw new ModelError(KEY_NOT_PROVIDED);
    if (options.ignoreValue && value !== "") {
      throw new ModelError(VALUE_PROVIDED);
    }
    if (options.ignoreLease && lease !== 0n) {
      throw new ModelError(LEASE_PROVIDED);
    }
    if (lease !== 0n && !this.leases.has(lease)) {
      throw new ModelError(LEASE_NOT_FOUND);
    }
    const prev = this.kvAt(key, this.revision);
    if ((options.ignoreValue || options.ignoreLease) && prev === undefined) {
      throw new ModelError(KEY_NOT_FOUND);
    }
    const revision = this.revision + 1;
    this.#record(key, revision, {
      key,
      createRevision: prev === undefined ? revision : prev.createRevision,
      modRevision: revision,
      version: prev === undefined ? 1 : prev.version + 1,
      value: options.ignoreValue ? prev!.value : value,
      lease: options.ignoreLease ? prev!.lease : lease,
    });
    this.revision = revision;
    return {
      revision,
      prevKv: options.prevKv && prev !== undefined
        ? plainFromModel(prev)
        : null,
    };
  }

  delete(key: string, options: DeleteOptions): Outcome {
    const victims = this.visible(modelBounds(key, options), this.revision);
    if (victims.length === 0) {
      return { revision: this.revision, deleted: 0, prevKvs: [] };
    }
    const revision = this.revision + 1;
    for (const kv of victims) this.#record(kv.key, revision, undefined);
    this.revision = revision;
    return {
      revision,
      deleted: victims.length,
      prevKvs: options.prevKv ? victims.map((kv) => plainFromModel(kv)) : [],
    };
  }

  range(key: string, options: RangeOptions): Outcome {
    const bounds = modelBounds(key, options);
    const revision = this.readRevision(options.revision);
    const inRange = this.visible(bounds, revision);
    const count = inRange.length;
    if (options.countOnly) {
      return { revision: this.revision, kvs: [], more: false, count };
    }
    const limit = options.limit ?? 0;
    const sortOrder: SortOrder = options.sortOrder ?? "none";
    const sortTarget: SortTarget = options.sortTarget ?? "key";
    const maxMod = options.maxModRevision ?? 0;
    const minMod = options.minModRevision ?? 0;
    const maxCreate = options.maxCreateRevision ?? 0;
    const minCreate = options.minCreateRevision ?? 0;
    // apply.go fetches everything when it sorts (as asked, not as defaulted)
    // or filters, and otherwise one key past the limit, in key order.
    const fetchAll = sortOrder !== "none" || maxMod !== 0 || minMod !== 0 ||
      maxCreate !== 0 || minCreate !== 0;
    let kvs = !fetchAll && limit > 0 ? inRange.slice(0, limit + 1) : inRange;
    if (maxMod !== 0) kvs = kvs.filter((kv) => !(kv.modRevision > maxMod));
    if (minMod !== 0) kvs = kvs.filter((kv) => !(kv.modRevision < minMod));
    if (maxCreate !== 0) {
      kvs = kvs.filter((kv) => !(kv.createRevision > maxCreate));
    }
    if (minCreate !== 0) {
      kvs = kvs.filter((kv) => !(kv.createRevision < minCreate));
    }
    const order = sortTarget !== "key" && sortOrder === "none"
      ? "ascend"
      : sortOrder;
    if (order !== "none") {
      const compare = compareBy(sortTarget);
      // Array.prototype.sort is stable: ties keep key order either way.
      kvs = [...kvs].sort(
        order === "ascend" ? compare : (a, b) => compare(b, a),
      );
    }
    let more = false;
    if (limit > 0 && kvs.length > limit) {
      kvs = kvs.slice(0, limit);
      more = true;
    }
    const keysOnly = options.keysOnly ?? false;
    return {
      revision: this.revision,
      kvs: kvs.map((kv) => plainFromModel(kv, keysOnly)),
      more,
      count,
    };
  }

  scan(key: string, options: ScanOptions): PlainKv[] {
    const bounds = modelBounds(key, options);
    const revision = this.readRevision(options.revision);
    const kvs = this.visible(bounds, revision);
    if (options.reverse) kvs.reverse();
    return kvs.map((kv) => plainFromModel(kv, options.keysOnly ?? false));
  }

  compact(revision: number): Outcome {
    if (revision <= this.compactRevision) throw new ModelError(COMPACTED);
    if (revision > this.revision) throw new ModelError(FUTURE);
    this.compactRevision = revision;
    return { revision: this.revision };
  }

  grant(id: bigint): Outcome {
    if (this.leases.has(id)) throw new ModelError(LEASE_EXISTS);
    this.leases.add(id);
    return { revision: this.revision, id, ttl: LEASE_TTL_SECONDS };
  }

  /** Revokes a lease: the keys attached to it now go, in one revision. */
  revoke(id: bigint): Outcome {
    if (!this.leases.has(id)) throw new ModelError(LEASE_NOT_FOUND);
    this.leases.delete(id);
    const attached = this.visible({ start: "", end: null }, this.revision)
      .filter((kv) => kv.lease === id);
    if (attached.length === 0) return { revision: this.revision };
    const revision = this.revision + 1;
    for (const kv of attached) this.#record(kv.key, revision, undefined);
    this.revision = revision;
    return { revision };
  }

  /** The revision a read asking for `requested` sees, as rangeKeys decides. */
  readRevision(requested = 0): number {
    if (requested > this.revision) throw new ModelError(FUTURE);
    const revision = requested <= 0 ? this.revision : requested;
    if (revision < this.compactRevision) throw new ModelError(COMPACTED);
    return revision;
  }

  #record(key: string, revision: number, kv: ModelKv | undefined): void {
    let history = this.#history.get(key);
    if (history === undefined) {
      history = [];
      this.#history.set(key, history);
      this.#insertSorted(key);
    }
    const last = history[history.length - 1];
    if (last !== undefined && last.revision >= revision) {
      throw new Error(`model: revision ${revision} after ${last.revision}`);
    }
    history.push({ revision, kv });
  }

  #insertSorted(key: string): void {
    const keys = this.#sortedKeys;
    if (keys === undefined) return; // built on the next read
    keys.splice(lowerBound(keys, key), 0, key);
  }
}

/** The index of the first of the sorted `keys` that is not below `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (keys[mid]! < key) low = mid + 1;
    else high = mid;
  }
  return low;
}

// --- operations, on the store and on the model ------------------------------

type Op =
  | { kind: "put"; key: Uint8Array; value: Uint8Array; options: PutOptions }
  | { kind: "get"; key: Uint8Array; options: RangeOptions }
  | { kind: "delete"; key: Uint8Array; options: DeleteOptions }
  | { kind: "scan"; key: Uint8Array; options: ScanOptions }
  | { kind: "compact"; revision: number; physical: boolean }
  | { kind: "grant"; id: bigint }
  | { kind: "revoke"; id: bigint }
  | { kind: "yield" };

/**
 * An operation or answer as text: bytes and latin1 strings with every byte
 * outside printable ASCII as \xNN.
 */
function describe(op: unknown): string {
  return JSON.stringify(op, (_name, value) => {
    if (value instanceof Uint8Array) return `bytes"${show(latin1(value))}"`;
    if (typeof value === "string") return show(value);
    if (typeof value === "bigint") return `${value}n`;
    return value;
  });
}

function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Runs `op` on the store and returns its answer in the model's shape; a scan
 * stops after `scanItemsMax` items.
 */
async function applyToStore(
  db: Store,
  op: Op,
  scanItemsMax = Infinity,
): Promise<Outcome> {
  try {
    switch (op.kind) {
      case "put": {
        const response = await db.put(op.key, op.value, op.options);
        const prevKv = response.prevKv ? plainFromStore(response.prevKv) : null;
        scribble(response.prevKv?.key);
        scribble(response.prevKv?.value);
        return { revision: response.header.revision, prevKv };
      }
      case "get": {
        const response = await db.get(op.key, op.options);
        const kvs = response.kvs.map(plainFromStore);
        for (const kv of response.kvs) scribbleKv(kv);
        return {
          revision: response.header.revision,
          kvs,
          more: response.more,
          count: response.count,
        };
      }
      case "delete": {
        const response = await db.delete(op.key, op.options);
        const prevKvs = response.prevKvs.map(plainFromStore);
        for (const kv of response.prevKvs) scribbleKv(kv);
        return {
          revision: response.header.revision,
          deleted: response.deleted,
          prevKvs,
        };
      }
      case "scan": {
        // Bounded, so that a scan that never ends fails instead of hanging.
        const got: KeyValue[] = [];
        for await (const kv of db.scan(op.key, op.options)) {
          got.push(kv);
          if (got.length > scanItemsMax) break;
        }
        const kvs = got.map(plainFromStore);
        // Scribbled only once the scan is over: mid-scan scribbling has its
        // own test below.
        for (const kv of got) scribbleKv(kv);
        return { kvs };
      }
      case "compact": {
        const response = await db.compact(op.revision, {
          physical: op.physical,
        });
        return { revision: response.header.revision };
      }
      case "grant": {
        const response = await db.grant(LEASE_TTL_SECONDS, { id: op.id });
        return {
          revision: response.header.revision,
          id: response.id,
          ttl: response.ttl,
        };
      }
      case "revoke": {
        const response = await db.revoke(op.id);
        return { revision: response.header.revision };
      }
      case "yield":
        await nextTask();
        return {};
    }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

function scribbleKv(kv: KeyValue): void {
  scribble(kv.key);
  scribble(kv.value);
}

/** Where `actual` first differs from `expected`, or undefined when equal. */
function firstDifference(
  actual: unknown,
  expected: unknown,
  path = "",
): string | undefined {
  if (Object.is(actual, expected)) return undefined;
  if (Array.isArray(actual) && Array.isArray(expected)) {
    const length = Math.min(actual.length, expected.length);
    for (let i = 0; i < length; i++) {
      const difference = firstDifference(
        actual[i],
        expected[i],
        `${path}[${i}]`,
      );
      if (difference !== undefined) return difference;
    }
    if (actual.length === expected.length) return undefined;
    const extra = actual.length > expected.length
      ? `store has extra ${describe(actual[length])}`
      : `store lacks ${describe(expected[length])}`;
    return `${path}.length: store ${actual.length}, model ${expected.length} (${extra})`;
  }
  if (
    typeof actual === "object" && actual !== null &&
    typeof expected === "object" && expected !== null &&
    !Array.isArray(actual) && !Array.isArray(expected)
  ) {
    const a = actual as Record<string, unknown>;
    const e = expected as Record<string, unknown>;
    for (const name in e) {
      const difference = firstDifference(a[name], e[name], `${path}.${name}`);
      if (difference !== undefined) return difference;
    }
    for (const name in a) {
      if (!(name in e)) {
        return `${path}.${name}: store ${describe(a[name])}, model has none`;
      }
    }
    return undefined;
  }
  return `${path || "answer"}: store ${describe(actual)}, model ${
    describe(expected)
  }`;
}

/** Drives the store and the model with the same operations and compares. */
class Harness {
  #opIndex = 0;

  constructor(
    readonly name: string,
    readonly db: Store,
    readonly model: Model,
  ) {}

  /** Applies `op` to both and fails on the first difference. */
  async run(op: Op): Promise<void> {
    const index = this.#opIndex++;
    // The put's bytes as given, for the report (they are scribbled below).
    const given = op.kind === "put"
      ? { key: latin1(op.key), value: latin1(op.value) }
      : undefined;
    const expected = this.model.apply(op);
    const scanItemsMax = Array.isArray(expected.kvs)
      ? expected.kvs.length + 1
      : Infinity;
    const actual = await applyToStore(this.db, op, scanItemsMax);
    // The store must have copied what it keeps of the caller's buffers.
    if (op.kind === "put") {
      scribble(op.key);
      scribble(op.value);
    }
    const difference = firstDifference(actual, expected) ??
      this.#stateDifference();
    if (difference !== undefined) {
      const asGiven = given === undefined
        ? op
        : { ...op, key: bytesOf(given.key), value: bytesOf(given.value) };
      this.fail(index, describe(asGiven), difference);
    }
  }

  /** Compares the store's revision and compacted revision with the model's. */
  #stateDifference(): string | undefined {
    return firstDifference(
      {
        revision: this.db.revision,
        compactRevision: this.db.compactRevision,
      },
      {
        revision: this.model.revision,
        compactRevision: this.model.compactRevision,
      },
      "store",
    );
  }

  /** Runs the store's invariant checker. */
  check(): void {
    try {
      this.db.check();
    } catch (error) {
      this.fail(this.#opIndex, "db.check()", String(error));
    }
  }

  /** Counts an operation driven outside `run` (paused scans). */
  nextIndex(): number {
    return this.#opIndex++;
  }

  fail(index: number, what: string, detail: string): never {
    assert.fail(
      `store disagrees with the model in the ${this.name} test ` +
        `(seed ${SEED}, operation #${index}): ${what}\n  ${detail}\n` +
        `  replay: ${REPLAY}`,
    );
  }
}

/**
 * A scan consumed a few items at a time while other operations run between
 * pages. It must keep yielding the snapshot of its revision, and fail with
 * etcd's compacted error at the first page it fetches after a compaction has
 * passed its revision (the store checks at page boundaries only).
 */
class PausedScan {
  readonly #iterator: AsyncGenerator<KeyValue>;
  readonly #expected: PlainKv[];
  readonly #pageKeys: number;
  #taken = 0;
  #done = false;

  constructor(
    readonly harness: Harness,
    readonly key: Uint8Array,
    readonly options: ScanOptions & { revision: number; pageKeys: number },
  ) {
    this.#expected = harness.model.scan(latin1(key), options);
    this.#pageKeys = options.pageKeys;
    this.#iterator = harness.db.scan(key, options);
  }

  get done(): boolean {
    return this.#done;
  }

  /** Takes up to `items` more items, comparing each. */
  async take(items: number): Promise<void> {
    const model = this.harness.model;
    for (let i = 0; i < items && !this.#done; i++) {
      const index = this.harness.nextIndex();
      const atPageStart = this.#taken % this.#pageKeys === 0;
      const compacted = model.compactRevision > this.options.revision;
      let actual: Outcome;
      try {
        const step = await this.#iterator.next();
        // Not scribbled: that mid-scan case has its own test below.
        actual = step.done ? { done: true } : {
          kv: plainFromStore(step.value),
        };
      } catch (error) {
        actual = { error: error instanceof Error ? error.message : `${error}` };
      }
      let expected: Outcome;
      if (atPageStart && compacted) expected = { error: COMPACTED };
      else if (this.#taken === this.#expected.length) expected = { done: true };
      else expected = { kv: this.#expected[this.#taken]! };
      const difference = firstDifference(actual, expected);
      if (difference !== undefined) {
        const what = `paused scan, item ${this.#taken}: ${
          describe({ key: this.key, options: this.options })
        }`;
        this.harness.fail(index, what, difference);
      }
      if ("kv" in expected) this.#taken++;
      else this.#done = true;
    }
  }
}

// --- the small key space -----------------------------------------------------

/**
 * Keys that stress byte order: 0x00 and 0xff at every position, keys that
 * are prefixes of each other, and the prefix-end corner cases (a prefix of
 * only 0xff bytes selects every key from it on).
 */
const SMALL_KEYS = [
  "\x00",
  "\x00\x00",
  "\x00\xff",
  "\x01",
  "a",
  "a\x00",
  "a\x00\x00",
  "a\x01",
  "ab",
  "ab\x00",
  "abc",
  "ab\xff",
  "a\xff",
  "a\xff\xff",
  "b",
  "b\x00",
  "\x7f",
  "\x80",
  "\xfe",
  "\xfe\xff",
  "\xff",
  "\xff\x00",
  "\xff\xff",
  "\xff\xff\xff",
].map(bytesOf);
const KEY_BYTES = [0x00, 0x01, 0x61, 0x62, 0x7f, 0x80, 0xfe, 0xff];
/** Values with ties and byte-order corners, for sorting by value. */
const VALUES = ["", "0", "1", "10", "a", "\x00", "\x00\x00", "\xff", "zz"];
/** Lease IDs the test grants, including ones a JS number cannot hold. */
const GRANTED_LEASES = [1n, 2n ** 53n + 1n, 0x7fff_ffff_ffff_ffffn];
/** Lease IDs puts and revocations use: none, granted ones, a never granted one. */
const LEASES = [0n, ...GRANTED_LEASES, 42n];
const SORT_ORDERS: readonly SortOrder[] = ["none", "ascend", "descend"];
const SORT_TARGETS: readonly SortTarget[] = [
  "key",
  "version",
  "create",
  "mod",
  "value",
];

function randomBytes(rng: Random, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = rng.pick(KEY_BYTES);
  return bytes;
}

function smallKey(rng: Random): Uint8Array {
  return rng.chance(0.85)
    ? rng.pick(SMALL_KEYS).slice()
    : randomBytes(rng, rng.between(1, 3));
}

function smallValue(rng: Random): Uint8Array {
  return rng.chance(0.8)
    ? bytesOf(rng.pick(VALUES))
    : randomBytes(rng, rng.between(0, 4));
}

/** One key, `[key, rangeEnd)` (incl. empty, "\0" and inverted ends), prefix or from-key. */
function smallSelector(
  rng: Random,
): { rangeEnd?: Uint8Array; prefix?: boolean; fromKey?: boolean } {
  switch (rng.int(7)) {
    case 0:
    case 1:
      return {};
    case 2:
    case 3:
      return { rangeEnd: smallKey(rng) };
    case 4:
      return { prefix: true };
    case 5:
      return { fromKey: true };
    default:
      return {
        rangeEnd: rng.pick([
          new Uint8Array(0),
          new Uint8Array([0]),
          new Uint8Array([0xff]),
          new Uint8Array([0xff, 0xff, 0xff, 0xff]),
        ]),
      };
  }
}

/** A read revision: current, exactly compacted, compacted, future, or kept. */
function readRevision(rng: Random, model: Model): number | undefined {
  switch (rng.int(12)) {
    case 0:
    case 1:
      return undefined;
    case 2:
      return 0;
    case 3:
      return -1;
    case 4:
      return model.compactRevision;
    case 5:
      return model.compactRevision - 1;
    case 6:
      return model.revision + rng.between(1, 2);
    default:
      return rng.between(Math.max(1, model.compactRevision), model.revision);
  }
}

function rangeOptions(
  rng: Random,
  model: Model,
  limits: readonly number[],
): RangeOptions {
  const options: RangeOptions = {};
  const revision = readRevision(rng, model);
  if (revision !== undefined) options.revision = revision;
  if (rng.chance(0.5)) options.limit = rng.pick(limits);
  if (rng.chance(0.5)) options.sortOrder = rng.pick(SORT_ORDERS);
  if (rng.chance(0.5)) options.sortTarget = rng.pick(SORT_TARGETS);
  if (rng.chance(0.2)) options.keysOnly = true;
  if (rng.chance(0.1)) options.countOnly = true;
  const filterRevision = () =>
    rng.chance(0.05) ? -1 : rng.between(0, model.revision + 1);
  if (rng.chance(0.15)) options.minModRevision = filterRevision();
  if (rng.chance(0.15)) options.maxModRevision = filterRevision();
  if (rng.chance(0.15)) options.minCreateRevision = filterRevision();
  if (rng.chance(0.15)) options.maxCreateRevision = filterRevision();
  return options;
}

function smallPut(rng: Random): Op {
  const key = rng.chance(0.02) ? new Uint8Array(0) : smallKey(rng);
  const options: PutOptions = {};
  let value = smallValue(rng);
  if (rng.chance(0.5)) options.prevKv = true;
  if (rng.chance(0.1)) {
    options.ignoreValue = true;
    if (rng.chance(0.85)) value = new Uint8Array(0);
  }
  if (rng.chance(0.1)) {
    options.ignoreLease = true;
    if (rng.chance(0.15)) options.lease = rng.pick(LEASES);
  } else if (rng.chance(0.3)) {
    options.lease = rng.pick(LEASES);
  }
  return { kind: "put", key, value, options };
}

function smallOp(rng: Random, model: Model): Op {
  const roll = rng.int(100);
  if (roll < 30) return smallPut(rng);
  if (roll < 40) {
    const key = rng.chance(0.02) ? new Uint8Array(0) : smallKey(rng);
    const options: DeleteOptions = smallSelector(rng);
    if (rng.chance(0.5)) options.prevKv = true;
    return { kind: "delete", key, options };
  }
  if (roll < 70) {
    const key = rng.chance(0.02) ? new Uint8Array(0) : smallKey(rng);
    const options = {
      ...smallSelector(rng),
      ...rangeOptions(rng, model, [-1, 0, 1, 2, 3, 5, 30]),
    };
    return { kind: "get", key, options };
  }
  if (roll < 85) {
    const key = rng.chance(0.02) ? new Uint8Array(0) : smallKey(rng);
    const options: ScanOptions = smallSelector(rng);
    const revision = readRevision(rng, model);
    if (revision !== undefined) options.revision = revision;
    if (rng.chance(0.9)) options.pageKeys = rng.between(1, 4);
    if (rng.chance(0.5)) options.reverse = true;
    if (rng.chance(0.2)) options.keysOnly = true;
    return { kind: "scan", key, options };
  }
  if (roll < 88) {
    // Mostly valid targets that leave some history readable, sometimes the
    // last compaction (compacted) or one past the current revision (future).
    const low = Math.max(1, model.compactRevision + 1);
    const revision = rng.chance(0.8) && low <= model.revision
      ? rng.between(low, model.revision)
      : rng.chance(0.5)
      ? model.compactRevision
      : model.revision + 1;
    return { kind: "compact", revision, physical: rng.chance(0.5) };
  }
  if (roll < 91) return { kind: "grant", id: rng.pick(GRANTED_LEASES) };
  if (roll < 94) return { kind: "revoke", id: rng.pick(LEASES.slice(1)) };
  return { kind: "yield" };
}

Deno.test("the store agrees with the model over thousands of random operations on keys that stress byte order", async () => {
  console.log(`seed ${SEED} (replay: ${REPLAY})`);
  const rng = new Random(SEED ^ 0x51_2e_d0_01); // each test its own stream
  const model = new Model();
  const db = await open(undefined, { clock: () => 0 });
  const harness = new Harness("small", db, model);
  try {
    for (const id of GRANTED_LEASES) await harness.run({ kind: "grant", id });
    for (let i = 0; i < SMALL_OPS; i++) {
      await harness.run(smallOp(rng, model));
      if (i % SMALL_CHECK_EVERY_OPS === 0) harness.check();
    }
    // Let a pending compaction finish, then look at everything once more.
    const low = Math.max(1, model.compactRevision + 1);
    if (low <= model.revision) {
      await harness.run({
        kind: "compact",
        revision: rng.between(low, model.revision),
        physical: true,
      });
    }
    for (const revision of [model.compactRevision, 0]) {
      await harness.run({
        kind: "get",
        key: new Uint8Array([0]),
        options: { fromKey: true, revision },
      });
      await harness.run({
        kind: "scan",
        key: new Uint8Array([0]),
        options: { fromKey: true, revision, pageKeys: 2, reverse: true },
      });
    }
    harness.check();
  } finally {
    await db.close();
  }
});

// --- many keys -------------------------------------------------------------

/**
 * ~100k distinct keys in three groups (first byte 0x00, "a", 0xff), each a
 * 3-byte big-endian spread of its number (so 0x00 and 0xff appear inside
 * keys), plus variants that are extensions and prefixes of other keys.
 */
function largeKeys(): Uint8Array[] {
  const seen = new Set<string>();
  const keys: Uint8Array[] = [];
  const add = (bytes: number[]) => {
    const text = String.fromCharCode(...bytes);
    if (seen.has(text)) return;
    seen.add(text);
    keys.push(new Uint8Array(bytes));
  };
  for (let i = 0; i < LARGE_BASE_KEYS; i++) {
    const group = [0x00, 0x61, 0xff][i % 3]!;
    const n = Math.floor(i / 3) * 557;
    const base = [group, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    add(base);
    if (i % 5 === 0) add([...base, 0x00]);
    if (i % 13 === 0) add([...base, 0xff, 0xff]);
    if (i % 17 === 0) add(base.slice(0, 3));
  }
  return keys;
}

function largeValue(rng: Random): Uint8Array {
  return rng.chance(0.3)
    ? bytesOf(rng.pick(VALUES))
    : randomBytes(rng, rng.between(1, 8));
}

/** A window of up to `widthMax` consecutive keys of `sorted`, as [start, end). */
function window(
  rng: Random,
  sorted: readonly Uint8Array[],
  widthMax: number,
): { key: Uint8Array; rangeEnd: Uint8Array } {
  const start = rng.int(sorted.length - 1);
  const end = Math.min(sorted.length - 1, start + rng.between(1, widthMax));
  return { key: sorted[start]!.slice(), rangeEnd: sorted[end]!.slice() };
}

/** A random operation of the compaction phase over `sorted` (the loaded keys). */
function largeOp(rng: Random, model: Model, sorted: readonly Uint8Array[]): Op {
  const roll = rng.int(10);
  if (roll < 3) {
    return {
      kind: "put",
      key: rng.pick(sorted).slice(),
      value: largeValue(rng),
      options: { prevKv: rng.chance(0.5) },
    };
  }
  if (roll < 4) {
    return {
      kind: "put",
      key: randomBytes(rng, rng.between(2, 5)),
      value: largeValue(rng),
      options: {},
    };
  }
  if (roll < 5) {
    const { key, rangeEnd } = window(rng, sorted, 40);
    return {
      kind: "delete",
      key,
      options: { rangeEnd, prevKv: rng.chance(0.5) },
    };
  }
  if (roll < 6) {
    return { kind: "delete", key: rng.pick(sorted).slice(), options: {} };
  }
  if (roll < 9) {
    const { key, rangeEnd } = window(rng, sorted, 3000);
    const options = {
      rangeEnd,
      ...rangeOptions(rng, model, [0, 1, 511, 512, 513, 1000]),
    };
    return { kind: "get", key, options };
  }
  const { key, rangeEnd } = window(rng, sorted, 3000);
  const revision = readRevision(rng, model);
  return {
    kind: "scan",
    key,
    options: {
      rangeEnd,
      ...(revision === undefined ? {} : { revision }),
      pageKeys: rng.pick([1, 3, 511, 512, 513]),
      reverse: rng.chance(0.5),
      keysOnly: rng.chance(0.2),
    },
  };
}

Deno.test("the store agrees with the model over ~100k keys: multi-page ranges and scans, and writes and reads while a compaction runs in steps", async () => {
  console.log(`seed ${SEED} (replay: ${REPLAY})`);
  const rng = new Random(SEED ^ 0x00_1a_4e_02); // each test its own stream
  const model = new Model();
  const db = await open();
  const harness = new Harness("large", db, model);
  const all = { key: new Uint8Array([0]), fromKey: true } as const;
  const laps: string[] = [];
  let lapStartMs = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    laps.push(`${name} ${((now - lapStartMs) / 1000).toFixed(1)} s`);
    lapStartMs = now;
  };
  try {
    // Load in random order, so the tree splits everywhere.
    const loaded = largeKeys();
    rng.shuffle(loaded);
    for (const key of loaded) {
      await harness.run({
        kind: "put",
        key: key.slice(),
        value: largeValue(rng),
        options: {},
      });
    }
    const loadedRevision = model.revision;
    const sorted = model.sortedKeys().map(bytesOf);
    harness.check();
    lap(`load ${sorted.length} keys`);

    // History: overwrites of random keys, then wide deletes, so that reads
    // at the current revision cross runs of thousands of invisible keys
    // (several engine pages) and reads at older revisions see them.
    for (let i = 0; i < LARGE_OVERWRITES; i++) {
      await harness.run({
        kind: "put",
        key: rng.pick(sorted).slice(),
        value: largeValue(rng),
        options: { prevKv: rng.chance(0.2) },
      });
    }
    const overwrittenRevision = model.revision;
    const deletedRuns: [number, number][] = [];
    for (let i = 0; i < 3; i++) {
      const start = rng.int(sorted.length - 5000);
      const end = start + rng.between(1500, 4000);
      deletedRuns.push([start, end]);
      await harness.run({
        kind: "delete",
        key: sorted[start]!.slice(),
        options: { rangeEnd: sorted[end]!.slice(), prevKv: i === 0 },
      });
    }
    // A prefix delete: every key that starts with "a" and the byte 0x10.
    await harness.run({
      kind: "delete",
      key: new Uint8Array([0x61, 0x10]),
      options: { prefix: true, prevKv: true },
    });
    // Bring back some deleted keys (a new generation for each).
    for (let i = 0; i < 300; i++) {
      const [start, end] = rng.pick(deletedRuns);
      await harness.run({
        kind: "put",
        key: sorted[rng.between(start, end - 1)]!.slice(),
        value: largeValue(rng),
        options: { prevKv: true },
      });
    }
    harness.check();

    lap("history");
    // Whole-keyspace reads at several revisions, and multi-page ranges.
    for (
      const revision of [0, 1, loadedRevision, overwrittenRevision]
    ) {
      await harness.run({
        kind: "get",
        key: all.key,
        options: { fromKey: true, revision, countOnly: true },
      });
    }
    await harness.run({
      kind: "get",
      key: all.key,
      options: { fromKey: true, revision: loadedRevision },
    });
    for (const limit of [1, 511, 512, 513, 1025, 5000]) {
      await harness.run({
        kind: "get",
        key: rng.pick(sorted).slice(),
        options: { fromKey: true, limit },
      });
    }
    await harness.run({
      kind: "get",
      key: new Uint8Array([0x61]),
      options: {
        prefix: true,
        sortTarget: "mod",
        sortOrder: "descend",
        limit: 700,
      },
    });
    await harness.run({
      kind: "get",
      key: all.key,
      options: { fromKey: true, sortTarget: "value", limit: 600 },
    });
    await harness.run({
      kind: "get",
      key: all.key,
      options: {
        fromKey: true,
        minModRevision: loadedRevision + 1,
        sortTarget: "version",
        sortOrder: "descend",
      },
    });
    await harness.run({
      kind: "get",
      key: new Uint8Array([0xff]),
      options: {
        prefix: true,
        maxCreateRevision: Math.floor(loadedRevision / 2),
        minCreateRevision: 2,
        limit: 1000,
        revision: overwrittenRevision,
      },
    });
    await harness.run({
      kind: "scan",
      key: new Uint8Array([0x61]),
      options: { prefix: true, revision: loadedRevision, pageKeys: 512 },
    });
    await harness.run({
      kind: "scan",
      key: all.key,
      options: { fromKey: true, pageKeys: 513, reverse: true, keysOnly: true },
    });
    for (let i = 0; i < 20; i++) {
      await harness.run(largeOp(rng, model, sorted));
    }

    lap("reads");
    // A scan paused between pages while writes land keeps its snapshot.
    const writesDuring = new PausedScan(harness, all.key, {
      fromKey: true,
      revision: model.revision,
      pageKeys: 5000,
    });
    const beforeCompaction = new PausedScan(harness, all.key, {
      fromKey: true,
      revision: loadedRevision,
      pageKeys: 3000,
      reverse: true,
    });
    while (!writesDuring.done) {
      await writesDuring.take(5000);
      for (let i = 0; i < 10; i++) {
        await harness.run(largeOp(rng, model, sorted));
      }
    }
    await beforeCompaction.take(3000);

    lap("paused scan");
    // Incremental compaction, interleaved with writes and reads. The first
    // compaction keeps part of the overwrites readable; a second one
    // replaces it while it runs; a physical one at the end waits for all.
    const firstTarget = rng.between(loadedRevision + 1, overwrittenRevision);
    await harness.run({
      kind: "compact",
      revision: firstTarget,
      physical: false,
    });
    await beforeCompaction.take(1); // fails: its revision was compacted
    assert.ok(beforeCompaction.done);
    const atCompacted = new PausedScan(harness, all.key, {
      fromKey: true,
      revision: firstTarget,
      pageKeys: 1000,
    });
    const reverseAtCurrent = new PausedScan(harness, all.key, {
      fromKey: true,
      revision: model.revision,
      pageKeys: 4000,
      reverse: true,
      keysOnly: true,
    });
    const secondRound = Math.floor(LARGE_COMPACTION_ROUNDS / 3);
    for (let round = 0; round < LARGE_COMPACTION_ROUNDS; round++) {
      await harness.run({ kind: "yield" });
      if (round === secondRound) {
        // Past `atCompacted`'s revision, not past `reverseAtCurrent`'s.
        await harness.run({
          kind: "compact",
          revision: rng.between(
            firstTarget + 1,
            reverseAtCurrent.options.revision,
          ),
          physical: false,
        });
      }
      for (let i = 0; i < LARGE_OPS_PER_ROUND; i++) {
        await harness.run(largeOp(rng, model, sorted));
      }
      // At exactly the compacted revision, over keys compaction has or has
      // not reached yet.
      const { key, rangeEnd } = window(rng, sorted, 3000);
      await harness.run({
        kind: "get",
        key,
        options: {
          rangeEnd,
          revision: model.compactRevision,
          limit: rng.pick([0, 600]),
          sortOrder: rng.pick(SORT_ORDERS),
        },
      });
      await atCompacted.take(1000);
      await reverseAtCurrent.take(4000);
      if (round % 15 === 14) harness.check();
    }
    assert.ok(atCompacted.done && reverseAtCurrent.done);
    lap("compaction rounds");

    // A physical compaction at the current revision leaves only live keys.
    await harness.run({
      kind: "compact",
      revision: model.revision,
      physical: true,
    });
    harness.check();
    const live = model.visible({ start: "\x00", end: null }, model.revision);
    assert.equal(
      db.stats().keys,
      live.length,
      `after a physical compaction at the current revision the tree should hold only live keys (seed ${SEED}; replay: ${REPLAY})`,
    );
    await harness.run({
      kind: "get",
      key: all.key,
      options: { fromKey: true, revision: model.compactRevision },
    });
    await harness.run({
      kind: "get",
      key: all.key,
      options: { fromKey: true, revision: model.compactRevision - 1 },
    });
    await harness.run({
      kind: "compact",
      revision: model.compactRevision,
      physical: true,
    });
    await harness.run({
      kind: "compact",
      revision: model.revision + 1,
      physical: false,
    });
    await harness.run({
      kind: "scan",
      key: new Uint8Array([0xff]),
      options: { prefix: true, pageKeys: 777, reverse: true },
    });
    harness.check();
    lap("physical compaction");
  } finally {
    console.log(`large test: ${laps.join(", ")}`);
    await db.close();
  }
});

Deno.test("a scan does not depend on the bytes of the key-values it has already yielded", async () => {
  const db = await open();
  try {
    const keys = ["a", "b", "c", "d", "e"];
    for (const key of keys) await db.put(key, "v");
    for (const reverse of [false, true]) {
      const seen: string[] = [];
      const scan = db.scan("a", { fromKey: true, pageKeys: 2, reverse });
      for await (const kv of scan) {
        seen.push(kv.keyText);
        // Key-values are the caller's copies (src/mvcc/range.ts toKeyValue):
        // a caller may reuse their buffers while it iterates.
        kv.key.fill(0xee);
        kv.value.fill(0xee);
        if (seen.length > keys.length) break; // a scan that would not end
      }
      assert.deepEqual(
        seen,
        reverse ? [...keys].reverse() : keys,
        `reverse: ${reverse}`,
      );
    }
  } finally {
    await db.close();
  }
});
