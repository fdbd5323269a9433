/**
 * `check perf`: etcdctl's bounded write load with a pass/fail verdict, run
 * against the embedded store. Like etcdctl it writes 1 KiB values under
 * 256-byte random keys below `--prefix` at the load's rate from the load's
 * number of concurrent clients for 60 s, shows a progress bar, deletes the
 * keys, and judges throughput (> 90% of the target rate), the slowest
 * request (≤ 0.5 s) and the standard deviation (≤ 0.1 s).
 *
 * The duration can be shortened with `REVKV_CHECK_PERF_SECONDS` (tests use
 * it); etcdctl has no such knob.
 *
 * @module
 */

import type { CommandContext } from "./context.ts";
import { writeAll } from "./context.ts";
import {
  CliExit,
  EXIT_BAD_FEATURE,
  EXIT_ERROR,
  EXIT_INVALID_INPUT,
} from "./errors.ts";
import { utf8 } from "./go_format.ts";
import { runtime } from "../storage/runtime.ts";

/** etcdctl's workload models: target writes/s, clients, seconds. */
const LOADS: Record<
  string,
  { limit: number; clients: number; seconds: number }
> = {
  s: { limit: 150, clients: 50, seconds: 60 },
  m: { limit: 1000, clients: 200, seconds: 60 },
  l: { limit: 8000, clients: 500, seconds: 60 },
  xl: { limit: 15000, clients: 1000, seconds: 60 },
};
const LOAD_ALIASES: Record<string, string> = {
  s: "s",
  small: "s",
  m: "m",
  medium: "m",
  l: "l",
  large: "l",
  xl: "xl",
  xLarge: "xl",
};
const KEY_BYTES = 256;
const VALUE_BYTES = 1024;
/** Width of the progress bar in cells. */
const BAR_CELLS = 40;

/** Runs `check perf`. */
export async function runCheckPerf(ctx: CommandContext): Promise<void> {
  const loadName = ctx.string("load", "s");
  const model = LOAD_ALIASES[loadName];
  if (model === undefined) {
    throw new CliExit(EXIT_BAD_FEATURE, `unknown load option ${loadName}`);
  }
  const load = LOADS[model]!;
  const secondsOverride = Number(runtime.env("REVKV_CHECK_PERF_SECONDS"));
  const seconds = Number.isFinite(secondsOverride) && secondsOverride > 0
    ? Math.min(secondsOverride, load.seconds)
    : load.seconds;
  const prefix = ctx.string("prefix", "/etcdctl-check-perf/");
  const db = await ctx.store();
  const existing = await db.get(prefix, { prefix: true, limit: 1 });
  if (existing.kvs.length > 0) {
    throw new CliExit(
      EXIT_INVALID_INPUT,
      `prefix ${
        JSON.stringify(prefix)
      } has keys. Delete with etcdctl del --prefix ${prefix} first`,
    );
  }

  const prefixBytes = utf8(prefix);
  const value = new Uint8Array(VALUE_BYTES);
  const latenciesSeconds: number[] = [];
  const errors = new Map<string, number>();
  const durationMs = seconds * 1000;
  const started = performance.now();
  const intervalMs = 1000 / load.limit;
  let issued = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;

  const put = async () => {
    const key = new Uint8Array(prefixBytes.length + KEY_BYTES);
    key.set(prefixBytes);
    crypto.getRandomValues(
      key.subarray(prefixBytes.length, prefixBytes.length + 8),
    );
    const t0 = performance.now();
    try {
      await db.put(key, value);
    } catch (error) {
      const message = (error as Error).message;
      errors.set(message, (errors.get(message) ?? 0) + 1);
    }
    latenciesSeconds.push((performance.now() - t0) / 1000);
    inFlight--;
    wake?.();
  };

  // The progress bar is drawn once a second, like etcdctl's.
  const bar = (elapsedSeconds: number) => {
    const filled = Math.round((BAR_CELLS * elapsedSeconds) / seconds);
    const text = ` ${elapsedSeconds} / ${seconds} [${"=".repeat(filled)}${
      filled < BAR_CELLS ? ">" : ""
    }${" ".repeat(Math.max(0, BAR_CELLS - filled - 1))}] ${
      ((100 * elapsedSeconds) / seconds).toFixed(2)
    }%`;
    return writeAll(ctx.io.stdout, utf8(`\r${text}`));
  };
  await bar(0);
  let shown = 0;

  // Rate-limited producer: request i is due at started + i × interval, and
  // at most `clients` are in flight (etcdctl's clients each do one at a time).
  for (;;) {
    const now = performance.now();
    const elapsed = now - started;
    if (elapsed >= durationMs || ctx.io.signal?.aborted) break;
    const second = Math.floor(elapsed / 1000);
    if (second > shown) {
      shown = second;
      await bar(shown);
    }
    const due = Math.floor(elapsed / intervalMs) + 1;
    while (issued < due && inFlight < load.clients) {
      issued++;
      inFlight++;
      put();
    }
    const nextDueMs = started + issued * intervalMs;
    const waitMs = inFlight >= load.clients
      ? 50
      : Math.max(0, Math.min(50, nextDueMs - performance.now()));
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, waitMs);
    });
    wake = undefined;
  }
  while (inFlight > 0) {
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 10);
    });
  }
  await bar(seconds);
  await writeAll(ctx.io.stdout, utf8("\n"));

  const totalSeconds = (performance.now() - started) / 1000;
  const rps = latenciesSeconds.length / totalSeconds;
  const slowest = Math.max(0, ...latenciesSeconds);
  const mean = latenciesSeconds.reduce((a, b) => a + b, 0) /
    Math.max(1, latenciesSeconds.length);
  const stddev = Math.sqrt(
    latenciesSeconds.reduce((a, b) => a + (b - mean) ** 2, 0) /
      Math.max(1, latenciesSeconds.length),
  );

  const deleted = await db.delete(prefix, { prefix: true });
  if (ctx.bool("auto-compact")) {
    await db.compact(deleted.header.revision, { physical: true });
    ctx.out.line(`compacted revision ${deleted.header.revision}`);
  }
  if (ctx.bool("auto-defrag")) {
    await db.defrag();
    ctx.out.line(`Finished defragmenting etcd member[${ctx.endpointName()}]`);
  }

  let ok = true;
  if (errors.size > 0) {
    ctx.out.line("FAIL: too many errors");
    for (const [message, count] of errors) {
      ctx.out.line(`FAIL: ERROR(${message}) -> ${count}`);
    }
    ok = false;
  }
  if (rps / load.limit <= 0.9) {
    ctx.out.line(`FAIL: Throughput too low: ${Math.floor(rps) + 1} writes/s`);
    ok = false;
  } else {
    ctx.out.line(`PASS: Throughput is ${Math.floor(rps) + 1} writes/s`);
  }
  if (slowest > 0.5) {
    ctx.out.line(`Slowest request took too long: ${slowest.toFixed(6)}s`);
    ok = false;
  } else {
    ctx.out.line(`PASS: Slowest request took ${slowest.toFixed(6)}s`);
  }
  if (stddev > 0.1) {
    ctx.out.line(`Stddev too high: ${stddev.toFixed(6)}s`);
    ok = false;
  } else {
    ctx.out.line(`PASS: Stddev is ${stddev.toFixed(6)}s`);
  }
  if (ok) {
    ctx.out.line("PASS");
  } else {
    ctx.out.line("FAIL");
    throw new CliExit(EXIT_ERROR, "");
  }
}
