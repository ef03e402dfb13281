/**
 * `channels store freeze` as an OS process (dist/), on a SQLite file and on a real PostgreSQL database the test
 * starts on loopback: a store restored by other means than `channels backup` (a cp of the file, a dump restored) has
 * every channel frozen, so a node started on it afterwards signs nothing on them; refused while a node runs on the
 * file or a process leads the database, and on a store that is not there, which it never creates; a second run keeps
 * the first one's times. Also: a CLI command that cannot reach a node kept in PostgreSQL says the active process
 * may be another one.
 */
import { expect } from "chai";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { ChannelBook, ChannelFrozenError, Store, type ChannelRecord, type ChannelState, type Hex } from "../../sdk/index.js";
import { PgDatabase } from "../../sdk/store/postgres.js";
import { lockStore, unlockStore } from "../../sdk/node/store-lock.js";
import { channels } from "../helpers/cli.js";
import { freePort } from "../helpers/nodes.js";
import { startPostgres, type Postgres } from "../helpers/postgres.js";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const CHANNELS = [`0x${"ab".repeat(32)}`, `0x${"cd".repeat(32)}`] as Hex[];
const LATER = `0x${"ef".repeat(32)}` as Hex;

type Freeze = { store: string; kind: string; froze: number; frozenBefore: number; since: string };

const record = (channelId: Hex) => ({ ref: { channelId, chainId: 31337n, hub: `0x${"11".repeat(20)}` }, myIndex: 0, openingDeposits: [5n, 0n] }) as unknown as ChannelRecord;
const state = (channelId: Hex, seq: bigint) => ({ channelId, seq, deposits: [5n, 0n], balances: [4n, 1n], locks: [], isFinal: false }) as ChannelState;

/** Two channels, a state signed on the first: what a node's store holds when it is copied. */
function seed(store: Store): void {
  for (const id of CHANNELS) store.saveChannel(record(id));
  store.recordOwnSignature(state(CHANNELS[0]!, 1n), "0x01", () => "0xaa" as Hex);
}

/** What a node started on `store` does when it would sign a new state (number `seq`) on `channelId`: the error it gets, if any. */
function signNew(store: Store, channelId: Hex, seq = 3n): unknown {
  const book = new ChannelBook(store, { address: ALICE, sign: () => "0xbb" as Hex });
  try {
    book.sign(state(channelId, seq));
    return undefined;
  } catch (error) {
    return error;
  }
}

/** A node.json that `channels` reads (no chain is reached by the commands run here). */
function nodeJson(dir: string, store: string, apiPort: number): string {
  const file = join(dir, "node.json");
  writeFileSync(
    file,
    JSON.stringify({
      key: { env: "CHANNELS_TEST_KEY" },
      store,
      peer: { port: 1 },
      api: { port: apiPort },
      chains: { source: { rpcUrl: "http://127.0.0.1:1", hub: `0x${"11".repeat(20)}`, assets: {} } },
    }),
  );
  return file;
}

