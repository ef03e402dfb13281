/**
 * The node's metrics in the Prometheus text format (GET /metrics on the control API; docs/NODE.md, "Metrics"), with
 * prom-client: the de facto Prometheus client for Node, typed, with two small dependencies. One registry per node
 * (never the library's global one: several nodes may share a process).
 *
 * Counters move with the node's events (swap phases, on-chain transactions); everything else is read when scraped,
 * from what the node holds in memory and its store: no chain is read for a scrape. Labels are bounded by the node's
 * configuration and its own channels: chains, calls, peers and channels (closed channels drop out), never anything a
 * stranger names.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

import type { Hex } from "../core/types.js";
import type { NodeEvent } from "./events.js";
import type { PeerView } from "./peer-book.js";
import type { NodeParts } from "./start.js";

export type MetricsDeps = Pick<NodeParts, "config" | "store" | "towerStore" | "client" | "assets" | "chainIds" | "chainHealth" | "link"> &
  Readonly<{
    /** Why the node's store (or its watchtower's) is lost, once it is (StoreHealth): the node signs nothing more. */
    storeLost: () => string | undefined;
    /** The configured peers with their link (PeerBook): one reading of up and down for the API and the metrics. */
    peers: () => readonly PeerView[];
  }>;

/** Swaps whose start this process saw, kept until they end; past this many the oldest are forgotten. */
const MAX_TIMED_SWAPS = 10_000;
/** Whether this process is the active node (1) or a standby (0): the one series both serve (standby.ts). */
export const NODE_ACTIVE = { name: "channels_node_active", help: "1 when this process is the active node of its store (signs and sends), 0 for a standby" } as const;

/**
 * A scrape asked for within this long of the last one gets the same text. A scrape reads every channel the store
 * holds, closed ones included, on the event loop: without this, anyone reaching a public /metrics could keep the node
 * from its ticks and challenges by asking again and again. Prometheus scrapes every 15 s or so.
 */
