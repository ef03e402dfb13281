import { expect } from "chai";
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { hexlify, randomBytes, ZeroAddress } from "ethers";

import {
  addLock,
  DoubleSignError,
  hashlockOf,
  openingState,
  Store,
  StoreLostError,
  StoreNotFoundError,
  StoreVersionError,
  type ChannelRecord,
  type Hex,
  type SwapTerms,
} from "../../sdk/index.js";

const rand = (): Hex => hexlify(randomBytes(32)) as Hex;

describe("store: what a client must not lose", function () {
  let dir: string;
  let path: string;

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "channel-store-"));
    path = join(dir, "client.sqlite");
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps channels, co-signed states, secrets and swaps across a restart", function () {
    const id = rand();
    const record: ChannelRecord = {
      ref: { chainId: 31337n, hub: ZeroAddress, channelId: id },
      params: { participants: [ZeroAddress, ZeroAddress], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: 1n },
      myIndex: 1,
      openingDeposits: [10n, 5n],
    };
    const secret = rand();
    const state = addLock(openingState(id, [10n, 5n]), { sender: 0, amount: 4n, hashlock: hashlockOf(secret), expiry: 99n });
    let store = new Store(path);
    store.saveChannel(record);
    store.saveCoSigned({ state: openingState(id, [10n, 5n]), signatures: ["0x01", "0x02"] });
    store.saveCoSigned({ state, signatures: ["0x03", "0x04"] });
    store.saveSecret(hashlockOf(secret), secret, "may");
    store.close();

    store = new Store(path); // a new process opening the same file
    expect(store.channel(id)).to.deep.equal(record);
    expect(store.latestCoSigned(id)).to.deep.equal({ state, signatures: ["0x03", "0x04"] });
    expect(store.secret(hashlockOf(secret))).to.equal(secret);
    store.close();
  });

  it("never signs two different states with the same sequence number, even after a restart", function () {
    const id = rand();
    const state = (balances: readonly [bigint, bigint]) => ({ ...openingState(id, [10n, 10n]), seq: 8n, balances });
    let store = new Store(path);
    let signs = 0;
    const sign = () => {
      signs++;
      return `0x${"ab".repeat(65)}` as Hex;
    };
    const digest = rand();
    store.recordOwnSignature(state([10n, 10n]), digest, sign);
    expect(store.recordOwnSignature(state([10n, 10n]), digest, sign)).to.equal(`0x${"ab".repeat(65)}`, "a resend reuses it");
    expect(signs).to.equal(1);
    store.close();

    store = new Store(path);
    expect(() => store.recordOwnSignature(state([5n, 15n]), rand(), sign)).to.throw(DoubleSignError, "sequence number 8");
    expect(signs).to.equal(1, "nothing was signed");
    expect(store.highestOwnSeq(id)).to.equal(8n);
    expect(store.ownSignedAt(id, 8n)?.state.balances).to.deep.equal([10n, 10n]);
    store.close();
  });

  it("rolls a failed transaction back whole", function () {
    const store = new Store(path);
    const secret = rand();
    expect(() =>
      store.transaction(() => {
        store.saveSecret(hashlockOf(secret), secret, "may");
        throw new Error("crash in the middle");
      }),
    ).to.throw("crash in the middle");
    expect(store.secret(hashlockOf(secret))).to.equal(undefined);
    store.close();
  });

  it("undoes one step of a group and keeps the others, and the group survives a restart once committed", function () {
    const store = new Store(path);
    const [kept, undone, later] = [rand(), rand(), rand()];
    store.begin(); // the group
    store.savepoint();
    store.saveSecret(hashlockOf(kept), kept, "may");
    store.releaseSavepoint();
    store.savepoint();
    store.saveSecret(hashlockOf(undone), undone, "may");
    store.rollbackToSavepoint(); // this step failed
    store.savepoint();
    store.saveSecret(hashlockOf(later), later, "may");
    store.releaseSavepoint();
    store.commit();
    store.close();

    const reopened = new Store(path);
    expect(reopened.secret(hashlockOf(kept))).to.equal(kept);
    expect(reopened.secret(hashlockOf(undone))).to.equal(undefined);
    expect(reopened.secret(hashlockOf(later))).to.equal(later);
    reopened.close();
  });

  it("lists every channel by id, a channel saved in a step that is undone not among them", function () {
    const store = new Store(path);
    const record = (id: Hex, nonce: bigint): ChannelRecord => ({
      ref: { chainId: 31337n, hub: ZeroAddress, channelId: id },
      params: { participants: [ZeroAddress, ZeroAddress], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce },
      myIndex: 0,
      openingDeposits: [10n, 5n],
    });
    const ids = [rand(), rand(), rand()];
    const byId = (list: readonly ChannelRecord[]) => list.map((r) => r.ref.channelId.toLowerCase());
    store.saveChannel(record(ids[0]!, 1n));
    store.saveChannel(record(ids[1]!, 2n));
    expect(byId(store.channels())).to.deep.equal(ids.slice(0, 2).map((id) => id.toLowerCase()).sort());
    store.begin();
    store.savepoint();
    store.saveChannel(record(ids[2]!, 3n));
    expect(byId(store.channels()), "in the step").to.include(ids[2]!.toLowerCase());
    store.rollbackToSavepoint();
    expect(byId(store.channels()), "the step undone").to.not.include(ids[2]!.toLowerCase());
    store.savepoint();
    store.saveChannel(record(ids[2]!, 4n));
    store.saveChannel({ ...record(ids[0]!, 1n), openingDeposits: [7n, 7n] });
    store.releaseSavepoint();
    store.commit();
    const listed = store.channels();
    expect(byId(listed)).to.deep.equal(ids.map((id) => id.toLowerCase()).sort());
    expect(listed.find((r) => r.ref.channelId === ids[0])!.openingDeposits, "a record saved again").to.deep.equal([7n, 7n]);
    store.close();
    const reopened = new Store(path);
    expect(reopened.channels(), "what a new process reads").to.deep.equal(listed);
    reopened.close();
  });

  it("a channel thawed in a step that is undone is frozen again, in the transaction and after it", function () {
    const store = new Store(path);
    const id = rand();
    store.saveChannel({
      ref: { chainId: 31337n, hub: ZeroAddress, channelId: id },
      params: { participants: [ZeroAddress, ZeroAddress], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: 1n },
      myIndex: 0,
      openingDeposits: [10n, 5n],
    });
    store.freezeAll(1_000);
    store.begin(); // a group
    store.savepoint();
    store.thaw(id);
    expect(store.frozenSince(id)).to.equal(undefined);
    store.rollbackToSavepoint(); // the step that caught up failed
    expect(store.frozenSince(id), "frozen again inside the group").to.equal(1_000);
    store.savepoint();
    store.thaw(id);
    store.releaseSavepoint();
    store.rollback(); // the whole group failed
    expect(store.frozenSince(id), "frozen again after the group").to.equal(1_000);
    store.transaction(() => store.thaw(id));
    store.close();
    const reopened = new Store(path);
    expect(reopened.frozenSince(id), "a committed thaw stays").to.equal(undefined);
    reopened.close();
  });

  it("keeps with each secret whether it may be revealed, and the rule only moves forward", function () {
    const store = new Store(path);
    const [held, undone, revealed, learned] = [rand(), rand(), rand(), rand()];
    for (const s of [held, undone, revealed]) store.saveSecret(hashlockOf(s), s, "held");
    store.saveSecret(hashlockOf(learned), learned, "may");
    store.saveSecret(hashlockOf(undone), undone, "never");
    store.saveSecret(hashlockOf(revealed), revealed, "may");
    // What every revealing component reads: only what may be revealed.
    expect([held, undone, revealed, learned].map((s) => store.secret(hashlockOf(s)))).to.deep.equal([undefined, undefined, revealed, learned]);
    // The initiator still knows its own.
    expect(store.knownSecret(hashlockOf(held))).to.deep.equal({ secret: held, reveal: "held" });
    // Never back: a held secret saved again (a resend, a restart) does not undo "never" or "may".
    store.saveSecret(hashlockOf(undone), undone, "held");
    store.saveSecret(hashlockOf(revealed), revealed, "never");
    expect(store.knownSecret(hashlockOf(undone))?.reveal).to.equal("never");
    expect(store.knownSecret(hashlockOf(revealed))?.reveal).to.equal("may");
    // A secret made public (seen on a chain) may be revealed whatever it was.
    store.saveSecret(hashlockOf(undone), undone, "may");
    expect(store.secret(hashlockOf(undone))).to.equal(undone);
    store.close();
  });

  it("a store written before reveal rules: each secret gets the rule its swap proves, and one nothing proves is held", function () {
    const store = new Store(path);
    const [mine, undone, revealedMine, learned, stepProposed, stepRevealed, stray] = [rand(), rand(), rand(), rand(), rand(), rand(), rand()];
    const side = (secret: Hex, role: string, revealed: boolean, cancelled: boolean) => ({ role, revealed, cancelled, terms: { swapId: rand(), hashlock: hashlockOf(secret) } });
    store.saveBatched("side", hashlockOf(mine), side(mine, "initiator", false, false));
    store.saveBatched("side", hashlockOf(undone), side(undone, "initiator", false, true));
    store.saveBatched("side", hashlockOf(revealedMine), side(revealedMine, "initiator", true, false));
    store.saveBatched("side", hashlockOf(learned), side(learned, "responder", false, false));
    // Swaps of the retired step protocol: an initiator's proposal nobody answered, and one done after its reveal.
    const terms = (secret: Hex) => ({ swapId: rand(), hashlock: hashlockOf(secret), source: { chainId: 1n, channelId: rand() }, target: { chainId: 2n, channelId: rand() } }) as unknown as SwapTerms;
    store.saveSwap(rand(), "initiator", terms(stepProposed), { phase: { kind: "proposed" } }, true);
    store.saveSwap(rand(), "initiator", terms(stepRevealed), { phase: { kind: "done", outcome: "swapped" } }, false);
    store.close();
    // The same file as version 0.2.0 wrote it: a secrets table without the rules; `stray` belongs to no swap (a
    // watchtower's store held every secret so).
    const all = [mine, undone, revealedMine, learned, stepProposed, stepRevealed, stray];
    const db = new DatabaseSync(path);
    db.exec("DROP TABLE secrets; CREATE TABLE secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL); PRAGMA user_version = 2");
    for (const s of all) db.prepare("INSERT INTO secrets VALUES (?, ?)").run(hashlockOf(s).toLowerCase(), s);
    db.close();
    // A tower reading it as it is would take every secret as revealable: refused with what to do.
    expect(() => new Store(path, { readOnly: true })).to.throw(/written by 0\.2\.x and predates the reveal rules.*start its client or node once/);
    const reopened = new Store(path);
    expect(all.map((s) => reopened.knownSecret(hashlockOf(s))?.reveal)).to.deep.equal(["held", "never", "may", "may", "held", "may", "held"]);
    reopened.close();
    const reader = new Store(path, { readOnly: true });
    expect(all.map((s) => reader.secret(hashlockOf(s)) !== undefined)).to.deep.equal([false, false, true, true, false, true, false]);
    reader.close();
  });

  it("takes over a store written by 0.2.x when none of the step protocol's work is under way, and refuses one line otherwise", function () {
    const terms = (n: number) => {
      const hashlock = hashlockOf(rand());
      return { swapId: rand(), hashlock, give: 1n, take: 1n, source: { chainId: 1n, hub: ZeroAddress, channelId: rand() }, target: { chainId: 2n, hub: ZeroAddress, channelId: rand() }, initiator: ZeroAddress, responder: ZeroAddress, sourceExpiry: BigInt(n), targetExpiry: BigInt(n) };
    };
    const progress = (phase: object) => ({ phase, since: 0, sentAt: 0, sent: [] });
    const asV2 = (file: string) => {
      const db = new DatabaseSync(file);
      db.exec("PRAGMA user_version = 2");
      db.close();
    };
    // A batched swap, an unanswered step-protocol proposal, a swap done: taken over.
    const [batched, proposal, done] = [terms(1), terms(2), terms(3)];
    let store = new Store(path);
    store.saveSwap(batched.swapId, "initiator", batched, progress({ kind: "batched", stage: "locked" }), true);
    store.saveBatched("side", batched.hashlock, { role: "initiator", revealed: true, terms: batched });
    store.saveSwap(proposal.swapId, "initiator", proposal, progress({ kind: "proposed" }), true);
    store.saveSwap(done.swapId, "responder", done, progress({ kind: "done", outcome: "swapped" }), false);
    store.saveBatched("pair", "a/b", { channels: [rand(), rand()] });
    store.close();
    asV2(path);
    store = new Store(path);
    expect(store.swap<{ phase: object }>(batched.swapId)!.phase.phase).to.deep.equal({ kind: "locked" });
    expect(store.swap<{ phase: object }>(proposal.swapId)!.phase.phase).to.deep.include({ kind: "done", outcome: "aborted" });
    expect(store.swap<{ phase: object }>(done.swapId)!.phase.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(store.batched("pair").size).to.equal(0);
    store.close();
    // A step-protocol swap with its locks under way: only 0.2.x can finish it. Nothing is changed.
    const second = join(dir, "second.sqlite");
    const locked = terms(4);
    store = new Store(second);
    store.saveSwap(locked.swapId, "responder", locked, progress({ kind: "targetLockSent" }), true);
    store.close();
    asV2(second);
    expect(() => new Store(second)).to.throw(/written by 0\.2\.x and has 1 swap of the step protocol in progress: finish it with 0\.2\.x/);
    // A count of deposits participant 1 signed and the other may have co-signed: refused too.
    const third = join(dir, "third.sqlite");
    store = new Store(third);
    store.saveChannelOp(locked.source.channelId, { kind: "deposits", role: "responder", seq: 2n, since: 0, sentAt: 0 } as never);
    store.close();
    asV2(third);
    expect(() => new Store(third)).to.throw(/written by 0\.2\.x and has a count of deposits of channel 0x[0-9a-f]{64} signed and not yet acknowledged/);
    const db = new DatabaseSync(second);
    expect((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).to.equal(2);
    db.close();
  });

  it("a watchtower's store from before reveal rules reveals none of its secrets until its client's store or a chain says it may", function () {
    // A tower's store as 0.2.x kept it: every secret of its client (revealed, held, undone alike) and one read from a
    // chain, with nothing to tell them apart. The version before `on_chain` had rules but made all of them "may".
    const [revealed, held, undone, publicOne, unknown] = [rand(), rand(), rand(), rand(), rand()];
    const all = [revealed, held, undone, publicOne, unknown];
    for (const [i, layout] of ["0.2.x", "rules without on_chain"].entries()) {
      const file = join(dir, `tower-${i}.sqlite`);
      new Store(file).close();
      const db = new DatabaseSync(file);
      db.exec(layout === "0.2.x" ? "DROP TABLE secrets; CREATE TABLE secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL)" : "ALTER TABLE secrets DROP COLUMN on_chain");
      for (const s of all) db.prepare(layout === "0.2.x" ? "INSERT INTO secrets VALUES (?, ?)" : "INSERT INTO secrets VALUES (?, ?, 'may')").run(hashlockOf(s).toLowerCase(), s);
      db.close();

      const tower = new Store(file);
      expect(all.map((s) => tower.secret(hashlockOf(s))), layout).to.deep.equal(all.map(() => undefined));
      expect(tower.heldSecrets().length, layout).to.equal(5);
      // The client's word, as a tower imports it; a chain shows one revealed.
      tower.adoptSecret(hashlockOf(revealed), revealed, "may");
      tower.adoptSecret(hashlockOf(held), held, "held");
      tower.adoptSecret(hashlockOf(undone), undone, "never");
      expect(tower.publicSecret(hashlockOf(publicOne), publicOne)).to.equal(true);
      expect(all.map((s) => tower.knownSecret(hashlockOf(s))?.reveal), layout).to.deep.equal(["may", "held", "never", "may", "held"]);
      // "never" is for good: no later word lifts it, nor a chain's.
      tower.adoptSecret(hashlockOf(undone), undone, "may");
      expect(tower.publicSecret(hashlockOf(undone), undone)).to.equal(false);
      expect(tower.secret(hashlockOf(undone)), layout).to.equal(undefined);
      // The client's word moves "may" back to "held" or on to "never", but not one a chain showed.
      tower.adoptSecret(hashlockOf(revealed), revealed, "never");
      tower.adoptSecret(hashlockOf(publicOne), publicOne, "never");
      tower.adoptSecret(hashlockOf(held), held, "may");
      expect(all.map((s) => tower.knownSecret(hashlockOf(s))?.reveal), layout).to.deep.equal(["never", "may", "never", "may", "held"]);
      // A secret the tower does not have is taken only if it may be revealed.
      const [newHeld, newMay] = [rand(), rand()];
      tower.adoptSecret(hashlockOf(newHeld), newHeld, "held");
      tower.adoptSecret(hashlockOf(newMay), newMay, "may");
      expect([tower.knownSecret(hashlockOf(newHeld)), tower.secret(hashlockOf(newMay))], layout).to.deep.equal([undefined, newMay]);
      tower.close();
    }
  });

  it("refuses a file written with another table layout instead of misreading it", function () {
    const old = new DatabaseSync(path);
    old.exec("CREATE TABLE swaps (swap_id TEXT PRIMARY KEY, phase TEXT NOT NULL)"); // layout 1 had no version
    old.close();
    expect(() => new Store(path)).to.throw(StoreVersionError, "layout version 1");

    const newer = join(dir, "newer.sqlite");
    const db = new DatabaseSync(newer);
    db.exec("PRAGMA user_version = 7");
    db.close();
    expect(() => new Store(newer)).to.throw(StoreVersionError, "layout version 7; this SDK reads version 3");
  });

  it("signs nothing new once its file is deleted or replaced, or a write failed for the file's reason; a copy keeps what it held", function () {
    const id = rand();
    const state = (seq: bigint) => ({ ...openingState(id, [10n, 10n]), seq });
    let signs = 0;
    const sign = () => {
      signs++;
      return `0x${"ab".repeat(65)}` as Hex;
    };
    const store = new Store(path);
    expect(store.fileProblem()).to.equal(undefined);
    store.recordOwnSignature(state(1n), rand(), sign);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`);
    expect(store.fileProblem()).to.equal("its file was deleted");
    expect(() => store.recordOwnSignature(state(2n), rand(), sign)).to.throw(StoreLostError, "is lost: its file was deleted");
    expect(signs).to.equal(1, "nothing was signed once the file was gone");
    const copy = join(dir, "rescued.sqlite");
    store.copyTo(copy);
    store.close();
    const rescued = new Store(copy, { readOnly: true });
    expect(rescued.highestOwnSeq(id)).to.equal(1n);
    rescued.close();

    const replaced = new Store(path);
    writeFileSync(join(dir, "other"), "");
    renameSync(join(dir, "other"), path);
    expect(() => replaced.recordOwnSignature(state(3n), rand(), sign)).to.throw(StoreLostError, "another file is at its path");
    replaced.close();

    // The log deleted: the next commit cannot sync it, and the store stays lost (a quick check sees the file only).
    const second = join(dir, "second.sqlite");
    const unsynced = new Store(second);
    rmSync(`${second}-wal`);
    expect(() => unsynced.saveSecret(hashlockOf(rand()), rand(), "may")).to.throw(StoreLostError, "write-ahead log");
    expect(unsynced.fileProblem(true)).to.match(/write-ahead log .*second\.sqlite-wal is gone/);
    expect(() => unsynced.recordOwnSignature(state(4n), rand(), sign)).to.throw(StoreLostError);
    expect(signs).to.equal(1);
    unsynced.close();
  });

  it("read-only: never creates a missing store, reads one another connection writes, refuses to write", function () {
    expect(() => new Store(path, { readOnly: true })).to.throw(StoreNotFoundError, path);
    expect(() => new Store(":memory:", { readOnly: true })).to.throw(StoreNotFoundError);
    expect(readdirSync(dir)).to.deep.equal([]);

    const writer = new Store(path);
    const secret = rand();
    writer.saveSecret(hashlockOf(secret), secret, "may");
    const reader = new Store(path, { readOnly: true });
    expect(reader.secrets()).to.deep.equal([{ hashlock: hashlockOf(secret), secret, reveal: "may" }]);
    const later = rand();
    writer.saveSecret(hashlockOf(later), later, "may"); // the client goes on writing while the tower reads
    expect(reader.secrets()).to.have.length(2);
    expect(() => reader.saveSecret(hashlockOf(rand()), rand(), "may")).to.throw(/readonly/);
    reader.close();
    writer.close();

    const empty = join(dir, "empty.sqlite");
    writeFileSync(empty, "");
    expect(() => new Store(empty, { readOnly: true })).to.throw("is not a channel store");
  });
});
