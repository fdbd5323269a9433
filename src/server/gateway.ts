/**
 * etcd's HTTP/JSON face (its grpc-gateway) on the gRPC port, as a thin
 * translation onto the gRPC method table: `POST /v3/kv/put` parses the JSON
 * body, turns it into a `PutRequest` (`fromJsonPutRequest`), encodes it,
 * calls the `/etcdserverpb.KV/Put` method's `handle()` exactly as the gRPC
 * transport would, decodes the response and writes it as grpc-gateway's
 * JSON. No etcd semantics live here: every answer is the gRPC service's.
 *
 * Errors are written as etcd 3.4's gateway writes them: the HTTP status
 * from the gRPC code by grpc-gateway v1's table ({@linkcode httpStatusOf},
 * checked against etcd 3.4.23: FAILED_PRECONDITION is 412, OUT_OF_RANGE
 * 400, NOT_FOUND 404) and the body `{"error":…,"message":…,"code":…}`. A
 * body that is not JSON, or does not fit the message, is 400 with code 3;
 * its text is revkv's JSON reader's, not Go's `encoding/json` words.
 *
 * Also served: `GET /version` and `GET /health` as etcd 3.4.23 prints them,
 * and `/metrics` (Prometheus text, `metrics.ts`) when given a writer; with
 * `metricsOnly`, only `/metrics` and `/health` (etcd's
 * `--listen-metrics-urls` listeners).
 * Streams: `/v3/watch` and `/v3/lease/keepalive` take the request
 * documents from the body and answer one `{"result":…}` line per response
 * in a chunked body until the client goes away.
 * The same routes answer h2c requests that are not gRPC (the gRPC server's
 * `http2` fallback: any content-type but `application/grpc…`), streams as
 * one DATA frame per line.
 * `/v3/auth/*` routes to the Auth service (an etcd with auth disabled);
 * `/v3/maintenance/snapshot` streams the snapshot as `{"result":{"blob":…}}`
 * lines, as etcd's gateway does.
 *
 * @module
 */

import type {
  CallContext,
  GrpcMethod,
  GrpcServiceTable,
  MessageSink,
  UnaryMethod,
} from "../wire/grpc_service.ts";
import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";
import * as json from "../wire/etcd_json.ts";
import * as wire from "../wire/etcd_messages.ts";
import { toGrpcError } from "./errors.ts";
import { SERVER_VERSION } from "./maintenance.ts";
import type { Http2Stream } from "../wire/http2/connection.ts";
import { ErrorCode } from "../wire/http2/frame.ts";
import type { HeaderList } from "../wire/http2/hpack.ts";
import { METRICS_CONTENT_TYPE } from "./metrics.ts";
import {
  type ChunkedWriter,
  Http1Error,
  Http1Reader,
  type Http1Request,
  startChunked,
  statusText,
  writeResponse,
} from "./http1.ts";
import type { SocketConn } from "../wire/socket.ts";

/** etcd's cluster version (`etcdcluster` in /version) for a one-member 3.4 cluster. */
export const CLUSTER_VERSION = "3.4.0";
/** How long a keep-alive connection may sit idle between requests. */
const IDLE_TIMEOUT_MS = 60_000;

/** One JSON route: the gRPC method and the message codecs either side. */
interface Route {
  readonly grpcPath: string;
  fromJson(body: unknown): Uint8Array;
  toJson(response: Uint8Array): unknown;
}

function route<Req, Res>(
  grpcPath: string,
  fromJson: (body: unknown) => Req,
  encode: (m: Req) => Uint8Array,
  decode: (bytes: Uint8Array) => Res,
  toJson: (m: Res) => unknown,
): Route {
  return {
    grpcPath,
    fromJson: (body) => encode(fromJson(body)),
    toJson: (bytes) => toJson(decode(bytes)),
  };
}

