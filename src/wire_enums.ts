/**
 * etcd's protobuf enums as revkv's API spells them: the one table, by wire
 * number, that both ends translate through — the server's services decode a
 * number into a name (`src/server/kv.ts`), the client encodes a name into
 * its number (`src/client/wire_codec.ts`). The numbers are etcd's
 * `rpc.proto`: `RangeRequest.SortOrder`, `RangeRequest.SortTarget`,
 * `Compare.CompareTarget`, `Compare.CompareResult`.
 *
 * @module
 */

import type { SortOrder, SortTarget } from "./mvcc/kv.ts";
import type { CompareResult, CompareTarget } from "./txn/txn.ts";

/** RangeRequest.SortOrder by wire number (NONE=0, ASCEND, DESCEND). */
export const SORT_ORDERS: readonly SortOrder[] = ["none", "ascend", "descend"];
/** RangeRequest.SortTarget by wire number (KEY=0 … VALUE=4). */
export const SORT_TARGETS: readonly SortTarget[] = [
  "key",
  "version",
  "create",
  "mod",
  "value",
];
/** Compare.CompareTarget by wire number (VERSION=0 … LEASE=4). */
export const COMPARE_TARGETS: readonly CompareTarget[] = [
  "version",
  "create",
  "mod",
  "value",
  "lease",
];
/** Compare.CompareResult by wire number (EQUAL=0, GREATER, LESS, NOT_EQUAL). */
export const COMPARE_RESULTS: readonly CompareResult[] = ["==", ">", "<", "!="];

/** The wire number of `name` in `table`; undefined for a name not in it. */
export function wireEnum<T>(table: readonly T[], name: T): number | undefined {
  const number = table.indexOf(name);
  return number < 0 ? undefined : number;
}
