/** The errors the swap client throws about swaps and channels it is asked to use (exported from swap-client.ts). */
import { ChannelSdkError } from "../core/errors.js";
import type { ChannelOp } from "../store/store.js";

/** The swap is not one this client knows. */
export class UnknownSwapError extends ChannelSdkError {
  constructor(readonly swapId: string) {
    super(`Swap ${swapId} is not known to this client.`);
  }
}

/** A channel already carries a swap or a channel operation in progress. */
export class ChannelBusyError extends ChannelSdkError {
  constructor(
    readonly channelId: string,
    readonly reason = "a swap in progress; one swap at a time per channel",
  ) {
    super(`Channel ${channelId} has ${reason}.`);
  }
}

/** A channel that is closing (cooperatively or on chain) or closed takes no swap. */
export class ChannelClosingError extends ChannelBusyError {
  constructor(channelId: string, readonly op: Exclude<ChannelOp["kind"], "deposits">) {
    super(
      channelId,
      op === "closed"
        ? "been closed; new swaps need another channel"
        : `a ${op === "forceClose" ? "force " : ""}close in progress and takes no new swap; swap on another channel`,
    );
  }
}

/**
 * The error for a channel operation in progress that keeps a swap off the channel: a close (ChannelClosingError),
 * or a count of deposits recorded by an older version (a ChannelBusyError: the channel is not closing).
 */
export function channelOpError(channelId: string, op: ChannelOp["kind"]): ChannelBusyError {
  if (op === "deposits") return new ChannelBusyError(channelId, "a deposit count in progress; propose again once syncDeposits has resolved on both clients");
  return new ChannelClosingError(channelId, op);
}

/**
 * A client given two adapters for one chain id (`SwapClientOptions.chains`): a client takes one adapter per chain, and
 * a swap's two channels are on two different chains. Most often both RPC URLs point at the same chain.
 */
export class DuplicateChainError extends ChannelSdkError {
  constructor(
    readonly chainId: bigint,
    /** The hub addresses of the two adapters (the same twice when one adapter was passed twice). */
    readonly hubs: readonly [string, string],
  ) {
    super(
      `Two adapters for chain ${chainId} (hubs ${hubs[0]} and ${hubs[1]}): a client takes one adapter per chain, and a ` +
        `swap's two channels must be on two different chains. Connect each adapter to a chain of its own (do two RPC URLs ` +
        `both answer with chain id ${chainId}?).`,
    );
  }
}

/**
 * Nothing new that depends on a chain is signed now (a swap's terms, a lock, a count of deposits): the client's chain
 * guard holds it (`SwapClientOptions.chainGuard`), because the chain does not answer or reorganised deeper than its
 * confirmations. Payments, refunds, closes and everything on chain go on.
 */
export class ChainHeldError extends ChannelSdkError {
  constructor(
    readonly chainId: bigint,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/**
 * A channel this client's store got from a backup copy (Store.backupTo): the client may have signed newer states of
 * it after the copy was taken, so it signs none. It can be force-closed with the newest state the copy holds (the
 * counterparty answers with a newer one if it has one: a state this client signed, so the close stays fair).
 */
export class ChannelFrozenError extends ChannelSdkError {
  constructor(
    readonly channelId: string,
    readonly since: number,
  ) {
    super(
      `Channel ${channelId} is frozen since ${new Date(since).toISOString()} (its store is a copy: a restored backup, or one frozen with channels store freeze): this node may have signed newer ` +
        "states of it since, so it signs nothing on it until its peer shows it the newest state both signed (it asks every few seconds); " +
        "or force-close it (the peer answers with any newer state).",
    );
  }
}
