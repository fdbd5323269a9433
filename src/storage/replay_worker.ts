/**
 * The replay worker's entry: streams the WAL segments and snapshot files it
 * is asked for with `streamSegment` and `streamSnapshot` (the same readers
 * as in-thread recovery) and sends what they hold to the main thread in
 * batches (see `replay_batch.ts`). A Deno `Worker` or a Node worker thread
 * (`runtime.workerPort`).
 *
 * @module
 */

import {
  ReplayBatchWriter,
  type ReplayCorruption,
  type ReplayReply,
  type ReplayRequest,
} from "./replay_batch.ts";
import { SnapshotCorruptionError, streamSnapshot } from "./snapshot.ts";
import {
  decodeRecord,
  RecordType,
  restoreWriteChanges,
  writeRecordRevision,
} from "./wal_codec.ts";
import { streamSegment, WalCorruptionError } from "./wal.ts";
import { runtime } from "./runtime.ts";

const port = runtime.workerPort();
const post = (reply: ReplayReply, transfer: Transferable[] = []) =>
  port.postMessage(reply, transfer);

const writer = new ReplayBatchWriter((batch) =>
  post(batch, [batch.rows.buffer, ...batch.chunks.map((c) => c.buffer)])
);

port.onMessage(async (data) => {
  const request = data as ReplayRequest;
  if (request.type === "rows") {
    writer.recycle(request.rows);
    return;
  }
  let offset = 0;
  let size = 0;
  try {
    if (request.type === "snapshot") {
      const status = await streamSnapshot(
        runtime.fs,
        request.path,
        writer,
        (id, lease) =>
          writer.record({
            kind: "leaseGrant",
            id,
            ttlSeconds: lease.ttlSeconds,
            deadlineMs: lease.deadlineMs,
          }),
        () => writer.flush(0, 0, false),
      );
      writer.flush(0, 0, true);
      post({ type: "snapshotDone", status });
      return;
    }
    const streamed = await streamSegment(
      runtime.fs,
      request.path,
      request.segment,
      request.isLast,
      request.cleanEnd,
      request.prevSegmentCrc,
      (bytes, view, type, at, length) => {
        if (type === RecordType.write) {
          writer.beginWrite(writeRecordRevision(view, at, length));
          restoreWriteChanges(bytes, view, at, length, writer);
        } else {
          writer.record(decodeRecord(bytes, view, type, at, length));
        }
        writer.flush(offset, size, false);
      },
      (done, total) => {
        offset = done;
        size = total;
      },
    );
    writer.flush(offset, size, true);
    post({ type: "done", streamed });
  } catch (error) {
    writer.discard();
    post({
      type: "error",
      message: error instanceof Error ? error.message : String(error),
      corruption: corruptionOf(error),
    });
  }
});

function corruptionOf(error: unknown): ReplayCorruption | undefined {
  if (error instanceof WalCorruptionError) {
    const { file, offset, reason } = error;
    return { kind: "wal", file, offset, reason };
  }
  if (error instanceof SnapshotCorruptionError) {
    const { file, offset, reason } = error;
    return { kind: "snapshot", file, offset, reason };
  }
  return undefined;
}
