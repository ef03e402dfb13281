/**
 * A store kept in PostgreSQL under a term (sdk/store/postgres.ts), on a real PostgreSQL the test starts on loopback:
 * what a process that lost the lead can still get out, a commit whose answer never came, the term's fencing under
 * both orders of a commit and a raise (other sessions held by child processes, since this thread waits on each call).
 */
import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";

import { DoubleSignError, Store, type ChannelRecord, type ChannelState, type Hex } from "../../sdk/index.js";
import { PgDatabase } from "../../sdk/store/postgres.js";
import { StoreLostError } from "../../sdk/store/transactions.js";
import type { NodeConfig } from "../../sdk/node/node-config.js";
import { moveStore } from "../../sdk/node/move.js";
import { runLeading } from "../../sdk/node/standby.js";
import { freePort, until } from "../helpers/nodes.js";
import { startPostgres, type Postgres } from "../helpers/postgres.js";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ALICE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d" as Hex;
const CHANNEL = `0x${"ab".repeat(32)}` as Hex;

/** A state of one channel: only its number and its first balance differ between two of them. */
const state = (seq: bigint, balance: bigint): ChannelState =>
  ({ channelId: CHANNEL, seq, balances: [balance, 10n - balance], locks: [], isFinal: false }) as unknown as ChannelState;

/** Runs `script` in a child process on a session of its own (`c`, connected); `say` prints a line the test reads. */
function session(url: string, script: string): { lines: unknown[]; done: Promise<number | null> } {
  const pgPath = createRequire(import.meta.url).resolve("pg");
  const src =
    `const pg = require(${JSON.stringify(pgPath)}); const say = (x) => console.log(JSON.stringify(x));` +
    `const sleep = (ms) => new Promise((r) => setTimeout(r, ms));` +
    `(async () => { const c = new pg.Client(${JSON.stringify(url)}); await c.connect(); ${script}; await c.end(); })()` +
    `.catch((e) => { say({ error: e.message }); process.exit(1); });`;
  const p = spawn(process.execPath, ["-e", src], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: unknown[] = [];
  let buffered = "";
  p.stdout.on("data", (d: Buffer) => {
    buffered += d.toString();
    for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
      lines.push(JSON.parse(buffered.slice(0, i)));
      buffered = buffered.slice(i + 1);
    }
  });
  return { lines, done: new Promise((r) => p.once("exit", (code) => r(code))) };
}

