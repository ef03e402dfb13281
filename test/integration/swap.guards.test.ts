import { expect } from "chai";
import { hexlify, randomBytes, SigningKey, ZeroAddress } from "ethers";

import {
  addLock,
  ChannelClosingError,
  ChannelTermsError,
  DEFAULT_TIMING_BOUNDS,
  HubAdapter,
  InMemoryLink,
  InvalidTermsError,
  hashlockOf,
  seal,
  signDigest,
  Store,
  termsDigest,
  TimingBoundError,
  type ChannelParams,
  type Envelope,
  type Hex,
  type SwapTerms,
} from "../../sdk/index.js";
import { accountKey } from "../../scripts/lib/local.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";
import {
  blockNumbers,
  craftedTerms,
  driveUntil,
  fundedChannels,
  makeParty,
  ManualClock,
  ONE,
  payoutsOf,
  phaseOf,
  TIMING,
  twoParties,
  type Party,
  type Setup,
} from "../helpers/swapHarness.js";

const GIVE = 10n * ONE; // Alice -> Bob on S (token channel, deposits [100, 10])
const TAKE = ONE / 2n; // Bob -> Alice on T (native channel, deposits [1, 20])
const YEAR = 365n * 24n * 3600n;
/** delta of the harness's chain pair: both chains' inclusion, finality and skew. */
const DELTA = 2n * (TIMING.inclusionSeconds + TIMING.finalitySeconds + TIMING.clockSkewSeconds);

/** Terms as a hostile initiator crafts them, and a way to seal its proposal with Alice's real key. */
async function hostileTerms(setup: Setup, parties: { alice: Party; bob: Party }, change: (now: bigint) => Partial<SwapTerms>) {
  const key = new SigningKey(accountKey(1));
  const sign = (d: Hex) => signDigest(key, d);
  const now = BigInt(await setup.T.chain.networkHelpers.time.latest());
  const terms: SwapTerms = { ...(await craftedTerms(setup, parties, GIVE, TAKE, DELTA)), ...change(now) };
  const envelope: Envelope = seal(sign, terms.initiator, terms.swapId, { step: "propose", terms, termsSig: sign(termsDigest(terms)) });
  return { terms, envelope };
}

/** Bob, as responder with default options, answers a crafted proposal: the reason he refused it, if he did. */
async function bobsAnswer(change: (now: bigint) => Partial<SwapTerms>) {
  const setup = await fundedChannels();
  const parties = await twoParties(setup);
  const before = await blockNumbers(setup);
  const signed = parties.bob.store.highestOwnSeq(setup.sId);
  const { terms, envelope } = await hostileTerms(setup, parties, change);
  await parties.bob.client.handle(envelope);
  await parties.link.settled();
  const phase = phaseOf(parties.bob, terms.swapId);
  expect(parties.bob.store.highestOwnSeq(setup.sId)).to.equal(signed, "Bob signed no state");
  expect(await blockNumbers(setup)).to.deep.equal(before, "nothing went on chain");
  return phase.kind === "done" && phase.outcome === "aborted" ? phase.reason : undefined;
}

describe("lock lifetimes are bounded above (review finding 1)", function () {
  it("refuses, as a responder with default options, a target lock a year away and a source lock a century away", async function () {
    const reason = await bobsAnswer((now) => ({ targetExpiry: now + YEAR, sourceExpiry: now + 100n * YEAR }));
    expect(reason).to.match(/maxTargetLockSeconds/);
  });

  it("refuses a source lock that outlives the target lock by more than delta + slackSeconds", async function () {
    const gap = DELTA + DEFAULT_TIMING_BOUNDS.slackSeconds + 1n;
    const reason = await bobsAnswer((now) => ({ targetExpiry: now + 3600n, sourceExpiry: now + 3600n + gap }));
    expect(reason).to.match(/slackSeconds/);
  });

  it("refuses to propose a lock past the bounds, naming the bound, before anything is signed or sent", async function () {
    const setup = await fundedChannels();
    const { alice, bob } = await twoParties(setup);
    const now = BigInt(await setup.T.chain.networkHelpers.time.latest());
    let error: unknown;
    await alice.client
      .propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE, targetExpiry: now + 2n * DEFAULT_TIMING_BOUNDS.maxTargetLockSeconds })
      .catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(TimingBoundError);
    expect((error as TimingBoundError).bound).to.equal("maxTargetLockSeconds");
    expect(alice.client.swaps()).to.deep.equal([]);
    expect(bob.client.swaps()).to.deep.equal([]);
  });

  it("never signs a state whose lock outlives the lock horizon, whatever asks for it", async function () {
    const setup = await fundedChannels();
    const { bob } = await twoParties(setup);
    const now = BigInt(await setup.S.chain.networkHelpers.time.latest());
    const head = bob.client.book.head(setup.sId);
    const lock = { sender: 0 as const, amount: ONE, hashlock: hashlockOf(hexlify(randomBytes(32)) as Hex), expiry: now + 10n * YEAR };
    const signed = bob.store.highestOwnSeq(setup.sId);
    await setup.adapters.bobS.now(); // Bob's client knows S's time (the horizon is counted from it)
    expect(() => bob.client.book.sign(addLock(head, lock))).to.throw(TimingBoundError, "the timing bounds allow");
    expect(bob.store.highestOwnSeq(setup.sId)).to.equal(signed, "nothing was signed");
  });
});

