/**
 * What the node shows of itself, its channels and its swaps (the API's and the CLI's answers), and ids as given. The
 * part read from stored data alone (a channel's record and newest co-signed state, a swap's row) is a set of
 * functions of a store (`Stored`), which a standby serves from its snapshot of the database (standby-views.ts); the
 * active node's `Views` adds what it reads on chain.
 */
import type { ChannelInfo, HubAdapter } from "../chain/hub.js";
import { storedHead } from "../coordinator/channels.js";
import type { SwapView } from "../coordinator/phases.js";
import { storedSwap } from "../coordinator/session.js";
import type { Hex, ParticipantIndex } from "../core/types.js";
import type { Store } from "../store/store.js";
import type { Pending } from "./channel-opening.js";
import { UsageError } from "./errors.js";
import { idPrefix } from "./ids.js";
import { ConflictError, NotFoundError } from "./node-errors.js";
import type { PeerBook } from "./peer-book.js";
import type { NodeConfig } from "./node-config.js";
import type { NodeParts } from "./start.js";
import type { StoreHealth } from "./store-health.js";
import { formatAmount, type AssetBook } from "./units.js";

/** How long a list reuses what the hub holds for this node in an asset (`Views.held`). */
const HELD_REUSE_MS = 10_000;

export type ViewDeps = Pick<NodeParts, "config" | "address" | "store" | "client" | "assets" | "adapters" | "chainIds" | "link" | "chainHealth" | "term"> &
  Readonly<{
    startedAt: Date;
    health: StoreHealth;
    peers: PeerBook;
    /** The channels agreed with peers and not joined yet. */
    pending: ReadonlyMap<Hex, Pending>;
  }>;

export class Views {
  /** Payouts of closed channels, read from their close event once. */
  private readonly paidOut = new Map<Hex, readonly [bigint, bigint]>();
  /** What the hub stores about closed channels (final). */
  private readonly closed = new Map<Hex, ChannelInfo>();

  constructor(private readonly d: ViewDeps) {}

  /** The node's address, chains, counts and policy; throws the StoreLostError (503) once its store is lost. */
  info() {
    this.d.health.requireStore();
    return {
      address: this.d.address,
      version: 1,
      /** "active": this process signs and sends (a standby answers /info with role "standby"). */
      role: "active" as const,
      /** Where the node keeps its state, and for PostgreSQL the term this process leads it under. */
      store: this.d.term === undefined ? { kind: "sqlite" as const } : { kind: "postgres" as const, term: this.d.term },
      startedAt: this.d.startedAt.toISOString(),
      peerUrl: this.d.link.url,
      chains: configuredChains(this.d.config, this.d.chainIds).map((c) => ({
        ...c,
        confirmations: this.d.adapters.get(this.d.chainIds.get(c.name)!)!.confirmations,
        health: this.d.chainHealth.view(c.name),
      })),
      ...storedCounts(this.d.store),
      policy: this.d.config.policy,
    };
  }

  /** What the views read from stored data alone: this node's store, assets, peers and channels agreed. */
  private get stored(): Stored {
    return { store: this.d.store, assets: this.d.assets, peers: this.d.peers, pending: this.d.pending };
  }

  channelIds(): Hex[] {
    return channelIds(this.stored);
  }

  /** What the hub holds for this node per chain and asset, and when it was read (ms): see `held`. */
  private readonly heldRead = new Map<string, { at: number; value: Promise<bigint | undefined> }>();

  /**
   * What the hub holds for this node in `asset` (payouts it could not push), undefined if it could not be read. One
   * read per chain and asset serves every closed channel of a list for HELD_REUSE_MS (a list is asked for every few
   * seconds by the dashboard, and a read per closed channel per list would grow with the node's history); a view
   * asked for `fresh` (one channel, or just after a withdrawal) reads it now.
   */
  private held(adapter: HubAdapter, asset: string, fresh: boolean): Promise<bigint | undefined> {
    const k = `${adapter.chainId}:${asset.toLowerCase()}`;
    const known = this.heldRead.get(k);
    if (!fresh && known !== undefined && Date.now() - known.at < HELD_REUSE_MS) return known.value;
    const value = adapter.hub.deferredPayout(asset, this.d.address).then((v: bigint) => v, () => undefined);
    this.heldRead.set(k, { at: Date.now(), value });
    return value;
  }

