/**
 * The standard gRPC health service (`grpc.health.v1.Health`) against a
 * real etcd 3.4, which registers it: Check of "" and of an unknown
 * service, and the first message of Watch, compared byte for byte and
 * code for code.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { connectGrpc } from "../src/wire/grpc_client.ts";
import { GrpcError } from "../src/wire/grpc_service.ts";
import { ServingStatus } from "../src/server/health.ts";
import { etcdIgnore, startEtcd } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

/** Longest one call may take. */
const CALL_MS_MAX = 5_000;

const request = (service: string) => {
  const name = new TextEncoder().encode(service);
  return service === "" ? new Uint8Array(0) : new Uint8Array([
    10,
    name.length,
    ...name,
  ]);
};

async function probe(endpoint: string): Promise<unknown> {
  const url = new URL(endpoint);
  const client = await connectGrpc({
    hostname: url.hostname,
    port: Number(url.port),
  });
  const answer = async (run: () => Promise<Uint8Array>) => {
    try {
      return [...await run()];
    } catch (error) {
      if (error instanceof GrpcError) return [error.code, error.message];
      throw error;
    }
  };
  try {
    const check = await answer(() =>
      client.unary("/grpc.health.v1.Health/Check", request(""), {
        timeoutMs: CALL_MS_MAX,
      })
    );
    const unknown = await answer(() =>
      client.unary("/grpc.health.v1.Health/Check", request("nope"), {
        timeoutMs: CALL_MS_MAX,
      })
    );
    const watches = [];
    for (const service of ["", "nope"]) {
      const watch = client.bidi("/grpc.health.v1.Health/Watch", {
        timeoutMs: CALL_MS_MAX,
      });
      await watch.send(request(service));
      watch.end();
      let first: number[] | undefined;
      for await (const message of watch) {
        first = [...message];
        break;
      }
      watch.cancel();
      await watch.done.catch(() => {});
      watches.push(first);
    }
    return { check, unknown, watches };
  } finally {
    await client.close();
  }
}

Deno.test({
  name: "gRPC health service: Check and Watch answer as etcd's",
  ignore: etcdIgnore(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv-health-" });
    const etcd = await startEtcd();
    try {
      const serve = await startServe(dir);
      try {
        const expected = await probe(etcd.endpoint);
        assertEquals(expected, {
          check: [8, ServingStatus.SERVING],
          unknown: [5, "unknown service"],
          watches: [[8, ServingStatus.SERVING], [
            8,
            ServingStatus.SERVICE_UNKNOWN,
          ]],
        });
        assertEquals(await probe(serve.endpoint), expected);
      } finally {
        await serve.stop();
      }
    } finally {
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
