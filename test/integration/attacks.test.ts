import { expect } from "chai";
import { SigningKey, Wallet } from "ethers";

import {
  seal,
  signDigest,
  termsDigest,
  type Envelope,
  type Hex,
  type SwapBody,
  type SwapTerms,
} from "../../sdk/index.js";
import { checkUpdateMessage, applyChanges, type UpdateMessage } from "../../sdk/core/channel-updates.js";
import { accountKey } from "../../scripts/lib/local.js";
import { blockNumbers, craftedTerms, fundedChannels, ONE, twoParties } from "../helpers/swapHarness.js";

/** Messages a hostile initiator crafts by hand, signed with Alice's real key; what Bob sends back is kept. */
async function hostileAlice() {
  const setup = await fundedChannels();
  const parties = await twoParties(setup);
  const key = new SigningKey(accountKey(1));
  const sign = (d: Hex) => signDigest(key, d);
  const terms = await craftedTerms(setup, parties, ONE, ONE / 10n, 2000n);
  /** A proposals envelope of these terms on the source channel, each signed by Alice. */
  const propose = (...all: SwapTerms[]): Envelope =>
    seal(sign, parties.alice.client.address, all[0]!.source.channelId, { step: "proposals", items: all.map((t) => ({ terms: t, termsSig: sign(termsDigest(t)) })) });
  const fromBob: SwapBody[] = [];
  parties.link.fault = (e, from) => {
    if (from === "b") fromBob.push(e.body);
    return "deliver";
  };
  return { setup, ...parties, sign, terms, propose, fromBob };
}

/** The update-scheme messages among `bodies`. */
const updates = (bodies: readonly SwapBody[]): UpdateMessage[] => bodies.flatMap((b) => (b.step === "batch" ? [b.message] : []));

