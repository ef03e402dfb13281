/**
 * The `channels` command line. Exit codes: 0 done, 1 failed, 2 bad usage; an error is one line on stderr (its
 * stack only with --verbose). Client commands talk to a running node's control API (docs/NODE.md).
 */
import { Command, CommanderError } from "commander";

import { describeError, EXIT_USAGE, exitCodeOf } from "../node/main.js";
import { channelCommands } from "./channel.js";
import { deployCommand } from "./deploy.js";
import { initCommand } from "./init.js";
import { nodeCommands } from "./node.js";
import { swapCommands } from "./swap.js";
import { watchCommand } from "./watch.js";

export function program(): Command {
  const p = new Command("channels")
    .description("cross-chain state channels: run a node, open channels, swap, close")
    .option("--config <file>", "the node's configuration (default $CHANNELS_CONFIG or ./node.json)")
    .option("--json", "print results as JSON")
    .option("--verbose", "print stacks with errors")
    .showHelpAfterError(false);
  p.addCommand(initCommand());
  for (const c of nodeCommands()) p.addCommand(c);
  p.addCommand(deployCommand());
  p.addCommand(channelCommands());
  p.addCommand(swapCommands());
  p.addCommand(watchCommand());
  const quiet = (c: Command) => {
    c.exitOverride();
    c.configureOutput({ outputError: () => {} }); // errors are printed by main(), one line each
    for (const s of c.commands) quiet(s);
  };
  quiet(p);
  return p;
}

export async function main(argv: readonly string[]): Promise<number> {
  const verbose = argv.includes("--verbose");
  // With --json, an error is one JSON object on stderr (`error`: the first line, `errors`: every line, `exitCode`).
  const json = argv.includes("--json");
  const fail = (lines: readonly string[], exitCode: number) => {
    if (json) process.stderr.write(JSON.stringify({ error: lines[0] ?? "", errors: lines, exitCode }) + "\n");
    else for (const line of lines) process.stderr.write(`error: ${line}\n`);
    return exitCode;
  };
  const p = program();
  try {
    await p.parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.exitCode === 0) return 0;
      if (error.code === "commander.help") return EXIT_USAGE; // a group without its subcommand: help shown on stderr
      // Commander checks required options before unknown ones: `--gve 1` would be reported as `--give` missing.
      const unknown = error.code === "commander.missingMandatoryOptionValue" ? unknownOption(p, argv) : undefined;
      return fail([unknown ?? error.message.replace(/^error: /, "")], EXIT_USAGE);
    }
    const code = fail(describeError(error), exitCodeOf(error));
    if (verbose && error instanceof Error && error.stack) process.stderr.write(error.stack + "\n");
    return code;
  }
}

/** The first `--flag` in `argv` that no command of `p` knows, said as commander says it, with the nearest known flag. */
function unknownOption(p: Command, argv: readonly string[]): string | undefined {
  const known = new Set<string>(["--help", "--version"]);
  const walk = (c: Command) => {
    for (const o of c.options) if (o.long !== undefined) known.add(o.long);
    for (const s of c.commands) walk(s);
  };
  walk(p);
  for (const arg of argv) {
    if (arg === "--") break;
    if (!arg.startsWith("--")) continue;
    const flag = arg.split("=")[0]!;
    if (known.has(flag)) continue;
    let best: string | undefined;
    let distance = 3; // at most two edits away
    for (const k of known) {
      const d = editDistance(flag, k);
      if (d < distance) [best, distance] = [k, d];
    }
    return `unknown option '${flag}'${best === undefined ? "" : ` (Did you mean ${best}?)`}`;
  }
  return undefined;
}

/** Levenshtein distance between two short strings. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
