/**
 * The swap rules over batched channel updates (docs/SWAP.md, "Channel updates"): for each swap, which
 * changes a party wants on the two channels, and which changes it signs. Pure: the caller keeps a `SwapSide` per swap
 * and the channel heads, and persists a side before anything it decided leaves.
 *
 * The order that keeps a swap atomic, whatever the batches, the interleaving and the cancels:
 * 1. the initiator's lock on S (its own ask); the responder signs it for an agreed swap it has not cancelled;
 * 2. the responder's lock on T, asked only once (1) is co-signed, and never again once it cancelled;
 * 3. the initiator reveals (asks to pay the T lock with the secret) only once (2) is co-signed and it has not
 *    cancelled; from then on it never agrees to refund the T lock;
 * 4. the responder, holding the secret, asks to pay the S lock.
 * A cancel before (3): the initiator gives up the T lock (refunds it) and asks for the S lock back; the responder
 * gives the S lock back only once its T lock is refunded or can no longer be made.
 */
import { changeHashlock, type Approval, type Change } from "./channel-updates.js";
import { hashlockOf, type RevealRule, type SwapTerms } from "./swap.js";
import type { ChannelState, Hex, Lock, ParticipantIndex } from "./types.js";

/** Where one lock of a swap stands in the co-signed head of its channel. */
export type LockStand = "none" | "locked" | "paid" | "refunded";

/** One party's side of one swap (plain data: it is stored as it is). */
export type SwapSide = Readonly<{
  terms: SwapTerms;
  role: "initiator" | "responder";
  /** Participant indexes of the initiator on the source channel and of the responder on the target channel. */
  sourceSender: ParticipantIndex;
  targetSender: ParticipantIndex;
  /** The secret: the initiator's from the start, the responder's once revealed to it. */
  secret: Hex | undefined;
  /** Initiator: the secret has left (in a request or a batch); the T lock is never refunded from then on. */
  revealed: boolean;
  /** No reveal (initiator) / no T lock (responder) from now on: the swap is being undone. */
  cancelled: boolean;
  /** Responder: it asked for its T lock (so a refund of the S lock must wait for that lock to settle). */
  targetAsked: boolean;
  /** The counterparty refused for good to refund a lock to us: we stop asking (the lock will be paid instead). */
  refundRefused: boolean;
  source: LockStand;
  target: LockStand;
}>;

/** A change wanted on one of the swap's channels. */
export type Want = Readonly<{ channelId: Hex; change: Change }>;

export function sourceLock(side: SwapSide): Lock {
  const t = side.terms;
  return { sender: side.sourceSender, amount: t.give, hashlock: t.hashlock, expiry: t.sourceExpiry };
}

export function targetLock(side: SwapSide): Lock {
  const t = side.terms;
  return { sender: side.targetSender, amount: t.take, hashlock: t.hashlock, expiry: t.targetExpiry };
}

/** A new side of an agreed swap (both signed the terms). */
export function newSide(
  terms: SwapTerms,
  role: SwapSide["role"],
  senders: Readonly<{ source: ParticipantIndex; target: ParticipantIndex }>,
  secret?: Hex,
): SwapSide {
  if (secret !== undefined && hashlockOf(secret).toLowerCase() !== terms.hashlock.toLowerCase()) {
    throw new Error("the secret does not match the swap's hashlock");
  }
  return {
    terms,
    role,
    sourceSender: senders.source,
    targetSender: senders.target,
    secret: role === "initiator" ? secret : undefined,
    revealed: false,
    cancelled: false,
    targetAsked: false,
    refundRefused: false,
    source: "none",
    target: "none",
  };
}

/**
 * Whether the secret this side holds may be revealed, on or off chain: the responder's always (it was revealed to
 * it); the initiator's once it revealed it, never once it undid the swap before that, and held back until then.
 */
export function revealRule(side: SwapSide): RevealRule {
  if (side.role === "responder" || side.revealed) return "may";
  return side.cancelled ? "never" : "held";
}

/** Whether the swap has nothing left to do off chain: both locks resolved, or undone before they existed. */
export function settled(side: SwapSide): boolean {
  const resolved = (s: LockStand) => s === "paid" || s === "refunded";
  const sourceDone = resolved(side.source) || (side.source === "none" && side.cancelled);
  // A T lock never made is done once the swap is undone: the responder gives the S lock back (or never took it)
  // only when its T lock can no longer be made.
  const targetDone = resolved(side.target) || (side.target === "none" && (side.cancelled || side.source === "refunded"));
  return sourceDone && targetDone;
}

/** The outcome both parties must agree on once settled: swapped only if both locks were paid. */
export function outcome(side: SwapSide): "swapped" | "undone" | "open" {
  if (!settled(side)) return "open";
  return side.source === "paid" && side.target === "paid" ? "swapped" : "undone";
}

/**
 * What the side wants on its channels now, with the side as it must be stored before those wants leave (an
 * initiator that asks to pay the T lock has revealed). Idempotent: the channel updater skips what is pending.
 */
