/**
 * Swaps through the node, every channel on the one protocol: no batching route or command is left, many swaps
 * proposed at once through the control API (both directions, one channel pair or spread over two pairs with the same
 * peer) with their phases in the API, the event stream and the CLI, a deposit counted while swaps run, swaps beyond
 * what the channels can promise, a swap proposed while the peer's node is down, a cooperative close of one channel
 * while swaps run on others, and a force close that takes on chain exactly the channels an open swap ties to it.
 * Three nodes in this process, each with its control API on a real port (the CLI binary talks to them), over two
 * `hardhat node` chains; Alice reaches Bob's peer endpoint through a relay that can hold back a message.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { ServerType } from "@hono/node-server";
import { parseEther, Wallet, ZeroAddress } from "ethers";
import { pino } from "pino";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { rpcProvider, type Hex } from "../../sdk/index.js";
import { apiApp, apiToken, serveApi } from "../../sdk/node/api.js";
import { ChannelNode } from "../../sdk/node/node.js";
import { loadNodeConfig } from "../../sdk/node/node-config.js";
import { channels, channelsJson } from "../helpers/cli.js";
import { callApi } from "../helpers/in-process-nodes.js";
import { freePort, startHardhatNode, until, type LocalNode } from "../helpers/nodes.js";

type Who = "alice" | "bob" | "carol";
const ACCOUNT: Record<Who, number> = { alice: 1, bob: 2, carol: 3 };
const ADDRESS = Object.fromEntries(Object.entries(ACCOUNT).map(([w, i]) => [w, new Wallet(accountKey(i)).address])) as Record<Who, string>;

type Channel = {
  id: string; status: string; peer: string;
  base: { balances: string[]; deposits: string[]; onChainDeposits?: string[]; payouts?: string[]; myIndex: number };
};
type Swap = { id: string; role: string; phase: string; outcome?: string; reason?: string; give: string; take: string; source: string; target: string };
type Event = { type: string; swapId?: string; channelId?: string; phase?: { kind: string; reason?: string; channels?: string[]; outcome?: string }; step?: { kind: string } };
type Running = { node: ChannelNode; server: ServerType; base: string; token: string };
/** The phases of a swap going well, in order (sdk/coordinator/phases.ts). */
const PHASES = ["proposed", "agreed", "locked", "revealed", "done"];

/**
 * An HTTP relay in front of a peer endpoint. Envelope lines `drop` matches are not forwarded (the sender sees them
 * taken, as if lost on the way); the other lines of the same request are.
 */
class Relay {
  drop: (line: string) => boolean = () => false;
  dropped = 0;
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(target: string): Promise<Relay> {
    const port = await freePort();
    let relay: Relay | undefined;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const r = relay!;
        if (req.url === "/peer/v1/envelopes") {
          const lines = body.split("\n").filter((l) => l.trim() !== "");
          const kept = lines.filter((l) => !r.drop(l));
          r.dropped += lines.length - kept.length;
          if (kept.length === 0) return void res.writeHead(202).end();
          body = kept.join("\n") + "\n";
        }
        const to = new URL(req.url ?? "/", target);
        const headers = { ...req.headers, host: to.host, "content-length": String(Buffer.byteLength(body)) };
        const out = request(to, { method: req.method, headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        out.on("error", () => res.destroy());
        out.end(body);
      });
    });
    await new Promise<void>((ok) => server.listen(port, "127.0.0.1", () => ok()));
    relay = new Relay(server, `http://127.0.0.1:${port}`);
    return relay;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

