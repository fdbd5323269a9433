/**
 * The server's log, filtered by etcd's `--log-level` (debug, info, warn,
 * error, panic, fatal — each level shows itself and those after it) and
 * bounded: lines are written one at a time in order, at most
 * `LOG_QUEUE_LINES_MAX` wait, and past that lines are dropped and counted
 * (one "dropped" line says how many), so a slow stderr never grows memory
 * nor slows the calls that log.
 *
 * What `serve` logs:
 *
 * - error: a call that failed with INTERNAL, UNKNOWN or DATA_LOSS (a bug
 *   or a storage failure, not a client mistake), with its path and message;
 * - debug: every call's path and gRPC code.
 *
 * Its start-up lines (where it listens, the data dir, recovery) are its
 * standard output and not filtered.
 *
 * @module
 */

import type { LogLevel } from "./serve_flags.ts";
import { LOG_LEVELS } from "./serve_flags.ts";
import { GrpcStatus } from "../wire/grpc_service.ts";

/** Lines waiting to be written before new ones are dropped. */
export const LOG_QUEUE_LINES_MAX = 1000;

/** gRPC codes that mean the server, not the client, went wrong. */
const SERVER_FAULTS: ReadonlySet<number> = new Set([
  GrpcStatus.UNKNOWN,
  GrpcStatus.INTERNAL,
  GrpcStatus.DATA_LOSS,
]);

/** A leveled, bounded log writing through `write`. */
export class ServerLog {
  readonly #rank: number;
  readonly #write: (text: string) => Promise<void>;
  #queue: string[] = [];
  #draining: Promise<void> | undefined;
  #dropped = 0;

  /**
   * @param level the least severe level shown.
   * @param write writes one chunk of text (e.g. to stderr).
   */
  constructor(level: LogLevel, write: (text: string) => Promise<void>) {
    this.#rank = LOG_LEVELS.indexOf(level);
    this.#write = write;
  }

  /** Whether lines at `level` are shown. */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#rank;
  }

  /** Logs `message` at `level` (dropped when filtered or the queue is full). */
  log(level: LogLevel, message: string): void {
    if (!this.enabled(level)) return;
    if (this.#queue.length >= LOG_QUEUE_LINES_MAX) {
      this.#dropped++;
      return;
    }
    this.#queue.push(`revkv: ${level}: ${message}\n`);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /**
   * The observer of finished calls (`ServerMetrics.instrument`): server
   * faults at error, every call at debug.
   */
  call(path: string, code: number, error: unknown): void {
    if (SERVER_FAULTS.has(code)) {
      const message = error instanceof Error ? error.message : String(error);
      this.log("error", `${path} failed (code ${code}): ${message}`);
    } else if (this.#rank === 0) {
      this.log("debug", `${path} code ${code}`);
    }
  }

  /** Resolves when every queued line is written. */
  flush(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  async #drain(): Promise<void> {
    // Lines logged while a write runs join the next one.
    await null;
    while (this.#queue.length > 0) {
      const text = this.#queue.join("");
      this.#queue = [];
      if (this.#dropped > 0) {
        const dropped = this.#dropped;
        this.#dropped = 0;
        await this.#write(
          text + `revkv: warn: ${dropped} log lines dropped\n`,
        ).catch(() => {});
      } else {
        await this.#write(text).catch(() => {});
      }
    }
  }
}
