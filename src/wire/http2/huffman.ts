/**
 * HPACK's Huffman code (RFC 7541 §5.2, Appendix B): the static code HTTP/2
 * uses to shorten header strings.
 *
 * The code is canonical, so the 257 code lengths below (symbols 0–255 and
 * EOS = 256) define it completely: sorting symbols by (length, symbol) and
 * counting up assigns each its code. From that we build, once, on first use:
 *
 * - an encode table (code and length per byte), used bit-packing into a
 *   number accumulator (codes are up to 30 bits, so the accumulator is kept
 *   below 2^53 with multiplication instead of 32-bit shifts);
 * - a decode state machine over 4-bit nibbles (as nghttp2 does): the states
 *   are the internal nodes of the code tree, and for each state and nibble
 *   the table says the next state and the symbol emitted, if any. No code is
 *   shorter than 5 bits, so one nibble emits at most one symbol. Decoding a
 *   byte is two table look-ups.
 *
 * Decoding rejects what §5.2 forbids: the EOS symbol inside a string, and
 * padding longer than 7 bits or not made of the most significant bits of EOS
 * (all ones).
 *
 * @module
 */

/** Code length in bits of each symbol 0–256 (RFC 7541 Appendix B). */
const CODE_LENGTHS: readonly number[] = [
  13,
  23,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  24,
  30,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  6,
  10,
  10,
  12,
  13,
  6,
  8,
  11,
  10,
  10,
  8,
  11,
  8,
  6,
  6,
  6,
  5,
  5,
  5,
  6,
  6,
  6,
  6,
  6,
  6,
  6,
  7,
  8,
  15,
  6,
  12,
  10,
  13,
  6,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  8,
  7,
  8,
  13,
  19,
  13,
  14,
  6,
  15,
  5,
  6,
  5,
  6,
  5,
  6,
  6,
  6,
  5,
  7,
  7,
  6,
  6,
  6,
  5,
  6,
  7,
  6,
  5,
  5,
  6,
  7,
  7,
  7,
  7,
  7,
  15,
  11,
  14,
  13,
  28,
  20,
  22,
  20,
  20,
  22,
  22,
  22,
  23,
  22,
  23,
  23,
  23,
  23,
  23,
  24,
  23,
  24,
  24,
  22,
  23,
  24,
  23,
  23,
  23,
  23,
  21,
  22,
  23,
  22,
  23,
  23,
  24,
  22,
  21,
  20,
  22,
  22,
  23,
  23,
  21,
  23,
  22,
  22,
  24,
  21,
  22,
  23,
  23,
  21,
  21,
  22,
  21,
  23,
  22,
  23,
  23,
  20,
  22,
  22,
  22,
  23,
  22,
  22,
  23,
  26,
  26,
  20,
  19,
  22,
  23,
  22,
  25,
  26,
  26,
  26,
  27,
  27,
  26,
  24,
  25,
  19,
  21,
  26,
  27,
  27,
  26,
  27,
  24,
  21,
  21,
  26,
  26,
  28,
  27,
  27,
  27,
  20,
  24,
  20,
  21,
  22,
  21,
  21,
  23,
  22,
  22,
  25,
  25,
  24,
  24,
  26,
  23,
  26,
  27,
  26,
  26,
  27,
  27,
  27,
  27,
  27,
  28,
  27,
  27,
  27,
  27,
  27,
  26,
  30,
];

/** The end-of-string symbol, which must never appear in encoded data. */
const EOS_SYMBOL = 256;

/** Raised when Huffman-coded bytes are not a valid HPACK string. */
export class HuffmanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HuffmanError";
  }
}

let codes: Uint32Array | undefined;

/** The canonical codes, computed from the lengths on first use. */
function encodeTable(): Uint32Array {
  if (codes) return codes;
  const table = new Uint32Array(257);
  const order = [...CODE_LENGTHS.keys()].sort((a, b) =>
    CODE_LENGTHS[a]! - CODE_LENGTHS[b]! || a - b
  );
  let code = 0;
  let previousLength = 0;
  for (const symbol of order) {
    const length = CODE_LENGTHS[symbol]!;
    code = code * 2 ** (length - previousLength);
    previousLength = length;
    table[symbol] = code;
    code++;
  }
  codes = table;
  return table;
}

/**
 * Decode state machine: entry [state * 16 + nibble] packs
 * next state (bits 0–8), emitted symbol (bits 9–16), EMIT flag, FAIL flag.
 */
let decodeTable: Uint32Array | undefined;
/** Per state: 1 when the bits consumed so far may end the string (padding). */
let acceptingStates: Uint8Array | undefined;

const EMIT_FLAG = 1 << 17;
const FAIL_FLAG = 1 << 18;

