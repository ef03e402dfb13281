import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { InMemoryLink, Store, type ChannelParams, type ClientEvent, type Envelope, type Hex } from "../../sdk/index.js";
import { fundedChannels, makeParty, ManualClock, ONE, type Setup } from "../helpers/swapHarness.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";

/** A file store that counts its outermost commits, each one disk sync (the real store: only the count is added). */
class CountingStore extends Store {
  groupCommits = 0;
  override commit(): void {
    super.commit();
    if (!this.inTransaction()) this.groupCommits++;
  }
}

/** Opens and funds `count` more native channel pairs between Alice and Bob (nonces 10, 11, ...). */
async function morePairs(setup: Setup, count: number): Promise<{ s: Hex; t: Hex; params: ChannelParams }[]> {
  const pairs = [];
  for (let i = 0; i < count; i++) {
    const params: ChannelParams = { ...setup.tParams, nonce: 10n + BigInt(i) };
    const s = await setup.adapters.aliceS.openAndDeposit(params, 0, 5n * ONE);
    const t = await setup.adapters.bobT.openAndDeposit(params, 1, 5n * ONE);
    pairs.push({ s, t, params });
  }
  return pairs;
}

describe("group commit: swaps on many channel pairs at once", function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "group-commit-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("runs swaps on six pairs at once with far fewer commits than steps, and reports each phase only once it is on disk", async function () {
    const setup = await fundedChannels();
    const pairs = await morePairs(setup, 6);
    const link = new InMemoryLink();
    const clock = new ManualClock();
    const paths = { alice: join(dir, "alice.sqlite"), bob: join(dir, "bob.sqlite") };
    const stores = { alice: new CountingStore(paths.alice), bob: new CountingStore(paths.bob) };
    // Each "done" event is checked against what another connection reads from the file at that moment.
    const reader = { alice: new DatabaseSync(paths.alice, { readOnly: true }), bob: new DatabaseSync(paths.bob, { readOnly: true }) };
    const misreported: string[] = [];
    const onDisk = (who: "alice" | "bob") => (e: ClientEvent) => {
      if (e.type !== "phase" || e.phase.kind !== "done") return;
      const row = reader[who]
        .prepare("SELECT w.phase FROM swaps w JOIN sessions s ON s.n = w.n WHERE s.session_id = ?")
        .get(e.swapId.toLowerCase()) as { phase: string } | undefined;
      if (row === undefined || !row.phase.includes('"kind":"done"')) misreported.push(`${who} ${e.swapId}`);
    };
    const alice = makeParty(setup, "alice", link.a, clock, { onEvent: onDisk("alice") }, stores.alice);
    const bob = makeParty(setup, "bob", link.b, clock, { onEvent: onDisk("bob") }, stores.bob);
    for (const party of [alice, bob]) {
      for (const p of pairs) {
        await party.client.addChannel(setup.S.chainId, p.params, expectedChannel(p.params, party.client.address));
        await party.client.addChannel(setup.T.chainId, p.params, expectedChannel(p.params, party.client.address));
      }
    }
    await syncDeposits([alice.client, bob.client], pairs.flatMap((p) => [p.s, p.t]));
    const commitsBefore = { alice: stores.alice.groupCommits, bob: stores.bob.groupCommits };

    const swapIds = await Promise.all(pairs.map((p) => alice.client.propose({ source: p.s, target: p.t, give: ONE, take: ONE / 10n })));
    await link.settled();

    expect(link.errors).to.deep.equal([]);
    for (const id of swapIds) {
      expect(alice.client.swap(id).progress.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
      expect(bob.client.swap(id).progress.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
    }
    expect(misreported).to.deep.equal([]);
    // A swap takes 9 steps (4 of Alice's, 5 of Bob's): 54 here. The six swaps' steps arrive together, so each round
    // of messages is one commit per party: 8 (Bob's lock acknowledgement and the reveal arrive in one group).
    const commits = stores.alice.groupCommits - commitsBefore.alice + stores.bob.groupCommits - commitsBefore.bob;
    expect(commits).to.be.at.most(2 * 6, `${commits} group commits for ${6 * 9} steps`);
    expect(commits).to.be.at.least(8);
    for (const r of Object.values(reader)) r.close();
    for (const s of Object.values(stores)) s.close();
  });

  it("tells the watchtower a group's states and secrets in one batch of its storage, once the group is on disk", async function () {
    const setup = await fundedChannels();
    const pairs = await morePairs(setup, 3);
    const link = new InMemoryLink();
    const clock = new ManualClock();
    const path = join(dir, "alice.sqlite");
    const reader = new DatabaseSync(path, { readOnly: false });
    // A tower that records each call, whether it came inside a batch, and whether the state it is told is on disk.
    const told: { what: string; inBatch: boolean; onDisk: boolean; hashlock?: Hex }[] = [];
    let batches = 0;
    let inBatch = false;
    const onDisk = (channelId: Hex, seq: bigint) =>
      reader.prepare("SELECT 1 FROM cosigned WHERE channel_id = ? AND seq_num = ?").get(channelId.toLowerCase(), Number(seq)) !== undefined;
    const ownOnDisk = (channelId: Hex, seq: bigint) =>
      reader.prepare("SELECT 1 FROM own_signatures WHERE channel_id = ? AND CAST(seq AS INTEGER) = ?").get(channelId.toLowerCase(), Number(seq)) !== undefined;
    const tower = {
      batch: (feed: () => void) => {
        batches++;
        inBatch = true;
        try {
          feed();
        } finally {
          inBatch = false;
        }
      },
      signed: (state: { channelId: Hex; seq: bigint }) => told.push({ what: "signed", inBatch, onDisk: ownOnDisk(state.channelId, state.seq) }),
      update: (c: { state: { channelId: Hex; seq: bigint } }) => told.push({ what: "cosigned", inBatch, onDisk: onDisk(c.state.channelId, c.state.seq) }),
      addSecret: (hashlock: Hex) =>
        told.push({ what: "secret", inBatch, hashlock, onDisk: reader.prepare("SELECT 1 FROM secrets WHERE hashlock = ? AND reveal = 'may'").get(hashlock.toLowerCase()) !== undefined }),
    };
    const alice = makeParty(setup, "alice", link.a, clock, { watchtower: tower as never }, new Store(path));
    const bob = makeParty(setup, "bob", link.b, clock);
    for (const party of [alice, bob]) {
      for (const p of pairs) {
        await party.client.addChannel(setup.S.chainId, p.params, expectedChannel(p.params, party.client.address));
        await party.client.addChannel(setup.T.chainId, p.params, expectedChannel(p.params, party.client.address));
      }
    }
    await syncDeposits([alice.client, bob.client], pairs.flatMap((p) => [p.s, p.t]));
    const before = { told: told.length, batches };
    await Promise.all(pairs.map((p) => alice.client.propose({ source: p.s, target: p.t, give: ONE, take: ONE / 10n })));
    await link.settled();
    const during = told.slice(before.told);
    expect(during.filter((t) => t.what === "cosigned").length).to.be.greaterThan(0);
    expect(during.filter((t) => t.what === "secret").map((t) => t.hashlock).length).to.equal(3, "each initiator's secret, once, when it left");
    expect(new Set(during.filter((t) => t.what === "secret").map((t) => t.hashlock)).size).to.equal(3);
    expect(during.filter((t) => !t.inBatch), "every call inside a batch of the tower's storage").to.deep.equal([]);
    expect(during.filter((t) => t.what === "signed").length).to.be.greaterThan(0);
    expect(during.filter((t) => !t.onDisk), "every state, signature and secret told only once it is in the client's file").to.deep.equal([]);
    expect(batches - before.batches).to.be.lessThan(during.length, "fewer batches than calls: one per group");
    reader.close();
  });

  it("sends nothing of a group whose transaction ended under one of its steps, not even the good steps' messages", async function () {
    const setup = await fundedChannels();
    const pairs = await morePairs(setup, 2);
    const link = new InMemoryLink();
    const clock = new ManualClock();
    const bobStore = new Store(join(dir, "bob.sqlite"));
    const alice = makeParty(setup, "alice", link.a, clock);
    // Bob's policy runs inside the step that answers a proposal. The first proposal is accepted; answering the
    // second closes his store, which ends the group's transaction (as an I/O error that makes SQLite roll back on
    // its own would) and with it the first step's writes.
    let proposals = 0;
    const policy = () => {
      if (++proposals === 2) bobStore.close();
      return undefined;
    };
    const bob = makeParty(setup, "bob", link.b, clock, { policy }, bobStore);
    for (const party of [alice, bob]) {
      for (const p of pairs) {
        await party.client.addChannel(setup.S.chainId, p.params, expectedChannel(p.params, party.client.address));
        await party.client.addChannel(setup.T.chainId, p.params, expectedChannel(p.params, party.client.address));
      }
    }
    await syncDeposits([alice.client, bob.client], pairs.flatMap((p) => [p.s, p.t]));
    const sentByBob: string[] = [];
    const held: Envelope[] = [];
    link.fault = (envelope, from) => {
      if (from === "b") sentByBob.push(envelope.body.step);
      // Alice's proposals are held back and handed to Bob together, so that his two steps share one group.
      if (from === "a" && envelope.body.step === "proposals") return held.push(envelope), "drop";
      return "deliver";
    };

    // One after the other, so that each goes in an envelope of its own (proposals made together share one).
    const swapIds: Hex[] = [];
    for (const p of pairs) swapIds.push(await alice.client.propose({ source: p.s, target: p.t, give: ONE, take: ONE / 10n }));
    expect(held).to.have.length(2);
    const handled = await Promise.allSettled(held.map((e) => bob.client.handle(e)));
    await link.settled();

    expect(proposals).to.equal(2, "both proposals were handled in one group");
    expect(sentByBob).to.deep.equal([], "the first proposal's acceptance was rolled back, so it must not leave");
    expect(handled.map((r) => r.status)).to.deep.equal(["rejected", "rejected"], "both of Bob's steps report the failure");
    expect(bob.events.filter((e) => e.type === "phase")).to.deep.equal([], "and nothing was reported done or accepted");
    for (const id of swapIds) expect(alice.client.swap(id).progress.phase.kind).to.equal("proposed");
  });
});
