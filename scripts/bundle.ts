/**
 * Builds revkv for Node: an npm package in `dist/` (or `--out <dir>`).
 *
 * ```sh
 * deno task bundle                                   # writes dist/
 * deno run -A --lock=tools.lock scripts/bundle.ts --out /tmp/revkv-dist
 * ```
 *
 * What it writes:
 * - `revkv.mjs`: the library (`mod.ts`), one ES module with the wasm inline
 *   (`src/wasm/_revkv_wasm.ts` carries it as base64); on Node the runtime
 *   layer (`src/storage/runtime.ts`) picks `node:fs`, `worker_threads` and
 *   `process`.
 * - `revkv-cli.mjs`: the command line (`src/cli/process.ts`, `serve`
 *   included), with a `#!/usr/bin/env node` line.
 * - `replay-worker.mjs`: the replay worker (`src/storage/replay_worker.ts`),
 *   a `worker_threads` module for recovery of large files; both bundles
 *   point at it (the worker's URL in `replay_batch.ts` is rewritten).
 * - `types/`: `.d.ts` declarations of the public API (`types/mod.d.ts`),
 *   emitted by the TypeScript compiler without type checking (`deno check`
 *   does that); relative `.ts` specifiers are rewritten to `.js`.
 * - `package.json` (name `revkv`, the version of `deno.json`, `exports`,
 *   `bin`, `engines: node >= 20`) and `LICENSE`, so that `dist/` can be
 *   packed (`npm pack`) or published as it is.
 *
 * esbuild and TypeScript are build tools, pinned here by full specifier and
 * resolved with `--lock=tools.lock` (never `deno.lock`).
 *
 * @module
 */

// Build tools, by full specifier rather than in deno.json's imports: only
// this script fetches them.
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@0.28.2";
// deno-lint-ignore no-import-prefix
import ts from "npm:typescript@5.9.3";
import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(ROOT.pathname);

/** The Node versions the package supports (`engines`, esbuild's target). */
const NODE_MIN_MAJOR = 20;

/** The file names of the package, relative to its root. */
export const BUNDLE_FILES = {
  library: "revkv.mjs",
  cli: "revkv-cli.mjs",
  replayWorker: "replay-worker.mjs",
  types: "types/mod.d.ts",
  manifest: "package.json",
} as const;

/** What a build wrote: every file's path and size. */
export interface BundleResult {
  /** The package directory. */
  outDir: string;
  /** Bytes of each written file, by path relative to `outDir`. */
  sizes: Record<string, number>;
}

/** The replay worker's URL in `replay_batch.ts`, and what it becomes. */
const WORKER_URL_SOURCE = 'new URL("./replay_worker.ts", import.meta.url)';
const WORKER_URL_BUNDLED =
  `new URL("./${BUNDLE_FILES.replayWorker}", import.meta.url)`;

/**
 * Points the replay worker's URL at `replay-worker.mjs`: the bundles and
 * the worker sit side by side in the package's root.
 */
const workerUrlPlugin: esbuild.Plugin = {
  name: "revkv-replay-worker-url",
  setup(build) {
    build.onLoad({ filter: /replay_batch\.ts$/ }, async (args) => {
      const text = await Deno.readTextFile(args.path);
      if (!text.includes(WORKER_URL_SOURCE)) {
        throw new Error(`${args.path}: the replay worker's URL moved`);
      }
      return {
        contents: text.replace(WORKER_URL_SOURCE, WORKER_URL_BUNDLED),
        loader: "ts",
      };
    });
  },
};

function shared(): esbuild.BuildOptions {
  return {
    plugins: [workerUrlPlugin],
    bundle: true,
    format: "esm",
    platform: "node",
    target: `node${NODE_MIN_MAJOR}`,
    absWorkingDir: rootPath,
    logLevel: "warning",
    legalComments: "none",
  };
}

