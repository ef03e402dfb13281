/** The configured peers: by name, by address, and the one an outgoing envelope is for. */
import { sameAddress, type Hex } from "../core/types.js";
import { own } from "./config.js";
import { UsageError } from "./errors.js";
import type { NodeParts } from "./start.js";

/** An outgoing envelope as routing sees it: its session, a channel id. */
export type Routed = { swapId: Hex };

export class PeerBook {
  constructor(private readonly d: Pick<NodeParts, "config" | "store" | "address">) {}

  peers() {
    return Object.entries(this.d.config.peers).map(([name, p]) => ({
      name,
      address: p.address,
      url: p.url,
      channels: this.d.store.channels().filter((c) => sameAddress(c.params.participants[1 - c.myIndex]!, p.address)).length,
    }));
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
