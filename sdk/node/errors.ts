import { ChannelSdkError } from "../core/errors.js";

/**
 * What the user gave is wrong (a configuration file, an environment variable, an argument): nothing was started,
 * and a command exits with code 2. Every other error is a failure at run time (code 1).
 */
export class UsageError extends ChannelSdkError {}

/** One thing wrong in a configuration file: the field (`chains[0].hub`, "" for the whole file) and what is wrong. */
export type ConfigProblem = Readonly<{ field: string; message: string }>;

/**
 * A configuration file that cannot be used, with every problem found in it. The message has one line per problem,
 * `<file>: <field>: <problem>`, e.g. `watch.json: chains[0].hub: expected an address, got "0x12"`.
 */
export class ConfigError extends UsageError {
  constructor(readonly file: string, readonly problems: readonly ConfigProblem[]) {
    super(problems.map((p) => (p.field === "" ? `${file}: ${p.message}` : `${file}: ${p.field}: ${p.message}`)).join("\n"));
  }
}

/** An environment variable that is missing or holds something unusable. The message names it, never its value. */
export class EnvVarError extends UsageError {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
  }
}

/** A variable meant to hold a private key holds something else (a mnemonic, an address, malformed hex). */
export class PrivateKeyError extends EnvVarError {}
