/**
 * The channel node: one process owning a key, a store, a SwapClient, a watchtower for its own channels, the peer
 * endpoint, and (through api.ts) the control API. It drives the client's tick itself, logs a heartbeat per chain,
 * and recovers from its store on restart: channels, swaps and operations are the SwapClient's; channels agreed
 * with a peer but not yet open on chain, and refused proposals, are the node's own (JSON files beside the store).
 */
import { appendFileSync, closeSync, existsSync, linkSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { Contract, type JsonRpcProvider, Wallet, ZeroAddress } from "ethers";
import type { Logger } from "pino";

import { decodePackedOpening } from "../chain/events.js";
import { HubAdapter } from "../chain/hub.js";
import { rpcProvider } from "../chain/provider.js";
import { decode, encode } from "../core/codec.js";
import { channelIdOf } from "../core/eip712.js";
import { EnvelopeAuth } from "../core/envelope-auth.js";
import { ChannelSdkError, InsufficientBalanceError } from "../core/errors.js";
import type { SwapTerms } from "../core/swap.js";
import { DeltaTable } from "../core/timing.js";
import { sameAddress, type Address, type ChannelParams, type Hex, type ParticipantIndex } from "../core/types.js";
import type { ClientEvent, SwapPhase, SwapView } from "../coordinator/phases.js";
import { keySigner, type StateSigner } from "../coordinator/signer.js";
import { requireDistinctChannels, SwapClient, type PolicyContext } from "../coordinator/swap-client.js";
import type { Transport } from "../coordinator/transport.js";
import { Store, StoreLostError } from "../store/store.js";
import { Watchtower } from "../watchtower/watchtower.js";
import { own } from "./config.js";
import { UsageError } from "./errors.js";
import type { NodeConfig, SwapPair } from "./node-config.js";
import { PeerFailures } from "./peer-failures.js";
import { DESCRIPTORS_KEPT, PeerLink, signProposal, type ProposalAnswer, type SignedProposal } from "./peer.js";
import { lockStore, unlockStore, type StoreLock } from "./store-lock.js";
import { AssetBook, formatAmount, units, type AssetInfo } from "./units.js";

/** A request names something this node does not know (a channel, a swap, a peer): the API answers 404. */
export class NotFoundError extends ChannelSdkError {}
/** A request the node refuses as it stands (too little free balance, a channel busy or closed): the API answers 409. */
export class ConflictError extends ChannelSdkError {}

export type NodeEvent = Readonly<{ time: string; type: string; [k: string]: unknown }>;
/** A channel agreed with a peer and not joined yet; `ours` when this node opens it (and funds it). */
type Pending = { chainId: bigint; params: ChannelParams; peer: string; since: number; ours?: boolean };
/** Refused proposals kept for `swap list --refused` and the API. */
const MAX_REFUSALS = 1_000;
/** Channels a peer may have agreed and not opened on chain yet; past it, its proposals are refused. */
const MAX_PENDING_PER_PEER = 16;
/** How long a channel a peer proposed may stay unopened before the agreement is dropped. */
const PENDING_TTL_MS = 24 * 3600 * 1000;
export type Refusal = Readonly<{ time: string; kind: "swap" | "channel"; peer: string; id: string; reason: string }>;
/** How many of this address's channel openings per chain (the newest) a start with no store reads further. */
const MAX_OPENINGS_CHECKED = 32;

export type StartOptions = Readonly<{
  /**
   * Start with a new, empty store although the files beside it or the chains say this node had channels
   * (`channels node start --allow-empty-store`): those channels are then defended only on chain, by the watchtower.
   */
  allowEmptyStore?: boolean;
}>;

/** How long a chain's time reading is reused (moved on by the wall clock) before the chain is asked again. */
const CHAIN_TIME_CACHE_MS = 1_000;

export class ChannelNode {
  readonly address: Address;
  private readonly chainIds = new Map<string, bigint>();
  private readonly adapters = new Map<bigint, HubAdapter>();
  private readonly subscribers = new Set<(e: NodeEvent) => void>();
  private pending = new Map<Hex, Pending>();
  private refusals: Refusal[] = [];
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** The heartbeat in flight: the next one is skipped until it ends, and stop() waits for it. */
  private beating: Promise<void> | undefined;
  private ticking: Promise<void> | undefined;
  private stopping = false;
  private lastTickError = "";
  /** The last on-chain wait logged per channel: a wait repeated by every tick is logged once. */
  private readonly lastWait = new Map<string, string>();
  /** Payouts of closed channels, read from their close event once. */
  private readonly paidOut = new Map<Hex, readonly [bigint, bigint]>();
  readonly startedAt = new Date();
  /** Set once the store or the tower's store is found lost: from then on nothing is signed (see `storeLost`). */
  private lost: StoreLostError | undefined;
  /** The responder swaps in progress in the store, as read for the first swap of a step (`storedResponderSwaps`). */
  private responderCount: { first: SwapTerms; count: number } | undefined;
  /** The stores already copied out after being lost (path -> copy). */
  private readonly rescued = new Map<string, string>();

  private constructor(
    readonly config: NodeConfig,
    private readonly signer: StateSigner,
    private readonly log: Logger,
    private readonly providers: JsonRpcProvider[],
    private readonly store: Store,
    private readonly towerStore: Store,
    private readonly tower: Watchtower,
    readonly link: PeerLink,
    private client: SwapClient,
    private readonly assets: AssetBook,
    /** This node's lock of its store's file (`lockStore`), given up by `stop`. */
    private readonly storeLock: StoreLock,
  ) {
    this.address = signer.address as Address;
  }

  /**
   * Connects to every chain, opens the store (refusing to start a new one where this node had one, see
   * `requireNewStore`, and to run on a store another node runs on), starts the peer endpoint and the tick loop.
   */
  static async start(config: NodeConfig, key: Hex, log: Logger, options: StartOptions = {}): Promise<ChannelNode> {
    // Files this node writes (store, log of refusals, agreements) are its owner's alone.
    process.umask(0o077);
    return ChannelNode.open(config, key, log, options);
  }

  private static async open(config: NodeConfig, key: Hex, log: Logger, options: StartOptions): Promise<ChannelNode> {
    let node: ChannelNode | undefined;
    const keyed = keySigner(key);
    // Every signature of this node (states, messages, swap terms, channel proposals) goes through here: once its
    // store is lost, none is made.
    const signer: StateSigner = {
      address: keyed.address,
      publicKey: keyed.publicKey,
      sign: (digest) => {
        node?.requireStore();
        return keyed.sign(digest);
      },
      agree: (publicKey) => {
        node?.requireStore();
        return keyed.agree(publicKey);
      },
    };
    const providers: JsonRpcProvider[] = [];
    const chains: { name: string; adapter: HubAdapter }[] = [];
    for (const [name, c] of Object.entries(config.chains)) {
      const provider = rpcProvider(c.rpcUrl);
      providers.push(provider);
      let adapter: HubAdapter;
      if ((await provider.getCode(c.hub).catch(() => undefined)) === "0x") {
        for (const p of providers) p.destroy();
        throw new UsageError(`chains.${name}.hub: no contract at ${c.hub} on ${new URL(c.rpcUrl).origin} (deployed to another chain, or the chain was restarted?)`);
      }
      try {
        // A chain's time read within the last second is reused, moved on by the wall clock: every proposal, envelope
        // of terms and acceptance checks the timing rules against both chains' times, and a JSON-RPC round trip for
        // each was most of a swap's latency through the node (the rules' skew bounds are tens of seconds).
        adapter = await HubAdapter.connect(c.hub, new Wallet(key, provider), { confirmations: c.confirmations, timeCacheMs: CHAIN_TIME_CACHE_MS });
      } catch (error) {
        for (const p of providers) p.destroy();
        throw new ChannelSdkError(`chains.${name}: cannot use the hub ${c.hub} at ${new URL(c.rpcUrl).origin}: ${(error as Error).message.split("\n")[0]}`);
      }
      chains.push({ name, adapter });
    }
    // Undone in reverse if the start fails after this point.
    const undo: (() => unknown)[] = [() => providers.forEach((p) => p.destroy())];
    try {
      return await ChannelNode.openStores(config, log, options, signer, providers, chains, undo, (n) => (node = n));
    } catch (error) {
      for (const step of undo.reverse()) {
        try {
          await step();
        } catch {
          // the start failed already: that error is the one to report
        }
      }
      throw error;
    }
  }

  /** The rest of `open`, from the store on: each thing started pushes its undoing onto `undo`. */
  private static async openStores(
    config: NodeConfig,
    log: Logger,
    options: StartOptions,
    signer: StateSigner,
    providers: JsonRpcProvider[],
    chains: readonly { name: string; adapter: HubAdapter }[],
    undo: (() => unknown)[],
    made: (node: ChannelNode) => void,
  ): Promise<ChannelNode> {
    if (!existsSync(config.store)) await ChannelNode.requireNewStore(config, signer.address as Address, chains, log, options.allowEmptyStore === true);
    // One node per store: two processes signing from one store could sign two states with one sequence number.
    const storeLock = lockStore(config.store);
    undo.push(() => unlockStore(storeLock));
    const store = new Store(config.store);
    undo.push(() => store.close());
    // The tower's store is fed by the client (after each group of the client's store is on disk) and filled again
    // from the client's store at every start (`importFrom` below): it need not sync every write of its own. A power
    // cut loses at most its last writes, which the next start brings back from the client's synced store; a crash of
    // the process loses nothing (SQLite's log is in the file system's cache).
    const towerStore = new Store(`${config.store}.tower`, { durability: "crash" });
    undo.push(() => towerStore.close());
    const tower = new Watchtower(
      towerStore,
      chains.map(({ name, adapter }) => ({
        chain: adapter,
        confirmations: config.chains[name]!.confirmations,
        clockSkewSeconds: BigInt(config.chains[name]!.clockSkewSeconds),
        claimWindowSeconds: 900n,
      })),
      (e) => log.info({ event: "watchtower", ...(plain(e) as object) }, `watchtower: ${e.type}`),
    );
    let node: ChannelNode | undefined;
    const peers = new Set(Object.values(config.peers).map((p) => p.address.toLowerCase()));
    /** Opens envelopes peers authenticated with the key each shares with this node (at the door and in failures). */
    const envelopeAuth = new EnvelopeAuth(signer);
    const link = await PeerLink.start({
      host: config.peer.host,
      port: config.peer.port,
      publicUrl: config.peer.publicUrl,
      limits: config.peer.limits,
      isPeer: (address) => peers.has(address),
      auth: envelopeAuth,
      route: (e) => node?.peerUrlFor(e),
      onProposal: async (p) => (node === undefined ? { accepted: false, reason: "starting" } : node.onChannelProposal(p)),
    });
    undo.push(() => link.close());
    if (link.connectionCap < config.peer.limits.maxConnections) {
      log.warn(
        { event: "peerLimits", maxConnections: link.connectionCap },
        `peer endpoint: at most ${link.connectionCap} connections (peer.limits.maxConnections ${config.peer.limits.maxConnections}), so that ${DESCRIPTORS_KEPT} of this process's open-files limit stay for the chains, the store and the API; raise the limit (ulimit -n) for more`,
      );
    }
    const deltas = new DeltaTable(
      new Map(
        chains.map(({ name, adapter }) => {
          const c = config.chains[name]!;
          return [adapter.chainId, { chainId: adapter.chainId, finalitySeconds: BigInt(c.finalitySeconds), inclusionSeconds: BigInt(c.inclusionSeconds), clockSkewSeconds: BigInt(c.clockSkewSeconds) }];
        }),
      ),
    );
    const t = config.timing;
    // Every failure to handle a received message is counted per configured peer (peer-failures.ts): the envelope is
    // seen here, around the client's handler, and a line that never decoded comes through the link's onError.
    const failures = new PeerFailures(log, new Map(Object.entries(config.peers).map(([name, p]) => [p.address.toLowerCase(), name])), Date.now, envelopeAuth);
    link.onError = (error) => failures.failed(error);
    const transport: Transport = {
      send: (e) => link.send(e),
      sendMany: (es) => link.sendMany(es),
      listen: (handler) =>
        link.listen(async (e) => {
          try {
            await handler(e);
          } catch (error) {
            failures.failed(error, e);
            return;
          }
          failures.handled(e);
        }),
      close: () => link.close(),
    };
    const client = new SwapClient({
      signer,
      store,
      transport,
      chains: chains.map((c) => c.adapter),
      deltas,
      minTargetWindow: BigInt(t.minTargetWindowSeconds),
      onChainMargin: BigInt(t.onChainMarginSeconds),
      resendIntervalMs: t.resendMs,
      confirmationTimeoutMs: t.confirmationTimeoutMs,
      channelPolicy: {
        minChallengePeriod: BigInt(config.policy.channels.minChallengePeriodSeconds),
        maxChallengePeriod: BigInt(config.policy.channels.maxChallengePeriodSeconds),
      },
      policy: (terms, context) => (node === undefined ? "starting" : node.swapPolicy(terms, context)),
      onEvent: (e) => node?.onClientEvent(e),
      watchtower: tower,
    });
    const withIds: Record<string, (typeof config.chains)[string] & { chainId: bigint }> = {};
    for (const { name, adapter } of chains) withIds[name] = { ...config.chains[name]!, chainId: adapter.chainId };
    node = new ChannelNode(config, signer, log, providers, store, towerStore, tower, link, client, new AssetBook(withIds), storeLock);
    made(node);
    link.onLimit = (turnedAway) => {
      const total = Object.values(turnedAway).reduce((x, y) => x + y, 0);
      const which = Object.entries(turnedAway).map(([limit, n]) => `${limit} ${n}`).join(", ");
      log.warn({ event: "peerLimits", turnedAway }, `peer endpoint: turned away ${total} connections or requests at its limits (${which}; peer.limits)`);
    };
    for (const { name, adapter } of chains) {
      node.chainIds.set(name, adapter.chainId);
      node.adapters.set(adapter.chainId, adapter);
    }
    tower.importFrom(store);
    // Secrets its store kept from before reveal rules that the client's store does not know: never revealed by the
    // tower unless a chain shows them revealed. Said once per start.
    const held = tower.heldWithoutWord(store);
    if (held > 0) {
      log.warn(
        { event: "towerSecretsHeld", secrets: held },
        `watchtower: ${held} secret(s) in ${config.store}.tower have no word from the client's store; held (revealed only once a chain shows them)`,
      );
    }
    node.loadState();
    node.schedule();
    node.heartbeat = setInterval(() => node!.startBeat(), t.heartbeatSeconds * 1000);
    log.info(
      { event: "started", address: node.address, peerUrl: link.url, chains: Object.fromEntries(node.chainIds), channels: store.channels().length, activeSwaps: store.activeSwapIds().length },
      "node started",
    );
    node.startBeat();
    return node;
  }

  /**
   * Before a store is created where none is: refuses (a UsageError, one line) when what is left beside it or on the
   * chains says this node had one there, i.e. it was deleted or moved, unless `allow`. Evidence that cannot come
   * from a first start: the watchtower's store (`<store>.tower`, made at the first start with the store) holding
   * channels; channels agreed with peers (`<store>.pending.json`); a copy rescued from a lost store
   * (`<store>.rescued-*`, see `storeLost`); a channel this address opened (the opening transaction sent from it, so
   * that nobody else can make a new node refuse to start by opening channels naming it) that is not closed on
   * chain. The refusals file is no evidence: a node refuses proposals before it has any channel.
   */
  private static async requireNewStore(
    config: NodeConfig,
    address: Address,
    chains: readonly { name: string; adapter: HubAdapter }[],
    log: Logger,
    allow: boolean,
  ): Promise<void> {
    const found: string[] = [];
    const tower = `${config.store}.tower`;
    if (existsSync(tower)) {
      try {
        const s = new Store(tower);
        const n = s.channels().length;
        s.close();
        if (n > 0) found.push(`its watchtower's store ${tower} holds ${n} channel(s)`);
      } catch (error) {
        found.push(`its watchtower's store ${tower} is there (unreadable: ${(error as Error).message.split("\n")[0]})`);
      }
    }
    const pendingFile = `${config.store}.pending.json`;
    if (existsSync(pendingFile)) {
      let n: number | undefined;
      try {
        n = decode<unknown[]>(readFileSync(pendingFile, "utf8")).length;
      } catch {
        n = undefined;
      }
      if (n !== 0) found.push(`${pendingFile} holds ${n ?? "unreadable"} channel agreement(s)`);
    }
    const rescued = existsSync(dirname(config.store)) ? readdirSync(dirname(config.store)).filter((f) => f.startsWith(`${basename(config.store)}.rescued-`)) : [];
    if (rescued.length > 0) found.push(`a copy rescued from the lost store is at ${dirname(config.store)}/${rescued.sort().at(-1)}`);
    for (const { name, adapter } of chains) {
      try {
        const open = await ChannelNode.openedAndNotClosed(adapter, address);
        if (open > 0) found.push(`${open} channel(s) it opened on ${name} are not closed on chain`);
      } catch (error) {
        log.warn({ event: "openingsUnread", chain: name, error: (error as Error).message.split("\n")[0] }, `could not read the channels opened on ${name}; going by the files beside the store`);
      }
    }
    if (found.length === 0) return;
    if (allow) {
      log.warn({ event: "emptyStore", store: config.store, found }, `starting with a new store although ${found.join("; ")} (--allow-empty-store)`);
      return;
    }
    throw new UsageError(
      `store: ${config.store} does not exist, but ${found.join("; ")}. Restore the store from a backup (or that copy), or start ` +
        "with --allow-empty-store to begin a new one: its channels are then defended only on chain, by the watchtower",
    );
  }

  /**
   * How many channels `address` opened on the adapter's hub (one log query for the hub's ChannelOpened events, the
   * newest MAX_OPENINGS_CHECKED naming it as a participant read further) and that are not closed.
   */
  private static async openedAndNotClosed(adapter: HubAdapter, address: Address): Promise<number> {
    const openings = await adapter.hub.queryFilter(adapter.hub.filters.ChannelOpened(), 0, "latest");
    const ours = openings.filter((e) => decodePackedOpening(e.args.packed).participants.some((p) => sameAddress(p, address))).slice(-MAX_OPENINGS_CHECKED);
    let open = 0;
    for (const e of ours) {
      const tx = await adapter.provider.getTransaction(e.transactionHash);
      if (tx === null || !sameAddress(tx.from, address)) continue;
      if ((await adapter.channelInfo(e.args.channelId as Hex)).status !== "closed") open++;
    }
    return open;
  }

  // ------------------------------------------------------------------ the store, lost

  /** Throws the StoreLostError if this node's store (or its tower's) is lost: nothing is signed from then on. */
  private requireStore(): void {
    if (this.lost !== undefined) throw this.lost;
  }

  /**
   * Notices a lost store, this node's or its watchtower's (`Store.fileProblem`: deleted, replaced, or a write that
   * failed for the file's reason); with `probe`, also makes each take a write (an idle node has no other).
   */
  private checkStore(probe: boolean): void {
    if (this.lost !== undefined) return;
    for (const s of [this.store, this.towerStore]) {
      let problem = s.fileProblem();
      if (problem === undefined && probe) {
        try {
          s.probe();
        } catch {
          problem = s.fileProblem(); // another reason (the write lock held by a reader for long) is not the file's
        }
      }
      if (problem !== undefined) return this.storeLost(new StoreLostError(s.path, problem));
    }
  }

  /**
   * The store is lost. The node goes on running, so that its watchtower and the on-chain paths (force close,
   * claims) still defend its channels, but signs nothing more: not a state, a message, swap terms or a proposal
   * (the signer refuses, `requireStore`), since what it would sign could not be kept and a restart could sign another
   * state with the same number. It says so at error level, on the event stream and through the API (503); and it
   * copies what its open files still hold beside the store, for the operator to put back before a restart.
   */
  private storeLost(error: StoreLostError): void {
    this.lost = error;
    this.rescue();
    const copies = [...this.rescued.values()];
    const where = copies.length > 0 ? ` A copy of what it still held is at ${copies.join(" and ")}: stop the node, put the copy in place of the lost file, and start it again.` : " Stop the node and restore the store from a backup.";
    this.log.error({ event: "storeLost", store: error.path, problem: error.problem, rescued: copies }, `${error.message}: this node signs nothing more (its watchtower goes on).${where}`);
    this.emit("storeLost", { store: error.path, problem: error.problem, rescued: copies });
  }

  /** Copies each lost store out (`Store.copyTo`) once; a store inside a transaction is copied at a later heartbeat. */
  private rescue(): void {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    for (const s of [this.store, this.towerStore]) {
      if (this.rescued.has(s.path) || s.fileProblem() === undefined || s.inTransaction()) continue;
      const copy = `${s.path}.rescued-${stamp}`;
      try {
        s.copyTo(copy);
        this.rescued.set(s.path, copy);
      } catch (error) {
        this.log.error({ event: "storeRescueFailed", store: s.path, error: (error as Error).message.split("\n")[0] }, `could not copy the lost store ${s.path} to ${copy}`);
      }
    }
  }

  // ------------------------------------------------------------------ lifecycle

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tickOnce().finally(() => {
        this.ticking = undefined;
        this.schedule();
      });
    }, this.config.timing.tickMs);
  }

  private async tickOnce(): Promise<void> {
    this.checkStore(false);
    const t0 = Date.now();
    await this.joinPending();
    const t1 = Date.now();
    try {
      await this.client.tick();
      if (Date.now() - t0 > 2_000) this.log.debug({ event: "slowTick", joinMs: t1 - t0, tickMs: Date.now() - t1 }, "slow tick");
      this.lastTickError = "";
    } catch (error) {
      const text = (error as Error).message?.split("\n")[0] ?? String(error);
      if (text !== this.lastTickError) this.log.warn({ event: "tickError", error: text }, "tick failed (retrying)");
      this.lastTickError = text;
    }
  }

  private startBeat(): void {
    if (this.beating !== undefined || this.stopping) return;
    this.beating = this.beat().finally(() => (this.beating = undefined));
  }

  private async beat(): Promise<void> {
    this.checkStore(true);
    if (this.lost !== undefined) {
      this.rescue(); // a store inside a transaction when it was found lost is copied now
      this.log.error({ event: "storeLost", store: this.lost.path, problem: this.lost.problem, rescued: [...this.rescued.values()] }, `${this.lost.message}: this node signs nothing more`);
    }
    try {
      // The client tells the tower of every channel, state and secret as it stores them (imported once at start).
      await this.tower.poll();
    } catch (error) {
      this.log.warn({ event: "watchtowerError", error: (error as Error).message.split("\n")[0] }, "watchtower poll failed");
    }
    const records = this.store.channels();
    for (const [name, chainId] of this.chainIds) {
      try {
        const adapter = this.adapters.get(chainId)!;
        const block = await adapter.provider.getBlock("latest");
        const channels = records.filter((c) => c.ref.chainId === chainId).length;
        const lag = block === null ? undefined : Math.round(Date.now() / 1000 - block.timestamp);
        this.log.info({ event: "heartbeat", chain: name, chainId, block: block?.number, blockAgeSeconds: lag, channels }, `heartbeat ${name}`);
      } catch (error) {
        this.log.warn({ event: "heartbeat", chain: name, error: (error as Error).message.split("\n")[0] }, `chain ${name} does not answer`);
      }
    }
  }

  /** Stops ticking, lets the step in flight commit, closes the peer endpoint and the store. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    await this.ticking;
    await this.beating; // the store and the providers stay open until it ends
    await this.client.idle().catch(() => undefined); // the step in flight commits and sends
    await this.link.close();
    for (const s of [this.store, this.towerStore]) {
      try {
        s.close();
      } catch (error) {
        // A lost store may not take its last writes: it was said already, the node stops all the same.
        this.log.error({ event: "storeCloseFailed", store: s.path, error: (error as Error).message.split("\n")[0] }, `could not close the store ${s.path}`);
      }
    }
    for (const p of this.providers) p.destroy();
    unlockStore(this.storeLock);
    this.log.info({ event: "stopped" }, "node stopped");
  }

  // ------------------------------------------------------------------ events

  subscribe(fn: (e: NodeEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  private emit(type: string, fields: Record<string, unknown>): void {
    const e: NodeEvent = { time: new Date().toISOString(), type, ...fields };
    for (const fn of this.subscribers) fn(e);
  }

  private onClientEvent(e: ClientEvent): void {
    const fields = plain(e) as Record<string, unknown>;
    if (e.type === "rejected") this.refuse("swap", this.peerNameOf(e.counterparty ?? this.swapCounterparty(e.swapId)), e.swapId, e.reason);
    if (e.type === "chain" && e.step.kind === "waiting") {
      const text = `${e.step.until} ${e.step.why}`;
      if (this.lastWait.get(e.channelId) === text) return;
      this.lastWait.set(e.channelId, text);
    }
    if (e.type === "tickError") {
      this.log.debug({ event: "tickError", ...fields }, "tick step failed");
    } else {
      this.log.info({ event: e.type, ...fields }, e.type === "phase" ? `swap ${e.swapId.slice(0, 10)} ${phaseText(e.phase)}` : e.type);
    }
    this.emit(e.type, fields);
  }

  /**
   * Records a refused proposal of a configured peer (the last MAX_REFUSALS are kept, in memory and in a file beside
   * the store); a stranger's is only logged at debug level, so nobody can grow the disk or the log.
   */
  private refuse(kind: "swap" | "channel", peer: string | undefined, id: string, reason: string): void {
    if (peer === undefined) {
      this.log.debug({ event: "refusedStranger", kind, reason }, "refused a proposal from outside the configured peers");
      return;
    }
    const r: Refusal = { time: new Date().toISOString(), kind, peer, id, reason };
    this.refusals.push(r);
    const file = `${this.config.store}.refusals.jsonl`;
    if (this.refusals.length > 2 * MAX_REFUSALS) {
      this.refusals = this.refusals.slice(-MAX_REFUSALS);
      writeFileSync(`${file}.tmp`, this.refusals.map((x) => JSON.stringify(x) + "\n").join(""));
      renameSync(`${file}.tmp`, file);
    } else {
      appendFileSync(file, JSON.stringify(r) + "\n");
    }
    const { time: _time, ...fields } = r; // the log line has its own time
    this.log.warn({ event: "refused", ...fields }, `refused a ${kind} proposal from ${peer}: ${reason}`);
    this.emit("refused", r);
  }

  // ------------------------------------------------------------------ node state beside the store

  private loadState(): void {
    const file = `${this.config.store}.pending.json`;
    if (existsSync(file)) this.pending = new Map(decode<[Hex, Pending][]>(readFileSync(file, "utf8")));
    const refusals = `${this.config.store}.refusals.jsonl`;
    if (existsSync(refusals)) {
      // Advisory: a line torn by a crash or a full disk is skipped, never a reason not to start.
      const text = readFileSync(refusals, "utf8");
      // A torn last line is ended, so that the next refusal is appended on a line of its own.
      if (text !== "" && !text.endsWith("\n")) appendFileSync(refusals, "\n");
      this.refusals = text
        .split("\n")
        .flatMap((l) => {
          try {
            return l === "" ? [] : [JSON.parse(l) as Refusal];
          } catch {
            return [];
          }
        })
        .slice(-MAX_REFUSALS);
    }
  }

  private savePending(): void {
    const file = `${this.config.store}.pending.json`;
    writeFileSync(`${file}.tmp`, encode([...this.pending]));
    renameSync(`${file}.tmp`, file);
  }

  // ------------------------------------------------------------------ peers

  peers() {
    return Object.entries(this.config.peers).map(([name, p]) => ({
      name,
      address: p.address,
      url: p.url,
      channels: this.store.channels().filter((c) => sameAddress(c.params.participants[1 - c.myIndex]!, p.address)).length,
    }));
  }

  private peer(name: string) {
    const p = own(this.config.peers, name);
    if (p === undefined) throw new UsageError(`peer: no peer ${name} in ${this.config.file} (known: ${Object.keys(this.config.peers).join(", ") || "none"})`);
    return { name, ...p };
  }

  private peerNameOf(address: string | undefined): string {
    if (address === undefined) return "unknown";
    return Object.entries(this.config.peers).find(([, p]) => sameAddress(p.address, address))?.[0] ?? address;
  }

  private swapCounterparty(swapId: Hex): string | undefined {
    const s = this.store.swap(swapId);
    if (s === undefined) return undefined;
    return sameAddress(s.terms.initiator, this.address) ? s.terms.responder : s.terms.initiator;
  }

  /** The URL of the peer an outgoing envelope is for: the other participant of its channel or swap. */
  private peerUrlFor(e: { swapId: Hex; body: { step: string; terms?: SwapTerms } }): string | undefined {
    const channel = this.store.channel(e.swapId);
    let other: string | undefined;
    if (channel !== undefined) other = channel.params.participants[1 - channel.myIndex];
    else if (e.body.step === "propose" && e.body.terms !== undefined) other = e.body.terms.responder;
    else other = this.swapCounterparty(e.swapId);
    if (other === undefined) return undefined;
    return Object.values(this.config.peers).find((p) => sameAddress(p.address, other))?.url;
  }

  // ------------------------------------------------------------------ info

  /** The node's address, chains, counts and policy; throws the StoreLostError (503) once its store is lost. */
  info() {
    this.requireStore();
    return {
      address: this.address,
      version: 1,
      startedAt: this.startedAt.toISOString(),
      peerUrl: this.link.url,
      chains: Object.entries(this.config.chains).map(([name, c]) => ({
        name,
        chainId: this.chainIds.get(name)!.toString(),
        hub: c.hub,
        confirmations: c.confirmations,
        assets: Object.entries(c.assets).map(([symbol, a]) => ({ symbol, address: a.address, decimals: a.decimals })),
      })),
      channels: this.store.channels().length,
      activeSwaps: this.store.activeSwapIds().length,
      policy: this.config.policy,
    };
  }

  // ------------------------------------------------------------------ channels

  channelIds(): Hex[] {
    return [...this.store.channels().map((c) => c.ref.channelId), ...this.pending.keys()];
  }

  async channels() {
    return Promise.all(this.channelIds().map((id) => this.channelView(id)));
  }

  /** A channel by its id or a unique prefix of it. */
  async channel(id: string) {
    return this.channelView(this.resolveChannel(id));
  }

  private async channelView(channelId: Hex) {
    const pending = this.pending.get(channelId);
    if (pending !== undefined) {
      const asset = this.assets.byAddress(pending.chainId, pending.params.asset);
      return {
        id: channelId,
        chain: this.assets.chainName(pending.chainId),
        peer: pending.peer,
        asset: asset === undefined ? pending.params.asset : `${asset.symbol}@${asset.chain}`,
        status: "agreed",
        challengePeriodSeconds: Number(pending.params.challengePeriod),
      };
    }
    const record = this.store.channel(channelId)!;
    const me = record.myIndex;
    const them = (1 - me) as ParticipantIndex;
    const asset = this.assets.byAddress(record.ref.chainId, record.params.asset);
    const head = this.client.book.head(channelId);
    const locked = head.locks.reduce((sum, l) => sum + l.amount, 0n);
    const op = this.store.channelOp(channelId);
    const adapter = this.adapters.get(record.ref.chainId)!;
    const onChain = await adapter.channelInfo(channelId).catch(() => undefined);
    const payouts = onChain?.status === "closed" ? await this.payouts(adapter, channelId) : undefined;
    const fmt = (v: bigint) => formatAmount(v, asset);
    const status = onChain?.status === "closed" ? "closed" : onChain?.status === "disputed" ? "disputed" : this.client.isClosing(channelId) ? "closing" : op?.kind === "forceClose" ? "forceClosing" : "open";
    return {
      id: channelId,
      chain: this.assets.chainName(record.ref.chainId),
      peer: this.peerNameOf(record.params.participants[them]),
      counterparty: record.params.participants[them],
      asset: asset === undefined ? record.params.asset : `${asset.symbol}@${asset.chain}`,
      status,
      seq: head.seq.toString(),
      challengePeriodSeconds: Number(record.params.challengePeriod),
      balance: { mine: fmt(head.balances[me]), theirs: fmt(head.balances[them]), locked: fmt(locked) },
      deposits: { mine: fmt(head.deposits[me]), theirs: fmt(head.deposits[them]) },
      onChainDeposits: onChain === undefined ? undefined : { mine: fmt(onChain.deposits[me]), theirs: fmt(onChain.deposits[them]) },
      payouts: payouts === undefined ? undefined : { mine: fmt(payouts[me]), theirs: fmt(payouts[them]) },
      base: {
        balances: head.balances.map(String),
        deposits: head.deposits.map(String),
        onChainDeposits: onChain?.deposits.map(String),
        payouts: payouts?.map(String),
        myIndex: me,
      },
    };
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
  private resolveChannel(id: string): Hex {
    const lower = idPrefix(id, "channel");
    const matches = this.channelIds().filter((c) => c.toLowerCase().startsWith(lower));
    if (matches.length === 0) throw new NotFoundError(`no channel ${id}`);
    if (matches.length > 1) throw new UsageError(`channel: ${id} matches ${matches.length} channels; give more digits`);
    return matches[0]!;
  }

  private openRecord(id: string) {
    const channelId = this.resolveChannel(id);
    const record = this.store.channel(channelId);
    if (record === undefined) throw new ConflictError(`channel ${channelId} is agreed but not open on chain yet`);
    return record;
  }

  /**
   * Opens a channel with a peer: proposes its parameters (a fresh nonce) to the peer's node, which checks them
   * against its policy and remembers them; then opens it on chain with our deposit and joins it once final.
   */
  async openChannel(args: { peer: string; asset: string; deposit: string; challengePeriodSeconds?: number }) {
    this.requireStore();
    const peer = this.peer(args.peer);
    const asset = this.assets.asset(args.asset, "asset");
    const amount = units(args.deposit, asset.decimals, "deposit");
    const adapter = this.adapters.get(asset.chainId)!;
    const params: ChannelParams = {
      participants: [this.address, peer.address as Address],
      payees: [ZeroAddress as Address, ZeroAddress as Address],
      asset: asset.address as Address,
      challengePeriod: BigInt(args.challengePeriodSeconds ?? this.config.timing.challengePeriodSeconds),
      nonce: BigInt(`0x${randomBytes(8).toString("hex")}`),
    };
    await this.requireWalletHolds(asset, amount, "deposit");
    // Our own policy first: a channel we would refuse to join must never be funded.
    const outside = this.challengePeriodOutside(params.challengePeriod);
    if (outside !== undefined) throw new UsageError(`challengePeriodSeconds: ${outside}`);
    const signed = signProposal(this.signer, { chainId: asset.chainId, hub: adapter.hubAddress as Address, params });
    const answer = await PeerLink.propose(peer.url, signed);
    if (!answer.accepted) throw new ConflictError(`${peer.name} refused the channel: ${answer.reason}`);
    // Kept before anything goes on chain: a crash after the transaction still finds and joins the channel.
    const channelId = channelIdOf(asset.chainId, adapter.hubAddress, params);
    this.pending.set(channelId, { chainId: asset.chainId, params, peer: peer.name, since: Date.now(), ours: true });
    this.savePending();
    const opened = amount > 0n ? await adapter.openAndDeposit(params, 0, amount) : await adapter.open(params);
    if (opened.toLowerCase() !== channelId.toLowerCase()) throw new ChannelSdkError(`the hub derived channel id ${opened}, expected ${channelId}`);
    this.log.info({ event: "channelOpened", channelId, chain: asset.chain, peer: peer.name, deposit: formatAmount(amount, asset) }, "channel opened on chain");
    await this.joinPending();
    this.emit("channelOpened", { channelId, peer: peer.name, asset: `${asset.symbol}@${asset.chain}` });
    return this.channelView(channelId);
  }

  /** A peer's proposal: accepted if the peer, the chain's hub, the asset and the challenge period are in policy. */
  private async onChannelProposal(signed: SignedProposal): Promise<ProposalAnswer> {
    const signer = PeerLink.signerOf(signed);
    const known = signer !== undefined && sameAddress(signer, signed.from) && Object.values(this.config.peers).some((p) => sameAddress(p.address, signer));
    const peerName = known ? this.peerNameOf(signer) : undefined;
    const refuse = (reason: string): ProposalAnswer => {
      this.refuse("channel", peerName, "", reason);
      return { accepted: false, reason };
    };
    if (this.lost !== undefined) return { accepted: false, reason: "this node's store is lost; it agrees to nothing" };
    if (signer === undefined || !sameAddress(signer, signed.from)) return refuse("the proposal is not signed by its sender");
    if (!known) return refuse(`${signer} is not a configured peer`);
    const { chainId, hub, params } = signed.proposal;
    const adapter = this.adapters.get(BigInt(chainId));
    if (adapter === undefined) return refuse(`chain ${chainId} is not one of this node's chains`);
    if (!sameAddress(adapter.hubAddress, hub)) return refuse(`hub ${hub} is not this node's hub on chain ${chainId}`);
    if (!sameAddress(params.participants[0], signer) || !sameAddress(params.participants[1], this.address)) {
      return refuse("the participants are not the proposer and this node, in that order");
    }
    if (!sameAddress(params.payees[0], ZeroAddress) || !sameAddress(params.payees[1], ZeroAddress)) return refuse("payees must be the participants themselves");
    const asset = this.assets.byAddress(BigInt(chainId), params.asset);
    const accepted = asset !== undefined && this.config.policy.channels.accept.includes(`${asset.symbol}@${asset.chain}`);
    if (!accepted) return refuse(`channels of ${asset === undefined ? params.asset : `${asset.symbol}@${asset.chain}`} are not accepted (policy.channels.accept)`);
    const outside = this.challengePeriodOutside(params.challengePeriod);
    if (outside !== undefined) return refuse(`challenge period ${outside}`);
    const channelId = channelIdOf(BigInt(chainId), adapter.hubAddress, params);
    if (!this.pending.has(channelId) && this.store.channel(channelId) === undefined) {
      const waiting = [...this.pending.values()].filter((p) => p.peer === peerName && p.ours !== true).length;
      if (waiting >= MAX_PENDING_PER_PEER) return refuse(`${waiting} channels agreed and not opened yet; open those first`);
      this.pending.set(channelId, { chainId: BigInt(chainId), params, peer: peerName!, since: Date.now() });
      this.savePending();
      this.log.info({ event: "channelAgreed", channelId, peer: peerName, asset: `${asset!.symbol}@${asset!.chain}` }, "agreed to a channel");
      this.emit("channelAgreed", { channelId, peer: peerName });
    }
    return { accepted: true };
  }

  /** Why a challenge period is outside policy.channels' bounds, or undefined if it is within them. */
  private challengePeriodOutside(seconds: bigint): string | undefined {
    const { minChallengePeriodSeconds: min, maxChallengePeriodSeconds: max } = this.config.policy.channels;
    return seconds < BigInt(min) || seconds > BigInt(max) ? `${seconds} is outside ${min}..${max} (policy.channels)` : undefined;
  }

  /** Joins the agreed channels that are open at their chain's final block (both sides do this with the same parameters). */
  private async joinPending(): Promise<void> {
    for (const [channelId, p] of [...this.pending]) {
      const adapter = this.adapters.get(p.chainId)!;
      try {
        const info = await adapter.channelInfo(channelId, await adapter.finalBlock());
        if (info.status !== "open") {
          if (p.ours !== true && Date.now() - p.since > PENDING_TTL_MS) {
            this.pending.delete(channelId); // the peer never opened it
            this.savePending();
          }
          continue;
        }
        const counterparty = p.params.participants.find((a) => !sameAddress(a, this.address))!;
        // The client hands the channel to its watchtower (`watchtower.guard`) before it signs anything for it.
        await this.client.addChannel(p.chainId, p.params, { counterparty, asset: p.params.asset });
        this.pending.delete(channelId);
        this.savePending();
        this.log.info({ event: "channelJoined", channelId }, "joined the channel");
        this.emit("channelJoined", { channelId });
      } catch (error) {
        this.log.debug({ event: "joinPending", channelId, error: (error as Error).message }, "channel not joined yet");
      }
    }
  }

  /**
   * Adds our deposit on chain; the ledger counts it once final (participant 0's tick offers the count in a co-signed
   * batch).
   */
  async deposit(id: string, amountText: string) {
    this.requireStore();
    const record = this.openRecord(id);
    const asset = this.assets.byAddress(record.ref.chainId, record.params.asset);
    if (asset === undefined) throw new UsageError(`the asset ${record.params.asset} of channel ${record.ref.channelId} is not named in the configuration: add it to know its decimals`);
    const amount = units(amountText, asset.decimals, "amount");
    if (amount === 0n) throw new UsageError("amount: must be more than 0");
    const op = this.store.channelOp(record.ref.channelId)?.kind;
    if (op === "closed") throw new ConflictError(`channel ${record.ref.channelId} is closed`);
    // Checked before any transaction: a closing channel's final state would not count it (the hub would only pay it back).
    if (op === "forceClose" || this.client.isClosing(record.ref.channelId)) throw new ConflictError(`channel ${record.ref.channelId} is closing; a deposit now would not be counted`);
    await this.requireWalletHolds(asset, amount, "amount");
    await this.adapters.get(record.ref.chainId)!.deposit(record.params, record.ref.channelId, record.myIndex, amount);
    this.log.info({ event: "deposited", channelId: record.ref.channelId, amount: formatAmount(amount, asset) }, "deposited");
    return this.channelView(record.ref.channelId);
  }

  /**
   * Closes the channel: cooperatively (no new swap on it, the swaps using it undone or completed, then its final state
   * co-signed and landed) or on chain with `force`, together with every channel a swap in flight ties to it. The
   * peer's other channels stay open.
   */
  async close(id: string, force: boolean) {
    // A force close signs nothing (the co-signed state on file goes on chain): it stays open to a lost store.
    if (!force) this.requireStore();
    const record = this.openRecord(id);
    const channelId = record.ref.channelId;
    if (this.store.channelOp(channelId)?.kind === "closed") throw new ConflictError(`channel ${channelId} is closed`);
    const tied = force ? this.client.tiedChannels(channelId).filter((id) => id.toLowerCase() !== channelId.toLowerCase()) : [];
    if (force) await this.client.forceClose(channelId);
    else await this.client.requestClose(channelId);
    this.log.info({ event: force ? "forceCloseStarted" : "closeRequested", channelId, tied: tied.length > 0 ? tied : undefined }, force ? "force close started" : "close requested");
    return this.channelView(channelId);
  }

  /** Pulls what the hub owes us in the channel's asset (a payout that could not be pushed). */
  async withdraw(id: string) {
    const record = this.openRecord(id);
    const adapter = this.adapters.get(record.ref.chainId)!;
    // Only a payout the hub could not push waits here (docs/PROTOCOL.md, asset settlement).
    if ((await adapter.hub.deferredPayout(record.params.asset, this.address)) === 0n) {
      throw new ConflictError(`nothing to withdraw: the hub holds no deferred payout of this channel's asset for ${this.address}`);
    }
    await adapter.withdraw(record.params.asset, this.address);
    return this.channelView(record.ref.channelId);
  }

  /**
   * For a refusal naming a free balance: when the hub holds a deposit for `who` that the ledger does not count yet,
   * why (it counts once final and co-signed), else nothing: waiting would not help.
   */
  private async uncounted(record: ReturnType<Store["channels"]>[number], who: ParticipantIndex): Promise<string> {
    const onChain = await this.adapters.get(record.ref.chainId)!.channelInfo(record.ref.channelId).catch(() => undefined);
    const counted = this.client.book.head(record.ref.channelId).deposits[who];
    const held = onChain?.deposits[who];
    if (held === undefined || held <= counted) return "";
    const asset = this.assets.byAddress(record.ref.chainId, record.params.asset);
    return ` (a deposit of ${formatAmount(held - counted, asset)} is not counted yet: deposits count once final and co-signed by both nodes, a few seconds after funding on a local chain)`;
  }

  // ------------------------------------------------------------------ swaps

  swaps() {
    return this.client.swaps().map((s) => this.swapView(s));
  }

  swap(id: string) {
    const lower = idPrefix(id, "swap");
    const matches = this.store.swapIds().filter((s) => s.toLowerCase().startsWith(lower));
    if (matches.length === 0) throw new NotFoundError(`no swap ${id}`);
    if (matches.length > 1) throw new UsageError(`swap: ${id} matches ${matches.length} swaps; give more digits`);
    return this.swapView(this.client.swap(matches[0]!));
  }

  refused(): readonly Refusal[] {
    return this.refusals;
  }

  private swapView(s: SwapView) {
    const t = s.terms;
    const src = this.store.channel(t.source.channelId);
    const dst = this.store.channel(t.target.channelId);
    const srcAsset = src && this.assets.byAddress(t.source.chainId, src.params.asset);
    const dstAsset = dst && this.assets.byAddress(t.target.chainId, dst.params.asset);
    const phase = s.progress.phase;
    return {
      id: s.swapId,
      role: s.role,
      peer: this.peerNameOf(s.role === "initiator" ? t.responder : t.initiator),
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

  /**
   * Proposes a swap to a peer: gives `give` (`10 SRC@source`) on our channel with the peer holding that asset, for
   * `take` on the one holding the other. Everything is checked before anything is signed.
   */
  async propose(args: { peer: string; give: string; take: string; source?: string; target?: string }) {
    this.requireStore();
    const peer = this.peer(args.peer);
    const give = this.assets.amount(args.give, "give");
    const take = this.assets.amount(args.take, "take");
    if (give.amount === 0n) throw new UsageError("give: must be more than 0");
    if (take.amount === 0n) throw new UsageError("take: must be more than 0");
    if (args.source !== undefined && args.target !== undefined) requireDistinctChannels(this.openRecord(args.source).ref.channelId, this.openRecord(args.target).ref.channelId);
    // A leg left out goes on any open channel with the peer in that asset: the one with the most free for it.
    const source = args.source === undefined ? this.channelWith(peer.address, give.asset, "give", "mine") : this.channelFor(args.source, peer.address, give.asset, "source");
    const target = args.target === undefined ? this.channelWith(peer.address, take.asset, "take", "theirs") : this.channelFor(args.target, peer.address, take.asset, "target");
    requireDistinctChannels(source.ref.channelId, target.ref.channelId);
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
      swapId = await this.client.propose({ source: source.ref.channelId, target: target.ref.channelId, give: give.amount, take: take.amount });
    } catch (error) {
      // The client counts what swaps in flight will lock: less than the balance above may be free.
      if (!(error instanceof InsufficientBalanceError)) throw error;
      throw new ConflictError(`give: ${formatAmount(give.amount, give.asset)} is more than channel ${source.ref.channelId} has free and not promised to swaps in flight (${formatAmount(error.available, give.asset)})`);
    }
    return this.swapView(this.client.swap(swapId));
  }

  private free(channelId: Hex, me: ParticipantIndex): bigint {
    return this.client.book.head(channelId).balances[me];
  }

  /** Throws a one-line error unless this node's wallet holds `amount` of `asset` (gas aside) on its chain. */
  private async requireWalletHolds(asset: AssetInfo, amount: bigint, field: string): Promise<void> {
    if (amount === 0n) return;
    const provider = this.adapters.get(asset.chainId)!.provider;
    const held = sameAddress(asset.address, ZeroAddress)
      ? await provider.getBalance(this.address)
      : ((await new Contract(asset.address, ["function balanceOf(address) view returns (uint256)"], provider).getFunction("balanceOf")(this.address)) as bigint);
    if (held < amount) {
      throw new ConflictError(`${field}: ${formatAmount(amount, asset)} is more than the wallet's balance ${formatAmount(held, asset)}`);
    }
  }

  /** A channel named by the user for a swap leg: it must hold the leg's asset, on its chain, with the swap's peer. */
  private channelFor(id: string, peer: string, asset: AssetInfo, field: string) {
    const record = this.openRecord(id);
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
    const candidates = this.store
      .channels()
      .filter((c) => c.ref.chainId === asset.chainId && sameAddress(c.params.asset, asset.address) && sameAddress(c.params.participants[1 - c.myIndex]!, peer))
      .filter((c) => this.store.channelOp(c.ref.channelId) === undefined && !this.client.isClosing(c.ref.channelId));
    if (candidates.length === 0) throw new ConflictError(`${field}: no open channel of ${asset.symbol}@${asset.chain} with this peer`);
    let best = candidates[candidates.length - 1]!;
    let most = -1n;
    for (const c of candidates) {
      const index = whose === "mine" ? c.myIndex : c.myIndex === 0 ? 1 : 0;
      const free = this.client.available(c.ref.channelId, index);
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
    const count = this.store.activeSwapIds().filter((id) => this.client.swap(id).role === "responder").length;
    this.responderCount = agreed.length === 0 ? { first: terms, count } : undefined;
    return count;
  }

  /**
   * The responder policy: a reason to refuse, or undefined to accept. Default: refuse everything. `agreed` are the
   * swaps agreed before these terms in the same step and not stored yet (a `proposals` envelope): in flight too.
   */
  private swapPolicy(terms: SwapTerms, { agreed }: PolicyContext): string | undefined {
    if (this.lost !== undefined) return "this node's store is lost; it agrees to nothing";
    const { pairs, maxInFlight } = this.config.policy.swaps;
    const src = this.store.channel(terms.source.channelId);
    const dst = this.store.channel(terms.target.channelId);
    if (src === undefined || dst === undefined) return "unknown channel";
    const give = this.assets.byAddress(terms.source.chainId, src.params.asset);
    const take = this.assets.byAddress(terms.target.chainId, dst.params.asset);
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

/** A phase as the log shows it: its kind. */
function phaseText(phase: SwapPhase): string {
  return phase.kind;
}

/** An event as plain JSON: bigints as decimal strings. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
}

/**
 * An id as a person gives it: whole, or a prefix of at least 6 hex digits after 0x, as the CLI prints it shortened
 * (a trailing "…" or "..." is dropped).
 */
function idPrefix(id: string, what: "channel" | "swap"): string {
  const lower = id.toLowerCase().replace(/(…|\.\.\.)$/, "");
  if (!/^0x[0-9a-f]{6,64}$/.test(lower)) {
    throw new UsageError(`${what}: expected a ${what} id, or its first 6 or more hex digits after 0x, got ${JSON.stringify(id.slice(0, 66))}`);
  }
  return lower;
}
