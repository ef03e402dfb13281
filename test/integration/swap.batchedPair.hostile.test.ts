/**
 * Batched pairs inside SwapClient (sdk/coordinator/counterparties.ts and the glue around it) against a hostile
 * counterparty: each test states what the honest party does, and each failed on the code before its fix (ids R-…
 * in docs/SECURITY.md).
 * The hostile party is crafted by hand (its own key signs terms, envelopes and states) or is a real client whose
 * messages the link drops or whose internals are driven directly.
 */
import { expect } from "chai";

import { hexlify, randomBytes } from "ethers";

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  HubAdapter,
  Watchtower,
  type ChainWatch,
  hashlockOf,
  hubDomain,
  keySigner,
  seal,
  stateDigest,
  Store,
  termsDigest,
  type Envelope,
  type Hex,
  type SwapBody,
  type SwapTerms,
} from "../../sdk/index.js";
import type { Counterparties } from "../../sdk/coordinator/counterparties.js";
import { newSide } from "../../sdk/core/swap-rules.js";
import { applyChanges, type UpdateMessage } from "../../sdk/core/channel-updates.js";
import { accountKey } from "../../scripts/lib/local.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";
import {
  craftedTerms,
  driveUntil,
  fundedChannels,
  increaseBoth,
  makeParty,
  ONE,
  payoutsOf,
  phaseOf,
  twoParties,
  type Party,
  type Setup,
} from "../helpers/swapHarness.js";

const GIVE = ONE;
const TAKE = ONE / 100n;
const aliceKey = keySigner(accountKey(1));
const bobKey = keySigner(accountKey(2));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pairsOf = (p: Party): Counterparties => (p.client as any).batched as Counterparties;


/** Terms Alice (hostile) proposes to Bob on the harness pair: Alice gives on S, Bob gives on T. */
async function aliceTerms(setup: Setup, p: { alice: Party; bob: Party }, give: bigint, take: bigint, over: Partial<SwapTerms> = {}): Promise<SwapTerms> {
  return { ...(await craftedTerms(setup, p, give, take, 900n)), ...over };
}

function sealAs(who: "alice" | "bob", address: string, sessionId: Hex, body: SwapBody): Envelope {
  const key = who === "alice" ? aliceKey : bobKey;
  return seal((d) => key.sign(d), address, sessionId, body);
}

function proposalsEnvelope(p: { alice: Party }, sessionId: Hex, all: readonly SwapTerms[]): Envelope {
  const items = all.map((terms) => ({ terms, termsSig: aliceKey.sign(termsDigest(terms)) }));
  return sealAs("alice", p.alice.client.address, sessionId, { step: "proposals", items });
}

