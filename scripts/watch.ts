/**
 * The watchtower as a command: guards a participant's channels while its client is offline.
 *
 *   WATCH_CONFIG=watch.json WATCHTOWER_PRIVATE_KEY=0x… npm run watch
 *
 * The config is a JSON file; docs/examples/watch.json is a complete example and README.md ("Watchtower") lists its
 * fields. It is checked before anything starts: every problem is printed as one line naming the file and the
 * field, and the command exits with code 2 (1 for a failure at run time). The key pays for challenges, reveals and
 * settlements (anyone may send them); it never needs channel funds, and no error repeats it.
 */
import { loadWatchConfig, privateKeyFromEnv, requiredEnv, runMain, runWatch } from "../sdk/node/index.js";

await runMain(async () => {
  const file = requiredEnv(
    "WATCH_CONFIG",
    "the path of the watchtower's JSON config (example: docs/examples/watch.json)",
  );
  const key = privateKeyFromEnv("WATCHTOWER_PRIVATE_KEY");
  await runWatch(loadWatchConfig(file), key);
});
