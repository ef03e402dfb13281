import { ZeroAddress } from "ethers";

import { channelIdOf } from "../core/eip712.js";
import { ChannelTermsError, UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { sameAddress, type Address, type ChannelParams, type ChannelState, type Hex, type ParticipantIndex } from "../core/types.js";
import type { TransferRecord } from "../store/store.js";
import type { ChannelBook } from "./channels.js";
import { BatchedPairs, type PairFacts, type ProposeOutcome } from "./batched-pairs.js";
import * as close from "./close.js";
import * as deposits from "./deposits.js";
import type { GroupCommit } from "./group-commit.js";
import * as initiator from "./initiator.js";
import * as onchain from "./onchain-path.js";
import type { ClientEvent, SwapPhase, SwapProgress, SwapView } from "./phases.js";
import * as responder from "./responder.js";
import {
  DEFAULT_MAX_CHALLENGE_PERIOD,
  DEFAULT_MIN_CHALLENGE_PERIOD,
  Session,
  type ProposeArgs,
  type SwapClientOptions,
} from "./session.js";

export { ChannelBusyError, ChannelClosingError, UnknownSwapError } from "./errors.js";
export {
  DEFAULT_MAX_CHALLENGE_PERIOD,
  DEFAULT_MIN_CHALLENGE_PERIOD,
  requireDistinctChannels,
  type ChannelPolicy,
  type PolicyContext,
  type ProposeArgs,
  type SwapClientOptions,
} from "./session.js";

/** What a client expects of a channel it joins, besides its own policy: who the other participant is, which asset. */
export type ExpectedChannel = Readonly<{ counterparty: Address; asset: Address }>;

/**
 * One party of cross-chain swaps: the four-phase state machine of each role, over a transport, persisted in the
 * store before any message that depends on it is sent. Message handling and `tick` run one at a time.
 */
export class SwapClient {
  readonly address: string;
  readonly book: ChannelBook;
  private readonly session: Session;
  /** Runs steps, ticks and commits one at a time; steps commit in groups (group-commit.ts). */
  private readonly groupCommit: GroupCommit;
  /** Channel pairs run with batched updates (`batchPair`). */
  private readonly batched: BatchedPairs;
  /** Batched proposals of this turn of the event loop: proposed together in one step and one envelope. */
  private proposals: { args: ProposeArgs; resolve: (o: ProposeOutcome) => void; reject: (e: unknown) => void }[] = [];

  constructor(options: SwapClientOptions) {
    this.session = new Session(options);
    this.groupCommit = this.session.groupCommit;
    this.batched = new BatchedPairs(this.session);
    this.session.batched = (channelId) => this.batched.has(channelId);
    this.address = this.session.address;
    this.book = this.session.book;
    options.transport.listen((envelope) => this.handle(envelope));
  }

  /**
   * Adds a channel this client is a participant of, after checking its fixed parameters: we are a participant, the
   * other is `expected.counterparty`, the asset is `expected.asset`, our payee is zero or the one our policy names,
   * and the challenge period is within our policy; each mismatch is a ChannelTermsError and nothing is stored. The
   * channel must be open at the chain's final block. Its ledger starts from no deposits: participant 0 folds in
   * what the hub holds once final (`syncDeposits`, or the next tick), and participant 1 checks it at the same block.
   */
  async addChannel(chainId: bigint, params: ChannelParams, expected: ExpectedChannel): Promise<Hex> {
    const chain = this.session.chain(chainId);
    const channelId = channelIdOf(chainId, chain.hubAddress, params);
    const myIndex = this.checkChannelParams(params, expected);
    if (this.book.has(channelId)) return channelId;
    const info = await chain.channelInfo(channelId, await chain.finalBlock());
    if (info.status !== "open") {
      throw new ChannelTermsError("status", `channel ${channelId} is ${info.status} at the final block of chain ${chainId}, not open`);
    }
    await this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      const record = { ref: { chainId, hub: chain.hubAddress, channelId }, params, myIndex, openingDeposits: [0n, 0n] as const };
      // The tower guards the channel before the client signs anything for it (it is fed every state).
      this.session.o.watchtower?.guard?.(record);
      this.book.add(record);
    });
    return channelId;
  }

  private checkChannelParams(params: ChannelParams, expected: ExpectedChannel): ParticipantIndex {
    const myIndex = params.participants.findIndex((p) => sameAddress(p, this.address));
    if (myIndex < 0) throw new ChannelTermsError("participants", `${this.address} is not a participant`);
    const other = params.participants[myIndex === 0 ? 1 : 0];
    if (!sameAddress(other, expected.counterparty)) {
      throw new ChannelTermsError("counterparty", `the other participant is ${other}, expected ${expected.counterparty}`);
    }
    if (!sameAddress(params.asset, expected.asset)) {
      throw new ChannelTermsError("asset", `the channel holds ${params.asset}, expected ${expected.asset}`);
    }
    const policy = this.session.o.channelPolicy ?? {};
    const payee = params.payees[myIndex as ParticipantIndex];
    if (!sameAddress(payee, ZeroAddress) && !sameAddress(payee, this.address) && (policy.payee === undefined || !sameAddress(payee, policy.payee))) {
      throw new ChannelTermsError("payee", `our payouts would go to ${payee}, not to us${policy.payee === undefined ? "" : ` or ${policy.payee}`}`);
    }
    const min = policy.minChallengePeriod ?? DEFAULT_MIN_CHALLENGE_PERIOD;
    const max = policy.maxChallengePeriod ?? DEFAULT_MAX_CHALLENGE_PERIOD;
    if (params.challengePeriod < min || params.challengePeriod > max) {
      throw new ChannelTermsError("challengePeriod", `${params.challengePeriod}s is outside the ${min}..${max}s our policy accepts`);
    }
    return myIndex as ParticipantIndex;
  }

  /**
   * Runs two channels with the same counterparty as one pair with batched updates from now on (docs/SWAP.md, "Many
   * swaps on one pair"): any number of swaps at once between them, their locks added, paid and refunded in co-signed
   * batches, a swap undone off chain when it cannot finish. Both parties must do this for the pair; both channels
   * must be idle. The choice is kept in the store. Deposits go on being counted (`syncDeposits`, and each tick);
   * `requestClose` or `forceClose` of either channel closes both.
   */
  batchPair(a: Hex, b: Hex): Promise<void> {
    return this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      this.session.o.store.transaction(() => this.batched.enable(a, b));
    });
  }

  /** Whether a channel runs with batched updates. */
  isBatched(channelId: Hex): boolean {
    return this.batched.has(channelId);
  }

  /** Whether a channel is closing cooperatively: a close is under way, or its batched pair is being closed. */
  isClosing(channelId: Hex): boolean {
    if (this.session.o.store.channelOp(channelId)?.kind === "close") return true;
    return this.batched.has(channelId) && this.batched.engine(channelId).closing();
  }

  /** The other channel of the batched pair `channelId` belongs to, or undefined if it runs one swap at a time. */
  batchedWith(channelId: Hex): Hex | undefined {
    if (!this.batched.has(channelId)) return undefined;
    return this.batched.engine(channelId).channels.find((c) => c.toLowerCase() !== channelId.toLowerCase());
  }

  /**
   * Brings the channel's ledger up to the deposits final on chain now: participant 0 proposes the update,
   * participant 1 waits for it. Resolves with the head once it counts them (both parties may await this).
   */
  async syncDeposits(channelId: Hex): Promise<ChannelState> {
    const { ref, myIndex } = this.book.record(channelId);
    const chain = this.session.chain(ref.chainId);
    const target = (await chain.channelInfo(channelId, await chain.finalBlock())).deposits;
    const counted = () => {
      const head = this.book.head(channelId);
      return head.deposits[0] >= target[0] && head.deposits[1] >= target[1];
    };
    const waiting = this.until((e) => e.type === "deposits" && e.channelId.toLowerCase() === channelId.toLowerCase() && counted());
    if (myIndex === 0 && this.batched.has(channelId)) await this.step(() => this.batched.countDeposits(channelId));
    else if (myIndex === 0) await this.step(() => deposits.startDepositUpdate(this.session, channelId));
    if (!counted()) await waiting.promise;
    waiting.cancel();
    return this.book.head(channelId);
  }

  /** Resolves once the channel is closed on chain (cooperatively or by settlement), as this client learns it. */
  whenClosed(channelId: Hex): Promise<void> {
    this.book.record(channelId);
    const waiting = this.until((e) => e.type === "closed" && e.channelId.toLowerCase() === channelId.toLowerCase());
    if (this.session.o.store.channelOp(channelId)?.kind === "closed") {
      waiting.cancel();
      return Promise.resolve();
    }
    return waiting.promise.then(() => undefined);
  }

  /**
   * Closes an idle channel unilaterally: registers our newest co-signed state on chain (secrets owed to us
   * first); later ticks answer any stale state and settle after the challenge period (`whenClosed`).
   */
  forceClose(channelId: Hex): Promise<void> {
    return this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      if (this.batched.has(channelId)) return this.batched.goOnChain(this.batched.engine(channelId), "counterpartySilent");
      await close.forceClose(this.session, channelId);
    });
  }

  /**
   * Resolves once every step started so far is committed and its messages handed to the transport: what a process
   * awaits before it closes its transport and store on a clean shutdown.
   */
  idle(): Promise<void> {
    return this.groupCommit.serial(() => this.groupCommit.settleGroup());
  }

  /** Resolves with the swap's last phase once it is done: swapped, aborted, or settled on chain. */
  whenDone(swapId: Hex): Promise<Extract<SwapPhase, { kind: "done" }>> {
    const waiting = this.until((e) => e.type === "phase" && e.swapId.toLowerCase() === swapId.toLowerCase() && e.phase.kind === "done");
    const phase = this.session.swap(swapId).progress.phase;
    if (phase.kind === "done") {
      waiting.cancel();
      return Promise.resolve(phase);
    }
    return waiting.promise.then((e) => (e as Extract<ClientEvent, { type: "phase" }>).phase as Extract<SwapPhase, { kind: "done" }>);
  }

  /** The first event `match` accepts from now on. */
  private until(match: (e: ClientEvent) => boolean): { promise: Promise<ClientEvent>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<ClientEvent>((resolve) => {
      const unsubscribe = this.session.subscribe((e) => {
        if (!match(e)) return;
        unsubscribe();
        resolve(e);
      });
      cancel = unsubscribe;
    });
    return { promise, cancel };
  }

  /**
   * Starts a swap as initiator: giving `give` on `source` for `take` on `target`. Resolves with the swap id once
   * the proposal is on disk and sent.
   */
  propose(args: ProposeArgs): Promise<Hex> {
    if (!this.batched.has(args.source)) return this.step(() => initiator.propose(this.session, args));
    // On a batched pair, the proposals of one turn of the event loop are checked and sent together.
    return new Promise<ProposeOutcome>((resolve, reject) => {
      this.proposals.push({ args, resolve, reject });
      if (this.proposals.length === 1) setImmediate(() => void this.proposeBatched());
    }).then((o) => {
      if ("error" in o) throw o.error;
      return o.swapId;
    });
  }

  private async proposeBatched() {
    const waiting = this.proposals;
    this.proposals = [];
    try {
      const outcomes = await this.step(() => this.batched.proposeMany(waiting.map((w) => w.args)));
      waiting.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (error) {
      for (const w of waiting) w.reject(error);
    }
  }

  /**
   * Handles one incoming message (the transport calls this); resolves once its effects are on disk and the answer
   * is sent. Invalid messages throw and change nothing.
   */
  handle(envelope: Envelope): Promise<void> {
    return this.step(() => this.dispatch(envelope));
  }

  /** Resends, times out, and drives on-chain settlement; call it periodically. */
  async tick(): Promise<void> {
    // Batched pairs read the chains before the tick's turn: the steps of their messages go on meanwhile.
    const facts = await this.batched.readChains();
    return this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      await this.doTick(facts);
    });
  }

  /**
   * Asks the counterparty to co-sign the final state of `channelId`; the close lands on chain when it answers. On a
   * batched pair, both channels close: no new swap, every swap not past its reveal undone off chain, the others
   * completed, and each channel's final state signed once its last lock is resolved (`whenClosed`).
   */
  requestClose(channelId: Hex): Promise<void> {
    if (this.batched.has(channelId)) return this.step(async () => this.batched.requestClose(channelId));
    return this.step(() => close.requestClose(this.session, channelId));
  }

  swap(swapId: Hex): SwapView {
    return this.session.swap(swapId);
  }

  swaps(): SwapView[] {
    return this.session.swaps();
  }

  transfers(swapId: Hex): TransferRecord[] {
    return this.session.o.store.transfers(swapId);
  }

  private async dispatch(envelope: Envelope) {
    const ctx = this.session;
    const body = envelope.body;
    if (body.step === "propose") return responder.onPropose(ctx, envelope, body);
    if (body.step === "closeRequest") return close.onCloseRequest(ctx, envelope, body);
    if (body.step === "closeAck") return close.onCloseAck(ctx, envelope, body);
    if (body.step === "depositsUpdate") return deposits.onDepositsUpdate(ctx, envelope, body);
    if (body.step === "depositsSigned") return deposits.onDepositsSigned(ctx, envelope, body);
    if (body.step === "depositsAck") return deposits.onDepositsAck(ctx, envelope, body);
    if (body.step === "batch") return this.batched.onBatch(envelope, body);
    if (body.step === "proposals") return this.batched.onProposals(envelope, body);
    if (body.step === "acceptances") return this.batched.onAcceptances(envelope, body);
    const s = ctx.o.store.swap<SwapProgress>(envelope.swapId);
    if (s === undefined) throw new UnexpectedMessageError(`${body.step} for unknown swap ${envelope.swapId}`);
    unseal(envelope, s.role === "initiator" ? s.terms.responder : s.terms.initiator);
    const { phase } = s.phase;
    const id = envelope.swapId;
    switch (body.step) {
      case "accept":
        return initiator.onAccept(ctx, id, s.terms, phase, body);
      case "targetLock":
        return initiator.onTargetLock(ctx, id, s.terms, phase, body);
      case "resolve":
        return initiator.onResolve(ctx, id, s.terms, phase, body);
      case "sourceLock":
        return responder.onSourceLock(ctx, id, s.terms, phase, body);
      case "targetLockAck":
        return responder.onTargetLockAck(ctx, id, s.terms, phase, body);
      case "reveal":
        return responder.onReveal(ctx, id, s.terms, phase, body);
      case "resolveAck":
        return responder.onResolveAck(ctx, id, s.terms, phase, body);
      case "abort":
        return this.onAbort(id, phase, body);
    }
  }

  private onAbort(swapId: Hex, phase: SwapPhase, body: Extract<SwapBody, { step: "abort" }>) {
    // Only before any lock was signed: afterwards the locks decide, on chain if need be.
    if (phase.kind !== "proposed" && phase.kind !== "accepted") return;
    this.session.enter(swapId, { kind: "done", outcome: "aborted", reason: `counterparty: ${body.reason}` }, {});
  }

  /**
   * Every swap, then every idle channel's dispute, then channel operations and deposit offers: what races a deadline
   * first. One failing swap or channel (a chain call that reverts, a node that does not answer) is reported as a
   * `tickError` event and does not hold up the others; the tick then rejects with the first error.
   */
  private async doTick(facts: PairFacts) {
    const ctx = this.session;
    const now = ctx.clock();
    const errors: unknown[] = [];
    const attempt = async (where: { swapId?: Hex; channelId?: Hex }, work: () => Promise<unknown>) => {
      try {
        await work();
      } catch (error) {
        errors.push(error);
        ctx.emit({ type: "tickError", ...where, error: close.errorText(error) });
      }
    };
    const active = ctx.activeSwaps();
    for (const view of active) {
      if (!this.batched.owns(view.terms)) await attempt({ swapId: view.swapId }, () => this.tickSwap(view, now));
    }
    // Batched pairs: one step for their resends and timeouts, then the chain where a pair must go there.
    for (const pair of this.batched.pairs()) {
      const known = facts.get(pair);
      const times = known === undefined || known instanceof Error ? undefined : known.now;
      await attempt({ channelId: pair.channels[0] }, async () => void (await this.groupCommit.atomically(async () => this.batched.tickStep(pair, now, times, active))));
    }
    this.groupCommit.commitOpen(); // on disk before the chain work below (a failed pair's step rolled back); its messages leave on their own
    await this.batched.tickChain(facts, (channelId, work) => attempt({ channelId }, work));
    await onchain.watchIdleChannels(ctx, (channelId, work) => attempt({ channelId }, work));
    for (const { channelId: id, op } of ctx.o.store.pendingChannelOps()) {
      const channelId = this.book.record(id).ref.channelId;
      await attempt({ channelId }, () =>
        op.kind === "deposits" ? deposits.tickDeposits(ctx, channelId, op, now) : close.tickClose(ctx, channelId, op, now),
      );
    }
    for (const record of ctx.o.store.channels()) {
      const channelId = record.ref.channelId;
      if (record.myIndex === 0 && !this.batched.has(channelId)) await attempt({ channelId }, () => deposits.startDepositUpdate(ctx, channelId));
    }
    if (errors.length > 0) throw errors[0];
  }

  private async tickSwap(view: SwapView, now: number) {
    const ctx = this.session;
    const { swapId, role, terms } = view;
    const { phase, since, sentAt, sent } = view.progress;
    if (phase.kind === "settlingOnChain") return onchain.settleOnChain(ctx, swapId, terms, phase.channels);
    if (await onchain.disputedChannel(ctx, terms)) return onchain.goOnChain(ctx, swapId, terms, "disputed");
    // A wait that began before a restart counts from the restart: what was pending is resent first (below).
    const reason = await onchain.onChainReason(ctx, terms, phase, ctx.waited(since, now, ctx.o.confirmationTimeoutMs));
    if (reason === "abort") {
      ctx.enter(swapId, { kind: "done", outcome: "aborted", reason: "counterparty silent" }, {
        abort: { step: "abort", reason: "no answer within the confirmation timeout" },
      });
      await ctx.outbox.send(swapId, ["abort"]);
    } else if (reason !== undefined) {
      await onchain.goOnChain(ctx, swapId, terms, reason);
    } else if (sent.length > 0 && (now - sentAt >= ctx.o.resendIntervalMs || sentAt < ctx.startedAt)) {
      ctx.o.store.saveSwap(swapId, role, terms, { ...view.progress, sentAt: now }, true);
      await ctx.outbox.send(swapId, sent);
    }
  }

  /**
   * One protocol step: run in turn with the others as a savepoint of the open group, then awaited until the group
   * is committed (on disk) and its messages are sent. Steps arriving together share the group's commit.
   */
  private async step<T>(fn: () => Promise<T>): Promise<T> {
    const { result, durable } = await this.groupCommit.serial(() => this.groupCommit.atomically(fn));
    await durable;
    return result;
  }
}