describe("joining a channel checks its terms (review finding 2)", function () {
  async function openOnS(setup: Setup, change: Partial<ChannelParams>) {
    const params: ChannelParams = { ...setup.sParams, nonce: 77n, ...change };
    const id = await setup.adapters.aliceS.openAndDeposit(params, 0, ONE);
    return { params, id };
  }
  async function bobJoins(setup: Setup, params: ChannelParams, expected = expectedChannel(setup.sParams, setup.S.bob.address), policy = {}) {
    const bob = makeParty(setup, "bob", new InMemoryLink().b, new ManualClock(), { channelPolicy: policy });
    let error: unknown;
    await bob.client.addChannel(setup.S.chainId, params, expected).catch((e: unknown) => (error = e));
    return { bob, error };
  }

  it("refuses a channel that routes our payouts to somebody else, and stores nothing", async function () {
    const setup = await fundedChannels();
    const { params, id } = await openOnS(setup, { payees: [ZeroAddress, setup.S.alice.address] });
    const { bob, error } = await bobJoins(setup, params);
    expect(error).to.be.instanceOf(ChannelTermsError);
    expect((error as ChannelTermsError).field).to.equal("payee");
    expect(bob.client.book.has(id)).to.equal(false);
  });

  it("accepts a payee our policy names", async function () {
    const setup = await fundedChannels();
    const { params, id } = await openOnS(setup, { payees: [ZeroAddress, setup.S.other.address] });
    const { bob, error } = await bobJoins(setup, params, undefined, { payee: setup.S.other.address });
    expect(error).to.equal(undefined);
    expect(bob.client.book.has(id)).to.equal(true);
  });

  it("refuses another asset, a challenge period outside our policy, and a counterparty we did not expect", async function () {
    const setup = await fundedChannels();
    const native = await openOnS(setup, { asset: ZeroAddress });
    expect((await bobJoins(setup, native.params)).error).to.have.property("field", "asset");
    const short = await openOnS(setup, { challengePeriod: 300n, nonce: 78n });
    expect((await bobJoins(setup, short.params)).error).to.have.property("field", "challengePeriod");
    const stranger = { counterparty: setup.S.other.address, asset: setup.sParams.asset };
    const { bob, error } = await bobJoins(setup, { ...setup.sParams }, stranger);
    expect(error).to.have.property("field", "counterparty");
    expect(bob.client.book.has(setup.sId)).to.equal(false);
  });
});

