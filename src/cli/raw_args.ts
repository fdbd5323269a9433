/**
 * The bytes of the command-line arguments, as the OS passed them.
 *
 * Deno decodes argv as UTF-8, so an argument that is not UTF-8 (a key
 * `$'\xff\x01k'`) reaches `Deno.args` with U+FFFD in place of its bad
 * bytes. etcdctl stores an argument's bytes as they are. On Linux the
 * bytes are in `/proc/self/cmdline` (NUL-separated): deno's own arguments
 * (`deno run -A cli.ts`, or the binary of `deno compile`) come first and
 * the script's last, so the last `Deno.args.length` entries are the
 * script's. Each is checked against `Deno.args` (decoded the same way it
 * must equal it) before it is trusted; anything that does not line up,
 * another OS, or no read permission for `/proc/self/cmdline` leaves the
 * decoded strings in use.
 *
 * @module
 */

import { runtime } from "../storage/runtime.ts";

/** Where Linux keeps the process's argv bytes. */
const CMDLINE_PATH = "/proc/self/cmdline";

/**
 * Raw bytes of the arguments that are not valid UTF-8, by their decoded
 * text; `null` for a text that two different byte strings decode to (the
 * CLI then cannot tell which argument is which).
 */
export type RawArgs = ReadonlyMap<string, Uint8Array | null>;

/**
 * Reads the raw bytes of `args` (the script's `Deno.args`) where the
 * platform gives them; undefined where it does not, or when every
 * argument is valid UTF-8 (nothing to recover).
 */
export function readRawArgs(args: readonly string[]): RawArgs | undefined {
  if (runtime.os !== "linux" || args.length === 0) return undefined;
  if (!runtime.canRead(CMDLINE_PATH)) return undefined;
  let cmdline: Uint8Array;
  try {
    cmdline = runtime.readFileSync(CMDLINE_PATH);
  } catch {
    return undefined;
  }
  return matchRawArgs(cmdline, args);
}

/**
 * Lines up a NUL-separated argv (`cmdline`) with the script's decoded
 * arguments; exported for tests.
 */
export function matchRawArgs(
  cmdline: Uint8Array,
  args: readonly string[],
): RawArgs | undefined {
  const entries = splitNul(cmdline);
  if (entries.length < args.length) return undefined;
  const tail = entries.slice(entries.length - args.length);
  const lossy = new TextDecoder();
  const strict = new TextDecoder("utf-8", { fatal: true });
  const raw = new Map<string, Uint8Array | null>();
  for (const [i, bytes] of tail.entries()) {
    if (lossy.decode(bytes) !== args[i]) return undefined;
    try {
      strict.decode(bytes);
      continue; // Valid UTF-8: the string already says it.
    } catch {
      // Not UTF-8: keep the bytes.
    }
    const text = args[i]!;
    const seen = raw.get(text);
    if (seen === undefined) raw.set(text, bytes);
    else if (seen !== null && !sameBytes(seen, bytes)) raw.set(text, null);
  }
  return raw.size > 0 ? raw : undefined;
}

function splitNul(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      out.push(bytes.slice(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) out.push(bytes.slice(start));
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
