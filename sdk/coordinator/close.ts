import { ChainCallError } from "../chain/hub.js";
import { UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { finalize, sameState } from "../core/state.js";
import type { Hex } from "../core/types.js";
import type { ChannelOp } from "../store/store.js";
import { dropOffer } from "./deposits.js";
import { enforceChannel } from "./enforcer.js";
import type { Session } from "./session.js";

// Closing a channel. Cooperatively (asset settlement in the normal case): the requester signs the final state and
// resends it until the other co-signs; whoever holds the co-signed final state may land it, and the responder does
// if the requester goes quiet. Or on chain (`forceClose`): enforced every tick until settled. Either way the channel
// carries an operation from the first signature on, so it takes no swap meanwhile.

export async function requestClose(ctx: Session, channelId: Hex) {
  ctx.requireIdle(channelId);
  const final = finalize(ctx.book.head(channelId));
  const sig = ctx.book.sign(final);
  await ctx.startOp(channelId, { kind: "close", role: "requester", seq: final.seq }, { step: "closeRequest", state: final, sig });
}

export async function onCloseRequest(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "closeRequest" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const op = ctx.o.store.channelOp(channelId);
  const latest = ctx.book.latest(channelId);
  if (op?.kind === "close" && latest !== undefined && sameState(latest.state, body.state)) {
    return ctx.outbox.send(channelId, ["closeAck"]); // our answer was lost
  }
  const ours = ctx.o.store.outgoing<Envelope>(channelId, "closeRequest")?.body;
  if (op?.kind === "close" && op.role === "requester" && ours?.step === "closeRequest" && sameState(ours.state, body.state)) {
    // Both asked at once: the same final state, each signed it; co-sign and let either land it.
    const { state, sig } = ours;
    ctx.book.requireCounterSigned(state, body.sig);
    ctx.o.store.transaction(() => {
      ctx.book.keepCoSigned(state, sig, body.sig);
      ctx.outbox.keep(channelId, "closeAck", { step: "closeAck", sig });
    });
    return ctx.outbox.send(channelId, ["closeAck"]);
  }
  dropOffer(ctx, channelId); // a deposit offer of ours, not signed by us: the close goes first
  ctx.requireIdle(channelId);
  const final = finalize(ctx.book.head(channelId));
  ctx.requireSame(body.state, final, "final state");
  ctx.book.requireCounterSigned(final, body.sig);
  const mine = ctx.book.sign(final);
  await ctx.startOp(channelId, { kind: "close", role: "responder", seq: final.seq }, { step: "closeAck", sig: mine }, () =>
    ctx.book.keepCoSigned(final, mine, body.sig),
  );
}

export async function onCloseAck(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "closeAck" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const op = ctx.o.store.channelOp(channelId);
  const latest = ctx.book.latest(channelId);
  if (op?.kind === "closed" || (latest?.state.isFinal === true && latest.state.seq === op?.seq)) return; // a late duplicate
  const request = ctx.o.store.outgoing<Envelope>(channelId, "closeRequest");
  if (op?.kind !== "close" || op.role !== "requester" || request === undefined || request.body.step !== "closeRequest") {
    throw new UnexpectedMessageError("a close acknowledgement without a close request");
  }
  const final = request.body.state;
  ctx.book.requireCounterSigned(final, body.sig);
  ctx.book.keepCoSigned(final, request.body.sig, body.sig);
  try {
    await landClose(ctx, channelId, op);
  } catch (error) {
    // The co-signed final state is kept (this step still commits); the next tick lands it.
    ctx.emit({ type: "tickError", channelId, error: errorText(error) });
  }
}

/** Lands the co-signed final state unless the channel is closed already, then marks it closed. */
async function landClose(ctx: Session, channelId: Hex, op: ChannelOp) {
  const { params, ref } = ctx.book.record(channelId);
  const chain = ctx.chain(ref.chainId);
  const latest = ctx.book.latest(channelId);
  if ((await chain.channelInfo(channelId)).status !== "closed") {
    if (latest === undefined || latest.state.seq !== op.seq || !latest.state.isFinal) return;
    try {
      await chain.closeCooperatively(params, latest);
    } catch (error) {
      // The other party may have landed it first: that is success too.
      if (!(error instanceof ChainCallError) || (await chain.channelInfo(channelId)).status !== "closed") throw error;
    }
  }
  markClosed(ctx, channelId, true);
}

/**
 * Records that a channel is closed for good (it takes nothing more) and reports it; `cooperative` says whether it
 * closed with a co-signed final state as far as this client knows (a channel closing cooperatively that someone
 * settled instead is reported as cooperative). The closed mark's role and seq carry nothing.
 */
export function markClosed(ctx: Session, channelId: Hex, cooperative: boolean) {
  if (ctx.o.store.channelOp(channelId)?.kind === "closed") return;
  const now = ctx.clock();
  ctx.o.store.saveChannelOp(channelId, { kind: "closed", role: "requester", seq: 0n, since: now, sentAt: now });
  ctx.emit({ type: "closed", channelId, cooperative });
}

/**
 * Starts closing an idle channel on chain with this client's newest co-signed state; `evenIfBusy` for a batched
 * pair going on chain with swaps in flight (their locks settle on chain).
 */
export async function forceClose(ctx: Session, channelId: Hex, options: Readonly<{ evenIfBusy?: boolean }> = {}) {
  const op = ctx.o.store.channelOp(channelId);
  if (op?.kind === "closed" || op?.kind === "forceClose") return;
  const latest = ctx.book.latest(channelId);
  if (op?.kind === "close" && latest?.state.isFinal === true) return landClose(ctx, channelId, op); // no need to wait
  // A cooperative close or a deposit update the other never answered may go on chain; a swap goes its own way.
  if (op?.kind !== "close" && op?.kind !== "deposits" && options.evenIfBusy !== true) ctx.requireIdle(channelId);
  const now = ctx.clock();
  ctx.o.store.saveChannelOp(channelId, { kind: "forceClose", role: "requester", seq: 0n, since: now, sentAt: now });
  await enforceOp(ctx, channelId);
}

async function enforceOp(ctx: Session, channelId: Hex) {
  const { ref } = ctx.book.record(channelId);
  const step = await enforceChannel(ctx.book, ctx.chain(ref.chainId), channelId, (h) => ctx.findSecret(h));
  if (step.kind === "closed") markClosed(ctx, channelId, false);
  else ctx.emit({ type: "chain", swapId: undefined, channelId, step });
}

/**
 * A tick's work on a closing channel: resend the close request until answered (at once after a restart), land a
 * co-signed final state, land it as the responder when the requester has not within the confirmation timeout, and
 * drive a force close to settlement.
 */
export async function tickClose(ctx: Session, channelId: Hex, op: ChannelOp, now: number) {
  if (op.kind === "forceClose") return enforceOp(ctx, channelId);
  if (op.kind !== "close") return;
  const latest = ctx.book.latest(channelId);
  const cosigned = latest !== undefined && latest.state.seq === op.seq && latest.state.isFinal;
  if (op.role === "requester") {
    if (cosigned) return landClose(ctx, channelId, op);
    if (now - op.sentAt >= ctx.o.resendIntervalMs || op.sentAt < ctx.startedAt) {
      ctx.o.store.saveChannelOp(channelId, { ...op, sentAt: now });
      await ctx.outbox.send(channelId, ["closeRequest"]);
    }
    return;
  }
  const { ref } = ctx.book.record(channelId);
  const status = (await ctx.chain(ref.chainId).channelInfo(channelId)).status;
  if (status === "closed") return markClosed(ctx, channelId, true);
  if (ctx.waited(op.since, now, ctx.o.confirmationTimeoutMs)) await landClose(ctx, channelId, op);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