describe("deposits count once final and the same on both sides (review findings 3 and 5)", function () {
  it("never lets a swap spend a deposit that is not final, and a reorg that drops it leaves every state funded", async function () {
    const setup = await fundedChannels();
    await setup.T.chain.networkHelpers.mine(3);
    const snapshot = await setup.T.chain.networkHelpers.takeSnapshot();
    // Bob adds 30 on T; both clients read the hub two blocks deep.
    await setup.adapters.bobT.deposit(setup.tParams, setup.tId, 1, 30n * ONE);
    const deep = async (a: HubAdapter, signer: Setup["T"]["alice"]) => HubAdapter.connect(a.hubAddress, signer, { confirmations: 2 });
    const adapters = {
      ...setup.adapters,
      aliceT: await deep(setup.adapters.aliceT, setup.T.alice),
      bobT: await deep(setup.adapters.bobT, setup.T.bob),
    };
    const { alice, bob } = await twoParties({ ...setup, adapters });
    expect(bob.client.book.head(setup.tId).balances[1]).to.equal(20n * ONE, "the fresh deposit is not counted");
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 40n * ONE }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/Participant 1 has 20000000000000000000 free/);

    await snapshot.restore(); // the deposit is reorged out
    await setup.T.chain.networkHelpers.mine(3);
    await alice.client.tick();
    expect((await setup.T.hub.getChannel(setup.tId)).deposits[1]).to.equal(20n * ONE);
    expect(alice.client.book.head(setup.tId).deposits).to.deep.equal([ONE, 20n * ONE], "every state is still funded on chain");
  });

  it("counts a deposit once it is final, folded in by a co-signed update", async function () {
    const setup = await fundedChannels();
    const deep = (a: HubAdapter, signer: Setup["T"]["alice"]) => HubAdapter.connect(a.hubAddress, signer, { confirmations: 2 });
    const adapters = { ...setup.adapters, aliceT: await deep(setup.adapters.aliceT, setup.T.alice), bobT: await deep(setup.adapters.bobT, setup.T.bob) };
    await setup.T.chain.networkHelpers.mine(3);
    const { alice, bob, link } = await twoParties({ ...setup, adapters });
    await setup.adapters.bobT.deposit(setup.tParams, setup.tId, 1, 30n * ONE);
    await alice.client.tick();
    await link.settled();
    expect(bob.client.book.head(setup.tId).deposits[1]).to.equal(20n * ONE, "one confirmation is not final");
    await setup.T.chain.networkHelpers.mine(2);
    await alice.client.tick();
    await link.settled();
    for (const p of [alice, bob]) expect(p.client.book.head(setup.tId).balances).to.deep.equal([ONE, 50n * ONE]);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 40n * ONE });
    await link.settled();
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
  });

  it("keeps both ledgers equal when a third party deposits between the two parties' joins, and folds later deposits by anyone", async function () {
    const setup = await fundedChannels();
    const link = new InMemoryLink();
    const clock = new ManualClock();
    const alice = makeParty(setup, "alice", link.a, clock);
    const bob = makeParty(setup, "bob", link.b, clock);
    const join = (p: Party, chainId: bigint, params: ChannelParams) => p.client.addChannel(chainId, params, expectedChannel(params, p.client.address));
    await join(alice, setup.S.chainId, setup.sParams);
    await join(alice, setup.T.chainId, setup.tParams);
    const stranger = HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.other);
    await (await stranger).deposit(setup.tParams, setup.tId, 0, 1n); // 1 wei for Alice, between the two joins
    await join(bob, setup.S.chainId, setup.sParams);
    await join(bob, setup.T.chainId, setup.tParams);
    await syncDeposits([alice.client, bob.client], [setup.sId, setup.tId]);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    await (await stranger).deposit(setup.tParams, setup.tId, 1, 5n); // and later, 5 wei for Bob
    await alice.client.tick();
    await link.settled();
    expect(alice.client.book.head(setup.tId)).to.deep.equal(bob.client.book.head(setup.tId));
    expect(bob.client.book.head(setup.tId).deposits).to.deep.equal([ONE + 1n, 20n * ONE + 5n]);
  });
});

describe("deposit updates recover from lost messages", function () {
  it("catches up when the acknowledgement of one update is lost and another deposit arrives before the resend", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const stranger = await HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.other);
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n);
    link.fault = (e) => (e.body.step === "depositsAck" ? "drop" : "deliver");
    await alice.client.tick();
    await link.settled();
    expect(alice.client.book.head(setup.tId).deposits[0]).to.equal(ONE + 1n, "Alice co-signed the first update");
    link.fault = () => "deliver";
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n);
    await alice.client.tick(); // offers the second update while Bob still waits for the first acknowledgement
    await link.settled();
    for (let i = 0; i < 3; i++) {
      clock.advance(2_000); // each side resends its part
      await bob.client.tick();
      await alice.client.tick();
      await link.settled();
    }
    for (const p of [alice, bob]) expect(p.client.book.head(setup.tId).deposits).to.deep.equal([ONE + 2n, 20n * ONE]);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
  });
});

