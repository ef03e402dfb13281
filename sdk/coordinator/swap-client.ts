import { channelIdOf } from "../core/eip712.js";
import { ChannelSdkError, UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { sameAddress, type ChannelParams, type Hex, type ParticipantIndex } from "../core/types.js";
import type { TransferRecord } from "../store/store.js";
import type { ChannelBook } from "./channels.js";
import * as close from "./close.js";
import * as initiator from "./initiator.js";
import * as onchain from "./onchain-path.js";
import type { SwapPhase, SwapProgress, SwapView } from "./phases.js";
import * as responder from "./responder.js";
import { Session, type ProposeArgs, type SwapClientOptions } from "./session.js";

export { ChannelBusyError, UnknownSwapError, type ProposeArgs, type SwapClientOptions } from "./session.js";

/**
 * One party of cross-chain swaps: the four-phase state machine of each role, over a transport, persisted in the
 * store before any message that depends on it is sent. Message handling and `tick` run one at a time.
 */
export class SwapClient {
  readonly address: string;
  readonly book: ChannelBook;
  private readonly session: Session;

  constructor(options: SwapClientOptions) {
    this.session = new Session(options);
    this.address = this.session.address;
    this.book = this.session.book;
    options.transport.listen((envelope) => this.handle(envelope));
  }

  /** Adds a channel this client is a participant of; its current on-chain deposits open the ledger. */
  async addChannel(chainId: bigint, params: ChannelParams): Promise<Hex> {
    const chain = this.session.chain(chainId);
    const channelId = channelIdOf(chainId, chain.hubAddress, params);
    if (this.book.has(channelId)) return channelId;
    const myIndex = params.participants.findIndex((p) => sameAddress(p, this.address));
    if (myIndex < 0) throw new ChannelSdkError(`${this.address} is not a participant of channel ${channelId}`);
    const info = await chain.channelInfo(channelId);
    if (info.status !== "open") throw new ChannelSdkError(`channel ${channelId} is ${info.status}, not open`);
    await this.session.serial(async () => {
      await this.session.settleGroup();
      this.book.add({
        ref: { chainId, hub: chain.hubAddress, channelId },
        params,
        myIndex: myIndex as ParticipantIndex,
        openingDeposits: info.deposits,
      });
    });
    return channelId;
  }

  /**
   * Starts a swap as initiator: giving `give` on `source` for `take` on `target`. Resolves with the swap id once
   * the proposal is on disk and sent.
   */
  propose(args: ProposeArgs): Promise<Hex> {
    return this.step(() => initiator.propose(this.session, args));
  }

  /**
   * Handles one incoming message (the transport calls this); resolves once its effects are on disk and the answer
   * is sent. Invalid messages throw and change nothing.
   */
  handle(envelope: Envelope): Promise<void> {
    return this.step(() => this.dispatch(envelope));
  }

  /** Resends, times out, and drives on-chain settlement; call it periodically. */
  tick(): Promise<void> {
    return this.session.serial(async () => {
      await this.session.settleGroup();
      await this.doTick();
    });
  }

  /** Asks the counterparty to co-sign the final state of `channelId`; the close lands on chain when it answers. */
  requestClose(channelId: Hex): Promise<void> {
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

  private async doTick() {
    const ctx = this.session;
    const now = ctx.clock();
    for (const view of ctx.activeSwaps()) {
      const { swapId, role, terms } = view;
      const { phase, since, sentAt, sent } = view.progress;
      if (phase.kind === "settlingOnChain") {
        await onchain.settleOnChain(ctx, swapId, terms, phase.channels);
        continue;
      }
      if (await onchain.disputedChannel(ctx, terms)) {
        await onchain.goOnChain(ctx, swapId, terms, "disputed");
        continue;
      }
      const reason = await onchain.onChainReason(ctx, terms, phase, now - since >= ctx.o.confirmationTimeoutMs);
      if (reason === "abort") {
        ctx.enter(swapId, { kind: "done", outcome: "aborted", reason: "counterparty silent" }, {
          abort: { step: "abort", reason: "no answer within the confirmation timeout" },
        });
        await ctx.sendStored(swapId, ["abort"]);
      } else if (reason !== undefined) {
        await onchain.goOnChain(ctx, swapId, terms, reason);
      } else if (sent.length > 0 && now - sentAt >= ctx.o.resendIntervalMs) {
        ctx.o.store.saveSwap(swapId, role, terms, { ...view.progress, sentAt: now }, true);
        await ctx.sendStored(swapId, sent);
      }
    }
    await onchain.watchIdleChannels(ctx);
  }

  /**
   * One protocol step: run in turn with the others as a savepoint of the open group, then awaited until the group
   * is committed (on disk) and its messages are sent. Steps arriving together share the group's commit.
   */
  private async step<T>(fn: () => Promise<T>): Promise<T> {
    const { result, durable } = await this.session.serial(() => this.session.atomically(fn));
    await durable;
    return result;
  }
}
