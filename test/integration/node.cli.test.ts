/**
 * End to end through the `channels` binary only, each command and each node a separate OS process: two
 * `hardhat node` chains, `channels deploy`, `channels init` for Alice and Bob, two nodes, channels opened by
 * negotiation and funded on both chains, swaps with --wait, a swap during which Bob's node is killed (SIGKILL)
 * after locking, a cooperative close, and payouts that add up to the deposits. Time on the chains is moved with
 * Hardhat's evm_increaseTime: the challenge period has to pass.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { channels, channelsJson, editJson, NodeProcess, PeerRelay } from "../helpers/cli.js";
import { freePort, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const ENV = { CHANNELS_PASSWORD: "correct horse" };

type Channel = { id: string; chain: string; status: string; base: { myIndex: number; deposits: string[]; onChainDeposits?: string[]; payouts?: string[] } };
type Swap = { id: string; phase: string; outcome?: string };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, step?: () => Promise<void>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    if (step) await step();
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function advance(chains: readonly LocalNode[], seconds: number): Promise<void> {
  for (const c of chains) {
    for (const [method, params] of [["evm_increaseTime", [seconds]], ["evm_mine", []]] as const) {
      await fetch(c.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
    }
  }
}

describe("channels CLI and node, end to end as OS processes", function () {
  this.timeout(300_000);
  let chains: LocalNode[] = [];
  let dir: string;
  let relay: PeerRelay;
  const nodes: { alice?: NodeProcess; bob?: NodeProcess } = {};
  const cfg = { alice: "", bob: "" };
  const pair: { s1?: string; t1?: string; s2?: string; t2?: string } = {};

  before(async function () {
    chains = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    dir = mkdtempSync(join(tmpdir(), "channels-e2e-"));
  });
  afterEach(function () {
    if (this.currentTest?.state !== "failed" || !process.env.CHANNELS_E2E_DEBUG) return;
    for (const who of ["alice", "bob"] as const) {
      for (const l of nodes[who]?.lines ?? []) if (l.event !== "heartbeat") console.log(who, JSON.stringify(l).slice(0, 400));
    }
  });
  after(async function () {
    await nodes.alice?.stop();
    await nodes.bob?.stop();
    await relay?.close();
    await Promise.all(chains.map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("deploys, initialises two nodes and starts them", async function () {
    const deployed = await channelsJson<{ chainId: string; hub: string }[]>(["deploy", "--source-rpc", chains[0]!.url, "--target-rpc", chains[1]!.url]);
    expect(deployed.map((d) => d.chainId)).to.deep.equal(["31337", "31338"]);
    const [ap, aa, bp, ba] = [await freePort(), await freePort(), await freePort(), await freePort()];
    relay = await PeerRelay.start(() => `http://127.0.0.1:${bp}`);
    const init = (who: string, account: string, peerPort: number, apiPort: number, peer: string) =>
      channelsJson<{ address: string }>(
        ["init", "--dir", join(dir, who), "--local-account", account, "--scrypt-n", "1024",
          "--source-rpc", chains[0]!.url, "--target-rpc", chains[1]!.url, "--source-hub", deployed[0]!.hub, "--target-hub", deployed[1]!.hub,
          "--peer-port", String(peerPort), "--api-port", String(apiPort), "--peer", peer],
        ENV,
      );
    expect((await init("alice", "1", ap, aa, `bob=${BOB}@${relay.url}`)).address).to.equal(ALICE);
    expect((await init("bob", "2", bp, ba, `alice=${ALICE}@http://127.0.0.1:${ap}`)).address).to.equal(BOB);
    cfg.alice = join(dir, "alice", "node.json");
    cfg.bob = join(dir, "bob", "node.json");
    for (const file of [cfg.alice, cfg.bob]) {
      editJson(file, (c) => {
        c.policy = {
          channels: { accept: ["ETH@source", "ETH@target"] },
          swaps: { pairs: [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "2" }], maxInFlight: 2 },
        };
        c.timing = { tickMs: 250, heartbeatSeconds: 30, resendMs: 1_000, confirmationTimeoutMs: 4_000, onChainMarginSeconds: 600 };
      });
    }
    nodes.alice = await NodeProcess.start(cfg.alice, ENV);
    nodes.bob = await NodeProcess.start(cfg.bob, ENV);
    const info = await channelsJson<{ address: string; chains: unknown[] }>(["--config", cfg.alice, "info"]);
    expect(info.address).to.equal(ALICE);
    expect(info.chains).to.have.length(2);
    const peers = await channelsJson<{ name: string }[]>(["--config", cfg.bob, "peer", "list"]);
    expect(peers.map((p) => p.name)).to.deep.equal(["alice"]);
  });

  it("opens and funds two channels on each chain, negotiated between the nodes", async function () {
    const open = (who: "alice" | "bob", asset: string, ...more: string[]) =>
      channelsJson<Channel>(["--config", cfg[who], "channel", "open", "--peer", who === "alice" ? "bob" : "alice", "--asset", asset, "--deposit", "5", ...more]);
    // --wait returns once the deposit counts in the co-signed ledger.
    const first = await open("alice", "ETH@source", "--wait");
    expect(first.base.deposits[first.base.myIndex]).to.equal(first.base.onChainDeposits?.[first.base.myIndex]);
    expect(first.base.deposits[first.base.myIndex]).to.equal((5n * 10n ** 18n).toString());
    pair.s1 = first.id;
    pair.t1 = (await open("bob", "ETH@target")).id;
    pair.s2 = (await open("alice", "ETH@source")).id;
    pair.t2 = (await open("bob", "ETH@target")).id;
    // Bob adds 1 on S1 afterwards: the deposit update folds it in.
    const topped = await channelsJson<Channel>(["--config", cfg.bob, "channel", "deposit", pair.s1.slice(0, 12), "1", "--wait"]);
    expect(topped.base.deposits[topped.base.myIndex]).to.equal((10n ** 18n).toString());
    for (const who of ["alice", "bob"] as const) {
      await until(`${who}'s ledgers to count the deposits`, async () => {
        const list = await channelsJson<Channel[]>(["--config", cfg[who], "channel", "list"]);
        const counted = list.filter((c) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join());
        return counted.length === 4 ? true : undefined;
      });
    }
  });

  it("runs three swaps with --wait", async function () {
    for (let i = 0; i < 3; i++) {
      const s = await channelsJson<Swap>(["--config", cfg.alice, "swap", "propose", "--peer", "bob", "--give", "1 ETH@source", "--take", "0.5 ETH@target", "--source", pair.s1!, "--target", pair.t1!, "--wait", "--timeout", "1m"]);
      expect(s.outcome).to.equal("swapped");
    }
    const bobs = await channelsJson<Swap[]>(["--config", cfg.bob, "swap", "list"]);
    expect(bobs.filter((s) => s.outcome === "swapped")).to.have.length(3);
    // Above Bob's maxAmount: his node refuses, the swap aborts (exit 1), and Bob lists the reason.
    const refused = await channels(["--config", cfg.alice, "swap", "propose", "--peer", "bob", "--give", "1 ETH@source", "--take", "3 ETH@target", "--source", pair.s1!, "--target", pair.t1!, "--wait"]);
    expect(refused.code).to.equal(1);
    expect(refused.stdout).to.match(/aborted \(counterparty: take 3 ETH@target is more than maxAmount 2\)/);
    const reasons = await channelsJson<{ kind: string; reason: string }[]>(["--config", cfg.bob, "swap", "list", "--refused"]);
    expect(reasons.map((r) => r.reason)).to.deep.equal(["take 3 ETH@target is more than maxAmount 2"]);
  });

  it("refuses bad input with one line and a non-zero exit, signing and sending nothing", async function () {
    const before = [
      (await channelsJson<Swap[]>(["--config", cfg.alice, "swap", "list"])).length,
      (await channelsJson<Swap[]>(["--config", cfg.bob, "swap", "list"])).length,
    ];
    const propose = (...extra: string[]) => ["--config", cfg.alice, "swap", "propose", "--peer", "bob", "--give", "1 ETH@source", "--take", "0.5 ETH@target", ...extra];
    const cases: [string, string[], RegExp][] = [
      ["unknown peer", ["--config", cfg.alice, "swap", "propose", "--peer", "carol", "--give", "1 ETH@source", "--take", "0.5 ETH@target"], /peer: no peer carol/],
      ["amount above the free balance", ["--config", cfg.alice, "swap", "propose", "--peer", "bob", "--give", "50 ETH@source", "--take", "0.5 ETH@target", "--source", pair.s1!, "--target", pair.t1!], /more than the free balance/],
      ["malformed address", ["init", "--dir", join(dir, "carol"), "--source-hub", "0x1234", "--target-hub", "0x1234"], /--source-hub: expected an address/],
      ["unknown asset", propose().map((a) => (a === "1 ETH@source" ? "1 DOGE@source" : a)), /give: no asset DOGE on source/],
      ["same channel as both legs", [...propose("--source", pair.s1!, "--target", pair.s1!)], /same channel|two channels/],
      ["malformed amount", propose().map((a) => (a === "0.5 ETH@target" ? "0.5.1 ETH@target" : a)), /take: expected an amount/],
    ];
    for (const [what, args, message] of cases) {
      const r = await channels(args, ENV);
      expect(r.code, what).to.not.equal(0);
      expect(r.code, what).to.not.equal(null);
      expect(r.stderr.trim().split("\n"), `${what}: ${r.stderr}`).to.have.length(1);
      expect(r.stderr, what).to.match(message);
    }
    const bad = join(dir, "bad.json");
    editJson(cfg.alice, () => {}); // still valid
    const { writeFileSync } = await import("node:fs");
    writeFileSync(bad, JSON.stringify({ store: "x.sqlite", peer: { port: "9" }, api: { port: 1 }, chains: {} }));
    const r = await channels(["--config", bad, "info"]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/bad.json: key: /);
    expect(r.stderr).to.match(/bad.json: peer.port: expected a whole number/);
    expect(r.stderr.trim().split("\n").every((l) => l.startsWith("error: "))).to.equal(true);
    // With --json, errors come as one JSON object, for a script to read: a refusal by the node and a usage error.
    const asJson = async (args: string[]) => {
      const x = await channels(["--json", ...args], ENV);
      return { code: x.code, body: JSON.parse(x.stderr) as { error: string; errors: string[]; exitCode: number } };
    };
    const refusedJson = await asJson(propose().map((a) => (a === "1 ETH@source" ? "1 DOGE@source" : a)));
    expect(refusedJson.code).to.not.equal(0);
    expect([refusedJson.body.exitCode, refusedJson.body.errors.length]).to.deep.equal([refusedJson.code, 1]);
    expect(refusedJson.body.error).to.match(/^give: no asset DOGE on source/);
    const configJson = await asJson(["--config", bad, "info"]);
    expect(configJson.code).to.equal(2);
    expect(configJson.body.errors.length).to.be.greaterThan(1);
    expect(configJson.body.errors.join("\n")).to.match(/peer.port: expected a whole number/);
    const after = [
      (await channelsJson<Swap[]>(["--config", cfg.alice, "swap", "list"])).length,
      (await channelsJson<Swap[]>(["--config", cfg.bob, "swap", "list"])).length,
    ];
    expect(after).to.deep.equal(before, "no swap was proposed or received");
  });

  it("settles on chain when Bob's node is killed once both locks are co-signed; Bob's node, restarted, collects what it is owed", async function () {
    const killed = new Promise<void>((ok) => {
      relay.onHeld = () => {
        nodes.bob!.child.kill("SIGKILL");
        ok();
      };
    });
    // Alice's reveal (her payments, with the secret) never reaches Bob: his node dies as she sends it.
    relay.hold('"kind":"pay"');
    const proposed = await channelsJson<Swap>(["--config", cfg.alice, "swap", "propose", "--peer", "bob", "--give", "2 ETH@source", "--take", "1 ETH@target", "--source", pair.s2!, "--target", pair.t2!]);
    await killed;
    // Alice hears nothing more. Her reveal cannot be undone: once the T lock she is owed nears its expiry, her node
    // goes on chain (registers the secret, force closes) with the channels the swap ties.
    const forceClosed = () => nodes.alice!.lines.some((l) => l.event === "chain" && (l.step as { kind?: string })?.kind === "forceClosed");
    await until("Alice's node to force close", async () => (forceClosed() ? true : undefined), 120_000, () => advance(chains, 120));
    nodes.bob = await NodeProcess.start(cfg.bob, ENV);
    // Meanwhile pair 1 closes cooperatively, before the chains' clocks are moved.
    for (const [who, id] of [["alice", pair.s1!], ["bob", pair.t1!]] as const) {
      const c = await channelsJson<Channel>(["--config", cfg[who], "channel", "close", id, "--wait"]);
      expect(c.status).to.equal("closed");
    }
    // Time passes on both chains: Alice registers the secret on T before its lock expires and settles T2; Bob's
    // node, restarted from its store, finds the secret there, claims its lock on S2 and settles it.
    const doneIn = (n: NodeProcess) => n.lines.some((l) => l.event === "phase" && l.swapId === proposed.id && (l.phase as { kind: string }).kind === "done");
    await until("both nodes to finish the swap on chain", async () => (doneIn(nodes.alice!) && doneIn(nodes.bob!) ? true : undefined), 120_000, () => advance(chains, 200));
    const done = [
      await channelsJson<Swap>(["--config", cfg.alice, "swap", "show", proposed.id]),
      await channelsJson<Swap>(["--config", cfg.bob, "swap", "show", proposed.id]),
    ];
    expect(done.map((s) => s.outcome)).to.deep.equal(["settledOnChain", "settledOnChain"]);
  });

  it("lists payouts that add up to the deposits on both chains", async function () {
    const list = await until("every channel closed with payouts", async () => {
      const l = await channelsJson<Channel[]>(["--config", cfg.alice, "channel", "list"]);
      return l.every((c) => c.status === "closed" && c.base.payouts !== undefined) ? l : undefined;
    }, 60_000, () => advance(chains, 600));
    expect(list).to.have.length(4);
    for (const chain of ["source", "target"]) {
      const on = list.filter((c) => c.chain === chain);
      const paid = on.reduce((s, c) => s + BigInt(c.base.payouts![0]!) + BigInt(c.base.payouts![1]!), 0n);
      const deposited = on.reduce((s, c) => s + BigInt(c.base.onChainDeposits![0]!) + BigInt(c.base.onChainDeposits![1]!), 0n);
      expect(paid).to.equal(deposited, chain);
    }
    // Alice gave 3 + 2 on S and took 1.5 + 1 on T (what the four swaps moved).
    const mine = (id: string) => BigInt(list.find((c) => c.id === id)!.base.payouts![0]!);
    expect(mine(pair.s1!) + mine(pair.s2!)).to.equal(5n * 10n ** 18n);
    const theirsT = (id: string) => BigInt(list.find((c) => c.id === id)!.base.payouts![1]!);
    expect(theirsT(pair.t1!) + theirsT(pair.t2!)).to.equal(25n * 10n ** 17n);
  });

  it("logs a heartbeat per chain with its block, and stops cleanly on SIGTERM", async function () {
    // Alice holds two channels on each chain (heartbeatSeconds is 30 here).
    for (const chain of ["source", "target"]) {
      const beat = await nodes.alice!.waitFor((l) => l.event === "heartbeat" && l.chain === chain && l.channels === 2, 90_000);
      expect(beat.block, chain).to.be.a("number");
      expect(beat.blockAgeSeconds, chain).to.be.a("number");
    }
    const alice = nodes.alice!;
    const output = new Promise((ok) => alice.child.stdout!.once("close", ok));
    expect(await alice.stop("SIGTERM")).to.equal(0);
    await output;
    expect(alice.lines.map((l) => l.event)).to.include.members(["signal", "stopped"]);
  });
});
