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
  type SwapBody,
  type SwapTerms,
} from "../../sdk/index.js";
import type { Change, UpdateMessage } from "../../sdk/core/channel-updates.js";
import { accountKey } from "../../scripts/lib/local.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";
import {
  blockNumbers,
  craftedTerms,
  driveUntil,
  fundedChannels,
  increaseBoth,
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

// Alice is participant 0 of both channels: she puts every batch together on S and T (the proposer), and Bob
// acknowledges each batch or asks her for the changes he wants (requests).

/** Whether `e` is a message of the update scheme on `channelId` of `kind`, carrying a change of `change` if given. */
function isBatch(e: Envelope, channelId: Hex, kind: UpdateMessage["kind"], change?: Change["kind"]): boolean {
  if (e.body.step !== "batch" || e.swapId.toLowerCase() !== channelId.toLowerCase() || e.body.message.kind !== kind) return false;
  const m = e.body.message;
  return change === undefined || ((m.kind === "update" || m.kind === "request") && m.changes.some((c) => c.kind === change));
}

/** Whether `e` carries a count of deposits (an update or a request). */
const countsDeposits = (e: Envelope, channelId: Hex) => isBatch(e, channelId, "update", "deposits") || isBatch(e, channelId, "request", "deposits");

/** Ticks `parties` and lets their messages settle, at most `rounds` times, until `done()`. */
async function tickUntil(link: InMemoryLink, parties: readonly Party[], done: () => boolean, rounds = 6) {
  for (let i = 0; i < rounds && !done(); i++) {
    for (const p of parties) await p.client.tick();
    await link.settled();
  }
  expect(done(), `not done after ${rounds} rounds of ticks`).to.equal(true);
}

/** Waits for Alice's swap to be done, then checks both sides swapped it off chain. */
async function swappedOnBothSides(link: InMemoryLink, alice: Party, bob: Party, swapId: Hex) {
  await alice.client.whenDone(swapId);
  await link.settled();
  for (const p of [alice, bob]) expect(phaseOf(p, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
}

const closedFor = (p: Party, channelId: Hex) => p.store.channelOp(channelId)?.kind === "closed";

/** Terms as a hostile initiator crafts them, and a way to seal its proposals envelope with Alice's real key. */
async function hostileTerms(setup: Setup, parties: { alice: Party; bob: Party }, change: (now: bigint) => Partial<SwapTerms>) {
  const key = new SigningKey(accountKey(1));
  const sign = (d: Hex) => signDigest(key, d);
  const now = BigInt(await setup.T.chain.networkHelpers.time.latest());
  const terms: SwapTerms = { ...(await craftedTerms(setup, parties, GIVE, TAKE, DELTA)), ...change(now) };
  const body: SwapBody = { step: "proposals", items: [{ terms, termsSig: sign(termsDigest(terms)) }] };
  const envelope: Envelope = seal(sign, terms.initiator, setup.sId, body);
  return { terms, envelope };
}

/**
 * Bob, as responder with default options, answers a crafted proposal: his answer on the wire (his signature on the
 * terms, or why he refused them). He signs no state either way, and nothing goes on chain; a refusal keeps no swap.
 */
async function bobsAnswer(change: (now: bigint) => Partial<SwapTerms>, setup?: Setup) {
  setup ??= await fundedChannels();
  const parties = await twoParties(setup);
  const before = await blockNumbers(setup);
  const signed = [setup.sId, setup.tId].map((id) => parties.bob.store.highestOwnSeq(id));
  const answers: Extract<SwapBody, { step: "acceptances" }>["items"][number][] = [];
  parties.link.fault = (e, from) => {
    if (from === "b" && e.body.step === "acceptances") answers.push(...e.body.items);
    return "deliver";
  };
  const { terms, envelope } = await hostileTerms(setup, parties, change);
  await parties.bob.client.handle(envelope);
  await parties.link.settled();
  const answer = answers.find((a) => a.swapId === terms.swapId);
  expect(answer, "Bob answered the proposal").to.not.equal(undefined);
  expect([setup.sId, setup.tId].map((id) => parties.bob.store.highestOwnSeq(id))).to.deep.equal(signed, "Bob signed no state");
  expect(await blockNumbers(setup)).to.deep.equal(before, "nothing went on chain");
  if (answer!.refusal !== undefined) {
    expect(answer!.termsSig, "a refusal carries no signature on the terms").to.equal(undefined);
    expect(parties.bob.client.swaps().map((v) => v.swapId)).to.not.include(terms.swapId);
  }
  return answer!;
}

/** Counts the envelopes either party sends from now on (all delivered). */
function countSent(link: InMemoryLink) {
  const sent = { n: 0 };
  link.fault = () => (sent.n++, "deliver");
  return sent;
}

describe("lock lifetimes are bounded above (review finding 1)", function () {
  it("refuses, as a responder with default options, a target lock a year away and a source lock a century away", async function () {
    const { refusal } = await bobsAnswer((now) => ({ targetExpiry: now + YEAR, sourceExpiry: now + 100n * YEAR }));
    expect(refusal).to.match(/maxTargetLockSeconds/);
  });

  it("refuses a source lock that outlives the target lock by more than delta + slackSeconds", async function () {
    const gap = DELTA + DEFAULT_TIMING_BOUNDS.slackSeconds + 1n;
    const { refusal } = await bobsAnswer((now) => ({ targetExpiry: now + 3600n, sourceExpiry: now + 3600n + gap }));
    expect(refusal).to.match(/slackSeconds/);
  });

  it("refuses to propose a lock past the bounds, naming the bound, before anything is signed or sent", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const signed = [setup.sId, setup.tId].map((id) => alice.store.highestOwnSeq(id));
    const sent = countSent(link);
    const now = BigInt(await setup.T.chain.networkHelpers.time.latest());
    let error: unknown;
    await alice.client
      .propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE, targetExpiry: now + 2n * DEFAULT_TIMING_BOUNDS.maxTargetLockSeconds })
      .catch((e: unknown) => (error = e));
    await link.settled();
    expect(error).to.be.instanceOf(TimingBoundError);
    expect((error as TimingBoundError).bound).to.equal("maxTargetLockSeconds");
    expect(alice.client.swaps()).to.deep.equal([]);
    expect(bob.client.swaps()).to.deep.equal([]);
    expect(sent.n, "envelopes sent").to.equal(0);
    expect([setup.sId, setup.tId].map((id) => alice.store.highestOwnSeq(id))).to.deep.equal(signed);
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
  /** The harness's adapters, with both parties reading T two blocks deep (a deposit is final two blocks later). */
  async function deepOnT(setup: Setup): Promise<Setup> {
    const deep = (a: HubAdapter, signer: Setup["T"]["alice"]) => HubAdapter.connect(a.hubAddress, signer, { confirmations: 2 });
    const adapters = { ...setup.adapters, aliceT: await deep(setup.adapters.aliceT, setup.T.alice), bobT: await deep(setup.adapters.bobT, setup.T.bob) };
    return { ...setup, adapters };
  }

  it("never lets a swap spend a deposit that is not final, and a reorg that drops it leaves every state funded", async function () {
    const setup = await fundedChannels();
    await setup.T.chain.networkHelpers.mine(3);
    const snapshot = await setup.T.chain.networkHelpers.takeSnapshot();
    // Bob adds 30 on T; both clients read the hub two blocks deep.
    await setup.adapters.bobT.deposit(setup.tParams, setup.tId, 1, 30n * ONE);
    const { link, alice, bob } = await twoParties(await deepOnT(setup));
    for (const p of [alice, bob]) expect(p.client.book.head(setup.tId).balances[1]).to.equal(20n * ONE, "the fresh deposit is not counted");
    // A swap asking 40 of Bob on T: his side of the pair holds 20.
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 40n * ONE });
    const refused = await alice.client.whenDone(swapId);
    expect(refused).to.deep.include({ outcome: "aborted" });
    expect(refused.reason).to.match(/needs 40000000000000000000 on/);
    await link.settled();
    expect(bob.client.book.head(setup.tId).locks).to.deep.equal([], "no lock of Bob's on T");

    await snapshot.restore(); // the deposit is reorged out
    await setup.T.chain.networkHelpers.mine(3);
    for (const p of [alice, bob]) await p.client.tick();
    await link.settled();
    expect((await setup.T.hub.getChannel(setup.tId)).deposits[1]).to.equal(20n * ONE);
    for (const p of [alice, bob]) {
      expect(p.client.book.head(setup.tId).deposits).to.deep.equal([ONE, 20n * ONE], "every state is still funded on chain");
      expect(p.store.highestOwnSeq(setup.tId)).to.equal(p.client.book.head(setup.tId).seq, "and no count of it was signed");
    }
  });

  it("counts a deposit once it is final, folded in by a co-signed update", async function () {
    const setup = await fundedChannels();
    await setup.T.chain.networkHelpers.mine(3);
    const { alice, bob, link } = await twoParties(await deepOnT(setup));
    await setup.adapters.bobT.deposit(setup.tParams, setup.tId, 1, 30n * ONE);
    const offers = { n: 0 };
    link.fault = (e) => (countsDeposits(e, setup.tId) && offers.n++, "deliver");
    for (const p of [alice, bob]) await p.client.tick();
    await link.settled();
    expect(offers.n, "no count offered at one confirmation").to.equal(0);
    for (const p of [alice, bob]) expect(p.client.book.head(setup.tId).deposits[1]).to.equal(20n * ONE, "one confirmation is not final");
    expect((await alice.client.syncDeposits(setup.tId)).deposits[1]).to.equal(20n * ONE, "nor is it counted when asked for");
    await setup.T.chain.networkHelpers.mine(2);
    await alice.client.tick();
    await link.settled();
    for (const p of [alice, bob]) expect(p.client.book.head(setup.tId).balances).to.deep.equal([ONE, 50n * ONE]);
    expect(alice.client.book.latest(setup.tId)).to.deep.equal(bob.client.book.latest(setup.tId), "one co-signed state");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 40n * ONE });
    await swappedOnBothSides(link, alice, bob, swapId);
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
    const stranger = await HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.other);
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n); // 1 wei for Alice, between the two joins
    await join(bob, setup.S.chainId, setup.sParams);
    await join(bob, setup.T.chainId, setup.tParams);
    await syncDeposits([alice.client, bob.client], [setup.sId, setup.tId]);
    expect(alice.client.book.latest(setup.tId)).to.deep.equal(bob.client.book.latest(setup.tId));
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await swappedOnBothSides(link, alice, bob, swapId);
    await stranger.deposit(setup.tParams, setup.tId, 1, 5n); // and later, 5 wei for Bob
    await alice.client.tick();
    await link.settled();
    expect(alice.client.book.latest(setup.tId)).to.deep.equal(bob.client.book.latest(setup.tId));
    expect(bob.client.book.head(setup.tId).deposits).to.deep.equal([ONE + 1n, 20n * ONE + 5n]);
  });
});

