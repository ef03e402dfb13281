/**
 * A standby's read-only API (sdk/node/standby-views.ts) on a real PostgreSQL the test starts on loopback. A holder of
 * the lead writes the node's rows through a mirrored store, as the active node commits them; a standby (`runLeading`,
 * in this process, with Alice's key) serves the API's reads from its snapshot of the database: the same answers as
 * the node's own views of those rows, with the snapshot's time; 503 naming the active process for every write and the
 * event stream, with nothing written and the term untouched; one read for requests that come at once, and a commit
 * in its answers once its snapshot is older than the bound; its dashboard, in headless Chromium, showing the rows
 * under a banner naming the active process. Quick: no chain (a stub answers eth_chainId).
 */
import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZeroAddress } from "ethers";
import pino from "pino";
import { chromium } from "playwright-core";

import { Store, type ChannelRecord, type ChannelState, type Hex } from "../../sdk/index.js";
import type { SwapTerms } from "../../sdk/core/swap.js";
import type { NodeConfig } from "../../sdk/node/node-config.js";
import { PeerBook } from "../../sdk/node/peer-book.js";
import { runLeading } from "../../sdk/node/standby.js";
import { AS_OF_HEADER } from "../../sdk/node/headers.js";
import { SNAPSHOT_MAX_AGE_MS } from "../../sdk/node/standby-views.js";
import { AssetBook } from "../../sdk/node/units.js";
import { channelIds, channelView, swapViews, type Stored } from "../../sdk/node/views.js";
import { PgDatabase } from "../../sdk/store/postgres.js";
import { freePort, until } from "../helpers/nodes.js";
import { startPostgres, type Postgres } from "../helpers/postgres.js";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ALICE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d" as Hex;
const BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const HUB = `0x${"11".repeat(20)}`;
const TOKEN = "t".repeat(64);
const HOLDER_API = "http://127.0.0.1:1/api/v1";
const id = (n: number) => `0x${n.toString(16).padStart(2, "0").repeat(32)}` as Hex;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A channel of Alice (participant 0) with Bob on chain 31337, holding `mine` and `theirs` wei. */
function record(channelId: Hex, mine: bigint, theirs: bigint): ChannelRecord {
  return {
    ref: { channelId, chainId: 31337n, hub: HUB },
    params: { participants: [ALICE, BOB], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: 1n },
    myIndex: 0,
    openingDeposits: [mine, theirs],
  } as ChannelRecord;
}

/** A swap of Alice's (initiator) from `source` to `target`, in `phase`. */
function saveSwap(store: Store, swapId: Hex, source: Hex, target: Hex, phase: object, active: boolean): void {
  const ref = (channelId: Hex) => ({ channelId, chainId: 31337n, hub: HUB });
  const terms = {
    swapId, source: ref(source), target: ref(target), initiator: ALICE, responder: BOB, give: 10n ** 17n, take: 5n * 10n ** 16n,
    hashlock: id(0xee), sourceExpiry: 2_000_000_000n, targetExpiry: 1_999_000_000n,
  } as SwapTerms;
  store.saveSwap(swapId, "initiator", terms, { phase, since: 1_700_000_000_000, sentAt: 1_700_000_000_000 }, active);
}

