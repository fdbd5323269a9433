/**
 * The data dir's `LOCK`: one opener at a time, across processes.
 *
 * The lock file holds the holder's pid and its process start time (from
 * `/proc/<pid>/stat`, so a reused pid is not mistaken for the holder). It is
 * created atomically: the content goes to a private temporary file that is
 * then hard-linked to `LOCK`, which fails if `LOCK` exists. A lock whose
 * holder is dead is stale and taken over; a live holder's lock is an error
 * naming its pid.
 *
 * @module
 */

import type { StorageFs } from "./fs.ts";
import { runtime } from "./runtime.ts";

/** Attempts to take over a stale lock before giving up (races with other openers). */
const LOCK_ATTEMPTS_MAX = 3;

/** Lock files held by this process (a second open in-process is refused too). */
const heldInProcess = new Set<string>();

/** The data dir is open elsewhere. */
export class LockedError extends Error {
  /**
   * The lock at `path` is held by process `pid`.
   * @param path the lock file.
   * @param pid the holder's pid.
   */
  constructor(readonly path: string, readonly pid: number) {
    super(
      `revkv: data dir is locked by process ${pid}` +
        (pid === runtime.pid
          ? " (this process: the store is already open)"
          : "") +
        ` (${path}); close that store first`,
    );
    this.name = "LockedError";
  }
}

/** A held lock. */
export interface DirLock {
  /** Path of the lock file. */
  readonly path: string;
  /** Whether a stale lock of a dead process was taken over. */
  readonly tookOverPid: number | undefined;
  /** Releases the lock (removes the file). */
  release(): Promise<void>;
}

/** Start time of a process in clock ticks since boot, or undefined if unknown. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = new TextDecoder().decode(
      runtime.readFileSync(`/proc/${pid}/stat`),
    );
    // Field 22; the command name (field 2) may hold spaces, so count from ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19];
  } catch {
    return undefined;
  }
}

function holderAlive(path: string, pid: number, start: string): boolean {
  if (pid === runtime.pid) return heldInProcess.has(path);
  const procAvailable = runtime.existsSync("/proc/self/stat");
  // Without /proc we cannot tell: assume the holder lives (never steal).
  if (!procAvailable) return true;
  const now = processStartTime(pid);
  if (now === undefined) return false;
  return start === "" || now === start;
}

/**
 * Takes the lock of `dir`.
 * @throws LockedError when a live process holds it.
 */
export async function acquireLock(
  fs: StorageFs,
  dir: string,
): Promise<DirLock> {
  const path = `${dir}/LOCK`;
  const content = `pid ${runtime.pid}\nstart ${
    processStartTime(runtime.pid) ?? ""
  }\n`;
  const bytes = new TextEncoder().encode(content);
  const tmp = `${dir}/LOCK.${runtime.pid}.${crypto.randomUUID()}.tmp`;
  let tookOverPid: number | undefined;
  try {
    await fs.writeFile(tmp, bytes, { createNew: true });
    for (let attempt = 0; attempt < LOCK_ATTEMPTS_MAX; attempt++) {
      try {
        await fs.link(tmp, path);
        heldInProcess.add(path);
        return {
          path,
          tookOverPid,
          release: async () => {
            heldInProcess.delete(path);
            await fs.remove(path);
          },
        };
      } catch (error) {
        if (!runtime.isAlreadyExists(error)) throw error;
      }
      let holder = "";
      try {
        holder = new TextDecoder().decode(await fs.readFile(path));
      } catch (error) {
        if (runtime.isNotFound(error)) continue; // just released
        throw error;
      }
      const pid = Number(/pid (\d+)/.exec(holder)?.[1] ?? NaN);
      const start = /start (\d*)/.exec(holder)?.[1] ?? "";
      if (Number.isFinite(pid) && holderAlive(path, pid, start)) {
        throw new LockedError(path, pid);
      }
      // Stale: the holder died without releasing. Take it over.
      tookOverPid = Number.isFinite(pid) ? pid : undefined;
      await fs.remove(path);
    }
    throw new Error(
      `revkv: could not take the lock ${path} after ${LOCK_ATTEMPTS_MAX} attempts (other openers racing)`,
    );
  } finally {
    // Best effort: a temp file left here is removed by the next open.
    await fs.remove(tmp).catch(() => {});
  }
}
