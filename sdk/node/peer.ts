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
 * (an IPv4 address, an IPv6 /64), shared fairly when full; the bytes held for requests being read; the time a
 * request may take; the size of a body; requests being handled; and the envelopes waiting for the client per peer
 * and in all. Reading a request takes no handling slot, so slow senders hold only their own connections. A line is
 * checked as it arrives (its start, its nesting) and, once in, on its fixed-length end (a configured peer as sender,
 * that sender's signature) before it is parsed: a stranger's bytes cost a scan, never a parse. It answers only to the
 * names it listens as (Host) and never to a browser (Origin).
 */
import { readFileSync } from "node:fs";
import { Agent as HttpAgent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { id as utf8Hash } from "ethers";
import { z } from "zod";

import { decode, encode, NestingScanner } from "../core/codec.js";
import { ChannelSdkError, PeerUnreachableError } from "../core/errors.js";
import type { EnvelopeAuth } from "../core/envelope-auth.js";
import { decodeEnvelope, EnvelopeLine, type Envelope, type SwapStep } from "../core/messages.js";
import { recoverSigner } from "../core/signing.js";
import type { Address, ChannelParams, Hex } from "../core/types.js";
import type { StateSigner } from "../coordinator/signer.js";
import type { Transport } from "../coordinator/transport.js";
import { UsageError } from "./errors.js";
import { hostAllowed, listenerHosts, sourceOf } from "./hosts.js";

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
/** The largest body of a channel proposal (its parameters and a signature take well under 1 KiB). */
export const MAX_PROPOSAL_BODY = 64 << 10;
/** The least time between two log lines about requests and connections turned away at the limits. */
const LIMIT_LOG_MS = 10_000;
/** Descriptors kept for all but the peer port's connections (chain RPC sockets, the store and its journal, the API, logs). */
export const DESCRIPTORS_KEPT = 256;
/** How a line of envelopes starts and how a proposal starts, as `encode` writes them (keys sorted). */
const ENVELOPE_HEAD = Buffer.from('{"body":');
const PROPOSAL_HEAD = Buffer.from('{"from":"');
/** A proposal's layout: `{"from":…,"proposal":{…},"signature":…}`, with its fixed-length ends. */
const PROPOSAL_FRONT = /^\{"from":"(0x[0-9a-fA-F]{40})","proposal":\{/;
const PROPOSAL_END = /^\},"signature":"0x[0-9a-fA-F]{130}"\}$/;
const PROPOSAL_END_LENGTH = '},"signature":""}'.length + 132;

/**
 * What the peer endpoint takes from the network at once (docs/NODE.md, "Limits on the peer port"): whatever a
 * stranger sends, the node keeps descriptors, memory and its event loop for its chains and its store.
 */
export type PeerLimits = Readonly<{
  /**
   * Connections open at once, all sources together (at most the process's descriptor limit less DESCRIPTORS_KEPT).
   * When full, a connection from a source holding fewer than the source holding the most takes the place of that
   * source's oldest connection; else it is closed as it comes.
   */
  maxConnections: number;
  /** Connections open at once from one source: an IPv4 address, or an IPv6 /64 (one host's usual share). */
  maxConnectionsPerAddress: number;
  /**
   * Requests being handled at once once their body is in (a channel proposal waiting for its answer), one source at
   * most a quarter of them; past it 503. Reading a body takes none: lines of envelopes are handled as they arrive.
   */
  maxRequests: number;
  /**
   * Bytes held at once for requests being read (a line or a proposal not yet complete), all sources together; past
   * it the request of the source holding the most is answered 503 and closed.
   */
  maxBufferedBytes: number;
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
  maxBufferedBytes: 32 << 20,
  requestTimeoutMs: 5_000,
  maxQueuedPerPeer: 4_096,
  maxQueuedChars: 16 << 20,
};

/** What turned a connection or a request away, as `onLimit` counts it. */
export type PeerLimitName =
  | "maxConnections"
  | "maxConnectionsPerAddress"
  | "maxRequests"
  | "maxBufferedBytes"
  | "requestTimeout"
  | "maxQueuedPerPeer"
  | "maxQueuedChars";

/** A request being read: the bytes it holds, counted against its source, and how to cut it off. */
type Reader = { readonly source: string; bytes: number; readonly cut: () => void };

/** Every step of the protocol: an envelope naming another is refused before it is queued. */
const STEPS: Readonly<Record<SwapStep, true>> = { batch: true, proposals: true, acceptances: true };

/**
 * The shape of an envelope as it comes off the wire, checked before it waits for the client: only what costs
 * nothing to check. The client checks the body and the signature in full when it handles the envelope.
 */
const EnvelopeShape = z.strictObject({
  swapId: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
  from: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  signature: z.string().regex(/^0x(?:[0-9a-fA-F]{130}|01(?:02|03)[0-9a-fA-F]{128})$/),
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
  /** Opens envelopes a peer authenticated with the key it shares with this node (core/envelope-auth.ts). */
  auth: EnvelopeAuth;
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
  /** maxConnections within the process's descriptor limit, DESCRIPTORS_KEPT kept for the rest of the node. */
  readonly connectionCap: number;
  private readonly allowedHosts: ReadonlySet<string>;
  /** Open connections per source (sourceOf), each set oldest first. */
  private readonly sources = new Map<string, Set<Socket>>();
  private openConnections = 0;
  /** Requests being handled (their body in), in all and per source. */
  private handling = 0;
  private readonly handlingBy = new Map<string, number>();
  /** Requests being read per source, and the bytes they hold in all. */
  private readonly readers = new Map<string, Set<Reader>>();
  private bufferedBytes = 0;
  /** Envelopes waiting for the client, per sending peer (lower-case address), and their characters in all. */
  private readonly queued = new Map<string, number>();
  private queuedChars = 0;
  private readonly turnedAway = new Map<PeerLimitName, number>();
  /**
   * Per peer, for the node's metrics: envelopes taken from it (by lower-case address, counted once its signature
   * checked out) and sent to it (by its URL's origin); and, for the peers' link (PeerBook: GET /peers and the
   * metrics), when (ms since the epoch) an envelope last came from it and a request to it last went through and last
   * failed. Only configured peers are keys.
   */
  readonly traffic = {
    received: new Map<string, number>(),
    sent: new Map<string, number>(),
    lastReceivedAt: new Map<string, number>(),
    lastSendOkAt: new Map<string, number>(),
    lastSendFailedAt: new Map<string, number>(),
  };
  private lastLimitLog = 0;
  private limitLogTimer: NodeJS.Timeout | undefined;
  /**
   * Per peer origin with posts under way or failing: how many posts are unanswered, whether one of them waited past
   * PATIENCE_MS, and until when (ms) sends fail at once after a post went unanswered (`postTo`).
   */
  private readonly outbound = new Map<string, { slow: boolean; downUntil: number; posts: number }>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    port: number,
    private readonly options: PeerLinkOptions,
  ) {
    this.limits = options.limits ?? DEFAULT_PEER_LIMITS;
    const descriptors = openFilesLimit();
    this.connectionCap = descriptors === undefined ? this.limits.maxConnections : Math.max(1, Math.min(this.limits.maxConnections, descriptors - DESCRIPTORS_KEPT));
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
    server.on("connection", (socket) => link?.admitConnection(socket));
    server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
      const timeout = error.code === "ERR_HTTP_REQUEST_TIMEOUT";
      if (timeout) link?.limitHit("requestTimeout");
      if (socket.writable) socket.end(`HTTP/1.1 ${timeout ? "408 Request Timeout" : "400 Bad Request"}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      socket.destroy();
    });
    await new Promise<void>((ok, fail) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        fail(
          error.code === "EADDRINUSE"
            ? new UsageError(`peer.port: ${options.port} on ${options.host} is taken (by another node or program on this machine: give each node its own peer.port)`)
            : error,
        ),
      );
      server.listen(options.port, options.host, () => ok());
    });
    const a = server.address();
    if (a === null || typeof a === "string") throw new ChannelSdkError("the peer endpoint has no port");
    const host = options.host.includes(":") ? `[${options.host}]` : options.host;
    link = new PeerLink(server, options.publicUrl ?? `http://${host}:${a.port}`, a.port, options);
    return link;
  }

  /**
   * Counts a connection against its source's share; one past it is closed at once. When all connections are taken,
   * a newcomer from a source holding fewer than the most crowded source takes the place of that source's oldest
   * connection: however many addresses a stranger has, a peer reaching the node from its own gets in.
   */
  private admitConnection(socket: Socket): void {
    const source = sourceOf(socket.remoteAddress ?? "");
    const held = this.sources.get(source)?.size ?? 0;
    if (held >= this.limits.maxConnectionsPerAddress) {
      this.limitHit("maxConnectionsPerAddress");
      socket.destroy();
      return;
    }
    if (this.openConnections >= this.connectionCap) {
      this.limitHit("maxConnections");
      let crowded: Set<Socket> | undefined;
      for (const set of this.sources.values()) if (set.size > (crowded?.size ?? 0)) crowded = set;
      if (crowded === undefined || crowded.size <= held) return void socket.destroy();
      const oldest = crowded.values().next().value!;
      this.forget(oldest);
      oldest.destroy();
    }
    let set = this.sources.get(source);
    if (set === undefined) this.sources.set(source, (set = new Set()));
    set.add(socket);
    this.openConnections++;
    socket.once("close", () => this.forget(socket));
  }

  /** Stops counting a connection (once, whether it closed or was made room for). */
  private forget(socket: Socket): void {
    const source = sourceOf(socket.remoteAddress ?? "");
    const set = this.sources.get(source);
    if (set?.delete(socket) !== true) return;
    this.openConnections--;
    if (set.size === 0) this.sources.delete(source);
  }

  /** Starts counting the bytes a request being read holds. */
  private addReader(reader: Reader): void {
    let set = this.readers.get(reader.source);
    if (set === undefined) this.readers.set(reader.source, (set = new Set()));
    set.add(reader);
  }

  /** Stops counting a request being read, and the bytes it held. */
  private removeReader(reader: Reader): void {
    this.release(reader);
    const set = this.readers.get(reader.source);
    if (set?.delete(reader) === true && set.size === 0) this.readers.delete(reader.source);
  }

  /**
   * Counts `n` more bytes held by `reader`. Past maxBufferedBytes the request holding the most, of the source
   * holding the most, is cut off (possibly `reader` itself): a peer's short lines are never the ones cut.
   */
  private hold(reader: Reader, n: number): void {
    reader.bytes += n;
    this.bufferedBytes += n;
    while (this.bufferedBytes > this.limits.maxBufferedBytes) {
      let most: Set<Reader> | undefined;
      let mostBytes = 0;
      for (const set of this.readers.values()) {
        let sum = 0;
        for (const r of set) sum += r.bytes;
        if (sum > mostBytes) [most, mostBytes] = [set, sum];
      }
      let victim: Reader | undefined;
      for (const r of most ?? []) if (r.bytes > (victim?.bytes ?? 0)) victim = r;
      if (victim === undefined) return;
      this.limitHit("maxBufferedBytes");
      this.removeReader(victim);
      victim.cut();
    }
  }

  private release(reader: Reader): void {
    this.bufferedBytes -= reader.bytes;
    reader.bytes = 0;
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

  private receive(req: IncomingMessage, res: ServerResponse): void {
    // Refused before anything is read: the body of a refused request is never taken (the connection closes).
    const refuse = (status: number, headers: Record<string, string> = {}) => {
      if (!res.headersSent) res.writeHead(status, { connection: "close", ...headers }).end();
    };
    // A request to another name than this node's (DNS rebinding), or from a browser (peers send no Origin).
    if (!hostAllowed(this.allowedHosts, req.headers.host)) return refuse(421);
    if (req.headers.origin !== undefined) return refuse(403);
    if (req.method !== "POST") return refuse(405);
    // Only a peer's JSON: a web page's form post (text/plain, no preflight) is turned away before it is read.
    const type = req.headers["content-type"] ?? "";
    if (!/^application\/(json|x-ndjson)\b/.test(type)) return refuse(415);
    if (req.url !== "/peer/v1/envelopes" && req.url !== "/peer/v1/channel-proposals") return refuse(404);
    const envelopes = req.url === "/peer/v1/envelopes";
    if (Number(req.headers["content-length"] ?? 0) > (envelopes ? MAX_BODY : MAX_PROPOSAL_BODY)) return refuse(413);
    if (envelopes && this.handler === undefined) return refuse(503);
    const source = sourceOf(req.socket.remoteAddress ?? "");
    if (envelopes) this.receiveEnvelopes(req, res, source, refuse);
    else this.receiveProposal(req, res, source, refuse);
  }

  /**
   * Takes a body of envelopes, one per line, each as its line arrives, so that a request holds no more than the
   * line being read (counted in maxBufferedBytes). A line is refused at its first bytes unless it starts as an
   * envelope does, and as soon as it nests deeper than MAX_NESTING. Once in, it is checked cheapest first, before it
   * is parsed: its fixed-length end (400), a configured peer as its sender (403), that sender's signature over the
   * bytes received (403); then parsed and its shape checked (400), then queued within its sender's share and the
   * queue's size, and handed to the client in the order of its request. The answer is 202 once the whole body is
   * taken. Else the request is answered at once and the rest of it left unread: 413 past MAX_BODY, 429 (the
   * sender's share full) or 503 (the queue full, or the bytes being read) with Retry-After; what was queued before
   * stays queued, the sender's tick resends the rest.
   */
  private receiveEnvelopes(req: IncomingMessage, res: ServerResponse, source: string, refuse: (status: number, headers?: Record<string, string>) => void): void {
    const handler = this.handler!;
    let handled = Promise.resolve();
    let bytes = 0;
    let line: Buffer[] = [];
    let head = 0; // bytes of ENVELOPE_HEAD seen at the start of the line
    let nesting = new NestingScanner();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.removeReader(reader);
      line = [];
    };
    const stop = (status: number) => {
      if (finished) return;
      refuse(status, status === 429 || status === 503 ? { "retry-after": "1" } : {});
      req.removeAllListeners("data"); // the rest is not read: the connection closes with the answer
      finish();
    };
    const reader: Reader = { source, bytes: 0, cut: () => stop(503) };
    this.addReader(reader);
    /** Takes one more piece of the line being read; else the status to refuse the request with. */
    const feed = (piece: Buffer): number | undefined => {
      if (piece.length === 0) return undefined;
      const n = Math.min(piece.length, ENVELOPE_HEAD.length - head);
      if (n > 0 && !piece.subarray(0, n).equals(ENVELOPE_HEAD.subarray(head, head + n))) return 400;
      head += n;
      if (!nesting.feed(piece)) return 400;
      line.push(piece);
      this.hold(reader, piece.length);
      return undefined;
    };
    /** Queues the envelope of the line read; else the status to refuse the request with. */
    const take = (): number | undefined => {
      const text = line.length === 1 ? line[0]!.toString("utf8") : Buffer.concat(line).toString("utf8");
      [line, head, nesting] = [[], 0, new NestingScanner()];
      this.release(reader);
      if (text === "") return undefined;
      const wire = EnvelopeLine.read(text);
      if (wire === undefined) return 400;
      const peer = wire.from.toLowerCase();
      if (!this.options.isPeer(peer)) return 403;
      // Signed or authenticated by that peer: a stranger naming it as sender neither fills its share nor reaches the client.
      if (!wire.signedByItsSender(this.options.auth)) return 403;
      let envelope: Envelope;
      try {
        envelope = decodeEnvelope(wire);
      } catch {
        return 400;
      }
      if (!EnvelopeShape.safeParse(envelope).success) return 400;
      const waiting = this.queued.get(peer) ?? 0;
      const full = waiting >= this.limits.maxQueuedPerPeer ? "maxQueuedPerPeer" : this.queuedChars + text.length > this.limits.maxQueuedChars ? "maxQueuedChars" : undefined;
      if (full !== undefined) {
        this.limitHit(full);
        return full === "maxQueuedPerPeer" ? 429 : 503;
      }
      this.queued.set(peer, waiting + 1);
      this.queuedChars += text.length;
      this.traffic.received.set(peer, (this.traffic.received.get(peer) ?? 0) + 1);
      this.traffic.lastReceivedAt.set(peer, Date.now());
      handled = handled.then(() => this.handleQueued(handler, envelope, peer, text.length));
      return undefined;
    };
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_BODY) return stop(413);
      // Only the new chunk is searched for line ends (a line's earlier pieces are not scanned again).
      for (let start = 0; ; ) {
        const end = chunk.indexOf(0x0a, start);
        const refused = feed(chunk.subarray(start, end === -1 ? chunk.length : end)) ?? (end === -1 || finished ? undefined : take());
        if (finished) return;
        if (refused !== undefined) return stop(refused);
        if (end === -1) return;
        start = end + 1;
      }
    });
    req.on("end", () => {
      if (finished) return;
      const refused = take();
      if (refused !== undefined) return stop(refused);
      res.writeHead(202).end();
      finish();
    });
    req.on("close", finish); // cut off by the sender or a timeout
  }

  /**
   * Takes a channel proposal: read whole (at most MAX_PROPOSAL_BODY, counted in maxBufferedBytes; refused at its
   * first bytes unless it starts as a proposal does, or once it nests too deep), then checked on its fixed-length
   * ends for a configured peer as sender (403) before it takes a handling slot (503 past maxRequests or the
   * source's quarter of them) and is parsed and answered by `onProposal`, which checks its signature.
   */
  private receiveProposal(req: IncomingMessage, res: ServerResponse, source: string, refuse: (status: number, headers?: Record<string, string>) => void): void {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let finished = false;
    const nesting = new NestingScanner();
    const answer = (status: number, body: ProposalAnswer, headers: Record<string, string> = {}) => {
      if (!res.headersSent) res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
    };
    // A stranger learns only that the request was malformed, never our paths or internals.
    const malformed = () => answer(400, { accepted: false, reason: "malformed request" }, { connection: "close" });
    const finish = () => {
      if (finished) return false;
      finished = true;
      this.removeReader(reader);
      req.removeAllListeners("data");
      return true;
    };
    const reader: Reader = { source, bytes: 0, cut: () => finish() && refuse(503, { "retry-after": "1" }) };
    this.addReader(reader);
    req.on("data", (chunk: Buffer) => {
      if (finished) return;
      const seen = Math.min(PROPOSAL_HEAD.length, bytes + chunk.length) - Math.min(PROPOSAL_HEAD.length, bytes);
      const headOk = seen === 0 || chunk.subarray(0, seen).equals(PROPOSAL_HEAD.subarray(bytes, bytes + seen));
      bytes += chunk.length;
      if (bytes > MAX_PROPOSAL_BODY) return void (finish() && refuse(413));
      if (!headOk || !nesting.feed(chunk)) return void (finish() && malformed());
      chunks.push(chunk);
      this.hold(reader, chunk.length);
    });
    req.on("close", finish);
    req.on("end", () => {
      if (!finish()) return;
      const text = Buffer.concat(chunks).toString("utf8");
      const from = PROPOSAL_FRONT.exec(text)?.[1];
      if (from === undefined || !PROPOSAL_END.test(text.slice(text.length - PROPOSAL_END_LENGTH))) return malformed();
      if (!this.options.isPeer(from.toLowerCase())) return answer(403, { accepted: false, reason: "the sender is not a configured peer" });
      const share = Math.max(1, Math.ceil(this.limits.maxRequests / 4));
      if (this.handling >= this.limits.maxRequests || (this.handlingBy.get(source) ?? 0) >= share) {
        this.limitHit("maxRequests");
        return refuse(503, { "retry-after": "1" });
      }
      this.handling++;
      this.handlingBy.set(source, (this.handlingBy.get(source) ?? 0) + 1);
      void (async () => {
        try {
          const result = await this.options.onProposal(decode<SignedProposal>(text));
          answer(result.accepted ? 200 : 403, result);
        } catch {
          malformed();
        } finally {
          this.handling--;
          const left = (this.handlingBy.get(source) ?? 1) - 1;
          if (left === 0) this.handlingBy.delete(source);
          else this.handlingBy.set(source, left);
        }
      })();
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
    const byPeer = new Map<string, { text: string; count: number }>();
    for (const e of envelopes) {
      const url = this.options.route(e);
      if (url === undefined) continue; // no peer known for it: nothing to send to
      const batch = byPeer.get(url) ?? { text: "", count: 0 };
      byPeer.set(url, { text: batch.text + encode(e) + "\n", count: batch.count + 1 });
    }
    // Each peer's post settled (answered, failed, or waiting past PATIENCE_MS) before the first failure is told.
    const results = await Promise.allSettled([...byPeer].map(([url, { text, count }]) => this.postTo(url, text, count)));
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }

  /**
   * Posts `text` (`count` envelopes) to the peer at `url`, waiting for its answer at most PATIENCE_MS (the post goes
   * on meanwhile, up to POST_TIMEOUT_MS). Every group of envelopes a node commits waits for the sends of the groups
   * before it, so a peer that answers slowly or not at all must not hold them: while a post to a peer has waited past
   * PATIENCE_MS, and for POST_TIMEOUT_MS after one went unanswered, a send to it fails at once (the tick resends).
   */
  private async postTo(url: string, text: string, count: number): Promise<void> {
    const origin = new URL(url).origin;
    const now = Date.now();
    const state = this.outbound.get(origin);
    if (state !== undefined && (state.slow || now < state.downUntil)) {
      this.traffic.lastSendFailedAt.set(origin, now);
      const why = state.slow ? "has not answered an earlier post yet" : `did not answer a post within ${POST_TIMEOUT_MS / 1000} s lately`;
      throw new PeerUnreachableError(origin, `the peer at ${origin} ${why}: sends to it fail at once for now (the tick sends again)`);
    }
    const mine = state ?? { slow: false, downUntil: 0, posts: 0 };
    this.outbound.set(origin, mine);
    mine.posts++;
    const posting = post(new URL("/peer/v1/envelopes", url), "application/x-ndjson", text, POST_TIMEOUT_MS).then(
      (status) => {
        const ok = status >= 200 && status < 300;
        this.traffic[ok ? "lastSendOkAt" : "lastSendFailedAt"].set(origin, Date.now());
        if (!ok) throw new PeerUnreachableError(origin, `peer ${origin} answered ${status}`);
        this.traffic.sent.set(origin, (this.traffic.sent.get(origin) ?? 0) + count);
      },
      (error: unknown) => {
        this.traffic.lastSendFailedAt.set(origin, Date.now());
        if (error instanceof NoAnswerError) mine.downUntil = Date.now() + POST_TIMEOUT_MS;
        throw new PeerUnreachableError(origin, `cannot reach the peer at ${origin}: ${(error as Error).message}`, error);
      },
    );
    const settled = posting.then(
      () => undefined,
      () => undefined,
    );
    void settled.then(() => {
      if (--mine.posts === 0) mine.slow = false;
      if (mine.posts === 0 && Date.now() >= mine.downUntil) this.outbound.delete(origin);
    });
    let timer: NodeJS.Timeout | undefined;
    const patience = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), PATIENCE_MS)));
    try {
      if ((await Promise.race([posting, patience])) !== "late") return;
    } finally {
      clearTimeout(timer);
    }
    mine.slow = true;
    this.traffic.lastSendFailedAt.set(origin, Date.now());
    throw new PeerUnreachableError(origin, `the peer at ${origin} did not answer within ${PATIENCE_MS / 1000} s (the post goes on; sends to it fail at once until it is answered)`);
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

