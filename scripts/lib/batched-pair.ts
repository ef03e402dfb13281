/**
 * Two parties on one channel pair, driving the batched update scheme and the swap rules (sdk/core/channel-updates.ts,
 * sdk/core/swap-rules.ts) in one process, with real ECDSA signatures and a network the caller delivers by hand: what
 * the property test (test/integration/batched.property.test.ts) and `npm run bench:batched` run.
 */
import { strict as assert } from "node:assert";

import { hexlify, SigningKey, Wallet } from "ethers";

import {
  applicable,
  changeKey,
  enqueue,
  maybeAdded,
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
import { approve, cancel, newSide, onCosigned, onRefused, onSigned, outcome, settled, unreserved, wants, type SwapSide } from "../../sdk/core/swap-rules.js";
import type { ChannelState, Hex, ParticipantIndex } from "../../sdk/core/types.js";

export const HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
export const S: Hex = `0x${"51".repeat(32)}`;
export const T: Hex = `0x${"74".repeat(32)}`;
const CHAIN: Record<Hex, bigint> = { [S]: 31337n, [T]: 31338n };
export const DEPOSIT = 1_000n;
export type Name = "A" | "B";
export const other = (n: Name): Name => (n === "A" ? "B" : "A");
/** Who is participant 0 (the proposer) of each channel. */
export type Layout = Readonly<Record<Hex, Name>>;
export const CROSSED: Layout = { [S]: "A", [T]: "B" };

export type Packet = Readonly<{ from: Name; channelId: Hex; message: UpdateMessage }>;

/** What a party keeps on disk: a step stores all of it or nothing. */
type Stored = {
  updaters: Record<Hex, UpdaterData>;
  swaps: Map<string, SwapSide>;
  open: Set<string>;
  signed: Map<string, Hex>;
  top: Map<Hex, bigint>;
  history: Party["history"];
};

export class Party {
  updaters: Record<Hex, UpdaterData>;
  swaps = new Map<string, SwapSide>();
  /** Hashlocks of the swaps not settled on this side (the only ones `drive` looks at). */
  open = new Set<string>();
  /** The double-sign guard a store keeps: channel/seq -> digest of the one state signed there. */
  signed = new Map<string, Hex>();
  /** The highest number in `signed`, per channel. */
  top = new Map<Hex, bigint>();
  signatures = 0;
  /** Every batch this party signed, by channel and number, and whether it saw it co-signed: what a chain may be shown. */
  history: Record<Hex, Map<bigint, { base: bigint; changes: readonly Change[]; cosigned: boolean }>> = { [S]: new Map(), [T]: new Map() };
  readonly key: SigningKey;
  /** The stored data before the last step and the packets that step sent: what a crash in that step goes back to. */
  private before: { stored: Stored; sent: Packet[] } | undefined;

  constructor(readonly name: Name, readonly address: string, privateKey: string, readonly net: Network) {
    this.key = new SigningKey(privateKey);
    const open = (id: Hex) => openingState(id, [net.deposit, net.deposit]);
    this.updaters = { [S]: newUpdater(net.index(name, S), open(S)), [T]: newUpdater(net.index(name, T), open(T)) };
  }

  digest(state: ChannelState): Hex {
    return stateDigest(hubDomain(CHAIN[state.channelId]!, HUB), state);
  }

  /** A signature outside the protocol (what a hostile party makes of a state it was sent). */
  signRaw(state: ChannelState): Hex {
    return signDigest(this.key, this.digest(state));
  }

  env(channelId: Hex): UpdateEnv {
    return {
      sign: (state) => {
        const digest = this.digest(state);
        const k = `${state.channelId}/${state.seq}`;
        const before = this.signed.get(k);
        if (before !== undefined && before !== digest) throw new Error(`${this.name} signed two states at seq ${state.seq} of ${channelId}`);
        this.signed.set(k, digest);
        if (state.seq > (this.top.get(channelId) ?? 0n)) this.top.set(channelId, state.seq);
        this.signatures++;
        return signDigest(this.key, digest);
      },
      highestSigned: () => this.top.get(channelId) ?? 0n,
      verify: (state, signature) => requireSignedBy(`state ${state.seq}`, this.net.parties[other(this.name)].address, this.digest(state), signature),
      approve: (change) => {
        const side = this.swaps.get(hashlockOfChange(change));
        if (side === undefined) return { ok: false, final: true, reason: "no such swap" };
        const mine = side.role === "responder" && maybeAdded(this.updaters[side.terms.target.channelId]!, side.terms.hashlock);
        return approve(side, channelId, change, { targetMaybeAdded: mine });
      },
    };
  }

  private apply(channelId: Hex, step: ReturnType<typeof receive>) {
    const before = this.updaters[channelId]!.head.seq;
    this.updaters[channelId] = step.data;
    const history = this.history[channelId]!; // copied by a step's snapshot, so changed in place here
    for (const event of step.events) {
      if (event.type === "signed") {
        const base = step.data.me === 0 ? (event.state.seq === step.data.head.seq ? before : step.data.head.seq) : before;
        history.set(event.state.seq, { base, changes: event.changes, cosigned: history.get(event.state.seq)?.cosigned ?? false });
      }
      if (event.type === "cosigned") {
        const known = history.get(event.state.seq);
        history.set(event.state.seq, { base: known?.base ?? before, changes: event.changes, cosigned: true });
      }
    }
    for (const message of step.send) this.emit({ from: this.name, channelId, message });
    for (const event of step.events) {
      if (event.type === "signed" || event.type === "cosigned") {
        for (const c of event.changes) {
          const k = hashlockOfChange(c);
          const side = this.swaps.get(k);
          if (side === undefined) continue;
          this.swaps.set(k, event.type === "signed" ? onSigned(side, channelId, [c]) : onCosigned(side, channelId, [c], event.state));
          this.open.add(k);
        }
      } else {
        const k = hashlockOfChange(event.change);
        const side = this.swaps.get(k);
        if (side === undefined) continue;
        this.swaps.set(k, onRefused(side, event.change));
        this.open.add(k);
      }
    }
  }

  private emit(p: Packet) {
    this.before?.sent.push(p);
    this.net.send(p);
  }

  /** Runs one step: its stored data and its packets are what a crash right after it may lose. */
  private step(fn: () => void) {
    this.before = this.net.crashes ? { stored: this.snapshot(), sent: [] } : undefined;
    fn();
  }

  private snapshot(): Stored {
    const history = { [S]: new Map(this.history[S]), [T]: new Map(this.history[T]) };
    return { updaters: { ...this.updaters }, swaps: new Map(this.swaps), open: new Set(this.open), signed: new Map(this.signed), top: new Map(this.top), history };
  }

  /**
   * A crash in the last step, before its transaction committed: its data is as before the step, and what it would
   * have sent never left (if some of it was already delivered, the step had committed: only the rest is lost).
   */
  crash() {
    const b = this.before;
    this.before = undefined;
    if (b === undefined) return;
    if (b.sent.some((p) => this.net.left.has(p))) return; // committed and partly sent: nothing stored is lost
    for (const p of b.sent) if (this.net.inFlight.includes(p)) this.net.inFlight.splice(this.net.inFlight.indexOf(p), 1);
    ({ updaters: this.updaters, swaps: this.swaps, open: this.open, signed: this.signed, top: this.top, history: this.history } = b.stored);
  }

  /**
   * Enqueues what every swap wants and takes back what cancelled swaps no longer want; with `wakeAll` (a tick, or a
   * channel that moved), tries again what the other refused as "not yet".
   */
  drive(wakeAll = false) {
    const asks: Record<string, Change[]> = { [S]: [], [T]: [] };
    for (const k of this.open) {
      const side = this.swaps.get(k)!;
      if (settled(side)) {
        this.open.delete(k);
        continue;
      }
      if (side.cancelled) {
        const { withdraw: back } = cancel({ ...side, cancelled: false });
        for (const w of back) this.updaters[w.channelId] = withdraw(this.updaters[w.channelId]!, [w.change]);
      }
      const { side: next, wants: ws } = wants(side);
      this.swaps.set(k, next);
      for (const w of ws) asks[w.channelId]!.push(w.change);
    }
    // One enqueue per channel: what the swaps want now goes into one batch (or one request).
    for (const id of [S, T]) if (asks[id]!.length > 0) this.apply(id, enqueue(this.updaters[id]!, asks[id]!, this.env(id)));
    if (wakeAll) for (const id of [S, T]) this.apply(id, wake(this.updaters[id]!, this.env(id)));
  }

  handle(packet: Packet) {
    this.step(() => {
      const step = receive(this.updaters[packet.channelId]!, packet.message, this.env(packet.channelId));
      this.apply(packet.channelId, step);
      this.drive(step.events.some((e) => e.type === "cosigned"));
    });
  }

  tick() {
    this.step(() => {
      for (const id of [S, T]) for (const message of resendable(this.updaters[id]!)) this.emit({ from: this.name, channelId: id, message });
      this.drive(true);
    });
  }

  /** Starts (as initiator) or joins a swap both agreed. */
  agree(hashlock: string, side: SwapSide) {
    // The terms are agreed and stored by the existing propose/accept steps: a crash does not take them back.
    this.swaps.set(hashlock, side);
    this.open.add(hashlock);
    this.before = undefined;
    if (side.role === "initiator") this.step(() => this.drive());
  }

  cancelSwap(hashlock: string) {
    const side = this.swaps.get(hashlock);
    if (side === undefined) return;
    this.step(() => {
      this.swaps.set(hashlock, cancel(side).side);
      this.open.add(hashlock);
      this.drive();
    });
  }
}

function hashlockOfChange(c: Change): string {
  return (c.kind === "add" ? c.lock.hashlock : c.hashlock).toLowerCase();
}

export class Network {
  readonly inFlight: Packet[] = [];
  readonly parties: Record<Name, Party>;
  /** Whether a party may crash (each step then keeps a copy of what it stored before; a benchmark turns it off). */
  crashes = true;
  /** A hostile party's hand on what reaches it: return true to take the packet out of the honest path. */
  intercept: Partial<Record<Name, (p: Packet) => boolean>> = {};
  /**
   * @param deposit What each party holds on each channel at the start.
   * @param layout Who proposes on each channel.
   */
  constructor(readonly deposit = DEPOSIT, readonly layout: Layout = CROSSED) {
    const a = new Wallet(hexlify(new Uint8Array(32).fill(0xa1)));
    const b = new Wallet(hexlify(new Uint8Array(32).fill(0xb2)));
    this.parties = { A: new Party("A", a.address, a.privateKey, this), B: new Party("B", b.address, b.privateKey, this) };
  }
  index(who: Name, id: Hex): ParticipantIndex {
    return this.layout[id] === who ? 0 : 1;
  }
  /** Messages sent so far (each would be one signed envelope). */
  sent = 0;
  /** Packets that reached the other side or were copied on the way: their sender's step had committed. */
  readonly left = new WeakSet<Packet>();
  send(p: Packet) {
    this.sent++;
    this.inFlight.push(p);
  }
  /** The network sends a packet twice. */
  duplicate(index: number) {
    const p = this.inFlight[index % this.inFlight.length];
    if (p === undefined) return;
    this.left.add(p);
    this.send({ ...p });
  }
  deliver(index: number) {
    const [p] = this.inFlight.splice(index % this.inFlight.length, 1);
    if (p === undefined) return;
    this.left.add(p);
    const to = other(p.from);
    if (this.intercept[to]?.(p) === true) return;
    this.parties[to].handle(p);
  }
  deliverAll() {
    for (let i = 0; i < 100_000 && this.inFlight.length > 0; i++) this.deliver(0);
  }
}

/** What `p` can still lock on `channelId`: its free balance less what its agreed swaps will lock there. */
export function available(p: Party, channelId: Hex): bigint {
  const me = p.net.index(p.name, channelId);
  return unreserved(p.swaps.values(), channelId, me, p.updaters[channelId]!.head.balances[me]);
}

export function startSwap(net: Network, n: number, initiator: Name, give: bigint, take: bigint): string | undefined {
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
  const senders = { source: net.index(initiator, source), target: net.index(other(initiator), target) };
  // Each side agrees only if its own leg fits what it has not promised yet.
  if (available(net.parties[initiator], source) < give || available(net.parties[other(initiator)], target) < take) return undefined;
  // The terms are agreed as today (propose/accept, tested elsewhere); both sides start from them.
  net.parties[other(initiator)].agree(hashlock.toLowerCase(), newSide(terms, "responder", senders));
  net.parties[initiator].agree(hashlock.toLowerCase(), newSide(terms, "initiator", senders, secret));
  return hashlock.toLowerCase();
}

/** Delivers everything, in order, and ticks both parties until a round changes nothing and no swap is open. */
export function heal(net: Network): number {
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

export function checkRun(net: Network, swaps: readonly { hashlock: string; initiator: Name; give: bigint; take: bigint }[]) {
  const { A, B } = net.parties;
  const d = net.deposit;
  const expected: Record<Name, Record<string, bigint>> = { A: { [S]: d, [T]: d }, B: { [S]: d, [T]: d } };
  for (const s of swaps) {
    const a = A.swaps.get(s.hashlock)!;
    const b = B.swaps.get(s.hashlock)!;
    for (const side of [a, b]) {
      assert.ok(settled(side), `swap ${s.hashlock} settled at ${side.role}: ${JSON.stringify(side, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
      // Atomic: the S lock was paid exactly when the T lock was.
      assert.equal(side.source === "paid", side.target === "paid", `swap ${s.hashlock} atomic at ${side.role}`);
    }
    assert.equal(outcome(a), outcome(b), `both sides agree on swap ${s.hashlock}`);
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
    assert.equal(sameState(ha, hb), true, `both hold the same head of ${id}`);
    assert.equal(ha.locks.length, 0, "no lock left");
    checkState(ha);
    assert.equal(ha.balances[net.index("A", id)], expected.A[id]);
    assert.equal(ha.balances[net.index("B", id)], expected.B[id]);
  }
}

type Stand = "none" | "locked" | "paid" | "refunded";

/** Where lock `hashlock` stands in the state `seq` of `p`'s history on `channelId` (co-signed chain, then the batch). */
function standAt(p: Party, channelId: Hex, seq: bigint, hashlock: string): Stand {
  const h = p.history[channelId]!;
  const head = p.updaters[channelId]!.head;
  const top = seq === head.seq ? head.seq : h.get(seq)!.base;
  const chain = [...h.entries()].filter(([n, e]) => e.cosigned && n <= top).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (seq !== head.seq) chain.push([seq, h.get(seq)!]);
  let stand: Stand = "none";
  for (const [, e] of chain) {
    for (const c of e.changes) {
      if (hashlockOfChange(c) !== hashlock) continue;
      stand = c.kind === "add" ? "locked" : c.kind === "pay" ? "paid" : "refunded";
    }
  }
  return stand;
}

/**
 * The honest party `honest` goes on chain now and the other stays silent (or hostile). For every choice the other
 * has of the state it registers on each channel (any state `honest` signed above its co-signed head beats the head
 * on chain), with the other revealing every secret it knows that pays it and `honest` then revealing what it may:
 * the swaps where `honest` paid its own lock but did not get the other's. Empty means atomic for `honest`.
 */
export function onChainViolations(net: Network, honest: Name): string[] {
  const h = net.parties[honest];
  const x = net.parties[other(honest)];
  const candidates = (id: Hex) => [h.updaters[id]!.head.seq, ...[...h.history[id]!.entries()].filter(([n, e]) => !e.cosigned && n > h.updaters[id]!.head.seq).map(([n]) => n)];
  const out: string[] = [];
  for (const sSeq of candidates(S)) {
    for (const tSeq of candidates(T)) {
      const finals: Record<Hex, bigint> = { [S]: sSeq, [T]: tSeq };
      for (const [k, side] of h.swaps) {
        const t = side.terms;
        const xSide = x.swaps.get(k);
        const at = (id: Hex) => standAt(h, id, finals[id]!, k);
        const src = at(t.source.channelId);
        const tgt = at(t.target.channelId);
        // Who each pending lock pays: the source lock the responder, the target lock the initiator.
        const xIsInitiator = side.role === "responder";
        const xPaidBy = xIsInitiator ? tgt === "locked" : src === "locked";
        // A responder knows the secret once the initiator let it go (a request or a batch), co-signed or not.
        const xKnows = xIsInitiator ? true : side.revealed || xSide?.secret !== undefined;
        let revealed = xKnows && xPaidBy;
        if (!revealed) {
          const hPaidBy = side.role === "initiator" ? tgt === "locked" : src === "locked";
          const hMay = side.role === "initiator" ? !side.cancelled : side.secret !== undefined;
          revealed = hPaidBy && hMay;
        }
        const final = (s: Stand) => (s === "locked" ? (revealed ? "paid" : "refunded") : s);
        const [mine, theirs] = side.role === "initiator" ? [final(src), final(tgt)] : [final(tgt), final(src)];
        if (mine === "paid" && theirs !== "paid") out.push(`${k} (${side.role}, S@${sSeq} ${src}, T@${tSeq} ${tgt}): paid ${mine}, got ${theirs}`);
      }
    }
  }
  return out;
}
