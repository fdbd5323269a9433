/**
 * Child of the crash test: opens the store at `Deno.args[0]`, prints
 * `ready <revision>`, then writes as fast as it can with `Deno.args[2]`
 * concurrent writers, printing `ack <revision> <op>` for each acknowledged
 * write (synchronously, in acknowledgement order) until it is killed.
 * `Deno.args[3]`, when given, is the store's `segmentBytes`.
 *
 * @module
 */

import { open } from "../mod.ts";
import { CRASH_STORE_OPTIONS, crashOp } from "./crash_ops.ts";

const [dir, seedText, writersText, segmentBytesText] = Deno.args;
const seed = Number(seedText);
const writers = Number(writersText ?? 16);
const out = new TextEncoder();
const say = (line: string) => {
  const bytes = out.encode(line + "\n");
  let done = 0;
  while (done < bytes.length) {
    done += Deno.stdout.writeSync(bytes.subarray(done));
  }
};

const db = await open(dir!, {
  ...CRASH_STORE_OPTIONS,
  ...(segmentBytesText ? { segmentBytes: Number(segmentBytesText) } : {}),
});
say(`ready ${db.revision}`);
let next = 0;
async function writer(): Promise<void> {
  for (;;) {
    const i = next++;
    const op = crashOp(seed, i);
    if (op.kind === "put") {
      const { header } = await db.put(op.key, op.value);
      say(`ack ${header.revision} ${i}`);
    } else {
      const { header, deleted } = await db.delete(op.key);
      if (deleted > 0) say(`ack ${header.revision} ${i}`);
    }
  }
}
await Promise.all(Array.from({ length: writers }, writer));
