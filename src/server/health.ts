/**
 * The standard gRPC health service (`grpc.health.v1.Health`), which etcd
 * 3.4 registers on its gRPC server (grpc-go's `health.NewServer()` with the
 * overall service "" SERVING): load balancers, Kubernetes gRPC probes and
 * `grpc_health_probe` ask it whether the server serves.
 *
 * - Check: for "" answers SERVING; for any other service name NOT_FOUND
 *   "unknown service", as grpc-go's health server.
 * - Watch: sends the status at once (SERVICE_UNKNOWN for an unknown name,
 *   as grpc-go does, without failing) and keeps the stream open until the
 *   client leaves or the server shuts down (then it ends OK).
 *
 * The two messages are tiny (`HealthCheckRequest { string service = 1 }`,
 * `HealthCheckResponse { ServingStatus status = 1 }`) and coded here.
 *
 * @module
 */

import { GrpcError, GrpcStatus } from "../wire/grpc_service.ts";
import { readerFor } from "../wire/protobuf.ts";
import { type Authorizer, type MethodEntries, serverStream } from "./method.ts";
import type { UnaryMethod } from "../wire/grpc_service.ts";
import { toGrpcError } from "./errors.ts";

/** `HealthCheckResponse.ServingStatus`. */
export const ServingStatus = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;

/** Decodes `HealthCheckRequest`: the service name. */
export function decodeHealthCheckRequest(bytes: Uint8Array): string {
  const r = readerFor(bytes);
  let service = "";
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === 10) service = r.string();
    else r.skip(tag);
  }
  return service;
}

/** Encodes `HealthCheckResponse` with `status`. */
export function encodeHealthCheckResponse(status: number): Uint8Array {
  return status === 0 ? new Uint8Array(0) : new Uint8Array([8, status]);
}

/** The health service's methods; `closing` ends Watch streams on shutdown. */
export function healthMethods(
  authorize: Authorizer,
  closing?: AbortSignal,
): MethodEntries {
  const check: UnaryMethod = {
    kind: "unary",
    async handle(bytes, context) {
      try {
        await authorize(context);
        const service = decodeHealthCheckRequest(bytes);
        if (service !== "") {
          throw new GrpcError(GrpcStatus.NOT_FOUND, "unknown service");
        }
        return encodeHealthCheckResponse(ServingStatus.SERVING);
      } catch (error) {
        throw toGrpcError(error);
      }
    },
  };
  return [
    ["/grpc.health.v1.Health/Check", check],
    [
      "/grpc.health.v1.Health/Watch",
      serverStream(
        authorize,
        decodeHealthCheckRequest,
        async (service, responses, context) => {
          await responses.send(encodeHealthCheckResponse(
            service === ""
              ? ServingStatus.SERVING
              : ServingStatus.SERVICE_UNKNOWN,
          ));
          const signals = [context.signal, ...(closing ? [closing] : [])];
          if (signals.some((s) => s.aborted)) return;
          // Listeners come off when the call ends: `closing` outlives it.
          let done = () => {};
          await new Promise<void>((resolve) => {
            done = resolve;
            for (const signal of signals) {
              signal.addEventListener("abort", done);
            }
          });
          for (const signal of signals) {
            signal.removeEventListener("abort", done);
          }
        },
      ),
    ],
  ];
}
