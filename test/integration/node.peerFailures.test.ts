/**
 * Messages from peers that fail to be handled: a configured peer whose messages keep failing is said at warn (once a
 * minute at most), and nobody else's junk reaches warn or grows the log, whoever it claims to come from. The counting
 * alone with a clock of the test's; then a `channels node start` process fed real lines on its peer endpoint.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { hexlify, randomBytes, SigningKey, Wallet, ZeroAddress } from "ethers";
import { pino } from "pino";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { decodeEnvelope, encode, EnvelopeAuth, keySigner, rpcProvider, seal, signDigest, unseal, UnexpectedMessageError, type Address, type Envelope, type Hex, type SwapBody } from "../../sdk/index.js";
import { FAILURE_LOG_INTERVAL_MS, PeerFailures } from "../../sdk/node/peer-failures.js";
import { NodeProcess } from "../helpers/cli.js";
import { freePort, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

const BOB_KEY = accountKey(2);
const BOB = new Wallet(BOB_KEY).address as Address;
const randomId = () => hexlify(randomBytes(32)) as Hex;
/** An envelope line as `key` signs it, claiming `from` (its own address unless given). */
function line(key: string, body: SwapBody, from?: Address): string {
  const signing = new SigningKey(key);
  return encode(seal((d) => signDigest(signing, d), from ?? (new Wallet(key).address as Address), randomId(), body));
}
/** The same envelope as `line`, with the signature of `key` but claiming to come from `from`. */
function forged(key: string, body: SwapBody, from: Address): string {
  const e = decodeEnvelope(line(key, body));
  return encode({ ...e, from });
}
/** An acknowledgement for a channel nobody has (the envelope's id is random): it fails to be handled. */
const ack = (): SwapBody => ({ step: "batch", message: { kind: "ack", seq: 1n, signature: `0x${"11".repeat(65)}` as Hex } });
/** Another kind, so that a log line tells the stranger's failures from the peer's. */
const request = (): SwapBody => ({ step: "batch", message: { kind: "request", changes: [] } });

describe("failures to handle peer messages, counted", function () {
  const lines: Record<string, unknown>[] = [];
  let now = 1_000_000;
  const log = pino(
    { level: "debug", base: undefined },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  );
  const failures = new PeerFailures(log, new Map([[BOB.toLowerCase(), "bob"]]), () => now);
  const unknownSwap = new UnexpectedMessageError("a batch for channel 0x12, which is not a channel of ours");
  const warns = () => lines.filter((l) => l.event === "peerMessageFailures");

  it("says a configured peer's failures at warn from the third in a row, at most once a minute, with the count", function () {
    const bob = () => decodeEnvelope(line(BOB_KEY, ack()));
    failures.failed(unknownSwap, bob());
    failures.failed(unknownSwap, bob());
    expect(warns()).to.have.length(0);
    failures.failed(unknownSwap, bob());
    expect(warns()).to.have.length(1);
    expect(warns()[0]).to.include({ level: 40, peer: "bob", failures: 3, inARow: 3 });
    expect(String(warns()[0]!.error)).to.match(/not a channel of ours/);
    for (let i = 0; i < 50; i++) failures.failed(unknownSwap, bob());
    expect(warns()).to.have.length(1);
    now += FAILURE_LOG_INTERVAL_MS;
    failures.failed(unknownSwap, bob());
    expect(warns()).to.have.length(2);
    expect(warns()[1]).to.include({ failures: 51, inARow: 54 });
  });

  it("ends a run of failures when a message the peer signed is handled", function () {
    now += FAILURE_LOG_INTERVAL_MS;
    const handled = decodeEnvelope(line(BOB_KEY, { step: "acceptances", items: [] }));
    unseal(handled, BOB);
    failures.handled(handled);
    failures.failed(unknownSwap, decodeEnvelope(line(BOB_KEY, ack())));
    failures.failed(unknownSwap, decodeEnvelope(line(BOB_KEY, ack())));
    expect(warns()).to.have.length(2, "two in a row after a handled message: not yet persistent");
  });

  it("counts anyone else's lines together at debug, once a minute, even those claiming the peer's address", function () {
    const before = lines.length;
    now += FAILURE_LOG_INTERVAL_MS;
    const stranger = Wallet.createRandom().privateKey;
    for (let i = 0; i < 200; i++) {
      failures.failed(unknownSwap, decodeEnvelope(forged(stranger, request(), BOB))); // the peer's address, not its key
      failures.failed(unknownSwap, decodeEnvelope(line(stranger, ack())));
      failures.failed(new SyntaxError("not JSON"));
      failures.failed(new Error("x".repeat(100_000)), null as unknown as Envelope);
    }
    const added = lines.slice(before);
    expect(added.filter((l) => l.event === "peerMessageFailures")).to.have.length(0);
    expect(added).to.have.length(1);
    expect(added[0]).to.include({ level: 20, event: "peerMessageError", failures: 1 });
    expect(JSON.stringify(lines)).to.not.include(BOB_KEY.slice(2));
  });
});

