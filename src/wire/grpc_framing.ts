/**
 * gRPC over HTTP/2, the parts above frames (grpc/doc/PROTOCOL-HTTP2.md):
 * length-prefixed messages, `grpc-timeout`, and `grpc-message` escaping.
 *
 * A message on the wire is a 5-byte prefix and the encoded bytes:
 *
 * ```
 *   +------------+-----------------------+---------------------+
 *   | flag (1 B) | length (4 B, big end.)| message (length B)  |
 *   +------------+-----------------------+---------------------+
 * ```
 *
 * flag 1 means compressed with the stream's `grpc-encoding`. Messages do
 * not align with DATA frames: one frame may hold several messages or a
 * piece of one, so {@linkcode MessageReader} reassembles them, refusing any
 * longer than the receive limit before buffering it.
 *
 * @module
 */

import { GrpcError, GrpcStatus } from "./grpc_service.ts";

/** Bytes in a message prefix. */
export const MESSAGE_PREFIX_BYTES = 5;

/** Writes the 5-byte prefix for a message of `length` bytes into `out`. */
export function writeMessagePrefix(
  out: Uint8Array,
  offset: number,
  length: number,
): void {
  out[offset] = 0;
  out[offset + 1] = length >>> 24;
  out[offset + 2] = length >>> 16;
  out[offset + 3] = length >>> 8;
  out[offset + 4] = length;
}

/** A new message prefix for `length` bytes. */
export function messagePrefix(length: number): Uint8Array {
  const prefix = new Uint8Array(MESSAGE_PREFIX_BYTES);
  writeMessagePrefix(prefix, 0, length);
  return prefix;
}

/** Prefix + message in one new buffer (for the client and tests). */
export function frameMessage(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(MESSAGE_PREFIX_BYTES + message.length);
  writeMessagePrefix(out, 0, message.length);
  out.set(message, MESSAGE_PREFIX_BYTES);
  return out;
}

/**
 * Reassembles length-prefixed messages from DATA chunks.
 *
 * `push` returns the complete messages a chunk finished, as copies the
 * caller owns. It throws a `GrpcError` — RESOURCE_EXHAUSTED for a message
 * over the limit, INTERNAL for a compressed one (revkv accepts identity
 * only, as the headers said) — and then must not be used again.
 */
export class MessageReader {
  readonly #maxMessageBytes: number;
  // Made only when a prefix straddles two chunks (rare): most calls carry
  // whole messages, and this object is per call.
  #prefix: Uint8Array | undefined;
  #prefixHave = 0;
  #message: Uint8Array | undefined;
  #messageHave = 0;

  /** @param maxMessageBytes the largest message accepted */
  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** True when a message is partly received (end of stream is then an error). */
  get partial(): boolean {
    return this.#prefixHave > 0;
  }

  /**
   * Consumes a chunk.
   *
   * @param chunk DATA content (only read during the call)
   * @param onMessage called with each complete message, in order
   */
  push(chunk: Uint8Array, onMessage: (message: Uint8Array) => void): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.#prefixHave < MESSAGE_PREFIX_BYTES) {
        // Fast path: a whole message inside the chunk.
        if (this.#prefixHave === 0 && end - pos >= MESSAGE_PREFIX_BYTES) {
          const length = this.#checkPrefix(chunk, pos);
          if (end - pos - MESSAGE_PREFIX_BYTES >= length) {
            const start = pos + MESSAGE_PREFIX_BYTES;
            onMessage(chunk.slice(start, start + length));
            pos = start + length;
            continue;
          }
        }
        const take = Math.min(
          MESSAGE_PREFIX_BYTES - this.#prefixHave,
          end - pos,
        );
        this.#prefix ??= new Uint8Array(MESSAGE_PREFIX_BYTES);
        this.#prefix.set(chunk.subarray(pos, pos + take), this.#prefixHave);
        this.#prefixHave += take;
        pos += take;
        if (this.#prefixHave < MESSAGE_PREFIX_BYTES) return;
        const length = this.#checkPrefix(this.#prefix, 0);
        this.#message = new Uint8Array(length);
        this.#messageHave = 0;
      }
      const message = this.#message!;
      const take = Math.min(message.length - this.#messageHave, end - pos);
      message.set(chunk.subarray(pos, pos + take), this.#messageHave);
      this.#messageHave += take;
      pos += take;
      if (this.#messageHave === message.length) {
        this.#prefixHave = 0;
        this.#message = undefined;
        onMessage(message);
      }
    }
  }

  #checkPrefix(bytes: Uint8Array, offset: number): number {
    const flag = bytes[offset]!;
    const length = ((bytes[offset + 1]! << 24) | (bytes[offset + 2]! << 16) |
      (bytes[offset + 3]! << 8) | bytes[offset + 4]!) >>> 0;
    if (flag === 1) {
      throw new GrpcError(
        GrpcStatus.INTERNAL,
        "grpc: compressed flag set with identity or empty encoding",
      );
    }
    if (flag !== 0) {
      throw new GrpcError(
        GrpcStatus.INTERNAL,
        `grpc: invalid message flag ${flag}`,
      );
    }
    if (length > this.#maxMessageBytes) {
      throw new GrpcError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `grpc: received message larger than max (${length} vs. ${this.#maxMessageBytes})`,
      );
    }
    return length;
  }
}

const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/**
 * Parses a `grpc-timeout` value: 1–8 digits and a unit (H M S m u n).
 *
 * @param value the header value
 * @returns the timeout in milliseconds, or undefined when malformed
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
}

/**
 * Formats a timeout for `grpc-timeout` (the client side).
 *
 * @param timeoutMs milliseconds, > 0
 */
export function formatGrpcTimeout(timeoutMs: number): string {
  const ms = Math.max(1, Math.ceil(timeoutMs));
  if (ms < 1e8) return `${ms}m`;
  return `${Math.min(99_999_999, Math.ceil(ms / 1000))}S`;
}

/**
 * Percent-encodes a `grpc-message`: bytes outside printable ASCII
 * (0x20–0x7E) and `%` itself become `%XX` of their UTF-8 bytes.
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = "";
  for (const byte of new TextEncoder().encode(message)) {
    if (byte < 0x20 || byte > 0x7e || byte === 0x25) {
      out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
    } else {
      out += String.fromCharCode(byte);
    }
  }
  return out;
}

/** Reverses {@linkcode encodeGrpcMessage}; malformed escapes stay as is. */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes("%")) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (
      c === 0x25 && i + 2 < value.length + 0 &&
      /^[0-9a-fA-F]{2}$/.test(value.slice(i + 1, i + 3))
    ) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
