/**
 * etcd's Maintenance service onto the Store: Status, Defragment, Hash,
 * HashKV, Snapshot (the stream), Alarm and MoveLeader, as a single member
 * that is always its own leader answers them.
 *
 * - Status: the version revkv speaks (etcd 3.4's API), the state's size,
 *   leader = this member, raft index = applied index = the committed
 *   revision (revkv has no raft log; the revision is what grows with every
 *   write), raft term as the store keeps it, and the alarms as etcd lists
 *   them in `errors`.
 * - Snapshot: the store writes a consistent snapshot (revkv's own format,
 *   read by revkv's `snapshot status` / `snapshot restore`) to a temporary
 *   file, which is streamed in 32 KiB chunks with `remaining_bytes`, as
 *   etcd. etcdctl 3.4's `snapshot save` refuses a stream whose size is not
 *   512·n + 32 ("sha256 checksum not found"): etcd appends the sha256 of
 *   the bolt file, whose size is a multiple of its pages. So the stream is
 *   the snapshot, zero-padded to a multiple of 512 bytes, then the sha256
 *   of those bytes; revkv's snapshot reader stops at its footer frame and
 *   ignores the padding and the digest.
 * - HashKV: etcd 3.4's `HashByRev`, byte for byte (`Store.hashKv`), so
 *   `etcdctl endpoint hashkv` agrees with a real etcd that saw the same
 *   writes. Hash (etcd's CRC of its whole bolt file) cannot agree with
 *   etcd: it is revkv's own state hash.
 * - Alarm: GET lists NOSPACE (raised by the quota); DEACTIVATE clears it
 *   (a later put over the quota raises it again); ACTIVATE is refused —
 *   revkv raises alarms itself.
 * - MoveLeader: to this member it succeeds at once (etcd transfers to the
 *   current leader instantly); to any other ID it is etcd's
 *   `bad leader transferee`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Store } from "../store.ts";
import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";
import * as pb from "../wire/etcd_messages.ts";
import {
  type Authorizer,
  type MethodEntries,
  serverStream,
  toNumber,
  unary,
  wireHeader,
} from "./method.ts";
import { etcdGrpcError } from "./errors.ts";
import { ETCD_API_VERSION } from "../store_api.ts";
import { runtime } from "../storage/runtime.ts";

/** The server version Status reports: the etcd API revkv speaks. */
export const SERVER_VERSION = ETCD_API_VERSION;
/** Bytes per Snapshot response: etcd's `snapshotSendBufferSize` (32 KiB). */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;
/** etcdctl checks `size % 512 == 32` (its `hasChecksum`). */
const SNAPSHOT_ALIGN_BYTES = 512;
const ALARM_NAMES: Record<string, number> = { NOSPACE: pb.AlarmType.NOSPACE };

