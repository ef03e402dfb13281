/**
 * The batched update scheme and the swap rules (sdk/core/channel-updates.ts, sdk/core/swap-rules.ts) under random
 * interleavings: two parties, one channel pair (A proposes on S, B proposes on T), 50+ swaps in both directions in
 * flight at once, every message signed with real ECDSA keys; messages dropped, duplicated and reordered, a party
 * crashing with what it had not sent yet lost, cancels by either side at any moment. Then the network heals and
 * both parties tick until nothing is left to do. After every run: no party signed two states at one sequence number,
 * both hold the same head on each channel with no lock left, every swap is atomic (the S lock paid exactly when the
 * T lock was), both sides agree on every outcome, and each party's balances are its deposits moved by the swaps
 * that went through.
 */
import { expect } from "chai";
import fc from "fast-check";
import { hexlify, SigningKey, Wallet } from "ethers";

import {
  applicable,
  changeKey,
  enqueue,
  isProposer,
  newUpdater,
  receive,
  resendable,
  wake,
  withdraw,
  type Change,
  type UpdateEnv,
  type UpdateMessage,
  type UpdaterData,
} from "../../sdk/core/channel-updates.js";
import { hubDomain, stateDigest } from "../../sdk/core/eip712.js";
import { requireSignedBy, signDigest } from "../../sdk/core/signing.js";
import { checkState, openingState, sameState } from "../../sdk/core/state.js";
import { hashlockOf, type SwapTerms } from "../../sdk/core/swap.js";
import { approve, cancel, newSide, onCosigned, onRefused, outcome, settled, wants, type SwapSide } from "../../sdk/core/swap-rules.js";
import type { ChannelState, Hex, ParticipantIndex } from "../../sdk/core/types.js";

const HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const S: Hex = `0x${"51".repeat(32)}`;
const T: Hex = `0x${"74".repeat(32)}`;
const CHAIN: Record<Hex, bigint> = { [S]: 31337n, [T]: 31338n };
const DEPOSIT = 1_000n;
type Name = "A" | "B";
const other = (n: Name): Name => (n === "A" ? "B" : "A");
/** A is participant 0 (the proposer) on S, B on T. */
const INDEX: Record<Name, Record<string, ParticipantIndex>> = { A: { [S]: 0, [T]: 1 }, B: { [S]: 1, [T]: 0 } };
const index = (who: Name, id: Hex): ParticipantIndex => INDEX[who][id] as ParticipantIndex;

type Packet = Readonly<{ from: Name; channelId: Hex; message: UpdateMessage }>;

class Party {
  updaters: Record<Hex, UpdaterData>;
  swaps = new Map<string, SwapSide>();
  /** The double-sign guard a store keeps: seq -> digest of the one state signed there. */
  readonly signed = new Map<string, Hex>();
  signatures = 0;
  readonly key: SigningKey;

  constructor(readonly name: Name, readonly address: string, privateKey: string, readonly net: Network) {
    this.key = new SigningKey(privateKey);
    const open = (id: Hex) => openingState(id, [DEPOSIT, DEPOSIT]);
    this.updaters = { [S]: newUpdater(index(name, S), open(S)), [T]: newUpdater(index(name, T), open(T)) };
  }

  private digest(state: ChannelState): Hex {
    return stateDigest(hubDomain(CHAIN[state.channelId]!, HUB), state);
  }

  env(channelId: Hex): UpdateEnv {
    return {
      sign: (state) => {
        const digest = this.digest(state);
        const k = `${state.channelId}/${state.seq}`;
        const before = this.signed.get(k);
        if (before !== undefined && before !== digest) throw new Error(`${this.name} signed two states at seq ${state.seq} of ${channelId}`);
        this.signed.set(k, digest);
        this.signatures++;
        return signDigest(this.key, digest);
      },
      verify: (state, signature) => requireSignedBy(`state ${state.seq}`, this.net.parties[other(this.name)].address, this.digest(state), signature),
      approve: (change, state) => {
        const hashlock = change.kind === "add" ? change.lock.hashlock : change.hashlock;
        const side = this.swaps.get(hashlock.toLowerCase());
        if (side === undefined) return { ok: false, final: true, reason: "no such swap" };
        const upd = this.updaters[side.terms.target.channelId]!;
        const targetAdd: Change = { kind: "add", lock: { sender: side.targetSender, amount: side.terms.take, hashlock: side.terms.hashlock, expiry: side.terms.targetExpiry } };
        const inFlight = upd.inFlight?.batch.some((q) => changeKey(q.change) === changeKey(targetAdd)) ?? false;
        const { approval, side: next } = approve(side, channelId, change, { targetAddInFlight: inFlight });
        this.swaps.set(hashlock.toLowerCase(), next);
        return approval;
      },
    };
  }

