/**
 * Generates revkv's static protobuf codecs for etcd v3's messages.
 *
 * Input: the `.proto` files vendored under `proto/` (etcd v3.4's rpc.proto,
 * kv.proto, auth.proto, Apache-2.0). Output: `src/wire/etcd_messages.ts` —
 * for every message `M` an `interface M`, `encodeM(Partial<M>)` and
 * `decodeM(bytes)`, plus the `readM`/`writeM` cursor functions the fast
 * writers and nested messages use; for every enum a `const` object.
 *
 * The parser handles the subset of proto3 those files use: `message`,
 * nested `enum`/`message`, `oneof`, `repeated`, scalar types, and skips
 * `service`, `option`, `import`, `reserved`. Anything else is an error, so a
 * new construct in a future `.proto` is noticed rather than miscompiled.
 *
 * Usage:
 *   deno task gen:wire            # rewrite src/wire/etcd_messages.ts
 *   deno task gen:wire --check    # fail if the committed file is stale
 *
 * protoc is not needed: the generator reads the `.proto` text itself.
 *
 * @module
 */

/** The vendored `.proto` files, in dependency order. */
export const PROTO_FILES = [
  "proto/mvcc/mvccpb/kv.proto",
  "proto/auth/authpb/auth.proto",
  "proto/etcdserver/etcdserverpb/rpc.proto",
];

const OUTPUT_MESSAGES = "src/wire/etcd_messages.ts";

/** A scalar protobuf type the generator supports. */
export type ScalarType =
  | "bytes"
  | "string"
  | "bool"
  | "int64"
  | "uint64"
  | "int32"
  | "uint32";

const SCALARS: ReadonlySet<string> = new Set([
  "bytes",
  "string",
  "bool",
  "int64",
  "uint64",
  "int32",
  "uint32",
]);

/** One field of a message, resolved. */
export interface FieldDesc {
  /** The name in the .proto file (`range_end`): jsonpb's OrigName. */
  protoName: string;
  /** The TypeScript name (`rangeEnd`), as protoc's json_name. */
  name: string;
  number: number;
  kind: "scalar" | "enum" | "message";
  /** The scalar type, or the flat TS name of the enum / message. */
  type: string;
  repeated: boolean;
  /** The oneof this field belongs to, if any. */
  oneof?: string;
}

/** One message, resolved. */
export interface MessageDesc {
  /** The flat TS name (`RangeRequest`). */
  name: string;
  /** The protobuf full name (`etcdserverpb.RangeRequest`). */
  fullName: string;
  fields: FieldDesc[];
}

/** One enum, resolved. */
export interface EnumDesc {
  /** The flat TS name (`RangeRequest_SortOrder`, `AlarmType`). */
  name: string;
  fullName: string;
  values: Array<{ name: string; number: number }>;
}

/** Everything parsed from the .proto files. */
export interface ProtoModel {
  messages: MessageDesc[];
  enums: EnumDesc[];
}

// ---------------------------------------------------------------- parsing

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re =
    /\s+|\/\/[^\n]*|\/\*[\s\S]*?\*\/|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_.]*)|(-?[0-9]+)|([{}()\[\];=<>,:.])/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const match = re.exec(text);
    if (match === null) {
      throw new Error(`cannot tokenize .proto at ${text.slice(pos, pos + 30)}`);
    }
    pos = re.lastIndex;
    const token = match[1] ?? match[2] ?? match[3] ?? match[4];
    if (token !== undefined) tokens.push(token);
  }
  return tokens;
}

interface RawField {
  protoName: string;
  number: number;
  typeName: string;
  repeated: boolean;
  oneof?: string;
}

interface RawMessage {
  pkg: string;
  /** Dotted path inside the package: `RangeRequest`. */
  path: string;
  fields: RawField[];
}

interface RawEnum {
  pkg: string;
  path: string;
  values: Array<{ name: string; number: number }>;
}

class ProtoParser {
  private pos = 0;
  pkg = "";
  readonly messages: RawMessage[] = [];
  readonly enums: RawEnum[] = [];

