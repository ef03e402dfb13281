/**
 * GET /metrics: two nodes in this process with their control APIs on real ports, over two anvil chains mining a
 * block a second (finality 1 block). After swaps, the scrape shows what the API shows (swaps by outcome, channel
 * balances, chain heads, the fee account, the peer link, store commits, on-chain transactions and their fees); with
 * the peer's node stopped, a swap in flight, its lock's deadline, the peer down and a deposit not counted yet; with
 * the node's store deleted, the loss. The scrape needs the API token unless `api.metricsPublic` is set.
 */
import { expect } from "chai";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { formatEther, parseEther, Wallet } from "ethers";

import { accountKey } from "../../scripts/lib/local.js";
import { HubAdapter } from "../../sdk/index.js";
import { Store } from "../../sdk/store/store.js";
import { ADDRESS, anvilNodes, startAnvilNodes, stopAnvilNodes, type Who } from "../helpers/anvil-nodes.js";
import { until } from "../helpers/nodes.js";

const FUNDER = 3;
const CHAIN_IDS = [31_431, 31_432] as const;
type Channel = { id: string; status: string; balance: { mine: string; theirs: string; locked: string }; base: { deposits: string[]; onChainDeposits?: string[] } };
type Sample = { name: string; labels: Record<string, string>; value: number };

/** The samples of a Prometheus text exposition. */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return out;
}

