/**
 * Command-line flags as etcdctl parses them (cobra over spf13/pflag), so
 * that every spelling a user knows from etcdctl works the same way here:
 *
 * ```
 * --rev=3   --rev 3   -w json   -wjson   -w=json   --prefix   --prefix=false
 * get foo --prefix    --prefix get foo    put -- key -value
 * ```
 *
 * Flags may stand anywhere among the arguments (interspersed), `--` ends the
 * flags, a boolean flag takes a value only after `=`, and the errors carry
 * pflag's exact words (`unknown flag: --foo`, `invalid argument "x" for
 * "--rev" flag: strconv.ParseInt: parsing "x": invalid syntax`).
 *
 * @module
 */

import { goQuote } from "./go_format.ts";

/** The value types etcdctl's flags use. */
export type FlagKind = "bool" | "string" | "int64" | "duration" | "strings";

/** One flag: its names, type, default and help line. */
export interface FlagSpec {
  /** Long name, without `--`. */
  name: string;
  /** One-letter shorthand, without `-`. */
  short?: string;
  /** How the value is parsed. */
  kind: FlagKind;
  /** Default value, as its help line shows it (`"0"`, `"5s"`, `"[127.0.0.1:2379]"`). */
  defValue: string;
  /** Help text. */
  usage: string;
}

/** A string flag's spec. */
export const stringFlag = (
  name: string,
  defValue: string,
  usage: string,
): FlagSpec => ({ name, kind: "string", defValue, usage });

/** A bool flag's spec. */
export const boolFlag = (
  name: string,
  defValue: string,
  usage: string,
): FlagSpec => ({ name, kind: "bool", defValue, usage });

/** A duration flag's spec. */
export const durationFlag = (
  name: string,
  defValue: string,
  usage: string,
): FlagSpec => ({ name, kind: "duration", defValue, usage });

/** A parsed flag value. */
export type FlagValue = boolean | string | bigint | number | string[];

/** Raised for a command line pflag rejects; `message` is pflag's text. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/** The result of parsing one command's arguments. */
export interface ParsedFlags {
  /** Values of the flags that were set, by long name. */
  values: Map<string, FlagValue>;
  /** Positional arguments, in order. */
  args: string[];
  /** How many positional arguments came before `--` (-1 when there was none). */
  argsLenAtDash: number;
}

/**
 * Parses `args` against `specs` as pflag does (interspersed flags).
 * @throws FlagError with pflag's message on a bad flag.
 */
export function parseFlags(
  args: readonly string[],
  specs: readonly FlagSpec[],
): ParsedFlags {
  const byName = new Map(specs.map((spec) => [spec.name, spec]));
  const byShort = new Map(
    specs.filter((spec) => spec.short).map((spec) => [spec.short!, spec]),
  );
  const values = new Map<string, FlagValue>();
  const positional: string[] = [];
  let argsLenAtDash = -1;
  const rest = [...args];
  const set = (spec: FlagSpec, value: string) => {
    values.set(spec.name, convert(spec, value, values.get(spec.name)));
  };
  while (rest.length > 0) {
    const s = rest.shift()!;
    if (s.length < 2 || s[0] !== "-") {
      positional.push(s);
      continue;
    }
    if (s[1] === "-") {
      if (s.length === 2) {
        argsLenAtDash = positional.length;
        positional.push(...rest.splice(0));
        break;
      }
      parseLong(s, rest, byName, set);
    } else {
      let shorthands = s.slice(1);
      while (shorthands.length > 0) {
        shorthands = parseShort(shorthands, rest, byShort, set);
      }
    }
  }
  return { values, args: positional, argsLenAtDash };
}

