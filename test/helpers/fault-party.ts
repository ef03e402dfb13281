/**
 * One party of test/integration/faults.processes.test.ts in an OS process of its own: a SwapClient with a store
 * file, an HttpTransport on loopback whose peer is the test's lossy relay, and a tick on an interval. Alice (account
 * 1) also proposes swaps, one at a time, until she has done `swaps` of them.
 *
 * Configured by FAULT_PARTY (codec JSON of `PartyConfig`). The process loads its modules and then waits for a
 * `{"cmd":"go"}` line on stdin before it opens the store: the test keeps such a warm stand-by ready while the
 * previous process of the party is down, so a restart costs the store and chain set-up only.
 *
 * stdin, one JSON object per line: go | exit | stopSwaps | close {channel} | propose {source, target, give, take}.
 * stdout, one JSON object per line: loaded, ready {url}, phase {swapId, role, kind, outcome?, reason?},
 * chain {swapId?, channelId, step}, closed {channelId, cooperative}, rejected {swapId, reason}, proposed {swapId},
 * closeRequested {channel}, handlerError {message}, error {where, message}, swapsDone {done}, stuck {why}.
 * Amounts in commands are decimal strings (wei).
 */
import { createInterface } from "node:readline";

import {
  decode,
  DeltaTable,
  HttpTransport,
  HubAdapter,
  keySigner,
  rpcProvider,
  Store,
  SwapClient,
  type ChannelParams,
  type ClientEvent,
  type Hex,
} from "../../sdk/index.js";
import { accountKey, localWallet } from "../../scripts/lib/local.js";
import { expectedChannel } from "../../scripts/lib/swap-setup.js";
import { prng } from "./prng.js";

/** One channel pair between Alice and Bob: a channel on S and one on T. */
export type PairConfig = Readonly<{ sParams: ChannelParams; tParams: ChannelParams; sId: Hex; tId: Hex }>;

export type PartyConfig = Readonly<{
  who: 1 | 2;
  rpc: { S: string; T: string };
  hubs: { S: string; T: string };
  chainIds: { S: bigint; T: bigint };
  pairs: readonly PairConfig[];
  storePath: string;
  /** Where this party's transport sends: the relay's port for this party. */
  relayUrl: string;
  resendIntervalMs: number;
  confirmationTimeoutMs: number;
  tickMs: number;
  /** Swaps to propose and finish (Alice); 0 for a party that only answers. */
  swaps: number;
  /** Seeds the amounts Alice proposes (with the number of swaps she already proposed, so restarts agree). */
  seed: number;
  /**
   * Chains that misbehave (anvil with chain faults): the finality depth the client reads at, and its fee policy's cap
   * (gwei); every deadline transaction then goes through fee escalation, as a node's does.
   */
  chain?: { confirmations: number; maxFeePerGasGwei: number };
}>;

const config = decode<PartyConfig>(process.env.FAULT_PARTY ?? "");
const ONE_MILLI = 10n ** 15n;

function say(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
}
const message = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The channels this party adds: every pair's S and T channel. */
function channelsOf(c: PartyConfig): { chainId: bigint; params: ChannelParams }[] {
  return c.pairs.flatMap((p) => [
    { chainId: c.chainIds.S, params: p.sParams },
    { chainId: c.chainIds.T, params: p.tParams },
  ]);
}

/** The one place channels are added to the client (its signature is about to gain a third argument). */
async function addChannels(client: SwapClient, c: PartyConfig): Promise<void> {
  for (const { chainId, params } of channelsOf(c)) await client.addChannel(chainId, params, expectedChannel(params, client.address));
}

function report(event: ClientEvent): void {
  switch (event.type) {
    case "phase": {
      const { phase } = event;
      say({
        ev: "phase",
        swapId: event.swapId,
        role: event.role,
        kind: phase.kind,
        outcome: phase.kind === "done" ? phase.outcome : undefined,
        reason: phase.kind === "done" || phase.kind === "settlingOnChain" ? phase.reason : undefined,
      });
      return;
    }
    case "chain":
      say({ ev: "chain", swapId: event.swapId, channelId: event.channelId, step: event.step.kind });
      return;
    case "closed":
      say({ ev: "closed", channelId: event.channelId, cooperative: event.cooperative });
      return;
    case "rejected":
      say({ ev: "rejected", swapId: event.swapId, reason: event.reason });
      return;
  }
}


