/**
 * The gRPC transport with real clients: `@grpc/grpc-js` (the library under
 * `npm:etcd3`) as a generic client with raw-bytes serializers, nghttp2's
 * `h2load` and `nghttp`, and `etcdctl` (grpc-go) against a test method
 * table. Covers 3,000 unary calls then close, bidi streams, deadlines,
 * cancellation, status codes and messages, message size limits and
 * graceful shutdown. Tools that are missing skip with a visible reason.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import grpc from "@grpc/grpc-js";
import { serveGrpc } from "../src/wire/grpc_server.ts";
import { connectGrpc } from "../src/wire/grpc_client.ts";
import {
  GrpcError,
  type GrpcMethod,
  GrpcStatus,
} from "../src/wire/grpc_service.ts";

const UNARY_CALLS = 3000;
/** Bound on any single wait in these tests. */
const WAIT_MS_MAX = 10_000;

interface Observed {
  cancelledWith?: unknown;
  deadlineAbortedWith?: unknown;
  metadata?: ReadonlyMap<string, string>;
}

function testMethods(observed: Observed): Map<string, GrpcMethod> {
  return new Map<string, GrpcMethod>([
    ["/test.Echo/Echo", {
      kind: "unary",
      handle: (request, context) => {
        observed.metadata = context.metadata;
        return request;
      },
    }],
    ["/test.Echo/Fail", {
      kind: "unary",
      handle: () => {
        throw new GrpcError(
          GrpcStatus.INVALID_ARGUMENT,
          "etcdserver: key is not provided — 100% ✓",
        );
      },
    }],
    ["/test.Echo/Crash", {
      kind: "unary",
      handle: () => {
        throw new RangeError("boom");
      },
    }],
    ["/test.Echo/Slow", {
      kind: "unary",
      handle: (_request, context) =>
        new Promise<Uint8Array>((_resolve, reject) => {
          context.signal.addEventListener("abort", () => {
            observed.deadlineAbortedWith = context.signal.reason;
            reject(context.signal.reason);
          });
        }),
    }],
    ["/test.Echo/Bidi", {
      kind: "bidi",
      async handle(requests, responses) {
        for await (const request of requests) await responses.send(request);
      },
    }],
    ["/test.Echo/Hang", {
      kind: "bidi",
      handle: (_requests, _responses, context) =>
        new Promise<void>((resolve) => {
          context.signal.addEventListener("abort", () => {
            observed.cancelledWith = context.signal.reason;
            resolve();
          });
        }),
    }],
    ["/test.Echo/Count", {
      kind: "server-stream",
      async handle(request, responses) {
        for (let i = 0; i < request[0]!; i++) {
          await responses.send(new Uint8Array([i]));
        }
      },
    }],
  ]);
}

const bytes = {
  serialize: (value: Uint8Array) => Buffer.from(value),
  deserialize: (value: Buffer) => new Uint8Array(value),
};

function method(path: string, requestStream: boolean, responseStream: boolean) {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  };
}

const EchoClient = grpc.makeGenericClientConstructor({
  echo: method("/test.Echo/Echo", false, false),
  fail: method("/test.Echo/Fail", false, false),
  crash: method("/test.Echo/Crash", false, false),
  slow: method("/test.Echo/Slow", false, false),
  missing: method("/test.Echo/Missing", false, false),
  otherService: method("/test.Other/Thing", false, false),
  bidi: method("/test.Echo/Bidi", true, true),
  hang: method("/test.Echo/Hang", true, true),
  count: method("/test.Echo/Count", false, true),
}, "Echo");

// deno-lint-ignore no-explicit-any
type AnyClient = any;

function unary(
  client: AnyClient,
  name: string,
  request: Uint8Array,
  options: grpc.CallOptions = {},
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    client[name](
      request,
      new grpc.Metadata(),
      options,
      (error: grpc.ServiceError | null, response: Uint8Array) =>
        error ? reject(error) : resolve(response),
    );
  });
}

async function withServer(
  fn: (port: number, observed: Observed) => Promise<void>,
  limits = {},
): Promise<void> {
  const observed: Observed = {};
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveGrpc({
    listener,
    methods: testMethods(observed),
    limits,
  });
  try {
    await fn(server.addr.port, observed);
  } finally {
    await server.shutdown(1000);
  }
}

