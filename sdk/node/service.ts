/**
 * `channels node start`: loads the configuration and the key, starts the node and its control API, and stops
 * both cleanly on SIGINT or SIGTERM (ticking stops, the step in flight commits, the endpoints and the store close).
 */
import type { Logger } from "pino";

import { apiApp, apiToken, closeApi, serveApi } from "./api.js";
import { loadNodeKey } from "./keystore.js";
import { nodeLogger } from "./logger.js";
import { ChannelNode, type StartOptions } from "./node.js";
import { loadNodeConfig } from "./node-config.js";
import { isPostgresUrl } from "../store/postgres.js";
import { runLeading } from "./standby.js";

export async function runNode(configFile: string, logLevel?: string, ask?: (variable: string) => Promise<string>, options: StartOptions = {}): Promise<void> {
  const config = loadNodeConfig(configFile);
  const key = await loadNodeKey(config, process.env, ask);
  const log: Logger = nodeLogger(logLevel ?? config.logLevel);
  if (isPostgresUrl(config.store)) {
    // Standby processes on one database: the signal ends whichever part runs (standing by or leading).
    return runLeading(config, key, log, apiToken(config.api.tokenFile), options, untilSignal(log));
  }
  const node = await ChannelNode.start(config, key, log, options);
  const token = apiToken(config.api.tokenFile);
  let api: Awaited<ReturnType<typeof serveApi>>;
  try {
    api = await serveApi(apiApp(node, token), config.api.host, config.api.port);
  } catch (error) {
    await node.stop();
    throw error;
  }
  log.info({ event: "api", url: `${api.url}/api/v1`, tokenFile: config.api.tokenFile }, "control API listening");
  await untilSignal(log);
  closeApi(api);
  await node.stop();
}

/** Resolves with the first SIGINT or SIGTERM (said at info), after which the process's handlers for them are gone. */
function untilSignal(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info({ event: "signal", signal }, "stopping");
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      resolve(signal);
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  });
}
