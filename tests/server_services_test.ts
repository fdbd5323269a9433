/**
 * The etcd services called through the method table directly (no
 * transport): every service, the error table's codes and texts, malformed
 * and unknown-field input, watch streams with several watchers, fragments,
 * cancel and compaction, the keep-alive stream, and the snapshot stream
 * (which must pass revkv's `snapshotStatus` and etcdctl's checksum rule).
 */
import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { open, snapshotStatus } from "../mod.ts";
import type { Store } from "../src/store.ts";
import { createServiceTable } from "../src/server/services.ts";
import {
  type CallContext,
  GrpcError,
  type GrpcServiceTable,
  GrpcStatus,
} from "../src/wire/grpc_service.ts";
import * as pb from "../src/wire/etcd_messages.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

function context(path: string, signal = new AbortController().signal) {
  return { path, metadata: new Map(), signal } satisfies CallContext;
}

async function call(
  table: GrpcServiceTable,
  path: string,
  request: Uint8Array,
): Promise<Uint8Array> {
  const method = table.get(path);
  if (method?.kind !== "unary") throw new Error(`${path} is not unary`);
  return await method.handle(request, context(path));
}

async function callError(
  table: GrpcServiceTable,
  path: string,
  request: Uint8Array,
): Promise<GrpcError> {
  try {
    await call(table, path, request);
  } catch (error) {
    assert(error instanceof GrpcError, `not a GrpcError: ${error}`);
    return error;
  }
  throw new Error(`${path} did not fail`);
}

/** A bidi call: push requests, read responses, end the request side. */
class BidiCall {
  readonly responses: Uint8Array[] = [];
  readonly #queue: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #arrived: (() => void) | undefined;
  readonly abort = new AbortController();
  readonly done: Promise<void>;

  constructor(table: GrpcServiceTable, path: string) {
    const method = table.get(path);
    if (method?.kind !== "bidi") throw new Error(`${path} is not bidi`);
    // deno-lint-ignore no-this-alias
    const self = this;
    const requests = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (self.#queue.length > 0) yield self.#queue.shift()!;
          if (self.#ended) return;
          await new Promise<void>((resolve) => self.#wake = resolve);
        }
      },
    };
    this.done = method.handle(requests, {
      send: (message) => {
        this.responses.push(message);
        this.#arrived?.();
        return Promise.resolve();
      },
    }, context(path, this.abort.signal));
  }

