/**
 * etcdctl's four output formats, byte for byte:
 *
 * - `simple`: key and value lines as raw bytes (`--hex`: `\x66\x6f\x6f`),
 *   `OK` for a put, the count for a delete, `SUCCESS`/`FAILURE` for a txn.
 * - `json`: Go's `encoding/json` of the gRPC response: zero values left out,
 *   `[]byte` as base64, 64-bit numbers in full (IDs are bigints here), and for
 *   the lease commands the header fields at the top level (etcdctl prints the
 *   client structs that embed the header).
 * - `fields`: `"Name" : value` lines, strings quoted as Go's `%q`.
 * - `table`: only for endpoint and snapshot status; everything else fails
 *   with `table not supported as output format` (exit 4) after the request
 *   ran, as etcdctl does.
 *
 * @module
 */

import type {
  DeleteResponse,
  KeyValue,
  PutResponse,
  RangeResponse,
  ResponseHeader,
} from "../../mod.ts";
import type { ResponseOp, TxnResponse } from "../txn/txn.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
} from "../lease/lease_service.ts";
import {
  base64,
  goQuote,
  hexEscaped,
  hexId,
  jsonString,
  utf8,
} from "./go_format.ts";
import { CliExit, EXIT_BAD_FEATURE } from "./errors.ts";

/** A watch event as the printers need it. */
export interface PrintableEvent {
  /** `PUT` or `DELETE`. */
  type: "PUT" | "DELETE";
  /** The key-value after the event (for a delete: key and mod revision). */
  kv: KeyValue;
  /** The key-value before the event, when asked for. */
  prevKv?: KeyValue;
}

/** A watch response as the printers need it. */
export interface PrintableWatchResponse {
  /** Response header. */
  header: ResponseHeader;
  /** The events. */
  events: PrintableEvent[];
  /** Set when the watch was cancelled because its revision was compacted. */
  compactRevision?: number;
  /** Whether the watch was cancelled. */
  canceled?: boolean;
  /** Whether this response confirms creation. */
  created?: boolean;
}

/** Where printers write: lines of text or raw bytes. */
export class Output {
  readonly #chunks: Uint8Array[] = [];

  /** Appends text (UTF-8) or bytes, without a newline. */
  write(data: string | Uint8Array): void {
    this.#chunks.push(typeof data === "string" ? utf8(data) : data);
  }

  /** Appends text or bytes and a newline. */
  line(data: string | Uint8Array = ""): void {
    this.write(data);
    this.write("\n");
  }

  /** Takes everything written so far. */
  take(): Uint8Array[] {
    return this.#chunks.splice(0);
  }
}

/** The output formats etcdctl knows (`protobuf` is accepted and refused). */
export type OutputFormat = "simple" | "json" | "fields" | "table" | "protobuf";

/** Options of the simple printer. */
export interface PrinterOptions {
  /** `--hex`: print keys and values as `\x..` escapes. */
  hex: boolean;
  /** `--print-value-only`. */
  valueOnly?: boolean;
}

/** Prints responses in one format. Methods throw `CliExit` when unsupported. */
export class Printer {
  constructor(
    readonly format: OutputFormat,
    readonly out: Output,
    readonly options: PrinterOptions,
  ) {}

