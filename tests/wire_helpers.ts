/**
 * Shared by the wire tests: the message model (parsed from proto/ by the
 * generator's own parser), a seeded PRNG, random messages with every field
 * set, protobuf text format for protoc, and a protoc runner over copies of
 * the .proto files stripped of their gogoproto/google-api imports.
 */
import * as messages from "../src/wire/etcd_messages.ts";
import {
  type FieldDesc,
  loadModel,
  type MessageDesc,
  PROTO_FILES,
  type ProtoModel,
} from "../scripts/gen_wire.ts";

const ROOT = new URL("../", import.meta.url);

/** The parsed etcd message model. */
export const MODEL: ProtoModel = await loadModel(ROOT);

/** A message description by flat name. */
export function messageDesc(name: string): MessageDesc {
  const desc = MODEL.messages.find((m) => m.name === name);
  if (desc === undefined) throw new Error(`no message ${name}`);
  return desc;
}

type AnyMessage = Record<string, unknown>;
type Encoder = (m: AnyMessage) => Uint8Array;
type Decoder = (b: Uint8Array) => AnyMessage;
const codecs = messages as unknown as Record<string, unknown>;

/** The generated encoder of a message, by flat name. */
export function encoderOf(name: string): Encoder {
  const fn = codecs[`encode${name}`];
  if (typeof fn !== "function") throw new Error(`no encode${name}`);
  return fn as Encoder;
}

/** The generated decoder of a message, by flat name. */
export function decoderOf(name: string): Decoder {
  const fn = codecs[`decode${name}`];
  if (typeof fn !== "function") throw new Error(`no decode${name}`);
  return fn as Decoder;
}

/** The seed of this run: `REVKV_WIRE_SEED` when given, else a random one. */
export function wireSeed(testFile: string): number {
  const text = Deno.env.get("REVKV_WIRE_SEED");
  const seed = text === undefined || text === ""
    ? Math.floor(Math.random() * 0x1_0000_0000)
    : Number(text);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new Error(
      `REVKV_WIRE_SEED must be an integer in [0, 2^32): "${text}"`,
    );
  }
  console.log(
    `wire seed ${seed}: replay with REVKV_WIRE_SEED=${seed} deno test -A ${testFile}`,
  );
  return seed;
}

/** mulberry32: a small, well-mixed 32-bit PRNG for test inputs. */
export class Prng {
  private state: number;
  /** @param seed any 32-bit integer */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return this.u32() % n;
  }
  /** One of the items. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

const INT64_VALUES = [
  1n,
  -1n,
  7n,
  300n,
  (1n << 53n) + 1n,
  (1n << 63n) - 1n,
  -(1n << 63n),
  -123456789012n,
];
const UINT64_VALUES = [
  1n,
  127n,
  128n,
  (1n << 53n) + 1n,
  1n << 63n,
  (1n << 64n) - 1n,
];
const INT32_VALUES = [1, -1, 127, 2147483647, -2147483648];
const UINT32_VALUES = [1, 128, 4294967295];
const STRINGS = [
  "a",
  "etcd",
  "héllo wörld",
  "日本語",
  "😀 emoji",
  "x".repeat(200),
];

function scalarValue(field: FieldDesc, rng: Prng): unknown {
  if (field.kind === "enum") {
    const e = MODEL.enums.find((x) => x.name === field.type)!;
    const nonZero = e.values.filter((v) => v.number !== 0);
    return rng.pick(nonZero.length > 0 ? nonZero : e.values).number;
  }
  switch (field.type) {
    case "bytes": {
      const len = rng.pick([1, 3, 8, 130, 20000]);
      return rng.bytes(len);
    }
    case "string":
      return rng.pick(STRINGS);
    case "bool":
      return true;
    case "int64":
      return rng.pick(INT64_VALUES);
    case "uint64":
      return rng.pick(UINT64_VALUES);
    case "int32":
      return rng.pick(INT32_VALUES);
    case "uint32":
      return rng.pick(UINT32_VALUES);
  }
  throw new Error(`no random value for ${field.type}`);
}

/** How deep random messages nest before message fields stay unset. */
const RANDOM_MAX_DEPTH = 3;

/**
 * A random message with every field set (non-default), except message
 * fields below {@link RANDOM_MAX_DEPTH}; one member per oneof, chosen by
 * `oneofPick` (its index in the oneof) or at random. Every key is present,
 * unset ones `undefined`, so it deep-equals its own decoding.
 */
export function randomMessage(
  name: string,
  rng: Prng,
  depth = 0,
  oneofPick?: number,
): AnyMessage {
  const desc = messageDesc(name);
  const out: AnyMessage = {};
  const chosen = new Map<string, FieldDesc>();
  for (const f of desc.fields) {
    if (f.oneof === undefined || chosen.has(f.oneof)) continue;
    const members = desc.fields.filter((o) => o.oneof === f.oneof);
    const index = oneofPick !== undefined
      ? oneofPick % members.length
      : rng.below(members.length);
    chosen.set(f.oneof, members[index]!);
  }
  for (const f of desc.fields) {
    if (f.oneof !== undefined && chosen.get(f.oneof) !== f) {
      out[f.name] = undefined;
      continue;
    }
    const deep = depth >= RANDOM_MAX_DEPTH;
    const one = (): unknown =>
      f.kind === "message"
        ? randomMessage(f.type, rng, depth + 1)
        : scalarValue(f, rng);
    if (f.repeated) {
      out[f.name] = f.kind === "message" && deep
        ? []
        : Array.from({ length: 1 + rng.below(3) }, one);
    } else if (f.kind === "message" && deep) {
      out[f.name] = undefined;
    } else {
      out[f.name] = one();
    }
  }
  return out;
}

