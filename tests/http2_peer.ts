/**
 * A raw HTTP/2 peer for tests: writes any bytes or frames (well-formed or
 * hostile) to a server over a real socket and reads back the frames the
 * server answers with, so tests can check the exact GOAWAY, RST_STREAM or
 * response. Every wait is bounded.
 *
 * @module
 */

import {
  CONNECTION_PREFACE,
  decodeGoaway,
  FRAME_HEADER_BYTES,
  type FrameHeader,
  FrameType,
  newFrameHeader,
  readFrameHeader,
  readUint32,
} from "../src/wire/http2/frame.ts";
import { FrameWriter } from "../src/wire/http2/frame_writer.ts";
import { HpackDecoder, HpackEncoder } from "../src/wire/http2/hpack.ts";

/** How long a test waits for the server's frames. */
const WAIT_MS_MAX = 5_000;

/** One frame the server sent. */
export interface ReceivedFrame extends FrameHeader {
  /** The payload bytes. */
  payload: Uint8Array;
}

/** The request headers of a gRPC call to `path` (what a gRPC client sends). */
export function grpcRequest(path: string): string[] {
  return [
    ":method",
    "POST",
    ":scheme",
    "http",
    ":path",
    path,
    ":authority",
    "localhost",
    "content-type",
    "application/grpc",
    "te",
    "trailers",
  ];
}

/** A raw HTTP/2 client connection to a test server. */
export class RawPeer {
  readonly conn: Deno.Conn;
  readonly writer = new FrameWriter();
  readonly encoder = new HpackEncoder();
  readonly decoder = new HpackDecoder();
  readonly frames: ReceivedFrame[] = [];
  #buffer = new Uint8Array(0);
  #closed = false;
  #chunk = new Uint8Array(64 * 1024);
  #pendingRead: Promise<number | null> | undefined;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects; with `handshake`, sends the preface and empty SETTINGS. */
  static async connect(port: number, handshake = true): Promise<RawPeer> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const peer = new RawPeer(conn);
    if (handshake) {
      peer.writer.raw(CONNECTION_PREFACE);
      peer.writer.settings([]);
      await peer.flush();
    }
    return peer;
  }

  /** Sends what the writer holds. */
  async flush(): Promise<void> {
    const bytes = this.writer.take();
    let offset = 0;
    try {
      while (offset < bytes.length) {
        offset += await this.conn.write(bytes.subarray(offset));
      }
    } catch {
      // the server may have closed already; tests look at what came back
    }
  }

  /** Sends raw bytes. */
  async send(bytes: Uint8Array): Promise<void> {
    this.writer.raw(bytes);
    await this.flush();
  }

  /** Sends a request's HEADERS. */
  async request(
    streamId: number,
    headers: string[],
    endStream = false,
  ): Promise<void> {
    this.writer.headers(
      streamId,
      this.encoder.encode(headers),
      endStream,
      16_384,
    );
    await this.flush();
  }

  /**
   * Reads frames until `done` says so, the socket closes, or the wait ends.
   * Returns true when `done` was satisfied.
   */
  async readUntil(
    done: (frames: ReceivedFrame[]) => boolean,
    waitMs = WAIT_MS_MAX,
  ): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    while (!done(this.frames)) {
      if (this.#closed || Date.now() > deadline) return false;
      // One read stays pending across calls, so a timeout loses no bytes.
      this.#pendingRead ??= this.conn.read(this.#chunk).catch(() => null);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.#pendingRead,
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), deadline - Date.now());
        }),
      ]);
      clearTimeout(timer);
      if (n === "timeout") return done(this.frames);
      this.#pendingRead = undefined;
      if (n === null) {
        this.#closed = true;
        break;
      }
      const chunk = this.#chunk;
      const joined = new Uint8Array(this.#buffer.length + n);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, n), this.#buffer.length);
      let pos = 0;
      while (joined.length - pos >= FRAME_HEADER_BYTES) {
        const header = newFrameHeader();
        readFrameHeader(joined, pos, header);
        if (joined.length - pos < FRAME_HEADER_BYTES + header.length) break;
        const payload = joined.slice(
          pos + FRAME_HEADER_BYTES,
          pos + FRAME_HEADER_BYTES + header.length,
        );
        this.frames.push({ ...header, payload });
        pos += FRAME_HEADER_BYTES + header.length;
      }
      this.#buffer = joined.slice(pos);
    }
    return done(this.frames);
  }

  /** True once the server closed the socket (seen by a read). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Waits for the server to close the socket. */
  async waitClosed(): Promise<boolean> {
    await this.readUntil(() => this.#closed);
    return this.#closed;
  }

  /** The GOAWAY the server sent, if any. */
  goaway():
    | { lastStreamId: number; errorCode: number; debug: string }
    | undefined {
    const frame = this.frames.find((f) => f.type === FrameType.GOAWAY);
    if (!frame) return undefined;
    return decodeGoaway(frame.payload, 0, frame.payload.length);
  }

  /** The RST_STREAM error code sent for a stream, if any. */
  rstCode(streamId: number): number | undefined {
    const frame = this.frames.find((f) =>
      f.type === FrameType.RST_STREAM && f.streamId === streamId
    );
    return frame ? readUint32(frame.payload, 0) : undefined;
  }

  /** Decoded header lists the server sent on a stream, in order. */
  headerLists(streamId: number): string[][] {
    const lists: string[][] = [];
    for (const frame of this.frames) {
      if (frame.type === FrameType.HEADERS && frame.streamId === streamId) {
        lists.push(
          this.decoder.decode(frame.payload, 0, frame.payload.length).fields,
        );
      }
    }
    return lists;
  }

  /** Closes the socket. */
  close(): void {
    this.#pendingRead?.catch(() => {});
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}
