/**
 * gRPC keepalive on the server side of an HTTP/2 connection, as grpc-go's
 * server (the one etcd 3.4 runs) does it, so clients tuned against etcd's
 * `--grpc-keepalive-*` flags see the same behaviour:
 *
 * - **Enforcement** (`keepalive.EnforcementPolicy`, etcd's
 *   `--grpc-keepalive-min-time`, `PermitWithoutStream: false`): a client
 *   PING that comes sooner than `minTimeMs` after its previous PING while
 *   streams are open — or sooner than 2 h while none are — is a strike,
 *   unless we sent HEADERS or DATA since its previous PING (then the
 *   strikes reset: pings while data flows are grpc-go's bandwidth probes,
 *   not abuse). The third strike ends the connection with GOAWAY
 *   ENHANCE_YOUR_CALM and the debug data `too_many_pings`, which grpc-go
 *   clients recognise (they double their keepalive time and reconnect).
 *   A `minTimeMs` of 0 means grpc-go's default, 5 minutes.
 * - **Server pings** (`keepalive.ServerParameters`, etcd's
 *   `--grpc-keepalive-interval` / `--grpc-keepalive-timeout`, both needed):
 *   after `intervalMs` in which nothing was read from the peer, PING it;
 *   if still nothing was read `timeoutMs` after that, close the
 *   connection. Anything read (not only the PING ACK) counts, as grpc-go.
 *
 * Times come from an injectable clock so tests need no real waiting.
 *
 * @module
 */

import { runtime } from "../../storage/runtime.ts";

/** Server keepalive settings (etcd's `--grpc-keepalive-*` flags, in ms). */
export interface KeepaliveOptions {
  /** Least time between client pings (0: grpc-go's default, 5 minutes). */
  minTimeMs: number;
  /** Idle time before the server pings (0: never, as etcd). */
  intervalMs: number;
  /** Time a pinged peer has to show life (0: never ping, as etcd). */
  timeoutMs: number;
}

/** etcd 3.4's defaults: 5 s, 2 h, 20 s. */
export const DEFAULT_KEEPALIVE: KeepaliveOptions = {
  minTimeMs: 5_000,
  intervalMs: 2 * 60 * 60 * 1000,
  timeoutMs: 20_000,
};

/** grpc-go's `defaultKeepalivePolicyMinTime`, used when minTimeMs is 0. */
export const GRPC_DEFAULT_MIN_TIME_MS = 5 * 60 * 1000;
/** grpc-go's `defaultPingTimeout`: ping spacing when no stream is open. */
export const PING_WITHOUT_STREAM_MS = 2 * 60 * 60 * 1000;
/** grpc-go's `maxPingStrikes`: one more strike than this ends it. */
export const MAX_PING_STRIKES = 2;
/** The GOAWAY debug data grpc-go sends (and its clients look for). */
export const TOO_MANY_PINGS = "too_many_pings";

/** Counts ping strikes as grpc-go's `handlePing` does. */
export class PingEnforcer {
  readonly #minTimeMs: number;
  #lastPingAtMs: number | undefined;
  #strikes = 0;
  #sentSinceLastPing = false;

  /** @param minTimeMs least time between pings with streams open. */
  constructor(minTimeMs: number) {
    this.#minTimeMs = minTimeMs > 0 ? minTimeMs : GRPC_DEFAULT_MIN_TIME_MS;
  }

  /** We sent HEADERS or DATA: the next ping starts a clean slate. */
  sent(): void {
    this.#sentSinceLastPing = true;
  }

  /**
   * A PING (not an ACK) arrived at `nowMs` with `openStreams` streams.
   * @returns false when this was one strike too many (send GOAWAY).
   */
  ping(nowMs: number, openStreams: number): boolean {
    const last = this.#lastPingAtMs;
    this.#lastPingAtMs = nowMs;
    if (this.#sentSinceLastPing) {
      this.#sentSinceLastPing = false;
      this.#strikes = 0;
      return true;
    }
    const spacing = openStreams < 1 ? PING_WITHOUT_STREAM_MS : this.#minTimeMs;
    if (last !== undefined && last + spacing > nowMs) this.#strikes++;
    return this.#strikes <= MAX_PING_STRIKES;
  }
}

/** What an {@linkcode IdlePinger} drives. */
export interface PingTarget {
  /** When the peer was last read from, in the clock's ms. */
  lastReadMs(): number;
  /** Send a keepalive PING. */
  ping(): void;
  /** The peer did not answer in time: close the connection. */
  close(): void;
}

/** A timer, injectable for tests. */
export interface KeepaliveClock {
  /** The current time in ms (monotonic). */
  now(): number;
  /** Calls `run` after `ms`; returns a cancel function. */
  after(ms: number, run: () => void): () => void;
}

/** `performance.now()` and `setTimeout` (unref'd: it never keeps a process alive). */
export const realKeepaliveClock: KeepaliveClock = {
  now: () => performance.now(),
  after(ms, run) {
    const timer = setTimeout(run, Math.max(0, ms));
    runtime.unrefTimer(timer);
    return () => clearTimeout(timer);
  },
};

/** grpc-go's server `keepalive()` loop, on a timer. */
export class IdlePinger {
  readonly #target: PingTarget;
  readonly #clock: KeepaliveClock;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  #cancel: (() => void) | undefined;
  #prevReadMs: number;
  #outstanding = false;
  #timeoutLeftMs = 0;
  #stopped = false;

  /**
   * Starts pinging `target` when it idles (a no-op when either time is 0).
   */
  constructor(
    target: PingTarget,
    options: KeepaliveOptions,
    clock: KeepaliveClock = realKeepaliveClock,
  ) {
    this.#target = target;
    this.#clock = clock;
    this.#intervalMs = options.intervalMs;
    this.#timeoutMs = options.timeoutMs;
    this.#prevReadMs = clock.now();
    if (this.#intervalMs > 0 && this.#timeoutMs > 0) {
      this.#arm(this.#intervalMs);
    }
  }

  /** Stops the timer (the connection closed). */
  stop(): void {
    this.#stopped = true;
    this.#cancel?.();
    this.#cancel = undefined;
  }

  #arm(ms: number): void {
    if (this.#stopped) return;
    this.#cancel = this.#clock.after(ms, () => this.#fire());
  }

  #fire(): void {
    this.#cancel = undefined;
    if (this.#stopped) return;
    const lastRead = this.#target.lastReadMs();
    if (lastRead > this.#prevReadMs) {
      // Read activity since we last looked: wait a full interval from it.
      this.#outstanding = false;
      this.#prevReadMs = lastRead;
      this.#arm(lastRead + this.#intervalMs - this.#clock.now());
      return;
    }
    if (this.#outstanding && this.#timeoutLeftMs <= 0) {
      this.stop();
      this.#target.close();
      return;
    }
    if (!this.#outstanding) {
      this.#target.ping();
      this.#timeoutLeftMs = this.#timeoutMs;
      this.#outstanding = true;
    }
    const sleep = Math.min(this.#intervalMs, this.#timeoutLeftMs);
    this.#timeoutLeftMs -= sleep;
    this.#arm(sleep);
  }
}
