/**
 * A node restored from a stale backup copy against a peer that never answers: two nodes in this process with their
 * control APIs on real ports, over two anvil chains mining a block a second (finality 1 block). Alice's node swaps,
 * writes a copy of its store, swaps twice more, and is then restarted from the copy; Bob's node is stopped for good.
 * Alice force-closes both channels with the copy's newest states: on S (her deposit; she paid 0.2 a swap) the copy's
 * state pays her 0.4 more than the newest, on T (Bob's deposit; she was paid 0.1 a swap) 0.2 less. Her node signs
 * nothing on either, and nothing but the payouts and her fees moves her funds.
 * - Her watchtower's store lost with the store (the disk died): nobody answers, and each channel pays out exactly what
 *   the copy's state says, the loss on T and the gain on S.
 * - Her watchtower's store kept (docs/NODE.md's restore steps move only the store's three files): her own watchtower
 *   answers each close with the newest co-signed state it holds, and that state pays out, silent peer or not.
 * Each case is the other's control: a close paid by the wrong state fails one of them.
 */
import { expect } from "chai";
import { copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Wallet, type JsonRpcProvider } from "ethers";

import { accountKey } from "../../scripts/lib/local.js";
import { HubAdapter, type Hex } from "../../sdk/index.js";
import { Store } from "../../sdk/store/store.js";
import { ADDRESS, CHALLENGE_PERIOD, anvilNodes, startAnvilNodes, stopAnvilNodes, type Who } from "../helpers/anvil-nodes.js";
import { channels } from "../helpers/cli.js";
import { until } from "../helpers/nodes.js";

const CHAIN_IDS = [31_451, 31_452] as const;
const ETH = 10n ** 18n;
type Channel = { id: string; status: string; frozenSince?: string; base: { balances: string[]; deposits: string[]; onChainDeposits?: string[]; payouts?: string[]; myIndex: number } };