/** The process's limit on open descriptors (Linux, from /proc), or undefined where it cannot be read or is unlimited. */
function openFilesLimit(): number | undefined {
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1];
    return soft === undefined ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/**
 * How long a connection to a peer stays open unused (less when the peer's Keep-Alive header says it keeps it for
 * less: a second less than it says). Node's Agent takes that hint only below a timeout of its own: with none, an
 * unused connection stayed open until the peer closed it, and a post that went out as the peer closed it failed
 * (our own peer port closes connections unused for 5 s).
 */
const IDLE_MS = 4_000;

/** Connections to peers, kept open between posts (a node posts each group of envelopes as it is committed). */
const agents = { http: new HttpAgent({ keepAlive: true, timeout: IDLE_MS }), https: new HttpsAgent({ keepAlive: true, timeout: IDLE_MS }) };

/**
 * The most a post reads of its answer, counted as it comes off the connection (interim 1xx answers, headers, chunk
 * framing and body), before it gives the connection up: our peers send a status and no body.
 */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The longest a post waits for its whole answer (all its attempts together). */
const POST_TIMEOUT_MS = 10_000;

/**
 * The longest a send waits for a peer's answer (a peer answers a post as soon as it has read it): past it the send
 * fails and the post goes on in the background, so that one peer's slow answers do not hold up the node's other sends.
 */
