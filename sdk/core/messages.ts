import type { UpdateMessage } from "./channel-updates.js";
import { hashOf } from "./codec.js";
import { InvalidMessageError } from "./errors.js";
import { requireSignedBy } from "./signing.js";
import type { SwapTerms } from "./swap.js";
import { sameAddress, type Address, type ChannelState, type Hex } from "./types.js";

/**
 * The messages of one swap, in protocol order (docs/SWAP.md). I = initiator (holds the secret), R = responder.
 * Each carries the states it asks the other to counter-sign, so a mismatch is reported, not silently re-derived.
 */
export type SwapBody =
  /** I -> R: the terms and I's signature on them. */
  | { step: "propose"; terms: SwapTerms; termsSig: Hex }
  /** R -> I: R's signature on the terms. */
  | { step: "accept"; termsSig: Hex }
  /** I -> R: the source-channel state with I's lock, signed by I. */
  | { step: "sourceLock"; state: ChannelState; sig: Hex }
  /** R -> I: R's counter-signature on the source lock, and the target-channel state with R's lock, signed by R. */
  | { step: "targetLock"; sourceSig: Hex; state: ChannelState; sig: Hex }
  /** I -> R: I's counter-signature on the target lock. Both transfers are now locked. */
  | { step: "targetLockAck"; sig: Hex }
  /** I -> R: the secret, and the target state with R's lock paid to I, signed by I. */
  | { step: "reveal"; secret: Hex; state: ChannelState; sig: Hex }
  /** R -> I: R's counter-signature on the target resolution, and the source state with I's lock paid to R. */
  | { step: "resolve"; targetSig: Hex; state: ChannelState; sig: Hex }
  /** I -> R: I's counter-signature on the source resolution. Both transfers are confirmed. */
  | { step: "resolveAck"; sig: Hex }
  /** Either, before any lock is co-signed: the swap is off. */
  | { step: "abort"; reason: string }
  /** Either, for a cooperative close (the session id is the channel id): the final state, signed. */
  | { step: "closeRequest"; state: ChannelState; sig: Hex }
  /** The other's counter-signature on the final state. */
  | { step: "closeAck"; sig: Hex }
  /**
   * Participant 0 -> 1 (the session id is the channel id): the next state counting the deposits the hub holds at a
   * block final for participant 0, not signed yet. Participant 1 signs it if its own final block holds at least as
   * much. Both fold a deposit made by anyone the same way.
   */
  | { step: "depositsUpdate"; state: ChannelState }
  /** Participant 1 -> 0: its signature on the update. */
  | { step: "depositsSigned"; sig: Hex }
  /** Participant 0 -> 1: its counter-signature; the update is co-signed. */
  | { step: "depositsAck"; sig: Hex }
  /**
   * Either, on a channel pair run with batched updates (docs/SWAP.md, "Many swaps on one pair"; the session id is
   * the channel id): one message of the update scheme.
   */
  | { step: "batch"; message: UpdateMessage }
  /** I -> R, on a pair run with batched updates: the terms of many swaps at once, each with I's signature on it. */
  | { step: "proposals"; items: readonly { terms: SwapTerms; termsSig: Hex }[] }
  /** R -> I: for each proposal, R's signature on its terms, or why it is refused. */
  | { step: "acceptances"; items: readonly { swapId: Hex; termsSig?: Hex; refusal?: string }[] };

export type SwapStep = SwapBody["step"];

/** Protocol order of the swap steps (abort and the channel steps stand outside it). */
export const STEP_ORDER: Readonly<Record<Exclude<SwapStep, "abort" | "closeRequest" | "closeAck" | "depositsUpdate" | "depositsSigned" | "depositsAck" | "batch" | "proposals" | "acceptances">, number>> = {
  propose: 1,
  accept: 2,
  sourceLock: 3,
  targetLock: 4,
  targetLockAck: 5,
  reveal: 6,
  resolve: 7,
  resolveAck: 8,
};

/** A signed message: the sender's key signs the canonical hash of swap id, sender and body. */
export type Envelope = Readonly<{ swapId: Hex; from: Address; body: SwapBody; signature: Hex }>;

export function envelopeDigest(swapId: Hex, from: Address, body: SwapBody): Hex {
  return hashOf({ kind: "cross-chain-swap-message/3", swapId, from: from.toLowerCase(), body });
}

/** Signs `body` as `from` with `sign` (a function over a 32-byte digest); addresses compare in any letter case. */
export function seal(sign: (digest: Hex) => Hex, from: Address, swapId: Hex, body: SwapBody): Envelope {
  return { swapId, from, body, signature: sign(envelopeDigest(swapId, from, body)) };
}

/** Throws unless `envelope` comes from `expectedFrom`, signed by it. */
export function unseal(envelope: Envelope, expectedFrom: Address): SwapBody {
  if (!sameAddress(envelope.from, expectedFrom)) {
    throw new InvalidMessageError(`message from ${envelope.from}, expected ${expectedFrom}`);
  }
  requireSignedBy(
    `message ${envelope.body.step} of swap ${envelope.swapId}`,
    expectedFrom,
    envelopeDigest(envelope.swapId, envelope.from, envelope.body),
    envelope.signature,
  );
  return envelope.body;
}