export function wants(side: SwapSide): { side: SwapSide; wants: Want[] } {
  const t = side.terms;
  const S = t.source.channelId;
  const T = t.target.channelId;
  const out: Want[] = [];
  let next = side;
  if (side.role === "initiator") {
    if (!side.cancelled && side.source === "none") out.push({ channelId: S, change: { kind: "add", lock: sourceLock(side) } });
    if (!side.cancelled && side.target === "locked" && side.secret !== undefined) {
      out.push({ channelId: T, change: { kind: "pay", hashlock: t.hashlock, secret: side.secret } });
      if (!side.revealed) next = { ...next, revealed: true };
    }
    // Once she reveals, she pays her S lock in the same round: the secret that pays her T lock (co-signed, hers to
    // claim on chain) lets the responder claim the S lock anyway, so waiting for him to ask only costs a round trip.
    if (!side.cancelled && (side.target === "locked" || side.target === "paid") && side.secret !== undefined && side.source === "locked") {
      out.push({ channelId: S, change: { kind: "pay", hashlock: t.hashlock, secret: side.secret } });
    }
    if (side.cancelled && side.target === "locked") out.push({ channelId: T, change: { kind: "refund", hashlock: t.hashlock } });
    if (side.cancelled && !side.refundRefused && side.source === "locked") out.push({ channelId: S, change: { kind: "refund", hashlock: t.hashlock } });
  } else {
    if (!side.cancelled && side.source === "locked" && side.target === "none" && side.secret === undefined) {
      out.push({ channelId: T, change: { kind: "add", lock: targetLock(side) } });
      if (!side.targetAsked) next = { ...next, targetAsked: true };
    }
    if (side.secret !== undefined && side.source === "locked") {
      out.push({ channelId: S, change: { kind: "pay", hashlock: t.hashlock, secret: side.secret } });
    }
    if (side.cancelled && !side.refundRefused && side.secret === undefined && side.target === "locked") {
      out.push({ channelId: T, change: { kind: "refund", hashlock: t.hashlock } });
    }
    if (side.cancelled && side.secret === undefined && side.source === "locked" && side.target !== "locked" && side.target !== "paid") {
      out.push({ channelId: S, change: { kind: "refund", hashlock: t.hashlock } });
    }
  }
  return { side: next, wants: out };
}

/**
 * Undoes the swap from this side: no reveal (initiator) or no T lock (responder) from now on. Refused (returns the
 * side unchanged) once the initiator revealed or the responder holds the secret: then the swap can only complete.
 * `withdraw` lists queued changes of ours the caller takes back from its channel queues before they are proposed.
 */
export function cancel(side: SwapSide): { side: SwapSide; withdraw: Want[] } {
  if (side.cancelled) return { side, withdraw: [] };
  if (side.role === "initiator" ? side.revealed : side.secret !== undefined) return { side, withdraw: [] };
  const t = side.terms;
  const withdraw: Want[] =
    side.role === "initiator"
      ? [{ channelId: t.source.channelId, change: { kind: "add", lock: sourceLock(side) } }]
      : [{ channelId: t.target.channelId, change: { kind: "add", lock: targetLock(side) } }];
  return { side: { ...side, cancelled: true }, withdraw };
}

/**
 * What `me` (a participant index) can still lock on `channelId`: `free` (its free balance in the head) less what
 * its agreed, open swaps will lock there. A side agrees to a swap only if its leg fits this, so locks that wait for
 * each other can never use up a channel.
 */
export function unreserved(sides: Iterable<SwapSide>, channelId: Hex, me: ParticipantIndex, free: bigint): bigint {
  const id = channelId.toLowerCase();
  let left = free;
  for (const side of sides) {
    if (side.cancelled || settled(side)) continue;
    const t = side.terms;
    if (t.source.channelId.toLowerCase() === id && side.sourceSender === me && side.source === "none") left -= t.give;
    if (t.target.channelId.toLowerCase() === id && side.targetSender === me && side.target === "none") left -= t.take;
  }
  return left;
}

/** What the caller knows of the swap's channels beyond the co-signed heads, for the responder's refund rule. */
export type PendingQuery = Readonly<{
  /**
   * A state we signed above the T channel's co-signed head adds our T lock and may be co-signed (a batch in flight,
   * or one refused that the other may have signed anyway: `maybeAdded` in channel-updates.ts).
   */
  targetMaybeAdded: boolean;
}>;

const NEVER = (reason: string): Approval => ({ ok: false, final: true, reason });
const NOT_YET = (reason: string): Approval => ({ ok: false, final: false, reason });
const YES: Approval = { ok: true };

function sameLock(a: Lock, b: Lock): boolean {
  return a.sender === b.sender && a.amount === b.amount && a.expiry === b.expiry && a.hashlock.toLowerCase() === b.hashlock.toLowerCase();
}

const SECRET = /^0x[0-9a-fA-F]{64}$/;

/**
 * Whether this side signs `change` on `channelId` (a change of ours or of the counterparty's). Pure: what signing
 * commits the side to (a cancel, a secret kept) is `onSigned`, applied only to batches actually signed.
 */
