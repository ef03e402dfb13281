/**
 * Two nodes on two anvil chains mining a block a second, each with a finality depth of 2 blocks: a counterparty
 * gone hostile registers a stale state, the honest node's challenge is mined and then reorganised out of the chain,
 * and the node challenges again and settles with its newest state before the deadline. The nodes run in this
 * process with their control APIs on real ports; the chains are anvil processes (a second EVM client).
 */
import { expect } from "chai";
import { join } from "node:path";
import { Wallet } from "ethers";

import { accountKey } from "../../scripts/lib/local.js";
import { HubAdapter, type Hex } from "../../sdk/index.js";
import { ACCOUNT, ADDRESS, CHALLENGE_PERIOD, anvilNodes, startAnvilNodes, stopAnvilNodes, staleState, type Who } from "../helpers/anvil-nodes.js";
import { until } from "../helpers/nodes.js";

type Event = { type: string; chain?: string; kind?: string; call?: string; hash?: string; blockNumber?: number; swapId?: string; phase?: { kind: string; outcome?: string } };

describe("a node on chains that misbehave (two anvil chains, a block a second, finality 2 blocks)", function () {
  this.timeout(240_000);
  const env = anvilNodes("node-anvil");
  const { dir, nodes, anvils, providers, hubs } = env;
  const run = nodes.run;
  const start = (who: Who) => nodes.start(who);
  const stop = (who: Who) => nodes.stop(who);
  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => nodes.api<T>(who, method, path, body);
  const events = (who: Who) => (nodes.events[who] ?? []) as unknown as Event[];

  type Channel = { id: string; status: string; base: { deposits: string[]; onChainDeposits?: string[] } };
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();

  before(async function () {
    await startAnvilNodes(env, {
      chainIds: [31_411, 31_412], confirmations: 2, finalitySeconds: 12,
      timing: { tickMs: 250, heartbeatSeconds: 1, resendMs: 1_000, confirmationTimeoutMs: 15_000, onChainMarginSeconds: 600 },
    });
  });

  after(async function () {
    await stopAnvilNodes(env);
  });

  it("challenges again a stale close whose first challenge a reorganisation took out, and settles with its newest state in time", async function () {
    const open = async (who: Who, peer: Who, asset: string) => (await run[who]!.node.openChannel({ peer, asset, deposit: "2", challengePeriodSeconds: CHALLENGE_PERIOD })).id;
    const s = await open("alice", "bob", "ETH@source");
    const t = await open("bob", "alice", "ETH@target");
    for (const who of ["alice", "bob"] as const) {
      for (const id of [s, t]) await until(`${who}: ${id} open, deposits counted`, async () => (counted((await api<Channel>(who, "GET", `/channels/${id}`)).json) ? true : undefined));
    }
    // Two swaps: the state of S moves past the one Bob will register.
    for (let i = 0; i < 2; i++) {
      const { status, json } = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.25 ETH@target", source: s, target: t });
      expect(status, JSON.stringify(json)).to.equal(201);
      await until(`swap ${i} swapped`, async () => ((await api<{ phase: string; outcome?: string }>("alice", "GET", `/swaps/${json.id}`)).json.outcome === "swapped" ? true : undefined));
    }
    // Bob's node stops; Bob, hostile, registers the oldest state he holds co-signed on S.
    await stop("bob");
    const { record, newest, stale } = staleState(join(dir, "bob.sqlite"), s);
    const bobOnS = await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(ACCOUNT.bob), providers[0]!));
    const before = await providers[0]!.getBlockNumber();
    await bobOnS.forceClose(record.params, { state: stale.state, signatures: stale.signatures });

    // Alice's node challenges; the block with her challenge, and every one after it, leaves the chain.
    const challengeMined = () => events("alice").find((e) => e.type === "chainTx" && e.call === "challenge" && e.kind === "mined");
    const first = await until("Alice's challenge mined", async () => challengeMined());
    expect(first.blockNumber!, "after Bob's close").to.be.greaterThan(before);
    const head = await providers[0]!.getBlockNumber();
    await anvils[0]!.reorg(head - first.blockNumber! + 1);
    expect(await providers[0]!.getTransactionReceipt(first.hash!), "her first challenge, reorganised out").to.equal(null);
    const info = async () => (await bobOnS.channelInfo(s as Hex));
    expect((await info()).seq, "the chain holds Bob's stale state again").to.equal(stale.state.seq);

    // She challenges again, from what the chain shows: her newest state is registered before the deadline.
    await until("Alice's newest state on chain", async () => ((await info()).seq === newest.state.seq ? true : undefined), 60_000);
    const registered = await info();
    expect(await bobOnS.now(), "before the challenge deadline").to.be.at.most(registered.deadline);
    const challenges = events("alice").filter((e) => e.type === "chainTx" && e.call === "challenge" && e.kind === "sent" && e.hash !== first.hash);
    expect(challenges.length, "a second challenge sent").to.be.greaterThan(0);

    // Past the challenge period the channel settles with her newest state.
    await anvils[0]!.rpc("evm_increaseTime", [CHALLENGE_PERIOD + 5]);
    await until("S settled on chain", async () => ((await info()).status === "closed" ? true : undefined), 90_000);
    expect((await info()).seq).to.equal(newest.state.seq);
  });

  it("keeps swapping off chain while a force close of its waits to be mined on a chain that stopped mining", async function () {
    await start("bob");
    const open = async (who: Who, peer: Who, asset: string) => (await run[who]!.node.openChannel({ peer, asset, deposit: "1", challengePeriodSeconds: CHALLENGE_PERIOD })).id;
    const s2 = await open("alice", "bob", "ETH@source");
    const s3 = await open("alice", "bob", "ETH@source");
    const t2 = await open("bob", "alice", "ETH@target");
    for (const who of ["alice", "bob"] as const) {
      for (const id of [s2, s3, t2]) await until(`${who}: ${id} open, deposits counted`, async () => (counted((await api<Channel>(who, "GET", `/channels/${id}`)).json) ? true : undefined));
    }
    // The test before moved the source chain's clock on past a challenge period: a swap across the two is refused as
    // things stand (409, not a server error), until the target's clock catches up.
    const skewed = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.1 ETH@source", take: "0.05 ETH@target", source: s2, target: t2 });
    expect(skewed.status, skewed.json.error).to.equal(409);
    expect(skewed.json.error).to.match(/clocks are \d+s apart/);
    const [sNow, tNow] = await Promise.all(providers.map(async (p) => (await p.getBlock("latest"))!.timestamp));
    if (sNow! > tNow!) await anvils[1]!.rpc("evm_increaseTime", [sNow! - tNow!]);
    await anvils[1]!.rpc("evm_mine", []);
    // The source chain stops mining: Alice's force close of S3 waits in the pool for as long as it stands still.
    await anvils[0]!.rpc("evm_setIntervalMining", [0]);
    try {
      const { status } = await api("alice", "POST", `/channels/${s3}/close`, { force: true });
      expect(status).to.equal(200);
      await until("Alice's force close sent", async () => (events("alice").some((e) => e.type === "chainTx" && e.call === "forceClose" && e.kind === "sent") ? true : undefined));
      // Meanwhile a swap on S2 and T2 goes through off chain: no step of Alice's waits on that transaction.
      const { status: proposed, json } = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.1 ETH@source", take: "0.05 ETH@target", source: s2, target: t2 });
      expect(proposed, JSON.stringify(json)).to.equal(201);
      await until("the swap swapped while the force close waits", async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${json.id}`)).json.outcome === "swapped" ? true : undefined), 20_000);
      expect(await providers[0]!.getTransactionCount(ADDRESS.alice, "pending"), "the force close still waiting").to.be.greaterThan(await providers[0]!.getTransactionCount(ADDRESS.alice, "latest"));
    } finally {
      await anvils[0]!.rpc("evm_setIntervalMining", [1]);
    }
    const info = async () => (await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(ACCOUNT.bob), providers[0]!))).channelInfo(s3 as Hex);
    await until("S3's force close mined once the chain mines again", async () => ((await info()).status === "disputed" ? true : undefined), 30_000);
  });
});
