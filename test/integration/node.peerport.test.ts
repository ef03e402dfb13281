/**
 * A `channels node start` process under attack from loopback, each attack bounded in count and time: connections
 * held open with trickled bodies, a flood of junk envelopes, requests naming another host (DNS rebinding), an
 * oversized body on the control API. The node keeps to its limits (docs/NODE.md, "Limits on the peer port"), says
 * so in its log, and its control API answers throughout. Descriptors and memory are read from /proc.
 */
import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SigningKey, Wallet, ZeroAddress } from "ethers";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { encode, EnvelopeAuth, keySigner, PeerUnreachableError, rpcProvider, seal, signDigest, type Envelope, type Hex } from "../../sdk/index.js";
import { hostAllowed, listenerHosts } from "../../sdk/node/hosts.js";
import { DEFAULT_PEER_LIMITS, PeerLink } from "../../sdk/node/peer.js";
import { channels, NodeProcess } from "../helpers/cli.js";
import { freePort, startHardhatNode, until, type LocalNode } from "../helpers/nodes.js";

const BOB = new Wallet(accountKey(2)).address;
const BOB_KEY = new SigningKey(accountKey(2));
/** A genuine envelope signed by the configured peer: acceptances on an unknown channel (taken 202, then fails in the client). */
const bobLine = () => encode(seal((d) => signDigest(BOB_KEY, d), BOB as Hex, `0x${randomBytes(32).toString("hex")}` as Hex, { step: "acceptances", items: [{ swapId: `0x${"00".repeat(32)}` as Hex, refusal: "hi" }] }));
/** The defaults of peer.limits the node runs with here. */
const MAX_CONNECTIONS = 256;

/** Open descriptors of a process. */
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/** Resident memory of a process, in MB. */
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Answer = { status: number; body: string };

/** One HTTP request to 127.0.0.1:`port` with any Host header; `body` may be a size (sent in 64 KiB chunks). */
function send(port: number, path: string, o: { method?: string; host?: string; headers?: Record<string, string>; body?: string | number; chunked?: boolean }): Promise<Answer> {
  return new Promise((ok, fail) => {
    const headers: Record<string, string> = { host: o.host ?? `127.0.0.1:${port}`, ...o.headers };
    if (o.body !== undefined && o.chunked !== true) headers["content-length"] = String(typeof o.body === "number" ? o.body : Buffer.byteLength(o.body));
    const req = request({ host: "127.0.0.1", port, path, method: o.method ?? "POST", headers, agent: false });
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => ok({ status: res.statusCode ?? 0, body }));
      res.on("error", () => ok({ status: res.statusCode ?? 0, body }));
    });
    // A refusal closes the connection: an answer already on its way is waited for a moment before the error counts.
    req.on("error", (error) => setTimeout(() => (answered ? undefined : fail(error)), 300));
    req.setTimeout(30_000, () => req.destroy(new Error("no answer within 30 s")));
    if (typeof o.body !== "number") return void req.end(o.body);
    // A large body: the headers first (a refusal of its Content-Length comes before any of it), then the body in
    // chunks while the server reads it, stopped once it answers.
    const size = o.body;
    void (async () => {
      req.flushHeaders();
      await sleep(100);
      const chunk = Buffer.alloc(64 << 10, 0x20);
      for (let left = size; left > 0 && !answered && !req.destroyed; left -= chunk.length) {
        if (!req.write(chunk)) {
          await new Promise<void>((r) => {
            const go = () => (req.off("drain", go), req.off("close", go), r());
            req.on("drain", go).on("close", go);
          });
        }
        await new Promise(setImmediate);
      }
      // Past a limit the server answers and closes: its answer is waited for before the request ends, rather than
      // written into a closed connection (whose error could come before the answer is read).
      for (let i = 0; i < 20 && !answered && !req.destroyed; i++) await sleep(50);
      if (!answered && !req.destroyed) req.end();
    })();
  });
}

