/**
 * A party started from an old copy of its store catches up from the other (sdk/core/channel-updates.ts `resume`,
 * `catchUp`; sdk/coordinator/counterparty.ts): two parties on one channel pair, each a Counterparty over its own
 * SQLite store (scripts/lib/batched-pair.ts), A proposing on S and answering on T. A copy of A's store is taken, both
 * swap on, and A is restarted from the copy: its channels are frozen, it signs nothing until B shows it the newest
 * state both signed, and from then on it numbers every state at a floor taken after it started, above every number
 * it may have used after the copy.
 */
import { expect } from "chai";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

import { resumeFloor, type UpdateMessage } from "../../sdk/core/channel-updates.js";
import { InvalidMessageError } from "../../sdk/core/errors.js";
import { outcome, settled } from "../../sdk/core/swap-rules.js";
import type { ChannelState, Hex } from "../../sdk/core/types.js";
import type { Envelope } from "../../sdk/core/messages.js";
import { Store } from "../../sdk/store/store.js";
import { DEPOSIT, heal, Network, S, startSwap, T, type Name, type Packet } from "../../scripts/lib/batched-pair.js";
import { fundedChannels, makeParty, ONE, twoParties } from "../helpers/swapHarness.js";

type Swap = { hashlock: string; initiator: Name; give: bigint; take: bigint };

/** Runs `count` swaps one after the other (alternating initiators) to the end. */
function swapMany(net: Network, swaps: Swap[], count: number) {
  for (let i = 0; i < count; i++) {
    const initiator: Name = swaps.length % 2 === 0 ? "A" : "B";
    const [give, take] = [BigInt(3 + (swaps.length % 5)), BigInt(2 + (swaps.length % 3))];
    const hashlock = startSwap(net, swaps.length + 1_000, initiator, give, take);
    if (hashlock === undefined) throw new Error("a swap did not start");
    swaps.push({ hashlock, initiator, give, take });
    heal(net);
  }
}

/** Every number a party's key signed on `channelId` (its store's double-sign guard, read beside the party). */
function ownNumbers(net: Network, who: Name, channelId: Hex): bigint[] {
  const db = new DatabaseSync(join(net.dir, `${who}.sqlite`), { readOnly: true });
  try {
    const rows = db.prepare("SELECT seq FROM own_signatures WHERE channel_id = ?").all(channelId.toLowerCase()) as { seq: string }[];
    return rows.map((r) => BigInt(r.seq));
  } finally {
    db.close();
  }
}