const SCRAPE_REUSE_MS = 1_000;

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly swapsDone: Counter<"outcome">;
  private readonly phases: Counter<"phase">;
  private readonly latency: Histogram;
  private readonly chainTxs: Counter<"chain" | "call" | "kind">;
  private readonly feesPaid: Counter<"chain" | "call">;
  private readonly commits: Histogram;
  /** When each swap's first phase was seen by this process (ms), for the latency histogram. */
  private readonly started = new Map<string, number>();
  /** The settlement a closing channel waits for, from the client's chain events: its chain and when (chain time). */
  private readonly waits = new Map<string, { chainId: bigint; until: number; why: string }>();
  /** The last scrape and when it was asked for. */
  private last: { at: number; scrape: Promise<{ contentType: string; text: string }> } | undefined;

  constructor(private readonly d: MetricsDeps) {
    const registers = [this.registry];

    new Gauge({ ...NODE_ACTIVE, registers, collect() {
      this.set(1);
    } });
    // Read first: a lost store is what every other series here may hide (they still read from its open file).
    new Gauge({ name: "channels_store_lost", help: "1 once the node's store or its watchtower's is lost (deleted, replaced, or a write failed for the file's reason): it signs nothing more until restarted on a good store", registers, collect() {
      this.set(d.storeLost() === undefined ? 0 : 1);
    } });

    this.swapsDone = new Counter({ name: "channels_swaps_total", help: "Swaps ended since the process started, by outcome (swapped, aborted, settledOnChain)", labelNames: ["outcome"], registers });
    this.phases = new Counter({ name: "channels_swap_phases_total", help: "Phases entered by swaps since the process started, by phase", labelNames: ["phase"], registers });
    this.latency = new Histogram({
      name: "channels_swap_duration_seconds",
      help: "Time from a swap's first phase to its end, for swaps this process saw start",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    new Gauge({ name: "channels_swaps_in_flight", help: "Swaps not ended, by phase", labelNames: ["phase"], registers, collect() {
      this.reset();
      for (const s of d.client.activeSwaps()) this.inc({ phase: s.progress.phase.kind });
    } });

    new Gauge({ name: "channels_channels", help: "This node's channels by status (open, closing, forceClosing, closed)", labelNames: ["status"], registers, collect() {
      this.reset();
      for (const status of ["open", "closing", "forceClosing", "closed"]) this.set({ status }, 0);
      for (const c of d.store.channels()) this.inc({ status: statusOf(d, c.ref.channelId) });
    } });
    new Gauge({ name: "channels_channels_frozen", help: "Channels frozen because this node's store is a copy (a restored backup, or one frozen with channels store freeze): it signs nothing on them until each catches up from its peer (or is force-closed)", registers, collect() {
      this.set(d.store.frozenCount());
    } });
    const channelLabels = ["channel", "chain", "asset"] as const;
    new Gauge({ name: "channels_channel_balance", help: "Balances of the newest co-signed state of each channel not closed, in token units: mine, theirs, and locked in swaps", labelNames: [...channelLabels, "side"], registers, collect() {
      this.reset();
      for (const c of d.store.channels()) {
        const id = c.ref.channelId;
        if (statusOf(d, id) === "closed") continue;
        const head = d.client.book.head(id);
        const asset = d.assets.byAddress(c.ref.chainId, c.params.asset);
        const units = (v: bigint) => tokenUnits(v, asset?.decimals ?? 18);
        const labels = { channel: id, chain: d.assets.chainName(c.ref.chainId), asset: asset?.symbol ?? c.params.asset };
        this.set({ ...labels, side: "mine" }, units(head.balances[c.myIndex]));
        this.set({ ...labels, side: "theirs" }, units(head.balances[1 - c.myIndex]!));
        this.set({ ...labels, side: "locked" }, units(head.locks.reduce((sum, l) => sum + l.amount, 0n)));
      }
    } });
    new Gauge({ name: "channels_channel_deposits_uncounted", help: "Deposits the hub held at the final block that the channel's co-signed state does not count yet, in token units", labelNames: channelLabels, registers, collect() {
      this.reset();
      for (const c of d.store.channels()) {
        const held = d.client.uncountedDeposits(c.ref.channelId);
        if (held === undefined) continue;
        const head = d.client.book.head(c.ref.channelId);
        const asset = d.assets.byAddress(c.ref.chainId, c.params.asset);
        const waiting = held[0] - head.deposits[0] + (held[1] - head.deposits[1]);
        this.set({ channel: c.ref.channelId, chain: d.assets.chainName(c.ref.chainId), asset: asset?.symbol ?? c.params.asset }, tokenUnits(waiting > 0n ? waiting : 0n, asset?.decimals ?? 18));
      }
    } });

    this.chainTxs = new Counter({ name: "channels_chain_transactions_total", help: "Steps of this node's on-chain transactions since the process started, by chain, call and kind (sent, resent, mined, landed, reorgedOut, capReached, capBelowMarket, nonceTaken, rpcError, failed, ...)", labelNames: ["chain", "call", "kind"], registers });
    this.feesPaid = new Counter({ name: "channels_chain_fees_paid_total", help: "Fees paid for this node's landed transactions since the process started, in the chain's native coin", labelNames: ["chain", "call"], registers });
    const health = (name: string) => d.chainHealth.view(name);
    const perChain = (metric: string, help: string, value: (name: string) => number | undefined) =>
      new Gauge({ name: metric, help, labelNames: ["chain"], registers, collect() {
        this.reset();
        for (const name of d.chainIds.keys()) {
          const v = value(name);
          if (v !== undefined) this.set({ chain: name }, v);
        }
      } });
    perChain("channels_chain_reachable", "1 when the chain answered at the last check, 0 when it did not", (n) => flag(health(n).reachable));
    perChain("channels_chain_held", "1 when nothing new that depends on the chain is signed (it does not answer, or reorganised deeper than its confirmations)", (n) => (health(n).holding === undefined ? 0 : 1));
    perChain("channels_chain_deep_reorg", "1 once the chain reorganised deeper than its confirmations (until the operator releases it)", (n) => (health(n).deepReorg === undefined ? 0 : 1));
    perChain("channels_chain_head", "The chain's head at the last check that answered", (n) => health(n).head);
    perChain("channels_chain_head_age_seconds", "Age of the head's timestamp at the last check that answered", (n) => health(n).headAgeSeconds);
    perChain("channels_fee_account_balance", "The node's account on the chain, in its native coin", (n) => number(health(n).feeAccount.balance));
    perChain("channels_fee_account_reserve", "What the node's channels on the chain may need on chain (a force close or challenge and a settle each, at twice the base fee), in its native coin", (n) => number(health(n).feeAccount.reserve));

    const waits = this.waits;
    new Gauge({ name: "channels_deadline_seconds", help: "Seconds left, by the chain's clock, before the nearest on-chain deadline on it: lockExpiry (a lock of a swap in flight), settlement (a closing channel's challenge period or a lock it waits for)", labelNames: ["chain", "kind"], registers, collect() {
      this.reset();
      const nearest = new Map<string, number>();
      const note = (chainId: bigint, kind: string, at: number) => {
        const now = d.chainHealth.chainTime(chainId);
        if (now === undefined) return;
        const key = `${d.assets.chainName(chainId)}\u0000${kind}`;
        const left = at - now;
        if (!nearest.has(key) || left < nearest.get(key)!) nearest.set(key, left);
      };
      for (const s of d.client.activeSwaps()) {
        note(s.terms.source.chainId, "lockExpiry", Number(s.terms.sourceExpiry));
        note(s.terms.target.chainId, "lockExpiry", Number(s.terms.targetExpiry));
      }
      for (const w of waits.values()) note(w.chainId, "settlement", w.until);
      for (const [key, left] of nearest) {
        const [chain, kind] = key.split("\u0000") as [string, string];
        this.set({ chain, kind }, left);
      }
    } });

    const link = d.link;
    const peerOf = (address: string) => Object.entries(d.config.peers).find(([, p]) => p.address.toLowerCase() === address)?.[0];
    const peerByOrigin = (origin: string) => Object.entries(d.config.peers).find(([, p]) => new URL(p.url).origin === origin)?.[0];
    new Gauge({ name: "channels_peer_up", help: "1 when the last exchange with the peer went through (a request answered, an envelope received), 0 when a request to it failed since (absent before either): the link GET /peers shows", labelNames: ["peer"], registers, collect() {
      this.reset();
      for (const p of d.peers()) if (p.link !== "unknown") this.set({ peer: p.name }, p.link === "up" ? 1 : 0);
    } });
    // A counter whose count the peer link keeps: set from it at each scrape.
    new Counter({ name: "channels_peer_messages_total", help: "Envelopes exchanged with the peer since the process started, by direction", labelNames: ["peer", "direction"], registers, collect() {
      this.reset();
      for (const [origin, n] of link.traffic.sent) {
        const peer = peerByOrigin(origin);
        if (peer !== undefined) this.inc({ peer, direction: "sent" }, n);
      }
      for (const [address, n] of link.traffic.received) {
        const peer = peerOf(address);
        if (peer !== undefined) this.inc({ peer, direction: "received" }, n);
      }
    } });
    new Gauge({ name: "channels_peer_swaps_in_flight", help: "Swaps not ended, by the peer they are with", labelNames: ["peer"], registers, collect() {
      this.reset();
      for (const name of Object.keys(d.config.peers)) this.set({ peer: name }, 0);
      for (const s of d.client.activeSwaps()) {
        const other = s.role === "initiator" ? s.terms.responder : s.terms.initiator;
        const peer = peerOf(other.toLowerCase());
        if (peer !== undefined) this.inc({ peer });
      }
    } });

    this.commits = new Histogram({
      name: "channels_store_commit_seconds",
      help: "Time each commit of the node's store took, the write-ahead log's sync included",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    d.store.onCommit = (seconds) => this.commits.observe(seconds);
  }

  /** Moves the counters with one of the node's events (subscribed to the node's event stream). */
  onEvent(e: NodeEvent): void {
    if (e.type === "phase") {
      const swapId = String(e.swapId);
      const phase = (e.phase ?? {}) as { kind?: string; outcome?: string };
      if (typeof phase.kind !== "string") return;
      this.phases.inc({ phase: phase.kind });
      if (phase.kind !== "done") {
        // A swap starts as the initiator's proposal or the responder's agreement (its first phase on that side); any
        // other phase first seen here is a swap a restart found in flight, not timed.
        const starts = phase.kind === "proposed" || (phase.kind === "agreed" && e.role === "responder");
        if (starts && !this.started.has(swapId)) {
          if (this.started.size >= MAX_TIMED_SWAPS) this.started.delete(this.started.keys().next().value!);
          this.started.set(swapId, Date.now());
        }
        return;
      }
      this.swapsDone.inc({ outcome: phase.outcome ?? "unknown" });
      const start = this.started.get(swapId);
      this.started.delete(swapId);
      if (start !== undefined) this.latency.observe((Date.now() - start) / 1000);
    } else if (e.type === "chainTx") {
      const chain = String(e.chain);
      const call = String(e.call ?? "unknown");
      this.chainTxs.inc({ chain, call, kind: String(e.kind) });
      if (e.kind === "landed" && e.fee !== undefined) this.feesPaid.inc({ chain, call }, Number(BigInt(String(e.fee))) / 1e18);
    } else if (e.type === "chain") {
      const step = (e.step ?? {}) as { kind?: string; until?: string };
      const channelId = String(e.channelId).toLowerCase();
      if (step.kind === "waiting" && step.until !== undefined && Number(step.until) > 0) {
        const record = this.d.store.channel(channelId as Hex);
        if (record !== undefined) this.waits.set(channelId, { chainId: record.ref.chainId, until: Number(step.until), why: String((e.step as { why?: string }).why) });
      } else if (step.kind === "closed" || step.kind === "settled") {
        this.waits.delete(channelId);
      }
    } else if (e.type === "closed") {
      this.waits.delete(String(e.channelId).toLowerCase());
    }
  }

  /** The metrics in the Prometheus text format, and its content type; the same for a second of scrapes (SCRAPE_REUSE_MS). */
  scrape(): Promise<{ contentType: string; text: string }> {
    const now = Date.now();
    if (this.last !== undefined && now - this.last.at < SCRAPE_REUSE_MS) return this.last.scrape;
    const scrape = (async () => ({ contentType: this.registry.contentType, text: await this.registry.metrics() }))();
    const last = (this.last = { at: now, scrape });
    scrape.catch(() => {
      if (this.last === last) this.last = undefined; // a failed scrape is not served again
    });
    return scrape;
  }
}

/** A channel's status from what the node holds (no chain read): closed, forceClosing, closing or open. */
function statusOf(d: MetricsDeps, channelId: Hex): "open" | "closing" | "forceClosing" | "closed" {
  const op = d.store.channelOp(channelId);
  if (op?.kind === "closed") return "closed";
  if (op?.kind === "forceClose") return "forceClosing";
  if (d.client.isClosing(channelId)) return "closing";
  return "open";
}

/** Base units as a number of tokens (a float: what a metric holds). */
function tokenUnits(value: bigint, decimals: number): number {
  return Number(value) / 10 ** decimals;
}

function flag(b: boolean | undefined): number | undefined {
  return b === undefined ? undefined : b ? 1 : 0;
}

function number(text: string | undefined): number | undefined {
  return text === undefined ? undefined : Number(text);
}
