/**
 * The peer endpoint: how nodes reach each other. One HTTP server per node serves
 *
 *   POST /peer/v1/envelopes          the SDK's signed messages, one JSON envelope per line (as HttpTransport)
 *   POST /peer/v1/channel-proposals  a channel opening: the opener's parameters, signed by the opener's key
 *
 * and sends to each peer's URL. The SDK's HttpTransport serves one peer and envelopes only; a node has several
 * peers and negotiates channels, so it routes each envelope to the peer its session belongs to (the counterparty
 * of the channel or the swap). Delivery is best effort, as for any transport: the client's tick resends.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { id as utf8Hash } from "ethers";

import { decode, encode } from "../core/codec.js";
import { ChannelSdkError } from "../core/errors.js";
import { decodeEnvelope, type Envelope } from "../core/messages.js";
import { recoverSigner } from "../core/signing.js";
import type { Address, ChannelParams, Hex } from "../core/types.js";
import type { StateSigner } from "../coordinator/signer.js";
import type { Transport } from "../coordinator/transport.js";

/** What an opener proposes: the channel's fixed parameters on one chain's hub. */
export type ChannelProposal = Readonly<{ chainId: bigint; hub: Address; params: ChannelParams }>;
export type SignedProposal = Readonly<{ proposal: ChannelProposal; from: Address; signature: Hex }>;

/** Domain tag of a proposal's digest: a proposal signature can never pass for a state or message signature. */
const PROPOSAL_TAG = "crosschain-channels/channel-proposal/1:";

export function proposalDigest(proposal: ChannelProposal): Hex {
  return utf8Hash(PROPOSAL_TAG + encode(proposal)) as Hex;
}

export function signProposal(signer: StateSigner, proposal: ChannelProposal): SignedProposal {
  return { proposal, from: signer.address as Address, signature: signer.sign(proposalDigest(proposal)) };
}

/** The answer to a proposal: accepted, or refused with the reason. */
export type ProposalAnswer = { accepted: true } | { accepted: false; reason: string };

const MAX_BODY = 1 << 20;

export class PeerLink implements Transport {
  private handler: ((e: Envelope) => Promise<void>) | undefined;
  /** Told of every envelope that could not be handled (the sender resends; a node counts these per peer). */
  onError: (error: unknown) => void = () => {};

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly route: (e: Envelope) => string | undefined,
    private readonly onProposal: (p: SignedProposal) => Promise<ProposalAnswer>,
  ) {}

  static async start(
    host: string,
    port: number,
    route: (e: Envelope) => string | undefined,
    onProposal: (p: SignedProposal) => Promise<ProposalAnswer>,
  ): Promise<PeerLink> {
    let link: PeerLink | undefined;
    const server = createServer((req, res) => void link?.receive(req, res));
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(port, host, () => ok());
    });
    const a = server.address();
    if (a === null || typeof a === "string") throw new ChannelSdkError("the peer endpoint has no port");
    link = new PeerLink(server, `http://${host}:${a.port}`, route, onProposal);
    return link;
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== "POST") return void res.writeHead(405).end();
      // Only a peer's JSON: a web page's form post (text/plain, no preflight) is turned away before it is read.
      const type = req.headers["content-type"] ?? "";
      if (!/^application\/(json|x-ndjson)\b/.test(type)) return void res.writeHead(415).end();
      const body = await readBody(req);
      if (req.url === "/peer/v1/envelopes") {
        if (this.handler === undefined) return void res.writeHead(503).end("not listening");
        res.writeHead(202).end();
        for (const line of body.split("\n")) {
          if (line.trim() === "") continue;
          try {
            await this.handler(decodeEnvelope(line));
          } catch (error) {
            this.onError(error);
          }
        }
        return;
      }
      if (req.url === "/peer/v1/channel-proposals") {
        const signed = decode<SignedProposal>(body);
        const answer = await this.onProposal(signed);
        res.writeHead(answer.accepted ? 200 : 403, { "content-type": "application/json" }).end(JSON.stringify(answer));
        return;
      }
      res.writeHead(404).end();
    } catch (error) {
      // A stranger learns only that the request was malformed, never our paths or internals.
      if (!res.headersSent) res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ accepted: false, reason: "malformed request" }));
    }
  }

  /** Who signed a proposal, if the signature is the claimed sender's. */
  static signerOf(p: SignedProposal): string | undefined {
    return recoverSigner(proposalDigest(p.proposal), p.signature);
  }

  send(envelope: Envelope): Promise<void> {
    return this.sendMany([envelope]);
  }

  async sendMany(envelopes: readonly Envelope[]): Promise<void> {
    const byPeer = new Map<string, string>();
    for (const e of envelopes) {
      const url = this.route(e);
      if (url === undefined) continue; // no peer known for it: nothing to send to
      byPeer.set(url, (byPeer.get(url) ?? "") + encode(e) + "\n");
    }
    await Promise.all(
      [...byPeer].map(async ([url, text]) => {
        const res = await fetch(new URL("/peer/v1/envelopes", url), {
          method: "POST",
          headers: { "content-type": "application/x-ndjson" },
          body: text,
          signal: AbortSignal.timeout(10_000),
        });
        if (!res.ok) throw new ChannelSdkError(`peer ${new URL(url).origin} answered ${res.status}`);
      }),
    );
  }

  /** Sends a signed channel proposal to the peer at `url` and returns its answer. */
  static async propose(url: string, signed: SignedProposal): Promise<ProposalAnswer> {
    let res: Response;
    try {
      res = await fetch(new URL("/peer/v1/channel-proposals", url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: encode(signed),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (error) {
      throw new ChannelSdkError(`cannot reach the peer at ${new URL(url).origin}: ${(error as Error).message}`);
    }
    const answer = (await res.json().catch(() => undefined)) as ProposalAnswer | undefined;
    if (answer === undefined) throw new ChannelSdkError(`the peer at ${new URL(url).origin} answered ${res.status} without a reason`);
    return answer;
  }

  listen(handler: (envelope: Envelope) => Promise<void>): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.handler = undefined;
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      text += c;
      if (text.length > MAX_BODY) {
        req.destroy();
        fail(new ChannelSdkError("request too large"));
      }
    });
    req.on("end", () => ok(text));
    req.on("error", fail);
  });
}