/** Emits `.d.ts` files of `mod.ts` into `typesDir`. */
function emitDeclarations(typesDir: string): void {
  const program = ts.createProgram([`${rootPath}mod.ts`], {
    declaration: true,
    emitDeclarationOnly: true,
    noCheck: true,
    allowImportingTsExtensions: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    rootDir: rootPath,
    outDir: typesDir,
    strict: true,
    skipLibCheck: true,
    types: [],
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    stripInternal: false,
  });
  const written: string[] = [];
  const result = program.emit(
    undefined,
    (fileName, text) => {
      // `./x.ts` → `./x.js`: what a Node consumer's TypeScript resolves.
      const rewritten = text.replace(
        /((?:from|import\()\s*["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g,
        "$1$2.js$3",
      );
      Deno.mkdirSync(fileName.slice(0, fileName.lastIndexOf("/")), {
        recursive: true,
      });
      Deno.writeTextFileSync(fileName, rewritten);
      written.push(fileName);
    },
  );
  if (result.emitSkipped || written.length === 0) {
    const messages = result.diagnostics.map((d) =>
      ts.flattenDiagnosticMessageText(d.messageText, "\n")
    );
    throw new Error(`declarations not emitted: ${messages.join("; ")}`);
  }
}

/** Builds the package into `outDir` (created; existing files replaced). */
export async function bundle(outDir: string): Promise<BundleResult> {
  const deno = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  ) as { version: string };
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(outDir, { recursive: true });
  try {
    await esbuild.build({
      ...shared(),
      entryPoints: ["mod.ts"],
      outfile: `${outDir}/${BUNDLE_FILES.library}`,
    });
    await esbuild.build({
      ...shared(),
      entryPoints: ["src/storage/replay_worker.ts"],
      outfile: `${outDir}/${BUNDLE_FILES.replayWorker}`,
    });
    await esbuild.build({
      ...shared(),
      stdin: {
        contents:
          'import { runCliProcess } from "./src/cli/process.ts";\nawait runCliProcess();\n',
        resolveDir: rootPath,
        sourcefile: "revkv-cli.ts",
        loader: "ts",
      },
      banner: { js: "#!/usr/bin/env node" },
      outfile: `${outDir}/${BUNDLE_FILES.cli}`,
    });
  } finally {
    await esbuild.stop();
  }
  await Deno.chmod(`${outDir}/${BUNDLE_FILES.cli}`, 0o755);
  emitDeclarations(`${outDir}/types`);
  const manifest = {
    name: "revkv",
    version: deno.version,
    description:
      "An embeddable etcd-compatible MVCC key-value store (revisions, watch, leases, txn), with etcdctl's CLI and an etcd v3 gRPC server",
    license: "MIT",
    type: "module",
    exports: {
      ".": {
        types: `./${BUNDLE_FILES.types}`,
        default: `./${BUNDLE_FILES.library}`,
      },
      "./package.json": "./package.json",
    },
    types: `./${BUNDLE_FILES.types}`,
    bin: { revkv: `./${BUNDLE_FILES.cli}` },
    files: [
      BUNDLE_FILES.library,
      BUNDLE_FILES.cli,
      BUNDLE_FILES.replayWorker,
      "types/",
      "LICENSE",
    ],
    engines: { node: `>=${NODE_MIN_MAJOR}` },
  };
  await Deno.writeTextFile(
    `${outDir}/${BUNDLE_FILES.manifest}`,
    JSON.stringify(manifest, null, 2) + "\n",
  );
  await Deno.copyFile(new URL("LICENSE", ROOT), `${outDir}/LICENSE`);
  const sizes: Record<string, number> = {};
  for (
    const name of [
      BUNDLE_FILES.library,
      BUNDLE_FILES.cli,
      BUNDLE_FILES.replayWorker,
    ]
  ) {
    sizes[name] = (await Deno.stat(`${outDir}/${name}`)).size;
  }
  let typesBytes = 0;
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else typesBytes += (await Deno.stat(path)).size;
    }
  };
  await walk(`${outDir}/types`);
  sizes["types/"] = typesBytes;
  return { outDir, sizes };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string", default: `${rootPath}dist` } },
  });
  const result = await bundle(values.out!);
  for (const [name, bytes] of Object.entries(result.sizes)) {
    console.log(`${result.outDir}/${name}: ${bytes} bytes`);
  }
}
