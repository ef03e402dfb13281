/**
 * Envelopes authenticated with a key the two parties agree (ECDH) instead of a signature each: who can make one that
 * opens, and what is refused before any key is derived.
 */
import { expect } from "chai";
import { hexlify, randomBytes, Wallet } from "ethers";

import {
  decodeEnvelope,
  encode,
  EnvelopeLine,
  EnvelopeAuth,
  InvalidSignatureError,
  isAuthenticatorShaped,
  keySigner,
  knownPublicKey,
  learnPublicKey,
  receivedSigner,
  recoverSigner,
  seal,
  signedBy,
  unseal,
  type Address,
  type Envelope,
  type Hex,
  type StateSigner,
  type SwapBody,
} from "../../sdk/index.js";

const body: SwapBody = { step: "acceptances", items: [] };
const id = () => hexlify(randomBytes(32)) as Hex;
/** A signer that counts its key agreements. */
function party(): StateSigner & { agreements: number } {
  const inner = keySigner(Wallet.createRandom().privateKey);
  const p = { ...inner, agreements: 0, agree: (k: Hex) => (p.agreements++, inner.agree(k)) };
  return p;
}
/** `from` seals `body` for `to` with their shared key, as a line on the wire read back. */
function authenticated(from: StateSigner, to: StateSigner, b: SwapBody = body, swapId = id()): Envelope {
  const auth = new EnvelopeAuth(from);
  return decodeEnvelope(encode(seal((d) => auth.tag(d, to.publicKey), from.address as Address, swapId, b)));
}

describe("envelopes authenticated with a key the two parties agree", function () {
  it("opens for the recipient as coming from the sender, and costs the recipient one key agreement per sender", function () {
    const [alice, bob] = [party(), party()];
    const auth = new EnvelopeAuth(bob);
    for (let i = 0; i < 5; i++) {
      const e = authenticated(alice, bob);
      expect(isAuthenticatorShaped(e.signature)).to.equal(true);
      expect(unseal(e, alice.address as Address, auth)).to.deep.equal(body);
      expect(receivedSigner(e)).to.equal(alice.address.toLowerCase());
    }
    expect(bob.agreements).to.equal(1);
    expect(knownPublicKey(alice.address)).to.equal(alice.publicKey, "Bob can now authenticate his answers to Alice");
  });

  it("refuses an envelope claiming the sender's address with a stranger's key, before deriving any key", function () {
    const [alice, bob, mallory] = [party(), party(), party()];
    const auth = new EnvelopeAuth(bob);
    const forged = new EnvelopeAuth(mallory);
    const e = decodeEnvelope(encode(seal((d) => forged.tag(d, bob.publicKey), alice.address as Address, id(), body)));
    expect(() => unseal(e, alice.address as Address, auth)).to.throw(InvalidSignatureError);
    expect(bob.agreements).to.equal(0);
  });

  it("refuses a tag made with any other key pair, a changed body or swap id, and the sender's own envelope sent back to it", function () {
    const [alice, bob, carol] = [party(), party(), party()];
    const auth = new EnvelopeAuth(bob);
    // Alice's envelope for Carol does not open at Bob's.
    expect(() => unseal(authenticated(alice, carol), alice.address as Address, auth)).to.throw(InvalidSignatureError);
    // A body or id changed in transit.
    const e = authenticated(alice, bob);
    const changed = decodeEnvelope(encode({ ...e, body: { step: "acceptances", items: [{ swapId: id(), refusal: "no" }] } }));
    expect(() => unseal(changed, alice.address as Address, auth)).to.throw(InvalidSignatureError);
    expect(() => unseal(decodeEnvelope(encode({ ...e, swapId: id() })), alice.address as Address, auth)).to.throw(InvalidSignatureError);
    // Bob's own envelope to Alice, handed back to Bob as if from Alice: it names Bob as its sender.
    const mine = authenticated(bob, alice);
    expect(() => unseal(mine, alice.address as Address, auth)).to.throw(/expected/);
    // And relabelled as Alice's, its digest is not the one tagged.
    expect(() => unseal(decodeEnvelope(encode({ ...mine, from: alice.address as Address })), alice.address as Address, auth)).to.throw(InvalidSignatureError);
  });

  it("opens an envelope the port verified on its bytes without checking it again, and checks one changed since", function () {
    const [alice, bob] = [party(), party()];
    const auth = new EnvelopeAuth(bob);
    const line = encode(seal((d) => new EnvelopeAuth(alice).tag(d, bob.publicKey), alice.address as Address, id(), body));
    const wire = EnvelopeLine.read(line)!;
    expect(wire.signedByItsSender(auth)).to.equal(true);
    // Opened without any key agreement given: an authenticator checked again here would be refused for want of one.
    expect(unseal(decodeEnvelope(wire), alice.address as Address)).to.deep.equal(body);
    // The same line as an object whose body was changed after decoding: verified again, and refused.
    const changed = decodeEnvelope(wire) as { body: SwapBody };
    changed.body = { step: "acceptances", items: [{ swapId: id(), refusal: "no" }] };
    expect(() => unseal(changed as Envelope, alice.address as Address, auth)).to.throw(InvalidSignatureError);
  });

  it("refuses an authenticated envelope where no key agreement is given, and a malformed authenticator", function () {
    const [alice, bob] = [party(), party()];
    const e = authenticated(alice, bob);
    expect(() => unseal(e, alice.address as Address)).to.throw(InvalidSignatureError);
    const notOnCurve = `0x0102${"ff".repeat(32)}${e.signature.slice(70)}` as Hex;
    expect(() => unseal(decodeEnvelope(encode({ ...e, signature: notOnCurve })), alice.address as Address, new EnvelopeAuth(bob))).to.throw(InvalidSignatureError);
    expect(isAuthenticatorShaped(`${e.signature.slice(0, 132)}`)).to.equal(false);
  });

  it("learns a public key only from a signature or authenticator that verifies as its claimed signer's, and keeps the first per address", function () {
    const [alice, bob, mallory] = [party(), party(), party()];
    const digest = id();
    // Recovering a signature nobody checked teaches nothing, nor does one that fails its check.
    recoverSigner(digest, mallory.sign(digest));
    expect(signedBy(alice.address, digest, mallory.sign(digest))).to.equal(false);
    expect(knownPublicKey(mallory.address)).to.equal(undefined);
    expect(signedBy(mallory.address, digest, mallory.sign(digest))).to.equal(true);
    expect(knownPublicKey(mallory.address)).to.equal(mallory.publicKey);
    learnPublicKey(alice.address, alice.publicKey);
    learnPublicKey(alice.address, bob.publicKey); // ignored: the address has its key
    expect(knownPublicKey(alice.address)).to.equal(alice.publicKey);
  });

  it("refuses an authenticator whose key is not the one already known for its sender, before computing anything", function () {
    const [alice, bob, mallory] = [party(), party(), party()];
    learnPublicKey(alice.address, alice.publicKey);
    const forged = new EnvelopeAuth(mallory);
    const e = decodeEnvelope(encode(seal((d) => forged.tag(d, bob.publicKey), alice.address as Address, id(), body)));
    const auth = new EnvelopeAuth(bob);
    expect(() => unseal(e, alice.address as Address, auth)).to.throw(InvalidSignatureError);
    expect(bob.agreements).to.equal(0);
    // Alice's own still opens.
    expect(unseal(authenticated(alice, bob), alice.address as Address, auth)).to.deep.equal(body);
  });
});
