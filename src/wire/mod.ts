/**
 * etcd v3's wire messages for revkv's gRPC server and clients: the
 * generated codecs (etcd_messages.ts), the fast response writers and the
 * decode error the services answer with `INVALID_ARGUMENT`.
 *
 * @module
 */

export * from "./etcd_messages.ts";
export * from "./response_writers.ts";
export { MAX_MESSAGE_DEPTH, WireDecodeError } from "./protobuf.ts";
export * from "./etcd_json.ts";