  private apply(channelId: Hex, step: ReturnType<typeof receive>) {
    this.updaters[channelId] = step.data;
    for (const message of step.send) this.net.send({ from: this.name, channelId, message });
    for (const event of step.events) {
      if (event.type === "cosigned") {
        for (const [k, side] of this.swaps) this.swaps.set(k, onCosigned(side, channelId, event.changes, event.state));
      } else {
        const c = event.change;
        const k = (c.kind === "add" ? c.lock.hashlock : c.hashlock).toLowerCase();
        const side = this.swaps.get(k);
        if (side !== undefined) this.swaps.set(k, onRefused(side, c));
      }
    }
  }

  /**
   * Enqueues what every swap wants and takes back what cancelled swaps no longer want; with `wakeAll` (a tick, or a
   * channel that moved), tries again what the other refused as "not yet".
   */
  drive(wakeAll = false) {
    for (const [k, side] of this.swaps) {
      if (side.cancelled) {
        const { withdraw: back } = cancel({ ...side, cancelled: false });
        for (const w of back) this.updaters[w.channelId] = withdraw(this.updaters[w.channelId]!, [w.change]);
      }
      const { side: next, wants: ws } = wants(side);
      this.swaps.set(k, next);
      for (const w of ws) this.apply(w.channelId, enqueue(this.updaters[w.channelId]!, [w.change], this.env(w.channelId)));
    }
    if (wakeAll) for (const id of [S, T]) this.apply(id, wake(this.updaters[id]!, this.env(id)));
  }

  handle(packet: Packet) {
    const step = receive(this.updaters[packet.channelId]!, packet.message, this.env(packet.channelId));
    this.apply(packet.channelId, step);
    this.drive(step.events.some((e) => e.type === "cosigned"));
  }

  tick() {
    for (const id of [S, T]) for (const message of resendable(this.updaters[id]!)) this.net.send({ from: this.name, channelId: id, message });
    this.drive(true);
  }

  cancelSwap(hashlock: string) {
    const side = this.swaps.get(hashlock);
    if (side === undefined) return;
    this.swaps.set(hashlock, cancel(side).side);
    this.drive();
  }
}

class Network {
  readonly inFlight: Packet[] = [];
  readonly parties: Record<Name, Party>;
  constructor() {
    const a = new Wallet(hexlify(new Uint8Array(32).fill(0xa1)));
    const b = new Wallet(hexlify(new Uint8Array(32).fill(0xb2)));
    this.parties = { A: new Party("A", a.address, a.privateKey, this), B: new Party("B", b.address, b.privateKey, this) };
  }
  send(p: Packet) {
    this.inFlight.push(p);
  }
  deliver(index: number) {
    const [p] = this.inFlight.splice(index % this.inFlight.length, 1);
    if (p !== undefined) this.parties[other(p.from)].handle(p);
  }
}

type Op =
  | { op: "start"; initiator: Name; give: number; take: number }
  | { op: "deliver"; at: number }
  | { op: "duplicate"; at: number }
  | { op: "drop"; at: number }
  | { op: "crash"; who: Name }
  | { op: "tick"; who: Name }
  | { op: "cancel"; who: Name; swap: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("start" as const), initiator: fc.constantFrom<Name>("A", "B"), give: fc.integer({ min: 1, max: 20 }), take: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant("deliver" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicate" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("crash" as const), who: fc.constantFrom<Name>("A", "B") }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), who: fc.constantFrom<Name>("A", "B") }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cancel" as const), who: fc.constantFrom<Name>("A", "B"), swap: fc.nat() }) },
);

/**
 * What `who` can still lock on `channelId`: its free balance less what agreed swaps will lock there (a swap is agreed
 * only if both legs fit, so locks waiting for each other can never use up a channel).
 */
function available(p: Party, channelId: Hex): bigint {
  const me = index(p.name, channelId);
  let free = p.updaters[channelId]!.head.balances[me];
  for (const side of p.swaps.values()) {
    if (side.cancelled || settled(side)) continue;
    const t = side.terms;
    if (t.source.channelId === channelId && side.sourceSender === me && side.source === "none") free -= t.give;
    if (t.target.channelId === channelId && side.targetSender === me && side.target === "none") free -= t.take;
  }
  return free;
}

