import { hexlify, randomBytes, ZeroAddress } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";

import {
  type ChainTiming,
  DeltaTable,
  HubAdapter,
  InMemoryLink,
  keySigner,
  Store,
  SwapClient,
  type ChannelParams,
  type ClientEvent,
  type Envelope,
  type Hex,
  type SwapStep,
  type SwapClientOptions,
  type SwapTerms,
  type Transport,
  hashlockOf,
} from "../../sdk/index.js";
import { TestToken__factory, type TestToken } from "../../typechain-types/index.js";
import { deploySuite, source, target, type Suite } from "./chains.js";

import { accountKey } from "../../scripts/lib/local.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";

export const ONE = 10n ** 18n;
export const TIMING: ChainTiming = { chainId: 0n, finalitySeconds: 60n, inclusionSeconds: 300n, clockSkewSeconds: 60n };

async function sourceSuite() {
  return deploySuite(source);
}
async function targetSuite() {
  return deploySuite(target);
}

/** A token channel on S and a native channel on T between Alice and Bob, funded on both sides. */
export async function fundedChannels() {
  const S = await source.networkHelpers.loadFixture(sourceSuite);
  const T = await target.networkHelpers.loadFixture(targetSuite);
  // Earlier tests may have moved one chain's clock alone: start both from the same time, as real chains are.
  const [nowS, nowT] = [await S.chain.networkHelpers.time.latest(), await T.chain.networkHelpers.time.latest()];
  const start = Math.max(nowS, nowT) + 1;
  await S.chain.networkHelpers.time.increaseTo(start);
  await T.chain.networkHelpers.time.increaseTo(start);
  const token: TestToken = await new TestToken__factory(S.deployer).deploy("Source Token", "SRC");
  await token.mint(S.alice.address, 1_000n * ONE);
  await token.mint(S.bob.address, 1_000n * ONE);
  const sParams: ChannelParams = {
    participants: [S.alice.address, S.bob.address],
    payees: [ZeroAddress, ZeroAddress],
    asset: await token.getAddress(),
    challengePeriod: 3600n,
    nonce: 1n,
  };
  const tParams: ChannelParams = { ...sParams, asset: ZeroAddress };
  const adapters = {
    aliceS: await HubAdapter.connect(await S.hub.getAddress(), S.alice),
    bobS: await HubAdapter.connect(await S.hub.getAddress(), S.bob),
    aliceT: await HubAdapter.connect(await T.hub.getAddress(), T.alice),
    bobT: await HubAdapter.connect(await T.hub.getAddress(), T.bob),
  };
  const sId = await adapters.aliceS.open(sParams);
  await adapters.aliceS.deposit(sParams, sId, 0, 100n * ONE);
  await adapters.bobS.deposit(sParams, sId, 1, 10n * ONE);
  const tId = await adapters.bobT.open(tParams);
  await adapters.aliceT.deposit(tParams, tId, 0, 1n * ONE);
  await adapters.bobT.deposit(tParams, tId, 1, 20n * ONE);
  return { S, T, token, sParams, tParams, sId, tId, adapters };
}

export type Setup = Awaited<ReturnType<typeof fundedChannels>>;

/** A manual client clock, in ms. */
export class ManualClock {
  ms = 1_000_000;
  now = () => this.ms;
  advance(ms: number) {
    this.ms += ms;
  }
}

export type Party = { client: SwapClient; store: Store; events: ClientEvent[]; transport: Transport };

export function makeParty(
  setup: Setup,
  who: "alice" | "bob",
  transport: Transport,
  clock: ManualClock,
  extra: Partial<SwapClientOptions> = {},
  store = new Store(":memory:"),
): Party {
  const events: ClientEvent[] = [];
  const chains = who === "alice" ? [setup.adapters.aliceS, setup.adapters.aliceT] : [setup.adapters.bobS, setup.adapters.bobT];
  const deltas = new DeltaTable(
    new Map([
      [setup.S.chainId, { ...TIMING, chainId: setup.S.chainId }],
      [setup.T.chainId, { ...TIMING, chainId: setup.T.chainId }],
    ]),
  );
  const client = new SwapClient({
    signer: keySigner(accountKey(who === "alice" ? 1 : 2)),
    store,
    transport,
    chains,
    deltas,
    minTargetWindow: 600n,
    onChainMargin: 300n,
    resendIntervalMs: 2_000,
    confirmationTimeoutMs: 10_000,
    clock: clock.now,
    onEvent: (e) => events.push(e),
    ...extra,
  });
  return { client, store, events, transport };
}

/** Adds both channels of the setup to each party (the deposits are not counted yet: `syncDeposits`). */
export async function addChannels(setup: Setup, parties: readonly Party[]) {
  for (const p of parties) {
    await p.client.addChannel(setup.S.chainId, setup.sParams, expectedChannel(setup.sParams, p.client.address));
    await p.client.addChannel(setup.T.chainId, setup.tParams, expectedChannel(setup.tParams, p.client.address));
  }
}

/**
 * Alice and Bob over an in-memory link, both channels added and their ledgers counting the deposits; each on the
 * store given (a file, to restart from it), else one in memory.
 */
