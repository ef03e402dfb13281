import { expect } from "chai";
import { appendFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hexlify, parseEther, randomBytes, Wallet, ZeroAddress } from "ethers";
import { pino } from "pino";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { DeltaTable, encode, hashlockOf, keySigner, rpcProvider, seal, termsDigest, type Address, type Hex, type SwapTerms } from "../../sdk/index.js";
import { ChannelNode } from "../../sdk/node/node.js";
import { loadNodeConfig } from "../../sdk/node/node-config.js";
import { signProposal } from "../../sdk/node/peer.js";
import { freePort, startHardhatNode, until, type LocalNode } from "../helpers/nodes.js";

const ALICE = new Wallet(accountKey(1)).address;
const BOB = new Wallet(accountKey(2)).address;
/** An asset Alice's configuration names on T beside ETH, with other decimals (no contract needed: never touched). */
const USDC = "0x00000000000000000000000000000000000000A1";

/** Posts a proposal to a peer endpoint as a stranger's script would. */
async function post(url: string, body: string, contentType = "application/json"): Promise<number> {
  const res = await fetch(`${url}/peer/v1/channel-proposals`, { method: "POST", body, headers: { "content-type": contentType } });
  await res.text();
  return res.status;
}

describe("the node refuses what could lose funds or grow without bound", function () {
  let chains: LocalNode[] = [];
  let hubs: string[] = [];
  let dir: string;
  let alice: ChannelNode;
  let bob: ChannelNode;
  let bobPeer = "";
  let s1 = "";
  let t1 = "";

  before(async function () {
    chains = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    for (const c of chains) {
      const p = rpcProvider(c.url);
      hubs.push(await deployHub(p));
      p.destroy();
    }
    dir = mkdtempSync(join(tmpdir(), "node-guards-"));
    const [ap, bp] = [await freePort(), await freePort()];
    bobPeer = `http://127.0.0.1:${bp}`;
    const chain = (i: number, extra: Record<string, unknown> = {}) => ({
      rpcUrl: chains[i]!.url, hub: hubs[i], confirmations: 0, finalitySeconds: 12, inclusionSeconds: 60, clockSkewSeconds: 30,
      assets: { ETH: { address: ZeroAddress, decimals: 18 }, ...extra },
    });
    const timing = { tickMs: 250, heartbeatSeconds: 30, resendMs: 1_000, confirmationTimeoutMs: 4_000, onChainMarginSeconds: 600 };
    writeFileSync(join(dir, "alice.json"), JSON.stringify({
      key: { env: "ALICE_KEY" }, store: "alice.sqlite", peer: { port: ap }, api: { port: await freePort(), tokenFile: "alice.token" },
      chains: { source: chain(0), target: chain(1, { USDC: { address: USDC, decimals: 6 } }) },
      peers: { bob: { address: BOB, url: bobPeer } },
      policy: { channels: { accept: ["ETH@target"] } },
      timing,
    }));
    writeFileSync(join(dir, "bob.json"), JSON.stringify({
      key: { env: "BOB_KEY" }, store: "bob.sqlite", peer: { port: bp }, api: { port: await freePort(), tokenFile: "bob.token" },
      chains: { source: chain(0), target: chain(1) },
      peers: { alice: { address: ALICE, url: `http://127.0.0.1:${ap}` } },
      policy: {
        channels: { accept: ["ETH@source", "ETH@target"], maxChallengePeriodSeconds: 30 * 86400 },
        swaps: { pairs: [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "2" }], maxInFlight: 1 },
      },
      timing,
    }));
    const log = pino({ level: "silent" });
    alice = await ChannelNode.start(loadNodeConfig(join(dir, "alice.json")), accountKey(1) as Hex, log);
    bob = await ChannelNode.start(loadNodeConfig(join(dir, "bob.json")), accountKey(2) as Hex, log);
    s1 = (await alice.openChannel({ peer: "bob", asset: "ETH@source", deposit: "5" })).id;
    t1 = (await bob.openChannel({ peer: "alice", asset: "ETH@target", deposit: "5" })).id;
    for (const n of [alice, bob]) for (const id of [s1, t1]) await until(`channel ${id} open`, async () => ((await n.channel(id)).status === "open" ? true : undefined));
  });

  after(async function () {
    await alice?.stop();
    await bob?.stop();
    await Promise.all(chains.map((c) => c.stop()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a swap leg on a channel of another asset than the amount names, before anything is signed", async function () {
    const before = alice.swaps().length;
    let error: unknown;
    await alice.propose({ peer: "bob", give: "1 ETH@source", take: "1000 USDC@target", source: s1, target: t1 }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/target: channel 0x[0-9a-f]+ does not hold USDC@target/i);
    expect(alice.swaps().length).to.equal(before, "no swap was proposed");
  });

  it("never funds a channel whose challenge period its own policy would refuse to join", async function () {
    const p = rpcProvider(chains[0]!.url);
    const [balance, count] = [await p.getBalance(ALICE), (await alice.channels()).length];
    let error: unknown;
    await alice.openChannel({ peer: "bob", asset: "ETH@source", deposit: "1", challengePeriodSeconds: 10 * 86400 }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/challengePeriodSeconds: 864000 is outside/);
    expect(await p.getBalance(ALICE)).to.equal(balance, "nothing was sent on chain");
    expect((await alice.channels()).length).to.equal(count);
    p.destroy();
  });

  it("refuses to open a channel with more than the wallet holds, before anything is proposed or sent", async function () {
    const before = (await bob.channels()).length;
    let error: unknown;
    await alice.openChannel({ peer: "bob", asset: "ETH@source", deposit: "100000000" }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/deposit: 100000000 ETH@source is more than the wallet's balance [0-9.]+ ETH@source$/);
    expect((await bob.channels()).length).to.equal(before, "Bob agreed to nothing");
  });

  it("takes an id as the CLI prints it, shortened with an ellipsis", async function () {
    expect((await alice.channel(`${s1.slice(0, 12)}…`)).id).to.equal(s1);
    let error: unknown;
    await alice.channel("0x4288").catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/its first 6 or more hex digits/);
  });

  it("refuses to start a second node on the same store", async function () {
    let error: unknown;
    await ChannelNode.start(loadNodeConfig(join(dir, "bob.json")), accountKey(2) as Hex, pino({ level: "silent" })).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(new RegExp(`another node \\(pid ${process.pid}\\) runs on`));
  });

  it("says in one line that there is nothing to withdraw, and that a hub address holds no contract", async function () {
    let error: unknown;
    await alice.withdraw(s1).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/nothing to withdraw: the hub holds no deferred payout/);
    const config = loadNodeConfig(join(dir, "alice.json"));
    const wrong = { ...config, store: join(dir, "carol.sqlite"), chains: { ...config.chains, source: { ...config.chains.source!, hub: Wallet.createRandom().address } } };
    error = undefined;
    await ChannelNode.start(wrong, accountKey(3) as Hex, pino({ level: "silent" })).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/chains\.source\.hub: no contract at 0x[0-9a-fA-F]{40} on http:\/\/127\.0\.0\.1:\d+/);
  });

  it("keeps no record of strangers' proposals and turns away requests that are not JSON", async function () {
    const before = bob.refused().length;
    const file = join(dir, "bob.sqlite.refusals.jsonl");
    const size = existsSync(file) ? statSync(file).size : 0;
    for (let i = 0; i < 30; i++) {
      const w = Wallet.createRandom();
      const params = { participants: [w.address, BOB] as [Address, Address], payees: [ZeroAddress, ZeroAddress] as [Address, Address], asset: ZeroAddress, challengePeriod: 3600n, nonce: BigInt(i) };
      expect(await post(bobPeer, encode(signProposal(keySigner(w.privateKey), { chainId: 31337n, hub: hubs[0] as Address, params })))).to.equal(403);
    }
    expect(bob.refused().length).to.equal(before);
    expect(existsSync(file) ? statSync(file).size : 0).to.equal(size);
    expect(await post(bobPeer, "{}", "text/plain")).to.equal(415, "a web page's form post");
  });

  it("agrees to a bounded number of channels a peer has not opened yet", async function () {
    const signer = keySigner(accountKey(1));
    const answers: number[] = [];
    for (let i = 0; i < 20; i++) {
      const params = { participants: [ALICE, BOB] as [Address, Address], payees: [ZeroAddress, ZeroAddress] as [Address, Address], asset: ZeroAddress, challengePeriod: 3600n, nonce: 10_000n + BigInt(i) };
      answers.push(await post(bobPeer, encode(signProposal(signer, { chainId: 31337n, hub: hubs[0] as Address, params }))));
    }
    expect(answers.filter((a) => a === 200)).to.have.length(16);
    expect(answers.slice(16)).to.deep.equal([403, 403, 403, 403]);
    expect(bob.refused().at(-1)?.reason).to.match(/16 channels agreed and not opened yet/);
  });

  it("starts with a torn last line in its refusals file", async function () {
    appendFileSync(join(dir, "bob.sqlite.refusals.jsonl"), '{"time":"2026');
    await bob.stop();
    bob = await ChannelNode.start(loadNodeConfig(join(dir, "bob.json")), accountKey(2) as Hex, pino({ level: "silent" }));
    expect(bob.refused().length).to.be.greaterThan(0);
    // The next refusal goes on a line of its own, not onto the torn one: it is still there after another restart.
    const kept = bob.refused().length;
    const params = { participants: [ALICE, BOB] as [Address, Address], payees: [ZeroAddress, ZeroAddress] as [Address, Address], asset: ZeroAddress, challengePeriod: 3600n, nonce: 20_000n };
    expect(await post(bobPeer, encode(signProposal(keySigner(accountKey(1)), { chainId: 31337n, hub: hubs[0] as Address, params })))).to.equal(403);
    await bob.stop();
    bob = await ChannelNode.start(loadNodeConfig(join(dir, "bob.json")), accountKey(2) as Hex, pino({ level: "silent" }));
    expect(bob.refused()).to.have.length(kept + 1);
  });

  it("R3-INFLIGHT: holds policy.swaps.maxInFlight when a peer sends ten proposals in one envelope", async function () {
    const counted = async (n: ChannelNode, id: string) => {
      const c = await n.channel(id);
      const base = c.base;
      return c.status === "open" && base?.onChainDeposits !== undefined && base.deposits.join() === base.onChainDeposits.join() ? true : undefined;
    };
    for (const n of [alice, bob]) for (const id of [s1, t1]) await until(`channel ${id} counts its deposit`, () => counted(n, id));
    // Alice's key crafts ten valid proposals (each within Bob's pair policy: 0.1 for 0.2, at most 2) and sends them
    // in one `proposals` envelope to Bob's peer endpoint, as a hostile node would.
    const p = rpcProvider(chains[1]!.url);
    const nowT = BigInt((await p.getBlock("latest"))!.timestamp);
    p.destroy();
    const timing = { finalitySeconds: 12n, inclusionSeconds: 60n, clockSkewSeconds: 30n };
    const delta = new DeltaTable(new Map([[31337n, { chainId: 31337n, ...timing }], [31338n, { chainId: 31338n, ...timing }]])).delta(31337n, 31338n);
    const terms = Array.from({ length: 10 }, (): SwapTerms => ({
      swapId: hexlify(randomBytes(32)) as Hex,
      source: { chainId: 31337n, hub: hubs[0] as Address, channelId: s1 as Hex },
      target: { chainId: 31338n, hub: hubs[1] as Address, channelId: t1 as Hex },
      initiator: ALICE as Address,
      responder: BOB as Address,
      give: parseEther("0.2"),
      take: parseEther("0.1"),
      hashlock: hashlockOf(hexlify(randomBytes(32)) as Hex),
      targetExpiry: nowT + 1800n,
      sourceExpiry: nowT + 1800n + delta,
    }));
    const signer = keySigner(accountKey(1));
    const items = terms.map((t) => ({ terms: t, termsSig: signer.sign(termsDigest(t)) }));
    const envelope = seal((d) => signer.sign(d), ALICE, s1 as Hex, { step: "proposals", items });
    const res = await fetch(`${bobPeer}/peer/v1/envelopes`, { method: "POST", body: encode(envelope) + "\n", headers: { "content-type": "application/x-ndjson" } });
    await res.text();
    expect(res.status).to.equal(202);
    const ids = new Set(terms.map((t) => t.swapId.toLowerCase()));
    const answered = await until("Bob answered all ten proposals", async () => {
      const agreed = bob.swaps().filter((s) => ids.has(s.id.toLowerCase()) && s.role === "responder");
      const refused = bob.refused().filter((r) => ids.has(r.id.toLowerCase()));
      return agreed.length + refused.length === 10 ? { agreed, refused } : undefined;
    });
    // Before the fix each item was checked against the swaps stored before the envelope: all ten were agreed.
    expect(answered.agreed.map((s) => s.id), "swaps Bob agreed to").to.have.length(1);
    expect(answered.refused.map((r) => r.reason)).to.deep.equal(Array.from({ length: 9 }, () => "1 swaps in flight, policy.swaps.maxInFlight is 1"));
  });
});
