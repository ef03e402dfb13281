/**
 * The channel node: one process owning a key, a store, a SwapClient, a watchtower for its own channels, the peer
 * endpoint, and (through api.ts) the control API. It drives the client's tick itself, logs a heartbeat per chain,
 * and recovers from its store on restart: channels, swaps and operations are the SwapClient's; channels agreed
 * with a peer but not yet open on chain, and refused proposals, are the node's own (JSON files beside the store).
 *
 * This class is the node's face (the API server, the CLI and the tests call it); each concern lives in a file of
 * its own: start.ts (the start and its wiring), store-health.ts (a lost store; the check before a new one),
 * ticks.ts (tick loop, heartbeat and chain checks), chain-health.ts (each chain's health), events.ts, refusals.ts, peer-book.ts (the configured peers),
 * channel-opening.ts (proposing, agreeing and joining channels), channel-ops.ts (deposit, close, withdraw),
 * views.ts (what the API shows), swaps.ts (proposing swaps and the responder's policy), store-lock.ts.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "pino";

import type { Address, Hex } from "../core/types.js";
import { ChannelOps } from "./channel-ops.js";
import { ChannelOpening } from "./channel-opening.js";
import { NodeEvents, plain, type Emit, type NodeEvent } from "./events.js";
import type { NodeConfig } from "./node-config.js";
import type { PeerLink } from "./peer.js";
import { PeerBook } from "./peer-book.js";
import { Refusals, type Refusal } from "./refusals.js";
import { openNode, type NodeHooks, type NodeParts, type StartOptions } from "./start.js";
import { NodeMetrics } from "./metrics.js";
import { StoreHealth } from "./store-health.js";
import { unlockStore } from "./store-lock.js";
import { Swaps } from "./swaps.js";
import { Ticker } from "./ticks.js";
import { formatAmount } from "./units.js";
import { Views } from "./views.js";

export { ConflictError, NotFoundError } from "./node-errors.js";
import { ConflictError } from "./node-errors.js";
export type { NodeEvent } from "./events.js";
export type { Refusal } from "./refusals.js";
export type { StartOptions } from "./start.js";

export class ChannelNode {
  readonly address: Address;
  readonly config: NodeConfig;
  readonly link: PeerLink;
  readonly startedAt = new Date();
  private readonly log: Logger;
  private readonly peerBook: PeerBook;
  private readonly refusals: Refusals;
  private readonly events: NodeEvents;
  private readonly health: StoreHealth;
  private readonly metrics: NodeMetrics;
  /** The backup being written, if one is (`backup`): one at a time, and `stop` waits for it. */
  private backingUp: Promise<void> | undefined;
  private readonly opening: ChannelOpening;
  private readonly views: Views;
  private readonly ops: ChannelOps;
  private readonly swapDesk: Swaps;
  private readonly ticker: Ticker;

  private constructor(private readonly parts: NodeParts) {
    this.address = parts.address;
    this.config = parts.config;
    this.link = parts.link;
    this.log = parts.log;
    const emit: Emit = (type, fields) => this.events.emit(type, fields);
    this.peerBook = new PeerBook(parts);
    this.refusals = new Refusals({ config: parts.config, log: parts.log, store: parts.store, emit });
    this.events = new NodeEvents({
      log: parts.log,
      refuse: (kind, peer, id, reason) => this.refusals.refuse(kind, peer, id, reason),
      peerNameOf: (address) => this.peerBook.peerNameOf(address),
      swapCounterparty: (swapId) => this.peerBook.swapCounterparty(swapId),
      describeChannel: (channelId, balances) => {
        const c = parts.store.channel(channelId);
        if (c === undefined) return undefined;
        const asset = parts.assets.byAddress(c.ref.chainId, c.params.asset);
        const other = c.myIndex === 0 ? 1 : 0;
        return {
          chain: parts.assets.chainName(c.ref.chainId),
          peer: this.peerBook.peerNameOf(c.params.participants[other]),
          mine: formatAmount(balances[c.myIndex], asset),
          theirs: formatAmount(balances[other], asset),
        };
      },
    });
    this.health = new StoreHealth([parts.store, parts.towerStore], parts.log, emit);
    const frozen = parts.store.frozenCount();
    if (frozen > 0) {
      parts.log.error(
        { event: "frozenChannels", store: parts.config.store, channels: frozen },
        `this store is a copy (a restored backup, a store moved to PostgreSQL since, or a restore frozen with channels store freeze): this node may have signed newer states of its ${frozen} channel(s) after it, ` +
          "so it signs nothing on them (no swap, payment, deposit count or cooperative close) until its peer shows it the newest state both signed: " +
          "each idle channel then catches up and goes on (a caughtUp line). One that cannot (a swap of the copy on it, a peer that does not answer, a moved store) stays frozen: " +
          "force-close it (channels channel close <id> --force), and the peer answers with any newer state, one this node signed. Channels opened from now on are not frozen",
      );
    }
    this.metrics = new NodeMetrics({ ...parts, storeLost: () => this.health.lost?.problem, peers: () => this.peerBook.peers() });
    this.events.subscribe((e) => this.metrics.onEvent(e));
    parts.chainHealth.emit = emit;
    const shared = { health: this.health, peers: this.peerBook };
    this.opening = new ChannelOpening({ ...parts, ...shared, refusals: this.refusals, emit });
    this.views = new Views({ ...parts, ...shared, startedAt: this.startedAt, pending: this.opening.pending });
    this.ops = new ChannelOps({ ...parts, ...shared, views: this.views });
    this.swapDesk = new Swaps({ ...parts, ...shared, views: this.views });
    this.ticker = new Ticker({ ...parts, health: this.health, joinPending: () => this.opening.joinPending() });
  }

  /**
   * Connects to every chain, opens the store (refusing to start a new one where this node had one, see
   * `requireNewStore`, and to run on a store another node runs on), starts the peer endpoint and the tick loop.
   */
  static async start(config: NodeConfig, key: Hex, log: Logger, options: StartOptions = {}): Promise<ChannelNode> {
    // Files this node writes (store, log of refusals, agreements) are its owner's alone.
    process.umask(0o077);
    return openNode(config, key, log, options, (parts) => {
      const node = new ChannelNode(parts);
      return { node, hooks: node.hooks() };
    });
  }

  /** What the start calls on this node (its handlers and its loops). */
  private hooks(): NodeHooks {
    return {
      // Every signature of this node goes through the signer, which asks this first: once its store is lost, none is made.
      requireStore: () => this.health.requireStore(),
      peerUrlFor: (e) => this.peerBook.peerUrlFor(e),
      onChannelProposal: (signed) => this.opening.onChannelProposal(signed),
      swapPolicy: (terms, context) => this.swapDesk.swapPolicy(terms, context),
      onClientEvent: (e) => this.events.onClientEvent(e),
      onFeeEvent: (chain, e) => this.events.emit("chainTx", { chain, ...(plain(e) as object) }),
      run: () => {
        this.loadState();
        this.ticker.start();
      },
      beat: () => this.ticker.startBeat(),
    };
  }

  // ------------------------------------------------------------------ lifecycle

  /** Stops ticking, lets the step in flight commit, closes the peer endpoint and the store. */
  async stop(): Promise<void> {
    await this.ticker.stop();
    await this.parts.client.idle().catch(() => undefined); // the step in flight commits and sends
    await this.parts.tower.idle(); // what its last polls started, before its store closes (bounded)
    await this.backingUp; // a copy cut short by the exit would be left half written (it is removed if it fails)
    await this.link.close();
    for (const s of [this.parts.store, this.parts.towerStore]) {
      try {
        s.close();
      } catch (error) {
        // A lost store may not take its last writes: it was said already, the node stops all the same.
        this.log.error({ event: "storeCloseFailed", store: s.path, error: (error as Error).message.split("\n")[0] }, `could not close the store ${s.path}`);
      }
    }
    for (const p of this.parts.providers) p.destroy();
    if (this.parts.storeLock !== undefined) unlockStore(this.parts.storeLock);
    this.log.info({ event: "stopped" }, "node stopped");
  }

  // ------------------------------------------------------------------ events

  subscribe(fn: (e: NodeEvent) => void): () => void {
    return this.events.subscribe(fn);
  }

  // ------------------------------------------------------------------ node state beside the store

  private loadState(): void {
    this.opening.load();
    this.refusals.load();
  }

  // ------------------------------------------------------------------ peers and info

  peers() {
    return this.peerBook.peers();
  }

  /** The node's address, chains, counts and policy; throws the StoreLostError (503) once its store is lost. */
  info() {
    return this.views.info();
  }

  /**
   * Writes a consistent copy of the node's store to the new file `file` (relative to the configuration's folder),
   * its channels marked frozen in the copy (Store.backupTo; docs/NODE.md, "Backups"). The node goes on meanwhile.
   */
  async backup(file: string) {
    this.health.requireStore();
    if (this.parts.term !== undefined) {
      throw new ConflictError("store: this node is kept in PostgreSQL; back up the database with its own tools (pg_dump, or a replica), not with channels backup");
    }
    const target = resolve(this.parts.config.folder, file);
    if (existsSync(target)) {
      if (statSync(target).isDirectory()) throw new ConflictError(`file: ${target} is a folder; name a new file in it`);
      throw new ConflictError(`file: ${target} exists already; a backup never overwrites a file`);
    }
    // A folder on the way that is a file: say so, rather than mkdir's EEXIST.
    for (let up = dirname(target); up !== dirname(up); up = dirname(up)) {
      if (existsSync(up)) {
        if (!statSync(up).isDirectory()) throw new ConflictError(`file: ${up} is a file, not a folder; ${target} cannot be made under it`);
        break;
      }
    }
    // One at a time: each holds a read of the live store for the whole copy (its log cannot be trimmed meanwhile) and
    // a thread of the pool the node's own file and name lookups use.
    if (this.backingUp !== undefined) throw new ConflictError("a backup is being written already; ask again once it is done");
    let frozenChannels: number;
    const writing = (async () => {
      mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
      return this.parts.store.backupTo(target);
    })();
    this.backingUp = writing.then(() => undefined, () => undefined);
    try {
      frozenChannels = await writing;
    } catch (error) {
      throw new ConflictError(`file: cannot write the copy to ${target}: ${(error as Error).message.split("\n")[0]}`);
    } finally {
      this.backingUp = undefined;
    }
    this.log.info({ event: "backup", file: target, frozenChannels }, `store copied to ${target} (${frozenChannels} channel(s) frozen in the copy)`);
    return { file: target, frozenChannels, takenAt: new Date().toISOString() };
  }

  /** The node's metrics in the Prometheus text format (docs/NODE.md, "Metrics"), and its content type. */
  scrapeMetrics(): Promise<{ contentType: string; text: string }> {
    return this.metrics.scrape();
  }

  /** Whether GET /metrics is served without the API token (`api.metricsPublic`). */
  get metricsPublic(): boolean {
    return this.parts.config.api.metricsPublic;
  }

  /**
   * Ends the hold a reorganisation deeper than its confirmations put on chain `name` (docs/NODE.md, "Chain health"):
   * the operator's word that the chain, its channels' deposits and the confirmations were looked at. Its health now.
   */
  releaseChain(name: string) {
    this.health.requireStore();
    return this.parts.chainHealth.release(name);
  }

  // ------------------------------------------------------------------ channels

  channelIds(): Hex[] {
    return this.views.channelIds();
  }

  async channels() {
    return Promise.all(this.channelIds().map((id) => this.views.channelView(id, false)));
  }

  /** A channel by its id or a unique prefix of it. */
  async channel(id: string) {
    return this.views.channelView(this.views.resolveChannel(id));
  }

  /**
   * Opens a channel with a peer: proposes its parameters (a fresh nonce) to the peer's node, which checks them
   * against its policy and remembers them; then opens it on chain with our deposit and joins it once final.
   */
  async openChannel(args: { peer: string; asset: string; deposit: string; challengePeriodSeconds?: number }) {
    return this.views.channelView(await this.opening.open(args));
  }

  /**
   * Adds our deposit on chain; the ledger counts it once final (participant 0's tick offers the count in a co-signed
   * batch).
   */
  async deposit(id: string, amountText: string) {
    return this.ops.deposit(id, amountText);
  }

  /**
   * Closes the channel: cooperatively (no new swap on it, the swaps using it undone or completed, then its final state
   * co-signed and landed) or on chain with `force`, together with every channel a swap in flight ties to it. The
   * peer's other channels stay open.
   */
  async close(id: string, force: boolean) {
    return this.ops.close(id, force);
  }

  /** Pulls what the hub owes us in the channel's asset (a payout that could not be pushed). */
  async withdraw(id: string) {
    return this.ops.withdraw(id);
  }

  // ------------------------------------------------------------------ swaps

  swaps() {
    return this.views.swaps();
  }

  swap(id: string) {
    return this.views.swap(id);
  }

  refused(): readonly Refusal[] {
    return this.refusals.all();
  }

  /**
   * Proposes a swap to a peer: gives `give` (`10 SRC@source`) on our channel with the peer holding that asset, for
   * `take` on the one holding the other. Everything is checked before anything is signed.
   */
  async propose(args: { peer: string; give: string; take: string; source?: string; target?: string }) {
    return this.swapDesk.propose(args);
  }
}
