/**
 * The top of a command (a `hardhat run` script now, the CLI later): an error reaches the user as `error: ...` lines,
 * never as a stack trace, and sets the exit code: 2 for a usage or configuration problem, 1 for a failure at run time.
 */
import { ChannelSdkError } from "../core/errors.js";
import { UsageError } from "./errors.js";
import { redactKeys } from "./keys.js";

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function exitCodeOf(error: unknown): number {
  return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * The lines that describe an error: all of the message of the SDK's own errors (one line per problem), the short
 * message of ethers' errors (the long one lists arguments and values), the first line of anything else; every key
 * read from the environment scrubbed out.
 */
export function describeError(error: unknown): string[] {
  let text: string;
  if (error instanceof ChannelSdkError) text = error.message;
  else if (error instanceof Error) {
    const short = (error as { shortMessage?: unknown }).shortMessage;
    text = typeof short === "string" ? short : error.message.split("\n")[0] ?? "";
  } else text = String(error);
  const lines = redactKeys(text)
    .split("\n")
    .filter((line) => line.trim() !== "");
  return lines.length > 0 ? lines : [error instanceof Error ? error.name : "unknown error"];
}

/**
 * Runs a command's body. An error it throws, or one thrown later outside it (an unhandled rejection), is printed
 * as `error: ...` lines on stderr and decides the exit code; Hardhat sees a script that ended normally and adds
 * nothing of its own.
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  const report = (error: unknown): void => {
    for (const line of describeError(error)) process.stderr.write(`error: ${line}\n`);
  };
  const fatal = (error: unknown): never => {
    report(error);
    process.exit(exitCodeOf(error));
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  try {
    await main();
  } catch (error) {
    report(error);
    process.exitCode = exitCodeOf(error);
  }
}