function startSwap(net: Network, n: number, initiator: Name, give: bigint, take: bigint): string | undefined {
  const secret = hexlify(new Uint8Array(32).fill(0).map((_, i) => (i === 0 ? n & 0xff : i === 1 ? n >> 8 : 7))) as Hex;
  const hashlock = hashlockOf(secret);
  const [source, target] = initiator === "A" ? [S, T] : [T, S];
  const terms: SwapTerms = {
    swapId: hashlockOf(hashlock),
    source: { chainId: CHAIN[source]!, hub: HUB, channelId: source },
    target: { chainId: CHAIN[target]!, hub: HUB, channelId: target },
    initiator: net.parties[initiator].address,
    responder: net.parties[other(initiator)].address,
    give,
    take,
    hashlock,
    sourceExpiry: 2_000_000_000n,
    targetExpiry: 1_999_990_000n,
  };
  const senders = { source: index(initiator, source), target: index(other(initiator), target) };
  // Each side agrees only if its own leg fits what it has not promised yet.
  if (available(net.parties[initiator], source) < give || available(net.parties[other(initiator)], target) < take) return undefined;
  // The terms are agreed as today (propose/accept, tested elsewhere); both sides start from them.
  net.parties[initiator].swaps.set(hashlock.toLowerCase(), newSide(terms, "initiator", senders, secret));
  net.parties[other(initiator)].swaps.set(hashlock.toLowerCase(), newSide(terms, "responder", senders));
  net.parties[initiator].drive();
  return hashlock.toLowerCase();
}

/** Delivers everything, in order, and ticks both parties until a round changes nothing and no swap is open. */
function heal(net: Network): number {
  for (let round = 0; round < 400; round++) {
    while (net.inFlight.length > 0) net.deliver(0);
    const before = JSON.stringify([...Object.values(net.parties)].map((p) => [p.updaters, [...p.swaps.values()]]), (_, v) => (typeof v === "bigint" ? v.toString() : v));
    net.parties.A.tick();
    net.parties.B.tick();
    while (net.inFlight.length > 0) net.deliver(0);
    const after = JSON.stringify([...Object.values(net.parties)].map((p) => [p.updaters, [...p.swaps.values()]]), (_, v) => (typeof v === "bigint" ? v.toString() : v));
    const busy = Object.values(net.parties).some((p) => Object.values(p.updaters).some((u) => u.inFlight !== undefined || u.queue.some((q) => applicable(u.head, q.change))));
    if (before === after && !busy) {
      // At rest with swaps still open: their counterparty dropped them (a cancel before any lock travels no further),
      // so each open side times out and cancels, as a client does after its confirmation timeout.
      const open = Object.values(net.parties).flatMap((p) => [...p.swaps.entries()].filter(([, x]) => !settled(x) && !x.cancelled).map(([k]) => [p, k] as const));
      if (open.length === 0) return round;
      for (const [p, k] of open) p.cancelSwap(k);
    }
  }
  const dump = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? `${x}` : x));
  const detail = Object.values(net.parties).map((p) =>
    `${p.name}: ` +
    Object.entries(p.updaters).map(([id, u]) => `${id.slice(0, 4)} head ${u.head.seq} signed ${u.signedSeq} inFlight ${u.inFlight?.batch.map((q) => changeKey(q.change)).join(",")} queue ${u.queue.map((q) => `${changeKey(q.change).slice(0, 14)}${q.deferred ? "(d)" : ""}${q.requested ? "(r)" : ""}`).join(",")}`).join(" | ") +
    " swaps " + [...p.swaps.values()].filter((x) => !settled(x)).map((x) => dump({ h: x.terms.hashlock.slice(0, 8), role: x.role, c: x.cancelled, rv: x.revealed, ta: x.targetAsked, rr: x.refundRefused, s: x.source, t: x.target, sec: x.secret !== undefined })).join(" "),
  );
  throw new Error(`the parties did not come to rest within 400 rounds\n${detail.join("\n")}`);
}

function checkRun(net: Network, swaps: readonly { hashlock: string; initiator: Name; give: bigint; take: bigint }[]) {
  const { A, B } = net.parties;
  const expected: Record<Name, Record<string, bigint>> = { A: { [S]: DEPOSIT, [T]: DEPOSIT }, B: { [S]: DEPOSIT, [T]: DEPOSIT } };
  for (const s of swaps) {
    const a = A.swaps.get(s.hashlock)!;
    const b = B.swaps.get(s.hashlock)!;
    for (const side of [a, b]) {
      expect(settled(side), `swap ${s.hashlock} settled at ${side.role}: ${JSON.stringify(side, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`).to.equal(true);
      // Atomic: the S lock was paid exactly when the T lock was.
      expect(side.source === "paid", `swap ${s.hashlock} atomic at ${side.role}`).to.equal(side.target === "paid");
    }
    expect(outcome(a)).to.equal(outcome(b));
    if (outcome(a) === "swapped") {
      const [source, target] = s.initiator === "A" ? [S, T] : [T, S];
      const i = s.initiator;
      const r = other(i);
      expected[i][source] = expected[i][source]! - s.give;
      expected[r][source] = expected[r][source]! + s.give;
      expected[r][target] = expected[r][target]! - s.take;
      expected[i][target] = expected[i][target]! + s.take;
    }
  }
  for (const id of [S, T]) {
    const ha = A.updaters[id]!.head;
    const hb = B.updaters[id]!.head;
    expect(sameState(ha, hb), `both hold the same head of ${id}`).to.equal(true);
    expect(ha.locks.length, "no lock left").to.equal(0);
    checkState(ha);
    expect(ha.balances[index("A", id)]).to.equal(expected.A[id]);
    expect(ha.balances[index("B", id)]).to.equal(expected.B[id]);
  }
}

