import { expect } from "chai";

import type { Envelope, HubAdapter, Hex, InMemoryLink } from "../../sdk/index.js";
import {
  blockNumbers,
  driveUntil,
  fundedChannels,
  ONE,
  payoutsOf,
  phaseOf,
  twoParties,
  type Party,
  type Setup,
} from "../helpers/swapHarness.js";

// The harness's channels: S holds tokens, deposits [Alice 100, Bob 10]; T holds ether, deposits [Alice 1, Bob 20].
// Alice is participant 0 (the proposer of batches) on both. One swap, proposed by Alice, runs as:
//   a proposals; b acceptances;
//   a update S [add] (the source lock), b ack;  b request T [add], a update T [add] (the target lock), b ack;
//   then in one round a update S [pay] (the resolving batch) and a update T [pay] (the reveal); b ack S, b ack T.
const GIVE = 10n * ONE; // Alice -> Bob on S
const TAKE = ONE / 2n; // Bob -> Alice on T

/** The last message a party sends before it goes silent. */
type Last = "proposals" | "acceptances" | "sourceLock" | "targetLock" | "reveal" | "resolve";

/** The batch of each cut point (its channel and the change it makes), as Alice proposes it. */
const BATCHES: Partial<Record<Last, { channel: "S" | "T"; change: "add" | "pay" }>> = {
  sourceLock: { channel: "S", change: "add" },
  targetLock: { channel: "T", change: "add" },
  reveal: { channel: "T", change: "pay" },
  resolve: { channel: "S", change: "pay" },
};

/** A message lost on the way before the cut: Alice's S payment, or Bob's acknowledgement of it. */
type Lost = "none" | "S pay" | "S pay ack";

/**
 * From the moment `who` has sent its message of `last` (Alice: the batch she proposes; Bob: his ack of it), it is
 * gone: nothing from or to it arrives. `lose` drops one message before that.
 */
function silentAfter(setup: Setup, link: InMemoryLink, who: "alice" | "bob", last: Last, lose: Lost = "none") {
  const ids = { S: setup.sId.toLowerCase(), T: setup.tId.toLowerCase() };
  const batch = BATCHES[last];
  let proposedSeq: bigint | undefined; // the sequence number of the batch, once Alice proposed it
  const isLast = (e: Envelope, from: "a" | "b"): boolean => {
    if (last === "proposals" || last === "acceptances") return e.body.step === last && from === (who === "alice" ? "a" : "b");
    if (e.body.step !== "batch" || batch === undefined || e.swapId.toLowerCase() !== ids[batch.channel]) return false;
    const m = e.body.message;
    if (from === "a" && m.kind === "update" && m.changes.some((c) => c.kind === batch.change)) {
      proposedSeq = m.seq;
      return who === "alice";
    }
    return from === "b" && who === "bob" && m.kind === "ack" && m.seq === proposedSeq;
  };
  let gone = false;
  let sPaySeq: bigint | undefined;
  const lost = (e: Envelope, from: "a" | "b"): boolean => {
    if (lose === "none" || e.body.step !== "batch" || e.swapId.toLowerCase() !== ids.S) return false;
    const m = e.body.message;
    if (from === "a" && m.kind === "update" && m.changes.some((c) => c.kind === "pay")) return (sPaySeq = m.seq), lose === "S pay";
    return lose === "S pay ack" && from === "b" && m.kind === "ack" && m.seq === sPaySeq;
  };
  link.fault = (e, from) => {
    if (gone) return "drop";
    if (lost(e, from)) return "drop";
    if (isLast(e, from)) gone = true;
    return "deliver";
  };
  return { isGone: () => gone };
}

/**
 * Seconds the chains (and the client clock) move between two ticks while a party settles on chain: less than the
 * clients' onChainMargin (300 s), so a tick falls between "a lock that pays me nears its expiry" and the expiry, as
 * a client ticking every few seconds would.
 */
const STEP = 120;

const isDone = (p: Party, swapId: Hex) => () => phaseOf(p, swapId).kind === "done";
const closed = (chain: HubAdapter, channelId: Hex) => async () => (await chain.channelInfo(channelId)).status === "closed";

/** How a channel ends: closed on chain with these payouts, or still open with these balances in the honest head. */
type End = { closed: [bigint, bigint] } | { open: [bigint, bigint] };