  constructor(
    private readonly tokens: string[],
    private readonly file: string,
  ) {}

  private peek(): string | undefined {
    return this.tokens[this.pos];
  }

  private next(): string {
    const token = this.tokens[this.pos++];
    if (token === undefined) throw new Error(`${this.file}: unexpected end`);
    return token;
  }

  private expect(token: string): void {
    const got = this.next();
    if (got !== token) {
      throw new Error(`${this.file}: expected '${token}', got '${got}'`);
    }
  }

  private skipStatement(): void {
    // Skips to the next ';' at this brace level, or a balanced { } block.
    let depth = 0;
    while (true) {
      const token = this.next();
      if (token === "{") depth++;
      else if (token === "}") {
        depth--;
        if (depth === 0) return;
      } else if (token === ";" && depth === 0) return;
    }
  }

  parseFile(): void {
    while (this.peek() !== undefined) {
      const token = this.next();
      switch (token) {
        case "syntax":
          this.expect("=");
          if (this.next() !== '"proto3"') {
            throw new Error(`${this.file}: only proto3 is supported`);
          }
          this.expect(";");
          break;
        case "package":
          this.pkg = this.next();
          this.expect(";");
          break;
        case "import":
        case "option":
          this.skipStatement();
          break;
        case "service":
          this.next();
          this.skipStatement();
          break;
        case "message":
          this.parseMessage("");
          break;
        case "enum":
          this.parseEnum("");
          break;
        case ";":
          break;
        default:
          throw new Error(`${this.file}: unexpected '${token}' at top level`);
      }
    }
  }

  private parseEnum(parent: string): void {
    const name = this.next();
    const path = parent === "" ? name : `${parent}.${name}`;
    const values: RawEnum["values"] = [];
    this.expect("{");
    while (this.peek() !== "}") {
      const token = this.next();
      if (token === "option") {
        this.skipStatement();
        continue;
      }
      if (token === ";") continue;
      this.expect("=");
      const number = Number(this.next());
      if (this.peek() === "[") {
        while (this.next() !== "]");
      }
      this.expect(";");
      values.push({ name: token, number });
    }
    this.expect("}");
    this.enums.push({ pkg: this.pkg, path, values });
  }

  private parseMessage(parent: string): void {
    const name = this.next();
    const path = parent === "" ? name : `${parent}.${name}`;
    const fields: RawField[] = [];
    this.expect("{");
    while (this.peek() !== "}") {
      const token = this.next();
      switch (token) {
        case "message":
          this.parseMessage(path);
          break;
        case "enum":
          this.parseEnum(path);
          break;
        case "option":
        case "reserved":
          this.skipStatement();
          break;
        case ";":
          break;
        case "oneof": {
          const oneof = this.next();
          this.expect("{");
          while (this.peek() !== "}") {
            const typeName = this.next();
            if (typeName === ";") continue;
            fields.push(this.parseField(typeName, false, oneof));
          }
          this.expect("}");
          break;
        }
        case "map":
        case "group":
        case "extensions":
        case "extend":
          throw new Error(`${this.file}: '${token}' is not supported`);
        default: {
          const repeated = token === "repeated";
          if (token === "optional" || token === "required") {
            throw new Error(`${this.file}: '${token}' is not supported`);
          }
          const typeName = repeated ? this.next() : token;
          fields.push(this.parseField(typeName, repeated, undefined));
        }
      }
    }
    this.expect("}");
    this.messages.push({ pkg: this.pkg, path, fields });
  }

  private parseField(
    typeName: string,
    repeated: boolean,
    oneof: string | undefined,
  ): RawField {
    const protoName = this.next();
    this.expect("=");
    const number = Number(this.next());
    if (!Number.isInteger(number) || number < 1 || number > 536870911) {
      throw new Error(`${this.file}: bad field number for ${protoName}`);
    }
    if (this.peek() === "[") {
      while (this.next() !== "]");
    }
    this.expect(";");
    const field: RawField = { protoName, number, typeName, repeated };
    if (oneof !== undefined) field.oneof = oneof;
    return field;
  }
}