describe("deposit updates recover from lost messages", function () {
  it("catches up when the acknowledgement of one update is lost and another deposit arrives before the resend", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const stranger = await HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.other);
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n);
    link.fault = (e, from) => (from === "b" && isBatch(e, setup.tId, "ack") ? "drop" : "deliver");
    await alice.client.tick(); // offers the count of the 1 wei; Bob co-signs it, his acknowledgement is lost
    await link.settled();
    expect(bob.client.book.head(setup.tId).deposits[0]).to.equal(ONE + 1n, "Bob co-signed the first update");
    expect(alice.client.book.head(setup.tId).deposits[0]).to.equal(ONE, "Alice never heard so");
    link.fault = () => "deliver";
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n); // final before Alice resends her first update
    for (let i = 0; i < 3; i++) {
      clock.advance(2_000); // each side resends its part
      await bob.client.tick();
      await alice.client.tick();
      await link.settled();
    }
    for (const p of [alice, bob]) expect(p.client.book.head(setup.tId).deposits).to.deep.equal([ONE + 2n, 20n * ONE]);
    expect(alice.client.book.latest(setup.tId)).to.deep.equal(bob.client.book.latest(setup.tId));
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await swappedOnBothSides(link, alice, bob, swapId);
  });
});

describe("swap terms name two channels of the two parties (review finding 4)", function () {
  it("refuses to propose one channel as both legs, as the proposer's own error, and nothing is signed or sent", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const before = await blockNumbers(setup);
    const sent = countSent(link);
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.sId, give: GIVE, take: TAKE }).catch((e: unknown) => (error = e));
    await link.settled();
    expect(error).to.be.instanceOf(InvalidTermsError);
    expect(alice.client.swaps()).to.deep.equal([]);
    expect(bob.client.swaps()).to.deep.equal([]);
    expect(sent.n, "envelopes sent").to.equal(0);
    expect(await blockNumbers(setup)).to.deep.equal(before);
  });

  it("refuses, as responder, terms that name one channel as both legs, and signs nothing", async function () {
    const wellFormed = await bobsAnswer(() => ({}));
    expect(wellFormed.refusal).to.equal(undefined, "the well-formed terms are accepted");
    expect(wellFormed.termsSig).to.be.a("string");
    const setup = await fundedChannels();
    const sRef = { chainId: setup.S.chainId, hub: await setup.S.hub.getAddress(), channelId: setup.sId };
    const { refusal } = await bobsAnswer(() => ({ target: sRef }), setup);
    expect(refusal).to.match(/same channel/);
  });
});

