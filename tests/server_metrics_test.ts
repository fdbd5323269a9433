/**
 * `/metrics` (Prometheus text format 0.0.4) and `/health`: the number
 * format and the writer against the format's rules; then the same etcdctl
 * work against `cli.ts serve` and a real etcd 3.4, both pages parsed by a
 * text-format parser here, and for every family revkv emits that etcd has
 * too: the same TYPE, HELP and label names, and the same movement of the
 * counters the work moves (`etcd_mvcc_*_total`, `grpc_server_*_total`).
 * Last, `--listen-metrics-urls`: a second port with `/metrics` and
 * `/health` only.
 */

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { goFloat, writeExposition } from "../src/server/metrics.ts";
import { etcdIgnore, runCtl, startEtcd } from "./etcd_oracle.ts";
import { startServe } from "./server_helpers.ts";

/** Longest a scrape may take. */
const SCRAPE_MS_MAX = 10_000;

/** One parsed family of a text-format page. */
interface ParsedFamily {
  help: string;
  type: string;
  /** Samples by their label text (`{a="b"}` or ""), with label names. */
  samples: Map<string, { labels: Map<string, string>; value: number }>;
}

/**
 * Parses the Prometheus text format (0.0.4), strictly: HELP and TYPE
 * before a family's samples, names and label syntax as the format defines
 * them, no duplicate series, values Go can write.
 */
function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  assert.ok(text.endsWith("\n"), "the page ends with a newline");
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const value = "[-+]?(?:[0-9.]+(?:e[-+][0-9]+)?|Inf|NaN)";
  const labelRe = new RegExp(
    `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`,
    "y",
  );
  let current: string | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    const help = new RegExp(`^# HELP (${name}) (.*)$`).exec(line);
    if (help) {
      assert.ok(!families.has(help[1]!), `one HELP for ${help[1]}`);
      families.set(help[1]!, { help: help[2]!, type: "", samples: new Map() });
      current = help[1];
      continue;
    }
    const type = new RegExp(
      `^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`,
    )
      .exec(line);
    if (type) {
      assert.equal(type[1], current, `TYPE after HELP: ${line}`);
      families.get(type[1]!)!.type = type[2]!;
      continue;
    }
    assert.ok(!line.startsWith("#"), `unknown comment: ${line}`);
    const sample = new RegExp(`^(${name})(\\{[^}]*\\})? (${value})$`).exec(
      line,
    );
    assert.ok(sample, `a sample line: ${line}`);
    const base = sample[1]!.replace(/_(bucket|sum|count)$/, "");
    const family = families.get(sample[1]!) ?? families.get(base);
    assert.ok(family, `sample of a declared family: ${line}`);
    assert.ok(
      sample[1] === current || base === current,
      `samples grouped under their family: ${line}`,
    );
    const labels = new Map<string, string>();
    const body = sample[2]?.slice(1, -1) ?? "";
    let pos = 0;
    while (pos < body.length) {
      labelRe.lastIndex = pos;
      const m = labelRe.exec(body);
      assert.ok(m, `label syntax in ${line}`);
      labels.set(m[1]!, m[2]!);
      pos = labelRe.lastIndex;
      if (body[pos] === ",") pos++;
    }
    const key = sample[2] ?? "";
    assert.ok(!family.samples.has(sample[1]! + key), `duplicate: ${line}`);
    const number = sample[3] === "+Inf"
      ? Infinity
      : sample[3] === "-Inf"
      ? -Infinity
      : Number(sample[3]);
    family.samples.set(sample[1]! + key, { labels, value: number });
  }
  return families;
}

async function scrape(url: string): Promise<Map<string, ParsedFamily>> {
  const response = await fetch(url, {
    signal: AbortSignal.timeout(SCRAPE_MS_MAX),
  });
  assert.equal(response.status, 200);
  assert.equal(
    response.headers.get("content-type"),
    "text/plain; version=0.0.4; charset=utf-8",
  );
  return parseExposition(await response.text());
}