  #unsupported(): never {
    throw new CliExit(
      EXIT_BAD_FEATURE,
      `${this.format} not supported as output format`,
    );
  }

  /** `get`. */
  get(r: RangeResponse): void {
    if (this.format === "simple") return this.#kvs(r.kvs);
    if (this.format === "json") return this.out.line(jsonRange(r));
    if (this.format === "fields") return this.#fieldsRange(r);
    this.#unsupported();
  }

  /** `put`. */
  put(r: PutResponse): void {
    if (this.format === "simple") {
      this.out.line("OK");
      if (r.prevKv) this.#kvs([r.prevKv]);
      return;
    }
    if (this.format === "json") return this.out.line(jsonPut(r));
    if (this.format === "fields") return this.#fieldsPut(r);
    this.#unsupported();
  }

  /** `del`. */
  del(r: DeleteResponse): void {
    if (this.format === "simple") {
      this.out.line(String(r.deleted));
      return this.#kvs(r.prevKvs);
    }
    if (this.format === "json") return this.out.line(jsonDelete(r));
    if (this.format === "fields") return this.#fieldsDelete(r);
    this.#unsupported();
  }

  /** `txn`. */
  txn(r: TxnResponse): void {
    if (this.format === "simple") {
      this.out.line(r.succeeded ? "SUCCESS" : "FAILURE");
      for (const op of r.responses) {
        this.out.line();
        if ("range" in op) this.#kvs(op.range.kvs);
        else if ("put" in op) this.put(op.put);
        else if ("deleteRange" in op) this.del(op.deleteRange);
        else this.out.line(`unexpected response ${goStructText(op)}`);
      }
      return;
    }
    if (this.format === "json") return this.out.line(jsonTxn(r));
    if (this.format === "fields") {
      this.#fieldsHeader(r.header);
      this.out.line(`"Succeeded" : ${r.succeeded}`);
      for (const op of r.responses) {
        if ("range" in op) this.#fieldsRange(op.range);
        else if ("put" in op) this.#fieldsPut(op.put);
        else if ("deleteRange" in op) this.#fieldsDelete(op.deleteRange);
        else this.out.line(`"Unknown" : ${goQuote(goStructText(op))}`);
      }
      return;
    }
    this.#unsupported();
  }

  /** One watch response. */
  watch(r: PrintableWatchResponse): void {
    if (this.format === "simple") {
      for (const e of r.events) {
        this.out.line(e.type);
        if (e.prevKv) this.#kvs([e.prevKv]);
        this.#kvs([e.kv]);
      }
      return;
    }
    if (this.format === "json") return this.out.line(jsonWatch(r));
    if (this.format === "fields") {
      this.#fieldsHeader(r.header);
      for (const e of r.events) {
        this.out.line(`"Type" : ${e.type}`);
        if (e.prevKv) this.#fieldsKv("Prev", e.prevKv);
        this.#fieldsKv("", e.kv);
      }
      return;
    }
    this.#unsupported();
  }

  /** `lease grant`. */
  grant(r: LeaseGrantResponse): void {
    if (this.format === "simple") {
      return this.out.line(
        `lease ${hexId(r.id)} granted with TTL(${r.ttl}s)`,
      );
    }
    if (this.format === "json") {
      return this.out.line(
        jsonObject([
          ...headerFields(r.header),
          ["ID", String(r.id)],
          ["TTL", String(r.ttl)],
          ["Error", '""'],
        ]),
      );
    }
    if (this.format === "fields") {
      this.#fieldsHeader(r.header);
      this.out.line(`"ID" : ${r.id}`);
      return this.out.line(`"TTL" : ${r.ttl}`);
    }
    this.#unsupported();
  }

  /** `lease revoke`. */
  revoke(id: bigint, r: LeaseRevokeResponse): void {
    if (this.format === "simple") {
      return this.out.line(`lease ${hexId(id)} revoked`);
    }
    if (this.format === "json") {
      return this.out.line(jsonObject([["header", jsonHeader(r.header)]]));
    }
    if (this.format === "fields") return this.#fieldsHeader(r.header);
    this.#unsupported();
  }

  /** `lease keep-alive`. */
  keepAlive(r: LeaseKeepAliveResponse): void {
    if (this.format === "simple") {
      return this.out.line(
        `lease ${hexId(r.id)} keepalived with TTL(${r.ttl})`,
      );
    }
    if (this.format === "json") {
      return this.out.line(
        jsonObject([
          ...headerFields(r.header),
          ["ID", String(r.id)],
          ["TTL", String(r.ttl)],
        ]),
      );
    }
    if (this.format === "fields") {
      this.#fieldsHeader(r.header);
      this.out.line(`"ID" : ${r.id}`);
      return this.out.line(`"TTL" : ${r.ttl}`);
    }
    this.#unsupported();
  }

  /** `lease timetolive`. */
  timeToLive(r: LeaseTimeToLiveResponse, keys: boolean): void {
    if (this.format === "simple") {
      if (r.grantedTtl === 0 && r.ttl === -1) {
        return this.out.line(`lease ${hexId(r.id)} already expired`);
      }
      const text = utf8(
        `lease ${
          hexId(r.id)
        } granted with TTL(${r.grantedTtl}s), remaining(${r.ttl}s)`,
      );
      if (!keys) return this.out.line(text);
      this.out.write(text);
      this.out.write(", attached keys([");
      r.keys.forEach((key, i) => {
        if (i > 0) this.out.write(" ");
        this.out.write(key);
      });
      return this.out.line("])");
    }
    if (this.format === "json") {
      const keyList = r.keys.length === 0
        ? "null"
        : `[${r.keys.map((k) => `"${base64(k)}"`).join(",")}]`;
      return this.out.line(
        jsonObject([
          ...headerFields(r.header),
          ["id", String(r.id)],
          ["ttl", String(r.ttl)],
          ["granted-ttl", String(r.grantedTtl)],
          ["keys", keyList],
        ]),
      );
    }
    if (this.format === "fields") {
      this.#fieldsHeader(r.header);
      this.out.line(`"ID" : ${r.id}`);
      this.out.line(`"TTL" : ${r.ttl}`);
      this.out.line(`"GrantedTTL" : ${r.grantedTtl}`);
      for (const key of r.keys) this.out.line(`"Key" : ${goQuote(key)}`);
      return;
    }
    this.#unsupported();
  }

  /** `lease list`. */
  leases(r: LeaseLeasesResponse): void {
    if (this.format === "simple") {
      this.out.line(`found ${r.leases.length} leases`);
      for (const lease of r.leases) this.out.line(hexId(lease.id));
      return;
    }
    if (this.format === "json") {
      const list = `[${r.leases.map((l) => `{"id":${l.id}}`).join(",")}]`;
      return this.out.line(
        jsonObject([...headerFields(r.header), ["leases", list]]),
      );
    }
    if (this.format === "fields") {
      this.#fieldsHeader(r.header);
      for (const lease of r.leases) this.out.line(`"ID" : ${lease.id}`);
      return;
    }
    this.#unsupported();
  }

  #kvs(kvs: readonly KeyValue[]): void {
    for (const kv of kvs) {
      if (this.options.hex) {
        if (!this.options.valueOnly) this.out.line(hexEscaped(kv.key));
        this.out.line(hexEscaped(kv.value));
      } else {
        if (!this.options.valueOnly) this.out.line(kv.key);
        this.out.line(kv.value);
      }
    }
  }

  #fieldsHeader(h: ResponseHeader): void {
    this.out.line(`"ClusterID" : ${BigInt.asUintN(64, h.clusterId)}`);
    this.out.line(`"MemberID" : ${BigInt.asUintN(64, h.memberId)}`);
    this.out.line(`"Revision" : ${h.revision}`);
    this.out.line(`"RaftTerm" : ${h.raftTerm}`);
  }

  #fieldsKv(prefix: string, kv: KeyValue): void {
    this.out.line(`"${prefix}Key" : ${goQuote(kv.key)}`);
    this.out.line(`"${prefix}CreateRevision" : ${kv.createRevision}`);
    this.out.line(`"${prefix}ModRevision" : ${kv.modRevision}`);
    this.out.line(`"${prefix}Version" : ${kv.version}`);
    this.out.line(`"${prefix}Value" : ${goQuote(kv.value)}`);
    this.out.line(`"${prefix}Lease" : ${kv.lease}`);
  }

  #fieldsRange(r: RangeResponse): void {
    this.#fieldsHeader(r.header);
    for (const kv of r.kvs) this.#fieldsKv("", kv);
    this.out.line(`"More" : ${r.more}`);
    this.out.line(`"Count" : ${r.count}`);
  }

  #fieldsPut(r: PutResponse): void {
    this.#fieldsHeader(r.header);
    if (r.prevKv) this.#fieldsKv("Prev", r.prevKv);
  }

  #fieldsDelete(r: DeleteResponse): void {
    this.#fieldsHeader(r.header);
    this.out.line(`"Deleted" : ${r.deleted}`);
    for (const kv of r.prevKvs) this.#fieldsKv("Prev", kv);
  }
}

