/**
 * Encode + decode per etcd message: revkv's generated static codecs (and its
 * fast RangeResponseWriter / WatchResponseWriter) against
 * `npm:@bufbuild/protobuf` (protobuf-es v2, schema from protoc's descriptor
 * set — its generated code drives the same reflective runtime) and
 * `npm:protobufjs` (the library under grpc-js; schema parsed from the same
 * .proto text, codecs compiled at run time).
 *
 * Messages: a RangeRequest as etcdctl sends it, a RangeResponse of 100 kvs
 * (16-byte keys, 100-byte values), a PutRequest with a lease, a
 * WatchResponse of 10 events with prev_kv.
 *
 * protobufjs is given int64 fields as numbers (it has no bigint; its output
 * is numbers/Long objects, not exact bigints) — a shortcut in its favour.
 * The other two libraries need protoc to build their schema; without protoc
 * only revkv's codecs run.
 *
 * Run: `deno bench -A bench/wire_bench.ts`
 */
import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import protobuf from "protobufjs";
import {
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResponse,
  decodeWatchResponse,
  encodePutRequest,
  encodeRangeRequest,
  encodeRangeResponse,
  encodeWatchResponse,
  type KeyValue,
  type PutRequest,
  type RangeRequest,
  type RangeResponse,
  type WatchResponse,
} from "../src/wire/etcd_messages.ts";
import {
  RangeResponseWriter,
  WatchResponseWriter,
} from "../src/wire/response_writers.ts";
import {
  PROTOC_AVAILABLE,
  protocDescriptorSet,
  strippedProtoTexts,
} from "../tests/wire_helpers.ts";

const enc = new TextEncoder();
const KVS_PER_RANGE = 100;
const EVENTS_PER_WATCH = 10;

function keyOf(i: number): Uint8Array {
  return enc.encode(`/registry/k${String(i).padStart(6, "0")}`).subarray(0, 16);
}

function kvOf(i: number): KeyValue {
  return {
    key: keyOf(i),
    value: new Uint8Array(100).fill(97 + (i % 26)),
    createRevision: BigInt(1000 + i),
    modRevision: BigInt(5000 + i),
    version: BigInt(1 + (i % 9)),
    lease: i % 4 === 0 ? 0x694d81c0a5b4e10an : 0n,
  };
}

const header = {
  clusterId: 14841639068965178418n,
  memberId: 10276657743932975437n,
  revision: 123456n,
  raftTerm: 7n,
};
const rangeRequest: Partial<RangeRequest> = {
  key: enc.encode("/registry/pods/"),
  rangeEnd: enc.encode("/registry/pods0"),
  limit: 500n,
  revision: 0n,
  serializable: true,
};
const kvs = Array.from({ length: KVS_PER_RANGE }, (_, i) => kvOf(i));
const rangeResponse: Partial<RangeResponse> = {
  header,
  kvs,
  more: true,
  count: 1000n,
};
const putRequest: Partial<PutRequest> = {
  key: keyOf(42),
  value: new Uint8Array(128).fill(120),
  lease: 0x694d81c0a5b4e10an,
  prevKv: true,
};
const events = Array.from({ length: EVENTS_PER_WATCH }, (_, i) => ({
  type: i % 5 === 4 ? 1 : 0,
  kv: kvOf(i),
  prevKv: kvOf(i + 1000),
}));
const watchResponse: Partial<WatchResponse> = { header, watchId: 3n, events };

const rangeRequestBytes = encodeRangeRequest(rangeRequest);
const rangeResponseBytes = encodeRangeResponse(rangeResponse);
const putRequestBytes = encodePutRequest(putRequest);
const watchResponseBytes = encodeWatchResponse(watchResponse);

let sink = 0;

// ---- revkv

