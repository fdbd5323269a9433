/**
 * The few pieces of Go's formatting that etcdctl's output is made of:
 * `strconv.Quote` (`%q`), `encoding/json`'s string escaping and base64 for
 * `[]byte`, and `%016x` for IDs. Bytes stay bytes until printed: keys and
 * values need not be UTF-8, and Go quotes invalid bytes as `\x..`.
 *
 * @module
 */

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Go's `strconv.Quote` of a string or of bytes read as a Go string: printable
 * runes as they are, `\a \b \f \n \r \t \v \\ \"`, other control and
 * non-printable runes as `\x..`, `\u....` or `\U........`, and every byte of
 * invalid UTF-8 as `\x..`.
 */
export function goQuote(input: string | Uint8Array): string {
  const bytes = typeof input === "string" ? utf8(input) : input;
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const [rune, size] = decodeRune(bytes, i);
    if (rune < 0) {
      out += "\\x" + hex2(bytes[i]!);
      i += 1;
      continue;
    }
    i += size;
    out += quoteRune(rune);
  }
  return out + '"';
}

function quoteRune(rune: number): string {
  switch (rune) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return "\\\\";
    case 0x07:
      return "\\a";
    case 0x08:
      return "\\b";
    case 0x0c:
      return "\\f";
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
    case 0x0b:
      return "\\v";
  }
  const ch = String.fromCodePoint(rune);
  if (isGoPrintable(rune, ch)) return ch;
  if (rune < 0x20 || rune === 0x7f) return "\\x" + hex2(rune);
  if (rune < 0x10000) return "\\u" + rune.toString(16).padStart(4, "0");
  return "\\U" + rune.toString(16).padStart(8, "0");
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols, and ASCII space. */
function isGoPrintable(rune: number, ch: string): boolean {
  if (rune === 0x20) return true;
  if (rune < 0x20 || rune === 0x7f) return false;
  return PRINTABLE.test(ch);
}

/**
 * Decodes one UTF-8 rune at `i`; returns `[-1, 1]` for an invalid byte
 * (as Go's `utf8.DecodeRune` yields RuneError with width 1).
 */
function decodeRune(bytes: Uint8Array, i: number): [number, number] {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return [b0, 1];
  let need: number;
  let rune: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) [need, rune, min] = [1, b0 & 0x1f, 0x80];
  else if (b0 >= 0xe0 && b0 <= 0xef) [need, rune, min] = [2, b0 & 0x0f, 0x800];
  else if (b0 >= 0xf0 && b0 <= 0xf4) {
    [need, rune, min] = [3, b0 & 0x07, 0x10000];
  } else return [-1, 1];
  for (let k = 1; k <= need; k++) {
    const b = bytes[i + k];
    if (b === undefined || (b & 0xc0) !== 0x80) return [-1, 1];
    rune = (rune << 6) | (b & 0x3f);
  }
  if (rune < min || rune > 0x10ffff || (rune >= 0xd800 && rune <= 0xdfff)) {
    return [-1, 1];
  }
  return [rune, need + 1];
}

function hex2(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** etcdctl's `--hex` form of bytes: `\x66\x6f\x6f`. */
export function hexEscaped(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += "\\x" + hex2(b);
  return out;
}

/** Standard base64 with padding (Go's encoding of `[]byte` in JSON). */
export function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * A JSON string as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and
 * U+2029 escaped, control characters as `\n`, `\r`, `\t` or `\u00XX`, and
 * invalid UTF-8 replaced by U+FFFD.
 */
export function jsonString(input: string | Uint8Array): string {
  const bytes = typeof input === "string" ? utf8(input) : input;
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const [rune, size] = decodeRune(bytes, i);
    i += size;
    if (rune < 0) {
      out += "\ufffd";
      continue;
    }
    switch (rune) {
      case 0x22:
        out += '\\"';
        continue;
      case 0x5c:
        out += "\\\\";
        continue;
      case 0x0a:
        out += "\\n";
        continue;
      case 0x0d:
        out += "\\r";
        continue;
      case 0x09:
        out += "\\t";
        continue;
    }
    if (
      rune < 0x20 || rune === 0x3c || rune === 0x3e || rune === 0x26 ||
      rune === 0x2028 || rune === 0x2029
    ) {
      out += "\\u" + rune.toString(16).padStart(4, "0");
      continue;
    }
    out += String.fromCodePoint(rune);
  }
  return out + '"';
}

/** A uint64 ID as `%016x` (two's complement for a negative int64). */
export function hexId(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16).padStart(16, "0");
}

/** A Go `%x` of a uint64 (no padding). */
export function hexUint(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16);
}

/** Concatenates byte chunks. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
