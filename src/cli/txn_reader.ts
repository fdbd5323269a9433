/**
 * The `txn` grammar etcdctl reads from stdin: three blocks separated by an
 * empty line — compares, success requests, failure requests:
 *
 * ```
 * mod("key1") > "0"          ← target("key") op "operand"; targets value,
 * value("key2") = "v"          version (ver), create (c), mod (m), lease
 *                            ← empty line
 * put key1 "new value"       ← get|put|del with their flags, words split as
 * get key2 --prefix            a shell would (double quotes with escapes,
 *                              single quotes literal)
 * del key3                   ← empty line, then the failure requests
 *
 * ```
 *
 * Every line is read up to its `\n` (a missing last newline is `EOF`, as
 * with Go's `bufio.Reader`), trimmed, and parsed; the first bad line aborts
 * the whole transaction before anything is sent.
 *
 * @module
 */

import type { Compare, CompareResult } from "../txn/txn.ts";
import { goQuote } from "./go_format.ts";
import { parseGoInt } from "./flags.ts";

/** A line of the grammar that does not parse; `message` is etcdctl's. */
export class TxnSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TxnSyntaxError";
  }
}

const OPERATORS: Record<string, CompareResult> = {
  "=": "==",
  "!=": "!=",
  ">": ">",
  "<": "<",
};

/**
 * Parses one compare line, e.g. `mod("key") > "66"`.
 * @throws TxnSyntaxError with etcdctl's message.
 */
export function parseCompare(line: string): Compare {
  const paren = line.indexOf("(");
  if (paren < 0) throw new TxnSyntaxError(`malformed comparison: ${line}`);
  const target = line.slice(0, paren);
  const scan = new Scanner(line.slice(paren + 1));
  let key = "";
  let op = "";
  let val = "";
  let n = 0;
  const k = scan.quoted();
  if (k !== undefined) {
    key = k;
    n = 1;
    if (scan.literal(")")) {
      scan.spaces();
      const o = scan.token();
      if (o !== undefined) {
        op = o;
        n = 2;
        scan.spaces();
        const v = scan.quoted();
        if (v !== undefined) {
          val = v;
          n = 3;
        }
      }
    }
  }
  if (n !== 3) {
    throw new TxnSyntaxError(
      `malformed comparison: ${line}; got ${target}(${goQuote(key)}) ${op} ${
        goQuote(val)
      }`,
    );
  }
  const result = OPERATORS[op];
  if (result === undefined) {
    // etcdctl 3.4 panics ("Unknown result op"); say it in words instead.
    throw new TxnSyntaxError(
      `malformed comparison: ${line} (unknown operator ${op})`,
    );
  }
  const invalid = () =>
    new TxnSyntaxError(`invalid txn compare request: ${line}`);
  const number = () => {
    try {
      return Number(parseGoInt(val, 10));
    } catch {
      throw invalid();
    }
  };
  switch (target) {
    case "ver":
    case "version":
      return { key, target: "version", result, value: number() };
    case "c":
    case "create":
      return { key, target: "create", result, value: number() };
    case "m":
    case "mod":
      return { key, target: "mod", result, value: number() };
    case "val":
    case "value":
      return { key, target: "value", result, value: val };
    case "lease": {
      // etcdctl 3.4 panics here ("bad value"); revkv takes the lease ID in
      // hex, as every other etcdctl command prints and accepts it.
      try {
        return { key, target: "lease", result, value: parseGoInt(val, 16) };
      } catch {
        throw invalid();
      }
    }
    default:
      throw new TxnSyntaxError(
        `malformed comparison: ${line} (unknown target ${target})`,
      );
  }
}

/** Just enough of Go's `fmt.Sscanf` for `%q) %s %q`. */
class Scanner {
  #pos = 0;
  constructor(readonly text: string) {}

  spaces(): void {
    while (
      this.#pos < this.text.length && /[ \t\r]/.test(this.text[this.#pos]!)
    ) {
      this.#pos++;
    }
  }

  literal(s: string): boolean {
    if (!this.text.startsWith(s, this.#pos)) return false;
    this.#pos += s.length;
    return true;
  }

  token(): string | undefined {
    this.spaces();
    const start = this.#pos;
    while (this.#pos < this.text.length && !/\s/.test(this.text[this.#pos]!)) {
      this.#pos++;
    }
    return this.#pos > start ? this.text.slice(start, this.#pos) : undefined;
  }

  /** A Go quoted string: `"…"` with escapes or a raw `` `…` ``. */
  quoted(): string | undefined {
    this.spaces();
    const quote = this.text[this.#pos];
    if (quote === "`") {
      const end = this.text.indexOf("`", this.#pos + 1);
      if (end < 0) return undefined;
      const s = this.text.slice(this.#pos + 1, end);
      this.#pos = end + 1;
      return s;
    }
    if (quote !== '"') return undefined;
    let i = this.#pos + 1;
    while (i < this.text.length && this.text[i] !== '"') {
      i += this.text[i] === "\\" ? 2 : 1;
    }
    if (i >= this.text.length) return undefined;
    const unquoted = unquoteGo(this.text.slice(this.#pos, i + 1));
    if (unquoted === undefined) return undefined;
    this.#pos = i + 1;
    return unquoted;
  }
}

/** Go's `strconv.Unquote` of a double-quoted string (undefined if invalid). */
export function unquoteGo(quoted: string): string | undefined {
  if (quoted.length < 2 || quoted[0] !== '"' || quoted.at(-1) !== '"') {
    return undefined;
  }
  const body = quoted.slice(1, -1);
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === "\n" || c === '"') return undefined;
    if (c !== "\\") {
      const code = body.codePointAt(i)!;
      bytes.push(...encoder.encode(String.fromCodePoint(code)));
      if (code > 0xffff) i++;
      continue;
    }
    const e = body[++i];
    const simple: Record<string, number> = {
      a: 7,
      b: 8,
      f: 12,
      n: 10,
      r: 13,
      t: 9,
      v: 11,
      "\\": 92,
      '"': 34,
      "'": 39,
    };
    if (e === undefined) return undefined;
    if (e in simple) {
      if (e === "'") return undefined;
      bytes.push(simple[e]!);
    } else if (e === "x" || e === "u" || e === "U") {
      const len = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) return undefined;
      const value = parseInt(hex, 16);
      if (e === "x") bytes.push(value);
      else {
        if (value > 0x10ffff) return undefined;
        bytes.push(...encoder.encode(String.fromCodePoint(value)));
      }
      i += len;
    } else if (/[0-7]/.test(e)) {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) return undefined;
      bytes.push(parseInt(oct, 8));
      i += 2;
    } else return undefined;
  }
  // Go strings are bytes; a `\xff` makes invalid UTF-8, kept as latin1 here
  // would change it, so decode leniently (keys in compares are text).
  return new TextDecoder().decode(new Uint8Array(bytes));
}

const ARG_PATTERN =
  /"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\t\n\f\r ][^\t\n\f\r ]*[^'"\t\n\f\r ]?/g;

/**
 * etcdctl's `argify`: splits a request line into words; double-quoted words
 * are unquoted as Go strings, single-quoted ones taken literally.
 * @throws TxnSyntaxError for a double-quoted word that does not unquote.
 */
export function argify(line: string): string[] {
  const words = line.match(ARG_PATTERN) ?? [];
  return words.map((word) => {
    if (word.startsWith("'")) return word.slice(1, -1);
    if (word.startsWith('"')) {
      const unquoted = unquoteGo(word);
      if (unquoted === undefined) {
        throw new TxnSyntaxError("invalid syntax");
      }
      return unquoted;
    }
    return word;
  });
}