/** protoc's json_name: drop underscores, capitalize the letter after one. */
export function jsonName(protoName: string): string {
  let out = "";
  let upper = false;
  for (const ch of protoName) {
    if (ch === "_") {
      upper = true;
    } else {
      out += upper ? ch.toUpperCase() : ch;
      upper = false;
    }
  }
  return out;
}

/** Parses the given .proto sources into one resolved model. */
export function buildModel(
  sources: Array<{ file: string; text: string }>,
): ProtoModel {
  const rawMessages: RawMessage[] = [];
  const rawEnums: RawEnum[] = [];
  for (const { file, text } of sources) {
    const parser = new ProtoParser(tokenize(text), file);
    parser.parseFile();
    rawMessages.push(...parser.messages);
    rawEnums.push(...parser.enums);
  }
  const flat = (path: string) => path.replaceAll(".", "_");
  const messageByFull = new Map<string, string>();
  const enumByFull = new Map<string, string>();
  const taken = new Set<string>();
  const claim = (name: string, full: string) => {
    if (taken.has(name)) {
      throw new Error(`flat name collision: ${name} (${full})`);
    }
    taken.add(name);
  };
  for (const m of rawMessages) {
    const full = `${m.pkg}.${m.path}`;
    claim(flat(m.path), full);
    messageByFull.set(full, flat(m.path));
  }
  for (const e of rawEnums) {
    const full = `${e.pkg}.${e.path}`;
    claim(flat(e.path), full);
    enumByFull.set(full, flat(e.path));
  }
  const resolve = (
    m: RawMessage,
    typeName: string,
  ): { kind: "enum" | "message"; type: string } => {
    const candidates: string[] = [];
    if (typeName.includes(".")) candidates.push(typeName);
    else {
      // Innermost scope first: Outer.Inner.T, Outer.T, pkg T.
      const parts = m.path.split(".");
      for (let i = parts.length; i >= 0; i--) {
        const scope = parts.slice(0, i).join(".");
        candidates.push(
          `${m.pkg}.${scope === "" ? "" : scope + "."}${typeName}`,
        );
      }
    }
    for (const full of candidates) {
      const message = messageByFull.get(full);
      if (message !== undefined) return { kind: "message", type: message };
      const enumName = enumByFull.get(full);
      if (enumName !== undefined) return { kind: "enum", type: enumName };
    }
    throw new Error(`unresolved type ${typeName} in ${m.pkg}.${m.path}`);
  };
  const messages = rawMessages.map((m): MessageDesc => ({
    name: flat(m.path),
    fullName: `${m.pkg}.${m.path}`,
    fields: m.fields.map((f): FieldDesc => {
      const base = {
        protoName: f.protoName,
        name: jsonName(f.protoName),
        number: f.number,
        repeated: f.repeated,
      };
      const resolved: Pick<FieldDesc, "kind" | "type"> = SCALARS.has(f.typeName)
        ? { kind: "scalar", type: f.typeName }
        : resolve(m, f.typeName);
      const field: FieldDesc = { ...base, ...resolved };
      if (f.oneof !== undefined) {
        if (f.repeated) throw new Error(`repeated oneof member ${f.protoName}`);
        field.oneof = f.oneof;
      }
      return field;
    }),
  }));
  const enums = rawEnums.map((e): EnumDesc => ({
    name: flat(e.path),
    fullName: `${e.pkg}.${e.path}`,
    values: e.values,
  }));
  return { messages, enums };
}

/** Reads and parses the vendored .proto files (paths relative to the repo). */
export async function loadModel(root: URL): Promise<ProtoModel> {
  const sources = await Promise.all(
    PROTO_FILES.map(async (file) => ({
      file,
      text: await Deno.readTextFile(new URL(file, root)),
    })),
  );
  return buildModel(sources);
}

// ---------------------------------------------------------------- codegen

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

function tagOf(field: FieldDesc, wireType: number): number {
  return (field.number * 8 + wireType) >>> 0;
}