/** The unary routes by path after the version prefix (`/v3`, `/v3beta`). */
const ROUTES: ReadonlyMap<string, Route> = (() => {
  const leaseRevoke = route(
    "/etcdserverpb.Lease/LeaseRevoke",
    json.fromJsonLeaseRevokeRequest,
    wire.encodeLeaseRevokeRequest,
    wire.decodeLeaseRevokeResponse,
    json.toJsonLeaseRevokeResponse,
  );
  const leaseTimeToLive = route(
    "/etcdserverpb.Lease/LeaseTimeToLive",
    json.fromJsonLeaseTimeToLiveRequest,
    wire.encodeLeaseTimeToLiveRequest,
    wire.decodeLeaseTimeToLiveResponse,
    json.toJsonLeaseTimeToLiveResponse,
  );
  const leaseLeases = route(
    "/etcdserverpb.Lease/LeaseLeases",
    json.fromJsonLeaseLeasesRequest,
    wire.encodeLeaseLeasesRequest,
    wire.decodeLeaseLeasesResponse,
    json.toJsonLeaseLeasesResponse,
  );
  return new Map<string, Route>([
    [
      "/kv/range",
      route(
        "/etcdserverpb.KV/Range",
        json.fromJsonRangeRequest,
        wire.encodeRangeRequest,
        wire.decodeRangeResponse,
        json.toJsonRangeResponse,
      ),
    ],
    [
      "/kv/put",
      route(
        "/etcdserverpb.KV/Put",
        json.fromJsonPutRequest,
        wire.encodePutRequest,
        wire.decodePutResponse,
        json.toJsonPutResponse,
      ),
    ],
    [
      "/kv/deleterange",
      route(
        "/etcdserverpb.KV/DeleteRange",
        json.fromJsonDeleteRangeRequest,
        wire.encodeDeleteRangeRequest,
        wire.decodeDeleteRangeResponse,
        json.toJsonDeleteRangeResponse,
      ),
    ],
    [
      "/kv/txn",
      route(
        "/etcdserverpb.KV/Txn",
        json.fromJsonTxnRequest,
        wire.encodeTxnRequest,
        wire.decodeTxnResponse,
        json.toJsonTxnResponse,
      ),
    ],
    [
      "/kv/compaction",
      route(
        "/etcdserverpb.KV/Compact",
        json.fromJsonCompactionRequest,
        wire.encodeCompactionRequest,
        wire.decodeCompactionResponse,
        json.toJsonCompactionResponse,
      ),
    ],
    [
      "/lease/grant",
      route(
        "/etcdserverpb.Lease/LeaseGrant",
        json.fromJsonLeaseGrantRequest,
        wire.encodeLeaseGrantRequest,
        wire.decodeLeaseGrantResponse,
        json.toJsonLeaseGrantResponse,
      ),
    ],
    ["/lease/revoke", leaseRevoke],
    ["/kv/lease/revoke", leaseRevoke],
    ["/lease/timetolive", leaseTimeToLive],
    ["/kv/lease/timetolive", leaseTimeToLive],
    ["/lease/leases", leaseLeases],
    ["/kv/lease/leases", leaseLeases],
    [
      "/maintenance/status",
      route(
        "/etcdserverpb.Maintenance/Status",
        json.fromJsonStatusRequest,
        wire.encodeStatusRequest,
        wire.decodeStatusResponse,
        json.toJsonStatusResponse,
      ),
    ],
    [
      "/maintenance/defragment",
      route(
        "/etcdserverpb.Maintenance/Defragment",
        json.fromJsonDefragmentRequest,
        wire.encodeDefragmentRequest,
        wire.decodeDefragmentResponse,
        json.toJsonDefragmentResponse,
      ),
    ],
    [
      "/maintenance/hash",
      route(
        "/etcdserverpb.Maintenance/Hash",
        json.fromJsonHashRequest,
        wire.encodeHashRequest,
        wire.decodeHashResponse,
        json.toJsonHashResponse,
      ),
    ],
    [
      "/maintenance/alarm",
      route(
        "/etcdserverpb.Maintenance/Alarm",
        json.fromJsonAlarmRequest,
        wire.encodeAlarmRequest,
        wire.decodeAlarmResponse,
        json.toJsonAlarmResponse,
      ),
    ],
    [
      "/auth/enable",
      route(
        "/etcdserverpb.Auth/AuthEnable",
        json.fromJsonAuthEnableRequest,
        wire.encodeAuthEnableRequest,
        wire.decodeAuthEnableResponse,
        json.toJsonAuthEnableResponse,
      ),
    ],
    [
      "/auth/disable",
      route(
        "/etcdserverpb.Auth/AuthDisable",
        json.fromJsonAuthDisableRequest,
        wire.encodeAuthDisableRequest,
        wire.decodeAuthDisableResponse,
        json.toJsonAuthDisableResponse,
      ),
    ],
    [
      "/auth/authenticate",
      route(
        "/etcdserverpb.Auth/Authenticate",
        json.fromJsonAuthenticateRequest,
        wire.encodeAuthenticateRequest,
        wire.decodeAuthenticateResponse,
        json.toJsonAuthenticateResponse,
      ),
    ],
    [
      "/auth/user/add",
      route(
        "/etcdserverpb.Auth/UserAdd",
        json.fromJsonAuthUserAddRequest,
        wire.encodeAuthUserAddRequest,
        wire.decodeAuthUserAddResponse,
        json.toJsonAuthUserAddResponse,
      ),
    ],
    [
      "/auth/user/get",
      route(
        "/etcdserverpb.Auth/UserGet",
        json.fromJsonAuthUserGetRequest,
        wire.encodeAuthUserGetRequest,
        wire.decodeAuthUserGetResponse,
        json.toJsonAuthUserGetResponse,
      ),
    ],
    [
      "/auth/user/list",
      route(
        "/etcdserverpb.Auth/UserList",
        json.fromJsonAuthUserListRequest,
        wire.encodeAuthUserListRequest,
        wire.decodeAuthUserListResponse,
        json.toJsonAuthUserListResponse,
      ),
    ],
    [
      "/auth/user/delete",
      route(
        "/etcdserverpb.Auth/UserDelete",
        json.fromJsonAuthUserDeleteRequest,
        wire.encodeAuthUserDeleteRequest,
        wire.decodeAuthUserDeleteResponse,
        json.toJsonAuthUserDeleteResponse,
      ),
    ],
    [
      "/auth/user/changepw",
      route(
        "/etcdserverpb.Auth/UserChangePassword",
        json.fromJsonAuthUserChangePasswordRequest,
        wire.encodeAuthUserChangePasswordRequest,
        wire.decodeAuthUserChangePasswordResponse,
        json.toJsonAuthUserChangePasswordResponse,
      ),
    ],
    [
      "/auth/user/grant",
      route(
        "/etcdserverpb.Auth/UserGrantRole",
        json.fromJsonAuthUserGrantRoleRequest,
        wire.encodeAuthUserGrantRoleRequest,
        wire.decodeAuthUserGrantRoleResponse,
        json.toJsonAuthUserGrantRoleResponse,
      ),
    ],
    [
      "/auth/user/revoke",
      route(
        "/etcdserverpb.Auth/UserRevokeRole",
        json.fromJsonAuthUserRevokeRoleRequest,
        wire.encodeAuthUserRevokeRoleRequest,
        wire.decodeAuthUserRevokeRoleResponse,
        json.toJsonAuthUserRevokeRoleResponse,
      ),
    ],
    [
      "/auth/role/add",
      route(
        "/etcdserverpb.Auth/RoleAdd",
        json.fromJsonAuthRoleAddRequest,
        wire.encodeAuthRoleAddRequest,
        wire.decodeAuthRoleAddResponse,
        json.toJsonAuthRoleAddResponse,
      ),
    ],
    [
      "/auth/role/get",
      route(
        "/etcdserverpb.Auth/RoleGet",
        json.fromJsonAuthRoleGetRequest,
        wire.encodeAuthRoleGetRequest,
        wire.decodeAuthRoleGetResponse,
        json.toJsonAuthRoleGetResponse,
      ),
    ],
    [
      "/auth/role/list",
      route(
        "/etcdserverpb.Auth/RoleList",
        json.fromJsonAuthRoleListRequest,
        wire.encodeAuthRoleListRequest,
        wire.decodeAuthRoleListResponse,
        json.toJsonAuthRoleListResponse,
      ),
    ],
    [
      "/auth/role/delete",
      route(
        "/etcdserverpb.Auth/RoleDelete",
        json.fromJsonAuthRoleDeleteRequest,
        wire.encodeAuthRoleDeleteRequest,
        wire.decodeAuthRoleDeleteResponse,
        json.toJsonAuthRoleDeleteResponse,
      ),
    ],
    [
      "/auth/role/grant",
      route(
        "/etcdserverpb.Auth/RoleGrantPermission",
        json.fromJsonAuthRoleGrantPermissionRequest,
        wire.encodeAuthRoleGrantPermissionRequest,
        wire.decodeAuthRoleGrantPermissionResponse,
        json.toJsonAuthRoleGrantPermissionResponse,
      ),
    ],
    [
      "/auth/role/revoke",
      route(
        "/etcdserverpb.Auth/RoleRevokePermission",
        json.fromJsonAuthRoleRevokePermissionRequest,
        wire.encodeAuthRoleRevokePermissionRequest,
        wire.decodeAuthRoleRevokePermissionResponse,
        json.toJsonAuthRoleRevokePermissionResponse,
      ),
    ],
    [
      "/cluster/member/list",
      route(
        "/etcdserverpb.Cluster/MemberList",
        json.fromJsonMemberListRequest,
        wire.encodeMemberListRequest,
        wire.decodeMemberListResponse,
        json.toJsonMemberListResponse,
      ),
    ],
  ]);
})();

