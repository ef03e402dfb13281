/** `channels watch --watch-config watch.json`: the standalone watchtower (same as `npm run watch`). */
import { Command } from "commander";

export function watchCommand(): Command {
  return new Command("watch")
    .description("run the standalone watchtower (key in WATCHTOWER_PRIVATE_KEY; config as `npm run watch`)")
    .requiredOption("--watch-config <file>", "the watchtower's configuration (docs/examples/watch.json)")
    .action(async (o: { watchConfig: string }) => {
      const { loadWatchConfig } = await import("../node/watch-config.js");
      const { privateKeyFromEnv } = await import("../node/keys.js");
      const { runWatch } = await import("../node/watch.js");
      const config = loadWatchConfig(o.watchConfig);
      await runWatch(config, privateKeyFromEnv("WATCHTOWER_PRIVATE_KEY"));
    });
}