  push(message: Uint8Array): void {
    this.#queue.push(message);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /** Waits until at least `count` responses arrived. */
  async waitFor(count: number): Promise<void> {
    while (this.responses.length < count) {
      await new Promise<void>((resolve) => this.#arrived = resolve);
    }
  }
}

async function withStore(
  run: (store: Store, table: GrpcServiceTable) => Promise<void>,
): Promise<void> {
  const store = await open();
  try {
    await run(store, createServiceTable(store, { maxRequestBytes: 4096 }));
  } finally {
    await store.close();
  }
}

Deno.test("KV: put, range with options, delete, compact", async () => {
  await withStore(async (_store, table) => {
    for (const [k, v] of [["a", "1"], ["b", "2"], ["c", "3"]]) {
      await call(
        table,
        "/etcdserverpb.KV/Put",
        pb.encodePutRequest({ key: b(k!), value: b(v!) }),
      );
    }
    const put = pb.decodePutResponse(
      await call(
        table,
        "/etcdserverpb.KV/Put",
        pb.encodePutRequest({ key: b("a"), value: b("9"), prevKv: true }),
      ),
    );
    assertEquals(put.header?.revision, 5n);
    assertEquals(dec.decode(put.prevKv!.value), "1");
    const range = pb.decodeRangeResponse(
      await call(
        table,
        "/etcdserverpb.KV/Range",
        pb.encodeRangeRequest({
          key: b("a"),
          rangeEnd: b("z"),
          limit: 2n,
          sortOrder: pb.RangeRequest_SortOrder.DESCEND,
          sortTarget: pb.RangeRequest_SortTarget.MOD,
        }),
      ),
    );
    assertEquals(range.count, 3n);
    assert(range.more);
    assertEquals(range.kvs.map((kv) => dec.decode(kv.key)), ["a", "c"]);
    assertEquals(range.kvs[0]!.version, 2n);
    const fromKey = pb.decodeRangeResponse(
      await call(
        table,
        "/etcdserverpb.KV/Range",
        pb.encodeRangeRequest({ key: b("b"), rangeEnd: new Uint8Array([0]) }),
      ),
    );
    assertEquals(fromKey.count, 2n);
    const del = pb.decodeDeleteRangeResponse(
      await call(
        table,
        "/etcdserverpb.KV/DeleteRange",
        pb.encodeDeleteRangeRequest({ key: b("b"), prevKv: true }),
      ),
    );
    assertEquals(del.deleted, 1n);
    assertEquals(dec.decode(del.prevKvs[0]!.value), "2");
    await call(
      table,
      "/etcdserverpb.KV/Compact",
      pb.encodeCompactionRequest({ revision: 5n, physical: true }),
    );
    const compacted = await callError(
      table,
      "/etcdserverpb.KV/Range",
      pb.encodeRangeRequest({ key: b("a"), revision: 2n }),
    );
    assertEquals(compacted.code, GrpcStatus.OUT_OF_RANGE);
    assertEquals(
      compacted.message,
      "etcdserver: mvcc: required revision has been compacted",
    );
  });
});

Deno.test("KV: nested txn with compares on every target", async () => {
  await withStore(async (_store, table) => {
    await call(
      table,
      "/etcdserverpb.KV/Put",
      pb.encodePutRequest({ key: b("k"), value: b("v") }),
    );
    const txn = pb.encodeTxnRequest({
      compare: [
        { key: b("k"), target: pb.Compare_CompareTarget.VALUE, value: b("v") },
        {
          key: b("k"),
          target: pb.Compare_CompareTarget.VERSION,
          result: pb.Compare_CompareResult.GREATER,
          version: 0n,
        },
        { key: b("k"), target: pb.Compare_CompareTarget.MOD, modRevision: 2n },
        {
          key: b("k"),
          target: pb.Compare_CompareTarget.CREATE,
          createRevision: 2n,
        },
        { key: b("k"), target: pb.Compare_CompareTarget.LEASE, lease: 0n },
      ],
      success: [
        { requestPut: { key: b("x"), value: b("1") } },
        {
          requestTxn: {
            compare: [{
              key: b("nope"),
              target: pb.Compare_CompareTarget.VERSION,
              version: 0n,
            }],
            success: [{ requestRange: { key: b("k") } }],
          },
        },
      ],
      failure: [{ requestDeleteRange: { key: b("k") } }],
    });
    const res = pb.decodeTxnResponse(
      await call(table, "/etcdserverpb.KV/Txn", txn),
    );
    assert(res.succeeded);
    assertEquals(res.header?.revision, 3n);
    assert(res.responses[0]!.responsePut);
    const inner = res.responses[1]!.responseTxn!;
    assert(inner.succeeded);
    assertEquals(
      dec.decode(inner.responses[0]!.responseRange!.kvs[0]!.value),
      "v",
    );
  });
});

Deno.test("errors: etcd's codes and texts, malformed input, unknown fields", async () => {
  await withStore(async (store, table) => {
    const cases: [string, Uint8Array, number, string][] = [
      [
        "/etcdserverpb.KV/Put",
        pb.encodePutRequest({ value: b("v") }),
        GrpcStatus.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
      ],
      [
        "/etcdserverpb.KV/Range",
        pb.encodeRangeRequest({ key: b("a"), revision: 100n }),
        GrpcStatus.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
      ],
      [
        "/etcdserverpb.Lease/LeaseRevoke",
        pb.encodeLeaseRevokeRequest({ ID: 42n }),
        GrpcStatus.NOT_FOUND,
        "etcdserver: requested lease not found",
      ],
      [
        "/etcdserverpb.KV/Txn",
        pb.encodeTxnRequest({
          success: [
            { requestPut: { key: b("d"), value: b("1") } },
            { requestPut: { key: b("d"), value: b("2") } },
          ],
        }),
        GrpcStatus.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
      ],
      [
        "/etcdserverpb.KV/Txn",
        pb.encodeTxnRequest({
          success: Array.from(
            { length: 129 },
            (_, i) => ({ requestRange: { key: b(`k${i}`) } }),
          ),
        }),
        GrpcStatus.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
      ],
      [
        "/etcdserverpb.KV/Put",
        pb.encodePutRequest({ key: b("big"), value: new Uint8Array(2 << 20) }),
        GrpcStatus.INVALID_ARGUMENT,
        "etcdserver: request is too large",
      ],
      [
        "/etcdserverpb.KV/Put",
        pb.encodePutRequest({ key: b("l"), value: b("v"), lease: 7n }),
        GrpcStatus.NOT_FOUND,
        "etcdserver: requested lease not found",
      ],
      [
        "/etcdserverpb.KV/Txn",
        pb.encodeTxnRequest({ success: [{}] }),
        GrpcStatus.INVALID_ARGUMENT,
        "etcdserver: key not found",
      ],
      [
        "/etcdserverpb.Auth/Authenticate",
        pb.encodeAuthenticateRequest({ name: "root", password: "x" }),
        GrpcStatus.FAILED_PRECONDITION,
        "etcdserver: authentication is not enabled",
      ],
    ];
    for (const [path, request, code, message] of cases) {
      const error = await callError(table, path, request);
      assertEquals([error.code, error.message], [code, message], path);
    }
    // A malformed message (truncated length-delimited field).
    const bad = await callError(
      table,
      "/etcdserverpb.KV/Range",
      new Uint8Array([0x0a, 0x05, 0x61]),
    );
    assertEquals(bad.code, GrpcStatus.INVALID_ARGUMENT);
    // Unknown fields (number 99, varint and bytes) are skipped.
    const known = pb.encodePutRequest({ key: b("u"), value: b("v") });
    const withUnknown = new Uint8Array([
      ...known,
      0x98,
      0x06,
      0x01,
      0x9a,
      0x06,
      0x02,
      0x68,
      0x69,
    ]);
    await call(table, "/etcdserverpb.KV/Put", withUnknown);
    assertEquals((await store.get("u")).count, 1);
  });
});

Deno.test("quota: NOSPACE is RESOURCE_EXHAUSTED, listed, and disarmed", async () => {
  const store = await open(undefined, { quotaBackendBytes: 4096 });
  try {
    const table = createServiceTable(store);
    const error = await callError(
      table,
      "/etcdserverpb.KV/Put",
      pb.encodePutRequest({ key: b("k"), value: new Uint8Array(8192) }),
    );
    assertEquals(
      [error.code, error.message],
      [
        GrpcStatus.RESOURCE_EXHAUSTED,
        "etcdserver: mvcc: database space exceeded",
      ],
    );
    const alarms = pb.decodeAlarmResponse(
      await call(
        table,
        "/etcdserverpb.Maintenance/Alarm",
        pb.encodeAlarmRequest({ action: pb.AlarmRequest_AlarmAction.GET }),
      ),
    );
    assertEquals(alarms.alarms.map((a) => a.alarm), [pb.AlarmType.NOSPACE]);
    const status = pb.decodeStatusResponse(
      await call(table, "/etcdserverpb.Maintenance/Status", new Uint8Array()),
    );
    assertEquals(status.errors.length, 1);
    await call(
      table,
      "/etcdserverpb.Maintenance/Alarm",
      pb.encodeAlarmRequest({
        action: pb.AlarmRequest_AlarmAction.DEACTIVATE,
        alarm: pb.AlarmType.NOSPACE,
      }),
    );
    assertEquals(store.alarms(), []);
  } finally {
    await store.close();
  }
});

Deno.test("Watch: several watchers, ids, prev_kv, filters, cancel, progress", async () => {
  await withStore(async (store, table) => {
    await store.put("w/a", "0");
    const stream = new BidiCall(table, "/etcdserverpb.Watch/Watch");
    stream.push(pb.encodeWatchRequest({
      createRequest: { key: b("w/"), rangeEnd: b("w0"), prevKv: true },
    }));
    stream.push(pb.encodeWatchRequest({
      createRequest: {
        key: b("w/a"),
        watchId: 7n,
        filters: [pb.WatchCreateRequest_FilterType.NOPUT],
      },
    }));
    stream.push(pb.encodeWatchRequest({
      createRequest: { key: b("w/a"), watchId: 7n },
    }));
    await stream.waitFor(3);
    const created = stream.responses.map((m) => pb.decodeWatchResponse(m));
    assertEquals(created.map((r) => [r.watchId, r.created, r.canceled]), [
      [0n, true, false],
      [7n, true, false],
      [-1n, true, true],
    ]);
    assertEquals(
      created[2]!.cancelReason,
      "mvcc: duplicate watch ID provided on the WatchStream",
    );
    await store.put("w/a", "1");
    await store.delete("w/a");
    await stream.waitFor(6);
    const events = stream.responses.slice(3).map((m) =>
      pb.decodeWatchResponse(m)
    );
    const byId = (id: bigint) =>
      events.filter((r) => r.watchId === id).flatMap((r) => r.events);
    const all = byId(0n);
    assertEquals(all.map((e) => e.type), [0, 1]);
    assertEquals(dec.decode(all[0]!.prevKv!.value), "0");
    assertEquals(byId(7n).map((e) => e.type), [1]);
    stream.push(pb.encodeWatchRequest({ cancelRequest: { watchId: 7n } }));
    stream.push(pb.encodeWatchRequest({ progressRequest: {} }));
    await stream.waitFor(8);
    const tail = stream.responses.slice(6).map((m) =>
      pb.decodeWatchResponse(m)
    );
    assertEquals(tail.map((r) => [r.watchId, r.canceled]), [
      [7n, true],
      [-1n, false],
    ]);
    assertEquals(tail[1]!.header?.revision, BigInt(store.revision));
    stream.end();
    await stream.done;
  });
});

Deno.test("Watch: history from start_revision, compacted start, fragments", async () => {
  await withStore(async (store, table) => {
    for (let i = 0; i < 6; i++) await store.put(`h${i}`, "x".repeat(1500));
    await store.compact(3, { physical: true });
    const stream = new BidiCall(table, "/etcdserverpb.Watch/Watch");
    stream.push(pb.encodeWatchRequest({
      createRequest: {
        key: b("h"),
        rangeEnd: b("i"),
        startRevision: 2n,
        watchId: 1n,
      },
    }));
    await stream.waitFor(2);
    const compacted = pb.decodeWatchResponse(stream.responses[1]!);
    assertEquals(
      [compacted.watchId, compacted.canceled, compacted.compactRevision],
      [1n, true, 3n],
    );
    // Four 1.5 KB events from revision 4 exceed the 4 KiB limit: fragments.
    stream.push(pb.encodeWatchRequest({
      createRequest: {
        key: b("h"),
        rangeEnd: b("i"),
        startRevision: 4n,
        watchId: 2n,
        fragment: true,
      },
    }));
    await stream.waitFor(4);
    const deadline = Date.now() + 5000;
    let fragments: pb.WatchResponse[] = [];
    while (Date.now() < deadline) {
      fragments = stream.responses.slice(3).map((m) =>
        pb.decodeWatchResponse(m)
      );
      if (fragments.length > 0 && !fragments.at(-1)!.fragment) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert(fragments.length >= 2, `${fragments.length} fragments`);
    assert(fragments.slice(0, -1).every((f) => f.fragment));
    assertEquals(fragments.flatMap((f) => f.events).length, 4);
    assert(stream.responses.slice(3).every((r) => r.length < 4096 + 1600));
    stream.abort.abort();
    stream.end();
    await stream.done;
  });
});

Deno.test("Lease: grant, keep-alive stream, time-to-live with keys, leases, revoke", async () => {
  await withStore(async (store, table) => {
    const grant = pb.decodeLeaseGrantResponse(
      await call(
        table,
        "/etcdserverpb.Lease/LeaseGrant",
        pb.encodeLeaseGrantRequest({ TTL: 1n, ID: 0x7fff_ffff_ffff_fff0n }),
      ),
    );
    assertEquals(grant.ID, 0x7fff_ffff_ffff_fff0n);
    assertEquals(grant.TTL, 2n); // raised to the minimum
    await store.put("leased", "v", { lease: grant.ID });
    const keepAlive = new BidiCall(table, "/etcdserverpb.Lease/LeaseKeepAlive");
    keepAlive.push(pb.encodeLeaseKeepAliveRequest({ ID: grant.ID }));
    keepAlive.push(pb.encodeLeaseKeepAliveRequest({ ID: 5n }));
    await keepAlive.waitFor(2);
    const [renewed, unknown] = keepAlive.responses.map((m) =>
      pb.decodeLeaseKeepAliveResponse(m)
    );
    assertEquals([renewed!.ID, renewed!.TTL], [grant.ID, 2n]);
    assertEquals([unknown!.ID, unknown!.TTL], [5n, 0n]);
    keepAlive.end();
    await keepAlive.done;
    const ttl = pb.decodeLeaseTimeToLiveResponse(
      await call(
        table,
        "/etcdserverpb.Lease/LeaseTimeToLive",
        pb.encodeLeaseTimeToLiveRequest({ ID: grant.ID, keys: true }),
      ),
    );
    assertEquals(ttl.grantedTTL, 2n);
    assertEquals(ttl.keys.map((k) => dec.decode(k)), ["leased"]);
    const leases = pb.decodeLeaseLeasesResponse(
      await call(table, "/etcdserverpb.Lease/LeaseLeases", new Uint8Array()),
    );
    assertEquals(leases.leases.map((l) => l.ID), [grant.ID]);
    await call(
      table,
      "/etcdserverpb.Lease/LeaseRevoke",
      pb.encodeLeaseRevokeRequest({ ID: grant.ID }),
    );
    assertEquals((await store.get("leased")).count, 0);
  });
});

Deno.test("Maintenance: status, hash, hashkv errors, move-leader, snapshot stream", async () => {
  await withStore(async (store, table) => {
    await store.put("s", "1");
    await store.put("s", "2");
    const status = pb.decodeStatusResponse(
      await call(table, "/etcdserverpb.Maintenance/Status", new Uint8Array()),
    );
    assertEquals(status.leader, status.header!.memberId);
    assertEquals(status.raftIndex, 3n);
    assert(status.version.startsWith("3.4."));
    const hashKv = pb.decodeHashKVResponse(
      await call(
        table,
        "/etcdserverpb.Maintenance/HashKV",
        pb.encodeHashKVRequest({}),
      ),
    );
    assertEquals(hashKv.hash, (await store.hashKv()).hash);
    const future = await callError(
      table,
      "/etcdserverpb.Maintenance/HashKV",
      pb.encodeHashKVRequest({ revision: 99n }),
    );
    assertEquals(future.code, GrpcStatus.OUT_OF_RANGE);
    await call(
      table,
      "/etcdserverpb.Maintenance/MoveLeader",
      pb.encodeMoveLeaderRequest({ targetID: status.leader }),
    );
    const bad = await callError(
      table,
      "/etcdserverpb.Maintenance/MoveLeader",
      pb.encodeMoveLeaderRequest({ targetID: 1n }),
    );
    assertEquals(bad.message, "etcdserver: bad leader transferee");
    const method = table.get("/etcdserverpb.Maintenance/Snapshot");
    if (method?.kind !== "server-stream") throw new Error("not a stream");
    const chunks: pb.SnapshotResponse[] = [];
    await method.handle(new Uint8Array(), {
      send: (
        m,
      ) => (chunks.push(pb.decodeSnapshotResponse(m)), Promise.resolve()),
    }, context("/etcdserverpb.Maintenance/Snapshot"));
    assertEquals(chunks.at(-1)!.remainingBytes, 0n);
    const bytes = new Uint8Array(
      chunks.reduce((n, c) => n + c.blob.length, 0),
    );
    let at = 0;
    for (const c of chunks) (bytes.set(c.blob, at), at += c.blob.length);
    // etcdctl's hasChecksum: size % 512 == 32, and the digest matches.
    assertEquals(bytes.length % 512, 32);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", bytes.subarray(0, at - 32)),
    );
    assertEquals(digest, bytes.subarray(at - 32));
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/s.db`, bytes);
      const saved = await snapshotStatus(`${dir}/s.db`);
      assertEquals(saved.revision, 3);
      assertEquals(saved.hash, store.hash().hash);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("Cluster and Auth: one member, clear refusals", async () => {
  await withStore(async (store, table) => {
    const list = pb.decodeMemberListResponse(
      await call(table, "/etcdserverpb.Cluster/MemberList", new Uint8Array()),
    );
    assertEquals(list.members.length, 1);
    assertEquals(
      list.members[0]!.ID,
      BigInt.asUintN(64, store.header().memberId),
    );
    const add = await callError(
      table,
      "/etcdserverpb.Cluster/MemberAdd",
      pb.encodeMemberAddRequest({ peerURLs: ["http://x:2380"] }),
    );
    assertEquals(add.code, GrpcStatus.FAILED_PRECONDITION);
    const remove = await callError(
      table,
      "/etcdserverpb.Cluster/MemberRemove",
      pb.encodeMemberRemoveRequest({ ID: 12345n }),
    );
    assertEquals(
      [remove.code, remove.message],
      [GrpcStatus.NOT_FOUND, "etcdserver: member not found"],
    );
    const users = pb.decodeAuthUserListResponse(
      await call(table, "/etcdserverpb.Auth/UserList", new Uint8Array()),
    );
    assertEquals(users.users, []);
    assert(!table.has("/etcdserverpb.KV/Nope"));
  });
});

Deno.test("shutdown: the closing signal ends watch and keep-alive streams OK", async () => {
  const store = await open();
  try {
    const closing = new AbortController();
    const table = createServiceTable(store, { closing: closing.signal });
    const watch = new BidiCall(table, "/etcdserverpb.Watch/Watch");
    watch.push(pb.encodeWatchRequest({ createRequest: { key: b("k") } }));
    await watch.waitFor(1);
    const keepAlive = new BidiCall(table, "/etcdserverpb.Lease/LeaseKeepAlive");
    closing.abort();
    // Neither client half-closed: the streams end because the server closes.
    await watch.done;
    await keepAlive.done;
    assertEquals(pb.decodeWatchResponse(watch.responses[0]!).created, true);
  } finally {
    await store.close();
  }
});

Deno.test("one authorization point: a refusing authorizer stops every method", async () => {
  const store = await open();
  try {
    const table = createServiceTable(store, {
      authorize: () => {
        throw new GrpcError(
          GrpcStatus.PERMISSION_DENIED,
          "etcdserver: permission denied",
        );
      },
    });
    for (const [path, method] of table) {
      if (method.kind !== "unary") continue;
      await assert.rejects(
        () => Promise.resolve(method.handle(new Uint8Array(), context(path))),
        /permission denied/,
      );
    }
    assertEquals(store.revision, 1);
  } finally {
    await store.close();
  }
});