Deno.bench("RangeRequest encode+decode: revkv generated", {
  group: "RangeRequest",
  baseline: true,
}, () => {
  sink += decodeRangeRequest(encodeRangeRequest(rangeRequest)).key.length;
});
Deno.bench("RangeResponse(100 kvs) encode+decode: revkv generated", {
  group: "RangeResponse",
  baseline: true,
}, () => {
  sink += decodeRangeResponse(encodeRangeResponse(rangeResponse)).kvs.length;
});
Deno.bench("RangeResponse(100 kvs) encode: revkv generated", {
  group: "RangeResponse encode",
  baseline: true,
}, () => {
  sink += encodeRangeResponse(rangeResponse).length;
});
const rangeWriter = new RangeResponseWriter();
// What the store holds: bytes and revisions as numbers (lease IDs bigint).
const storedParts = kvs.map((kv) => ({
  key: kv.key,
  value: kv.value,
  createRevision: Number(kv.createRevision),
  modRevision: Number(kv.modRevision),
  version: Number(kv.version),
  lease: kv.lease,
}));
Deno.bench(
  "RangeResponse(100 kvs) encode from stored parts: revkv RangeResponseWriter",
  {
    group: "RangeResponse from store",
    baseline: true,
  },
  () => {
    for (const p of storedParts) {
      rangeWriter.addKv(
        p.key,
        p.value,
        p.createRevision,
        p.modRevision,
        p.version,
        p.lease,
      );
    }
    sink += rangeWriter.finish(header, true, 1000n).length;
  },
);
Deno.bench(
  "RangeResponse(100 kvs) encode from stored parts: build KeyValue objects + revkv generated",
  {
    group: "RangeResponse from store",
  },
  () => {
    const built: KeyValue[] = storedParts.map((p) => ({
      key: p.key,
      value: p.value,
      createRevision: BigInt(p.createRevision),
      modRevision: BigInt(p.modRevision),
      version: BigInt(p.version),
      lease: p.lease,
    }));
    sink +=
      encodeRangeResponse({ header, kvs: built, more: true, count: 1000n })
        .length;
  },
);
Deno.bench("RangeResponse(100 kvs) decode: revkv generated", {
  group: "RangeResponse decode",
  baseline: true,
}, () => {
  sink += decodeRangeResponse(rangeResponseBytes).kvs.length;
});
Deno.bench("RangeResponse(100 kvs) decode: revkv generated, takeInput", {
  group: "RangeResponse decode",
}, () => {
  // As connect() decodes: in place, the transport's copy being private.
  sink += decodeRangeResponse(rangeResponseBytes, { takeInput: true }).kvs
    .length;
});
Deno.bench("PutRequest encode+decode: revkv generated, takeInput", {
  group: "PutRequest",
}, () => {
  sink +=
    decodePutRequest(encodePutRequest(putRequest), { takeInput: true }).value
      .length;
});
Deno.bench("PutRequest encode+decode: revkv generated", {
  group: "PutRequest",
  baseline: true,
}, () => {
  sink += decodePutRequest(encodePutRequest(putRequest)).value.length;
});
Deno.bench("WatchResponse(10 events) encode+decode: revkv generated", {
  group: "WatchResponse",
  baseline: true,
}, () => {
  sink += decodeWatchResponse(encodeWatchResponse(watchResponse)).events.length;
});
const watchWriter = new WatchResponseWriter();
const storedOf = (kv: KeyValue) => ({
  key: kv.key,
  value: kv.value,
  createRevision: Number(kv.createRevision),
  modRevision: Number(kv.modRevision),
  version: Number(kv.version),
  lease: kv.lease,
});
const storedEvents = events.map((e) => ({
  type: e.type,
  kv: storedOf(e.kv),
  prevKv: storedOf(e.prevKv),
}));
Deno.bench(
  "WatchResponse(10 events) encode from stored parts: revkv WatchResponseWriter",
  {
    group: "WatchResponse encode",
  },
  () => {
    for (const e of storedEvents) watchWriter.addEvent(e.type, e.kv, e.prevKv);
    sink += watchWriter.finish({ header, watchId: 3n }).length;
  },
);

Deno.bench("WatchResponse(10 events) encode: revkv generated", {
  group: "WatchResponse encode",
  baseline: true,
}, () => {
  sink += encodeWatchResponse(watchResponse).length;
});

// ---- @bufbuild/protobuf and protobufjs (need protoc for the schema)