/** etcd's `AlarmType` names, by number, as `?exclude=` spells them. */
const ALARM_NAMES = ["NONE", "NOSPACE", "CORRUPT"];
/** etcd 3.4.23's unhealthy body: `http.Error` appends a newline. */
const UNHEALTHY = '{"health":"false"}\n';

/** One streaming JSON route: a bidi gRPC method. */
interface StreamRoute {
  readonly grpcPath: string;
  fromJson(body: unknown): Uint8Array;
  toJson(response: Uint8Array): unknown;
}

/**
 * A streaming method over the gateway: a bidi one reads `stream()`; a
 * server-stream one (Snapshot) answers the body's first request.
 */
function runStreaming(
  method: GrpcMethod,
  requests: readonly Uint8Array[],
  stream: () => AsyncIterable<Uint8Array>,
  sink: MessageSink,
  context: CallContext,
): Promise<void> {
  if (method.kind === "bidi") return method.handle(stream(), sink, context);
  if (method.kind === "server-stream") {
    return method.handle(requests[0] ?? new Uint8Array(0), sink, context);
  }
  return Promise.resolve();
}

/**
 * The streaming routes: one request body opens the stream, responses are
 * chunks (bidi: until the client goes away; Snapshot: until it is sent).
 */
const STREAM_ROUTES: ReadonlyMap<string, StreamRoute> = new Map([
  [
    "/maintenance/snapshot",
    route(
      "/etcdserverpb.Maintenance/Snapshot",
      json.fromJsonSnapshotRequest,
      wire.encodeSnapshotRequest,
      wire.decodeSnapshotResponse,
      json.toJsonSnapshotResponse,
    ),
  ],
  [
    "/watch",
    route(
      "/etcdserverpb.Watch/Watch",
      json.fromJsonWatchRequest,
      wire.encodeWatchRequest,
      wire.decodeWatchResponse,
      json.toJsonWatchResponse,
    ),
  ],
  [
    "/lease/keepalive",
    route(
      "/etcdserverpb.Lease/LeaseKeepAlive",
      json.fromJsonLeaseKeepAliveRequest,
      wire.encodeLeaseKeepAliveRequest,
      wire.decodeLeaseKeepAliveResponse,
      json.toJsonLeaseKeepAliveResponse,
    ),
  ],
]);

