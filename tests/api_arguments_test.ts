/**
 * Every public Store method refuses arguments of the wrong kind with a
 * TypeError that names the argument, says what it must be and what it got,
 * and changes nothing (issue 15 item 10). One test per method family.
 */

import { equal, rejects, throws } from "node:assert/strict";
import { open, type Store } from "../mod.ts";

// deno-lint-ignore no-explicit-any
type Loose = any;

async function withStore(fn: (db: Store, loose: Loose) => Promise<void>) {
  const db = await open();
  try {
    await db.put("k", "v");
    await fn(db, db as Loose);
    // Nothing changed: still one write after the refused calls.
    equal((await db.get("k")).header.revision, 2);
  } finally {
    await db.close();
  }
}

const typeError = (message: string) => ({ name: "TypeError", message });

Deno.test("put and delete say which argument is wrong", async () => {
  await withStore(async (_db, db) => {
    await rejects(
      db.put("k", { a: 1 }),
      typeError("value must be a string or Uint8Array, got object"),
    );
    await rejects(
      db.put(42, "v"),
      typeError("key must be a string or Uint8Array, got number"),
    );
    await rejects(
      db.put("k", null),
      typeError("value must be a string or Uint8Array, got null"),
    );
    await rejects(
      db.put("k", "v", "x"),
      typeError("options must be an object, got string"),
    );
    await rejects(
      db.put("k", "v", { lease: 5 }),
      typeError("options.lease must be a bigint lease ID, got number"),
    );
    await rejects(
      db.put("k", "v", { prevKv: "yes" }),
      typeError("options.prevKv must be a boolean, got string"),
    );
    await rejects(
      db.delete([1, 2]),
      typeError("key must be a string or Uint8Array, got array"),
    );
    await rejects(
      db.delete("a", { rangeEnd: 7 }),
      typeError("options.rangeEnd must be a string or Uint8Array, got number"),
    );
  });
});

Deno.test("get, scan and watch say which argument is wrong", async () => {
  await withStore(async (_db, db) => {
    await rejects(
      db.get(undefined),
      typeError("key must be a string or Uint8Array, got undefined"),
    );
    await rejects(
      db.get("k", { revision: "2" }),
      typeError("options.revision must be a number, got string"),
    );
    await rejects(
      db.get("k", { limit: 1n }),
      typeError("options.limit must be a number, got bigint"),
    );
    await rejects(
      (async () => {
        for await (const _ of db.scan({}, {})) break;
      })(),
      typeError("key must be a string or Uint8Array, got object"),
    );
    throws(
      () => db.watch("k", { startRevision: "1" }),
      typeError("options.startRevision must be a number, got string"),
    );
    throws(
      () => db.watch(new Map()),
      typeError("key must be a string or Uint8Array, got Map"),
    );
  });
});

Deno.test("txn and compact say which argument is wrong", async () => {
  await withStore(async (_db, db) => {
    await rejects(
      db.txn(5),
      typeError("request must be an object, got number"),
    );
    await rejects(
      db.txn({ success: "put" }),
      typeError("request.success must be an array, got string"),
    );
    await rejects(
      db.txn({ success: [{ put: { key: "k", value: 1 } }] }),
      typeError("value must be a string or Uint8Array, got number"),
    );
    await rejects(
      db.compact("2"),
      typeError("revision must be a number, got string"),
    );
  });
});

Deno.test("lease methods say which argument is wrong", async () => {
  await withStore(async (_db, db) => {
    await rejects(
      db.grant("10"),
      typeError("ttlSeconds must be a finite number, got string"),
    );
    await rejects(
      db.grant(10, { id: 1 }),
      typeError("options.id must be a bigint lease ID, got number"),
    );
    await rejects(
      db.revoke(1),
      typeError("id must be a bigint lease ID, got number"),
    );
    await rejects(
      db.keepAlive("1"),
      typeError("id must be a bigint lease ID, got string"),
    );
    await rejects(
      db.timeToLive(1),
      typeError("id must be a bigint lease ID, got number"),
    );
    throws(
      () => db.keepAliveStream(1),
      typeError("id must be a bigint lease ID, got number"),
    );
    equal((await db.leases()).leases.length, 0);
  });
});
