/**
 * The command tree and how cobra walks it: finding the command among the
 * arguments (flags may stand before it; unique prefixes match, as etcdctl
 * enables cobra's prefix matching), suggestions for a mistyped command, and
 * the help page in etcdctl's layout (NAME, USAGE, COMMANDS, DESCRIPTION,
 * OPTIONS, GLOBAL OPTIONS, aligned by Go's tabwriter).
 *
 * @module
 */

import { type FlagSpec, flagUsages } from "./flags.ts";
import { tabwrite } from "./tabwriter.ts";
import type { CommandContext } from "./context.ts";

/** The etcdctl version whose behaviour this CLI reproduces. */
export const ETCDCTL_VERSION = "3.4.23";
/** The etcd API version. */
export const API_VERSION = "3.4";
/** revkv's own version (deno.json's `version`; a test keeps them equal). */
export const REVKV_VERSION = "0.1.0";
/**
 * The one line of the root help that names revkv, after etcdctl's NAME
 * line: etcdctl's lines stay as they are for scripts that parse them.
 */
export const REVKV_HELP_LINE =
  `\trevkv ${REVKV_VERSION} - an embedded, etcd-compatible store speaking etcdctl ${ETCDCTL_VERSION}`;

/** One command of the tree. */
export interface Command {
  /** cobra's `Use`: the name, then the argument synopsis. */
  use: string;
  /** One-line description. */
  short: string;
  /** Longer description (DESCRIPTION in help). */
  long?: string;
  /** Flags of this command only. */
  flags?: FlagSpec[];
  /** Flags of this command that its subcommands inherit. */
  persistentFlags?: FlagSpec[];
  /** Subcommands. */
  commands?: Command[];
  /** Runs the command; absent for groups (which print their help). */
  run?: (ctx: CommandContext) => Promise<void>;
  /** Set by `link`: the parent command. */
  parent?: Command;
}

/** The `-h, --help` flag cobra gives every command. */
export function helpFlag(command: Command): FlagSpec {
  return {
    name: "help",
    short: "h",
    kind: "bool",
    defValue: "false",
    usage: `help for ${commandName(command)}`,
  };
}

/** The command's name: the first word of `use`. */
export function commandName(command: Command): string {
  return command.use.split(" ")[0]!;
}

/** Sets `parent` links and sorts subcommands by name, as cobra does. */
export function link(command: Command): Command {
  if (command.commands) {
    command.commands.sort((a, b) => commandName(a) < commandName(b) ? -1 : 1);
    for (const sub of command.commands) {
      sub.parent = command;
      link(sub);
    }
  }
  return command;
}

/** Names of the command and its ancestors, root first. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | undefined = command; c; c = c.parent) {
    names.unshift(commandName(c));
  }
  return names.join(" ");
}

/** Flags inherited from ancestors (nearest wins), minus local ones. */
export function inheritedFlags(command: Command): FlagSpec[] {
  const local = new Set(localFlags(command).map((f) => f.name));
  const seen = new Set<string>();
  const out: FlagSpec[] = [];
  for (let c = command.parent; c; c = c.parent) {
    for (const flag of c.persistentFlags ?? []) {
      if (local.has(flag.name) || seen.has(flag.name)) continue;
      seen.add(flag.name);
      out.push(flag);
    }
  }
  return out;
}

/** The command's own flags, its persistent ones and `--help`. */
export function localFlags(command: Command): FlagSpec[] {
  return [
    ...(command.flags ?? []),
    ...(command.persistentFlags ?? []),
    helpFlag(command),
  ];
}

/** Every flag the command accepts. */
export function allFlags(command: Command): FlagSpec[] {
  return [...localFlags(command), ...inheritedFlags(command)];
}

/**
 * cobra's `stripFlags`: the positional words of `args`, skipping flags and
 * the values of flags written as `--flag value` / `-f value` (a flag it does
 * not know is assumed to take a value).
 */
function stripFlags(args: readonly string[], flags: FlagSpec[]): string[] {
  const isBoolLong = (name: string) =>
    flags.some((f) => f.name === name && f.kind === "bool");
  const isBoolShort = (short: string) =>
    flags.some((f) => f.short === short && f.kind === "bool");
  const words: string[] = [];
  const rest = [...args];
  while (rest.length > 0) {
    const s = rest.shift()!;
    if (s === "--") break;
    const takesValue =
      (s.startsWith("--") && !s.includes("=") && !isBoolLong(s.slice(2))) ||
      (s.startsWith("-") && !s.startsWith("--") && !s.includes("=") &&
        s.length === 2 && !isBoolShort(s.slice(1)));
    if (takesValue) {
      if (rest.length <= 1) break;
      rest.shift();
      continue;
    }
    if (s !== "" && !s.startsWith("-")) words.push(s);
  }
  return words;
}

