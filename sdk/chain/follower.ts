/**
 * Following one chain the way indexers do: the head block once per step, and the hub's and its registry's logs for
 * the blocks since the last step in one `eth_getLogs` (both addresses at once). A step says which channels a log
 * concerns, so a client reads a channel's state only then, and what it costs does not grow with the number of
 * channels: one request per step while no block comes, two per new block.
 *
 * Reorganisations: each step reads again the `window` blocks below the last head it read (by default the chain's
 * confirmations, at least FOLLOW_MIN_WINDOW). A log seen before that is gone from them, or a new one in them,
 * concerns its channel again, so a reorganisation up to that depth is caught; a deeper one is not seen here.
 */
import type { Log } from "ethers";

import { ChannelSdkError } from "../core/errors.js";
import type { Hex } from "../core/types.js";
import type { HubAdapter } from "./hub.js";

/** A block the follower read as the chain's head. */
export type Head = Readonly<{ number: number; hash: string; timestamp: bigint }>;

/** What one step of a follower found. */
export type FollowStep = Readonly<{
  head: Head;
  /**
   * Every channel is to be read again: the first step (nothing is known of the time before it), or after a gap
   * longer than the follower reads logs for (an outage of the endpoint, say).
   */
  all: boolean;
  /** Lower-case ids of the channels a log concerns that is new since the last step, or gone (reorganised out). */
  channels: ReadonlySet<string>;
  /** Secrets the registry logged that are new since the last step. */
  reveals: readonly Readonly<{ hashlock: Hex; secret: Hex; blockNumber: number }>[];
  /** Whether a log seen in an earlier step is no longer on the chain. */
  reorganised: boolean;
}>;

export type FollowerOptions = Readonly<{
  /** Blocks below the last head read again at each step (default: the chain's confirmations, at least FOLLOW_MIN_WINDOW). */
  window?: number;
  /** Most blocks one `eth_getLogs` asks for (default 1,000: public endpoints commonly refuse much wider ranges). */
  maxRange?: number;
  /** Most `eth_getLogs` requests one step makes to catch up; a longer gap sets `all` instead (default 20). */
  maxRequests?: number;
  /**
   * The window also covers at least this many seconds of blocks (default FOLLOW_WINDOW_SECONDS), at the block time
   * seen so far, up to `maxRange` blocks: an endpoint whose logs lag its head by that long still shows each log.
   */
  windowSeconds?: number;
}>;

/**
 * Default of FollowerOptions.windowSeconds: ten minutes of blocks read again at each step (still one request), so a
 * log an endpoint indexes late (a backend of a load balancer behind the one that answers the head) is seen, well
 * within the hub's least challenge period (300 s is its floor; nodes accept 3,600 s by default).
 */
export const FOLLOW_WINDOW_SECONDS = 600;

/** Default of FollowerOptions.maxRange. */
export const FOLLOW_MAX_RANGE = 1_000;
/**
 * The least window by default, whatever the confirmations: reading a log again costs nothing (it is one request
 * either way, and a log seen is not news), and an endpoint behind a load balancer may answer the head from a node a
 * block or two ahead of the one that answers the logs.
 */
export const FOLLOW_MIN_WINDOW = 4;

type Seen = { channel: string | undefined; blockNumber: number };

export class ChainFollower {
  private last: Head | undefined;
  /** Logs read in the window, by block hash and log index. */
  private seen = new Map<string, Seen>();
  private readonly window: number;
  /** Narrowed (halved) when the endpoint refuses a range: what it takes, from then on. */
  private maxRange: number;
  private readonly windowSeconds: number;
  /** The first head read: with the last, the chain's block time. */
  private first: Head | undefined;
  private readonly maxRequests: number;
  /** Topics of the hub's events whose first indexed argument is a channel id. */
  private readonly channelTopics: ReadonlySet<string>;
  private readonly revealTopic: string;

  constructor(
    readonly chain: HubAdapter,
    options: FollowerOptions = {},
  ) {
    this.window = options.window ?? Math.max(FOLLOW_MIN_WINDOW, chain.confirmations);
    this.maxRange = options.maxRange ?? FOLLOW_MAX_RANGE;
    this.windowSeconds = options.windowSeconds ?? FOLLOW_WINDOW_SECONDS;
    this.maxRequests = options.maxRequests ?? 20;
    if (!Number.isSafeInteger(this.window) || this.window < 1 || !(this.maxRange >= 1) || !(this.maxRequests >= 1)) {
      throw new ChannelSdkError("ChainFollower: window, maxRange and maxRequests must be whole numbers of at least 1");
    }
    const topics = new Set<string>();
    chain.hub.interface.forEachEvent((e) => {
      if (e.inputs[0]?.name === "channelId" && e.inputs[0].indexed) topics.add(e.topicHash);
    });
    this.channelTopics = topics;
    this.revealTopic = chain.registry.interface.getEvent("SecretRevealed").topicHash;
  }

