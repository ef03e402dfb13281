import type { UpdateMessage } from "./channel-updates.js";
import { decode, hashOf, MAX_NESTING, nestingWithin } from "./codec.js";
import { InvalidMessageError, InvalidSignatureError } from "./errors.js";
import { keccak } from "./keccak.js";
import { isAuthenticatorShaped, plausible, type EnvelopeAuth } from "./envelope-auth.js";
import { isSignatureShaped, recoverSigner, requireSignedBy, signedBy } from "./signing.js";
import type { SwapTerms } from "./swap.js";
import { sameAddress, type Address, type Hex } from "./types.js";
import { toHex } from "./words.js";

/**
 * The messages between two parties (docs/SWAP.md): terms agreed in bulk, and the update scheme that carries every
 * channel's states. Each is sealed in an envelope signed by its sender.
 */
export type SwapBody =
  /** Either, on a channel (the session id is the channel id): one message of the update scheme. */
  | { step: "batch"; message: UpdateMessage }
  /** Initiator -> responder: the terms of many swaps at once, each with the initiator's signature on it. */
  | { step: "proposals"; items: readonly { terms: SwapTerms; termsSig: Hex }[] }
  /** Responder -> initiator: for each proposal, the responder's signature on its terms, or why it is refused. */
  | { step: "acceptances"; items: readonly { swapId: Hex; termsSig?: Hex; refusal?: string }[] };

export type SwapStep = SwapBody["step"];

/** A signed message: the sender's key signs the canonical hash of swap id, sender and body. */
export type Envelope = Readonly<{ swapId: Hex; from: Address; body: SwapBody; signature: Hex }>;

/** Version 4: the one protocol's messages (a 0.2.x peer's envelopes, version 3, never open here, nor ours there). */
const ENVELOPE_KIND = "cross-chain-swap-message/4";

export function envelopeDigest(swapId: Hex, from: Address, body: SwapBody): Hex {
  return hashOf({ kind: ENVELOPE_KIND, swapId, from: from.toLowerCase(), body });
}

/** Signs `body` as `from` with `sign` (a function over a 32-byte digest); addresses compare in any letter case. */
export function seal(sign: (digest: Hex) => Hex, from: Address, swapId: Hex, body: SwapBody): Envelope {
  return { swapId, from, body, signature: sign(envelopeDigest(swapId, from, body)) };
}

/** The digest of an envelope decoded by `decodeEnvelope`, hashed from its received text, with the fields it covers. */
type WireDigest = { readonly body: unknown; readonly swapId: unknown; readonly from: unknown; readonly digest: Hex };
const wireDigests = new WeakMap<object, WireDigest>();
/** The signer `unseal` verified, per envelope object. */
const opened = new WeakMap<object, string>();
const BODY_HEAD = '{"body":';
/** The fixed-length end of an envelope's line as `encode` writes it (keys sorted, body first). */
const ENVELOPE_TAIL = /,"from":"(0x[0-9a-fA-F]{40})","signature":"(0x[0-9a-fA-F]{130}|0x01(?:02|03)[0-9a-fA-F]{128})","swapId":"(0x[0-9a-fA-F]{64})"\}$/;
/** The tail's length with a signature (65 bytes) and with an authenticator (66 bytes, envelope-auth.ts). */
const ENVELOPE_TAIL_LENGTHS = [132, 134].map((sig) => ',"from":"","signature":"","swapId":""}'.length + 42 + sig + 66);

/**
 * An envelope's line laid out as `encode` writes it, `{"body":…,"from":…,"signature":…,"swapId":…}`, read without
 * parsing it: `from`, `signature` and `swapId` have fixed lengths, so they are the line's last characters and the
 * body's text is what lies between. A receiver can check the sender and the signature before the body is parsed.
 */
export class EnvelopeLine {
  private hashed: Hex | undefined;
  /** Its sender (lower case) once `signedByItsSender` confirmed it: `decodeEnvelope` hands it to `unseal`. */
  private verified: string | undefined;

  private constructor(
    /** The whole line, as received. */
    readonly text: string,
    readonly from: string,
    readonly signature: string,
    readonly swapId: string,
    /** The body's JSON text, as received. */
    readonly bodyText: string,
  ) {}

  /** The line's fields if it is laid out as `encode` writes an envelope, else undefined. Reads only its ends. */
  static read(text: string): EnvelopeLine | undefined {
    if (!text.startsWith(BODY_HEAD)) return undefined;
    for (const length of ENVELOPE_TAIL_LENGTHS) {
      if (text.length < BODY_HEAD.length + length) continue;
      const tail = ENVELOPE_TAIL.exec(text.slice(text.length - length));
      if (tail !== null) return new EnvelopeLine(text, tail[1]!, tail[2]!, tail[3]!, text.slice(BODY_HEAD.length, text.length - length));
    }
    return undefined;
  }

  /**
   * The digest its sender signed: `encode({ kind, swapId, from, body })` with the body's text as received (keys
   * sorted, `from` in lower case), hashed once however often it is asked for.
   */
  get digest(): Hex {
    this.hashed ??= toHex(keccak(Buffer.from(`${BODY_HEAD}${this.bodyText},"from":"${this.from.toLowerCase()}","kind":"${ENVELOPE_KIND}","swapId":"${this.swapId}"}`, "utf8")));
    return this.hashed;
  }

