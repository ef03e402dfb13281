/**
 * One party's side of a channel pair run with batched updates (docs/SWAP.md, "Many swaps on one pair"): the update
 * scheme (core/channel-updates.ts) and the swap rules (core/swap-rules.ts) over the store. Each step (a message, a
 * tick, a swap agreed or cancelled) is one store transaction: the channels' updater data, the swaps' sides, every
 * signature (through the store's double-sign guard), co-signed states and secrets; its messages go out and its
 * events are reported only once it is committed. A crash loses at most a step that was never committed, and a new
 * `BatchedSwaps` on the same store goes on from what was.
 *
 * Co-signed states and secrets land in the same tables the step protocol uses, so a watchtower, `forceClose` and the
 * on-chain path settle a batched channel as any other: every lock of its newest co-signed state.
 */
import {
  APPROVED,
  changeHashlock,
  checkUpdateMessage,
  enqueue,
  maybeAdded,
  newUpdater,
  receive,
  resendable,
  wake,
  withdraw,
  type Change,
  type Queued,
  type Step,
  type UpdateEnv,
  type UpdateEvent,
  type UpdateMessage,
  type UpdaterData,
} from "../core/channel-updates.js";
import { ChannelSdkError } from "../core/errors.js";
import { openingState } from "../core/state.js";
import { approve, cancel, onCosigned, onRefused, onSigned, revealRule, settled, unreserved, wants, type SwapSide } from "../core/swap-rules.js";
import type { ChannelState, Hex } from "../core/types.js";
import type { Store } from "../store/store.js";
import { ChannelBook } from "./channels.js";
import type { StateSigner } from "./signer.js";

export type BatchedSwapsOptions = Readonly<{
  store: Store;
  signer: StateSigner;
  /** The pair's two channels, both in the store (`SwapClient.addChannel`) with this signer as a participant. */
  channels: readonly [Hex, Hex];
  /** Hands a message to the counterparty; called only after the step that made it is committed. */
  send: (channelId: Hex, message: UpdateMessage) => void;
  /** Told of each event of a step once it is committed (its errors are ignored). */
  onEvent?: (channelId: Hex, event: UpdateEvent) => void;
  /** Told, once a step is committed, of the swaps (by lower-case hashlock) whose side it changed. */
  onSides?: (hashlocks: readonly string[]) => void;
  /**
   * The book that signs and keeps states (a client's, which feeds its watchtower and checks the lock horizon);
   * by default one of its own over the store.
   */
  book?: ChannelBook;
  /**
   * Steps run inside the caller's open transaction (a savepoint of a group commit) instead of their own. The caller
   * then holds what `send` and `onEvent` are given until that transaction is on disk, and calls `invalidate` when it
   * is rolled back.
   */
  nested?: boolean;
  /**
   * Whether the initiator may reveal now (its T lock co-signed): enough time left before the T lock's expiry to get a
   * claim in. When not, the swap is undone instead (it can, since nothing was revealed). By default always.
   */
  mayReveal?: (side: SwapSide) => boolean;
  /** The most swaps `agreeAll` keeps open at once (a client caps what a peer can make it hold); by default no cap. */
  maxOpen?: number;
  /**
   * The deposits the hub holds on a channel at this party's final block, as last read: a count of deposits (ours or
   * the other's) is signed only up to them, and "not yet" above them. Without it, no count is signed.
   */
  finalDeposits?: (channelId: Hex) => readonly [bigint, bigint] | undefined;
}>;

/** What a channel's updater row holds: its data less the states kept elsewhere in the store. */
type StoredUpdater = Omit<UpdaterData, "head" | "headSignatures" | "inFlight"> &
  Readonly<{ headSeq: bigint; inFlight: Readonly<{ seq: bigint; batch: readonly Queued[]; signature: Hex }> | undefined }>;

