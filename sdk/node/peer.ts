/**
 * The peer endpoint: how nodes reach each other. One HTTP server per node serves
 *
 *   POST /peer/v1/envelopes          the SDK's signed messages, one JSON envelope per line (as HttpTransport)
 *   POST /peer/v1/channel-proposals  a channel opening: the opener's parameters, signed by the opener's key
 *
 * and sends to each peer's URL. The SDK's HttpTransport serves one peer and envelopes only; a node has several
 * peers and negotiates channels, so it routes each envelope to the peer its session belongs to (the counterparty
 * of the channel or the swap). Delivery is best effort, as for any transport: the client's tick resends.
 *
 * Anyone can reach the endpoint, so it is bounded before it costs (PeerLimits): connections in all and per source
 * address, requests at once, the time a request may take, the size of a body, and the envelopes waiting for the
 * client per peer and in all. It answers only to the names it listens as (Host) and never to a browser (Origin).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";
import { id as utf8Hash } from "ethers";
import { z } from "zod";

import { decode, encode } from "../core/codec.js";
import { ChannelSdkError } from "../core/errors.js";
import { decodeEnvelope, type Envelope, type SwapStep } from "../core/messages.js";
import { recoverSigner } from "../core/signing.js";
import type { Address, ChannelParams, Hex } from "../core/types.js";
import type { StateSigner } from "../coordinator/signer.js";
import type { Transport } from "../coordinator/transport.js";
import { hostAllowed, listenerHosts } from "./hosts.js";

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

/** The largest request body the peer endpoint reads: 413, unread when its Content-Length is larger, else once past it. */
export const MAX_BODY = 1 << 20;
/** The least time between two log lines about requests and connections turned away at the limits. */
const LIMIT_LOG_MS = 10_000;

/**
 * What the peer endpoint takes from the network at once (docs/NODE.md, "Limits on the peer port"): whatever a
 * stranger sends, the node keeps descriptors, memory and its event loop for its chains and its store.
 */
export type PeerLimits = Readonly<{
  /** Connections open at once, all sources together; past it new ones are closed as they come. */
  maxConnections: number;
  /** Connections open at once from one source address. */
  maxConnectionsPerAddress: number;
  /** Requests being read or answered at once; past it a request is answered 503 before its body is read. */
  maxRequests: number;
  /** Time for a whole request, headers and body, from its connection or its previous request (408 past it). */
  requestTimeoutMs: number;
  /** Envelopes a configured peer has sent that wait for the client (past it: 429, the rest of the request dropped). */
  maxQueuedPerPeer: number;
  /** Characters of envelopes waiting for the client, all peers together (past it: 503). */
  maxQueuedChars: number;
}>;

export const DEFAULT_PEER_LIMITS: PeerLimits = {
  maxConnections: 256,
  maxConnectionsPerAddress: 16,
  maxRequests: 32,
  requestTimeoutMs: 5_000,
  maxQueuedPerPeer: 4_096,
  maxQueuedChars: 16 << 20,
};

/** What turned a connection or a request away, as `onLimit` counts it. */
export type PeerLimitName = "maxConnections" | "maxConnectionsPerAddress" | "maxRequests" | "requestTimeout" | "maxQueuedPerPeer" | "maxQueuedChars";

/** Every step of the protocol: an envelope naming another is refused before it is queued. */
const STEPS: Readonly<Record<SwapStep, true>> = { batch: true, proposals: true, acceptances: true };

/**
 * The shape of an envelope as it comes off the wire, checked before it waits for the client: only what costs
 * nothing to check. The client checks the body and the signature in full when it handles the envelope.
 */
const EnvelopeShape = z.strictObject({
  swapId: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
  from: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/),
  body: z.looseObject({ step: z.enum(Object.keys(STEPS) as [SwapStep, ...SwapStep[]]) }),
});

/** How the peer endpoint listens, and whom it takes envelopes from. */
export type PeerLinkOptions = Readonly<{
  host: string;
  port: number;
  /** The URL peers reach this node at, when it is not http://host:port (a DNS name, a proxy): advertised, and accepted as Host. */
  publicUrl?: string;
  limits?: PeerLimits;
  /** Whether an envelope's `from` is one of the node's configured peers (lower-case address). */
  isPeer: (address: string) => boolean;
  route: (e: Envelope) => string | undefined;
  onProposal: (p: SignedProposal) => Promise<ProposalAnswer>;
}>;

