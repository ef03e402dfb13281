/** What every command shares: the global options, printing (text or `--json`), the API client. */
import type { Command } from "commander";

import { idPrefix } from "../node/ids.js";
import { ApiClient } from "./client.js";

export type Globals = { json: boolean; verbose: boolean; config: string };

export function globals(cmd: Command): Globals {
  const o = cmd.optsWithGlobals() as Partial<Globals>;
  return { json: o.json === true, verbose: o.verbose === true, config: o.config ?? (process.env.CHANNELS_CONFIG || undefined) ?? "node.json" };
}

/** Prints `data` as JSON with `--json`, else `text(data)`. */
export function print<T>(cmd: Command, data: T, text: (d: T) => string): void {
  process.stdout.write((globals(cmd).json ? JSON.stringify(data, null, 2) : text(data)) + "\n");
}

export function api(cmd: Command): ApiClient {
  return ApiClient.fromConfig(globals(cmd).config);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The API path of one channel or swap. An id that is not one (empty among them: sent, it would name the collection's
 * path with a trailing slash and come back as "no route") is refused here, by the node's own check, before anything
 * is read or sent.
 */
export function idPath(what: "channel" | "swap", id: string): string {
  idPrefix(id, what);
  return `/${what}s/${encodeURIComponent(id)}`;
}
