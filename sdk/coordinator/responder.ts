import { ChannelSdkError, InvalidMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { requireSignedBy } from "../core/signing.js";
import { addLock, resolveLock } from "../core/state.js";
import { checkTermsShape, hashlockOf, termsDigest, type SwapTerms } from "../core/swap.js";
import { sameAddress, type Hex } from "../core/types.js";
import type { SwapPhase, SwapProgress } from "./phases.js";
import type { Session } from "./session.js";

// The responder's steps: on propose (1) accept (2), on sourceLock (3) counter-sign it and lock on T (4), on
// targetLockAck (5) hold both locks, on reveal (6) keep the secret and resolve both (7), on resolveAck (8) done.

export async function onPropose(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "propose" }>) {
  const { terms } = body;
  checkTermsShape(terms); // before anything hashes them: hex is read as bytes and would stop at a bad character
  if (envelope.swapId !== terms.swapId) throw new InvalidMessageError("swap id differs from the terms' swap id");
  if (!ctx.book.has(terms.source.channelId) || !ctx.book.has(terms.target.channelId)) {
    throw new InvalidMessageError("the swap names a channel this client does not have");
  }
  const from = ctx.book.counterparty(terms.source.channelId);
  unseal(envelope, from);
  const existing = ctx.o.store.swap<SwapProgress>(terms.swapId);
  if (existing !== undefined) return ctx.outbox.answerDuplicate(terms.swapId, "propose");
  requireSignedBy("swap terms", from, termsDigest(terms), body.termsSig);

  let refusal: string | undefined;
  try {
    if (!sameAddress(terms.initiator, from) || !sameAddress(terms.responder, ctx.address)) {
      throw new InvalidMessageError("initiator and responder do not match the channels' participants");
    }
    if (!sameAddress(ctx.book.counterparty(terms.target.channelId), from)) {
      throw new InvalidMessageError("the target channel is not with the initiator");
    }
    // A hashlock whose secret this client holds (its own swap's, or one it learned) could make one claim pay out
    // another of its locks: refused.
    if (ctx.o.store.knownSecret(terms.hashlock) !== undefined) throw new InvalidMessageError("a swap with this hashlock is known already");
    ctx.requireIdle(terms.source.channelId);
    ctx.requireIdle(terms.target.channelId);
    ctx.requireRefs(terms); // before any chain is chosen by the terms' chain ids
    ctx.validateTerms(terms, await ctx.chain(terms.target.chainId).now(), await ctx.chain(terms.source.chainId).now());
    // The swap is stored at once below, in this same turn: no swap agreed before it is missing from the store.
    refusal = ctx.admit(terms);
  } catch (error) {
    if (!(error instanceof ChannelSdkError)) throw error;
    refusal = error.message;
  }
  if (refusal !== undefined) {
    ctx.o.store.transaction(() => {
      ctx.o.store.saveSwap(terms.swapId, "responder", terms, ctx.progress({ kind: "done", outcome: "aborted", reason: refusal }, ["abort"]), false);
      ctx.outbox.keep(terms.swapId, "abort", { step: "abort", reason: refusal });
    });
    ctx.emit({ type: "rejected", swapId: terms.swapId, reason: refusal, counterparty: terms.initiator });
    await ctx.outbox.send(terms.swapId, ["abort"]);
    return;
  }
  ctx.o.store.transaction(() => {
    ctx.o.store.saveSwap(terms.swapId, "responder", terms, ctx.progress({ kind: "accepted" }, ["accept"]), true);
    ctx.outbox.keep(terms.swapId, "accept", {
      step: "accept",
      termsSig: ctx.o.signer.sign(termsDigest(terms)),
    });
  });
  ctx.emitPhase(terms.swapId, "responder", { kind: "accepted" });
  await ctx.outbox.send(terms.swapId, ["accept"]);
}

