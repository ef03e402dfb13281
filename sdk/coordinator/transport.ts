import { createServer, request, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";

import { encode } from "../core/codec.js";
import { ChannelSdkError, InvalidMessageError, PeerUnreachableError, TransportNotConnectedError } from "../core/errors.js";
import { decodeEnvelope, type Envelope } from "../core/messages.js";

/** How signed messages travel between two clients. Delivery may fail, repeat or reorder: clients cope. */
export interface Transport {
  /**
   * Hands `envelope` to the network; resolves once sent, not once processed. Rejects when it cannot leave (the
   * client reports it as a `sendFailed` event and resends on a later tick): a TransportNotConnectedError when the
   * transport has nowhere to send it, a PeerUnreachableError when the peer does not take it.
   */
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
        for (let i = 0; i < copies; i++) this.deliver(peer, decodeEnvelope(wire));
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

/** Longest line (one envelope, in characters) the HTTP transport accepts; a longer one cuts its request off. */
const MAX_LINE_CHARS = 1 << 20;

/**
 * Reads a request body of newline-separated lines: each non-blank line goes to `line` in order as soon as it is
 * complete, the last one too when the body ends. A line past MAX_LINE_CHARS cuts the request off (`tooLong`).
 */
export function readLines(
  req: IncomingMessage,
  on: Readonly<{ line: (line: string) => void; tooLong?: () => void; end: () => void }>,
): void {
  let partial = "";
  req.setEncoding("utf8");
  req.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    for (const line of lines) if (line.trim() !== "") on.line(line);
    if (partial.length > MAX_LINE_CHARS) {
      on.tooLong?.();
      req.destroy();
    }
  });
  req.on("end", () => {
    if (partial.trim() !== "") on.line(partial);
    on.end();
  });
}

/** Options of `HttpTransport.start`. */
export type HttpTransportOptions = Readonly<{
  /**
   * Longest wait (ms, default 10,000) for the peer to answer a new request, or to take what is written into the
   * open one. Past it the request is dropped, and sends fail at once for as long again (the client's tick resends
   * what they carried): a peer that accepts connections and then stalls never holds up this client. A peer that
   * refuses or answers an error fails the send at once, with no such pause.
   */
  timeoutMs?: number;
}>;

/**
 * HTTP between two clients: each serves POST / and streams to its peer's URL. A request body is newline-delimited
 * JSON, one envelope per line (`application/x-ndjson`), handled line by line as it arrives. The server answers a
 * request's headers at once (200, or 503 while nothing listens), so a sender keeps one request open and writes each
 * message into it as it leaves: while that request lives, messages arrive in the order they were sent, and none
 * waits for a round trip. A one-off POST of a few lines (what `curl` sends) works the same way.
 */
export class HttpTransport implements Transport {
  private handler: ((envelope: Envelope) => Promise<void>) | undefined;
  /** Errors thrown while handling received messages, and lines that were not envelopes (either changes nothing). */
  readonly errors: unknown[] = [];
  /** The open request to the peer once it answered 200, if any. */
  private stream: Promise<ClientRequest> | undefined;
  /** After a request failed: sends fail at once until this time (ms), rather than each wait for the peer again. */
  private downUntil = 0;
  private closed = false;
  /** A request posted and not answered yet, if any. */
  private opening: ClientRequest | undefined;
  private readonly timeoutMs: number;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private peerUrl: string | undefined,
    options: HttpTransportOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Starts a server on 127.0.0.1 (port 0 picks a free one). */
  static async start(port = 0, peerUrl?: string, options: HttpTransportOptions = {}): Promise<HttpTransport> {
    let transport: HttpTransport | undefined;
    const server = createServer((req, res) => transport?.receive(req, res));
    server.requestTimeout = 0; // a sender's request stays open as long as it has messages to send
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(port, "127.0.0.1", () => ok());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new ChannelSdkError("the HTTP transport has no port");
    transport = new HttpTransport(server, `http://127.0.0.1:${address.port}`, peerUrl, options);
    return transport;
  }

  /** Handles one request: each complete line is an envelope, handed over in order as soon as it arrives. */
  private receive(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" }).end("POST envelopes, one JSON object per line");
      return;
    }
    if (this.handler === undefined) {
      res.writeHead(503).end("not listening");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.flushHeaders();
    readLines(req, {
      line: (line) => this.handle(line),
      tooLong: () => this.errors.push(new InvalidMessageError(`a line longer than ${MAX_LINE_CHARS} characters: request cut off`)),
      end: () => res.end(),
    });
  }

