/**
 * etcd's Auth service as an etcd 3.4 with auth disabled and no users or
 * roles answers it. revkv has no users, roles or permissions yet; every
 * request passes the one `Authorizer` (method.ts), which allows all.
 *
 * - Authenticate: FAILED_PRECONDITION "etcdserver: authentication is not
 *   enabled" (etcd's answer with auth off).
 * - AuthDisable: OK (disabling disabled auth is a no-op in etcd).
 * - UserList, RoleList: empty lists.
 * - UserGet / UserDelete / UserChangePassword / UserGrantRole /
 *   UserRevokeRole: "etcdserver: user name not found"; RoleGet / RoleDelete
 *   / RoleGrantPermission / RoleRevokePermission: "etcdserver: role name not
 *   found" — what etcd answers when the user or role does not exist.
 * - AuthEnable, UserAdd, RoleAdd: UNIMPLEMENTED (revkv cannot store users
 *   yet, and enabling auth without them would be a lie).
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

const AUTH = "/etcdserverpb.Auth/";

/** The Auth service's methods (auth disabled) over `store`. */
export function authMethods(
  store: Store,
  authorize: Authorizer,
): MethodEntries {
  const header = () => wireHeader(store.header());
  const fail = (message: string) => () => {
    throw etcdGrpcError(message);
  };
  const unsupported = () => {
    throw new GrpcError(
      GrpcStatus.UNIMPLEMENTED,
      "revkv: auth (users, roles, permissions) is not supported yet",
    );
  };
  const noUser = fail("etcdserver: user name not found");
  const noRole = fail("etcdserver: role name not found");
  const method = <Req>(
    name: string,
    decode: (bytes: Uint8Array) => Req,
    encode: (m: Partial<{ header: pb.ResponseHeader }>) => Uint8Array,
    handle: () => Record<string, unknown>,
  ): [string, ReturnType<typeof unary>] => [
    AUTH + name,
    unary(authorize, decode, encode, handle),
  ];
  return [
    method(
      "Authenticate",
      pb.decodeAuthenticateRequest,
      pb.encodeAuthenticateResponse,
      fail("etcdserver: authentication is not enabled"),
    ),
    method(
      "AuthDisable",
      pb.decodeAuthDisableRequest,
      pb.encodeAuthDisableResponse,
      () => ({ header: header() }),
    ),
    method(
      "AuthEnable",
      pb.decodeAuthEnableRequest,
      pb.encodeAuthEnableResponse,
      unsupported,
    ),
    method(
      "UserAdd",
      pb.decodeAuthUserAddRequest,
      pb.encodeAuthUserAddResponse,
      unsupported,
    ),
    method(
      "RoleAdd",
      pb.decodeAuthRoleAddRequest,
      pb.encodeAuthRoleAddResponse,
      unsupported,
    ),
    [
      AUTH + "UserList",
      unary(
        authorize,
        pb.decodeAuthUserListRequest,
        pb.encodeAuthUserListResponse,
        () => ({ header: header(), users: [] }),
      ),
    ],
    [
      AUTH + "RoleList",
      unary(
        authorize,
        pb.decodeAuthRoleListRequest,
        pb.encodeAuthRoleListResponse,
        () => ({ header: header(), roles: [] }),
      ),
    ],
    method(
      "UserGet",
      pb.decodeAuthUserGetRequest,
      pb.encodeAuthUserGetResponse,
      noUser,
    ),
    method(
      "UserDelete",
      pb.decodeAuthUserDeleteRequest,
      pb.encodeAuthUserDeleteResponse,
      noUser,
    ),
    method(
      "UserChangePassword",
      pb.decodeAuthUserChangePasswordRequest,
      pb.encodeAuthUserChangePasswordResponse,
      noUser,
    ),
    method(
      "UserGrantRole",
      pb.decodeAuthUserGrantRoleRequest,
      pb.encodeAuthUserGrantRoleResponse,
      noUser,
    ),
    method(
      "UserRevokeRole",
      pb.decodeAuthUserRevokeRoleRequest,
      pb.encodeAuthUserRevokeRoleResponse,
      noUser,
    ),
    method(
      "RoleGet",
      pb.decodeAuthRoleGetRequest,
      pb.encodeAuthRoleGetResponse,
      noRole,
    ),
    method(
      "RoleDelete",
      pb.decodeAuthRoleDeleteRequest,
      pb.encodeAuthRoleDeleteResponse,
      noRole,
    ),
    method(
      "RoleGrantPermission",
      pb.decodeAuthRoleGrantPermissionRequest,
      pb.encodeAuthRoleGrantPermissionResponse,
      noRole,
    ),
    method(
      "RoleRevokePermission",
      pb.decodeAuthRoleRevokePermissionRequest,
      pb.encodeAuthRoleRevokePermissionResponse,
      noRole,
    ),
  ];
}