describe("the node's peer port and control API under attack from loopback", function () {
  this.timeout(120_000);
  let chain: LocalNode;
  let dir: string;
  let node: NodeProcess;
  let pid = 0;
  let peerPort = 0;
  let apiPort = 0;
  let token = "";

  /** GET /api/v1/info as the CLI would; the status, or 0 if it failed. */
  const info = (host?: string) =>
    send(apiPort, "/api/v1/info", { method: "GET", host, headers: { authorization: `Bearer ${token}` } }).then((a) => a.status, () => 0);

  before(async function () {
    chain = await startHardhatNode(31337n);
    const provider = rpcProvider(chain.url);
    const hub = await deployHub(provider);
    provider.destroy();
    dir = mkdtempSync(join(tmpdir(), "channels-peerport-"));
    [peerPort, apiPort] = [await freePort(), await freePort()];
    writeFileSync(
      join(dir, "node.json"),
      JSON.stringify({
        key: { env: "NODE_KEY" },
        store: "node.sqlite",
        peer: { port: peerPort },
        api: { port: apiPort },
        chains: { source: { rpcUrl: chain.url, hub, confirmations: 0, assets: { ETH: { address: ZeroAddress } } } },
        peers: { bob: { address: BOB, url: "http://127.0.0.1:9" } },
      }),
    );
    node = await NodeProcess.start(join(dir, "node.json"), { NODE_KEY: accountKey(1) });
    pid = node.child.pid!;
    token = readFileSync(join(dir, "api.token"), "utf8").trim();
  });

  after(async function () {
    await node?.stop();
    await chain?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("holds connections trickling bodies within its caps, closes them within seconds, logs it, and the API answers", async function () {
    const before = fds(pid);
    const sockets: Socket[] = [];
    let closed = 0;
    // 600 connections, each announcing a 1 MiB body and trickling it: 40 from one address (past its share), the
    // others from 127.0.0.2 to 127.0.0.57, ten each (past the total).
    for (let i = 0; i < 600; i++) {
      const localAddress = i < 40 ? "127.0.0.1" : `127.0.0.${2 + Math.floor((i - 40) / 10)}`;
      const s = connect({ host: "127.0.0.1", port: peerPort, localAddress });
      s.on("error", () => undefined);
      s.on("close", () => closed++);
      s.on("connect", () =>
        s.write(`POST /peer/v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1:${peerPort}\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${1 << 20}\r\n\r\n`),
      );
      sockets.push(s);
    }
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed && s.writable) s.write("{");
    }, 200);
    try {
      let peak = 0;
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        peak = Math.max(peak, fds(pid));
        statuses.push(await info());
        await sleep(250);
      }
      expect(statuses.filter((s) => s === 200), `API statuses ${statuses.join(",")}`).to.have.length(statuses.length);
      expect(peak - before, `descriptors ${before} before, ${peak} at the peak`).to.be.below(MAX_CONNECTIONS + 32);
      const line = await node.waitFor((l) => l.event === "peerLimits", 15_000);
      expect(line.level).to.equal("warn");
      expect(Object.keys(line.turnedAway as object)).to.not.be.empty;
      // Slow bodies time out: every connection is closed by the node, none kept for the minutes a trickle could last.
      await until(`the node to close all 600 connections (${closed} closed)`, async () => (closed === sockets.length ? true : undefined), 20_000);
      expect(await info()).to.equal(200);
    } finally {
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
    }
  });

  it("turns a flood of junk envelopes away before it waits (400, 403), stays within its memory, and the API answers during and after", async function () {
    const rss0 = rssMb(pid);
    const envelope = (from: string) =>
      encode({
        swapId: `0x${randomBytes(32).toString("hex")}`,
        from,
        body: { step: "propose", terms: { junk: "x".repeat(300) }, termsSig: `0x${"11".repeat(65)}` },
        signature: `0x${"22".repeat(65)}`,
      });
    // ~1 MiB bodies: envelopes claiming to be from the configured peer (junk signatures), a stranger's, and lines that
    // are not JSON.
    const lines = (line: () => string) => Array.from({ length: Math.floor(1_000_000 / (line().length + 1)) }, line).join("\n");
    const bodies = [lines(() => envelope(BOB)), lines(() => envelope(Wallet.createRandom().address)), lines(() => "not json ".repeat(55))];
    const statuses = new Map<number, number>();
    let peak = rss0;
    let stop = false;
    const flood = Array.from({ length: 32 }, async (_, i) => {
      for (let n = 0; !stop && n < 10_000; n++) {
        const a = await send(peerPort, "/peer/v1/envelopes", { headers: { "content-type": "application/x-ndjson" }, body: bodies[(i + n) % 3]! }).catch(() => ({ status: 0, body: "" }));
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      }
    });
    const during: number[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(400);
      peak = Math.max(peak, rssMb(pid));
      during.push(await info());
    }
    stop = true;
    await Promise.all(flood);
    peak = Math.max(peak, rssMb(pid));
    const after = await info();
    const seen = [...statuses].map(([s, n]) => `${s}: ${n}`).join(", ");
    expect(during.filter((s) => s === 200), `API statuses during the flood ${during.join(",")}`).to.not.be.empty;
    expect(after).to.equal(200);
    expect(peak - rss0, `RSS ${rss0.toFixed(0)} MB before, ${peak.toFixed(0)} MB at the peak`).to.be.below(150);
    // What is not an envelope signed by a configured peer is refused before it waits for the client (400, 403); the
    // bytes being read past their bound get 503, never held without bound.
    // (0: a connection closed as it came, past the connections one address may hold.)
    expect([...statuses.keys()].filter((s) => ![0, 202, 400, 403, 429, 503].includes(s)), `statuses ${seen}`).to.be.empty;
    expect(statuses.get(400) ?? 0, `statuses ${seen}`).to.be.greaterThan(0, "lines that are not envelopes");
    expect(statuses.get(403) ?? 0, `statuses ${seen}`).to.be.greaterThan(0, "envelopes from outside the configured peers");
  });

  it("keeps taking a configured peer's signed envelopes while 16 other addresses hold every connection with trickled bodies and flood nested junk", async function () {
    // The attack: 16 source addresses (127.0.0.2 to .17), each at its 16 connections, 256 in all (the node's whole
    // share), each announcing a body and trickling it a byte at a time, reopened as soon as the node closes it; and
    // 4 more addresses posting 1 MiB lines of nesting. Reopening is bounded in count, the peer's posts too.
    const sockets: Socket[] = [];
    let stop = false;
    const open = (localAddress: string) => {
      if (stop || sockets.length >= 3_000) return;
      const s = connect({ host: "127.0.0.1", port: peerPort, localAddress });
      s.on("error", () => undefined);
      s.on("connect", () => s.write(`POST /peer/v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1:${peerPort}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n`));
      s.on("close", () => setTimeout(() => open(localAddress), 20));
      sockets.push(s);
    };
    for (let a = 0; a < 16; a++) for (let i = 0; i < 16; i++) open(`127.0.0.${2 + a}`);
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed && s.writable) s.write("{");
    }, 500);
    const deep = `{"body":${"[".repeat(1 << 19)}${"]".repeat(1 << 19)}}`;
    const junk = Array.from({ length: 4 }, async (_, i) => {
      for (let n = 0; !stop && n < 300; n++) {
        await send(peerPort, "/peer/v1/envelopes", { headers: { "content-type": "application/x-ndjson" }, body: deep }).catch(() => undefined);
      }
    });
    try {
      await sleep(1_000); // the connections are in and trickling
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const a = await send(peerPort, "/peer/v1/envelopes", { headers: { "content-type": "application/x-ndjson" }, body: bobLine() }).catch(() => ({ status: 0, body: "" }));
        statuses.push(a.status);
        await sleep(100);
      }
      const taken = statuses.filter((s) => s === 202).length;
      expect(taken, `the peer's statuses ${statuses.join(",")} (${sockets.length} attacking connections opened)`).to.be.at.least(36);
      expect(await info()).to.equal(200);
    } finally {
      stop = true;
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
      await Promise.all(junk);
    }
  });

  it("a second node started on the peer port this one holds: one line naming peer.port, exit 2", async function () {
    const other = mkdtempSync(join(tmpdir(), "channels-peerport-taken-"));
    try {
      const config = JSON.parse(readFileSync(join(dir, "node.json"), "utf8")) as { api: { port: number } };
      config.api.port = await freePort();
      writeFileSync(join(other, "node.json"), JSON.stringify(config));
      const r = await channels(["--config", join(other, "node.json"), "node", "start"], { NODE_KEY: accountKey(3) });
      expect([r.code, r.stderr]).to.deep.equal([
        2,
        `error: peer.port: ${peerPort} on 127.0.0.1 is taken (by another node or program on this machine: give each node its own peer.port)\n`,
      ]);
      expect(await info()).to.equal(200);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("refuses a Host it does not listen as on both ports, and a browser's request on the peer port", async function () {
    const json = { "content-type": "application/json" };
    const rebind = "rebind.attacker.example";
    const peer = (host: string, headers: Record<string, string> = {}) =>
      send(peerPort, "/peer/v1/envelopes", { host, headers: { ...json, ...headers }, body: "{}" }).then((a) => a.status);
    expect(await peer(rebind, { origin: `http://${rebind}` })).to.equal(421);
    expect(await peer(`${rebind}:${peerPort}`)).to.equal(421);
    expect(await peer(`127.0.0.1:${peerPort + 1}`)).to.equal(421, "another port");
    expect(await peer(`127.0.0.1:${peerPort}`, { origin: `http://${rebind}` })).to.equal(403, "a browser");
    for (const host of [`127.0.0.1:${peerPort}`, `localhost:${peerPort}`, `[::1]:${peerPort}`]) {
      expect(await peer(host), host).to.equal(400, "read, and found not to be an envelope");
    }
    expect(await info(`${rebind}:${apiPort}`)).to.equal(421);
    expect(await info(rebind)).to.equal(421);
    for (const host of [`127.0.0.1:${apiPort}`, `localhost:${apiPort}`]) expect(await info(host), host).to.equal(200);
  });

  it("refuses a 64 MiB body on the control API with 413, as it comes and without reading it all", async function () {
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const rss0 = rssMb(pid);
    const big = await send(apiPort, "/api/v1/channels", { headers: auth, body: 64 << 20 });
    expect(big.status).to.equal(413);
    expect(JSON.parse(big.body)).to.deep.equal({ error: "body: more than 1048576 bytes" });
    const chunked = await send(apiPort, "/api/v1/channels", { headers: auth, body: (5 << 20) / 4, chunked: true });
    expect(chunked.status).to.equal(413, "a body without a length, refused once past the limit");
    expect(rssMb(pid) - rss0).to.be.below(64, "the body was not held");
    expect(await info()).to.equal(200);
  });
});

describe("the peer endpoint's queue of envelopes waiting for the client", function () {
  const keys = new Map([Wallet.createRandom(), Wallet.createRandom(), Wallet.createRandom()].map((w) => [w.address, w.signingKey]));
  const [A, B, C] = [...keys.keys()] as [string, string, string];
  /** An envelope's line signed by `from` (all of the same length). */
  const line = (from: string) =>
    encode(seal((d) => signDigest(keys.get(from)!, d), from as Hex, `0x${randomBytes(32).toString("hex")}` as Hex, { step: "acceptances", items: [{ swapId: `0x${"00".repeat(32)}` as Hex, refusal: "x" }] }));
  const post = async (url: string, path: string, body: string) => {
    const res = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body });
    await res.text();
    return { status: res.status, retryAfter: res.headers.get("retry-after") };
  };
  const lines = (from: string, n: number) => Array.from({ length: n }, () => line(from)).join("\n");

  it("answers 429 past a peer's share and 503 past the queue's size, with Retry-After, and takes envelopes again once handled", async function () {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const handled: string[] = [];
    const link = await PeerLink.start({
      host: "127.0.0.1",
      port: 0,
      limits: { ...DEFAULT_PEER_LIMITS, maxQueuedPerPeer: 10, maxQueuedChars: 15 * line(A).length },
      auth: new EnvelopeAuth(keySigner(accountKey(5))),
      isPeer: (a) => a === A.toLowerCase() || a === B.toLowerCase(),
      route: () => undefined,
      onProposal: async () => ({ accepted: false, reason: "none" }),
    });
    const hits: Record<string, number>[] = [];
    link.onLimit = (counts) => hits.push({ ...counts });
    link.listen(async (e) => {
      await gate; // the client's serial step, busy
      handled.push(e.from);
    });
    try {
      const path = "/peer/v1/envelopes";
      expect(await post(link.url, path, lines(A, 6))).to.deep.equal({ status: 202, retryAfter: null });
      expect(await post(link.url, path, lines(A, 6))).to.deep.equal({ status: 429, retryAfter: "1" }, "4 taken, 2 past A's share");
      expect(await post(link.url, path, lines(B, 6))).to.deep.equal({ status: 503, retryAfter: "1" }, "5 taken, the queue full");
      expect(await post(link.url, path, lines(B, 1))).to.deep.equal({ status: 503, retryAfter: "1" });
      // Checked before anything waits, whatever the queue holds: a stranger's envelope, one naming a peer but signed by
      // another key, a line that is no envelope.
      expect(await post(link.url, path, `${line(C)}\n${line(A)}`)).to.deep.include({ status: 403 });
      const forged = line(C).replace(C, A);
      expect(await post(link.url, path, `${forged}\n${line(A)}`)).to.deep.include({ status: 403 });
      expect(await post(link.url, path, `{"swapId":"0x12"}\n${line(A)}`)).to.deep.include({ status: 400 });
      expect(hits).to.deep.equal([{ maxQueuedPerPeer: 1 }], "the first hit at once, the next ones within 10 s later");
      release();
      await until("the queue to be handled", async () => (handled.length === 15 ? true : undefined), 10_000);
      expect(handled.filter((a) => a === A)).to.have.length(10);
      expect(await post(link.url, path, lines(B, 3))).to.deep.equal({ status: 202, retryAfter: null });
    } finally {
      release();
      await link.close();
    }
  });

  /** A link whose posts all go to `url` (a server the test runs). */
  const linkTo = (url: string) =>
    PeerLink.start({
      host: "127.0.0.1",
      port: 0,
      auth: new EnvelopeAuth(keySigner(accountKey(5))),
      isPeer: () => true,
      route: () => url,
      onProposal: async () => ({ accepted: false, reason: "none" }),
    });
  const listening = async (server: HttpServer | NetServer) => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  it("a peer answering our post with an endless body: the post is done once 64 KiB of it came, and the connection dropped", async function () {
    let streamed = 0;
    let closed = false;
    const hostile = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      const chunk = "x".repeat(16 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) streamed += chunk.length;
        if (!res.destroyed) res.once("drain", pump);
      };
      res.on("close", () => (closed = true));
      pump();
    });
    const link = await linkTo(await listening(hostile));
    try {
      await link.send(JSON.parse(bobLine()) as Envelope); // resolved: a post past its 10 s timeout rejects
      await until("the hostile answer closed", async () => (closed ? true : undefined), 5_000);
      expect(streamed, "it stopped reading").to.be.below(16 * 1024 * 1024);
    } finally {
      await link.close();
      hostile.closeAllConnections();
      await new Promise<void>((r) => hostile.close(() => r()));
    }
  });

  it("a post written into a kept-alive connection the peer closed as it came goes again on a new connection", async function () {
    // The peer takes a connection's first post, and closes it unanswered at its second: what a peer that closes an
    // unused connection does to a post that crosses its close.
    const posts = new Map<Socket, number>();
    let taken = 0;
    const peer = createServer({ keepAliveTimeout: 0 }, (req, res) => {
      const n = (posts.get(req.socket) ?? 0) + 1;
      posts.set(req.socket, n);
      if (n > 1) return void req.socket.destroy();
      req.resume();
      req.on("end", () => (taken++, res.writeHead(202).end()));
    });
    const link = await linkTo(await listening(peer));
    try {
      await link.send(JSON.parse(bobLine()) as Envelope);
      await link.send(JSON.parse(bobLine()) as Envelope);
      expect(taken, "both posts taken").to.equal(2);
      expect(posts.size, "the second on a new connection").to.equal(2);
    } finally {
      await link.close();
      peer.closeAllConnections();
      await new Promise<void>((r) => peer.close(() => r()));
    }
  });

  it("closes a kept-alive connection left unused for as long as the peer's Keep-Alive says it keeps one", async function () {
    // The peer says it keeps an unused connection 2 s and never closes one itself: ours closes it (a second sooner).
    let closed = false;
    const peer = createServer({ keepAliveTimeout: 0 }, (req, res) => {
      req.socket.once("close", () => (closed = true));
      req.resume();
      req.on("end", () => res.writeHead(202, { "keep-alive": "timeout=2" }).end());
    });
    const link = await linkTo(await listening(peer));
    try {
      await link.send(JSON.parse(bobLine()) as Envelope);
      await until("our side closed the unused connection", async () => (closed ? true : undefined), 8_000);
    } finally {
      await link.close();
      peer.closeAllConnections();
      await new Promise<void>((r) => peer.close(() => r()));
    }
  });

  for (const [what, head, piece] of [
    ["chunk extensions around one byte of body each", "HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n", `1;${"a".repeat(16_000)}\r\nx\r\n`],
    ["endless interim answers (102)", "", "HTTP/1.1 102 Processing\r\n\r\n"],
  ] as const) {
    it(`a peer answering our post with ${what}: the post gives up once 64 KiB came off the connection`, async function () {
      let written = 0;
      let closed = false;
      const hostile = createNetServer((socket) => {
        socket.on("error", () => {});
        socket.on("close", () => (closed = true));
        socket.once("data", () => {
          socket.write(head);
          const many = Buffer.from(piece.repeat(64));
          const pump = () => {
            while (!socket.destroyed && socket.write(many)) written += many.length;
            if (!socket.destroyed) socket.once("drain", pump);
          };
          pump();
        });
      });
      const link = await linkTo(await listening(hostile));
      try {
        const sent = await link.send(JSON.parse(bobLine()) as Envelope).then(
          () => "sent",
          (error: unknown) => (error instanceof PeerUnreachableError ? "unreachable" : error),
        );
        expect(sent).to.equal(head === "" ? "unreachable" : "sent");
        await until("the hostile answer closed", async () => (closed ? true : undefined), 5_000);
        expect(written, "it stopped reading").to.be.below(16 * 1024 * 1024);
      } finally {
        await link.close();
        await new Promise<void>((r) => hostile.close(() => r()));
      }
    });
  }

  it("a peer answering our post with 101 Switching Protocols: the post fails, rather than waiting for good", async function () {
    const hostile = createNetServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () => socket.write("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: x\r\n\r\n"));
    });
    const link = await linkTo(await listening(hostile));
    try {
      const sent = link.send(JSON.parse(bobLine()) as Envelope).then(
        () => "sent",
        (error: unknown) => (error instanceof PeerUnreachableError ? "unreachable" : error),
      );
      // Past the post's own 10 s timeout: a post still waiting by then waits for good (and every send after it).
      expect(await Promise.race([sent, sleep(15_000).then(() => "still waiting")])).to.equal("unreachable");
    } finally {
      await link.close();
      await new Promise<void>((r) => hostile.close(() => r()));
    }
  });

  it("a peer trickling its answer a byte at a time holds a send a moment only: sends to it fail at once while that post waits and for one timeout after it, and sends to other peers go out", async function () {
    this.timeout(60_000);
    // Every group of envelopes a node commits waits for the sends of the groups before it (steps, ticks and resends
    // wait on them): one peer holding each post for the whole timeout held every other peer's envelopes as long.
    let slowConnections = 0;
    let slowClosed = false;
    const slow = createNetServer((socket) => {
      slowConnections++;
      socket.on("error", () => {});
      socket.on("close", () => (slowClosed = true));
      socket.once("data", () => {
        // Headers that never end, a byte at a time: well within any limit on what is read.
        socket.write("HTTP/1.1 202 Accepted\r\nx-slow: ");
        const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write("a")), 200);
        socket.on("close", () => clearInterval(timer));
      });
    });
    const taken: string[] = [];
    const good = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => (taken.push(body), res.writeHead(202).end()));
    });
    const [slowUrl, goodUrl] = [await listening(slow), await listening(good)];
    const toSlow = new Set<string>();
    const link = await PeerLink.start({
      host: "127.0.0.1",
      port: 0,
      auth: new EnvelopeAuth(keySigner(accountKey(5))),
      isPeer: () => true,
      route: (e) => (toSlow.has(e.swapId) ? slowUrl : goodUrl),
      onProposal: async () => ({ accepted: false, reason: "none" }),
    });
    const envelope = (toSlowPeer: boolean) => {
      const e = JSON.parse(bobLine()) as Envelope;
      if (toSlowPeer) toSlow.add(e.swapId);
      return e;
    };
    const outcome = (sending: Promise<void>) => sending.then(() => "sent", (error: unknown) => (error instanceof PeerUnreachableError ? "unreachable" : error));
    try {
      expect(await outcome(link.sendMany([envelope(true), envelope(false)]))).to.equal("unreachable");
      expect(taken, "the other peer's envelope went out").to.have.length(1);
      // That post still waits for its answer: a send to the slow peer fails at once, without posting again.
      expect(await outcome(link.sendMany([envelope(true), envelope(false)]))).to.equal("unreachable");
      expect(slowConnections, "posts to the slow peer").to.equal(1);
      expect(taken).to.have.length(2);
      // Given up at the post's timeout: sends to it fail at once for as long again.
      await until("the post to the slow peer given up", async () => (slowClosed ? true : undefined), 20_000);
      expect(await outcome(link.sendMany([envelope(true), envelope(false)]))).to.equal("unreachable");
      expect(slowConnections, "posts to the slow peer").to.equal(1);
      expect(taken).to.have.length(3);
    } finally {
      await link.close();
      good.closeAllConnections();
      await new Promise<void>((r) => good.close(() => r()));
      await new Promise<void>((r) => slow.close(() => r()));
    }
  });

  it("reads a slow body without a handling slot, and answers 503 to a proposal past the requests being handled", async function () {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const link = await PeerLink.start({
      host: "127.0.0.1",
      port: 0,
      limits: { ...DEFAULT_PEER_LIMITS, maxRequests: 1 },
      auth: new EnvelopeAuth(keySigner(accountKey(5))),
      isPeer: () => true,
      route: () => undefined,
      onProposal: async () => {
        await gate;
        return { accepted: false, reason: "none" };
      },
    });
    const proposal = (from: string) => `{"from":"${from}","proposal":{},"signature":"0x${"22".repeat(65)}"}`;
    const port = Number(new URL(link.url).port);
    // A connection trickling a body: it holds its connection, not the one request that may be handled.
    const slow = connect({ host: "127.0.0.1", port });
    slow.on("error", () => undefined);
    slow.write(`POST /peer/v1/channel-proposals HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"from":"0x`);
    try {
      await sleep(200);
      const first = post(link.url, "/peer/v1/channel-proposals", proposal(A));
      await sleep(200);
      expect(await post(link.url, "/peer/v1/channel-proposals", proposal(B))).to.deep.equal({ status: 503, retryAfter: "1" });
      expect((await post(link.url, "/peer/v1/channel-proposals", "[".repeat(10_000))).status).to.equal(400, "refused at its first byte");
      release();
      expect((await first).status).to.equal(403);
    } finally {
      release();
      slow.destroy();
      await link.close();
    }
  });
});

