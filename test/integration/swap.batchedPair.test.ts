import { expect } from "chai";

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { keySigner, Store, type Envelope, type Hex, type StateSigner } from "../../sdk/index.js";
import { accountKey } from "../../scripts/lib/local.js";
import {
  blockNumbers,
  driveUntil,
  fundedChannels,
  makeParty,
  ONE,
  payoutsOf,
  phaseOf,
  twoParties,
  type Party,
  type Setup,
  wholeSwapsSettled,
} from "../helpers/swapHarness.js";

// Channels of the harness: S holds tokens, deposits [Alice 100, Bob 10]; T holds ether, deposits [Alice 1, Bob 20].
// Every swap moves GIVE tokens from Alice to Bob on S and TAKE ether from Bob to Alice on T, whoever starts it.
const GIVE = ONE;
const TAKE = ONE / 100n;

/** A signer that counts its signatures (states, terms and envelopes). */
function counting(who: 1 | 2): StateSigner & { count: number } {
  const inner = keySigner(accountKey(who));
  const s = { ...inner, count: 0, sign: (d: Hex) => (s.count++, inner.sign(d)) };
  return s;
}


/** Alice proposes `a` swaps (S -> T) and Bob `b` swaps (T -> S), all at once. */
function proposeAll(alice: Party, bob: Party, setup: Setup, a: number, b: number): Promise<Hex[]> {
  return Promise.all([
    ...Array.from({ length: a }, () => alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE })),
    ...Array.from({ length: b }, () => bob.client.propose({ source: setup.tId, target: setup.sId, give: TAKE, take: GIVE })),
  ]);
}