// --- JSON as Go's encoding/json writes etcd's messages ------------------

type Field = [name: string, json: string | undefined];

function jsonObject(fields: readonly Field[]): string {
  const parts = fields
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${jsonString(name)}:${value}`);
  return `{${parts.join(",")}}`;
}

function omitZero(n: number | bigint): string | undefined {
  return n === 0 || n === 0n ? undefined : String(n);
}

function headerFields(h: ResponseHeader): Field[] {
  return [
    ["cluster_id", omitZero(BigInt.asUintN(64, h.clusterId))],
    ["member_id", omitZero(BigInt.asUintN(64, h.memberId))],
    ["revision", omitZero(h.revision)],
    ["raft_term", omitZero(h.raftTerm)],
  ];
}

/** A `ResponseHeader` (its zero fields left out). */
export function jsonHeader(h: ResponseHeader): string {
  return jsonObject(headerFields(h));
}

/** A `mvccpb.KeyValue`. */
export function jsonKv(kv: KeyValue): string {
  return jsonObject([
    ["key", kv.key.length > 0 ? `"${base64(kv.key)}"` : undefined],
    ["create_revision", omitZero(kv.createRevision)],
    ["mod_revision", omitZero(kv.modRevision)],
    ["version", omitZero(kv.version)],
    ["value", kv.value.length > 0 ? `"${base64(kv.value)}"` : undefined],
    ["lease", omitZero(kv.lease)],
  ]);
}

function jsonKvList(kvs: readonly KeyValue[]): string | undefined {
  return kvs.length === 0 ? undefined : `[${kvs.map(jsonKv).join(",")}]`;
}

function jsonRange(r: RangeResponse): string {
  return jsonObject([
    ["header", jsonHeader(r.header)],
    ["kvs", jsonKvList(r.kvs)],
    ["more", r.more ? "true" : undefined],
    ["count", omitZero(r.count)],
  ]);
}

function jsonPut(r: PutResponse): string {
  return jsonObject([
    ["header", jsonHeader(r.header)],
    ["prev_kv", r.prevKv ? jsonKv(r.prevKv) : undefined],
  ]);
}

function jsonDelete(r: DeleteResponse): string {
  return jsonObject([
    ["header", jsonHeader(r.header)],
    ["deleted", omitZero(r.deleted)],
    ["prev_kvs", jsonKvList(r.prevKvs)],
  ]);
}

function jsonResponseOp(op: ResponseOp): string {
  let inner: Field;
  if ("range" in op) inner = ["ResponseRange", jsonRange(op.range)];
  else if ("put" in op) inner = ["ResponsePut", jsonPut(op.put)];
  else if ("deleteRange" in op) {
    inner = ["ResponseDeleteRange", jsonDelete(op.deleteRange)];
  } else inner = ["ResponseTxn", jsonTxn(op.txn)];
  return jsonObject([["Response", jsonObject([inner])]]);
}

function jsonTxn(r: TxnResponse): string {
  return jsonObject([
    ["header", jsonHeader(r.header)],
    ["succeeded", r.succeeded ? "true" : undefined],
    [
      "responses",
      r.responses.length === 0
        ? undefined
        : `[${r.responses.map(jsonResponseOp).join(",")}]`,
    ],
  ]);
}

function jsonWatch(r: PrintableWatchResponse): string {
  // clientv3 always makes the slice: `[]`, never `null`.
  const events = `[${
    r.events.map((e) =>
      jsonObject([
        ["type", e.type === "DELETE" ? "1" : undefined],
        ["kv", jsonKv(e.kv)],
        ["prev_kv", e.prevKv ? jsonKv(e.prevKv) : undefined],
      ])
    ).join(",")
  }]`;
  return jsonObject([
    ["Header", jsonHeader(r.header)],
    ["Events", events],
    ["CompactRevision", String(r.compactRevision ?? 0)],
    ["Canceled", String(r.canceled ?? false)],
    ["Created", String(r.created ?? false)],
  ]);
}

function goStructText(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => typeof v === "bigint" ? String(v) : v,
  );
}