/** The largest oneof of a message (how many cases cover all its members). */
export function oneofCases(name: string): number {
  const counts = new Map<string, number>();
  for (const f of messageDesc(name).fields) {
    if (f.oneof !== undefined) {
      counts.set(f.oneof, (counts.get(f.oneof) ?? 0) + 1);
    }
  }
  return Math.max(1, ...counts.values());
}

function textBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const b of bytes) out += "\\" + b.toString(8).padStart(3, "0");
  return out + '"';
}

/** A message in protobuf text format, as `protoc --encode` reads it. */
export function toTextFormat(
  name: string,
  message: AnyMessage,
  indent = "",
): string {
  const desc = messageDesc(name);
  let out = "";
  for (const f of [...desc.fields].sort((a, b) => a.number - b.number)) {
    const value = message[f.name];
    if (value === undefined) continue;
    const values = f.repeated ? (value as unknown[]) : [value];
    for (const v of values) {
      if (f.kind === "message") {
        out += `${indent}${f.protoName} {\n${
          toTextFormat(f.type, v as AnyMessage, indent + "  ")
        }${indent}}\n`;
        continue;
      }
      let text: string;
      if (f.kind === "enum") {
        const e = MODEL.enums.find((x) => x.name === f.type)!;
        text = e.values.find((x) => x.number === v)?.name ?? String(v);
      } else if (f.type === "bytes") text = textBytes(v as Uint8Array);
      else if (f.type === "string") {
        text = textBytes(new TextEncoder().encode(v as string));
      } else text = String(v);
      out += `${indent}${f.protoName}: ${text}\n`;
    }
  }
  return out;
}

/** The protobuf package of a message's full name (`etcdserverpb`). */
function protoFileOf(desc: MessageDesc): string {
  const pkg = desc.fullName.split(".")[0];
  return {
    mvccpb: "etcd/mvcc/mvccpb/kv.proto",
    authpb: "etcd/auth/authpb/auth.proto",
    etcdserverpb: "etcd/etcdserver/etcdserverpb/rpc.proto",
  }[pkg as "mvccpb"];
}

/** Removes `service X { ... }` blocks and gogoproto/google-api lines. */
function stripForProtoc(text: string): string {
  const lines = text.split("\n").filter((line) =>
    !/^import "(gogoproto|google)\//.test(line) &&
    !/^option \(gogoproto\./.test(line)
  );
  let out = "";
  const joined = lines.join("\n");
  let i = 0;
  while (i < joined.length) {
    const at = joined.indexOf("\nservice ", i);
    if (at === -1) {
      out += joined.slice(i);
      break;
    }
    out += joined.slice(i, at + 1);
    let j = joined.indexOf("{", at);
    let depth = 0;
    for (; j < joined.length; j++) {
      if (joined[j] === "{") depth++;
      else if (joined[j] === "}" && --depth === 0) break;
    }
    i = j + 1;
  }
  return out;
}

let protocDir: string | undefined | null;

/** Whether protoc runs here; tests that need it are skipped otherwise. */
export const PROTOC_AVAILABLE: boolean = await (async () => {
  try {
    const { code } = await new Deno.Command("protoc", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0;
  } catch {
    return false;
  }
})();

async function protocRoot(): Promise<string> {
  if (typeof protocDir === "string") return protocDir;
  const dir = await Deno.makeTempDir({ prefix: "revkv_wire_protoc_" });
  const targets = [
    "etcd/mvcc/mvccpb/kv.proto",
    "etcd/auth/authpb/auth.proto",
    "etcd/etcdserver/etcdserverpb/rpc.proto",
  ];
  for (let k = 0; k < PROTO_FILES.length; k++) {
    const text = await Deno.readTextFile(new URL(PROTO_FILES[k]!, ROOT));
    const target = `${dir}/${targets[k]}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), {
      recursive: true,
    });
    await Deno.writeTextFile(target, stripForProtoc(text));
  }
  protocDir = dir;
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // already gone
    }
  });
  return dir;
}

async function runProtoc(
  args: string[],
  input: Uint8Array,
): Promise<Uint8Array> {
  const dir = await protocRoot();
  const child = new Deno.Command("protoc", {
    args: [`-I${dir}`, ...args],
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(
      `protoc ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return stdout;
}

/** `protoc --encode=<full name>` of a message given in text format. */
export function protocEncode(name: string, text: string): Promise<Uint8Array> {
  const desc = messageDesc(name);
  return runProtoc(
    [`--encode=${desc.fullName}`, protoFileOf(desc)],
    new TextEncoder().encode(text),
  );
}

/** `protoc --decode=<full name>`: the text format of encoded bytes. */
export async function protocDecode(
  name: string,
  bytes: Uint8Array,
): Promise<string> {
  const desc = messageDesc(name);
  const out = await runProtoc(
    [`--decode=${desc.fullName}`, protoFileOf(desc)],
    bytes,
  );
  return new TextDecoder().decode(out);
}

/** Hex of bytes, for readable assertion failures. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * A `FileDescriptorSet` of the three files, from `protoc
 * --descriptor_set_out` (for libraries that load schemas at run time).
 */
export async function protocDescriptorSet(): Promise<Uint8Array> {
  const dir = await protocRoot();
  const out = `${dir}/etcd.descriptor`;
  await runProtoc(
    [
      `--descriptor_set_out=${out}`,
      "--include_imports",
      "etcd/etcdserver/etcdserverpb/rpc.proto",
    ],
    new Uint8Array(0),
  );
  return await Deno.readFile(out);
}

/** The .proto texts stripped for protoc, in dependency order. */
export async function strippedProtoTexts(): Promise<string[]> {
  return await Promise.all(
    PROTO_FILES.map(async (file) =>
      stripForProtoc(await Deno.readTextFile(new URL(file, ROOT)))
    ),
  );
}
