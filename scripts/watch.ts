/**
 * The watchtower as a command: guards a participant's channels while its client is offline.
 *
 *   WATCH_CONFIG=watch.json WATCHTOWER_PRIVATE_KEY=0x… npm run watch
 *
 * watch.json:
 *   {
 *     "store": "tower.sqlite",                 // the tower's own SQLite store (cursor, disputes, states)
 *     "importFrom": "alice.sqlite",            // optional: a client's store to take channels, states, secrets from
 *     "intervalSeconds": 5,
 *     "once": false,                           // true: one poll, then exit (for cron-style use)
 *     "chains": [
 *       { "rpcUrl": "https://…", "hub": "0x…", "confirmations": 2, "clockSkewSeconds": 30, "claimWindowSeconds": 900 }
 *     ]
 *   }
 *
 * The key pays for challenges, reveals and settlements (anyone may send them); it never needs channel funds.
 */
import { readFileSync } from "node:fs";
import { Wallet } from "ethers";

import { HubAdapter, rpcProvider, Store, Watchtower, type ChainWatch, type WatchtowerEvent } from "../sdk/index.js";

type Config = {
  store: string;
  importFrom?: string;
  intervalSeconds?: number;
  once?: boolean;
  chains: { rpcUrl: string; hub: string; confirmations?: number; clockSkewSeconds?: number; claimWindowSeconds?: number }[];
};

const configPath = process.env.WATCH_CONFIG;
const key = process.env.WATCHTOWER_PRIVATE_KEY;
if (configPath === undefined || key === undefined) {
  console.error("Set WATCH_CONFIG (path of a JSON config) and WATCHTOWER_PRIVATE_KEY; see scripts/watch.ts.");
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, "utf8")) as Config;
const providers = config.chains.map((c) => rpcProvider(c.rpcUrl));
const chains: ChainWatch[] = await Promise.all(
  config.chains.map(async (c, i) => ({
    chain: await HubAdapter.connect(c.hub, new Wallet(key, providers[i])),
    confirmations: c.confirmations ?? 2,
    clockSkewSeconds: BigInt(c.clockSkewSeconds ?? 30),
    claimWindowSeconds: BigInt(c.claimWindowSeconds ?? 900),
  })),
);
const store = new Store(config.store);
const log = (e: WatchtowerEvent) => {
  const text =
    e.type === "dispute" ? `dispute on ${e.channelId} at state ${e.seq} by ${e.by}`
    : e.type === "secret" ? `secret of ${e.hashlock} revealed on chain ${e.chainId}`
    : e.type === "carried" ? `carried the secret of ${e.hashlock} to chain ${e.toChainId}`
    : `${e.channelId}: ${e.step.kind}`;
  console.log(`${new Date().toISOString()} ${text}`);
};
const tower = new Watchtower(store, chains, log);

async function round(): Promise<void> {
  if (config.importFrom !== undefined) {
    const client = new Store(config.importFrom);
    try {
      tower.importFrom(client);
    } finally {
      client.close();
    }
  }
  await tower.poll();
}

console.log(`watching ${store.channels().length} channel(s) on chains ${chains.map((c) => c.chain.chainId).join(", ")}`);
await round();
console.log(`guarding ${store.channels().length} channel(s), ${store.openDisputes().length} open dispute(s)`);
if (!config.once) {
  for (;;) {
    await new Promise((r) => setTimeout(r, (config.intervalSeconds ?? 5) * 1000));
    try {
      await round();
    } catch (error) {
      console.error(`${new Date().toISOString()} poll failed, retrying: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
store.close();
for (const p of providers) p.destroy();