function buildDecoder(): Uint32Array {
  if (decodeTable) return decodeTable;
  const table = encodeTable();
  // Tree as arrays: children of internal node n at child[2n], child[2n+1];
  // a child value >= 0 is an internal node, < 0 is -(symbol + 1).
  const child = new Int32Array(2 * 512).fill(0x7fffffff);
  let nodeCount = 1;
  for (let symbol = 0; symbol <= EOS_SYMBOL; symbol++) {
    const length = CODE_LENGTHS[symbol]!;
    const code = table[symbol]!;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const b = Math.floor(code / 2 ** bit) & 1;
      const slot = 2 * node + b;
      if (bit === 0) {
        child[slot] = -(symbol + 1);
      } else {
        if (child[slot] === 0x7fffffff) child[slot] = nodeCount++;
        node = child[slot]!;
      }
    }
  }
  // Accepting states: reached from the root by 0–7 one-bits only.
  const accepting = new Uint8Array(nodeCount);
  accepting[0] = 1;
  let onesNode = 0;
  for (let depth = 1; depth <= 7; depth++) {
    onesNode = child[2 * onesNode + 1]!;
    accepting[onesNode] = 1;
  }
  const fsm = new Uint32Array(nodeCount * 16);
  for (let state = 0; state < nodeCount; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = child[2 * node + ((nibble >> bit) & 1)]!;
        if (next >= 0) {
          node = next;
          continue;
        }
        const symbol = -next - 1;
        if (symbol === EOS_SYMBOL) {
          entry |= FAIL_FLAG;
          break;
        }
        entry |= EMIT_FLAG | (symbol << 9);
        node = 0;
      }
      fsm[state * 16 + nibble] = entry | node;
    }
  }
  acceptingStates = accepting;
  decodeTable = fsm;
  return fsm;
}

/**
 * Decodes Huffman-coded bytes to a Latin-1 string (one char per octet, as
 * HTTP/2 header values are octets).
 *
 * @param bytes the encoded string
 * @param start offset of its first byte
 * @param end offset after its last byte
 * @returns the decoded string
 * @throws {HuffmanError} on EOS in the data or invalid padding
 */
export function huffmanDecode(
  bytes: Uint8Array,
  start: number,
  end: number,
): string {
  const fsm = buildDecoder();
  const accepting = acceptingStates!;
  let state = 0;
  let out = "";
  // Collect char codes in chunks so long values avoid quadratic concatenation.
  const chunk: number[] = [];
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    let entry = fsm[state * 16 + (byte >> 4)]!;
    if (entry & FAIL_FLAG) throw new HuffmanError("Huffman data contains EOS");
    if (entry & EMIT_FLAG) chunk.push((entry >> 9) & 0xff);
    state = entry & 0x1ff;
    entry = fsm[state * 16 + (byte & 0xf)]!;
    if (entry & FAIL_FLAG) throw new HuffmanError("Huffman data contains EOS");
    if (entry & EMIT_FLAG) chunk.push((entry >> 9) & 0xff);
    state = entry & 0x1ff;
    if (chunk.length >= 4096) {
      out += String.fromCharCode.apply(null, chunk);
      chunk.length = 0;
    }
  }
  if (accepting[state] !== 1) {
    throw new HuffmanError("Huffman padding is invalid");
  }
  return out + String.fromCharCode.apply(null, chunk);
}

/**
 * The Huffman-coded length in bytes of a Latin-1 string.
 *
 * @param text the string; each char code is taken as one octet (& 0xff)
 * @returns its encoded length, padding included
 */
export function huffmanEncodedLength(text: string): number {
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    bits += CODE_LENGTHS[text.charCodeAt(i) & 0xff]!;
  }
  return Math.ceil(bits / 8);
}

/**
 * Huffman-codes a Latin-1 string into `out` at `offset`.
 *
 * @param text the string; each char code is taken as one octet (& 0xff)
 * @param out destination, with room for {@linkcode huffmanEncodedLength} bytes
 * @param offset where to write the first byte
 * @returns the offset after the last byte written
 */
export function huffmanEncode(
  text: string,
  out: Uint8Array,
  offset: number,
): number {
  const table = encodeTable();
  let accumulator = 0; // holds fewer than 8 pending bits before each symbol
  let pendingBits = 0;
  for (let i = 0; i < text.length; i++) {
    const symbol = text.charCodeAt(i) & 0xff;
    const length = CODE_LENGTHS[symbol]!;
    accumulator = accumulator * 2 ** length + table[symbol]!;
    pendingBits += length;
    while (pendingBits >= 8) {
      pendingBits -= 8;
      const divisor = 2 ** pendingBits;
      const byte = Math.floor(accumulator / divisor);
      out[offset++] = byte;
      accumulator -= byte * divisor;
    }
  }
  if (pendingBits > 0) {
    // Pad with the most significant bits of EOS: ones.
    out[offset++] = (accumulator << (8 - pendingBits)) |
      ((1 << (8 - pendingBits)) - 1);
  }
  return offset;
}
