/**
 * etcd's JSON gateway: the same HTTP/1.1 requests (fetch to 127.0.0.1)
 * against a real etcd 3.4 and against `cli.ts serve`, status and JSON
 * compared after masking what legitimately differs (cluster/member IDs,
 * raft term, the remaining TTL of a lease, Go's wording for malformed
 * JSON). Then bad input against revkv alone: bodies past the bound, wrong
 * types, keep-alive and chunked bodies on a raw socket.
 */

import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { snapshotStatus } from "../mod.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

interface Answer {
  status: number;
  body: unknown;
}

const b64 = (text: string) => btoa(text);

async function post(endpoint: string, path: string, body: string) {
  const response = await fetch(endpoint + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed } as Answer;
}

/** Masks what differs between two servers that agree. */
function mask(value: unknown, malformed: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => mask(v, malformed));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (key === "cluster_id" || key === "member_id" || key === "raft_term") {
      out[key] = "<masked>";
    } else if (key === "TTL" && "grantedTTL" in (value as object)) {
      out[key] = Number(v) > 0 ? "<live>" : v; // seconds left tick apart
    } else if (malformed && (key === "error" || key === "message")) {
      out[key] = "<json error>"; // Go's encoding/json words vs ours
    } else {
      out[key] = mask(v, malformed);
    }
  }
  return out;
}

/**
 * [path, body, loose]: loose steps are JSON errors, where Go's
 * encoding/json words legitimately differ from revkv's reader's.
 */
const STEPS: [string, string, boolean?][] = [
  ["/v3/kv/put", JSON.stringify({ key: b64("foo"), value: b64("bar") })],
  [
    "/v3/kv/put",
    JSON.stringify({ key: b64("foo"), value: b64("baz"), prev_kv: true }),
  ],
  [
    "/v3/kv/put",
    JSON.stringify({ key: b64("fop"), value: b64("1"), bogus: 1 }),
  ],
  ["/v3/kv/range", JSON.stringify({ key: b64("fo"), range_end: b64("fp") })],
  ["/v3beta/kv/range", JSON.stringify({ key: b64("foo"), keys_only: true })],
  ["/v3alpha/kv/range", JSON.stringify({ key: b64("foo"), count_only: true })],
  ["/v3/kv/put", '{"key":', true],
  ["/v3/kv/put", "not json at all", true],
  ["/v3/kv/range", JSON.stringify({ key: b64("fo"), range_end: b64("fp") })],
  ["/v3/kv/put", JSON.stringify({ key: "" })],
  ["/v3/kv/put", JSON.stringify({ value: b64("v") })],
  [
    "/v3/kv/txn",
    JSON.stringify({
      compare: [{ key: b64("foo"), target: "VALUE", value: b64("baz") }],
      success: [{ request_put: { key: b64("t"), value: b64("yes") } }, {
        request_range: { key: b64("foo") },
      }],
      failure: [{ request_delete_range: { key: b64("foo") } }],
    }),
  ],
  [
    "/v3/kv/txn",
    JSON.stringify({
      compare: [{
        key: b64("foo"),
        target: "MOD",
        result: "GREATER",
        mod_revision: "100",
      }],
      failure: [{ request_range: { key: b64("t") } }],
    }),
  ],
  ["/v3/kv/deleterange", JSON.stringify({ key: b64("fop"), prev_kv: true })],
  ["/v3/kv/compaction", JSON.stringify({ revision: "3" })],
  ["/v3/kv/range", JSON.stringify({ key: b64("foo"), revision: "2" })],
  ["/v3/kv/range", JSON.stringify({ key: b64("foo"), revision: "99" })],
  ["/v3/kv/compaction", JSON.stringify({ revision: "2" })],
  ["/v3/lease/grant", JSON.stringify({ ID: "7001", TTL: "100" })],
  ["/v3/lease/grant", JSON.stringify({ ID: "7001", TTL: "100" })],
  [
    "/v3/kv/put",
    JSON.stringify({ key: b64("l"), value: b64("v"), lease: "7001" }),
  ],
  ["/v3/lease/timetolive", JSON.stringify({ ID: "7001", keys: true })],
  ["/v3/kv/lease/timetolive", JSON.stringify({ ID: "9999" })],
  ["/v3/lease/leases", "{}"],
  ["/v3/lease/revoke", JSON.stringify({ ID: "7001" })],
  ["/v3/kv/lease/revoke", JSON.stringify({ ID: "7001" })],
  ["/v3/kv/range", JSON.stringify({ key: b64("l") })],
  ["/v3/kv/put", JSON.stringify({ key: b64("x"), lease: "424242" })],
  ["/v3/kv/put", JSON.stringify({ key: 5 }), true],
  ["/v3/kv/range", JSON.stringify({ key: b64("a"), limit: "many" }), true],
  [
    "/v3/kv/put",
    JSON.stringify({ key: b64("big"), value: b64("x".repeat(1600 * 1024)) }),
  ],
  [
    "/v3/kv/put",
    JSON.stringify({
      key: b64("big"),
      value: b64("x".repeat(10 * 1024 * 1024)),
    }),
  ],
  ["/v3/maintenance/alarm", JSON.stringify({ action: "GET" })],
  // Auth, as an etcd with auth disabled and no users or roles answers it.
  ["/v3/auth/user/list", "{}"],
  ["/v3/auth/role/list", "{}"],
  ["/v3/auth/user/get", JSON.stringify({ name: "nobody" })],
  ["/v3/auth/role/get", JSON.stringify({ role: "nobody" })],
  ["/v3/auth/authenticate", JSON.stringify({ name: "root", password: "x" })],
  ["/v3/auth/disable", "{}"],
  // (AuthEnable differs on purpose: revkv answers UNIMPLEMENTED, auth.ts.)
  ["/v3/kv/range", JSON.stringify({ key: b64("\0"), range_end: b64("\0") })],
];

