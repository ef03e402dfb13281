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
  try {
    await program().parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.exitCode === 0) return 0;
      if (error.code === "commander.help") return EXIT_USAGE; // a group without its subcommand: help shown on stderr
      return fail([error.message.replace(/^error: /, "")], EXIT_USAGE);
    }
    const code = fail(describeError(error), exitCodeOf(error));
    if (verbose && error instanceof Error && error.stack) process.stderr.write(error.stack + "\n");
    return code;
  }
}
