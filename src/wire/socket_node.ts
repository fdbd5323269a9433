/**
 * `SocketConn` and `SocketListener` (`socket.ts`) on Node's `node:net`.
 *
 * A `net.Socket` pushes chunks; `read` pulls them. Received chunks queue up
 * to `READ_QUEUE_BYTES`, then the socket is paused until reads drain them
 * (TCP's flow control does the rest). `write` resolves once Node is done
 * with the bytes, so the caller may reuse its buffer. Accepted sockets wait
 * for `accept` in a queue of at most `ACCEPT_QUEUE_MAX`; past that a new
 * socket is closed at once.
 *
 * Loaded only on Node (`socket.ts` imports it dynamically).
 *
 * @module
 */

import * as net from "node:net";
import type { SocketAddr, SocketConn, SocketListener } from "./socket.ts";

/** Bytes received but not yet read before the socket is paused. */
const READ_QUEUE_BYTES = 256 * 1024;
/** Accepted connections waiting for `accept`. */
const ACCEPT_QUEUE_MAX = 1024;

class NodeConn implements SocketConn {
  readonly #socket: net.Socket;
  readonly #chunks: Uint8Array[] = [];
  #queuedBytes = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    const wake = () => {
      const wakeUp = this.#wake;
      this.#wake = undefined;
      wakeUp?.();
    };
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#queuedBytes += chunk.length;
      if (this.#queuedBytes >= READ_QUEUE_BYTES) socket.pause();
      wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      wake();
    });
    socket.on("error", (error: Error) => {
      this.#error = error;
      wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      wake();
    });
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, p.length - n);
      p.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#queuedBytes -= n;
    if (this.#queuedBytes < READ_QUEUE_BYTES && this.#socket.isPaused()) {
      this.#socket.resume();
    }
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#socket.destroyed) {
        reject(this.#error ?? new Error("connection closed"));
        return;
      }
      this.#socket.write(
        p,
        (error) => error ? reject(error) : resolve(p.length),
      );
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay(noDelay);
  }
}

/** Listens on `hostname:port` or a unix socket's `path` with `node:net`. */
export function listenNode(
  options: { hostname: string; port: number } | { path: string },
): Promise<SocketListener> {
  const server = net.createServer({ pauseOnConnect: false });
  const queue: net.Socket[] = [];
  const waiters: {
    resolve: (conn: SocketConn) => void;
    reject: (error: Error) => void;
  }[] = [];
  let closed = false;
  server.on("connection", (socket) => {
    // Until accepted, an error must not be unhandled (NodeConn reports it).
    socket.on("error", () => {});
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter.resolve(new NodeConn(socket));
    else if (queue.length < ACCEPT_QUEUE_MAX) queue.push(socket);
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const onListening = () => {
      server.off("error", reject);
      const address = server.address();
      const addr: SocketAddr = typeof address === "string" || address === null
        ? { hostname: "", port: 0, path: address ?? "" }
        : { hostname: address.address, port: address.port };
      resolve({
        addr,
        accept() {
          if (closed) return Promise.reject(new Error("listener closed"));
          const socket = queue.shift();
          if (socket !== undefined) {
            return Promise.resolve(new NodeConn(socket));
          }
          return new Promise((resolve, reject) =>
            waiters.push({ resolve, reject })
          );
        },
        close() {
          if (closed) return;
          closed = true;
          server.close();
          for (const socket of queue.splice(0)) socket.destroy();
          for (const waiter of waiters.splice(0)) {
            waiter.reject(new Error("listener closed"));
          }
        },
      });
    };
    if ("path" in options) server.listen(options.path, onListening);
    else server.listen(options.port, options.hostname, onListening);
  });
}

/** Connects to `hostname:port` or a unix socket's `path` with `node:net`. */
export function connectNode(
  options: { hostname: string; port: number } | { path: string },
): Promise<SocketConn> {
  return new Promise((resolve, reject) => {
    const socket = "path" in options
      ? net.connect({ path: options.path })
      : net.connect({ host: options.hostname, port: options.port });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(new NodeConn(socket));
    });
  });
}
