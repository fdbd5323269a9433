// Child of the Node kill -9 test (tests/node_bundle_test.ts): opens the store
// at argv[3] with the bundle at argv[2], prints `ready <revision>`, then puts
// `n<i>` = `v<i>` with 16 writers as fast as it can, printing `ack <i>` for
// each acknowledged put (synchronously, in acknowledgement order) until it
// is killed. Continues the numbering from argv[4].

import { writeSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [bundle, dir, startText] = process.argv.slice(2);
const { open } = await import(pathToFileURL(bundle).href);
const say = (line) => {
  const bytes = Buffer.from(line + "\n");
  let done = 0;
  while (done < bytes.length) done += writeSync(1, bytes, done);
};

const db = await open(dir);
say(`ready ${db.revision}`);
let next = Number(startText);
async function writer() {
  for (;;) {
    const i = next++;
    await db.put(`n${i}`, `v${i}`);
    say(`ack ${i}`);
  }
}
await Promise.all(Array.from({ length: 16 }, writer));