/** The Maintenance service's methods over `store`. */
export function maintenanceMethods(
  store: Store,
  authorize: Authorizer,
): MethodEntries {
  const memberId = () => BigInt.asUintN(64, store.header().memberId);
  const alarmMembers = () =>
    store.alarms().map((name) => ({
      memberID: memberId(),
      alarm: ALARM_NAMES[name] ?? pb.AlarmType.NONE,
    }));
  return [
    [
      "/etcdserverpb.Maintenance/Status",
      unary(
        authorize,
        pb.decodeStatusRequest,
        pb.encodeStatusResponse,
        () => {
          const header = store.header();
          const sizeBytes = BigInt(store.stats().sizeBytes);
          const index = BigInt(header.revision);
          return {
            header: wireHeader(header),
            version: SERVER_VERSION,
            dbSize: sizeBytes,
            leader: memberId(),
            raftIndex: index,
            raftTerm: BigInt(header.raftTerm),
            raftAppliedIndex: index,
            errors: store.alarms().map((name) =>
              `memberID:${memberId()} alarm:${name} `
            ),
            dbSizeInUse: sizeBytes,
          };
        },
      ),
    ],
    [
      "/etcdserverpb.Maintenance/Defragment",
      unary(
        authorize,
        pb.decodeDefragmentRequest,
        pb.encodeDefragmentResponse,
        async () => ({ header: wireHeader((await store.defrag()).header) }),
      ),
    ],
    [
      "/etcdserverpb.Maintenance/Hash",
      unary(
        authorize,
        pb.decodeHashRequest,
        pb.encodeHashResponse,
        () => {
          const { hash, revision } = store.hash();
          return { header: wireHeader(store.header(revision)), hash };
        },
      ),
    ],
    [
      "/etcdserverpb.Maintenance/HashKV",
      unary(
        authorize,
        pb.decodeHashKVRequest,
        pb.encodeHashKVResponse,
        async (req) => {
          // etcd's HashByRev, as the store computes it: 0 = current; at or
          // below the compaction is compacted, past the head is future.
          const result = await store.hashKv(toNumber(req.revision));
          return {
            header: wireHeader(result.header),
            hash: result.hash,
            compactRevision: BigInt(result.compactRevision),
          };
        },
      ),
    ],
    [
      "/etcdserverpb.Maintenance/Snapshot",
      serverStream(
        authorize,
        pb.decodeSnapshotRequest,
        (_req, responses, context) => sendSnapshot(store, responses, context),
      ),
    ],
    [
      "/etcdserverpb.Maintenance/Alarm",
      unary(
        authorize,
        pb.decodeAlarmRequest,
        pb.encodeAlarmResponse,
        (req) => {
          const action = req.action;
          if (action === pb.AlarmRequest_AlarmAction.ACTIVATE) {
            throw new GrpcError(
              GrpcStatus.UNIMPLEMENTED,
              "revkv: alarms are raised by the server only",
            );
          }
          if (action === pb.AlarmRequest_AlarmAction.DEACTIVATE) {
            const all = req.alarm === pb.AlarmType.NONE;
            if (all || req.alarm === pb.AlarmType.NOSPACE) {
              const before = alarmMembers();
              store.disarmAlarms();
              return { alarms: before };
            }
            return { alarms: [] };
          }
          // etcd 3.4 answers alarm requests without a header.
          return { alarms: alarmMembers() };
        },
      ),
    ],
    [
      "/etcdserverpb.Maintenance/MoveLeader",
      unary(
        authorize,
        pb.decodeMoveLeaderRequest,
        pb.encodeMoveLeaderResponse,
        (req) => {
          if (req.targetID !== memberId()) {
            throw etcdGrpcError("etcdserver: bad leader transferee");
          }
          return { header: wireHeader(store.header()) };
        },
      ),
    ],
  ];
}

async function sendSnapshot(
  store: Store,
  responses: { send(message: Uint8Array): Promise<void> },
  context: { signal: AbortSignal },
): Promise<void> {
  const file = await runtime.makeTempFile("revkv-snapshot-");
  try {
    await store.saveSnapshot(file);
    const size = (await runtime.stat(file)).size;
    const padded = Math.ceil(size / SNAPSHOT_ALIGN_BYTES) *
      SNAPSHOT_ALIGN_BYTES;
    const total = padded + 32;
    const sha = createHash("sha256");
    let sent = 0;
    const send = async (blob: Uint8Array) => {
      sent += blob.length;
      await responses.send(pb.encodeSnapshotResponse({
        remainingBytes: BigInt(total - sent),
        blob,
      }));
    };
    const handle = await runtime.fs.open(file);
    try {
      const buffer = new Uint8Array(SNAPSHOT_CHUNK_BYTES);
      let read = 0;
      while (read < padded) {
        if (context.signal.aborted) return;
        const n = read < size
          ? await handle.readAt(
            read,
            buffer.subarray(0, Math.min(buffer.length, size - read)),
          )
          : 0;
        // Past the file's end, the chunk is padding (zeros).
        const want = Math.min(buffer.length, padded - read);
        buffer.fill(0, n, want);
        const chunk = buffer.slice(0, want);
        sha.update(chunk);
        read += want;
        await send(chunk);
      }
    } finally {
      handle.close();
    }
    await send(new Uint8Array(sha.digest()));
  } finally {
    await runtime.fs.remove(file).catch(() => {});
  }
}
