import { ChainCallError } from "../chain/hub.js";
import type { Hex } from "../core/types.js";
import type { ChannelOp } from "../store/store.js";
import { enforceChannel } from "./enforcer.js";
import type { Session } from "./session.js";

// Closing a channel on chain. Cooperatively (asset settlement in the normal case): once the final state is co-signed
// (a `close` change of the update scheme), whoever asked for it lands it at once, and the other lands it after the
// confirmation timeout if it is still not landed. Or by force (`forceClose`): enforced every tick until settled.

/**
 * Whether the channel's close is final: closed at the chain's final block. A close a reorganisation can still take
 * out is looked at again by the next tick (landed again, or settled again) before the channel counts as closed.
 */
async function closedForGood(ctx: Session, channelId: Hex): Promise<boolean> {
  const chain = ctx.chain(ctx.book.record(channelId).ref.chainId);
  return (await chain.channelInfo(channelId, await chain.finalBlock())).status === "closed";
}

/** Lands the co-signed final state unless the channel is closed already, then marks it closed once that is final. */
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
  if (await closedForGood(ctx, channelId)) markClosed(ctx, channelId, true);
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
 * Starts closing a channel on chain with this client's newest co-signed state (its swaps in flight settle on chain);
 * a co-signed final state is landed instead.
 */
export async function forceClose(ctx: Session, channelId: Hex) {
  const op = ctx.o.store.channelOp(channelId);
  if (op?.kind === "closed" || op?.kind === "forceClose") return;
  const latest = ctx.book.latest(channelId);
  if (op?.kind === "close" && latest?.state.isFinal === true) return landClose(ctx, channelId, op); // no need to wait
  const now = ctx.clock();
  ctx.o.store.saveChannelOp(channelId, { kind: "forceClose", role: "requester", seq: 0n, since: now, sentAt: now });
  await enforceOp(ctx, channelId);
}

async function enforceOp(ctx: Session, channelId: Hex) {
  const { ref } = ctx.book.record(channelId);
  const step = await enforceChannel(ctx.book, ctx.chain(ref.chainId), channelId, (h) => ctx.findSecret(h));
  if (step.kind === "closed" && (await closedForGood(ctx, channelId))) markClosed(ctx, channelId, false);
  else ctx.emit({ type: "chain", swapId: undefined, channelId, step });
}

/**
 * A tick's work on a closing channel: land a co-signed final state (at once if we asked for the close, after the
 * confirmation timeout if the other did and has not landed it), and drive a force close to settlement.
 */
export async function tickClose(ctx: Session, channelId: Hex, op: ChannelOp, now: number) {
  if (op.kind === "forceClose") return enforceOp(ctx, channelId);
  if (op.kind !== "close") return;
  if (op.role === "requester") return landClose(ctx, channelId, op);
  const { ref } = ctx.book.record(channelId);
  const status = (await ctx.chain(ref.chainId).channelInfo(channelId)).status;
  if (status === "closed") return (await closedForGood(ctx, channelId)) ? markClosed(ctx, channelId, true) : undefined;
  if (ctx.waited(op.since, now, ctx.o.confirmationTimeoutMs)) await landClose(ctx, channelId, op);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