Deno.test({
  name: "gateway: the same JSON requests answer as etcd 3.4's gateway does",
  ignore: etcdIgnore("the gateway differential test"),
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "revkv-gateway-" });
  const etcd = await startEtcd();
  const serve = await startServe(dataDir, ["--unsafe-no-fsync"]);
  try {
    for (let i = 0; i < STEPS.length; i++) {
      const [path, body, malformed] = STEPS[i]!;
      const loose = malformed === true;
      const theirs = await post(etcd.endpoint, path, body);
      const ours = await post(serve.endpoint, path, body);
      const what = `step ${i}: POST ${path} ${body.slice(0, 120)}`;
      assertEquals(
        { status: ours.status, body: mask(ours.body, loose) },
        { status: theirs.status, body: mask(theirs.body, loose) },
        what,
      );
    }
    for (const path of ["/version", "/health"]) {
      const theirs = await fetch(etcd.endpoint + path);
      const ours = await fetch(serve.endpoint + path);
      equal(ours.status, theirs.status, path);
      equal(await ours.text(), await theirs.text(), path);
    }
    for (
      const [method, path] of [
        ["GET", "/v3/kv/range"],
        ["POST", "/v3/nope"],
        ["POST", "/nope"],
        ["POST", "/v3alpha/kv/range"],
      ]
    ) {
      const theirs = await fetch(etcd.endpoint + path, {
        method,
        body: method === "POST" ? "{}" : undefined,
      });
      const ours = await fetch(serve.endpoint + path, {
        method,
        body: method === "POST" ? "{}" : undefined,
      });
      equal(ours.status, theirs.status, `${method} ${path}`);
      equal(await ours.text(), await theirs.text(), `${method} ${path}`);
    }
  } finally {
    await serve.stop();
    await etcd.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

/**
 * Opens a gateway stream on `endpoint`, runs `during` once the first line
 * came, reads `lines` lines, then goes away (cancels the body).
 */
async function streamLines(
  endpoint: string,
  path: string,
  body: string,
  lines: number,
  during: () => Promise<void>,
): Promise<{ status: number; lines: unknown[] }> {
  const response = await fetch(endpoint + path, { method: "POST", body });
  if (response.status !== 200) {
    return { status: response.status, lines: [await response.json()] };
  }
  const reader = response.body!.pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  const out: unknown[] = [];
  let ran = false;
  while (out.length < lines) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    let newline;
    while ((newline = text.indexOf("\n")) >= 0) {
      out.push(JSON.parse(text.slice(0, newline)));
      text = text.slice(newline + 1);
    }
    if (!ran && out.length > 0) {
      ran = true;
      await during();
    }
  }
  await reader.cancel();
  return { status: response.status, lines: out };
}

