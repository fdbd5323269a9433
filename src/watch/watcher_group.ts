/**
 * A group of watchers indexed by what they watch, so that finding the
 * watchers of a changed key costs time proportional to the watchers that
 * match, not to all watchers (etcd's `watcherGroup`):
 *
 * - single-key watchers in a map from key to watchers;
 * - prefix watchers (`[p, prefixEnd(p))`, what `--prefix` asks for) in a map
 *   from prefix to watchers, probed with the changed key's prefixes of the
 *   lengths in use (usually a handful: "app/", "locks/", …);
 * - every other range (from-key, `[a, b)`) in an interval tree.
 *
 * A changed key "app/x" with single-key watchers on 10,000 other keys and
 * prefix watchers on "app/" and "db/" costs one map probe for "app/x", one
 * per distinct prefix length (here 3 and 4: "app", "app/"), and a stabbing
 * query of the (empty) interval tree.
 *
 * Keys become map keys as "binary strings" (one UTF-16 code unit per byte),
 * which maps bytes to strings one to one.
 *
 * @module
 */

import type { KeyBounds } from "../mvcc/kv_store.ts";
import { prefixEnd } from "../mvcc/key_bounds.ts";
import { compareBytes } from "../mvcc/kv_store.ts";
import { type Interval, IntervalTree } from "./interval_tree.ts";

/** What the group needs to know of a watcher. */
export interface GroupMember {
  /** Unique ID (tie-breaker in the interval tree). */
  readonly id: number;
  /** The keys watched. */
  readonly bounds: KeyBounds;
}

/** Bytes per `String.fromCharCode.apply` call (stays under argument limits). */
const BINARY_STRING_CHUNK_BYTES = 8192;

/** The key as a string with one code unit per byte (a 1:1 map key). */
export function binaryString(bytes: Uint8Array): string {
  const length = bytes.length;
  if (length <= 32) {
    let text = "";
    for (let i = 0; i < length; i++) text += String.fromCharCode(bytes[i]!);
    return text;
  }
  let text = "";
  for (let i = 0; i < length; i += BINARY_STRING_CHUNK_BYTES) {
    const chunk = bytes.subarray(i, i + BINARY_STRING_CHUNK_BYTES);
    text += String.fromCharCode.apply(null, chunk as unknown as number[]);
  }
  return text;
}

/** How a watcher's bounds are indexed. */
type Shape =
  | { kind: "key"; text: string }
  | { kind: "prefix"; text: string }
  | { kind: "range"; interval: Interval<unknown> };

/** Classifies bounds: a single key, a prefix range, or another range. */
function shapeOf(member: GroupMember): Shape {
  const { start, end } = member.bounds;
  if (end === undefined) return { kind: "key", text: binaryString(start) };
  if (start.length > 0 && isPrefixEnd(start, end)) {
    return { kind: "prefix", text: binaryString(start) };
  }
  return {
    kind: "range",
    interval: { start, end, id: member.id, value: member },
  };
}

/** Whether `[start, end)` is exactly the keys that start with `start`. */
function isPrefixEnd(start: Uint8Array, end: Uint8Array | null): boolean {
  const expected = prefixEnd(start);
  // prefixEnd gives "\0" (from-key) for an all-0xff prefix.
  if (end === null) return expected.length === 1 && expected[0] === 0;
  return compareBytes(expected, end) === 0;
}

/** Watchers indexed by key, prefix and range. */
export class WatcherGroup<W extends GroupMember> {
  readonly #members = new Map<W, Shape>();
  readonly #byKey = new Map<string, Set<W>>();
  readonly #byPrefix = new Map<string, Set<W>>();
  /** Prefix length → number of prefixes of that length in `#byPrefix`. */
  readonly #prefixLengths = new Map<number, number>();
  /** The distinct prefix lengths, ascending (rebuilt when they change). */
  #prefixLengthList: number[] = [];
  readonly #ranges = new IntervalTree<W>();
  /** Index probes made by `forEachMatch` (a work counter for tests and stats). */
  #probes = 0;

