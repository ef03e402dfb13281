import { ChainFollower, type Head } from "../chain/follower.js";
import type { ChannelInfo, HubAdapter } from "../chain/hub.js";
import type { Hex } from "../core/types.js";

const lower = (h: string) => h.toLowerCase();

/**
 * What a client's ticks know of its chains: each chain followed by a ChainFollower (a head and one `eth_getLogs` per
 * new block), and each channel's state on chain as last read, read again only once a log concerns it (or a
 * reorganisation took one out), when the follower had to start over, or when asked for the first time. A tick's
 * reads therefore cost a few requests per block and chain, not one per channel.
 */
export class Following {
  private readonly followers = new Map<bigint, ChainFollower>();
  /**
   * By lower-case channel id: its chain and what the hub stored at the latest block when it was read, or the read
   * under way (ticks may overlap: a second one waits for the first one's read instead of asking again).
   */
  private readonly known = new Map<string, { chainId: bigint; info: Promise<ChannelInfo> }>();

  constructor(private readonly chain: (chainId: bigint) => HubAdapter) {}

  /**
   * One step of the follower of each of `chainIds`: the head it read, or the error it met (the others go on). The
   * channels a new or vanished log concerns are forgotten, to be read at their next `info`.
   */
  async step(chainIds: Iterable<bigint>): Promise<Map<bigint, Head | Error>> {
    const heads = new Map<bigint, Head | Error>();
    for (const chainId of chainIds) {
      try {
        let follower = this.followers.get(chainId);
        if (follower === undefined) this.followers.set(chainId, (follower = new ChainFollower(this.chain(chainId))));
        const step = await follower.step();
        if (step.all) {
          for (const [id, k] of this.known) if (k.chainId === chainId) this.known.delete(id);
        } else {
          for (const id of step.channels) this.known.delete(id);
        }
        heads.set(chainId, step.head);
      } catch (error) {
        heads.set(chainId, error instanceof Error ? error : new Error(String(error)));
      }
    }
    return heads;
  }

  /**
   * What the hub stores about `channelId` at the latest block: as last read (or being read), unless a log concerned
   * it since. A read that fails is forgotten, so the next call asks again.
   */
  info(chainId: bigint, channelId: Hex): Promise<ChannelInfo> {
    const key = lower(channelId);
    const had = this.known.get(key);
    if (had !== undefined) return had.info;
    const entry = { chainId, info: this.chain(chainId).channelInfo(channelId) };
    this.known.set(key, entry);
    entry.info.catch(() => {
      if (this.known.get(key) === entry) this.known.delete(key);
    });
    return entry.info;
  }

  /** Drops what is known of channels no longer followed (closed, or on chain and driven by their own reads). */
  keepOnly(channelIds: ReadonlySet<string>): void {
    for (const id of this.known.keys()) if (!channelIds.has(id)) this.known.delete(id);
  }
}