  /** The head the last step read, if any. */
  get head(): Head | undefined {
    return this.last;
  }

  /**
   * Reads the head (one request); when it moved, reads the logs of both contracts from the window below the last
   * head up to it (one request, more only to catch up after a gap) and tells the chain's adapter the head's time
   * (`HubAdapter.observeHead`). Throws what the endpoint throws; nothing is taken from a step that failed.
   */
  async step(): Promise<FollowStep> {
    const block = await this.chain.provider.getBlock("latest");
    if (block === null || block.hash === null) throw new ChannelSdkError(`chain ${this.chain.chainId}: the endpoint returned no latest block`);
    const head: Head = { number: block.number, hash: block.hash, timestamp: BigInt(block.timestamp) };
    this.chain.observeHead(head.timestamp);
    const last = this.last;
    const none = { head, all: false, channels: new Set<string>(), reveals: [], reorganised: false } as const;
    if (last !== undefined && last.number === head.number && last.hash === head.hash) return none;
    this.first ??= head;
    const window = this.windowAt(head);
    let from = Math.max(0, (last === undefined ? head.number : Math.min(last.number, head.number - 1) + 1) - window);
    let all = last === undefined;
    if (head.number - from + 1 > this.maxRange * this.maxRequests) {
      // Too far behind to read every log: every channel is read again instead, and the window seeds what is seen.
      all = true;
      from = Math.max(0, head.number + 1 - window);
    }
    const logs: Log[] = [];
    for (let start = from; start <= head.number; ) {
      const end = Math.min(head.number, start + this.maxRange - 1);
      try {
        logs.push(...(await this.chain.provider.getLogs({ address: [this.chain.hubAddress, this.chain.registryAddress], fromBlock: start, toBlock: end })));
        start = end + 1;
      } catch (error) {
        // An endpoint that caps the range of a query: half of it, from then on, down to a block (then its error).
        if (end === start) throw error;
        this.maxRange = Math.max(1, Math.floor((end - start + 1) / 2));
      }
    }
    const channels = new Set<string>();
    const reveals: { hashlock: Hex; secret: Hex; blockNumber: number }[] = [];
    const now = new Map<string, Seen>();
    for (const log of logs) {
      const key = `${log.blockHash.toLowerCase()}:${log.index}`;
      const channel = this.channelOf(log);
      now.set(key, { channel, blockNumber: log.blockNumber });
      if (this.seen.has(key) || all) continue;
      if (channel !== undefined) channels.add(channel);
      const reveal = this.revealOf(log);
      if (reveal !== undefined) reveals.push({ ...reveal, blockNumber: log.blockNumber });
    }
    let reorganised = false;
    for (const [key, s] of this.seen) {
      if (s.blockNumber < from || now.has(key)) continue;
      reorganised = true;
      if (s.channel !== undefined) channels.add(s.channel);
    }
    // What the next step reads again: the window below this head.
    const keep = head.number + 1 - window;
    this.seen = new Map([...now].filter(([, s]) => s.blockNumber >= keep));
    this.last = head;
    return { head, all, channels, reveals, reorganised };
  }

  /** Blocks read again below the last head: the configured ones, or `windowSeconds` of blocks, up to `maxRange`. */
  private windowAt(head: Head): number {
    const f = this.first;
    if (f === undefined || head.number <= f.number) return this.window;
    // Blocks faster than a second each (or sharing timestamps): the widest range the endpoint takes.
    const perBlock = Number(head.timestamp > f.timestamp ? head.timestamp - f.timestamp : 0n) / (head.number - f.number);
    const blocks = perBlock === 0 ? this.maxRange : Math.ceil(this.windowSeconds / perBlock);
    return Math.max(this.window, Math.min(this.maxRange, blocks));
  }

  private channelOf(log: Log): string | undefined {
    if (log.address.toLowerCase() !== this.chain.hubAddress.toLowerCase()) return undefined;
    const [topic, channelId] = log.topics;
    return topic !== undefined && channelId !== undefined && this.channelTopics.has(topic) ? channelId.toLowerCase() : undefined;
  }

  private revealOf(log: Log): { hashlock: Hex; secret: Hex } | undefined {
    if (log.address.toLowerCase() !== this.chain.registryAddress.toLowerCase() || log.topics[0] !== this.revealTopic) return undefined;
    const parsed = this.chain.registry.interface.parseLog(log);
    return parsed === null ? undefined : { hashlock: parsed.args.hashlock as Hex, secret: parsed.args.secret as Hex };
  }
}
