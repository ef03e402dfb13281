/**
 * Swaps as this node's owner asks for them (`propose`: the channels for its legs, checked before anything is signed)
 * and as a peer proposes them (`swapPolicy`: the responder's policy.swaps).
 */
import { InsufficientBalanceError } from "../core/errors.js";
import type { SwapTerms } from "../core/swap.js";
import { sameAddress, type Hex, type ParticipantIndex } from "../core/types.js";
import { requireDistinctChannels, type PolicyContext } from "../coordinator/swap-client.js";
import type { Store } from "../store/store.js";
import { UsageError } from "./errors.js";
import { ConflictError } from "./node-errors.js";
import type { SwapPair } from "./node-config.js";
import type { PeerBook } from "./peer-book.js";
import type { NodeParts } from "./start.js";
import type { StoreHealth } from "./store-health.js";
import { formatAmount, units, type AssetInfo } from "./units.js";
import type { Views } from "./views.js";

export type SwapDeps = Pick<NodeParts, "config" | "store" | "client" | "assets" | "adapters" | "chainHealth"> & Readonly<{ health: StoreHealth; peers: PeerBook; views: Views }>;

export class Swaps {
  /** The responder swaps in progress in the store, as read for the first swap of a step (`storedResponderSwaps`). */
  private responderCount: { first: SwapTerms; count: number } | undefined;

  constructor(private readonly d: SwapDeps) {}

  /**
   * For a refusal naming a free balance: when the hub holds a deposit for `who` that the ledger does not count yet,
   * why (it counts once final and co-signed), else nothing: waiting would not help.
   */
  private async uncounted(record: ReturnType<Store["channels"]>[number], who: ParticipantIndex): Promise<string> {
    const onChain = await this.d.adapters.get(record.ref.chainId)!.channelInfo(record.ref.channelId).catch(() => undefined);
    const counted = this.d.client.book.head(record.ref.channelId).deposits[who];
    const held = onChain?.deposits[who];
    if (held === undefined || held <= counted) return "";
    const asset = this.d.assets.byAddress(record.ref.chainId, record.params.asset);
    return ` (a deposit of ${formatAmount(held - counted, asset)} is not counted yet: deposits count once final and co-signed by both nodes, a few seconds after funding on a local chain)`;
  }

  /**
   * Proposes a swap to a peer: gives `give` (`10 SRC@source`) on our channel with the peer holding that asset, for
   * `take` on the one holding the other. Everything is checked before anything is signed.
   */
  async propose(args: { peer: string; give: string; take: string; source?: string; target?: string }) {
    this.d.health.requireStore();
    const peer = this.d.peers.peer(args.peer);
    const give = this.d.assets.amount(args.give, "give");
    const take = this.d.assets.amount(args.take, "take");
    if (give.amount === 0n) throw new UsageError("give: must be more than 0");
    if (take.amount === 0n) throw new UsageError("take: must be more than 0");
    if (args.source !== undefined && args.target !== undefined) requireDistinctChannels(this.d.views.openRecord(args.source).ref.channelId, this.d.views.openRecord(args.target).ref.channelId);
    // A leg left out goes on any open channel with the peer in that asset: the one with the most free for it.
    const source = args.source === undefined ? this.channelWith(peer.address, give.asset, "give", "mine") : this.channelFor(args.source, peer.address, give.asset, "source");
    const target = args.target === undefined ? this.channelWith(peer.address, take.asset, "take", "theirs") : this.channelFor(args.target, peer.address, take.asset, "target");
    requireDistinctChannels(source.ref.channelId, target.ref.channelId);
    // A chain that does not answer, or reorganised deeper than its confirmations, takes no new swap (409, its reason).
    for (const chainId of [source.ref.chainId, target.ref.chainId]) this.d.chainHealth.require(chainId);
    const free = this.free(source.ref.channelId, source.myIndex);
    if (give.amount > free) {
      const hint = await this.uncounted(source, source.myIndex);
      throw new ConflictError(`give: ${formatAmount(give.amount, give.asset)} is more than the free balance ${formatAmount(free, give.asset)} of channel ${source.ref.channelId}${hint}`);
    }
    const theirs = this.free(target.ref.channelId, target.myIndex === 0 ? 1 : 0);
    if (take.amount > theirs) {
      const hint = await this.uncounted(target, target.myIndex === 0 ? 1 : 0);
      throw new ConflictError(`take: ${formatAmount(take.amount, take.asset)} is more than ${peer.name}'s free balance ${formatAmount(theirs, take.asset)} of channel ${target.ref.channelId}${hint}`);
    }
    let swapId: Hex;
    try {
      swapId = await this.d.client.propose({ source: source.ref.channelId, target: target.ref.channelId, give: give.amount, take: take.amount });
    } catch (error) {
      // The client counts what swaps in flight will lock: less than the balance above may be free.
      if (!(error instanceof InsufficientBalanceError)) throw error;
      throw new ConflictError(`give: ${formatAmount(give.amount, give.asset)} is more than channel ${source.ref.channelId} has free and not promised to swaps in flight (${formatAmount(error.available, give.asset)})`);
    }
    return this.d.views.swapView(this.d.client.swap(swapId));
  }

  private free(channelId: Hex, me: ParticipantIndex): bigint {
    return this.d.client.book.head(channelId).balances[me];
  }

