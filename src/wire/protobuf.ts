/**
 * The protobuf binary wire format, as the generated etcd codecs use it.
 *
 * A protobuf message is a sequence of fields, each a *tag* varint
 * `(fieldNumber << 3) | wireType` followed by its payload:
 *
 * ```text
 * wire type 0  VARINT  int32/int64/uint32/uint64/bool/enum, 1-10 bytes, 7 bits a byte, low first
 * wire type 1  I64     8 bytes little-endian (not used by etcd's messages; skipped when unknown)
 * wire type 2  LEN     varint length, then that many bytes: bytes, string, nested message, packed repeated
 * wire type 5  I32     4 bytes little-endian (skipped when unknown)
 * wire type 3/4        groups (proto2 only): rejected
 * ```
 *
 * Worked example: a `PutRequest{key: "foo", lease: -1}` is
 * `0a 03 66 6f 6f` (field 1, LEN, 3 bytes "foo") then `18 ff ff ff ff ff ff ff ff ff 01`
 * (field 3, VARINT, -1 as a 10-byte two's-complement varint).
 *
 * This module owns the two cursors the generated code drives: {@link Writer}
 * (one growing buffer; nested messages reserve a one-byte length and shift
 * the body when it turns out longer than 127 bytes) and {@link Reader} (a
 * bounded cursor whose `end` narrows while a nested message is read, so no
 * field can read past its enclosing message). Every malformed input —
 * truncated varint, length past the end, wrong wire type for a known field,
 * groups, nesting deeper than {@link MAX_MESSAGE_DEPTH} — throws
 * {@link WireDecodeError}, which the gRPC services answer with
 * `INVALID_ARGUMENT`.
 *
 * @module
 */

/**
 * How deep messages may nest when decoding (TxnRequest -> RequestOp ->
 * TxnRequest ...). 100 is the default recursion limit of the C++ protobuf
 * runtime; it allows 49 nested txns, far beyond what etcd clients build,
 * and keeps the decoder's recursion well inside the JavaScript stack.
 */
export const MAX_MESSAGE_DEPTH = 100;

/** A protobuf message could not be decoded: truncated, malformed or too deep. */
export class WireDecodeError extends Error {
  /** @param message what is wrong, with the offset where it was found */
  constructor(message: string) {
    super(message);
    this.name = "WireDecodeError";
  }
}

/** The shared zero-length byte array that stands for an absent bytes field. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

const TWO_32 = 4294967296;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * The encode buffer kept between encodes: above this size it is dropped
 * after use, so one huge message does not pin its buffer for ever.
 */
const WRITER_KEEP_MAX_BYTES = 1 << 20;
/** Where a fresh writer starts: a typical unary request or response fits. */
const WRITER_INITIAL_BYTES = 1024;

/**
 * Byte strings up to this length are copied by a loop, longer ones by
 * `TypedArray.set`, whose call overhead dominates for short keys.
 */
const SMALL_COPY_MAX_BYTES = 32;

const textEncoder = new TextEncoder();
// Not fatal: etcd's gogoproto unmarshalers take string fields as raw bytes
// without UTF-8 validation, so invalid UTF-8 decodes (with U+FFFD) instead
// of failing the request.
const textDecoder = new TextDecoder();