  /**
   * A channel as the API shows it. `fresh` (one channel asked for, or just acted on) reads its state on chain now;
   * otherwise (a list) as the client's ticks follow it, a tick behind at most, so a list of many channels costs no
   * request per channel. A closed channel's state on chain is final, read once.
   */
  async channelView(channelId: Hex, fresh = true) {
    const record = this.d.store.channel(channelId);
    if (record === undefined) return channelView(this.stored, channelId);
    const adapter = this.d.adapters.get(record.ref.chainId)!;
    // A closed channel is not read again: its state on chain is final. A read that fails leaves the view without it
    // (handled here: a rejection left unhandled ends the node's process).
    const info = this.closed.get(channelId) ?? (await (fresh ? adapter.channelInfo(channelId) : this.d.client.followedInfo(channelId)).catch(() => undefined));
    if (info?.status === "closed") this.closed.set(channelId, info);
    // An endpoint that refuses a log query over the whole chain (public ones cap eth_getLogs ranges) leaves the payouts
    // unshown, not the view failing.
    const payouts = info?.status === "closed" ? await this.payouts(adapter, channelId).catch(() => undefined) : undefined;
    // What the hub holds for this node in the channel's asset (a payout it could not push): POST .../withdraw pulls it.
    const held = info?.status === "closed" ? await this.held(adapter, record.params.asset, fresh) : undefined;
    return channelView(this.stored, channelId, { closing: this.d.client.isClosing(channelId), info, payouts, held, catchUp: this.d.client.catchUpState(channelId) });
  }

  /** What a closed channel paid out, from its close event; found once (a closed channel's payouts never change). */
  private async payouts(adapter: HubAdapter, channelId: Hex): Promise<readonly [bigint, bigint] | undefined> {
    const known = this.paidOut.get(channelId);
    if (known !== undefined) return known;
    const closed = await adapter.hub.queryFilter(adapter.hub.filters.ChannelClosed(channelId));
    const event = closed[0] ?? (await adapter.hub.queryFilter(adapter.hub.filters.ChannelSettled(channelId)))[0];
    if (event === undefined) return undefined;
    const payouts = [event.args.payouts[0], event.args.payouts[1]] as const;
    this.paidOut.set(channelId, payouts);
    return payouts;
  }

  /** A channel by its id or a unique prefix of it (at least 6 hex digits after 0x). */
  resolveChannel(id: string): Hex {
    return resolveChannel(this.stored, id);
  }

  openRecord(id: string) {
    const channelId = this.resolveChannel(id);
    const record = this.d.store.channel(channelId);
    if (record === undefined) throw new ConflictError(`channel ${channelId} is agreed but not open on chain yet`);
    return record;
  }

  swaps() {
    return swapViews(this.stored);
  }

  swap(id: string) {
    return this.swapView(this.d.client.swap(resolveSwap(this.d.store, id)));
  }

  swapView(s: SwapView) {
    return swapView(this.stored, s);
  }
}

/** What a view reads from stored data alone: the store, the configuration's assets and peers, the channels agreed. */
export type Stored = Readonly<{
  store: Store;
  assets: AssetBook;
  peers: Pick<PeerBook, "peerNameOf">;
  /** The channels agreed with peers and not joined yet. */
  pending: ReadonlyMap<Hex, Pending>;
}>;

/**
 * What a channel's view reads besides the store: whether the client is closing it, and the hub's state of it with
 * what a closed one paid out and what the hub holds to withdraw (the active node). A standby reads no chain: its
 * views carry none of the chain's fields, and their status comes from the stored rows (`storedLive`).
 */