describe("a node restored from a stale backup copy, its peer silent (two anvil chains)", function () {
  this.timeout(120_000);
  const env = anvilNodes("node-backup-silent");
  const { dir, file, nodes, providers, hubs } = env;
  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => nodes.api<T>(who, method, path, body);
  const channel = async (who: Who, id: string) => (await api<Channel>(who, "GET", `/channels/${id}`)).json;
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();
  /** Alice's part of a channel's balances, once no lock is left in her view of it. */
  const settledMine = async (id: string) => {
    const c = await channel("alice", id);
    const sum = (xs: string[]) => xs.reduce((a, x) => a + BigInt(x), 0n);
    return sum(c.base.balances) === sum(c.base.deposits) ? BigInt(c.base.balances[c.base.myIndex]!) : undefined;
  };
  /** After `n` swaps of 0.2 ETH@source for 0.1 ETH@target: Alice's balance in S and in T. */
  const aliceAfter = (n: bigint) => [2n * ETH - n * 2n * 10n ** 17n, n * 10n ** 17n] as const;
  async function swap(s: string, t: string, done: bigint): Promise<void> {
    const p = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target", source: s, target: t });
    expect(p.status, JSON.stringify(p.json)).to.equal(201);
    await until(`swap ${p.json.id} swapped`, async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${p.json.id}`)).json.outcome === "swapped" ? true : undefined));
    // Both channels' newest states carry no lock any more: what a close with them pays is their balances.
    const want = aliceAfter(done);
    await until(`S and T settled off chain after ${done} swap(s)`, async () => ((await settledMine(s)) === want[0] && (await settledMine(t)) === want[1] ? true : undefined), 30_000);
  }
  /** What a store holds of a channel: its newest co-signed state (number, balances, locks) and the highest number its key signed. */
  function held(path: string, id: string) {
    const store = new Store(path, { readOnly: true });
    try {
      const { state } = store.latestCoSigned(id as Hex)!;
      return { seq: state.seq, balances: state.balances.map(String), locks: state.locks.length, ownHighest: store.highestOwnSeq(id as Hex) };
    } finally {
      store.close();
    }
  }

  before(async function () {
    await startAnvilNodes(env, {
      chainIds: CHAIN_IDS, confirmations: 1, finalitySeconds: 6,
      timing: { tickMs: 250, heartbeatSeconds: 5, chainCheckSeconds: 1, resendMs: 1_000, confirmationTimeoutMs: 60_000, onChainMarginSeconds: 600 },
    });
  });

  after(async function () {
    await stopAnvilNodes(env);
  });

  /**
   * Both nodes up, a new pair of channels (S: Alice's 2 ETH@source, T: Bob's 2 ETH@target), one swap, a copy of Alice's
   * store, two more swaps; then both nodes stopped and Alice's restarted from the copy, with the watchtower's store
   * she had (`keepTower`) or none. Alice force-closes S and T; Bob's node stays stopped. Returns what the copy and the
   * newest states of S and T say, and what happened on chain.
   */
  async function restoredAgainstSilentPeer(round: string, keepTower: boolean) {
    for (const who of ["alice", "bob"] as const) if (nodes.run[who] === undefined) await nodes.start(who);
    const s = (await nodes.run.alice!.node.openChannel({ peer: "bob", asset: "ETH@source", deposit: "2", challengePeriodSeconds: CHALLENGE_PERIOD })).id;
    const t = (await nodes.run.bob!.node.openChannel({ peer: "alice", asset: "ETH@target", deposit: "2", challengePeriodSeconds: CHALLENGE_PERIOD })).id;
    for (const who of ["alice", "bob"] as const) {
      for (const id of [s, t]) await until(`${who}: ${id} counted`, async () => (counted(await channel(who, id)) ? true : undefined));
    }
    await swap(s, t, 1n);
    const made = await channels(["--config", file("alice"), "backup", `alice.${round}.sqlite`]);
    expect(made.code, made.stderr).to.equal(0);
    const copy = join(dir, `alice.${round}.sqlite`);
    await swap(s, t, 2n);
    await swap(s, t, 3n);
    await nodes.stop("alice");
    await nodes.stop("bob"); // silent from here on: no node, no watchtower of Bob's answers anything
    const store = join(dir, "alice.sqlite");
    const ids = [s, t] as const;
    const atCopy = ids.map((id) => held(copy, id));
    const newest = ids.map((id) => held(store, id));
    for (const [i, id] of ids.entries()) {
      expect(atCopy[i]!.locks, `${id}: the copy's newest state holds no lock`).to.equal(0);
      expect(newest[i]!.seq, `${id}: Alice's node co-signed newer states after the copy`).to.be.greaterThan(atCopy[i]!.seq);
      expect(newest[i]!.ownHighest, `${id}: ... and signed them`).to.be.greaterThan(atCopy[i]!.ownHighest);
    }

    // The operator moves the store aside (its -wal and -shm too) and puts the copy in place; the watchtower's store
    // stays, or went with the disk.
    for (const name of keepTower ? ["alice.sqlite"] : ["alice.sqlite", "alice.sqlite.tower"]) for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, `${name}${suffix}`), { force: true });
    copyFileSync(copy, store);
    const blocks = await Promise.all(providers.map((p) => p.getBlockNumber()));
    const logsFrom = nodes.logs.alice.length;
    await nodes.start("alice");
    expect((await api<{ frozenChannels: number }>("alice", "GET", "/info")).json.frozenChannels).to.equal(2);
    const views = await Promise.all(ids.map((id) => channel("alice", id)));
    for (const v of views) expect([v.status, typeof v.frozenSince], v.id).to.deep.equal(["open", "string"]);
    const aliceIndex = views.map((v) => v.base.myIndex);
    expect(aliceIndex, "Alice is participant 0 of S (she opened it) and 1 of T").to.deep.equal([0, 1]);
    const copyMine = ids.map((_, i) => BigInt(atCopy[i]!.balances[aliceIndex[i]!]!));
    const newestMine = ids.map((_, i) => BigInt(newest[i]!.balances[aliceIndex[i]!]!));
    // S: the copy's state pays Alice 0.4 more than the newest; T: 0.2 less.
    expect([copyMine, newestMine], "one swap in the copy, three in the newest").to.deep.equal([[...aliceAfter(1n)], [...aliceAfter(3n)]]);

    for (const id of ids) {
      const closing = await api<{ error?: string }>("alice", "POST", `/channels/${id}/close`, { force: true });
      expect(closing.status, closing.json.error).to.equal(200);
    }
    const adapters = await Promise.all(hubs.map((h, i) => HubAdapter.connect(h, new Wallet(accountKey(3), providers[i]!))));
    for (const [i, id] of ids.entries()) {
      await until(`${id} registered with the copy's state`, async () => ((await adapters[i]!.hub.queryFilter(adapters[i]!.hub.filters.ChannelForceClosed(id), blocks[i]!)).length > 0 ? true : undefined), 30_000);
    }
    // Alice's watchtower has seen each close and acted on it before the clock passes the challenge period: nobody
    // answering is then not the clock outrunning an answer.
    const towerStep = (id: string) =>
      nodes.logs.alice.slice(logsFrom).find((l) => l.event === "watchtower" && l.type === "enforced" && String(l.channelId).toLowerCase() === id.toLowerCase())?.step as Record<string, string> | undefined;
    for (const id of ids) await until(`Alice's watchtower acted on the close of ${id}`, async () => towerStep(id), 30_000);
    for (const p of providers) for (const method of ["evm_increaseTime", "evm_mine"] as const) await p.send(method, method === "evm_increaseTime" ? [CHALLENGE_PERIOD + 60] : []);
    for (const id of ids) await until(`${id} closed and paid out`, async () => ((await channel("alice", id)).base.payouts !== undefined ? true : undefined), 60_000);
    await until("no frozen channel left open", async () => ((await api<{ frozenChannels: number }>("alice", "GET", "/info")).json.frozenChannels === 0 ? true : undefined));
    const ends = await Promise.all(providers.map((p) => p.getBlockNumber()));

    const chain = await Promise.all(ids.map(async (id, i) => {
      const hub = adapters[i]!.hub;
      const closes = await hub.queryFilter(hub.filters.ChannelForceClosed(id), blocks[i]!, ends[i]!);
      const challenges = await hub.queryFilter(hub.filters.ChannelChallenged(id), blocks[i]!, ends[i]!);
      const settles = await hub.queryFilter(hub.filters.ChannelSettled(id), blocks[i]!, ends[i]!);
      // Alice's funds on this chain moved by her payout and the fees of her own transactions (to the hub, carrying
      // no value), nothing else.
      const fees = await feesOf(providers[i]!, ADDRESS.alice, blocks[i]!, ends[i]!, [hubs[i]!]);
      const moved = (await providers[i]!.getBalance(ADDRESS.alice, ends[i]!)) - (await providers[i]!.getBalance(ADDRESS.alice, blocks[i]!));
      return {
        closed: closes.map((e) => [e.args.by, e.args.state.seq]),
        challenged: challenges.map((e) => [e.args.by, e.args.state.seq]),
        settled: settles.map((e) => [e.args.seq, e.args.payouts.map(String)]),
        view: (await channel("alice", id)).base.payouts,
        aliceGot: moved + fees,
        step: towerStep(id)!,
      };
    }));
    for (const [i, id] of ids.entries()) expect(chain[i]!.closed, `${id}: closed by Alice with the copy's state`).to.deep.equal([[ADDRESS.alice, atCopy[i]!.seq]]);

    // Nothing signed on the frozen channels by the restored node: its key signed no number above the copy's.
    await nodes.stop("alice");
    for (const [i, id] of ids.entries()) expect(held(store, id).ownHighest, id).to.equal(atCopy[i]!.ownHighest);
    return { ids, atCopy, newest, copyMine, newestMine, chain };
  }

  it("its watchtower's store lost too: nobody answers the force closes, and each channel pays out what the copy's state says, more or less than the newest", async function () {
    const { ids, atCopy, copyMine, chain } = await restoredAgainstSilentPeer("lost", false);
    for (const [i, id] of ids.entries()) {
      expect(chain[i]!.step, `${id}: Alice's watchtower (from the copy) waits`).to.deep.equal({ kind: "waiting", until: chain[i]!.step.until, why: "challengePeriod" });
      expect(chain[i]!.challenged, `${id}: challenged`).to.deep.equal([]);
      expect(chain[i]!.settled, `${id}: paid as the copy's state says`).to.deep.equal([[atCopy[i]!.seq, atCopy[i]!.balances]]);
      expect(chain[i]!.view, `${id}: Alice's view`).to.deep.equal(atCopy[i]!.balances);
      expect(chain[i]!.aliceGot, `${id}: what Alice's balance on its chain gained, fees aside`).to.equal(copyMine[i]!);
    }
  });

  it("its watchtower's store kept (the restore steps of docs/NODE.md): its own watchtower answers the force closes with the newest states, which pay out", async function () {
    const { ids, newest, newestMine, chain } = await restoredAgainstSilentPeer("kept", true);
    for (const [i, id] of ids.entries()) {
      expect(chain[i]!.step, `${id}: Alice's watchtower answered`).to.deep.equal({ kind: "challenged", seq: String(newest[i]!.seq), stale: chain[i]!.step.stale });
      expect(chain[i]!.challenged, `${id}: challenged by Alice's watchtower`).to.deep.equal([[ADDRESS.alice, newest[i]!.seq]]);
      expect(chain[i]!.settled, `${id}: paid as the newest state says`).to.deep.equal([[newest[i]!.seq, newest[i]!.balances]]);
      expect(chain[i]!.view, `${id}: Alice's view`).to.deep.equal(newest[i]!.balances);
      expect(chain[i]!.aliceGot, `${id}: what Alice's balance on its chain gained, fees aside`).to.equal(newestMine[i]!);
    }
  });
});

/**
 * What `account` paid in fees for its transactions in blocks (`from`, `last`]; each of them must go to one of `targets` and
 * carry no value (else the test fails: funds moved otherwise).
 */
async function feesOf(provider: JsonRpcProvider, account: string, from: number, last: number, targets: readonly string[]): Promise<bigint> {
  let fees = 0n;
  for (let n = from + 1; n <= last; n++) {
    const block = await provider.getBlock(n, true);
    for (const tx of block!.prefetchedTransactions) {
      if (tx.from.toLowerCase() !== account.toLowerCase()) continue;
      expect([tx.value, targets.map((a) => a.toLowerCase()).includes((tx.to ?? "").toLowerCase())], `transaction ${tx.hash}`).to.deep.equal([0n, true]);
      const receipt = (await provider.getTransactionReceipt(tx.hash))!;
      fees += receipt.gasUsed * receipt.gasPrice;
    }
  }
  return fees;
}