export class PeerLink implements Transport {
  private handler: ((e: Envelope) => Promise<void>) | undefined;
  /** Told of every envelope that could not be handled (the sender resends; a node counts these per peer). */
  onError: (error: unknown) => void = () => {};
  /**
   * Told of the connections and requests turned away at a limit, counted by limit: at once for the first, then at
   * most once per 10 s with what was turned away since.
   */
  onLimit: (turnedAway: Readonly<Partial<Record<PeerLimitName, number>>>) => void = () => {};
  private readonly limits: PeerLimits;
  private readonly allowedHosts: ReadonlySet<string>;
  /** Open connections per source address. */
  private readonly connections = new Map<string, number>();
  /** Requests being read or answered. */
  private requests = 0;
  /** Envelopes waiting for the client, per sending peer (lower-case address), and their characters in all. */
  private readonly queued = new Map<string, number>();
  private queuedChars = 0;
  private readonly turnedAway = new Map<PeerLimitName, number>();
  private lastLimitLog = 0;
  private limitLogTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    port: number,
    private readonly options: PeerLinkOptions,
  ) {
    this.limits = options.limits ?? DEFAULT_PEER_LIMITS;
    this.allowedHosts = listenerHosts(options.host, port, options.publicUrl === undefined ? [] : [options.publicUrl]);
  }

  static async start(options: PeerLinkOptions): Promise<PeerLink> {
    const limits = options.limits ?? DEFAULT_PEER_LIMITS;
    let link: PeerLink | undefined;
    // The whole request within requestTimeoutMs: a connection that sends nothing, headers or a body trickled a
    // byte at a time hold a descriptor that long at most (checked every second rather than Node's 30 s).
    const server = createServer(
      { headersTimeout: limits.requestTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 },
      (req, res) => void link?.receive(req, res),
    );
    server.maxConnections = limits.maxConnections;
    server.on("drop", () => link?.limitHit("maxConnections"));
    server.on("connection", (socket) => link?.admitConnection(socket));
    server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
      const timeout = error.code === "ERR_HTTP_REQUEST_TIMEOUT";
      if (timeout) link?.limitHit("requestTimeout");
      if (socket.writable) socket.end(`HTTP/1.1 ${timeout ? "408 Request Timeout" : "400 Bad Request"}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      socket.destroy();
    });
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(options.port, options.host, () => ok());
    });
    const a = server.address();
    if (a === null || typeof a === "string") throw new ChannelSdkError("the peer endpoint has no port");
    const host = options.host.includes(":") ? `[${options.host}]` : options.host;
    link = new PeerLink(server, options.publicUrl ?? `http://${host}:${a.port}`, a.port, options);
    return link;
  }

  /** Counts a connection against its source address's share; one past it is closed at once. */
  private admitConnection(socket: Socket): void {
    const from = socket.remoteAddress ?? "";
    const open = this.connections.get(from) ?? 0;
    if (open >= this.limits.maxConnectionsPerAddress) {
      this.limitHit("maxConnectionsPerAddress");
      socket.destroy();
      return;
    }
    this.connections.set(from, open + 1);
    socket.once("close", () => {
      const left = (this.connections.get(from) ?? 1) - 1;
      if (left === 0) this.connections.delete(from);
      else this.connections.set(from, left);
    });
  }

  /** Counts what a limit turned away, and reports the counts at most once per LIMIT_LOG_MS. */
  private limitHit(limit: PeerLimitName): void {
    this.turnedAway.set(limit, (this.turnedAway.get(limit) ?? 0) + 1);
    const wait = this.lastLimitLog + LIMIT_LOG_MS - Date.now();
    if (wait <= 0) this.reportLimits();
    else this.limitLogTimer ??= setTimeout(() => this.reportLimits(), wait).unref();
  }

  private reportLimits(): void {
    clearTimeout(this.limitLogTimer);
    this.limitLogTimer = undefined;
    if (this.turnedAway.size === 0) return;
    this.lastLimitLog = Date.now();
    const counts = Object.fromEntries(this.turnedAway);
    this.turnedAway.clear();
    this.onLimit(counts);
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Refused before anything is read: the body of a refused request is never taken (the connection closes).
    const refuse = (status: number, headers: Record<string, string> = {}) => void res.writeHead(status, { connection: "close", ...headers }).end();
    // A request to another name than this node's (DNS rebinding), or from a browser (peers send no Origin).
    if (!hostAllowed(this.allowedHosts, req.headers.host)) return refuse(421);
    if (req.headers.origin !== undefined) return refuse(403);
    if (req.method !== "POST") return refuse(405);
    // Only a peer's JSON: a web page's form post (text/plain, no preflight) is turned away before it is read.
    const type = req.headers["content-type"] ?? "";
    if (!/^application\/(json|x-ndjson)\b/.test(type)) return refuse(415);
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY) return refuse(413);
    if (req.url !== "/peer/v1/envelopes" && req.url !== "/peer/v1/channel-proposals") return refuse(404);
    if (req.url === "/peer/v1/envelopes" && this.handler === undefined) return refuse(503);
    if (this.requests >= this.limits.maxRequests) {
      this.limitHit("maxRequests");
      return refuse(503, { "retry-after": "1" });
    }
    this.requests++;
    try {
      if (req.url === "/peer/v1/envelopes") return await this.receiveEnvelopes(req, res, refuse);
      const answer = await this.options.onProposal(decode<SignedProposal>(await readBody(req)));
      res.writeHead(answer.accepted ? 200 : 403, { "content-type": "application/json" }).end(JSON.stringify(answer));
    } catch {
      // A stranger learns only that the request was malformed, never our paths or internals.
      if (!res.headersSent) res.writeHead(400, { "content-type": "application/json", connection: "close" }).end(JSON.stringify({ accepted: false, reason: "malformed request" }));
    } finally {
      this.requests--;
    }
  }

  /**
   * Takes a body of envelopes, one per line, each as its line arrives, so that a request holds no more than the
   * line being read. An envelope is checked for what costs nothing (its shape, a configured peer as its sender),
   * then queued within its sender's share and the queue's size, and handed to the client in the order of its
   * request. The answer is 202 once the whole body is taken. Else the request is answered at once and the rest of
   * it left unread: 400 at a line that is not an envelope, 403 at one from outside the configured peers, 413 past
   * MAX_BODY, 429 (the sender's share full) or 503 (the queue full) with Retry-After; what was queued before stays
   * queued, the sender's tick resends the rest.
   */
  private receiveEnvelopes(req: IncomingMessage, res: ServerResponse, refuse: (status: number, headers?: Record<string, string>) => void): Promise<void> {
    const handler = this.handler!;
    let handled = Promise.resolve();
    return new Promise<void>((done) => {
      const text = new StringDecoder("utf8");
      let partial = "";
      let bytes = 0;
      const stop = (status: number) => {
        refuse(status, status === 429 || status === 503 ? { "retry-after": "1" } : {});
        req.removeAllListeners("data"); // the rest is not read: the connection closes with the answer
        done();
      };
      /** Queues the envelope of one line; else the status to refuse the request with. */
      const take = (line: string): number | undefined => {
        if (line.trim() === "") return undefined;
        let envelope: Envelope;
        try {
          envelope = decodeEnvelope(line);
        } catch {
          return 400;
        }
        if (!EnvelopeShape.safeParse(envelope).success) return 400;
        const peer = envelope.from.toLowerCase();
        if (!this.options.isPeer(peer)) return 403;
        const waiting = this.queued.get(peer) ?? 0;
        const full = waiting >= this.limits.maxQueuedPerPeer ? "maxQueuedPerPeer" : this.queuedChars + line.length > this.limits.maxQueuedChars ? "maxQueuedChars" : undefined;
        if (full !== undefined) {
          this.limitHit(full);
          return full === "maxQueuedPerPeer" ? 429 : 503;
        }
        this.queued.set(peer, waiting + 1);
        this.queuedChars += line.length;
        handled = handled.then(() => this.handleQueued(handler, envelope, peer, line.length));
        return undefined;
      };
      req.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_BODY) return stop(413);
        const lines = (partial + text.write(chunk)).split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          const refused = take(line);
          if (refused !== undefined) return stop(refused);
        }
      });
      req.on("end", () => {
        if (res.headersSent) return;
        const refused = take(partial + text.end());
        if (refused !== undefined) return stop(refused);
        res.writeHead(202).end();
        done();
      });
      req.on("close", () => done()); // cut off by the sender or a timeout
    });
  }

  /** Hands one queued envelope to the client; it leaves the queue once handled. */
  private async handleQueued(handler: (e: Envelope) => Promise<void>, envelope: Envelope, peer: string, chars: number): Promise<void> {
    try {
      await handler(envelope);
    } catch (error) {
      this.onError(error);
    } finally {
      const left = (this.queued.get(peer) ?? 1) - 1;
      if (left === 0) this.queued.delete(peer);
      else this.queued.set(peer, left);
      this.queuedChars -= chars;
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
      const url = this.options.route(e);
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
    clearTimeout(this.limitLogTimer);
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

/** A request's body as text, up to MAX_BODY bytes; rejects if it is longer or the connection ends before it does. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      bytes += c.length;
      chunks.push(c);
      if (bytes > MAX_BODY) {
        req.destroy();
        fail(new ChannelSdkError("request too large"));
      }
    });
    req.on("end", () => ok(Buffer.concat(chunks).toString("utf8")));
    req.on("error", fail);
    req.on("close", () => fail(new ChannelSdkError("the connection closed before the request ended"))); // no-op after "end"
  });
}
