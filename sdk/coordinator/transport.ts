import { createServer, type Server } from "node:http";

import { decode, encode } from "../core/codec.js";
import { ChannelSdkError } from "../core/errors.js";
import type { Envelope } from "../core/messages.js";

/** How signed messages travel between two clients. Delivery may fail, repeat or reorder: clients cope. */
export interface Transport {
  /** Hands `envelope` to the network; resolves once sent, not once processed. */
  send(envelope: Envelope): Promise<void>;
  /** Hands several envelopes over at once, in order (optional: a transport that can batch saves round trips). */
  sendMany?(envelopes: readonly Envelope[]): Promise<void>;
  /** Sets the handler of incoming envelopes (one per transport). */
  listen(handler: (envelope: Envelope) => Promise<void>): void;
  close(): Promise<void>;
}

/** What a fault injector may do with one message. */
export type Delivery = "deliver" | "drop" | "duplicate";

/** Two in-process endpoints joined back to back, with an optional fault injector for tests. */
export class InMemoryLink {
  readonly a: Transport;
  readonly b: Transport;
  /** Decides the fate of each message; by default every message is delivered once. */
  fault: (envelope: Envelope, from: "a" | "b") => Delivery = () => "deliver";
  /** Errors thrown by a handler, kept for tests to inspect. */
  readonly errors: unknown[] = [];
  private readonly handlers: { a?: (e: Envelope) => Promise<void>; b?: (e: Envelope) => Promise<void> } = {};
  private readonly inFlight = new Set<Promise<void>>();

  constructor() {
    this.a = this.endpoint("a", "b");
    this.b = this.endpoint("b", "a");
  }

  /** Resolves when every message sent so far, and every message those caused, has been handled. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private endpoint(self: "a" | "b", peer: "a" | "b"): Transport {
    return {
      send: async (envelope) => {
        const fate = this.fault(envelope, self);
        const copies = fate === "drop" ? 0 : fate === "duplicate" ? 2 : 1;
        // A copy through the codec: the receiver never shares objects with the sender, as over a wire.
        const wire = encode(envelope);
        for (let i = 0; i < copies; i++) this.deliver(peer, decode<Envelope>(wire));
      },
      listen: (handler) => {
        this.handlers[self] = handler;
      },
      close: async () => {
        delete this.handlers[self];
      },
    };
  }

  private deliver(to: "a" | "b", envelope: Envelope): void {
    const p = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.handlers[to]?.(envelope))
      .catch((error: unknown) => {
        this.errors.push(error);
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }
}

/**
 * HTTP on loopback: each client serves POST / and posts to its peer's URL. A body is one envelope, or an array of
 * envelopes handled in order (what `sendMany` posts: one request for a group of messages).
 */
export class HttpTransport implements Transport {
  private handler: ((envelope: Envelope) => Promise<void>) | undefined;
  /** Errors thrown while handling received messages (a rejected message changes nothing). */
  readonly errors: unknown[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private peerUrl: string | undefined,
  ) {}

  /** Starts a server on 127.0.0.1 (port 0 picks a free one). */
  static async start(port = 0, peerUrl?: string): Promise<HttpTransport> {
    let transport: HttpTransport | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let envelopes: Envelope[];
        try {
          const body = decode<Envelope | Envelope[]>(Buffer.concat(chunks).toString("utf8"));
          envelopes = Array.isArray(body) ? body : [body];
        } catch {
          res.writeHead(400).end("malformed message");
          return;
        }
        const handler = transport?.handler;
        if (handler === undefined) {
          res.writeHead(503).end("not listening");
          return;
        }
        // Accept first, process after: a reply the handler sends must never wait on this request.
        res.writeHead(202).end();
        for (const envelope of envelopes) handler(envelope).catch((error: unknown) => transport?.errors.push(error));
      });
    });
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(port, "127.0.0.1", () => ok());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new ChannelSdkError("the HTTP transport has no port");
    transport = new HttpTransport(server, `http://127.0.0.1:${address.port}`, peerUrl);
    return transport;
  }

  connect(peerUrl: string): void {
    this.peerUrl = peerUrl;
  }

  send(envelope: Envelope): Promise<void> {
    return this.sendMany([envelope]);
  }

  /**
   * Queues envelopes for the peer. One request is in flight at a time and carries everything queued while the
   * one before it was, so the peer receives messages in the order they were sent, in as few requests as load
   * allows. Resolves once the request carrying them is accepted.
   */
  sendMany(envelopes: readonly Envelope[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ envelopes, resolve, reject });
      if (!this.posting) void this.pump();
    });
  }

  private queued: { envelopes: readonly Envelope[]; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private posting = false;

  private async pump(): Promise<void> {
    this.posting = true;
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      const envelopes = batch.flatMap((b) => b.envelopes);
      try {
        await this.post(encode(envelopes.length === 1 ? envelopes[0] : envelopes));
        for (const b of batch) b.resolve();
      } catch (error) {
        for (const b of batch) b.reject(error);
      }
    }
    this.posting = false;
  }

  private async post(body: string): Promise<void> {
    if (this.peerUrl === undefined) throw new ChannelSdkError("the HTTP transport has no peer URL yet");
    const res = await fetch(this.peerUrl, { method: "POST", body });
    if (res.status >= 400) {
      throw new ChannelSdkError(`peer answered ${res.status}: ${await res.text()}`);
    }
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