const DEPOSITS = { S: [100n * ONE, 10n * ONE], T: [ONE, 20n * ONE] } as const;
const SWAPPED = { S: [90n * ONE, 20n * ONE], T: [ONE + TAKE, 20n * ONE - TAKE] } as const;

async function expectEnd(setup: Setup, honest: Party, which: "S" | "T", end: End) {
  const [suite, id, chain] = which === "S" ? [setup.S, setup.sId, setup.adapters.aliceS] : [setup.T, setup.tId, setup.adapters.aliceT];
  const status = (await chain.channelInfo(id)).status;
  if ("closed" in end) {
    expect(status, `${which} closed on chain`).to.equal("closed");
    expect(await payoutsOf(suite, id), `${which} payouts`).to.deep.equal(end.closed);
  } else {
    expect(status, `${which} stays open: nothing at stake on it`).to.equal("open");
    const head = honest.client.book.head(id);
    expect(head.locks, `${which}: no lock in the honest party's head`).to.deep.equal([]);
    expect([...head.balances], `${which} balances`).to.deep.equal(end.open);
  }
}

describe("cross-chain swap when a party goes silent (batch settlement, guarantees 1, 2, 4)", function () {
  const cases: { title: string; silent: "alice" | "bob"; after: Last; lose?: Lost; S: End; T: End }[] = [
    {
      title: "the responder vanishes after accepting: the initiator's source lock, signed and never acknowledged, ends on chain; she keeps her tokens and T stays open",
      silent: "bob",
      after: "acceptances",
      S: { closed: [...DEPOSITS.S] },
      T: { open: [...DEPOSITS.T] },
    },
    {
      title: "the initiator vanishes after proposing the batch of her source lock: the responder acknowledged it, and it refunds to her on chain",
      silent: "alice",
      after: "sourceLock",
      S: { closed: [...DEPOSITS.S] },
      T: { closed: [...DEPOSITS.T] },
    },
    {
      title: "the responder vanishes after acknowledging the source lock: the initiator undoes the swap and her lock refunds on chain",
      silent: "bob",
      after: "sourceLock",
      S: { closed: [...DEPOSITS.S] },
      T: { closed: [...DEPOSITS.T] },
    },
    {
      title: "the initiator locks both and never reveals: the responder refunds both locks on chain after their expiries",
      silent: "alice",
      after: "targetLock",
      S: { closed: [...DEPOSITS.S] },
      T: { closed: [...DEPOSITS.T] },
    },
    {
      title: "the responder vanishes after acknowledging his target lock: the initiator claims on T on chain, her own lock refunds on S",
      silent: "bob",
      after: "targetLock",
      S: { closed: [...DEPOSITS.S] },
      T: { closed: [...SWAPPED.T] },
    },
    {
      title: "the initiator vanishes after revealing, her S payment lost: the responder claims on S with the secret, both legs happen",
      silent: "alice",
      after: "reveal",
      lose: "S pay",
      S: { closed: [...SWAPPED.S] },
      T: { closed: [...SWAPPED.T] },
    },
    {
      title: "the responder vanishes after acknowledging the reveal, his acknowledgement of the S payment lost, and never claims: the initiator keeps T's payment and her S lock refunds on chain",
      silent: "bob",
      after: "reveal",
      lose: "S pay ack",
      S: { closed: [...DEPOSITS.S] },
      T: { closed: [...SWAPPED.T] },
    },
  ];

  for (const c of cases) {
    it(c.title, async function () {
      const setup = await fundedChannels();
      const { link, clock, alice, bob } = await twoParties(setup);
      silentAfter(setup, link, c.silent, c.after, c.lose);
      const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
      await link.settled();
      const honest = c.silent === "alice" ? bob : alice;
      await driveUntil(setup, link, clock, [honest], isDone(honest, swapId), STEP, 200);
      expect(phaseOf(honest, swapId)).to.deep.equal({ kind: "done", outcome: "settledOnChain" });
      await expectEnd(setup, honest, "S", c.S);
      await expectEnd(setup, honest, "T", c.T);
    });
  }

  it("the initiator vanishes after proposing: the responder undoes the swap it agreed, nothing touches a chain", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    const { isGone } = silentAfter(setup, link, "alice", "proposals");
    const blocks = await blockNumbers(setup);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(isGone()).to.equal(true);
    expect(phaseOf(bob, swapId).kind).to.equal("agreed");
    clock.advance(11_000); // past the confirmation timeout
    await bob.client.tick();
    await link.settled();
    expect(phaseOf(bob, swapId)).to.deep.include({ kind: "done", outcome: "aborted" });
    expect(bob.client.available(setup.tId, 1)).to.equal(20n * ONE, "nothing of Bob's stays promised on T");
    expect(await blockNumbers(setup)).to.deep.equal(blocks);
  });

  it("the responder vanishes after resolving: the initiator is done off chain, both payments in her co-signed heads", async function () {
    const setup = await fundedChannels();
    const { link, alice } = await twoParties(setup);
    const { isGone } = silentAfter(setup, link, "bob", "reveal"); // his acks of both payments are his last messages
    const blocks = await blockNumbers(setup);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(isGone()).to.equal(true);
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    for (const [id, balances] of [[setup.sId, SWAPPED.S], [setup.tId, SWAPPED.T]] as const) {
      const head = alice.client.book.head(id);
      expect(head.locks).to.deep.equal([]);
      expect([...head.balances]).to.deep.equal([...balances]);
    }
    expect(await blockNumbers(setup)).to.deep.equal(blocks);
  });

  it("the initiator vanishes after proposing the resolving batches: the responder acknowledged them and is done off chain", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const { isGone } = silentAfter(setup, link, "alice", "reveal"); // her S and T payments are her last messages
    const blocks = await blockNumbers(setup);
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    expect(isGone()).to.equal(true);
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    for (const [id, balances] of [[setup.sId, SWAPPED.S], [setup.tId, SWAPPED.T]] as const) {
      const head = bob.client.book.head(id);
      expect(head.locks).to.deep.equal([]);
      expect([...head.balances]).to.deep.equal([...balances]);
    }
    expect(await blockNumbers(setup)).to.deep.equal(blocks);
  });

  it("carries a secret revealed at the last second on T to S before the source lock expires", async function () {
    const setup = await fundedChannels();
    const { link, clock, alice, bob } = await twoParties(setup);
    // Alice has both locks co-signed, keeps the secret off the wire (her reveal never arrives), and claims on T herself
    // just before tT.
    silentAfter(setup, link, "bob", "targetLock");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { terms } = alice.client.swap(swapId);
    const latestT = alice.client.book.latest(setup.tId)!;
    expect(latestT.state.locks.map((l) => l.hashlock)).to.deep.equal([terms.hashlock], "the T lock is co-signed");
    expect(bob.store.secret(terms.hashlock)).to.equal(undefined);
    const secret = alice.store.secret(terms.hashlock)!;
    await setup.T.chain.networkHelpers.time.increaseTo(terms.targetExpiry - 5n);
    await setup.adapters.aliceT.reveal(secret);
    await setup.adapters.aliceT.forceClose(setup.tParams, latestT);

    await driveUntil(setup, link, clock, [bob], isDone(bob, swapId), 120);
    const revealedOnS = await setup.adapters.bobS.revealedAt(terms.hashlock);
    expect(revealedOnS > 0n && revealedOnS <= terms.sourceExpiry).to.equal(true, "Bob registered it on S in time");
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "settledOnChain" });
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([...SWAPPED.S]);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([...SWAPPED.T]);
  });
});

describe("stale states posted on chain (guarantee 2)", function () {
  async function afterSwaps(n: number) {
    const setup = await fundedChannels();
    const parties = await twoParties(setup);
    for (let i = 0; i < n; i++) {
      const id = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
      expect((await parties.alice.client.whenDone(id)).outcome).to.equal("swapped");
      await parties.link.settled();
    }
    return { setup, ...parties };
  }

  it("the responder force-closes T with an old state: the initiator challenges with the newest and is paid in full", async function () {
    const { setup, link, clock, alice, bob } = await afterSwaps(3);
    // The co-signed state of T right after the first swap, as Bob keeps it.
    const newest = alice.client.book.head(setup.tId).seq;
    let stale;
    for (let seq = 1n; seq < newest && stale === undefined; seq++) {
      const s = bob.store.coSignedAt(setup.tId, seq);
      if (s !== undefined && s.state.locks.length === 0 && s.state.balances[0] === ONE + TAKE) stale = s;
    }
    expect(stale, "a co-signed T state after one swap").to.not.equal(undefined);
    await setup.adapters.bobT.forceClose(setup.tParams, stale);
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