/** The number of bytes a non-negative integer below 2^32 takes as a varint. */
export function varintSize32(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/**
 * Appends protobuf fields to one growing buffer.
 *
 * Nested messages and strings are written with `fork()` / `join()`: `fork`
 * reserves one length byte and returns where; `join` writes the length there,
 * first moving the body right when the length needs more than one byte.
 */
export class Writer {
  /** The buffer; valid bytes are `[0, pos)`. */
  buf: Uint8Array;
  /** The next byte to write. */
  pos = 0;

  /** @param initialBytes the starting capacity */
  constructor(initialBytes: number = WRITER_INITIAL_BYTES) {
    this.buf = new Uint8Array(initialBytes);
  }

  /** Makes room for `bytes` more bytes. */
  ensure(bytes: number): void {
    const need = this.pos + bytes;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Writes an unsigned integer below 2^32 as a varint (tags, lengths). */
  uint32(value: number): void {
    this.ensure(5);
    const buf = this.buf;
    let pos = this.pos;
    value >>>= 0;
    while (value > 0x7f) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[pos++] = value;
    this.pos = pos;
  }

  /** Writes an int32 or enum: negative values take 10 bytes, sign-extended. */
  int32(value: number): void {
    if (value >= 0) this.uint32(value);
    else this.varint64(value | 0, -1);
  }

  /** Writes a 64-bit varint from its low and high 32-bit halves. */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    lo >>>= 0;
    hi >>>= 0;
    while (hi !== 0) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  /** Writes an int64 (two's complement; -1 takes 10 bytes). */
  int64(value: bigint): void {
    const small = Number(value);
    if (small >= 0 && small <= 0x7fffffff) {
      this.uint32(small);
      return;
    }
    if (value < INT64_MIN || value > INT64_MAX) {
      throw new RangeError(`int64 value out of range: ${value}`);
    }
    this.bigVarint(BigInt.asUintN(64, value));
  }

  /** Writes a uint64 (0 to 2^64-1). */
  uint64(value: bigint): void {
    const small = Number(value);
    if (small >= 0 && small <= 0x7fffffff) {
      this.uint32(small);
      return;
    }
    if (value < 0n || value > UINT64_MAX) {
      throw new RangeError(`uint64 value out of range: ${value}`);
    }
    this.bigVarint(value);
  }

  private bigVarint(unsigned: bigint): void {
    const lo = Number(unsigned & 0xffffffffn);
    const hi = Number(unsigned >> 32n);
    this.varint64(lo, hi);
  }

  /** Writes a bool as a one-byte varint. */
  bool(value: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = value ? 1 : 0;
  }

  /** Writes a length-prefixed byte string. */
  bytes(value: Uint8Array): void {
    const length = value.length;
    this.uint32(length);
    this.ensure(length);
    const buf = this.buf;
    let pos = this.pos;
    if (length <= SMALL_COPY_MAX_BYTES) {
      for (let i = 0; i < length; i++) buf[pos++] = value[i]!;
    } else {
      buf.set(value, pos);
      pos += length;
    }
    this.pos = pos;
  }

  /** Writes a length-prefixed UTF-8 string. */
  string(value: string): void {
    const start = this.fork();
    this.ensure(value.length * 3);
    const written = textEncoder.encodeInto(value, this.buf.subarray(this.pos))
      .written;
    this.pos += written;
    this.join(start);
  }

  /** Reserves one byte for a length and returns its position for `join`. */
  fork(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Writes the length of what follows `start` (from `fork`) at `start`. */
  join(start: number): void {
    const length = this.pos - start - 1;
    if (length < 0x80) {
      this.buf[start] = length;
      return;
    }
    const extra = varintSize32(length) - 1;
    this.ensure(extra);
    const buf = this.buf;
    buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    this.pos += extra;
    let pos = start;
    let value = length;
    while (value > 0x7f) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[pos] = value;
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

let sharedWriter: Writer | undefined;

/**
 * The writer one `encodeM` call uses, reset: encoders are synchronous, so
 * one buffer serves them all. Pair with {@link endEncode}.
 */
export function beginEncode(): Writer {
  const writer = sharedWriter ?? new Writer();
  sharedWriter = undefined;
  writer.pos = 0;
  return writer;
}

/** Copies out the encoded message and returns the writer for reuse. */
export function endEncode(writer: Writer): Uint8Array {
  const out = writer.finish();
  if (writer.buf.length <= WRITER_KEEP_MAX_BYTES) sharedWriter = writer;
  return out;
}

/**
 * A bounded cursor over an encoded message. `end` is the end of the message
 * being read: it narrows while a nested message is read (`enter`/`leave`),
 * and every read checks against it.
 */
export class Reader {
  /** The encoded bytes. */
  readonly buf: Uint8Array;
  /** The next byte to read. */
  pos = 0;
  /** The end of the (sub)message being read. */
  end: number;
  private lo = 0;
  private hi = 0;

  /** @param buf the encoded message */
  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.end = buf.length;
  }

  private truncated(): WireDecodeError {
    return new WireDecodeError(
      `truncated message: unexpected end at offset ${this.pos}`,
    );
  }

  /** Reads a varint and keeps its low 32 bits, unsigned. */
  uint32(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    if (pos >= end) throw this.truncated();
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let result = b & 0x7f;
    for (let shift = 7; shift < 70; shift += 7) {
      if (pos >= end) {
        this.pos = pos;
        throw this.truncated();
      }
      b = buf[pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return result >>> 0;
      }
    }
    this.pos = pos;
    throw new WireDecodeError(`varint longer than 10 bytes at offset ${pos}`);
  }

  /** Reads an int32 or enum varint (low 32 bits, signed). */
  int32(): number {
    return this.uint32() | 0;
  }

  /** Reads a bool varint: anything but 0 is true. */
  bool(): boolean {
    const buf = this.buf;
    const pos = this.pos;
    if (pos < this.end && buf[pos]! < 0x80) {
      this.pos = pos + 1;
      return buf[pos] !== 0;
    }
    this.varint64();
    return (this.lo | this.hi) !== 0;
  }

  /** Reads a varint into `lo`/`hi`. */
  private varint64(): void {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    let b: number;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) throw this.truncated();
      b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.lo = lo;
        this.hi = 0;
        this.pos = pos;
        return;
      }
    }
    if (pos >= end) throw this.truncated();
    b = buf[pos++]!;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b < 0x80) {
      this.lo = lo;
      this.hi = hi;
      this.pos = pos;
      return;
    }
    for (let shift = 3; shift < 32; shift += 7) {
      if (pos >= end) throw this.truncated();
      b = buf[pos++]!;
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.lo = lo;
        this.hi = hi;
        this.pos = pos;
        return;
      }
    }
    this.pos = pos;
    throw new WireDecodeError(`varint longer than 10 bytes at offset ${pos}`);
  }

  /** Reads a uint64 varint. */
  uint64(): bigint {
    this.varint64();
    const lo = this.lo >>> 0;
    const hi = this.hi >>> 0;
    if (hi === 0) return BigInt(lo);
    if (hi < 0x200000) return BigInt(hi * TWO_32 + lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Reads an int64 varint (two's complement). */
  int64(): bigint {
    this.varint64();
    const lo = this.lo >>> 0;
    const hi = this.hi >>> 0;
    if (hi === 0) return BigInt(lo);
    if (hi < 0x200000) return BigInt(hi * TWO_32 + lo);
    if (hi === 0xffffffff && lo !== 0) return BigInt(lo - TWO_32);
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  }

  /** Reads a length varint and checks it fits in the current message. */
  length(): number {
    const length = this.uint32();
    if (length > this.end - this.pos) {
      throw new WireDecodeError(
        `length ${length} at offset ${this.pos} runs past the end of the message (${
          this.end - this.pos
        } bytes left)`,
      );
    }
    return length;
  }

  /**
   * Reads a length-prefixed byte string: a view into the reader's buffer
   * (see {@link readerFor} for why that buffer is a private copy).
   */
  bytes(): Uint8Array {
    const length = this.length();
    if (length === 0) return EMPTY_BYTES;
    const start = this.pos;
    this.pos = start + length;
    return this.buf.subarray(start, start + length);
  }

  /** Reads a length-prefixed string (invalid UTF-8 becomes U+FFFD). */
  string(): string {
    const length = this.length();
    if (length === 0) return "";
    const start = this.pos;
    this.pos = start + length;
    return textDecoder.decode(this.buf.subarray(start, start + length));
  }

  /**
   * Starts reading a nested message or packed field: reads its length,
   * narrows `end` to it and returns the outer end for {@link leave}.
   *
   * @param depth the nesting depth of the message being entered
   */
  enter(depth: number): number {
    if (depth > MAX_MESSAGE_DEPTH) {
      throw new WireDecodeError(
        `messages nested deeper than ${MAX_MESSAGE_DEPTH} levels`,
      );
    }
    const length = this.length();
    const outer = this.end;
    this.end = this.pos + length;
    return outer;
  }

  /** Ends a nested read started by {@link enter}. */
  leave(outer: number): void {
    if (this.pos !== this.end) {
      throw new WireDecodeError(
        `nested message ends at offset ${this.pos}, expected ${this.end}`,
      );
    }
    this.end = outer;
  }

  /** Skips the payload of an unknown field with the given tag. */
  skip(tag: number): void {
    const wireType = tag & 7;
    if ((tag >>> 3) === 0) {
      throw new WireDecodeError(
        `invalid field number 0 at offset ${this.pos}`,
      );
    }
    switch (wireType) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.advance(8);
        return;
      case 2: {
        const length = this.length();
        this.pos += length;
        return;
      }
      case 5:
        this.advance(4);
        return;
      default:
        throw new WireDecodeError(
          `unsupported wire type ${wireType} (field ${
            tag >>> 3
          }) at offset ${this.pos}`,
        );
    }
  }

  private advance(bytes: number): void {
    if (this.end - this.pos < bytes) throw this.truncated();
    this.pos += bytes;
  }

  /** The error for a known field that arrived with the wrong wire type. */
  wrongWireType(tag: number, message: string): WireDecodeError {
    return new WireDecodeError(
      `wrong wire type ${tag & 7} for field ${
        tag >>> 3
      } of ${message} at offset ${this.pos}`,
    );
  }
}

/** How a top-level `decodeM` may treat its input. */
export interface DecodeOptions {
  /**
   * The caller hands `bytes` over and will never change or reuse them:
   * decoded bytes fields then view `bytes` directly, saving the private
   * copy (about 0.4 µs of a 1 µs PutRequest decode). Default false.
   */
  takeInput?: boolean;
}

/**
 * A reader for a top-level decode: over a private copy of `bytes`, unless
 * `options.takeInput`.
 *
 * Decoded `bytes` fields are views into the reader's buffer: one
 * allocation per message instead of one per field (a `slice` per field
 * made a 100-kv RangeResponse decode ~10x slower, bench/wire_bench.ts), and
 * with the copy never an alias of a buffer the caller may reuse. The cost:
 * a decoded field keeps its whole message alive; whoever keeps a field long
 * (the store) copies it if that matters.
 */
export function readerFor(bytes: Uint8Array, options?: DecodeOptions): Reader {
  if (options?.takeInput === true) return new Reader(bytes);
  return new Reader(bytes.length === 0 ? EMPTY_BYTES : bytes.slice());
}
