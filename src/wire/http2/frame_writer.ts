/**
 * Writes HTTP/2 frames into one growable byte buffer.
 *
 * The connection appends every frame it produces during one turn of the
 * event loop to a `FrameWriter`, then hands the whole buffer to the socket
 * in one write; so a hundred responses in flight cost one syscall, and a
 * frame costs no allocation of its own (the buffer grows by doubling and is
 * reused after each write).
 *
 * Header blocks longer than the peer's max frame size are split into
 * HEADERS + CONTINUATION frames written back to back, as RFC 9113 §4.3
 * requires (nothing may come between them).
 *
 * @module
 */

import { FRAME_HEADER_BYTES, FrameFlag, FrameType } from "./frame.ts";

/** Initial buffer size: room for a few hundred small responses. */
const INITIAL_BUFFER_BYTES = 64 * 1024;

/** A growable buffer of encoded frames. */
export class FrameWriter {
  /** The bytes; valid up to `length`. */
  bytes: Uint8Array = new Uint8Array(INITIAL_BUFFER_BYTES);
  /** How many bytes are written. */
  length = 0;

  /** Forgets the written bytes, keeping the buffer for reuse. */
  reset(): void {
    this.length = 0;
  }

  /** A copy of the written bytes (for tests and one-off frames). */
  take(): Uint8Array {
    const out = this.bytes.slice(0, this.length);
    this.length = 0;
    return out;
  }

  /** Makes room for `extra` more bytes. */
  ensure(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  /** Appends a frame header; the caller appends `length` payload bytes. */
  frameHeader(
    length: number,
    type: number,
    flags: number,
    streamId: number,
  ): void {
    this.ensure(FRAME_HEADER_BYTES + length);
    const b = this.bytes;
    const p = this.length;
    b[p] = length >>> 16;
    b[p + 1] = length >>> 8;
    b[p + 2] = length;
    b[p + 3] = type;
    b[p + 4] = flags;
    b[p + 5] = (streamId >>> 24) & 0x7f;
    b[p + 6] = streamId >>> 16;
    b[p + 7] = streamId >>> 8;
    b[p + 8] = streamId;
    this.length = p + FRAME_HEADER_BYTES;
  }

  /** Appends raw bytes (after a `frameHeader`). */
  raw(data: Uint8Array, start = 0, end = data.length): void {
    this.ensure(end - start);
    this.bytes.set(data.subarray(start, end), this.length);
    this.length += end - start;
  }

  /** Appends a big-endian 32-bit integer. */
  uint32(value: number): void {
    this.ensure(4);
    const b = this.bytes;
    const p = this.length;
    b[p] = value >>> 24;
    b[p + 1] = value >>> 16;
    b[p + 2] = value >>> 8;
    b[p + 3] = value;
    this.length = p + 4;
  }

  /** Appends a DATA frame carrying `data[start:end]`. */
  data(
    streamId: number,
    data: Uint8Array,
    start: number,
    end: number,
    endStream: boolean,
  ): void {
    this.frameHeader(
      end - start,
      FrameType.DATA,
      endStream ? FrameFlag.END_STREAM : 0,
      streamId,
    );
    this.raw(data, start, end);
  }

  /**
   * Appends a header block as HEADERS (+ CONTINUATION) frames, each at most
   * `maxFrameBytes` long.
   */
  headers(
    streamId: number,
    block: Uint8Array,
    endStream: boolean,
    maxFrameBytes: number,
  ): void {
    this.#headerBlock(
      FrameType.HEADERS,
      streamId,
      block,
      endStream ? FrameFlag.END_STREAM : 0,
      maxFrameBytes,
    );
  }

  /**
   * Appends a PUSH_PROMISE (+ CONTINUATION). Only for tests of peers that
   * must refuse it: revkv never pushes.
   */
  pushPromise(
    streamId: number,
    promisedStreamId: number,
    block: Uint8Array,
  ): void {
    this.frameHeader(
      4 + block.length,
      FrameType.PUSH_PROMISE,
      FrameFlag.END_HEADERS,
      streamId,
    );
    this.uint32(promisedStreamId & 0x7fffffff);
    this.raw(block);
  }

  #headerBlock(
    type: number,
    streamId: number,
    block: Uint8Array,
    flags: number,
    maxFrameBytes: number,
  ): void {
    let offset = Math.min(block.length, maxFrameBytes);
    this.frameHeader(
      offset,
      type,
      flags | (offset === block.length ? FrameFlag.END_HEADERS : 0),
      streamId,
    );
    this.raw(block, 0, offset);
    while (offset < block.length) {
      const end = Math.min(block.length, offset + maxFrameBytes);
      this.frameHeader(
        end - offset,
        FrameType.CONTINUATION,
        end === block.length ? FrameFlag.END_HEADERS : 0,
        streamId,
      );
      this.raw(block, offset, end);
      offset = end;
    }
  }

  /** Appends a CONTINUATION frame (tests build hostile sequences with it). */
  continuation(streamId: number, fragment: Uint8Array, endHeaders: boolean) {
    this.frameHeader(
      fragment.length,
      FrameType.CONTINUATION,
      endHeaders ? FrameFlag.END_HEADERS : 0,
      streamId,
    );
    this.raw(fragment);
  }

  /** Appends a PRIORITY frame. */
  priority(
    streamId: number,
    dependency: number,
    weight: number,
    exclusive: boolean,
  ): void {
    this.frameHeader(5, FrameType.PRIORITY, 0, streamId);
    this.uint32((exclusive ? 0x80000000 : 0) | (dependency & 0x7fffffff));
    this.ensure(1);
    this.bytes[this.length++] = weight - 1;
  }

  /** Appends an RST_STREAM frame. */
  rstStream(streamId: number, errorCode: number): void {
    this.frameHeader(4, FrameType.RST_STREAM, 0, streamId);
    this.uint32(errorCode);
  }

  /** Appends a SETTINGS frame with `[id, value]` pairs. */
  settings(settings: readonly (readonly [number, number])[]): void {
    this.frameHeader(6 * settings.length, FrameType.SETTINGS, 0, 0);
    for (const [id, value] of settings) {
      this.ensure(2);
      this.bytes[this.length++] = id >>> 8;
      this.bytes[this.length++] = id;
      this.uint32(value);
    }
  }

  /** Appends a SETTINGS frame with the ACK flag. */
  settingsAck(): void {
    this.frameHeader(0, FrameType.SETTINGS, FrameFlag.ACK, 0);
  }

  /** Appends a PING frame with 8 bytes of opaque data. */
  ping(data: Uint8Array, dataOffset: number, ack: boolean): void {
    this.frameHeader(8, FrameType.PING, ack ? FrameFlag.ACK : 0, 0);
    this.raw(data, dataOffset, dataOffset + 8);
  }

  /** Appends a GOAWAY frame. */
  goaway(lastStreamId: number, errorCode: number, debug = ""): void {
    const debugBytes = new TextEncoder().encode(debug);
    this.frameHeader(8 + debugBytes.length, FrameType.GOAWAY, 0, 0);
    this.uint32(lastStreamId & 0x7fffffff);
    this.uint32(errorCode);
    this.raw(debugBytes);
  }

  /** Appends a WINDOW_UPDATE frame. */
  windowUpdate(streamId: number, increment: number): void {
    this.frameHeader(4, FrameType.WINDOW_UPDATE, 0, streamId);
    this.uint32(increment & 0x7fffffff);
  }
}