// ------------------------------------------------------------------ stand-by until "go"

const lines = createInterface({ input: process.stdin });
const commands: Record<string, unknown>[] = [];
let wake: (() => void) | undefined;
lines.on("line", (line) => {
  if (line.trim() === "") return;
  try {
    commands.push(JSON.parse(line) as Record<string, unknown>);
  } catch {
    say({ ev: "error", where: "stdin", message: `not JSON: ${line}` });
  }
  wake?.();
});
lines.on("close", () => {
  commands.push({ cmd: "exit" });
  wake?.();
});
async function nextCommand(): Promise<Record<string, unknown>> {
  while (commands.length === 0) await new Promise<void>((resolve) => (wake = resolve));
  return commands.shift()!;
}

say({ ev: "loaded", pid: process.pid });
for (;;) {
  const first = await nextCommand();
  if (first.cmd === "go") break;
  if (first.cmd === "exit") process.exit(0);
}

// ------------------------------------------------------------------ the client

const providers = { S: rpcProvider(config.rpc.S), T: rpcProvider(config.rpc.T) };
const chainOptions =
  config.chain === undefined
    ? { timeCacheMs: 1_000 }
    : {
        timeCacheMs: 1_000,
        confirmations: config.chain.confirmations,
        fees: { maxFeePerGasCap: BigInt(config.chain.maxFeePerGasGwei) * 10n ** 9n, bumpAfterMs: 2_000, minBumpAfterMs: 500, pollMs: 250 },
      };
/**
 * What reads the chains at start, tried again while a chain's endpoint does not answer (an RPC outage of the soak),
 * for up to a minute: a node started during an outage waits for its chains too (sdk/node/start.ts).
 */
async function whenAnswering<T>(what: () => Promise<T>): Promise<T> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      return await what();
    } catch (error) {
      if (Date.now() > until) throw error;
      await sleep(500);
    }
  }
}
const chains: [HubAdapter, HubAdapter] = [
  await whenAnswering(() => HubAdapter.connect(config.hubs.S, localWallet(config.who, providers.S), chainOptions)),
  await whenAnswering(() => HubAdapter.connect(config.hubs.T, localWallet(config.who, providers.T), chainOptions)),
];
const timing = (chainId: bigint) => ({ chainId, finalitySeconds: 12n, inclusionSeconds: 60n, clockSkewSeconds: 30n });
const store = new Store(config.storePath);
const transport = await HttpTransport.start(0, config.relayUrl, { timeoutMs: 2_000 });
const client = new SwapClient({
  signer: keySigner(accountKey(config.who)),
  store,
  transport,
  chains,
  deltas: new DeltaTable(new Map(chains.map((c) => [c.chainId, timing(c.chainId)]))),
  minTargetWindow: 600n,
  onChainMargin: 120n,
  resendIntervalMs: config.resendIntervalMs,
  confirmationTimeoutMs: config.confirmationTimeoutMs,
  onEvent: report,
});
await whenAnswering(() => addChannels(client, config));
say({ ev: "ready", url: transport.url, pid: process.pid });

let stopping = false;
let stopSwaps = config.swaps === 0;

/** Errors the transport kept from handling received messages (an invalid or refused message changes nothing). */
let errorsSeen = 0;
function reportHandlerErrors(): void {
  while (errorsSeen < transport.errors.length) say({ ev: "handlerError", message: message(transport.errors[errorsSeen++]) });
}

async function tickLoop(): Promise<void> {
  while (!stopping) {
    try {
      await client.tick();
    } catch (error) {
      say({ ev: "error", where: "tick", message: message(error) });
    }
    reportHandlerErrors();
    await sleep(config.tickMs);
  }
}

/** Swap kinds still on the off-chain path (Alice waits for each to end before the next one). */
const OFF_CHAIN = new Set(["proposed", "accepted", "sourceLockSent", "targetLockSent", "locked", "revealed", "resolveSent"]);
const closedOnChain = new Set<string>();

