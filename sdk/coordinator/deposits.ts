import { InvalidMessageError, UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { sameState, withDeposits } from "../core/state.js";
import type { ChannelState, Hex } from "../core/types.js";
import type { ChannelOp } from "../store/store.js";
import type { Session } from "./session.js";

// Deposit updates. A channel's ledger starts from no deposits; what the hub holds enters it through co-signed
// updates. Participant 0 offers the next state with the deposits the hub holds at its final block; participant 1
// signs it only if the hub holds at least that much at its own final block (deposits only grow while a channel is
// open, so this needs no historical state); participant 0 signs last. Both thus count the same deposits, whoever
// made them and whenever, and only once final. Only participant 0 offers, and it signs nothing until participant 1
// has: an offer that meets a close request from participant 1 is simply dropped, so the two never sign different
// states at one sequence number.

/**
 * Participant 0, on an idle channel: offers to count the deposits final on chain that the ledger does not count
 * yet. Returns whether an update was started.
 */
export async function startDepositUpdate(ctx: Session, channelId: Hex): Promise<boolean> {
  const { ref, myIndex } = ctx.book.record(channelId);
  if (myIndex !== 0 || ctx.o.store.channelOp(channelId) !== undefined || ctx.o.store.channelBusy(channelId)) return false;
  const chain = ctx.chain(ref.chainId);
  const info = await chain.channelInfo(channelId, await chain.finalBlock());
  const head = ctx.book.head(channelId);
  if (info.status !== "open" || head.isFinal) return false;
  // A node behind the one read before may report less: only what grew counts, never a decrease.
  if (info.deposits[0] < head.deposits[0] || info.deposits[1] < head.deposits[1]) return false;
  if (info.deposits[0] === head.deposits[0] && info.deposits[1] === head.deposits[1]) return false;
  const next = withDeposits(head, info.deposits);
  await ctx.startOp(channelId, { kind: "deposits", role: "requester", seq: next.seq }, { step: "depositsUpdate", state: next });
  return true;
}

/** Participant 1: signs an update whose deposits the hub holds at its own final block. */
export async function onDepositsUpdate(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "depositsUpdate" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const { ref, myIndex } = ctx.book.record(channelId);
  if (myIndex !== 1) throw new UnexpectedMessageError("deposit updates come from participant 0");
  const op = ctx.o.store.channelOp(channelId);
  if (op?.kind === "deposits" && op.seq === body.state.seq) {
    // Signed already (our answer was lost): answer again.
    const own = ctx.o.store.ownSignedAt(channelId, op.seq);
    if (own !== undefined && sameState(own.state, body.state)) await ctx.outbox.send(channelId, ["depositsSigned"]);
    return;
  }
  const head = ctx.book.head(channelId);
  if (body.state.seq <= head.seq) return; // co-signed already, or older: changes nothing
  ctx.requireIdle(channelId);
  const chain = ctx.chain(ref.chainId);
  const info = await chain.channelInfo(channelId, await chain.finalBlock());
  if (info.status !== "open") throw new InvalidMessageError(`the channel is ${info.status} at our final block`);
  const offered = body.state.deposits;
  if (offered[0] > info.deposits[0] || offered[1] > info.deposits[1]) {
    throw new UnexpectedMessageError(
      `the update counts deposits [${offered.join(", ")}], the hub holds [${info.deposits.join(", ")}] at our final block; it is answered once they are final here`,
    );
  }
  const expected = withDeposits(head, offered);
  ctx.requireSame(body.state, expected, "deposit update");
  const sig = ctx.book.sign(expected);
  await ctx.startOp(channelId, { kind: "deposits", role: "responder", seq: expected.seq }, { step: "depositsSigned", sig });
}

/** Participant 0: participant 1 signed the offer; counter-sign it, and the channel takes swaps again. */
export async function onDepositsSigned(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "depositsSigned" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const op = ctx.o.store.channelOp(channelId);
  const offer = ctx.o.store.outgoing<Envelope>(channelId, "depositsUpdate");
  if (op?.kind === "deposits" && op.role === "requester" && offer?.body.step === "depositsUpdate" && offer.body.state.seq === op.seq) {
    const { state } = offer.body;
    if (signedBy(ctx, state, body.sig)) {
      const mine = ctx.book.sign(state);
      ctx.o.store.transaction(() => {
        ctx.book.keepCoSigned(state, mine, body.sig);
        ctx.outbox.keep(channelId, "depositsAck", { step: "depositsAck", sig: mine });
        ctx.o.store.saveChannelOp(channelId, undefined);
      });
      ctx.emit({ type: "deposits", channelId, deposits: state.deposits });
      await ctx.outbox.send(channelId, ["depositsAck"]);
      return;
    }
  }
  // The signature of an update co-signed already (our acknowledgement was lost, maybe while we offered the next
  // one): send the acknowledgement again, or participant 1 would wait for it for ever.
  const latest = ctx.book.latest(channelId);
  if (latest !== undefined && signedBy(ctx, latest.state, body.sig)) {
    await ctx.outbox.send(channelId, ["depositsAck"]);
    return;
  }
  throw new UnexpectedMessageError("a signed deposit update that matches neither our offer nor our newest state");
}

/** Participant 1: the update is co-signed. */
export function onDepositsAck(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "depositsAck" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const op = ctx.o.store.channelOp(channelId);
  if (op?.kind !== "deposits" || op.role !== "responder") return; // a late duplicate
  const own = ctx.o.store.ownSignedAt(channelId, op.seq);
  if (own === undefined) throw new UnexpectedMessageError("a deposit acknowledgement for an update this client never signed");
  ctx.book.requireCounterSigned(own.state, body.sig);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(own.state, own.signature, body.sig);
    ctx.o.store.saveChannelOp(channelId, undefined);
  });
  ctx.emit({ type: "deposits", channelId, deposits: own.state.deposits });
}

/**
 * Participant 0 drops its offer when participant 1 asks to close meanwhile: it signed nothing for it, so the close
 * takes the sequence number. Returns whether an offer was dropped.
 */
export function dropOffer(ctx: Session, channelId: Hex): boolean {
  const op = ctx.o.store.channelOp(channelId);
  if (op?.kind !== "deposits" || op.role !== "requester") return false;
  ctx.o.store.saveChannelOp(channelId, undefined);
  return true;
}

/** A tick's work on a deposit update in progress: resend our part until answered (at once after a restart). */
export async function tickDeposits(ctx: Session, channelId: Hex, op: ChannelOp, now: number) {
  if (now - op.sentAt < ctx.o.resendIntervalMs && op.sentAt >= ctx.startedAt) return;
  ctx.o.store.saveChannelOp(channelId, { ...op, sentAt: now });
  await ctx.outbox.send(channelId, [op.role === "requester" ? "depositsUpdate" : "depositsSigned"]);
}

/** Whether the counterparty signed `state` with `sig`. */
function signedBy(ctx: Session, state: ChannelState, sig: Hex): boolean {
  try {
    ctx.book.requireCounterSigned(state, sig);
    return true;
  } catch {
    return false;
  }
}
