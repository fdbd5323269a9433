/**
 * `connect()`: the remote twin of `open()`. It returns a `KvStore` backed by
 * a revkv server (`deno task start`) or a real etcd cluster, so that code
 * written against `open()` moves to a replicated etcd by changing one line.
 * Options and defaults are etcdctl's (`--dial-timeout` 2 s,
 * `--keepalive-time` 2 s, `--keepalive-timeout` 6 s); no request timeout
 * unless given (clientv3 leaves it to the caller's context).
 *
 * `connect()` dials as clientv3.New does with a dial timeout: it resolves
 * once one endpoint answers, and fails with `context deadline exceeded`
 * when none does within `dialTimeoutMs`.
 *
 * @module
 */

import { parseEndpoint } from "./endpoints.ts";
import { EndpointPool } from "./endpoint_pool.ts";
import { RemoteStore } from "./remote_store.ts";

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /**
   * The members to talk to: `host:port`, `http://host:port`, or
   * `unix:///path/to/socket`. Calls go to one at a time and fail over to
   * the next.
   */
  endpoints: string[];
  /** How long a call waits for a connection when no endpoint answers (default 2000). */
  dialTimeoutMs?: number;
  /** Deadline of each unary call (default: none). */
  requestTimeoutMs?: number;
  /**
   * PING the connection this often while calls or streams are open (default
   * 2000, etcdctl's; raised to grpc-go's 10 s minimum); 0 disables keepalive.
   */
  keepAliveTimeMs?: number;
  /** Fail over when a PING is unanswered this long (default 6000). */
  keepAliveTimeoutMs?: number;
  /**
   * Largest response message accepted, in bytes (default 2^31 - 1, as
   * clientv3's `MaxCallRecvMsgSize`: a range answers with all its keys).
   */
  maxReceiveMessageBytes?: number;
}

/** clientv3's default `MaxCallRecvMsgSize` (math.MaxInt32). */
const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 2 ** 31 - 1;
/** etcdctl's `--dial-timeout` default. */
const DEFAULT_DIAL_TIMEOUT_MS = 2000;
/** etcdctl's `--keepalive-time` default. */
const DEFAULT_KEEPALIVE_TIME_MS = 2000;
/** etcdctl's `--keepalive-timeout` default. */
const DEFAULT_KEEPALIVE_TIMEOUT_MS = 6000;

/**
 * Connects to a revkv server or an etcd cluster. The result has the same
 * interface as `open()`'s store ({@linkcode KvStore}).
 *
 * @throws EtcdError `context deadline exceeded` when no endpoint answers
 *   within `dialTimeoutMs`.
 * @throws TypeError for an endpoint that is not `host:port`, `http://…` or
 *   `unix:…` (TLS is not supported yet).
 *
 * @example Against a server started with `deno task start`
 * ```ts ignore
 * import { connect } from "jsr:@revkv/revkv";
 * const db = await connect({ endpoints: ["127.0.0.1:2379"] });
 * await db.put("greeting", "hello");
 * console.log((await db.get("greeting")).kvs[0]?.valueText); // "hello"
 * await db.close();
 * ```
 */
export async function connect(options: ConnectOptions): Promise<RemoteStore> {
  const endpoints = options.endpoints.flatMap((e) => e.split(","))
    .filter((e) => e.trim() !== "").map(parseEndpoint);
  const pool = new EndpointPool({
    endpoints,
    dialTimeoutMs: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
    keepAliveTimeMs: options.keepAliveTimeMs ?? DEFAULT_KEEPALIVE_TIME_MS,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ??
      DEFAULT_KEEPALIVE_TIMEOUT_MS,
    maxReceiveMessageBytes: options.maxReceiveMessageBytes ??
      DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  });
  try {
    await pool.client();
  } catch (error) {
    await pool.close();
    throw error;
  }
  return new RemoteStore(pool, options.requestTimeoutMs);
}