  private handle(line: string): void {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(line);
    } catch (error) {
      this.errors.push(error instanceof ChannelSdkError ? error : new InvalidMessageError(`a line that is not JSON: ${(error as Error).message}`));
      return;
    }
    const handler = this.handler;
    if (handler === undefined) return; // closed meanwhile: the sender resends
    handler(envelope).catch((error: unknown) => this.errors.push(error));
  }

  connect(peerUrl: string): void {
    this.peerUrl = peerUrl;
    this.downUntil = 0;
    this.drop();
  }

  send(envelope: Envelope): Promise<void> {
    return this.sendMany([envelope]);
  }

  /**
   * Writes envelopes into the request open to the peer (opening one first if needed), in order. Resolves once
   * they are handed to the operating system; rejects with a PeerUnreachableError if the peer refuses the request,
   * does not answer or take them within the timeout, or the connection fails, and with a TransportNotConnectedError
   * before `connect` gave it a peer URL. What a failed send carried, the client's next tick resends.
   */
  async sendMany(envelopes: readonly Envelope[]): Promise<void> {
    if (envelopes.length === 0) return;
    const req = await this.open();
    let text = "";
    for (const envelope of envelopes) text += encode(envelope) + "\n";
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => {
        const stalled = new PeerUnreachableError(this.peerUrl ?? "", `the peer at ${this.peerUrl} took no data for ${this.timeoutMs} ms`);
        this.fail(req, stalled);
        fail(stalled);
      }, this.timeoutMs);
      req.write(text, (error) => {
        clearTimeout(timer);
        if (error) fail(new PeerUnreachableError(this.peerUrl ?? "", `cannot send to the peer at ${this.peerUrl}: ${error.message}`, error));
        else ok();
      });
    });
  }

  /** The request open to the peer: posted, and answered 200 before anything is written into it. */
  private open(): Promise<ClientRequest> {
    if (this.stream !== undefined) return this.stream;
    if (this.closed) return Promise.reject(new ChannelSdkError("the HTTP transport is closed"));
    const peerUrl = this.peerUrl;
    if (peerUrl === undefined) return Promise.reject(new TransportNotConnectedError());
    if (Date.now() < this.downUntil) {
      return Promise.reject(new PeerUnreachableError(peerUrl, `the peer at ${peerUrl} failed lately; trying again after ${this.downUntil - Date.now()} ms`));
    }
    const stream = new Promise<ClientRequest>((resolve, reject) => {
      const req = request(peerUrl, { method: "POST", headers: { "content-type": "application/x-ndjson" } });
      this.opening = req;
      const forget = () => {
        if (this.stream === stream) this.stream = undefined;
        if (this.opening === req) this.opening = undefined;
      };
      const timer = setTimeout(() => this.fail(req, new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      req.on("response", (res) => {
        clearTimeout(timer);
        if (this.opening === req) this.opening = undefined;
        res.on("close", forget);
        if (res.statusCode === 200) {
          res.resume();
          resolve(req);
          return;
        }
        forget();
        reject(new PeerUnreachableError(peerUrl, `peer answered ${res.statusCode} ${res.statusMessage ?? ""}`.trim() + ` (${peerUrl})`));
        req.destroy();
      });
      req.on("error", (error) => {
        clearTimeout(timer);
        forget();
        reject(new PeerUnreachableError(peerUrl, `cannot reach the peer at ${peerUrl}: ${error.message}`, error));
      });
      req.on("close", () => {
        clearTimeout(timer);
        forget();
      });
      req.flushHeaders();
    });
    stream.catch(() => undefined); // the senders waiting on it see the error
    this.stream = stream;
    return stream;
  }

  /** Drops a request that failed or stalled; sends fail at once for one timeout before a new one is tried. */
  private fail(req: ClientRequest, error: Error): void {
    this.downUntil = Date.now() + this.timeoutMs;
    req.destroy(error);
  }

  /** Drops the open request, if any (what was written into it and not yet taken is lost; the tick resends it). */
  private drop(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.then((req) => req.destroy(), () => undefined);
  }

  listen(handler: (envelope: Envelope) => Promise<void>): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handler = undefined;
    const stream = this.stream;
    this.stream = undefined;
    // An open request is ended cleanly (what was written still reaches the peer); one the peer has not answered
    // yet is dropped.
    this.opening?.destroy();
    void stream?.then((req) => void req.end(), () => undefined);
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}
