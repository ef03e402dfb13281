/**
 * The batched update scheme and the swap rules (sdk/core/channel-updates.ts, sdk/core/swap-rules.ts) under random
 * interleavings: two parties, one channel pair (A proposes on S, B proposes on T), 50+ swaps in both directions in
 * flight at once, every message signed with real ECDSA keys; messages dropped, duplicated and reordered, a party
 * crashing with what it had not sent yet lost, cancels by either side at any moment. Then the network heals and
 * both parties tick until nothing is left to do. After every run: no party signed two states at one sequence number,
 * both hold the same head on each channel with no lock left, every swap is atomic (the S lock paid exactly when the
 * T lock was), both sides agree on every outcome, and each party's balances are its deposits moved by the swaps
 * that went through. One property restores a party from a copy of its store taken at a random moment, at a random
 * later one (what its lost process sent still on the way): neither key signs two states at one number, the other
 * party stays whole on chain, and once the restored party caught up and both came to rest, swaps are atomic and
 * balances whole (docs/SWAP.md, "Catching up after a restore").
 */
import { expect } from "chai";
import fc from "fast-check";

import { sha256 } from "ethers";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

import { applyChanges, type Change, type UpdateMessage } from "../../sdk/core/channel-updates.js";
import { InvalidMessageError } from "../../sdk/core/errors.js";
import { openingState, sameState } from "../../sdk/core/state.js";
import { hashlockOf } from "../../sdk/core/swap.js";
import { outcome, settled, sourceLock, targetLock } from "../../sdk/core/swap-rules.js";
import type { ChannelState, Hex } from "../../sdk/core/types.js";
import { ChannelFrozenError } from "../../sdk/coordinator/errors.js";
import { checkFinals, checkRun, CROSSED, DEPOSIT, heal, Network, onChainViolations, other, S, startSwap, T, type Layout, type Name, type Packet } from "../../scripts/lib/batched-pair.js";

type Op =
  | { op: "start"; initiator: Name; give: number; take: number }
  | { op: "deliver"; at: number }
  | { op: "duplicate"; at: number }
  | { op: "drop"; at: number }
  | { op: "crash"; who: Name }
  | { op: "tick"; who: Name }
  | { op: "cancel"; who: Name; swap: number }
  | { op: "deposit"; who: Name; onS: boolean; amount: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("start" as const), initiator: fc.constantFrom<Name>("A", "B"), give: fc.integer({ min: 1, max: 20 }), take: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant("deliver" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicate" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("crash" as const), who: fc.constantFrom<Name>("A", "B") }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), who: fc.constantFrom<Name>("A", "B") }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cancel" as const), who: fc.constantFrom<Name>("A", "B"), swap: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("deposit" as const), who: fc.constantFrom<Name>("A", "B"), onS: fc.boolean(), amount: fc.integer({ min: 1, max: 50 }) }) },
);

/** Runs one of the ops both properties share: the network's faults, crashes, ticks, cancels and deposits. */
function faultOp(net: Network, o: Exclude<Op, { op: "start" | "deliver" }>, swaps: readonly { hashlock: string }[]): void {
  switch (o.op) {
    case "duplicate":
      net.duplicate(o.at);
      break;
    case "drop":
      if (net.inFlight.length > 0) net.inFlight.splice(o.at % net.inFlight.length, 1);
      break;
    case "crash":
      // The party stops right after its last step committed: what that step had not sent yet is lost, and the party
      // starts again from its store file.
      net.parties[o.who].crash();
      net.parties[o.who].tick();
      break;
    case "tick":
      net.parties[o.who].tick();
      break;
    case "cancel":
      if (swaps.length > 0) net.parties[o.who].cancelSwap(swaps[o.swap % swaps.length]!.hashlock);
      break;
    case "deposit":
      net.depositOnChain(o.who, o.onS ? S : T, BigInt(o.amount));
      break;
  }
}

/** In half the runs, one party asks to close the pair cooperatively at some point (`at` modulo the ops, or at the end). */
const closeArb = fc.option(fc.record({ at: fc.nat(), who: fc.constantFrom<Name>("A", "B") }), { freq: 2 });