export function approve(side: SwapSide, channelId: Hex, change: Change, pendingWork: PendingQuery): Approval {
  const t = side.terms;
  const onSource = channelId.toLowerCase() === t.source.channelId.toLowerCase();
  const onTarget = channelId.toLowerCase() === t.target.channelId.toLowerCase();
  if (!onSource && !onTarget) return NEVER(`lock ${t.hashlock} belongs to another channel`);
  const me = side.role;
  if (change.kind === "add") {
    const expected = onSource ? sourceLock(side) : targetLock(side);
    if (!sameLock(change.lock, expected)) return NEVER(`the lock differs from the terms of swap ${t.swapId}`);
    // A lock is added once, ever: a copy asked for after it was resolved would be paid twice.
    if ((onSource ? side.source : side.target) !== "none") return NEVER(`the lock of swap ${t.swapId} was added before`);
    if (onSource) return side.cancelled ? NEVER("the swap was cancelled") : YES; // the initiator's lock
    // The responder's lock: only the responder's own ask, and only after the source lock is co-signed.
    if (me === "responder") return side.cancelled || !side.targetAsked ? NEVER("the responder did not ask for this lock") : YES;
    if (side.source === "locked" || side.cancelled) return YES; // if cancelled, the initiator gives it back
    if (side.source === "none") return NOT_YET("the target lock comes after the source lock"); // a reordering
    return NEVER("the source lock was resolved already");
  }
  if (change.kind === "pay") {
    if (!SECRET.test(change.secret)) return NEVER("a secret is 32 bytes (the registry reveals no other)");
    if (hashlockOf(change.secret).toLowerCase() !== t.hashlock.toLowerCase()) return NEVER("the secret does not match");
    return YES; // paying the lock's receiver with the secret is what both want; the responder keeps the secret
  }
  // A refund: fine for the lock's sender; its receiver gives up a claim only on the cancel path.
  const receiverIsMe = onSource ? me === "responder" : me === "initiator";
  if (!receiverIsMe) return YES;
  if (me === "initiator") {
    // The T lock back to the responder: only if the secret never left; signing it is the cancel (never reveal).
    return side.revealed ? NEVER("the secret was revealed; the target lock can only be paid") : YES;
  }
  // The responder gives the S lock back only when its own T lock can no longer be paid to the initiator.
  if (side.secret !== undefined) return NEVER("the secret is known; the source lock can only be paid");
  if (side.target === "paid") return NEVER("the target lock was paid");
  if (side.target === "locked") return NOT_YET("the target lock is still pending");
  if (pendingWork.targetMaybeAdded) return NOT_YET("a state adding the target lock may be co-signed");
  return YES;
}

/**
 * The side after this party signed a batch on `channelId` (stored in the same step as the signature): giving up a
 * claim (a refund of a lock we receive) is the cancel; a payment we sign with a secret makes us keep the secret.
 */
export function onSigned(side: SwapSide, channelId: Hex, changes: readonly Change[]): SwapSide {
  const t = side.terms;
  const key = t.hashlock.toLowerCase();
  const onSource = channelId.toLowerCase() === t.source.channelId.toLowerCase();
  let next = side;
  for (const c of changes) {
    if (changeHashlock(c) !== key) continue;
    if (c.kind === "pay" && next.secret === undefined) next = { ...next, secret: c.secret };
    if (c.kind === "refund") {
      const receiverIsMe = onSource ? side.role === "responder" : side.role === "initiator";
      if (receiverIsMe && !next.cancelled) next = { ...next, cancelled: true };
    }
  }
  return next;
}

/**
 * The side after a change of ours was refused for good: a lock of ours refused undoes the swap on our side; a
 * refund refused means the lock will be paid (the other holds the secret), so we stop asking for it.
 */
export function onRefused(side: SwapSide, change: Change): SwapSide {
  if (change.kind === "add") return cancel(side).side;
  if (change.kind === "refund") return { ...side, refundRefused: true };
  return side;
}

/** The side after a co-signed batch on `channelId` (its changes of this swap's hashlock). */
export function onCosigned(side: SwapSide, channelId: Hex, changes: readonly Change[], head: ChannelState): SwapSide {
  const t = side.terms;
  const key = t.hashlock.toLowerCase();
  const which = channelId.toLowerCase() === t.source.channelId.toLowerCase() ? "source" : channelId.toLowerCase() === t.target.channelId.toLowerCase() ? "target" : undefined;
  if (which === undefined) return side;
  let stand = side[which];
  let secret = side.secret;
  for (const c of changes) {
    if (changeHashlock(c) !== key) continue;
    if (c.kind === "add") stand = "locked";
    else if (c.kind === "pay") {
      stand = "paid";
      secret ??= c.secret;
    } else stand = "refunded";
  }
  // A lock in the head is locked whatever the changes said (a restart re-reads the head).
  if (head.locks.some((l) => l.hashlock.toLowerCase() === key)) stand = "locked";
  return { ...side, [which]: stand, secret };
}
