/**
 * The crash test's workload: op `i` of a run with `seed` is a pure function
 * of both, so the parent can replay exactly what the child acknowledged.
 *
 * @module
 */

import { crc32c } from "../src/storage/crc32c.ts";

/** Distinct keys the workload touches. */
export const CRASH_KEYS = 200;

/** One operation of the workload. */
export type CrashOp =
  | { kind: "put"; key: string; value: string }
  | { kind: "delete"; key: string };

/** Op number `i` of the run `seed`. */
export function crashOp(seed: number, i: number): CrashOp {
  const h = crc32c(new TextEncoder().encode(`${seed}:${i}`));
  const key = `k${(h % CRASH_KEYS).toString().padStart(3, "0")}`;
  if ((h >>> 8) % 10 === 0) return { kind: "delete", key };
  return {
    kind: "put",
    key,
    value: `v${seed}-${i}-` + "x".repeat((h >>> 16) % 120),
  };
}

/** Options both sides open the store with. */
export const CRASH_STORE_OPTIONS = {
  segmentBytes: 128 * 1024,
  snapshotCount: 1500,
} as const;