describe("a store kept in PostgreSQL: what a process that may no longer lead can get out", function () {
  this.timeout(60_000);
  let pg: Postgres;
  before(async () => (pg = await startPostgres()));
  after(async () => pg?.destroy());

  const signatures = async (database: string) =>
    (await pg.query<{ seq: string; digest: string }>("SELECT seq, digest FROM node.own_signatures ORDER BY seq", [], database)).map((r) => `${r.seq}:${r.digest}`);

  it("a deposed process's signature never leaves the store: its commit is refused, nothing of it is written, and the store is lost", async function () {
    const url = await pg.createDatabase("deposed");
    const a = PgDatabase.open(url, { applicationName: "alice-a" });
    const store = new Store(":memory:", { mirror: a.mirror("node", a.tryLead(ALICE, "a", undefined)!) });
    try {
      store.recordOwnSignature(state(1n, 1n), "0x01", () => "0xaa" as Hex);
      // Its lock's session is cut (it has not noticed yet) and another process takes the lead.
      await pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'alice-a (lock)'");
      const b = PgDatabase.open(url, { applicationName: "alice-b" });
      expect(b.tryLead(ALICE, "b", undefined)).to.equal(2);
      b.close();
      let returned: Hex | undefined;
      expect(() => (returned = store.recordOwnSignature(state(2n, 2n), "0x02", () => "0xbb" as Hex))).to.throw(StoreLostError, /term 1 is over \(the database is at term 2/);
      expect(returned).to.equal(undefined);
      expect(store.ownSignedAt(CHANNEL, 2n)).to.equal(undefined); // rolled back here
      expect(await signatures("deposed")).to.deep.equal(["1:0x01"]); // and nothing of it there
      expect(store.fileProblem()).to.match(/term 1 is over/); // and nothing more is signed from it
      expect(() => store.recordOwnSignature(state(3n, 3n), "0x03", () => "0xcc" as Hex)).to.throw(StoreLostError);
    } finally {
      a.close();
    }
  });

  it("a commit unanswered past the call's timeout counts as lost; if it landed after all, the next leader has it and signs no other state at that number", async function () {
    const url = await pg.createDatabase("unanswered");
    const a = PgDatabase.open(url, { applicationName: "alice-a", callTimeoutMs: 1_500 });
    const store = new Store(":memory:", { mirror: a.mirror("node", a.tryLead(ALICE, "a", undefined)!) });
    try {
      store.recordOwnSignature(state(1n, 1n), "0x01", () => "0xaa" as Hex);
      // A synchronous standby that never answers: COMMIT is written on the server but waits there, unanswered.
      await pg.query("ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
      await pg.query("SELECT pg_reload_conf()");
      await until("the server to wait for its standby", async () => ((await pg.query("SHOW synchronous_standby_names"))[0]!.synchronous_standby_names === "nobody" ? true : undefined), 10_000);
      expect(() => store.recordOwnSignature(state(2n, 2n), "0x02", () => "0xbb" as Hex)).to.throw(StoreLostError, /did not answer within 1\.5 s \(commit\)/);
      expect(store.ownSignedAt(CHANNEL, 2n)).to.equal(undefined);
      expect(() => store.probe()).to.throw(StoreLostError); // every later call fails at once
    } finally {
      await pg.query("ALTER SYSTEM RESET synchronous_standby_names");
      await pg.query("SELECT pg_reload_conf()");
    }
    // The commit the process counted as failed lands: the next leader starts from it.
    await until("the waiting commit to land", async () => ((await signatures("unanswered")).length === 2 ? true : undefined), 10_000);
    a.close();
    const b = PgDatabase.open(url, { applicationName: "alice-b" });
    try {
      const next = new Store(":memory:", { mirror: b.mirror("node", b.tryLead(ALICE, "b", undefined)!) });
      expect(() => next.recordOwnSignature(state(2n, 3n), "0x03", () => "0xcc" as Hex)).to.throw(DoubleSignError);
      expect(next.recordOwnSignature(state(2n, 2n), "0x02", () => "0xdd" as Hex)).to.equal("0xbb"); // a resend of the one that landed
    } finally {
      b.close();
    }
  });

  it("the term fences both orders: a raise in flight refuses the old leader's commit, and a commit in flight is waited for and seen by the raiser", async function () {
    const url = await pg.createDatabase("fence");
    // A raise of the term holds the leader row, not committed yet, when the old leader commits.
    const a = PgDatabase.open(url, { applicationName: "alice-a" });
    const store = new Store(":memory:", { mirror: a.mirror("node", a.tryLead(ALICE, "a", undefined)!) });
    try {
      const raise = session(url, `await c.query("BEGIN"); await c.query("UPDATE channels_meta.leader SET term = term + 1"); say({ held: true }); await sleep(1000); await c.query("COMMIT")`);
      await until("the raise to hold the leader row", async () => (raise.lines.length > 0 ? true : undefined), 10_000);
      expect(() => store.recordOwnSignature(state(1n, 1n), "0x01", () => "0xaa" as Hex)).to.throw(StoreLostError, /term 1 is over \(the database is at term 2/);
      expect(await raise.done).to.equal(0);
      expect(await signatures("fence")).to.deep.equal([]);
    } finally {
      a.close();
    }
    // A commit holds the leader row (FOR SHARE) while its write waits on a table lock, and another session raises the
    // term meanwhile: the commit lands and the raiser sees it, or it is refused and the raiser sees nothing of it.
    const a2 = PgDatabase.open(url, { applicationName: "alice-a2" });
    const store2 = new Store(":memory:", { mirror: a2.mirror("node", a2.tryLead(ALICE, "a2", undefined)!) });
    try {
      const table = session(url, `await c.query("BEGIN"); await c.query("LOCK TABLE node.own_signatures IN EXCLUSIVE MODE"); say({ held: true }); await sleep(1500); await c.query("COMMIT")`);
      await until("the table lock", async () => (table.lines.length > 0 ? true : undefined), 10_000);
      const raiser = session(
        url,
        `await sleep(300); await c.query("UPDATE channels_meta.leader SET term = term + 1");` +
          `await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");` +
          `say({ seen: (await c.query("SELECT count(*)::int AS n FROM node.own_signatures")).rows[0].n }); await c.query("COMMIT")`,
      );
      let committed = true;
      try {
        store2.recordOwnSignature(state(1n, 1n), "0x01", () => "0xaa" as Hex);
      } catch (error) {
        expect(error).to.be.instanceOf(StoreLostError);
        committed = false;
      }
      expect([await raiser.done, await table.done]).to.deep.equal([0, 0]);
      expect(raiser.lines).to.deep.equal([{ seen: committed ? 1 : 0 }]);
    } finally {
      a2.close();
    }
  });

  it("a standby cut off from the database answers /info again once it is connected again, and a closed database fails its calls at once", async function () {
    const url = await pg.createDatabase("standby");
    const holder = PgDatabase.open(url, { applicationName: "holder" });
    expect(holder.tryLead(ALICE, "the holder", "http://127.0.0.1:1/api/v1")).to.equal(1);
    const dir = mkdtempSync(join(tmpdir(), "store-pg-"));
    const port = await freePort();
    const config = { store: url, chains: {}, peers: {}, api: { host: "127.0.0.1", port, metricsPublic: false, tokenFile: join(dir, "api.token") } } as unknown as NodeConfig;
    let stop: (signal: string) => void = () => {};
    const stopped = new Promise<string>((r) => (stop = r));
    const lines: { event?: string }[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as { event?: string }) });
    const running = runLeading(config, ALICE_KEY, log, "token", {}, stopped);
    const info = async () => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/info`, { headers: { authorization: "Bearer token" } });
      return r.status === 200 ? ((await r.json()) as { role: string; active: { holder: string } | null }) : undefined;
    };
    try {
      expect((await until("the standby to answer", info, 30_000)).active?.holder).to.equal("the holder");
      // Its sessions cut (a restart of the database, a network cut): it connects again and stands by.
      const cut = await pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1", [`channels-node pid ${process.pid}%`]);
      expect(cut).to.have.length(3); // its work and lock sessions, and its snapshots' (its /info read one)
      await until("the standby to see the database gone", async () => (lines.some((l) => l.event === "databaseUnreachable") ? true : undefined), 30_000);
      const again = await until("the standby to answer again", info, 30_000);
      expect(again).to.deep.include({ role: "standby" });
      expect(again.active?.holder).to.equal("the holder");
    } finally {
      stop("SIGTERM");
      await running;
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // A database closed (a standby's, once it connected again) is never waited on.
    expect(() => holder.leader()).to.throw(StoreLostError, /closed/);
  });

  it("channels store move leaves the file's channels frozen: a node started on the file again signs nothing new on them, the database's are not", async function () {
    const url = await pg.createDatabase("moved");
    const dir = mkdtempSync(join(tmpdir(), "store-pg-"));
    const file = join(dir, "node.sqlite");
    try {
      const before = new Store(file);
      before.saveChannel({ ref: { channelId: CHANNEL, chainId: 31337n, hub: `0x${"11".repeat(20)}` }, myIndex: 0, openingDeposits: [5n, 0n] } as unknown as ChannelRecord);
      before.recordOwnSignature(state(1n, 1n), "0x01", () => "0xaa" as Hex);
      before.close();
      const moved = moveStore({ store: file } as unknown as NodeConfig, ALICE_KEY, url);
      expect(moved.channels).to.equal(1);
      // The file, started on again by mistake (an old node.json, a service not updated): a restored copy's rules.
      const left = new Store(file);
      try {
        expect(left.frozenSince(CHANNEL)).to.be.a("number");
        expect(left.ownSignedAt(CHANNEL, 1n)?.signature).to.equal("0xaa"); // what it signed is kept, for resends and the chain
      } finally {
        left.close();
      }
      // The database's copy is the live one: nothing frozen there.
      const db = PgDatabase.open(url, { applicationName: "moved" });
      try {
        const live = new Store(":memory:", { mirror: db.mirror("node", db.tryLead(ALICE, "node", undefined)!) });
        expect(live.frozenSince(CHANNEL)).to.equal(undefined);
        expect(live.ownSignedAt(CHANNEL, 1n)?.signature).to.equal("0xaa");
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a store larger than one call's timeout allows is still loaded: the load is not a commit, and a takeover must not fail on a long history", async function () {
    const url = await pg.createDatabase("large");
    PgDatabase.open(url).close(); // the migrations, once
    await pg.query("INSERT INTO node.cosigned SELECT 'c' || (i % 64), i::text, i, repeat('x', 2000) FROM generate_series(1, 50000) i", [], "large");
    // A call timeout far below what reading 50,000 rows of 2 KB takes (about 0.7 s here): the commits' bound, not the load's.
    const db = PgDatabase.open(url, { applicationName: "large", callTimeoutMs: 250 });
    try {
      const store = new Store(":memory:", { mirror: db.mirror("node", db.tryLead(ALICE, "node", undefined)!) });
      expect(store.latestCoSigned(`0x${"00".repeat(32)}` as Hex)).to.equal(undefined);
      expect(store.rows().cosigned).to.have.length(50_000);
    } finally {
      db.close();
    }
  });
});