describe("a party restored from an old copy of its store catches up from the other", function () {
  this.timeout(120_000);
  afterEach(() => Network.closeAll());

  /** A with a copy taken after `before` swaps, then `after` more swaps, then A restarted from the copy. */
  function restored(before: number, after: number) {
    const net = new Network();
    const swaps: Swap[] = [];
    swapMany(net, swaps, before);
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy);
    swapMany(net, swaps, after);
    const newest = { [S]: net.parties.B.updaters[S]!.head, [T]: net.parties.B.updaters[T]!.head };
    const lost = { [S]: net.parties.A.store.highestOwnSeq(S), [T]: net.parties.A.store.highestOwnSeq(T) };
    net.parties.A.restoreFrom(copy);
    return { net, swaps, newest, lost };
  }

  /** Moves the parties' clock on and lets A ask, B answer and A take the answer. */
  /** A network where A's batch on S (A proposes there) is in flight, held back from B: the batch's number. */
  function batchInFlight() {
    const net = new Network();
    startSwap(net, 1, "A", 5n, 4n);
    const update = net.inFlight.find((p) => p.from === "A" && p.channelId === S && p.message.kind === "update");
    expect(update, "A's batch on S").to.not.equal(undefined);
    net.inFlight.length = 0;
    return { net, seq: (update!.message as Extract<UpdateMessage, { kind: "update" }>).seq };
  }

  function catchUp(net: Network) {
    net.clock += 6_000; // past the second A started in, and past the last ask
    net.parties.A.tick();
    net.deliverAll();
  }

  it("signs nothing until the other shows the newest co-signed state, then takes it and swaps on, numbered above every number it used", function () {
    const { net, swaps, newest, lost } = restored(3, 4);
    const { A, B } = net.parties;
    expect(A.store.frozenSince(S)).to.be.a("number");
    expect(A.updaters[S]!.head.seq, "the copy is behind").to.be.lessThan(Number(newest[S]!.seq));
    // The clock has not passed the second A started in: nothing is asked yet, and nothing signed.
    const before = A.signatures;
    A.tick();
    expect(net.inFlight.filter((p) => p.message.kind === "resume")).to.have.length(0);

    catchUp(net);
    const floor = resumeFloor(BigInt(Math.floor(net.clock / 1000)));
    for (const id of [S, T]) {
      expect(A.store.frozenSince(id), `${id} thawed`).to.equal(undefined);
      expect(A.updaters[id]!.head, `${id}: A holds B's newest`).to.deep.equal(newest[id]);
      expect(A.store.latestCoSigned(id)!.state).to.deep.equal(newest[id]);
      expect(floor, "the floor is above every number A used after the copy").to.be.greaterThan(lost[id]!);
    }
    expect(A.signatures, "catching up signs nothing").to.equal(before);

    // Swaps go on in both directions, on both channels, numbered from the floor.
    swapMany(net, swaps, 4);
    for (const s of swaps) {
      const [a, b] = [A.swaps.get(s.hashlock), B.swaps.get(s.hashlock)!];
      if (a !== undefined) expect(outcome(a)).to.equal(outcome(b));
      expect(settled(b)).to.equal(true);
    }
    for (const id of [S, T]) {
      const head = A.updaters[id]!.head;
      expect(head, `${id}: both hold one head`).to.deep.equal(B.updaters[id]!.head);
      expect(head.seq >= floor, `${id}: head ${head.seq} at or above the floor ${floor}`).to.equal(true);
      expect(head.balances[0] + head.balances[1]).to.equal(head.deposits[0] + head.deposits[1]);
      const signedAfter = ownNumbers(net, "A", id).filter((n) => n > newest[id]!.seq);
      expect(signedAfter.length, `${id}: A signed on it again`).to.be.greaterThan(0);
      expect(signedAfter.every((n) => n >= floor), `${id}: every number A signed since is at or above the floor`).to.equal(true);
    }
    // The last four swaps all went through: A's balances moved by them from what B showed.
    const last = swaps.slice(-4);
    expect(last.every((s) => outcome(A.swaps.get(s.hashlock)!) === "swapped")).to.equal(true);
  });

  it("a peer that shows an older state than the newest gets no more than on chain: every state signed since outranks what it hid", function () {
    const { net, newest } = restored(2, 4);
    const { A, B } = net.parties;
    // B shows an older state of S than its newest (one A signed after the copy): one it could put on chain as well.
    const copyHead = A.updaters[S]!.head.seq;
    let older: ReturnType<typeof B.store.coSignedAt>;
    for (let seq = newest[S]!.seq - 1n; seq > copyHead && older === undefined; seq--) {
      const at = B.store.coSignedAt(S, seq);
      if (at !== undefined && at.state.locks.length === 0) older = at; // between swaps
    }
    expect(older, "an older co-signed state of S, newer than the copy").to.not.equal(undefined);
    net.intercept.A = (p: Packet) => {
      if (p.channelId !== S || p.message.kind !== "head") return false;
      A.handle({ ...p, message: { ...p.message, state: older!.state, signatures: older!.signatures } as UpdateMessage });
      return true;
    };
    catchUp(net);
    net.intercept.A = undefined;
    const floor = resumeFloor(BigInt(Math.floor(net.clock / 1000)));
    expect(A.updaters[S]!.head).to.deep.equal(older!.state);
    expect(A.store.frozenSince(S)).to.equal(undefined);
    // A's next state on S (a swap where it gives on S) is numbered at the floor: above the newest B hid, so a close
    // with the hidden one is answered with it.
    startSwap(net, 77, "A", 5n, 4n);
    const signed = ownNumbers(net, "A", S).filter((n) => n > older!.state.seq);
    expect(signed.length).to.be.greaterThan(0);
    expect(signed.every((n) => n >= floor && n > newest[S]!.seq), `numbers ${signed.join(", ")} above ${newest[S]!.seq}`).to.equal(true);
  });

  it("refuses a head it cannot take: not signed by its own key, older than its copy, numbered from the future or unasked; and one with locks leaves the channel frozen", function () {
    const { net, newest } = restored(2, 2);
    const { A, B } = net.parties;
    const signatures = B.store.latestCoSigned(S)!.signatures;
    const head = (state: ChannelState, sigs = signatures, floor = resumeFloor(BigInt(Math.floor(net.clock / 1000)))) =>
      ({ kind: "head", floor, state, signatures: sigs }) as UpdateMessage;
    const deliver = (message: UpdateMessage) => () => A.handle({ from: "B", channelId: S, message });
    const signedBefore = A.signatures;
    // Unasked: A has sent no resume yet. Its state is not even read: one that is no state is refused as unasked.
    expect(deliver(head(newest[S]!))).to.throw(InvalidMessageError, /asked for none/);
    expect(deliver({ kind: "head", floor: 1n, state: { locks: "x".repeat(1_000) } } as unknown as UpdateMessage)).to.throw(InvalidMessageError, /asked for none/);
    // B's channel is not frozen: a head sent to it is a late answer, dropped unread, whatever it holds.
    expect(() => B.handle({ from: "A", channelId: S, message: { kind: "head", floor: 1n, state: null } as unknown as UpdateMessage })).to.not.throw();
    // Let A ask, holding B's answer back.
    net.clock += 6_000;
    A.tick();
    const asked = net.inFlight.filter((p) => p.message.kind === "resume");
    expect(asked.map((p) => p.channelId).sort()).to.deep.equal([S, T].sort());
    net.inFlight.length = 0;
    const now = resumeFloor(BigInt(Math.floor(net.clock / 1000)));
    // A's own signature replaced by B's: not one A made.
    expect(deliver(head(newest[S]!, [signatures[1], signatures[1]]))).to.throw(/invalid signature/i);
    // Older than the copy's head.
    const copyHead = A.updaters[S]!.head;
    const stale = B.store.coSignedAt(S, copyHead.seq - 1n);
    if (stale !== undefined) expect(deliver(head(stale.state, stale.signatures))).to.throw(InvalidMessageError, /older than/);
    // A floor from the future (beyond A's clock), and one from before A started.
    expect(deliver(head(newest[S]!, signatures, now + (10n << 20n)))).to.throw(InvalidMessageError, /outside what this process asked for/);
    expect(deliver(head(newest[S]!, signatures, 1n << 20n))).to.throw(InvalidMessageError, /outside what this process asked for/);
    // A state with a lock A's copy does not know: taken for nothing, the channel stays frozen and says why.
    const locked: ChannelState = { ...newest[S]!, balances: [newest[S]!.balances[0] - 1n, newest[S]!.balances[1]], locks: [{ sender: 0, amount: 1n, hashlock: `0x${"ab".repeat(32)}`, expiry: 10n ** 10n }] };
    const lockedSigs = [A.signRaw(locked), B.signRaw(locked)] as const;
    deliver(head(locked, lockedSigs))();
    expect(A.store.frozenSince(S)).to.be.a("number");
    expect(A.pair.resumeState(S)!.problem).to.match(/holds 1 lock\(s\) of swaps this copy does not know/);
    expect(A.signatures, "nothing signed").to.equal(signedBefore);
    // B refuses a resume numbered beyond its own clock, and changes nothing.
    const bBefore = B.updaters[S];
    expect(() => B.handle({ from: "A", channelId: S, message: { kind: "resume", floor: now + (60n << 20n) } })).to.throw(InvalidMessageError, /above .*the floor of this party's clock/);
    expect(B.updaters[S]).to.deep.equal(bBefore);
    // The honest answer still works afterwards: the frozen channel takes B's newest at the next ask.
    catchUp(net);
    expect(A.store.frozenSince(S)).to.equal(undefined);
    expect(A.updaters[S]!.head).to.deep.equal(newest[S]);
  });

  it("two parties both restored from copies catch up from each other, to the newer of the two copies, and swap on", function () {
    const net = new Network();
    const swaps: Swap[] = [];
    swapMany(net, swaps, 2);
    const [copyA, copyB] = [join(net.dir, "A.copy.sqlite"), join(net.dir, "B.copy.sqlite")];
    net.parties.A.backup(copyA);
    swapMany(net, swaps, 2);
    net.parties.B.backup(copyB);
    const atB = { [S]: net.parties.B.updaters[S]!.head, [T]: net.parties.B.updaters[T]!.head };
    swapMany(net, swaps, 2);
    net.parties.A.restoreFrom(copyA);
    net.parties.B.restoreFrom(copyB);
    const { A, B } = net.parties;
    for (let round = 0; round < 6 && [S, T].some((id) => A.store.frozenSince(id) !== undefined || B.store.frozenSince(id) !== undefined); round++) {
      net.clock += 6_000;
      A.tick();
      B.tick();
      // A head older than what the asker holds is refused (and dropped, as a transport drops a refused message).
      for (let i = 0; i < 1_000 && net.inFlight.length > 0; i++) {
        try {
          net.deliver(0);
        } catch (error) {
          if (!(error instanceof InvalidMessageError)) throw error;
        }
      }
    }
    for (const id of [S, T]) {
      expect([A.store.frozenSince(id), B.store.frozenSince(id)], `${id} thawed on both`).to.deep.equal([undefined, undefined]);
      expect(A.updaters[id]!.head, `${id}: B's copy is the newer`).to.deep.equal(atB[id]);
      expect(B.updaters[id]!.head).to.deep.equal(atB[id]);
    }
    swapMany(net, swaps, 2);
    for (const id of [S, T]) expect(A.updaters[id]!.head).to.deep.equal(B.updaters[id]!.head);
    expect(swaps.slice(-2).every((x) => outcome(A.swaps.get(x.hashlock)!) === "swapped" && outcome(B.swaps.get(x.hashlock)!) === "swapped")).to.equal(true);
  });

  it("catches up from the answer to an earlier ask when the other took a later one, and swaps on (as proposer and acknowledger)", function () {
    const { net, swaps, newest } = restored(2, 2);
    const { A, B } = net.parties;
    // A asks, the answer is slow; A asks again 6 s later; B takes both asks, and A gets both answers, the first first.
    net.clock += 6_000;
    A.tick();
    const first = net.inFlight.splice(0);
    net.clock += 6_000;
    A.tick();
    const second = net.inFlight.splice(0);
    expect([...first, ...second].map((p) => p.message.kind)).to.deep.equal(["resume", "resume", "resume", "resume"]);
    // B takes the first asks, and the later ones a second after (B answers one resume a second per channel).
    for (const p of first) B.handle(p);
    net.clock += 1_000;
    for (const p of second) B.handle(p);
    const answers = net.inFlight.splice(0);
    for (const p of answers) A.handle(p); // the later answers come after A caught up: ignored
    const early = resumeFloor(BigInt(Math.floor((net.clock - 7_000) / 1000)));
    for (const id of [S, T]) {
      expect(A.store.frozenSince(id), `${id} thawed`).to.equal(undefined);
      expect(A.updaters[id]!.head).to.deep.equal(newest[id]);
      expect(A.updaters[id]!.signedSeq, `${id}: A numbers from the first floor`).to.equal(early - 1n);
      expect(B.updaters[id]!.signedSeq > early, `${id}: B from the later one`).to.equal(true);
    }
    // A proposes on S and answers on T: the numbers meet at B's floor, and swaps go through both ways.
    const before = A.signatures;
    for (let i = 0; i < 2; i++) {
      const initiator: Name = i === 0 ? "A" : "B";
      const hashlock = startSwap(net, 500 + i, initiator, 3n, 2n)!;
      swaps.push({ hashlock, initiator, give: 3n, take: 2n });
      for (let round = 0; round < 10 && !settled(B.swaps.get(hashlock)!); round++) {
        net.deliverAll();
        A.tick();
        B.tick();
        net.deliverAll();
      }
      expect(outcome(A.swaps.get(hashlock)!), `swap ${i} at A`).to.equal("swapped");
      expect(outcome(B.swaps.get(hashlock)!), `swap ${i} at B`).to.equal("swapped");
    }
    for (const id of [S, T]) expect(A.updaters[id]!.head).to.deep.equal(B.updaters[id]!.head);
    expect(A.signatures - before, "a handful of signatures, not one a tick for ever").to.be.lessThan(12);
  });

  it("a channel of the copy whose deposits were counted after the copy still asks and catches up (nothing counted while frozen)", function () {
    const net = new Network();
    const swaps: Swap[] = [];
    swapMany(net, swaps, 1);
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy);
    // B deposits on S (A proposes on S) and on T after the copy; both count them, A's copy does not hold the counts.
    net.depositOnChain("B", S, 40n);
    net.depositOnChain("B", T, 30n);
    heal(net);
    const newest = { [S]: net.parties.B.updaters[S]!.head, [T]: net.parties.B.updaters[T]!.head };
    expect(newest[S]!.deposits).to.deep.equal(net.hub[S]);
    net.parties.A.restoreFrom(copy);
    const { A } = net.parties;
    expect(A.updaters[S]!.head.deposits, "the copy counts less than the hub holds").to.not.deep.equal(net.hub[S]);
    const signed = A.signatures;
    catchUp(net); // A's tick reads the hub: the count waits, the ask goes out
    expect(A.signatures, "nothing signed while frozen").to.equal(signed);
    for (const id of [S, T]) {
      expect(A.store.frozenSince(id), `${id} thawed`).to.equal(undefined);
      expect(A.updaters[id]!.head).to.deep.equal(newest[id]);
    }
    swapMany(net, swaps, 2);
    for (const id of [S, T]) expect(A.updaters[id]!.head).to.deep.equal(net.parties.B.updaters[id]!.head);
  });

  it("takes the head although the other's batch at the floor came first (a frozen channel takes no batch numbered far above its own)", function () {
    const net = new Network(); // A proposes on S, B on T
    const swaps: Swap[] = [];
    swapMany(net, swaps, 1);
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy);
    // After the copy, B starts a swap (it locks on T first); its batch is lost on the way, and A is restored.
    const hashlock = startSwap(net, 96, "B", 5n, 4n)!;
    net.inFlight.length = 0;
    net.parties.A.restoreFrom(copy);
    const { A, B } = net.parties;
    net.clock += 6_000;
    A.tick();
    for (const p of net.inFlight.splice(0)) B.handle(p);
    // B answers with its head and its batch again at the floor; the batch arrives first.
    const answers = net.inFlight.splice(0);
    const order = [...answers.filter((p) => p.message.kind === "update"), ...answers.filter((p) => p.message.kind !== "update")];
    expect(order[0]?.message.kind, "B's batch on T at the floor").to.equal("update");
    for (const p of order) {
      try {
        A.handle(p);
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
      }
    }
    for (const id of [S, T]) expect(A.store.frozenSince(id), `${id} thawed at the first answer`).to.equal(undefined);
    // B's lock of a swap A's copy does not know is refused for good; B undoes the swap, and both go on.
    heal(net);
    expect(outcome(B.swaps.get(hashlock)!)).to.equal("undone");
    swapMany(net, swaps, 2);
    for (const id of [S, T]) expect(A.updaters[id]!.head).to.deep.equal(B.updaters[id]!.head);
  });

  it("a resume whose floor is not a whole second's is refused: a peer cannot make a proposer sign its batch again for each resume it sends", function () {
    const { net, seq } = batchInFlight();
    const { A } = net.parties;
    // B (hostile) keeps A's batch and sends resumes, each a little above the batch's number.
    const before = A.signatures;
    let refused = 0;
    for (let i = 1n; i <= 20n; i++) {
      try {
        A.handle({ from: "B", channelId: S, message: { kind: "resume", floor: seq + i } });
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
        expect(error.message).to.match(/not a floor/);
        refused++;
      }
    }
    expect(refused).to.equal(20);
    expect(A.signatures - before, "no signature for a resume that is not a floor").to.equal(0);
    // A true floor (of a second both clocks passed) still gives the batch up and signs it again at the floor, once.
    const floor = resumeFloor(BigInt(Math.floor(net.clock / 1000)));
    A.handle({ from: "B", channelId: S, message: { kind: "resume", floor } });
    A.handle({ from: "B", channelId: S, message: { kind: "resume", floor } });
    expect(A.signatures - before).to.equal(1);
    expect(A.updaters[S]!.inFlight!.state.seq).to.equal(floor);
  });

  it("answers a resume once per floor: a peer repeating one gets no more copies of the head (up to 256 locks each) for it", function () {
    const net = new Network(); // A proposes on S
    const { A } = net.parties;
    startSwap(net, 1, "A", 5n, 4n);
    heal(net);
    net.inFlight.length = 0;
    const floor = resumeFloor(BigInt(Math.floor(net.clock / 1000)));
    const heads = () => net.inFlight.filter((p) => p.from === "A" && p.channelId === S && p.message.kind === "head").length;
    for (let i = 0; i < 50; i++) A.handle({ from: "B", channelId: S, message: { kind: "resume", floor } });
    expect(heads(), "one head for one floor asked 50 times").to.equal(1);
    // An older floor is answered no more; the next ask (a later second's floor) is.
    A.handle({ from: "B", channelId: S, message: { kind: "resume", floor: floor - (1n << 20n) } });
    expect(heads()).to.equal(1);
    net.clock += 1_000;
    A.handle({ from: "B", channelId: S, message: { kind: "resume", floor: resumeFloor(BigInt(Math.floor(net.clock / 1000))) } });
    expect(heads()).to.equal(2);
  });

  it("answers at most one resume a second on a channel: a peer walking the floors up a second at a time, from far below its clock, gets no head or signature for each", function () {
    const { net, seq } = batchInFlight();
    const { A } = net.parties;
    // B (hostile) keeps A's batch and sends resumes at once, each the floor of the second after the last one's, from
    // just above A's batch: seconds of 1970, every one of them below A's clock.
    const second = (seq >> 20n) + 1n;
    const heads = () => net.inFlight.filter((p) => p.from === "A" && p.channelId === S && p.message.kind === "head").length;
    const before = A.signatures;
    for (let i = 0n; i < 50n; i++) A.handle({ from: "B", channelId: S, message: { kind: "resume", floor: resumeFloor(second + i) } });
    expect(heads(), "heads for 50 floors asked within one second").to.equal(1);
    expect(A.signatures - before, "A's batch signed again for 50 floors within one second").to.equal(1);
    // A second later by A's clock, the next is answered.
    net.clock += 1_000;
    A.handle({ from: "B", channelId: S, message: { kind: "resume", floor: resumeFloor(second + 50n) } });
    expect(heads()).to.equal(2);
  });

  it("with its watchtower's store kept, does not catch up from a head older than the tower's newest; says to force-close", function () {
    const net = new Network();
    const swaps: Swap[] = [];
    net.parties.A.towerKept = true;
    swapMany(net, swaps, 2);
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy);
    swapMany(net, swaps, 4);
    const { A, B } = net.parties;
    const newest = B.updaters[S]!.head;
    expect(A.towerNewest[S]).to.equal(newest.seq);
    A.restoreFrom(copy); // the tower's store stays
    const copyHead = A.updaters[S]!.head.seq;
    let older: ReturnType<typeof B.store.coSignedAt>;
    for (let seq = newest.seq - 1n; seq > copyHead && older === undefined; seq--) {
      const at = B.store.coSignedAt(S, seq);
      if (at !== undefined && at.state.locks.length === 0) older = at;
    }
    expect(older, "an older co-signed state of S, newer than the copy").to.not.equal(undefined);
    net.intercept.A = (p: Packet) => {
      if (p.channelId !== S || p.message.kind !== "head") return false;
      A.handle({ ...p, message: { ...p.message, state: older!.state, signatures: older!.signatures } as UpdateMessage });
      return true;
    };
    const signed = A.signatures;
    catchUp(net);
    net.intercept.A = undefined;
    expect(A.store.frozenSince(S), "S stays frozen").to.be.a("number");
    expect(A.updaters[S]!.head.seq).to.equal(copyHead);
    expect(A.pair.resumeState(S)!.problem).to.match(new RegExp(`shows state ${older!.state.seq}, older than state ${newest.seq} .*watchtower holds; force-close it`));
    expect(A.store.frozenSince(T), "T, shown its newest, catches up").to.equal(undefined);
    expect(A.signatures).to.equal(signed);
    // Shown the newest at the next ask, S catches up.
    catchUp(net);
    expect(A.store.frozenSince(S)).to.equal(undefined);
    expect(A.updaters[S]!.head).to.deep.equal(newest);
  });

  it("does not undo a swap of the copy that held no lock in it (its fate after the copy is not known): its channels stay frozen", function () {
    const net = new Network(); // A proposes on S, B on T
    const swaps: Swap[] = [];
    swapMany(net, swaps, 1);
    // A swap agreed, nothing of it co-signed yet, when the copy is taken; the lost process sees it through after.
    const hashlock = startSwap(net, 98, "A", 5n, 4n)!;
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy);
    heal(net);
    const { B } = net.parties;
    expect(outcome(B.swaps.get(hashlock)!), "swapped at B").to.equal("swapped");
    net.parties.A.restoreFrom(copy);
    const { A } = net.parties;
    expect(A.swaps.get(hashlock)!.source, "no lock of it in the copy").to.equal("none");
    // A client undoes a swap that made no progress within its timeout: not one of a frozen channel.
    A.cancelSwap(hashlock);
    expect(settled(A.swaps.get(hashlock)!), "still open at A").to.equal(false);
    catchUp(net);
    for (const id of [S, T]) {
      expect(A.store.frozenSince(id), `${id} stays frozen`).to.be.a("number");
      expect(A.pair.resumeState(id)!.problem).to.match(/1 swap\(s\) of the copy use it; force-close it/);
    }
  });

  it("does not undo a swap of the copy for a refusal of what the copy asked for (the peer saw it through after the copy)", function () {
    const net = new Network(DEPOSIT, { [S]: "B", [T]: "B" }); // B proposes on both: A asks for its S lock
    const swaps: Swap[] = [];
    swapMany(net, swaps, 1);
    const hashlock = startSwap(net, 97, "A", 5n, 4n)!;
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy); // A's request for its S lock in the copy's queue, nothing co-signed
    heal(net);
    expect(outcome(net.parties.B.swaps.get(hashlock)!), "swapped at B").to.equal("swapped");
    net.parties.A.restoreFrom(copy);
    const { A } = net.parties;
    // A resends what its copy asked for; B, done with the swap, refuses it for good.
    for (let i = 0; i < 3; i++) catchUp(net);
    expect(net.parties.B.swaps.get(hashlock)!.source).to.equal("paid");
    expect(settled(A.swaps.get(hashlock)!), "still open at A").to.equal(false);
    for (const id of [S, T]) expect(A.store.frozenSince(id), `${id} stays frozen`).to.be.a("number");
  });

  it("a channel with a swap of the copy still open on it, and a store moved away, never ask to catch up", function () {
    const net = new Network();
    const swaps: Swap[] = [];
    swapMany(net, swaps, 1);
    // A swap agreed and its S lock co-signed, not finished, when the copy is taken.
    const hashlock = startSwap(net, 99, "A", 5n, 4n)!;
    for (let i = 0; i < 3 && net.inFlight.length > 0; i++) net.deliver(0);
    const copy = join(net.dir, "A.copy.sqlite");
    net.parties.A.backup(copy);
    heal(net);
    net.parties.A.restoreFrom(copy);
    const { A } = net.parties;
    expect(settled(A.swaps.get(hashlock)!)).to.equal(false);
    net.clock += 6_000;
    A.tick();
    const asked = net.inFlight.filter((p) => p.message.kind === "resume").map((p) => p.channelId);
    for (const id of [S, T]) {
      expect(asked.includes(id), `${id} not asked`).to.equal(false);
      expect(A.pair.resumeState(id)!.problem).to.match(/1 swap\(s\) of the copy use it; force-close it/);
    }
    net.inFlight.length = 0;

    // A store moved to a database (its file left behind, frozen): never resumed from the file.
    const net2 = new Network();
    swapMany(net2, [], 1);
    const moved = net2.parties.A;
    moved.store.transaction(() => {
      moved.store.freezeAll(net2.clock);
      moved.store.markMovedAway("postgres://db.example/alice");
    });
    net2.clock += 2_000;
    moved.crash();
    net2.clock += 2_000;
    moved.tick();
    expect(net2.inFlight.filter((p) => p.message.kind === "resume")).to.have.length(0);
    expect(moved.pair.resumeState(S)!.problem).to.match(/moved to postgres:\/\/db.example\/alice/);
  });
});

