import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

import { hexlify, randomBytes, sha256 } from "ethers";

import {
  addLock,
  enforceChannel,
  HubAdapter,
  openingState,
  Store,
  TOWER_MIN_WINDOW,
  Watchtower,
  type ChainWatch,
  type ChannelLedger,
  type ChannelState,
  type Envelope,
  type Hex,
  type InMemoryLink,
  type SwapClientOptions,
  type WatchtowerEvent,
} from "../../sdk/index.js";
import { coSign } from "../helpers/chains.js";
import {
  driveUntil,
  fundedChannels,
  increaseBoth,
  ONE,
  payoutsOf,
  phaseOf,
  twoParties,
  type Setup,
} from "../helpers/swapHarness.js";

const GIVE = 10n * ONE;
const TAKE = ONE / 2n;

/** A watchtower: its own account on both chains, its own store. */
async function towerFor(setup: Setup, store: Store, events: WatchtowerEvent[] = [], claimWindowSeconds = 300n) {
  const watch = async (suite: Setup["S"]): Promise<ChainWatch> => ({
    chain: await HubAdapter.connect(await suite.hub.getAddress(), suite.other),
    confirmations: 2,
    clockSkewSeconds: 30n,
    claimWindowSeconds,
  });
  return new Watchtower(store, [await watch(setup.S), await watch(setup.T)], (e) => events.push(e));
}

/** A party's client fed to a watchtower of its own: every channel it adds, every state it signs or gets co-signed. */
async function guardedByTower(dir: string, who: "alice" | "bob", claimWindowSeconds = 300n) {
  const setup = await fundedChannels();
  const towerStore = new Store(join(dir, "tower.sqlite"));
  const events: WatchtowerEvent[] = [];
  const tower = await towerFor(setup, towerStore, events, claimWindowSeconds);
  // The client hands each channel it adds to the tower before it signs anything for it.
  const option: Partial<SwapClientOptions> = { watchtower: tower };
  const parties = await twoParties(setup, who === "bob" ? { bob: option } : { alice: option });
  return { setup, tower, towerStore, events, ...parties };
}

const bobGuardedByTower = (dir: string) => guardedByTower(dir, "bob");

/** From the moment `who` has sent a message `last` picks, it is gone: nothing from or to it arrives. */
function silentAfter(link: InMemoryLink, who: "a" | "b", last: (e: Envelope) => boolean) {
  let gone = false;
  link.fault = (e, from) => {
    if (gone) return "drop";
    if (from === who && last(e)) gone = true;
    return "deliver";
  };
}

const sameId = (a: Hex, b: Hex) => a.toLowerCase() === b.toLowerCase();

/** Every secret registered on either chain's registry. */
async function revealedSecrets(setup: Setup): Promise<string[]> {
  const all = [];
  for (const suite of [setup.S, setup.T]) all.push(...(await suite.registry.queryFilter(suite.registry.filters.SecretRevealed())));
  return all.map((e) => e.args.secret);
}

