/**
 * The data dir's local endpoint: the process that owns a data dir (holds
 * its `LOCK`) serves the whole etcd v3 API on a unix socket inside it,
 * `revkv.sock`, readable and writable only by the dir's user (mode 0600),
 * so that other processes of that user — `deno task ctl put` beside a
 * running app, `watch` in one terminal and `put` in another — reach the
 * same store through `connect()` instead of being refused.
 *
 * Sharing is skipped (the store works, unshared) when the program has no
 * net permission (Deno asks for it to bind a unix socket) or the dir's path
 * is too long for a socket address.
 *
 * The socket is bound under a private temporary name, given mode 0600,
 * then renamed into place, so it is never reachable with wider rights. A
 * socket left by a crashed owner is removed by the next owner (which holds
 * the lock, so no live owner can be serving it). Closing the store stops
 * the endpoint first: streams end, calls in flight finish, the socket file
 * goes.
 *
 * @module
 */

import { DEFAULT_MAX_REQUEST_BYTES, type Store } from "../store.ts";
import { createServiceTable } from "./services.ts";
import { startGrpcTransport } from "./transport.ts";
import { runtime } from "../storage/runtime.ts";
import { listenUnix } from "../wire/socket.ts";

/** The socket's name in the data dir. */
export const LOCAL_SOCKET_FILE = "revkv.sock";
/** Longest unix socket path the kernel accepts (sun_path, less its NUL). */
export const SOCKET_PATH_BYTES_MAX = 107;
/** How long closing waits for calls in flight on the local endpoint. */
const SHUTDOWN_GRACE_MS = 1000;

/** The socket path of the data dir `dir`. */
export function localSocketPath(dir: string): string {
  return `${dir.replace(/\/+$/, "")}/${LOCAL_SOCKET_FILE}`;
}

/**
 * Serves `store` on `dir`'s local endpoint; resolves to the function that
 * stops it (undefined when the path is too long for a unix socket, in
 * which case the store is not shared).
 */
export async function serveLocalEndpoint(
  store: Store,
  dir: string,
  maxRequestBytes: number = DEFAULT_MAX_REQUEST_BYTES,
): Promise<(() => Promise<void>) | undefined> {
  const path = localSocketPath(dir);
  const tmp = `${dir.replace(/\/+$/, "")}/.${LOCAL_SOCKET_FILE}.${runtime.pid}`;
  if (new TextEncoder().encode(tmp).length > SOCKET_PATH_BYTES_MAX) {
    return undefined;
  }
  // A unix socket needs Deno's net permission; a program not granted it
  // keeps its store to itself rather than being asked for more.
  if (!runtime.canUseNet()) {
    return undefined;
  }
  await removeIfPresent(path);
  await removeIfPresent(tmp);
  const listener = await listenUnix(tmp);
  try {
    await runtime.chmod(tmp, 0o600);
    await runtime.fs.rename(tmp, path);
  } catch (error) {
    listener.close();
    await removeIfPresent(tmp);
    throw error;
  }
  const closing = new AbortController();
  const transport = startGrpcTransport(
    listener,
    createServiceTable(store, {
      maxRequestBytes,
      closing: closing.signal,
      member: { name: "default", peerUrls: [], clientUrls: [`unix://${path}`] },
    }),
    { maxRequestBytes },
  );
  let stopping: Promise<void> | undefined;
  return () =>
    stopping ??= (async () => {
      closing.abort();
      await transport.shutdown(SHUTDOWN_GRACE_MS);
      await removeIfPresent(path);
    })();
}

/** Removes `path`; missing is not an error. */
function removeIfPresent(path: string): Promise<void> {
  return runtime.fs.remove(path);
}
