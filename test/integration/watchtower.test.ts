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
  Watchtower,
  type ChainWatch,
  type ChannelLedger,
  type ChannelState,
  type Hex,
  type WatchtowerEvent,
} from "../../sdk/index.js";
import { coSign } from "../helpers/chains.js";
import {
  cutAfter,
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

/** Bob's watchtower: its own account on both chains, its own store. */
async function towerFor(setup: Setup, store: Store, events: WatchtowerEvent[] = []) {
  const watch = async (suite: Setup["S"]): Promise<ChainWatch> => ({
    chain: await HubAdapter.connect(await suite.hub.getAddress(), suite.other),
    confirmations: 2,
    clockSkewSeconds: 30n,
    claimWindowSeconds: 300n,
  });
  return new Watchtower(store, [await watch(setup.S), await watch(setup.T)], (e) => events.push(e));
}

async function bobGuardedByTower(dir: string) {
  const setup = await fundedChannels();
  const towerStore = new Store(join(dir, "tower.sqlite"));
  const events: WatchtowerEvent[] = [];
  const tower = await towerFor(setup, towerStore, events);
  // The client hands each channel it adds to the tower before it signs anything for it.
  const parties = await twoParties(setup, { bob: { watchtower: tower } });
  return { setup, tower, towerStore, events, ...parties };
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
    expect(towerStore.openDisputes()).to.deep.equal([]);
    towerStore.close();
  });

  it("carries a secret revealed on T to S before the source lock expires, so Bob is paid on S later", async function () {
    const { setup, tower, towerStore, events, link, clock, alice, bob } = await bobGuardedByTower(dir);
    cutAfter(link, "b", "targetLock"); // Bob's client goes offline right after locking on T
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
    await link.settled();
    const { terms } = alice.client.swap(swapId);
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
    expect(reopened.cursor(setup.S.chainId)).to.equal(head - 2, "the cursor stays 2 confirmations behind");
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
});