function wireTypeOf(field: FieldDesc): number {
  if (field.kind === "message") return WIRE_LEN;
  if (field.kind === "enum") return WIRE_VARINT;
  return field.type === "bytes" || field.type === "string"
    ? WIRE_LEN
    : WIRE_VARINT;
}

function tsType(field: FieldDesc): string {
  let base: string;
  if (field.kind === "message") base = field.type;
  else if (field.kind === "enum") base = "number";
  else {
    base = {
      bytes: "Uint8Array",
      string: "string",
      bool: "boolean",
      int64: "bigint",
      uint64: "bigint",
      int32: "number",
      uint32: "number",
    }[field.type as ScalarType];
  }
  return field.repeated ? `${base}[]` : base;
}

function defaultValue(field: FieldDesc): string {
  if (field.repeated) return "[]";
  if (field.kind === "message" || field.oneof !== undefined) return "undefined";
  if (field.kind === "enum") return "0";
  return {
    bytes: "EMPTY_BYTES",
    string: '""',
    bool: "false",
    int64: "0n",
    uint64: "0n",
    int32: "0",
    uint32: "0",
  }[field.type as ScalarType];
}

/** The Writer method for a scalar or enum value. */
function writeCall(field: FieldDesc, value: string): string {
  if (field.kind === "enum") return `w.int32(${value});`;
  return `w.${field.type}(${value});`;
}

/** The Reader call that reads one scalar or enum value. */
function readCall(field: FieldDesc): string {
  if (field.kind === "enum") return "r.int32()";
  return `r.${field.type}()`;
}

function isPackable(field: FieldDesc): boolean {
  return field.repeated && wireTypeOf(field) === WIRE_VARINT;
}

/** The condition under which a singular non-oneof scalar is written. */
function presentCondition(field: FieldDesc, v: string): string {
  if (field.oneof !== undefined) return `${v} !== undefined`;
  if (field.kind === "enum") return `${v} !== undefined && ${v} !== 0`;
  switch (field.type as ScalarType) {
    case "bytes":
      return `${v} !== undefined && ${v}.length !== 0`;
    case "string":
      return `${v} !== undefined && ${v} !== ""`;
    case "bool":
      return `${v} === true`;
    case "int64":
    case "uint64":
      return `${v} !== undefined && ${v} !== 0n`;
    default:
      return `${v} !== undefined && ${v} !== 0`;
  }
}

function genEnum(e: EnumDesc): string {
  const lines = [
    `/** protobuf enum \`${e.fullName}\`. */`,
    `export const ${e.name} = {`,
    ...e.values.map((v) => `  ${v.name}: ${v.number},`),
    `} as const;`,
    "",
  ];
  return lines.join("\n");
}

function genInterface(m: MessageDesc): string {
  const lines = [`/** protobuf message \`${m.fullName}\`. */`];
  if (m.fields.length === 0) {
    lines.push("// deno-lint-ignore no-empty-interface");
  }
  lines.push(`export interface ${m.name} {`);
  for (const f of m.fields) {
    const label = f.repeated ? "repeated " : "";
    const typeLabel = f.kind === "scalar" ? f.type : f.type;
    const oneof = f.oneof !== undefined ? ` (oneof ${f.oneof})` : "";
    lines.push(
      `  /** \`${label}${typeLabel} ${f.protoName} = ${f.number}\`${oneof} */`,
    );
    const optional = f.oneof !== undefined ||
      (f.kind === "message" && !f.repeated);
    lines.push(`  ${f.name}${optional ? "?" : ""}: ${tsType(f)};`);
  }
  lines.push("}", "");
  return lines.join("\n");
}

