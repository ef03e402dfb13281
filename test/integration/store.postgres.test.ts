/**
 * The store kept in PostgreSQL (sdk/store/postgres.ts), against a real server on loopback (test/helpers/postgres.ts):
 * the store's contract on both backends, the mirror's fidelity to SQLite, fencing by term, a database restarted under
 * a running store, and a database that holds another node's store.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZeroAddress } from "ethers";

import {
  addLock,
  decode,
  DoubleSignError,
  encode,
  hashlockOf,
  openingState,
  Store,
  StoreLostError,
  type ChannelOp,
  type ChannelRecord,
  type ChannelState,
  type Hex,
  type RevealRule,
  type SwapTerms,
  type TransferRecord,
} from "../../sdk/index.js";
import { DeposedError, ForeignDatabaseError, PgDatabase, STORE_TABLE_NAMES, type StoreRows } from "../../sdk/store/postgres.js";
import { startPostgres, type Postgres } from "../helpers/postgres.js";
import { prng } from "../helpers/prng.js";

const NODE = "0x00000000000000000000000000000000000000aa";
const OTHER_NODE = "0x00000000000000000000000000000000000000bb";

/** Random hex of `bytes` bytes from a seeded generator (the fidelity run replays from its seed). */
function hexFrom(next: () => number, bytes = 32): Hex {
  let out = "0x";
  for (let i = 0; i < bytes; i++) out += Math.floor(next() * 256).toString(16).padStart(2, "0");
  return out as Hex;
}
const random = prng(0x5eed);
const rand = (): Hex => hexFrom(random);

