/**
 * Opening channels with peers: this node's proposals (`open`), its answers to a peer's (`onChannelProposal`), and the
 * channels agreed and not yet open on chain (`<store>.pending.json`), joined once open at their chain's final block.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { ZeroAddress } from "ethers";

import { decode, encode } from "../core/codec.js";
import { channelIdOf } from "../core/eip712.js";
import { ChannelSdkError } from "../core/errors.js";
import { sameAddress, type Address, type ChannelParams, type Hex } from "../core/types.js";
import { requireWalletHolds } from "./channel-ops.js";
import { UsageError } from "./errors.js";
import type { Emit } from "./events.js";
import { ConflictError } from "./node-errors.js";
import { PeerLink, signProposal, type ProposalAnswer, type SignedProposal } from "./peer.js";
import type { PeerBook } from "./peer-book.js";
import type { Refusals } from "./refusals.js";
import { isPostgresUrl } from "../store/postgres.js";
import type { Store } from "../store/store.js";
import type { NodeParts } from "./start.js";
import type { StoreHealth } from "./store-health.js";
import { formatAmount, units } from "./units.js";

/** A channel agreed with a peer and not joined yet; `ours` when this node opens it (and funds it). */
export type Pending = { chainId: bigint; params: ChannelParams; peer: string; since: number; ours?: boolean };
/** Channels a peer may have agreed and not opened on chain yet; past it, its proposals are refused. */
const MAX_PENDING_PER_PEER = 16;
/** How long a channel a peer proposed may stay unopened before the agreement is dropped. */
const PENDING_TTL_MS = 24 * 3600 * 1000;

/** The channels agreed and not joined yet as a node kept in PostgreSQL keeps them: a row of its store. */
export function storedPending(store: Store): Map<Hex, Pending> {
  return new Map(store.batched<[Hex, Pending][]>("pending").get("all") ?? []);
}

export type OpeningDeps = Pick<NodeParts, "config" | "address" | "signer" | "log" | "store" | "client" | "assets" | "adapters" | "chainHealth"> &
  Readonly<{ health: StoreHealth; peers: PeerBook; refusals: Refusals; emit: Emit }>;

export class ChannelOpening {
  private readonly agreed = new Map<Hex, Pending>();
  /** Agreed channels read not open yet: the final block they were read at. */
  private readonly closedAt = new Map<Hex, number>();

  constructor(private readonly d: OpeningDeps) {}

  /** The channels agreed with peers and not joined yet. */
  get pending(): ReadonlyMap<Hex, Pending> {
    return this.agreed;
  }

  /** Reads the agreements kept: the store's row (a node kept in PostgreSQL), or the file beside the store, if any. */
  load(): void {
    if (isPostgresUrl(this.d.config.store)) {
      this.agreed.clear();
      for (const [id, p] of storedPending(this.d.store)) this.agreed.set(id, p);
      return;
    }
    const file = `${this.d.config.store}.pending.json`;
    if (existsSync(file)) {
      const loaded = decode<[Hex, Pending][]>(readFileSync(file, "utf8"));
      this.agreed.clear();
      for (const [id, p] of loaded) this.agreed.set(id, p);
    }
  }

  private savePending(): void {
    if (isPostgresUrl(this.d.config.store)) return this.d.store.saveBatched("pending", "all", [...this.agreed]);
    const file = `${this.d.config.store}.pending.json`;
    writeFileSync(`${file}.tmp`, encode([...this.agreed]));
    renameSync(`${file}.tmp`, file);
  }

  /**
   * Opens a channel with a peer: proposes its parameters (a fresh nonce) to the peer's node, which checks them
   * against its policy and remembers them; then opens it on chain with our deposit and joins it once final.
   * Returns the channel's id.
   */
  async open(args: { peer: string; asset: string; deposit: string; challengePeriodSeconds?: number }): Promise<Hex> {
    this.d.health.requireStore();
    const peer = this.d.peers.peer(args.peer);
    const asset = this.d.assets.asset(args.asset, "asset");
    const amount = units(args.deposit, asset.decimals, "deposit");
    this.d.chainHealth.require(asset.chainId);
    const adapter = this.d.adapters.get(asset.chainId)!;
    const params: ChannelParams = {
      participants: [this.d.address, peer.address as Address],
      payees: [ZeroAddress as Address, ZeroAddress as Address],
      asset: asset.address as Address,
      challengePeriod: BigInt(args.challengePeriodSeconds ?? this.d.config.timing.challengePeriodSeconds),
      nonce: BigInt(`0x${randomBytes(8).toString("hex")}`),
    };
    await requireWalletHolds(this.d, asset, amount, "deposit");
    // Our own policy first: a channel we would refuse to join must never be funded.
    const outside = this.challengePeriodOutside(params.challengePeriod);
    if (outside !== undefined) throw new UsageError(`challengePeriodSeconds: ${outside}`);
    const signed = signProposal(this.d.signer, { chainId: asset.chainId, hub: adapter.hubAddress as Address, params });
    const answer = await PeerLink.propose(peer.url, signed);
    if (!answer.accepted) throw new ConflictError(`${peer.name} refused the channel: ${answer.reason}`);
    // Kept before anything goes on chain: a crash after the transaction still finds and joins the channel.
    const channelId = channelIdOf(asset.chainId, adapter.hubAddress, params);
    this.agreed.set(channelId, { chainId: asset.chainId, params, peer: peer.name, since: Date.now(), ours: true });
    this.savePending();
    const opened = amount > 0n ? await adapter.openAndDeposit(params, 0, amount) : await adapter.open(params);
    if (opened.toLowerCase() !== channelId.toLowerCase()) throw new ChannelSdkError(`the hub derived channel id ${opened}, expected ${channelId}`);
    this.d.log.info({ event: "channelOpened", channelId, chain: asset.chain, peer: peer.name, deposit: formatAmount(amount, asset) }, "channel opened on chain");
    await this.joinPending();
    this.d.emit("channelOpened", { channelId, peer: peer.name, asset: `${asset.symbol}@${asset.chain}` });
    return channelId;
  }

