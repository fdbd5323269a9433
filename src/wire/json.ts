/**
 * The JSON mapping of etcd's messages as etcd 3.4's grpc-gateway speaks it
 * (golang/protobuf jsonpb with `OrigName: true`, `EmitDefaults: false`, the
 * gateway's defaults — etcd's embed/serve.go builds the mux with no
 * options). The generated `toJsonM` / `fromJsonM` in etcd_json.ts use these
 * helpers for the value rules; checked against a real etcd 3.4.23:
 *
 * - Output field names are the .proto names (`create_revision`, `prev_kv`,
 *   `ID`, `peerURLs`); input takes those or protoc's json names
 *   (`createRevision`), case-sensitively; unknown input fields are ignored.
 * - Default values are omitted (0, "", false, empty bytes, empty lists,
 *   absent messages); a set oneof member is written even at its default.
 * - bytes: standard base64 with padding, both ways; anything else
 *   (URL-safe, unpadded) is "illegal base64 data at input byte N".
 * - int64/uint64: decimal strings out; a JSON integer or a decimal string
 *   in (`1.5`, `1e2`, `"abc"` are rejected). int32/uint32: numbers out,
 *   numbers or decimal strings in.
 * - enums: names out (a number when the value has no name); a name or a
 *   number in. bool: `true`/`false` only. `null` means "not set".
 *
 * JSON numbers beyond 2^53 lose precision in `JSON.parse`; {@link parseJson}
 * keeps them exact (as bigint) and marks non-integer literals, so parse
 * request bodies with it.
 *
 * @module
 */

import { MAX_MESSAGE_DEPTH, WireDecodeError } from "./protobuf.ts";

/** A JSON body does not fit the message: wrong types, bad base64, ranges. */
export class JsonDecodeError extends WireDecodeError {
  /** @param message what is wrong, naming the field */
  constructor(message: string) {
    super(message);
    this.name = "JsonDecodeError";
  }
}

/**
 * A JSON number literal that is not an integer (`1.5`, `1e2`): no etcd
 * message has a floating-point field, so any such value is rejected where a
 * field is read.
 */
export class JsonNonInteger {
  /** @param source the literal as written */
  constructor(readonly source: string) {}
}

const INTEGER_LITERAL = /^-?(?:0|[1-9][0-9]*)$/;

/**
 * `JSON.parse` for request bodies: integer literals beyond 2^53 become
 * exact `bigint`s, non-integer literals become {@link JsonNonInteger}.
 *
 * @throws {SyntaxError} on malformed JSON, as `JSON.parse`
 */
export function parseJson(text: string): unknown {
  return JSON.parse(
    text,
    function (_key, value: unknown, context?: { source?: string }) {
      if (typeof value !== "number") return value;
      const source = context?.source;
      if (source === undefined) return value;
      if (!INTEGER_LITERAL.test(source)) return new JsonNonInteger(source);
      return Number.isSafeInteger(value) ? value : BigInt(source);
    },
  );
}

/** The input object of a message, or a clear error. */
export function jsonObject(
  value: unknown,
  path: string,
  depth: number,
): Record<string, unknown> {
  if (depth > MAX_MESSAGE_DEPTH) {
    throw new JsonDecodeError(
      `${path}: messages nested deeper than ${MAX_MESSAGE_DEPTH} levels`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new JsonDecodeError(
      `${path}: cannot unmarshal ${jsonKind(value)} into a message`,
    );
  }
  return value as Record<string, unknown>;
}

/** The items of a repeated field (`null` is an empty list). */
export function jsonArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new JsonDecodeError(
      `${path}: cannot unmarshal ${jsonKind(value)} into a repeated field`,
    );
  }
  return value;
}

function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof JsonNonInteger) return `number ${value.source}`;
  if (typeof value === "bigint") return `number ${value}`;
  if (typeof value === "number") return `number ${value}`;
  return typeof value;
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

function integerOf(value: unknown, path: string, type: string): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") {
    if (Number.isInteger(value)) return BigInt(value);
  } else if (typeof value === "string") {
    const text = value.trim();
    if (INTEGER_LITERAL.test(text)) return BigInt(text);
  }
  throw new JsonDecodeError(
    `${path}: cannot unmarshal ${jsonKind(value)}${
      typeof value === "string" ? ` "${value}"` : ""
    } into ${type}`,
  );
}

function inRange(
  value: bigint,
  min: bigint,
  max: bigint,
  path: string,
  type: string,
): bigint {
  if (value < min || value > max) {
    throw new JsonDecodeError(`${path}: ${value} overflows ${type}`);
  }
  return value;
}

/** An int64 field: a JSON integer or a decimal string. */
export function jsonInt64(value: unknown, path: string): bigint {
  return inRange(
    integerOf(value, path, "int64"),
    INT64_MIN,
    INT64_MAX,
    path,
    "int64",
  );
}

