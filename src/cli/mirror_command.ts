/**
 * `make-mirror [options] <destination>`: etcdctl's mirror maker. It copies
 * the source's keys (under `--prefix`) as of one revision to the
 * destination endpoint, then follows the source's watch from the next
 * revision and replays each revision's events there as one transaction,
 * until interrupted. Every 30 s it prints how many keys it has synced, a
 * bare number on a line, as etcdctl does.
 *
 * The source is any store the CLI can use: an embedded `--data-dir` or
 * `--endpoints` (a revkv server or etcd); the destination is an endpoint.
 * Keys are renamed from `--prefix` to `--dest-prefix` (default: the same
 * prefix; `--no-dest-prefix` strips it). Values are copied, leases are
 * not (etcdctl's mirror does not carry them either).
 *
 * @module
 */

import type {
  Bytes,
  KeySelector,
  KvStore,
  RequestOp,
  WatchOptions,
} from "../../mod.ts";
import { op } from "../../mod.ts";
import type { Command } from "./command.ts";
import type { CommandContext } from "./context.ts";
import { CliExit, EXIT_BAD_ARGS, EXIT_ERROR } from "./errors.ts";
import { boolFlag as bool, stringFlag as str } from "./flags.ts";
import { concatBytes } from "./go_format.ts";

/** How often the synced count is printed (etcdctl: every 30 s). */
const REPORT_INTERVAL_MS = 30_000;
/** Keys read per page of the initial copy (etcd's mirror: 1000). */
const BASE_PAGE_KEYS = 1_000;
/** Puts of the initial copy in flight at once (a bound, not a queue). */
const BASE_PUTS_IN_FLIGHT_MAX = 64;

const COMPACTED = "etcdserver: mvcc: required revision has been compacted";

const encoder = new TextEncoder();

function toBytes(b: Bytes): Uint8Array {
  return typeof b === "string" ? encoder.encode(b) : b;
}

/**
 * etcdctl's `modifyPrefix`: the key with its first `prefix` replaced by
 * `destPrefix` (every mirrored key starts with `prefix`).
 */
export function renameKey(
  key: Uint8Array,
  prefix: Uint8Array,
  destPrefix: Uint8Array,
): Uint8Array {
  return concatBytes([destPrefix, key.subarray(prefix.length)]);
}

/** The keys under `prefix` as a selector (all keys for an empty one). */
function underPrefix(
  prefix: Uint8Array,
): { key: Uint8Array; selector: KeySelector } {
  // clientv3's WithPrefix/WithFromKey on an empty prefix: every key.
  if (prefix.length === 0) {
    return { key: new Uint8Array([0]), selector: { fromKey: true } };
  }
  return { key: prefix, selector: { prefix: true } };
}

/** What a mirror run did, for the caller and tests. */
export interface MirrorProgress {
  /** Keys (puts and deletes) written to the destination so far. */
  synced: number;
}

/**
 * Mirrors `source` (keys under `prefix`) into `dest`, renaming them to
 * `destPrefix`: the keys as of the current revision, then every later
 * revision as one transaction, until `signal` aborts.
 * @throws Error with etcd's words when the watch is compacted or a write fails.
 */
