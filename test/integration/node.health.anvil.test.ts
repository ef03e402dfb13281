/**
 * Each chain's health as a node follows it, against two anvil chains mining a block a second with a finality depth of 2
 * blocks: a deposit reorganised out before it is final is never counted; a chain that stops answering (anvil stopped,
 * then brought back from its dumped state on the same port) is reported, takes no new swap, does not keep the node from
 * defending a channel on the other chain, and the transaction left waiting on it is sent once; a chain that goes on
 * while the node's endpoint for it is away (a proxy in front of it resets every connection) for most of a challenge
 * period in chain time: a stale close made meanwhile is answered once the endpoint is back, in the minute left, with
 * one transaction; a deposit reorganised out after it was counted (deeper than the configuration allows) is noticed by
 * both nodes, which then sign nothing new on that chain and say so in the log, the event stream and /info, and keep
 * holding it across a restart until `channels chain release`. The nodes run in this process with their control APIs on
 * real ports; the chains are anvil processes.
 */
import { expect } from "chai";
import { join } from "node:path";
import { parseEther, Wallet } from "ethers";

import { accountKey } from "../../scripts/lib/local.js";
import { HubAdapter, type Hex } from "../../sdk/index.js";
import { startAnvil } from "../helpers/anvil.js";
import { ACCOUNT, CHALLENGE_PERIOD, anvilNodes, startAnvilNodes, stopAnvilNodes, staleState, type Who } from "../helpers/anvil-nodes.js";
import { RpcProxy } from "../helpers/chain-faults.js";
import { channels } from "../helpers/cli.js";
import { until } from "../helpers/nodes.js";

const FUNDER = 3; // deposits for a participant from an account no node sends from
const CHAIN_IDS = [31_421, 31_422] as const;
type Event = { type: string; chain?: string; status?: string; kind?: string; call?: string; hash?: string; nonce?: number; blockNumber?: number };
type Health = { healthy: boolean; holding?: string; reachable?: boolean; head?: number; confirmations: number; deepReorg?: { block: number }; feeAccount: { balance?: string; enough?: boolean } };
type Info = { chains: { name: string; health: Health }[] };
type Channel = { id: string; status: string; base: { deposits: string[]; onChainDeposits?: string[] } };

