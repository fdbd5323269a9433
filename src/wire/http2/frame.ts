/**
 * HTTP/2 frames (RFC 9113 §4 and §6): the constants, the 9-byte frame
 * header, and the payload layouts of every frame type.
 *
 * ```
 *  +-----------------------------------------------+
 *  |                 Length (24)                   |
 *  +---------------+---------------+---------------+
 *  |   Type (8)    |   Flags (8)   |
 *  +-+-------------+---------------+-------------------------------+
 *  |R|                 Stream Identifier (31)                      |
 *  +=+=============================================================+
 *  |                   Frame Payload (0...)                      ...
 *  +---------------------------------------------------------------+
 * ```
 *
 * Parsing never allocates on the hot path: `readFrameHeader` fills a
 * caller-owned {@linkcode FrameHeader}, and payload views are subarrays of
 * the read buffer. A payload that breaks its type's layout is reported as a
 * {@linkcode Http2Error} carrying the RFC's error code and whether it is a
 * stream or a connection error; the connection decides what to send.
 * Writing frames lives in `frame_writer.ts`.
 *
 * @module
 */

/** The client connection preface (RFC 9113 §3.4). */
export const CONNECTION_PREFACE: Uint8Array = new TextEncoder().encode(
  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
);

/** Bytes in a frame header. */
export const FRAME_HEADER_BYTES = 9;

/** Frame types (RFC 9113 §6). Other values are extensions, ignored. */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (the same bit means different things per type). */
export const FrameFlag = {
  /** DATA, HEADERS: the sender's last frame on this stream. */
  END_STREAM: 0x1,
  /** SETTINGS, PING: this acknowledges the peer's frame. */
  ACK: 0x1,
  /** HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here. */
  END_HEADERS: 0x4,
  /** DATA, HEADERS, PUSH_PROMISE: a pad length byte and padding. */
  PADDED: 0x8,
  /** HEADERS: 5 bytes of priority fields follow (deprecated, skipped). */
  PRIORITY: 0x20,
} as const;

/** Error codes for RST_STREAM and GOAWAY (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** One of the HTTP/2 error codes (others may arrive and are kept as numbers). */
export type ErrorCodeValue = typeof ErrorCode[keyof typeof ErrorCode];

/** SETTINGS identifiers (RFC 9113 §6.5.2). Unknown ones are ignored. */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The initial flow-control window of a stream and of the connection. */
export const DEFAULT_WINDOW_BYTES = 65_535;
/** The largest flow-control window (2^31 - 1). */
export const WINDOW_BYTES_MAX = 0x7fffffff;
/** The frame size every endpoint must accept. */
export const DEFAULT_FRAME_BYTES = 16_384;
/** The largest frame size a peer may advertise (2^24 - 1). */
export const FRAME_BYTES_LIMIT = 0xffffff;

/**
 * A protocol violation. `streamId` 0 (or `connection`) means the whole
 * connection fails with GOAWAY; otherwise only that stream is reset.
 */
export class Http2Error extends Error {
  /** The RFC 9113 error code to send. */
  readonly code: number;
  /** The stream to reset, or 0 for a connection error. */
  readonly streamId: number;
  /**
   * @param code the error code to send
   * @param message what was wrong, for the GOAWAY debug data and logs
   * @param streamId the stream to reset; 0 for a connection error
   */
  constructor(code: number, message: string, streamId = 0) {
    super(message);
    this.name = "Http2Error";
    this.code = code;
    this.streamId = streamId;
  }
}

/** A parsed frame header; reused by the reader to avoid allocations. */
export interface FrameHeader {
  /** Payload length in bytes. */
  length: number;
  /** Frame type; may be an unknown extension type. */
  type: number;
  /** Flags byte. */
  flags: number;
  /** Stream identifier, reserved bit cleared. */
  streamId: number;
}

/** A fresh, zeroed frame header. */
export function newFrameHeader(): FrameHeader {
  return { length: 0, type: 0, flags: 0, streamId: 0 };
}

/**
 * Reads the 9-byte frame header at `offset` into `out`.
 *
 * @param bytes a buffer with at least 9 bytes from `offset`
 * @param offset where the header starts
 * @param out filled in place
 */
export function readFrameHeader(
  bytes: Uint8Array,
  offset: number,
  out: FrameHeader,
): void {
  out.length = (bytes[offset]! << 16) | (bytes[offset + 1]! << 8) |
    bytes[offset + 2]!;
  out.type = bytes[offset + 3]!;
  out.flags = bytes[offset + 4]!;
  out.streamId = ((bytes[offset + 5]! & 0x7f) << 24 |
    (bytes[offset + 6]! << 16) | (bytes[offset + 7]! << 8) |
    bytes[offset + 8]!) >>> 0;
}