function genWrite(m: MessageDesc): string {
  const lines = [
    `/** Appends the fields of a \`${m.name}\` to \`w\` (no length prefix). */`,
    `export function write${m.name}(w: Writer, m: PartialMessage<${m.name}>): void {`,
  ];
  if (m.fields.length === 0) {
    lines[1] =
      `export function write${m.name}(_w: Writer, _m: PartialMessage<${m.name}>): void {`;
  }
  // Field-number order, as protoc and gogoproto write: equal messages give
  // equal bytes.
  const ordered = [...m.fields].sort((a, b) => a.number - b.number);
  for (const f of ordered) {
    const v = `m.${f.name}`;
    const wt = wireTypeOf(f);
    if (f.kind === "message") {
      const body = [
        `w.uint32(${tagOf(f, WIRE_LEN)});`,
        `const start = w.fork();`,
        `write${f.type}(w, VALUE);`,
        `w.join(start);`,
      ];
      if (f.repeated) {
        lines.push(
          `  if (${v} !== undefined) {`,
          `    for (const item of ${v}) {`,
          ...body.map((l) => `      ${l.replace("VALUE", "item")}`),
          `    }`,
          `  }`,
        );
      } else {
        lines.push(
          `  if (${v} !== undefined) {`,
          ...body.map((l) => `    ${l.replace("VALUE", v)}`),
          `  }`,
        );
      }
      continue;
    }
    if (f.repeated) {
      if (isPackable(f)) {
        lines.push(
          `  if (${v} !== undefined && ${v}.length !== 0) {`,
          `    w.uint32(${tagOf(f, WIRE_LEN)});`,
          `    const start = w.fork();`,
          `    for (const item of ${v}) ${writeCall(f, "item")}`,
          `    w.join(start);`,
          `  }`,
        );
      } else {
        lines.push(
          `  if (${v} !== undefined) {`,
          `    for (const item of ${v}) {`,
          `      w.uint32(${tagOf(f, wt)});`,
          `      ${writeCall(f, "item")}`,
          `    }`,
          `  }`,
        );
      }
      continue;
    }
    lines.push(
      `  if (${presentCondition(f, v)}) {`,
      `    w.uint32(${tagOf(f, wt)});`,
      `    ${writeCall(f, v)}`,
      `  }`,
    );
  }
  lines.push("}", "");
  lines.push(
    `/** Encodes a \`${m.name}\`; omitted and default-valued fields are not written. */`,
    `export function encode${m.name}(message: PartialMessage<${m.name}>): Uint8Array {`,
    `  const w = beginEncode();`,
    `  write${m.name}(w, message);`,
    `  return endEncode(w);`,
    `}`,
    "",
  );
  return lines.join("\n");
}

