import { expect } from "chai";
import { SigningKey, Wallet } from "ethers";

import {
  addLock,
  seal,
  signDigest,
  termsDigest,
  type Envelope,
  type Hex,
  type SwapTerms,
} from "../../sdk/index.js";
import { accountKey } from "../../scripts/lib/local.js";
import { blockNumbers, craftedTerms, fundedChannels, ONE, twoParties } from "../helpers/swapHarness.js";

/** Messages a hostile initiator crafts by hand, signed with Alice's real key. */
async function hostileAlice() {
  const setup = await fundedChannels();
  const parties = await twoParties(setup);
  const key = new SigningKey(accountKey(1));
  const sign = (d: Hex) => signDigest(key, d);
  const terms = await craftedTerms(setup, parties, ONE, ONE / 10n, 2000n);
  const propose = (t: SwapTerms): Envelope =>
    seal(sign, parties.alice.client.address, t.swapId, { step: "propose", terms: t, termsSig: sign(termsDigest(t)) });
  return { setup, ...parties, sign, terms, propose };
}

describe("hostile messages (docs/SECURITY.md)", function () {
  it("refuses a proposal whose terms name a wrong chain id for a channel", async function () {
    const { link, bob, terms, propose } = await hostileAlice();
    const wrong = { ...terms, target: { ...terms.target, chainId: terms.source.chainId } };
    await bob.client.handle(propose(wrong));
    await link.settled();
    const phase = bob.client.swap(terms.swapId).progress.phase;
    expect(phase.kind === "done" && phase.outcome).to.equal("aborted");
    expect(phase.kind === "done" ? phase.reason : "").to.match(/the terms say chain 31337/);
  });

  it("rejects a proposal whose hashlock is not 32 bytes of hex before hashing it, and keeps no trace of it", async function () {
    const { link, bob, terms, propose } = await hostileAlice();
    // Hex read as bytes stops at the first bad character: this hashlock would hash as a different 32-byte value.
    const hashlock = `${terms.hashlock.slice(0, 40)}zz${terms.hashlock.slice(42)}` as Hex;
    let error: unknown;
    await bob.client.handle(propose({ ...terms, hashlock })).catch((e: unknown) => (error = e));
    await link.settled();
    expect(String(error)).to.match(/malformed swap terms: hashlock/);
    expect(bob.client.swaps()).to.have.length(0);
  });

  it("rejects a message signed by anyone but the counterparty, and keeps no trace of it", async function () {
    const { bob, terms } = await hostileAlice();
    const stranger = new SigningKey(Wallet.createRandom().privateKey);
    const forged = seal((d) => signDigest(stranger, d), terms.initiator, terms.swapId, {
      step: "propose",
      terms,
      termsSig: signDigest(stranger, termsDigest(terms)),
    });
    let error: unknown;
    await bob.client.handle(forged).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/Invalid signature/);
    expect(bob.client.swaps()).to.have.length(0);
  });

  it("refuses to counter-sign a lock state that differs from the agreed terms", async function () {
    const { setup, link, alice, bob, sign, terms, propose } = await hostileAlice();
    const before = await blockNumbers(setup);
    const signedBefore = bob.store.highestOwnSeq(setup.sId); // the deposit update
    await bob.client.handle(propose(terms));
    await link.settled(); // Bob accepted; Alice's real client ignores the accept of a swap it never proposed
    const bigger = addLock(bob.client.book.head(setup.sId), {
      sender: 0,
      amount: terms.give * 2n, // more than agreed
      hashlock: terms.hashlock,
      expiry: terms.sourceExpiry,
    });
    const digest = bob.client.book.digest(bigger);
    const envelope = seal(sign, alice.client.address, terms.swapId, { step: "sourceLock", state: bigger, sig: sign(digest) });
    let error: unknown;
    await bob.client.handle(envelope).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/differs from the one the terms imply/);
    expect(bob.client.swap(terms.swapId).progress.phase.kind).to.equal("accepted");
    expect(bob.store.highestOwnSeq(setup.sId)).to.equal(signedBefore, "Bob signed nothing more on S");
    expect(await blockNumbers(setup)).to.deep.equal(before);
  });
});
