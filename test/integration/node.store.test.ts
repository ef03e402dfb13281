/**
 * The node and its store file, as OS processes (`channels node start`): one node per store file whatever path leads
 * to it (a symbolic link, a hard link, a linked folder, `..`); a store deleted under a running node is noticed,
 * said at error level, reported by the API (503), and nothing is signed from it any more; a node whose store is gone
 * refuses to start empty while its watchtower's store and the chains say it had channels, unless told to; and the
 * copy the lost node made of its store puts it back where it was.
 */
import { expect } from "chai";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { sha256, Wallet, ZeroAddress } from "ethers";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { rpcProvider, Store } from "../../sdk/index.js";
import { NodeProcess } from "../helpers/cli.js";
import { freePort, startHardhatNode, until, type LocalNode } from "../helpers/nodes.js";

const ALICE = new Wallet(accountKey(1)).address;
const BOB = new Wallet(accountKey(2)).address;
const ENV = { ALICE_KEY: accountKey(1), BOB_KEY: accountKey(2) };

type Channel = { id: string; status: string; seq: string; base: { deposits: string[]; onChainDeposits?: string[] } };
type Swap = { id: string; phase: string; outcome?: string };

/** Starts a node that should refuse to start: its exit code and stderr (a node that starts anyway is stopped, and fails the test). */
async function refusedStart(config: string, args: readonly string[] = []): Promise<{ code: number; stderr: string }> {
  let started: NodeProcess;
  try {
    started = await NodeProcess.start(config, ENV, args);
  } catch (error) {
    const m = /^the node exited with (\d+):\n([\s\S]*)$/.exec((error as Error).message);
    if (m === null) throw error;
    return { code: Number(m[1]), stderr: m[2]! };
  }
  await started.stop();
  throw new Error(`the node started on ${config}`);
}