describe("a node's metrics (GET /metrics, two anvil chains)", function () {
  this.timeout(180_000);
  const env = anvilNodes("node-metrics");
  const { dir, nodes, providers, hubs } = env;
  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => nodes.api<T>(who, method, path, body);
  let s: string;
  let t: string;

  const origin = (who: Who) => new URL(nodes.run[who]!.base).origin;
  async function scrape(who: Who, token = true): Promise<{ status: number; type: string | null; samples: Sample[] }> {
    const res = await fetch(`${origin(who)}/metrics`, { headers: token ? { authorization: `Bearer ${nodes.run[who]!.token}` } : {} });
    const text = await res.text();
    return { status: res.status, type: res.headers.get("content-type"), samples: res.status === 200 ? parse(text) : [] };
  }
  const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
    samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
  const channel = async (who: Who, id: string) => (await api<Channel>(who, "GET", `/channels/${id}`)).json;
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();

  before(async function () {
    await startAnvilNodes(env, {
      chainIds: CHAIN_IDS, confirmations: 1, finalitySeconds: 6, api: (who) => ({ metricsPublic: who === "bob" }),
      timing: { tickMs: 250, heartbeatSeconds: 5, chainCheckSeconds: 1, resendMs: 1_000, confirmationTimeoutMs: 60_000, onChainMarginSeconds: 600 },
    });
    s = (await nodes.run.alice!.node.openChannel({ peer: "bob", asset: "ETH@source", deposit: "2", challengePeriodSeconds: 300 })).id;
    t = (await nodes.run.bob!.node.openChannel({ peer: "alice", asset: "ETH@target", deposit: "2", challengePeriodSeconds: 300 })).id;
    for (const who of ["alice", "bob"] as const) {
      for (const id of [s, t]) await until(`${who}: ${id} counted`, async () => (counted(await channel(who, id)) ? true : undefined));
    }
  });

  after(async function () {
    await stopAnvilNodes(env);
  });

  it("shows swaps by outcome, balances as the API shows them, chains, the fee account, the peer link, commits and on-chain fees", async function () {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target", source: s, target: t });
      expect(p.status, JSON.stringify(p.json)).to.equal(201);
      ids.push(p.json.id);
    }
    for (const id of ids) await until(`swap ${id} swapped`, async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${id}`)).json.outcome === "swapped" ? true : undefined));

    // The counters move with the node's events, which may come a moment after the store shows a swap done, and a
    // scrape is reused for a second: looked at until they have come.
    const m = await until("the three swaps counted", async () => {
      const r = await scrape("alice");
      return value(r.samples, "channels_swaps_total", { outcome: "swapped" }) === 3 ? r : undefined;
    });
    expect(m.status).to.equal(200);
    expect(m.type).to.match(/^text\/plain; version=0\.0\.4/);
    const x = m.samples;
    expect(value(x, "channels_node_active")).to.equal(1);
    expect(value(x, "channels_swaps_total", { outcome: "swapped" })).to.equal(3);
    expect(value(x, "channels_swap_duration_seconds_count")).to.equal(3);
    expect(value(x, "channels_swap_phases_total", { phase: "revealed" })).to.equal(3);
    expect(x.filter((v) => v.name === "channels_swaps_in_flight").reduce((a, v) => a + v.value, 0)).to.equal(0);
    expect(value(x, "channels_channels", { status: "open" })).to.equal(2);
    for (const id of [s, t]) {
      const c = await channel("alice", id);
      for (const side of ["mine", "theirs", "locked"] as const) {
        expect(value(x, "channels_channel_balance", { channel: id, side }), `${id} ${side}`).to.equal(Number(c.balance[side].split(" ")[0]));
      }
    }
    expect(value(x, "channels_channel_balance", { channel: s, side: "mine" })).to.equal(2 - 0.6);
    for (const chain of ["source", "target"]) {
      expect(value(x, "channels_chain_reachable", { chain }), chain).to.equal(1);
      expect(value(x, "channels_chain_held", { chain }), chain).to.equal(0);
      expect(value(x, "channels_chain_head", { chain }), chain).to.be.greaterThan(0);
      expect(value(x, "channels_chain_head_age_seconds", { chain }), chain).to.be.at.least(0);
      expect(value(x, "channels_fee_account_balance", { chain }), chain).to.equal(Number(formatEther(await providers[chain === "source" ? 0 : 1]!.getBalance(ADDRESS.alice))));
    }
    expect(value(x, "channels_peer_up", { peer: "bob" })).to.equal(1);
    expect(value(x, "channels_peer_messages_total", { peer: "bob", direction: "sent" })).to.be.greaterThan(0);
    expect(value(x, "channels_peer_messages_total", { peer: "bob", direction: "received" })).to.be.greaterThan(0);
    expect(value(x, "channels_store_commit_seconds_count")).to.be.greaterThan(0);
    expect(value(x, "channels_chain_transactions_total", { chain: "source", call: "openAndDeposit", kind: "landed" })).to.equal(1);
    // The fee of Alice's opening, as the chain's receipt says.
    const landed = (nodes.events.alice ?? []).find((e) => e.type === "chainTx" && e.kind === "landed" && e.call === "openAndDeposit")!;
    const receipt = (await providers[0]!.getTransactionReceipt(String(landed.hash)))!;
    expect(value(x, "channels_chain_fees_paid_total", { chain: "source", call: "openAndDeposit" })).to.equal(Number(receipt.fee) / 1e18);
  });

  it("needs the API token unless metricsPublic is set, and only for /metrics", async function () {
    expect((await scrape("alice", false)).status).to.equal(401);
    const open = await until("Bob's three swaps counted, no token", async () => {
      const r = await scrape("bob", false);
      return r.status === 200 && value(r.samples, "channels_swaps_total", { outcome: "swapped" }) === 3 ? r : undefined;
    });
    expect(open.status).to.equal(200);
    expect((await fetch(`${origin("bob")}/api/v1/info`)).status, "the rest still needs the token").to.equal(401);
  });

  it("answers a flood of scrapes without the token from a few reads of the store, not three per request", async function () {
    // Each scrape reads every channel the store ever held, three times: on a node of many channels, a stranger
    // reaching a public /metrics could keep the node's event loop busy (its ticks and challenges wait behind it).
    const store = (nodes.run.bob!.node as unknown as { parts: { store: Store } }).parts.store;
    const all = store.channels.bind(store);
    let reads = 0;
    store.channels = () => (reads++, all());
    try {
      const FLOOD = 50;
      const answers = await Promise.all(Array.from({ length: FLOOD }, () => scrape("bob", false)));
      expect(answers.map((a) => a.status)).to.deep.equal(Array(FLOOD).fill(200));
      expect(value(answers[FLOOD - 1]!.samples, "channels_channels", { status: "open" })).to.equal(2);
      expect(reads, "reads of the channels table (the node's own included)").to.be.below(FLOOD);
    } finally {
      delete (store as { channels?: unknown }).channels; // the class's method again
    }
  });

  it("with the peer's node stopped: a swap in flight and its lock's deadline, the peer down, a deposit not counted yet", async function () {
    await nodes.stop("bob");
    const p = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target", source: s, target: t });
    expect(p.status, JSON.stringify(p.json)).to.equal(201);
    const funder = await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(FUNDER), providers[0]!));
    await (await funder.hub.deposit(s, 0, parseEther("0.5"), { value: parseEther("0.5") })).wait();
    const x = await until("the deposit seen at the final block, not counted", async () => {
      const m = (await scrape("alice")).samples;
      return value(m, "channels_channel_deposits_uncounted", { channel: s }) === 0.5 && value(m, "channels_peer_up", { peer: "bob" }) === 0 ? m : undefined;
    });
    expect(value(x, "channels_swaps_in_flight", { phase: "proposed" })).to.equal(1);
    expect(value(x, "channels_peer_swaps_in_flight", { peer: "bob" })).to.equal(1);
    const swap = (await api<{ sourceExpiry: string }>("alice", "GET", `/swaps/${p.json.id}`)).json;
    const now = (await providers[0]!.getBlock("latest"))!.timestamp;
    const expiry = Date.parse(swap.sourceExpiry) / 1000;
    const left = value(x, "channels_deadline_seconds", { chain: "source", kind: "lockExpiry" })!;
    expect(left, "by the source chain's clock").to.be.within(expiry - now - 30, expiry - now + 30);
    await nodes.start("bob");
  });

  it("times only the swaps this process saw start: one a restart found in flight ends counted, not timed", async function () {
    await until("every swap ended", async () => ((await api<{ outcome?: string }[]>("alice", "GET", "/swaps")).json.every((w) => w.outcome !== undefined) ? true : undefined));
    await nodes.stop("bob");
    const p = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target", source: s, target: t });
    expect(p.status, JSON.stringify(p.json)).to.equal(201);
    await nodes.stop("alice"); // restarted with the swap proposed: its next phases are not its start
    await nodes.start("alice");
    await nodes.start("bob");
    await until(`swap ${p.json.id} swapped`, async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${p.json.id}`)).json.outcome === "swapped" ? true : undefined));
    const x = await until("the swap counted", async () => {
      const m = (await scrape("alice")).samples;
      return value(m, "channels_swaps_total", { outcome: "swapped" }) === 1 ? m : undefined;
    });
    expect(value(x, "channels_swap_duration_seconds_count"), "timed").to.equal(0);
  });

  // Last: Alice's store is lost for good.
  it("shows a lost store, which /info answers 503 for while every other series reads on from the open file", async function () {
    expect(value((await scrape("alice")).samples, "channels_store_lost")).to.equal(0);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, `alice.sqlite${suffix}`), { force: true });
    const x = await until("the loss seen by a scrape", async () => {
      const m = await scrape("alice");
      return m.status === 200 && value(m.samples, "channels_store_lost") === 1 ? m.samples : undefined;
    }, 30_000);
    expect((await api("alice", "GET", "/info")).status, "the health check").to.equal(503);
    expect(value(x, "channels_channels", { status: "open" }), "still read from the open file").to.equal(2);
  });
});