describe("many swaps at once on one channel pair: batched updates under faults, each party on its own SQLite store", function () {
  this.timeout(600_000);
  afterEach(() => Network.closeAll());

  it("keeps every swap atomic, never double-signs, counts every deposit, and leaves both parties with the same heads, final if the pair was closed", function () {
    let swapped = 0;
    let undone = 0;
    let closedRuns = 0;
    let deposits = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 300, maxLength: 600 }), fc.integer({ min: 50, max: 70 }), fc.constantFrom<Layout>(CROSSED, { [S]: "A", [T]: "A" }, { [S]: "B", [T]: "B" }, { [S]: "B", [T]: "A" }), closeArb, (ops, atLeast, layout, closing) => {
        const net = new Network(DEPOSIT, layout);
        const swaps: { hashlock: string; initiator: Name; give: bigint; take: bigint }[] = [];
        let n = 0;
        const start = (initiator: Name, give: number, take: number) => {
          const hashlock = startSwap(net, n++, initiator, BigInt(give), BigInt(take));
          if (hashlock !== undefined) swaps.push({ hashlock, initiator, give: BigInt(give), take: BigInt(take) });
        };
        const closeAt = closing === null ? -1 : closing.at % (ops.length + 1);
        const closePair = () => net.parties[closing!.who].closePair();
        for (const [i, o] of ops.entries()) {
          if (i === closeAt) closePair();
          switch (o.op) {
            case "deposit":
              net.depositOnChain(o.who, o.onS ? S : T, BigInt(o.amount));
              deposits++;
              break;
            case "start":
              start(o.initiator, o.give, o.take);
              break;
            case "deliver":
              if (net.inFlight.length > 0) net.deliver(o.at);
              break;
            default:
              faultOp(net, o, swaps);
          }
        }
        // At least `atLeast` swaps in flight together: start the rest now, before anything heals.
        while (swaps.length < atLeast && n < 4 * atLeast) start(swaps.length % 2 === 0 ? "A" : "B", 1 + (swaps.length % 7), 1 + (swaps.length % 5));
        for (let i = 0; i < 200 && net.inFlight.length > 0; i++) net.deliver(i * 7919);
        if (closeAt === ops.length) closePair();
        heal(net);
        checkRun(net, swaps, closing !== null);
        if (closing !== null) closedRuns++;
        for (const s of swaps) {
          if (outcome(net.parties.A.swaps.get(s.hashlock)!) === "swapped") swapped++;
          else undone++;
        }
      }),
      { numRuns: Number(process.env.BATCH_RUNS ?? 40) },
    );
    // The runs exercised both endings, closes and deposits, and many swaps went through.
    expect(swapped).to.be.greaterThan(500);
    expect(undone).to.be.greaterThan(10);
    expect(closedRuns).to.be.greaterThan(0);
    expect(deposits).to.be.greaterThan(0);
  });

  it("across a restore from an old copy (taken at any moment, restored at any later one), never signs two states at one number, keeps the other whole on chain, and after the catch-up keeps swaps atomic and balances whole", function () {
    type RestoreOp = Op | { op: "clock"; seconds: number };
    const restoreOpArb: fc.Arbitrary<RestoreOp> = fc.oneof(
      { weight: 12, arbitrary: opArb },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("clock" as const), seconds: fc.integer({ min: 1, max: 7 }) }) },
    );
    /** Every state a party's key signed, by channel and number (its store's double-sign guard, read beside it). */
    const ownRows = (net: Network, who: Name): Map<string, string> => {
      const db = new DatabaseSync(join(net.dir, `${who}.sqlite`), { readOnly: true });
      try {
        const rows = db.prepare("SELECT channel_id, seq, digest FROM own_signatures").all() as { channel_id: string; seq: string; digest: string }[];
        return new Map(rows.map((r) => [`${r.channel_id}/${r.seq}`, r.digest]));
      } finally {
        db.close();
      }
    };
    let caughtUp = 0;
    let checkedWhole = 0;
    let swapped = 0;
    fc.assert(
      fc.property(
        fc.array(restoreOpArb, { minLength: 20, maxLength: 120 }),
        fc.array(restoreOpArb, { minLength: 0, maxLength: 120 }),
        fc.array(restoreOpArb, { minLength: 0, maxLength: 80 }),
        fc.constantFrom<Name>("A", "B"),
        fc.constantFrom<Layout>(CROSSED, { [S]: "A", [T]: "A" }, { [S]: "B", [T]: "B" }),
        fc.boolean(),
        fc.boolean(),
        (before, between, after, restored, layout, copyAtRest, restoreAtRest) => {
          const net = new Network(DEPOSIT, layout);
          const swaps: { hashlock: string; initiator: Name; give: bigint; take: bigint }[] = [];
          let n = 0;
          const R = net.parties[restored];
          const P = net.parties[other(restored)];
          const frozen = () => [S, T].some((id) => R.store.frozenSince(id) !== undefined);
          /** A message the receiver refuses is dropped, as a transport does: one not of the protocol, or one a frozen channel cannot sign for. */
          const deliver = (at: number) => {
            try {
              net.deliver(at);
            } catch (error) {
              if (!(error instanceof InvalidMessageError || error instanceof ChannelFrozenError)) throw error;
            }
          };
          const deliverAll = () => {
            for (let i = 0; i < 10_000 && net.inFlight.length > 0; i++) deliver(0);
          };
          const run = (ops: readonly RestoreOp[]) => {
            for (const o of ops) {
              switch (o.op) {
                case "start": {
                  // A node refuses a swap naming a frozen channel (Session.validateTerms) before anything is agreed.
                  if (frozen()) break;
                  const hashlock = startSwap(net, n++, o.initiator, BigInt(o.give), BigInt(o.take));
                  if (hashlock !== undefined) swaps.push({ hashlock, initiator: o.initiator, give: BigInt(o.give), take: BigInt(o.take) });
                  break;
                }
                case "deliver":
                  if (net.inFlight.length > 0) deliver(o.at);
                  break;
                case "duplicate":
                case "drop":
                case "crash":
                case "tick":
                case "cancel":
                case "deposit":
                  faultOp(net, o, swaps);
                  break;
                case "clock":
                  net.clock += o.seconds * 1000;
                  break;
              }
            }
          };
          /** Delivers, moves the clock past the next ask and ticks both until nothing moves; undoes swaps left at rest. */
          const settle = () => {
            let quiet = 0;
            for (let round = 0; round < 60 && quiet < 2; round++) {
              const before = JSON.stringify([R.updaters, P.updaters, [...R.swaps.values()], [...P.swaps.values()], [S, T].map((id) => R.store.frozenSince(id))], (_, v) => (typeof v === "bigint" ? `${v}` : v));
              deliverAll();
              net.clock += 6_000;
              R.tick();
              P.tick();
              deliverAll();
              const after = JSON.stringify([R.updaters, P.updaters, [...R.swaps.values()], [...P.swaps.values()], [S, T].map((id) => R.store.frozenSince(id))], (_, v) => (typeof v === "bigint" ? `${v}` : v));
              if (before !== after) {
                quiet = 0;
                continue;
              }
              // At rest: what is still open times out and is undone, as a client does after its confirmation timeout.
              const open = [R, P].flatMap((p) => [...p.swaps.entries()].filter(([, x]) => !settled(x) && !x.cancelled).map(([k]) => [p, k] as const));
              for (const [p, k] of open) p.cancelSwap(k);
              quiet = open.length === 0 ? quiet + 1 : 0;
            }
          };
          run(before);
          if (copyAtRest) settle();
          const copy = join(net.dir, "copy.sqlite");
          R.backup(copy);
          run(between);
          if (restoreAtRest) settle();
          // Every state R's key signed before the restore: the copy may lack some, the lost store holds them all.
          const lost = ownRows(net, restored);
          R.restoreFrom(copy); // what the lost process sent and was not delivered yet stays on the way
          run(after);
          settle();

          // 1. Neither key signed two states at one number: R's across its lost store and its store now.
          const now = ownRows(net, restored);
          for (const [k, digest] of lost) {
            const again = now.get(k);
            if (again !== undefined) expect(again, `${restored} signed two states at ${k}`).to.equal(digest);
          }
          // 2. The party that was not restored is whole on chain, whatever R registers.
          expect(onChainViolations(net, P.name), `${P.name} on chain`).to.deep.equal([]);
          // Numbers R signed since the restore are above every number its key used before.
          const restoredSince = [...now.keys()].filter((k) => !lost.has(k));
          for (const id of [S, T]) {
            const usedBefore = [...lost.keys()].filter((k) => k.startsWith(id.toLowerCase())).map((k) => BigInt(k.split("/")[1]!));
            const highest = usedBefore.reduce((a, b) => (a > b ? a : b), -1n);
            const since = restoredSince.filter((k) => k.startsWith(id.toLowerCase())).map((k) => BigInt(k.split("/")[1]!));
            for (const seq of since) expect(seq > highest, `${restored} signed ${seq} on ${id} after the restore, not above ${highest}`).to.equal(true);
          }
          if (frozen()) return;
          caughtUp++;
          // 3. Caught up and at rest: both hold the same heads; every swap is settled and atomic on both sides, the
          // outcomes agree where R still knows the swap, and balances are the deposits moved by the swaps P saw go
          // through (P lost nothing).
          if ([R, P].some((p) => [...p.swaps.values()].some((x) => !settled(x)))) return;
          checkedWhole++;
          for (const id of [S, T]) {
            const [hr, hp] = [R.updaters[id]!.head, P.updaters[id]!.head];
            expect(sameState(hr, hp), `the same head of ${id}`).to.equal(true);
            expect(hp.locks.length).to.equal(0);
            expect(hp.balances[0] + hp.balances[1]).to.equal(hp.deposits[0] + hp.deposits[1]);
          }
          const expected: Record<Name, Record<string, bigint>> = { A: {}, B: {} };
          for (const who of ["A", "B"] as const) for (const id of [S, T]) expected[who][id] = P.updaters[id]!.head.deposits[net.index(who, id)];
          for (const s of swaps) {
            const p = P.swaps.get(s.hashlock)!;
            expect(p.source === "paid", `swap ${s.hashlock} atomic at ${P.name}`).to.equal(p.target === "paid");
            const r = R.swaps.get(s.hashlock);
            if (r !== undefined) {
              expect(r.source === "paid", `swap ${s.hashlock} atomic at ${R.name}`).to.equal(r.target === "paid");
              expect(outcome(r), `both agree on ${s.hashlock}`).to.equal(outcome(p));
            }
            if (outcome(p) !== "swapped") continue;
            swapped++;
            const [source, target] = s.initiator === "A" ? [S, T] : [T, S];
            const [i, x] = [s.initiator, other(s.initiator)];
            expected[i][source] = expected[i][source]! - s.give;
            expected[x][source] = expected[x][source]! + s.give;
            expected[x][target] = expected[x][target]! - s.take;
            expected[i][target] = expected[i][target]! + s.take;
          }
          for (const id of [S, T]) {
            const head = P.updaters[id]!.head;
            for (const who of ["A", "B"] as const) expect(head.balances[net.index(who, id)], `${who} on ${id}`).to.equal(expected[who][id]);
          }
        },
      ),
      { numRuns: Number(process.env.RESTORE_RUNS ?? 60) },
    );
    // The runs caught up often, and swaps went through after a catch-up.
    expect(caughtUp).to.be.greaterThan(10);
    expect(checkedWhole).to.be.greaterThan(10);
    expect(swapped).to.be.greaterThan(40);
  });

  it("leaves an honest party whole on chain when the other goes silent at any moment, whatever state it registers", function () {
    let checked = 0;
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 50, maxLength: 400 }),
        fc.constantFrom<Layout>(CROSSED, { [S]: "A", [T]: "A" }, { [S]: "B", [T]: "B" }, { [S]: "B", [T]: "A" }),
        (ops, layout) => {
          const net = new Network(DEPOSIT, layout);
          let n = 0;
          for (const o of ops) {
            if (o.op === "start") startSwap(net, n++, o.initiator, BigInt(o.give), BigInt(o.take));
            else if (o.op === "deliver" && net.inFlight.length > 0) net.deliver(o.at);
            else if (o.op === "duplicate") net.duplicate(o.at);
            else if (o.op === "drop" && net.inFlight.length > 0) net.inFlight.splice(o.at % net.inFlight.length, 1);
            else if (o.op === "crash") net.parties[o.who].crash();
            else if (o.op === "tick") net.parties[o.who].tick();
            else if (o.op === "cancel" && n > 0) {
              const keys = [...net.parties[o.who].swaps.keys()];
              if (keys.length > 0) net.parties[o.who].cancelSwap(keys[o.swap % keys.length]!);
            }
          }
          // Here the other party stops answering; each side in turn is the honest one that goes on chain.
          for (const honest of ["A", "B"] as const) {
            expect(onChainViolations(net, honest), `${honest} on chain`).to.deep.equal([]);
            checked += net.parties[honest].swaps.size;
          }
        },
      ),
      { numRuns: Number(process.env.BATCH_RUNS ?? 100) },
    );
    expect(checked).to.be.greaterThan(500);
  });

  it("signs far fewer states than swap steps when many swaps share a batch", function () {
    const net = new Network();
    const swaps: { hashlock: string; initiator: Name; give: bigint; take: bigint }[] = [];
    for (let n = 0; n < 200; n++) {
      const initiator: Name = n % 2 === 0 ? "A" : "B";
      swaps.push({ hashlock: startSwap(net, n, initiator, 2n, 3n)!, initiator, give: 2n, take: 3n });
    }
    heal(net);
    checkRun(net, swaps);
    const perSwap = (net.parties.A.signatures + net.parties.B.signatures) / swaps.length;
    // Four changes per swap, two signatures per batch: well under one signature per swap when batches are full.
    expect(perSwap).to.be.lessThan(1);
  });

  it("never lets the proposer sign a second state at a sequence number it used, even after a refusal", function () {
    const net = new Network();
    const { A, B } = net.parties;
    // B refuses A's first batch for good (A proposes on S): A undoes that swap, and its next batch takes a new number.
    let refusedAt: bigint | undefined;
    net.intercept.B = (p) => {
      if (refusedAt !== undefined || p.message.kind !== "update") return false;
      refusedAt = p.message.seq;
      net.send({ from: "B", channelId: p.channelId, message: { kind: "refuse", seq: p.message.seq, refusals: p.message.changes.map((_, index) => ({ index, final: true, reason: "no" })) } });
      return true;
    };
    const first = startSwap(net, 1, "A", 4n, 4n)!;
    net.deliverAll();
    expect(refusedAt).to.equal(1n);
    expect(A.swaps.get(first)!.cancelled, "A undid the swap B refused").to.equal(true);
    const second = startSwap(net, 2, "A", 4n, 4n)!;
    heal(net);
    expect(A.updaters[S]!.head.seq).to.be.greaterThan(refusedAt!);
    expect(B.updaters[S]!.head.seq).to.equal(A.updaters[S]!.head.seq);
    checkRun(net, [
      { hashlock: first, initiator: "A", give: 4n, take: 4n },
      { hashlock: second, initiator: "A", give: 4n, take: 4n },
    ]);
    net.close();
  });
});