/**
 * Splits a body of concatenated JSON documents (`{…} {…}`, as a streaming
 * grpc-gateway request body is) into their texts.
 * @throws {SyntaxError} when a document is cut off
 */
export function splitJsonDocuments(text: string): string[] {
  const documents: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === " " || c === "\n" || c === "\r" || c === "\t") {
      if (depth === 0 && start >= 0) {
        documents.push(text.slice(start, i));
        start = -1;
      }
      continue;
    }
    if (start < 0) start = i;
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) {
        documents.push(text.slice(start, i + 1));
        start = -1;
      }
    }
  }
  if (start >= 0) {
    if (depth > 0 || inString) throw new SyntaxError("unexpected EOF");
    documents.push(text.slice(start));
  }
  return documents;
}

/** The streaming route for a request path, if it is one. */
function streamRouteOf(path: string): StreamRoute | undefined {
  for (const prefix of VERSION_PREFIXES) {
    if (path.startsWith(prefix + "/")) {
      return STREAM_ROUTES.get(path.slice(prefix.length));
    }
  }
  return undefined;
}

/** Bytes read (and dropped) at a time while a stream watches for the client leaving. */
const STREAM_DRAIN_BYTES = 4096;

const utf8 = new TextEncoder();

/** etcd 3.4.23 serves its gateway under these (not /v3alpha: 404 there). */
const VERSION_PREFIXES = ["/v3beta", "/v3"];