function findNext(command: Command, word: string): Command | undefined {
  const subs = command.commands ?? [];
  const exact = subs.find((c) => commandName(c) === word);
  if (exact) return exact;
  const matches = subs.filter((c) => commandName(c).startsWith(word));
  return matches.length === 1 ? matches[0] : undefined;
}

/** The result of finding the command among the arguments. */
export interface Found {
  /** The command found. */
  command: Command;
  /** The arguments left for it (flags and positionals). */
  args: string[];
}

/**
 * cobra's `Find`: walks the tree by the positional words of `args`.
 * @returns the command and its arguments, or an error message when the
 *   root got a word that names no command.
 */
export function findCommand(
  root: Command,
  args: readonly string[],
): Found | { error: string } {
  let command = root;
  let rest = [...args];
  for (;;) {
    const words = stripFlags(rest, allFlags(command));
    if (words.length === 0) break;
    const next = findNext(command, words[0]!);
    if (!next) break;
    rest.splice(rest.indexOf(words[0]!), 1);
    command = next;
  }
  if (command === root && command.commands) {
    const words = stripFlags(rest, allFlags(command));
    if (words.length > 0) {
      return {
        error: `unknown command ${goQuoteSimple(words[0]!)} for ${
          goQuoteSimple(commandPath(root))
        }${suggestions(root, words[0]!)}`,
      };
    }
  }
  rest = [...rest];
  return { command, args: rest };
}

function goQuoteSimple(s: string): string {
  return JSON.stringify(s);
}

function suggestions(root: Command, typed: string): string {
  const lower = typed.toLowerCase();
  const names = (root.commands ?? [])
    .filter((c) => commandName(c) !== "help")
    .map(commandName)
    .filter((name) =>
      levenshtein(lower, name.toLowerCase()) <= 2 ||
      name.toLowerCase().startsWith(lower)
    );
  if (names.length === 0) return "";
  return `\n\nDid you mean this?\n${names.map((n) => `\t${n}\n`).join("")}`;
}

function levenshtein(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let j = 1; j <= b.length; j++) {
    for (let i = 1; i <= a.length; i++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + cost,
      );
    }
  }
  return d[a.length]![b.length]!;
}

/** Every command below `command`, depth first, in sorted order. */
function descendants(command: Command): Command[] {
  const out: Command[] = [];
  for (const sub of command.commands ?? []) {
    out.push(sub, ...descendants(sub));
  }
  return out;
}

function relativeName(command: Command, ancestor: Command): string {
  const parts = [commandName(command)];
  for (let c = command.parent; c && c !== ancestor; c = c.parent) {
    parts.unshift(commandName(c));
  }
  return parts.join(" ");
}

/** cobra's `UseLine`: the command path and synopsis, then `[flags]`. */
function useLine(command: Command): string {
  const line = command.parent
    ? `${commandPath(command.parent)} ${command.use}`
    : command.use;
  return line.includes("[flags]") ? line : `${line} [flags]`;
}

/** The help page of `command`, as etcdctl prints it. */
export function helpText(command: Command): string {
  let text = "NAME:\n";
  const name = command.parent
    ? relativeName(command, rootOf(command))
    : commandName(command);
  text += `\t${name} - ${command.short}\n`;
  if (!command.parent) text += `${REVKV_HELP_LINE}\n`;
  text += `\nUSAGE:\n\t${useLine(command)}\n`;
  if (!command.parent) text += `\nVERSION:\n\t${ETCDCTL_VERSION}\n`;
  const subs = command.commands ?? [];
  if (subs.length > 0) {
    text += `\nAPI VERSION:\n\t${API_VERSION}\n`;
    text += "\n\nCOMMANDS:\n";
    for (const sub of descendants(command)) {
      if (sub.run) text += `\t${relativeName(sub, command)}\t${sub.short}\n`;
    }
  }
  if (command.long) {
    text += "\nDESCRIPTION:\n";
    for (
      const line of command.long.replace(/^[\n\t ]+|[\n\t ]+$/g, "").split("\n")
    ) {
      text += `\t${line}\n`;
    }
  }
  text += `\nOPTIONS:\n${flagUsages(localFlags(command))}`;
  const inherited = inheritedFlags(command);
  if (inherited.length > 0) {
    text += `\nGLOBAL OPTIONS:\n${flagUsages(inherited)}`;
  }
  text += "\n";
  return tabwrite(text);
}

function rootOf(command: Command): Command {
  let c = command;
  while (c.parent) c = c.parent;
  return c;
}