  /** A peer's proposal: accepted if the peer, the chain's hub, the asset and the challenge period are in policy. */
  async onChannelProposal(signed: SignedProposal): Promise<ProposalAnswer> {
    const signer = PeerLink.signerOf(signed);
    const known = signer !== undefined && sameAddress(signer, signed.from) && Object.values(this.d.config.peers).some((p) => sameAddress(p.address, signer));
    const peerName = known ? this.d.peers.peerNameOf(signer) : undefined;
    const refuse = (reason: string): ProposalAnswer => {
      this.d.refusals.refuse("channel", peerName, "", reason);
      return { accepted: false, reason };
    };
    if (this.d.health.lost !== undefined) return { accepted: false, reason: "this node's store is lost; it agrees to nothing" };
    if (signer === undefined || !sameAddress(signer, signed.from)) return refuse("the proposal is not signed by its sender");
    if (!known) return refuse(`${signer} is not a configured peer`);
    const { chainId, hub, params } = signed.proposal;
    const adapter = this.d.adapters.get(BigInt(chainId));
    if (adapter === undefined) return refuse(`chain ${chainId} is not one of this node's chains`);
    if (!sameAddress(adapter.hubAddress, hub)) return refuse(`hub ${hub} is not this node's hub on chain ${chainId}`);
    const held = this.d.chainHealth.hold(BigInt(chainId));
    if (held !== undefined) return refuse(held);
    if (!sameAddress(params.participants[0], signer) || !sameAddress(params.participants[1], this.d.address)) {
      return refuse("the participants are not the proposer and this node, in that order");
    }
    if (!sameAddress(params.payees[0], ZeroAddress) || !sameAddress(params.payees[1], ZeroAddress)) return refuse("payees must be the participants themselves");
    const asset = this.d.assets.byAddress(BigInt(chainId), params.asset);
    const accepted = asset !== undefined && this.d.config.policy.channels.accept.includes(`${asset.symbol}@${asset.chain}`);
    if (!accepted) return refuse(`channels of ${asset === undefined ? params.asset : `${asset.symbol}@${asset.chain}`} are not accepted (policy.channels.accept)`);
    const outside = this.challengePeriodOutside(params.challengePeriod);
    if (outside !== undefined) return refuse(`challenge period ${outside}`);
    const channelId = channelIdOf(BigInt(chainId), adapter.hubAddress, params);
    if (!this.agreed.has(channelId) && this.d.store.channel(channelId) === undefined) {
      const waiting = [...this.agreed.values()].filter((p) => p.peer === peerName && p.ours !== true).length;
      if (waiting >= MAX_PENDING_PER_PEER) return refuse(`${waiting} channels agreed and not opened yet; open those first`);
      this.agreed.set(channelId, { chainId: BigInt(chainId), params, peer: peerName!, since: Date.now() });
      this.savePending();
      this.d.log.info({ event: "channelAgreed", channelId, peer: peerName, asset: `${asset!.symbol}@${asset!.chain}` }, "agreed to a channel");
      this.d.emit("channelAgreed", { channelId, peer: peerName });
    }
    return { accepted: true };
  }

  /** Why a challenge period is outside policy.channels' bounds, or undefined if it is within them. */
  private challengePeriodOutside(seconds: bigint): string | undefined {
    const { minChallengePeriodSeconds: min, maxChallengePeriodSeconds: max } = this.d.config.policy.channels;
    return seconds < BigInt(min) || seconds > BigInt(max) ? `${seconds} is outside ${min}..${max} (policy.channels)` : undefined;
  }

  /**
   * Joins the agreed channels that are open at their chain's final block (both sides do this with the same
   * parameters). The final block is asked once per chain, and a channel not open at it is read again only once the
   * final block moved on.
   */
  async joinPending(): Promise<void> {
    const finals = new Map<bigint, number>();
    for (const [channelId, p] of [...this.agreed]) {
      const adapter = this.d.adapters.get(p.chainId)!;
      try {
        let final = finals.get(p.chainId);
        if (final === undefined) finals.set(p.chainId, (final = await adapter.finalBlock()));
        const unchanged = this.closedAt.get(channelId) === final;
        const info = unchanged ? undefined : await adapter.channelInfo(channelId, final);
        if (info?.status !== "open") {
          this.closedAt.set(channelId, final);
          if (p.ours !== true && Date.now() - p.since > PENDING_TTL_MS) {
            this.agreed.delete(channelId); // the peer never opened it
            this.closedAt.delete(channelId);
            this.savePending();
          }
          continue;
        }
        const counterparty = p.params.participants.find((a) => !sameAddress(a, this.d.address))!;
        // The client hands the channel to its watchtower (`watchtower.guard`) before it signs anything for it.
        await this.d.client.addChannel(p.chainId, p.params, { counterparty, asset: p.params.asset });
        this.agreed.delete(channelId);
        this.closedAt.delete(channelId);
        this.savePending();
        this.d.log.info({ event: "channelJoined", channelId }, "joined the channel");
        this.d.emit("channelJoined", { channelId });
      } catch (error) {
        this.d.log.debug({ event: "joinPending", channelId, error: (error as Error).message }, "channel not joined yet");
      }
    }
  }
}