async function channelOpen(chain: HubAdapter, channelId: Hex): Promise<boolean> {
  if (closedOnChain.has(channelId)) return false;
  const open = (await chain.channelInfo(channelId)).status === "open";
  if (!open) closedOnChain.add(channelId);
  return open;
}

/** Alice: one swap at a time, over the pairs in turn, alternating the direction, until `swaps` are done. */
async function swapLoop(): Promise<void> {
  const [chainS, chainT] = chains;
  // Bounded by the proposals it makes; waiting for a swap to end is bounded by the confirmation timeout (every
  // off-chain phase of the initiator ends in an abort or on chain) and by the test, which stops the loop.
  for (let tries = 0; tries < 20 * Math.max(1, config.swaps) && !stopping && !stopSwaps; ) {
    const mine = client.swaps().filter((s) => s.role === "initiator");
    const done = mine.filter((s) => s.progress.phase.kind === "done" && s.progress.phase.outcome === "swapped").length;
    if (done >= config.swaps) {
      say({ ev: "swapsDone", done });
      return;
    }
    if (mine.some((s) => OFF_CHAIN.has(s.progress.phase.kind))) {
      await sleep(20);
      continue;
    }
    tries++;
    const n = mine.length;
    const random = prng(config.seed * 7919 + n);
    let proposed = false;
    for (let k = 0; k < config.pairs.length && !proposed; k++) {
      const pair = config.pairs[(n + k) % config.pairs.length]!;
      if (store.channelBusy(pair.sId) || store.channelBusy(pair.tId)) continue;
      if (!(await channelOpen(chainS, pair.sId)) || !(await channelOpen(chainT, pair.tId))) continue;
      // Even swaps give on S for T, odd ones back; amounts of 10-200 milli-coins, within both balances.
      const forward = n % 2 === 0;
      const [source, target] = forward ? [pair.sId, pair.tId] : [pair.tId, pair.sId];
      const mineOn = (id: Hex) => client.book.head(id).balances[client.book.myIndex(id)];
      const theirsOn = (id: Hex) => client.book.head(id).balances[client.book.myIndex(id) === 0 ? 1 : 0];
      const want = (cap: bigint) => {
        const x = BigInt(10 + Math.floor(random() * 190)) * ONE_MILLI;
        return x < cap ? x : cap;
      };
      const give = want(mineOn(source));
      const take = want(theirsOn(target));
      if (give <= 0n || take <= 0n) continue;
      try {
        const swapId = await client.propose({ source, target, give, take });
        say({ ev: "proposed", swapId, source, target, give, take });
        proposed = true;
      } catch (error) {
        say({ ev: "error", where: "propose", message: message(error) });
      }
    }
    if (!proposed) {
      const anyOpen = (
        await Promise.all(config.pairs.map(async (p) => (await channelOpen(chainS, p.sId)) && (await channelOpen(chainT, p.tId))))
      ).some(Boolean);
      if (!anyOpen) {
        say({ ev: "stuck", why: "no channel pair is open any more" });
        return;
      }
      await sleep(200);
    } else {
      await sleep(5);
    }
  }
}

async function commandLoop(): Promise<void> {
  while (!stopping) {
    const c = await nextCommand();
    try {
      if (c.cmd === "exit") {
        stopping = true;
      } else if (c.cmd === "stopSwaps") {
        stopSwaps = true;
      } else if (c.cmd === "close") {
        await client.requestClose(c.channel as Hex);
        say({ ev: "closeRequested", channel: c.channel });
      } else if (c.cmd === "propose") {
        const swapId = await client.propose({
          source: c.source as Hex,
          target: c.target as Hex,
          give: BigInt(c.give as string),
          take: BigInt(c.take as string),
        });
        say({ ev: "proposed", swapId, source: c.source, target: c.target });
      }
    } catch (error) {
      say({ ev: "error", where: String(c.cmd), message: message(error) });
    }
  }
}

const ticking = tickLoop();
const swapping = config.swaps > 0 ? swapLoop() : Promise.resolve();
await commandLoop();
await Promise.all([ticking, swapping]);
await transport.close();
store.close();
providers.S.destroy();
providers.T.destroy();
process.exit(0);