describe("batched updates against a hostile counterparty and odd inputs", function () {
  this.timeout(120_000);
  afterEach(() => Network.closeAll());
  const settle = (net: Network) => {
    net.deliverAll();
    heal(net);
  };

  it("never adds a swap's lock a second time, whoever asks and however late a copy comes", function () {
    for (const layout of [CROSSED, { [S]: "A", [T]: "A" }] as Layout[]) {
      for (const initiator of ["A", "B"] as const) {
        const net = new Network(DEPOSIT, layout);
        const hashlock = startSwap(net, 1, initiator, 10n, 20n)!;
        // Keep a copy of every request and update on the way: replayed after the swap, none may change a head.
        const seen: Packet[] = [];
        for (let i = 0; i < 10_000 && net.inFlight.length > 0; i++) {
          seen.push({ ...net.inFlight[0]! });
          net.deliver(0);
        }
        heal(net);
        const heads = [S, T].map((id) => net.parties.A.updaters[id]!.head);
        const side = net.parties.A.swaps.get(hashlock)!;
        // What a hostile party would ask for: each lock of the swap again.
        for (const from of ["A", "B"] as const) {
          for (const [id, lock] of [[side.terms.source.channelId, sourceLock(side)], [side.terms.target.channelId, targetLock(side)]] as const) {
            const toProposer = net.index(from, id) === 1;
            if (toProposer) net.send({ from, channelId: id, message: { kind: "request", changes: [{ kind: "add", lock }] } });
          }
        }
        for (const p of seen) net.send(p);
        settle(net);
        [S, T].forEach((id, i) => expect(net.parties.A.updaters[id]!.head.balances, `${id} after replays`).to.deep.equal(heads[i]!.balances));
        checkRun(net, [{ hashlock, initiator, give: 10n, take: 20n }]);
      }
    }
  });

  it("never gives the source lock back while a refused batch with the target lock could still be enforced", function () {
    // B proposes on T (crossed layout) and is the responder; A, hostile, signs B's target-lock batch, keeps both
    // signatures, answers "refuse", then cancels and asks for its source lock back.
    for (const final of [true, false]) {
      const net = new Network();
      const hashlock = startSwap(net, 1, "A", 10n, 20n)!;
      const A = net.parties.A;
      let kept: ChannelState | undefined;
      net.intercept.A = (p) => {
        if (p.channelId !== T || p.message.kind !== "update") return false;
        const m = p.message;
        if (kept === undefined) kept = applyChanges(A.updaters[T]!.head, m.changes, m.seq);
        net.send({ from: "A", channelId: T, message: { kind: "refuse", seq: m.seq, refusals: m.changes.map((_, index) => ({ index, final, reason: "no" })) } });
        return true;
      };
      net.deliverAll();
      expect(kept?.locks.length, "A holds a co-signable state with B's lock").to.equal(1);
      A.cancelSwap(hashlock);
      net.deliverAll();
      for (let i = 0; i < 5; i++) {
        net.parties.A.tick();
        net.parties.B.tick();
        net.deliverAll();
      }
      const b = net.parties.B;
      // B still holds A's lock on S: if A takes B's lock on chain with the secret, B claims A's with it.
      expect(b.updaters[S]!.head.locks.map((l) => l.hashlock)).to.deep.equal([hashlock]);
      expect(b.swaps.get(hashlock)!.source).to.equal("locked");
    }
  });

  it("signs no count of deposits beyond what its own reading of the hub holds (a hostile proposer, a slow final block)", function () {
    const net = new Network(); // A proposes on S
    const { A, B } = net.parties;
    /** A's batch on S counting `deposits`, signed with A's key, as a hostile A would send it. */
    const count = (deposits: readonly [bigint, bigint]): UpdateMessage => {
      const head = A.updaters[S]!.head;
      const seq = A.updaters[S]!.signedSeq + 1n;
      const state = applyChanges(head, [{ kind: "deposits", deposits }], seq);
      return { kind: "update", base: head.seq, seq, changes: [{ kind: "deposits", deposits }], signature: A.signRaw(state) };
    };
    const answer = (message: UpdateMessage) => {
      B.handle({ from: "A", channelId: S, message });
      const reply = net.inFlight.splice(0).find((p) => p.from === "B")?.message;
      return { reply: reply?.kind, signed: B.store.ownSignedAt(S, (message as { seq: bigint }).seq) !== undefined };
    };
    // More than the hub holds: refused ("not yet"), nothing signed.
    expect(answer(count([DEPOSIT, DEPOSIT + 100n]))).to.deep.equal({ reply: "refuse", signed: false });
    // Deposited on chain, but B has not read the hub since: still refused.
    net.depositOnChain("B", S, 100n);
    expect(answer(count([DEPOSIT, DEPOSIT + 100n]))).to.deep.equal({ reply: "refuse", signed: false });
    // Once B read it (a tick), the honest count goes through: B signs it and both heads count it.
    B.tick();
    A.tick();
    net.deliverAll();
    heal(net);
    expect(B.updaters[S]!.head.deposits).to.deep.equal([DEPOSIT, DEPOSIT + 100n]);
    expect(B.updaters[S]!.head.balances).to.deep.equal([DEPOSIT, DEPOSIT + 100n]);
    expect(A.updaters[S]!.head).to.deep.equal(B.updaters[S]!.head);
  });

  it("refuses a close while a lock is left, and signs nothing after a final state", function () {
    const net = new Network(); // A proposes on S
    const { A, B } = net.parties;
    const hashlock = startSwap(net, 1, "A", 10n, 20n)!;
    // Deliver until B holds A's S lock co-signed.
    for (let i = 0; i < 20 && B.updaters[S]!.head.locks.length === 0; i++) net.deliver(0);
    const head = B.updaters[S]!.head;
    expect(head.locks.length, "a lock on S").to.be.greaterThan(0);
    const crafted = (changes: readonly Change[], base: ChannelState): UpdateMessage => {
      const seq = A.updaters[S]!.signedSeq + 5n;
      // A hostile A's signature, on the head at that number: enough for B to answer (a batch it cannot apply).
      const state = { ...base, seq };
      return { kind: "update", base: base.seq, seq, changes, signature: A.signRaw(state) };
    };
    const close = crafted([{ kind: "close" }], head);
    B.handle({ from: "A", channelId: S, message: close });
    expect(B.store.ownSignedAt(S, (close as { seq: bigint }).seq), "a final state with a lock").to.equal(undefined);
    net.inFlight.length = 0;
    // The honest close: the swap completes first, then both channels end final, the same on both sides.
    A.closePair();
    heal(net);
    checkRun(net, [{ hashlock, initiator: "A", give: 10n, take: 20n }], true);
    // After the final state, nothing more is signed: not a count of deposits, not another close.
    const final = B.updaters[S]!.head;
    net.depositOnChain("B", S, 5n);
    B.tick();
    const after = { kind: "update" as const, base: final.seq, seq: final.seq + 1n, changes: [{ kind: "deposits" as const, deposits: [DEPOSIT, DEPOSIT + 5n] as const }], signature: A.signRaw({ ...final, seq: final.seq + 1n }) };
    B.handle({ from: "A", channelId: S, message: after });
    expect(B.store.ownSignedAt(S, final.seq + 1n)).to.equal(undefined);
    expect(B.updaters[S]!.head).to.deep.equal(final);
  });

  it("never moves value after signing a final state the other refused (it may hold it co-signed and land it later)", function () {
    for (const final of [true, false]) {
      const net = new Network(DEPOSIT, { [S]: "B", [T]: "A" }); // A proposes on T
      const { A, B } = net.parties;
      // B (hostile) asks A to close T, keeps A's final state, and refuses it.
      net.send({ from: "B", channelId: T, message: { kind: "request", changes: [{ kind: "close" }] } });
      net.deliver(0);
      const update = net.inFlight.find((p) => p.from === "A" && p.message.kind === "update")!.message as Extract<UpdateMessage, { kind: "update" }>;
      expect(update.changes.map((c) => c.kind)).to.deep.equal(["close"]);
      net.inFlight.length = 0;
      A.handle({ from: "B", channelId: T, message: { kind: "refuse", seq: update.seq, refusals: [{ index: 0, final, reason: "no" }] } });
      // A's T stays closing: a swap started now is undone, and A signs nothing on T but closes.
      expect(A.pair.closing(T), "closing after the refusal").to.equal(true);
      startSwap(net, 1, "B", 10n, 20n);
      startSwap(net, 2, "A", 10n, 20n);
      for (let i = 0; i < 50 && net.inFlight.length > 0; i++) {
        A.tick();
        B.tick();
        net.deliverAll();
      }
      checkFinals(A, T);
      expect(A.updaters[T]!.head.balances, "no value moved on T").to.deep.equal([DEPOSIT, DEPOSIT]);
    }
  });

  it("closes only the channel the other asks to close: a swap using it is undone, and the other channel goes on", function () {
    const net = new Network(); // A proposes on S, B on T
    const { A, B } = net.parties;
    const undone = startSwap(net, 1, "A", 10n, 20n)!;
    net.send({ from: "B", channelId: S, message: { kind: "request", changes: [{ kind: "close" }] } });
    heal(net);
    expect(A.updaters[S]!.head.isFinal, "S final at A").to.equal(true);
    expect(B.updaters[S]!.head).to.deep.equal(A.updaters[S]!.head);
    expect(A.updaters[T]!.head.isFinal, "T stays open").to.equal(false);
    expect(A.swaps.get(undone)!.cancelled, "the swap using S was undone").to.equal(true);
    expect(outcome(A.swaps.get(undone)!)).to.not.equal("swapped");
  });

  it("refuses a secret that is not 32 bytes, which the registry could never reveal", function () {
    const long = `0x${"ab".repeat(33)}` as Hex;
    expect(() => hashlockOf(long)).to.throw(/32 bytes/);
    const lock = { sender: 0 as const, amount: 5n, hashlock: sha256(long) as Hex, expiry: 1_999_990_000n };
    const state = { ...openingState(T, [100n, 100n]), balances: [95n, 100n] as const, locks: [lock] };
    expect(() => applyChanges(state, [{ kind: "pay", hashlock: lock.hashlock, secret: long }], state.seq + 1n)).to.throw(/32 bytes/);
  });

  it("keeps going when more changes are asked for than one message or one queue holds", function () {
    // B proposes on T; B initiates 600 swaps (more than one request message holds) whose messages are all lost, then the network heals.
    const net = new Network(100_000n);
    const swaps: { hashlock: string; initiator: Name; give: bigint; take: bigint }[] = [];
    for (let n = 0; n < 600; n++) swaps.push({ hashlock: startSwap(net, n, "B", 1n, 1n)!, initiator: "B", give: 1n, take: 1n });
    net.inFlight.length = 0;
    heal(net);
    checkRun(net, swaps);
  });

  it("keeps the initiator's secret in the store from the moment the swap is agreed, revealable only once it revealed it", function () {
    const net = new Network();
    const hashlock = startSwap(net, 1, "A", 10n, 20n)!;
    const { A, B } = net.parties;
    expect(A.store.knownSecret(hashlock as Hex)?.reveal, "the initiator's store").to.equal("held");
    expect(A.store.secret(hashlock as Hex), "what the on-chain path and a watchtower read").to.equal(undefined);
    expect(B.store.knownSecret(hashlock as Hex), "the responder knows nothing yet").to.equal(undefined);
    heal(net);
    expect(A.store.knownSecret(hashlock as Hex)?.reveal, "the initiator, once it revealed").to.equal("may");
    expect(B.store.secret(hashlock as Hex), "the responder, once paid the secret").to.equal(A.store.secret(hashlock as Hex));
  });

  it("keeps only the fields of the protocol from a peer's message, and refuses one of the wrong shape", function () {
    const net = new Network();
    const { A, B } = net.parties;
    const hashlock = startSwap(net, 1, "A", 10n, 20n)!;
    // A (proposer on S) pads its lock with a large extra field on the way: B stores the lock without it.
    const [p] = net.inFlight.splice(0, 1);
    expect(p?.message.kind).to.equal("update");
    const m = p!.message as Extract<UpdateMessage, { kind: "update" }>;
    const padded = { ...m, changes: m.changes.map((c) => (c.kind === "add" ? { ...c, lock: { ...c.lock, junk: "x".repeat(100_000) } } : c)) };
    B.handle({ from: "A", channelId: S, message: padded as never });
    expect(Object.keys(B.updaters[S]!.head.locks[0]!)).to.have.members(["sender", "amount", "hashlock", "expiry"]);
    expect(JSON.stringify(B.store.batched("updater"), (_, v) => (typeof v === "bigint" ? `${v}` : v))).to.not.include("xxxx");
    // Wrong shapes are refused before anything is stored: a number as a string, a refusal naming no change.
    expect(() => B.handle({ from: "A", channelId: S, message: { ...m, seq: "2" } as never })).to.throw(/seq/);
    net.deliverAll();
    A.cancelSwap(hashlock);
    const update = net.inFlight.map((x) => x.message).find((x): x is Extract<UpdateMessage, { kind: "update" }> => x.kind === "update");
    if (update !== undefined) {
      expect(() => A.handle({ from: "B", channelId: S, message: { kind: "refuse", seq: update.seq, refusals: [] } })).to.throw(/names no change/);
    }
  });

  it("moves past sequence numbers a party signed before the channel ran batched updates", function () {
    const net = new Network();
    const { B } = net.parties;
    // B (acknowledger on S) once signed a state at seq 1 that was never co-signed (say, an unanswered step).
    const old = { ...openingState(S, [DEPOSIT, DEPOSIT]), seq: 1n };
    B.store.recordOwnSignature(old, B.digest(old), () => B.signRaw(old));
    B.crash(); // B's pair reads its store again and sees the number used
    const hashlock = startSwap(net, 1, "A", 10n, 20n)!;
    heal(net);
    expect(B.updaters[S]!.head.seq, "the first co-signed batch is above the old number").to.be.greaterThan(1n);
    checkRun(net, [{ hashlock, initiator: "A", give: 10n, take: 20n }]);
  });

  it("never runs a step inside another transaction on its store, where its messages would leave before the commit", function () {
    const net = new Network();
    const { A } = net.parties;
    A.store.begin();
    try {
      expect(() => A.tick()).to.throw(/inside an open store transaction/);
    } finally {
      A.store.rollback();
    }
  });

  it("signs no empty batch unless it passes a number it answered without co-signing", function () {
    const net = new Network();
    const B = net.parties.B;
    const head = B.updaters[S]!.head;
    for (const seq of [head.seq + 1n, head.seq + 2n]) {
      const state = { ...head, seq };
      const update = { kind: "update" as const, base: head.seq, seq, changes: [], signature: net.parties.A.signRaw(state) };
      expect(() => B.handle({ from: "A", channelId: S, message: update })).to.throw(/an empty batch at .* no refused batch above the head/);
    }
    expect(B.updaters[S]!.signedSeq).to.equal(head.seq, "nothing signed, nothing answered");
  });

  it("refuses a batch numbered far above the last one, which would end the channel's updates", function () {
    const net = new Network();
    const B = net.parties.B;
    const state = { ...B.updaters[S]!.head, seq: (1n << 64n) - 1n };
    const update = { kind: "update" as const, base: 0n, seq: state.seq, changes: [], signature: net.parties.A.signRaw(state) };
    expect(() => B.handle({ from: "A", channelId: S, message: update })).to.throw(/more than 16 above/);
    expect(B.updaters[S]!.signedSeq).to.equal(0n);
  });
});