/**
 * The HTTP status grpc-gateway v1 (the one in etcd 3.4) answers for a gRPC
 * code (its `HTTPStatusFromCode`).
 */
export function httpStatusOf(code: number): number {
  switch (code) {
    case GrpcStatus.OK:
      return 200;
    case GrpcStatus.CANCELLED:
      return 408;
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.OUT_OF_RANGE:
      return 400;
    case GrpcStatus.DEADLINE_EXCEEDED:
      return 504;
    case GrpcStatus.NOT_FOUND:
      return 404;
    case GrpcStatus.ALREADY_EXISTS:
    case GrpcStatus.ABORTED:
      return 409;
    case GrpcStatus.PERMISSION_DENIED:
      return 403;
    case GrpcStatus.UNAUTHENTICATED:
      return 401;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 429;
    case GrpcStatus.FAILED_PRECONDITION:
      return 412;
    case GrpcStatus.UNIMPLEMENTED:
      return 501;
    case GrpcStatus.UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

/** What the gateway answers: a status and a JSON (or text) body. */
export interface GatewayResponse {
  /** HTTP status. */
  readonly status: number;
  /** `Content-Type`. */
  readonly contentType: string;
  /** The body text. */
  readonly body: string;
}

/** Options of {@linkcode createGateway}. */
export interface GatewayOptions {
  /** The gRPC methods the gateway calls. */
  methods: GrpcServiceTable;
  /**
   * The largest encoded request the gRPC server takes (its
   * `maxReceiveMessageBytes`): beyond it the gateway answers as etcd's
   * does, 429 "grpc: received message larger than max (N vs. M)".
   */
  maxMessageBytes: number;
  /** The largest HTTP body read at all (413 beyond it, before reading). */
  maxBodyBytes: number;
  /** Writes the `/metrics` page (absent: /metrics is 404). */
  metrics?: () => string;
  /**
   * Serve only `/metrics` and `/health`, as etcd's `--listen-metrics-urls`
   * listeners do (everything else is Go's 404).
   */
  metricsOnly?: boolean;
}

/** The gateway: answers one request, and serves a whole HTTP/1.1 connection. */
export interface Gateway {
  /** Answers one parsed request. */
  answer(
    method: string,
    target: string,
    body: Uint8Array,
    headers?: ReadonlyMap<string, string>,
  ): Promise<GatewayResponse>;
  /** Serves requests on `conn` (with `head` already read) until it closes. */
  serveHttp1(conn: SocketConn, head: Uint8Array): Promise<void>;
  /**
   * Serves one h2c request that is not gRPC (the gRPC server's `http2`
   * fallback): reads its body, answers as over HTTP/1.1; a streaming route
   * answers one DATA frame per `{"result":…}` line until the client resets
   * the stream or the connection goes.
   */
  serveHttp2(
    stream: Http2Stream,
    headers: HeaderList,
    endStream: boolean,
  ): void;
}

function errorBody(code: number, message: string): GatewayResponse {
  return {
    status: httpStatusOf(code),
    contentType: "application/json",
    body: json.stringifyJson({ error: message, message, code }),
  };
}

function text(status: number, body: string): GatewayResponse {
  return { status, contentType: "text/plain; charset=utf-8", body };
}

/** Creates etcd's JSON gateway over `options.methods`. */
export function createGateway(options: GatewayOptions): Gateway {
  const { methods } = options;

  const call = async (
    grpcPath: string,
    request: Uint8Array,
    headers: ReadonlyMap<string, string>,
  ): Promise<Uint8Array> => {
    const method = methods.get(grpcPath);
    if (method === undefined || method.kind !== "unary") {
      throw new GrpcError(
        GrpcStatus.UNIMPLEMENTED,
        `unknown method ${grpcPath}`,
      );
    }
    const metadata = new Map<string, string>();
    const token = headers.get("authorization");
    if (token !== undefined) metadata.set("token", token);
    const context: CallContext = {
      path: grpcPath,
      metadata,
      signal: new AbortController().signal,
    };
    return await (method as UnaryMethod).handle(request, context);
  };

  const health = async (
    headers: ReadonlyMap<string, string>,
    excluded: ReadonlySet<string>,
  ): Promise<GatewayResponse> => {
    // etcd 3.4's /health: a Range of "health" must succeed and no alarm may
    // be raised (but those named in `?exclude=`); a NOSPACE alarm answers
    // 503 {"health":"false"} with Go's http.Error newline.
    try {
      const alarms = wire.decodeAlarmResponse(
        await call(
          "/etcdserverpb.Maintenance/Alarm",
          wire.encodeAlarmRequest({ action: 0, memberID: 0n, alarm: 0 }),
          headers,
        ),
      );
      for (const alarm of alarms.alarms) {
        const name = ALARM_NAMES[alarm.alarm] ?? String(alarm.alarm);
        if (!excluded.has(name)) return text(503, UNHEALTHY);
      }
      await call(
        "/etcdserverpb.KV/Range",
        wire.encodeRangeRequest({ key: new TextEncoder().encode("health") }),
        headers,
      );
      return text(200, '{"health":"true"}');
    } catch {
      return text(503, UNHEALTHY);
    }
  };

  const isStream = (path: string): boolean => streamRouteOf(path) !== undefined;

  /**
   * Serves a streaming route on `conn`: the body's documents are the
   * requests, each response one `{"result":…}` line in a chunked body; the
   * call runs until the method ends it or the client goes away (EOF).
   */
  const serveStream = async (
    conn: SocketConn,
    streamRoute: StreamRoute,
    request: Http1Request,
  ): Promise<void> => {
    let requests: Uint8Array[];
    try {
      const source = new TextDecoder("utf-8", { fatal: true }).decode(
        request.body,
      );
      requests = splitJsonDocuments(source).map((doc) =>
        streamRoute.fromJson(json.parseJson(doc))
      );
    } catch (error) {
      // etcd's gateway answers a bad first request as UNKNOWN, 500.
      const message = error instanceof Error ? error.message : String(error);
      const response = errorBody(GrpcStatus.UNKNOWN, message);
      await writeResponse(
        conn,
        response.status,
        [["Content-Type", response.contentType]],
        utf8.encode(response.body),
        false,
      );
      return;
    }
    const method = methods.get(streamRoute.grpcPath);
    if (method === undefined || method.kind === "unary") return;
    const gone = new AbortController();
    // The client going away (EOF or a reset) ends the call.
    void (async () => {
      const scratch = new Uint8Array(STREAM_DRAIN_BYTES);
      for (;;) {
        const n = await conn.read(scratch).catch(() => null);
        if (n === null) break;
      }
      gone.abort();
    })();
    const metadata = new Map<string, string>();
    const token = request.headers.get("authorization");
    if (token !== undefined) metadata.set("token", token);
    const context: CallContext = {
      path: streamRoute.grpcPath,
      metadata,
      signal: gone.signal,
    };
    async function* requestStream(): AsyncIterable<Uint8Array> {
      yield* requests;
      // The body is over but the stream is not: etcd's gateway keeps it
      // open until the client disconnects.
      if (!gone.signal.aborted) {
        await new Promise((resolve) =>
          gone.signal.addEventListener("abort", resolve, { once: true })
        );
      }
    }
    let writer: ChunkedWriter | undefined;
    try {
      await runStreaming(method, requests, requestStream, {
        send: async (bytes) => {
          if (gone.signal.aborted) throw new Error("client went away");
          writer ??= await startChunked(conn, 200, [[
            "Content-Type",
            "application/json",
          ]], false);
          const line = json.stringifyJson({
            result: streamRoute.toJson(bytes),
          });
          await writer.write(utf8.encode(line + "\n"));
        },
      }, context);
      if (writer !== undefined) await writer.end();
    } catch (error) {
      if (gone.signal.aborted) return;
      const grpc = toGrpcError(error);
      if (writer === undefined) {
        const response = errorBody(grpc.code, grpc.message);
        await writeResponse(
          conn,
          response.status,
          [["Content-Type", response.contentType]],
          utf8.encode(response.body),
          false,
        );
      } else {
        // grpc-gateway v1's in-stream error document.
        const line = json.stringifyJson({
          error: {
            grpc_code: grpc.code,
            http_code: httpStatusOf(grpc.code),
            message: grpc.message,
            http_status: statusText(httpStatusOf(grpc.code)),
          },
        });
        await writer.write(utf8.encode(line + "\n"));
        await writer.end();
      }
    }
  };

  const answer = async (
    method: string,
    target: string,
    body: Uint8Array,
    headers: ReadonlyMap<string, string> = new Map(),
  ): Promise<GatewayResponse> => {
    const path = target.split("?")[0] ?? target;
    if (path === "/metrics" && options.metrics !== undefined) {
      // Prometheus's handler answers any method.
      return {
        status: 200,
        contentType: METRICS_CONTENT_TYPE,
        body: options.metrics(),
      };
    }
    if (options.metricsOnly && path !== "/health") {
      return text(404, "404 page not found\n");
    }
    if (path === "/version") {
      if (method !== "GET") return text(405, "Method Not Allowed\n");
      return {
        status: 200,
        contentType: "application/json",
        body: json.stringifyJson({
          etcdserver: SERVER_VERSION,
          etcdcluster: CLUSTER_VERSION,
        }),
      };
    }
    if (path === "/health") {
      if (method !== "GET") return text(405, "Method Not Allowed\n");
      const query = new URLSearchParams(target.slice(path.length + 1));
      return await health(headers, new Set(query.getAll("exclude")));
    }
    let route: Route | undefined;
    let underPrefix = false;
    for (const prefix of VERSION_PREFIXES) {
      if (path.startsWith(prefix + "/")) {
        underPrefix = true;
        route = ROUTES.get(path.slice(prefix.length));
        break;
      }
    }
    // etcd's two 404s: its gateway's under /v3/, Go's ServeMux's elsewhere.
    if (route === undefined && !isStream(path)) {
      return text(404, underPrefix ? "Not Found\n" : "404 page not found\n");
    }
    if (method !== "POST") return text(405, "Method Not Allowed\n");
    if (route === undefined) return text(404, "Not Found\n");
    let request: Uint8Array;
    try {
      const source = new TextDecoder("utf-8", { fatal: true }).decode(body);
      request = route.fromJson(
        source.trim() === "" ? {} : json.parseJson(source),
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return errorBody(GrpcStatus.INVALID_ARGUMENT, message);
    }
    if (request.length > options.maxMessageBytes) {
      return errorBody(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `grpc: received message larger than max (${request.length} vs. ${options.maxMessageBytes})`,
      );
    }
    try {
      const response = await call(route.grpcPath, request, headers);
      return {
        status: 200,
        contentType: "application/json",
        body: json.stringifyJson(route.toJson(response)),
      };
    } catch (error) {
      const grpc = toGrpcError(error);
      return errorBody(grpc.code, grpc.message);
    }
  };

  const serveHttp1 = async (conn: SocketConn, head: Uint8Array) => {
    const reader = new Http1Reader(conn, head, options.maxBodyBytes);
    let idle: ReturnType<typeof setTimeout> | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        try {
          conn.close();
        } catch { /* gone */ }
      }, IDLE_TIMEOUT_MS);
    };
    try {
      for (;;) {
        armIdle();
        let request: Http1Request | undefined;
        try {
          request = await reader.next();
        } catch (error) {
          if (error instanceof Http1Error) {
            const response = error.status === 413
              ? errorBody(GrpcStatus.RESOURCE_EXHAUSTED, error.message)
              : text(error.status, error.message + "\n");
            await writeResponse(
              conn,
              error.status,
              [["Content-Type", response.contentType]],
              new TextEncoder().encode(response.body),
              false,
            );
          }
          return;
        }
        if (request === undefined) return;
        clearTimeout(idle);
        const streamRoute = streamRouteOf(request.target.split("?")[0] ?? "");
        if (
          streamRoute !== undefined && request.method === "POST" &&
          !options.metricsOnly
        ) {
          await serveStream(conn, streamRoute, request);
          return;
        }
        const response = await answer(
          request.method,
          request.target,
          request.body,
          request.headers,
        );
        await writeResponse(
          conn,
          response.status,
          [["Content-Type", response.contentType]],
          new TextEncoder().encode(response.body),
          request.keepAlive,
        );
        if (!request.keepAlive) return;
      }
    } catch {
      // The peer went away mid-response: nothing to answer.
    } finally {
      clearTimeout(idle);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };

  const serveHttp2 = (
    stream: Http2Stream,
    headers: HeaderList,
    endStream: boolean,
  ): void => {
    let method = "";
    let target = "";
    const fields = new Map<string, string>();
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (name === ":method") method = value;
      else if (name === ":path") target = value;
      else if (!name.startsWith(":")) fields.set(name, value);
    }
    const gone = new AbortController();
    const parts: Uint8Array[] = [];
    let bodyBytes = 0;
    let drained: (() => void) | undefined;
    const respond = (response: GatewayResponse, end = true) => {
      stream.sendHeaders([
        ":status",
        String(response.status),
        "content-type",
        response.contentType,
      ], false);
      stream.sendData(utf8.encode(response.body), end);
    };
    const run = async () => {
      const body = new Uint8Array(bodyBytes);
      let offset = 0;
      for (const part of parts) {
        body.set(part, offset);
        offset += part.length;
      }
      const path = target.split("?")[0] ?? target;
      const streamRoute = streamRouteOf(path);
      if (
        streamRoute === undefined || method !== "POST" || options.metricsOnly
      ) {
        respond(await answer(method, target, body, fields));
        return;
      }
      let requests: Uint8Array[];
      try {
        const source = new TextDecoder("utf-8", { fatal: true }).decode(body);
        requests = splitJsonDocuments(source).map((doc) =>
          streamRoute.fromJson(json.parseJson(doc))
        );
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        respond(errorBody(GrpcStatus.UNKNOWN, message));
        return;
      }
      const grpcMethod = methods.get(streamRoute.grpcPath);
      if (grpcMethod === undefined || grpcMethod.kind === "unary") return;
      const metadata = new Map<string, string>();
      const token = fields.get("authorization");
      if (token !== undefined) metadata.set("token", token);
      async function* requestStream(): AsyncIterable<Uint8Array> {
        yield* requests;
        if (!gone.signal.aborted) {
          await new Promise((resolve) =>
            gone.signal.addEventListener("abort", resolve, { once: true })
          );
        }
      }
      let started = false;
      try {
        await runStreaming(grpcMethod, requests, requestStream, {
          send: async (bytes) => {
            if (gone.signal.aborted) throw new Error("client went away");
            if (!started) {
              started = true;
              stream.sendHeaders([
                ":status",
                "200",
                "content-type",
                "application/json",
              ], false);
            }
            const line = json.stringifyJson({
              result: streamRoute.toJson(bytes),
            });
            // Backpressure: wait for the stream's queue to drain.
            if (!stream.sendData(utf8.encode(line + "\n"))) {
              await new Promise<void>((resolve) => (drained = resolve));
            }
          },
        }, { path: streamRoute.grpcPath, metadata, signal: gone.signal });
        if (started) stream.sendData(new Uint8Array(0), true);
      } catch (error) {
        if (gone.signal.aborted) return;
        const grpc = toGrpcError(error);
        if (!started) respond(errorBody(grpc.code, grpc.message));
        else {
          const line = json.stringifyJson({
            error: {
              grpc_code: grpc.code,
              http_code: httpStatusOf(grpc.code),
              message: grpc.message,
              http_status: statusText(httpStatusOf(grpc.code)),
            },
          });
          stream.sendData(utf8.encode(line + "\n"), true);
        }
      }
    };
    const start = () => {
      run().catch(() => stream.reset(ErrorCode.INTERNAL_ERROR));
    };
    stream.handler = {
      onData(data, end) {
        bodyBytes += data.length;
        if (bodyBytes > options.maxBodyBytes) {
          const response = errorBody(
            GrpcStatus.RESOURCE_EXHAUSTED,
            `request body larger than ${options.maxBodyBytes} bytes`,
          );
          // Answer at once; the rest of the body is not read (its window
          // is never credited back).
          parts.length = 0;
          stream.handler = {};
          respond({ ...response, status: 413 });
          return;
        }
        parts.push(data.slice());
        stream.consumed(data.length);
        if (end) start();
      },
      onHeaders(_trailers, end) {
        if (end) start();
      },
      onReset() {
        gone.abort();
        drained?.();
      },
      onDrain() {
        const wake = drained;
        drained = undefined;
        wake?.();
      },
    };
    if (endStream) start();
  };

  return { answer, serveHttp1, serveHttp2 };
}