describe("the node and its store file", function () {
  this.timeout(120_000);
  let chains: LocalNode[] = [];
  let dir: string;
  const nodes: { alice?: NodeProcess; bob?: NodeProcess } = {};
  const cfg = (who: string) => join(dir, `${who}.json`);
  const store = () => join(dir, "alice.sqlite");
  let config: (who: string, file: string, extra?: Record<string, unknown>) => Promise<void>;
  let s1 = "";
  let t1 = "";

  /** One call to a node's control API. */
  async function api<T>(who: "alice" | "bob", method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const c = JSON.parse(readFileSync(cfg(who), "utf8")) as { api: { port: number } };
    const token = readFileSync(join(dir, `${who}.token`), "utf8").trim();
    const res = await fetch(`http://127.0.0.1:${c.api.port}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as T };
  }
  /** Bob proposes 1 ETH@target for 0.5 ETH@source to Alice, and waits for the swap to end. */
  async function bobSwaps(): Promise<Swap> {
    const proposed = await api<Swap>("bob", "POST", "/swaps", { peer: "alice", give: "1 ETH@target", take: "0.5 ETH@source", source: t1, target: s1 });
    expect(proposed.status, JSON.stringify(proposed.json)).to.equal(201);
    return until("Bob's swap to end", async () => {
      const s = (await api<Swap>("bob", "GET", `/swaps/${proposed.json.id}`)).json;
      return s.outcome === undefined ? undefined : s;
    });
  }
  const seqs = async (who: "alice" | "bob") => (await api<Channel[]>(who, "GET", "/channels")).json.map((c) => `${c.id}:${c.seq}`).sort();

  before(async function () {
    chains = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    const hubs: string[] = [];
    for (const c of chains) {
      const p = rpcProvider(c.url);
      hubs.push(await deployHub(p));
      p.destroy();
    }
    dir = mkdtempSync(join(tmpdir(), "node-store-"));
    const ports = { alice: await freePort(), bob: await freePort() };
    const chain = (i: number) => ({
      rpcUrl: chains[i]!.url, hub: hubs[i], confirmations: 0, finalitySeconds: 12, inclusionSeconds: 60, clockSkewSeconds: 30,
      assets: { ETH: { address: ZeroAddress, decimals: 18 } },
    });
    const timing = { tickMs: 250, heartbeatSeconds: 30, resendMs: 1_000, confirmationTimeoutMs: 3_000, onChainMarginSeconds: 600 };
    config = async (who, file, extra = {}) => {
      const alice = who === "alice";
      writeFileSync(file, JSON.stringify({
        key: { env: alice ? "ALICE_KEY" : "BOB_KEY" }, store: `${who}.sqlite`, peer: { port: ports[alice ? "alice" : "bob"] },
        api: { port: await freePort(), tokenFile: `${who}.token` },
        chains: { source: chain(0), target: chain(1) },
        peers: alice ? { bob: { address: BOB, url: `http://127.0.0.1:${ports.bob}` } } : { alice: { address: ALICE, url: `http://127.0.0.1:${ports.alice}` } },
        policy: {
          channels: { accept: ["ETH@source", "ETH@target"] },
          swaps: { pairs: alice ? [{ give: "ETH@target", take: "ETH@source", maxRate: "1", maxAmount: "2" }] : [], maxInFlight: 2 },
        },
        timing,
        ...extra,
      }));
    };
    await config("alice", cfg("alice"));
    await config("bob", cfg("bob"));
    // A first start after `channels init`: no store, nothing beside it, no channel on chain: no flag needed.
    nodes.alice = await NodeProcess.start(cfg("alice"), ENV);
    nodes.bob = await NodeProcess.start(cfg("bob"), ENV);
    s1 = (await api<Channel>("alice", "POST", "/channels", { peer: "bob", asset: "ETH@source", deposit: "5" })).json.id;
    t1 = (await api<Channel>("bob", "POST", "/channels", { peer: "alice", asset: "ETH@target", deposit: "5" })).json.id;
    for (const who of ["alice", "bob"] as const) {
      await until(`${who} to count both deposits`, async () => {
        const list = (await api<Channel[]>(who, "GET", "/channels")).json;
        return list.filter((c) => c.status === "open" && c.base.deposits.join() === c.base.onChainDeposits?.join()).length === 2 ? true : undefined;
      });
    }
  });

  afterEach(function () {
    if (this.currentTest?.state !== "failed" || !process.env.CHANNELS_E2E_DEBUG) return;
    for (const l of nodes.alice?.lines ?? []) console.log("alice", JSON.stringify(l).slice(0, 400));
  });

  after(async function () {
    await nodes.alice?.stop();
    await nodes.bob?.stop();
    await Promise.all(chains.map((c) => c.stop()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a second node on the store file of a running node, by a symbolic link, a hard link, a linked folder or `..`", async function () {
    const other = join(dir, "other");
    mkdirSync(join(other, "sub"), { recursive: true });
    symlinkSync(store(), join(other, "symlink.sqlite"));
    linkSync(store(), join(other, "hardlink.sqlite"));
    symlinkSync(dir, join(other, "folder"));
    const paths = [join(other, "symlink.sqlite"), join(other, "hardlink.sqlite"), join(other, "folder", "alice.sqlite"), `${other}/sub/../../alice.sqlite`];
    for (const [i, path] of paths.entries()) {
      const file = join(other, `second-${i}.json`);
      await config("alice", file, { store: path, peer: { port: await freePort() }, api: { port: await freePort(), tokenFile: join(other, `second-${i}.token`) } });
      const { code, stderr } = await refusedStart(file);
      expect(code, path).to.equal(2);
      expect(stderr.trim().split("\n"), stderr).to.have.length(1);
      // A hard link is another name with its own log beside it: refused for that, whoever runs on the file.
      const why = path.endsWith("hardlink.sqlite") ? `${path} has 2 names (hard links to one file)` : `another node (pid ${nodes.alice!.child.pid}) runs on ${resolve(path)}`;
      expect(stderr, path).to.include(why);
    }
    rmSync(join(other, "hardlink.sqlite"));
    expect((await api<{ channels: number }>("alice", "GET", "/info")).json.channels).to.equal(2, "the first node runs on");
  });

  it("notices its store deleted under it: says so at error level, answers 503, and signs nothing more", async function () {
    const before = await bobSwaps();
    expect(before.outcome).to.equal("swapped", "a swap goes through while the store is there");
    const seqsBefore = await seqs("bob");
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${store()}${suffix}`, { force: true });
    const lost = await nodes.alice!.waitFor((l) => l.event === "storeLost", 20_000);
    expect(lost.level).to.equal("error");
    // Whichever check sees it first (the file's path, or its log or index gone with it) names the store and the loss.
    const deleted = /the store .*alice\.sqlite is lost: (its file was deleted|another file is at its path now|its (write-ahead log|shared-memory index) \S+ was deleted)/;
    expect(String(lost.msg), String(lost.msg)).to.match(deleted);
    expect(String(lost.msg)).to.match(/this node signs nothing more/);
    const info = await api<{ error: string }>("alice", "GET", "/info");
    expect(info.status).to.equal(503);
    expect(info.json.error, info.json.error).to.match(deleted);
    // Neither a swap Alice proposes nor one Bob proposes is signed by her node: Bob's channels stay where they were.
    const mine = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.5 ETH@source", take: "0.1 ETH@target" });
    expect(mine.status).to.equal(503);
    const after = await bobSwaps();
    expect(after.outcome).to.not.equal("swapped");
    expect(await seqs("bob")).to.deep.equal(seqsBefore, "no new state reached Bob");
    // What the lost store still held was copied beside it.
    const rescued = (lost.rescued as string[])[0]!;
    expect(rescued).to.match(/alice\.sqlite\.rescued-/);
    const copy = new Store(rescued, { readOnly: true });
    expect(copy.channels()).to.have.length(2);
    copy.close();
  });

  it("refuses to start empty while its watchtower's store and the chains say it had channels; starts with --allow-empty-store; starts as it was from the copy, once it has one name", async function () {
    const lost = nodes.alice!;
    await lost.stop();
    delete nodes.alice;
    expect(existsSync(store())).to.equal(false);
    const { code, stderr } = await refusedStart(cfg("alice"));
    expect(code).to.equal(2);
    expect(stderr.trim().split("\n"), stderr).to.have.length(1);
    expect(stderr).to.match(/store: .*alice\.sqlite does not exist, but its watchtower's store .*alice\.sqlite\.tower holds 2 channel\(s\)/);
    expect(stderr).to.match(/1 channel\(s\) it opened on source are not closed on chain/);
    expect(stderr).to.include("--allow-empty-store");
    expect(existsSync(store())).to.equal(false, "no store was made");
    const rescued = (lost.lines.find((l) => l.event === "storeLost")!.rescued as string[])[0]!;

    const fresh = (nodes.alice = await NodeProcess.start(cfg("alice"), ENV, ["--allow-empty-store"]));
    expect(fresh.lines.find((l) => l.event === "emptyStore")?.level).to.equal("warn");
    expect((await api<{ channels: number }>("alice", "GET", "/info")).json.channels).to.equal(0);
    await fresh.stop();

    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${store()}${suffix}`, { force: true });
    renameSync(rescued, store());
    // A second name for the file (a hard link) is refused even with no node on it: SQLite keeps a log per name.
    linkSync(store(), join(dir, "alias.sqlite"));
    const linked = await refusedStart(cfg("alice"));
    expect([linked.code, linked.stderr.trim().split("\n").length]).to.deep.equal([2, 1]);
    expect(linked.stderr).to.match(/alice\.sqlite has 2 names \(hard links to one file\)/);
    rmSync(join(dir, "alias.sqlite"));
    nodes.alice = await NodeProcess.start(cfg("alice"), ENV);
    expect((await api<{ channels: number }>("alice", "GET", "/info")).json.channels).to.equal(2);
    expect(await seqs("alice")).to.deep.equal(await seqs("bob"), "the copy holds every state Bob holds");
  });

  it("says once at start, at warn, how many secrets its watchtower's store kept from before reveal rules without the client's word", async function () {
    await nodes.alice!.stop();
    delete nodes.alice;
    // `<store>.tower` as 0.2.x left it (no rules), with two secrets the node's store does not know.
    const db = new DatabaseSync(`${store()}.tower`);
    db.exec("ALTER TABLE secrets DROP COLUMN reveal; ALTER TABLE secrets DROP COLUMN on_chain");
    for (const secret of [`0x${"1".repeat(64)}`, `0x${"2".repeat(64)}`]) db.prepare("INSERT INTO secrets VALUES (?, ?)").run(sha256(secret), secret);
    db.close();
    const node = (nodes.alice = await NodeProcess.start(cfg("alice"), ENV));
    await node.waitFor((l) => l.event === "started");
    expect(node.lines.filter((l) => l.event === "towerSecretsHeld").map((l) => [l.level, l.secrets])).to.deep.equal([["warn", 2]]);
  });
});