describe("swap terms name two channels of the two parties (review finding 4)", function () {
  it("refuses to propose one channel as both legs, as the proposer's own error, and nothing is signed or sent", async function () {
    const setup = await fundedChannels();
    const { alice, bob } = await twoParties(setup);
    const before = await blockNumbers(setup);
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.sId, give: GIVE, take: TAKE }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(InvalidTermsError);
    expect(alice.client.swaps()).to.deep.equal([]);
    expect(bob.client.swaps()).to.deep.equal([]);
    expect(await blockNumbers(setup)).to.deep.equal(before);
  });

  it("refuses, as responder, terms that name one channel as both legs, and signs nothing", async function () {
    const reason = await bobsAnswer(() => ({}));
    expect(reason).to.equal(undefined, "the well-formed terms are accepted");
    const setup = await fundedChannels();
    const parties = await twoParties(setup);
    const { terms, envelope } = await hostileTerms(setup, parties, () => ({ target: parties.alice.client.book.record(setup.sId).ref }));
    await parties.bob.client.handle(envelope);
    await parties.link.settled();
    const phase = phaseOf(parties.bob, terms.swapId);
    expect(phase.kind === "done" ? phase.reason : "").to.match(/same channel/);
  });
});

describe("secrets go on chain before the force close (review finding 6)", function () {
  it("registers the secret of a lock it receives in the same step as the force close, not a tick later", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice } = await twoParties(setup);
    let revealed = false;
    link.fault = (e) => {
      if (e.body.step === "reveal") revealed = true;
      return revealed ? "drop" : "deliver"; // Bob is gone once Alice has revealed
    };
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(alice, swapId).kind).to.equal("revealed");
    clock.advance(11_000); // past the confirmation timeout
    await alice.client.tick();
    const { terms } = alice.client.swap(swapId);
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(2n, "T force-closed");
    expect(await setup.T.registry.revealedAt(terms.hashlock)).to.not.equal(0n, "and the secret registered in the same tick");
  });
});

/** Alice and Bob with funded channels; Bob's store outlives his process, so he can be started again from it. */
async function bobWillRestart() {
  const setup = await fundedChannels();
  const bobStore = new Store(":memory:");
  const parties = await twoParties(setup, { bob: { store: bobStore } });
  return { setup, ...parties, bobStore };
}

describe("a restarted client resends before it goes on chain (review finding 13)", function () {
  it("finishes off chain when it was down past the confirmation timeout and the counterparty had answered", async function () {
    const { setup, link, clock, alice, bob: first, bobStore } = await bobWillRestart();
    let bob = first;
    link.fault = (e) => (e.body.step === "resolveAck" ? "drop" : "deliver"); // Alice finished; Bob never hears
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    link.fault = () => "deliver";
    const before = await blockNumbers(setup);
    clock.advance(60_000); // Bob's process was down for a minute (timeout 10 s)
    bob = makeParty(setup, "bob", link.b, clock, {}, bobStore);
    await bob.client.tick();
    await link.settled();
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(await blockNumbers(setup)).to.deep.equal(before, "no force close");
  });

  it("still goes on chain at once after a restart when a lock deadline forces it", async function () {
    const { setup, link, clock, alice, bob: first, bobStore } = await bobWillRestart();
    let bob = first;
    link.fault = (e) => (e.body.step === "resolveAck" ? "drop" : "deliver");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    link.fault = () => "drop"; // Alice is gone too
    const { terms } = bob.client.swap(swapId);
    const nowS = BigInt(await setup.S.chain.networkHelpers.time.latest());
    await setup.S.chain.networkHelpers.time.increase(Number(terms.sourceExpiry - nowS - 200n)); // inside onChainMargin
    bob = makeParty(setup, "bob", link.b, clock, {}, bobStore);
    await bob.client.tick();
    expect(phaseOf(bob, swapId)).to.deep.include({ kind: "settlingOnChain", reason: "nearExpiry" });
  });
});

