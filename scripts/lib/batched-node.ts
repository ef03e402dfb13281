/**
 * One party of `npm run bench:batched -- --http`: a `Counterparty` on its own SQLite store, talking to the other
 * party's process over `HttpTransport` in signed envelopes. Terms are agreed as the step protocol does (the initiator
 * proposes the terms with its signature, the responder accepts with its own), many swaps per envelope and one store
 * step for all of them, then the pair runs the swaps in batches.
 * No chain: the channels are given (ids, deposits), as a pair that is open and funded.
 */
import { randomBytes } from "node:crypto";

import { hexlify } from "ethers";

import { changeHashlock } from "../../sdk/core/channel-updates.js";
import { decode } from "../../sdk/core/codec.js";
import { requireSignedBy } from "../../sdk/core/signing.js";
import { seal, unseal, type Envelope } from "../../sdk/core/messages.js";
import { checkTermsShape, hashlockOf, termsDigest, type SwapTerms } from "../../sdk/core/swap.js";
import { newSide, settled } from "../../sdk/core/swap-rules.js";
import type { Hex, ParticipantIndex } from "../../sdk/core/types.js";
import { Counterparty } from "../../sdk/coordinator/counterparty.js";
import { keySigner } from "../../sdk/coordinator/signer.js";
import { HttpTransport } from "../../sdk/coordinator/transport.js";
import { Store } from "../../sdk/store/store.js";
import { CHAIN, HUB, pairTerms, S, T } from "./batched-pair.js";

/** The most proposals one envelope carries (and the responder reads). */
const MAX_PROPOSALS = 512;

export type BatchedNodeConfig = Readonly<{
  role: "initiator" | "responder";
  privateKey: string;
  peerAddress: string;
  store: string;
  durability: "power" | "crash";
  deposit: bigint;
}>;

/** Counts of the cryptography a party did: signatures made and recovered, by kind. */
export type CryptoCounts = { stateSigns: number; envelopeSigns: number; termsSigns: number; recoveries: number };

export class BatchedNode {
  readonly transport: HttpTransport;
  readonly pair: Counterparty;
  readonly store: Store;
  readonly counts: CryptoCounts = { stateSigns: 0, envelopeSigns: 0, termsSigns: 0, recoveries: 0 };
  private readonly signer;
  private readonly address: string;
  /** Initiator: swaps proposed and not yet accepted, by swap id (their secret). */
  private readonly proposed = new Map<string, { terms: SwapTerms; secret: Hex }>();
  private readonly waiting = new Map<string, () => void>();
  /** Initiator: proposals of this turn of the event loop, sent together. */
  private readonly outbox: { terms: SwapTerms; termsSig: Hex }[] = [];
  private timer: NodeJS.Timeout | undefined;

  private constructor(readonly config: BatchedNodeConfig, transport: HttpTransport) {
    this.transport = transport;
    const key = keySigner(config.privateKey);
    this.address = key.address;
    this.signer = key;
    this.store = new Store(config.store, { durability: config.durability });
    // The pair of batched-pair.ts: the initiator (Alice) is participant 0 of S, the responder (Bob) of T.
    const me = (id: Hex): ParticipantIndex => ((config.role === "initiator") === (id === S) ? 0 : 1);
    for (const channelId of [S, T]) {
      const chainId = CHAIN[channelId]!;
      const participants = me(channelId) === 0 ? [this.address, config.peerAddress] : [config.peerAddress, this.address];
      const params = { participants, payees: [participants[0], participants[1]], asset: "0x0000000000000000000000000000000000000000", challengePeriod: 3600n, nonce: 1n };
      this.store.saveChannel({ ref: { chainId, hub: HUB, channelId }, params: params as never, myIndex: me(channelId), openingDeposits: [config.deposit, config.deposit] });
    }
    const stateSigner = { address: this.address, sign: (digest: Hex) => (this.counts.stateSigns++, key.sign(digest)) };
    this.pair = new Counterparty({
      store: this.store,
      signer: stateSigner,
      channels: [S, T],
      send: (channelId, message) => void this.send(channelId, { step: "batch", message }),
      onEvent: (_channelId, event) => {
        if (event.type !== "cosigned") return;
        for (const c of event.changes) {
          const side = this.pair.side(changeHashlock(c) as Hex);
          if (side !== undefined && settled(side)) {
            this.waiting.get(side.terms.swapId.toLowerCase())?.();
            this.waiting.delete(side.terms.swapId.toLowerCase());
          }
        }
      },
    });
    transport.listen(async (envelope) => this.receive(envelope));
  }

