/**
 * The whole etcd v3 API of one revkv server as one `GrpcServiceTable`:
 * KV, Watch, Lease, Maintenance, Cluster and Auth, and the standard gRPC
 * health service (`grpc.health.v1.Health`, as etcd registers it), every
 * method behind the same `Authorizer`. The transport answers any path not in the table with
 * UNIMPLEMENTED.
 *
 * @example Call a method directly, as the transport would
 * ```ts
 * import { open } from "../../mod.ts";
 * import { createServiceTable } from "./services.ts";
 * import { encodePutRequest } from "../wire/etcd_messages.ts";
 *
 * const store = await open();
 * const table = createServiceTable(store);
 * const put = table.get("/etcdserverpb.KV/Put");
 * if (put?.kind === "unary") {
 *   const request = encodePutRequest({
 *     key: new TextEncoder().encode("k"),
 *     value: new TextEncoder().encode("v"),
 *   });
 *   const context = { path: "/etcdserverpb.KV/Put", metadata: new Map(), signal: new AbortController().signal };
 *   await put.handle(request, context);
 * }
 * console.log((await store.get("k")).count); // 1
 * await store.close();
 * ```
 *
 * @module
 */

import { DEFAULT_MAX_REQUEST_BYTES, type Store } from "../store.ts";
import type { GrpcServiceTable } from "../wire/grpc_service.ts";
import { allowAll, type Authorizer } from "./method.ts";
import { kvMethods } from "./kv.ts";
import { watchMethods } from "./watch.ts";
import { leaseMethods } from "./lease.ts";
import { maintenanceMethods } from "./maintenance.ts";
import { clusterMethods, type MemberInfo } from "./cluster.ts";
import { authMethods } from "./auth.ts";
import { healthMethods } from "./health.ts";
import type { MvccCounters } from "./metrics.ts";

/** Options of `createServiceTable`. */
export interface ServiceOptions {
  /** Decides whether each call may run (default: allow all). */
  authorize?: Authorizer;
  /** This member as MemberList shows it. */
  member?: MemberInfo;
  /** etcd's `--max-request-bytes` (watch fragments split at it). */
  maxRequestBytes?: number;
  /**
   * Aborted when the server shuts down: Watch and LeaseKeepAlive streams
   * end with OK at once instead of holding the shutdown until their grace.
   */
  closing?: AbortSignal;
  /** Where the KV service reports applied requests (etcd's mvcc counters). */
  mvccCounters?: MvccCounters;
}

/** Every etcd v3 method revkv serves, by gRPC path, over `store`. */
export function createServiceTable(
  store: Store,
  options: ServiceOptions = {},
): GrpcServiceTable {
  const authorize = options.authorize ?? allowAll;
  const member = options.member ?? {
    name: "default",
    peerUrls: ["http://localhost:2380"],
    clientUrls: ["http://localhost:2379"],
  };
  return new Map([
    ...kvMethods(store, authorize, options.mvccCounters),
    ...watchMethods(store, authorize, {
      maxRequestBytes: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
      closing: options.closing,
    }),
    ...leaseMethods(store, authorize, options.closing),
    ...maintenanceMethods(store, authorize),
    ...clusterMethods(store, authorize, member),
    ...authMethods(store, authorize),
    ...healthMethods(authorize, options.closing),
  ]);
}