if (PROTOC_AVAILABLE) {
  const registry = createFileRegistry(
    fromBinary(FileDescriptorSetSchema, await protocDescriptorSet()),
  );
  const schema = (name: string) => {
    const desc = registry.getMessage(name);
    if (desc === undefined) throw new Error(`no ${name} in the descriptor set`);
    return desc;
  };
  const es = {
    RangeRequest: schema("etcdserverpb.RangeRequest"),
    RangeResponse: schema("etcdserverpb.RangeResponse"),
    PutRequest: schema("etcdserverpb.PutRequest"),
    WatchResponse: schema("etcdserverpb.WatchResponse"),
  };
  const lengthOf = (message: unknown, field: string): number =>
    (message as Record<string, { length: number }>)[field]!.length;
  // deno-lint-ignore no-explicit-any
  const esInit = (desc: typeof es.RangeRequest, init: any) =>
    create(desc, init);
  const esRangeRequest = esInit(es.RangeRequest, rangeRequest);
  const esRangeResponse = esInit(es.RangeResponse, rangeResponse);
  const esPutRequest = esInit(es.PutRequest, putRequest);
  const esWatchResponse = esInit(es.WatchResponse, watchResponse);

  Deno.bench("RangeRequest encode+decode: @bufbuild/protobuf", {
    group: "RangeRequest",
  }, () => {
    sink += lengthOf(
      fromBinary(es.RangeRequest, toBinary(es.RangeRequest, esRangeRequest)),
      "key",
    );
  });
  Deno.bench("RangeResponse(100 kvs) encode+decode: @bufbuild/protobuf", {
    group: "RangeResponse",
  }, () => {
    sink += lengthOf(
      fromBinary(es.RangeResponse, toBinary(es.RangeResponse, esRangeResponse)),
      "kvs",
    );
  });
  Deno.bench("RangeResponse(100 kvs) encode: @bufbuild/protobuf", {
    group: "RangeResponse encode",
  }, () => {
    sink += toBinary(es.RangeResponse, esRangeResponse).length;
  });
  Deno.bench("RangeResponse(100 kvs) decode: @bufbuild/protobuf", {
    group: "RangeResponse decode",
  }, () => {
    sink += lengthOf(fromBinary(es.RangeResponse, rangeResponseBytes), "kvs");
  });
  Deno.bench("PutRequest encode+decode: @bufbuild/protobuf", {
    group: "PutRequest",
  }, () => {
    sink += lengthOf(
      fromBinary(es.PutRequest, toBinary(es.PutRequest, esPutRequest)),
      "value",
    );
  });
  Deno.bench("WatchResponse(10 events) encode+decode: @bufbuild/protobuf", {
    group: "WatchResponse",
  }, () => {
    sink += lengthOf(
      fromBinary(es.WatchResponse, toBinary(es.WatchResponse, esWatchResponse)),
      "events",
    );
  });
  Deno.bench("WatchResponse(10 events) encode: @bufbuild/protobuf", {
    group: "WatchResponse encode",
  }, () => {
    sink += toBinary(es.WatchResponse, esWatchResponse).length;
  });

  const root = new protobuf.Root();
  for (const text of await strippedProtoTexts()) {
    protobuf.parse(text, root, { keepCase: false });
  }
  root.resolveAll();
  const pj = {
    RangeRequest: root.lookupType("etcdserverpb.RangeRequest"),
    RangeResponse: root.lookupType("etcdserverpb.RangeResponse"),
    PutRequest: root.lookupType("etcdserverpb.PutRequest"),
    WatchResponse: root.lookupType("etcdserverpb.WatchResponse"),
  };
  // protobufjs takes int64 as number (or Long); bigint is not supported.
  const numbers = (value: unknown): unknown => {
    if (typeof value === "bigint") return Number(value);
    if (
      value instanceof Uint8Array || value === null || typeof value !== "object"
    ) return value;
    if (Array.isArray(value)) return value.map(numbers);
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, numbers(v)]),
    );
  };
  const pjRangeRequest = pj.RangeRequest.fromObject(
    numbers(rangeRequest) as Record<string, unknown>,
  );
  const pjRangeResponse = pj.RangeResponse.fromObject(
    numbers(rangeResponse) as Record<string, unknown>,
  );
  const pjPutRequest = pj.PutRequest.fromObject(
    numbers(putRequest) as Record<string, unknown>,
  );
  const pjWatchResponse = pj.WatchResponse.fromObject(
    numbers(watchResponse) as Record<string, unknown>,
  );
  const roundTrip = (type: protobuf.Type, message: protobuf.Message) =>
    type.decode(type.encode(message).finish());

  Deno.bench("RangeRequest encode+decode: protobufjs", {
    group: "RangeRequest",
  }, () => {
    sink += roundTrip(pj.RangeRequest, pjRangeRequest) === undefined ? 0 : 1;
  });
  Deno.bench("RangeResponse(100 kvs) encode+decode: protobufjs", {
    group: "RangeResponse",
  }, () => {
    sink += roundTrip(pj.RangeResponse, pjRangeResponse) === undefined ? 0 : 1;
  });
  Deno.bench("RangeResponse(100 kvs) encode: protobufjs", {
    group: "RangeResponse encode",
  }, () => {
    sink += pj.RangeResponse.encode(pjRangeResponse).finish().length;
  });
  Deno.bench("RangeResponse(100 kvs) decode: protobufjs", {
    group: "RangeResponse decode",
  }, () => {
    sink += pj.RangeResponse.decode(rangeResponseBytes) === undefined ? 0 : 1;
  });
  Deno.bench(
    "PutRequest encode+decode: protobufjs",
    { group: "PutRequest" },
    () => {
      sink += roundTrip(pj.PutRequest, pjPutRequest) === undefined ? 0 : 1;
    },
  );
  Deno.bench("WatchResponse(10 events) encode+decode: protobufjs", {
    group: "WatchResponse",
  }, () => {
    sink += roundTrip(pj.WatchResponse, pjWatchResponse) === undefined ? 0 : 1;
  });
  Deno.bench("WatchResponse(10 events) encode: protobufjs", {
    group: "WatchResponse encode",
  }, () => {
    sink += pj.WatchResponse.encode(pjWatchResponse).finish().length;
  });

  // The three must agree on the bytes before their speed means anything.
  const same = (a: Uint8Array, b: Uint8Array) =>
    a.length === b.length && a.every((x, i) => x === b[i]);
  for (
    const [name, ours, theirs] of [
      [
        "RangeRequest",
        rangeRequestBytes,
        toBinary(es.RangeRequest, esRangeRequest),
      ],
      [
        "RangeResponse",
        rangeResponseBytes,
        toBinary(es.RangeResponse, esRangeResponse),
      ],
      ["PutRequest", putRequestBytes, toBinary(es.PutRequest, esPutRequest)],
      [
        "WatchResponse",
        watchResponseBytes,
        toBinary(es.WatchResponse, esWatchResponse),
      ],
    ] as const
  ) {
    if (!same(ours, theirs)) {
      throw new Error(
        `${name}: revkv and @bufbuild/protobuf encode differently`,
      );
    }
  }
} else {
  console.log("protoc not installed: only revkv's codecs are measured");
}

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
