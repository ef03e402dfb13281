/**
 * A node kept in PostgreSQL, as OS processes: Alice runs two `channels node start` processes on one database (a real
 * PostgreSQL the test starts on loopback), Bob one on a SQLite file, over two `hardhat node` chains. One of Alice's
 * leads, the other stands by, serving the API's reads from the database as the leader does and answering writes 503;
 * the leader is killed (SIGKILL) with swaps in flight, cut off from the database, and the database is restarted under
 * it. Each time the other process takes over, every swap ends the same way on both sides, the channels' balances add
 * up, and no sequence number of Alice's was signed twice.
 */
import { expect } from "chai";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { decode } from "../../sdk/core/codec.js";
import { Store, type ChannelState, type Hex } from "../../sdk/index.js";
import { channels, channelsJson, editJson, NodeProcess } from "../helpers/cli.js";
import { freePort, startHardhatNode, until, type LocalNode } from "../helpers/nodes.js";
import { startPostgres, type Postgres } from "../helpers/postgres.js";
import { AS_OF_HEADER } from "../../sdk/node/headers.js";
import { SNAPSHOT_MAX_AGE_MS } from "../../sdk/node/standby-views.js";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const ENV = { CHANNELS_PASSWORD: "correct horse" };

type Channel = { id: string; chain: string; status: string; base: { myIndex: number; balances: string[]; deposits: string[]; onChainDeposits?: string[] } };
type Swap = { id: string; phase: string; outcome?: string };
type Info = { role: string; address: string; store?: { kind: string; term?: number }; active?: { holder: string; api: string | null; term: number } | null };