export class BatchedSwaps {
  private updaters = new Map<string, UpdaterData>();
  private sides = new Map<string, SwapSide>();
  /** Swaps not settled on this side: the only ones a step looks at. */
  private open = new Set<string>();
  /** Written in the step under way, stored at its end. */
  private dirty = { updaters: new Set<string>(), sides: new Set<string>() };
  private outgoing: { channelId: Hex; message: UpdateMessage }[] = [];
  private events: { channelId: Hex; event: UpdateEvent }[] = [];
  private readonly book: ChannelBook;
  /** Per channel: what the update scheme is given (built once; it reads the swaps as they are). */
  private readonly envs = new Map<string, UpdateEnv>();
  /** The pair's two channels, lower case. */
  private readonly pair: ReadonlySet<string>;
  /** Memory is ahead of the store (a nested step was rolled back): read it again before the next use. */
  private stale = false;
  /** Whether a close is asked for on the pair, as last worked out (undefined: work it out again). */
  private closingNow: boolean | undefined;

  constructor(private readonly o: BatchedSwapsOptions) {
    const [a, b] = o.channels.map((id) => this.record(id));
    const peers = [a!, b!].map((r) => r.params.participants[r.myIndex === 0 ? 1 : 0]!.toLowerCase());
    if (peers[0] !== peers[1]) throw new ChannelSdkError("the two channels of a pair must be with the same counterparty");
    this.pair = new Set(o.channels.map((id) => id.toLowerCase()));
    this.book = o.book ?? new ChannelBook(o.store, o.signer);
    this.load();
  }

  private record(channelId: Hex) {
    const record = this.o.store.channel(channelId);
    if (record === undefined) throw new ChannelSdkError(`channel ${channelId} is not in the store`);
    if (record.params.participants[record.myIndex]!.toLowerCase() !== this.o.signer.address.toLowerCase()) {
      throw new ChannelSdkError(`this signer is not participant ${record.myIndex} of channel ${channelId}`);
    }
    return record;
  }

  /**
   * An updater as its row keeps it: without the states, which the store holds already (the head among the co-signed
   * states, the batch in flight among this key's signed states), so a step's row does not grow with the locks.
   */
  private static row(u: UpdaterData): StoredUpdater {
    const { head, headSignatures: _signatures, inFlight, ...rest } = u;
    return { ...rest, headSeq: head.seq, inFlight: inFlight === undefined ? undefined : { seq: inFlight.state.seq, batch: inFlight.batch, signature: inFlight.signature } };
  }

  /** An updater from its row and the states the store holds. */
  private fromRow(channelId: Hex, row: StoredUpdater): UpdaterData {
    const { headSeq, inFlight, ...rest } = row;
    const cosigned = headSeq === 0n ? undefined : this.o.store.coSignedAt(channelId, headSeq);
    if (headSeq !== 0n && cosigned === undefined) throw new ChannelSdkError(`the co-signed state ${headSeq} of channel ${channelId} is not in the store`);
    const head = cosigned?.state ?? openingState(channelId, this.record(channelId).openingDeposits);
    let flight: UpdaterData["inFlight"];
    if (inFlight !== undefined) {
      const own = this.o.store.ownSignedAt(channelId, inFlight.seq);
      if (own === undefined) throw new ChannelSdkError(`the signed state ${inFlight.seq} of channel ${channelId} is not in the store`);
      flight = { state: own.state, batch: inFlight.batch, signature: inFlight.signature };
    }
    return { ...rest, head, headSignatures: cosigned?.signatures, inFlight: flight };
  }

  /** Reads everything from the store: at start, and after a step that could not be committed. */
  private load() {
    const stored = this.o.store.batched<StoredUpdater>("updater");
    this.updaters = new Map();
    for (const id of this.o.channels) {
      const k = id.toLowerCase();
      const known = stored.get(k);
      if (known !== undefined) {
        this.updaters.set(k, this.fromRow(id, known));
        continue;
      }
      // A channel new to batched updates starts from its newest co-signed state (deposits counted, say).
      const record = this.record(id);
      const latest = this.o.store.latestCoSigned(id);
      const head = latest?.state ?? openingState(id, record.openingDeposits);
      const fresh = newUpdater(record.myIndex, head, latest?.signatures);
      // Numbers this key signed before (under the step protocol) are used: nothing is signed at them again.
      const used = this.o.store.highestOwnSeq(id);
      this.updaters.set(k, used > fresh.signedSeq ? { ...fresh, signedSeq: used } : fresh);
    }
    // The swaps of this pair only: a store may hold other pairs' swaps, driven by their own `BatchedSwaps`.
    const mine = (s: SwapSide) => this.pair.has(s.terms.source.channelId.toLowerCase()) && this.pair.has(s.terms.target.channelId.toLowerCase());
    this.sides = new Map([...this.o.store.batched<SwapSide>("side")].filter(([, s]) => mine(s)));
    this.open = new Set([...this.sides].filter(([, s]) => !settled(s)).map(([k]) => k));
  }

