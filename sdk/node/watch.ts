/**
 * The watchtower as a service: connects to every chain of a checked configuration, then polls until stopped (or
 * once). Configuration problems only visible on chain (no hub at an address, two entries for one chain) are
 * ConfigErrors too, raised before the first poll.
 */
import { parseUnits, Wallet, type JsonRpcProvider } from "ethers";
import type { FeeEvent, FeePolicy } from "../chain/fees.js";

import { HubAdapter } from "../chain/hub.js";
import { rpcProvider } from "../chain/provider.js";
import { ChannelSdkError, HubAddressError } from "../core/errors.js";
import type { Hex } from "../core/types.js";
import { Store } from "../store/store.js";
import { Watchtower, type ChainWatch, type WatchtowerEvent } from "../watchtower/watchtower.js";
import { ConfigError, type ConfigProblem } from "./errors.js";
import { describeError } from "./main.js";
import type { WatchConfig } from "./watch-config.js";

/** Where the service writes: progress lines, and problems it carries on after. */
export type WatchOutput = Readonly<{ info: (line: string) => void; warn: (line: string) => void }>;

const consoleOutput: WatchOutput = { info: (line) => console.log(line), warn: (line) => console.error(line) };

/**
 * Guards the channels of `config` with the key that pays for challenges, reveals and settlements. Returns after one
 * poll if `config.once`, otherwise polls every `intervalSeconds` for as long as the process runs; a failed poll is
 * reported and retried, a failure before the first poll ends with the error.
 */
export async function runWatch(config: WatchConfig, key: Hex, out: WatchOutput = consoleOutput): Promise<void> {
  const providers = config.chains.map((c) => rpcProvider(c.rpcUrl));
  let store: Store | undefined;
  try {
    const chains = await connectChains(config, key, providers, out);
    store = new Store(config.store);
    const tower = new Watchtower(store, chains, (e) => out.info(`${new Date().toISOString()} ${describeEvent(e)}`));
    let skipped = 0;
    let told = false;
    const round = async (): Promise<void> => {
      if (config.importFrom !== undefined) {
        const elsewhere = importChannels(tower, config.importFrom, told ? undefined : (held) => tellHeld(held, config, out));
        if (elsewhere > 0 && elsewhere !== skipped) {
          out.warn(`${config.importFrom}: ${elsewhere} channel(s) on chains not in ${config.file}, not guarded`);
        }
        skipped = elsewhere;
      } else if (!told) tellHeld(tower.heldWithoutWord(), config, out);
      told = true;
      // Once: the poll waits for what it started (a transaction being mined) before the process ends.
      await tower.poll(config.once ? 600_000 : undefined);
    };
    const ids = chains.map((c) => c.chain.chainId).join(", ");
    out.info(`watching ${store.channels().length} channel(s) on chains ${ids}`);
    await round();
    out.info(`guarding ${store.channels().length} channel(s), ${store.openDisputes().length} open dispute(s)`);
    while (!config.once) {
      await new Promise((r) => setTimeout(r, config.intervalSeconds * 1000));
      try {
        await round();
      } catch (error) {
        out.warn(`${new Date().toISOString()} poll failed, retrying: ${describeError(error).join("; ")}`);
      }
    }
  } finally {
    store?.close();
    for (const p of providers) p.destroy();
  }
}

/**
 * Takes what a client's store holds (opened read-only); returns how many of its channels are on other chains.
 * `held`, if given, is told how many secrets the tower then holds without that store's word.
 */
function importChannels(tower: Watchtower, path: string, held?: (n: number) => void): number {
  const client = new Store(path, { readOnly: true });
  try {
    const elsewhere = client.channels().length - tower.importFrom(client);
    held?.(tower.heldWithoutWord(client));
    return elsewhere;
  } finally {
    client.close();
  }
}

/** Once per run: the secrets the tower's store holds without its client's word (kept from before reveal rules). */
function tellHeld(held: number, config: WatchConfig, out: WatchOutput): void {
  if (held === 0) return;
  const how = config.importFrom === undefined ? "set importFrom to its client's store" : `${config.importFrom} does not know them`;
  out.warn(`${config.store}: ${held} secret(s) held without the client's word (${how}); revealed only once a chain shows them`);
}

