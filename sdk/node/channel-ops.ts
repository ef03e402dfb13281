/** What the node does to an open channel on request: deposit, close (cooperative or forced), withdraw. */
import { Contract, ZeroAddress } from "ethers";

import { shortMessage } from "../chain/errors.js";
import { ChannelFrozenError } from "../coordinator/swap-client.js";
import { sameAddress } from "../core/types.js";
import { UsageError } from "./errors.js";
import { ConflictError } from "./node-errors.js";
import type { NodeParts } from "./start.js";
import type { StoreHealth } from "./store-health.js";
import { formatAmount, units, type AssetInfo } from "./units.js";
import type { Views } from "./views.js";

export type ChannelOpsDeps = Pick<NodeParts, "address" | "log" | "store" | "client" | "assets" | "adapters" | "chainHealth"> & Readonly<{ health: StoreHealth; views: Views }>;

export class ChannelOps {
  constructor(private readonly d: ChannelOpsDeps) {}

  /**
   * Adds our deposit on chain; the ledger counts it once final (participant 0's tick offers the count in a co-signed
   * batch).
   */
  async deposit(id: string, amountText: string) {
    this.d.health.requireStore();
    const record = this.d.views.openRecord(id);
    const asset = this.d.assets.byAddress(record.ref.chainId, record.params.asset);
    if (asset === undefined) throw new UsageError(`the asset ${record.params.asset} of channel ${record.ref.channelId} is not named in the configuration: add it to know its decimals`);
    const amount = units(amountText, asset.decimals, "amount");
    if (amount === 0n) throw new UsageError("amount: must be more than 0");
    const op = this.d.store.channelOp(record.ref.channelId)?.kind;
    if (op === "closed") throw new ConflictError(`channel ${record.ref.channelId} is closed`);
    // Checked before any transaction: a closing channel's final state would not count it (the hub would only pay it back).
    if (op === "forceClose" || this.d.client.isClosing(record.ref.channelId)) throw new ConflictError(`channel ${record.ref.channelId} is closing; a deposit now would not be counted`);
    this.d.chainHealth.require(record.ref.chainId); // it would not be counted while its chain is held
    // A channel frozen from a backup copy can never count it: the hub would only pay it back after a force close.
    const frozen = this.d.store.frozenSince(record.ref.channelId);
    if (frozen !== undefined) throw new ChannelFrozenError(record.ref.channelId, frozen);
    await requireWalletHolds(this.d, asset, amount, "amount");
    await this.d.adapters.get(record.ref.chainId)!.deposit(record.params, record.ref.channelId, record.myIndex, amount);
    this.d.log.info({ event: "deposited", channelId: record.ref.channelId, amount: formatAmount(amount, asset) }, "deposited");
    return this.d.views.channelView(record.ref.channelId);
  }

  /**
   * Closes the channel: cooperatively (no new swap on it, the swaps using it undone or completed, then its final state
   * co-signed and landed) or on chain with `force`, together with every channel a swap in flight ties to it. The
   * peer's other channels stay open.
   */
  async close(id: string, force: boolean) {
    // A force close signs nothing (the co-signed state on file goes on chain): it stays open to a lost store.
    if (!force) this.d.health.requireStore();
    const record = this.d.views.openRecord(id);
    const channelId = record.ref.channelId;
    if (this.d.store.channelOp(channelId)?.kind === "closed") throw new ConflictError(`channel ${channelId} is closed`);
    const tied = force ? this.d.client.tiedChannels(channelId).filter((id) => id.toLowerCase() !== channelId.toLowerCase()) : [];
    if (force) {
      try {
        await this.d.client.forceClose(channelId);
      } catch (error) {
        // Recorded before any chain call: the ticks take it on chain (once its chain answers, if it does not now).
        if (this.d.store.channelOp(channelId)?.kind !== "forceClose") throw error;
        const chain = this.d.assets.chainName(record.ref.chainId);
        this.d.log.warn(
          { event: "forceCloseWaiting", channelId, chain, error: shortMessage(error) },
          `force close of ${channelId} recorded; its transaction on chain ${chain} failed for now (${shortMessage(error)}) and is sent again each tick`,
        );
      }
    } else {
      await this.d.client.requestClose(channelId);
    }
    this.d.log.info({ event: force ? "forceCloseStarted" : "closeRequested", channelId, tied: tied.length > 0 ? tied : undefined }, force ? "force close started" : "close requested");
    return this.d.views.channelView(channelId);
  }

  /** Pulls what the hub owes us in the channel's asset (a payout that could not be pushed). */
  async withdraw(id: string) {
    const record = this.d.views.openRecord(id);
    const adapter = this.d.adapters.get(record.ref.chainId)!;
    // Only a payout the hub could not push waits here (docs/PROTOCOL.md, asset settlement).
    if ((await adapter.hub.deferredPayout(record.params.asset, this.d.address)) === 0n) {
      throw new ConflictError(`nothing to withdraw: the hub holds no deferred payout of this channel's asset for ${this.d.address}`);
    }
    await adapter.withdraw(record.params.asset, this.d.address);
    return this.d.views.channelView(record.ref.channelId);
  }
}

/** Throws a one-line error unless this node's wallet holds `amount` of `asset` (gas aside) on its chain. */
export async function requireWalletHolds(d: Pick<NodeParts, "address" | "adapters">, asset: AssetInfo, amount: bigint, field: string): Promise<void> {
  if (amount === 0n) return;
  const provider = d.adapters.get(asset.chainId)!.provider;
  const held = sameAddress(asset.address, ZeroAddress)
    ? await provider.getBalance(d.address)
    : ((await new Contract(asset.address, ["function balanceOf(address) view returns (uint256)"], provider).getFunction("balanceOf")(d.address)) as bigint);
  if (held < amount) {
    throw new ConflictError(`${field}: ${formatAmount(amount, asset)} is more than the wallet's balance ${formatAmount(held, asset)}`);
  }
}