function parseLong(
  s: string,
  rest: string[],
  byName: Map<string, FlagSpec>,
  set: (spec: FlagSpec, value: string) => void,
): void {
  const name = s.slice(2);
  if (name.length === 0 || name[0] === "-" || name[0] === "=") {
    throw new FlagError(`bad flag syntax: ${s}`);
  }
  const eq = name.indexOf("=");
  const flagName = eq < 0 ? name : name.slice(0, eq);
  const spec = byName.get(flagName);
  if (spec === undefined) throw new FlagError(`unknown flag: --${flagName}`);
  if (eq >= 0) set(spec, name.slice(eq + 1));
  else if (spec.kind === "bool") set(spec, "true");
  else if (rest.length > 0) set(spec, rest.shift()!);
  else throw new FlagError(`flag needs an argument: ${s}`);
}

/** Parses the first shorthand of `shorthands`; returns what is left. */
function parseShort(
  shorthands: string,
  rest: string[],
  byShort: Map<string, FlagSpec>,
  set: (spec: FlagSpec, value: string) => void,
): string {
  const c = shorthands[0]!;
  const spec = byShort.get(c);
  if (spec === undefined) {
    throw new FlagError(
      `unknown shorthand flag: ${goQuoteRune(c)} in -${shorthands}`,
    );
  }
  if (shorthands.length > 2 && shorthands[1] === "=") {
    set(spec, shorthands.slice(2));
    return "";
  }
  if (spec.kind === "bool") {
    set(spec, "true");
    return shorthands.slice(1);
  }
  if (shorthands.length > 1) {
    set(spec, shorthands.slice(1));
    return "";
  }
  if (rest.length > 0) {
    set(spec, rest.shift()!);
    return "";
  }
  throw new FlagError(
    `flag needs an argument: ${goQuoteRune(c)} in -${shorthands}`,
  );
}

function goQuoteRune(c: string): string {
  return c === "'" ? "'\\''" : `'${c}'`;
}

function convert(
  spec: FlagSpec,
  value: string,
  previous: FlagValue | undefined,
): FlagValue {
  try {
    switch (spec.kind) {
      case "bool":
        return parseGoBool(value);
      case "string":
        return value;
      case "int64":
        return parseGoInt(value, 0);
      case "duration":
        return parseGoDuration(value);
      case "strings": {
        const items = value === "" ? [] : splitCsv(value);
        return Array.isArray(previous) ? [...previous, ...items] : items;
      }
    }
  } catch (error) {
    const flagName = spec.short
      ? `-${spec.short}, --${spec.name}`
      : `--${spec.name}`;
    throw new FlagError(
      `invalid argument ${goQuote(value)} for ${goQuote(flagName)} flag: ${
        (error as Error).message
      }`,
    );
  }
}

function splitCsv(value: string): string[] {
  // pflag reads string slices with encoding/csv: plain values split on commas.
  return value.split(",");
}