/** Waits until `done()` holds, for at most `ms` (polling: the event it waits for arrives on the event loop). */
async function until(done: () => boolean, ms: number, what: string): Promise<void> {
  for (let waited = 0; !done(); waited += 50) {
    if (waited >= ms) throw new Error(`${what}: not seen within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A store's rows, table by table, each table as a sorted list of rows (keys sorted): equal whatever the order. */
function canonical(rows: StoreRows): Record<string, string[]> {
  const text = (row: Record<string, unknown>) =>
    JSON.stringify(
      Object.fromEntries(Object.entries(row).sort(([a], [b]) => (a < b ? -1 : 1))),
      (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v),
    );
  return Object.fromEntries(STORE_TABLE_NAMES.map((t) => [t, (rows[t] ?? []).map(text).sort()]));
}

/** Where a store lives, opened and closed as a process would: `open` after `close` is a restart. */
type Home = {
  open(): Store;
  close(): void;
};

type Backend = { name: string; home(test: string): Promise<Home> };

describe("store in PostgreSQL: the store's contract, fidelity, fencing, a restarted database", function () {
  this.timeout(60_000);
  let server: Postgres;
  let dir: string;
  /** What a test opened and did not close (a failed assertion in the middle): closed after it. */
  const opened: { close(): void }[] = [];
  let databases = 0;
  const newDatabase = async (): Promise<{ url: string; name: string }> => {
    const name = `store_${++databases}`;
    return { url: await server.createDatabase(name), name };
  };

  before(async function () {
    server = await startPostgres();
  });
  after(async function () {
    await server?.destroy();
  });
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "channel-store-pg-"));
  });
  afterEach(function () {
    for (const o of opened.splice(0).reverse()) {
      try {
        o.close();
      } catch {
        // closed already, or lost on purpose
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** A process leading the database at `url`: its PgDatabase, term and mirrored store. */
  function lead(url: string, holder: string, options: Readonly<{ callTimeoutMs?: number; applicationName?: string }> = {}) {
    const db = PgDatabase.open(url, options);
    opened.push(db);
    const term = db.tryLead(NODE, holder, undefined);
    if (term === undefined) throw new Error(`${holder} could not take the lead`);
    const store = new Store(":memory:", { mirror: db.mirror("node", term) });
    opened.push(store);
    return { db, term, store };
  }

  const backends: Backend[] = [
    {
      name: "SQLite file",
      home: async () => {
        const path = join(dir, "client.sqlite");
        let store: Store | undefined;
        return {
          open: () => {
            store = new Store(path);
            opened.push(store);
            return store;
          },
          close: () => store?.close(),
        };
      },
    },
    {
      name: "PostgreSQL (each restart a new process leading with a new term)",
      home: async (test) => {
        const { url } = await newDatabase();
        let current: ReturnType<typeof lead> | undefined;
        let lastTerm = 0;
        let starts = 0;
        return {
          open: () => {
            current = lead(url, `${test} #${++starts}`);
            expect(current.term, "a new process leads with a higher term").to.be.greaterThan(lastTerm);
            lastTerm = current.term;
            return current.store;
          },
          close: () => {
            current?.store.close();
            current?.db.close();
          },
        };
      },
    },
  ];

  for (const backend of backends) {
    describe(`the store's contract: ${backend.name}`, function () {
      it("keeps channels, co-signed states, secrets, swaps with their transfers and sessions across a restart", async function () {
        const home = await backend.home("keeps");
        const [id, other] = [rand(), rand()];
        const record: ChannelRecord = {
          ref: { chainId: 31337n, hub: ZeroAddress, channelId: id },
          params: { participants: [ZeroAddress, ZeroAddress], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: 1n },
          myIndex: 1,
          openingDeposits: [10n, 5n],
        };
        const secret = rand();
        const state = addLock(openingState(id, [10n, 5n]), { sender: 0, amount: 4n, hashlock: hashlockOf(secret), expiry: 99n });
        const terms = (swapId: Hex): SwapTerms => ({
          swapId,
          source: { chainId: 1n, hub: ZeroAddress, channelId: id },
          target: { chainId: 2n, hub: ZeroAddress, channelId: other },
          initiator: ZeroAddress,
          responder: ZeroAddress,
          give: 4n,
          take: 3n,
          hashlock: hashlockOf(secret),
          sourceExpiry: 99n,
          targetExpiry: 50n,
        });
        // As the store gives it back: a field left undefined is not kept.
        const transfer = (swapId: Hex, channelId: Hex): TransferRecord =>
          decode<TransferRecord>(encode({ swapId, channelId, hashlock: hashlockOf(secret), lockSeq: 1n, resolvedSeq: undefined, confirmed: false, outcome: "pending" }));
        const [swapA, swapB] = [rand(), rand()];

        let store = home.open();
        store.saveChannel(record);
        store.saveCoSigned({ state: openingState(id, [10n, 5n]), signatures: ["0x01", "0x02"] });
        store.saveCoSigned({ state, signatures: ["0x03", "0x04"] });
        store.saveSecret(hashlockOf(secret), secret, "may");
        store.saveSwap(swapA, "initiator", terms(swapA), { step: "locked" }, true);
        store.saveTransfer(transfer(swapA, id));
        store.saveTransfer(transfer(swapA, other));
        home.close();

        store = home.open(); // a new process
        expect(store.channel(id)).to.deep.equal(record);
        expect(store.latestCoSigned(id)).to.deep.equal({ state, signatures: ["0x03", "0x04"] });
        expect(store.secret(hashlockOf(secret))).to.equal(secret);
        expect(store.swap(swapA)).to.deep.equal({ role: "initiator", terms: terms(swapA), phase: { step: "locked" } });
        expect(store.activeSwapIds()).to.deep.equal([swapA.toLowerCase()]);
        expect(store.channelBusy(other)).to.equal(true);
        expect(store.transfers(swapA)).to.deep.equal([transfer(swapA, id), transfer(swapA, other)].sort((a, b) => (a.channelId.toLowerCase() < b.channelId.toLowerCase() ? -1 : 1)));
        // A session begun after the restart gets a number of its own: its transfers are not the first swap's.
        store.saveSwap(swapB, "responder", terms(swapB), { step: "proposed" }, true);
        store.saveTransfer(transfer(swapB, other));
        store.saveSwap(swapA, "initiator", terms(swapA), { step: "done" }, false);
        home.close();

        store = home.open();
        expect(store.transfers(swapB)).to.deep.equal([transfer(swapB, other)]);
        expect(store.transfers(swapA)).to.have.length(2);
        expect(store.swap(swapA)?.phase).to.deep.equal({ step: "done" });
        expect(store.activeSwapIds()).to.deep.equal([swapB.toLowerCase()]);
        expect(store.swapIds()).to.have.members([swapA.toLowerCase(), swapB.toLowerCase()]);
        home.close();
      });

      it("never signs two different states with the same sequence number, even after a restart", async function () {
        const home = await backend.home("double-sign");
        const id = rand();
        const state = (balances: readonly [bigint, bigint]): ChannelState => ({ ...openingState(id, [10n, 10n]), seq: 8n, balances });
        let signs = 0;
        const sign = () => {
          signs++;
          return `0x${"ab".repeat(65)}` as Hex;
        };
        const digest = rand();
        let store = home.open();
        store.recordOwnSignature(state([10n, 10n]), digest, sign);
        expect(store.recordOwnSignature(state([10n, 10n]), digest, sign)).to.equal(`0x${"ab".repeat(65)}`, "a resend reuses it");
        expect(signs).to.equal(1);
        home.close();

        store = home.open();
        expect(() => store.recordOwnSignature(state([5n, 15n]), rand(), sign)).to.throw(DoubleSignError, "sequence number 8");
        expect(signs).to.equal(1, "nothing was signed");
        expect(store.highestOwnSeq(id)).to.equal(8n);
        expect(store.ownSignedAt(id, 8n)?.state.balances).to.deep.equal([10n, 10n]);
        expect(store.recordOwnSignature(state([10n, 10n]), digest, sign)).to.equal(`0x${"ab".repeat(65)}`, "a resend after the restart");
        expect(signs).to.equal(1);
        home.close();
      });

      it("rolls a failed transaction back whole, and nothing of it is there after a restart", async function () {
        const home = await backend.home("rollback");
        let store = home.open();
        const [secret, kept] = [rand(), rand()];
        store.saveSecret(hashlockOf(kept), kept, "held");
        expect(() =>
          store.transaction(() => {
            store.saveSecret(hashlockOf(secret), secret, "may");
            store.saveSecret(hashlockOf(kept), kept, "may");
            store.saveCursor(5n, 100);
            throw new Error("crash in the middle");
          }),
        ).to.throw("crash in the middle");
        expect(store.secret(hashlockOf(secret))).to.equal(undefined);
        expect(store.knownSecret(hashlockOf(kept))?.reveal).to.equal("held");
        expect(store.cursor(5n)).to.equal(undefined);
        home.close();

        store = home.open();
        expect(store.secret(hashlockOf(secret))).to.equal(undefined);
        expect(store.knownSecret(hashlockOf(kept))?.reveal).to.equal("held");
        expect(store.cursor(5n)).to.equal(undefined);
        home.close();
      });

      it("undoes one step of a group and keeps the others, and the group survives a restart once committed", async function () {
        const home = await backend.home("savepoints");
        const store = home.open();
        const [kept, undone, later] = [rand(), rand(), rand()];
        store.begin(); // the group
        store.savepoint();
        store.saveSecret(hashlockOf(kept), kept, "may");
        store.releaseSavepoint();
        store.savepoint();
        store.saveSecret(hashlockOf(undone), undone, "may");
        store.saveCursor(7n, 1);
        store.rollbackToSavepoint(); // this step failed
        store.savepoint();
        store.saveSecret(hashlockOf(later), later, "may");
        store.releaseSavepoint();
        store.commit();
        home.close();

        const reopened = home.open();
        expect(reopened.secret(hashlockOf(kept))).to.equal(kept);
        expect(reopened.secret(hashlockOf(undone))).to.equal(undefined);
        expect(reopened.cursor(7n)).to.equal(undefined);
        expect(reopened.secret(hashlockOf(later))).to.equal(later);
        home.close();
      });

      it("keeps with each secret whether it may be revealed, and the rule only moves forward, across a restart", async function () {
        const home = await backend.home("reveal");
        let store = home.open();
        const [held, undone, revealed, learned] = [rand(), rand(), rand(), rand()];
        for (const s of [held, undone, revealed]) store.saveSecret(hashlockOf(s), s, "held");
        store.saveSecret(hashlockOf(learned), learned, "may");
        store.saveSecret(hashlockOf(undone), undone, "never");
        store.saveSecret(hashlockOf(revealed), revealed, "may");
        expect([held, undone, revealed, learned].map((s) => store.secret(hashlockOf(s)))).to.deep.equal([undefined, undefined, revealed, learned]);
        expect(store.knownSecret(hashlockOf(held))).to.deep.equal({ secret: held, reveal: "held" });
        // Never back: a held secret saved again (a resend, a restart) does not undo "never" or "may".
        store.saveSecret(hashlockOf(undone), undone, "held");
        store.saveSecret(hashlockOf(revealed), revealed, "never");
        home.close();

        store = home.open(); // the rules as the database's own statements left them
        expect(store.knownSecret(hashlockOf(undone))?.reveal).to.equal("never");
        expect(store.knownSecret(hashlockOf(revealed))?.reveal).to.equal("may");
        expect(store.heldSecrets()).to.deep.equal([hashlockOf(held).toLowerCase()]);
        // A secret made public (seen on a chain) may be revealed whatever it was.
        store.saveSecret(hashlockOf(undone), undone, "may");
        home.close();

        store = home.open();
        expect(store.secret(hashlockOf(undone))).to.equal(undone);
        expect([held, undone, revealed, learned].map((s) => store.knownSecret(hashlockOf(s))?.reveal)).to.deep.equal(["held", "may", "may", "may"]);
        home.close();
      });
    });
  }

  it("fidelity: a seeded run of writes, savepoints undone and transactions that throw leaves the same rows in SQLite, the mirrored store, a store loaded from the database and the database", async function () {
    const { url } = await newDatabase();
    const sqlite = new Store(join(dir, "twin.sqlite"));
    opened.push(sqlite);
    const { db, term, store: mirrored } = lead(url, "fidelity");
    const stores = [sqlite, mirrored];

    const seed = 20_240_611;
    const next = prng(seed);
    const int = (n: number) => Math.floor(next() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const pool = (n: number, bytes = 32) => Array.from({ length: n }, () => hexFrom(next, bytes));
    const channelIds = pool(6);
    const secrets = pool(10);
    const swapIds = pool(6);
    const digests = pool(2);
    const terms = new Map(
      swapIds.map((swapId) => [
        swapId,
        {
          swapId,
          source: { chainId: 1n, hub: ZeroAddress, channelId: pick(channelIds) },
          target: { chainId: 2n, hub: ZeroAddress, channelId: pick(channelIds) },
          initiator: ZeroAddress,
          responder: ZeroAddress,
          give: BigInt(1 + int(100)),
          take: BigInt(1 + int(100)),
          hashlock: hashlockOf(pick(secrets)),
          sourceExpiry: 200n,
          targetExpiry: 100n,
        } satisfies SwapTerms,
      ]),
    );
    const rules: RevealRule[] = ["held", "may", "never"];

    /** One store operation, the same for both stores; what it returned (or threw) is compared too. */
    type Op = (s: Store) => unknown;
    const op = (): Op => {
      const channelId = pick(channelIds);
      const secret = pick(secrets);
      switch (int(14)) {
        case 0: {
          const record: ChannelRecord = {
            ref: { chainId: BigInt(1 + int(3)), hub: ZeroAddress, channelId },
            params: { participants: [ZeroAddress, ZeroAddress], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: BigInt(int(5)) },
            myIndex: pick([0, 1] as const),
            openingDeposits: [BigInt(int(50)), BigInt(int(50))],
          };
          return (s) => s.saveChannel(record);
        }
        case 1: {
          const state = { ...openingState(channelId, [10n, 10n]), seq: BigInt(int(20)) };
          const signatures = [hexFrom(next, 65), hexFrom(next, 65)] as const;
          return (s) => s.saveCoSigned({ state, signatures });
        }
        case 2:
        case 3: {
          // Few digests per sequence number: some signatures are resends, some would be a second state.
          const seq = BigInt(1 + int(6));
          const digest = pick(digests);
          const signature = hexFrom(next, 65);
          const state = { ...openingState(channelId, [10n, 10n]), seq, balances: [BigInt(int(20)), 0n] as const };
          return (s) => s.recordOwnSignature(state, digest, () => signature);
        }
        case 4: {
          const rule = pick(rules);
          return (s) => s.saveSecret(hashlockOf(secret), secret, rule);
        }
        case 5: {
          const word = pick(rules);
          return (s) => s.adoptSecret(hashlockOf(secret), secret, word);
        }
        case 6:
          return (s) => s.publicSecret(hashlockOf(secret), secret);
        case 7: {
          const [chain, block] = [BigInt(1 + int(3)), int(1_000_000)];
          return (s) => s.saveCursor(chain, block);
        }
        case 8: {
          const chain = BigInt(1 + int(3));
          const hold = int(3) === 0 ? undefined : { block: int(1000), hash: hexFrom(next) };
          return (s) => s.saveChainHold(chain, hold);
        }
        case 9:
          return int(2) === 0 ? (s) => s.markDisputed(channelId) : (s) => s.markResolved(channelId);
        case 10: {
          const op: ChannelOp | undefined =
            int(3) === 0 ? undefined : { kind: pick(["close", "deposits", "forceClose", "closed"] as const), role: pick(["requester", "responder"] as const), seq: BigInt(int(9)), since: int(1000), sentAt: int(1000) };
          return (s) => s.saveChannelOp(channelId, op);
        }
        case 11: {
          const kind = pick(["updater", "side", "pair", "close"] as const);
          const [k, value] = [pick(channelIds), { n: int(1000), id: hexFrom(next, 8) }];
          return (s) => s.saveBatched(kind, k, value);
        }
        case 12: {
          const swapId = pick(swapIds);
          const [role, phase, active] = [pick(["initiator", "responder"] as const), { step: int(5) }, int(2) === 0];
          return (s) => s.saveSwap(swapId, role, terms.get(swapId)!, phase, active);
        }
        default: {
          const swapId = pick(swapIds);
          const transfer: TransferRecord = {
            swapId, channelId, hashlock: terms.get(swapId)!.hashlock, lockSeq: BigInt(int(9)), resolvedSeq: int(2) === 0 ? undefined : BigInt(int(9)),
            confirmed: int(2) === 0, outcome: pick(["pending", "paid", "refunded"] as const),
          };
          return (s) => s.saveTransfer(transfer);
        }
      }
    };
    /** Runs an operation, noting its result or the name of what it threw. */
    const outcomes: string[][] = [[], []];
    const apply = (i: number, s: Store, f: Op) => {
      try {
        outcomes[i]!.push(`ok ${JSON.stringify(f(s) ?? null)}`);
      } catch (error) {
        outcomes[i]!.push(`threw ${(error as Error).constructor.name}`);
      }
    };
    const ops = (n: number) => Array.from({ length: n }, op);

    // `updated_at` is the clock's: both stores read the same one.
    const realNow = Date.now;
    let clock = 1_700_000_000_000;
    Date.now = () => clock;
    const counts = { single: 0, committed: 0, thrown: 0, stepsKept: 0, stepsUndone: 0, groupsDropped: 0 };
    try {
      for (let n = 0; n < 250; n++) {
        clock += 1 + int(3);
        const shape = next();
        if (shape < 0.35) {
          counts.single++;
          const f = op();
          stores.forEach((s, i) => apply(i, s, f));
        } else if (shape < 0.55) {
          counts.committed++;
          const fs = ops(1 + int(4));
          stores.forEach((s, i) => s.transaction(() => fs.forEach((f) => apply(i, s, f))));
        } else if (shape < 0.7) {
          counts.thrown++;
          const fs = ops(1 + int(4));
          stores.forEach((s, i) => {
            expect(() =>
              s.transaction(() => {
                fs.forEach((f) => apply(i, s, f));
                throw new Error("a step failed");
              }),
            ).to.throw("a step failed");
          });
        } else {
          // A group of protocol steps, each a savepoint kept or undone; the group committed, or (rarely) dropped.
          const steps = Array.from({ length: 1 + int(4) }, () => ({ fs: ops(1 + int(3)), undo: next() < 0.35 }));
          const drop = next() < 0.1;
          for (const st of steps) counts[st.undo ? "stepsUndone" : "stepsKept"]++;
          if (drop) counts.groupsDropped++;
          stores.forEach((s, i) => {
            s.begin();
            for (const st of steps) {
              s.savepoint();
              st.fs.forEach((f) => apply(i, s, f));
              if (st.undo) s.rollbackToSavepoint();
              else s.releaseSavepoint();
            }
            if (drop) s.rollback();
            else s.commit();
          });
        }
      }
    } finally {
      Date.now = realNow;
    }

    expect(outcomes[1]).to.deep.equal(outcomes[0], "each operation did the same on both stores");
    // The run did what it is meant to: every shape, and a second state refused.
    expect(Object.values(counts).every((c) => c > 0), JSON.stringify(counts)).to.equal(true);
    expect(outcomes[0]!.filter((o) => o === "threw DoubleSignError").length).to.be.greaterThan(0);
    const expected = canonical(sqlite.rows());
    for (const table of ["channels", "cosigned", "own_signatures", "secrets", "sessions", "swaps", "transfers", "batched"]) {
      expect(expected[table], table).to.not.be.empty;
    }

    expect(canonical(mirrored.rows()), "the mirrored store").to.deep.equal(expected);
    expect(canonical(db.rows("node")), "the database's rows").to.deep.equal(expected);
    const loaded = new Store(":memory:", { mirror: db.mirror("node", term) });
    opened.push(loaded);
    expect(canonical(loaded.rows()), "a store loaded from the database").to.deep.equal(expected);
    loaded.close();
    // And a new process leading with a new term starts from the same rows.
    mirrored.close();
    db.close();
    const next2 = lead(url, "fidelity, restarted");
    expect(next2.term).to.equal(term + 1);
    expect(canonical(next2.store.rows()), "a store loaded by a new process").to.deep.equal(expected);
    next2.store.close();
    next2.db.close();
    sqlite.close();
  });

  it("fencing: once another process takes the lead (a higher term), a commit of the old leader throws DeposedError, reaches nothing, and its store refuses everything after", async function () {
    const { url, name } = await newDatabase();
    const a = lead(url, "process A", { applicationName: "node-a" });
    let lockLost: string | undefined;
    a.db.onLockLost = (reason) => (lockLost = reason);
    expect(a.term).to.equal(1);
    const [before, after] = [rand(), rand()];
    a.store.saveSecret(hashlockOf(before), before, "may");

    // While A holds the lock, B does not lead.
    const b = PgDatabase.open(url, { applicationName: "node-b" });
    opened.push(b);
    expect(b.tryLead(NODE, "process B", undefined)).to.equal(undefined);
    expect(b.leader()).to.deep.include({ address: NODE, term: 1, holder: "process A" });

    // A's lock session is cut: A is told.
    const cut = await server.query<{ ok: boolean }>(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
      [name, "node-a (lock)"],
    );
    expect(cut).to.deep.equal([{ ok: true }]);
    await until(() => lockLost !== undefined, 10_000, "A's onLockLost");
    expect(lockLost).to.match(/lock's session/);

    // B takes the lead; A, which has not stopped, commits.
    const termB = b.tryLead(NODE, "process B", undefined);
    expect(termB).to.equal(2);
    let thrown: unknown;
    try {
      a.store.saveSecret(hashlockOf(after), after, "may");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).to.be.instanceOf(DeposedError);
    expect(thrown).to.be.instanceOf(StoreLostError);
    expect(thrown).to.deep.include({ term: 1, current: 2 });
    expect((thrown as Error).message).to.match(/term 1 is over \(the database is at term 2: another process leads\)/);
    expect(a.store.secret(hashlockOf(after)), "A's own copy rolled back").to.equal(undefined);

    // Nothing of it reached the database: B's store, loaded now, has what A wrote before and not that.
    const storeB = new Store(":memory:", { mirror: b.mirror("node", termB!) });
    opened.push(storeB);
    expect(storeB.secret(hashlockOf(before))).to.equal(before);
    expect(storeB.secret(hashlockOf(after))).to.equal(undefined);

    // A's store is lost for good: it signs nothing, writes nothing, and its probe says so.
    expect(a.store.fileProblem()).to.match(/term 1 is over/);
    let signs = 0;
    const state = { ...openingState(rand(), [1n, 1n]), seq: 1n };
    expect(() => a.store.recordOwnSignature(state, rand(), () => (signs++, "0x01"))).to.throw(StoreLostError);
    expect(signs).to.equal(0, "nothing was signed");
    expect(() => a.store.saveCursor(1n, 5)).to.throw(StoreLostError);
    expect(() => a.store.probe()).to.throw(StoreLostError);
    expect(b.rows("node").secrets).to.have.length(1);
    storeB.close();
    b.close();
    a.store.close();
    a.db.close();
    // Closed is closed: a later call (a second close in a shutdown path) fails at once, not after the call timeout.
    expect(() => a.db.leader()).to.throw(StoreLostError, "was closed");
    a.db.close();
  });

  it("writes text with quotes, backslashes, placeholders and any Unicode exactly as given (every commit's values are literals of one statement text)", async function () {
    const { url } = await newDatabase();
    const a = lead(url, "process A");
    const awkward = ["it's", "back\\slash \\' end", "$1 and $2", '"double" ;-- DROP TABLE channels;', "ü 𝄞 \u2028 \t tab", "\\x00 not a nul", "E'x'", "'' ''"];
    a.store.transaction(() => awkward.forEach((text, i) => a.store.saveBatched("refusal", String(i).padStart(12, "0"), { reason: text })));
    a.store.close();
    a.db.close();
    const b = lead(url, "process B");
    expect([...b.store.batched<{ reason: string }>("refusal").values()].map((r) => r.reason)).to.deep.equal(awkward);
    expect(b.store.channels()).to.deep.equal([]);
  });

  it("the database stopped under a running store: a write throws StoreLostError, nothing is signed, and the next process leads with every write committed before", async function () {
    const { url } = await newDatabase();
    const a = lead(url, "process A", { callTimeoutMs: 3000 });
    const id = rand();
    const secrets = [rand(), rand(), rand()];
    for (const s of secrets) a.store.saveSecret(hashlockOf(s), s, "may");
    const state = (seq: bigint): ChannelState => ({ ...openingState(id, [10n, 10n]), seq });
    let signs = 0;
    const sign = () => (signs++, `0x${"cd".repeat(65)}` as Hex);
    a.store.recordOwnSignature(state(1n), rand(), sign);
    expect(signs).to.equal(1);

    await server.stop();
    try {
      const lost = rand();
      expect(() => a.store.saveSecret(hashlockOf(lost), lost, "may")).to.throw(StoreLostError, /is lost: /);
      expect(a.store.secret(hashlockOf(lost))).to.equal(undefined);
      expect(a.store.fileProblem()).to.be.a("string");
      expect(() => a.store.recordOwnSignature(state(2n), rand(), sign)).to.throw(StoreLostError);
      expect(signs).to.equal(1, "nothing was signed once the database was gone");
      expect(() => a.store.probe()).to.throw(StoreLostError);
    } finally {
      await server.start();
    }
    a.store.close();
    a.db.close();

    const b = lead(url, "process B");
    expect(b.term).to.be.greaterThan(a.term);
    for (const s of secrets) expect(b.store.secret(hashlockOf(s))).to.equal(s);
    expect(b.store.highestOwnSeq(id)).to.equal(1n);
    expect(b.store.secrets()).to.have.length(secrets.length);
    b.store.close();
    b.db.close();
  });

  it("refuses a database that holds another node's store, in one line naming both nodes, and never prints the URL's password", async function () {
    const { name } = await newDatabase();
    const url = `postgres://postgres:hunter2@127.0.0.1:${server.port}/${name}`;
    const messages: string[] = [];
    const caught = (f: () => unknown): Error => {
      try {
        f();
      } catch (error) {
        messages.push((error as Error).message, String((error as Error).stack));
        return error as Error;
      }
      throw new Error("expected an error");
    };

    const a = lead(url, "node A");
    const kept = rand();
    a.store.saveSecret(hashlockOf(kept), kept, "may");
    a.store.close();
    a.db.close();

    const other = PgDatabase.open(url);
    opened.push(other);
    const refused = caught(() => other.tryLead(OTHER_NODE, "node B", undefined));
    expect(refused).to.be.instanceOf(ForeignDatabaseError);
    expect(refused.message.split("\n")).to.have.length(1);
    expect(refused.message).to.include(NODE).and.include(OTHER_NODE).and.include(`127.0.0.1:${server.port}/${name}`);
    expect(other.leader()).to.deep.include({ address: NODE, term: 1, holder: "node A" });
    expect(other.leader()!.since, "an ISO time, as every time the API gives").to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // The database's own node still leads it while the refused process runs.
    const again = lead(url, "node A again");
    expect(again.term).to.equal(2);
    // While the database's own node leads it (its lock held), another key is refused all the same: a standby of the
    // wrong node must not wait unnoticed for the leader to die.
    expect(caught(() => other.tryLead(OTHER_NODE, "node B", undefined))).to.be.instanceOf(ForeignDatabaseError);
    expect(again.store.secret(hashlockOf(kept))).to.equal(kept);

    // Errors that name the database: one that does not exist, and a server stopped under a store.
    caught(() => PgDatabase.open(`postgres://postgres:hunter2@127.0.0.1:${server.port}/no_such_db`));
    await server.stop();
    try {
      caught(() => again.store.saveSecret(hashlockOf(kept), kept, "never"));
      caught(() => again.store.probe());
      caught(() => PgDatabase.open(url, { callTimeoutMs: 3000 }));
    } finally {
      await server.start();
    }
    expect(messages.length).to.be.greaterThan(8);
    for (const m of messages) expect(m).to.not.include("hunter2");
    expect(messages.filter((m) => m.includes(`127.0.0.1:${server.port}`)).length, "the errors name the database").to.be.greaterThan(4);
    again.store.close();
    again.db.close();
    other.close();
  });
});
