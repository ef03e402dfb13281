import { getAddress, hexlify, randomBytes } from "ethers";

import type { HubAdapter } from "../chain/hub.js";
import { channelIdOf } from "../core/eip712.js";
import { ChannelSdkError, InvalidMessageError, UnexpectedMessageError } from "../core/errors.js";
import { seal, unseal, type Envelope, type SwapBody, type SwapStep } from "../core/messages.js";
import { requireSignedBy } from "../core/signing.js";
import { addLock, finalize, resolveLock, sameState } from "../core/state.js";
import { hashlockOf, termsDigest, type SwapTerms } from "../core/swap.js";
import { checkSwapTiming, type DeltaTable } from "../core/timing.js";
import type { ChannelParams, ChannelState, Hex, Lock, ParticipantIndex } from "../core/types.js";
import type { Store, TransferRecord } from "../store/store.js";
import { ChannelBook } from "./channels.js";
import { enforceChannel } from "./enforcer.js";
import { isActive, type ClientEvent, type OnChainReason, type SwapPhase, type SwapProgress, type SwapRole, type SwapView } from "./phases.js";
import type { StateSigner } from "./signer.js";
import type { Transport } from "./transport.js";

export type SwapClientOptions = Readonly<{
  signer: StateSigner;
  store: Store;
  transport: Transport;
  /** One adapter per chain this client has channels on, sending transactions from this client's account. */
  chains: readonly HubAdapter[];
  deltas: DeltaTable;
  /** Least time (s) between now and the target lock's expiry when a swap is agreed and when the secret is revealed. */
  minTargetWindow: bigint;
  /** How long a lock's receiver waits (s before expiry) before claiming it on chain anyway. */
  onChainMargin: bigint;
  /** How long (ms) to wait for the counterparty's next message before resending... */
  resendIntervalMs: number;
  /** ...and before giving up on it: abort before the locks, go on chain after. */
  confirmationTimeoutMs: number;
  /** Client clock in ms (a test may drive it). */
  clock?: () => number;
  /** Responder policy: return a reason to refuse, or undefined to accept. */
  policy?: (terms: SwapTerms) => string | undefined;
  onEvent?: (event: ClientEvent) => void;
}>;

/** Arguments of a new swap; expiries default to now + target duration and tT + delta. */
export type ProposeArgs = Readonly<{
  source: Hex;
  target: Hex;
  give: bigint;
  take: bigint;
  targetExpiry?: bigint;
  sourceExpiry?: bigint;
  /** Lifetime (s) of the target lock when `targetExpiry` is not given. */
  targetLockSeconds?: bigint;
}>;

/** The swap is not one this client knows. */
export class UnknownSwapError extends ChannelSdkError {
  constructor(readonly swapId: string) {
    super(`Swap ${swapId} is not known to this client.`);
  }
}

/** A channel already carries a swap or a close in progress. */
export class ChannelBusyError extends ChannelSdkError {
  constructor(readonly channelId: string) {
    super(`Channel ${channelId} has a swap in progress; one swap at a time per channel.`);
  }
}

/**
 * One party of cross-chain swaps: the four-phase state machine of each role, over a transport, persisted in the
 * store before any message that depends on it is sent. Message handling and `tick` run one at a time.
 */
