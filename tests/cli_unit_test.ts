/**
 * The CLI's building blocks: pflag-style parsing, Go's number and duration
 * parsing, `%q` quoting, Go's JSON string escaping, the tab writer, and the
 * txn grammar reader.
 */

import { deepStrictEqual, equal, throws } from "node:assert/strict";
import {
  type FlagSpec,
  parseFlags,
  parseGoDuration,
  parseGoInt,
} from "../src/cli/flags.ts";
import { goQuote, hexId, jsonString } from "../src/cli/go_format.ts";
import { tabwrite } from "../src/cli/tabwriter.ts";
import { argify, parseCompare } from "../src/cli/txn_reader.ts";

const SPECS: FlagSpec[] = [
  { name: "rev", kind: "int64", defValue: "0", usage: "" },
  { name: "prefix", kind: "bool", defValue: "false", usage: "" },
  {
    name: "write-out",
    short: "w",
    kind: "string",
    defValue: "simple",
    usage: "",
  },
  {
    name: "interactive",
    short: "i",
    kind: "bool",
    defValue: "false",
    usage: "",
  },
  { name: "endpoints", kind: "strings", defValue: "[]", usage: "" },
];

Deno.test("flags parse every pflag spelling, interspersed with arguments", () => {
  const parsed = parseFlags(
    ["foo", "--rev=3", "-w", "json", "--prefix", "bar", "-iwfields"],
    SPECS,
  );
  deepStrictEqual(parsed.args, ["foo", "bar"]);
  equal(parsed.values.get("rev"), 3n);
  equal(parsed.values.get("prefix"), true);
  equal(parsed.values.get("interactive"), true);
  equal(parsed.values.get("write-out"), "fields");
  equal(parseFlags(["--rev", "0x10"], SPECS).values.get("rev"), 16n);
  equal(parseFlags(["--prefix=false"], SPECS).values.get("prefix"), false);
  equal(parseFlags(["-w=json"], SPECS).values.get("write-out"), "json");
});

Deno.test("flags stop at -- and remember where", () => {
  const parsed = parseFlags(["k", "--", "-v", "--rev=1"], SPECS);
  deepStrictEqual(parsed.args, ["k", "-v", "--rev=1"]);
  equal(parsed.argsLenAtDash, 1);
});

Deno.test("flags append string slices and replace the default", () => {
  const parsed = parseFlags(
    ["--endpoints=a:1,b:2", "--endpoints", "c:3"],
    SPECS,
  );
  deepStrictEqual(parsed.values.get("endpoints"), ["a:1", "b:2", "c:3"]);
});

Deno.test("flags reject bad input with pflag's words", () => {
  throws(
    () => parseFlags(["--nope"], SPECS),
    /^FlagError: unknown flag: --nope$/,
  );
  throws(
    () => parseFlags(["-x"], SPECS),
    /unknown shorthand flag: 'x' in -x/,
  );
  throws(
    () => parseFlags(["--rev=1.5"], SPECS),
    /invalid argument "1.5" for "--rev" flag: strconv.ParseInt: parsing "1.5": invalid syntax/,
  );
  throws(
    () => parseFlags(["-w"], SPECS),
    /flag needs an argument: 'w' in -w/,
  );
  throws(
    () => parseFlags(["--prefix=maybe"], SPECS),
    /strconv.ParseBool: parsing "maybe": invalid syntax/,
  );
  throws(() => parseFlags(["---x"], SPECS), /bad flag syntax: ---x/);
});

Deno.test("Go integers and durations parse as strconv and time do", () => {
  equal(parseGoInt("7fffffffffffffff", 16), (1n << 63n) - 1n);
  throws(() => parseGoInt("8000000000000000", 16), /value out of range/);
  equal(parseGoInt("-12", 10), -12n);
  throws(() => parseGoInt("", 10), /parsing "": invalid syntax/);
  equal(parseGoDuration("1m30s"), 90_000);
  equal(parseGoDuration("1.5s"), 1500);
  equal(parseGoDuration("0"), 0);
  throws(() => parseGoDuration("5"), /time: missing unit in duration "5"/);
  throws(() => parseGoDuration("abc"), /time: invalid duration "abc"/);
});

Deno.test("goQuote quotes as Go's %q, invalid UTF-8 byte by byte", () => {
  equal(goQuote('a"b\\c\n\t'), '"a\\"b\\\\c\\n\\t"');
  equal(goQuote("é€😀"), '"é€😀"');
  equal(goQuote("\u0001\u007f\u00a0"), '"\\x01\\x7f\\u00a0"');
  equal(goQuote(new Uint8Array([0x66, 0xff, 0xc3])), '"f\\xff\\xc3"');
});

Deno.test("jsonString escapes as Go's encoding/json", () => {
  equal(jsonString("<a&b>"), '"\\u003ca\\u0026b\\u003e"');
  equal(jsonString("\u0001\n"), '"\\u0001\\n"');
  equal(jsonString(new Uint8Array([0xff])), '"\ufffd"');
});

Deno.test("IDs print as %016x, negative int64 as two's complement", () => {
  equal(hexId(0x694da2104d61e82dn), "694da2104d61e82d");
  equal(hexId(1n), "0000000000000001");
  equal(hexId(-1n), "ffffffffffffffff");
});

Deno.test("tabwrite aligns columns as Go's tabwriter with tab padding", () => {
  equal(
    tabwrite("NAME:\n\tget\tGets\n\tcompaction\tCompacts\n\nx\n"),
    "NAME:\n\tget\t\tGets\n\tcompaction\tCompacts\n\nx\n",
  );
  equal(
    tabwrite("  --a=1\tone\n  --long-flag=x\ttwo\n"),
    "  --a=1\t\tone\n  --long-flag=x\ttwo\n",
  );
});

Deno.test("txn compares parse etcdctl's grammar", () => {
  deepStrictEqual(parseCompare('mod("key") > "66"'), {
    key: "key",
    target: "mod",
    result: ">",
    value: 66,
  });
  deepStrictEqual(parseCompare('val("k\\n") != "a b"'), {
    key: "k\n",
    target: "value",
    result: "!=",
    value: "a b",
  });
  deepStrictEqual(parseCompare('lease("k") = "694da2104d61e82d"'), {
    key: "k",
    target: "lease",
    result: "==",
    value: 0x694da2104d61e82dn,
  });
  throws(
    () => parseCompare("qwe xyz"),
    /^TxnSyntaxError: malformed comparison: qwe xyz$/,
  );
  throws(
    () => parseCompare('value("k") = v'),
    /malformed comparison: value\("k"\) = v; got value\("k"\) = ""/,
  );
  throws(() => parseCompare('c("k") = "x"'), /invalid txn compare request/);
  throws(() => parseCompare('size("k") = "1"'), /unknown target size/);
});

Deno.test("txn request lines split into words as etcdctl's argify", () => {
  deepStrictEqual(argify(`put k "a \\"quoted\\" value"`), [
    "put",
    "k",
    'a "quoted" value',
  ]);
  deepStrictEqual(argify("put k 'single quoted'"), [
    "put",
    "k",
    "single quoted",
  ]);
  deepStrictEqual(argify("  get   k  --prefix "), ["get", "k", "--prefix"]);
});