describe("secrets go on chain before the force close (review finding 6)", function () {
  it("registers the secret of a lock it receives in the same step as the force close, not a tick later", async function () {
    const setup = await fundedChannels();
    const { link, alice } = await twoParties(setup);
    let revealed = false;
    link.fault = (e, from) => {
      if (from === "a" && isBatch(e, setup.tId, "update", "pay")) revealed = true;
      return revealed ? "drop" : "deliver"; // Bob is gone once Alice has revealed (her payment of his T lock)
    };
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    await alice.client.idle();
    expect(revealed).to.equal(true);
    expect(phaseOf(alice, swapId).kind).to.equal("revealed");
    const { terms } = alice.client.swap(swapId);
    expect(alice.client.book.head(setup.tId).locks.map((l) => l.hashlock)).to.deep.equal([terms.hashlock], "Bob's T lock, unpaid in the co-signed head");
    // T's clock moves inside onChainMargin (300 s) of the T lock's expiry: Alice must claim it on chain.
    const nowT = BigInt(await setup.T.chain.networkHelpers.time.latest());
    await setup.T.chain.networkHelpers.time.increase(Number(terms.targetExpiry - nowT - 200n));
    await alice.client.tick();
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(2n, "T force-closed");
    expect(await setup.T.registry.revealedAt(terms.hashlock)).to.not.equal(0n, "and the secret registered in the same tick");
    // ... in a transaction mined before the force close's, not queued behind it.
    const [reveal] = await setup.T.registry.queryFilter(setup.T.registry.filters.SecretRevealed(terms.hashlock));
    const [forced] = await setup.T.hub.queryFilter(setup.T.hub.filters.ChannelForceClosed(setup.tId));
    const first = reveal!.blockNumber < forced!.blockNumber || (reveal!.blockNumber === forced!.blockNumber && reveal!.index < forced!.index);
    expect(first, `reveal in block ${reveal!.blockNumber}, force close in block ${forced!.blockNumber}`).to.equal(true);
    expect(phaseOf(alice, swapId)).to.deep.include({ kind: "settlingOnChain", reason: "nearExpiry" });
  });
});

