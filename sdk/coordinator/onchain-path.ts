import type { SwapTerms } from "../core/swap.js";
import type { Hex } from "../core/types.js";
import { markClosed } from "./close.js";
import { enforceChannel } from "./enforcer.js";
import type { OnChainReason, SwapPhase, SwapProgress } from "./phases.js";
import type { Session } from "./session.js";

// Batch settlement: when a swap must leave the off-chain path, and driving both of its channels to closure.

/** Whether (and why) a waiting swap must leave the off-chain path now; "abort" before any lock was signed. */
export async function onChainReason(
  ctx: Session,
  terms: SwapTerms,
  phase: SwapPhase,
  timedOut: boolean,
): Promise<OnChainReason | "abort" | undefined> {
  switch (phase.kind) {
    case "proposed":
    case "accepted":
      return timedOut ? "abort" : undefined;
    case "sourceLockSent":
      return timedOut ? "counterpartySilent" : undefined;
    case "revealed": {
      const nowT = await ctx.chain(terms.target.chainId).now();
      if (terms.targetExpiry - nowT <= ctx.o.onChainMargin) return "nearExpiry";
      return timedOut ? "counterpartySilent" : undefined;
    }
    case "targetLockSent":
    case "locked": {
      // The initiator may claim on the target chain at the last second: watch for the secret there.
      const secret = await ctx.chain(terms.target.chainId).findSecret(terms.hashlock);
      if (secret !== undefined) {
        ctx.keepSecret(terms.hashlock, secret, "may"); // public on T
        return "secretOnChain";
      }
      const nowT = await ctx.chain(terms.target.chainId).now();
      return nowT > terms.targetExpiry ? "lockExpired" : undefined;
    }
    case "resolveSent": {
      const nowS = await ctx.chain(terms.source.chainId).now();
      if (terms.sourceExpiry - nowS <= ctx.o.onChainMargin) return "nearExpiry";
      return timedOut ? "counterpartySilent" : undefined;
    }
    case "settlingOnChain":
    case "done":
      return undefined;
  }
}

export async function goOnChain(ctx: Session, swapId: Hex, terms: SwapTerms, reason: OnChainReason) {
  // The channel where this client receives goes first: its claim has a deadline.
  const s = ctx.o.store.swap<SwapProgress>(swapId);
  const receivesOnTarget = s?.role === "initiator";
  const channels = receivesOnTarget
    ? [terms.target.channelId, terms.source.channelId]
    : [terms.source.channelId, terms.target.channelId];
  ctx.enter(swapId, { kind: "settlingOnChain", reason, channels }, {});
  await settleOnChain(ctx, swapId, terms, channels);
}

export async function settleOnChain(ctx: Session, swapId: Hex, terms: SwapTerms, channels: readonly Hex[]) {
  let closed = 0;
  for (const channelId of channels) {
    const { ref } = ctx.book.record(channelId);
    const step = await enforceChannel(ctx.book, ctx.chain(ref.chainId), channelId, (h) => ctx.findSecret(h));
    if (step.kind === "closed") closed++;
    else ctx.emit({ type: "chain", swapId, channelId, step });
  }
  if (closed === channels.length) {
    await recordOnChainOutcomes(ctx, swapId, terms);
    for (const channelId of channels) markClosed(ctx, channelId, false);
    ctx.enter(swapId, { kind: "done", outcome: "settledOnChain" }, {});
  }
}

/**
 * Channels with no swap in progress that the counterparty force-closed: answer and settle them; and channels that
 * were closed on chain by someone else: mark them closed. Closed channels and force closes of our own (driven by
 * their operation) are left out.
 */
export async function watchIdleChannels(ctx: Session, each: (channelId: Hex, work: () => Promise<void>) => Promise<void>) {
  const busy = new Set(ctx.activeSwaps().flatMap((s) => [s.terms.source.channelId, s.terms.target.channelId].map((c) => c.toLowerCase())));
  for (const record of ctx.o.store.channels()) {
    const channelId = record.ref.channelId;
    const op = ctx.o.store.channelOp(channelId);
    if (busy.has(channelId.toLowerCase()) || op?.kind === "closed" || op?.kind === "forceClose") continue;
    await each(channelId, async () => {
      const chain = ctx.chain(record.ref.chainId);
      const info = await chain.channelInfo(channelId);
      if (info.status === "closed") return markClosed(ctx, channelId, op?.kind === "close");
      if (info.status !== "disputed") return;
      const step = await enforceChannel(ctx.book, chain, channelId, (h) => ctx.findSecret(h));
      if (step.kind === "closed") markClosed(ctx, channelId, false);
      else ctx.emit({ type: "chain", swapId: undefined, channelId, step });
    });
  }
}

export async function disputedChannel(ctx: Session, terms: SwapTerms): Promise<boolean> {
  for (const ref of [terms.source, terms.target]) {
    if ((await ctx.chain(ref.chainId).channelInfo(ref.channelId)).status !== "open") return true;
  }
  return false;
}

export async function recordOnChainOutcomes(ctx: Session, swapId: Hex, terms: SwapTerms) {
  for (const ref of [terms.source, terms.target]) {
    const transfer = ctx.o.store.transfers(swapId).find((t) => t.channelId.toLowerCase() === ref.channelId.toLowerCase());
    if (transfer === undefined || transfer.confirmed) continue;
    const chain = ctx.chain(ref.chainId);
    const info = await chain.channelInfo(ref.channelId);
    const settled = ctx.book.stateAt(ref.channelId, info.seq);
    const index = settled?.locks.findIndex((l) => l.hashlock.toLowerCase() === terms.hashlock.toLowerCase()) ?? -1;
    if (index < 0) continue;
    const outcome = await chain.transferOutcome(ref.channelId, index);
    if (outcome === "unresolved") continue;
    ctx.o.store.saveTransfer({ ...transfer, confirmed: true, outcome });
  }
}
