/**
 * Turns the ways a request names keys — one key, `[key, range_end)`, a
 * prefix, from-key — into the engine's `KeyBounds`, as etcd and etcdctl do.
 *
 * @module
 */

import { type Bytes, type KeySelector, toBytes } from "./kv.ts";
import type { KeyBounds } from "./kv_store.ts";
import { errors } from "./errors.ts";

/**
 * The end of the prefix range of `key`: the key with its last byte that is
 * not 0xff incremented and the rest dropped (etcdctl's `GetPrefix`); a key of
 * only 0xff bytes has no such end, so the range runs to the last key
 * (`"\0"`, from-key).
 */
export function prefixEnd(key: Uint8Array): Uint8Array {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i]! < 0xff) {
      const end = key.slice(0, i + 1);
      end[i]! += 1;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/**
 * The smallest key greater than `key` in byte order, `key` + 0x00: where a
 * paged scan goes on after the last key it returned.
 */
export function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/**
 * Resolves a request's key and selector to bounds. `encodeKey` turns the
 * key into bytes (a reader whose bounds live only during the call can pass
 * an encoder into a reused buffer).
 * @throws EtcdError `etcdserver: key is not provided` for an empty key
 *   (except with `prefix` or `fromKey`, which then select every key, as
 *   etcd's client does).
 * @throws TypeError when more than one of rangeEnd, prefix and fromKey is given.
 */
export function resolveBounds(
  key: Bytes,
  selector: KeySelector = {},
  encodeKey: (key: Bytes) => Uint8Array = toBytes,
): KeyBounds {
  let start = encodeKey(key);
  const given = (selector.rangeEnd !== undefined ? 1 : 0) +
    (selector.prefix ? 1 : 0) + (selector.fromKey ? 1 : 0);
  if (given > 1) {
    throw new TypeError(
      "Cannot combine rangeEnd, prefix and fromKey: give at most one",
    );
  }
  if (start.length === 0) {
    // As etcd's client: the empty prefix, or every key from the empty key,
    // is the whole key space, which the wire spells key "\0", end "\0".
    if (!selector.prefix && !selector.fromKey) throw errors.emptyKey();
    start = new Uint8Array([0]);
    return { start, end: null };
  }
  let end: Uint8Array | undefined;
  if (selector.prefix) end = prefixEnd(start);
  else if (selector.fromKey) end = new Uint8Array([0]);
  else if (selector.rangeEnd !== undefined) end = toBytes(selector.rangeEnd);
  return boundsFromWire(start, end);
}

/**
 * Bounds from the wire form of a request (etcd's RangeRequest fields): an
 * empty or absent `rangeEnd` selects `key` alone, `"\0"` selects every key
 * from `key` on.
 */
export function boundsFromWire(
  key: Uint8Array,
  rangeEnd: Uint8Array | undefined,
): KeyBounds {
  if (rangeEnd === undefined || rangeEnd.length === 0) {
    return { start: key, end: undefined };
  }
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) {
    return { start: key, end: null };
  }
  return { start: key, end: rangeEnd };
}