  /** The pair's two channels. */
  get channels(): readonly [Hex, Hex] {
    return this.o.channels;
  }

  /** Forgets what memory holds: the transaction of the last steps was rolled back, so the store is read again. */
  invalidate(): void {
    this.stale = true;
  }

  private fresh() {
    if (!this.stale) return;
    this.stale = false;
    this.closingNow = undefined;
    this.load();
  }

  /**
   * Whether the pair is closing: a close of either channel is queued, asked for, in flight or co-signed. From then
   * on no lock is added on it and every swap not past its reveal is undone; each channel's close waits for its last
   * lock to be resolved.
   */
  closing(): boolean {
    this.fresh();
    this.closingNow ??= [...this.updaters.values()].some((u) => signedFinal(u) || closeAsked(u));
    return this.closingNow;
  }

  /**
   * Counts on `channelId` the deposits the hub holds (final on chain): queued as a change of the next batch (the other
   * signs it only if its own reading of the hub holds as much). Nothing is queued if one is pending or they are counted.
   */
  countDeposits(channelId: Hex, deposits: readonly [bigint, bigint]): void {
    this.step(() => this.apply(channelId, enqueue(this.updater(channelId), [{ kind: "deposits", deposits }], this.env(channelId))));
  }

  /**
   * Closes both channels of the pair cooperatively: every swap not past its reveal is undone, the others complete,
   * and each channel's final state is signed once its last lock is resolved (then landed on chain by the caller).
   */
  close(): void {
    this.step(() => {
      for (const id of this.o.channels) this.apply(id, enqueue(this.updater(id), [{ kind: "close" }], this.env(id)));
      this.drive(false);
    });
  }

  /**
   * Whether this party signed a final state of `channelId` (co-signed or not): the channel may be closed with it
   * at any time, and nothing that moves value is signed on it again.
   */
  signedFinal(channelId: Hex): boolean {
    return signedFinal(this.updater(channelId));
  }

  /** Swaps not settled on this side. */
  openSwaps(): SwapSide[] {
    this.fresh();
    return [...this.open].map((k) => this.sides.get(k)!).filter((s) => !settled(s));
  }

  /** The co-signed head of a channel of the pair. */
  head(channelId: Hex): ChannelState {
    return this.updater(channelId).head;
  }

  updater(channelId: Hex): UpdaterData {
    this.fresh();
    const u = this.updaters.get(channelId.toLowerCase());
    if (u === undefined) throw new ChannelSdkError(`channel ${channelId} is not one of this pair`);
    return u;
  }

  /** Every swap of the pair, by hashlock (lower case). */
  swaps(): ReadonlyMap<string, SwapSide> {
    this.fresh();
    return this.sides;
  }

  side(hashlock: Hex): SwapSide | undefined {
    this.fresh();
    return this.sides.get(hashlock.toLowerCase());
  }

  /** What this party can still lock on a channel: its free balance less what its agreed swaps will lock there. */
  available(channelId: Hex): bigint {
    const u = this.updater(channelId);
    // Only open swaps reserve anything: settled ones are skipped without being read.
    const open = [...this.open].map((k) => this.sides.get(k)!);
    return unreserved(open, channelId, u.me, u.head.balances[u.me]);
  }

