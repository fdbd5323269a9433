/**
 * A small, bounded HTTP/1.1 server connection for etcd's JSON gateway: it
 * reads requests (request line, headers, a `Content-Length` or chunked
 * body) off a socket the gRPC transport handed over, and writes responses
 * with a `Content-Length` or as a chunked stream. Keep-alive is HTTP/1.1's
 * default; `Connection: close` (or HTTP/1.0 without keep-alive) ends the
 * connection after the response.
 *
 * Everything is bounded: the header block by {@linkcode MAX_HEADER_BYTES}
 * (431 beyond it), the body by the caller's `maxBodyBytes` (413 beyond it,
 * checked against `Content-Length` before reading and while reading chunks).
 * Anything that is not HTTP/1.x ends in 400 and a close.
 *
 * @module
 */

import type { SocketConn } from "../wire/socket.ts";

/** Longest request line + headers: a gateway request has a handful of short headers. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** How much is read from the socket per call. */
const READ_CHUNK_BYTES = 16 * 1024;

/** One parsed request. */
export interface Http1Request {
  /** `GET`, `POST`… */
  readonly method: string;
  /** The request target, query included. */
  readonly target: string;
  /** Header names lower-cased. */
  readonly headers: ReadonlyMap<string, string>;
  /** The whole body. */
  readonly body: Uint8Array;
  /** Whether the connection stays open after the response. */
  readonly keepAlive: boolean;
}

/** A request the reader refused, with the status to answer. */
export class Http1Error extends Error {
  /**
   * @param status the HTTP status to answer (400, 413, 431)
   * @param message why
   */
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "Http1Error";
  }
}

/** Reads requests off one connection, with the bytes already sniffed first. */
export class Http1Reader {
  #conn: SocketConn;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  #maxBodyBytes: number;

  /**
   * @param conn the socket
   * @param head bytes already read from it
   * @param maxBodyBytes the largest body accepted (413 beyond it)
   */
  constructor(conn: SocketConn, head: Uint8Array, maxBodyBytes: number) {
    this.#conn = conn;
    this.#buffer = new Uint8Array(Math.max(READ_CHUNK_BYTES, head.length * 2));
    this.#buffer.set(head);
    this.#end = head.length;
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** Reads more bytes into the buffer; false at end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    if (this.#buffer.length - this.#end < READ_CHUNK_BYTES) {
      const live = this.#end - this.#start;
      const size = Math.max(this.#buffer.length, live + READ_CHUNK_BYTES);
      const next = new Uint8Array(size);
      next.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = next;
      this.#start = 0;
      this.#end = live;
    }
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buffer.subarray(this.#end));
    } catch {
      n = null;
    }
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** Index just past the next CRLF at or after `from`, or -1. */
  #findLine(from: number): number {
    for (let i = from; i + 1 < this.#end; i++) {
      if (this.#buffer[i] === 13 && this.#buffer[i + 1] === 10) return i + 2;
    }
    return -1;
  }

  /** The next line (without CRLF), bounded by `limit` bytes; undefined at EOF. */
  async #readLine(limit: number): Promise<string | undefined> {
    for (;;) {
      const stop = this.#findLine(this.#start);
      if (stop >= 0) {
        const line = this.#buffer.subarray(this.#start, stop - 2);
        this.#start = stop;
        return new TextDecoder().decode(line);
      }
      if (this.#end - this.#start > limit) {
        throw new Http1Error(431, "request header fields too large");
      }
      if (!await this.#fill()) return undefined;
    }
  }

  /** Exactly `length` body bytes. */
  async #readBytes(length: number): Promise<Uint8Array> {
    while (this.#end - this.#start < length) {
      if (!await this.#fill()) {
        throw new Http1Error(400, "unexpected end of body");
      }
    }
    const bytes = this.#buffer.slice(this.#start, this.#start + length);
    this.#start += length;
    return bytes;
  }

  /**
   * The next request, or undefined when the peer closed between requests.
   * @throws {Http1Error} for a request to refuse (then close the connection)
   */
  async next(): Promise<Http1Request | undefined> {
    let headerBytes = 0;
    let requestLine = await this.#readLine(MAX_HEADER_BYTES);
    // RFC 9112 §2.2: ignore at least one empty line before a request.
    if (requestLine === "") {
      requestLine = await this.#readLine(MAX_HEADER_BYTES);
    }
    if (requestLine === undefined) return undefined;
    headerBytes += requestLine.length + 2;
    const [method, target, version, extra] = requestLine.split(" ");
    if (
      method === undefined || target === undefined || version === undefined ||
      extra !== undefined || !/^HTTP\/1\.[01]$/.test(version)
    ) {
      throw new Http1Error(400, "malformed request line");
    }
    const headers = new Map<string, string>();
    for (;;) {
      const line = await this.#readLine(MAX_HEADER_BYTES - headerBytes);
      if (line === undefined) {
        throw new Http1Error(400, "unexpected end of headers");
      }
      headerBytes += line.length + 2;
      if (headerBytes > MAX_HEADER_BYTES) {
        throw new Http1Error(431, "request header fields too large");
      }
      if (line === "") break;
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Http1Error(400, "malformed header line");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const had = headers.get(name);
      headers.set(name, had === undefined ? value : `${had}, ${value}`);
    }
    const connection = (headers.get("connection") ?? "").toLowerCase();
    const keepAlive = version === "HTTP/1.1"
      ? !connection.includes("close")
      : connection.includes("keep-alive");
    const transferEncoding = headers.get("transfer-encoding");
    let body: Uint8Array;
    if (transferEncoding !== undefined) {
      if (transferEncoding.toLowerCase() !== "chunked") {
        throw new Http1Error(400, "unsupported transfer-encoding");
      }
      body = await this.#readChunked();
    } else {
      const lengthText = headers.get("content-length") ?? "0";
      if (!/^[0-9]{1,15}$/.test(lengthText)) {
        throw new Http1Error(400, "malformed content-length");
      }
      const length = Number(lengthText);
      if (length > this.#maxBodyBytes) {
        throw new Http1Error(413, "request body too large");
      }
      body = await this.#readBytes(length);
    }
    return { method, target, headers, body, keepAlive };
  }

  async #readChunked(): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const sizeLine = await this.#readLine(MAX_HEADER_BYTES);
      if (sizeLine === undefined) {
        throw new Http1Error(400, "unexpected end of body");
      }
      const sizeText = (sizeLine.split(";")[0] ?? "").trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) {
        throw new Http1Error(400, "malformed chunk size");
      }
      const size = parseInt(sizeText, 16);
      if (size === 0) break;
      total += size;
      if (total > this.#maxBodyBytes) {
        throw new Http1Error(413, "request body too large");
      }
      chunks.push(await this.#readBytes(size));
      const crlf = await this.#readLine(2);
      if (crlf !== "") throw new Http1Error(400, "malformed chunk");
    }
    // Trailers: read and drop up to the empty line.
    let trailerBytes = 0;
    for (;;) {
      const line = await this.#readLine(MAX_HEADER_BYTES);
      if (line === undefined) {
        throw new Http1Error(400, "unexpected end of body");
      }
      trailerBytes += line.length + 2;
      if (trailerBytes > MAX_HEADER_BYTES) {
        throw new Http1Error(431, "request header fields too large");
      }
      if (line === "") break;
    }
    const body = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.length;
    }
    return body;
  }
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Request Entity Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  499: "Client Closed Request",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The reason phrase of an HTTP status ("Not Found"). */
export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? "Status";
}

