import { ChannelSdkError } from "../core/errors.js";
import type { SwapBody } from "../core/messages.js";
import { requireSignedBy } from "../core/signing.js";
import { addLock, resolveLock } from "../core/state.js";
import { termsDigest, type SwapTerms } from "../core/swap.js";
import { sameAddress, type Hex } from "../core/types.js";
import type { SwapPhase } from "./phases.js";
import { requireDistinctChannels, type ProposeArgs, type Session } from "./session.js";

// The initiator's steps: propose (1), then on accept (2) lock on S (3), on targetLock (4) counter-sign T (5) and
// reveal (6), on resolve (7) confirm both transfers (8). See docs/SWAP.md.

export async function propose(ctx: Session, args: ProposeArgs): Promise<Hex> {
  requireDistinctChannels(args.source, args.target);
  ctx.requireIdle(args.source);
  ctx.requireIdle(args.target);
  const source = ctx.book.record(args.source);
  const target = ctx.book.record(args.target);
  const counterparty = ctx.book.counterparty(args.source);
  if (!sameAddress(ctx.book.counterparty(args.target), counterparty)) {
    throw new ChannelSdkError("the source and target channels must be with the same counterparty");
  }
  const nowT = await ctx.chain(target.ref.chainId).now();
  const { terms, secret } = ctx.newTerms(source, target, args, nowT);
  ctx.validateTerms(terms, nowT, await ctx.chain(source.ref.chainId).now());
  // The secret is stored before anything that depends on it exists; held until both locks are co-signed.
  ctx.o.store.transaction(() => {
    ctx.keepSecret(terms.hashlock, secret, "held");
    ctx.o.store.saveSwap(terms.swapId, "initiator", terms, ctx.progress({ kind: "proposed" }, ["propose"]), true);
    ctx.outbox.keep(terms.swapId, "propose", {
      step: "propose",
      terms,
      termsSig: ctx.o.signer.sign(termsDigest(terms)),
    });
  });
  ctx.emitPhase(terms.swapId, "initiator", { kind: "proposed" });
  await ctx.outbox.send(terms.swapId, ["propose"]);
  return terms.swapId;
}

export async function onAccept(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "accept" }>) {
  if (phase.kind !== "proposed") return ctx.outbox.answerDuplicate(swapId, body.step);
  requireSignedBy("swap terms", terms.responder, termsDigest(terms), body.termsSig);
  await ctx.knowTime(terms.source.chainId);
  const sourceLock = addLock(ctx.book.head(terms.source.channelId), ctx.sourceLockOf(terms));
  const sig = ctx.book.sign(sourceLock);
  ctx.enter(swapId, { kind: "sourceLockSent", sourceLock }, { sourceLock: { step: "sourceLock", state: sourceLock, sig } });
  await ctx.outbox.send(swapId, ["sourceLock"]);
}

export async function onTargetLock(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "targetLock" }>) {
  if (phase.kind !== "sourceLockSent") return ctx.outbox.answerDuplicate(swapId, body.step);
  const { sourceLock } = phase;
  ctx.book.requireCounterSigned(sourceLock, body.sourceSig);
  const expected = addLock(ctx.book.head(terms.target.channelId), ctx.targetLockOf(terms));
  ctx.requireSame(body.state, expected, "target lock state");
  ctx.book.requireCounterSigned(expected, body.sig);
  const nowT = await ctx.chain(terms.target.chainId).now();
  await ctx.knowTime(terms.source.chainId);
  const mySourceSig = ctx.book.sign(sourceLock);
  const myTargetSig = ctx.book.sign(expected);
  const tooLate = terms.targetExpiry - nowT < ctx.o.minTargetWindow;
  const secret = ctx.requireSecret(terms);
  // Both locks co-signed: from here the swap only completes (revealed now, or claimed on T), never undone off chain.
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(sourceLock, mySourceSig, body.sourceSig);
    ctx.book.keepCoSigned(expected, myTargetSig, body.sig);
    ctx.trackLock(swapId, terms.source.channelId, terms.hashlock, sourceLock.seq);
    ctx.trackLock(swapId, terms.target.channelId, terms.hashlock, expected.seq);
    ctx.keepSecret(terms.hashlock, secret, "may");
  });
  if (tooLate) {
    // Too little time left to finish off chain: claim on the target chain instead (the responder still has delta
    // to carry the secret to the source chain), and refund what the locks do not pay.
    ctx.enter(swapId, { kind: "settlingOnChain", reason: "nearExpiry", channels: [terms.source.channelId, terms.target.channelId] }, {
      targetLockAck: { step: "targetLockAck", sig: myTargetSig },
    });
    await ctx.outbox.send(swapId, ["targetLockAck"]);
    return;
  }
  const targetResolved = resolveLock(expected, terms.hashlock, "paid");
  const resolvedSig = ctx.book.sign(targetResolved);
  ctx.enter(swapId, { kind: "revealed", sourceLock, targetResolved }, {
    targetLockAck: { step: "targetLockAck", sig: myTargetSig },
    reveal: { step: "reveal", secret, state: targetResolved, sig: resolvedSig },
  });
  await ctx.outbox.send(swapId, ["targetLockAck", "reveal"]);
}

export async function onResolve(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "resolve" }>) {
  if (phase.kind !== "revealed") return ctx.outbox.answerDuplicate(swapId, body.step);
  ctx.book.requireCounterSigned(phase.targetResolved, body.targetSig);
  const expected = resolveLock(phase.sourceLock, terms.hashlock, "paid");
  ctx.requireSame(body.state, expected, "source resolution state");
  ctx.book.requireCounterSigned(expected, body.sig);
  const myTargetSig = ctx.book.sign(phase.targetResolved);
  const mySourceSig = ctx.book.sign(expected);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(phase.targetResolved, myTargetSig, body.targetSig);
    ctx.book.keepCoSigned(expected, mySourceSig, body.sig);
    ctx.confirm(swapId, terms.target.channelId, phase.targetResolved.seq);
    ctx.confirm(swapId, terms.source.channelId, expected.seq);
    ctx.enter(swapId, { kind: "done", outcome: "swapped" }, { resolveAck: { step: "resolveAck", sig: mySourceSig } });
  });
  await ctx.outbox.send(swapId, ["resolveAck"]);
}