  /**
   * Takes a swap both agreed (terms signed by both) into the pair: the initiator starts locking at once. Throws if it
   * is not a swap of this pair for this signer, or if a leg of ours does not fit what the pair has not promised yet.
   */
  agree(side: SwapSide): void {
    const { refused } = this.agreeAll([side]);
    if (refused.length > 0) throw new ChannelSdkError(refused[0]!.reason);
  }

  /**
   * Takes many agreed swaps into the pair in one step (one transaction): those that are not this pair's or do not
   * fit are left out, with the reason. A swap already known counts as agreed. `admit`, if given, is asked last about
   * each swap that fits, told of the new swaps taken before it in this call; a reason it returns leaves the swap out.
   */
  agreeAll(
    sides: readonly SwapSide[],
    admit?: (side: SwapSide, taken: readonly SwapSide[]) => string | undefined,
  ): { agreed: SwapSide[]; refused: { side: SwapSide; reason: string }[] } {
    const agreed: SwapSide[] = [];
    const taken: SwapSide[] = []; // the new swaps of this call, in order (not the ones known already)
    const refused: { side: SwapSide; reason: string }[] = [];
    const pair = new Set(this.o.channels.map((id) => id.toLowerCase()));
    const me = this.o.signer.address.toLowerCase();
    const free = new Map<string, bigint>(); // per channel: `available` less the swaps agreed in this step
    this.step(() => {
      let open = this.openSwaps().length;
      for (const side of sides) {
        const t = side.terms;
        const k = t.hashlock.toLowerCase();
        if (this.sides.has(k)) {
          agreed.push(this.sides.get(k)!);
          continue;
        }
        const [source, target] = [t.source.channelId.toLowerCase(), t.target.channelId.toLowerCase()];
        const mineIs = side.role === "initiator" ? t.initiator : t.responder;
        const reason =
          !pair.has(source) || !pair.has(target) || source === target
            ? "the swap's channels are not the two channels of this pair"
            : mineIs.toLowerCase() !== me
              ? `this signer is not the swap's ${side.role}`
              : (side.sourceSender === this.updater(t.source.channelId).me) !== (side.role === "initiator") ||
                  (side.targetSender === this.updater(t.target.channelId).me) !== (side.role === "responder")
                ? "the lock senders do not match the participants" // the initiator sends on S, the responder on T
                : undefined;
        const [mine, amount] = side.role === "initiator" ? [t.source.channelId, t.give] : [t.target.channelId, t.take];
        const full = reason === undefined && open >= (this.o.maxOpen ?? Infinity) ? `the pair has ${open} swaps open, the most its states can lock` : undefined;
        const left = reason === undefined && full === undefined ? (free.get(mine.toLowerCase()) ?? this.available(mine)) : 0n;
        if (reason !== undefined || full !== undefined || left < amount) {
          refused.push({ side, reason: reason ?? full ?? `the swap needs ${amount} on ${mine}; only ${left} is not promised` });
          continue;
        }
        const refusal = admit?.(side, taken);
        if (refusal !== undefined) {
          refused.push({ side, reason: refusal });
          continue;
        }
        taken.push(side);
        open++;
        free.set(mine.toLowerCase(), left - amount); // what this swap now reserves, without summing every open swap again
        this.setSide(k, side);
        agreed.push(side);
      }
      this.drive(false);
    });
    return { agreed, refused };
  }

  /** Undoes a swap from this side (refused once the secret left or is known: then it can only complete). */
  cancel(hashlock: Hex): void {
    this.cancelAll([hashlock]);
  }

  /** Undoes many swaps in one step (each refused once its secret left or is known). */
  cancelAll(hashlocks: readonly Hex[]): void {
    const known = hashlocks.filter((h) => this.side(h) !== undefined);
    if (known.length === 0) return;
    this.step(() => {
      for (const h of known) this.setSide(h.toLowerCase(), cancel(this.sides.get(h.toLowerCase())!).side);
      this.drive(false);
    });
  }

  /** A message of the counterparty's on `channelId`. Throws (and changes nothing) for one that is not the protocol's. */
  handle(channelId: Hex, message: UpdateMessage): void {
    const checked = checkUpdateMessage(message); // a peer's message: every field's shape, nothing else kept
    this.step(() => {
      const step = receive(this.updater(channelId), checked, this.env(channelId));
      this.apply(channelId, step);
      this.drive(step.events.some((e) => e.type === "cosigned"));
    });
  }