export type Live = Readonly<{
  closing: boolean;
  info?: ChannelInfo;
  payouts?: readonly [bigint, bigint];
  held?: bigint;
  /** While frozen, as the client last saw it (a standby does not ask): when it last asked its peer, and why it cannot catch up. */
  catchUp?: Readonly<{ askedAt?: number; problem?: string }>;
}>;

/**
 * What the stored rows alone say of a channel's close, for a view that reads no chain: closing once its close is
 * asked for (the channel's operation) or its final state is co-signed. `channelView` takes `closed` from the mark
 * the node stores once it saw the close on chain, and shows a force close as `forceClosing` (never `disputed`, which
 * only the chain tells).
 */
export function storedLive(d: Stored, channelId: Hex): Live {
  const record = d.store.channel(channelId);
  return { closing: d.store.channelOp(channelId)?.kind === "close" || (record !== undefined && storedHead(d.store, record).isFinal) };
}

/** Every channel's id: the store's, then the ones agreed and not joined yet. */
export function channelIds(d: Stored): Hex[] {
  return [...d.store.channels().map((c) => c.ref.channelId), ...d.pending.keys()];
}

/**
 * A channel as the API shows it, from the store and `live` (see `Live`; a standby's `storedLive` when not given).
 * A channel agreed and not open yet shows its agreement.
 */
export function channelView(d: Stored, channelId: Hex, live: Live = storedLive(d, channelId)) {
  const pending = d.pending.get(channelId);
  if (pending !== undefined) {
    const asset = d.assets.byAddress(pending.chainId, pending.params.asset);
    return {
      id: channelId,
      chain: d.assets.chainName(pending.chainId),
      peer: pending.peer,
      asset: asset === undefined ? pending.params.asset : `${asset.symbol}@${asset.chain}`,
      status: "agreed",
      challengePeriodSeconds: Number(pending.params.challengePeriod),
    };
  }
  const record = d.store.channel(channelId)!;
  const me = record.myIndex;
  const them = (1 - me) as ParticipantIndex;
  const asset = d.assets.byAddress(record.ref.chainId, record.params.asset);
  const head = storedHead(d.store, record);
  const locked = head.locks.reduce((sum, l) => sum + l.amount, 0n);
  const op = d.store.channelOp(channelId);
  const { info: onChain, payouts, held } = live;
  const fmt = (v: bigint) => formatAmount(v, asset);
  const status =
    onChain?.status === "closed" || (onChain === undefined && op?.kind === "closed")
      ? "closed"
      : onChain?.status === "disputed"
        ? "disputed"
        : live.closing
          ? "closing"
          : op?.kind === "forceClose"
            ? "forceClosing"
            : "open";
  return {
    id: channelId,
    chain: d.assets.chainName(record.ref.chainId),
    peer: d.peers.peerNameOf(record.params.participants[them]),
    counterparty: record.params.participants[them],
    asset: asset === undefined ? record.params.asset : `${asset.symbol}@${asset.chain}`,
    status,
    /** When the backup copy this channel came from was taken, if it did: nothing is signed on it. */
    frozenSince: iso(d.store.frozenSince(channelId)),
    /** While frozen: when it last asked the peer for the newest state both signed, and why it cannot catch up. */
    catchUp: catchUpView(live.catchUp),
    seq: head.seq.toString(),
    challengePeriodSeconds: Number(record.params.challengePeriod),
    balance: { mine: fmt(head.balances[me]), theirs: fmt(head.balances[them]), locked: fmt(locked) },
    deposits: { mine: fmt(head.deposits[me]), theirs: fmt(head.deposits[them]) },
    onChainDeposits: onChain === undefined ? undefined : { mine: fmt(onChain.deposits[me]), theirs: fmt(onChain.deposits[them]) },
    payouts: payouts === undefined ? undefined : { mine: fmt(payouts[me]), theirs: fmt(payouts[them]) },
    /** Once closed: what the hub holds for this node in the channel's asset, to withdraw (all its channels of that asset together). */
    withdrawable: held === undefined ? undefined : fmt(held),
    /** While a force close waits out its challenge period: when it ends (the channel can settle from then on). */
    challengeDeadline: onChain?.status === "disputed" ? new Date(Number(onChain.deadline) * 1000).toISOString() : undefined,
    base: {
      balances: head.balances.map(String),
      deposits: head.deposits.map(String),
      onChainDeposits: onChain?.deposits.map(String),
      payouts: payouts?.map(String),
      withdrawable: held?.toString(),
      myIndex: me,
    },
  };
}

