/**
 * A progress line on a terminal for slow startups: silent for the first
 * second (most opens are fast), then one line rewritten in place on stderr,
 * at most every 200 ms. Nothing is printed when stderr is not a terminal.
 *
 * @module
 */

import { runtime } from "./runtime.ts";

/** Startup time after which progress is shown. */
const PROGRESS_DELAY_MS = 1000;
/** Minimum time between two redraws. */
const PROGRESS_INTERVAL_MS = 200;

/** Reports progress of a long task. */
export interface Progress {
  /** Reports the current step; shown only after the first second. */
  update(message: string): void;
  /** Ends the line (prints the final message if anything was shown). */
  done(message: string): void;
}

/** A progress reporter for `label` on stderr (when it is a terminal). */
export function startProgress(label: string, enabled?: boolean): Progress {
  const started = performance.now();
  let shownAt = 0;
  let shown = false;
  const on = enabled ?? safeIsTerminal();
  const write = (text: string) => {
    try {
      runtime.stderr.writeSync(new TextEncoder().encode(text));
    } catch { /* progress is best effort */ }
  };
  return {
    update(message) {
      if (!on) return;
      const now = performance.now();
      if (now - started < PROGRESS_DELAY_MS) return;
      if (shown && now - shownAt < PROGRESS_INTERVAL_MS) return;
      shown = true;
      shownAt = now;
      write(`\r\x1b[K${label}: ${message}`);
    },
    done(message) {
      if (!on || !shown) return;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      write(`\r\x1b[K${label}: ${message} (${seconds} s)\n`);
    },
  };
}

function safeIsTerminal(): boolean {
  try {
    return runtime.stderr.isTerminal();
  } catch {
    return false;
  }
}
