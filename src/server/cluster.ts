/**
 * etcd's Cluster service for revkv's one member, which has no consensus and
 * so cannot grow:
 *
 * - MemberList: this member, with its name, peer and client URLs.
 * - MemberAdd: refused (FAILED_PRECONDITION, revkv's words): a single
 *   revkv member cannot take peers; clusters are real etcd's job.
 * - MemberRemove of this member: etcd's answer for removing the last
 *   started member ("re-configuration failed due to not enough started
 *   members"); of any other ID: "member not found".
 * - MemberUpdate of this member: refused (its peer URLs are the server's
 *   flags); of any other ID: "member not found".
 * - MemberPromote of this member: "can only promote a learner member" (it
 *   is a voting member); of any other ID: "member not found".
 *
 * @module
 */

import type { Store } from "../store.ts";
import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";
import * as pb from "../wire/etcd_messages.ts";
import {
  type Authorizer,
  type MethodEntries,
  unary,
  wireHeader,
} from "./method.ts";
import { etcdGrpcError } from "./errors.ts";

/** This member as MemberList shows it. */
export interface MemberInfo {
  /** etcd's `--name`. */
  name: string;
  /** etcd's `--initial-advertise-peer-urls` (revkv has no peers). */
  peerUrls: string[];
  /** etcd's `--advertise-client-urls`. */
  clientUrls: string[];
}

/** The Cluster service's methods over `store`. */
export function clusterMethods(
  store: Store,
  authorize: Authorizer,
  member: MemberInfo,
): MethodEntries {
  const selfId = () => BigInt.asUintN(64, store.header().memberId);
  const members = (): pb.Member[] => [{
    ID: selfId(),
    name: member.name,
    peerURLs: member.peerUrls,
    clientURLs: member.clientUrls,
    isLearner: false,
  }];
  // etcd's cluster server answers with cluster, member and term only.
  const header = (): pb.ResponseHeader => ({
    ...wireHeader(store.header()),
    revision: 0n,
  });
  const otherOrSelf = (id: bigint, selfError: () => Error) => {
    if (id !== selfId()) throw etcdGrpcError("etcdserver: member not found");
    throw selfError();
  };
  return [
    [
      "/etcdserverpb.Cluster/MemberList",
      unary(
        authorize,
        pb.decodeMemberListRequest,
        pb.encodeMemberListResponse,
        () => ({ header: header(), members: members() }),
      ),
    ],
    [
      "/etcdserverpb.Cluster/MemberAdd",
      unary(
        authorize,
        pb.decodeMemberAddRequest,
        pb.encodeMemberAddResponse,
        () => {
          throw new GrpcError(
            GrpcStatus.FAILED_PRECONDITION,
            "revkv: a revkv server is a single member and cannot add members (use an etcd cluster)",
          );
        },
      ),
    ],
    [
      "/etcdserverpb.Cluster/MemberRemove",
      unary(
        authorize,
        pb.decodeMemberRemoveRequest,
        pb.encodeMemberRemoveResponse,
        (req) =>
          otherOrSelf(req.ID, () =>
            etcdGrpcError(
              "etcdserver: re-configuration failed due to not enough started members",
            )),
      ),
    ],
    [
      "/etcdserverpb.Cluster/MemberUpdate",
      unary(
        authorize,
        pb.decodeMemberUpdateRequest,
        pb.encodeMemberUpdateResponse,
        (req) =>
          otherOrSelf(req.ID, () =>
            new GrpcError(
              GrpcStatus.FAILED_PRECONDITION,
              "revkv: this member's peer URLs are set by its flags and cannot be updated",
            )),
      ),
    ],
    [
      "/etcdserverpb.Cluster/MemberPromote",
      unary(
        authorize,
        pb.decodeMemberPromoteRequest,
        pb.encodeMemberPromoteResponse,
        (req) =>
          otherOrSelf(
            req.ID,
            () =>
              etcdGrpcError("etcdserver: can only promote a learner member"),
          ),
      ),
    ],
  ];
}