Deno.test("metrics: numbers as Go's FormatFloat 'g', and the writer's escaping and order", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [-3, "-3"],
    [20480, "20480"],
    [999999, "999999"],
    [1e6, "1e+06"],
    [2147483648, "2.147483648e+09"],
    [0.5, "0.5"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [1.5e-7, "1.5e-07"],
    [1e21, "1e+21"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [NaN, "NaN"],
  ];
  for (const [value, text] of cases) assert.equal(goFloat(value), text);
  const page = writeExposition([
    {
      name: "z_total",
      help: "Back\\slash and\nnewline.",
      type: "counter",
      samples: [
        { labels: [["b", "2"], ["a", 'q"\n\\']], value: 1 },
        { labels: [["b", "1"], ["a", "x"]], value: 2 },
      ],
    },
    {
      name: "a_gauge",
      help: "First.",
      type: "gauge",
      samples: [{ labels: [], value: 3 }],
    },
  ]);
  assert.equal(
    page,
    [
      "# HELP a_gauge First.",
      "# TYPE a_gauge gauge",
      "a_gauge 3",
      "# HELP z_total Back\\\\slash and\\nnewline.",
      "# TYPE z_total counter",
      'z_total{a="q\\"\\n\\\\",b="2"} 1',
      'z_total{a="x",b="1"} 2',
      "",
    ].join("\n"),
  );
  const parsed = parseExposition(page);
  assertEquals(
    [...parsed.get("z_total")!.samples.values()].map((s) => s.value),
    [1, 2],
  );
});

/** The etcdctl work both servers get, between two scrapes. */
const WORK: string[][] = [
  ["put", "a", "1"],
  ["put", "a", "2", "--prev-kv"],
  ["put", "b", "1"],
  ["get", "a"],
  ["get", "", "--prefix", "--count-only"],
  ["get", "nope"],
  ["del", "b", "--prev-kv"],
  ["del", "nothing"],
  ["compaction", "99"], // a future revision: OutOfRange
];
/** Txns (etcdctl txn -i): compares, both branches, reads only. */
const TXNS: string[] = [
  'value("a") = "2"\n\nput c 1\ndel a\n\nget x\n\n',
  'value("c") = "1"\nversion("c") = "1"\n\nget c\nget a\n\n\n',
  'mod("zz") > "0"\n\nput q 1\n\nput r 1\nput s 1 --prev-kv\n\n',
];

/** Counters whose movement must match etcd's exactly. */
const COUNTED = [
  "etcd_mvcc_range_total",
  "etcd_mvcc_put_total",
  "etcd_mvcc_delete_total",
  "etcd_mvcc_txn_total",
  "grpc_server_started_total",
  "grpc_server_handled_total",
  "grpc_server_msg_received_total",
  "grpc_server_msg_sent_total",
];

function deltas(
  before: Map<string, ParsedFamily>,
  after: Map<string, ParsedFamily>,
  family: string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, sample] of after.get(family)?.samples ?? []) {
    const moved = sample.value -
      (before.get(family)?.samples.get(key)?.value ?? 0);
    if (moved !== 0) out[key] = moved;
  }
  return out;
}