function genRead(m: MessageDesc): string {
  const usesDepth = m.fields.some((f) => f.kind === "message");
  const depth = usesDepth ? "depth" : "_depth";
  const lines = [
    `/** A \`${m.name}\` with every field at its default. */`,
    `export function new${m.name}(): ${m.name} {`,
    `  return {`,
    ...m.fields.map((f) => `    ${f.name}: ${defaultValue(f)},`),
    `  };`,
    `}`,
    "",
    `/**`,
    ` * Reads the fields of a \`${m.name}\` up to \`r.end\`, merging into \`into\``,
    ` * when given (protobuf merges a repeated occurrence of a message field).`,
    ` */`,
    `export function read${m.name}(r: Reader, ${depth}: number, into?: ${m.name}): ${m.name} {`,
    `  const m = into ?? new${m.name}();`,
    `  while (r.pos < r.end) {`,
    `    const tag = r.uint32();`,
  ];
  if (m.fields.length === 0) {
    lines.push(`    r.skip(tag);`);
  } else {
    lines.push(`    switch (tag) {`);
    for (const f of m.fields) {
      const clearOthers = f.oneof === undefined ? [] : m.fields
        .filter((o) => o.oneof === f.oneof && o !== f)
        .map((o) => `m.${o.name} = undefined;`);
      if (f.kind === "message") {
        const value = f.repeated
          ? `m.${f.name}.push(read${f.type}(r, depth + 1));`
          : `m.${f.name} = read${f.type}(r, depth + 1, m.${f.name});`;
        lines.push(
          `      case ${tagOf(f, WIRE_LEN)}: {`,
          `        const outer = r.enter(depth + 1);`,
          `        ${value}`,
          `        r.leave(outer);`,
          ...clearOthers.map((l) => `        ${l}`),
          `        break;`,
          `      }`,
        );
        continue;
      }
      if (f.repeated) {
        if (isPackable(f)) {
          lines.push(
            `      case ${tagOf(f, WIRE_LEN)}: {`,
            `        const outer = r.enter(0);`,
            `        while (r.pos < r.end) m.${f.name}.push(${readCall(f)});`,
            `        r.leave(outer);`,
            `        break;`,
            `      }`,
          );
        }
        lines.push(
          `      case ${tagOf(f, wireTypeOf(f))}:`,
          `        m.${f.name}.push(${readCall(f)});`,
          `        break;`,
        );
        continue;
      }
      lines.push(
        `      case ${tagOf(f, wireTypeOf(f))}:`,
        `        m.${f.name} = ${readCall(f)};`,
        ...clearOthers.map((l) => `        ${l}`),
        `        break;`,
      );
    }
    const known = m.fields.map((f) => `field === ${f.number}`).join(" || ");
    lines.push(
      `      default: {`,
      `        const field = tag >>> 3;`,
      `        if (${known}) throw r.wrongWireType(tag, "${m.fullName}");`,
      `        r.skip(tag);`,
      `      }`,
      `    }`,
    );
  }
  lines.push(
    `  }`,
    `  return m;`,
    `}`,
    "",
    `/**`,
    ` * Decodes a \`${m.name}\`; absent fields take their defaults. Its bytes`,
    ` * fields view a private copy of \`bytes\` (or \`bytes\` itself with`,
    ` * \`options.takeInput\`).`,
    ` * @throws {WireDecodeError} when the bytes are not a valid message`,
    ` */`,
    `export function decode${m.name}(bytes: Uint8Array, options?: DecodeOptions): ${m.name} {`,
    `  return read${m.name}(readerFor(bytes, options), 0);`,
    `}`,
    "",
  );
  return lines.join("\n");
}

/** Generates the source of src/wire/etcd_messages.ts (before formatting). */
export function generateMessages(model: ProtoModel): string {
  const out: string[] = [
    "// generated by scripts/gen_wire.ts; do not edit",
    "/**",
    " * etcd v3's protobuf messages (etcdserverpb, mvccpb, authpb) as static",
    " * codecs: for every message `M`, `interface M`, `encodeM` and `decodeM`;",
    " * for every enum a `const` object of its values.",
    " *",
    " * Field names are protoc's json_name of the .proto name (`range_end` ->",
    " * `rangeEnd`, `ID` stays `ID`); 64-bit integers are `bigint`; oneof",
    " * members are optional fields, at most one set; nested messages are",
    " * `undefined` when absent. Decoded `bytes` fields are views into one",
    " * private copy of the input (never aliases of the caller's buffer).",
    " * Regenerate with `deno task gen:wire` from the .proto files in proto/.",
    " *",
    " * @module",
    " */",
    "",
    "import {",
    "  beginEncode,",
    "  type DecodeOptions,",
    "  EMPTY_BYTES,",
    "  endEncode,",
    "  type Reader,",
    "  readerFor,",
    "  type Writer,",
    '} from "./protobuf.ts";',
    'export { type DecodeOptions, WireDecodeError } from "./protobuf.ts";',
    "",
    "/**",
    " * What an encoder accepts: any subset of a message's fields, nested",
    " * messages included (`Partial<M>` is one).",
    " */",
    "export type PartialMessage<T> = { [K in keyof T]?: PartialField<T[K]> };",
    "",
    "/** One field of a {@link PartialMessage}. */",
    "export type PartialField<F> = F extends Uint8Array ? F",
    "  : F extends readonly (infer U)[] ? PartialField<U>[]",
    "  : F extends object ? PartialMessage<F>",
    "  : F;",
    "",
  ];
  for (const e of model.enums) out.push(genEnum(e));
  for (const m of model.messages) {
    out.push(genInterface(m));
    out.push(genWrite(m));
    out.push(genRead(m));
  }
  return out.join("\n");
}

const OUTPUT_JSON = "src/wire/etcd_json.ts";

