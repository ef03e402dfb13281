import { InvalidMessageError, UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { sameState, withDeposits } from "../core/state.js";
import type { Hex } from "../core/types.js";
import type { ChannelOp } from "../store/store.js";
import type { Session } from "./session.js";

// Deposit updates. A channel's ledger starts from no deposits; what the hub holds enters it through co-signed
// updates. Participant 0 proposes the next state with the deposits the hub held at a block final for it, naming the
// block; participant 1 reads the hub at that same block (once final for it too) and counter-signs only that. Both
// thus count the same deposits, whoever made them and whenever, and only once they are final. One side proposes,
// so the two never sign different updates at one sequence number.

/**
 * Participant 0, on an idle channel: proposes counting the deposits final on chain that the ledger does not count
 * yet. Returns whether an update was started.
 */
export async function startDepositUpdate(ctx: Session, channelId: Hex): Promise<boolean> {
  const { ref, myIndex } = ctx.book.record(channelId);
  if (myIndex !== 0 || ctx.o.store.channelOp(channelId) !== undefined || ctx.o.store.channelBusy(channelId)) return false;
  const chain = ctx.chain(ref.chainId);
  const block = await chain.finalBlock();
  const info = await chain.channelInfo(channelId, block);
  const head = ctx.book.head(channelId);
  if (info.status !== "open" || head.isFinal) return false;
  if (info.deposits[0] === head.deposits[0] && info.deposits[1] === head.deposits[1]) return false;
  const next = withDeposits(head, info.deposits);
  const sig = ctx.book.sign(next);
  const now = ctx.clock();
  ctx.o.store.transaction(() => {
    ctx.keepOutgoing(channelId, "depositsUpdate", { step: "depositsUpdate", state: next, sig, block });
    ctx.o.store.saveChannelOp(channelId, { kind: "deposits", role: "requester", seq: next.seq, since: now, sentAt: now });
  });
  await ctx.sendStored(channelId, ["depositsUpdate"]);
  return true;
}

/** Participant 1: counter-signs an update whose deposits are exactly the hub's at the named, final block. */
export async function onDepositsUpdate(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "depositsUpdate" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const { ref, myIndex } = ctx.book.record(channelId);
  if (myIndex !== 1) throw new UnexpectedMessageError("deposit updates come from participant 0");
  const head = ctx.book.head(channelId);
  if (body.state.seq <= head.seq) {
    // Co-signed already (our answer was lost): answer again; an older one changes nothing.
    if (body.state.seq === head.seq && sameState(head, body.state)) await ctx.sendStored(channelId, ["depositsAck"]);
    return;
  }
  ctx.requireIdle(channelId);
  if (!Number.isSafeInteger(body.block) || body.block < 0) throw new InvalidMessageError("the deposit update names no block");
  const chain = ctx.chain(ref.chainId);
  const final = await chain.finalBlock();
  if (body.block > final) {
    throw new UnexpectedMessageError(`block ${body.block} is not final here yet (final: ${final}); it is answered once it is`);
  }
  const info = await chain.channelInfo(channelId, body.block);
  if (info.status !== "open") throw new InvalidMessageError(`the channel is ${info.status} at block ${body.block}`);
  const expected = withDeposits(head, info.deposits);
  ctx.requireSame(body.state, expected, "deposit update");
  ctx.book.requireCounterSigned(expected, body.sig);
  const mine = ctx.book.sign(expected);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(expected, mine, body.sig);
    ctx.keepOutgoing(channelId, "depositsAck", { step: "depositsAck", sig: mine });
  });
  ctx.emit({ type: "deposits", channelId, deposits: expected.deposits });
  await ctx.sendStored(channelId, ["depositsAck"]);
}

/** Participant 0: the update is co-signed; the channel takes swaps again. */
export function onDepositsAck(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "depositsAck" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const op = ctx.o.store.channelOp(channelId);
  if (op?.kind !== "deposits") return; // a late duplicate
  const request = ctx.o.store.outgoing<Envelope>(channelId, "depositsUpdate");
  if (request === undefined || request.body.step !== "depositsUpdate") {
    throw new UnexpectedMessageError("a deposit acknowledgement without a deposit update");
  }
  const { state, sig } = request.body;
  ctx.book.requireCounterSigned(state, body.sig);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(state, sig, body.sig);
    ctx.o.store.saveChannelOp(channelId, undefined);
  });
  ctx.emit({ type: "deposits", channelId, deposits: state.deposits });
}

/** A tick's work on a deposit update in progress: resend it until answered (at once after a restart). */
export async function tickDeposits(ctx: Session, channelId: Hex, op: ChannelOp, now: number) {
  if (now - op.sentAt < ctx.o.resendIntervalMs && op.sentAt >= ctx.startedAt) return;
  ctx.o.store.saveChannelOp(channelId, { ...op, sentAt: now });
  await ctx.sendStored(channelId, ["depositsUpdate"]);
}