  /** Resends what is unanswered and tries again what waited; call it on a timer. */
  tick(): void {
    this.step(() => {
      for (const id of this.o.channels) for (const message of resendable(this.updater(id))) this.outgoing.push({ channelId: id, message });
      this.drive(true);
    });
  }

  private setSide(k: string, side: SwapSide) {
    // A secret this side holds is kept where the on-chain path and the watchtower look for it, with whether it may be
    // revealed, in the same step: an initiator's once it reveals, never once it undid the swap before that.
    const before = this.sides.get(k);
    const rule = revealRule(side);
    if (side.secret !== undefined && (before?.secret !== side.secret || revealRule(before) !== rule)) this.o.store.saveSecret(side.terms.hashlock, side.secret, rule);
    this.sides.set(k, side);
    this.open.add(k);
    this.dirty.sides.add(k);
  }

  private setUpdater(channelId: Hex, data: UpdaterData) {
    this.closingNow = undefined;
    this.updaters.set(channelId.toLowerCase(), data);
    this.dirty.updaters.add(channelId.toLowerCase());
  }

  private env(channelId: Hex): UpdateEnv {
    const k = channelId.toLowerCase();
    const known = this.envs.get(k);
    if (known !== undefined) return known;
    const { store } = this.o;
    // The book signs through the store's double-sign guard and hashes each state once, for signing and checking.
    const env: UpdateEnv = {
      sign: (state) => this.book.sign(state),
      highestSigned: () => store.highestOwnSeq(channelId),
      verify: (state, signature) => this.book.requireCounterSigned(state, signature),
      approve: (change) => {
        if (change.kind === "close") return APPROVED; // either may close; the other could go on chain anyway
        if (change.kind === "deposits") {
          const held = this.o.finalDeposits?.(channelId);
          return held !== undefined && held[0] >= change.deposits[0] && held[1] >= change.deposits[1]
            ? APPROVED
            : { ok: false, final: false, reason: `the hub does not hold deposits of [${change.deposits.join(", ")}] at our final block yet` };
        }
        if (change.kind === "add" && this.closing()) return { ok: false, final: true, reason: "the pair is closing" };
        const side = this.sides.get(changeHashlock(change));
        if (side === undefined) return { ok: false, final: true, reason: "no agreed swap has this lock" };
        // Only a refund asks the responder whether its T lock may be added (a scan of the batch in flight and ghosts).
        const targetMaybeAdded = change.kind === "refund" && side.role === "responder" && maybeAdded(this.updater(side.terms.target.channelId), side.terms.hashlock);
        return approve(side, channelId, change, { targetMaybeAdded });
      },
    };
    this.envs.set(k, env);
    return env;
  }

  /** Takes in the result of one scheme step: data, messages, and what its events mean for the swaps. */
  private apply(channelId: Hex, step: Step) {
    // A step that changed nothing (a wake with nothing to try, say) leaves the row unwritten.
    if (step.data !== this.updaters.get(channelId.toLowerCase())) this.setUpdater(channelId, step.data);
    for (const message of step.send) this.outgoing.push({ channelId, message });
    for (const event of step.events) {
      this.events.push({ channelId, event });
      if (event.type === "cosigned") this.book.keep({ state: event.state, signatures: event.signatures });
      const changes = event.type === "refused" ? [event.change] : event.changes;
      for (const c of changes) {
        const k = changeHashlock(c);
        const side = this.sides.get(k);
        if (side === undefined) continue;
        const next =
          event.type === "signed" ? onSigned(side, channelId, [c]) : event.type === "cosigned" ? onCosigned(side, channelId, [c], event.state) : onRefused(side, c);
        this.setSide(k, next);
      }
    }
  }