export class SwapClient {
  readonly address: string;
  readonly book: ChannelBook;
  private readonly chains = new Map<bigint, HubAdapter>();
  private readonly clock: () => number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: SwapClientOptions) {
    this.address = getAddress(o.signer.address);
    this.book = new ChannelBook(o.store, o.signer);
    this.clock = o.clock ?? Date.now;
    for (const c of o.chains) this.chains.set(c.chainId, c);
    o.transport.listen((envelope) => this.handle(envelope));
  }

  // ================================================================== public API

  /** Adds a channel this client is a participant of; its current on-chain deposits open the ledger. */
  async addChannel(chainId: bigint, params: ChannelParams): Promise<Hex> {
    const chain = this.chain(chainId);
    const channelId = channelIdOf(chainId, chain.hubAddress, params);
    if (this.book.has(channelId)) return channelId;
    const myIndex = params.participants.findIndex((p) => getAddress(p) === this.address);
    if (myIndex < 0) throw new ChannelSdkError(`${this.address} is not a participant of channel ${channelId}`);
    const info = await chain.channelInfo(channelId);
    if (info.status !== "open") throw new ChannelSdkError(`channel ${channelId} is ${info.status}, not open`);
    this.book.add({
      ref: { chainId, hub: chain.hubAddress, channelId },
      params,
      myIndex: myIndex as ParticipantIndex,
      openingDeposits: info.deposits,
    });
    return channelId;
  }

  /** Starts a swap as initiator: giving `give` on `source` for `take` on `target`. */
  propose(args: ProposeArgs): Promise<Hex> {
    return this.serial(() => this.doPropose(args));
  }

  /** Handles one incoming message (the transport calls this). Invalid messages throw and change nothing. */
  handle(envelope: Envelope): Promise<void> {
    return this.serial(() => this.dispatch(envelope));
  }

  /** Resends, times out, and drives on-chain settlement; call it periodically. */
  tick(): Promise<void> {
    return this.serial(() => this.doTick());
  }

  /** Asks the counterparty to co-sign the final state of `channelId`; the close lands on chain when it answers. */
  requestClose(channelId: Hex): Promise<void> {
    return this.serial(() => this.doRequestClose(channelId));
  }

  swap(swapId: Hex): SwapView {
    const s = this.o.store.swap<SwapProgress>(swapId);
    if (s === undefined) throw new UnknownSwapError(swapId);
    return { swapId, role: s.role, terms: s.terms, progress: s.phase };
  }

  swaps(): SwapView[] {
    return this.o.store.swapIds().map((id) => this.swap(id));
  }

  transfers(swapId: Hex): TransferRecord[] {
    return this.o.store.transfers(swapId);
  }

  // ================================================================== initiator

  private async doPropose(args: ProposeArgs): Promise<Hex> {
    this.requireIdle(args.source);
    this.requireIdle(args.target);
    const source = this.book.record(args.source);
    const target = this.book.record(args.target);
    const counterparty = this.book.counterparty(args.source);
    if (getAddress(this.book.counterparty(args.target)) !== getAddress(counterparty)) {
      throw new ChannelSdkError("the source and target channels must be with the same counterparty");
    }
    const nowT = await this.chain(target.ref.chainId).now();
    const delta = this.o.deltas.delta(source.ref.chainId, target.ref.chainId);
    const targetExpiry = args.targetExpiry ?? nowT + (args.targetLockSeconds ?? 3n * this.o.minTargetWindow);
    const sourceExpiry = args.sourceExpiry ?? targetExpiry + delta;
    const secret = hexlify(randomBytes(32)) as Hex;
    const terms: SwapTerms = {
      swapId: hexlify(randomBytes(32)) as Hex,
      source: source.ref,
      target: target.ref,
      initiator: this.address,
      responder: getAddress(counterparty),
      give: args.give,
      take: args.take,
      hashlock: hashlockOf(secret),
      sourceExpiry,
      targetExpiry,
    };
    this.validateTerms(terms, nowT);
    // The secret is stored before anything that depends on it exists.
    this.o.store.transaction(() => {
      this.o.store.saveSecret(terms.hashlock, secret);
      this.o.store.saveSwap(terms.swapId, "initiator", terms, this.progress({ kind: "proposed" }, ["propose"]));
      this.o.store.saveOutgoing(terms.swapId, "propose", this.seal(terms.swapId, {
        step: "propose",
        terms,
        termsSig: this.o.signer.sign(termsDigest(terms)),
      }));
    });
    this.emitPhase(terms.swapId, "initiator", { kind: "proposed" });
    await this.sendStored(terms.swapId, ["propose"]);
    return terms.swapId;
  }

  private async onAccept(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "accept" }>) {
    if (phase.kind !== "proposed") return this.answerDuplicate(swapId, body.step);
    requireSignedBy("swap terms", terms.responder, termsDigest(terms), body.termsSig);
    const sourceLock = addLock(this.book.head(terms.source.channelId), this.sourceLockOf(terms));
    const sig = this.book.sign(sourceLock);
    this.enter(swapId, { kind: "sourceLockSent", sourceLock }, { sourceLock: { step: "sourceLock", state: sourceLock, sig } });
    await this.sendStored(swapId, ["sourceLock"]);
  }

  private async onTargetLock(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "targetLock" }>) {
    if (phase.kind !== "sourceLockSent") return this.answerDuplicate(swapId, body.step);
    const { sourceLock } = phase;
    this.book.requireCounterSigned(sourceLock, body.sourceSig);
    const expected = addLock(this.book.head(terms.target.channelId), this.targetLockOf(terms));
    this.requireSame(body.state, expected, "target lock state");
    this.book.requireCounterSigned(expected, body.sig);
    const mySourceSig = this.book.sign(sourceLock);
    const myTargetSig = this.book.sign(expected);
    const nowT = await this.chain(terms.target.chainId).now();
    const tooLate = terms.targetExpiry - nowT < this.o.minTargetWindow;
    this.o.store.transaction(() => {
      this.book.keepCoSigned(sourceLock, mySourceSig, body.sourceSig);
      this.book.keepCoSigned(expected, myTargetSig, body.sig);
      this.trackLock(swapId, terms.source.channelId, terms.hashlock, sourceLock.seq);
      this.trackLock(swapId, terms.target.channelId, terms.hashlock, expected.seq);
    });
    if (tooLate) {
      // Revealing now could leave too little time to claim on the target chain: never reveal, let locks expire.
      this.enter(swapId, { kind: "settlingOnChain", reason: "nearExpiry", channels: [terms.source.channelId, terms.target.channelId] }, {
        targetLockAck: { step: "targetLockAck", sig: myTargetSig },
      });
      await this.sendStored(swapId, ["targetLockAck"]);
      return;
    }
    const secret = this.requireSecret(terms);
    const targetResolved = resolveLock(expected, terms.hashlock, "paid");
    const resolvedSig = this.book.sign(targetResolved);
    this.enter(swapId, { kind: "revealed", sourceLock, targetResolved }, {
      targetLockAck: { step: "targetLockAck", sig: myTargetSig },
      reveal: { step: "reveal", secret, state: targetResolved, sig: resolvedSig },
    });
    await this.sendStored(swapId, ["targetLockAck", "reveal"]);
  }

  private async onResolve(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "resolve" }>) {
    if (phase.kind !== "revealed") return this.answerDuplicate(swapId, body.step);
    this.book.requireCounterSigned(phase.targetResolved, body.targetSig);
    const expected = resolveLock(phase.sourceLock, terms.hashlock, "paid");
    this.requireSame(body.state, expected, "source resolution state");
    this.book.requireCounterSigned(expected, body.sig);
    const myTargetSig = this.book.sign(phase.targetResolved);
    const mySourceSig = this.book.sign(expected);
    this.o.store.transaction(() => {
      this.book.keepCoSigned(phase.targetResolved, myTargetSig, body.targetSig);
      this.book.keepCoSigned(expected, mySourceSig, body.sig);
      this.confirm(swapId, terms.target.channelId, phase.targetResolved.seq);
      this.confirm(swapId, terms.source.channelId, expected.seq);
      this.enter(swapId, { kind: "done", outcome: "swapped" }, { resolveAck: { step: "resolveAck", sig: mySourceSig } });
    });
    await this.sendStored(swapId, ["resolveAck"]);
  }

  // ================================================================== responder

  private async onPropose(envelope: Envelope, body: Extract<SwapBody, { step: "propose" }>) {
    const { terms } = body;
    if (envelope.swapId !== terms.swapId) throw new InvalidMessageError("swap id differs from the terms' swap id");
    if (!this.book.has(terms.source.channelId) || !this.book.has(terms.target.channelId)) {
      throw new InvalidMessageError("the swap names a channel this client does not have");
    }
    const from = this.book.counterparty(terms.source.channelId);
    unseal(envelope, from);
    const existing = this.o.store.swap<SwapProgress>(terms.swapId);
    if (existing !== undefined) return this.answerDuplicate(terms.swapId, "propose");
    requireSignedBy("swap terms", from, termsDigest(terms), body.termsSig);

    let refusal: string | undefined;
    try {
      if (getAddress(terms.initiator) !== getAddress(from) || getAddress(terms.responder) !== this.address) {
        throw new InvalidMessageError("initiator and responder do not match the channels' participants");
      }
      if (getAddress(this.book.counterparty(terms.target.channelId)) !== getAddress(from)) {
        throw new InvalidMessageError("the target channel is not with the initiator");
      }
      this.requireIdle(terms.source.channelId);
      this.requireIdle(terms.target.channelId);
      this.validateTerms(terms, await this.chain(terms.target.chainId).now());
      refusal = this.o.policy?.(terms);
    } catch (error) {
      if (!(error instanceof ChannelSdkError)) throw error;
      refusal = error.message;
    }
    if (refusal !== undefined) {
      this.o.store.transaction(() => {
        this.o.store.saveSwap(terms.swapId, "responder", terms, this.progress({ kind: "done", outcome: "aborted", reason: refusal }, ["abort"]));
        this.o.store.saveOutgoing(terms.swapId, "abort", this.seal(terms.swapId, { step: "abort", reason: refusal }));
      });
      this.o.onEvent?.({ type: "rejected", swapId: terms.swapId, reason: refusal });
      await this.sendStored(terms.swapId, ["abort"]);
      return;
    }
    this.o.store.transaction(() => {
      this.o.store.saveSwap(terms.swapId, "responder", terms, this.progress({ kind: "accepted" }, ["accept"]));
      this.o.store.saveOutgoing(terms.swapId, "accept", this.seal(terms.swapId, {
        step: "accept",
        termsSig: this.o.signer.sign(termsDigest(terms)),
      }));
    });
    this.emitPhase(terms.swapId, "responder", { kind: "accepted" });
    await this.sendStored(terms.swapId, ["accept"]);
  }

  private async onSourceLock(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "sourceLock" }>) {
    if (phase.kind !== "accepted") return this.answerDuplicate(swapId, body.step);
    const sourceLock = addLock(this.book.head(terms.source.channelId), this.sourceLockOf(terms));
    this.requireSame(body.state, sourceLock, "source lock state");
    this.book.requireCounterSigned(sourceLock, body.sig);
    const targetLock = addLock(this.book.head(terms.target.channelId), this.targetLockOf(terms));
    // Counter-sign the initiator's lock before locking anything of ours: we hold the co-signed source lock first.
    const sourceSig = this.book.sign(sourceLock);
    const targetSig = this.book.sign(targetLock);
    this.o.store.transaction(() => {
      this.book.keepCoSigned(sourceLock, sourceSig, body.sig);
      this.trackLock(swapId, terms.source.channelId, terms.hashlock, sourceLock.seq);
      this.enter(swapId, { kind: "targetLockSent", sourceLock, targetLock }, {
        targetLock: { step: "targetLock", sourceSig, state: targetLock, sig: targetSig },
      });
    });
    await this.sendStored(swapId, ["targetLock"]);
  }

  private onTargetLockAck(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "targetLockAck" }>) {
    if (phase.kind !== "targetLockSent") return;
    this.book.requireCounterSigned(phase.targetLock, body.sig);
    const mine = this.book.sign(phase.targetLock);
    this.o.store.transaction(() => {
      this.book.keepCoSigned(phase.targetLock, mine, body.sig);
      this.trackLock(swapId, terms.target.channelId, terms.hashlock, phase.targetLock.seq);
      this.enter(swapId, { kind: "locked", sourceLock: phase.sourceLock, targetLock: phase.targetLock }, {});
    });
  }

  private async onReveal(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "reveal" }>) {
    if (phase.kind !== "locked" && phase.kind !== "targetLockSent") return this.answerDuplicate(swapId, body.step);
    if (hashlockOf(body.secret).toLowerCase() !== terms.hashlock.toLowerCase()) {
      throw new InvalidMessageError("the revealed secret does not match the hashlock");
    }
    // The secret is what lets us claim the source lock: keep it before anything else.
    this.o.store.saveSecret(terms.hashlock, body.secret);
    const targetResolved = resolveLock(phase.targetLock, terms.hashlock, "paid");
    this.requireSame(body.state, targetResolved, "target resolution state");
    this.book.requireCounterSigned(targetResolved, body.sig);
    const sourceResolved = resolveLock(phase.sourceLock, terms.hashlock, "paid");
    const targetSig = this.book.sign(targetResolved);
    const sourceSig = this.book.sign(sourceResolved);
    this.o.store.transaction(() => {
      this.book.keepCoSigned(targetResolved, targetSig, body.sig);
      this.confirm(swapId, terms.target.channelId, targetResolved.seq);
      this.enter(swapId, { kind: "resolveSent", sourceLock: phase.sourceLock, sourceResolved }, {
        resolve: { step: "resolve", targetSig, state: sourceResolved, sig: sourceSig },
      });
    });
    await this.sendStored(swapId, ["resolve"]);
  }

  private onResolveAck(swapId: Hex, terms: SwapTerms, phase: SwapPhase, body: Extract<SwapBody, { step: "resolveAck" }>) {
    if (phase.kind !== "resolveSent") return;
    this.book.requireCounterSigned(phase.sourceResolved, body.sig);
    const mine = this.book.sign(phase.sourceResolved);
    this.o.store.transaction(() => {
      this.book.keepCoSigned(phase.sourceResolved, mine, body.sig);
      this.confirm(swapId, terms.source.channelId, phase.sourceResolved.seq);
      this.enter(swapId, { kind: "done", outcome: "swapped" }, {});
    });
  }

  private onAbort(swapId: Hex, phase: SwapPhase, body: Extract<SwapBody, { step: "abort" }>) {
    // Only before any lock was signed: afterwards the locks decide, on chain if need be.
    if (phase.kind !== "proposed" && phase.kind !== "accepted") return;
    this.enter(swapId, { kind: "done", outcome: "aborted", reason: `counterparty: ${body.reason}` }, {});
  }

  // ================================================================== cooperative close

  private async doRequestClose(channelId: Hex) {
    this.requireIdle(channelId);
    const final = finalize(this.book.head(channelId));
    const sig = this.book.sign(final);
    this.o.store.saveOutgoing(channelId, "closeRequest", this.seal(channelId, { step: "closeRequest", state: final, sig }));
    await this.sendStored(channelId, ["closeRequest"]);
  }

  private async onCloseRequest(envelope: Envelope, body: Extract<SwapBody, { step: "closeRequest" }>) {
    const channelId = envelope.swapId;
    unseal(envelope, this.book.counterparty(channelId));
    this.requireIdle(channelId);
    const head = this.book.head(channelId);
    const final = head.isFinal ? head : finalize(head);
    this.requireSame(body.state, final, "final state");
    this.book.requireCounterSigned(final, body.sig);
    const mine = this.book.sign(final);
    this.o.store.transaction(() => {
      this.book.keepCoSigned(final, mine, body.sig);
      this.o.store.saveOutgoing(channelId, "closeAck", this.seal(channelId, { step: "closeAck", sig: mine }));
    });
    await this.sendStored(channelId, ["closeAck"]);
  }

  private async onCloseAck(envelope: Envelope, body: Extract<SwapBody, { step: "closeAck" }>) {
    const channelId = envelope.swapId;
    unseal(envelope, this.book.counterparty(channelId));
    const request = this.o.store.outgoing<Envelope>(channelId, "closeRequest");
    if (request === undefined || request.body.step !== "closeRequest") {
      throw new UnexpectedMessageError("a close acknowledgement without a close request");
    }
    const final = request.body.state;
    this.book.requireCounterSigned(final, body.sig);
    const cosigned = this.book.keepCoSigned(final, request.body.sig, body.sig);
    const { params, ref } = this.book.record(channelId);
    const chain = this.chain(ref.chainId);
    if ((await chain.channelInfo(channelId)).status !== "closed") await chain.closeCooperatively(params, cosigned);
    this.o.onEvent?.({ type: "closed", channelId, cooperative: true });
  }

  // ================================================================== dispatch, timeouts, on-chain path

  private async dispatch(envelope: Envelope) {
    const body = envelope.body;
    if (body.step === "propose") return this.onPropose(envelope, body);
    if (body.step === "closeRequest") return this.onCloseRequest(envelope, body);
    if (body.step === "closeAck") return this.onCloseAck(envelope, body);
    const s = this.o.store.swap<SwapProgress>(envelope.swapId);
    if (s === undefined) throw new UnexpectedMessageError(`${body.step} for unknown swap ${envelope.swapId}`);
    const counterparty = s.role === "initiator" ? s.terms.responder : s.terms.initiator;
    unseal(envelope, counterparty);
    const { phase } = s.phase;
    const id = envelope.swapId;
    switch (body.step) {
      case "accept":
        return this.onAccept(id, s.terms, phase, body);
      case "targetLock":
        return this.onTargetLock(id, s.terms, phase, body);
      case "resolve":
        return this.onResolve(id, s.terms, phase, body);
      case "sourceLock":
        return this.onSourceLock(id, s.terms, phase, body);
      case "targetLockAck":
        return this.onTargetLockAck(id, s.terms, phase, body);
      case "reveal":
        return this.onReveal(id, s.terms, phase, body);
      case "resolveAck":
        return this.onResolveAck(id, s.terms, phase, body);
      case "abort":
        return this.onAbort(id, phase, body);
    }
  }

  private async doTick() {
    const now = this.clock();
    for (const view of this.swaps()) {
      const { swapId, role, terms } = view;
      const { phase, since, sentAt, sent } = view.progress;
      if (!isActive(phase)) continue;
      if (phase.kind === "settlingOnChain") {
        await this.settleOnChain(swapId, terms, phase.channels);
        continue;
      }
      const disputed = await this.disputedChannel(terms);
      if (disputed) {
        await this.goOnChain(swapId, terms, "disputed");
        continue;
      }
      const reason = await this.onChainReason(terms, phase, now - since >= this.o.confirmationTimeoutMs);
      if (reason === "abort") {
        this.o.store.transaction(() => {
          this.enter(swapId, { kind: "done", outcome: "aborted", reason: "counterparty silent" }, {
            abort: { step: "abort", reason: "no answer within the confirmation timeout" },
          });
        });
        await this.sendStored(swapId, ["abort"]);
      } else if (reason !== undefined) {
        await this.goOnChain(swapId, terms, reason);
      } else if (sent.length > 0 && now - sentAt >= this.o.resendIntervalMs) {
        const s = this.o.store.swap<SwapProgress>(swapId);
        if (s !== undefined) this.o.store.saveSwap(swapId, role, terms, { ...s.phase, sentAt: now });
        await this.sendStored(swapId, sent);
      }
    }
    await this.watchIdleChannels();
  }

  /** Whether (and why) a waiting swap must leave the off-chain path now; "abort" before any lock was signed. */
  private async onChainReason(
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
        const nowT = await this.chain(terms.target.chainId).now();
        if (terms.targetExpiry - nowT <= this.o.onChainMargin) return "nearExpiry";
        return timedOut ? "counterpartySilent" : undefined;
      }
      case "targetLockSent":
      case "locked": {
        // The initiator may claim on the target chain at the last second: watch for the secret there.
        const secret = await this.chain(terms.target.chainId).findSecret(terms.hashlock);
        if (secret !== undefined) {
          this.o.store.saveSecret(terms.hashlock, secret);
          return "secretOnChain";
        }
        const nowT = await this.chain(terms.target.chainId).now();
        return nowT > terms.targetExpiry ? "lockExpired" : undefined;
      }
      case "resolveSent": {
        const nowS = await this.chain(terms.source.chainId).now();
        if (terms.sourceExpiry - nowS <= this.o.onChainMargin) return "nearExpiry";
        return timedOut ? "counterpartySilent" : undefined;
      }
      case "settlingOnChain":
      case "done":
        return undefined;
    }
  }

  private async goOnChain(swapId: Hex, terms: SwapTerms, reason: OnChainReason) {
    // The channel where this client receives goes first: its claim has a deadline.
    const s = this.o.store.swap<SwapProgress>(swapId);
    const receivesOnTarget = s?.role === "initiator";
    const channels = receivesOnTarget
      ? [terms.target.channelId, terms.source.channelId]
      : [terms.source.channelId, terms.target.channelId];
    this.enter(swapId, { kind: "settlingOnChain", reason, channels }, {});
    await this.settleOnChain(swapId, terms, channels);
  }

  private async settleOnChain(swapId: Hex, terms: SwapTerms, channels: readonly Hex[]) {
    let closed = 0;
    for (const channelId of channels) {
      const { ref } = this.book.record(channelId);
      const step = await enforceChannel(this.book, this.chain(ref.chainId), channelId, (h) => this.findSecret(h));
      if (step.kind === "closed") closed++;
      else this.o.onEvent?.({ type: "chain", swapId, channelId, step });
    }
    if (closed === channels.length) {
      await this.recordOnChainOutcomes(swapId, terms);
      this.enter(swapId, { kind: "done", outcome: "settledOnChain" }, {});
    }
  }

  /** Channels with no swap in progress that the counterparty force-closed: answer and settle them. */
  private async watchIdleChannels() {
    const busy = new Set(this.swaps().filter((s) => isActive(s.progress.phase)).flatMap((s) => [s.terms.source.channelId, s.terms.target.channelId].map((c) => c.toLowerCase())));
    for (const record of this.o.store.channels()) {
      const channelId = record.ref.channelId;
      if (busy.has(channelId.toLowerCase())) continue;
      const chain = this.chain(record.ref.chainId);
      const info = await chain.channelInfo(channelId);
      if (info.status !== "disputed") continue;
      const step = await enforceChannel(this.book, chain, channelId, (h) => this.findSecret(h));
      this.o.onEvent?.({ type: "chain", swapId: undefined, channelId, step });
    }
  }

  private async disputedChannel(terms: SwapTerms): Promise<boolean> {
    for (const ref of [terms.source, terms.target]) {
      if ((await this.chain(ref.chainId).channelInfo(ref.channelId)).status !== "open") return true;
    }
    return false;
  }

  private async findSecret(hashlock: Hex): Promise<Hex | undefined> {
    const known = this.o.store.secret(hashlock);
    if (known !== undefined) return known;
    for (const chain of this.chains.values()) {
      const secret = await chain.findSecret(hashlock);
      if (secret !== undefined) {
        this.o.store.saveSecret(hashlock, secret);
        return secret;
      }
    }
    return undefined;
  }

  private async recordOnChainOutcomes(swapId: Hex, terms: SwapTerms) {
    for (const ref of [terms.source, terms.target]) {
      const transfer = this.o.store.transfers(swapId).find((t) => t.channelId.toLowerCase() === ref.channelId.toLowerCase());
      if (transfer === undefined || transfer.confirmed) continue;
      const chain = this.chain(ref.chainId);
      const info = await chain.channelInfo(ref.channelId);
      const settled = this.book.stateAt(ref.channelId, info.seq);
      const index = settled?.locks.findIndex((l) => l.hashlock.toLowerCase() === terms.hashlock.toLowerCase()) ?? -1;
      if (index < 0) continue;
      const outcome = await chain.transferOutcome(ref.channelId, index);
      if (outcome === "unresolved") continue;
      this.o.store.saveTransfer({ ...transfer, confirmed: true, outcome });
    }
  }

  // ================================================================== helpers

  /** @param now The target chain's time: the window before tT is measured on T. */
  private validateTerms(terms: SwapTerms, now: bigint) {
    if (terms.give <= 0n || terms.take <= 0n) throw new InvalidMessageError("swap amounts must be positive");
    checkSwapTiming({
      sourceExpiry: terms.sourceExpiry,
      targetExpiry: terms.targetExpiry,
      now,
      delta: this.o.deltas.delta(terms.source.chainId, terms.target.chainId),
      minTargetWindow: this.o.minTargetWindow,
    });
    // Both locks must fit the current balances (the transitions throw InsufficientBalanceError otherwise).
    addLock(this.book.head(terms.source.channelId), this.sourceLockOf(terms));
    addLock(this.book.head(terms.target.channelId), this.targetLockOf(terms));
  }

  /** The initiator's lock on the source channel. */
  private sourceLockOf(terms: SwapTerms): Lock {
    const myIndex = this.book.myIndex(terms.source.channelId);
    const iAmInitiator = getAddress(terms.initiator) === this.address;
    const sender: ParticipantIndex = iAmInitiator ? myIndex : myIndex === 0 ? 1 : 0;
    return { sender, amount: terms.give, hashlock: terms.hashlock, expiry: terms.sourceExpiry };
  }

  /** The responder's lock on the target channel. */
  private targetLockOf(terms: SwapTerms): Lock {
    const myIndex = this.book.myIndex(terms.target.channelId);
    const iAmResponder = getAddress(terms.responder) === this.address;
    const sender: ParticipantIndex = iAmResponder ? myIndex : myIndex === 0 ? 1 : 0;
    return { sender, amount: terms.take, hashlock: terms.hashlock, expiry: terms.targetExpiry };
  }

  private requireSecret(terms: SwapTerms): Hex {
    const secret = this.o.store.secret(terms.hashlock);
    if (secret === undefined) throw new ChannelSdkError(`the secret of swap ${terms.swapId} is not in the store`);
    return secret;
  }

  private requireSame(given: ChannelState, expected: ChannelState, what: string) {
    if (!sameState(given, expected)) {
      throw new InvalidMessageError(`the ${what} (seq ${given.seq}) differs from the one the terms imply (seq ${expected.seq})`);
    }
  }

  private requireIdle(channelId: Hex) {
    this.book.record(channelId);
    const busy = this.swaps().some(
      (s) =>
        isActive(s.progress.phase) &&
        [s.terms.source.channelId, s.terms.target.channelId].some((c) => c.toLowerCase() === channelId.toLowerCase()),
    );
    if (busy) throw new ChannelBusyError(channelId);
  }

  private trackLock(swapId: Hex, channelId: Hex, hashlock: Hex, lockSeq: bigint) {
    this.o.store.saveTransfer({ swapId, channelId, hashlock, lockSeq, resolvedSeq: undefined, confirmed: false, outcome: "pending" });
  }

  private confirm(swapId: Hex, channelId: Hex, resolvedSeq: bigint) {
    const t = this.o.store.transfers(swapId).find((x) => x.channelId.toLowerCase() === channelId.toLowerCase());
    if (t === undefined) return;
    this.o.store.saveTransfer({ ...t, resolvedSeq, confirmed: true, outcome: "paid" });
  }

  private progress(phase: SwapPhase, sent: readonly SwapStep[]): SwapProgress {
    const now = this.clock();
    return { phase, since: now, sentAt: now, sent };
  }

  /** Persists a new phase with the messages it sends (all in the caller's transaction, if any). */
  private enter(swapId: Hex, phase: SwapPhase, outgoing: Partial<Record<SwapStep, SwapBody>>) {
    const s = this.o.store.swap<SwapProgress>(swapId);
    if (s === undefined) throw new UnknownSwapError(swapId);
    const steps = Object.keys(outgoing) as SwapStep[];
    this.o.store.transaction(() => {
      for (const step of steps) this.o.store.saveOutgoing(swapId, step, this.seal(swapId, outgoing[step]!));
      this.o.store.saveSwap(swapId, s.role, s.terms, this.progress(phase, steps));
    });
    this.emitPhase(swapId, s.role, phase);
  }

  private emitPhase(swapId: Hex, role: SwapRole, phase: SwapPhase) {
    this.o.onEvent?.({ type: "phase", swapId, role, phase });
  }

  private seal(sessionId: Hex, body: SwapBody): Envelope {
    return seal((d) => this.o.signer.sign(d), this.address, sessionId, body);
  }

  /** A message this client answered before came again: the answer was lost, so send it again. */
  private async answerDuplicate(swapId: Hex, step: SwapStep) {
    const answers: Partial<Record<SwapStep, SwapStep[]>> = {
      propose: ["accept", "abort"],
      accept: ["sourceLock"],
      sourceLock: ["targetLock"],
      targetLock: ["targetLockAck", "reveal"],
      reveal: ["resolve"],
      resolve: ["resolveAck"],
    };
    await this.sendStored(swapId, answers[step] ?? []);
  }

  private async sendStored(sessionId: Hex, steps: readonly SwapStep[]) {
    for (const step of steps) {
      const envelope = this.o.store.outgoing<Envelope>(sessionId, step);
      if (envelope === undefined) continue;
      try {
        await this.o.transport.send(envelope);
      } catch {
        // The message is in the store; the next tick resends it.
      }
    }
  }

  private chain(chainId: bigint): HubAdapter {
    const chain = this.chains.get(chainId);
    if (chain === undefined) throw new ChannelSdkError(`no adapter for chain ${chainId}`);
    return chain;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
