/** The configured peers: by name, by address, and the one an outgoing envelope is for. */
import { sameAddress, type Hex } from "../core/types.js";
import { own } from "./config.js";
import { UsageError } from "./errors.js";
import type { NodeParts } from "./start.js";

/** An outgoing envelope as routing sees it: its session, a channel id. */
export type Routed = { swapId: Hex };

/**
 * A peer's link as this process saw it: "up" when the last exchange with it went through (an envelope of its came
 * in, or a request to it was answered 2xx) after the last request to it failed, "down" when a request to it failed
 * since, "unknown" before either. The node asks a peer nothing unprompted: a peer that went away shows "down" at the
 * next request to it (a swap, a close, a resend).
 */
export type PeerLinkState = "up" | "down" | "unknown";

export type PeerView = Readonly<{
  name: string;
  address: string;
  url: string;
  channels: number;
  link: PeerLinkState;
  /** When the last exchange that went through happened (ISO time), if any since the process started. */
  lastExchange?: string;
  /** When the last request to the peer failed (ISO time), if any since the process started. */
  lastFailure?: string;
}>;

export class PeerBook {
  /** `link` is the peer endpoint's; a standby has none (it exchanges nothing with peers): every link is "unknown" there. */
  constructor(private readonly d: Pick<NodeParts, "config" | "store" | "address"> & Readonly<{ link?: Pick<NodeParts["link"], "traffic"> }>) {}

  peers(): PeerView[] {
    const traffic = this.d.link?.traffic;
    return Object.entries(this.d.config.peers).map(([name, p]) => {
      const origin = new URL(p.url).origin;
      const times = [traffic?.lastSendOkAt.get(origin), traffic?.lastReceivedAt.get(p.address.toLowerCase())].filter((t) => t !== undefined);
      const ok = times.length === 0 ? undefined : Math.max(...times);
      const failed = traffic?.lastSendFailedAt.get(origin);
      const link: PeerLinkState = failed !== undefined && (ok === undefined || failed >= ok) ? "down" : ok !== undefined ? "up" : "unknown";
      return {
        name,
        address: p.address,
        url: p.url,
        channels: this.d.store.channels().filter((c) => sameAddress(c.params.participants[1 - c.myIndex]!, p.address)).length,
        link,
        ...(ok === undefined ? {} : { lastExchange: new Date(ok).toISOString() }),
        ...(failed === undefined ? {} : { lastFailure: new Date(failed).toISOString() }),
      };
    });
  }

  peer(name: string) {
    const p = own(this.d.config.peers, name);
    if (p === undefined) throw new UsageError(`peer: no peer ${name} in ${this.d.config.file} (known: ${Object.keys(this.d.config.peers).join(", ") || "none"})`);
    return { name, ...p };
  }

  peerNameOf(address: string | undefined): string {
    if (address === undefined) return "unknown";
    return Object.entries(this.d.config.peers).find(([, p]) => sameAddress(p.address, address))?.[0] ?? address;
  }

  swapCounterparty(swapId: Hex): string | undefined {
    const s = this.d.store.swap(swapId);
    if (s === undefined) return undefined;
    return sameAddress(s.terms.initiator, this.d.address) ? s.terms.responder : s.terms.initiator;
  }

  /** The URL of the peer an outgoing envelope is for: the other participant of its channel (every envelope's session). */
  peerUrlFor(e: Routed): string | undefined {
    const channel = this.d.store.channel(e.swapId);
    if (channel === undefined) return undefined;
    const other = channel.params.participants[1 - channel.myIndex]!;
    return Object.values(this.d.config.peers).find((p) => sameAddress(p.address, other))?.url;
  }
}
