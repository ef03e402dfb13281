/**
 * Two parties on one channel pair, driving the batched update scheme and the swap rules (sdk/core/channel-updates.ts,
 * sdk/core/swap-rules.ts) in one process, with real ECDSA signatures and a network the caller delivers by hand: what
 * the property test (test/integration/batched.property.test.ts) and `npm run bench:batched` run.
 */
import { strict as assert } from "node:assert";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { hexlify, SigningKey, Wallet, ZeroAddress } from "ethers";

import { applicable, changeHashlock, changeKey, type Change, type UpdateEvent, type UpdateMessage, type UpdaterData } from "../../sdk/core/channel-updates.js";
import { hubDomain, stateDigest } from "../../sdk/core/eip712.js";
import { signDigest } from "../../sdk/core/signing.js";
import { checkState, sameState } from "../../sdk/core/state.js";
import { hashlockOf, type SwapTerms } from "../../sdk/core/swap.js";
import { newSide, outcome, revealRule, settled, type SwapSide } from "../../sdk/core/swap-rules.js";
import type { ChannelState, Hex, ParticipantIndex } from "../../sdk/core/types.js";
import { Counterparty } from "../../sdk/coordinator/counterparty.js";
import { Store } from "../../sdk/store/store.js";

export const HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
export const S: Hex = `0x${"51".repeat(32)}`;
export const T: Hex = `0x${"74".repeat(32)}`;
export const CHAIN: Record<Hex, bigint> = { [S]: 31337n, [T]: 31338n };
export const DEPOSIT = 1_000n;
export type Name = "A" | "B";
export const other = (n: Name): Name => (n === "A" ? "B" : "A");
/** Who is participant 0 (the proposer) of each channel. */
export type Layout = Readonly<Record<Hex, Name>>;
export const CROSSED: Layout = { [S]: "A", [T]: "B" };

export type Packet = Readonly<{ from: Name; channelId: Hex; message: UpdateMessage }>;

/**
 * One party: a `Counterparty` over its own SQLite store, and what the tests read of it. A crash drops the objects
 * and opens the store file again.
 */
export class Party {
  store!: Store;
  pair!: Counterparty;
  /** State signatures made (each passes the store's double-sign guard). */
  signatures = 0;
  /** Every batch this party signed, by channel and number, and whether it saw it co-signed: what a chain may be shown. */
  history: Record<Hex, Map<bigint, { base: bigint; changes: readonly Change[]; cosigned: boolean }>> = { [S]: new Map(), [T]: new Map() };
  readonly key: SigningKey;
  /** The deposits this party last read from the hub at its final block, per channel (it reads them on each tick). */
  view: Record<Hex, readonly [bigint, bigint]>;
  /**
   * Whether this party keeps a watchtower's store beside its own (restored or not): the newest co-signed state of each
   * channel it ever held (`towerNewest`) bounds what it catches up to after a restore. Off unless a test sets it.
   */
  towerKept = false;
  readonly towerNewest: Record<Hex, bigint> = {};
  /** The packets of the last step, and whether any left: a crash before they go loses them. */
  private lastSent: Packet[] = [];
  private readonly path: string;

  constructor(readonly name: Name, readonly address: string, privateKey: string, readonly net: Network) {
    this.key = new SigningKey(privateKey);
    this.view = { [S]: [net.deposit, net.deposit], [T]: [net.deposit, net.deposit] };
    this.path = join(net.dir, `${name}.sqlite`);
    const store = new Store(this.path, { durability: "crash" });
    for (const id of [S, T]) {
      const me = net.index(name, id);
      const participants = me === 0 ? [address, net.addresses[other(name)]] : [net.addresses[other(name)], address];
      const params = { participants, payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: 1n } as const;
      store.saveChannel({ ref: { chainId: CHAIN[id]!, hub: HUB, channelId: id }, params: params as never, myIndex: me, openingDeposits: [net.deposit, net.deposit] });
    }
    this.open(store);
  }