describe("a node kept in PostgreSQL: a standby takes over", function () {
  this.timeout(300_000);
  let chains: LocalNode[] = [];
  let pg: Postgres;
  let dir: string;
  const cfg = { a1: "", a2: "", bob: "" };
  const procs: { a1?: NodeProcess; a2?: NodeProcess; bob?: NodeProcess } = {};
  const pair: { s?: string; t?: string } = {};
  const swaps: string[] = [];
  let token = "";
  const apiPort = { a1: 0, a2: 0 };

  /** What the process behind `config` says at /info (a standby answers too). */
  const info = async (port: number): Promise<Info> => {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/info`, { headers: { authorization: `Bearer ${token}` } });
    return (await r.json()) as Info;
  };
  /** The config of Alice's process that leads now. */
  const leader = async (): Promise<"a1" | "a2"> =>
    until("one of Alice's processes to lead", async () => {
      for (const who of ["a1", "a2"] as const) {
        const i = await info(apiPort[who]).catch(() => undefined);
        if (i?.role === "active") return who;
      }
      return undefined;
    }, 60_000);

  before(async function () {
    [chains, pg] = await Promise.all([Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]), startPostgres()]);
    dir = mkdtempSync(join(tmpdir(), "channels-standby-"));
  });
  after(async function () {
    for (const p of [procs.a1, procs.a2, procs.bob]) await p?.stop();
    await Promise.all(chains.map((c) => c.stop()));
    await pg?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("one process leads and the other stands by, answering writes with 503 and the active one's address", async function () {
    const deployed = await channelsJson<{ chainId: string; hub: string }[]>(["deploy", "--source-rpc", chains[0]!.url, "--target-rpc", chains[1]!.url]);
    const [ap, bp, ba] = [await freePort(), await freePort(), await freePort()];
    [apiPort.a1, apiPort.a2] = [await freePort(), await freePort()];
    const init = (who: string, account: string, peerPort: number, port: number, peer: string) =>
      channelsJson<{ address: string }>(
        ["init", "--dir", join(dir, who), "--local-account", account, "--scrypt-n", "1024",
          "--source-rpc", chains[0]!.url, "--target-rpc", chains[1]!.url, "--source-hub", deployed[0]!.hub, "--target-hub", deployed[1]!.hub,
          "--peer-port", String(peerPort), "--api-port", String(port), "--peer", peer],
        ENV,
      );
    await init("alice", "1", ap, apiPort.a1, `bob=${BOB}@http://127.0.0.1:${bp}`);
    await init("bob", "2", bp, ba, `alice=${ALICE}@http://127.0.0.1:${ap}`);
    cfg.a1 = join(dir, "alice", "node.json");
    cfg.a2 = join(dir, "alice", "node-2.json");
    cfg.bob = join(dir, "bob", "node.json");
    const db = await pg.createDatabase("alice");
    for (const file of [cfg.a1, cfg.bob]) {
      editJson(file, (c) => {
        if (file === cfg.a1) c.store = db;
        c.policy = {
          channels: { accept: ["ETH@source", "ETH@target"] },
          swaps: { pairs: [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "2" }], maxInFlight: 8 },
        };
        c.timing = { tickMs: 250, heartbeatSeconds: 2, resendMs: 1_000, confirmationTimeoutMs: 4_000, onChainMarginSeconds: 600 };
      });
    }
    // The second process: the same node (key, database, peer port) with a control API of its own.
    copyFileSync(cfg.a1, cfg.a2);
    editJson(cfg.a2, (c) => ((c.api as Record<string, unknown>).port = apiPort.a2));
    procs.a1 = await NodeProcess.start(cfg.a1, ENV);
    procs.a2 = await NodeProcess.start(cfg.a2, ENV, [], "standby");
    procs.bob = await NodeProcess.start(cfg.bob, ENV);
    token = (await import("node:fs")).readFileSync(join(dir, "alice", "api.token"), "utf8").trim();

    const active = await info(apiPort.a1);
    expect(active.role).to.equal("active");
    expect(active.store).to.deep.equal({ kind: "postgres", term: 1 });
    const standby = await info(apiPort.a2);
    expect(standby.role).to.equal("standby");
    expect(standby.address).to.equal(ALICE);
    expect(standby.active?.term).to.equal(1);
    expect(standby.active?.api).to.equal(`http://127.0.0.1:${apiPort.a1}/api/v1`);
    const write = await fetch(`http://127.0.0.1:${apiPort.a2}/api/v1/swaps`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: "{}" });
    expect(write.status).to.equal(503);
    expect(((await write.json()) as { error: string }).error).to.match(new RegExp(`standby: the active node is .* \\(API http://127\\.0\\.0\\.1:${apiPort.a1}/api/v1\\)`));
    // Without the token, nothing.
    expect((await fetch(`http://127.0.0.1:${apiPort.a2}/api/v1/info`)).status).to.equal(401);
  });

  it("opens a channel on each chain through the active process", async function () {
    const open = (config: string, peer: string, asset: string) =>
      channelsJson<Channel>(["--config", config, "channel", "open", "--peer", peer, "--asset", asset, "--deposit", "5", "--wait"]);
    pair.s = (await open(cfg.a1, "bob", "ETH@source")).id;
    pair.t = (await open(cfg.bob, "alice", "ETH@target")).id;
    for (const config of [cfg.a1, cfg.bob]) {
      await until("both ledgers to count the deposits", async () => {
        const list = await channelsJson<Channel[]>(["--config", config, "channel", "list"]);
        return list.filter((c) => c.status === "open" && c.base.deposits.join() === c.base.onChainDeposits?.join()).length === 2 ? true : undefined;
      });
    }
  });

  /** Proposes `n` swaps through Alice's active process, without waiting for them. */
  const propose = async (config: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const s = await channelsJson<Swap>(["--config", config, "swap", "propose", "--peer", "bob", "--give", "0.1 ETH@source", "--take", "0.05 ETH@target", "--source", pair.s!, "--target", pair.t!]);
      swaps.push(s.id);
    }
  };

  /** Every swap proposed so far ends, the same way for both, through whichever of Alice's processes leads. */
  const allSettle = async () => {
    const lead = await leader();
    const config = lead === "a1" ? cfg.a1 : cfg.a2;
    const ends = async (c: string) => {
      const list = await channelsJson<Swap[]>(["--config", c, "swap", "list"]);
      const byId = new Map(list.map((s) => [s.id, s]));
      return swaps.every((id) => byId.get(id)?.phase === "done") ? byId : undefined;
    };
    const [mine, bobs] = [await until("Alice's swaps to end", () => ends(config), 90_000), await until("Bob's swaps to end", () => ends(cfg.bob), 90_000)];
    for (const id of swaps) expect(mine.get(id)!.outcome, id).to.equal(bobs.get(id)!.outcome);
    // Conservation: each channel's balances add up to its deposits, and both sides hold the same balances.
    const channels = await channelsJson<Channel[]>(["--config", config, "channel", "list"]);
    const bobChannels = new Map((await channelsJson<Channel[]>(["--config", cfg.bob, "channel", "list"])).map((c) => [c.id, c]));
    for (const c of channels) {
      const sum = (xs: string[]) => xs.reduce((a, x) => a + BigInt(x), 0n);
      expect(sum(c.base.balances)).to.equal(sum(c.base.deposits), c.id);
      expect(bobChannels.get(c.id)!.base.balances).to.deep.equal(c.base.balances, c.id);
    }
    return { mine, lead };
  };

  /** Every state Alice signed, from the database, matches what Bob holds co-signed at that number: none signed twice. */
  const noDoubleSignature = async () => {
    const rows = await pg.query<{ channel_id: string; seq: string; state: string }>("SELECT channel_id, seq, state FROM node.own_signatures", [], "alice");
    expect(rows.length).to.be.greaterThan(0);
    const bob = new Store(join(dir, "bob", "node.sqlite"), { readOnly: true });
    try {
      let compared = 0;
      for (const r of rows) {
        const theirs = bob.coSignedAt(r.channel_id as Hex, BigInt(r.seq));
        if (theirs === undefined) continue;
        expect(theirs.state, `${r.channel_id} at ${r.seq}`).to.deep.equal(decode<ChannelState>(r.state));
        compared++;
      }
      expect(compared).to.be.greaterThan(0);
    } finally {
      bob.close();
    }
  };

  /** GET `path` of Alice's process on `port`: the JSON, and for a standby when its snapshot was read (ms). */
  const read = async (port: number, path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status, `${port} ${path}`).to.equal(200);
    const asOf = r.headers.get(AS_OF_HEADER);
    return { json: (await r.json()) as unknown, asOf: asOf === null ? undefined : Date.parse(asOf) };
  };
  /** A channel's view without what the active process reads on chain (a standby reads no chain). */
  const stored = ({ onChainDeposits: _d, payouts: _p, withdrawable: _w, challengeDeadline: _c, base, ...rest }: Record<string, unknown>) => {
    const { onChainDeposits: _bd, payouts: _bp, withdrawable: _bw, ...kept } = base as Record<string, unknown>;
    return { ...rest, base: kept };
  };
  /** The rows of Alice's database by table, and who leads it: what a standby must never change. */
  const database = async () => {
    const count = async (t: string) => Number((await pg.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`, [], "alice"))[0]!.n);
    return {
      channels: await count("node.channels"), swaps: await count("node.swaps"), cosigned: await count("node.cosigned"), own: await count("node.own_signatures"),
      leader: await pg.query("SELECT address, term, holder, api, since FROM channels_meta.leader", [], "alice"),
    };
  };

  it("the standby serves the API's reads from the database as the active process does, no older than its bound, and answers a write 503 with nothing written", async function () {
    await propose(cfg.a1, 2);
    await allSettle();
    const settled = Date.now();
    const before = await database();
    // Past the bound since the swaps ended at the active process: the standby's next snapshot holds them.
    await new Promise((r) => setTimeout(r, SNAPSHOT_MAX_AGE_MS + 100));
    for (const path of ["/channels", "/swaps", "/refusals"]) {
      const [active, standby] = [await read(apiPort.a1, path), await read(apiPort.a2, path)];
      expect(active.asOf, path).to.equal(undefined);
      expect(standby.asOf, path).to.be.at.least(settled);
      const want = path === "/channels" ? (active.json as Record<string, unknown>[]).map(stored) : active.json;
      expect(standby.json, path).to.deep.equal(want);
    }
    const channelList = (await read(apiPort.a2, "/channels")).json as Channel[];
    expect(channelList.map((c) => c.status)).to.deep.equal(["open", "open"]);
    expect(((await read(apiPort.a2, "/swaps")).json as Swap[]).filter((s) => swaps.includes(s.id)).map((s) => s.phase)).to.deep.equal(swaps.map(() => "done"));
    const one = await read(apiPort.a2, `/channels/${pair.s!.slice(0, 10)}`);
    expect(one.json).to.deep.equal(channelList.find((c) => c.id === pair.s));
    const peers = (p: unknown) => (p as Record<string, unknown>[]).map(({ name, address, url, channels }) => ({ name, address, url, channels }));
    expect(peers((await read(apiPort.a2, "/peers")).json)).to.deep.equal(peers((await read(apiPort.a1, "/peers")).json));
    const [activeInfo, standbyInfo] = [(await read(apiPort.a1, "/info")).json as Record<string, unknown>, (await read(apiPort.a2, "/info")).json as Record<string, unknown>];
    for (const k of ["address", "channels", "activeSwaps", "frozenChannels", "policy"]) expect(standbyInfo[k], k).to.deep.equal(activeInfo[k]);
    const chains = (i: Record<string, unknown>) => (i.chains as Record<string, unknown>[]).map(({ name, chainId, hub, assets }) => ({ name, chainId, hub, assets }));
    expect(chains(standbyInfo)).to.deep.equal(chains(activeInfo));
    // The CLI pointed at the standby shows the same list, and says on stderr that it is a standby's snapshot.
    const [fromActive, fromStandby] = [await channels(["--config", cfg.a1, "channel", "list"], ENV), await channels(["--config", cfg.a2, "channel", "list"], ENV)];
    expect(fromStandby.code, fromStandby.stderr).to.equal(0);
    expect(fromActive.stderr).to.not.include("standby");
    expect(fromStandby.stderr.trim()).to.match(/^note: this process is a standby; what follows is its snapshot of the database as of \S+ \(\d+ s ago\); the active process answers writes \(channels info names it\)$/);
    expect(fromStandby.stdout.split("\n").map((l) => l.replace(/\s+$/, ""))[0]).to.equal(fromActive.stdout.split("\n").map((l) => l.replace(/\s+$/, ""))[0]);
    // The dashboard is served by the standby too.
    const page = await fetch(`http://127.0.0.1:${apiPort.a2}/`);
    expect([page.status, page.headers.get("content-type")]).to.deep.equal([200, "text/html; charset=utf-8"]);
    // A write to the standby: 503 naming the active process; nothing proposed, nothing written, the term as it was.
    const body = JSON.stringify({ peer: "bob", give: "0.1 ETH@source", take: "0.05 ETH@target", source: pair.s, target: pair.t });
    const write = await fetch(`http://127.0.0.1:${apiPort.a2}/api/v1/swaps`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body });
    expect(write.status).to.equal(503);
    expect((await write.json()) as { active: { api: string; term: number } }).to.deep.include({ active: { ...standbyInfo.active as object, api: `http://127.0.0.1:${apiPort.a1}/api/v1`, term: 1 } });
    expect(await database()).to.deep.equal(before);
    expect(((await read(apiPort.a1, "/swaps")).json as Swap[]).length).to.equal(swaps.length);
  });

  it("the active process killed (SIGKILL) with swaps in flight: the standby takes over, resumes every swap, and both sides agree", async function () {
    await propose(cfg.a1, 4);
    const killedAt = Date.now();
    procs.a1!.child.kill("SIGKILL");
    const took = await procs.a2!.waitFor((l) => l.event === "api", 60_000);
    const takeoverMs = Date.now() - killedAt;
    expect(procs.a2!.lines.find((l) => l.event === "leading")?.term).to.equal(2);
    console.log(`      takeover after SIGKILL: ${takeoverMs} ms (api at ${String(took.url)})`);
    const { lead } = await allSettle();
    expect(lead).to.equal("a2");
    await noDoubleSignature();
    // Swaps go on through the new leader.
    await propose(cfg.a2, 2);
    await allSettle();
  });

  it("the active process cut off from the database steps down, signs nothing more, and the other takes over", async function () {
    procs.a1 = await NodeProcess.start(cfg.a1, ENV, [], "standby");
    await propose(cfg.a2, 2);
    // Every session of the leader (a2) is cut, as a partition between it and the database would.
    const cut = await pg.query("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = 'alice' AND application_name LIKE $1", [`channels-node pid ${procs.a2!.child.pid}%`]);
    expect(cut).to.have.length(2); // its lock's session and its other one
    const down = await procs.a2!.waitFor((l) => l.event === "steppingDown", 30_000);
    expect(String(down.reason)).to.match(/lock|database|term/);
    // Whichever process takes the lead next (the cut is over at once here, so either may) does so under a new term.
    await until("a process to lead under a new term", async () => {
      for (const who of ["a1", "a2"] as const) {
        const i = await info(apiPort[who]).catch(() => undefined);
        if (i?.role === "active" && (i.store?.term ?? 0) > 2) return true;
      }
      return undefined;
    }, 60_000);
    await allSettle();
    await noDoubleSignature();
  });

  it("the database restarted under the active process: it steps down, one process leads again under a higher term, and swaps go on", async function () {
    const before = await leader();
    const beforeTerm = (await info(apiPort[before])).store!.term!;
    await pg.stop();
    await procs[before]!.waitFor((l) => l.event === "steppingDown" && (l.term as number) === beforeTerm, 30_000);
    await pg.start();
    const after = await leader();
    expect((await info(apiPort[after])).store!.term).to.be.greaterThan(beforeTerm);
    await propose(after === "a1" ? cfg.a1 : cfg.a2, 2);
    await allSettle();
    await noDoubleSignature();
  });

  it("moves Bob's node from SQLite to PostgreSQL with one command: the same channels and swaps, and swaps go on", async function () {
    const before = { channels: await channelsJson<Channel[]>(["--config", cfg.bob, "channel", "list"]), swaps: await channelsJson<Swap[]>(["--config", cfg.bob, "swap", "list"]) };
    const url = await pg.createDatabase("bob");
    // Refused while the node runs on the file.
    const running = await channels(["--config", cfg.bob, "store", "move", url], ENV);
    expect(running.code).to.equal(2);
    expect(running.stderr.trim().split("\n")).to.have.length(1);
    expect(running.stderr).to.match(/another node \(pid \d+\) runs on/);
    expect(await procs.bob!.stop()).to.equal(0);
    const moved = await channelsJson<{ channels: number; swaps: number; towerChannels: number; term: number }>(["--config", cfg.bob, "store", "move", url], ENV);
    expect(moved.channels).to.equal(2);
    expect(moved.swaps).to.equal(before.swaps.length);
    expect(moved.towerChannels).to.equal(2);
    // Into a database that holds a store: refused, one line, nothing written.
    const again = await channels(["--config", cfg.bob, "store", "move", url], ENV);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.match(/holds a store already; move into an empty database/);
    editJson(cfg.bob, (c) => (c.store = url));
    procs.bob = await NodeProcess.start(cfg.bob, ENV);
    const after = { channels: await channelsJson<Channel[]>(["--config", cfg.bob, "channel", "list"]), swaps: await channelsJson<Swap[]>(["--config", cfg.bob, "swap", "list"]) };
    expect(after.channels.map((c) => [c.id, c.base.balances])).to.deep.equal(before.channels.map((c) => [c.id, c.base.balances]));
    expect(after.swaps.map((s) => [s.id, s.outcome])).to.deep.equal(before.swaps.map((s) => [s.id, s.outcome]));
    await propose(cfg[await leader()], 1);
    await allSettle();
  });
});
