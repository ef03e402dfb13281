/**
 * Clocks: two anvil chains whose block timestamps are offset from each other by a chain's `clockSkewSeconds` (60 s
 * here), one way or the other, and two SwapClients over an in-memory link whose counterparty goes silent. Every
 * decision on the on-chain path is made from chain time, each by the clock of the chain the lock is on: the
 * initiator does not reveal with too little time left on T by T's clock (it undoes the swap), a responder whose
 * source chain runs behind still claims the S lock before its expiry by S's clock, and no lock is refunded (taken on
 * chain for it, or settled) before its expiry by its own chain's clock, whatever the other chain's clock says.
 * The clients' own clock moves only for a resend: no wall-clock patience runs out, only chain time decides.
 */
import { expect } from "chai";
import { Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";
import {
  DeltaTable,
  HubAdapter,
  InMemoryLink,
  keySigner,
  Store,
  SwapClient,
  type ChainTiming,
  type ChannelParams,
  type ClientEvent,
  type Envelope,
  type Hex,
} from "../../sdk/index.js";
import type { Counterparties } from "../../sdk/coordinator/counterparties.js";
import { anvilProvider, startAnvil, type Anvil } from "../helpers/anvil.js";

const ONE = 10n ** 18n;
const SKEW = 60n; // each chain's clockSkewSeconds: the two clocks may be 120 s apart
const TIMING = { finalitySeconds: 60n, inclusionSeconds: 300n, clockSkewSeconds: SKEW }; // delta 840 s
const MIN_TARGET_WINDOW = 600n;
const ON_CHAIN_MARGIN = 300n;
const CHALLENGE_PERIOD = 300n; // the hub's least

type Party = { client: SwapClient; events: ClientEvent[]; adapters: { S: HubAdapter; T: HubAdapter } };
type World = {
  anvils: { S: Anvil; T: Anvil };
  providers: JsonRpcProvider[];
  link: InMemoryLink;
  alice: Party;
  bob: Party;
  sId: Hex;
  tId: Hex;
  clientMs: { ms: number };
};

const pairsOf = (p: Party): Counterparties => (p.client as unknown as { batched: Counterparties }).batched;

/** Both chains' latest block time. */
async function times(w: World): Promise<{ S: bigint; T: bigint }> {
  return { S: await w.alice.adapters.S.now(), T: await w.alice.adapters.T.now() };
}

/** Moves both chains on by `seconds` (a block each), keeping their offset. */
async function increaseBoth(w: World, seconds: bigint) {
  for (const a of [w.anvils.S, w.anvils.T]) {
    await a.rpc("evm_increaseTime", [Number(seconds)]);
    await a.rpc("evm_mine", []);
  }
}

/** Two anvil chains (T's clock `offsetT` seconds from S's), a native channel on each, Alice and Bob's clients. */
async function world(offsetT: bigint): Promise<World> {
  const S = await startAnvil({ chainId: 31_431 });
  const T = await startAnvil({ chainId: 31_432 });
  const providers = [anvilProvider(S), anvilProvider(T)];
  const hubs = [await deployHub(providers[0]!), await deployHub(providers[1]!)];
  // The offset: T's clock ahead of S's (offsetT > 0) or behind it (S moved on instead).
  const ahead = offsetT > 0n ? T : S;
  await ahead.rpc("evm_increaseTime", [Number(offsetT > 0n ? offsetT : -offsetT)]);
  await ahead.rpc("evm_mine", []);
  const party = async (i: 1 | 2) => {
    const connect = (c: 0 | 1) => HubAdapter.connect(hubs[c]!, new Wallet(accountKey(i), providers[c]!), { confirmations: 0 });
    return { S: await connect(0), T: await connect(1) };
  };
  const [a, b] = [await party(1), await party(2)];
  const params = (asset: string): ChannelParams => ({
    participants: [new Wallet(accountKey(1)).address, new Wallet(accountKey(2)).address],
    payees: [ZeroAddress, ZeroAddress],
    asset,
    challengePeriod: CHALLENGE_PERIOD,
    nonce: 1n,
  });
  const sParams = params(ZeroAddress);
  const tParams = params(ZeroAddress);
  const sId = await a.S.open(sParams);
  await a.S.deposit(sParams, sId, 0, 10n * ONE);
  const tId = await b.T.open(tParams);
  await b.T.deposit(tParams, tId, 1, 10n * ONE);
  const link = new InMemoryLink();
  const clientMs = { ms: 1_000_000 };
  const [chainS, chainT] = [(await providers[0]!.getNetwork()).chainId, (await providers[1]!.getNetwork()).chainId];
  const deltas = new DeltaTable(new Map<bigint, ChainTiming>([[chainS, { ...TIMING, chainId: chainS }], [chainT, { ...TIMING, chainId: chainT }]]));
  const make = (i: 1 | 2, adapters: { S: HubAdapter; T: HubAdapter }): Party => {
    const events: ClientEvent[] = [];
    const client = new SwapClient({
      signer: keySigner(accountKey(i)),
      store: new Store(":memory:"),
      transport: i === 1 ? link.a : link.b,
      chains: [adapters.S, adapters.T],
      deltas,
      minTargetWindow: MIN_TARGET_WINDOW,
      onChainMargin: ON_CHAIN_MARGIN,
      resendIntervalMs: 2_000,
      confirmationTimeoutMs: 3_600_000, // no wall-clock patience runs out here: only chain time decides
      clock: () => clientMs.ms,
      channelPolicy: { minChallengePeriod: CHALLENGE_PERIOD },
      onEvent: (e) => events.push(e),
    });
    return { client, events, adapters };
  };
  const alice = make(1, a);
  const bob = make(2, b);
  for (const p of [alice, bob]) {
    await p.client.addChannel(chainS, sParams, expectedChannel(sParams, p.client.address));
    await p.client.addChannel(chainT, tParams, expectedChannel(tParams, p.client.address));
  }
  await syncDeposits([alice.client, bob.client], [sId, tId]);
  return { anvils: { S, T }, providers, link, alice, bob, sId, tId, clientMs };
}

async function close(w: World | undefined) {
  if (w === undefined) return;
  for (const p of w.providers) p.destroy();
  await w.anvils.S.stop();
  await w.anvils.T.stop();
}

/** Ticks `parties` and lets the link carry what they send. */
async function tick(w: World, ...parties: Party[]) {
  for (const p of parties) {
    await p.client.tick();
    await w.link.settled();
    await p.client.idle();
    await w.link.settled();
  }
}

const chainSteps = (p: Party, channelId: Hex) =>
  p.events.flatMap((e) => (e.type === "chain" && e.channelId.toLowerCase() === channelId.toLowerCase() ? [e.step.kind] : []));

describe("clocks: two anvil chains offset by a chain's clock skew, the counterparty silent", function () {
  this.timeout(60_000);
  let w: World | undefined;
  afterEach(async function () {
    await close(w);
    w = undefined;
  });

  it("an initiator whose target chain runs 60 s ahead undoes the swap with 570 s left on T by T's clock (630 s by S's), and never reveals", async function () {
    w = await world(SKEW);
    const { link, alice, bob, sId, tId } = w;
    // Bob holds back his ask for the T lock until little time is left on T.
    let hold = true;
    link.fault = (e: Envelope, from) => (hold && from === "b" && e.swapId === tId && e.body.step === "batch" && e.body.message.kind === "request" ? "drop" : "deliver");
    const id = await alice.client.propose({ source: sId, target: tId, give: ONE, take: ONE / 2n });
    await link.settled();
    await alice.client.idle();
    const { hashlock, targetExpiry } = alice.client.swap(id).terms;
    const before = await times(w);
    expect(before.T - before.S, "T runs ahead of S").to.be.within(SKEW - 2n, SKEW + 2n);
    await increaseBoth(w, targetExpiry - before.T - (MIN_TARGET_WINDOW - 30n));
    const now = await times(w);
    expect(targetExpiry - now.T, "by T's clock, less than minTargetWindow left").to.be.lessThan(MIN_TARGET_WINDOW);
    expect(targetExpiry - now.S, "by S's clock, enough").to.be.at.least(MIN_TARGET_WINDOW);
    hold = false;
    w.clientMs.ms += 2_500; // Bob resends his ask
    await tick(w, alice, bob, alice, bob);
    const tLocked = pairsOf(alice).engine(tId).head(tId).locks.some((l) => l.hashlock === hashlock);
    const side = pairsOf(alice).engine(sId).side(hashlock);
    expect(tLocked || side?.target === "refunded", "the T lock reached Alice").to.equal(true);
    expect({ cancelled: side?.cancelled, revealed: side?.revealed }, "Alice undid the swap").to.deep.equal({ cancelled: true, revealed: false });
    expect(pairsOf(bob).engine(sId).side(hashlock)?.secret, "Bob never learned the secret").to.equal(undefined);
    expect(await alice.adapters.T.revealedAt(hashlock), "nothing revealed on T").to.equal(0n);
  });

  it("a responder whose source chain runs 60 s behind claims the S lock before its expiry by S's clock, after the initiator revealed on T 10 s before tT by T's clock", async function () {
    w = await world(SKEW); // S behind T
    const { link, alice, bob, sId, tId } = w;
    // Alice answers Bob until her T lock is co-signed; from then on nothing of hers reaches him (the secret neither).
    let silent = false;
    link.fault = (_e: Envelope, from) => (silent && from === "a" ? "drop" : "deliver");
    const id = await alice.client.propose({ source: sId, target: tId, give: ONE, take: ONE / 2n });
    const { hashlock, targetExpiry, sourceExpiry } = alice.client.swap(id).terms;
    const tLocked = () => pairsOf(alice).engine(tId).head(tId).locks.some((l) => l.hashlock === hashlock);
    link.fault = (e: Envelope, from) => {
      if (from === "a" && tLocked()) silent = true;
      return silent && from === "a" ? "drop" : "deliver";
    };
    await link.settled();
    await alice.client.idle();
    await link.settled();
    expect(tLocked(), "the T lock is in Alice's co-signed head").to.equal(true);
    expect(pairsOf(bob).engine(sId).side(hashlock)?.secret, "Bob has not had the secret").to.equal(undefined);

    // T's clock to 10 s before tT: Alice claims on T (the reveal in time by T's clock).
    await increaseBoth(w, targetExpiry - (await times(w)).T - 10n);
    await tick(w, alice);
    const revealedT = await alice.adapters.T.revealedAt(hashlock);
    expect(revealedT, "Alice revealed on T").to.be.greaterThan(0n);
    expect(revealedT, "no later than tT by T's clock").to.be.at.most(targetExpiry);

    // Bob sees it after T's inclusion and finality (360 s): by S's clock, running behind, tS is 550 s away.
    await increaseBoth(w, TIMING.inclusionSeconds + TIMING.finalitySeconds);
    const at = await times(w);
    expect(at.T - at.S, "S runs behind T").to.be.within(SKEW - 2n, SKEW + 2n);
    await tick(w, bob);
    const revealedS = await bob.adapters.S.revealedAt(hashlock);
    expect(revealedS, "Bob revealed on S").to.be.greaterThan(0n);
    expect(revealedS, `before tS by S's clock (${sourceExpiry - revealedS}s to spare)`).to.be.at.most(sourceExpiry);
    expect(sourceExpiry - revealedS).to.be.at.least(sourceExpiry - targetExpiry - TIMING.inclusionSeconds - TIMING.finalitySeconds - SKEW - 15n);
  });

  it("nobody refunds a lock before its expiry by its own chain's clock: T running 60 s behind S, nor S's lock once its challenge period is over", async function () {
    w = await world(-SKEW); // T behind S
    const { link, alice, bob, sId, tId } = w;
    // Alice signs the batch with the T lock (on T she proposes, Bob acknowledges) and then is gone: she never
    // reveals, off chain or on.
    let gone = false;
    link.fault = (e: Envelope, from) => {
      if (from !== "a") return "deliver";
      if (gone) return "drop";
      if (e.swapId === tId && e.body.step === "batch" && e.body.message.kind === "update") gone = true;
      return "deliver";
    };
    const id = await alice.client.propose({ source: sId, target: tId, give: ONE, take: ONE / 2n });
    await link.settled();
    await bob.client.idle();
    await link.settled();
    const { hashlock, targetExpiry, sourceExpiry } = alice.client.swap(id).terms;
    expect(gone, "Alice signed the T lock").to.equal(true);
    expect(pairsOf(bob).engine(tId).head(tId).locks.some((l) => l.hashlock === hashlock), "the T lock co-signed for Bob").to.equal(true);

    // S's clock 30 s past tT, T's clock 30 s before it: Bob does not go on chain.
    await increaseBoth(w, targetExpiry - (await times(w)).T - 30n);
    let at = await times(w);
    expect(at.S - targetExpiry, "S's clock past tT").to.be.greaterThan(0n);
    await tick(w, bob);
    expect([...chainSteps(bob, tId), ...chainSteps(bob, sId)], `no on-chain step with ${targetExpiry - at.T}s left on T`).to.deep.equal([]);
    expect((await bob.adapters.T.channelInfo(tId)).status).to.equal("open");

    // Past tT by T's clock: Bob takes T (and S, tied by the swap) on chain.
    await increaseBoth(w, 60n);
    await tick(w, bob);
    expect((await bob.adapters.T.channelInfo(tId)).status, "T force-closed past tT").to.equal("disputed");
    expect((await bob.adapters.T.now()) > targetExpiry).to.equal(true);

    // The challenge periods over (S's clock still before tS): T settles with the T lock refunded, S waits for tS.
    await increaseBoth(w, CHALLENGE_PERIOD + 5n);
    at = await times(w);
    expect(at.S, "S before tS").to.be.lessThan(sourceExpiry);
    await tick(w, bob, bob);
    expect((await bob.adapters.T.channelInfo(tId)).status, "T settled").to.equal("closed");
    expect((await bob.adapters.S.channelInfo(sId)).status, `S waits: ${sourceExpiry - at.S}s to tS by S's clock`).to.equal("disputed");
    expect(chainSteps(bob, sId)).to.not.include("settled");

    // Past tS by S's clock, S settles (the S lock back to Alice: Bob never had the secret).
    await increaseBoth(w, sourceExpiry - (await times(w)).S + 1n);
    await tick(w, bob, bob);
    expect((await bob.adapters.S.channelInfo(sId)).status, "S settled past tS").to.equal("closed");
    expect(await bob.adapters.S.revealedAt(hashlock), "nothing revealed on S").to.equal(0n);
  });
});