describe("a node's chain health (two anvil chains, a block a second, finality 2 blocks)", function () {
  this.timeout(180_000);
  let aliceSource: RpcProxy; // Alice's endpoint for the source chain: goes away while the chain goes on
  const env = anvilNodes("node-health");
  const { dir, file, nodes, anvils, providers, hubs } = env;
  const run = nodes.run;
  const start = (who: Who) => nodes.start(who);
  const stop = (who: Who) => nodes.stop(who);
  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => nodes.api<T>(who, method, path, body);
  const events = (who: Who) => (nodes.events[who] ?? []) as unknown as Event[];
  const logs = (who: Who) => nodes.logs[who] ?? [];
  const dumpFile = (i: number, n: number) => join(dir, `chain${i}-${n}.json`);
  let s: string; // Alice's channel on the source chain
  let t: string; // Bob's channel on the target chain

  const health = async (who: Who, chain: string) => (await api<Info>(who, "GET", "/info")).json.chains.find((c) => c.name === chain)!.health;
  const channel = async (who: Who, id: string) => (await api<Channel>(who, "GET", `/channels/${id}`)).json;
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();
  const said = (who: Who, chain: string, status: string) => events(who).find((e) => e.type === "chainHealth" && e.chain === chain && e.status === status);
  const open = async (who: Who, peer: Who, asset: string, deposit: string) =>
    (await run[who]!.node.openChannel({ peer, asset, deposit, challengePeriodSeconds: CHALLENGE_PERIOD })).id;
  async function allCounted(ids: string[]) {
    for (const who of ["alice", "bob"] as const) {
      for (const id of ids) await until(`${who}: ${id} open, deposits counted`, async () => (counted(await channel(who, id)) ? true : undefined));
    }
  }
  /** Both nodes have checked chain `i` at block `n` or later: their loops ran on what the chain holds there. */
  async function bothSeen(i: number, n: number) {
    for (const who of ["alice", "bob"] as const) {
      await until(`${who} at block ${n} of chain ${i}`, async () => ((await health(who, i === 0 ? "source" : "target")).head! >= n ? true : undefined));
    }
  }
  /** A deposit for participant 0 of `channelId` on chain `i` from the funder's account (not awaited for mining). */
  async function fund(i: number, channelId: string, amount: bigint) {
    const funder = await HubAdapter.connect(hubs[i]!, new Wallet(accountKey(FUNDER), providers[i]!));
    return (await funder.hub.deposit(channelId, 0, amount, { value: amount })).hash;
  }
  const receipt = (i: number, hash: string) => until(`receipt of ${hash}`, async () => (await providers[i]!.getTransactionReceipt(hash)) ?? undefined);

  before(async function () {
    await startAnvilNodes(env, {
      chainIds: CHAIN_IDS, confirmations: 2, finalitySeconds: 12, dumpOnStop: (i) => dumpFile(i, 0),
      prepare: async () => void (aliceSource = await RpcProxy.start(anvils[0]!.url)),
      rpcUrl: (i, who) => (i === 0 && who === "alice" ? aliceSource.url : undefined),
      timing: { tickMs: 250, heartbeatSeconds: 5, chainCheckSeconds: 1, resendMs: 1_000, confirmationTimeoutMs: 15_000, onChainMarginSeconds: 600 },
    });
    s = await open("alice", "bob", "ETH@source", "2");
    t = await open("bob", "alice", "ETH@target", "2");
    await allCounted([s, t]);
  });

  after(async function () {
    await stopAnvilNodes(env);
    await aliceSource?.close();
  });

  it("shows each chain's head, finality depth and fee account in /info", async function () {
    for (const who of ["alice", "bob"] as const) {
      for (const name of ["source", "target"]) {
        const h = await until(`${who}: ${name} checked`, async () => {
          const read = await health(who, name);
          return read.reachable === true && read.feeAccount.balance !== undefined ? read : undefined;
        });
        expect(h.healthy, `${who} ${name}`).to.equal(true);
        expect(h.confirmations).to.equal(2);
        expect(h.head).to.be.a("number");
        expect(h.feeAccount.enough).to.equal(true);
        expect(h.holding).to.equal(undefined);
      }
    }
  });

  it("never counts a deposit reorganised out before it is 2 blocks deep, and locks no swap against it", async function () {
    const before = (await channel("alice", s)).base.deposits;
    await anvils[0]!.rpc("evm_setIntervalMining", [0]);
    let hash: string;
    try {
      hash = await fund(0, s, parseEther("1"));
      await anvils[0]!.rpc("evm_mine");
      const mined = (await receipt(0, hash)).blockNumber;
      await anvils[0]!.rpc("evm_mine"); // 1 block deep: the nodes see it at the head, not at their final block
      const head = await providers[0]!.getBlockNumber();
      expect(head - mined, "1 block deep").to.equal(1);
      await until("Alice's view shows the deposit on chain", async () => {
        const c = await channel("alice", s);
        return c.base.onChainDeposits?.[0] === (BigInt(before[0]!) + parseEther("1")).toString() ? true : undefined;
      });
      await bothSeen(0, head);
      await anvils[0]!.reorg(head - mined + 1);
      await anvils[0]!.rpc("anvil_dropTransaction", [hash]).catch(() => undefined); // never mined again
      expect(await providers[0]!.getTransactionReceipt(hash), "reorganised out").to.equal(null);
    } finally {
      await anvils[0]!.rpc("evm_setIntervalMining", [1]);
    }
    // Well past the depth at which it would have counted: neither node counts it, and no swap is locked against it.
    await bothSeen(0, (await providers[0]!.getBlockNumber()) + 4);
    for (const who of ["alice", "bob"] as const) expect((await channel(who, s)).base.deposits, `${who}'s count`).to.deep.equal(before);
    const { status, json } = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "2.5 ETH@source", take: "1 ETH@target", source: s, target: t });
    expect(status, json.error).to.equal(409);
    expect(json.error).to.match(/free balance/);
    // A reorganisation within the confirmations is no deep one.
    expect(said("alice", "source", "deepReorg")).to.equal(undefined);
    expect(said("bob", "source", "deepReorg")).to.equal(undefined);
  });

  it("reports a chain that stops answering, refuses swaps that need it, defends a channel on the other chain, starts a node that waits for it, and sends what waited on it once", async function () {
    // One swap moves both channels past their first states: Bob holds an older co-signed state of S.
    const first = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.25 ETH@target", source: s, target: t });
    expect(first.status, JSON.stringify(first.json)).to.equal(201);
    await until("swap swapped", async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${first.json.id}`)).json.outcome === "swapped" ? true : undefined));

    // The target chain goes away.
    const port = anvils[1]!.port;
    await anvils[1]!.stop();
    for (const who of ["alice", "bob"] as const) await until(`${who} says target does not answer`, async () => said(who, "target", "unreachable"));
    const down = await health("alice", "target");
    expect(down.reachable).to.equal(false);
    expect(down.healthy).to.equal(false);
    expect(down.holding).to.match(/chain target does not answer/);
    expect((await health("alice", "source")).healthy, "source stays healthy").to.equal(true);
    expect(logs("alice").some((l) => l.event === "chainHealth" && l.chain === "target" && l.status === "unreachable" && l.level === 40), "a warning in the log").to.equal(true);
    const refused = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.25 ETH@target", source: s, target: t });
    expect(refused.status, refused.json.error).to.equal(409);
    expect(refused.json.error).to.match(/chain target does not answer/);

    // Bob, hostile, registers an older state of S on the source chain: Alice's node challenges it there, with T (on
    // the chain that does not answer) still open beside it.
    await stop("bob");
    const { record, newest, stale } = staleState(join(dir, "bob.sqlite"), s);
    const bobOnS = await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(ACCOUNT.bob), providers[0]!));
    await bobOnS.forceClose(record.params, { state: stale.state, signatures: stale.signatures });
    await until("Alice's newest state of S on chain, target still down", async () => ((await bobOnS.channelInfo(s as Hex)).seq === newest.state.seq ? true : undefined), 30_000);
    expect((await health("alice", "target")).reachable, "target still down").to.equal(false);

    // Alice force-closes T while its chain is down: recorded, its transaction waits for the chain.
    const closing = await api<{ status: string; error?: string }>("alice", "POST", `/channels/${t}/close`, { force: true });
    expect(closing.status, closing.json.error).to.equal(200);

    // Bob's node is started while the target chain is down (a service manager restarting it): it waits for the chain.
    const bobStarting = start("bob");
    await until("Bob's node says it waits for target", async () => (logs("bob").some((l) => l.event === "chainWaiting" && l.chain === "target") ? true : undefined));

    // The target chain comes back from its state, on the same port.
    anvils[1] = await startAnvil({ chainId: CHAIN_IDS[1], blockTime: 1, port, loadState: dumpFile(1, 0), dumpOnStop: dumpFile(1, 1) });
    await bobStarting;
    await until("Alice says target answers again", async () => said("alice", "target", "reachable"));
    const onTarget = await HubAdapter.connect(hubs[1]!, new Wallet(accountKey(FUNDER), providers[1]!));
    await until("T force-closed on chain", async () => ((await onTarget.channelInfo(t as Hex)).status !== "open" ? true : undefined), 30_000);
    const back = await health("alice", "target");
    expect(back.reachable).to.equal(true);
    expect(back.holding).to.equal(undefined);
    // The close that waited was sent under one nonce and mined once.
    const isClose = (e: Event) => e.type === "chainTx" && e.chain === "target" && e.call?.startsWith("forceClose") === true;
    await until("Alice's node saw its force close mined", async () => events("alice").find((e) => isClose(e) && e.kind === "mined"));
    const closes = events("alice").filter(isClose);
    expect(new Set(closes.filter((e) => e.kind === "sent").map((e) => e.nonce)).size, "one nonce").to.equal(1);
    expect(new Set(closes.filter((e) => e.kind === "mined").map((e) => e.hash)).size, "mined once").to.equal(1);
  });

  it("answers a stale close made while its endpoint was away for most of the challenge period, before the deadline, with one transaction", async function () {
    // The chain goes on while Alice's endpoint for it is away (an RPC provider's outage): blocks are made, chain time
    // passes, and Bob registers an old state of W there that she cannot see.
    const w = await open("alice", "bob", "ETH@source", "2");
    const u = await open("bob", "alice", "ETH@target", "2");
    await allCounted([w, u]);
    const first = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.25 ETH@target", source: w, target: u });
    expect(first.status, JSON.stringify(first.json)).to.equal(201);
    await until("swap swapped", async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${first.json.id}`)).json.outcome === "swapped" ? true : undefined));
    await stop("bob");
    const { record, newest, stale } = staleState(join(dir, "bob.sqlite"), w);

    const OUTAGE_MS = 15_000;
    const from = events("alice").length; // what Alice's node says from here on
    aliceSource.down(OUTAGE_MS);
    const back = Date.now() + OUTAGE_MS;
    await until("Alice says source does not answer", async () => events("alice").slice(from).find((e) => e.type === "chainHealth" && e.chain === "source" && e.status === "unreachable"));
    const refused = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.1 ETH@source", take: "0.05 ETH@target", source: w, target: u });
    expect(refused.status, refused.json.error).to.equal(409);
    expect(refused.json.error).to.match(/chain source does not answer/);
    const bobOnS = await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(ACCOUNT.bob), providers[0]!));
    await bobOnS.forceClose(record.params, { state: stale.state, signatures: stale.signatures });
    const closed = await bobOnS.channelInfo(w as Hex);
    expect(closed.seq).to.equal(stale.state.seq);
    // The outage lasts most of the challenge period in chain time: 60 s of it are left when the endpoint is back.
    const left = 60;
    const skip = Number(closed.deadline - (await bobOnS.now())) - left - Math.ceil((back - Date.now()) / 1000);
    await providers[0]!.send("evm_increaseTime", [skip]);
    expect(aliceSource.isDown, "the skip was made while Alice could not see the chain").to.equal(true);
    expect((await health("alice", "source")).reachable).to.equal(false);

    await until("Alice's newest state of W on chain", async () => ((await bobOnS.channelInfo(w as Hex)).seq === newest.state.seq ? true : undefined), 45_000);
    const isChallenge = (e: Event) => e.type === "chainTx" && e.chain === "source" && e.call === "challenge";
    const mined = await until("Alice's node saw its challenge mined", async () => events("alice").slice(from).find((e) => isChallenge(e) && e.kind === "mined"));
    const block = (await providers[0]!.getBlock(mined.blockNumber!))!;
    expect(BigInt(block.timestamp), "mined before the deadline").to.be.lessThan(closed.deadline);
    const challenges = events("alice").slice(from).filter(isChallenge);
    expect(new Set(challenges.filter((e) => e.kind === "sent").map((e) => e.nonce)).size, "one nonce").to.equal(1);
    expect(new Set(challenges.filter((e) => e.kind === "mined").map((e) => e.hash)).size, "mined once").to.equal(1);
    expect((await health("alice", "source")).reachable).to.equal(true);
    await start("bob");
  });

  it("notices a deposit reorganised out after it was counted, signs nothing new on that chain, says so, still closes on it, and holds the chain across a restart until the operator releases it", async function () {
    const v = await open("alice", "bob", "ETH@source", "2");
    await allCounted([v]);
    const deposited = await api<{ error?: string }>("alice", "POST", `/channels/${v}/deposit`, { amount: "1" });
    expect(deposited.status, deposited.json.error).to.equal(200);
    const mined = events("alice").filter((e) => e.type === "chainTx" && e.call === "deposit" && e.kind === "mined").at(-1)!.blockNumber!;
    const three = parseEther("3").toString();
    for (const who of ["alice", "bob"] as const) await until(`${who} counts 3 ETH on V`, async () => ((await channel(who, v)).base.deposits[0] === three ? true : undefined));

    // Every block from the deposit's on is replaced: deeper than the 2 confirmations.
    const head = await providers[0]!.getBlockNumber();
    expect(head - mined + 1, "deeper than the confirmations").to.be.greaterThan(2);
    await anvils[0]!.reorg(head - mined + 1);
    for (const who of ["alice", "bob"] as const) await until(`${who} says source reorganised deeper than allowed`, async () => said(who, "source", "deepReorg"));
    expect(logs("alice").some((l) => l.event === "chainHealth" && l.chain === "source" && l.status === "deepReorg" && l.level === 50), "an error in the log").to.equal(true);
    const h = await health("alice", "source");
    expect(h.healthy).to.equal(false);
    expect(h.deepReorg!.block).to.be.at.least(mined);
    expect(h.holding).to.match(/reorganised deeper than its 2 confirmations/);
    expect((await health("alice", "target")).healthy, "target stays healthy").to.equal(true);

    // Nothing new on the source chain: no swap, no deposit through the node, no count of a deposit final since.
    const refused = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.25 ETH@target", source: v, target: t });
    expect(refused.status, refused.json.error).to.equal(409);
    expect(refused.json.error).to.match(/reorganised deeper/);
    expect((await api("alice", "POST", `/channels/${v}/deposit`, { amount: "1" })).status).to.equal(409);
    const again = await receipt(0, await fund(0, v, parseEther("1.5")));
    await bothSeen(0, again.blockNumber + 4);
    for (const who of ["alice", "bob"] as const) expect((await channel(who, v)).base.deposits[0], `${who}'s count`).to.equal(three);

    // What goes on chain goes on: Alice's force close of V lands.
    const closing = await api<{ error?: string }>("alice", "POST", `/channels/${v}/close`, { force: true });
    expect(closing.status, closing.json.error).to.equal(200);
    await until("V force-closed on chain", async () => ((await (await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(FUNDER), providers[0]!))).channelInfo(v as Hex)).status !== "open" ? true : undefined), 30_000);

    // A restart (a service manager's, after a crash) does not end the hold: only the operator's word does.
    await stop("alice");
    await start("alice");
    const kept = await health("alice", "source");
    expect(kept.deepReorg?.block, "held across the restart").to.equal(h.deepReorg!.block);
    expect(kept.holding).to.match(/until the operator releases it \(channels chain release source\)/);
    expect(logs("alice").some((l) => l.event === "chainHealth" && l.status === "deepReorg" && typeof l.since === "string" && l.level === 50), "said again at start").to.equal(true);
    const nowhere = await api<{ error: string }>("alice", "POST", "/chains/nowhere/release");
    expect([nowhere.status, nowhere.json.error]).to.deep.equal([404, "no chain named nowhere in the configuration (known: source, target)"]);
    expect((await api<{ error: string }>("alice", "POST", "/chains/target/release")).json.error).to.equal("chain target is not held by a deep reorganisation");
    const released = await channels(["--config", file("alice"), "chain", "release", "source"]);
    expect(released.code, released.stderr).to.equal(0);
    expect(released.stdout).to.match(/^chain source released: healthy/);
    expect(logs("alice").some((l) => l.event === "chainHealth" && l.status === "released" && l.level === 40), "a warning in the log").to.equal(true);
    expect((await health("alice", "source")).holding).to.equal(undefined);
    await stop("alice");
    await start("alice");
    expect((await health("alice", "source")).deepReorg, "released for good").to.equal(undefined);
    expect((await health("bob", "source")).deepReorg, "Bob's node still holds it").to.not.equal(undefined);
  });
});