function newClient(port: number): AnyClient {
  return new EchoClient(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
}

Deno.test("grpc-js makes 3,000 unary calls on one connection, closes, and the server lives", async () => {
  await withServer(async (port) => {
    for (let round = 0; round < 2; round++) {
      const client = newClient(port);
      const inFlight = 64;
      let next = 0;
      const worker = async () => {
        while (next < UNARY_CALLS) {
          const i = next++;
          const request = new TextEncoder().encode(`request ${i}`);
          const response = await unary(client, "echo", request);
          assert.deepEqual(response, request);
        }
      };
      await Promise.all(Array.from({ length: inFlight }, worker));
      client.close();
    }
    // A new client after both closes is still served.
    const client = newClient(port);
    assert.deepEqual(
      await unary(client, "echo", new Uint8Array([1])),
      new Uint8Array([1]),
    );
    client.close();
  });
});

Deno.test("grpc-js sees status codes and percent-encoded messages as sent", async () => {
  await withServer(async (port) => {
    const client = newClient(port);
    try {
      await assert.rejects(unary(client, "fail", new Uint8Array()), {
        code: GrpcStatus.INVALID_ARGUMENT,
        details: "etcdserver: key is not provided — 100% ✓",
      });
      await assert.rejects(unary(client, "crash", new Uint8Array()), {
        code: GrpcStatus.INTERNAL,
        details: "boom",
      });
      await assert.rejects(unary(client, "missing", new Uint8Array()), {
        code: GrpcStatus.UNIMPLEMENTED,
        details: "unknown method Missing for service test.Echo",
      });
      await assert.rejects(unary(client, "otherService", new Uint8Array()), {
        code: GrpcStatus.UNIMPLEMENTED,
        details: "unknown service test.Other",
      });
      // Empty messages are valid messages.
      assert.deepEqual(
        await unary(client, "echo", new Uint8Array()),
        new Uint8Array(),
      );
    } finally {
      client.close();
    }
  });
});

Deno.test("a request over the receive limit is RESOURCE_EXHAUSTED and the connection is kept", async () => {
  await withServer(async (port) => {
    const client = newClient(port);
    try {
      await assert.rejects(
        unary(client, "echo", new Uint8Array(2048)),
        { code: GrpcStatus.RESOURCE_EXHAUSTED },
      );
      const big = new Uint8Array(1000).fill(5);
      assert.deepEqual(await unary(client, "echo", big), big);
    } finally {
      client.close();
    }
  }, { maxReceiveMessageBytes: 1024 });
});

Deno.test("large messages cross many DATA frames and windows both ways", async () => {
  await withServer(async (port) => {
    const client = newClient(port);
    try {
      const big = new Uint8Array(1_500_000).map((_, i) => i & 0xff);
      assert.deepEqual(await unary(client, "echo", big), big);
    } finally {
      client.close();
    }
  });
});

Deno.test("a deadline that expires aborts the method and the client sees DEADLINE_EXCEEDED", async () => {
  await withServer(async (port, observed) => {
    const client = newClient(port);
    try {
      await assert.rejects(
        unary(client, "slow", new Uint8Array(), {
          deadline: Date.now() + 200,
        }),
        { code: GrpcStatus.DEADLINE_EXCEEDED },
      );
      const until = Date.now() + WAIT_MS_MAX;
      while (!observed.deadlineAbortedWith && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(observed.deadlineAbortedWith instanceof GrpcError);
      assert.ok(
        [GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.CANCELLED].includes(
          (observed.deadlineAbortedWith as GrpcError).code as 4 | 1,
        ),
      );
    } finally {
      client.close();
    }
  });
});

Deno.test("bidi streams echo in order, several at once on one connection", async () => {
  await withServer(async (port) => {
    const client = newClient(port);
    try {
      const run = (tag: number) =>
        new Promise<void>((resolve, reject) => {
          const call = client.bidi();
          const got: number[] = [];
          call.on("data", (message: Uint8Array) => got.push(message[1]!));
          call.on("error", reject);
          call.on("end", () => {
            try {
              assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
              resolve();
            } catch (error) {
              reject(error);
            }
          });
          for (let i = 0; i < 200; i++) call.write(new Uint8Array([tag, i]));
          call.end();
        });
      await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(run));
    } finally {
      client.close();
    }
  });
});

Deno.test("a server stream sends every message then OK", async () => {
  await withServer(async (port) => {
    const client = newClient(port);
    try {
      const got = await new Promise<number[]>((resolve, reject) => {
        const call = client.count(new Uint8Array([50]));
        const seen: number[] = [];
        call.on("data", (m: Uint8Array) => seen.push(m[0]!));
        call.on("error", reject);
        call.on("end", () => resolve(seen));
      });
      assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i));
    } finally {
      client.close();
    }
  });
});

