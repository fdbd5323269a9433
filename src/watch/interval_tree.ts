/**
 * An interval tree over byte-string ranges `[start, end)` (`end === null`
 * meaning unbounded), answering "which intervals contain this key?" in
 * O(log n + matches) expected time — etcd's `adt.IntervalTree`, as a treap.
 *
 * Each node holds one interval and is ordered by `(start, id)`; each node also
 * carries the largest `end` in its subtree (`maxEnd`). A stabbing query for
 * key K descends from the root and prunes a subtree when its `maxEnd <= K`
 * (every interval in it ends at or before K) and the right subtree of a node
 * whose `start > K` (every interval there starts after K).
 *
 * A worked example: intervals a=[b, d), b=[c, ∞), c=[e, f) give (priorities
 * aside) the tree
 *
 * ```
 *            b=[c,∞) max ∞
 *           /             \
 *   a=[b,d) max d     c=[e,f) max f
 * ```
 *
 * Stabbing "cc": the root's max ∞ > "cc", so visit the left child a: its max
 * "d" > "cc", "b" <= "cc" < "d" → match. Back at the root: "c" <= "cc" → match
 * (unbounded); then the right child c: its max "f" > "cc" but its start "e" >
 * "cc", so it and its right subtree are skipped.
 *
 * @module
 */

import { compareBytes } from "../mvcc/kv_store.ts";

/** An interval and the value stored with it. */
export interface Interval<T> {
  /** First key (inclusive). */
  readonly start: Uint8Array;
  /** End (exclusive); `null` means unbounded. */
  readonly end: Uint8Array | null;
  /** Tie-breaker for equal starts; unique per tree. */
  readonly id: number;
  /** The value reported when the interval contains a key. */
  readonly value: T;
}

interface Node<T> {
  readonly item: Interval<T>;
  readonly priority: number;
  left: Node<T> | undefined;
  right: Node<T> | undefined;
  maxEnd: Uint8Array | null;
}

/** Compares ends where `null` is +∞. */
function compareEnds(a: Uint8Array | null, b: Uint8Array | null): number {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  return compareBytes(a, b);
}

function compareItems<T>(a: Interval<T>, b: Interval<T>): number {
  return compareBytes(a.start, b.start) || a.id - b.id;
}

function update<T>(node: Node<T>): void {
  let max = node.item.end;
  if (node.left && compareEnds(node.left.maxEnd, max) > 0) {
    max = node.left.maxEnd;
  }
  if (node.right && compareEnds(node.right.maxEnd, max) > 0) {
    max = node.right.maxEnd;
  }
  node.maxEnd = max;
}

function rotateRight<T>(node: Node<T>): Node<T> {
  const left = node.left!;
  node.left = left.right;
  left.right = node;
  update(node);
  update(left);
  return left;
}

function rotateLeft<T>(node: Node<T>): Node<T> {
  const right = node.right!;
  node.right = right.left;
  right.left = node;
  update(node);
  update(right);
  return right;
}

/** A set of intervals that answers stabbing queries. */
export class IntervalTree<T> {
  #root: Node<T> | undefined;
  #size = 0;
  /** Nodes visited by stabbing queries since creation (a work counter). */
  nodesVisited = 0;

  /** Number of intervals held. */
  get size(): number {
    return this.#size;
  }

  /** Adds an interval; its `(start, id)` must not be in the tree yet. */
  insert(item: Interval<T>): void {
    if (item.end !== null && compareBytes(item.start, item.end) >= 0) {
      throw new RangeError("Cannot insert an empty interval: start >= end");
    }
    this.#root = this.#insert(this.#root, {
      item,
      priority: Math.random(),
      left: undefined,
      right: undefined,
      maxEnd: item.end,
    });
    this.#size++;
  }

  /** Removes the interval with `item`'s `(start, id)`; returns whether it was there. */
  delete(item: Interval<T>): boolean {
    const before = this.#size;
    this.#root = this.#delete(this.#root, item);
    return this.#size < before;
  }

  /** Calls `visit` with the value of every interval that contains `key`. */
  stab(key: Uint8Array, visit: (value: T) => void): void {
    this.#stab(this.#root, key, visit);
  }

  #insert(node: Node<T> | undefined, fresh: Node<T>): Node<T> {
    if (node === undefined) return fresh;
    const order = compareItems(fresh.item, node.item);
    if (order === 0) {
      throw new Error(
        `interval tree: interval ${fresh.item.id} inserted twice`,
      );
    }
    if (order < 0) {
      node.left = this.#insert(node.left, fresh);
      if (node.left.priority > node.priority) return rotateRight(node);
    } else {
      node.right = this.#insert(node.right, fresh);
      if (node.right.priority > node.priority) return rotateLeft(node);
    }
    update(node);
    return node;
  }

  #delete(node: Node<T> | undefined, item: Interval<T>): Node<T> | undefined {
    if (node === undefined) return undefined;
    const order = compareItems(item, node.item);
    if (order < 0) node.left = this.#delete(node.left, item);
    else if (order > 0) node.right = this.#delete(node.right, item);
    else {
      if (node.left === undefined) {
        this.#size--;
        return node.right;
      }
      if (node.right === undefined) {
        this.#size--;
        return node.left;
      }
      // Rotate the node down below its higher-priority child, then retry.
      const top = node.left.priority > node.right.priority
        ? rotateRight(node)
        : rotateLeft(node);
      if (top.left === node) top.left = this.#delete(node, item);
      else top.right = this.#delete(node, item);
      update(top);
      return top;
    }
    update(node);
    return node;
  }

  #stab(node: Node<T> | undefined, key: Uint8Array, visit: (value: T) => void) {
    while (node !== undefined) {
      this.nodesVisited++;
      // Every interval below ends at or before the key: none contains it.
      if (node.maxEnd !== null && compareBytes(node.maxEnd, key) <= 0) return;
      this.#stab(node.left, key, visit);
      // This node and everything right of it start after the key.
      if (compareBytes(node.item.start, key) > 0) return;
      const end = node.item.end;
      if (end === null || compareBytes(key, end) < 0) visit(node.item.value);
      node = node.right;
    }
  }
}