describe("the Host names a listener answers to", function () {
  it("a loopback listener: its loopback names with its port; a wildcard one: its addresses and its public name", function () {
    const loopback = listenerHosts("127.0.0.1", 9701);
    for (const h of ["127.0.0.1:9701", "localhost:9701", "[::1]:9701"]) expect(hostAllowed(loopback, h), h).to.equal(true);
    for (const h of ["127.0.0.1", "127.0.0.1:9702", "rebind.attacker.example:9701", "localhost.:9701"]) expect(hostAllowed(loopback, h), h).to.equal(false);
    expect(hostAllowed(loopback, undefined)).to.equal(false, "no Host (HTTP/1.0)");
    const wildcard = listenerHosts("0.0.0.0", 9701, ["https://node.example.org", "http://node.example.org:8080"]);
    for (const h of ["0.0.0.0:9701", "127.0.0.1:9701", "node.example.org", "node.example.org:443", "Node.Example.org:8080"]) expect(hostAllowed(wildcard, h), h).to.equal(true);
    for (const h of ["node.example.org:9701", "other.example.org:9701"]) expect(hostAllowed(wildcard, h), h).to.equal(false);
    const named = listenerHosts("203.0.113.5", 80);
    for (const h of ["203.0.113.5", "203.0.113.5:80"]) expect(hostAllowed(named, h), h).to.equal(true);
    expect(hostAllowed(named, "localhost:80")).to.equal(false, "not a loopback listener");
  });
});
