/**
 * The benchmarks' one switch: `REVKV_BENCH_SHORT=1` runs every benchmark on
 * a small workload, so CI can check that `deno task bench` runs end to end
 * in seconds. Short runs print figures too, but they measure nothing worth
 * quoting (small stores fit in caches); bench/RESULTS.md quotes full runs.
 *
 * @module
 */

/** Whether this is a short run (`REVKV_BENCH_SHORT=1`). */
export const BENCH_SHORT = Deno.env.get("REVKV_BENCH_SHORT") === "1";

/** `full` in a normal run, `short` in a short one. */
export function sized<T>(full: T, short: T): T {
  return BENCH_SHORT ? short : full;
}