describe("a standby serves the API's reads from a snapshot of the database, and writes nothing", function () {
  this.timeout(60_000);
  let pg: Postgres;
  let url: string;
  let holder: PgDatabase;
  let store: Store;
  let rpc: Server;
  let config: NodeConfig;
  let dir: string;
  let base: string;
  let stop: (signal: string) => void = () => {};
  let running: Promise<void> | undefined;

  /** The standby's answer to GET `path`: status, JSON, and its snapshot's time. */
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const asOf = r.headers.get(AS_OF_HEADER);
    return { status: r.status, json: (await r.json()) as unknown, asOf: asOf === null ? undefined : Date.parse(asOf) };
  };
  /** What the node's own views show of the holder's rows (its store), as JSON. */
  const expected = () => {
    const assets = new AssetBook({ source: { ...config.chains.source!, chainId: 31337n } });
    const stored: Stored = { store, assets, peers: new PeerBook({ config, store, address: ALICE }), pending: new Map() };
    const json = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;
    return { channels: json(channelIds(stored).map((c) => channelView(stored, c))), swaps: json(swapViews(stored)) };
  };
  /** Every row of every table of the database (the stores, the term, the migrations), in order. */
  const everything = async () => {
    const tables = await pg.query<{ s: string; t: string }>(
      "SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_schema IN ('node', 'tower', 'channels_meta') ORDER BY 1, 2", [], "alice");
    const out: Record<string, unknown[]> = {};
    for (const { s, t } of tables) out[`${s}.${t}`] = await pg.query(`SELECT * FROM "${s}"."${t}" ORDER BY 1`, [], "alice");
    return out;
  };
  const loads = async () => {
    const text = await (await fetch(`${base.replace("/api/v1", "")}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    return Number(/^channels_standby_snapshot_load_seconds_count (\d+)$/m.exec(text)?.[1]);
  };

  before(async function () {
    pg = await startPostgres();
    url = await pg.createDatabase("alice");
    holder = PgDatabase.open(url, { applicationName: "holder" });
    const term = holder.tryLead(ALICE, "the holder", HOLDER_API)!;
    store = new Store(":memory:", { mirror: holder.mirror("node", term) });
    store.saveChannel(record(id(1), 5n * 10n ** 18n, 3n * 10n ** 18n));
    store.saveChannel(record(id(2), 2n * 10n ** 18n, 0n));
    const state: ChannelState = { channelId: id(1), seq: 4n, deposits: [5n * 10n ** 18n, 3n * 10n ** 18n], balances: [4n * 10n ** 18n, 4n * 10n ** 18n], locks: [], isFinal: false };
    store.saveCoSigned({ state, signatures: ["0x01", "0x02"] });
    saveSwap(store, id(0x31), id(1), id(2), { kind: "done", outcome: "swapped" }, false);
    saveSwap(store, id(0x32), id(1), id(2), { kind: "locked" }, true);
    store.saveBatched("refusal", "000000000000", { time: "2026-12-07T10:00:00.000Z", kind: "swap", peer: "bob", id: id(0x33), reason: "no pair ETH@source -> ETH@source" });
    // The chain's endpoint, as far as a standby asks it anything: its id.
    rpc = createServer((_req, res) => res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: "0x7a69" })));
    await new Promise<void>((r) => rpc.listen(0, "127.0.0.1", r));
    const rpcPort = (rpc.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), "standby-reads-"));
    const port = await freePort();
    config = {
      store: url,
      chains: { source: { rpcUrl: `http://127.0.0.1:${rpcPort}`, hub: HUB, assets: { ETH: { address: ZeroAddress, decimals: 18 } } } },
      peers: { bob: { address: BOB, url: "http://127.0.0.1:9" } },
      policy: { channels: { accept: [] }, swaps: { pairs: [], maxInFlight: 8 } },
      api: { host: "127.0.0.1", port, metricsPublic: false, tokenFile: join(dir, "api.token") },
    } as unknown as NodeConfig;
    base = `http://127.0.0.1:${port}/api/v1`;
    const stopped = new Promise<string>((r) => (stop = r));
    running = runLeading(config, ALICE_KEY, pino({ level: "silent" }), TOKEN, {}, stopped);
    await until("the standby to answer", async () => ((await get("/info")).status === 200 ? true : undefined), 30_000);
  });

  after(async function () {
    stop("SIGTERM");
    await running;
    store?.close();
    holder?.close();
    rpc?.close();
    await pg?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("answers the channels, swaps, peers and refusals as the node's views of the same rows, each with its snapshot's time", async function () {
    const want = expected();
    const before = Date.now();
    const channels = await get("/channels");
    expect(channels.status).to.equal(200);
    expect(channels.json).to.deep.equal(want.channels);
    expect((channels.json as { asset: string; balance: { mine: string } }[])[0]).to.deep.include({ asset: "ETH@source", balance: { mine: "4 ETH@source", theirs: "4 ETH@source", locked: "0 ETH@source" } });
    expect(channels.asOf).to.be.a("number").and.to.be.at.least(before - SNAPSHOT_MAX_AGE_MS);
    expect((await get(`/channels/${id(1).slice(0, 10)}`)).json).to.deep.equal((want.channels as unknown[])[0]);
    expect((await get("/swaps")).json).to.deep.equal(want.swaps);
    expect((await get(`/swaps/${id(0x32)}`)).json).to.deep.equal((want.swaps as unknown[])[1]);
    expect((await get("/swaps/0x999999")).status).to.equal(404);
    expect((await get("/peers")).json).to.deep.equal([{ name: "bob", address: BOB, url: "http://127.0.0.1:9", channels: 2, link: "unknown" }]);
    expect(((await get("/refusals")).json as { reason: string }[]).map((r) => r.reason)).to.deep.equal(["no pair ETH@source -> ETH@source"]);
    const info = await get("/info");
    expect(info.json).to.deep.include({ role: "standby", address: ALICE, channels: 2, activeSwaps: 1, frozenChannels: 0 });
    expect((info.json as { active: unknown }).active).to.deep.include({ holder: "the holder", api: HOLDER_API, term: 1 });
    expect((info.json as { chains: unknown[] }).chains).to.deep.equal([{ name: "source", chainId: "31337", hub: HUB, assets: [{ symbol: "ETH", address: ZeroAddress, decimals: 18 }] }]);
    expect(Date.parse((info.json as { asOf: string }).asOf)).to.equal(info.asOf);
    expect((await get("/openapi.json")).json).to.have.property("openapi", "3.1.0");
  });

  it("answers every write and the event stream 503 naming the active process, and the database's rows and term stay as they were", async function () {
    const before = await everything();
    const methods = [
      ["POST", "/swaps", JSON.stringify({ peer: "bob", give: "0.1 ETH@source", take: "0.1 ETH@source" })],
      ["POST", "/channels", "{}"],
      ["POST", `/channels/${id(1)}/close`, JSON.stringify({ force: true })],
      ["POST", "/backup", JSON.stringify({ file: "copy.sqlite" })],
      ["DELETE", `/channels/${id(1)}`, undefined],
      ["PUT", "/swaps", "{}"],
      ["GET", "/events", undefined],
    ] as const;
    for (const [method, path, body] of methods) {
      const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, body });
      const answer = (await r.json()) as { error: string; active: { api: string; term: number } };
      expect([r.status, answer.error], `${method} ${path}`).to.deep.equal([503, `this process is a standby: the active node is the holder (API ${HOLDER_API})`]);
      expect(answer.active).to.deep.include({ api: HOLDER_API, term: 1 });
    }
    for (const path of ["/info", "/channels", "/swaps", "/peers", "/refusals"]) expect((await get(path)).status, path).to.equal(200);
    await sleep(SNAPSHOT_MAX_AGE_MS + 100); // past the bound: the next read is a new snapshot
    expect((await get("/channels")).status).to.equal(200);
    const after = await everything();
    expect(after).to.deep.equal(before);
    expect((after["channels_meta.leader"] as { term: number }[]).map((l) => Number(l.term))).to.deep.equal([1]);
    expect(after["node.swaps"]).to.have.length(2);
  });

  it("requests that come at once share one read, and a commit is in every answer once the snapshot is older than the bound", async function () {
    await sleep(SNAPSHOT_MAX_AGE_MS + 100); // the last snapshot is too old: the next request reads one
    const loadsBefore = await loads();
    const answers = await Promise.all(Array.from({ length: 16 }, () => get("/channels")));
    expect(answers.map((a) => a.status)).to.deep.equal(Array(16).fill(200));
    expect(new Set(answers.map((a) => a.asOf)).size).to.equal(1);
    expect(await loads()).to.equal(loadsBefore + 1);
    // The holder commits a channel and a swap; an answer asked once the bound has passed since holds them.
    store.saveChannel(record(id(3), 10n ** 18n, 10n ** 18n));
    saveSwap(store, id(0x34), id(3), id(2), { kind: "agreed" }, true);
    const committed = Date.now();
    await sleep(SNAPSHOT_MAX_AGE_MS + 100);
    const channels = await get("/channels");
    expect(channels.asOf).to.be.at.least(committed);
    expect(channels.json).to.deep.equal(expected().channels);
    expect((channels.json as unknown[]).length).to.equal(3);
    expect(((await get("/swaps")).json as { id: string }[]).map((s) => s.id)).to.include(id(0x34));
  });

  it("its dashboard shows the stored channels and swaps under a banner naming the active process", async function () {
    execFileSync(process.execPath, [join("scripts", "package", "build-dashboard.mjs")], { stdio: "pipe" });
    const browser = await chromium.launch({ executablePath: execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim(), headless: true });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      // The event stream is the active process's: the standby answers it 503, which the browser logs.
      page.on("console", (m) => (m.type() === "error" && !/status of 503/.test(m.text()) ? errors.push(m.text()) : undefined));
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(base.replace(/api\/v1$/, ""));
      await page.getByLabel("API token").fill(TOKEN);
      await page.getByRole("button", { name: "Sign in" }).click();
      const banner = page.getByTestId("standby");
      await banner.waitFor({ timeout: 30_000 });
      expect(await banner.innerText()).to.match(/Standby\..*The active process is the holder \(term 1, API http:\/\/127\.0\.0\.1:1\/api\/v1\)/s);
      await page.getByText("health: read by the active process").waitFor({ timeout: 10_000 });
      await page.getByRole("link", { name: "Channels", exact: true }).click();
      expect(await page.locator("[data-channel]").count()).to.equal(3);
      await page.getByRole("link", { name: "Swaps", exact: true }).click();
      await page.locator(`[data-swap="${id(0x31)}"][data-outcome=swapped]`).waitFor({ timeout: 10_000 });
      expect(errors).to.deep.equal([]);
    } finally {
      await browser.close();
    }
  });

  it("its sessions cut, it reads the database again once connected again", async function () {
    const cut = await pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'alice' AND application_name LIKE $1", [`channels-node pid ${process.pid}%`]);
    expect(cut).to.have.length(3); // its work and lock sessions, and its snapshots'
    await sleep(SNAPSHOT_MAX_AGE_MS + 100);
    const again = await until("the standby to read again", async () => {
      const r = await get("/channels");
      return r.status === 200 ? r : undefined;
    }, 30_000);
    expect(again.json).to.deep.equal(expected().channels);
    expect((await everything())["channels_meta.leader"]).to.have.length(1);
  });
});