export async function mirror(
  source: KvStore,
  dest: KvStore,
  options: {
    prefix: Uint8Array;
    destPrefix: Uint8Array;
    signal: AbortSignal;
    progress: MirrorProgress;
  },
): Promise<void> {
  const { prefix, destPrefix, signal, progress } = options;
  const rename = (key: Uint8Array) => renameKey(key, prefix, destPrefix);
  const { key, selector } = underPrefix(prefix);

  // The initial copy, at one revision (as etcd's Syncer.SyncBase).
  const revision = (await source.get("foo")).header.revision;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  for await (
    const kv of source.scan(key, {
      ...selector,
      revision,
      pageKeys: BASE_PAGE_KEYS,
    })
  ) {
    if (signal.aborted) break;
    const put: Promise<void> = dest.put(rename(kv.key), kv.value).then(
      () => {
        progress.synced++;
      },
      (error) => {
        failure ??= error;
      },
    ).finally(() => inFlight.delete(put));
    inFlight.add(put);
    if (inFlight.size >= BASE_PUTS_IN_FLIGHT_MAX) await Promise.race(inFlight);
    if (failure !== undefined) break;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  if (signal.aborted) return;

  // Then every later revision, one transaction each (etcdctl's loop).
  const watchOptions: WatchOptions & KeySelector = {
    ...selector,
    startRevision: revision + 1,
    signal,
  };
  for await (const response of source.watch(key, watchOptions)) {
    if (signal.aborted) return;
    if (response.compactRevision !== 0) throw new Error(COMPACTED);
    if (response.canceled) {
      throw new Error(
        response.cancelReason || "watch is canceled by the server",
      );
    }
    let lastRevision = 0;
    let ops: RequestOp[] = [];
    for (const event of response.events) {
      const next = event.kv.modRevision;
      if (lastRevision !== 0 && next > lastRevision) {
        await dest.txn({ compare: [], success: ops, failure: [] });
        ops = [];
      }
      lastRevision = next;
      ops.push(
        event.type.toUpperCase() === "DELETE"
          ? op.delete(rename(event.kv.key))
          : op.put(rename(event.kv.key), event.kv.value),
      );
      progress.synced++;
    }
    if (ops.length > 0) {
      await dest.txn({ compare: [], success: ops, failure: [] });
    }
  }
}

async function runMakeMirror(ctx: CommandContext): Promise<void> {
  if (ctx.args.length !== 1) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "make-mirror takes one destination argument",
    );
  }
  // The destination first, then the source, as etcdctl creates them.
  const dest = ctx.connectTo(ctx.args[0]!);
  const source = await ctx.store({ share: true });
  const noDestPrefix = ctx.bool("no-dest-prefix");
  let destPrefix = ctx.string("dest-prefix");
  if (noDestPrefix && destPrefix.length > 0) {
    throw new CliExit(
      EXIT_BAD_ARGS,
      "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
    );
  }
  const prefix = ctx.string("prefix");
  if (!noDestPrefix && destPrefix.length === 0) destPrefix = prefix;

  const signal = ctx.io.signal ?? new AbortController().signal;
  const progress: MirrorProgress = { synced: 0 };
  const report = setInterval(() => {
    ctx.out.line(String(progress.synced));
    ctx.flush().catch(() => {});
  }, REPORT_INTERVAL_MS);
  try {
    await mirror(source, dest, {
      prefix: toBytes(ctx.bytesOf(prefix)),
      destPrefix: toBytes(ctx.bytesOf(destPrefix)),
      signal,
      progress,
    });
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof CliExit) throw error;
    throw new CliExit(EXIT_ERROR, (error as Error).message);
  } finally {
    clearInterval(report);
  }
}

/** The `make-mirror` command. */
export function makeMirrorCommand(): Command {
  return {
    use: "make-mirror [options] <destination>",
    short: "Makes a mirror at the destination etcd cluster",
    flags: [
      str("prefix", "", "Key-value prefix to mirror"),
      str(
        "dest-prefix",
        "",
        "destination prefix to mirror a prefix to a different prefix in the destination cluster",
      ),
      bool(
        "no-dest-prefix",
        "false",
        "mirror key-values to the root of the destination cluster",
      ),
      str(
        "dest-cert",
        "",
        "Identify secure client using this TLS certificate file for the destination cluster",
      ),
      str("dest-key", "", "Identify secure client using this TLS key file"),
      str(
        "dest-cacert",
        "",
        "Verify certificates of TLS enabled secure servers using this CA bundle",
      ),
      bool(
        "dest-insecure-transport",
        "true",
        "Disable transport security for client connections",
      ),
    ],
    run: runMakeMirror,
  };
}
