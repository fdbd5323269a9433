/**
 * HPACK (RFC 7541): the header compression of HTTP/2.
 *
 * A header block is a sequence of representations, each one of:
 *
 * ```
 *   1xxxxxxx            indexed field: index into static+dynamic table
 *   01xxxxxx [name] val literal, then inserted into the dynamic table
 *   001xxxxx            dynamic table size update (only at block start)
 *   0001xxxx [name] val literal never indexed
 *   0000xxxx [name] val literal without indexing
 * ```
 *
 * Indexes 1–61 are the static table (Appendix A); 62 onwards address the
 * dynamic table, newest first. Each entry costs `name.length + value.length
 * + 32` bytes against the table size; inserting past the size evicts the
 * oldest entries. Integers use an N-bit prefix with 7-bit continuation bytes
 * (§5.1); strings carry a Huffman flag and a 7-bit-prefix length (§5.2).
 *
 * The decoder keeps one dynamic table per connection direction, so every
 * block must be decoded in order, even a block whose stream is gone or whose
 * header list is over the limit: skipping one would desynchronise the table
 * (a connection error). Decoded lists are flat arrays — `[name0, value0,
 * name1, value1, …]` — with names and values as Latin-1 strings (one char
 * per octet).
 *
 * The encoder is stateless: it uses static-table matches and literals
 * without indexing (Huffman-coded when that is shorter) and never inserts
 * into the peer's dynamic table. That costs a few bytes per block, and buys
 * blocks that can be precomputed once (the gRPC response headers and the OK
 * trailers are constants) and emitted in any order.
 *
 * @module
 */

import {
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  HuffmanError,
} from "./huffman.ts";

/** A decoded or to-be-encoded header list: `[name0, value0, name1, …]`. */
export type HeaderList = string[];

/** Raised for a header block that is not valid HPACK (a COMPRESSION_ERROR). */
export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/** RFC 7541 Appendix A. Index i+1 is STATIC_TABLE[i]. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

const STATIC_COUNT = STATIC_TABLE.length;
/** Per-entry overhead in the table size accounting (RFC 7541 §4.1). */
export const ENTRY_OVERHEAD_BYTES = 32;
/** The table size both sides start with (SETTINGS_HEADER_TABLE_SIZE default). */
export const DEFAULT_TABLE_BYTES = 4096;
/**
 * Largest integer the decoder accepts. Every legitimate value (an index, a
 * string length, a table size) is far below it; bigger is an attack.
 */
const INTEGER_MAX = 2 ** 28;

/** Chars per `String.fromCharCode.apply` call: bounded argument count. */
const CHARS_PER_APPLY = 4096;

function latin1(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= CHARS_PER_APPLY) {
    return String.fromCharCode.apply(
      null,
      bytes.subarray(start, end) as unknown as number[],
    );
  }
  let text = "";
  for (let i = start; i < end; i += CHARS_PER_APPLY) {
    text += String.fromCharCode.apply(
      null,
      bytes.subarray(
        i,
        Math.min(end, i + CHARS_PER_APPLY),
      ) as unknown as number[],
    );
  }
  return text;
}

/** The result of decoding one header block. */
export interface DecodedBlock {
  /** The fields, flat: `[name0, value0, …]`; partial when `oversize`. */
  fields: HeaderList;
  /** The header list size (RFC 9113 §6.5.2: name + value + 32 per field). */
  listBytes: number;
  /** True when the list grew past the limit; `fields` is then incomplete. */
  oversize: boolean;
}

/**
 * Decodes header blocks, keeping the dynamic table the peer's encoder keeps.
 */
export class HpackDecoder {
  // Ring buffer of dynamic entries; `head` is the newest.
  #names: string[] = [];
  #values: string[] = [];
  #capacity = 0;
  #head = 0;
  #count = 0;
  #tableBytes = 0;
  #tableBytesMax: number;
  #tableBytesLimit: number;

  /**
   * @param tableBytesLimit the SETTINGS_HEADER_TABLE_SIZE we advertise: the
   *   most the peer's encoder may grow our table to
   */
  constructor(tableBytesLimit = DEFAULT_TABLE_BYTES) {
    this.#tableBytesMax = tableBytesLimit;
    this.#tableBytesLimit = tableBytesLimit;
  }

