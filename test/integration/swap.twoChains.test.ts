import { expect } from "chai";

import { DeltaTable, TimingRuleError } from "../../sdk/index.js";
import {
  blockNumbers,
  cutAfter,
  fundedChannels,
  ONE,
  payoutsOf,
  phaseOf,
  twoParties,
} from "../helpers/swapHarness.js";

const GIVE = 10n * ONE; // Alice -> Bob on S (token)
const TAKE = ONE / 2n; // Bob -> Alice on T (native)
// Opening deposits: S = [Alice 100, Bob 10], T = [Alice 1, Bob 20].


async function expectRejection(promise: Promise<unknown>, type: new (...args: never[]) => Error, message: RegExp) {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(type);
    expect((error as Error).message).to.match(message);
    return;
  }
  expect.fail("expected a rejection");
}

describe("cross-chain swap over two channels", function () {
  it("swaps off chain through all four phases with no transaction on either chain (guarantee 1)", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const before = await blockNumbers(setup);

    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    const whenDone = alice.client.whenDone(swapId);
    await link.settled();

    expect(await whenDone).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(await bob.client.whenDone(swapId)).to.deep.equal({ kind: "done", outcome: "swapped" }, "already done");
    expect(link.errors).to.deep.equal([]);
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    for (const party of [alice, bob]) {
      expect(party.client.book.head(setup.sId).balances).to.deep.equal([90n * ONE, 20n * ONE]);
      expect(party.client.book.head(setup.tId).balances).to.deep.equal([ONE + TAKE, 20n * ONE - TAKE]);
      expect(party.client.transfers(swapId).map((t) => [t.confirmed, t.outcome])).to.deep.equal([
        [true, "paid"],
        [true, "paid"],
      ]);
    }
    expect(await blockNumbers(setup)).to.deep.equal(before);
  });

  it("runs many swaps off chain, then closes both channels cooperatively with the final balances (guarantees 2, 3)", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const before = await blockNumbers(setup);
    const n = 25;
    for (let i = 0; i < n; i++) {
      await alice.client.propose({ source: setup.sId, target: setup.tId, give: ONE, take: ONE / 100n });
      await link.settled();
    }
    expect(await blockNumbers(setup)).to.deep.equal(before, "no transaction for the swaps");
    expect(alice.client.swaps().every((s) => s.progress.phase.kind === "done")).to.equal(true);

    await alice.client.requestClose(setup.sId);
    await bob.client.requestClose(setup.tId);
    await link.settled();
    // Both final states are co-signed off chain; whoever asked lands its close on its next tick.
    for (const id of [setup.sId, setup.tId]) expect(alice.client.book.latest(id)?.state.isFinal, id).to.equal(true);
    await alice.client.tick();
    await bob.client.tick();
    await link.settled();
    expect(link.errors).to.deep.equal([]);
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([100n * ONE - 25n * ONE, 10n * ONE + 25n * ONE]);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE + ONE / 4n, 20n * ONE - ONE / 4n]);
    expect(await setup.token.balanceOf(await setup.S.hub.getAddress())).to.equal(0n, "nothing left in the S hub");
  });

  it("aborts before any lock when the responder refuses the terms", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup, { bob: { policy: () => "price too low" } });
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(alice, swapId)).to.deep.include({ kind: "done", outcome: "aborted" });
    expect(phaseOf(alice, swapId)).to.deep.include({ reason: "counterparty: price too low" });
    // The responder keeps no swap for terms it refused; it reports the refusal with its reason.
    expect(bob.client.swaps()).to.have.length(0);
    expect(bob.events.filter((e) => e.type === "rejected").map((e) => e.type === "rejected" && [e.swapId, e.reason])).to.deep.equal([[swapId, "price too low"]]);
    expect(alice.client.book.latest(setup.sId)?.state.seq).to.equal(1n, "nothing was co-signed after the deposit update");
  });

  it("aborts before any lock when the responder never answers the proposal", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice } = await twoParties(setup);
    cutAfter(link, "b", undefined);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    clock.advance(10_000);
    await alice.client.tick();
    expect(phaseOf(alice, swapId)).to.deep.include({ kind: "done", outcome: "aborted" });
  });

  it("refuses to propose a swap while the two chains' clocks are further apart than the skew bounds", async function () {
    const setup = await fundedChannels();
    const { alice } = await twoParties(setup);
    await setup.S.chain.networkHelpers.time.increase(121); // the harness allows 60 s of skew per chain
    await expectRejection(alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE }), TimingRuleError, /clocks are 12\ds apart/);
  });

  it("refuses to propose, and the responder refuses to accept, a swap that breaks the delta rule", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const now = BigInt(await setup.T.chain.networkHelpers.time.latest());
    const tooClose = { source: setup.sId, target: setup.tId, give: GIVE, take: TAKE, targetExpiry: now + 3600n, sourceExpiry: now + 3700n };
    await expectRejection(alice.client.propose(tooClose), TimingRuleError, /at least 840s/);
    await link.settled();
    expect(bob.client.swaps()).to.have.length(0, "nothing was sent");

    // An initiator with a laxer rule proposes it anyway: the responder's own rule refuses it.
    const laxDeltas = new DeltaTable(new Map()).set(setup.S.chainId, setup.T.chainId, 60n);
    const lax = await twoParties(setup, { alice: { deltas: laxDeltas } });
    const swapId = await lax.alice.client.propose(tooClose);
    await lax.link.settled();
    expect(lax.bob.client.swaps()).to.have.length(0, "the responder keeps no swap it refused");
    const refused = lax.bob.events.find((e) => e.type === "rejected" && e.swapId === swapId);
    expect(refused?.type === "rejected" ? refused.reason : "").to.match(/Unsafe swap timing/);
    const aborted = phaseOf(lax.alice, swapId);
    expect(aborted.kind === "done" && aborted.outcome).to.equal("aborted");
    expect(aborted.kind === "done" ? aborted.reason : "").to.match(/Unsafe swap timing/);
  });
});