describe("a client (SwapClient) restored from an old copy of its store catches up on its ticks", function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "catchup-client-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("asks and catches up although the hub holds deposits its copy does not count (its tick offers no count on a frozen channel)", async function () {
    const setup = await fundedChannels();
    const file = join(dir, "alice.sqlite");
    const { link, clock, alice, bob } = await twoParties(setup, { stores: { alice: new Store(file) } });
    const copy = join(dir, "alice.copy.sqlite");
    await alice.store.backupTo(copy);
    // Bob deposits on S after the copy (Alice is participant 0 there, the one who offers counts): both count it.
    await setup.adapters.bobS.deposit(setup.sParams, setup.sId, 1, ONE);
    for (let i = 0; i < 5 && alice.client.book.head(setup.sId).deposits[1] !== 11n * ONE; i++) {
      await alice.client.tick();
      await bob.client.tick();
      await link.settled();
    }
    const newest = bob.client.book.head(setup.sId);
    expect(newest.deposits[1], "the deposit counted after the copy").to.equal(11n * ONE);
    // Alice's node is restarted from the copy.
    alice.store.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
    copyFileSync(copy, file);
    const restored = makeParty(setup, "alice", link.a, clock, {}, new Store(file));
    expect(restored.store.frozenSince(setup.sId)).to.be.a("number");
    for (let i = 0; i < 3 && restored.store.frozenSince(setup.sId) !== undefined; i++) {
      clock.advance(6_000);
      await restored.client.tick().catch(() => undefined);
      await link.settled();
    }
    expect(restored.events.filter((e) => e.type === "tickError").map((e) => (e as { error: string }).error), "no tick failed").to.deep.equal([]);
    for (const id of [setup.sId, setup.tId]) expect(restored.store.frozenSince(id), `${id} caught up`).to.equal(undefined);
    expect(restored.client.book.head(setup.sId)).to.deep.equal(newest);
    restored.store.close();
  });

  it("does not catch up below the newest state its watchtower holds (the tower's store kept beside the copy)", async function () {
    const setup = await fundedChannels();
    const file = join(dir, "alice.sqlite");
    // Alice's watchtower: what a Watchtower keeps of each channel's newest co-signed state, in a store of its own.
    const tower = new Map<string, bigint>();
    const watchtower = {
      signed: () => undefined,
      update: (c: { state: ChannelState }) => void (c.state.seq > (tower.get(c.state.channelId.toLowerCase()) ?? -1n) && tower.set(c.state.channelId.toLowerCase(), c.state.seq)),
      addSecret: () => undefined,
      newest: (id: Hex) => tower.get(id.toLowerCase()),
    };
    const { link, clock, alice } = await twoParties(setup, { stores: { alice: new Store(file) }, alice: { watchtower } });
    const copy = join(dir, "alice.copy.sqlite");
    await alice.store.backupTo(copy);
    const shown = alice.client.book.head(setup.sId).seq;
    alice.store.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
    copyFileSync(copy, file);
    // The tower holds a newer state of S than the peer shows (a peer hiding its newest): S stays frozen, T catches up.
    tower.set(setup.sId.toLowerCase(), shown + 1n);
    const restored = makeParty(setup, "alice", link.a, clock, { watchtower }, new Store(file));
    for (let i = 0; i < 3 && restored.store.frozenSince(setup.tId) !== undefined; i++) {
      clock.advance(6_000);
      await restored.client.tick();
      await link.settled();
    }
    expect(restored.store.frozenSince(setup.tId), "T caught up").to.equal(undefined);
    expect(restored.store.frozenSince(setup.sId), "S stays frozen").to.be.a("number");
    expect(restored.client.catchUpState(setup.sId)?.problem).to.match(new RegExp(`shows state ${shown}, older than state ${shown + 1n} .*watchtower holds; force-close it`));
    restored.store.close();
  });

  it("gives up a proposal of the copy as it catches up: an acceptance after it never locks on a swap the peer may have seen through (and holds the secret of) after the copy", async function () {
    const setup = await fundedChannels();
    const file = join(dir, "alice.sqlite");
    const { link, clock, alice, bob } = await twoParties(setup, { stores: { alice: new Store(file) } });
    // Alice proposes; the copy is taken while her proposal waits for Bob's answer (his first one is held back).
    let acceptance: Envelope | undefined;
    link.fault = (e, from) => (from === "b" && e.body.step === "acceptances" && acceptance === undefined ? ((acceptance = e), "drop") : "deliver");
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: ONE, take: ONE / 100n });
    await link.settled();
    await alice.client.idle();
    expect(alice.client.swap(swapId).progress.phase.kind).to.equal("proposed");
    const copy = join(dir, "alice.copy.sqlite");
    await alice.store.backupTo(copy);
    // After the copy the swap goes through: Alice revealed her secret, Bob holds it.
    for (let i = 0; i < 10 && alice.client.swap(swapId).progress.phase.kind !== "done"; i++) {
      clock.advance(2_000);
      await alice.client.tick();
      await bob.client.tick();
      await link.settled();
    }
    expect(alice.client.swap(swapId).progress.phase).to.deep.include({ kind: "done", outcome: "swapped" });
    const { hashlock } = alice.client.swap(swapId).terms;
    expect(bob.store.secret(hashlock), "Bob holds the secret").to.not.equal(undefined);
    // Alice's node is restarted from the copy while chain S does not answer it: her ticks cannot check the copy's
    // proposal against S's time (its tick gives up no proposal), and Bob (hostile) holds back his answers to it.
    alice.store.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
    copyFileSync(copy, file);
    let sDown = true;
    const flakyS = new Proxy(setup.adapters.aliceS, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (!sDown || !(result instanceof Promise)) return result;
          result.catch(() => undefined);
          return Promise.reject(new Error("chain S does not answer"));
        };
      },
    });
    link.fault = (e, from) => (from === "b" && e.body.step === "acceptances" ? "drop" : "deliver");
    const restored = makeParty(setup, "alice", link.a, clock, { chains: [flakyS, setup.adapters.aliceT] }, new Store(file));
    expect(restored.client.swap(swapId).progress.phase.kind, "the copy's proposal").to.equal("proposed");
    for (let i = 0; i < 3 && restored.store.frozenSince(setup.sId) !== undefined; i++) {
      clock.advance(6_000);
      await restored.client.tick().catch(() => undefined);
      await link.settled();
    }
    expect(restored.store.frozenSince(setup.sId), "S caught up").to.equal(undefined);
    // S answers again; Bob sends the acceptance he held back.
    sDown = false;
    link.fault = () => "deliver";
    await restored.client.handle(acceptance!).catch(() => undefined);
    await link.settled();
    await restored.client.idle();
    // Every state Alice's key signed since the restore (her copy held none with the swap's lock): one holding its lock
    // is one Bob can countersign and claim on chain with the secret he holds, for nothing in return.
    const db = new DatabaseSync(file, { readOnly: true });
    const withLock = (db.prepare("SELECT seq, state FROM own_signatures WHERE channel_id = ?").all(setup.sId.toLowerCase()) as { seq: string; state: string }[])
      .filter((r) => r.state.toLowerCase().includes(hashlock.slice(2).toLowerCase()))
      .map((r) => r.seq);
    db.close();
    expect(withLock, "states Alice signed after the catch-up holding the lock of the copy's swap").to.deep.equal([]);
    expect(restored.client.swap(swapId).progress.phase).to.deep.include({ kind: "done", outcome: "aborted" });
    restored.store.close();
  });
});
