/**
 * Malformed input never crashes a decoder: valid encodings of random
 * messages, truncated, bit-flipped, spliced and overwritten, and plain random
 * bytes, fed to every decoder, either decode or throw WireDecodeError —
 * nothing else (no RangeError, no TypeError, no hang). Whatever decodes
 * re-encodes and decodes to the same value (the decoders' output is always
 * a valid message). Mutated JSON bodies likewise decode or throw
 * JsonDecodeError.
 *
 * The seed is printed; replay with
 * `REVKV_WIRE_SEED=<seed> deno test -A tests/wire_fuzz_test.ts`.
 */
import assert from "node:assert/strict";
import * as etcdJson from "../src/wire/etcd_json.ts";
import { JsonDecodeError } from "../src/wire/etcd_json.ts";
import { JsonNonInteger } from "../src/wire/json.ts";
import { WireDecodeError } from "../src/wire/etcd_messages.ts";
import {
  decoderOf,
  encoderOf,
  MODEL,
  Prng,
  randomMessage,
  wireSeed,
} from "./wire_helpers.ts";

const SEED = wireSeed("tests/wire_fuzz_test.ts");
/** Mutated inputs per run: enough to hit every mutation on every message. */
const FUZZ_CASES = 4000;

function mutate(bytes: Uint8Array, rng: Prng): Uint8Array {
  const out = Array.from(bytes);
  const edits = 1 + rng.below(4);
  for (let e = 0; e < edits; e++) {
    const at = out.length === 0 ? 0 : rng.below(out.length);
    switch (rng.below(6)) {
      case 0: // truncate
        out.length = at;
        break;
      case 1: // flip one bit
        if (out.length > 0) out[at] = out[at]! ^ (1 << rng.below(8));
        break;
      case 2: // overwrite with a random byte
        if (out.length > 0) out[at] = rng.u32() & 0xff;
        break;
      case 3: // insert random bytes
        out.splice(at, 0, ...rng.bytes(1 + rng.below(8)));
        break;
      case 4: // a run of continuation bytes (endless varint)
        out.splice(at, 0, ...new Array(1 + rng.below(12)).fill(0xff));
        break;
      default: // duplicate a slice (repeated fields, merges)
        out.splice(at, 0, ...out.slice(rng.below(out.length + 1), at));
    }
  }
  return new Uint8Array(out);
}

function tryDecode(name: string, input: Uint8Array, context: string): void {
  let decoded: Record<string, unknown>;
  try {
    decoded = decoderOf(name)(input);
  } catch (err) {
    if (err instanceof WireDecodeError) return;
    throw new Error(
      `${name} decoder threw ${err} on ${context} (seed ${SEED})`,
    );
  }
  // What decodes is a valid message: it re-encodes and decodes the same.
  const again = decoderOf(name)(encoderOf(name)(decoded));
  assert.deepStrictEqual(again, decoded, `${name}: ${context} (seed ${SEED})`);
}

Deno.test("mutated encodings decode or throw WireDecodeError, for every message", () => {
  const rng = new Prng(SEED);
  const names = MODEL.messages.map((m) => m.name);
  let decodedOk = 0;
  for (let i = 0; i < FUZZ_CASES; i++) {
    const name = names[i % names.length]!;
    const valid = encoderOf(name)(randomMessage(name, rng, 1));
    const input = mutate(valid, rng);
    // The same bytes through their own decoder and through another one.
    tryDecode(name, input, `case ${i}`);
    tryDecode(rng.pick(names), input, `case ${i} (other decoder)`);
    try {
      decoderOf(name)(input);
      decodedOk++;
    } catch {
      // counted above
    }
  }
  // Both outcomes occur: mutations are neither all harmless nor all fatal.
  assert.ok(decodedOk > 0 && decodedOk < FUZZ_CASES, `${decodedOk} decoded`);
});

Deno.test("random bytes decode or throw WireDecodeError, for every message", () => {
  const rng = new Prng(SEED ^ 0x9e3779b9);
  const names = MODEL.messages.map((m) => m.name);
  for (let i = 0; i < FUZZ_CASES; i++) {
    const input = rng.bytes(rng.below(64));
    tryDecode(names[i % names.length]!, input, `random case ${i}`);
  }
});

const JSON_ODDITIES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  "",
  "x",
  "Zm9v",
  "9223372036854775808",
  [],
  [1, "a"],
  {},
  { a: 1 },
  new JsonNonInteger("1e2"),
  2n ** 70n,
];

/** A copy of a JSON value with one random node replaced by an oddity. */
function mutateJson(value: unknown, rng: Prng): unknown {
  if (rng.below(4) === 0) return rng.pick(JSON_ODDITIES);
  if (Array.isArray(value) && value.length > 0) {
    const copy = [...value];
    const i = rng.below(copy.length);
    copy[i] = mutateJson(copy[i], rng);
    return copy;
  }
  if (
    typeof value === "object" && value !== null &&
    !(value instanceof JsonNonInteger)
  ) {
    const copy = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(copy);
    if (keys.length === 0) return rng.pick(JSON_ODDITIES);
    const key = rng.pick(keys);
    copy[key] = mutateJson(copy[key], rng);
    return copy;
  }
  return rng.pick(JSON_ODDITIES);
}

Deno.test("mutated JSON bodies decode or throw JsonDecodeError, for every message", () => {
  const rng = new Prng(SEED ^ 0x15011);
  const codecs = etcdJson as unknown as Record<string, (x: unknown) => unknown>;
  const names = MODEL.messages.map((m) => m.name);
  let rejected = 0;
  for (let i = 0; i < FUZZ_CASES; i++) {
    const name = names[i % names.length]!;
    const body = codecs[`toJson${name}`]!(randomMessage(name, rng, 1));
    const mutated = mutateJson(body, rng);
    try {
      codecs[`fromJson${name}`]!(mutated);
    } catch (err) {
      if (!(err instanceof JsonDecodeError)) {
        throw new Error(
          `fromJson${name} threw ${err} on JSON case ${i} (seed ${SEED})`,
        );
      }
      rejected++;
    }
  }
  assert.ok(rejected > 0 && rejected < FUZZ_CASES, `${rejected} rejected`);
});