/** Writes all of `bytes` to `conn`. */
export async function writeAll(
  conn: SocketConn,
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

function head(
  status: number,
  headers: [string, string][],
  keepAlive: boolean,
): string {
  let text = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Status"}\r\n`;
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  if (!keepAlive) text += "Connection: close\r\n";
  return text;
}

/** Writes one whole response with a Content-Length. */
export async function writeResponse(
  conn: SocketConn,
  status: number,
  headers: [string, string][],
  body: Uint8Array,
  keepAlive: boolean,
): Promise<void> {
  const text = head(status, headers, keepAlive) +
    `Content-Length: ${body.length}\r\n\r\n`;
  const headBytes = new TextEncoder().encode(text);
  const bytes = new Uint8Array(headBytes.length + body.length);
  bytes.set(headBytes);
  bytes.set(body, headBytes.length);
  await writeAll(conn, bytes);
}

/** A chunked response being streamed. */
export interface ChunkedWriter {
  /** Writes one chunk (an empty one is skipped: it would end the body). */
  write(bytes: Uint8Array): Promise<void>;
  /** Writes the last chunk. */
  end(): Promise<void>;
}

/** Starts a chunked response: writes the head now, then chunks as they come. */
export async function startChunked(
  conn: SocketConn,
  status: number,
  headers: [string, string][],
  keepAlive: boolean,
): Promise<ChunkedWriter> {
  const text = head(status, headers, keepAlive) +
    "Transfer-Encoding: chunked\r\n\r\n";
  await writeAll(conn, new TextEncoder().encode(text));
  return {
    async write(bytes) {
      if (bytes.length === 0) return;
      const prefix = new TextEncoder().encode(
        `${bytes.length.toString(16)}\r\n`,
      );
      const out = new Uint8Array(prefix.length + bytes.length + 2);
      out.set(prefix);
      out.set(bytes, prefix.length);
      out[out.length - 2] = 13;
      out[out.length - 1] = 10;
      await writeAll(conn, out);
    },
    async end() {
      await writeAll(conn, new TextEncoder().encode("0\r\n\r\n"));
    },
  };
}