export async function twoParties(
  setup: Setup,
  extra: { alice?: Partial<SwapClientOptions>; bob?: Partial<SwapClientOptions>; stores?: { alice?: Store; bob?: Store } } = {},
) {
  const link = new InMemoryLink();
  const clock = new ManualClock();
  const alice = makeParty(setup, "alice", link.a, clock, extra.alice, extra.stores?.alice);
  const bob = makeParty(setup, "bob", link.b, clock, extra.bob, extra.stores?.bob);
  await addChannels(setup, [alice, bob]);
  await syncDeposits([alice.client, bob.client], [setup.sId, setup.tId]);
  return { link, clock, alice, bob };
}

/** From the moment `who` has sent `lastStep` (at once if none), it is gone: nothing from or to it arrives. */
export function cutAfter(link: InMemoryLink, who: "a" | "b", lastStep: SwapStep | undefined) {
  let gone = lastStep === undefined;
  link.fault = (e: Envelope, from) => {
    if (gone) return "drop";
    if (from === who && e.body.step === lastStep) gone = true;
    return "deliver";
  };
}

/** Both chains' latest block numbers: unchanged means nothing touched a chain. */
export async function blockNumbers(setup: Setup): Promise<[number, number]> {
  return [await setup.S.chain.ethers.provider.getBlockNumber(), await setup.T.chain.ethers.provider.getBlockNumber()];
}

export async function increaseBoth(setup: Setup, seconds: number) {
  await setup.S.chain.networkHelpers.time.increase(seconds);
  await setup.T.chain.networkHelpers.time.increase(seconds);
}

export function phaseOf(party: Party, swapId: Hex) {
  return party.client.swap(swapId).progress.phase;
}

export type { Suite, HardhatEthersSigner };

/**
 * Drives the on-chain path: ticks the given parties, lets messages settle and moves both chains' clocks (and the
 * client clock) forward by `stepSeconds`, until `done()` or `maxRounds`.
 */
export async function driveUntil(
  setup: Setup,
  link: InMemoryLink,
  clock: ManualClock,
  parties: readonly Party[],
  done: () => boolean | Promise<boolean>,
  stepSeconds = 600,
  maxRounds = 60,
): Promise<number> {
  for (let round = 0; round < maxRounds; round++) {
    for (const p of parties) await p.client.tick();
    await link.settled();
    if (await done()) return round;
    await increaseBoth(setup, stepSeconds);
    clock.advance(stepSeconds * 1000);
  }
  throw new Error(`not done after ${maxRounds} rounds`);
}

/** Balances on chain of Alice and Bob: [S token, T native]. */
export async function onChainBalances(setup: Setup) {
  const p = setup.T.chain.ethers.provider;
  return {
    aliceS: await setup.token.balanceOf(setup.S.alice.address),
    bobS: await setup.token.balanceOf(setup.S.bob.address),
    aliceT: await p.getBalance(setup.T.alice.address),
    bobT: await p.getBalance(setup.T.bob.address),
  };
}

/** What the hub paid each participant when the channel closed (cooperatively or by settlement). */
export async function payoutsOf(suite: Suite, channelId: Hex): Promise<[bigint, bigint]> {
  const closed = await suite.hub.queryFilter(suite.hub.filters.ChannelClosed(channelId));
  const settled = await suite.hub.queryFilter(suite.hub.filters.ChannelSettled(channelId));
  const event = closed[0] ?? settled[0];
  if (event === undefined) throw new Error(`channel ${channelId} has not closed`);
  return [event.args.payouts[0], event.args.payouts[1]];
}

/**
 * Terms Alice could propose on the setup's channels (S then T) as a hostile initiator crafts them by hand: a random
 * swap id and secret, target lock an hour from T's time, source lock `gap` seconds later.
 */
export async function craftedTerms(setup: Setup, parties: { alice: Party; bob: Party }, give: bigint, take: bigint, gap: bigint): Promise<SwapTerms> {
  const now = BigInt(await setup.T.chain.networkHelpers.time.latest());
  return {
    swapId: hexlify(randomBytes(32)) as Hex,
    source: parties.alice.client.book.record(setup.sId).ref,
    target: parties.alice.client.book.record(setup.tId).ref,
    initiator: parties.alice.client.address,
    responder: parties.bob.client.address,
    give,
    take,
    hashlock: hashlockOf(hexlify(randomBytes(32)) as Hex),
    targetExpiry: now + 3600n,
    sourceExpiry: now + 3600n + gap,
  };
}

/**
 * After both channels of the harness closed: checks that payouts add up to deposits (S 110, T 21) and that Alice's
 * payouts moved by whole swaps of `give` tokens (paid on S) and `take` ether (got on T); returns how many of each.
 */
export async function wholeSwapsSettled(setup: Setup, give: bigint, take: bigint): Promise<{ paid: bigint; got: bigint }> {
  const s = await payoutsOf(setup.S, setup.sId);
  const t = await payoutsOf(setup.T, setup.tId);
  if (s[0] + s[1] !== 110n * ONE || t[0] + t[1] !== 21n * ONE) throw new Error(`payouts ${s} / ${t} do not add up to the deposits`);
  const paid = 100n * ONE - s[0];
  const got = t[0] - ONE;
  if (paid % give !== 0n || got % take !== 0n) throw new Error(`Alice paid ${paid} and got ${got}: not whole swaps`);
  return { paid: paid / give, got: got / take };
}
