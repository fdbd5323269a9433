/**
 * The README's examples run as written. Every fenced `sh` and `ts` block of
 * README.md is one test, run in document order in a scratch copy of the
 * package (what a fresh clone holds: deno.json, deno.lock, mod.ts, cli.ts,
 * src/), so `deno task ctl …` and `import … from "./mod.ts"` mean what they
 * mean to a reader, and the stores they create land in the scratch dir:
 *
 * - an `sh` block runs in `bash -eu -o pipefail`, with a PATH that holds the
 *   running `deno`; a `ts` block is saved in the scratch dir and run with
 *   `deno run -A`;
 * - the first `text` block after a runnable block (before the next one) is
 *   the stdout it must print, exactly;
 * - a block right after `<!-- readme-test: skip (reason) -->` is not run; the
 *   reason shows in the test's name, so a skipped block is never silent.
 */

import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";

/** One fenced block of the README. */
interface Block {
  /** `sh`, `ts` or `text`. */
  lang: string;
  /** The block's text, its indentation removed. */
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** Why the block is not run, when marked. */
  skip?: string;
  /** For a runnable block: the stdout its `text` block says. */
  expected?: string;
}

const ROOT = new URL("../", import.meta.url);
/** What a clone holds that the examples use. */
const PACKAGE_FILES = ["deno.json", "deno.lock", "mod.ts", "cli.ts", "LICENSE"];
const PACKAGE_DIRS = ["src"];
const SKIP_MARK = /^<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->$/;

/** The fenced blocks of `markdown`, with skip marks and expected output. */
export function readmeBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let pendingSkip: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i]!.trim();
    const skip = trimmed.match(SKIP_MARK);
    if (skip) {
      pendingSkip = skip[1];
      continue;
    }
    const fence = lines[i]!.match(/^(\s*)```(\w*)\s*$/);
    if (!fence) {
      // Only blank lines may stand between a skip mark and its block.
      if (trimmed !== "") pendingSkip = undefined;
      continue;
    }
    const indent = fence[1]!.length;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== "```"; i++) {
      body.push(lines[i]!.slice(indent));
    }
    blocks.push({
      lang: fence[2]!,
      code: body.join("\n") + "\n",
      line: start + 1,
      skip: pendingSkip,
    });
    pendingSkip = undefined;
  }
  const runnable: Block[] = [];
  let last: Block | undefined;
  for (const block of blocks) {
    if (block.lang === "sh" || block.lang === "ts") {
      runnable.push(block);
      last = block;
    } else if (block.lang === "text" && last && last.expected === undefined) {
      last.expected = block.code;
      last = undefined;
    }
  }
  return runnable;
}

Deno.test("readme blocks: fences, skip marks and expected output", () => {
  const blocks = readmeBlocks(
    [
      "<!-- readme-test: skip (runs forever) -->",
      "",
      "```sh",
      "deno task start",
      "```",
      "- item:",
      "  ```sh",
      "  echo hi",
      "  ```",
      "  prints",
      "  ```text",
      "  hi",
      "  ```",
      "```ts",
      "console.log(1);",
      "```",
    ].join("\n"),
  );
  assertEquals(blocks.map((b) => [b.lang, b.code, b.skip, b.expected]), [
    ["sh", "deno task start\n", "runs forever", undefined],
    ["sh", "echo hi\n", undefined, "hi\n"],
    ["ts", "console.log(1);\n", undefined, undefined],
  ]);
});

async function copyDir(from: URL, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) {
      await copyDir(new URL(`${entry.name}/`, from), `${to}/${entry.name}`);
    } else if (entry.isFile) {
      await Deno.copyFile(new URL(entry.name, from), `${to}/${entry.name}`);
    }
  }
}

/** A scratch copy of the package, as a fresh clone has it. */
async function scratchPackage(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "revkv_readme_" });
  for (const file of PACKAGE_FILES) {
    await Deno.copyFile(new URL(file, ROOT), `${dir}/${file}`);
  }
  for (const sub of PACKAGE_DIRS) {
    await copyDir(new URL(`${sub}/`, ROOT), `${dir}/${sub}`);
  }
  return dir;
}

const decoder = new TextDecoder();

async function runBlock(block: Block, dir: string, index: number) {
  const deno = Deno.execPath();
  const denoDir = deno.slice(0, deno.lastIndexOf("/"));
  const env = {
    PATH: `${denoDir}:/usr/local/bin:/usr/bin:/bin`,
    HOME: Deno.env.get("HOME") ?? dir,
    NO_COLOR: "1",
    ...(Deno.env.get("DENO_DIR")
      ? { DENO_DIR: Deno.env.get("DENO_DIR")! }
      : {}),
  };
  let command: Deno.Command;
  if (block.lang === "sh") {
    command = new Deno.Command("bash", {
      args: ["-eu", "-o", "pipefail", "-c", block.code],
      cwd: dir,
      env,
      clearEnv: true,
      stdin: "null",
    });
  } else {
    const file = `${dir}/_readme_block_${index}.ts`;
    await Deno.writeTextFile(file, block.code);
    command = new Deno.Command(deno, {
      args: ["run", "-A", file],
      cwd: dir,
      env,
      clearEnv: true,
      stdin: "null",
    });
  }
  const { code, stdout, stderr } = await command.output();
  return {
    code,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  };
}

const README = await Deno.readTextFile(new URL("README.md", ROOT));
const BLOCKS = readmeBlocks(README);

Deno.test("README has runnable sh and ts blocks", () => {
  const run = BLOCKS.filter((b) => !b.skip);
  equal(run.some((b) => b.lang === "sh"), true);
  equal(run.some((b) => b.lang === "ts"), true);
});

Deno.test("README examples run as written", async (t) => {
  const dir = await scratchPackage();
  try {
    for (const [index, block] of BLOCKS.entries()) {
      const first = block.code.split("\n")[0];
      const name = `README.md:${block.line} ${block.lang}: ${first}`;
      if (block.skip) {
        // Visible in the report: the step is listed as ignored, with why.
        await t.step({
          name: `${name} — skipped: ${block.skip}`,
          ignore: true,
          fn: () => {},
        });
        continue;
      }
      await t.step(name, async () => {
        const out = await runBlock(block, dir, index);
        if (out.code !== 0) {
          throw new Error(
            `exit ${out.code}\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`,
          );
        }
        if (block.expected !== undefined) {
          equal(out.stdout, block.expected, out.stderr);
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