describe("closing a channel (review findings 14 and 15)", function () {
  it("refuses a swap on a channel whose close is in progress, resends the lost close request, and closes cooperatively", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    link.fault = (e) => (e.body.step === "closeRequest" ? "drop" : "deliver");
    await alice.client.requestClose(setup.sId);
    await link.settled();
    const swapId = await bob.client.propose({ source: setup.tId, target: setup.sId, give: TAKE, take: GIVE });
    await link.settled();
    const phase = phaseOf(bob, swapId);
    expect(phase.kind === "done" && phase.outcome).to.equal("aborted");
    expect(phase.kind === "done" ? phase.reason : "").to.match(/close in progress/);
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(ChannelClosingError);

    link.fault = () => "deliver";
    const landed = alice.client.whenClosed(setup.sId);
    clock.advance(2_000);
    await alice.client.tick();
    await link.settled();
    await landed;
    expect(await setup.S.hub.queryFilter(setup.S.hub.filters.ChannelForceClosed())).to.have.length(0);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([100n * ONE, 10n * ONE]);
    await bob.client.tick();
    await bob.client.whenClosed(setup.sId);
  });

  it("closes cooperatively when participant 1 asks to close while participant 0 offers a deposit update", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const stranger = await HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.other);
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n);
    link.fault = () => "drop"; // both ask before either hears the other
    await alice.client.tick(); // offers to count the 1 wei
    await bob.client.requestClose(setup.tId); // signs the final state at the same sequence number
    link.fault = () => "deliver";
    clock.advance(2_000);
    await alice.client.tick(); // resends the offer: Bob, closing, does not sign it
    await bob.client.tick(); // resends the close request: Alice drops her offer and co-signs; Bob lands it
    await link.settled();
    await alice.client.tick(); // sees the channel closed
    await Promise.all([alice.client.whenClosed(setup.tId), bob.client.whenClosed(setup.tId)]);
    expect(await setup.T.hub.queryFilter(setup.T.hub.filters.ChannelForceClosed())).to.have.length(0);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE + 1n, 20n * ONE], "the uncounted wei goes back to Alice");
  });

  it("closes cooperatively when both parties ask at once", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    link.fault = () => "drop";
    await alice.client.requestClose(setup.sId);
    await bob.client.requestClose(setup.sId);
    link.fault = () => "deliver";
    clock.advance(2_000);
    await alice.client.tick();
    await bob.client.tick();
    await link.settled();
    for (const p of [alice, bob]) await p.client.tick();
    await Promise.all([alice.client.whenClosed(setup.sId), bob.client.whenClosed(setup.sId)]);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([100n * ONE, 10n * ONE]);
  });

  it("keeps the co-signed final state when landing it fails, and lands it on a later tick", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob, clock } = await twoParties(setup);
    const events: string[] = [];
    // Alice's adapter on T fails once, as a node that does not answer would.
    const adapter = setup.adapters.aliceT;
    const real = adapter.closeCooperatively.bind(adapter);
    let failures = 1;
    adapter.closeCooperatively = async (...args) => {
      if (failures-- > 0) throw new Error("the node did not answer");
      return real(...args);
    };
    alice.events.length = 0;
    await alice.client.requestClose(setup.tId);
    await link.settled();
    for (const e of alice.events) events.push(e.type);
    expect(events).to.include("tickError");
    expect(alice.client.book.latest(setup.tId)?.state.isFinal).to.equal(true, "the co-signed final state is kept");
    clock.advance(1_000);
    await alice.client.tick();
    await alice.client.whenClosed(setup.tId);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE, 20n * ONE]);
    expect(bob.client.book.latest(setup.tId)?.state.isFinal).to.equal(true);
  });

  it("answers a dispute on one channel even when another channel's operation keeps failing", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    // Bob's landing of T's close keeps failing (no gas on T, say) ...
    setup.adapters.bobT.closeCooperatively = async () => {
      throw new Error("insufficient funds for gas");
    };
    link.fault = (e) => (e.body.step === "closeAck" ? "drop" : "deliver");
    await alice.client.requestClose(setup.tId);
    await link.settled();
    // ... while Alice force-closes S with the state from before the swap (she had 100, now 90).
    await setup.adapters.aliceS.forceClose(setup.sParams, undefined);
    clock.advance(11_000); // Alice went quiet: Bob tries to land T's close every tick from now on
    let error: unknown;
    await bob.client.tick().catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/insufficient funds for gas/);
    const info = await setup.S.hub.getChannel(setup.sId);
    expect(info.seq).to.equal(bob.client.book.head(setup.sId).seq, "Bob answered the stale state");
  });

  it("lands the co-signed final state as the responder when the requester goes quiet", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    link.fault = (e) => (e.body.step === "closeAck" ? "drop" : "deliver"); // and Alice is gone after asking
    await alice.client.requestClose(setup.tId);
    await link.settled();
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(1n, "still open");
    clock.advance(11_000);
    await bob.client.tick();
    await bob.client.whenClosed(setup.tId);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE, 20n * ONE]);
  });

  it("force-closes an idle channel through the API and settles it after the challenge period", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(bob, swapId).kind).to.equal("done");
    await alice.client.forceClose(setup.sId);
    expect((await setup.S.hub.getChannel(setup.sId)).status).to.equal(2n, "disputed");
    let closed = false;
    void alice.client.whenClosed(setup.sId).then(() => (closed = true));
    await driveUntil(setup, link, clock, [alice], () => closed, 1200, 10);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([90n * ONE, 20n * ONE]);
  });
});