  /**
   * Whether its `from` signed it, or authenticated it with the key `auth` shares with it (one hash of the line and
   * one signature recovery or one HMAC; the body is not parsed).
   */
  signedByItsSender(auth?: EnvelopeAuth): boolean {
    // An authenticator is checked against the sender's known key before the line is hashed (a forged one of a
    // megabyte would otherwise cost the hash).
    const ok = isAuthenticatorShaped(this.signature)
      ? auth !== undefined && plausible(this.signature, this.from) && auth.verify(this.digest, this.signature, this.from)
      : signedBy(this.from, this.digest, this.signature);
    if (ok) this.verified = this.from.toLowerCase();
    return ok;
  }

  /** The sender `signedByItsSender` confirmed, if it did. */
  get verifiedSender(): string | undefined {
    return this.verified;
  }
}

/**
 * An envelope as a peer sends it: one line of `encode(envelope)`. When the line is laid out as `encode` writes it,
 * the digest its signature must cover is hashed from the received text of the body (the bytes the sender hashed),
 * and `unseal` verifies against it instead of encoding the body again: verifying costs one hash of the line, about
 * what parsing it costs, whatever the body holds. This is sound because a signer only ever signs `encode`'s
 * output: a body text that is not its canonical encoding gives a digest nobody signed, and the envelope is refused
 * as if it had been encoded again. Any other layout falls back to `envelopeDigest`. A line read as an
 * `EnvelopeLine` (whose signature may already have been checked) is hashed only once. Throws InvalidMessageError
 * for text nested deeper than MAX_NESTING (checked before it is parsed), else as `decode` does.
 */
export function decodeEnvelope(input: string | EnvelopeLine): Envelope {
  const line = typeof input === "string" ? input : input.text;
  if (!nestingWithin(line)) throw new InvalidMessageError(`a message nested deeper than ${MAX_NESTING} levels`);
  const envelope = decode<Envelope>(line);
  if (envelope === null || typeof envelope !== "object") return envelope;
  const { swapId, from, signature, body } = envelope;
  const wire = typeof input === "string" ? EnvelopeLine.read(line) : input;
  // The parsed fields must be the ones at the line's end: then the body's text is exactly what lies before them.
  if (wire === undefined || wire.from !== from || wire.swapId !== swapId || wire.signature !== signature) return envelope;
  wireDigests.set(envelope, { body, swapId, from, digest: wire.digest });
  // Checked already on these very bytes (the peer port does, before it queues a line): `unseal` need not again.
  if (wire.verifiedSender !== undefined) opened.set(envelope, wire.verifiedSender);
  return envelope;
}

/**
 * The digest `decodeEnvelope` hashed from the envelope's received text, if it still has the fields it was hashed
 * with (an envelope is not changed after it is decoded; the identity checks are cheap insurance).
 */
function wireDigestOf(envelope: Envelope): Hex | undefined {
  const wire = wireDigests.get(envelope);
  return wire !== undefined && wire.body === envelope.body && wire.swapId === envelope.swapId && wire.from === envelope.from ? wire.digest : undefined;
}

/**
 * Throws unless `envelope` comes from `expectedFrom`: signed by it, or authenticated with the key `auth` shares with
 * it (envelope-auth.ts). The cheap checks come first: a sender that is not `expectedFrom` or a malformed signature is
 * refused before anything is hashed or recovered.
 */
export function unseal(envelope: Envelope, expectedFrom: Address, auth?: EnvelopeAuth): SwapBody {
  if (!sameAddress(envelope.from, expectedFrom)) {
    throw new InvalidMessageError(`message from ${envelope.from}, expected ${expectedFrom}`);
  }
  // Verified on the bytes it was decoded from (`EnvelopeLine.signedByItsSender`, or an earlier unseal), unchanged since.
  if (opened.get(envelope) === expectedFrom.toLowerCase() && wireDigestOf(envelope) !== undefined) return envelope.body;
  const what = `message ${envelope.body.step} of swap ${envelope.swapId}`;
  const authenticated = isAuthenticatorShaped(envelope.signature);
  if (!authenticated && !isSignatureShaped(envelope.signature)) throw new InvalidSignatureError(what, expectedFrom, undefined);
  const digest = wireDigestOf(envelope) ?? envelopeDigest(envelope.swapId, envelope.from, envelope.body);
  if (authenticated) {
    if (auth === undefined || !auth.verify(digest, envelope.signature, expectedFrom)) throw new InvalidSignatureError(`${what} (authenticator)`, expectedFrom, undefined);
  } else {
    requireSignedBy(what, expectedFrom, digest, envelope.signature);
  }
  opened.set(envelope, expectedFrom.toLowerCase());
  return envelope.body;
}

/** The address (lower case) `unseal` verified `envelope` against, or undefined if it was never opened. Free. */
export function openedBy(envelope: Envelope): string | undefined {
  return opened.get(envelope);
}

/**
 * The address (lower case) that signed a received envelope as its sender: the one `unseal` verified, else recovered
 * from the digest `decodeEnvelope` hashed from its text (one signature recovery, the body is not hashed again);
 * undefined when neither is known or the signature is not its sender's. For telling who sent a message that could
 * not be handled; its content is trusted only through `unseal`.
 */
export function receivedSigner(envelope: Envelope, auth?: EnvelopeAuth): string | undefined {
  const known = opened.get(envelope);
  if (known !== undefined) return known;
  const digest = wireDigestOf(envelope);
  if (digest === undefined) return undefined;
  if (isAuthenticatorShaped(envelope.signature)) {
    return auth !== undefined && auth.verify(digest, envelope.signature, String(envelope.from)) ? String(envelope.from).toLowerCase() : undefined;
  }
  const signer = recoverSigner(digest, envelope.signature);
  return signer !== undefined && signer === String(envelope.from).toLowerCase() ? signer : undefined;
}
