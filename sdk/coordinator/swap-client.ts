import { ZeroAddress } from "ethers";

import type { ChannelInfo, HubAdapter } from "../chain/hub.js";
import { channelIdOf } from "../core/eip712.js";
import { ChannelTermsError, TransportNotConnectedError, UnexpectedMessageError, WaitAbortedError } from "../core/errors.js";
import type { Envelope } from "../core/messages.js";
import { sameAddress, type Address, type ChannelParams, type ChannelState, type Hex, type ParticipantIndex } from "../core/types.js";
import type { TransferRecord } from "../store/store.js";
import type { ChannelBook } from "./channels.js";
import { Counterparties, type PairFacts, type ProposeOutcome } from "./counterparties.js";
import * as close from "./close.js";
import type { GroupCommit } from "./group-commit.js";
import type { ClientEvent, SwapPhase, SwapView } from "./phases.js";
import {
  DEFAULT_MAX_CHALLENGE_PERIOD,
  DEFAULT_MIN_CHALLENGE_PERIOD,
  Session,
  type ProposeArgs,
  type SwapClientOptions,
} from "./session.js";

export { ChainHeldError, ChannelBusyError, ChannelClosingError, ChannelFrozenError, DuplicateChainError, UnknownSwapError } from "./errors.js";
export {
  DEFAULT_MAX_CHALLENGE_PERIOD,
  DEFAULT_MIN_CHALLENGE_PERIOD,
  requireDistinctChannels,
  type ChainGuard,
  type ChannelPolicy,
  type PolicyContext,
  type ProposeArgs,
  type SwapClientOptions,
} from "./session.js";

/**
 * How long `syncDeposits`, `whenDone` and `whenClosed` wait: until `signal` aborts, or `timeoutMs` passes (both
 * optional; without either they wait as long as it takes). Giving up ends the wait only: the client goes on.
 */