describe("failures of envelopes a peer authenticated with the key it shares with us", function () {
  it("counts them as the peer's, and a stranger's authenticator under the peer's address as a stranger's", function () {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "debug", base: undefined }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), done()) }));
    const me = keySigner(accountKey(5));
    const failures = new PeerFailures(log, new Map([[BOB.toLowerCase(), "bob"]]), () => 0, new EnvelopeAuth(me));
    const sealFrom = (key: string, from: Address) => {
      const auth = new EnvelopeAuth(keySigner(key));
      return decodeEnvelope(encode(seal((d) => auth.tag(d, me.publicKey), from, randomId(), ack())));
    };
    const failure = new UnexpectedMessageError("a batch for channel 0x12, which is not a channel of ours");
    for (let i = 0; i < 3; i++) failures.failed(failure, sealFrom(accountKey(7), BOB)); // a stranger's key, Bob's address
    expect(lines.filter((l) => l.event === "peerMessageFailures")).to.have.length(0);
    for (let i = 0; i < 3; i++) failures.failed(failure, sealFrom(BOB_KEY, BOB));
    expect(lines.filter((l) => l.event === "peerMessageFailures")).to.have.length(1);
  });
});

describe("a node whose peer's messages keep failing", function () {
  this.timeout(120_000);
  let chain: LocalNode;
  let dir: string;
  let node: NodeProcess;
  let peerUrl: string;

  before(async function () {
    chain = await startHardhatNode(31337n);
    const provider = rpcProvider(chain.url);
    const hub = await deployHub(provider);
    provider.destroy();
    dir = mkdtempSync(join(tmpdir(), "channels-peer-failures-"));
    const peerPort = await freePort();
    writeFileSync(
      join(dir, "node.json"),
      JSON.stringify({
        key: { env: "NODE_KEY" },
        store: "node.sqlite",
        peer: { port: peerPort },
        api: { port: await freePort() },
        chains: { source: { rpcUrl: chain.url, hub, confirmations: 0, assets: { ETH: { address: ZeroAddress } } } },
        peers: { bob: { address: BOB, url: "http://127.0.0.1:9" } },
        logLevel: "debug",
      }),
    );
    node = await NodeProcess.start(join(dir, "node.json"), { NODE_KEY: accountKey(1) });
    peerUrl = `http://127.0.0.1:${peerPort}/peer/v1/envelopes`;
  });
  after(async function () {
    await node?.stop();
    await chain?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (text: string) => {
    const res = await fetch(peerUrl, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: text });
    await res.text();
    return res.status;
  };

  it("says so at warn once the peer's own signed messages fail three times in a row; a stranger's junk stays out of it", async function () {
    const stranger = Wallet.createRandom().privateKey;
    const hugeBody: SwapBody = { step: "acceptances", items: [{ swapId: randomId(), refusal: "y".repeat(400_000) }] };
    // A million-digit number in an envelope naming the peer: refused at the peer port by the codec's bound (400),
    // before it costs the event loop anything.
    const millionDigits = `{"body":{"step":"batch","message":{"kind":"ack","seq":{"$n":"${"9".repeat(1_000_000)}"}}},"from":"${BOB}","signature":"0x","swapId":"${randomId()}"}`;
    expect(await post(millionDigits)).to.equal(400);
    const junk = [
      "not json",
      "null",
      "5",
      encode({ ...decodeEnvelope(line(BOB_KEY, hugeBody)), signature: "0x" }), // unsigned, huge, in the peer's name
      forged(stranger, hugeBody, BOB), // badly signed, huge, in the peer's name
      ...Array.from({ length: 20 }, () => forged(stranger, request(), BOB)),
      ...Array.from({ length: 20 }, () => line(stranger, request())),
    ];
    // Each junk line on its own: turned away at the door (not JSON or not an envelope: 400; a stranger, or a forged
    // signature in the peer's name: 403); the client never sees them.
    for (const j of junk) expect([202, 400, 403]).to.include(await post(j));
    // The peer's own failing messages, three in a row.
    const own = Array.from({ length: 3 }, () => line(BOB_KEY, ack()));
    expect(await post(own.join("\n"))).to.equal(202);
    const warn = await node.waitFor((l) => l.event === "peerMessageFailures", 30_000);
    expect(warn).to.include({ level: "warn", peer: "bob", failures: 3, inARow: 3 });
    expect(String(warn.error)).to.match(/not a channel of ours/);
    expect(node.lines.filter((l) => l.event === "peerMessageFailures")).to.have.length(1);
    // Everyone else's lines that got past the door: at most one debug line for the minute, never a warning.
    const others = node.lines.filter((l) => l.event === "peerMessageError");
    expect(others.length).to.be.at.most(1);
    for (const o of others) expect(o).to.include({ level: "debug" });
    expect(node.lines.filter((l) => l.level === "warn" && String(l.event).startsWith("peerMessage"))).to.have.length(1);
    expect(JSON.stringify(node.lines) + node.stderr).to.not.include(BOB_KEY.slice(2));
  });
});
