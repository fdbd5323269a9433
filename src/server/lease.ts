/**
 * etcd's Lease service onto the Store: LeaseGrant, LeaseRevoke,
 * LeaseTimeToLive (with `keys`), LeaseLeases, and the LeaseKeepAlive stream.
 *
 * As etcd 3.4's `LeaseServer.leaseKeepAlive`: each request on the stream is
 * answered by one response, in order; renewing an unknown lease is not a
 * stream error but a response with TTL 0. The client half-closing ends the
 * stream OK. One request is handled at a time, so a client that stops
 * reading stops being read (bounded by the transport's flow control).
 *
 * @module
 */

import type { Store } from "../store.ts";
import { EtcdError } from "../mvcc/errors.ts";
import * as pb from "../wire/etcd_messages.ts";
import {
  type Authorizer,
  bidi,
  type MethodEntries,
  unary,
  wireHeader,
} from "./method.ts";

const LEASE_NOT_FOUND = "etcdserver: requested lease not found";

/** The Lease service's methods over `store`. */
export function leaseMethods(
  store: Store,
  authorize: Authorizer,
  closing?: AbortSignal,
): MethodEntries {
  return [
    [
      "/etcdserverpb.Lease/LeaseGrant",
      unary(
        authorize,
        pb.decodeLeaseGrantRequest,
        pb.encodeLeaseGrantResponse,
        async (req) => {
          const res = await store.grant(
            Number(req.TTL),
            req.ID === 0n ? {} : { id: req.ID },
          );
          return {
            header: wireHeader(res.header),
            ID: res.id,
            TTL: BigInt(res.ttl),
          };
        },
      ),
    ],
    [
      "/etcdserverpb.Lease/LeaseRevoke",
      unary(
        authorize,
        pb.decodeLeaseRevokeRequest,
        pb.encodeLeaseRevokeResponse,
        async (req) => ({
          header: wireHeader((await store.revoke(req.ID)).header),
        }),
      ),
    ],
    [
      "/etcdserverpb.Lease/LeaseTimeToLive",
      unary(
        authorize,
        pb.decodeLeaseTimeToLiveRequest,
        pb.encodeLeaseTimeToLiveResponse,
        async (req) => {
          const res = await store.timeToLive(req.ID, { keys: req.keys });
          return {
            header: wireHeader(res.header),
            ID: res.id,
            TTL: BigInt(res.ttl),
            grantedTTL: BigInt(res.grantedTtl),
            keys: res.keys,
          };
        },
      ),
    ],
    [
      "/etcdserverpb.Lease/LeaseLeases",
      unary(
        authorize,
        pb.decodeLeaseLeasesRequest,
        pb.encodeLeaseLeasesResponse,
        async () => {
          const res = await store.leases();
          return {
            header: wireHeader(res.header),
            leases: res.leases.map((lease) => ({ ID: lease.id })),
          };
        },
      ),
    ],
    [
      "/etcdserverpb.Lease/LeaseKeepAlive",
      bidi(authorize, async (requests, responses, context) => {
        for await (const bytes of requests) {
          if (context.signal.aborted) return;
          const req = pb.decodeLeaseKeepAliveRequest(bytes);
          let message: Partial<pb.LeaseKeepAliveResponse>;
          try {
            const res = await store.keepAlive(req.ID);
            message = {
              header: wireHeader(res.header),
              ID: res.id,
              TTL: BigInt(res.ttl),
            };
          } catch (error) {
            if (
              !(error instanceof EtcdError) || error.message !== LEASE_NOT_FOUND
            ) {
              throw error;
            }
            message = { header: wireHeader(store.header()), ID: req.ID };
          }
          await responses.send(pb.encodeLeaseKeepAliveResponse(message));
        }
      }, closing),
    ],
  ];
}