  /** Bytes the dynamic table holds now (for tests). */
  get tableBytes(): number {
    return this.#tableBytes;
  }

  /** Entries in the dynamic table now (for tests). */
  get tableEntries(): number {
    return this.#count;
  }

  /**
   * Decodes one complete header block.
   *
   * @param block the bytes
   * @param start offset of the block's first byte
   * @param end offset after its last byte
   * @param listBytesMax when the list passes this size, the remaining fields
   *   are decoded (to keep the table in step) but not kept
   * @returns the fields and their size
   * @throws {HpackError} when the block is malformed
   */
  decode(
    block: Uint8Array,
    start: number,
    end: number,
    listBytesMax = Infinity,
  ): DecodedBlock {
    const fields: HeaderList = [];
    let listBytes = 0;
    let oversize = false;
    let pos = start;
    let fieldSeen = false;
    while (pos < end) {
      const first = block[pos]!;
      let name: string;
      let value: string;
      if (first & 0x80) {
        const index = this.#readInteger(block, pos, end, 7);
        pos = this.#pos;
        if (index === 0) throw new HpackError("indexed field with index 0");
        name = this.#nameAt(index);
        value = this.#valueAt(index);
      } else if ((first & 0xe0) === 0x20) {
        if (fieldSeen) {
          throw new HpackError("table size update after the first field");
        }
        const size = this.#readInteger(block, pos, end, 5);
        pos = this.#pos;
        if (size > this.#tableBytesLimit) {
          throw new HpackError(
            `table size update to ${size} exceeds the limit ${this.#tableBytesLimit}`,
          );
        }
        this.#tableBytesMax = size;
        this.#evict(0);
        continue;
      } else {
        const incremental = (first & 0xc0) === 0x40;
        const index = this.#readInteger(
          block,
          pos,
          end,
          incremental ? 6 : 4,
        );
        pos = this.#pos;
        if (index === 0) {
          name = this.#readString(block, pos, end);
          pos = this.#pos;
        } else {
          name = this.#nameAt(index);
        }
        value = this.#readString(block, pos, end);
        pos = this.#pos;
        if (incremental) this.#insert(name, value);
      }
      fieldSeen = true;
      listBytes += name.length + value.length + ENTRY_OVERHEAD_BYTES;
      if (listBytes > listBytesMax) oversize = true;
      if (!oversize) fields.push(name, value);
    }
    return { fields, listBytes, oversize };
  }

  #pos = 0;

  #readInteger(
    block: Uint8Array,
    pos: number,
    end: number,
    prefixBits: number,
  ): number {
    const mask = (1 << prefixBits) - 1;
    let value = block[pos++]! & mask;
    if (value < mask) {
      this.#pos = pos;
      return value;
    }
    let shift = 0;
    for (;;) {
      if (pos >= end) throw new HpackError("truncated integer");
      const byte = block[pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (value > INTEGER_MAX) throw new HpackError("integer too large");
      if ((byte & 0x80) === 0) break;
    }
    this.#pos = pos;
    return value;
  }

  #readString(block: Uint8Array, pos: number, end: number): string {
    if (pos >= end) throw new HpackError("truncated string");
    const huffman = (block[pos]! & 0x80) !== 0;
    const length = this.#readInteger(block, pos, end, 7);
    pos = this.#pos;
    if (length > end - pos) throw new HpackError("string past block end");
    const stringEnd = pos + length;
    this.#pos = stringEnd;
    if (!huffman) return latin1(block, pos, stringEnd);
    try {
      return huffmanDecode(block, pos, stringEnd);
    } catch (error) {
      if (error instanceof HuffmanError) throw new HpackError(error.message);
      throw error;
    }
  }

  #nameAt(index: number): string {
    if (index <= STATIC_COUNT) return STATIC_TABLE[index - 1]![0];
    return this.#names[this.#slot(index)]!;
  }

  #valueAt(index: number): string {
    if (index <= STATIC_COUNT) return STATIC_TABLE[index - 1]![1];
    return this.#values[this.#slot(index)]!;
  }

  #slot(index: number): number {
    const dynamicIndex = index - STATIC_COUNT - 1;
    if (dynamicIndex >= this.#count) {
      throw new HpackError(`index ${index} is not in the table`);
    }
    return (this.#head + dynamicIndex) % this.#capacity;
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD_BYTES;
    this.#evict(size);
    if (size > this.#tableBytesMax) return; // §4.4: the table is now empty
    if (this.#count === this.#capacity) this.#grow();
    this.#head = (this.#head - 1 + this.#capacity) % this.#capacity;
    this.#names[this.#head] = name;
    this.#values[this.#head] = value;
    this.#count++;
    this.#tableBytes += size;
  }

  /** Evicts oldest entries until `incoming` more bytes fit. */
  #evict(incoming: number): void {
    while (
      this.#count > 0 && this.#tableBytes + incoming > this.#tableBytesMax
    ) {
      const slot = (this.#head + this.#count - 1) % this.#capacity;
      this.#tableBytes -= this.#names[slot]!.length +
        this.#values[slot]!.length + ENTRY_OVERHEAD_BYTES;
      this.#names[slot] = "";
      this.#values[slot] = "";
      this.#count--;
    }
  }

  #grow(): void {
    const capacity = Math.max(16, this.#capacity * 2);
    const names: string[] = new Array(capacity);
    const values: string[] = new Array(capacity);
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) % this.#capacity;
      names[i] = this.#names[slot]!;
      values[i] = this.#values[slot]!;
    }
    this.#names = names;
    this.#values = values;
    this.#head = 0;
    this.#capacity = capacity;
  }
}