describe("watchtower (guarantee 2 while the client is offline)", function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "tower-"));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers a stale force close with the newest co-signed state and settles after the deadline", async function () {
    const { setup, tower, towerStore, events, link, alice } = await bobGuardedByTower(dir);
    for (let i = 0; i < 3; i++) {
      await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
      await link.settled();
    }
    // Bob's client is offline. Alice registers the opening deposits on S (she had 100, now 70).
    await setup.adapters.aliceS.forceClose(setup.sParams, undefined);
    await tower.poll();
    expect(events.map((e) => e.type)).to.include.members(["dispute", "enforced"]);
    expect((await setup.adapters.aliceS.channelInfo(setup.sId)).seq).to.equal(alice.client.book.head(setup.sId).seq, "challenged");
    await increaseBoth(setup, 3601);
    await tower.poll();
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([70n * ONE, 40n * ONE]);
    // Resolved only once the settle is final (2 blocks deep): a reorganisation could still take it out before.
    expect(towerStore.openDisputes(), "open until the settle is final").to.have.length(1);
    await setup.S.chain.networkHelpers.mine(2);
    await tower.poll();
    expect(towerStore.openDisputes()).to.deep.equal([]);
    towerStore.close();
  });

  it("carries a secret revealed on T to S before the source lock expires, so Bob is paid on S later", async function () {
    const { setup, tower, towerStore, events, link, clock, alice, bob } = await bobGuardedByTower(dir);
    // Bob's client goes offline right after it acknowledged the batch adding his T lock (Alice's reveal never reaches it).
    let tLockSeq: bigint | undefined;
    let gone = false;
    link.fault = (e, from) => {
      if (gone) return "drop";
      if (e.body.step === "batch" && sameId(e.swapId, setup.tId)) {
        const m = e.body.message;
        if (from === "a" && m.kind === "update" && m.changes.some((c) => c.kind === "add")) tLockSeq = m.seq;
        if (from === "b" && m.kind === "ack" && m.seq === tLockSeq) gone = true;
      }
      return "deliver";
    };
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { terms } = alice.client.swap(swapId);
    expect(bob.client.book.head(setup.tId).locks.map((l) => l.hashlock)).to.deep.equal([terms.hashlock], "Bob's T lock co-signed");
    expect(bob.store.secret(terms.hashlock)).to.equal(undefined);
    expect(towerStore.secret(terms.hashlock)).to.equal(undefined);
    // Alice claims T on chain at the last moment and never tells Bob.
    await setup.T.chain.networkHelpers.time.increaseTo(terms.targetExpiry - 5n);
    await setup.adapters.aliceT.reveal(alice.store.secret(terms.hashlock)!);
    await setup.adapters.aliceT.forceClose(setup.tParams, alice.client.book.latest(setup.tId));

    await tower.poll();
    const carried = events.find((e) => e.type === "carried");
    expect(carried).to.deep.include({ type: "carried", hashlock: terms.hashlock, toChainId: setup.S.chainId });
    const revealedOnS = await setup.adapters.bobS.revealedAt(terms.hashlock);
    expect(revealedOnS > 0n && revealedOnS <= terms.sourceExpiry).to.equal(true);

    // Long after tS, Bob's client comes back and closes S: the lock is his, decided by the reveal time.
    await increaseBoth(setup, 7200);
    await driveUntil(setup, link, clock, [bob], () => phaseOf(bob, swapId).kind === "done");
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([90n * ONE, 20n * ONE]);
    towerStore.close();
  });

  it("resumes from its store after a restart and acts on what happened while it was down", async function () {
    const { setup, tower, towerStore, link, alice } = await bobGuardedByTower(dir);
    await tower.poll(); // the cursor is stored
    for (let i = 0; i < 2; i++) {
      await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
      await link.settled();
    }
    towerStore.close(); // the tower's process stops
    await setup.adapters.aliceS.forceClose(setup.sParams, undefined);
    await setup.S.chain.networkHelpers.mine(5);

    const reopened = new Store(join(dir, "tower.sqlite"));
    const restarted = await towerFor(setup, reopened);
    const head = await setup.S.chain.ethers.provider.getBlockNumber();
    await restarted.poll();
    // The cursor stays max(confirmations, TOWER_MIN_WINDOW) blocks behind: this chain is shorter than that window.
    expect(reopened.cursor(setup.S.chainId)).to.equal(Math.max(-1, head - Math.max(2, TOWER_MIN_WINDOW)), "the cursor stays the window behind");
    expect((await setup.adapters.aliceS.channelInfo(setup.sId)).seq).to.equal(alice.client.book.head(setup.sId).seq);
    await increaseBoth(setup, 3601);
    await restarted.poll();
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([80n * ONE, 30n * ONE]);
    reopened.close();
  });

  it("registers several secrets due on one chain in one revealMany, and settling names those locks as revealed together", async function () {
    const setup = await fundedChannels();
    const towerStore = new Store(join(dir, "tower.sqlite"));
    const events: WatchtowerEvent[] = [];
    const tower = await towerFor(setup, towerStore, events);
    const { S, sId, sParams } = setup;
    tower.guard({ ref: { chainId: S.chainId, hub: await S.hub.getAddress(), channelId: sId }, params: sParams, myIndex: 1, openingDeposits: [100n * ONE, 10n * ONE] });
    // Three locks from Alice to Bob (the tower knows two of their secrets) and one from Bob to Alice.
    const now = BigInt(await S.chain.networkHelpers.time.latest());
    const secrets = [0, 1, 2, 3].map(() => hexlify(randomBytes(32)) as Hex);
    let state: ChannelState = openingState(sId, [100n * ONE, 10n * ONE]);
    for (const [i, sender] of [0, 1, 0, 0].entries()) {
      state = addLock(state, { sender: sender as 0 | 1, amount: ONE, hashlock: sha256(secrets[i]!) as Hex, expiry: now + 7200n });
    }
    const signed = await coSign(S, state);
    tower.update({ state, signatures: signed.signatures as [Hex, Hex] });
    tower.addSecret(sha256(secrets[0]!) as Hex, secrets[0]!);
    tower.addSecret(sha256(secrets[2]!) as Hex, secrets[2]!);
    // Alice force-closes with that state; the locks come within the tower's claim window.
    await setup.adapters.aliceS.forceClose(sParams, { state, signatures: signed.signatures as [Hex, Hex] });
    await S.chain.networkHelpers.time.increaseTo(now + 7200n - 200n);
    await tower.poll();

    const reveals = await S.registry.queryFilter(S.registry.filters.SecretRevealed());
    expect(reveals.map((e) => e.args.secret)).to.deep.equal([secrets[0], secrets[2]]);
    expect(new Set(reveals.map((e) => e.transactionHash)).size).to.equal(1, "one transaction");
    const tx = await S.chain.ethers.provider.getTransaction(reveals[0]!.transactionHash);
    expect(S.registry.interface.parseTransaction(tx!)?.name).to.equal("revealMany");
    expect(events.filter((e) => e.type === "carried").length).to.equal(2);

    await S.chain.networkHelpers.time.increaseTo(now + 7200n + 60n);
    await tower.poll();
    const [settled] = await S.hub.queryFilter(S.hub.filters.ChannelSettled(sId));
    expect(settled?.args.paidMask).to.equal(0b101n);
    const settleTx = await S.chain.ethers.provider.getTransaction(settled!.transactionHash);
    expect(S.hub.interface.parseTransaction(settleTx!)?.args[3]).to.equal(0b101n, "locks 0 and 2 named as revealed together");
    towerStore.close();
  });

  it("upgraded from a store written before reveal rules, reveals what its client's store says may be and what a chain shows, never the secret of a swap the client undid", async function () {
    const setup = await fundedChannels();
    const { S, T, sId, sParams } = setup;
    const record = { ref: { chainId: S.chainId, hub: await S.hub.getAddress(), channelId: sId }, params: sParams, myIndex: 1 as const, openingDeposits: [100n * ONE, 10n * ONE] as [bigint, bigint] };
    // Four locks owed to Bob on S. Bob undid the swap of the first (his client's store says never), revealed the
    // second (may); his store does not know the last two, and the last was revealed on T before the upgrade.
    const now = BigInt(await S.chain.networkHelpers.time.latest());
    const [undone, revealed, unknown, shown] = [0, 1, 2, 3].map(() => hexlify(randomBytes(32)) as Hex) as [Hex, Hex, Hex, Hex];
    let state: ChannelState = openingState(sId, [100n * ONE, 10n * ONE]);
    for (const secret of [undone, revealed, unknown, shown]) state = addLock(state, { sender: 0, amount: ONE, hashlock: sha256(secret) as Hex, expiry: now + 7200n });
    const signed = { state, signatures: (await coSign(S, state)).signatures as [Hex, Hex] };
    await setup.adapters.aliceT.reveal(shown);

    // The tower's store as 0.2.x left it: every secret its client had, the undone one among them, and the one it read
    // on T (its cursor is past that event), in a secrets table without rules.
    const file = join(dir, "tower.sqlite");
    const before = new Store(file);
    const old = await towerFor(setup, before);
    old.guard(record);
    old.update(signed);
    before.saveCursor(T.chainId, await T.chain.ethers.provider.getBlockNumber());
    before.close();
    const db = new DatabaseSync(file);
    db.exec("DROP TABLE secrets; CREATE TABLE secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL)");
    for (const secret of [undone, revealed, unknown, shown]) db.prepare("INSERT INTO secrets VALUES (?, ?)").run(sha256(secret), secret);
    db.close();
    const client = new Store(join(dir, "bob.sqlite"));
    client.saveChannel(record);
    client.saveCoSigned(signed);
    client.saveSecret(sha256(undone) as Hex, undone, "held");
    client.saveSecret(sha256(undone) as Hex, undone, "never");
    client.saveSecret(sha256(revealed) as Hex, revealed, "may");

    // Opened by this version and fed from the client's store, as a node does at start and `channels watch` each round.
    const towerStore = new Store(file);
    const events: WatchtowerEvent[] = [];
    const tower = await towerFor(setup, towerStore, events);
    expect(tower.heldWithoutWord(), "before the import, none has its client's word").to.equal(4);
    tower.importFrom(client);
    expect(tower.heldWithoutWord(client), "the two its client's store does not know").to.equal(2);
    // Alice force-closes S with that state; the locks come within the tower's claim window.
    await setup.adapters.aliceS.forceClose(sParams, signed);
    await S.chain.networkHelpers.time.increaseTo(now + 7200n - 200n);
    await tower.poll();
    const reveals = await S.registry.queryFilter(S.registry.filters.SecretRevealed());
    expect(reveals.map((e) => e.args.secret), "registered on S").to.deep.equal([revealed, shown]);
    expect(await setup.adapters.bobS.revealedAt(sha256(undone) as Hex)).to.equal(0n);
    expect([undone, unknown].map((x) => towerStore.secret(sha256(x) as Hex))).to.deep.equal([undefined, undefined]);
    client.close();
    towerStore.close();
  });

  it("enforcing a channel registers the secrets owed in it in one revealMany, in lock order", async function () {
    const setup = await fundedChannels();
    const { S, sId, sParams } = setup;
    const now = BigInt(await S.chain.networkHelpers.time.latest());
    const secrets = [0, 1, 2].map(() => hexlify(randomBytes(32)) as Hex);
    let state: ChannelState = openingState(sId, [100n * ONE, 10n * ONE]);
    for (const secret of secrets) state = addLock(state, { sender: 0, amount: ONE, hashlock: sha256(secret) as Hex, expiry: now + 7200n });
    const signed = { state, signatures: (await coSign(S, state)).signatures as [Hex, Hex] };
    await setup.adapters.aliceS.forceClose(sParams, signed);
    const ledger: ChannelLedger = {
      record: () => ({ ref: { chainId: S.chainId, hub: setup.adapters.bobS.hubAddress, channelId: sId }, params: sParams, myIndex: 1, openingDeposits: [100n * ONE, 10n * ONE] }),
      latest: () => signed,
      stateAt: (_, seq) => (seq === state.seq ? state : undefined),
    };
    const known = new Map(secrets.map((x) => [sha256(x).toLowerCase(), x]));
    const step = await enforceChannel(ledger, setup.adapters.bobS, sId, async (h) => known.get(h.toLowerCase()));
    expect(step).to.deep.equal({ kind: "revealed", hashlocks: secrets.map((x) => sha256(x)) });
    const reveals = await S.registry.queryFilter(S.registry.filters.SecretRevealed());
    expect(new Set(reveals.map((e) => e.transactionHash)).size).to.equal(1, "one transaction");
    expect(await S.registry.revealedTogetherAt(secrets.map((x) => sha256(x)))).to.not.equal(0n);
  });

  it("settles a channel the peer registered a lock-free state on that its store lacks, rebuilt from the hub's event and its hash; a state with locks is refused naming why", async function () {
    const setup = await fundedChannels();
    const { S, T, sId, tId, sParams, tParams } = setup;
    // Bob's store knows only the openings (restored from an old copy, its watchtower's store lost too).
    const ledgerOf = (chainId: bigint, hub: string, channelId: Hex, params: typeof sParams, deposits: [bigint, bigint]): ChannelLedger => ({
      record: () => ({ ref: { chainId, hub, channelId }, params, myIndex: 1, openingDeposits: deposits }),
      latest: () => undefined,
      stateAt: () => undefined,
    });
    const onS = ledgerOf(S.chainId, setup.adapters.bobS.hubAddress, sId, sParams, [100n * ONE, 10n * ONE]);
    // Alice registers a newer state with no locks: 10 moved to Bob.
    const newer: ChannelState = { ...openingState(sId, [100n * ONE, 10n * ONE]), seq: 5n, balances: [90n * ONE, 20n * ONE] };
    await setup.adapters.aliceS.forceClose(sParams, { state: newer, signatures: (await coSign(S, newer)).signatures as [Hex, Hex] });
    expect((await enforceChannel(onS, setup.adapters.bobS, sId, async () => undefined)).kind).to.equal("waiting");
    await S.chain.networkHelpers.time.increase(3600 + 60);
    expect(await enforceChannel(onS, setup.adapters.bobS, sId, async () => undefined)).to.deep.equal({ kind: "settled", seq: 5n });
    const [settled] = await S.hub.queryFilter(S.hub.filters.ChannelSettled(sId));
    expect(settled?.args.payouts).to.deep.equal([90n * ONE, 20n * ONE]);

    // On T, a registered state with a lock (addLock makes it number 4): its locks are not on chain, so it cannot be rebuilt.
    const onT = ledgerOf(T.chainId, setup.adapters.bobT.hubAddress, tId, tParams, [1n * ONE, 20n * ONE]);
    const now = BigInt(await T.chain.networkHelpers.time.latest());
    const locked = addLock({ ...openingState(tId, [1n * ONE, 20n * ONE]), seq: 3n }, { sender: 1, amount: ONE, hashlock: sha256(hexlify(randomBytes(32))) as Hex, expiry: now + 7200n });
    await setup.adapters.aliceT.forceClose(tParams, { state: locked, signatures: (await coSign(T, locked)).signatures as [Hex, Hex] });
    let error: unknown;
    await enforceChannel(onT, setup.adapters.bobT, tId, async () => undefined).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/registered state 4 is not in the store, and the hub's event of it shows locks/);
  });

  it("never force-closes an open channel itself and reveals nothing on the happy path", async function () {
    const { setup, tower, towerStore, link, alice } = await bobGuardedByTower(dir);
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const blocks = [await setup.S.chain.ethers.provider.getBlockNumber(), await setup.T.chain.ethers.provider.getBlockNumber()];
    await tower.poll();
    await tower.poll();
    expect([await setup.S.chain.ethers.provider.getBlockNumber(), await setup.T.chain.ethers.provider.getBlockNumber()]).to.deep.equal(blocks);
    towerStore.close();
  });

  it("hears of the initiator's secret only once she reveals it: held back from the tower until then", async function () {
    const { setup, tower, towerStore, link, clock, alice, bob } = await guardedByTower(dir, "alice");
    // Bob's acknowledgement of the batch adding his T lock is lost: Alice cannot reveal yet.
    let tAcks = 0;
    link.fault = (e, from) => (from === "b" && e.body.step === "batch" && sameId(e.swapId, setup.tId) && e.body.message.kind === "ack" && ++tAcks === 1 ? "drop" : "deliver");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { hashlock } = alice.client.swap(swapId).terms;
    expect(phaseOf(alice, swapId).kind).to.equal("agreed");
    expect(alice.store.knownSecret(hashlock)?.reveal).to.equal("held");
    expect(alice.store.secret(hashlock), "held back from her own on-chain path").to.equal(undefined);
    expect(towerStore.knownSecret(hashlock), "the tower was not told").to.equal(undefined);
    await tower.poll();
    expect(await revealedSecrets(setup)).to.deep.equal([]);

    clock.advance(3_000); // past the resend interval: Alice resends her batch, Bob acknowledges it again
    await alice.client.tick();
    await link.settled();
    await bob.client.tick();
    await link.settled();
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    const secret = alice.store.knownSecret(hashlock);
    expect(secret?.reveal).to.equal("may");
    expect(towerStore.secret(hashlock), "the tower has it once she revealed it").to.equal(secret?.secret);
    await tower.poll();
    expect(await revealedSecrets(setup), "nothing to carry: both locks paid off chain").to.deep.equal([]);
    towerStore.close();
  });

  it("never reveals the secret of a swap the initiator undid, fed live by her client or from her store (Bob held his T lock back, then kept her T refund)", async function () {
    // Alice's tower claims every lock owed to her within an hour of its expiry, if it holds the secret.
    const { setup, tower, towerStore, events, link, clock, alice, bob } = await guardedByTower(dir, "alice", 3_600n);
    // Bob asks for his T lock only once less than minTargetWindow (600 s) is left on it; once it is co-signed, he
    // signs whatever Alice sends and answers nothing more (her T refund co-signed by him alone, her S refund never).
    let phase: "hold" | "late" | "silent" = "hold";
    const tLocked = () => alice.client.book.head(setup.tId).locks.length > 0;
    link.fault = (e, from) => {
      if (phase === "late" && tLocked()) phase = "silent";
      if (from !== "b") return "deliver";
      if (phase === "silent") return "drop";
      const request = e.body.step === "batch" && e.body.message.kind === "request" && sameId(e.swapId, setup.tId);
      return phase === "hold" && request ? "drop" : "deliver";
    };
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { hashlock, targetExpiry } = alice.client.swap(swapId).terms;
    expect(alice.client.book.head(setup.sId).locks.map((l) => l.hashlock)).to.deep.equal([hashlock]);
    // 500 s left on T, and the client clock moves less than the confirmation timeout: Bob's resent ask arrives.
    const nowT = BigInt(await setup.T.chain.networkHelpers.time.latest());
    await increaseBoth(setup, Number(targetExpiry - nowT - 500n));
    clock.advance(3_000);
    phase = "late";
    await alice.client.tick(); // she reads the chains' time
    await link.settled();
    await bob.client.tick();
    await link.settled();
    await alice.client.idle();
    await link.settled();
    expect(tLocked(), "the T lock is in Alice's co-signed head").to.equal(true);
    expect(phaseOf(alice, swapId), "Alice undid the swap: too late to reveal").to.deep.equal({ kind: "cancelling" });
    expect(alice.store.knownSecret(hashlock)?.reveal).to.equal("never");
    expect(bob.store.secret(hashlock), "Bob never learned the secret").to.equal(undefined);
    expect(bob.store.latestCoSigned(setup.tId)!.state.locks, "Bob holds a co-signed T state without the lock").to.deep.equal([]);

    // The tower holds Alice's co-signed T state with the lock owed to her, inside its claim window; a tower next to a
    // client also takes over what her store holds before it polls.
    expect(towerStore.latestCoSigned(setup.tId)!.state.locks.map((l) => l.hashlock)).to.deep.equal([hashlock]);
    expect(tower.importFrom(alice.store)).to.equal(2);
    expect(towerStore.knownSecret(hashlock)).to.equal(undefined);
    await tower.poll();
    expect(events.filter((e) => e.type === "carried")).to.deep.equal([]);
    expect(await revealedSecrets(setup)).to.deep.equal([]);

    // Bob stays silent: Alice's client settles on chain, the tower polling alongside; neither reveals the secret.
    await driveUntil(setup, link, clock, [alice], async () => {
      tower.importFrom(alice.store);
      await tower.poll();
      return phaseOf(alice, swapId).kind === "done";
    }, 120, 200);
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "settledOnChain" });
    expect(await revealedSecrets(setup)).to.deep.equal([]);
    expect(towerStore.knownSecret(hashlock)).to.equal(undefined);
    // Undone on both sides: each lock went back to its sender.
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([100n * ONE, 10n * ONE]);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE, 20n * ONE]);
    towerStore.close();
  });
  it("hears of the initiator's secret as soon as he reveals it, even in a request the other never answers, and claims the lock owed to him before it expires", async function () {
    // Bob initiates: he gives ether on T (where he asks Alice, the proposer, for his lock) and takes tokens on S, so
    // his reveal is a request on S that Alice has to put in a batch. He is guarded by his tower, fed by his client only.
    const { setup, tower, towerStore, events, link, clock, alice, bob } = await guardedByTower(dir, "bob");
    // Alice takes Bob's reveal and from then on answers nothing.
    silentAfter(link, "b", (e) => e.body.step === "batch" && e.body.message.kind === "request" && e.body.message.changes.some((c) => c.kind === "pay"));
    const swapId = await bob.client.propose({ source: setup.tId, target: setup.sId, give: TAKE, take: GIVE });
    await link.settled();
    const { terms } = bob.client.swap(swapId);
    expect(alice.store.secret(terms.hashlock), "Alice got the secret").to.not.equal(undefined);
    expect(bob.store.knownSecret(terms.hashlock)?.reveal).to.equal("may");
    expect(bob.client.book.head(setup.sId).locks.map((l) => l.hashlock), "Alice's S lock owed to Bob, co-signed").to.deep.equal([terms.hashlock]);

    // Bob's client is offline. Near the S lock's expiry (inside the tower's claim window) the tower registers the secret.
    await setup.S.chain.networkHelpers.time.increaseTo(terms.targetExpiry - 200n);
    await tower.poll();
    expect(events.filter((e) => e.type === "carried")).to.deep.include({ type: "carried", hashlock: terms.hashlock, toChainId: setup.S.chainId });
    const revealedOnS = await setup.adapters.bobS.revealedAt(terms.hashlock);
    expect(revealedOnS > 0n && revealedOnS <= terms.targetExpiry).to.equal(true, "registered on S before the lock owed to Bob expired");

    // Once the S lock expired, Alice claims Bob's lock on T with the secret (before it expires); Bob's client comes
    // back and settles S: the secret was registered there in time, both legs happen.
    for (const suite of [setup.S, setup.T]) await suite.chain.networkHelpers.time.increaseTo(terms.targetExpiry + 60n);
    expect(terms.sourceExpiry > terms.targetExpiry + 120n).to.equal(true);
    await setup.adapters.aliceT.reveal(alice.store.secret(terms.hashlock)!);
    await setup.adapters.aliceT.forceClose(setup.tParams, alice.client.book.latest(setup.tId));
    await driveUntil(setup, link, clock, [bob], () => phaseOf(bob, swapId).kind === "done");
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "settledOnChain" });
    expect(await payoutsOf(setup.S, setup.sId)).to.deep.equal([90n * ONE, 20n * ONE]);
    expect(await payoutsOf(setup.T, setup.tId)).to.deep.equal([ONE + TAKE, 20n * ONE - TAKE]);
    towerStore.close();
  });
});