/** Enum names as Go's jsonpb reports them (`etcdserverpb.RangeRequest_SortOrder`). */
const ENUM_GO_NAMES = new Map<string, string>();

/** The output expression of one JSON value (not repeated). */
function toJsonValue(f: FieldDesc, v: string): string {
  if (f.kind === "message") return `toJson${f.type}(${v})`;
  if (f.kind === "enum") return `enumJson(${v}, ${f.type}_NAMES)`;
  switch (f.type as ScalarType) {
    case "bytes":
      return `base64Encode(${v})`;
    case "int64":
    case "uint64":
      return `${v}.toString()`;
    default:
      return v;
  }
}

/** The input expression reading one JSON value `v` at `path`. */
function fromJsonValue(f: FieldDesc, v: string, path: string): string {
  if (f.kind === "message") {
    return `readJson${f.type}(${v}, ${path}, depth + 1)`;
  }
  if (f.kind === "enum") {
    const e = f.type;
    const goName = ENUM_GO_NAMES.get(e) ?? e;
    return `jsonEnum(${v}, ${e}, "${goName}", ${path})`;
  }
  const fn = {
    bytes: "jsonBytes",
    string: "jsonString",
    bool: "jsonBool",
    int64: "jsonInt64",
    uint64: "jsonUint64",
    int32: "jsonInt32",
    uint32: "jsonUint32",
  }[f.type as ScalarType];
  return `${fn}(${v}, ${path})`;
}

function genJsonMessage(m: MessageDesc): string {
  const lines: string[] = [
    `/** \`${m.fullName}\` as grpc-gateway's JSON (field names as in the .proto). */`,
    `export function toJson${m.name}(m: PartialMessage<${m.name}>): Record<string, unknown> {`,
    `  const o: Record<string, unknown> = {};`,
  ];
  if (m.fields.length === 0) {
    lines[1] =
      `export function toJson${m.name}(_m: PartialMessage<${m.name}>): Record<string, unknown> {`;
  }
  for (const f of m.fields) {
    const v = `m.${f.name}`;
    const key = JSON.stringify(f.protoName);
    if (f.repeated) {
      lines.push(
        `  if (${v} !== undefined && ${v}.length !== 0) {`,
        `    o[${key}] = ${v}.map((x) => ${toJsonValue(f, "x")});`,
        `  }`,
      );
    } else if (f.kind === "message") {
      lines.push(`  if (${v} !== undefined) o[${key}] = ${toJsonValue(f, v)};`);
    } else {
      lines.push(
        `  if (${presentCondition(f, v)}) o[${key}] = ${toJsonValue(f, v)};`,
      );
    }
  }
  lines.push(`  return o;`, `}`, "");
  lines.push(
    `/** Reads a \`${m.name}\` from a parsed JSON value; \`path\` names it in errors. */`,
    `export function readJson${m.name}(json: unknown, path: string, depth: number): ${m.name} {`,
    `  const obj = jsonObject(json, path, depth);`,
    `  const m = new${m.name}();`,
  );
  if (m.fields.length > 0) {
    lines.push(
      `  for (const key of Object.keys(obj)) {`,
      `    const v = obj[key];`,
      `    if (v === null) continue;`,
      `    switch (key) {`,
    );
    for (const f of m.fields) {
      const labels = f.protoName === f.name
        ? [f.protoName]
        : [f.protoName, f.name];
      const path = `path + ${JSON.stringify("." + f.protoName)}`;
      for (const label of labels) {
        lines.push(`      case ${JSON.stringify(label)}:`);
      }
      if (f.repeated) {
        lines.push(
          `        m.${f.name} = jsonArray(v, ${path}).map((x, i) =>`,
          `          ${fromJsonValue(f, "x", `${path} + "[" + i + "]"`)}`,
          `        );`,
        );
      } else {
        lines.push(`        m.${f.name} = ${fromJsonValue(f, "v", path)};`);
        if (f.oneof !== undefined) {
          for (const o of m.fields) {
            if (o.oneof === f.oneof && o !== f) {
              lines.push(`        m.${o.name} = undefined;`);
            }
          }
        }
      }
      lines.push(`        break;`);
    }
    lines.push(`    }`, `  }`);
  } else {
    lines.push(`  void obj;`);
  }
  lines.push(`  return m;`, `}`, "");
  lines.push(
    `/**`,
    ` * A \`${m.name}\` from grpc-gateway JSON (parse the text with \`parseJson\``,
    ` * to keep 64-bit numbers exact); unknown fields are ignored.`,
    ` * @throws {JsonDecodeError} when a field has the wrong type or value`,
    ` */`,
    `export function fromJson${m.name}(json: unknown): ${m.name} {`,
    `  return readJson${m.name}(json, "${m.name}", 0);`,
    `}`,
    "",
  );
  return lines.join("\n");
}