/** A uint64 field: a JSON integer or a decimal string, not negative. */
export function jsonUint64(value: unknown, path: string): bigint {
  return inRange(
    integerOf(value, path, "uint64"),
    0n,
    UINT64_MAX,
    path,
    "uint64",
  );
}

/** An int32 field. */
export function jsonInt32(value: unknown, path: string): number {
  return Number(
    inRange(
      integerOf(value, path, "int32"),
      -(1n << 31n),
      (1n << 31n) - 1n,
      path,
      "int32",
    ),
  );
}

/** A uint32 field. */
export function jsonUint32(value: unknown, path: string): number {
  return Number(
    inRange(
      integerOf(value, path, "uint32"),
      0n,
      (1n << 32n) - 1n,
      path,
      "uint32",
    ),
  );
}

/** A bool field: `true` or `false` only. */
export function jsonBool(value: unknown, path: string): boolean {
  if (typeof value === "boolean") return value;
  throw new JsonDecodeError(
    `${path}: cannot unmarshal ${jsonKind(value)} into bool`,
  );
}

/** A string field. */
export function jsonString(value: unknown, path: string): string {
  if (typeof value === "string") return value;
  throw new JsonDecodeError(
    `${path}: cannot unmarshal ${jsonKind(value)} into string`,
  );
}

/** An enum field: a value name of `values`, or an int32 number. */
export function jsonEnum(
  value: unknown,
  values: Readonly<Record<string, number>>,
  enumName: string,
  path: string,
): number {
  if (typeof value === "string") {
    if (Object.hasOwn(values, value)) return values[value]!;
    throw new JsonDecodeError(
      `${path}: unknown value "${value}" for enum ${enumName}`,
    );
  }
  return jsonInt32(value, path);
}

/** The name of an enum value, or the number when it has none. */
export function enumJson(
  value: number,
  names: Readonly<Record<number, string>>,
): string | number {
  return names[value] ?? value;
}

const BASE64_ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) BASE64_VALUE[BASE64_ALPHABET.charCodeAt(i)] = i;

/** Standard base64 with padding, as Go's encoding/json writes []byte. */
export function base64Encode(bytes: Uint8Array): string {
  let out = "";
  const chunk: string[] = [];
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    chunk.push(
      BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! +
        BASE64_ALPHABET[(n >> 6) & 63]! + BASE64_ALPHABET[n & 63]!,
    );
    if (chunk.length === 4096) {
      out += chunk.join("");
      chunk.length = 0;
    }
  }
  out += chunk.join("");
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + "==";
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! +
      BASE64_ALPHABET[(n >> 6) & 63]! + "=";
  }
  return out;
}

/**
 * A bytes field: standard base64 with padding, strictly, as Go's
 * `base64.StdEncoding` (Go also skips `\r` and `\n`; so does this).
 */
export function jsonBytes(value: unknown, path: string): Uint8Array {
  if (typeof value !== "string") {
    throw new JsonDecodeError(
      `${path}: cannot unmarshal ${jsonKind(value)} into bytes`,
    );
  }
  const text = value.includes("\n") || value.includes("\r")
    ? value.replace(/[\r\n]/g, "")
    : value;
  const illegal = (at: number) =>
    new JsonDecodeError(`${path}: illegal base64 data at input byte ${at}`);
  if (text.length % 4 !== 0) throw illegal(text.length - (text.length % 4));
  let padding = 0;
  if (text.endsWith("==")) padding = 2;
  else if (text.endsWith("=")) padding = 1;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let k = 0; k < 4; k++) {
      const code = text.charCodeAt(i + k);
      const last = i + 4 === text.length;
      if (code === 61 && last && k >= 4 - padding) {
        n <<= 6;
        continue;
      }
      const v = code < 128 ? BASE64_VALUE[code]! : -1;
      if (v < 0) throw illegal(i + k);
      n = (n << 6) | v;
    }
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 0xff;
    if (o < out.length) out[o++] = n & 0xff;
  }
  return out;
}

const GO_ESCAPES: Readonly<Record<string, string>> = {
  "\\b": "\\u0008",
  "\\f": "\\u000c",
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * `JSON.stringify` with Go's encoding/json string escapes, so a body is
 * byte for byte what etcd's gateway writes: `<`, `>`, `&`, U+2028, U+2029
 * as `\u003c`..., and backspace / form feed as `\u0008` / `\u000c` (etcd
 * answers a member named `a<b>&c` with `"a\u003cb\u003e\u0026c"`).
 *
 * @example
 * ```ts
 * import { stringifyJson } from "./json.ts";
 * if (stringifyJson({ name: "a<b>&c" }) !== '{"name":"a\\u003cb\\u003e\\u0026c"}') throw new Error();
 * ```
 */
export function stringifyJson(value: unknown): string {
  // Escapes are matched as pairs left to right, so an escaped backslash
  // followed by "b" is never taken for a backspace.
  return JSON.stringify(value).replace(
    /\\[\\"\/bfnrtu]|[<>&\u2028\u2029]/g,
    (match) => GO_ESCAPES[match] ?? match,
  );
}