describe("hostile messages (docs/SECURITY.md)", function () {
  it("refuses a proposal whose terms name a wrong chain id for a channel, signing nothing and keeping no swap", async function () {
    const { link, bob, terms, propose, fromBob } = await hostileAlice();
    const wrong = { ...terms, target: { ...terms.target, chainId: terms.source.chainId } };
    await bob.client.handle(propose(wrong));
    await link.settled();
    expect(fromBob).to.have.length(1);
    const answer = fromBob[0]!;
    expect(answer.step).to.equal("acceptances");
    const items = answer.step === "acceptances" ? answer.items : [];
    expect(items.map((i) => [i.swapId, i.termsSig])).to.deep.equal([[terms.swapId, undefined]], "no signature on the terms");
    expect(items[0]!.refusal).to.match(/the terms say chain 31337/);
    expect(bob.client.swaps()).to.have.length(0);
    const rejected = bob.events.filter((e) => e.type === "rejected");
    expect(rejected.map((e) => e.type === "rejected" && e.swapId)).to.deep.equal([terms.swapId]);
  });

  it("rejects a proposal whose hashlock is not 32 bytes of hex before hashing it, and keeps no trace of it", async function () {
    const { link, bob, terms, propose, fromBob } = await hostileAlice();
    // Hex read as bytes stops at the first bad character: this hashlock would hash as a different 32-byte value.
    const hashlock = `${terms.hashlock.slice(0, 40)}zz${terms.hashlock.slice(42)}` as Hex;
    let error: unknown;
    await bob.client.handle(propose({ ...terms, hashlock })).catch((e: unknown) => (error = e));
    await link.settled();
    expect(String(error)).to.match(/malformed swap terms: hashlock/);
    expect(bob.client.swaps()).to.have.length(0);
    expect(fromBob).to.deep.equal([], "nothing signed, not even a refusal");
  });

  it("rejects a message signed by anyone but the counterparty, and keeps no trace of it", async function () {
    const { link, bob, terms, fromBob } = await hostileAlice();
    const stranger = new SigningKey(Wallet.createRandom().privateKey);
    const forged = seal((d) => signDigest(stranger, d), terms.initiator, terms.source.channelId, {
      step: "proposals",
      items: [{ terms, termsSig: signDigest(stranger, termsDigest(terms)) }],
    });
    let error: unknown;
    await bob.client.handle(forged).catch((e: unknown) => (error = e));
    await link.settled();
    expect(String(error)).to.match(/Invalid signature/);
    expect(bob.client.swaps()).to.have.length(0);
    expect(fromBob).to.deep.equal([]);
  });

  it("refuses to counter-sign a lock that differs from the agreed terms", async function () {
    const { setup, link, alice, bob, sign, terms, propose, fromBob } = await hostileAlice();
    const before = await blockNumbers(setup);
    const signedBefore = bob.store.highestOwnSeq(setup.sId); // the deposit update
    await bob.client.handle(propose(terms));
    await link.settled(); // Bob agreed; Alice's real client ignores the acceptance of a swap it never proposed
    expect(bob.client.swap(terms.swapId).progress.phase.kind).to.equal("agreed");
    fromBob.length = 0;
    // Alice, the proposer of S, signs a batch adding her lock of the swap with twice the agreed amount.
    const head = bob.client.book.head(setup.sId);
    const bigger = { kind: "add" as const, lock: { sender: 0 as const, amount: terms.give * 2n, hashlock: terms.hashlock, expiry: terms.sourceExpiry } };
    const seq = head.seq + 1n;
    const state = applyChanges(head, [bigger], seq);
    const message: UpdateMessage = { kind: "update", base: head.seq, seq, changes: [bigger], signature: sign(bob.client.book.digest(state)) };
    await bob.client.handle(seal(sign, alice.client.address, setup.sId, { step: "batch", message }));
    await link.settled();
    const answers = updates(fromBob);
    expect(answers.map((m) => m.kind)).to.deep.equal(["refuse"], "a refusal, no signature");
    const refusal = answers[0]!;
    expect(refusal.kind === "refuse" && refusal.refusals.map((r) => [r.final, r.reason])).to.deep.equal([[true, `the lock differs from the terms of swap ${terms.swapId}`]]);
    expect(bob.client.swap(terms.swapId).progress.phase.kind).to.equal("agreed");
    expect(bob.client.book.head(setup.sId).locks).to.deep.equal([]);
    expect(bob.store.highestOwnSeq(setup.sId)).to.equal(signedBefore, "Bob signed nothing more on S");
    expect(await blockNumbers(setup)).to.deep.equal(before);
  });

  it("keeps a reason in an update message from the peer without the characters a terminal would act on, cut whole at 300", function () {
    const reason = "\u001b[31mred\r\nforged line\u2066" + "y".repeat(400);
    const checked = checkUpdateMessage({ kind: "refuse", seq: 5n, refusals: [{ index: 0, final: true, reason }] });
    const kept = checked.kind === "refuse" ? checked.refusals[0]!.reason : "";
    expect(kept.startsWith(" [31mred  forged line ")).to.equal(true);
    expect(kept).to.have.length(300);
    expect(/[\u0000-\u001f\u2066]/.test(kept)).to.equal(false);
  });

  it("keeps at most 300 characters of a counterparty's reason for refusing a swap, however long the reason it sends, with nothing a terminal would act on", async function () {
    const setup = await fundedChannels();
    const { link, alice } = await twoParties(setup);
    const bobKey = new SigningKey(accountKey(2));
    // Bob's own answer never arrives; a crafted one, signed with his real key, refuses with 200,000 characters.
    link.fault = (e, from) => (from === "b" && e.body.step === "acceptances" ? "drop" : "deliver");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: ONE, take: ONE / 10n });
    await link.settled();
    // A terminal escape, a forged line, a right-to-left override, and a character cut in half at the 300th place.
    const words = "\u001b[2J\nfake\u202e" + "x".repeat(289) + "\u{1F600}" + "x".repeat(200_000);
    await alice.client.handle(seal((d) => signDigest(bobKey, d), new Wallet(accountKey(2)).address as Hex, setup.sId, { step: "acceptances", items: [{ swapId, refusal: words }] }));
    const view = alice.client.swaps().find((s) => s.swapId === swapId)!;
    const phase = view.progress.phase as { kind: string; reason?: string };
    expect(phase.kind).to.equal("done");
    expect(phase.reason).to.equal(`counterparty:  [2J fake ${"x".repeat(289)}\u{1F600}`);
    expect([...phase.reason!.slice("counterparty: ".length)]).to.have.length(300);
  });
});