  /**
   * Asks for what every open swap wants (one enqueue per channel: one batch or one request) and takes back what
   * cancelled swaps no longer want; with `wakeAll`, tries again what the other answered "not yet".
   */
  private drive(wakeAll: boolean) {
    // A pair closes as one: a close asked for on either channel (by either party) is asked for on both.
    if (this.closing()) {
      for (const id of this.o.channels) {
        const u = this.updater(id);
        if (!u.head.isFinal && !closeAsked(u)) this.apply(id, enqueue(u, [{ kind: "close" }], this.env(id)));
      }
    }
    const asks = new Map<string, Change[]>(this.o.channels.map((id) => [id.toLowerCase(), []]));
    for (const k of [...this.open]) {
      const side = this.sides.get(k)!;
      if (settled(side)) {
        this.open.delete(k);
        continue;
      }
      let current = side;
      // An initiator about to reveal with too little time left on T undoes the swap instead; on a closing pair, every
      // swap not past its reveal is undone (cancel refuses the others, which complete).
      const late = side.role === "initiator" && !side.revealed && side.target === "locked" && this.o.mayReveal?.(side) === false;
      if (!side.cancelled && (late || this.closing())) {
        current = cancel(side).side;
        if (current !== side) this.setSide(k, current);
      }
      if (current.cancelled) {
        for (const w of cancel({ ...current, cancelled: false }).withdraw) this.setUpdater(w.channelId, withdraw(this.updater(w.channelId), [w.change]));
      }
      const { side: next, wants: ws } = wants(current);
      if (next !== current) this.setSide(k, next);
      for (const w of ws) asks.get(w.channelId.toLowerCase())?.push(w.change);
    }
    for (const id of this.o.channels) {
      const changes = asks.get(id.toLowerCase())!;
      if (changes.length > 0) this.apply(id, enqueue(this.updater(id), changes, this.env(id)));
      if (wakeAll) this.apply(id, wake(this.updater(id), this.env(id)));
    }
  }

  /**
   * Runs `fn` as one transaction; sends and reports what it made once committed, or forgets it all. Never inside
   * another transaction on the store: its messages would leave before anything is on disk.
   */
  private step(fn: () => void) {
    const { store } = this.o;
    if (store.inTransaction() && this.o.nested !== true) throw new ChannelSdkError("a batched step cannot run inside an open store transaction");
    this.fresh();
    this.outgoing = [];
    this.events = [];
    let changed: string[] = [];
    try {
      store.transaction(() => {
        fn();
        for (const k of this.dirty.updaters) store.saveBatched("updater", k, BatchedSwaps.row(this.updaters.get(k)!));
        for (const k of this.dirty.sides) store.saveBatched("side", k, this.sides.get(k));
        changed = [...this.dirty.sides];
      });
    } catch (error) {
      this.dirty = { updaters: new Set(), sides: new Set() };
      // The step never happened: memory goes back to what is stored (nested: once the caller has rolled back).
      if (this.o.nested === true) this.stale = true;
      else this.load();
      throw error;
    } finally {
      this.dirty = { updaters: new Set(), sides: new Set() };
    }
    const [outgoing, events] = [this.outgoing, this.events];
    this.outgoing = [];
    this.events = [];
    // Committed: from here nothing throws (a failed send is resent by a later tick).
    for (const m of outgoing) {
      try {
        this.o.send(m.channelId, m.message);
      } catch {
        // resent by `tick`, or answered again when the peer repeats itself
      }
    }
    for (const e of events) {
      try {
        this.o.onEvent?.(e.channelId, e.event);
      } catch {
        // a listener's error is its own
      }
    }
    try {
      if (changed.length > 0) this.o.onSides?.(changed);
    } catch {
      // a listener's error is its own
    }
  }
}

/** Whether this party signed a final state of the channel: its co-signed head, or a batch of its own (proposer). */
function signedFinal(u: UpdaterData): boolean {
  return u.head.isFinal || u.finalSigned === true;
}

/** Whether a close of the channel is queued, asked for or in flight. */
function closeAsked(u: UpdaterData): boolean {
  const isClose = (q: Queued) => q.change.kind === "close";
  return u.queue.some(isClose) || u.inFlight?.batch.some(isClose) === true;
}