/** Each chain's hub, checked: a contract that answers as a hub, on a chain no other entry names. */
async function connectChains(
  config: WatchConfig,
  key: Hex,
  providers: readonly JsonRpcProvider[],
  out: WatchOutput = consoleOutput,
): Promise<ChainWatch[]> {
  const problems: ConfigProblem[] = [];
  const watches: ChainWatch[] = [];
  const seen = new Map<bigint, number>();
  for (const [i, c] of config.chains.entries()) {
    const provider = providers[i]!;
    let chainId: bigint;
    try {
      chainId = (await provider.getNetwork()).chainId;
    } catch (error) {
      // The origin only: a path or query may hold an API key.
      throw new ChannelSdkError(
        `chains[${i}]: no answer from ${new URL(c.rpcUrl).origin}: ${describeError(error).join("; ")}`,
        {
          cause: error,
        },
      );
    }
    const field = `chains[${i}].hub`;
    const other = seen.get(chainId);
    if (other !== undefined) {
      problems.push({ field: `chains[${i}]`, message: `chain ${chainId} is already chains[${other}]` });
      continue;
    }
    seen.set(chainId, i);
    if ((await provider.getCode(c.hub)) === "0x") {
      problems.push({ field, message: `no contract at ${c.hub} on chain ${chainId}` });
      continue;
    }
    try {
      const chain = await HubAdapter.connect(c.hub, new Wallet(key, provider), { fees: watchFees(chainId, c.fees, out) });
      watches.push({
        chain,
        confirmations: c.confirmations,
        clockSkewSeconds: BigInt(c.clockSkewSeconds),
        claimWindowSeconds: BigInt(c.claimWindowSeconds),
      });
    } catch (error) {
      if (!(error instanceof HubAddressError)) throw error;
      const notAHub = `the contract at ${c.hub} on chain ${chainId} is not a ChannelHub`;
      problems.push({ field, message: error.problem === "notAHub" ? notAHub : error.message });
    }
  }
  if (problems.length > 0) throw new ConfigError(config.file, problems);
  return watches;
}

function describeEvent(e: WatchtowerEvent): string {
  switch (e.type) {
    case "dispute":
      return `dispute on ${e.channelId} at state ${e.seq} by ${e.by}`;
    case "secret":
      return `secret of ${e.hashlock} revealed on chain ${e.chainId}`;
    case "carried":
      return `carried the secret of ${e.hashlock} to chain ${e.toChainId}`;
    case "enforced":
      return `${e.channelId}: ${e.step.kind}`;
  }
}

/**
 * The tower's fee policy on one chain, as a node's (docs/CHAINS.md): what an operator must act on is a warning line
 * (the market above the cap, the cap reached, a transaction reorganised out or its nonce taken by another process).
 */
function watchFees(chainId: bigint, fees: WatchConfig["chains"][number]["fees"], out: WatchOutput): FeePolicy {
  const warn = (e: FeeEvent) => {
    const at = `${new Date().toISOString()} chain ${chainId}: ${e.call}`;
    if (e.kind === "capBelowMarket") out.warn(`${at}: the chain asks ${e.marketMaxFeePerGas} wei per gas, above fees.maxFeePerGasGwei (${e.maxFeePerGasCap} wei); raise the cap`);
    else if (e.kind === "capReached") out.warn(`${at} (nonce ${e.nonce}) offers the fee cap and is not mined yet`);
    else if (e.kind === "reorgedOut" || e.kind === "nonceTaken" || e.kind === "resent") out.warn(`${at} (nonce ${e.nonce}): ${e.kind}`);
  };
  return { maxFeePerGasCap: parseUnits(fees.maxFeePerGasGwei, 9), bumpPercent: fees.bumpPercent, bumpAfterMs: fees.bumpAfterSeconds * 1000, onEvent: warn };
}
