/**
 * The crash test: a child process writes as fast as it can and streams each
 * acknowledged revision; the parent kills it with SIGKILL at a random moment,
 * reopens the store, and checks that every acknowledged write is there,
 * revisions are contiguous, and the store's hash equals the hash of a model
 * that replays the acknowledged ops (plus whatever durable but unacknowledged
 * writes the kill cut off from their acknowledgement).
 */

import assert from "node:assert/strict";
import { open, type Store } from "../mod.ts";
import { storeInternals } from "../src/store.ts";
import { denoFs } from "../src/storage/fs.ts";
import { listSegments } from "../src/storage/wal.ts";
import { segmentCapacityBytes } from "../src/storage/wal_writer.ts";
import { CRASH_STORE_OPTIONS, type CrashOp, crashOp } from "./crash_ops.ts";
import { prng, seedFromEnv, withTempDir } from "./storage_helpers.ts";

/** Kill rounds (each spawns a child). */
const ROUNDS = Number(Deno.env.get("REVKV_CRASH_ROUNDS") ?? 25);
/** Bound of one round's wait for the child to be ready. */
const READY_MS_MAX = 20_000;

/**
 * `segmentBytes` of the growing-segments variant: above the first segment's
 * 1 MiB, so a log from a fresh dir has segments of 1, 2 and 4 MiB.
 */
const GROWING_SEGMENT_BYTES = 4 * 1024 * 1024;

async function runChild(
  dir: string,
  seed: number,
  killAfterMs: number,
  segmentBytes: number,
): Promise<{ acks: Map<number, number>; readyRevision: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      new URL("./crash_child.ts", import.meta.url).pathname,
      dir,
      String(seed),
      "16",
      String(segmentBytes),
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const acks = new Map<number, number>();
  let readyRevision = -1;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const readyTimer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, READY_MS_MAX);
  const stderr = new Response(child.stderr).text();
  let buffered = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of child.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const [word, a, b] = line.split(" ");
        if (word === "ready") {
          readyRevision = Number(a);
          clearTimeout(readyTimer);
          killTimer = setTimeout(() => {
            try {
              child.kill("SIGKILL");
            } catch { /* gone */ }
          }, killAfterMs);
        } else if (word === "ack") {
          acks.set(Number(a), Number(b));
        }
      }
    }
  } finally {
    clearTimeout(readyTimer);
    clearTimeout(killTimer);
  }
  const status = await child.status;
  const errText = await stderr;
  assert.ok(
    readyRevision >= 0,
    `child never became ready (code ${status.code}): ${errText}`,
  );
  assert.equal(status.signal, "SIGKILL", `child ended on its own: ${errText}`);
  return { acks, readyRevision };
}

async function apply(model: Store, op: CrashOp): Promise<void> {
  if (op.kind === "put") await model.put(op.key, op.value);
  else await model.delete(op.key);
}

/** The single change at revision r of `store`, as an op. */
function changeAt(store: Store, r: number): CrashOp {
  const puts = storeInternals.getSync(store, "k", {
    prefix: true,
    revision: r,
    minModRevision: r,
    maxModRevision: r,
  });
  if (puts.kvs.length === 1) {
    return {
      kind: "put",
      key: puts.kvs[0]!.keyText,
      value: puts.kvs[0]!.valueText,
    };
  }
  const before = new Set(
    storeInternals.getSync(store, "k", {
      prefix: true,
      revision: r - 1,
      keysOnly: true,
    }).kvs
      .map((kv) => kv.keyText),
  );
  for (
    const kv of storeInternals.getSync(store, "k", {
      prefix: true,
      revision: r,
      keysOnly: true,
    })
      .kvs
  ) before.delete(kv.keyText);
  assert.equal(before.size, 1, `revision ${r} changes one key`);
  return { kind: "delete", key: [...before][0]! };
}

for (
  const segmentBytes of [
    CRASH_STORE_OPTIONS.segmentBytes,
    GROWING_SEGMENT_BYTES,
  ]
) {
  Deno.test(`SIGKILL at random moments loses no acknowledged write (segmentBytes ${segmentBytes})`, async () => {
    await crashRounds(segmentBytes);
  });
}

async function crashRounds(segmentBytes: number): Promise<void> {
  const seed = seedFromEnv("crash test");
  const random = prng(seed);
  await withTempDir(async (dir) => {
    const model = await open(); // in memory
    let totalAcks = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const runSeed = seed * 100 + round;
        const killAfterMs = 20 + Math.floor(random() * 400);
        const { acks, readyRevision } = await runChild(
          dir,
          runSeed,
          killAfterMs,
          segmentBytes,
        );
        totalAcks += acks.size;
        // Both recovery paths: the replay worker (snapshot and WAL) on even
        // rounds, in-thread on odd ones.
        const store = await open(dir, {
          ...CRASH_STORE_OPTIONS,
          segmentBytes,
          replayWorker: round % 2 === 0 ? "always" : "never",
        });
        try {
          assert.equal(
            readyRevision,
            model.revision,
            "child started at the model's revision",
          );
          const maxAcked = Math.max(readyRevision, ...acks.keys());
          assert.ok(
            store.revision >= maxAcked,
            `round ${round}: recovered revision ${store.revision} < acknowledged ${maxAcked}`,
          );
          store.check();
          for (let r = model.revision + 1; r <= store.revision; r++) {
            const i = acks.get(r);
            const op = i === undefined
              ? changeAt(store, r)
              : crashOp(runSeed, i);
            await apply(model, op);
            assert.equal(model.revision, r, `round ${round}: model at ${r}`);
          }
          for (const [r, i] of acks) {
            const op = crashOp(runSeed, i);
            const got = storeInternals.getSync(store, op.key, { revision: r });
            if (op.kind === "put") {
              assert.equal(got.kvs[0]?.valueText, op.value, `ack ${r} op ${i}`);
              assert.equal(got.kvs[0]?.modRevision, r);
            } else {
              assert.equal(got.count, 0, `ack ${r} delete op ${i}`);
            }
          }
          assert.equal(
            store.hash().hash,
            model.hash(store.revision).hash,
            `round ${round}: hash equals the replay (seed ${seed})`,
          );
        } finally {
          await store.close();
        }
      }
      assert.ok(
        totalAcks > ROUNDS,
        `the children acknowledged ${totalAcks} writes`,
      );
      const segments = await listSegments(denoFs, `${dir}/wal`);
      console.log(
        `segmentBytes ${segmentBytes}: ${totalAcks} acks, newest segment ` +
          `seq ${segments.at(-1)?.seq} (its size ` +
          `${segmentCapacityBytes(segments.at(-1)?.seq ?? 0, segmentBytes)})`,
      );
    } finally {
      await model.close();
    }
  });
}