/** Alice and Bob with funded channels; `who`'s store outlives its process, so it can be started again from it. */
async function willRestart(who: "alice" | "bob") {
  const setup = await fundedChannels();
  const store = new Store(":memory:");
  const parties = await twoParties(setup, { stores: { [who]: store } });
  /** Stops `who`'s process (what it started is on disk) and starts a new one from its store on the same link end. */
  const restart = async () => {
    await parties[who].client.idle();
    return makeParty(setup, who, who === "alice" ? parties.link.a : parties.link.b, parties.clock, {}, store);
  };
  return { setup, ...parties, restart };
}

describe("a restarted client resends before it goes on chain (review finding 13)", function () {
  it("finishes off chain, not undone, when it was down past the confirmation timeout and the counterparty had answered", async function () {
    const { setup, link, clock, alice: first, bob, restart } = await willRestart("alice");
    // Bob co-signs his T lock; his acknowledgement never reaches Alice, whose process then stops.
    link.fault = (e, from) => (from === "b" && isBatch(e, setup.tId, "ack") ? "drop" : "deliver");
    const swapId = await first.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { hashlock } = first.client.swap(swapId).terms;
    expect(bob.client.book.head(setup.tId).locks.map((l) => l.hashlock)).to.deep.equal([hashlock], "Bob co-signed his T lock");
    expect(phaseOf(first, swapId).kind).to.equal("agreed");
    link.fault = () => "deliver";
    const before = await blockNumbers(setup);
    clock.advance(60_000); // Alice's process was down for a minute (timeout 10 s)
    const alice = await restart();
    await alice.client.tick(); // resends her T batch rather than undoing the swap
    await link.settled();
    await swappedOnBothSides(link, alice, bob, swapId);
    expect(await blockNumbers(setup)).to.deep.equal(before, "no force close");
  });

  it("still goes on chain at once after a restart when a lock deadline forces it", async function () {
    const { setup, link, bob: first, alice, restart } = await willRestart("bob");
    // Bob learns the secret (Alice pays his T lock; her payment of the S lock, sent with it, is lost); from then on
    // nothing arrives either way (Alice is gone too).
    let revealed = false;
    link.fault = (e, from) => {
      if (revealed) return "drop";
      if (from === "a" && isBatch(e, setup.sId, "update", "pay")) return "drop";
      if (from === "a" && isBatch(e, setup.tId, "update", "pay")) revealed = true;
      return "deliver";
    };
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { terms } = first.client.swap(swapId);
    expect(first.store.secret(terms.hashlock), "Bob holds the secret").to.not.equal(undefined);
    expect(first.client.book.head(setup.sId).locks.map((l) => l.hashlock)).to.deep.equal([terms.hashlock], "Alice's S lock, not paid to Bob yet");
    const nowS = BigInt(await setup.S.chain.networkHelpers.time.latest());
    await setup.S.chain.networkHelpers.time.increase(Number(terms.sourceExpiry - nowS - 200n)); // inside onChainMargin
    const bob = await restart();
    await bob.client.tick();
    expect(phaseOf(bob, swapId)).to.deep.include({ kind: "settlingOnChain", reason: "nearExpiry" });
    expect((await setup.S.hub.getChannel(setup.sId)).status).to.equal(2n, "S force-closed");
    expect(await setup.S.registry.revealedAt(terms.hashlock)).to.not.equal(0n, "the secret registered on S");
  });
});