Deno.test({
  name: "gateway: watch and keepalive streams answer as etcd 3.4's do",
  ignore: etcdIgnore("the gateway stream differential test"),
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "revkv-gateway-" });
  const etcd = await startEtcd();
  const serve = await startServe(dataDir, ["--unsafe-no-fsync"]);
  try {
    for (const endpoint of [etcd.endpoint, serve.endpoint]) {
      await post(
        endpoint,
        "/v3/kv/put",
        JSON.stringify({ key: b64("w"), value: b64("0") }),
      );
      await post(
        endpoint,
        "/v3/lease/grant",
        JSON.stringify({ ID: "5005", TTL: "60" }),
      );
    }
    const cases: [string, string, number, string[]][] = [
      // A watch from now, two puts while it runs.
      ["/v3/watch", JSON.stringify({ create_request: { key: b64("w") } }), 3, [
        JSON.stringify({ key: b64("w"), value: b64("1") }),
        JSON.stringify({ key: b64("w"), value: b64("2") }),
      ]],
      // History from revision 2 (the first put).
      [
        "/v3/watch",
        JSON.stringify({
          create_request: { key: b64("w"), start_revision: "2" },
        }),
        2,
        [],
      ],
      ["/v3/lease/keepalive", JSON.stringify({ ID: "5005" }), 1, []],
      ["/v3/lease/keepalive", JSON.stringify({ ID: "6006" }), 1, []],
      ["/v3/watch", '{"create_request":', 1, []],
    ];
    for (const [path, body, lines, puts] of cases) {
      const answers = [];
      for (const endpoint of [etcd.endpoint, serve.endpoint]) {
        const answer = await streamLines(
          endpoint,
          path,
          body,
          lines,
          async () => {
            for (const put of puts) await post(endpoint, "/v3/kv/put", put);
          },
        );
        answers.push({
          status: answer.status,
          lines: mask(answer.lines, answer.status !== 200),
        });
      }
      assertEquals(answers[1], answers[0], `${path} ${body}`);
    }
  } finally {
    await serve.stop();
    await etcd.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** Writes `request` on a new socket and reads until the server closes it. */
async function raw(address: string, request: Uint8Array): Promise<string> {
  const [hostname, port] = address.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    let offset = 0;
    while (offset < request.length) {
      offset += await conn.write(request.subarray(offset));
    }
    let text = "";
    const buffer = new Uint8Array(65536);
    const decoder = new TextDecoder();
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
    return text;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

const utf8 = (text: string) => new TextEncoder().encode(text);

Deno.test({
  name: "gateway: bad input is refused and keep-alive, chunked bodies work",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "revkv-gateway-" });
  const serve = await startServe(dataDir, ["--unsafe-no-fsync"]);
  try {
    // Far past the body bound: refused from the Content-Length, unread.
    const huge = await raw(
      serve.address,
      utf8(
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\n" +
          `Content-Length: ${64 * 1024 * 1024}\r\n\r\n{"key":`,
      ),
    );
    equal(huge.split("\r\n")[0], "HTTP/1.1 413 Request Entity Too Large");

    // Two requests on one connection (keep-alive), the second chunked, the
    // third asks to close.
    const body = JSON.stringify({ key: b64("k"), value: b64("v") });
    const half = Math.floor(body.length / 2);
    const chunked = `${half.toString(16)}\r\n${body.slice(0, half)}\r\n` +
      `${(body.length - half).toString(16)}\r\n${
        body.slice(half)
      }\r\n0\r\n\r\n`;
    const range = JSON.stringify({ key: b64("k") });
    const pipelined = await raw(
      serve.address,
      utf8(
        `POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
          `POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}` +
          `POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${range.length}\r\n\r\n${range}`,
      ),
    );
    equal(pipelined.match(/HTTP\/1\.1 200 OK/g)?.length, 3, pipelined);
    const last = pipelined.slice(pipelined.lastIndexOf("\r\n\r\n") + 4);
    const kv = (JSON.parse(last) as { kvs: { version: string }[] }).kvs[0];
    equal(kv?.version, "2"); // both puts landed

    // A header block past the bound.
    const longHeader = await raw(
      serve.address,
      utf8(`GET /version HTTP/1.1\r\nX-Big: ${"a".repeat(32 * 1024)}\r\n\r\n`),
    );
    equal(
      longHeader.split("\r\n")[0],
      "HTTP/1.1 431 Request Header Fields Too Large",
    );

    // Not HTTP at all.
    const garbage = await raw(serve.address, utf8("hello there\r\n\r\n"));
    equal(garbage.split("\r\n")[0], "HTTP/1.1 400 Bad Request");

    // Wrong types and non-integers: 400 with code 3, nothing stored.
    for (
      const bad of [
        { key: b64("w"), value: 12 },
        { key: b64("w"), lease: 1.5 },
        { key: b64("w"), prev_kv: "yes" },
        { key: "%%%not base64" },
        [1, 2, 3],
      ]
    ) {
      const answer = await post(
        serve.endpoint,
        "/v3/kv/put",
        JSON.stringify(bad),
      );
      equal(answer.status, 400, JSON.stringify(bad));
      equal((answer.body as { code: number }).code, 3);
      const { error, message } = answer.body as Record<string, string>;
      equal(error, message);
    }
    const after = await post(
      serve.endpoint,
      "/v3/kv/range",
      JSON.stringify({ key: b64("w") }),
    );
    equal((after.body as { count?: string }).count, undefined);

    // Status and member list go through the same table.
    const status = await post(serve.endpoint, "/v3/maintenance/status", "{}");
    equal(status.status, 200);
    equal((status.body as { version: string }).version, "3.4.23");
    const members = await post(serve.endpoint, "/v3/cluster/member/list", "{}");
    equal((members.body as { members: unknown[] }).members.length, 1);
  } finally {
    await serve.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test({
  name: "gateway: /health is false with a NOSPACE alarm, unless excluded",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "revkv-gateway-" });
  const serve = await startServe(dataDir, [
    "--unsafe-no-fsync",
    "--quota-backend-bytes=65536",
  ]);
  try {
    let code = 0;
    for (let i = 0; i < 64 && code === 0; i++) {
      const answer = await post(
        serve.endpoint,
        "/v3/kv/put",
        JSON.stringify({ key: b64(`k${i}`), value: b64("x".repeat(8192)) }),
      );
      code = (answer.body as { code?: number }).code ?? 0;
    }
    equal(code, 8); // RESOURCE_EXHAUSTED: the alarm is raised
    const sick = await fetch(serve.endpoint + "/health");
    equal(sick.status, 503);
    equal(await sick.text(), '{"health":"false"}\n');
    const excluded = await fetch(serve.endpoint + "/health?exclude=NOSPACE");
    equal(excluded.status, 200);
    equal(await excluded.text(), '{"health":"true"}');
  } finally {
    await serve.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test({
  name:
    "gateway: /v3/maintenance/snapshot streams blob lines as etcd's; revkv's restore",
  ignore: etcdIgnore("the gateway snapshot differential test"),
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "revkv-gateway-snap-" });
  const etcd = await startEtcd();
  const serve = await startServe(dataDir, ["--unsafe-no-fsync"]);
  try {
    const shapes = [];
    let revkvBlob = new Uint8Array(0);
    for (const endpoint of [etcd.endpoint, serve.endpoint]) {
      await post(
        endpoint,
        "/v3/kv/put",
        JSON.stringify({ key: b64("s"), value: b64("1") }),
      );
      const response = await fetch(`${endpoint}/v3/maintenance/snapshot`, {
        method: "POST",
        body: "{}",
      });
      const text = await response.text();
      const lines = text.split("\n").filter((l) => l !== "").map((l) =>
        JSON.parse(l) as { result: { blob?: string } }
      );
      const parts = lines.map((l) =>
        Uint8Array.from(atob(l.result.blob ?? ""), (c) => c.charCodeAt(0))
      );
      const blob = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const part of parts) {
        blob.set(part, at);
        at += part.length;
      }
      if (endpoint === serve.endpoint) revkvBlob = blob;
      shapes.push({
        status: response.status,
        type: response.headers.get("content-type"),
        keys: [...new Set(lines.map((l) => Object.keys(l).join(",")))],
        // etcdctl's rule: the stream is 512·n + 32 bytes (sha256 last).
        aligned: blob.length % 512 === 32,
      });
    }
    assertEquals(shapes[1], shapes[0]);
    assertEquals(shapes[0]!.aligned, true);
    const file = `${dataDir}/gateway.snap`;
    await Deno.writeFile(file, revkvBlob);
    const status = await snapshotStatus(file);
    equal(status.totalKeys, 1);
  } finally {
    await serve.stop();
    await etcd.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