  private open(store: Store) {
    this.store = store;
    const signer = { address: this.address, sign: (digest: Hex) => (this.signatures++, signDigest(this.key, digest)) };
    this.pair = new Counterparty({
      store,
      signer,
      channels: [S, T],
      send: (channelId, message) => {
        const p = { from: this.name, channelId, message };
        this.lastSent.push(p);
        this.net.send(p);
      },
      onEvent: (channelId, event) => this.record(channelId, event),
      finalDeposits: (channelId) => this.view[channelId],
      now: () => this.net.clock,
      newestCoSigned: (channelId) => (this.towerKept ? this.towerNewest[channelId] : undefined),
    });
  }

  /**
   * A backup copy of this party's store as `channels backup` makes one: what is committed now, every channel in it
   * frozen. The party goes on.
   */
  backup(to: string) {
    this.store.close(); // checkpoints the log into the file
    copyFileSync(this.path, to);
    const copy = new Store(to, { durability: "crash" });
    copy.freezeAll(this.net.clock);
    copy.close();
    this.open(new Store(this.path, { durability: "crash" }));
  }

  /** The party stops and starts again from a backup copy (its store, log and index replaced): what it did since is lost. */
  restoreFrom(copy: string) {
    this.lastSent = [];
    this.store.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${this.path}${suffix}`, { force: true });
    copyFileSync(copy, this.path);
    this.open(new Store(this.path, { durability: "crash" }));
  }

  /** Keeps the history of what was signed (for the on-chain checks). */
  private record(channelId: Hex, event: UpdateEvent) {
    const history = this.history[channelId]!;
    if ((event.type === "cosigned" || event.type === "caughtUp") && event.state.seq > (this.towerNewest[channelId] ?? -1n)) this.towerNewest[channelId] = event.state.seq;
    if (event.type === "signed") {
      // A proposer's batch is built on its head (the new one, if an ack came in the same step); an acknowledger's
      // signature is its co-signature (the cosigned event follows).
      const base = this.pair.updater(channelId).head.seq;
      history.set(event.state.seq, { base, changes: event.changes, cosigned: history.get(event.state.seq)?.cosigned ?? false });
    }
    if (event.type === "cosigned") {
      const known = history.get(event.state.seq);
      history.set(event.state.seq, { base: known?.base ?? event.state.seq - 1n, changes: event.changes, cosigned: true });
    }
  }

  get updaters(): Record<Hex, UpdaterData> {
    return { [S]: this.pair.updater(S), [T]: this.pair.updater(T) };
  }

  get swaps(): ReadonlyMap<string, SwapSide> {
    return this.pair.swaps();
  }

  digest(state: ChannelState): Hex {
    return stateDigest(hubDomain(CHAIN[state.channelId]!, HUB), state);
  }

  /** A signature outside the protocol (what a hostile party makes of a state it was sent). */
  signRaw(state: ChannelState): Hex {
    return signDigest(this.key, this.digest(state));
  }

  private step(fn: () => void) {
    this.lastSent = [];
    fn();
  }

  /**
   * A crash right after the last step committed, before its messages went out (if one already left, they all did):
   * they are lost, and the party starts again from its store file.
   */
  crash() {
    if (!this.lastSent.some((p) => this.net.left.has(p))) {
      for (const p of this.lastSent) if (this.net.inFlight.includes(p)) this.net.inFlight.splice(this.net.inFlight.indexOf(p), 1);
    }
    this.lastSent = [];
    this.store.close();
    this.open(new Store(this.path, { durability: "crash" }));
  }

  handle(packet: Packet) {
    this.step(() => this.pair.handle(packet.channelId, packet.message));
  }

  /**
   * A client's tick: reads the hub's deposits (what the other party's final block may not show yet), offers to count
   * those not counted on the channels it proposes on, then resends and retries.
   */
  tick() {
    for (const id of [S, T]) this.view[id] = this.net.hub[id]!;
    this.step(() => {
      for (const id of [S, T]) {
        const u = this.pair.updater(id);
        const held = this.view[id]!;
        if (u.me === 0 && applicable(u.head, { kind: "deposits", deposits: held })) this.pair.countDeposits(id, held);
      }
      this.pair.tick();
    });
  }

  /** Asks to close both channels cooperatively. */
  closePair() {
    this.step(() => {
      this.pair.close(S);
      this.pair.close(T);
    });
  }

  /** Starts (as initiator) or joins a swap both agreed. */
  agree(side: SwapSide) {
    this.step(() => this.pair.agree(side));
  }

  cancelSwap(hashlock: string) {
    this.step(() => this.pair.cancel(hashlock as Hex));
  }

  close() {
    this.store.close();
  }
}

export class Network {
  readonly inFlight: Packet[] = [];
  readonly parties: Record<Name, Party>;
  readonly addresses: Record<Name, string>;
  readonly dir = mkdtempSync(join(tmpdir(), "batched-"));
  /** The parties' clock (ms): a test moves it. */
  clock = Date.now();
  /** What the hub holds on each channel for each participant (deposits only grow). */
  readonly hub: Record<Hex, readonly [bigint, bigint]>;
  /** A hostile party's hand on what reaches it: return true to take the packet out of the honest path. */
  intercept: Partial<Record<Name, (p: Packet) => boolean>> = {};
  /**
   * @param deposit What each party holds on each channel at the start.
   * @param layout Who proposes on each channel.
   */
  /** Networks not closed yet (a test closes them all when it ends: `Network.closeAll`). */
  static readonly unclosed = new Set<Network>();
  static closeAll() {
    for (const net of [...Network.unclosed]) net.close();
  }

  constructor(readonly deposit = DEPOSIT, readonly layout: Layout = CROSSED) {
    Network.unclosed.add(this);
    this.hub = { [S]: [deposit, deposit], [T]: [deposit, deposit] };
    const a = new Wallet(hexlify(new Uint8Array(32).fill(0xa1)));
    const b = new Wallet(hexlify(new Uint8Array(32).fill(0xb2)));
    this.addresses = { A: a.address, B: b.address };
    this.parties = { A: new Party("A", a.address, a.privateKey, this), B: new Party("B", b.address, b.privateKey, this) };
  }
  /** `who` deposits `amount` more on channel `id` (on chain: the parties see it when they next read the hub). */
  depositOnChain(who: Name, id: Hex, amount: bigint) {
    const i = this.index(who, id);
    const [d0, d1] = this.hub[id]!;
    this.hub[id] = i === 0 ? [d0 + amount, d1] : [d0, d1 + amount];
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
  /** Hands one packet over; a message the receiver rejects (InvalidMessageError) is dropped, as a transport does. */
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
  /** Closes both stores and removes their files. */
  close() {
    if (!Network.unclosed.delete(this)) return;
    for (const p of Object.values(this.parties)) p.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What `p` can still lock on `channelId`: its free balance less what its agreed swaps will lock there. */
export function available(p: Party, channelId: Hex): bigint {
  return p.pair.available(channelId);
}

/** The terms of a swap of `give` on `source` (S or T) for `take` on the other channel, with fixed expiries. */
export function pairTerms(p: Readonly<{ swapId: Hex; source: Hex; initiator: string; responder: string; give: bigint; take: bigint; hashlock: Hex }>): SwapTerms {
  const target = p.source === S ? T : S;
  return {
    swapId: p.swapId,
    source: { chainId: CHAIN[p.source]!, hub: HUB, channelId: p.source },
    target: { chainId: CHAIN[target]!, hub: HUB, channelId: target },
    initiator: p.initiator,
    responder: p.responder,
    give: p.give,
    take: p.take,
    hashlock: p.hashlock,
    sourceExpiry: 2_000_000_000n,
    targetExpiry: 1_999_990_000n,
  };
}

export function startSwap(net: Network, n: number, initiator: Name, give: bigint, take: bigint): string | undefined {
  const secret = hexlify(new Uint8Array(32).fill(0).map((_, i) => (i === 0 ? n & 0xff : i === 1 ? n >> 8 : 7))) as Hex;
  const hashlock = hashlockOf(secret);
  const [source, target] = initiator === "A" ? [S, T] : [T, S];
  const [from, to] = [net.parties[initiator].address, net.parties[other(initiator)].address];
  const terms = pairTerms({ swapId: hashlockOf(hashlock), source, initiator: from, responder: to, give, take, hashlock });
  const senders = { source: net.index(initiator, source), target: net.index(other(initiator), target) };
  // Each side agrees only if its own leg fits what it has not promised yet.
  if (available(net.parties[initiator], source) < give || available(net.parties[other(initiator)], target) < take) return undefined;
  // The terms are agreed as today (propose/accept, tested elsewhere); both sides start from them.
  net.parties[other(initiator)].agree(newSide(terms, "responder", senders));
  net.parties[initiator].agree(newSide(terms, "initiator", senders, secret));
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

/**
 * After `heal`: every swap settled, atomic and seen alike by both; both parties hold the same head of each channel,
 * with no lock; each party's balance is the deposits the head counts for it moved by the swaps that went through.
 * A channel still open counts every deposit the hub holds; with `closed`, both channels end in a final state.
 */
export function checkRun(net: Network, swaps: readonly { hashlock: string; initiator: Name; give: bigint; take: bigint }[], closed = false) {
  const { A, B } = net.parties;
  const counted = (who: Name, id: Hex) => A.updaters[id]!.head.deposits[net.index(who, id)];
  const expected: Record<Name, Record<string, bigint>> = { A: { [S]: counted("A", S), [T]: counted("A", T) }, B: { [S]: counted("B", S), [T]: counted("B", T) } };
  for (const s of swaps) {
    const a = A.swaps.get(s.hashlock)!;
    const b = B.swaps.get(s.hashlock)!;
    for (const side of [a, b]) {
      assert.ok(settled(side), `swap ${s.hashlock} settled at ${side.role}: ${JSON.stringify(side, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
      // Atomic: the S lock was paid exactly when the T lock was.
      assert.equal(side.source === "paid", side.target === "paid", `swap ${s.hashlock} atomic at ${side.role}`);
    }
    assert.equal(outcome(a), outcome(b), `both sides agree on swap ${s.hashlock}`);
    // The store keeps each secret with the rule its side implies: an undone swap's never revealable by anyone.
    for (const [p, side] of [[A, a], [B, b]] as const) {
      if (side.secret !== undefined) assert.equal(p.store.knownSecret(side.terms.hashlock)?.reveal, revealRule(side), `the reveal rule of ${s.hashlock} at ${side.role}`);
    }
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
  for (const p of [A, B]) for (const id of [S, T]) checkFinals(p, id);
  for (const id of [S, T]) {
    const ha = A.updaters[id]!.head;
    const hb = B.updaters[id]!.head;
    assert.equal(sameState(ha, hb), true, `both hold the same head of ${id}`);
    assert.equal(ha.locks.length, 0, "no lock left");
    checkState(ha);
    assert.equal(ha.isFinal, closed, `channel ${id} ${closed ? "closed" : "open"} at the end`);
    if (!ha.isFinal) assert.deepEqual(ha.deposits, net.hub[id], `every deposit on ${id} counted`);
    assert.equal(ha.balances[net.index("A", id)], expected.A[id]);
    assert.equal(ha.balances[net.index("B", id)], expected.B[id]);
  }
}

/**
 * Every final state `p` signed on `channelId` has the same balances and deposits, and nothing it signed above the
 * first is anything but final: a final state the other may hold co-signed can be landed at any time, so no value
 * may move after it.
 */
export function checkFinals(p: Party, channelId: Hex) {
  const seqs = [...p.history[channelId]!.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let first: ChannelState | undefined;
  for (const seq of seqs) {
    const own = p.store.ownSignedAt(channelId, seq);
    if (own === undefined) continue;
    if (first === undefined) {
      if (own.state.isFinal) first = own.state;
      continue;
    }
    assert.equal(own.state.isFinal, true, `${p.name} signed a state that is not final at ${seq}, above its final state ${first.seq} on ${channelId}`);
    assert.deepEqual([own.state.balances, own.state.deposits], [first.balances, first.deposits], `${p.name}'s final states on ${channelId} differ`);
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
      if (changeHashlock(c) !== hashlock) continue;
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