const PATIENCE_MS = 2_000;

/** How many times a post goes out on a kept-alive connection that the peer closed before answering (then on a new one). */
const REUSE_ATTEMPTS = 3;

/** A post written into a kept-alive connection the peer had closed, before any answer: nothing was answered, it can go again. */
class ClosedBeforeAnswer extends Error {}

/** No full answer to a post within its timeout. */
class NoAnswerError extends Error {}

/**
 * POSTs `body` to `url` on a kept-alive connection; resolves with the answer's status once its body has been read
 * and dropped (past MAX_ANSWER_BYTES read from the connection, the connection is closed instead: with the status
 * if it came, else rejecting). A post written into a kept-alive connection the peer closed meanwhile goes again
 * (envelopes are idempotent: the receiver takes a resent one as the tick's resends). Rejects on a network error,
 * or when no full answer came within `timeoutMs` (all attempts together).
 */
async function post(url: URL, contentType: string, body: string, timeoutMs: number): Promise<number> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (let attempt = 1; ; attempt++) {
    try {
      return await postOnce(url, contentType, body, signal);
    } catch (error) {
      if (signal.aborted) throw new NoAnswerError(`no answer within ${timeoutMs / 1000} s`, { cause: error });
      if (!(error instanceof ClosedBeforeAnswer)) throw error;
      if (attempt >= REUSE_ATTEMPTS) throw error.cause;
    }
  }
}

