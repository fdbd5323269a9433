/**
 * The ASCII tables of etcdctl's `-w table` (olekukonko/tablewriter with
 * right-aligned cells): headers upper-cased and centred, every cell padded
 * by one space, borders of `+`, `-` and `|`.
 *
 * ```
 * +----------+----------+
 * |   HASH   | REVISION |
 * +----------+----------+
 * | 86250d74 |       21 |
 * +----------+----------+
 * ```
 *
 * Also Go's `humanize.Bytes` and `time.Duration.String`, which those tables
 * and the endpoint commands print.
 *
 * @module
 */

/** Renders a table as etcdctl's table printer does. */
export function renderTable(header: string[], rows: string[][]): string {
  const titles = header.map((h) => h.toUpperCase().replace(/[_.]/g, " "));
  const widths = titles.map((t, i) =>
    Math.max(t.length, ...rows.map((r) => [...(r[i] ?? "")].length))
  );
  const line = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+\n";
  const center = (s: string, w: number) => {
    const gap = w - [...s].length;
    const left = Math.floor(gap / 2);
    return " ".repeat(left) + s + " ".repeat(gap - left);
  };
  const right = (s: string, w: number) => " ".repeat(w - [...s].length) + s;
  let out = line;
  out += "|" + titles.map((t, i) => ` ${center(t, widths[i]!)} `).join("|") +
    "|\n";
  out += line;
  for (const row of rows) {
    out += "|" +
      widths.map((w, i) => ` ${right(row[i] ?? "", w)} `).join("|") + "|\n";
  }
  return out + line;
}

const SI_SIZES = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];

/** Go's `humanize.Bytes`: SI units, e.g. `20 kB`, `1.5 MB`, `7 B`. */
export function humanizeBytes(bytes: number): string {
  if (bytes < 10) return `${bytes} B`;
  const e = Math.floor(Math.log(bytes) / Math.log(1000));
  const val = Math.floor(bytes / Math.pow(1000, e) * 10 + 0.5) / 10;
  const text = val < 10 ? val.toFixed(1) : val.toFixed(0);
  return `${text} ${SI_SIZES[e]}`;
}

/** Go's `time.Duration.String` of a duration in milliseconds (`16.330678ms`). */
export function goDuration(ms: number): string {
  const ns = Math.round(ms * 1e6);
  if (ns === 0) return "0s";
  const trim = (n: number, unit: string, scale: number) => {
    const text = (n / scale).toFixed(Math.log10(scale)).replace(/\.?0+$/, "");
    return text + unit;
  };
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return trim(ns, "µs", 1e3);
  if (ns < 1e9) return trim(ns, "ms", 1e6);
  return trim(ns, "s", 1e9);
}