Deno.test({
  name:
    "metrics against etcd: same names, types, help and labels; counters move alike",
  ignore: etcdIgnore(),
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv-metrics-" });
    const etcd = await startEtcd();
    try {
      const serve = await startServe(dir);
      try {
        const pages: Map<string, ParsedFamily>[][] = [];
        for (const endpoint of [etcd.endpoint, serve.endpoint]) {
          const before = await scrape(`${endpoint}/metrics`);
          for (const args of WORK) await runCtl(endpoint, args);
          for (const txn of TXNS) await runCtl(endpoint, ["txn"], txn);
          const after = await scrape(`${endpoint}/metrics`);
          pages.push([before, after]);
        }
        const [[etcdBefore, etcdAfter], [revkvBefore, revkvAfter]] = pages as [
          [Map<string, ParsedFamily>, Map<string, ParsedFamily>],
          [Map<string, ParsedFamily>, Map<string, ParsedFamily>],
        ];
        const shared = [...revkvAfter.keys()].filter((n) => etcdAfter.has(n));
        const own = [...revkvAfter.keys()].filter((n) => !etcdAfter.has(n));
        // Every family revkv emits is etcd's, but revkv's own.
        assertEquals(own.filter((n) => !n.startsWith("revkv_")), []);
        for (
          const name of [
            "etcd_server_has_leader",
            "etcd_server_is_leader",
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_debugging_mvcc_keys_total",
            ...COUNTED,
          ]
        ) assert.ok(shared.includes(name), `${name} is emitted`);
        for (const name of shared) {
          const a = etcdAfter.get(name)!;
          const b = revkvAfter.get(name)!;
          assert.equal(b.type, a.type, `TYPE of ${name}`);
          assert.equal(b.help, a.help, `HELP of ${name}`);
          const labelNames = (
            f: ParsedFamily,
          ) => [
            ...new Set(
              [...f.samples.values()].map((s) =>
                [...s.labels.keys()].join(",")
              ),
            ),
          ];
          assertEquals(labelNames(b), labelNames(a), `labels of ${name}`);
        }
        for (const name of COUNTED) {
          assertEquals(
            deltas(revkvBefore, revkvAfter, name),
            deltas(etcdBefore, etcdAfter, name),
            `movement of ${name}`,
          );
        }
        // The WAL fsync histogram: etcd's buckets, and it counts the work's
        // fsyncs (puts and write txns are durable on both).
        const FSYNC = "etcd_disk_wal_fsync_duration_seconds";
        assert.ok(shared.includes(FSYNC), `${FSYNC} is emitted`);
        const fsyncCount = (page: Map<string, ParsedFamily>) => {
          for (const [key, sample] of page.get(FSYNC)!.samples) {
            if (key.startsWith(`${FSYNC}_count`)) return sample.value;
          }
          return NaN;
        };
        assert.ok(fsyncCount(revkvAfter) > fsyncCount(revkvBefore));
        assert.ok(fsyncCount(etcdAfter) > fsyncCount(etcdBefore));
        const bounds = (page: Map<string, ParsedFamily>) =>
          [...page.get(FSYNC)!.samples.values()].map((s) => s.labels.get("le"))
            .filter((le) => le !== undefined);
        assertEquals(bounds(revkvAfter), bounds(etcdAfter));
        // Gauges that must agree in value.
        for (
          const name of ["etcd_server_has_leader", "etcd_server_is_leader"]
        ) {
          assertEquals(
            [...revkvAfter.get(name)!.samples.values()][0]!.value,
            1,
          );
        }
        const keys = (page: Map<string, ParsedFamily>) =>
          [...page.get("etcd_debugging_mvcc_keys_total")!.samples.values()][0]!
            .value;
        assert.equal(keys(revkvAfter), keys(etcdAfter));
        // Every method etcd pre-registers, revkv does too.
        const methods = (page: Map<string, ParsedFamily>) =>
          [...page.get("grpc_server_started_total")!.samples.values()].map((
            s,
          ) => `${s.labels.get("grpc_service")}/${s.labels.get("grpc_method")}`)
            .sort();
        assertEquals(methods(revkvAfter), methods(etcdAfter));
      } finally {
        await serve.stop();
      }
    } finally {
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "metrics: --listen-metrics-urls serves /metrics and /health only",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "revkv-metrics-url-" });
    try {
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (probe.addr as Deno.NetAddr).port;
      probe.close();
      const serve = await startServe(dir, [
        `--listen-metrics-urls=http://127.0.0.1:${port}`,
      ]);
      try {
        assert.match(
          serve.stdout(),
          new RegExp(
            `serving /metrics and /health on http://127.0.0.1:${port}`,
          ),
        );
        const metricsUrl = `http://127.0.0.1:${port}`;
        const before = await scrape(`${metricsUrl}/metrics`);
        const put = await fetch(`${serve.endpoint}/v3/kv/put`, {
          method: "POST",
          body: JSON.stringify({ key: btoa("k"), value: btoa("v") }),
        });
        assert.equal(put.status, 200);
        await put.body?.cancel();
        const after = await scrape(`${metricsUrl}/metrics`);
        assertEquals(deltas(before, after, "etcd_mvcc_put_total"), {
          etcd_mvcc_put_total: 1,
        });
        const health = await fetch(`${metricsUrl}/health`);
        assertEquals(
          [health.status, await health.text()],
          [200, '{"health":"true"}'],
        );
        for (const path of ["/v3/kv/range", "/version"]) {
          const other = await fetch(`${metricsUrl}${path}`, {
            method: path === "/version" ? "GET" : "POST",
            body: path === "/version" ? undefined : "{}",
          });
          assertEquals(
            [other.status, await other.text()],
            [404, "404 page not found\n"],
            path,
          );
        }
        // The client URL serves /metrics too, as etcd's.
        assert.ok((await scrape(`${serve.endpoint}/metrics`)).has(
          "etcd_server_has_leader",
        ));
      } finally {
        await serve.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
