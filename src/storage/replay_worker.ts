/**
 * The WAL replay worker's entry: streams the segments it is asked for with
 * `streamSegment` (the same reader as in-thread recovery) and sends their
 * frames to the main thread in batches (see `replay_batch.ts`).
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { denoFs } from "./fs.ts";
import {
  ReplayBatchWriter,
  type ReplayReply,
  type ReplayRequest,
} from "./replay_batch.ts";
import {
  decodeRecord,
  RecordType,
  restoreWriteChanges,
  writeRecordRevision,
} from "./wal_codec.ts";
import { streamSegment, WalCorruptionError } from "./wal.ts";

const post = (reply: ReplayReply, transfer: Transferable[] = []) =>
  self.postMessage(reply, transfer);

const writer = new ReplayBatchWriter((batch) =>
  post(batch, [batch.rows.buffer, ...batch.chunks.map((c) => c.buffer)])
);

self.onmessage = async (event: MessageEvent<ReplayRequest>) => {
  const request = event.data;
  if (request.type === "rows") {
    writer.recycle(request.rows);
    return;
  }
  let offset = 0;
  let size = 0;
  try {
    const streamed = await streamSegment(
      denoFs,
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
    post({
      type: "error",
      message: error instanceof Error ? error.message : String(error),
      corruption: error instanceof WalCorruptionError
        ? { file: error.file, offset: error.offset, reason: error.reason }
        : undefined,
    });
  }
};