  /** Number of watchers in the group. */
  get size(): number {
    return this.#members.size;
  }

  /** Map probes plus interval-tree nodes visited, since creation. */
  get probes(): number {
    return this.#probes + this.#ranges.nodesVisited;
  }

  /** Whether `member` is in the group. */
  has(member: W): boolean {
    return this.#members.has(member);
  }

  /** Adds a watcher (it must not be in the group). */
  add(member: W): void {
    if (this.#members.has(member)) {
      throw new Error(`watcher group: watcher ${member.id} added twice`);
    }
    const shape = shapeOf(member);
    this.#members.set(member, shape);
    switch (shape.kind) {
      case "key":
        addToSet(this.#byKey, shape.text, member);
        break;
      case "prefix": {
        if (addToSet(this.#byPrefix, shape.text, member)) {
          const length = shape.text.length;
          const count = this.#prefixLengths.get(length) ?? 0;
          this.#prefixLengths.set(length, count + 1);
          if (count === 0) this.#rebuildPrefixLengths();
        }
        break;
      }
      case "range":
        this.#ranges.insert(shape.interval as Interval<W>);
        break;
    }
  }

  /** Removes a watcher; returns whether it was in the group. */
  delete(member: W): boolean {
    const shape = this.#members.get(member);
    if (shape === undefined) return false;
    this.#members.delete(member);
    switch (shape.kind) {
      case "key":
        removeFromSet(this.#byKey, shape.text, member);
        break;
      case "prefix": {
        if (removeFromSet(this.#byPrefix, shape.text, member)) {
          const length = shape.text.length;
          const count = this.#prefixLengths.get(length)! - 1;
          if (count === 0) {
            this.#prefixLengths.delete(length);
            this.#rebuildPrefixLengths();
          } else this.#prefixLengths.set(length, count);
        }
        break;
      }
      case "range":
        if (!this.#ranges.delete(shape.interval as Interval<W>)) {
          throw new Error(
            `watcher group: watcher ${member.id} missing from the interval tree`,
          );
        }
        break;
    }
    return true;
  }

  /** Every watcher in the group (for close and progress requests). */
  members(): IterableIterator<W> {
    return this.#members.keys();
  }

  /**
   * Calls `visit` for each watcher whose bounds contain `key`. A watcher is
   * visited once per call (its bounds are indexed in exactly one place).
   * @param key the changed key.
   * @param text the key as `binaryString(key)`, computed lazily when omitted.
   */
  forEachMatch(key: Uint8Array, visit: (member: W) => void, text?: string) {
    if (this.#byKey.size > 0) {
      this.#probes++;
      const set = this.#byKey.get(text ??= binaryString(key));
      if (set !== undefined) { for (const member of set) visit(member); }
    }
    for (const length of this.#prefixLengthList) {
      if (length > key.length) break;
      this.#probes++;
      text ??= binaryString(key);
      const set = this.#byPrefix.get(
        length === text.length ? text : text.slice(0, length),
      );
      if (set !== undefined) { for (const member of set) visit(member); }
    }
    if (this.#ranges.size > 0) this.#ranges.stab(key, visit);
  }

  #rebuildPrefixLengths(): void {
    this.#prefixLengthList = [...this.#prefixLengths.keys()].sort((a, b) =>
      a - b
    );
  }
}

/** Adds to the set at `key`; returns whether the set was created. */
function addToSet<W>(map: Map<string, Set<W>>, key: string, member: W) {
  const set = map.get(key);
  if (set !== undefined) {
    set.add(member);
    return false;
  }
  map.set(key, new Set([member]));
  return true;
}

/** Removes from the set at `key`; returns whether the set became empty. */
function removeFromSet<W>(map: Map<string, Set<W>>, key: string, member: W) {
  const set = map.get(key);
  if (set === undefined || !set.delete(member)) {
    throw new Error("watcher group: watcher missing from its key set");
  }
  if (set.size > 0) return false;
  map.delete(key);
  return true;
}