/** Reads a big-endian 32-bit unsigned integer. */
export function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) |
    (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

/** Where the content of a padded DATA/HEADERS payload lies. */
export interface PayloadSpan {
  /** Offset of the first content byte. */
  start: number;
  /** Offset after the last content byte. */
  end: number;
}

/**
 * Strips padding (and for HEADERS the priority fields) from a payload.
 *
 * @param bytes the buffer holding the payload
 * @param start payload start
 * @param header the frame's header (type, flags, length)
 * @param out filled with the content span
 * @throws {Http2Error} PROTOCOL_ERROR when the padding is too long
 */
export function payloadContent(
  bytes: Uint8Array,
  start: number,
  header: FrameHeader,
  out: PayloadSpan,
): void {
  let contentStart = start;
  let end = start + header.length;
  if (header.flags & FrameFlag.PADDED) {
    if (header.length < 1) {
      throw new Http2Error(
        ErrorCode.FRAME_SIZE_ERROR,
        "padded frame too short",
      );
    }
    const padLength = bytes[contentStart]!;
    contentStart++;
    end -= padLength;
  }
  if (header.type === FrameType.HEADERS && header.flags & FrameFlag.PRIORITY) {
    contentStart += 5;
  }
  if (end < contentStart) {
    throw new Http2Error(
      ErrorCode.PROTOCOL_ERROR,
      "padding exceeds the frame payload",
    );
  }
  out.start = contentStart;
  out.end = end;
}

/** One SETTINGS parameter. */
export interface Setting {
  /** The identifier (see {@linkcode SettingId}). */
  id: number;
  /** The value. */
  value: number;
}

/**
 * Decodes a SETTINGS payload into its parameters, in order.
 *
 * @throws {Http2Error} FRAME_SIZE_ERROR when the length is not a multiple of 6
 */
export function decodeSettings(
  bytes: Uint8Array,
  start: number,
  length: number,
): Setting[] {
  if (length % 6 !== 0) {
    throw new Http2Error(
      ErrorCode.FRAME_SIZE_ERROR,
      `SETTINGS payload of ${length} bytes is not a multiple of 6`,
    );
  }
  const settings: Setting[] = [];
  for (let i = start; i < start + length; i += 6) {
    settings.push({
      id: (bytes[i]! << 8) | bytes[i + 1]!,
      value: readUint32(bytes, i + 2),
    });
  }
  return settings;
}

/** A decoded GOAWAY payload. */
export interface Goaway {
  /** The highest stream the sender processed or may process. */
  lastStreamId: number;
  /** Why the connection ends. */
  errorCode: number;
  /** Debug data, as text (may be empty). */
  debug: string;
}

/**
 * Decodes a GOAWAY payload.
 *
 * @throws {Http2Error} FRAME_SIZE_ERROR when shorter than 8 bytes
 */
export function decodeGoaway(
  bytes: Uint8Array,
  start: number,
  length: number,
): Goaway {
  if (length < 8) {
    throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY shorter than 8");
  }
  return {
    lastStreamId: readUint32(bytes, start) & 0x7fffffff,
    errorCode: readUint32(bytes, start + 4),
    debug: new TextDecoder().decode(
      bytes.subarray(start + 8, start + length),
    ),
  };
}

/** A decoded PRIORITY payload (accepted and ignored by the connection). */
export interface Priority {
  /** Exclusive flag. */
  exclusive: boolean;
  /** Stream this one depends on. */
  dependency: number;
  /** Weight 1–256. */
  weight: number;
}

/**
 * Decodes a PRIORITY payload.
 *
 * @throws {Http2Error} FRAME_SIZE_ERROR (stream error) unless 5 bytes
 */
export function decodePriority(
  bytes: Uint8Array,
  start: number,
  length: number,
  streamId: number,
): Priority {
  if (length !== 5) {
    throw new Http2Error(
      ErrorCode.FRAME_SIZE_ERROR,
      "PRIORITY payload must be 5 bytes",
      streamId,
    );
  }
  const word = readUint32(bytes, start);
  return {
    exclusive: (word & 0x80000000) !== 0,
    dependency: word & 0x7fffffff,
    weight: bytes[start + 4]! + 1,
  };
}

/** Human-readable name of a frame type, for errors and logs. */
export function frameTypeName(type: number): string {
  for (const [name, value] of Object.entries(FrameType)) {
    if (value === type) return name;
  }
  return `UNKNOWN(0x${type.toString(16)})`;
}

/** Human-readable name of an error code. */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) {
    if (value === code) return name;
  }
  return `UNKNOWN(0x${code.toString(16)})`;
}
