/**
 * TCP sockets as the transports use them: a connection is something bytes
 * are read from and written to (`SocketConn`, which a `Deno.Conn` already
 * is), a listener hands out connections (`SocketListener`). The HTTP/2
 * connection, the gRPC server and the JSON gateway see only these, so the
 * same transport runs on Deno (`Deno.listen`, `Deno.connect`; TCP and unix
 * sockets) and on Node
 * (`node:net`, `socket_node.ts`, loaded only there).
 *
 * @module
 */

import { runtime } from "../storage/runtime.ts";

/** A byte-stream connection (a `Deno.Conn` is one). */
export interface SocketConn {
  /** Reads into `p`; resolves with how many bytes, or null at the end. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; resolves with how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
  /** Closes the connection (pending reads end). */
  close(): void;
  /** Disables Nagle's algorithm (TCP only). */
  setNoDelay?(noDelay?: boolean): void;
}

/** A listener's address: TCP, or a unix socket's `path` (hostname "", port 0). */
export interface SocketAddr {
  /** The IP address. */
  hostname: string;
  /** The port. */
  port: number;
  /** A unix socket's path. */
  path?: string;
}

/** Accepts connections on an address (a `Deno.TcpListener` is one). */
export interface SocketListener {
  /** The next connection; rejects once the listener is closed. */
  accept(): Promise<SocketConn>;
  /** The address listened on (the port chosen, for port 0). */
  readonly addr: SocketAddr;
  /** Stops listening; a pending `accept` rejects. */
  close(): void;
}

/** Listens on `hostname:port` (0: a free port). */
export async function listenTcp(
  options: { hostname: string; port: number },
): Promise<SocketListener> {
  if (runtime.name === "deno") return Deno.listen(options);
  const { listenNode } = await import("./socket_node.ts");
  return listenNode(options);
}

/** Listens on the unix socket `path` (created; it must not exist). */
export async function listenUnix(path: string): Promise<SocketListener> {
  if (runtime.name === "deno") {
    const listener = Deno.listen({ transport: "unix", path });
    return {
      accept: () => listener.accept(),
      addr: { hostname: "", port: 0, path },
      close: () => listener.close(),
    };
  }
  const { listenNode } = await import("./socket_node.ts");
  return listenNode({ path });
}

/** Connects to `hostname:port`. */
export async function connectTcp(
  options: { hostname: string; port: number },
): Promise<SocketConn> {
  if (runtime.name === "deno") return await Deno.connect(options);
  const { connectNode } = await import("./socket_node.ts");
  return connectNode(options);
}

/** Connects to the unix socket `path`. */
export async function connectUnix(path: string): Promise<SocketConn> {
  if (runtime.name === "deno") {
    return await Deno.connect({ transport: "unix", path });
  }
  const { connectNode } = await import("./socket_node.ts");
  return connectNode({ path });
}
