import assert from "node:assert/strict";
import {
  ByteSlab,
  ScratchEncoder,
  SLAB_ITEM_BYTES_MAX,
} from "../src/mvcc/byte_slab.ts";

const enc = new TextEncoder();

Deno.test("ByteSlab encodes strings as UTF-8, ASCII or not, short or long", () => {
  const slab = new ByteSlab();
  for (
    const text of [
      "",
      "a",
      "key/000000000001",
      "héllo wörld",
      "😀 emoji and a lone surrogate \ud800",
      "x".repeat(SLAB_ITEM_BYTES_MAX + 1),
      "é".repeat(SLAB_ITEM_BYTES_MAX),
    ]
  ) {
    assert.deepEqual(slab.encode(text), enc.encode(text));
  }
});

Deno.test("ByteSlab copies are independent of the source and of each other", () => {
  const slab = new ByteSlab();
  const source = enc.encode("0123456789".repeat(10));
  const copies = Array.from(
    { length: 500 },
    (_, i) => slab.copy(source, i % 50, 60),
  );
  source.fill(0);
  slab.encode("more bytes after the copies");
  copies.forEach((copy, i) => {
    assert.deepEqual(
      copy,
      enc.encode("0123456789".repeat(10)).slice(i % 50, 60),
    );
  });
});

Deno.test("ScratchEncoder encodes into one reused buffer", () => {
  const scratch = new ScratchEncoder();
  assert.deepEqual(scratch.encode("abc"), enc.encode("abc"));
  assert.deepEqual(scratch.encode("ünïcode"), enc.encode("ünïcode"));
  const long = "z".repeat(5000);
  assert.deepEqual(scratch.encode(long), enc.encode(long));
});