describe("batched pairs in SwapClient against a hostile counterparty", function () {
  this.timeout(600_000);

  // ---------------------------------------------------------------------------------------------------- phase rows

  it("R-DUPID: one swap id twice in a proposals envelope (two hashlocks) is not agreed as two swaps behind one phase row", async function () {
    const setup = await fundedChannels();
    const p = await twoParties(setup);
    const first = await aliceTerms(setup, p, GIVE, TAKE);
    const second = { ...first, hashlock: hashlockOf(hexlify(randomBytes(32)) as Hex), take: 2n * TAKE };
    await p.bob.client.handle(proposalsEnvelope(p, setup.sId, [first, second]));
    const sides = [...pairsOf(p.bob).engine(setup.sId).swaps().values()].filter((s) => s.terms.swapId === first.swapId);
    const rows = p.bob.client.swaps().filter((v) => v.swapId === first.swapId);
    expect(rows).to.have.length(1);
    // Bob's engine now runs two swaps (both with his T lock) that share one phase row: the row follows whichever
    // side changed last, and the other swap has no row of its own (no timeout, no outcome reported).
    expect(sides.length, `Bob agreed ${sides.length} swaps under swap id ${first.swapId}`).to.be.at.most(1);
  });
  // ---------------------------------------------------------------------------------------------------- work a peer triggers

  it("R-RPC: one proposals envelope costs the responder a bounded number of chain reads, not two per item (inside its serial step)", async function () {
    const setup = await fundedChannels();
    const p = await twoParties(setup);
    let reads = 0;
    for (const a of [setup.adapters.bobS, setup.adapters.bobT]) {
      const now = a.now.bind(a);
      a.now = () => (reads++, now());
    }
    const all = await Promise.all(Array.from({ length: 64 }, () => aliceTerms(setup, p, 1n, 1n)));
    try {
      await p.bob.client.handle(proposalsEnvelope(p, setup.sId, all));
    } finally {
      for (const a of [setup.adapters.bobS, setup.adapters.bobT]) delete (a as { now?: unknown }).now;
    }
    // Every read is a round trip to a chain node while the client's serial queue (messages and ticks, and so every
    // on-chain deadline) waits: 512 items make 1,024 round trips per envelope, and the peer chooses how many it sends.
    expect(reads, `chain reads for one envelope of ${all.length} proposals`).to.be.at.most(4);
  });

  it("R-RELOAD: an invalid envelope from anyone does not make every engine re-read every swap side ever stored", async function () {
    const setup = await fundedChannels();
    const p = await twoParties(setup);
    await p.bob.client.handle(proposalsEnvelope(p, setup.sId, await Promise.all(Array.from({ length: 200 }, () => aliceTerms(setup, p, 1n, 1n)))));
    let sideReads = 0;
    const batched = p.bob.store.batched.bind(p.bob.store);
    p.bob.store.batched = (<T>(kind: "updater" | "side" | "pair") => {
      if (kind === "side") sideReads++;
      return batched<T>(kind);
    }) as typeof p.bob.store.batched;
    // Not even signed by anyone: an "accept" for a swap Bob never heard of. Between two junk envelopes, Alice resends
    // proposals Bob agreed already (answered as resends): any valid message that reads the engine does.
    const junk = { swapId: hexlify(randomBytes(32)) as Hex, from: p.alice.client.address, body: { step: "accept", termsSig: "0x00" }, signature: "0x00" } as unknown as Envelope;
    const resend = proposalsEnvelope(p, setup.sId, [await aliceTerms(setup, p, 1n, 1n)]);
    await p.bob.client.handle(resend);
    const before = sideReads;
    for (let i = 0; i < 20; i++) {
      await p.bob.client.handle(junk).catch(() => undefined);
      await p.bob.client.handle(resend);
    }
    // Each failed step calls `invalidate` on every engine (Session.onDiscard), and the next use reloads the whole
    // `batched` table (every side of every pair, settled ones too, JSON-decoded): a full reload per junk message.
    expect(sideReads - before, "full reloads of the side table caused by 20 junk envelopes").to.equal(0);
  });

  /**
   * Bob agrees `n` swaps of 1 wei a leg that hostile Alice never locks; returns the work his tick after the timeout
   * does, counted as the Map lookups made during it: a count, the same on a busy machine as on a quiet one (a time
   * is not: other processes stretch it, and fixed costs hide the growth).
   */
  async function timedOutTickWork(n: number): Promise<number> {
    const setup = await fundedChannels();
    const p = await twoParties(setup);
    for (let i = 0; i < n; i += 512) {
      const chunk = await Promise.all(Array.from({ length: Math.min(512, n - i) }, () => aliceTerms(setup, p, 1n, 1n)));
      await p.bob.client.handle(proposalsEnvelope(p, setup.sId, chunk));
    }
    expect(pairsOf(p.bob).engine(setup.sId).openSwaps().length).to.equal(n);
    p.clock.advance(11_000);
    const get = Map.prototype.get;
    let lookups = 0;
    Map.prototype.get = function <K, V>(this: Map<K, V>, key: K): V | undefined {
      lookups++;
      return get.call(this, key) as V | undefined;
    };
    try {
      await p.bob.client.tick();
    } finally {
      Map.prototype.get = get;
    }
    expect(pairsOf(p.bob).engine(setup.sId).openSwaps().length).to.equal(0);
    return lookups;
  }

  it("R-QUAD: a peer that gets many tiny swaps agreed and lets them time out does not cost the responder's tick O(n^2)", async function () {
    // The client keeps at most 256 swaps open on a pair (R-CAP): 64 against 256.
    const small = await timedOutTickWork(64);
    const large = await timedOutTickWork(256);
    // 4x the swaps: a linear tick does about 4x the work (1,504 and 5,536 lookups when written). Each timed-out swap is
    // cancelled in its own engine step, and a step that walked every open swap would make it grow with n^2 (16x).
    expect(large / small, `Map lookups of the tick with 64 timed-out swaps: ${small}; with 256: ${large}`).to.be.below(8);
  });

  it("R-CAP: the responder does not agree more swaps on a pair than can ever be locked on it at once (MAX_LOCKS = 256)", async function () {
    const setup = await fundedChannels();
    const p = await twoParties(setup);
    for (let i = 0; i < 3; i++) {
      await p.bob.client.handle(proposalsEnvelope(p, setup.sId, await Promise.all(Array.from({ length: 512 }, () => aliceTerms(setup, p, 1n, 1n)))));
    }
    // Nothing bounds how many swaps a peer gets agreed besides the amounts: at 1 wei a leg, 20 ether reserve 2e19 of
    // them, each a phase row, a stored side and a `SwapSide` in memory, walked by every step until it times out.
    expect(pairsOf(p.bob).engine(setup.sId).openSwaps().length).to.be.at.most(256);
  });

  // ---------------------------------------------------------------------------------------------------- unanswered batches

  /** Alice proposes one swap; Bob (hostile) accepts it and then never answers a batch (his batch messages are dropped). */
  async function silentAfterAccept() {
    const setup = await fundedChannels();
    const p = await twoParties(setup);
    p.link.fault = (e, from) => (from === "b" && e.body.step === "batch" ? "drop" : "deliver");
    const id = await p.alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await p.link.settled();
    await p.alice.client.idle();
    const inFlight = pairsOf(p.alice).engine(setup.sId).updater(setup.sId).inFlight;
    expect(inFlight?.batch.map((q) => q.change.kind)).to.deep.equal(["add"]); // Alice's S lock, signed by her, unanswered
    return { setup, id, ...p };
  }

  it("R-INFLIGHT-ROW: a swap whose lock Alice signed and Bob may still co-sign is not reported done (aborted) on a timeout", async function () {
    const x = await silentAfterAccept();
    x.clock.advance(11_000);
    await x.alice.client.tick();
    const stillInFlight = pairsOf(x.alice).engine(x.setup.sId).updater(x.setup.sId).inFlight !== undefined;
    expect(stillInFlight).to.equal(true);
    // Bob holds Alice's signature on a state with her lock: he can co-sign it and register it, or ack it later.
    expect(phaseOf(x.alice, x.id).kind, "Alice's phase row while her signed lock is outstanding").to.not.equal("done");
  });

  it("R-INFLIGHT-FREEZE: a batch Bob never answers does not freeze Alice's channel for good: she goes on chain once its lock expired", async function () {
    const x = await silentAfterAccept();
    const status = async () => (await x.setup.adapters.aliceS.channelInfo(x.setup.sId)).status;
    // 30 rounds of 10 minutes: far past the lock's expiry (about 45 min) plus the challenge period (1 h).
    let error: unknown;
    await driveUntil(x.setup, x.link, x.clock, [x.alice], async () => (await status()) === "closed", 600, 30).catch((e: unknown) => (error = e));
    const u = pairsOf(x.alice).engine(x.setup.sId).updater(x.setup.sId);
    // The proposer has at most one batch in flight: no other batch can ever follow on S, the swap is reported
    // aborted, no lock is in the co-signed head and no swap is open, so `chainReason` never fires.
    expect(error, `S is ${await status()}; Alice's batch at seq ${u.inFlight?.state.seq} is still in flight`).to.equal(undefined);
  });

  // ---------------------------------------------------------------------------------------------------- timing at reveal

  it("R-LATE-REVEAL: after a restart, a stale proposal the peer accepts does not make Alice reveal with less than minTargetWindow left on T", async function () {
    const setup = await fundedChannels();
    const file = join(mkdtempSync(join(tmpdir(), "review-late-")), "alice.sqlite");
    // Hostile Bob runs the client with his own checks relaxed: he accepts terms whatever time they leave.
    const x = await twoParties(setup, { bob: { minTargetWindow: 1n, onChainMargin: 1n }, stores: { alice: new Store(file) } });
    const { link, clock, bob } = x;
    let alice = x.alice;
    link.fault = () => "drop"; // the proposal does not reach Bob
    const id = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    await alice.client.idle();
    const { targetExpiry } = alice.client.swap(id).terms;
    alice.store.close();
    // Alice's node is down for 28 minutes (chains and clock move on); her proposal's target lock has 100 s left.
    const nowT = BigInt(await setup.T.chain.networkHelpers.time.latest());
    await increaseBoth(setup, Number(targetExpiry - nowT - 100n));
    clock.advance(Number(targetExpiry - nowT - 100n) * 1000);
    alice = makeParty(setup, "alice", link.a, clock, {}, new Store(file));
    // Bob answers everything but the ack of the batch that pays his T lock to Alice (he got the secret with it).
    let tAcks = 0;
    link.fault = (e, from) => (from === "b" && e.swapId === setup.tId && e.body.step === "batch" && e.body.message.kind === "ack" && ++tAcks > 1 ? "drop" : "deliver");
    await alice.client.tick(); // resends the stale proposal (a wait begun before the restart counts from the restart)
    await link.settled();
    const left = targetExpiry - BigInt(await setup.T.chain.networkHelpers.time.latest());
    const bobKnows = bob.store.secret(alice.client.swap(id).terms.hashlock) !== undefined;
    // The step protocol refuses exactly this (initiator.ts, `tooLate`): it claims on T on chain instead of revealing.
    // Here the secret left with ~100 s to go, less than the 300 s the timing table budgets to get a claim included.
    // Model that inclusion time (150 s), then let Alice settle on her own; Bob stays silent.
    await increaseBoth(setup, 150);
    clock.advance(150_000);
    const closed = async () => (await setup.adapters.aliceS.channelInfo(setup.sId)).status === "closed" && (await setup.adapters.aliceT.channelInfo(setup.tId)).status === "closed";
    await driveUntil(setup, link, clock, [alice], async () => alice.client.swap(id).progress.phase.kind === "done" && (!bobKnows || (await closed())), 600, 30);
    if (!bobKnows) {
      // Alice did not let the secret go this late: the stale proposal was given up, nothing was locked or paid.
      expect(alice.client.swap(id).progress.phase).to.deep.include({ kind: "done", outcome: "aborted" });
      expect(alice.client.book.head(setup.sId).balances).to.deep.equal([100n * ONE, 10n * ONE]);
      alice.store.close();
      return;
    }
    const s = await payoutsOf(setup.S, setup.sId);
    const t = await payoutsOf(setup.T, setup.tId);
    const paid = s[0] < 100n * ONE;
    const got = t[0] > ONE;
    expect({ paid, got }, `Bob learned the secret with ${left}s left on T (${bobKnows}); Alice paid on S: ${paid}, got on T: ${got}`).to.deep.equal({ paid: got, got });
    alice.store.close();
  });

  it("R3-TOWER-SECRET: a watchtower fed from Alice's store never reveals the secret of a swap she undid (Bob held his T lock back, then kept her T refund)", async function () {
    const setup = await fundedChannels();
    const x = await twoParties(setup);
    const { link, clock, alice, bob } = x;
    // Bob asks for his T lock only once less than minTargetWindow (600 s) is left on it; then, once it is co-signed,
    // he signs whatever Alice sends but answers nothing more (her T refund co-signed by him alone, her S refund never).
    let phase: "hold" | "late" | "silent" = "hold";
    link.fault = (e, from) => {
      if (from !== "b") return "deliver";
      if (phase === "silent") return "drop";
      const request = e.body.step === "batch" && e.body.message.kind === "request" && e.swapId === setup.tId;
      return phase === "hold" && request ? "drop" : "deliver";
    };
    const id = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    await alice.client.idle();
    const { hashlock, targetExpiry } = alice.client.swap(id).terms;
    expect(pairsOf(alice).engine(setup.sId).head(setup.sId).locks.map((l) => l.hashlock)).to.deep.equal([hashlock]);
    // 500 s left on T, and the client clock moves less than the confirmation timeout: Bob's resent ask arrives.
    const nowT = BigInt(await setup.T.chain.networkHelpers.time.latest());
    await increaseBoth(setup, Number(targetExpiry - nowT - 500n));
    clock.advance(3_000);
    phase = "late";
    const tLocked = () => pairsOf(alice).engine(setup.tId).head(setup.tId).locks.some((l) => l.hashlock === hashlock);
    link.fault = ((inner) => (e: Envelope, from: "a" | "b") => {
      const verdict = inner(e, from);
      if (tLocked()) phase = "silent"; // Bob's ack of the T lock arrived: from now on he only listens
      return verdict;
    })(link.fault);
    await alice.client.tick(); // she reads the chains' time
    await link.settled();
    await bob.client.tick();
    await link.settled();
    await alice.client.idle();
    await link.settled();
    expect(tLocked(), "the T lock is in Alice's co-signed head").to.equal(true);
    const side = pairsOf(alice).engine(setup.sId).side(hashlock)!;
    expect({ cancelled: side.cancelled, revealed: side.revealed }, "Alice undid the swap: too late to reveal").to.deep.equal({ cancelled: true, revealed: false });
    // Bob holds her T refund, signed by both: registered on chain, it drops the T lock from the state.
    const bobT = bob.store.latestCoSigned(setup.tId)!.state;
    expect(bobT.locks.some((l) => l.hashlock === hashlock), "Bob holds a co-signed T state without the lock").to.equal(false);
    expect(bob.store.secret(hashlock), "Bob never learned the secret").to.equal(undefined);

    // Alice's watchtower, fed from her store as the README sets it up, well inside its claim window of the T lock.
    const towerStore = new Store(":memory:");
    const watch = async (suite: Setup["S"]): Promise<ChainWatch> => ({
      chain: await HubAdapter.connect(await suite.hub.getAddress(), suite.other),
      confirmations: 2,
      clockSkewSeconds: 30n,
      claimWindowSeconds: 3_600n,
    });
    const tower = new Watchtower(towerStore, [await watch(setup.S), await watch(setup.T)]);
    expect(tower.importFrom(alice.store)).to.equal(2);
    await tower.poll();
    await tower.poll();
    expect(await setup.adapters.aliceT.revealedAt(hashlock), "the secret registered on T").to.equal(0n);
    expect(towerStore.secret(hashlock)).to.equal(undefined);
    // Nor does her own on-chain path: the rule is the store's, read by every component that can reveal.
    expect(alice.store.secret(hashlock)).to.equal(undefined);
    expect(alice.store.knownSecret(hashlock)?.reveal).to.equal("never");
    towerStore.close();
  });

  // ---------------------------------------------------------------------------------------------------- hashlocks

  it("R-HASHLOCK: a swap on other channels with the hashlock of Alice's own swap is refused (else her own claim pays out her lock)", async function () {
    const setup = await fundedChannels();
    // A second pair with the same counterparty on the same hubs: S2 (tokens, Bob gives there) and T2 (ether).
    const s2Params = { ...setup.sParams, nonce: 2n };
    const t2Params = { ...setup.tParams, nonce: 2n };
    const s2Id = await setup.adapters.aliceS.open(s2Params);
    await setup.adapters.aliceS.deposit(s2Params, s2Id, 0, ONE);
    await setup.adapters.bobS.deposit(s2Params, s2Id, 1, 10n * ONE);
    const t2Id = await setup.adapters.bobT.open(t2Params);
    await setup.adapters.aliceT.deposit(t2Params, t2Id, 0, ONE);
    await setup.adapters.bobT.deposit(t2Params, t2Id, 1, ONE);
    const p = await twoParties(setup);
    for (const party of [p.alice, p.bob]) {
      await party.client.addChannel(setup.S.chainId, s2Params, expectedChannel(s2Params, party.client.address));
      await party.client.addChannel(setup.T.chainId, t2Params, expectedChannel(t2Params, party.client.address));
    }
    await syncDeposits([p.alice.client, p.bob.client], [s2Id, t2Id]);
    const pair1 = new Set([setup.sId, setup.tId].map((h) => h.toLowerCase()));

    // 1. Alice's swap on pair 1: Bob accepts, co-signs her S lock, then never asks for his T lock nor refunds hers.
    let cut = false;
    p.link.fault = (e, from) => {
      if (!pair1.has(e.swapId.toLowerCase())) return "deliver";
      if (from === "b" && e.swapId.toLowerCase() === setup.tId.toLowerCase() && e.body.step === "batch") cut = true;
      return cut ? "drop" : "deliver";
    };
    const id1 = await p.alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await p.link.settled();
    const { hashlock } = p.alice.client.swap(id1).terms;
    expect(pairsOf(p.alice).engine(setup.sId).side(hashlock)?.source).to.equal("locked");

    // 2. On pair 2 Bob proposes a swap under the same hashlock (he saw it in swap 1's terms): he gives 1 wei on S2.
    const nowT = BigInt(await setup.T.chain.networkHelpers.time.latest());
    const terms2: SwapTerms = {
      swapId: hexlify(randomBytes(32)) as Hex,
      source: p.bob.client.book.record(s2Id).ref,
      target: p.bob.client.book.record(t2Id).ref,
      initiator: p.bob.client.address,
      responder: p.alice.client.address,
      give: 1n,
      take: 1n,
      hashlock,
      targetExpiry: nowT + 700n,
      sourceExpiry: nowT + 700n + 900n,
    };
    const items = [{ terms: terms2, termsSig: bobKey.sign(termsDigest(terms2)) }];
    await p.alice.client.handle(sealAs("bob", p.bob.client.address, s2Id, { step: "proposals", items }));
    await p.link.settled();
    await p.bob.client.idle();
    // (Both swaps are with Bob, so one engine holds them: whether Alice agreed the second is whether she kept a row
    // for it, since a refusal keeps none.)
    const agreed = p.alice.client.swaps().some((v) => v.swapId === terms2.swapId);
    // Bob's client locks his 1 wei without knowing the secret; Alice locks hers on T2.
    pairsOf(p.bob).engine(s2Id).agree(newSide(terms2, "initiator", { source: 1, target: 0 }));
    await p.link.settled();
    const side2 = [pairsOf(p.alice).engine(s2Id).side(hashlock)].find((x) => x?.terms.swapId === terms2.swapId);
    const row2 = p.alice.client.swaps().find((v) => v.swapId === terms2.swapId)?.progress.phase;

    // 3. Bob goes silent. Alice ticks alone until every channel is settled on chain.
    p.link.fault = () => "drop";
    const statuses = async () => [
      (await setup.adapters.aliceS.channelInfo(setup.sId)).status,
      (await setup.adapters.aliceT.channelInfo(setup.tId)).status,
      (await setup.adapters.aliceS.channelInfo(s2Id)).status,
      (await setup.adapters.aliceT.channelInfo(t2Id)).status,
    ];
    // S and T go on chain (Alice's S lock expires unrefunded); S2 and T2, if its swap was refused, have nothing to settle.
    await driveUntil(setup, p.link, p.clock, [p.alice], async () => (await statuses()).slice(0, agreed ? 4 : 2).every((st) => st === "closed"), 600, 40).catch(async (e: unknown) => {
      throw new Error(`${String(e)}: ${await statuses()} agreed ${agreed} ops ${[setup.sId, setup.tId, s2Id, t2Id].map((id) => p.alice.store.channelOp(id)?.kind)} events ${JSON.stringify(p.alice.events.filter((ev) => ev.type === "tickError").slice(-3))}`);
    });
    const s = await payoutsOf(setup.S, setup.sId);
    const t = await payoutsOf(setup.T, setup.tId);
    const note =
      `Alice agreed Bob's pair-2 swap under her own hashlock: ${agreed} (S2 ${side2?.source}, T2 ${side2?.target}; her row for it: ` +
      `${JSON.stringify(row2)}); swap 1: Alice got ${t[0] - ONE} wei on T`;
    // Alice's pair 2 went on chain and her enforcer registered the secret it found in her store (her own, of swap 1)
    // to claim Bob's 1 wei on S2: from then on her S lock of swap 1 pays Bob, who never locked anything on T.
    expect(s[0], note).to.equal(100n * ONE);
  });

  // ---------------------------------------------------------------------------------------------------- closing

  it("R-STALE-FINAL: a final state Bob asked for, kept and refused does not let him undo what Alice is paid after it", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const asBob = (body: SwapBody) => sealAs("bob", bob.client.address, setup.tId, body);
    // Alice is participant 0 (the proposer) of T. Bob asks her to close T and takes her final state off the wire.
    let update: Extract<UpdateMessage, { kind: "update" }> | undefined;
    link.fault = (e, from) => {
      if (from === "a" && e.swapId === setup.tId && e.body.step === "batch" && e.body.message.kind === "update" && e.body.message.changes.some((c) => c.kind === "close")) {
        update = e.body.message;
        return "drop";
      }
      return "deliver";
    };
    await alice.client.handle(asBob({ step: "batch", message: { kind: "request", changes: [{ kind: "close" }] } }));
    await link.settled();
    expect(update, "Alice signed a final state of T").to.not.equal(undefined);
    const state = applyChanges(bob.client.book.head(setup.tId), update!.changes, update!.seq);
    const ref = bob.client.book.record(setup.tId).ref;
    const stale = { state, signatures: [update!.signature, bobKey.sign(stateDigest(hubDomain(ref.chainId, ref.hub), state))] as const };
    // He refuses it "for good", and proposes swaps that would pay Alice ether on T.
    await alice.client.handle(asBob({ step: "batch", message: { kind: "refuse", seq: update!.seq, refusals: [{ index: 0, final: true, reason: "no" }] } }));
    link.fault = () => "deliver";
    await link.settled();
    expect(alice.client.isClosing(setup.tId), "the pair stays closing").to.equal(true);
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE }).catch((e: unknown) => (error = e));
    expect(error, "no new swap on the pair").to.have.property("name", "ChannelClosingError");
    const head = alice.client.book.head(setup.tId);
    // Whenever he lands the stale final state, Alice loses nothing she was paid on T.
    await setup.adapters.bobT.closeCooperatively(setup.tParams, stale);
    expect((await payoutsOf(setup.T, setup.tId))[0]).to.equal(head.balances[0]);
  });

  it("R-CLOSE-ACK: a channel the other landed before Alice saw his signature does not make her force-close it or another channel", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    let tAcks = 0;
    let holdS = true;
    link.fault = (e, from) => {
      if (e.body.step !== "batch") return "deliver";
      if (from === "b" && e.swapId === setup.tId && e.body.message.kind === "ack" && ++tAcks === 1) return "drop";
      if (from === "a" && e.swapId === setup.sId && holdS) return "drop";
      return "deliver";
    };
    await bob.client.requestClose(setup.tId);
    await link.settled();
    await bob.client.tick(); // Bob lands T; his ack of Alice's final state of T was lost
    await link.settled();
    await alice.client.tick().catch(() => undefined);
    holdS = false;
    await link.settled();
    for (let i = 0; i < 4; i++) {
      for (const p of [alice, bob]) await p.client.tick().catch(() => undefined);
      await link.settled();
    }
    expect(await setup.S.hub.queryFilter(setup.S.hub.filters.ChannelForceClosed(setup.sId))).to.have.length(0);
    expect(await setup.T.hub.queryFilter(setup.T.hub.filters.ChannelForceClosed(setup.tId))).to.have.length(0);
    // T closed cooperatively; S, which no swap in flight tied to T, stays open.
    expect((await setup.adapters.aliceT.channelInfo(setup.tId)).status).to.equal("closed");
    expect((await setup.adapters.aliceS.channelInfo(setup.sId)).status).to.equal("open");
    expect(alice.client.isClosing(setup.sId)).to.equal(false);
  });
});