export type WaitOptions = Readonly<{ signal?: AbortSignal; timeoutMs?: number }>;

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
  /** Every counterparty's channels and swaps, under the one update scheme. */
  private readonly batched: Counterparties;
  /** Batched proposals of this turn of the event loop: proposed together in one step and one envelope. */
  private proposals: { args: ProposeArgs; resolve: (o: ProposeOutcome) => void; reject: (e: unknown) => void }[] = [];

  constructor(options: SwapClientOptions) {
    this.session = new Session(options);
    this.groupCommit = this.session.groupCommit;
    this.batched = new Counterparties(this.session);
    this.address = this.session.address;
    this.book = this.session.book;
    options.transport.listen((envelope) => this.handle(envelope));
  }

  /**
   * Adds a channel this client is a participant of, after checking its fixed parameters: we are a participant, the
   * other is `expected.counterparty`, the asset is `expected.asset`, our payee is zero or the one our policy names,
   * and the challenge period is within our policy; each mismatch is a ChannelTermsError and nothing is stored. The
   * channel must be open at the chain's final block (told to the chain guard before it is read), on a chain the guard
   * does not hold (else a ChainHeldError). Its ledger starts from no deposits: participant 0 folds in
   * what the hub holds once final (`syncDeposits`, or the next tick), and participant 1 checks it at the same block.
   */
  async addChannel(chainId: bigint, params: ChannelParams, expected: ExpectedChannel): Promise<Hex> {
    const chain = this.session.chain(chainId);
    const channelId = channelIdOf(chainId, chain.hubAddress, params);
    const myIndex = this.checkChannelParams(params, expected);
    if (this.book.has(channelId)) return channelId;
    this.session.requireChain(chainId); // a chain the guard holds takes no new channel
    const final = await chain.finalBlock();
    await this.session.trustFinal(chainId, final);
    const info = await chain.channelInfo(channelId, final);
    if (info.status !== "open") throw new ChannelTermsError("status", await this.notOpen(chain, channelId, info.status, final));
    await this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      const record = { ref: { chainId, hub: chain.hubAddress, channelId }, params, myIndex, openingDeposits: [0n, 0n] as const };
      // The tower guards the channel before the client signs anything for it (it is fed every state).
      this.session.o.watchtower?.guard?.(record);
      this.book.add(record);
      this.batched.join(channelId); // under the update scheme from its first co-signed state
    });
    return channelId;
  }

  /** Why a channel is not open at the final block, and what to do about it. */
  private async notOpen(chain: HubAdapter, channelId: Hex, status: string, final: number): Promise<string> {
    const at = `on chain ${chain.chainId} (hub ${chain.hubAddress})`;
    if (status !== "none") return `channel ${channelId} is ${status} ${at}: a channel being closed or closed takes no swaps`;
    const head = await chain.headBlock();
    if (final < head && (await chain.channelInfo(channelId, head)).status !== "none") {
      return (
        `channel ${channelId} is open at the head (block ${head}) ${at} but not yet at the final block ${final} ` +
        `(${chain.confirmations} confirmations): join again once its opening is ${chain.confirmations} blocks deep`
      );
    }
    return (
      `no channel ${channelId} ${at} at block ${final}. Its id is computed from the chain id, the hub address and the ` +
      `parameters, nonce included: check that chain ${chain.chainId} and hub ${chain.hubAddress} are where it was opened ` +
      "(the chainId passed to addChannel selects the adapter), and that the parameters are the ones it was opened with"
    );
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
   * What participant `who` of a channel can still lock there: its free balance in the co-signed head less what the
   * agreed swaps will lock for it (our proposals still unanswered aside).
   */
  available(channelId: Hex, who: ParticipantIndex): bigint {
    return this.batched.engine(channelId).available(channelId, who);
  }

  /**
   * For a channel frozen from a restored copy: when it last asked the counterparty to show the newest state both
   * signed, and why it cannot catch up, if it cannot (docs/NODE.md, "Backups"). Undefined for a channel not frozen.
   */
  catchUpState(channelId: Hex): Readonly<{ askedAt?: number; problem?: string }> | undefined {
    if (!this.batched.has(channelId)) return undefined;
    return this.batched.engine(channelId).resumeState(channelId);
  }

  /** Whether a channel is closing cooperatively: its close is asked for, signed or being landed. */
  isClosing(channelId: Hex): boolean {
    if (this.session.o.store.channelOp(channelId)?.kind === "close") return true;
    return this.batched.has(channelId) && this.batched.engine(channelId).closing(channelId);
  }

  /**
   * Brings the channel's ledger up to the deposits final on chain now: participant 0 proposes the update,
   * participant 1 waits for it. Resolves with the head once it counts them (both parties await this, or participant
   * 1 leaves it to participant 0's ticks). Rejects with a TransportNotConnectedError when the count cannot be sent
   * at all, and with a WaitAbortedError once `options.timeoutMs` passes or `options.signal` aborts, saying what is
   * missing (the counterparty's signature, or participant 0's proposal) and the last failed send, if any.
   */
  async syncDeposits(channelId: Hex, options: WaitOptions = {}): Promise<ChannelState> {
    const { ref, myIndex, params } = this.book.record(channelId);
    const chain = this.session.chain(ref.chainId);
    const target = (await chain.channelInfo(channelId, await chain.finalBlock())).deposits;
    const counted = () => {
      const head = this.book.head(channelId);
      return head.deposits[0] >= target[0] && head.deposits[1] >= target[1];
    };
    const other = params.participants[myIndex === 0 ? 1 : 0];
    const waiting = this.until((e) => e.type === "deposits" && e.channelId.toLowerCase() === channelId.toLowerCase() && counted(), {
      ...options,
      channels: [channelId],
      waitingFor: `the count of deposits [${target.join(", ")}] of channel ${channelId} on chain ${ref.chainId}`,
      hint: () =>
        myIndex === 0
          ? `the counterparty ${other} has not co-signed it. Is its client running, with this channel added ` +
            "(addChannel) and its transport connected to ours?"
          : `participant 0 (${other}) proposes the count and none arrived. Call syncDeposits on its client too, or ` +
            "let it tick (a tick offers counts of final deposits), and check that both transports are connected.",
    });
    try {
      if (myIndex === 0) await Promise.race([this.step(() => this.batched.countDeposits(channelId)), waiting.promise]);
      if (!counted()) await waiting.promise;
    } finally {
      waiting.cancel();
    }
    return this.book.head(channelId);
  }

  /**
   * Resolves once the channel is closed on chain (cooperatively or by settlement), as this client learns it. Rejects
   * as `syncDeposits` does: when its messages cannot be sent at all, or on `options`' timeout or signal.
   */
  async whenClosed(channelId: Hex, options: WaitOptions = {}): Promise<void> {
    const { ref } = this.book.record(channelId);
    if (this.session.o.store.channelOp(channelId)?.kind === "closed") return;
    const waiting = this.until((e) => e.type === "closed" && e.channelId.toLowerCase() === channelId.toLowerCase(), {
      ...options,
      channels: [channelId],
      waitingFor: `the close of channel ${channelId} on chain ${ref.chainId}`,
      hint: () =>
        this.isClosing(channelId)
          ? "its close is under way: it lands once the final state is co-signed and mined (keep both clients ticking)."
          : "no close was asked for (requestClose or forceClose).",
    });
    if (this.session.o.store.channelOp(channelId)?.kind === "closed") return waiting.cancel();
    try {
      await waiting.promise;
    } finally {
      waiting.cancel();
    }
  }

  /**
   * Closes a channel unilaterally: registers our newest co-signed state on chain (secrets owed to us first), with
   * every channel a swap in flight ties to it (`tiedChannels`); later ticks answer any stale state and settle after
   * the challenge period (`whenClosed`).
   */
  forceClose(channelId: Hex): Promise<void> {
    return this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      const engine = this.batched.engine(channelId);
      await this.batched.goOnChain(engine, "counterpartySilent", [this.book.record(channelId).ref.channelId]);
    });
  }

  /**
   * The channels that go on chain with `channelId` if it does: itself, and every channel a swap in flight ties to it
   * (the two locks of a swap settle by the same secret, so both its channels go on chain together), transitively.
   */
  tiedChannels(channelId: Hex): Hex[] {
    return this.batched.tied(this.batched.engine(channelId), [this.book.record(channelId).ref.channelId]);
  }

  /**
   * Resolves once every step started so far is committed and its messages handed to the transport: what a process
   * awaits before it closes its transport and store on a clean shutdown.
   */
  idle(): Promise<void> {
    return this.groupCommit.serial(() => this.groupCommit.settleGroup());
  }

  /**
   * Resolves with the swap's last phase once it is done: swapped, aborted, or settled on chain. Rejects as
   * `syncDeposits` does: when the swap's messages cannot be sent at all, or on `options`' timeout or signal (the
   * swap goes on in the background; its phase then is `swap(swapId).progress.phase`).
   */
  async whenDone(swapId: Hex, options: WaitOptions = {}): Promise<Extract<SwapPhase, { kind: "done" }>> {
    const { terms, role } = this.session.swap(swapId);
    const waiting = this.until((e) => e.type === "phase" && e.swapId.toLowerCase() === swapId.toLowerCase() && e.phase.kind === "done", {
      ...options,
      channels: [terms.source.channelId, terms.target.channelId],
      waitingFor: `swap ${swapId} to be done`,
      hint: () =>
        `it is ${this.session.swap(swapId).progress.phase.kind} (we are its ${role}); the client carries it on at each tick, ` +
        "and on chain if the counterparty stays silent past the confirmation timeout.",
    });
    const phase = this.session.swap(swapId).progress.phase;
    if (phase.kind === "done") {
      waiting.cancel();
      return phase;
    }
    try {
      const e = await waiting.promise;
      return (e as Extract<ClientEvent, { type: "phase" }>).phase as Extract<SwapPhase, { kind: "done" }>;
    } finally {
      waiting.cancel();
    }
  }

  /**
   * The first event `match` accepts from now on. With `stop`, the wait also ends: with the transport's error when
   * a message for one of `stop.channels` fails because the transport has no peer (nothing would ever arrive), or
   * with a WaitAbortedError when `stop.timeoutMs` passes or `stop.signal` aborts (naming the last failed send).
   */
  private until(
    match: (e: ClientEvent) => boolean,
    stop?: WaitOptions & Readonly<{ channels: readonly Hex[]; waitingFor: string; hint: () => string }>,
  ): { promise: Promise<ClientEvent>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<ClientEvent>((resolve, reject) => {
      const channels = new Set(stop?.channels.map((c) => c.toLowerCase()));
      const failure = () => {
        for (const id of channels) {
          const error = this.session.sendFailure(id as Hex);
          if (error !== undefined) return error;
        }
        return undefined;
      };
      const giveUp = (timeoutMs: number | undefined) => {
        const last = failure();
        const sent = last === undefined ? "" : ` The last message for it failed to leave: ${last instanceof Error ? last.message : String(last)}`;
        finish();
        reject(new WaitAbortedError(stop!.waitingFor, timeoutMs, stop!.hint() + sent, timeoutMs === undefined ? stop?.signal?.reason : last));
      };
      const unsubscribe = this.session.subscribe((e) => {
        if (e.type === "sendFailed" && e.notConnected && e.channelIds.some((c) => channels.has(c.toLowerCase()))) {
          finish();
          reject(failure() ?? new TransportNotConnectedError());
          return;
        }
        if (!match(e)) return;
        finish();
        resolve(e);
      });
      const timer = stop?.timeoutMs === undefined ? undefined : setTimeout(() => giveUp(stop.timeoutMs), stop.timeoutMs);
      const onAbort = () => giveUp(undefined);
      stop?.signal?.addEventListener("abort", onAbort, { once: true });
      const finish = () => {
        unsubscribe();
        clearTimeout(timer);
        stop?.signal?.removeEventListener("abort", onAbort);
      };
      cancel = finish;
      if (stop?.signal?.aborted === true) giveUp(undefined);
    });
    promise.catch(() => undefined); // rejected while no one awaits it yet (a step still running): the awaiter sees it
    return { promise, cancel };
  }

  /**
   * Starts a swap as initiator: giving `give` on `source` for `take` on `target`. Resolves with the swap id once
   * the proposal is on disk and sent.
   */
  propose(args: ProposeArgs): Promise<Hex> {
    // The proposals of one turn of the event loop are checked and sent together.
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
    // The chains are read before the tick's turn: the steps of their messages go on meanwhile.
    const facts = await this.batched.readChains();
    return this.groupCommit.serial(async () => {
      await this.groupCommit.settleGroup();
      await this.doTick(facts);
    });
  }

  /**
   * Closes `channelId` cooperatively: no new swap on it, every swap using it that is not past its reveal undone off
   * chain (its other channel stays open), the others completed, and its final state signed once its last lock is
   * resolved, then landed on chain (`whenClosed`). The counterparty's other channels go on.
   */
  requestClose(channelId: Hex): Promise<void> {
    return this.step(async () => this.batched.requestClose(channelId));
  }

  swap(swapId: Hex): SwapView {
    return this.session.swap(swapId);
  }

  swaps(): SwapView[] {
    return this.session.swaps();
  }

  /** The swaps not done yet (at most the in-flight caps' worth). */
  activeSwaps(): SwapView[] {
    return this.session.activeSwaps();
  }

  /**
   * What the hub stores about `channelId` at the latest block, as the client's ticks follow it: read again only once a
   * log concerned the channel (following.ts), so a view of many channels costs no request per channel. It may be a
   * tick behind the chain.
   */
  followedInfo(channelId: Hex): Promise<ChannelInfo> {
    return this.batched.followedInfo(this.book.record(channelId).ref.chainId, channelId);
  }

  /**
   * The deposits the hub held at the final block for a channel whose co-signed head does not count them all yet, as
   * the last tick read them; undefined when the head counts everything the tick saw.
   */
  uncountedDeposits(channelId: Hex): readonly [bigint, bigint] | undefined {
    return this.batched.finalDeposits(channelId);
  }

  transfers(swapId: Hex): TransferRecord[] {
    return this.session.o.store.transfers(swapId);
  }

  private async dispatch(envelope: Envelope) {
    const body = envelope.body;
    if (body.step === "batch") return this.batched.onBatch(envelope, body);
    if (body.step === "proposals") return this.batched.onProposals(envelope, body);
    if (body.step === "acceptances") return this.batched.onAcceptances(envelope, body);
    throw new UnexpectedMessageError(`a message of unknown step ${String((body as { step?: unknown }).step)}`);
  }

  /**
   * Each counterparty's step (resends, timeouts, deposit counts), then the chain where channels must go there, then
   * channel operations (closes to land, force closes to drive): what races a deadline first. One failing counterparty
   * or channel (a chain call that reverts, a node that does not answer) is reported as a `tickError` event and does
   * not hold up the others; the tick then rejects with the first error.
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
    for (const engine of this.batched.pairs()) {
      const known = facts.get(engine);
      const times = known === undefined || known instanceof Error ? undefined : known.now;
      await attempt({ channelId: engine.channels[0] }, async () => void (await this.groupCommit.atomically(async () => this.batched.tickStep(engine, now, times, active))));
    }
    this.groupCommit.commitOpen(); // on disk before the chain work below (a failed step rolled back); its messages leave on their own
    await this.batched.tickChain(facts, (channelId, work) => attempt({ channelId }, work));
    for (const { channelId: id, op } of ctx.o.store.pendingChannelOps()) {
      const channelId = this.book.record(id).ref.channelId;
      await attempt({ channelId }, () => close.tickClose(ctx, channelId, op, now));
    }
    if (errors.length > 0) throw errors[0];
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