Deno.test("a client that cancels a stream aborts the method's signal with CANCELLED", async () => {
  await withServer(async (port, observed) => {
    const client = newClient(port);
    try {
      const call = client.hang();
      call.on("error", () => {});
      call.write(new Uint8Array([1]));
      await new Promise((r) => setTimeout(r, 100));
      call.cancel();
      const until = Date.now() + WAIT_MS_MAX;
      while (!observed.cancelledWith && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(observed.cancelledWith instanceof GrpcError);
      assert.equal(
        (observed.cancelledWith as GrpcError).code,
        GrpcStatus.CANCELLED,
      );
      // The connection still serves.
      assert.deepEqual(
        await unary(client, "echo", new Uint8Array([2])),
        new Uint8Array([2]),
      );
    } finally {
      client.close();
    }
  });
});

Deno.test("request metadata reaches the method, pseudo-headers left out", async () => {
  await withServer(async (port, observed) => {
    const client = newClient(port);
    try {
      await new Promise<void>((resolve, reject) => {
        const metadata = new grpc.Metadata();
        metadata.set("x-revkv-test", "yes");
        client.echo(
          new Uint8Array([1]),
          metadata,
          (error: unknown) => error ? reject(error) : resolve(),
        );
      });
      assert.equal(observed.metadata?.get("x-revkv-test"), "yes");
      assert.equal(observed.metadata?.has(":path"), false);
      assert.equal(observed.metadata?.get("content-type"), "application/grpc");
    } finally {
      client.close();
    }
  });
});

Deno.test("shutdown sends GOAWAY, lets the call in flight finish, then closes", async () => {
  const observed: Observed = {};
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const methods = testMethods(observed);
  methods.set("/test.Echo/Echo", {
    kind: "unary",
    handle: async (request) => {
      await released;
      return request;
    },
  });
  const server = serveGrpc({ listener, methods });
  const client = newClient(server.addr.port);
  try {
    const call = unary(client, "echo", new Uint8Array([7]));
    await new Promise((r) => setTimeout(r, 100));
    const shutdown = server.shutdown(WAIT_MS_MAX);
    await new Promise((r) => setTimeout(r, 50));
    release();
    assert.deepEqual(await call, new Uint8Array([7]));
    await shutdown;
    assert.equal(server.connectionCount, 0);
  } finally {
    client.close();
  }
});

function toolIgnore(tool: string): boolean {
  try {
    new Deno.Command(tool, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    return false;
  } catch {
    console.warn(
      `skipping: ${tool} is not installed (apt nghttp2-client / etcd-client)`,
    );
    return true;
  }
}

async function run(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  const child = new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 60_000);
  try {
    return await child.output();
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "h2load: 5,000 gRPC calls, 64 in flight on one connection, all succeed",
  ignore: toolIgnore("h2load"),
  async fn() {
    await withServer(async (port) => {
      const body = await Deno.makeTempFile();
      try {
        await Deno.writeFile(body, new Uint8Array([0, 0, 0, 0, 3, 1, 2, 3]));
        const out = await run("h2load", [
          "-n",
          "5000",
          "-c",
          "1",
          "-m",
          "64",
          "-d",
          body,
          "-H",
          "content-type: application/grpc",
          "-H",
          "te: trailers",
          `http://127.0.0.1:${port}/test.Echo/Echo`,
        ]);
        const text = new TextDecoder().decode(out.stdout);
        assert.match(text, /5000 succeeded, 0 failed, 0 errored/, text);
        assert.match(text, /status codes: 5000 2xx/, text);
      } finally {
        await Deno.remove(body);
      }
    });
  },
});

Deno.test({
  name: "nghttp: one exchange shows headers, DATA and the grpc-status trailer",
  ignore: toolIgnore("nghttp"),
  async fn() {
    await withServer(async (port) => {
      const body = await Deno.makeTempFile();
      try {
        await Deno.writeFile(body, new Uint8Array([0, 0, 0, 0, 2, 8, 9]));
        const out = await run("nghttp", [
          "-v",
          "-d",
          body,
          "-H",
          "content-type: application/grpc",
          "-H",
          "te: trailers",
          `http://127.0.0.1:${port}/test.Echo/Echo`,
        ]);
        const text = new TextDecoder().decode(out.stdout);
        assert.match(text, /:status: 200/, text);
        assert.match(text, /content-type: application\/grpc/, text);
        assert.match(text, /grpc-status: 0/, text);
        assert.doesNotMatch(text, /GOAWAY.*error_code=[1-9]/, text);
        // A non-gRPC request gets 404 from the h2 fallback.
        const get = await run("nghttp", ["-v", `http://127.0.0.1:${port}/`]);
        assert.match(new TextDecoder().decode(get.stdout), /:status: 404/);
      } finally {
        await Deno.remove(body);
      }
    });
  },
});

Deno.test({
  name: "etcdctl (grpc-go) reaches a test KV table with put and get",
  ignore: toolIgnore("etcdctl"),
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const seen: string[] = [];
    // Empty PutResponse / RangeResponse: every field at its default.
    const server = serveGrpc({
      listener,
      methods: new Map<string, GrpcMethod>([
        ["/etcdserverpb.KV/Put", {
          kind: "unary",
          handle: (request) => {
            seen.push(`put ${request.length}`);
            return new Uint8Array();
          },
        }],
        ["/etcdserverpb.KV/Range", {
          kind: "unary",
          handle: () => {
            seen.push("range");
            return new Uint8Array();
          },
        }],
      ]),
    });
    try {
      const endpoint = `--endpoints=127.0.0.1:${server.addr.port}`;
      const put = await run("etcdctl", [endpoint, "put", "foo", "bar"]);
      assert.equal(new TextDecoder().decode(put.stdout).trim(), "OK");
      const get = await run("etcdctl", [endpoint, "get", "foo", "-w", "json"]);
      assert.equal(get.code, 0, new TextDecoder().decode(get.stderr));
      assert.deepEqual(seen, ["put 10", "range"]);
    } finally {
      await server.shutdown(1000);
    }
  },
});

