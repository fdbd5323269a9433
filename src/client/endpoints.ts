/**
 * Endpoint addresses as etcdctl and clientv3 accept them: `host:port`,
 * `http://host:port` (with or without a trailing `/`), and unix sockets as
 * `unix:///absolute/path` or `unix:relative/path`. TLS (`https://`) is not
 * spoken yet and is refused with a clear error rather than tried in the
 * clear.
 *
 * @module
 */

/** One endpoint, parsed: a TCP address or a unix socket path. */
export type Endpoint =
  | { kind: "tcp"; hostname: string; port: number; text: string }
  | { kind: "unix"; path: string; text: string };

/** etcd's client port, used when an `http://` URL names none. */
const DEFAULT_CLIENT_PORT = 2379;

/**
 * Parses one endpoint.
 * @throws TypeError naming the endpoint when it is not one of the forms.
 */
export function parseEndpoint(text: string): Endpoint {
  const trimmed = text.trim();
  if (trimmed.startsWith("unix:")) {
    let path = trimmed.slice("unix:".length);
    if (path.startsWith("//")) path = path.slice(2);
    if (path === "") throw new TypeError(`invalid endpoint ${text}: no path`);
    return { kind: "unix", path, text: trimmed };
  }
  if (trimmed.startsWith("https://")) {
    throw new TypeError(
      `endpoint ${text}: TLS is not supported yet; use http:// or host:port`,
    );
  }
  const hostPort = trimmed.replace(/^http:\/\//, "").replace(/\/$/, "");
  const match = /^(\[[^\]]+\]|[^:/]+)(?::(\d+))?$/.exec(hostPort);
  if (!match) throw new TypeError(`invalid endpoint ${text}`);
  const hostname = match[1]!.replace(/^\[|\]$/g, "");
  const port = match[2] === undefined
    ? (trimmed.startsWith("http://") ? DEFAULT_CLIENT_PORT : NaN)
    : Number(match[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new TypeError(`invalid endpoint ${text}: missing or bad port`);
  }
  return { kind: "tcp", hostname, port, text: trimmed };
}
