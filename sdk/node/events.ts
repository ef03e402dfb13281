/** The node's event stream (`subscribe`, the API's /events) and the log lines of the client's events. */
import type { Logger } from "pino";

import type { ClientEvent, SwapPhase } from "../coordinator/phases.js";
import type { Hex } from "../core/types.js";

export type NodeEvent = Readonly<{ time: string; type: string; [k: string]: unknown }>;
/** Sends an event to the node's subscribers. */
export type Emit = (type: string, fields: Record<string, unknown>) => void;

/** What the client's events need of the rest of the node: a rejected swap is a refusal, named by its peer. */
export type ClientEventDeps = Readonly<{
  log: Logger;
  refuse: (kind: "swap", peer: string | undefined, id: string, reason: string) => void;
  peerNameOf: (address: string | undefined) => string;
  swapCounterparty: (swapId: Hex) => string | undefined;
  /** A channel as an operator names it: its chain and peer, and its balances in token units, mine first. */
  describeChannel: (channelId: Hex, balances: readonly [bigint, bigint]) => Readonly<{ chain: string; peer: string; mine: string; theirs: string }> | undefined;
}>;

export class NodeEvents {
  private readonly subscribers = new Set<(e: NodeEvent) => void>();
  /** The last on-chain wait logged per channel: a wait repeated by every tick is logged once. */
  private readonly lastWait = new Map<string, string>();
  /** The last failed send said at warn, and when. */
  private lastSendFailure = { error: "", at: -Infinity };

  constructor(private readonly d: ClientEventDeps) {}

  subscribe(fn: (e: NodeEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Sends an event to every subscriber; one that throws is logged and leaves the others their event. */
  emit(type: string, fields: Record<string, unknown>): void {
    const e: NodeEvent = { time: new Date().toISOString(), type, ...fields };
    for (const fn of this.subscribers) {
      try {
        fn(e);
      } catch (error) {
        this.d.log.error({ event: "subscriberFailed", type, error: (error as Error).message?.split("\n")[0] }, `a subscriber of the node's events failed on a ${type} event`);
      }
    }
  }

  onClientEvent(e: ClientEvent): void {
    const fields = plain(e) as Record<string, unknown>;
    // Proposals this node refused are its refusals; its own proposals the peer refused end as aborted swaps.
    if (e.type === "rejected" && e.by === "us") this.d.refuse("swap", this.d.peerNameOf(e.counterparty ?? this.d.swapCounterparty(e.swapId)), e.swapId, e.reason);
    if (e.type === "chain" && e.step.kind === "waiting") {
      const text = `${e.step.until} ${e.step.why}`;
      if (this.lastWait.get(e.channelId) === text) return;
      this.lastWait.set(e.channelId, text);
    }
    if (e.type === "tickError") {
      this.d.log.debug({ event: "tickError", ...fields }, "tick step failed");
    } else if (e.type === "sendFailed") {
      // Every failed send while a peer is down would be a line: said at warn when the reason changes or a minute
      // has passed, at debug otherwise (the client resends on its ticks).
      const now = Date.now();
      const loud = e.error !== this.lastSendFailure.error || now - this.lastSendFailure.at >= 60_000;
      if (loud) this.lastSendFailure = { error: e.error, at: now };
      this.d.log[loud ? "warn" : "debug"]({ event: "sendFailed", ...fields }, `messages to a peer failed to leave: ${e.error}`);
    } else if (e.type === "caughtUp") {
      const c = this.d.describeChannel(e.channelId, e.balances);
      const named = c === undefined ? "" : ` on ${c.chain} with ${c.peer}`;
      const balances = c === undefined ? "" : `: mine ${c.mine}, theirs ${c.theirs}`;
      this.d.log.warn(
        { event: "caughtUp", ...(c === undefined ? {} : { chain: c.chain, peer: c.peer }), ...fields },
        `channel ${e.channelId}${named} caught up from its peer: it took the newest state both signed (number ${e.seq}${balances}) and signs again, numbered from ${e.floor}`,
      );
    } else if (e.type === "peerResumed") {
      const c = this.d.describeChannel(e.channelId, [0n, 0n]);
      const named = c === undefined ? "" : ` on ${c.chain} with ${c.peer}`;
      this.d.log.warn(
        { event: "peerResumed", ...(c === undefined ? {} : { chain: c.chain, peer: c.peer }), ...fields },
        `the peer of channel ${e.channelId}${named} was restored from a copy of its store and asked to catch up: shown the newest state both signed (number ${e.seq}); the channel is numbered from ${e.floor} on`,
      );
    } else {
      this.d.log.info({ event: e.type, ...fields }, e.type === "phase" ? `swap ${e.swapId.slice(0, 10)} ${phaseText(e.phase)}` : e.type);
    }
    this.emit(e.type, fields);
  }
}

/** A phase as the log shows it: its kind. */
function phaseText(phase: SwapPhase): string {
  return phase.kind;
}

/** An event as plain JSON: bigints as decimal strings. */
export function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
}
