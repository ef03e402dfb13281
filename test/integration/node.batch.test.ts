/**
 * Batched channel pairs through the node: `POST /channels/batch` and `channels channel batch`, the channel and swap
 * views of a batched pair, many swaps proposed at once through the control API, and what a batched pair refuses
 * (deposits, a cooperative close) or what cannot be batched (unknown, the same channel twice, two peers, a swap in
 * progress, deposits not counted yet, a closing channel). Three nodes in this process, each with its control API
 * on a real port (the CLI binary talks to them), over two `hardhat node` chains.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerType } from "@hono/node-server";
import { Wallet, ZeroAddress } from "ethers";
import { pino } from "pino";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { rpcProvider, type Hex } from "../../sdk/index.js";
import { apiApp, apiToken, serveApi } from "../../sdk/node/api.js";
import { ChannelNode } from "../../sdk/node/node.js";
import { loadNodeConfig } from "../../sdk/node/node-config.js";
import { channels, channelsJson } from "../helpers/cli.js";
import { freePort, startHardhatNode, until, type LocalNode } from "../helpers/nodes.js";

type Who = "alice" | "bob" | "carol";
const ACCOUNT: Record<Who, number> = { alice: 1, bob: 2, carol: 3 };
const ADDRESS = Object.fromEntries(Object.entries(ACCOUNT).map(([w, i]) => [w, new Wallet(accountKey(i)).address])) as Record<Who, string>;

type Channel = {
  id: string; status: string; peer: string; batched?: string;
  base: { balances: string[]; deposits: string[]; onChainDeposits?: string[]; payouts?: string[]; myIndex: number };
};
type Swap = { id: string; phase: string; stage?: string; outcome?: string; reason?: string };
type Running = { node: ChannelNode; server: ServerType; base: string; token: string };

describe("batched channel pairs through the node's control API and the CLI", function () {
  this.timeout(180_000);
  let chains: LocalNode[] = [];
  let dir: string;
  const run: Partial<Record<Who, Running>> = {};
  const file = (who: Who) => join(dir, `${who}.json`);
  /** Channels: S1, S2 opened by Alice on the source chain, T1, T2 by Bob on the target chain, C1 by Carol with Alice. */
  const ch = { s1: "", t1: "", s2: "", t2: "", c1: "" };

  async function start(who: Who): Promise<Running> {
    const config = loadNodeConfig(file(who));
    const node = await ChannelNode.start(config, accountKey(ACCOUNT[who]) as Hex, pino({ level: "silent" }));
    const token = apiToken(config.api.tokenFile);
    const { server, url } = await serveApi(apiApp(node, token), config.api.host, config.api.port);
    return (run[who] = { node, server, base: `${url}/api/v1`, token });
  }

  async function stop(who: Who): Promise<void> {
    const r = run[who];
    if (r === undefined) return;
    delete run[who];
    r.server.close();
    (r.server as { closeAllConnections?: () => void }).closeAllConnections?.();
    await r.node.stop();
  }

  /** One call to a node's control API: the status and the JSON answer. */
  async function api<T = unknown>(who: Who, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const r = run[who]!;
    const res = await fetch(r.base + path, {
      method,
      headers: { authorization: `Bearer ${r.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as T };
  }

  const channel = async (who: Who, id: string) => (await api<Channel>(who, "GET", `/channels/${id}`)).json;
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();
  /** Expects a refusal: the status and a one-line error matching `message`. */
  async function refused(who: Who, method: string, path: string, body: unknown, status: number, message: RegExp): Promise<string> {
    const { status: got, json } = await api<{ error: string }>(who, method, path, body);
    expect(got, `${method} ${path} ${JSON.stringify(body)}: ${json.error}`).to.equal(status);
    expect(json.error).to.match(message);
    expect(json.error).to.not.include("\n");
    return json.error;
  }

  before(async function () {
    chains = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    const hubs: string[] = [];
    for (const c of chains) {
      const p = rpcProvider(c.url);
      hubs.push(await deployHub(p));
      p.destroy();
    }
    dir = mkdtempSync(join(tmpdir(), "node-batch-"));
    const ports = { alice: await freePort(), bob: await freePort(), carol: await freePort() };
    const apiPorts = { alice: await freePort(), bob: await freePort(), carol: await freePort() };
    const chain = (i: number) => ({
      rpcUrl: chains[i]!.url, hub: hubs[i], confirmations: 0, finalitySeconds: 12, inclusionSeconds: 60, clockSkewSeconds: 30,
      assets: { ETH: { address: ZeroAddress, decimals: 18 } },
    });
    const timing = { tickMs: 250, heartbeatSeconds: 30, resendMs: 1_000, confirmationTimeoutMs: 4_000, onChainMarginSeconds: 600 };
    const peer = (who: Who) => ({ address: ADDRESS[who], url: `http://127.0.0.1:${ports[who]}` });
    const write = (who: Who, peers: Who[], pairs: unknown[]) =>
      writeFileSync(file(who), JSON.stringify({
        key: { env: `${who.toUpperCase()}_KEY` }, store: `${who}.sqlite`, peer: { port: ports[who] },
        api: { port: apiPorts[who], tokenFile: `${who}.token` },
        chains: { source: chain(0), target: chain(1) },
        peers: Object.fromEntries(peers.map((p) => [p, peer(p)])),
        policy: { channels: { accept: ["ETH@source", "ETH@target"] }, swaps: { pairs, maxInFlight: 32 } },
        timing,
      }));
    // Each answers swaps that give it 2 of what it gives (take/give at most 1 in its own terms).
    write("alice", ["bob", "carol"], [{ give: "ETH@target", take: "ETH@source", maxRate: "1", maxAmount: "2" }]);
    write("bob", ["alice"], [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "2" }]);
    write("carol", ["alice"], []);
    for (const who of ["alice", "bob", "carol"] as const) await start(who);
    const open = async (who: Who, peer: Who, asset: string, deposit: string) =>
      (await run[who]!.node.openChannel({ peer, asset, deposit })).id;
    ch.s1 = await open("alice", "bob", "ETH@source", "5");
    ch.t1 = await open("bob", "alice", "ETH@target", "5");
    ch.s2 = await open("alice", "bob", "ETH@source", "2");
    ch.t2 = await open("bob", "alice", "ETH@target", "2");
    ch.c1 = await open("carol", "alice", "ETH@target", "1");
    for (const [who, ids] of [["alice", Object.values(ch)], ["bob", [ch.s1, ch.t1, ch.s2, ch.t2]], ["carol", [ch.c1]]] as const) {
      for (const id of ids) await until(`${who}: channel ${id} open with its deposits counted`, async () => (counted(await channel(who, id)) ? true : undefined));
    }
  });

  after(async function () {
    for (const who of ["alice", "bob", "carol"] as const) await stop(who);
    await Promise.all(chains.map((c) => c.stop()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses in one line to batch an unknown channel, the same channel twice, or channels with two different peers", async function () {
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1, "0xabcdef12"] }, 404, /^no channel 0xabcdef12$/);
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1, ch.s1.slice(0, 12)] }, 400, /^channels: .* are the same channel 0x[0-9a-f]{64}; a pair is two channels$/i);
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1, ch.c1] }, 400, /is with bob and 0x[0-9a-f]{64} with carol; the two channels of a pair are with the same peer$/i);
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1] }, 400, /^channels: /);
    await refused("alice", "POST", "/channels/batch", {}, 400, /^channels: missing/);
    for (const c of (await api<Channel[]>("alice", "GET", "/channels")).json) expect(c.batched, c.id).to.equal(undefined);
  });

  it("batches a pair on both nodes (the API on one, `channels channel batch` on the other) and shows it in the channel views", async function () {
    const { status, json } = await api<Channel[]>("alice", "POST", "/channels/batch", { channels: [ch.s1.slice(0, 12), ch.t1] });
    expect(status).to.equal(200);
    expect(json.map((c) => [c.id, c.batched])).to.deep.equal([[ch.s1, ch.t1], [ch.t1, ch.s1]]);
    // Bob through the CLI binary, naming the channels the other way round, with prefixes as the CLI prints them.
    const bobs = await channelsJson<Channel[]>(["--config", file("bob"), "channel", "batch", `${ch.t1.slice(0, 12)}…`, ch.s1.slice(0, 10)]);
    expect(bobs.map((c) => [c.id, c.batched])).to.deep.equal([[ch.t1, ch.s1], [ch.s1, ch.t1]]);
    // Batching the pair again changes nothing; pairing one of its channels with another is refused.
    expect((await api("alice", "POST", "/channels/batch", { channels: [ch.t1, ch.s1] })).status).to.equal(200);
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1, ch.t2] }, 409, new RegExp(`^channel ${ch.s1} runs batched with ${ch.t1} already$`, "i"));
    expect((await channel("alice", ch.s2)).batched).to.equal(undefined);
    const list = await channels(["--config", file("bob"), "channel", "list"]);
    expect(list.code).to.equal(0);
    expect(list.stdout).to.include("BATCHED WITH");
    const row = list.stdout.split("\n").find((l) => l.startsWith(ch.t1.slice(0, 12)))!;
    expect(row).to.include(`${ch.s1.slice(0, 12)}…`);
    const show = await channels(["--config", file("alice"), "channel", "show", ch.s1.slice(0, 12)]);
    expect(show.stdout).to.include(`batched with ${ch.t1}`);
  });

  it("carries many swaps proposed at once through the API on the batched pair, in both directions, each swapped", async function () {
    const seen: Swap[] = [];
    const alice = run.alice!.node;
    const unsubscribe = alice.subscribe((e) => {
      const phase = e.phase as { kind?: string } | undefined;
      if (e.type === "phase" && phase?.kind === "batched") seen.push(alice.swap(e.swapId as string) as Swap);
    });
    const before = { alice: [await channel("alice", ch.s1), await channel("alice", ch.t1)] };
    // Alice: six swaps S1 -> T1 (three name only the source: the target is the other channel of its pair). Bob: three T1 -> S1.
    const proposals = [
      ...Array.from({ length: 6 }, (_, i) =>
        api<Swap>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.25 ETH@target", source: ch.s1, ...(i % 2 === 0 ? { target: ch.t1 } : {}) }),
      ),
      ...Array.from({ length: 3 }, () => api<Swap>("bob", "POST", "/swaps", { peer: "alice", give: "0.5 ETH@target", take: "0.25 ETH@source", source: ch.t1, target: ch.s1 })),
    ];
    const answers = await Promise.all(proposals);
    for (const a of answers) expect(a.status, JSON.stringify(a.json)).to.equal(201);
    const ids = answers.map((a, i) => ({ who: (i < 6 ? "alice" : "bob") as Who, id: a.json.id }));
    const done = await until("every swap done on both nodes", async () => {
      const views = await Promise.all(ids.flatMap(({ id }) => (["alice", "bob"] as const).map(async (w) => (await api<Swap>(w, "GET", `/swaps/${id}`)).json)));
      return views.every((v) => v.phase === "done") ? views : undefined;
    });
    unsubscribe();
    expect(done.map((v) => `${v.outcome}${v.reason ? ` (${v.reason})` : ""}`)).to.deep.equal(done.map(() => "swapped"));
    // On the way, the API showed each swap as batched with its stage.
    expect(seen.length).to.be.greaterThan(0);
    for (const s of seen) {
      expect(s.phase).to.equal("batched");
      expect(["agreed", "locked", "cancelling"]).to.include(s.stage);
    }
    expect(new Set(seen.map((s) => s.stage))).to.include("agreed");
    // Alice gave 6 x 0.5 and 3 x 0.25 on S1; Bob gave 6 x 0.25 and 3 x 0.5 on T1. Both nodes agree.
    const eth = (x: string) => BigInt(Math.round(Number(x) * 100)) * 10n ** 16n;
    const [s1, t1] = before.alice.map((c) => c.base.balances.map(BigInt));
    const expected = {
      s1: [s1![0]! - eth("3.75"), s1![1]! + eth("3.75")],
      t1: [t1![0]! - eth("3"), t1![1]! + eth("3")],
    };
    for (const who of ["alice", "bob"] as const) {
      expect((await channel(who, ch.s1)).base.balances, `${who}: S1`).to.deep.equal(expected.s1.map(String));
      expect((await channel(who, ch.t1)).base.balances, `${who}: T1`).to.deep.equal(expected.t1.map(String));
    }
    const list = await channels(["--config", file("alice"), "swap", "list"]);
    expect(list.stdout.split("\n").filter((l) => / swapped$/.test(l))).to.have.length(9);
  });

  it("counts a deposit on a batched channel in both ledgers (`channel deposit --wait`), and refuses bad usage of `channel batch` in one line", async function () {
    const before = await channel("alice", ch.s1);
    const deposit = await channels(["--config", file("alice"), "channel", "deposit", ch.s1.slice(0, 12), "1", "--wait"]);
    expect(deposit.code, deposit.stderr).to.equal(0);
    expect(deposit.stdout).to.match(/batched with 0x[0-9a-f]{64}/);
    const mine = (c: Channel) => BigInt(c.base.deposits[c.base.myIndex]!);
    const eth = 10n ** 18n;
    for (const who of ["alice", "bob"] as const) {
      const c = await until(`${who}: S1's new deposit counted`, async () => {
        const v = await channel(who, ch.s1);
        return counted(v) && BigInt(v.base.deposits[0]!) === mine(before) + eth ? v : undefined;
      });
      expect(c.batched).to.equal(ch.t1);
      expect(c.base.balances).to.deep.equal([BigInt(before.base.balances[0]!) + eth, BigInt(before.base.balances[1]!)].map(String));
    }
    // Bad usage of the command: exit 2, one line.
    const same = await channels(["--config", file("alice"), "channel", "batch", ch.s2, ch.s2]);
    expect([same.code, same.stderr.trim()]).to.deep.equal([2, `error: channels: ${ch.s2} and ${ch.s2} are the same channel ${ch.s2}; a pair is two channels`]);
    expect((await channels(["--config", file("alice"), "channel", "batch", ch.s2])).code).to.equal(2);
  });

  it("refuses to batch a channel with a swap in progress until it is done", async function () {
    // With Bob's node down, nothing Alice starts on S2/T2 can finish: Bob (participant 0 of T2) counts deposits there.
    await stop("bob");
    const deposited = (await api<Channel>("alice", "POST", `/channels/${ch.t2}/deposit`, { amount: "1" })).json;
    expect(deposited.base.onChainDeposits![deposited.base.myIndex]).to.equal((10n ** 18n).toString());
    // A swap giving from it now is refused with why: the deposit is not counted yet (it would be, once final and
    // co-signed). One that asks more than the peer holds, with nothing of his waiting, says no such thing.
    await refused("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@target", take: "0.2 ETH@source", source: ch.t2, target: ch.s2 }, 409,
      /^give: 0\.5 ETH@target is more than the free balance 0 ETH@target of channel 0x[0-9a-f]{64} \(a deposit of 1 ETH@target is not counted yet: /);
    const noHint = await refused("alice", "POST", "/swaps", { peer: "bob", give: "0.1 ETH@source", take: "50 ETH@target", source: ch.s2, target: ch.t2 }, 409, /^take: 50 ETH@target is more than bob's free balance/);
    expect(noHint).to.not.include("not counted");
    const swap = await api<Swap>("alice", "POST", "/swaps", { peer: "bob", give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s2, target: ch.t2 });
    expect([swap.status, swap.json.phase]).to.deep.equal([201, "proposed"]);
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s2, ch.t2] }, 409, new RegExp(`^channel ${ch.s2} has a swap in progress; batch it once the swap is done$`, "i"));
    expect((await channel("alice", ch.s2)).batched).to.equal(undefined);
    // Bob back: the swap ends (one way or the other), the deposit is counted, and the pair can be batched.
    await start("bob");
    for (const who of ["alice", "bob"] as const) {
      await until(`${who}: the swap done (or never received)`, async () => {
        const { status, json } = await api<Swap>(who, "GET", `/swaps/${swap.json.id}`);
        return status === 404 || json.phase === "done" ? true : undefined;
      });
    }
    // The deposit's update (the step protocol's) ends first: a channel with one under way is not batched.
    for (const who of ["alice", "bob"] as const) await until(`${who}: T2's deposits counted`, async () => (counted(await channel(who, ch.t2)) ? true : undefined));
    for (const who of ["alice", "bob"] as const) {
      const { status, json } = await api<Channel[]>(who, "POST", "/channels/batch", { channels: [ch.s2, ch.t2] });
      expect(status, JSON.stringify(json)).to.equal(200);
      expect(json.map((c) => c.batched)).to.deep.equal([ch.t2, ch.s2]);
    }
  });

  it("swaps at once beyond what the batched pair has not promised: the ones that fit are swapped, the rest refused with the amount", async function () {
    const free = BigInt((await channel("alice", ch.s2)).base.balances[0]!);
    expect(free >= 18n * 10n ** 17n && free < 27n * 10n ** 17n, `Alice's balance on S2: ${free}`).to.equal(true);
    // Each fits the balance, two together fit, three do not. A proposal that does not fit what the pair has not
    // promised yet is refused at once (409) when the others are agreed or proposed in the same turn, else its swap
    // aborts once the others are agreed first.
    const answers = await Promise.all(
      Array.from({ length: 3 }, () => api<Swap & { error?: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.9 ETH@source", take: "0.45 ETH@target", source: ch.s2 })),
    );
    const outcomes: string[] = [];
    for (const a of answers) {
      if (a.status !== 201) {
        expect(a.status, a.json.error).to.equal(409);
        expect(a.json.error).to.match(/^give: 0\.9 ETH@source is more than (channel 0x[0-9a-f]{64} has free and not promised to swaps in flight \([0-9.]+ ETH@source\)|the free balance)/);
        outcomes.push("refused");
        continue;
      }
      const done = await until("the swap done", async () => {
        const s = (await api<Swap>("alice", "GET", `/swaps/${a.json.id}`)).json;
        return s.phase === "done" ? s : undefined;
      });
      if (done.outcome === "aborted") expect(done.reason).to.match(/^the swap needs 900000000000000000 on 0x[0-9a-f]{64}; only \d+ is not promised$/i);
      outcomes.push(done.outcome === "aborted" ? "refused" : done.outcome!);
    }
    // Bob's side of each ends too (a swap his side agreed and Alice's refused is undone off chain after the timeout).
    for (const a of answers.filter((x) => x.status === 201)) {
      await until("Bob's side of the swap done", async () => {
        const { status, json } = await api<Swap>("bob", "GET", `/swaps/${a.json.id}`);
        return status === 404 || json.phase === "done" ? true : undefined;
      });
    }
    expect(outcomes.sort()).to.deep.equal(["refused", "swapped", "swapped"]);
    // A proposal Bob's policy refuses on the pair (a rate of 100 for his 1): listed in his refusals with the peer's
    // name, though his side keeps no row of it.
    const greedy = await api<Swap>("alice", "POST", "/swaps", { peer: "bob", give: "0.01 ETH@source", take: "1 ETH@target", source: ch.s2 });
    expect(greedy.status, JSON.stringify(greedy.json)).to.equal(201);
    const refusal = await until("Bob's refusal listed", async () => (await api<{ id: string; peer: string; reason: string }[]>("bob", "GET", "/refusals")).json.find((r) => r.id === greedy.json.id));
    expect(refusal.peer).to.equal("alice");
    expect(refusal.reason).to.match(/rate/);
    expect(BigInt((await channel("alice", ch.s2)).base.balances[0]!)).to.equal(free - 18n * 10n ** 17n);
  });

  it("force-closes both channels of a batched pair on chain, refuses to batch a closing or closed channel, and pays out the pair's balances", async function () {
    const balances = { s1: (await channel("alice", ch.s1)).base.balances, t1: (await channel("alice", ch.t1)).base.balances };
    const closing = await api<Channel>("alice", "POST", `/channels/${ch.s1}/close`, { force: true });
    expect(closing.status, JSON.stringify(closing.json)).to.equal(200);
    await until("both channels of the pair leaving the open state", async () => {
      const states = [(await channel("alice", ch.s1)).status, (await channel("alice", ch.t1)).status];
      return states.every((s) => s !== "open") ? states : undefined;
    });
    await refused("alice", "POST", "/channels/batch", { channels: [ch.t1, ch.s2] }, 409, new RegExp(`^channel ${ch.t1} is (closing|disputed|closed)`, "i"));
    // The challenge period (an hour) passes on both chains; the ticks settle both channels.
    for (const c of chains) {
      for (const [method, params] of [["evm_increaseTime", [7200]], ["evm_mine", []]] as const) {
        await fetch(c.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
      }
    }
    for (const id of [ch.s1, ch.t1]) {
      const closed = await until(`channel ${id} closed`, async () => {
        const c = await channel("alice", id);
        return c.status === "closed" && c.base.payouts !== undefined ? c : undefined;
      }, 120_000);
      expect(closed.base.payouts, id).to.deep.equal(id === ch.s1 ? balances.s1 : balances.t1);
    }
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1, ch.t2] }, 409, new RegExp(`^channel ${ch.s1} is closed$`, "i"));
    expect((await channel("alice", ch.s2)).status).to.equal("open", "the other pair goes on");
  });

  it("closes a batched pair cooperatively with `channel close --wait` while swaps are in flight: both channels closed, paid out as their final states say", async function () {
    const ids = await Promise.all(
      Array.from({ length: 4 }, () => api<Swap>("alice", "POST", "/swaps", { peer: "bob", give: "0.02 ETH@source", take: "0.01 ETH@target", source: ch.s2 })),
    );
    for (const a of ids) expect(a.status, JSON.stringify(a.json)).to.equal(201);
    const close = await channels(["--config", file("bob"), "channel", "close", ch.t2.slice(0, 12), "--wait"]);
    expect(close.code, close.stderr).to.equal(0);
    for (const who of ["alice", "bob"] as const) {
      for (const id of [ch.s2, ch.t2]) {
        const c = await until(`${who}: ${id} closed and paid out`, async () => {
          const v = await channel(who, id);
          return v.status === "closed" && v.base.payouts !== undefined ? v : undefined;
        });
        // A cooperative close pays the final state's balances: the head both signed, with no lock.
        expect(c.base.payouts, `${who} ${id}`).to.deep.equal(c.base.balances);
      }
      for (const a of ids) {
        const { status, json } = await api<Swap>(who, "GET", `/swaps/${a.json.id}`);
        if (status === 404) continue; // refused by Bob's closing pair: never stored on his side
        expect(json.phase, `${who}: swap ${a.json.id}`).to.equal("done");
        expect(["swapped", "aborted"]).to.include(json.outcome);
      }
    }
    await refused("alice", "POST", `/channels/${ch.s2}/deposit`, { amount: "1" }, 409, new RegExp(`^channel ${ch.s2} is closed$`, "i"));
  });
});