function postOnce(url: URL, contentType: string, body: string, signal: AbortSignal): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const secure = url.protocol === "https:";
    let answered = false;
    let read = () => 0; // bytes read from the connection since this post took it
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: "POST",
        agent: secure ? agents.https : agents.http,
        headers: { "content-type": contentType, "content-length": Buffer.byteLength(body) },
        signal,
      },
      (res) => {
        answered = true;
        const tooLong = () => {
          if (read() <= MAX_ANSWER_BYTES) return false;
          resolve(res.statusCode ?? 0);
          req.destroy();
          return true;
        };
        if (tooLong()) return;
        res.on("data", tooLong);
        res.on("error", reject);
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("socket", (socket) => {
      const from = socket.bytesRead;
      read = () => socket.bytesRead - from;
    });
    // Interim answers (1xx) come before the answer: endless, they would be read and parsed until the timeout.
    req.on("information", () => {
      if (read() <= MAX_ANSWER_BYTES) return;
      reject(new ChannelSdkError(`more than ${MAX_ANSWER_BYTES} bytes of interim answers (1xx) and no answer`));
      req.destroy();
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      const closed = req.reusedSocket && !answered && !signal.aborted && (error.code === "ECONNRESET" || error.code === "EPIPE");
      reject(closed ? new ClosedBeforeAnswer(error.message, { cause: error }) : error);
    });
    // Closed with no answer and no error: an answer switching protocols (101), which Node closes unanswered when no
    // one takes the upgrade. A full answer resolved before this (its end comes first).
    req.on("close", () => reject(new ChannelSdkError("the peer closed the connection without an answer")));
    req.end(body);
  });
}