/** Go's `strconv.ParseBool`. */
export function parseGoBool(value: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  throw new Error(
    `strconv.ParseBool: parsing ${goQuote(value)}: invalid syntax`,
  );
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/**
 * Go's `strconv.ParseInt(value, base, 64)`; base 0 takes `0x`, `0o`, `0b`
 * and a leading `0` (octal) and allows `_` between digits.
 * @throws Error with Go's message (`strconv.ParseInt: parsing "x": invalid syntax`).
 */
export function parseGoInt(value: string, base: 0 | 10 | 16): bigint {
  const fail = (what: string) =>
    new Error(`strconv.ParseInt: parsing ${goQuote(value)}: ${what}`);
  let s = value;
  let negative = false;
  if (s.startsWith("+") || s.startsWith("-")) {
    negative = s[0] === "-";
    s = s.slice(1);
  }
  let radix: number = base;
  let underscores = false;
  if (base === 0) {
    radix = 10;
    if (s.length > 1 && s[0] === "0") {
      const p = s[1]!.toLowerCase();
      if (p === "x") [radix, s] = [16, s.slice(2)];
      else if (p === "o") [radix, s] = [8, s.slice(2)];
      else if (p === "b") [radix, s] = [2, s.slice(2)];
      else [radix, s] = [8, s.slice(1)];
    }
    underscores = true;
  }
  if (s.length === 0) throw fail("invalid syntax");
  if (underscores && s.includes("_")) {
    if (!/^[^_](_?[^_])*$/.test(s) && !(radix !== 10 && /^_/.test(s))) {
      throw fail("invalid syntax");
    }
    s = s.replaceAll("_", "");
  }
  const digits = "0123456789abcdefghijklmnopqrstuvwxyz".slice(0, radix);
  let n = 0n;
  for (const ch of s.toLowerCase()) {
    const d = digits.indexOf(ch);
    if (d < 0) throw fail("invalid syntax");
    n = n * BigInt(radix) + BigInt(d);
  }
  if (negative) n = -n;
  if (n > INT64_MAX || n < INT64_MIN) throw fail("value out of range");
  return n;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Go's `time.ParseDuration`, in milliseconds (`"5s"` → 5000).
 * @throws Error with Go's message (`time: invalid duration "x"`).
 */
export function parseGoDuration(value: string): number {
  const fail = () => new Error(`time: invalid duration ${goQuote(value)}`);
  let s = value;
  let sign = 1;
  if (s.startsWith("+") || s.startsWith("-")) {
    sign = s[0] === "-" ? -1 : 1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw fail();
  let total = 0;
  const part = /^(\d*\.?\d*)([a-zµμ]+)/;
  while (s.length > 0) {
    const match = part.exec(s);
    if (!match && /^\d*\.?\d*$/.test(s) && /\d/.test(s)) {
      throw new Error(`time: missing unit in duration ${goQuote(value)}`);
    }
    if (!match || match[1] === "" || match[1] === ".") throw fail();
    const unit = DURATION_UNITS[match[2]!];
    if (unit === undefined) {
      throw new Error(
        `time: unknown unit ${goQuote(match[2]!)} in duration ${
          goQuote(value)
        }`,
      );
    }
    total += Number(match[1]) * unit;
    s = s.slice(match[0].length);
  }
  return sign * total;
}

/**
 * Renders flags as etcdctl's help does (`etcdFlagUsages`): one line per
 * flag, `-w, --write-out="simple"` or `   --rev=0` and a tab before the help
 * text; the tab writer aligns them.
 */
export function flagUsages(specs: readonly FlagSpec[]): string {
  const sorted = [...specs].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  let out = "";
  for (const spec of sorted) {
    let line = spec.short
      ? `  -${spec.short}, --${spec.name}`
      : `      --${spec.name}`;
    if (spec.kind === "bool") line += "[";
    line += "=" +
      (spec.kind === "string" ? goQuote(spec.defValue) : spec.defValue);
    if (spec.kind === "bool") line += "]";
    out += `${line}\t${spec.usage}\n`;
  }
  return out;
}

/**
 * Renders flags as pflag's own `FlagUsages` does (cobra's default usage,
 * which etcdctl shows for a bad flag inside a `txn` request line).
 */
export function pflagUsages(specs: readonly FlagSpec[]): string {
  const sorted = [...specs].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  const typeNames: Record<FlagKind, string> = {
    bool: "",
    string: "string",
    int64: "int",
    duration: "duration",
    strings: "strings",
  };
  const zero: Record<FlagKind, string> = {
    bool: "false",
    string: "",
    int64: "0",
    duration: "0s",
    strings: "[]",
  };
  const heads = sorted.map((spec) => {
    let head = spec.short
      ? `  -${spec.short}, --${spec.name}`
      : `      --${spec.name}`;
    if (typeNames[spec.kind]) head += ` ${typeNames[spec.kind]}`;
    return head;
  });
  const width = Math.max(...heads.map((h) => h.length + 1));
  return sorted.map((spec, i) => {
    const head = heads[i]!;
    let usage = spec.usage;
    if (spec.defValue !== zero[spec.kind]) {
      usage += spec.kind === "string"
        ? ` (default ${goQuote(spec.defValue)})`
        : ` (default ${spec.defValue})`;
    }
    return `${head} ${" ".repeat(width - head.length)} ${usage}\n`;
  }).join("");
}
