/**
 * The second opener of a data dir: when `open(dir, { whenLocked:
 * "connect" })` finds the dir locked by a live process, it connects to
 * that owner's local endpoint (`<dir>/revkv.sock`, see
 * `src/server/local_endpoint.ts`) and returns a `RemoteStore` over it —
 * the same API, the same store, so a watch in one process sees puts from
 * another.
 *
 * An owner that does not share (opened with `share: false`), or that is
 * exiting, does not answer: then the lock is tried once more (the owner may
 * just have gone, and this process becomes the owner), and otherwise the
 * original `LockedError` is thrown with a note on why connecting failed.
 * Streams on a local endpoint are not reopened forever: when the owner
 * exits they end with its error, since no other endpoint can take over.
 *
 * @module
 */

import type { KvStore } from "../store_api.ts";
import { localSocketPath } from "../server/local_endpoint.ts";
import { EndpointPool } from "./endpoint_pool.ts";
import { runtime } from "../storage/runtime.ts";
import { RemoteStore } from "./remote_store.ts";

/** How long a second opener waits for the owner's endpoint to answer. */
const OWNER_DIAL_TIMEOUT_MS = 500;
/**
 * How long a second opener keeps trying (connect, else take the lock) while
 * the owner neither answers nor lets go: a short command that does not
 * share (the CLI's `get`) holds the dir for a moment only.
 */
const OWNER_WAIT_MS = 3000;
/** Pause between those tries. */
const RETRY_PAUSE_MS = 50;

/**
 * Connects to the owner of `dir`, or (when it does not answer) opens the
 * dir itself with `openAsOwner` once the owner lets go.
 * @throws the `locked` error, its message completed, when neither works
 *   within `OWNER_WAIT_MS`.
 */
export async function connectToOwner(
  dir: string,
  locked: Error,
  openAsOwner: () => Promise<KvStore>,
): Promise<KvStore> {
  const path = localSocketPath(dir);
  const deadline = Date.now() + OWNER_WAIT_MS;
  for (;;) {
    if (await runtime.fs.exists(path).catch(() => false)) {
      const pool = new EndpointPool({
        endpoints: [{ kind: "unix", path, text: `unix://${path}` }],
        dialTimeoutMs: OWNER_DIAL_TIMEOUT_MS,
        keepAliveTimeMs: 0,
        keepAliveTimeoutMs: 0,
        reopenStreams: false,
      });
      try {
        await pool.client();
        return new RemoteStore(pool, undefined);
      } catch {
        await pool.close();
      }
    }
    try {
      return await openAsOwner();
    } catch (error) {
      if ((error as Error).name !== "LockedError") throw error;
      locked = error as Error;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
  }
  locked.message += `; its store is not shared on ${path} ` +
    "(the owner opened it with share: false, or is exiting)";
  throw locked;
}
