/**
 * Alice's and Bob's nodes in this process (InProcessNodes: control APIs on real ports), over two anvil chains, "source"
 * and "target", mining a block a second, each with a hub: the setup of the node tests against anvil. Bob takes
 * swaps of ETH@source for ETH@target at a rate up to 1 and 2 ETH a swap; Alice takes none.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import type { Hex } from "../../sdk/index.js";
import { Store } from "../../sdk/store/store.js";
import { anvilProvider, startAnvil, type Anvil } from "./anvil.js";
import { InProcessNodes } from "./in-process-nodes.js";
import { freePort } from "./nodes.js";

export type Who = "alice" | "bob";
export const ACCOUNT: Record<Who, number> = { alice: 1, bob: 2 };
export const ADDRESS = Object.fromEntries(Object.entries(ACCOUNT).map(([w, i]) => [w, new Wallet(accountKey(i)).address])) as Record<Who, string>;
/** The hub's least challenge period, which both nodes accept. */
export const CHALLENGE_PERIOD = 300;

export type AnvilNodes = Readonly<{
  /** The test's folder: the nodes' configurations (`file`), stores and tokens go there. */
  dir: string;
  file: (who: Who) => string;
  nodes: InProcessNodes<Who>;
  /** Filled by `startAnvilNodes`: each chain's anvil, a provider to it and its hub. */
  anvils: Anvil[];
  providers: JsonRpcProvider[];
  hubs: string[];
}>;

/** The two nodes and their chains, not started yet: their folder is a new one under the system's temporary folder. */
export function anvilNodes(prefix: string): AnvilNodes {
  const dir = join(tmpdir(), `${prefix}-${randomBytes(4).toString("hex")}`);
  const file = (who: Who) => join(dir, `${who}.json`);
  return { dir, file, nodes: new InProcessNodes<Who>(file, (who) => accountKey(ACCOUNT[who]) as Hex), anvils: [], providers: [], hubs: [] };
}

export type AnvilNodesOptions = Readonly<{
  chainIds: readonly [number, number];
  /** Both chains' finality depth, and the time it takes. */
  confirmations: number;
  finalitySeconds: number;
  /** Both nodes' `timing`. */
  timing: Readonly<Record<string, unknown>>;
  /** More of a node's `api` (metricsPublic, say). */
  api?: (who: Who) => Readonly<Record<string, unknown>>;
  /** The endpoint a node reads chain `i` through (a proxy in front of it, say); by default the anvil's own. */
  rpcUrl?: (i: number, who: Who) => string | undefined;
  /** Where chain `i`'s anvil writes its state when it stops (to bring it back with `loadState`). */
  dumpOnStop?: (i: number) => string;
  /** Run once the chains are up, before the configurations are written (to start a proxy in front of one). */
  prepare?: () => Promise<void>;
}>;

/** Starts both chains, deploys a hub on each, writes both nodes' configurations and starts both nodes. */
export async function startAnvilNodes(t: AnvilNodes, o: AnvilNodesOptions): Promise<void> {
  mkdirSync(t.dir, { recursive: true });
  for (const [i, chainId] of o.chainIds.entries()) {
    const anvil = await startAnvil({ chainId, blockTime: 1, ...(o.dumpOnStop === undefined ? {} : { dumpOnStop: o.dumpOnStop(i) }) });
    t.anvils.push(anvil);
    const provider = anvilProvider(anvil);
    t.providers.push(provider);
    t.hubs.push(await deployHub(provider));
  }
  await o.prepare?.();
  const ports = { alice: await freePort(), bob: await freePort() };
  const apiPorts = { alice: await freePort(), bob: await freePort() };
  const chain = (i: number, who: Who) => ({
    rpcUrl: o.rpcUrl?.(i, who) ?? t.anvils[i]!.url, hub: t.hubs[i],
    confirmations: o.confirmations, finalitySeconds: o.finalitySeconds, inclusionSeconds: 60, clockSkewSeconds: 30,
    fees: { maxFeePerGasGwei: "100", bumpAfterSeconds: 3 },
    assets: { ETH: { address: ZeroAddress, decimals: 18 } },
  });
  const write = (who: Who, peer: Who, pairs: unknown[]) =>
    writeFileSync(t.file(who), JSON.stringify({
      key: { env: `${who.toUpperCase()}_KEY` }, store: `${who}.sqlite`, peer: { port: ports[who] },
      api: { port: apiPorts[who], tokenFile: `${who}.token`, ...o.api?.(who) },
      chains: { source: chain(0, who), target: chain(1, who) },
      peers: { [peer]: { address: ADDRESS[peer], url: `http://127.0.0.1:${ports[peer]}` } },
      policy: { channels: { accept: ["ETH@source", "ETH@target"], minChallengePeriodSeconds: CHALLENGE_PERIOD }, swaps: { pairs, maxInFlight: 8 } },
      timing: o.timing,
    }));
  write("alice", "bob", []);
  write("bob", "alice", [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "2" }]);
  for (const who of ["alice", "bob"] as const) await t.nodes.start(who);
}

/** Stops both nodes and both chains, and removes the test's folder. */
export async function stopAnvilNodes(t: AnvilNodes): Promise<void> {
  await t.nodes.stopAll();
  for (const p of t.providers) p.destroy();
  for (const a of t.anvils) await a.stop();
  rmSync(t.dir, { recursive: true, force: true });
}

/**
 * What a stopped node's store holds of a channel, for a test that plays that party gone hostile: the channel's record,
 * its newest co-signed state, and the oldest older one (a stale state to force-close with).
 */
export function staleState(storePath: string, channelId: string) {
  const store = new Store(storePath);
  try {
    const record = store.channel(channelId as Hex)!;
    const newest = store.latestCoSigned(channelId as Hex)!;
    let stale = undefined as ReturnType<Store["coSignedAt"]>;
    for (let seq = 1n; seq < newest.state.seq && stale === undefined; seq++) stale = store.coSignedAt(channelId as Hex, seq);
    if (stale === undefined) throw new Error(`${storePath} holds no co-signed state of ${channelId} older than the newest`);
    return { record, newest, stale };
  } finally {
    store.close();
  }
}