describe("many swaps at once on one channel pair (batched updates through the client)", function () {
  it("carries 60 swaps in both directions at once: each swapped, both ledgers agree, no chain call, far fewer signatures than one state per step", async function () {
    const setup = await fundedChannels();
    const signers = { alice: counting(1), bob: counting(2) };
    const { link, alice, bob } = await twoParties(setup, { alice: { signer: signers.alice }, bob: { signer: signers.bob } });
    const blocks = await blockNumbers(setup);
    const before = signers.alice.count + signers.bob.count;

    const ids = await proposeAll(alice, bob, setup, 30, 30);
    await Promise.all(ids.map((id, i) => (i < 30 ? alice : bob).client.whenDone(id)));
    await link.settled();
    const done = ids.flatMap((id) => [phaseOf(alice, id), phaseOf(bob, id)]) as { outcome?: string }[];

    expect(done.map((d) => d.outcome)).to.deep.equal(done.map(() => "swapped"));
    for (const p of [alice, bob]) {
      const s = p.client.book.head(setup.sId);
      const t = p.client.book.head(setup.tId);
      expect(s.locks).to.have.length(0);
      expect(t.locks).to.have.length(0);
      expect(s.balances).to.deep.equal([100n * ONE - 60n * GIVE, 10n * ONE + 60n * GIVE]);
      expect(t.balances).to.deep.equal([ONE + 60n * TAKE, 20n * ONE - 60n * TAKE]);
    }
    expect(alice.client.book.latest(setup.sId)).to.deep.equal(bob.client.book.latest(setup.sId));
    expect(alice.client.book.latest(setup.tId)).to.deep.equal(bob.client.book.latest(setup.tId));
    expect(await blockNumbers(setup)).to.deep.equal(blocks);
    const perSwap = (signers.alice.count + signers.bob.count - before) / ids.length;
    expect(perSwap).to.be.below(9, `signatures per swap: ${perSwap}`); // the step protocol needs 18
    expect(link.errors).to.deep.equal([]);
  });

  it("refuses, off chain, what the responder's policy or the pair's free balance does not allow, and swaps the rest", async function () {
    const setup = await fundedChannels();
    const { alice } = await twoParties(setup, { bob: { policy: (t) => (t.give > 5n * ONE ? "too large for this desk" : undefined) } });
    const small = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    const large = await alice.client.propose({ source: setup.sId, target: setup.tId, give: 6n * ONE, take: TAKE });
    // Bob holds 20 ether on T: a swap asking 21 of him is refused by his side of the pair.
    const tooMuch = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 21n * ONE });
    expect((await alice.client.whenDone(small)).outcome).to.equal("swapped");
    const refused = await alice.client.whenDone(large);
    expect(refused).to.deep.include({ outcome: "aborted" });
    expect(refused.reason).to.contain("too large for this desk");
    expect((await alice.client.whenDone(tooMuch)).reason).to.match(/needs 21000000000000000000 on/);
    // Alice's own side refuses at once what her free balance cannot cover.
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: 500n * ONE, take: TAKE }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(Error).with.property("name", "InsufficientBalanceError");
    expect(alice.client.book.head(setup.sId).balances).to.deep.equal([99n * ONE, 11n * ONE]);
  });

  it("counts proposals still waiting for an answer against the initiator's free balance", async function () {
    const setup = await fundedChannels();
    const { link, alice } = await twoParties(setup);
    link.fault = () => "drop"; // Bob does not answer: the first proposal stays waiting
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: 60n * ONE, take: TAKE });
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: 50n * ONE, take: TAKE }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(Error).with.property("name", "InsufficientBalanceError");
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: 40n * ONE, take: TAKE }); // fits what is left
  });

  it("gives up proposals a silent peer never answers, nothing locked", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    // Bob never hears Alice's proposals: she gives them up after the confirmation timeout, nothing locked.
    link.fault = () => "drop";
    const id = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(alice, id).kind).to.equal("proposed");
    expect(bob.client.swaps()).to.deep.equal([]);
    clock.advance(11_000);
    await alice.client.tick();
    expect(phaseOf(alice, id)).to.deep.include({ kind: "done", outcome: "aborted", reason: "counterparty silent" });
    expect(alice.client.book.head(setup.sId).locks).to.deep.equal([]);
  });

  describe("a cooperative close of both channels with swaps in flight: those past their reveal complete, the rest are undone off chain, each channel lands its final state in one transaction", function () {
    // After `cut` envelopes, or as the first payment (a secret revealed) passes.
    for (const cut of [0, 4, 8, 11, 12, "pay"] as const) {
      const when = cut === "pay" ? "as the first payment passes" : `after ${cut} envelopes`;
      it(`Bob asks to close ${when}: every swap atomic and alike on both sides, payouts as the final states say`, async function () {
        const setup = await fundedChannels();
        const { link, clock, alice, bob } = await twoParties(setup);
        const sent = () => Promise.all([setup.S, setup.T].flatMap((x) => [x.alice, x.bob].map((w) => x.chain.ethers.provider.getTransactionCount(w.address))));
        const before = await sent();
        // Bob asks to close once `cut` envelopes went through: the swaps are then proposed, agreed, locked or revealed.
        let passed = 0;
        let asked: Promise<void> | undefined;
        // Bob closes both channels (each closes on its own; a swap using either is undone unless past its reveal).
        const ask = () => (asked ??= Promise.all([bob.client.requestClose(setup.tId), bob.client.requestClose(setup.sId)]).then(() => undefined));
        const pays = (e: Envelope) => e.body.step === "batch" && e.body.message.kind === "update" && e.body.message.changes.some((c) => c.kind === "pay");
        // With "pay", Alice's 12 swaps go first; Bob proposes his 12 as her first payment passes, then asks.
        const later: Promise<Hex[]>[] = [];
        link.fault = (e) => {
          if (cut === "pay" && pays(e) && later.length === 0) later.push(proposeAll(alice, bob, setup, 0, 12).then(async (mine) => (await ask(), mine)));
          if (cut !== "pay" && passed++ === cut) void ask();
          return "deliver";
        };
        const ids = await proposeAll(alice, bob, setup, 12, cut === "pay" ? 0 : 12);
        if (cut === 0) await ask();
        await link.settled();
        await ask();
        ids.push(...(await Promise.all(later)).flat());
        let late: unknown;
        await bob.client.propose({ source: setup.tId, target: setup.sId, give: TAKE, take: GIVE }).catch((e: unknown) => (late = e));
        expect(late, "a new swap on a closing pair").to.have.property("name", "ChannelClosingError");
        const closed = Promise.all([alice, bob].flatMap((p) => [p.client.whenClosed(setup.sId), p.client.whenClosed(setup.tId)]));
        await driveUntil(setup, link, clock, [alice, bob], async () => [alice, bob].every((p) => [setup.sId, setup.tId].every((id) => p.store.channelOp(id)?.kind === "closed")), 5);
        await closed;

        // Every swap is done on both sides, with the same outcome, and none went on chain (a proposal refused because
        // the pair was closing is known to its initiator only).
        const outcomeOf = (p: Party, id: Hex) => (p.client.swaps().some((v) => v.swapId === id) ? phaseOf(p, id) : { kind: "done", outcome: "aborted" });
        const outcomes = ids.map((id) => [outcomeOf(alice, id), outcomeOf(bob, id)].map((p) => (p.kind === "done" && "outcome" in p ? p.outcome : p.kind)));
        for (const [a, b] of outcomes) {
          expect(a).to.equal(b);
          expect(["swapped", "aborted"]).to.include(a);
        }
        // As the first payment passes, Alice's swaps are past their reveal and Bob's just proposed: some of each end.
        if (cut === "pay") expect(new Set(outcomes.map(([a]) => a))).to.deep.equal(new Set(["swapped", "aborted"]));
        const swapped = BigInt(outcomes.filter(([a]) => a === "swapped").length);
        // The final states: no lock, the same on both sides, and what the hub paid out (a cooperative close each).
        for (const [id, suite] of [[setup.sId, setup.S], [setup.tId, setup.T]] as const) {
          const final = alice.client.book.latest(id)!;
          expect(final.state.isFinal).to.equal(true);
          expect(final).to.deep.equal(bob.client.book.latest(id));
          expect(await suite.hub.queryFilter(suite.hub.filters.ChannelSettled(id))).to.have.length(0);
          expect(await payoutsOf(suite, id)).to.deep.equal([...final.state.balances]);
        }
        expect(await wholeSwapsSettled(setup, GIVE, TAKE)).to.deep.equal({ paid: swapped, got: swapped });
        // One transaction per chain: the close of whoever asked (Bob); Alice's client saw it landed and sent nothing.
        const [aS, bS, aT, bT] = before;
        expect(await sent()).to.deep.equal([aS, bS! + 1, aT, bT! + 1]);
        expect(link.errors).to.deep.equal([]);
      });
    }
  });

  it("counts a deposit made on chain after the pair was batched (in a batch of its own), and its swaps use it", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    // Bob holds 20 ether on T: a swap asking 25 of him does not fit.
    const tooMuch = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 25n * ONE });
    expect((await alice.client.whenDone(tooMuch)).reason).to.match(/needs 25000000000000000000 on/);
    await setup.adapters.bobT.deposit(setup.tParams, setup.tId, 1, 10n * ONE);
    // Alice (participant 0 of T) offers the count; Bob reads the hub at his final block before he signs it.
    const [a, b] = await Promise.all([alice.client.syncDeposits(setup.tId), bob.client.syncDeposits(setup.tId)]);
    expect(a).to.deep.equal(b);
    expect(a.deposits).to.deep.equal([ONE, 30n * ONE]);
    expect(a.balances).to.deep.equal([ONE, 30n * ONE]);
    const fits = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: 25n * ONE });
    expect((await alice.client.whenDone(fits)).outcome).to.equal("swapped");
    await link.settled();
    expect(bob.client.book.head(setup.tId).balances).to.deep.equal([26n * ONE, 5n * ONE]);
    expect(link.errors).to.deep.equal([]);
  });

  it("goes on after a restart from the store: the pair, its swaps and their secrets are read back", async function () {
    const setup = await fundedChannels();
    const file = join(mkdtempSync(join(tmpdir(), "batched-restart-")), "alice.sqlite");
    const x = await twoParties(setup, { stores: { alice: new Store(file) } });
    const { link, clock, bob } = x;
    let alice = x.alice;
    let delivered = 0;
    link.fault = () => (++delivered <= 3 ? "deliver" : "drop"); // proposals, acceptances, the first batch
    const ids = await Promise.all(Array.from({ length: 8 }, () => alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE })));
    await link.settled();
    await alice.client.idle();
    alice.store.close();
    link.fault = () => "deliver";
    alice = makeParty(setup, "alice", link.a, clock, {}, new Store(file));
    clock.advance(3_000); // past the resend interval
    for (let i = 0; i < 5; i++) {
      await alice.client.tick();
      await bob.client.tick();
      await link.settled();
    }
    for (const id of ids) expect(phaseOf(alice, id)).to.deep.include({ kind: "done", outcome: "swapped" });
    expect(alice.client.book.head(setup.tId).balances).to.deep.equal([ONE + 8n * TAKE, 20n * ONE - 8n * TAKE]);
    expect(bob.client.book.latest(setup.tId)).to.deep.equal(alice.client.book.latest(setup.tId));
    alice.store.close();
  });

  /** Alice proposes 12 swaps; the link delivers `cut` envelopes, then nothing in either direction. */
  async function partition(cut: number) {
    const setup = await fundedChannels();
    const parties = await twoParties(setup);
    let delivered = 0;
    parties.link.fault = () => (++delivered <= cut ? "deliver" : "drop");
    const ids = await Promise.all(Array.from({ length: 12 }, () => parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE })));
    await parties.link.settled();
    return { setup, ids, ...parties };
  }

  /**
   * Drives the given parties until each has every swap it knows done and each channel is open with no lock in
   * Alice's head or closed on chain (a channel goes on chain with every channel a swap in flight ties to it, so one
   * may close while the other, with nothing at stake, stays open); then counts the whole swaps Alice paid (S) and
   * got (T): from the hub's payouts where closed, from her co-signed head where open.
   */
  async function settle(setup: Setup, x: Awaited<ReturnType<typeof partition>>, parties: readonly Party[]) {
    const known = (p: Party, id: Hex) => p.client.swaps().some((v) => v.swapId === id);
    const allDone = () => parties.every((p) => x.ids.every((id) => !known(p, id) || phaseOf(p, id).kind === "done"));
    const statuses = async () => [(await setup.adapters.aliceS.channelInfo(setup.sId)).status, (await setup.adapters.aliceT.channelInfo(setup.tId)).status];
    const rests = (st: string, id: Hex) => st === "closed" || (st === "open" && x.alice.client.book.head(id).locks.length === 0);
    await driveUntil(setup, x.link, x.clock, parties, async () => {
      const [s, t] = await statuses();
      return allDone() && rests(s!, setup.sId) && rests(t!, setup.tId);
    }, 240, 80).catch(async (e: unknown) => {
      const ops = parties.map((p) => [setup.sId, setup.tId].map((id) => p.store.channelOp(id)?.kind));
      const phases = parties.map((p) => x.ids.filter((id) => known(p, id)).map((id) => JSON.stringify(phaseOf(p, id))).slice(0, 3));
      const locks = parties.map((p) => [setup.sId, setup.tId].map((id) => p.client.book.head(id).locks.length));
      throw new Error(`${String(e)} statuses ${await statuses()} ops ${JSON.stringify(ops)} locks ${JSON.stringify(locks)} phases ${JSON.stringify(phases)}`);
    });
    const [s, t] = await statuses();
    if (s === "open" && t === "open") {
      // Undone off chain before any lock was co-signed: nothing moved, and Alice holds no lock.
      for (const id of x.ids) expect(phaseOf(x.alice, id)).to.deep.include({ kind: "done", outcome: "aborted" });
      return undefined;
    }
    const sAlice = s === "closed" ? (await payoutsOf(setup.S, setup.sId))[0] : x.alice.client.book.head(setup.sId).balances[0];
    const tAlice = t === "closed" ? (await payoutsOf(setup.T, setup.tId))[0] : x.alice.client.book.head(setup.tId).balances[0];
    const [paid, got] = [100n * ONE - sAlice, tAlice - ONE];
    expect(paid % GIVE, "whole swaps paid").to.equal(0n);
    expect(got % TAKE, "whole swaps got").to.equal(0n);
    for (const id of x.ids) expect(["settledOnChain", "aborted"]).to.include((phaseOf(x.alice, id) as { outcome: string }).outcome);
    return { paid: paid / GIVE, got: got / TAKE };
  }

  describe("a partition mid-batch: both parties go on chain on their own and every swap stays atomic", function () {
    for (const cut of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
      it(`cut after ${cut} envelopes: tokens and ether move by the same number of whole swaps`, async function () {
        const x = await partition(cut);
        const r = await settle(x.setup, x, [x.alice, x.bob]);
        if (r !== undefined) expect(r.got).to.equal(r.paid, `Alice paid ${r.paid} swaps on S and got ${r.got} on T`);
      });
    }
  });

  describe("a counterparty gone for good mid-batch: Alice never pays a swap she does not get", function () {
    for (const cut of [3, 5, 7, 9]) {
      it(`cut after ${cut} envelopes, Bob never back: Alice's tokens paid are at most the swaps whose ether she got`, async function () {
        const x = await partition(cut);
        const r = await settle(x.setup, x, [x.alice]);
        if (r !== undefined) expect(r.paid <= r.got, `Alice paid ${r.paid} swaps on S and got ${r.got} on T`).to.equal(true);
      });
    }
  });
});
