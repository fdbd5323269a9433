/**
 * `--log-level`: what `serve` logs passes etcd's level filter (each level
 * shows itself and the more severe), server faults are errors, every call
 * is a debug line, and the queue is bounded (dropped lines are counted);
 * then a real `serve --log-level=debug` logs the calls etcdctl makes and
 * the default level does not.
 */

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { LOG_QUEUE_LINES_MAX, ServerLog } from "../src/server/log.ts";
import { GrpcStatus } from "../src/wire/grpc_service.ts";
import { etcdIgnore, runCtl } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

function collecting(level: ConstructorParameters<typeof ServerLog>[0]) {
  const written: string[] = [];
  const log = new ServerLog(level, (text) => {
    written.push(text);
    return Promise.resolve();
  });
  return { log, text: () => written.join("") };
}

Deno.test("ServerLog: levels filter as etcd's, faults are errors, calls are debug", async () => {
  const info = collecting("info");
  info.log.call("/etcdserverpb.KV/Put", GrpcStatus.OK, undefined);
  info.log.call(
    "/etcdserverpb.KV/Put",
    GrpcStatus.INTERNAL,
    new Error("disk on fire"),
  );
  info.log.call(
    "/etcdserverpb.KV/Range",
    GrpcStatus.INVALID_ARGUMENT,
    new Error("etcdserver: key is not provided"),
  );
  info.log.log("warn", "a warning");
  info.log.log("debug", "hidden");
  await info.log.flush();
  assertEquals(
    info.text(),
    [
      "revkv: error: /etcdserverpb.KV/Put failed (code 13): disk on fire",
      "revkv: warn: a warning",
      "",
    ].join("\n"),
  );

  const debug = collecting("debug");
  debug.log.call("/etcdserverpb.KV/Put", GrpcStatus.OK, undefined);
  await debug.log.flush();
  assertEquals(debug.text(), "revkv: debug: /etcdserverpb.KV/Put code 0\n");

  const quiet = collecting("panic");
  quiet.log.call("/x/Y", GrpcStatus.INTERNAL, new Error("bug"));
  quiet.log.log("error", "no");
  quiet.log.log("fatal", "yes");
  await quiet.log.flush();
  assertEquals(quiet.text(), "revkv: fatal: yes\n");
});

Deno.test("ServerLog: a slow writer bounds the queue and counts what it dropped", async () => {
  const written: string[] = [];
  let release = () => {};
  const log = new ServerLog("info", (text) => {
    written.push(text);
    return new Promise<void>((resolve) => (release = resolve));
  });
  const extra = 500;
  for (let i = 0; i < LOG_QUEUE_LINES_MAX + extra; i++) {
    log.log("info", `line ${i}`);
  }
  await null; // the drain starts
  await null;
  release();
  const flushed = log.flush();
  release();
  await flushed;
  const lines = written.join("").split("\n").filter((l) => l !== "");
  assertEquals(lines.length, LOG_QUEUE_LINES_MAX + 1);
  assertEquals(lines.at(-1), `revkv: warn: ${extra} log lines dropped`);
  assertEquals(lines[0], "revkv: info: line 0");
});

Deno.test({
  name: "serve --log-level=debug logs each call; the default level does not",
  ignore: etcdIgnore("the serve log test (etcdctl)"),
  sanitizeResources: false,
  async fn() {
    for (
      const [level, expected] of [["debug", true], ["info", false]] as const
    ) {
      const dir = await Deno.makeTempDir({ prefix: "revkv-log-" });
      try {
        const serve = await startServe(dir, [`--log-level=${level}`]);
        try {
          const put = await runCtl(serve.endpoint, ["put", "k", "v"]);
          assert.equal(put.code, 0);
        } finally {
          assert.equal(await serve.stop(), 0);
        }
        assert.equal(
          serve.stderr().includes(
            "revkv: debug: /etcdserverpb.KV/Put code 0\n",
          ),
          expected,
          `${level}: ${serve.stderr()}`,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  },
});