/** Generates the source of src/wire/etcd_json.ts (before formatting). */
export function generateJson(model: ProtoModel): string {
  for (const e of model.enums) {
    ENUM_GO_NAMES.set(e.name, `${e.fullName.split(".")[0]}.${e.name}`);
  }
  const enumNames = model.enums.map((e) => e.name);
  const newNames = model.messages.map((m) => `new${m.name}`);
  const typeNames = model.messages.map((m) => `type ${m.name}`);
  const out: string[] = [
    "// generated by scripts/gen_wire.ts; do not edit",
    "/**",
    " * etcd v3's messages as the JSON of etcd 3.4's grpc-gateway: for every",
    " * message `M`, `toJsonM(m)` (an object for `JSON.stringify`) and",
    " * `fromJsonM(value)` (from a parsed body; see `parseJson`). The value",
    " * rules are in json.ts. Regenerate with `deno task gen:wire`.",
    " *",
    " * @module",
    " */",
    "",
    "import {",
    ...[...enumNames, ...newNames, "type PartialMessage", ...typeNames].map((
      n,
    ) => `  ${n},`),
    '} from "./etcd_messages.ts";',
    "import {",
    "HELPERS",
    '} from "./json.ts";',
    'export { JsonDecodeError, parseJson, stringifyJson } from "./json.ts";',
    "",
  ];
  for (const e of model.enums) {
    out.push(
      `const ${e.name}_NAMES: Readonly<Record<number, string>> = {`,
      ...e.values.map((v) => `  ${v.number}: "${v.name}",`),
      `};`,
      "",
    );
  }
  for (const m of model.messages) out.push(genJsonMessage(m));
  const body = out.join("\n");
  const helpers = [
    "base64Encode",
    "enumJson",
    "jsonArray",
    "jsonBool",
    "jsonBytes",
    "jsonEnum",
    "jsonInt32",
    "jsonInt64",
    "jsonObject",
    "jsonString",
    "jsonUint32",
    "jsonUint64",
  ].filter((name) => body.includes(`${name}(`));
  return body.replace("HELPERS", helpers.map((h) => `  ${h},`).join("\n"));
}

async function formatTs(source: string): Promise<string> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=ts", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(source));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(`deno fmt failed: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}

/** The files the generator writes, with their formatted contents. */
export async function generateAll(root: URL): Promise<Map<string, string>> {
  const model = await loadModel(root);
  const files = new Map<string, string>();
  files.set(OUTPUT_MESSAGES, await formatTs(generateMessages(model)));
  files.set(OUTPUT_JSON, await formatTs(generateJson(model)));
  return files;
}

async function main(args: string[]): Promise<number> {
  const root = new URL("../", import.meta.url);
  const check = args.includes("--check");
  const files = await generateAll(root);
  let stale = 0;
  for (const [path, text] of files) {
    const url = new URL(path, root);
    if (check) {
      let current = "";
      try {
        current = await Deno.readTextFile(url);
      } catch {
        // missing counts as stale
      }
      if (current !== text) {
        console.error(`${path} is stale: run \`deno task gen:wire\``);
        stale++;
      }
    } else {
      await Deno.writeTextFile(url, text);
      console.log(`wrote ${path}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