/** A channel by its id or a unique prefix of it (at least 6 hex digits after 0x). */
export function resolveChannel(d: Stored, id: string): Hex {
  return resolveId("channel", id, channelIds(d));
}

/** A swap by its id or a unique prefix of it. */
export function resolveSwap(store: Store, id: string): Hex {
  return resolveId("swap", id, store.swapIds());
}

/** The one of `ids` that `id` names, whole or by a unique prefix (`idPrefix`). */
function resolveId(what: "channel" | "swap", id: string, ids: readonly Hex[]): Hex {
  const lower = idPrefix(id, what);
  const matches = ids.filter((c) => c.toLowerCase().startsWith(lower));
  if (matches.length === 0) throw new NotFoundError(`no ${what} ${id}`);
  if (matches.length > 1) throw new UsageError(`${what}: ${id} matches ${matches.length} ${what}s; give more digits`);
  return matches[0]!;
}

/** Every swap the store holds, as the API shows them. */
export function swapViews(d: Stored) {
  return d.store.swapIds().map((id) => swapView(d, storedSwap(d.store, id)));
}

/** A swap as the API shows it (all of it is stored). */
export function swapView(d: Stored, s: SwapView) {
  const t = s.terms;
  const src = d.store.channel(t.source.channelId);
  const dst = d.store.channel(t.target.channelId);
  const srcAsset = src && d.assets.byAddress(t.source.chainId, src.params.asset);
  const dstAsset = dst && d.assets.byAddress(t.target.chainId, dst.params.asset);
  const phase = s.progress.phase;
  return {
    id: s.swapId,
    role: s.role,
    peer: d.peers.peerNameOf(s.role === "initiator" ? t.responder : t.initiator),
    phase: phase.kind,
    outcome: phase.kind === "done" ? phase.outcome : undefined,
    reason: phase.kind === "done" ? phase.reason : phase.kind === "settlingOnChain" ? phase.reason : undefined,
    give: formatAmount(t.give, srcAsset),
    take: formatAmount(t.take, dstAsset),
    source: t.source.channelId,
    target: t.target.channelId,
    sourceExpiry: new Date(Number(t.sourceExpiry) * 1000).toISOString(),
    targetExpiry: new Date(Number(t.targetExpiry) * 1000).toISOString(),
    since: new Date(s.progress.since).toISOString(),
  };
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function catchUpView(state: Readonly<{ askedAt?: number; problem?: string }> | undefined): { askedAt?: string; problem?: string } | undefined {
  return state === undefined ? undefined : { askedAt: iso(state.askedAt), problem: state.problem };
}

/** The configured chains as `/info` shows them, on the active node and a standby alike: a chain's id once known. */
export function configuredChains(config: NodeConfig, chainIds: ReadonlyMap<string, bigint>) {
  return Object.entries(config.chains).map(([name, c]) => ({
    name,
    chainId: chainIds.get(name)?.toString(),
    hub: c.hub,
    assets: Object.entries(c.assets).map(([symbol, a]) => ({ symbol, address: a.address, decimals: a.decimals })),
  }));
}

/** The counts `/info` shows, read from a store (the node's, or a standby's snapshot). */
export function storedCounts(store: Store) {
  return {
    channels: store.channels().length,
    /** Channels frozen because the store is a copy: nothing is signed on them until each catches up (docs/NODE.md, "Backups"). */
    frozenChannels: store.frozenCount(),
    activeSwaps: store.activeSwapIds().length,
  };
}