const staticExact = new Map<string, number>();
const staticName = new Map<string, number>();
for (let i = STATIC_TABLE.length - 1; i >= 0; i--) {
  const [name, value] = STATIC_TABLE[i]!;
  staticExact.set(name + "\0" + value, i + 1);
  staticName.set(name, i + 1);
}

/** Initial scratch size for encoding; grows for big blocks. */
const ENCODE_SCRATCH_BYTES = 1024;

/**
 * Encodes header lists statelessly (no dynamic table insertions), so blocks
 * may be cached and sent in any order.
 */
export class HpackEncoder {
  #scratch = new Uint8Array(ENCODE_SCRATCH_BYTES);
  #pos = 0;

  /**
   * Encodes a header list into a new block.
   *
   * @param fields `[name0, value0, …]`, names lower-case
   * @returns the header block
   */
  encode(fields: HeaderList): Uint8Array {
    this.#pos = 0;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!;
      const value = fields[i + 1]!;
      this.#ensure(16 + 2 * (name.length + value.length));
      const exact = staticExact.get(name + "\0" + value);
      if (exact !== undefined) {
        this.#writeInteger(exact, 7, 0x80);
        continue;
      }
      const nameIndex = staticName.get(name);
      if (nameIndex !== undefined) {
        this.#writeInteger(nameIndex, 4, 0x00);
      } else {
        this.#scratch[this.#pos++] = 0x00;
        this.#writeString(name);
      }
      this.#writeString(value);
    }
    return this.#scratch.slice(0, this.#pos);
  }

  #ensure(extra: number): void {
    if (this.#pos + extra <= this.#scratch.length) return;
    const grown = new Uint8Array(
      Math.max(this.#scratch.length * 2, this.#pos + extra),
    );
    grown.set(this.#scratch.subarray(0, this.#pos));
    this.#scratch = grown;
  }

  #writeInteger(value: number, prefixBits: number, pattern: number): void {
    const out = this.#scratch;
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out[this.#pos++] = pattern | value;
      return;
    }
    out[this.#pos++] = pattern | mask;
    value -= mask;
    while (value >= 0x80) {
      out[this.#pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    out[this.#pos++] = value;
  }

  #writeString(text: string): void {
    const huffmanLength = huffmanEncodedLength(text);
    if (huffmanLength < text.length) {
      this.#writeInteger(huffmanLength, 7, 0x80);
      this.#pos = huffmanEncode(text, this.#scratch, this.#pos);
      return;
    }
    this.#writeInteger(text.length, 7, 0x00);
    const out = this.#scratch;
    for (let i = 0; i < text.length; i++) {
      out[this.#pos++] = text.charCodeAt(i) & 0xff;
    }
  }
}
