/**
 * Go's `text/tabwriter` as etcdctl's help uses it (minwidth 0, tabwidth 8,
 * padding 1, padded with tabs, no flags): cells end at `\t`, a column is a
 * run of adjacent lines that have a cell in it, and each cell is padded with
 * tabs to the column's width (widest cell + 1, rounded up to a tab stop).
 *
 * ```
 * "\tget\tGets..."        column 0 is empty (width 1 → one tab),
 * "\tcompaction\tComp..." column 1 is 10 wide → 11 → 16: "get" + 2 tabs
 * ```
 *
 * @module
 */

const TAB_WIDTH = 8;
const PADDING = 1;

interface Cell {
  text: string;
  width: number;
}

/** Aligns `text` as Go's tabwriter with etcdctl's settings would. */
export function tabwrite(text: string): string {
  const lines: Cell[][] = text.split("\n").map((line) =>
    line.split("\t").map((cell) => ({ text: cell, width: [...cell].length }))
  );
  const out: string[] = [];
  const widths: number[] = [];

  const writeLines = (line0: number, line1: number) => {
    for (let i = line0; i < line1; i++) {
      const line = lines[i]!;
      let s = "";
      line.forEach((cell, j) => {
        s += cell.text;
        if (j < widths.length) s += padding(cell.width, widths[j]!);
      });
      out.push(s);
    }
  };

  const format = (lineStart: number, line1: number) => {
    let line0 = lineStart;
    const column = widths.length;
    for (let cur = line0; cur < line1; cur++) {
      if (column >= lines[cur]!.length - 1) continue;
      writeLines(line0, cur);
      line0 = cur;
      let width = 0;
      for (; cur < line1; cur++) {
        const line = lines[cur]!;
        if (column >= line.length - 1) break;
        width = Math.max(width, line[column]!.width + PADDING);
      }
      widths.push(width);
      format(line0, cur);
      widths.pop();
      line0 = cur;
      cur--; // the for loop's increment re-visits the line that ended the block
    }
    writeLines(line0, line1);
  };

  format(0, lines.length);
  return out.join("\n");
}

function padding(textWidth: number, cellWidth: number): string {
  const rounded = Math.ceil(cellWidth / TAB_WIDTH) * TAB_WIDTH;
  return "\t".repeat(Math.ceil((rounded - textWidth) / TAB_WIDTH));
}
