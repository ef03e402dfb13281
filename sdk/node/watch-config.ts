/**
 * The watchtower's configuration file (example: docs/examples/watch.json, fields: README.md "Watchtower").
 * Unknown fields are errors, so a misspelt optional field is not silently replaced by its default.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";

import { address, filePath, httpUrl, loadConfigFile, positiveInt, wholeNumber } from "./config.js";
import { ConfigError, type ConfigProblem } from "./errors.js";
import { FeesSchema } from "./node-config.js";

/** Longest pause between polls: Node's timers fire at once past about 24.8 days; a day is plenty. */
const MAX_INTERVAL_SECONDS = 86_400;

export const WatchChainSchema = z.strictObject({
  /** JSON-RPC endpoint of the chain (http or https). */
  rpcUrl: httpUrl(),
  /** The ChannelHub on that chain. */
  hub: address(),
  /** Blocks an event must be under before the tower's cursor passes it. */
  confirmations: wholeNumber().default(2),
  /** Seconds the chain's clock may run ahead of real time. */
  clockSkewSeconds: wholeNumber().default(30),
  /** A lock owed to the guarded participant this close to expiry gets its secret registered. */
  claimWindowSeconds: wholeNumber().default(900),
  /** Fee escalation for its challenges, reveals and settles, as a node's (docs/CHAINS.md). */
  fees: FeesSchema.prefault({}),
});

export const WatchConfigSchema = z.strictObject({
  /** The tower's own SQLite store (created if missing), relative to the config file. */
  store: filePath(),
  /** A client's store to take channels, states and secrets from before every poll: must exist, only read. */
  importFrom: filePath().optional(),
  intervalSeconds: positiveInt(MAX_INTERVAL_SECONDS).default(5),
  /** One poll, then exit (for cron-style use). */
  once: z.boolean().default(false),
  chains: z.array(WatchChainSchema).min(1),
});

export type WatchChainConfig = z.output<typeof WatchChainSchema>;

/** A checked watchtower configuration, with its paths made absolute (relative ones are read from the file's folder). */
export type WatchConfig = Readonly<
  Omit<z.output<typeof WatchConfigSchema>, "chains"> & { chains: readonly WatchChainConfig[]; file: string }
>;

/**
 * Reads and checks a watchtower configuration file. Throws ConfigError with every problem: the file's shape and
 * types, a store whose folder does not exist, an `importFrom` that does not exist (it is never created) or is the
 * tower's own store.
 */
export function loadWatchConfig(file: string): WatchConfig {
  const parsed = loadConfigFile(WatchConfigSchema, file);
  const folder = dirname(resolve(file));
  const store = resolve(folder, parsed.store);
  const importFrom = parsed.importFrom === undefined ? undefined : resolve(folder, parsed.importFrom);
  const problems: ConfigProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });
  if (!isFolder(dirname(store))) problem("store", `the folder ${dirname(store)} does not exist`);
  if (importFrom !== undefined) {
    if (!existsSync(importFrom)) problem("importFrom", `no such file: ${importFrom}`);
    else if (!statSync(importFrom).isFile()) problem("importFrom", `${importFrom} is not a file`);
    else if (importFrom === store) problem("importFrom", "is the tower's own store");
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return { ...parsed, store, importFrom, file };
}

function isFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}