  /** A channel named by the user for a swap leg: it must hold the leg's asset, on its chain, with the swap's peer. */
  private channelFor(id: string, peer: string, asset: AssetInfo, field: string) {
    const record = this.d.views.openRecord(id);
    if (record.ref.chainId !== asset.chainId || !sameAddress(record.params.asset, asset.address)) {
      throw new UsageError(`${field}: channel ${record.ref.channelId} does not hold ${asset.symbol}@${asset.chain}`);
    }
    if (!sameAddress(record.params.participants[1 - record.myIndex]!, peer)) {
      throw new UsageError(`${field}: channel ${record.ref.channelId} is not with this peer`);
    }
    return record;
  }

  /**
   * An open channel with `peer` in `asset` (not closing) for a leg: the one where `whose` side has the most free, not
   * promised to swaps in flight, so that swaps spread over a peer's channels (a refusal then names that channel).
   */
  private channelWith(peer: string, asset: AssetInfo, field: string, whose: "mine" | "theirs") {
    const open = this.d.store
      .channels()
      .filter((c) => c.ref.chainId === asset.chainId && sameAddress(c.params.asset, asset.address) && sameAddress(c.params.participants[1 - c.myIndex]!, peer))
      .filter((c) => this.d.store.channelOp(c.ref.channelId) === undefined && !this.d.client.isClosing(c.ref.channelId));
    // Open, not closing, and not frozen from a backup copy (it takes no swap): what can carry this swap.
    const candidates = open.filter((c) => this.d.store.frozenSince(c.ref.channelId) === undefined);
    if (candidates.length === 0 && open.length > 0) {
      const ids = open.map((c) => c.ref.channelId).join(", ");
      throw new ConflictError(
        `${field}: every open channel of ${asset.symbol}@${asset.chain} with this peer is frozen, its store being a copy (${ids}): nothing is signed on it until it catches up ` +
          "from the peer's node, which it asks every few seconds (channels channel show <id> says what it waits for)",
      );
    }
    if (candidates.length === 0) throw new ConflictError(`${field}: no open channel of ${asset.symbol}@${asset.chain} with this peer`);
    let best = candidates[candidates.length - 1]!;
    let most = -1n;
    for (const c of candidates) {
      const index = whose === "mine" ? c.myIndex : c.myIndex === 0 ? 1 : 0;
      const free = this.d.client.available(c.ref.channelId, index);
      if (free > most) [best, most] = [c, free];
    }
    return best;
  }

  /**
   * The swaps in progress in the store where this node is the responder. Nothing is stored while a step asks the
   * policy about the proposals of one envelope (`agreed` grows, the store does not), so the count read for the first
   * swap agreed in a step is reused for the others: a step is known by that swap's terms (`agreed[0]`, the same object
   * for every later call of the step). Without it, an envelope of n proposals read the active swaps n times.
   */
  private storedResponderSwaps(terms: SwapTerms, agreed: readonly SwapTerms[]): number {
    const step = this.responderCount;
    if (agreed.length > 0 && step !== undefined && step.first === agreed[0]) return step.count;
    const count = this.d.store.activeSwapIds().filter((id) => this.d.client.swap(id).role === "responder").length;
    this.responderCount = agreed.length === 0 ? { first: terms, count } : undefined;
    return count;
  }

  /**
   * The responder policy: a reason to refuse, or undefined to accept. Default: refuse everything. `agreed` are the
   * swaps agreed before these terms in the same step and not stored yet (a `proposals` envelope): in flight too.
   */
  swapPolicy(terms: SwapTerms, { agreed }: PolicyContext): string | undefined {
    if (this.d.health.lost !== undefined) return "this node's store is lost; it agrees to nothing";
    const { pairs, maxInFlight } = this.d.config.policy.swaps;
    const src = this.d.store.channel(terms.source.channelId);
    const dst = this.d.store.channel(terms.target.channelId);
    if (src === undefined || dst === undefined) return "unknown channel";
    const give = this.d.assets.byAddress(terms.source.chainId, src.params.asset);
    const take = this.d.assets.byAddress(terms.target.chainId, dst.params.asset);
    if (give === undefined || take === undefined) return "asset not named in this node's configuration";
    const pair: SwapPair | undefined = pairs.find((p) => p.give === `${give.symbol}@${give.chain}` && p.take === `${take.symbol}@${take.chain}`);
    if (pair === undefined) return `no policy for giving ${give.symbol}@${give.chain} for ${take.symbol}@${take.chain} (policy.swaps.pairs)`;
    // The store's index of swaps in progress (a policy check reads none of the swaps already done), and the swaps
    // agreed before these terms in the same step, which have no row yet.
    const inFlight = this.storedResponderSwaps(terms, agreed) + agreed.length;
    if (inFlight >= maxInFlight) return `${inFlight} swaps in flight, policy.swaps.maxInFlight is ${maxInFlight}`;
    if (terms.take > units(pair.maxAmount, take.decimals, "maxAmount")) {
      return `take ${formatAmount(terms.take, take)} is more than maxAmount ${pair.maxAmount}`;
    }
    // rate = take / give in token units, compared exactly: take * 10^gd * 10^18 vs rate * give * 10^td.
    const scaled = (rate: string) => units(rate, 18, "rate") * terms.give * 10n ** BigInt(take.decimals);
    const actual = terms.take * 10n ** BigInt(give.decimals) * 10n ** 18n;
    if (actual > scaled(pair.maxRate)) return `rate above maxRate ${pair.maxRate}`;
    if (pair.minRate !== undefined && actual < scaled(pair.minRate)) return `rate below minRate ${pair.minRate}`;
    return undefined;
  }
}