export async function onSourceLock(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "sourceLock" }>) {
  if (phase.kind !== "accepted") return ctx.outbox.answerDuplicate(swapId, body.step);
  await ctx.knowTime(terms.source.chainId, terms.target.chainId);
  const sourceLock = addLock(ctx.book.head(terms.source.channelId), ctx.sourceLockOf(terms));
  ctx.requireSame(body.state, sourceLock, "source lock state");
  ctx.book.requireCounterSigned(sourceLock, body.sig);
  const targetLock = addLock(ctx.book.head(terms.target.channelId), ctx.targetLockOf(terms));
  // Counter-sign the initiator's lock before locking anything of ours: we hold the co-signed source lock first.
  const sourceSig = ctx.book.sign(sourceLock);
  const targetSig = ctx.book.sign(targetLock);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(sourceLock, sourceSig, body.sig);
    ctx.trackLock(swapId, terms.source.channelId, terms.hashlock, sourceLock.seq);
    ctx.enter(swapId, { kind: "targetLockSent", sourceLock, targetLock }, {
      targetLock: { step: "targetLock", sourceSig, state: targetLock, sig: targetSig },
    });
  });
  await ctx.outbox.send(swapId, ["targetLock"]);
}

export async function onTargetLockAck(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "targetLockAck" }>) {
  if (phase.kind !== "targetLockSent") return;
  await ctx.knowTime(terms.target.chainId);
  ctx.book.requireCounterSigned(phase.targetLock, body.sig);
  const mine = ctx.book.sign(phase.targetLock);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(phase.targetLock, mine, body.sig);
    ctx.trackLock(swapId, terms.target.channelId, terms.hashlock, phase.targetLock.seq);
    ctx.enter(swapId, { kind: "locked", sourceLock: phase.sourceLock, targetLock: phase.targetLock }, {});
  });
}

export async function onReveal(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "reveal" }>) {
  if (phase.kind !== "locked" && phase.kind !== "targetLockSent") return ctx.outbox.answerDuplicate(swapId, body.step);
  if (hashlockOf(body.secret).toLowerCase() !== terms.hashlock.toLowerCase()) {
    throw new InvalidMessageError("the revealed secret does not match the hashlock");
  }
  // The secret is what lets us claim the source lock: keep it before anything else.
  ctx.keepSecret(terms.hashlock, body.secret, "may");
  const targetResolved = resolveLock(phase.targetLock, terms.hashlock, "paid");
  ctx.requireSame(body.state, targetResolved, "target resolution state");
  ctx.book.requireCounterSigned(targetResolved, body.sig);
  const sourceResolved = resolveLock(phase.sourceLock, terms.hashlock, "paid");
  const targetSig = ctx.book.sign(targetResolved);
  const sourceSig = ctx.book.sign(sourceResolved);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(targetResolved, targetSig, body.sig);
    // The target lock may never have been acknowledged (that message lost): it is tracked from here then.
    if (phase.kind === "targetLockSent") ctx.trackLock(swapId, terms.target.channelId, terms.hashlock, phase.targetLock.seq);
    ctx.confirm(swapId, terms.target.channelId, targetResolved.seq);
    ctx.enter(swapId, { kind: "resolveSent", sourceLock: phase.sourceLock, sourceResolved }, {
      resolve: { step: "resolve", targetSig, state: sourceResolved, sig: sourceSig },
    });
  });
  await ctx.outbox.send(swapId, ["resolve"]);
}

export function onResolveAck(ctx: Session, swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "resolveAck" }>) {
  if (phase.kind !== "resolveSent") return;
  ctx.book.requireCounterSigned(phase.sourceResolved, body.sig);
  const mine = ctx.book.sign(phase.sourceResolved);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(phase.sourceResolved, mine, body.sig);
    ctx.confirm(swapId, terms.source.channelId, phase.sourceResolved.seq);
    ctx.enter(swapId, { kind: "done", outcome: "swapped" }, {});
  });
}