Deno.test("revkv's own gRPC client: unary, bidi, errors, deadline and cancel", async () => {
  await withServer(async (port, observed) => {
    const client = await connectGrpc({ hostname: "127.0.0.1", port });
    try {
      const calls = Array.from({ length: 1000 }, (_, i) => {
        const request = new TextEncoder().encode(`own ${i}`);
        return client.unary("/test.Echo/Echo", request).then((response) =>
          assert.deepEqual(response, request)
        );
      });
      await Promise.all(calls);
      await assert.rejects(
        client.unary("/test.Echo/Fail", new Uint8Array()),
        {
          code: GrpcStatus.INVALID_ARGUMENT,
          message: "etcdserver: key is not provided — 100% ✓",
        },
      );
      await assert.rejects(
        client.unary("/test.Echo/Slow", new Uint8Array(), { timeoutMs: 100 }),
        { code: GrpcStatus.DEADLINE_EXCEEDED },
      );
      const call = client.bidi("/test.Echo/Bidi");
      const got: number[] = [];
      const reading = (async () => {
        for await (const message of call) got.push(message[0]!);
      })();
      for (let i = 0; i < 100; i++) await call.send(new Uint8Array([i]));
      call.end();
      await reading;
      await call.done;
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
      const hang = client.bidi("/test.Echo/Hang");
      await hang.send(new Uint8Array([1]));
      await new Promise((r) => setTimeout(r, 50));
      hang.cancel();
      await assert.rejects(hang.done, { code: GrpcStatus.CANCELLED });
      const until = Date.now() + WAIT_MS_MAX;
      while (!observed.cancelledWith && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(
        (observed.cancelledWith as GrpcError).code,
        GrpcStatus.CANCELLED,
      );
    } finally {
      await client.close();
    }
  });
});
