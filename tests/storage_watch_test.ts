/**
 * Watch across a restart: a durable store reopened replays history to a
 * watcher from any kept revision, then goes on live.
 */
import assert from "node:assert/strict";
import { open } from "../mod.ts";
import { withTempDir } from "./storage_helpers.ts";

Deno.test("a watch replays history written before a restart, then continues live", async () => {
  await withTempDir(async (dir) => {
    let db = await open(dir, { durability: "none" });
    await db.put("w/a", "1"); // 2
    await db.put("w/b", "2"); // 3
    await db.delete("w/a"); // 4
    await db.close();

    db = await open(dir, { durability: "none" });
    const seen: string[] = [];
    const done = (async () => {
      for await (
        const res of db.watch("w/", {
          prefix: true,
          startRevision: 2,
          prevKv: true,
        })
      ) {
        for (const ev of res.events) {
          seen.push(
            `${ev.kv.modRevision} ${ev.type} ${ev.kv.keyText} ${
              ev.prevKv?.valueText ?? "-"
            }`,
          );
        }
        if (seen.length >= 4) break;
      }
    })();
    await db.put("w/c", "3"); // 5
    await done;
    assert.deepEqual(seen, [
      "2 put w/a -",
      "3 put w/b -",
      "4 delete w/a 1",
      "5 put w/c -",
    ]);
    await db.close();
  });
});
