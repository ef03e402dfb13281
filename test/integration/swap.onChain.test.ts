import { expect } from "chai";

import type { HubAdapter, Hex, SwapStep } from "../../sdk/index.js";
import {
  cutAfter,
  driveUntil,
  fundedChannels,
  ONE,
  payoutsOf,
  phaseOf,
  twoParties,
  type Party,
} from "../helpers/swapHarness.js";

const GIVE = 10n * ONE; // Alice -> Bob on S (token channel, deposits [100, 10])
const TAKE = ONE / 2n; // Bob -> Alice on T (native channel, deposits [1, 20])

type Step = SwapStep;


const isDone = (p: Party, swapId: Hex) => () => phaseOf(p, swapId).kind === "done";
const closed = (chain: HubAdapter, channelId: Hex) => async () => (await chain.channelInfo(channelId)).status === "closed";

describe("cross-chain swap when a party goes silent (batch settlement, guarantees 1, 2, 4)", function () {
  const cases: {
    title: string;
    silent: "alice" | "bob";
    after: Step;
    payouts: { S: [bigint, bigint]; T: [bigint, bigint] };
  }[] = [
    {
      title: "the responder vanishes after accepting: the initiator force-closes and gets her deposits back",
      silent: "bob",
      after: "accept",
      payouts: { S: [100n * ONE, 10n * ONE], T: [ONE, 20n * ONE] },
    },
    {
      title: "the responder vanishes after locking: the initiator claims on T on chain, her own lock refunds on S",
      silent: "bob",
      after: "targetLock",
      payouts: { S: [100n * ONE, 10n * ONE], T: [ONE + TAKE, 20n * ONE - TAKE] },
    },
    {
      title: "the initiator vanishes after locking on S: both locks refund on chain",
      silent: "alice",
      after: "sourceLock",
      payouts: { S: [100n * ONE, 10n * ONE], T: [ONE, 20n * ONE] },
    },
    {
      title: "the initiator locks both and never reveals: the responder refunds both after the expiries",
      silent: "alice",
      after: "targetLockAck",
      payouts: { S: [100n * ONE, 10n * ONE], T: [ONE, 20n * ONE] },
    },
    {
      title: "the initiator vanishes after revealing: the responder claims on S with the secret, both legs happen",
      silent: "alice",
      after: "reveal",
      payouts: { S: [90n * ONE, 20n * ONE], T: [ONE + TAKE, 20n * ONE - TAKE] },
    },
  ];

  for (const c of cases) {
    it(c.title, async function () {
      const setup = await fundedChannels();
      const { link, clock, alice, bob } = await twoParties(setup);
      cutAfter(link, c.silent === "alice" ? "a" : "b", c.after);
      const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
      await link.settled();
      const honest = c.silent === "alice" ? bob : alice;
      await driveUntil(setup, link, clock, [honest], isDone(honest, swapId));
      expect(phaseOf(honest, swapId)).to.deep.equal({ kind: "done", outcome: "settledOnChain" });
      expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal(c.payouts.S);
      expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal(c.payouts.T);
    });
  }

  it("the initiator vanishes after proposing: the responder aborts, nothing touches a chain", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    cutAfter(link, "a", "propose");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    clock.advance(10_000);
    await bob.client.tick();
    expect(phaseOf(bob, swapId)).to.deep.include({ kind: "done", outcome: "aborted" });
  });

  it("the responder vanishes after resolving: the initiator is done off chain, both transfers confirmed", async function () {
    const setup = await fundedChannels();
    const { link, alice } = await twoParties(setup);
    cutAfter(link, "b", "resolve");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(alice.client.transfers(swapId).every((t) => t.confirmed)).to.equal(true);
  });

  it("carries a secret revealed at the last second on T to S before the source lock expires", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    // Alice locks both, keeps the secret off the wire, and claims on T herself just before tT.
    cutAfter(link, "a", "targetLockAck");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { terms } = alice.client.swap(swapId);
    const secret = alice.store.secret(terms.hashlock)!;
    await setup.T.chain.networkHelpers.time.increaseTo(terms.targetExpiry - 5n);
    await setup.adapters.aliceT.reveal(secret);
    await setup.adapters.aliceT.forceClose(setup.tParams, alice.client.book.latest(setup.tId));

    await driveUntil(setup, link, clock, [bob], isDone(bob, swapId), 120);
    const revealedOnS = await setup.adapters.bobS.revealedAt(terms.hashlock);
    expect(revealedOnS > 0n && revealedOnS <= terms.sourceExpiry).to.equal(true, "Bob registered it on S in time");
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([90n * ONE, 20n * ONE]);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE + TAKE, 20n * ONE - TAKE]);
  });
});

describe("stale states posted on chain (guarantee 2)", function () {
  async function afterSwaps(n: number) {
    const setup = await fundedChannels();
    const parties = await twoParties(setup);
    for (let i = 0; i < n; i++) {
      await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
      await parties.link.settled();
    }
    return { setup, ...parties };
  }

  it("the responder force-closes T with an old state: the initiator challenges with the newest and is paid in full", async function () {
    const { setup, link, clock, alice, bob } = await afterSwaps(3);
    const stale = bob.store.coSignedAt(setup.tId, 2n)!; // after the first swap only
    await setup.adapters.bobT.forceClose(setup.tParams, stale);
    const newest = alice.client.book.head(setup.tId).seq;
    await driveUntil(setup, link, clock, [alice], async () => (await setup.adapters.aliceT.channelInfo(setup.tId)).seq === newest, 60);
    await driveUntil(setup, link, clock, [alice], closed(setup.adapters.aliceT, setup.tId));
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE + 3n * TAKE, 20n * ONE - 3n * TAKE]);
  });

  it("the initiator force-closes S at the opening deposits: the responder challenges with the newest and is paid in full", async function () {
    const { setup, link, clock, bob } = await afterSwaps(3);
    await setup.adapters.aliceS.forceClose(setup.sParams, undefined);
    await driveUntil(setup, link, clock, [bob], closed(setup.adapters.bobS, setup.sId));
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([70n * ONE, 40n * ONE]);
  });
});