describe("many swaps at once on one channel pair: batched updates under faults (pure scheme)", function () {
  this.timeout(600_000);

  it("keeps every swap atomic, never double-signs, and leaves both parties with the same heads", function () {
    let swapped = 0;
    let undone = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 300, maxLength: 600 }), fc.integer({ min: 50, max: 70 }), (ops, atLeast) => {
       try {
        const net = new Network();
        const swaps: { hashlock: string; initiator: Name; give: bigint; take: bigint }[] = [];
        let n = 0;
        const start = (initiator: Name, give: number, take: number) => {
          const hashlock = startSwap(net, n++, initiator, BigInt(give), BigInt(take));
          if (hashlock !== undefined) swaps.push({ hashlock, initiator, give: BigInt(give), take: BigInt(take) });
        };
        for (const o of ops) {
          switch (o.op) {
            case "start":
              start(o.initiator, o.give, o.take);
              break;
            case "deliver":
              if (net.inFlight.length > 0) net.deliver(o.at);
              break;
            case "duplicate":
              if (net.inFlight.length > 0) net.send(net.inFlight[o.at % net.inFlight.length]!);
              break;
            case "drop":
              if (net.inFlight.length > 0) net.inFlight.splice(o.at % net.inFlight.length, 1);
              break;
            case "crash": {
              // What the party had decided but not sent is lost; what it stored stays (every step stores first).
              const kept = net.inFlight.filter((p) => p.from !== o.who);
              net.inFlight.length = 0;
              net.inFlight.push(...kept);
              net.parties[o.who].tick();
              break;
            }
            case "tick":
              net.parties[o.who].tick();
              break;
            case "cancel":
              if (swaps.length > 0) net.parties[o.who].cancelSwap(swaps[o.swap % swaps.length]!.hashlock);
              break;
          }
        }
        // At least `atLeast` swaps in flight together: start the rest now, before anything heals.
        while (swaps.length < atLeast && n < 4 * atLeast) start(swaps.length % 2 === 0 ? "A" : "B", 1 + (swaps.length % 7), 1 + (swaps.length % 5));
        for (let i = 0; i < 200 && net.inFlight.length > 0; i++) net.deliver(i * 7919);
        const t0 = Date.now();
        const rounds = heal(net);
        if (process.env.BATCH_DEBUG) console.log(`ops ${ops.length} swaps ${swaps.length} heal ${rounds} rounds ${Date.now() - t0} ms`);
        try {
          checkRun(net, swaps);
        } catch (error) {
          if (process.env.BATCH_DEBUG) {
            console.log(String(error));
            process.exit(3);
          }
          throw error;
        }
        for (const s of swaps) {
          if (outcome(net.parties.A.swaps.get(s.hashlock)!) === "swapped") swapped++;
          else undone++;
        }
       } catch (error) {
          if (process.env.BATCH_DEBUG) {
            console.log((error as Error).stack);
            process.exit(3);
          }
          throw error;
       }
      }),
      { numRuns: Number(process.env.BATCH_RUNS ?? 40) },
    );
    // The runs exercised both endings, and many swaps went through.
    expect(swapped).to.be.greaterThan(500);
    expect(undone).to.be.greaterThan(10);
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
    const { A } = net.parties;
    // A proposes a lock B knows nothing of: B refuses the batch for good, and A's next batch takes a new number.
    const stranger: Change = { kind: "add", lock: { sender: 0, amount: 5n, hashlock: hashlockOf(`0x${"99".repeat(32)}`), expiry: 1_999_990_000n } };
    A.swaps.clear();
    const first = enqueue(A.updaters[S]!, [stranger], { ...A.env(S), approve: () => ({ ok: true }) });
    A.updaters[S] = first.data;
    expect(isProposer(first.data)).to.equal(true);
    expect(first.send[0]?.kind).to.equal("update");
    const seq = first.data.signedSeq;
    net.parties.B.handle({ from: "A", channelId: S, message: first.send[0]! });
    const refusal = net.inFlight.pop()!;
    expect(refusal.message.kind).to.equal("refuse");
    net.parties.A.handle(refusal);
    const hashlock = startSwap(net, 1, "A", 4n, 4n)!;
    heal(net);
    expect(net.parties.A.updaters[S]!.head.seq).to.be.greaterThan(seq);
    checkRun(net, [{ hashlock, initiator: "A", give: 4n, take: 4n }]);
  });
});