describe("closing a channel (review findings 14 and 15)", function () {
  it("refuses a swap on a channel whose close is in progress, resends the lost close request, and closes cooperatively", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    // Alice signs S's final state; her batch never reaches Bob.
    link.fault = (e, from) => (from === "a" && isBatch(e, setup.sId, "update", "close") ? "drop" : "deliver");
    await alice.client.requestClose(setup.sId);
    await link.settled();
    expect(bob.client.isClosing(setup.sId), "Bob has not heard of the close").to.equal(false);
    // Bob proposes a swap on S: Alice refuses it.
    const swapId = await bob.client.propose({ source: setup.tId, target: setup.sId, give: TAKE, take: GIVE });
    const refused = await bob.client.whenDone(swapId);
    expect(refused.outcome).to.equal("aborted");
    expect(refused.reason).to.match(/close in progress/);
    // Alice refuses her own.
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(ChannelClosingError);

    link.fault = () => "deliver";
    const landed = alice.client.whenClosed(setup.sId);
    clock.advance(2_000);
    await tickUntil(link, [alice], () => closedFor(alice, setup.sId)); // resends the final state; lands it once co-signed
    await landed;
    expect(await setup.S.hub.queryFilter(setup.S.hub.filters.ChannelForceClosed())).to.have.length(0);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([100n * ONE, 10n * ONE]);
    await bob.client.tick();
    await bob.client.whenClosed(setup.sId);
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(1n, "T, which no swap tied to S, stays open");
  });

  it("closes cooperatively when participant 1 asks to close while participant 0 offers a deposit update", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const stranger = await HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.other);
    await stranger.deposit(setup.tParams, setup.tId, 0, 1n);
    link.fault = () => "drop"; // both ask before either hears the other
    await alice.client.tick(); // offers to count the 1 wei
    await bob.client.requestClose(setup.tId); // asks Alice for the close
    expect(bob.client.isClosing(setup.tId)).to.equal(true);
    link.fault = () => "deliver";
    clock.advance(2_000);
    await alice.client.tick(); // resends the offer
    await bob.client.tick(); // resends the close request: Alice closes once her offer is answered; Bob lands it
    await link.settled();
    await tickUntil(link, [bob, alice], () => closedFor(alice, setup.tId) && closedFor(bob, setup.tId));
    await Promise.all([alice.client.whenClosed(setup.tId), bob.client.whenClosed(setup.tId)]);
    expect(await setup.T.hub.queryFilter(setup.T.hub.filters.ChannelForceClosed())).to.have.length(0);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE + 1n, 20n * ONE], "the wei goes to Alice");
  });

  it("closes cooperatively when both parties ask at once", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    link.fault = () => "drop";
    await alice.client.requestClose(setup.sId);
    await bob.client.requestClose(setup.sId);
    link.fault = () => "deliver";
    clock.advance(2_000);
    await tickUntil(link, [alice, bob], () => closedFor(alice, setup.sId) && closedFor(bob, setup.sId));
    await Promise.all([alice.client.whenClosed(setup.sId), bob.client.whenClosed(setup.sId)]);
    expect(await setup.S.hub.queryFilter(setup.S.hub.filters.ChannelForceClosed())).to.have.length(0);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([100n * ONE, 10n * ONE]);
  });

  it("keeps the co-signed final state when landing it fails, and lands it on a later tick", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob, clock } = await twoParties(setup);
    // Alice's adapter on T fails once, as a node that does not answer would.
    const adapter = setup.adapters.aliceT;
    const real = adapter.closeCooperatively.bind(adapter);
    let failures = 1;
    adapter.closeCooperatively = async (...args) => {
      if (failures-- > 0) throw new Error("the node did not answer");
      return real(...args);
    };
    await alice.client.requestClose(setup.tId);
    await link.settled();
    expect(alice.client.book.latest(setup.tId)?.state.isFinal).to.equal(true, "the final state is co-signed");
    alice.events.length = 0;
    let error: unknown;
    await alice.client.tick().catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/the node did not answer/);
    expect(alice.events.map((e) => e.type)).to.include("tickError");
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(1n, "not landed");
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
    await swappedOnBothSides(link, alice, bob, swapId);
    // Bob's landing of T's close keeps failing (no gas on T, say) ...
    setup.adapters.bobT.closeCooperatively = async () => {
      throw new Error("insufficient funds for gas");
    };
    link.fault = (e, from) => (from === "b" && isBatch(e, setup.tId, "ack") ? "drop" : "deliver");
    await alice.client.requestClose(setup.tId);
    await link.settled();
    expect(bob.client.book.latest(setup.tId)?.state.isFinal).to.equal(true, "Bob co-signed T's final state");
    // ... while Alice force-closes S with the state from before the swap (she had 100, now 90).
    await setup.adapters.aliceS.forceClose(setup.sParams, undefined);
    clock.advance(11_000); // Alice went quiet: Bob tries to land T's close every tick from now on
    let error: unknown;
    await bob.client.tick().catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/insufficient funds for gas/);
    const info = await setup.S.hub.getChannel(setup.sId);
    expect(info.seq).to.equal(bob.client.book.head(setup.sId).seq, "Bob answered the stale state");
    // ... and settles S after the challenge period, every tick still failing on T.
    for (let round = 0; round < 6 && !closedFor(bob, setup.sId); round++) {
      await increaseBoth(setup, 1200);
      clock.advance(1_200_000);
      error = undefined;
      await bob.client.tick().catch((e: unknown) => (error = e));
      expect(String(error)).to.match(/insufficient funds for gas/);
    }
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([90n * ONE, 20n * ONE]);
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(1n, "T's close never landed");
  });

  it("lands the co-signed final state as the responder when the requester goes quiet", async function () {
    const setup = await fundedChannels();
    const { link, clock, bob, alice } = await twoParties(setup);
    link.fault = (e, from) => (from === "b" && isBatch(e, setup.tId, "ack") ? "drop" : "deliver"); // and Alice is gone after asking
    await alice.client.requestClose(setup.tId);
    await link.settled();
    expect(bob.client.book.latest(setup.tId)?.state.isFinal).to.equal(true, "Bob co-signed T's final state");
    await bob.client.tick(); // within the confirmation timeout, the requester lands it
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
    await swappedOnBothSides(link, alice, bob, swapId);
    expect(alice.client.tiedChannels(setup.sId)).to.deep.equal([setup.sId], "no swap in flight ties T to S");
    await alice.client.forceClose(setup.sId);
    expect((await setup.S.hub.getChannel(setup.sId)).status).to.equal(2n, "disputed");
    let closed = false;
    void alice.client.whenClosed(setup.sId).then(() => (closed = true));
    await driveUntil(setup, link, clock, [alice], () => closed, 1200, 10);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([90n * ONE, 20n * ONE]);
    expect((await setup.T.hub.getChannel(setup.tId)).status).to.equal(1n, "T stays open");
  });
});