describe("swaps through the node's control API and the CLI, every channel on the one protocol", function () {
  this.timeout(180_000);
  let chains: LocalNode[] = [];
  let dir: string;
  let relay: Relay | undefined;
  const run: Partial<Record<Who, Running>> = {};
  /** Each node's log lines (JSON), kept across restarts. */
  const logs: Record<Who, Record<string, unknown>[]> = { alice: [], bob: [], carol: [] };
  const file = (who: Who) => join(dir, `${who}.json`);
  /** Channels: S1, S2 opened by Alice on the source chain, T1, T2 by Bob on the target chain, C1 by Carol with Alice. */
  const ch = { s1: "", t1: "", s2: "", t2: "", c1: "" };

  async function start(who: Who): Promise<Running> {
    const config = loadNodeConfig(file(who));
    const log = pino({ level: "info", base: undefined }, new Writable({
      write(chunk: Buffer, _enc, done) {
        logs[who].push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }));
    const node = await ChannelNode.start(config, accountKey(ACCOUNT[who]) as Hex, log);
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
  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => callApi<T>(run[who]!, method, path, body);

  /** A node's event stream (`GET /events`) read into a list from its hello line on, until `stop`. */
  async function events(who: Who): Promise<{ list: Event[]; stop: () => Promise<void> }> {
    const r = run[who]!;
    const list: Event[] = [];
    const abort = new AbortController();
    const reading = (async () => {
      const res = await fetch(`${r.base}/events`, { headers: { authorization: `Bearer ${r.token}` }, signal: abort.signal });
      const reader = res.body!.getReader();
      const text = new TextDecoder();
      let partial = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const lines = (partial + text.decode(value, { stream: true })).split("\n");
        partial = lines.pop()!;
        for (const l of lines) if (l.trim() !== "") list.push(JSON.parse(l) as Event);
      }
    })().catch(() => undefined);
    await until(`${who}: the event stream's hello`, async () => (list.some((e) => e.type === "hello") ? true : undefined), 10_000);
    return { list, stop: async () => (abort.abort(), await reading) };
  }

  const channel = async (who: Who, id: string) => (await api<Channel>(who, "GET", `/channels/${id}`)).json;
  const swap = async (who: Who, id: string) => api<Swap>(who, "GET", `/swaps/${id}`);
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();
  const wei = (amount: string) => parseEther(amount.split(" ")[0]!);
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

  /** Alice's requests to be paid a lock on `channelId` (her secret, or one she learnt), as the relay sees them. */
  const payOn = (channelId: string) => (line: string) => line.toLowerCase().includes(`"swapid":"${channelId.toLowerCase()}"`) && line.includes('"kind":"pay"');

  /** The swaps' phases on both nodes if every one is locked or revealed (in flight, past its locks), else undefined. */
  async function inFlight(ids: readonly string[]): Promise<string[] | undefined> {
    const phases = await Promise.all(ids.flatMap((id) => (["alice", "bob"] as const).map(async (w) => (await swap(w, id)).json.phase)));
    return phases.every((p) => p === "locked" || p === "revealed") ? phases : undefined;
  }

  /** Expects a refusal: the status and a one-line error matching `message`. */
  async function refused(who: Who, method: string, path: string, body: unknown, status: number, message: RegExp): Promise<string> {
    const { status: got, json } = await api<{ error: string }>(who, method, path, body);
    expect(got, `${method} ${path} ${JSON.stringify(body)}: ${json.error}`).to.equal(status);
    expect(json.error).to.match(message);
    expect(json.error).to.not.include("\n");
    return json.error;
  }

  /** Proposes through the API, expecting 201; the swap as answered. */
  async function propose(who: Who, body: Record<string, string>): Promise<Swap> {
    const { status, json } = await api<Swap>(who, "POST", "/swaps", { peer: who === "bob" ? "alice" : "bob", ...body });
    expect(status, JSON.stringify(json)).to.equal(201);
    return json;
  }

  /** Every swap done on both Alice's and Bob's nodes (404: never stored on that side); the views, Alice's first. */
  async function allDone(ids: readonly string[], timeoutMs = 60_000): Promise<{ alice: (Swap | undefined)[]; bob: (Swap | undefined)[] }> {
    return until(`${ids.length} swaps done on both nodes`, async () => {
      const views = { alice: [] as (Swap | undefined)[], bob: [] as (Swap | undefined)[] };
      for (const who of ["alice", "bob"] as const) {
        for (const id of ids) {
          const { status, json } = await swap(who, id);
          if (status !== 404 && json.phase !== "done") return undefined;
          views[who].push(status === 404 ? undefined : json);
        }
      }
      return views;
    }, timeoutMs);
  }

  /**
   * Alice's balances on each channel after `before`, with the given swaps swapped: the initiator pays `give` on the
   * source, the responder `take` on the target. Views are Alice's (her role in each).
   */
  function afterSwaps(before: Record<string, Channel>, swapped: readonly Swap[]): Record<string, string[]> {
    const out: Record<string, bigint[]> = Object.fromEntries(Object.entries(before).map(([id, c]) => [id, c.base.balances.map(BigInt)]));
    const move = (channelId: string, amount: bigint, toAlice: boolean) => {
      const id = Object.keys(out).find((k) => same(k, channelId));
      if (id === undefined) throw new Error(`channel ${channelId} not watched`);
      const me = before[id]!.base.myIndex;
      out[id]![me] = out[id]![me]! + (toAlice ? amount : -amount);
      out[id]![1 - me] = out[id]![1 - me]! + (toAlice ? -amount : amount);
    };
    for (const s of swapped) {
      const aliceInitiated = s.role === "initiator";
      move(s.source, wei(s.give), !aliceInitiated);
      move(s.target, wei(s.take), aliceInitiated);
    }
    return Object.fromEntries(Object.entries(out).map(([id, b]) => [id, b.map(String)]));
  }

  async function snapshot(who: Who, ids: readonly string[]): Promise<Record<string, Channel>> {
    return Object.fromEntries(await Promise.all(ids.map(async (id) => [id, await channel(who, id)] as const)));
  }

  /** Both nodes' balances of `ids`, as Alice's expected ones say (Bob's view is the same state from his side). */
  async function expectBalances(expected: Record<string, string[]>): Promise<void> {
    for (const who of ["alice", "bob"] as const) {
      for (const [id, balances] of Object.entries(expected)) expect((await channel(who, id)).base.balances, `${who}: ${id}`).to.deep.equal(balances);
    }
  }

  before(async function () {
    chains = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    const hubs: string[] = [];
    for (const c of chains) {
      const p = rpcProvider(c.url);
      hubs.push(await deployHub(p));
      p.destroy();
    }
    dir = mkdtempSync(join(tmpdir(), "node-swaps-"));
    const ports = { alice: await freePort(), bob: await freePort(), carol: await freePort() };
    const apiPorts = { alice: await freePort(), bob: await freePort(), carol: await freePort() };
    relay = await Relay.start(`http://127.0.0.1:${ports.bob}`);
    const chain = (i: number) => ({
      rpcUrl: chains[i]!.url, hub: hubs[i], confirmations: 0, finalitySeconds: 12, inclusionSeconds: 60, clockSkewSeconds: 30,
      assets: { ETH: { address: ZeroAddress, decimals: 18 } },
    });
    // The confirmation timeout leaves a held-back message time to be looked at before a node goes on chain for it.
    const timing = { tickMs: 250, heartbeatSeconds: 30, resendMs: 1_000, confirmationTimeoutMs: 15_000, onChainMarginSeconds: 600 };
    const peer = (who: Who, via?: string) => ({ address: ADDRESS[who], url: via ?? `http://127.0.0.1:${ports[who]}` });
    const write = (who: Who, peers: Who[], pairs: unknown[]) =>
      writeFileSync(file(who), JSON.stringify({
        key: { env: `${who.toUpperCase()}_KEY` }, store: `${who}.sqlite`, peer: { port: ports[who] },
        api: { port: apiPorts[who], tokenFile: `${who}.token` },
        chains: { source: chain(0), target: chain(1) },
        // Alice's messages to Bob go through the relay.
        peers: Object.fromEntries(peers.map((p) => [p, peer(p, who === "alice" && p === "bob" ? relay!.url : undefined)])),
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
    await relay?.close();
    await Promise.all(chains.map((c) => c.stop()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("has no batching any more: POST /channels/batch is no route, `channel batch` no command, and no channel view says batched", async function () {
    await refused("alice", "POST", "/channels/batch", { channels: [ch.s1, ch.t1] }, 404, /^no route POST \/api\/v1\/channels\/batch$/);
    const batch = await channels(["--config", file("alice"), "channel", "batch", ch.s1, ch.t1]);
    expect([batch.code, batch.stderr.trim()]).to.deep.equal([2, "error: unknown command 'batch'"]);
    expect(batch.stdout).to.equal("");
    for (const who of ["alice", "bob"] as const) {
      for (const c of (await api<Record<string, unknown>[]>(who, "GET", "/channels")).json) expect(c, `${who}: ${String(c.id)}`).to.not.have.property("batched");
    }
    const json = await channelsJson<Record<string, unknown>[]>(["--config", file("bob"), "channel", "list"]);
    expect(json.map((c) => c.id)).to.have.members([ch.s1, ch.t1, ch.s2, ch.t2]);
    for (const c of json) expect(c).to.not.have.property("batched");
    const list = await channels(["--config", file("bob"), "channel", "list"]);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout.split("\n")[0]).to.not.match(/BATCH/);
    // A channel named by a prefix as the CLI prints it.
    const show = await channels(["--config", file("alice"), "channel", "show", `${ch.s1.slice(0, 12)}…`]);
    expect(show.code, show.stderr).to.equal(0);
    expect(show.stdout).to.include(`channel ${ch.s1}`);
    expect(show.stdout).to.not.match(/batch/i);
  });

  it("refuses in one line a swap naming an unknown channel, the same channel twice, or a channel with another peer", async function () {
    const swap = { give: "0.1 ETH@source", take: "0.05 ETH@target" };
    await refused("alice", "POST", "/swaps", { peer: "bob", ...swap, source: "0xabcdef12", target: ch.t1 }, 404, /^no channel 0xabcdef12$/);
    await refused("alice", "POST", "/swaps", { peer: "bob", ...swap, source: ch.s1, target: ch.s1.slice(0, 12) }, 400,
      new RegExp(`^Invalid swap terms: the source and target are the same channel ${ch.s1}; a swap needs two channels$`, "i"));
    await refused("alice", "POST", "/swaps", { peer: "bob", ...swap, source: ch.s1, target: ch.c1 }, 400, new RegExp(`^target: channel ${ch.c1} is not with this peer$`, "i"));
    // Through the CLI: a usage error, exit 2, one line.
    const twice = await channels(["--config", file("alice"), "swap", "propose", "--peer", "bob", "--give", swap.give, "--take", swap.take, "--source", ch.s2, "--target", ch.s2]);
    expect([twice.code, twice.stderr.trim()]).to.deep.equal([2, `error: Invalid swap terms: the source and target are the same channel ${ch.s2}; a swap needs two channels`]);
    expect((await api<Swap[]>("alice", "GET", "/swaps")).json).to.deep.equal([], "nothing proposed");
  });

  it("carries many swaps proposed at once through the API, both ways, on one pair and across two pairs with the peer, each swapped, its phases in the event stream", async function () {
    const streams = { alice: await events("alice"), bob: await events("bob") };
    const before = await snapshot("alice", [ch.s1, ch.t1, ch.s2, ch.t2]);
    const a = (give: string, take: string, legs: Record<string, string>) => propose("alice", { give: `${give} ETH@source`, take: `${take} ETH@target`, ...legs });
    const b = (give: string, take: string, legs: Record<string, string>) => propose("bob", { give: `${give} ETH@target`, take: `${take} ETH@source`, ...legs });
    const answers = await Promise.all([
      // On the pair S1/T1, both ways; two name only the source (the target is the channel with the most free for it).
      a("0.5", "0.25", { source: ch.s1, target: ch.t1 }),
      a("0.5", "0.25", { source: ch.s1, target: ch.t1 }),
      a("0.5", "0.25", { source: ch.s1 }),
      a("0.5", "0.25", { source: ch.s1 }),
      b("0.5", "0.25", { source: ch.t1, target: ch.s1 }),
      b("0.5", "0.25", { source: ch.t1, target: ch.s1 }),
      // Across the two pairs, both ways, and two naming no channel at all.
      a("0.3", "0.15", { source: ch.s2, target: ch.t1 }),
      a("0.3", "0.15", { source: ch.s2, target: ch.t1 }),
      a("0.3", "0.15", { source: ch.s1, target: ch.t2 }),
      a("0.3", "0.15", { source: ch.s1, target: ch.t2 }),
      b("0.3", "0.15", { source: ch.t2, target: ch.s2 }),
      b("0.3", "0.15", { source: ch.t2, target: ch.s2 }),
      b("0.2", "0.1", { source: ch.t2, target: ch.s1 }),
      a("0.2", "0.1", {}),
      a("0.2", "0.1", {}),
    ]);
    const ids = answers.map((s) => s.id);
    expect(new Set(ids).size).to.equal(ids.length);
    // Each answer comes at once, in negotiation: proposed, or agreed when the peer's acceptance came before the view.
    for (const s of answers) expect(s.phase).to.be.oneOf(["proposed", "agreed"]);
    const done = await allDone(ids);
    for (const who of ["alice", "bob"] as const) {
      expect(done[who].map((v) => `${v?.phase} ${v?.outcome}${v?.reason ? ` (${v.reason})` : ""}`), who).to.deep.equal(ids.map(() => "done swapped"));
    }
    const used = new Set(done.alice.flatMap((v) => [v!.source.toLowerCase(), v!.target.toLowerCase()]));
    expect([...used]).to.have.members([ch.s1, ch.t1, ch.s2, ch.t2].map((id) => id.toLowerCase()), "spread over both pairs");
    // Both nodes hold the balances the swaps make, and Alice's and Bob's views agree.
    await expectBalances(afterSwaps(before, done.alice as Swap[]));
    // The event stream showed each swap go through its phases in order on each node, together all of them.
    await until("the last phase events", async () => (ids.every((id) => streams.bob.list.some((e) => e.swapId === id && e.phase?.kind === "done")) ? true : undefined), 10_000);
    let lockedSeen = false;
    for (const id of ids) {
      const seen: Record<string, string[]> = {};
      for (const who of ["alice", "bob"] as const) {
        seen[who] = streams[who].list.filter((e) => e.type === "phase" && e.swapId === id).map((e) => e.phase!.kind);
        const order = seen[who]!.map((k) => PHASES.indexOf(k));
        expect(order.every((p, i) => p >= 0 && (i === 0 || p > order[i - 1]!)), `${who}: ${id} ${seen[who]!.join(" > ")}`).to.equal(true);
        expect(seen[who]!.at(-1)).to.equal("done");
      }
      const initiator = done.alice[ids.indexOf(id)]!.role === "initiator" ? "alice" : "bob";
      expect(seen[initiator]![0], `${id}: ${initiator} proposed it`).to.equal("proposed");
      // Negotiation, execution (the secret out) and the end, on both nodes together. `locked` shows where a step
      // co-signs both locks before the secret comes; a responder paid its S lock in the same step skips it.
      expect(new Set([...seen.alice!, ...seen.bob!]), `${id}: ${JSON.stringify(seen)}`).to.include.all.keys("proposed", "agreed", "revealed", "done");
      lockedSeen ||= [...seen.alice!, ...seen.bob!].includes("locked");
    }
    expect(lockedSeen, "some swap showed locked").to.equal(true);
    for (const s of Object.values(streams)) await s.stop();
    const list = await channels(["--config", file("alice"), "swap", "list"]);
    for (const id of ids) expect(list.stdout.split("\n").find((l) => l.startsWith(id.slice(0, 12))), id).to.match(/ swapped$/);
    const show = await channels(["--config", file("bob"), "swap", "show", ids[0]!.slice(0, 12)]);
    expect(show.stdout).to.include("phase done (4 settled): swapped");
  });

  it("counts a deposit in both ledgers (`channel deposit --wait`) on a channel whose swaps hold locks on it", async function () {
    const before = await snapshot("alice", [ch.s1, ch.t1]);
    // The swaps stay in flight (Bob's T1 locks held) until the deposit is counted: Alice's requests to be paid on T1
    // do not reach Bob meanwhile (her S1 locks are paid as she reveals; Bob pays T1 only when she asks).
    relay!.drop = payOn(ch.t1);
    const ids = (
      await Promise.all([
        propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
        propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
        propose("alice", { give: "0.2 ETH@source", take: "0.1 ETH@target", source: ch.s1, target: ch.t1 }),
      ])
    ).map((s) => s.id);
    await until("the swaps locked or revealed, their last payment held", () => inFlight(ids));
    // Bob (participant 0 of T1, so its proposer) deposits there and waits until both ledgers count it.
    const deposit = await channels(["--config", file("bob"), "channel", "deposit", ch.t1.slice(0, 12), "1", "--wait"]);
    expect(deposit.code, deposit.stderr).to.equal(0);
    const bob = 1 - before[ch.t1]!.base.myIndex; // Bob's index on T1 (balances and deposits are in participant order)
    const mine = BigInt(before[ch.t1]!.base.deposits[bob]!) + parseEther("1");
    expect(deposit.stdout).to.include(`deposits counted: mine ${Number(mine / 10n ** 16n) / 100} ETH@target`);
    for (const who of ["alice", "bob"] as const) {
      await until(`${who}: T1's new deposit counted`, async () => {
        const v = await channel(who, ch.t1);
        return counted(v) && BigInt(v.base.deposits[bob]!) === mine ? v : undefined;
      });
    }
    expect(await inFlight(ids), "the swaps still in flight once the deposit is counted").to.not.equal(undefined);
    relay!.drop = () => false;
    const done = await allDone(ids);
    for (const who of ["alice", "bob"] as const) expect(done[who].map((v) => v?.outcome), who).to.deep.equal(["swapped", "swapped", "swapped"]);
    // The deposit and the swaps both count: Bob's balance on T1 is his before, the deposit, and what the swaps moved.
    const expected = afterSwaps(before, done.alice as Swap[]);
    expected[ch.t1]![bob] = String(BigInt(expected[ch.t1]![bob]!) + parseEther("1"));
    await expectBalances(expected);
    for (const who of ["alice", "bob"] as const) expect(counted(await channel(who, ch.t1)), who).to.equal(true);
  });

  it("refuses a swap beyond a free balance saying a deposit is not counted yet, and ends a swap proposed while the peer's node is down once it is back", async function () {
    // With Bob's node down, nothing Alice starts can finish: Bob (participant 0 of T2) counts deposits there.
    await stop("bob");
    const deposited = (await api<Channel>("alice", "POST", `/channels/${ch.t2}/deposit`, { amount: "1" })).json;
    const me = deposited.base.myIndex;
    expect(BigInt(deposited.base.onChainDeposits![me]!) - BigInt(deposited.base.deposits[me]!)).to.equal(parseEther("1"));
    // A swap giving more than her free balance on T2 is refused with why: the deposit is not counted yet (it would be,
    // once final and co-signed). One that asks more than the peer holds, with nothing of his waiting, says no such thing.
    const free = BigInt(deposited.base.balances[me]!);
    const give = Number((free + parseEther("0.5")) / 10n ** 16n) / 100;
    await refused("alice", "POST", "/swaps", { peer: "bob", give: `${give} ETH@target`, take: "0.2 ETH@source", source: ch.t2, target: ch.s2 }, 409,
      new RegExp(`^give: ${give} ETH@target is more than the free balance [0-9.]+ ETH@target of channel 0x[0-9a-f]{64} \\(a deposit of 1 ETH@target is not counted yet: `));
    const noHint = await refused("alice", "POST", "/swaps", { peer: "bob", give: "0.1 ETH@source", take: "50 ETH@target", source: ch.s2, target: ch.t2 }, 409, /^take: 50 ETH@target is more than bob's free balance/);
    expect(noHint).to.not.include("not counted");
    const pending = await propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s2, target: ch.t2 });
    expect(pending.phase).to.equal("proposed");
    const show = await channels(["--config", file("alice"), "swap", "show", pending.id.slice(0, 12)]);
    expect(show.stdout).to.include("phase proposed (1 negotiation)");
    // Bob back: the swap ends (swapped, or given up after the confirmation timeout), the deposit is counted.
    await start("bob");
    const done = await allDone([pending.id]);
    expect(["swapped", "aborted"]).to.include(done.alice[0]!.outcome);
    if (done.bob[0] !== undefined) expect(done.bob[0].outcome).to.equal(done.alice[0]!.outcome);
    for (const who of ["alice", "bob"] as const) await until(`${who}: T2's deposits counted`, async () => (counted(await channel(who, ch.t2)) ? true : undefined));
  });

  it("swaps at once beyond what the channels can promise: the ones that fit are swapped, the rest refused with the amount", async function () {
    const me = (await channel("alice", ch.s2)).base.myIndex;
    const free = BigInt((await channel("alice", ch.s2)).base.balances[me]!);
    // Each fits the balance, two together fit, three do not: 0.4 of the balance each, in hundredths.
    const each = (free * 40n) / 100n / 10n ** 16n;
    expect(each > 10n, `Alice's balance on S2: ${free}`).to.equal(true);
    const give = `${Number(each) / 100}`;
    // A proposal that does not fit what the channel has not promised yet is refused at once (409) when the others are
    // agreed or proposed in the same turn, else its swap is aborted once the others are agreed first.
    const answers = await Promise.all(
      Array.from({ length: 3 }, () => api<Swap & { error?: string }>("alice", "POST", "/swaps", { peer: "bob", give: `${give} ETH@source`, take: `${Number(each) / 200} ETH@target`, source: ch.s2 })),
    );
    const outcomes: string[] = [];
    const made: string[] = [];
    for (const a of answers) {
      if (a.status !== 201) {
        expect(a.status, a.json.error).to.equal(409);
        expect(a.json.error).to.match(new RegExp(`^give: ${give.replace(".", "\\.")} ETH@source is more than (channel ${ch.s2} has free and not promised to swaps in flight \\([0-9.]+ ETH@source\\)|the free balance)`, "i"));
        expect(a.json.error).to.not.include("\n");
        outcomes.push("refused");
        continue;
      }
      made.push(a.json.id);
    }
    const done = await allDone(made);
    for (const s of done.alice) {
      if (s!.outcome === "aborted") expect(s!.reason).to.match(/needs \d+ on 0x[0-9a-f]{64}; only \d+ is not promised/i);
      outcomes.push(s!.outcome === "aborted" ? "refused" : s!.outcome!);
    }
    expect(outcomes.sort()).to.deep.equal(["refused", "swapped", "swapped"]);
    // A proposal Bob's policy refuses (a rate of 100 for his 1): listed in his refusals with the peer's name, though
    // his side keeps no row of it.
    const greedy = await propose("alice", { give: "0.01 ETH@source", take: "1 ETH@target", source: ch.s2 });
    const refusal = await until("Bob's refusal listed", async () => (await api<{ id: string; peer: string; reason: string }[]>("bob", "GET", "/refusals")).json.find((r) => r.id === greedy.id));
    expect(refusal.peer).to.equal("alice");
    expect(refusal.reason).to.match(/rate/);
    expect((await allDone([greedy.id])).alice[0]!.outcome).to.equal("aborted");
    // Alice's own proposal, refused by Bob, is an aborted swap of hers, not a refusal of hers.
    expect((await api<{ id: string }[]>("alice", "GET", "/refusals")).json.map((r) => r.id)).to.not.include(greedy.id);
    expect(BigInt((await channel("alice", ch.s2)).base.balances[me]!)).to.equal(free - 2n * each * 10n ** 16n);
  });

  it("closes one channel cooperatively with `channel close --wait` while swaps are in flight on another pair: only it closes, paid out as its final state says", async function () {
    const before = await snapshot("alice", [ch.s1, ch.t1]);
    // The swaps on S1/T1 are held in flight: Alice's requests to be paid on T1 do not reach Bob until the close is done
    // (her S1 locks are paid as she reveals; Bob pays his T1 locks only when she asks).
    relay!.drop = payOn(ch.t1);
    const elsewhere = await Promise.all([
      propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
      propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
      propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
      propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
      propose("alice", { give: "0.1 ETH@source", take: "0.05 ETH@target", source: ch.s1, target: ch.t1 }),
    ]);
    await until("the swaps on S1/T1 locked or revealed, their last payment held", () => inFlight(elsewhere.map((s) => s.id)));
    // And some on the channel that closes: each completed or undone off chain.
    const onIt = await Promise.all(Array.from({ length: 2 }, () => propose("alice", { give: "0.02 ETH@source", take: "0.01 ETH@target", source: ch.s2, target: ch.t2 })));
    const close = await channels(["--config", file("bob"), "channel", "close", ch.t2.slice(0, 12), "--wait"]);
    expect(close.code, close.stderr).to.equal(0);
    for (const who of ["alice", "bob"] as const) {
      const c = await until(`${who}: T2 closed and paid out`, async () => {
        const v = await channel(who, ch.t2);
        return v.status === "closed" && v.base.payouts !== undefined ? v : undefined;
      });
      // A cooperative close pays the final state's balances: the head both signed, with no lock.
      expect(c.base.payouts, who).to.deep.equal(c.base.balances);
    }
    expect(await inFlight(elsewhere.map((s) => s.id)), "the swaps on S1/T1 still in flight once T2 is closed").to.not.equal(undefined);
    relay!.drop = () => false;
    const done = await allDone([...elsewhere, ...onIt].map((s) => s.id));
    for (const who of ["alice", "bob"] as const) {
      expect(done[who].slice(0, elsewhere.length).map((v) => v?.outcome), `${who}: the swaps on S1/T1`).to.deep.equal(elsewhere.map(() => "swapped"));
      for (const v of done[who].slice(elsewhere.length)) if (v !== undefined) expect(["swapped", "aborted"], `${who}: ${v.id}`).to.include(v.outcome);
    }
    await expectBalances(afterSwaps(before, done.alice.slice(0, elsewhere.length) as Swap[]));
    // Only T2 closed: the others with Bob go on (S2, whose swaps used T2, too).
    for (const who of ["alice", "bob"] as const) {
      for (const id of [ch.s1, ch.t1, ch.s2]) expect((await channel(who, id)).status, `${who}: ${id}`).to.equal("open");
    }
    const after = await propose("alice", { give: "0.05 ETH@source", take: "0.02 ETH@target", source: ch.s2, target: ch.t1 });
    expect((await allDone([after.id])).alice[0]!.outcome).to.equal("swapped");
    await refused("alice", "POST", `/channels/${ch.t2}/deposit`, { amount: "1" }, 409, new RegExp(`^channel ${ch.t2} is closed$`, "i"));
    await refused("alice", "POST", "/swaps", { peer: "bob", give: "0.01 ETH@source", take: "0.005 ETH@target", source: ch.s2, target: ch.t2 }, 409, new RegExp(`^Channel ${ch.t2} has been closed; new swaps need another channel\\.$`, "i"));
  });

  it("force-closes one channel on chain with exactly the channels an open swap ties to it, the others staying open, and pays out what the swap makes", async function () {
    const streams = { alice: await events("alice"), bob: await events("bob") };
    const before = await snapshot("alice", [ch.s1, ch.t1]);
    // Alice's payments (her secret) never reach Bob: both locks stay co-signed, she has revealed, he is locked.
    relay!.drop = (line) => line.includes('"kind":"pay"');
    const x = await propose("alice", { give: "0.3 ETH@source", take: "0.15 ETH@target", source: ch.s1, target: ch.t1 });
    await until("Bob locked and Alice revealed", async () => ((await swap("bob", x.id)).json.phase === "locked" && (await swap("alice", x.id)).json.phase === "revealed" ? true : undefined));
    expect(relay!.dropped).to.be.greaterThan(0);
    const bobShows = await channels(["--config", file("bob"), "swap", "show", x.id.slice(0, 12)]);
    expect(bobShows.stdout).to.include("phase locked (2 execution)");
    const bobList = await channels(["--config", file("bob"), "swap", "list"]);
    expect(bobList.stdout.split("\n").find((l) => l.startsWith(x.id.slice(0, 12)))).to.match(/ locked \(2 execution\)$/);
    expect((await channels(["--config", file("alice"), "swap", "show", x.id.slice(0, 12)])).stdout).to.include("phase revealed (2 execution)");

    const closing = await api<Channel>("alice", "POST", `/channels/${ch.s1}/close`, { force: true });
    expect(closing.status, JSON.stringify(closing.json)).to.equal(200);
    // The log says which channels go with it; the swap is settling on chain on both.
    const started = logs.alice.find((l) => l.event === "forceCloseStarted" && same(String(l.channelId), ch.s1));
    expect((started?.tied as string[]).map((id) => id.toLowerCase())).to.deep.equal([ch.t1.toLowerCase()]);
    const settling = await until("Alice's swap settling on chain", async () => streams.alice.list.find((e) => e.swapId === x.id && e.phase?.kind === "settlingOnChain"));
    expect(settling.phase!.channels!.map((id) => id.toLowerCase())).to.have.members([ch.s1, ch.t1].map((id) => id.toLowerCase()));
    // Alice force-closes S1, then T1; Bob, seeing S1 on chain with his T1 lock tied to it, may force-close T1 first.
    await until("S1 force-closed by Alice and T1 by either", async () => {
      const by = (list: typeof streams.alice.list) => list.filter((e) => e.type === "chain" && e.step?.kind === "forceClosed").map((e) => e.channelId!.toLowerCase());
      const forced = new Set(by(streams.alice.list));
      for (const id of by(streams.bob.list)) if (id === ch.t1.toLowerCase()) forced.add(id);
      return forced.has(ch.s1.toLowerCase()) && forced.has(ch.t1.toLowerCase()) ? forced : undefined;
    });
    expect((await swap("alice", x.id)).json.phase).to.equal("settlingOnChain");
    const shown = await channels(["--config", file("alice"), "swap", "show", x.id.slice(0, 12)]);
    expect(shown.stdout).to.include("phase settlingOnChain (3 batch settlement)");
    // Bob learns the secret from the chain and registers it where his S1 lock is paid, before its expiry.
    await until("Bob registering the secret on S1", async () =>
      streams.bob.list.find((e) => e.type === "chain" && same(e.channelId!, ch.s1) && (e.step?.kind === "revealed" || (e.step?.kind === "forceClosed" && ((e.step as { revealed?: string[] }).revealed?.length ?? 0) > 0))));
    for (const who of ["alice", "bob"] as const) {
      for (const id of [ch.s1, ch.t1]) expect((await channel(who, id)).status, `${who}: ${id}`).to.be.oneOf(["disputed", "forceClosing"]);
      expect((await channel(who, ch.s2)).status, `${who}: S2`).to.equal("open");
    }
    expect((await channel("carol", ch.c1)).status).to.equal("open");
    const forcedByAny = [...streams.alice.list, ...streams.bob.list].filter((e) => e.type === "chain" && e.step?.kind === "forceClosed").map((e) => e.channelId!.toLowerCase());
    expect([...new Set(forcedByAny)]).to.have.members([ch.s1, ch.t1].map((id) => id.toLowerCase()), "no other channel went on chain");
    // A closing channel takes no swap and no deposit.
    await refused("alice", "POST", "/swaps", { peer: "bob", give: "0.01 ETH@source", take: "0.005 ETH@target", source: ch.s1, target: ch.t1 }, 409, new RegExp(`^Channel ${ch.s1} has a force close in progress and takes no new swap; swap on another channel\\.$`, "i"));
    await refused("alice", "POST", `/channels/${ch.s1}/deposit`, { amount: "1" }, 409, new RegExp(`^channel ${ch.s1} is closing`, "i"));
    relay!.drop = () => false;

    // The challenge period (an hour) passes on both chains; the ticks settle both channels, the lock paid by its secret.
    for (const c of chains) {
      for (const [method, params] of [["evm_increaseTime", [7200]], ["evm_mine", []]] as const) {
        await fetch(c.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
      }
    }
    const expected = afterSwaps(before, [(await swap("alice", x.id)).json]);
    for (const id of [ch.s1, ch.t1]) {
      const closed = await until(`channel ${id} closed`, async () => {
        const c = await channel("alice", id);
        return c.status === "closed" && c.base.payouts !== undefined ? c : undefined;
      }, 120_000);
      expect(closed.base.payouts, id).to.deep.equal(expected[id]);
    }
    const done = await allDone([x.id], 60_000);
    expect([done.alice[0]!.outcome, done.bob[0]!.outcome]).to.deep.equal(["settledOnChain", "settledOnChain"]);
    for (const s of Object.values(streams)) await s.stop();
    for (const who of ["alice", "bob"] as const) expect((await channel(who, ch.s2)).status, `${who}: S2 goes on`).to.equal("open");
    await refused("alice", "POST", `/channels/${ch.s1}/deposit`, { amount: "1" }, 409, new RegExp(`^channel ${ch.s1} is closed$`, "i"));
  });
});