/** One line on stderr, exit code 2 (a refusal), nothing on stdout. */
function refused(r: { code: number | null; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  expect(r.stdout).to.equal("");
  expect(r.stderr.trim().split("\n"), r.stderr).to.have.length(1);
  expect(r.stderr).to.match(pattern);
}

describe("channels store freeze: a store restored by other means than channels backup is frozen before a node starts on it", function () {
  this.timeout(60_000);
  let pg: Postgres;
  let dir: string;
  before(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), "channels-freeze-"));
  });
  after(async () => {
    await pg?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("freezes every channel of node.json's SQLite store: a node started on it signs nothing new on them; a second run keeps the first times", async function () {
    const folder = join(dir, "sqlite");
    const file = join(folder, "node.sqlite");
    mkdirSync(folder);
    const copied = new Store(file);
    seed(copied);
    expect(signNew(copied, CHANNELS[1]!, 2n)).to.equal(undefined); // not frozen yet: a node would sign on it
    copied.close();
    const config = nodeJson(folder, "node.sqlite", 1);

    const first = await channels(["--config", config, "--json", "store", "freeze"]);
    expect(first.code, first.stderr).to.equal(0);
    const f1 = JSON.parse(first.stdout) as Freeze;
    expect(f1).to.include({ store: file, kind: "sqlite", froze: 2, frozenBefore: 0 });
    const text = await channels(["--config", config, "store", "freeze"]);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/^froze 0 channel\(s\) in .*node\.sqlite \(2 frozen before keep their time\)\nnow start the node \(channels node start\): .*until each catches up from its peer.*force-close one that cannot/);

    let store = new Store(file);
    const times = CHANNELS.map((id) => store.frozenSince(id));
    expect(times).to.deep.equal(CHANNELS.map(() => Date.parse(f1.since)));
    for (const id of CHANNELS) expect(signNew(store, id)).to.be.instanceOf(ChannelFrozenError);
    expect(store.ownSignedAt(CHANNELS[0]!, 1n)?.signature).to.equal("0xaa"); // what it signed is kept (resends, the chain)
    store.saveChannel(record(LATER)); // a channel the file got after the first freeze
    store.close();

    const again = await channels(["--config", config, "--json", "store", "freeze"]);
    expect(again.code, again.stderr).to.equal(0);
    expect(JSON.parse(again.stdout)).to.include({ froze: 1, frozenBefore: 2 });
    store = new Store(file);
    try {
      expect(CHANNELS.map((id) => store.frozenSince(id))).to.deep.equal(times); // the first run's times kept
      expect(store.frozenSince(LATER)).to.be.greaterThanOrEqual(times[0]!);
    } finally {
      store.close();
    }
  });

  it("is refused while a node runs on the file, and on a file that is not there, which it never creates", async function () {
    const file = join(dir, "running.sqlite");
    const live = new Store(file);
    seed(live);
    live.close();
    // The lock a node takes on its store at start (pid: this process, which runs).
    const lock = lockStore(file);
    try {
      refused(await channels(["store", "freeze", file]), /^error: store: another node \(pid \d+\) runs on .*running\.sqlite.*; stop it first/);
    } finally {
      unlockStore(lock);
    }
    const store = new Store(file);
    try {
      expect(CHANNELS.map((id) => store.frozenSince(id))).to.deep.equal([undefined, undefined]);
    } finally {
      store.close();
    }

    const before = readdirSync(dir).sort();
    refused(await channels(["store", "freeze", join(dir, "restored.sqlite")]), /^error: store: .*restored\.sqlite does not exist; nothing to freeze/);
    expect(existsSync(join(dir, "restored.sqlite"))).to.equal(false);
    expect(readdirSync(dir).sort()).to.deep.equal(before); // no file, no lock file left

    // An empty argument, a folder and a URL of another scheme each get a line naming what is wrong, and leave nothing.
    refused(await channels(["store", "freeze", ""]), /^error: store: empty; name a SQLite file or a postgres:\/\/ URL/);
    refused(await channels(["store", "freeze", dir]), /^error: store: .*channels-freeze-[^ ]* is a folder; name the store file in it/);
    const other = await channels(["store", "freeze", "mysql://user:hunter2@127.0.0.1/alice"]);
    refused(other, /^error: store: a mysql:\/\/ URL; a store is a SQLite file or a postgres:\/\/ URL$/m);
    expect(other.stderr).to.not.include("hunter2");
    expect(readdirSync(dir).sort()).to.deep.equal(before);
  });

  it("freezes every channel of node.json's PostgreSQL database under a new term: a process leading it afterwards signs nothing new on them; refused while a process leads", async function () {
    const url = await pg.createDatabase("restored");
    const folder = join(dir, "pg");
    mkdirSync(folder);
    const config = nodeJson(folder, url, 1);
    // The node's store as a dump restored it: written by a process that led, then stopped.
    const writer = PgDatabase.open(url, { applicationName: "before the dump" });
    const written = new Store(":memory:", { mirror: writer.mirror("node", writer.tryLead(ALICE, "node", undefined)!) });
    seed(written);
    written.close();
    writer.close();
    const frozenRows = () => pg.query<{ channel_id: string; since: string }>("SELECT channel_id, since FROM node.frozen ORDER BY channel_id", [], "restored");

    // A process leads: refused, nothing written.
    const leading = PgDatabase.open(url, { applicationName: "a standby that took over" });
    try {
      expect(leading.tryLead(ALICE, "standby", "http://127.0.0.1:9/api/v1")).to.equal(2);
      refused(await channels(["--config", config, "store", "freeze"]), /^error: store: a process leads postgres:\/\/postgres@127\.0\.0\.1:\d+\/restored \(standby, term 2, API http:\/\/127\.0\.0\.1:9\/api\/v1\); stop every process of the node first/);
    } finally {
      leading.close();
    }
    expect(await frozenRows()).to.deep.equal([]);

    const first = await channels(["--config", config, "--json", "store", "freeze"]);
    expect(first.code, first.stderr).to.equal(0);
    const f1 = JSON.parse(first.stdout) as Freeze;
    expect(f1).to.include({ store: url, kind: "postgres", froze: 2, frozenBefore: 0 });
    const rows = await frozenRows();
    expect(rows.map((r) => [r.channel_id, Number(r.since)])).to.deep.equal(CHANNELS.map((id) => [id, Date.parse(f1.since)]));
    // It led under a term of its own: a process that led before and missed it can commit nothing more.
    const [leader] = await pg.query<{ term: string; holder: string }>("SELECT term, holder FROM channels_meta.leader", [], "restored");
    expect(Number(leader!.term)).to.equal(3);
    expect(leader!.holder).to.match(/^channels store freeze \(pid \d+\)$/);

    const again = await channels(["--config", config, "--json", "store", "freeze"]);
    expect(again.code, again.stderr).to.equal(0);
    expect(JSON.parse(again.stdout)).to.include({ froze: 0, frozenBefore: 2 });
    expect(await frozenRows()).to.deep.equal(rows);

    // The node's next process, leading, loads the marks: nothing new signed on either channel.
    const next = PgDatabase.open(url, { applicationName: "the node, started after" });
    try {
      const store = new Store(":memory:", { mirror: next.mirror("node", next.tryLead(ALICE, "node", undefined)!) });
      for (const id of CHANNELS) expect(signNew(store, id)).to.be.instanceOf(ChannelFrozenError);
      expect(store.ownSignedAt(CHANNELS[0]!, 1n)?.signature).to.equal("0xaa");
      store.close();
    } finally {
      next.close();
    }
  });

  it("is refused on a database that does not exist or that no node has run on, and creates nothing in either", async function () {
    const missing = `postgres://postgres@127.0.0.1:${pg.port}/no_such_node`;
    refused(await channels(["store", "freeze", missing]), /^error: store: the database postgres:\/\/postgres@127\.0\.0\.1:\d+\/no_such_node does not exist; nothing to freeze/);
    expect(await pg.query("SELECT 1 FROM pg_database WHERE datname = 'no_such_node'")).to.deep.equal([]);

    const blank = await pg.createDatabase("blank");
    refused(await channels(["store", "freeze", blank]), /^error: store: the database .*\/blank holds no store: no node has run on it/);
    const schemas = await pg.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname IN ('channels_meta', 'node', 'tower')", [], "blank");
    expect(schemas).to.deep.equal([]);
  });

  it("a command that cannot reach a node kept in PostgreSQL says the active process may be another one, and how to find it", async function () {
    const folder = join(dir, "failover");
    mkdirSync(folder);
    writeFileSync(join(folder, "api.token"), "a-token\n");
    const dead = await freePort(); // the API of a leader that died: nothing listens there
    const config = nodeJson(folder, `postgres://postgres@127.0.0.1:${pg.port}/alice`, dead);
    const r = await channels(["--config", config, "info"]);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split("\n")).to.have.length(1);
    expect(r.stderr).to.match(new RegExp(`^error: cannot reach the node at http://127\\.0\\.0\\.1:${dead}/api/v1: .*the node is kept in postgres://postgres@127\\.0\\.0\\.1:\\d+/alice, so the active process may be another one .*channels --config <its node\\.json> info.*channels_meta\\.leader`));
    // On a SQLite store there is no other process to look for.
    const sqlite = nodeJson(folder, "node.sqlite", dead);
    const s = await channels(["--config", sqlite, "info"]);
    expect(s.code).to.equal(1);
    expect(s.stderr).to.not.match(/active process/);
  });
});