  static async start(config: BatchedNodeConfig): Promise<BatchedNode> {
    const node = new BatchedNode(config, await HttpTransport.start());
    node.timer = setInterval(() => node.pair.tick(), 200);
    return node;
  }

  private send(sessionId: Hex, body: Envelope["body"]): Promise<void> {
    this.counts.envelopeSigns++;
    return this.transport.send(seal((d) => this.signer.sign(d), this.address, sessionId, body)).catch(() => undefined);
  }

  private async receive(envelope: Envelope) {
    this.counts.recoveries++;
    const body = unseal(envelope, this.config.peerAddress);
    if (body.step === "batch") {
      // The message's own fields are decoded from JSON: bigints and hex as the codec gives them.
      this.pair.handle(envelope.swapId, body.message);
      if (body.message.kind === "update" || body.message.kind === "ack") this.counts.recoveries++;
      return;
    }
    if (body.step === "proposals" && this.config.role === "responder") {
      // Every proposal of the envelope checked and signed, all agreed in one step, answered in one envelope.
      const sides = [];
      const refusals: { swapId: Hex; refusal: string }[] = [];
      for (const { terms, termsSig } of body.items.slice(0, MAX_PROPOSALS)) {
        try {
          checkTermsShape(terms);
          this.counts.recoveries++;
          requireSignedBy("swap terms", this.config.peerAddress, termsDigest(terms), termsSig);
          if (terms.responder.toLowerCase() !== this.address.toLowerCase()) throw new Error("the terms name another responder");
          sides.push(newSide(terms, "responder", { source: 0, target: 0 }));
        } catch (error) {
          refusals.push({ swapId: terms.swapId, refusal: (error as Error).message });
        }
      }
      const { agreed, refused } = this.pair.agreeAll(sides);
      const items = [
        ...agreed.map((side) => {
          this.counts.termsSigns++;
          return { swapId: side.terms.swapId, termsSig: this.signer.sign(termsDigest(side.terms)) };
        }),
        ...refused.map((r) => ({ swapId: r.side.terms.swapId, refusal: r.reason })),
        ...refusals,
      ];
      await this.send(S, { step: "acceptances", items });
      return;
    }
    if (body.step === "acceptances" && this.config.role === "initiator") {
      const sides = [];
      for (const item of body.items) {
        const p = this.proposed.get(item.swapId.toLowerCase());
        if (p === undefined || item.termsSig === undefined) continue;
        this.counts.recoveries++;
        requireSignedBy("swap terms", this.config.peerAddress, termsDigest(p.terms), item.termsSig);
        this.proposed.delete(item.swapId.toLowerCase());
        sides.push(newSide(p.terms, "initiator", { source: 0, target: 0 }, p.secret));
      }
      if (sides.length > 0) this.pair.agreeAll(sides);
    }
  }

  /** Initiator: proposes a swap of `give` on S for `take` on T; resolves once it is settled here. */
  swap(give: bigint, take: bigint): Promise<void> {
    const secret = hexlify(randomBytes(32)) as Hex;
    const hashlock = hashlockOf(secret);
    const swapId = hexlify(randomBytes(32)) as Hex;
    const terms = pairTerms({ swapId, source: S, initiator: this.address, responder: this.config.peerAddress, give, take, hashlock });
    this.proposed.set(swapId.toLowerCase(), { terms, secret });
    const done = new Promise<void>((resolve) => this.waiting.set(swapId.toLowerCase(), resolve));
    this.counts.termsSigns++;
    // Proposals made in one turn of the event loop leave together, in envelopes of up to MAX_PROPOSALS.
    this.outbox.push({ terms, termsSig: this.signer.sign(termsDigest(terms)) });
    if (this.outbox.length === 1) {
      setImmediate(() => {
        const all = this.outbox.splice(0, this.outbox.length);
        for (let i = 0; i < all.length; i += MAX_PROPOSALS) void this.send(S, { step: "proposals", items: all.slice(i, i + MAX_PROPOSALS) });
      });
    }
    return done;
  }

  async close() {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.transport.close();
    this.store.close();
  }
}

/** Decodes the BATCHED_NODE environment variable of a peer process. */
export function peerConfig(text: string): BatchedNodeConfig {
  return decode<BatchedNodeConfig>(text);
}
