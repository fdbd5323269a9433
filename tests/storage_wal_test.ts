import assert from "node:assert/strict";
import { crc32c } from "../src/storage/crc32c.ts";
import {
  decodeRecord,
  readFrame,
  TsWalEncoder,
  type WalRecord,
} from "../src/storage/wal_codec.ts";
import { open, repair, WalCorruptionError } from "../mod.ts";
import {
  frameOffsets,
  lastSegmentPath,
  withTempDir,
} from "./storage_helpers.ts";

const enc = new TextEncoder();

Deno.test("crc32c matches the Castagnoli check value and chains", () => {
  assert.equal(crc32c(enc.encode("123456789")), 0xe3069283);
  const bytes = crypto.getRandomValues(new Uint8Array(1000));
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(
      crc32c(bytes, crc32c(bytes, 0, 0, cut), cut),
      crc32c(bytes),
    );
  }
});

Deno.test("the WAL codec round-trips every record kind in 8-byte aligned frames", () => {
  const records: WalRecord[] = [
    { kind: "segment", seq: 3, startRevision: 41, prevCrc: 0xdeadbeef },
    {
      kind: "metadata",
      clusterId: 0xfedcba9876543210n,
      memberId: 7n,
      term: 9,
    },
    {
      kind: "write",
      revision: 2 ** 40 + 5,
      changes: [
        {
          key: enc.encode("a"),
          entry: {
            main: 2 ** 40 + 5,
            sub: 0,
            createRevision: 2 ** 40 + 5,
            version: 1,
            value: enc.encode("1"),
            lease: -5n,
          },
        },
        {
          key: enc.encode("bb"),
          entry: {
            main: 2 ** 40 + 5,
            sub: 1,
            createRevision: 0,
            version: 0,
            value: null,
            lease: 0n,
          },
        },
      ],
    },
    { kind: "compact", revision: 17 },
    { kind: "snapshot", revision: 40 },
    { kind: "opaque", type: 0x90, payload: enc.encode("future") },
  ];
  const { bytes, crc } = new TsWalEncoder().encode(records, 0x1234);
  assert.equal(bytes.length % 8, 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let offset = 0;
  let prev = 0x1234;
  const decoded: WalRecord[] = [];
  for (;;) {
    const frame = readFrame(bytes, view, offset, bytes.length, prev);
    if (frame.status === "end") break;
    assert.equal(frame.status, "ok");
    if (frame.status !== "ok") break;
    assert.equal(offset % 8, 0);
    decoded.push(
      decodeRecord(
        bytes,
        view,
        frame.type,
        frame.payloadStart,
        frame.payloadLength,
      ),
    );
    prev = frame.crc;
    offset = frame.next;
  }
  assert.equal(prev, crc);
  assert.deepEqual(decoded, records);
});

Deno.test("a frame does not validate when chained from another crc", () => {
  const { bytes } = new TsWalEncoder().encode(
    [{ kind: "compact", revision: 5 }],
    1,
  );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  assert.equal(readFrame(bytes, view, 0, bytes.length, 2).status, "bad");
  assert.equal(readFrame(bytes, view, 0, bytes.length, 1).status, "ok");
});

/**
 * A store of `puts` puts, closed as by a crash: without the clean-close
 * marker (with it, a log that ends early is a contradiction, refused).
 */
async function writeStore(dir: string, puts: number): Promise<void> {
  const db = await open(dir, { durability: "none", segmentBytes: 1 << 16 });
  for (let i = 0; i < puts; i++) await db.put(`key${i % 7}`, `value-${i}`);
  await db.close();
  await Deno.remove(`${dir}/wal/CLEAN`);
}

Deno.test("a WAL cut at every byte of its last frames recovers the whole frames before the cut", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 30); // revisions 2..31, all in the first segment
    const path = await lastSegmentPath(dir);
    const original = await Deno.readFile(path);
    const { starts, end } = frameOffsets(original);
    const lastFrames = starts.slice(-3);
    const from = lastFrames[0]!;
    for (let cut = from; cut <= end; cut++) {
      // Frames wholly before the cut survive; each is one write.
      // Frames 0 and 1 are the segment header and the metadata record.
      const whole = starts.filter((_, i) =>
        i >= 2 && (starts[i + 1] ?? end) <= cut
      ).length;
      for (const mode of ["zero", "truncate"] as const) {
        const bytes = original.slice();
        if (mode === "zero") {
          bytes.fill(0, cut);
        }
        await Deno.writeFile(
          path,
          mode === "zero" ? bytes : bytes.subarray(0, cut),
        );
        const db = await open(dir, {
          durability: "none",
          segmentBytes: 1 << 16,
        });
        try {
          assert.equal(db.revision, 1 + whole, `cut ${cut} (${mode})`);
          const boundary = starts.includes(cut) || cut === end;
          assert.equal(
            db.recovery?.tornTail !== undefined,
            !boundary,
            `cut ${cut} (${mode}) torn report`,
          );
          db.check();
        } finally {
          await db.close();
          await Deno.remove(`${dir}/wal/CLEAN`);
        }
      }
    }
    await Deno.writeFile(path, original);
  });
});

Deno.test("a bit flip in the middle of a segment refuses to open, naming file and offset, and repair truncates there", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 40);
    const path = await lastSegmentPath(dir);
    const bytes = await Deno.readFile(path);
    const { starts } = frameOffsets(bytes);
    const victim = starts[10]!;
    bytes[victim + 20] = bytes[victim + 20]! ^ 0x04;
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      () => open(dir, { durability: "none" }),
      (error: unknown) => {
        assert.ok(error instanceof WalCorruptionError);
        assert.equal(error.file, path);
        assert.equal(error.offset, victim);
        assert.match(error.message, /repair/);
        return true;
      },
    );
    const report = await repair(dir);
    assert.deepEqual(report.truncated, { file: path, offset: victim });
    const db = await open(dir, { durability: "none" });
    try {
      // Frames 0 and 1 are header and metadata; frame i is revision i.
      assert.equal(db.revision, 1 + (10 - 2));
      db.check();
      await db.put("after", "repair");
    } finally {
      await db.close();
    }
  });
});

Deno.test("a bit flip in the last frame of the last segment is a torn tail", async () => {
  await withTempDir(async (dir) => {
    await writeStore(dir, 10);
    const path = await lastSegmentPath(dir);
    const bytes = await Deno.readFile(path);
    const { starts } = frameOffsets(bytes);
    const at = starts[starts.length - 1]! + 14;
    bytes[at] = bytes[at]! ^ 0x80;
    await Deno.writeFile(path, bytes);
    const db = await open(dir, { durability: "none" });
    try {
      assert.equal(db.revision, 10);
      assert.equal(db.recovery?.tornTail?.offset, starts[starts.length - 1]);
    } finally {
      await db.close();
    }
  });
});

Deno.test("segments roll at the configured size and recovery reads them all", async () => {
  await withTempDir(async (dir) => {
    const db = await open(dir, { durability: "none", segmentBytes: 4096 });
    for (let i = 0; i < 300; i++) await db.put(`k${i}`, "x".repeat(50));
    const hash = db.hash().hash;
    await db.close();
    const names = [...Deno.readDirSync(`${dir}/wal`)].map((e) => e.name);
    assert.ok(names.length > 5, `${names.length} segments`);
    const again = await open(dir, { durability: "none", segmentBytes: 4096 });
    try {
      assert.equal(again.revision, 301);
      assert.equal(again.hash().hash, hash);
    } finally {
      await again.close();
    }
  });
});
