/**
 * One party's side of every channel it has with one counterparty (docs/SWAP.md, "Channel updates"): the update
 * scheme (core/channel-updates.ts) on each channel and the swap rules (core/swap-rules.ts) for each swap between them,
 * over the store. Each step (a message, a tick, a swap agreed or cancelled) is one store transaction: the channels'
 * updater data, the swaps' sides, every signature (through the store's double-sign guard), co-signed states and
 * secrets; its messages go out and its events are reported only once it is committed. A crash loses at most a step
 * that was never committed, and a new `Counterparty` on the same store goes on from what was.
 *
 * Co-signed states and secrets land in the store's own tables, so a watchtower, `forceClose` and the on-chain path
 * settle a channel from them: every lock of its newest co-signed state.
 */
import {
  APPROVED,
  catchUp,
  changeHashlock,
  checkUpdateMessage,
  enqueue,
  MAX_SEQ_STEP,
  maybeAdded,
  newUpdater,
  passGhosts,
  propose,
  receive,
  resendable,
  resumeFloor,
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
import { ChannelSdkError, InvalidMessageError } from "../core/errors.js";
import { openingState } from "../core/state.js";
import { approve, cancel, onCosigned, onRefused, onSigned, revealRule, settled, unreserved, wants, type SwapSide } from "../core/swap-rules.js";
import type { SwapTerms } from "../core/swap.js";
import type { ChannelState, Hex, ParticipantIndex } from "../core/types.js";
import type { RevealRule, Store } from "../store/store.js";
import { ChannelBook } from "./channels.js";
import type { StateSigner } from "./signer.js";

export type CounterpartyOptions = Readonly<{
  store: Store;
  /** Signs states (envelopes are the caller's). */
  signer: Pick<StateSigner, "address" | "sign">;
  /**
   * The channels with one counterparty, each in the store (`SwapClient.addChannel`) with this signer as a
   * participant; more join with `addChannel`. A swap may use any two of them (its source and its target).
   */
  channels: readonly Hex[];
  /** Hands a message to the counterparty; called only after the step that made it is committed. */
  send: (channelId: Hex, message: UpdateMessage) => void;
  /** Told of each event of a step once it is committed (its errors are ignored). */
  onEvent?: (channelId: Hex, event: UpdateEvent) => void;
  /** Told, once a step is committed, of the swaps (by lower-case hashlock) whose side it changed. */
  onSides?: (hashlocks: readonly string[]) => void;
  /**
   * Keeps a side's secret with its reveal rule when it is first held or its rule changes (default: the store alone;
   * a client also tells its watchtower of one that may now be revealed).
   */
  keepSecret?: (hashlock: Hex, secret: Hex, rule: RevealRule) => void;
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
  /**
   * The most swaps `agreeAll` keeps open at once on one channel (as source or target: a client caps what a peer can
   * make it hold, and a state holds at most MAX_LOCKS locks); by default no cap.
   */
  maxOpen?: number;
  /**
   * Whether a channel left the off-chain path (force-closed, or closed without a final state of ours): nothing is
   * asked, resent or signed on it any more. By default none.
   */
  offChainEnded?: (channelId: Hex) => boolean;
  /**
   * The deposits the hub holds on a channel at this party's final block, as last read: a count of deposits (ours or
   * the other's) is signed only up to them, and "not yet" above them. Without it, no count is signed.
   */
  finalDeposits?: (channelId: Hex) => readonly [bigint, bigint] | undefined;
  /**
   * Why nothing new that depends on chain `chainId` may be signed now (SwapClientOptions.chainGuard), or undefined: a
   * count of deposits on a channel of that chain, and a lock of a swap with a channel on it, wait ("not yet", ours
   * and the counterparty's alike) while it holds. By default no chain is held.
   */
  hold?: (chainId: bigint) => string | undefined;
  /** The time in ms since the epoch (what a resume after a restore is numbered from); by default the system's. */
  now?: () => number;
  /**
   * The number of the newest co-signed state of a channel held outside the store (its watchtower's store, kept beside
   * a restored copy: it may hold states newer than the copy). A frozen channel does not catch up from an older head
   * than that: a force close gets that state (the watchtower answers with it), so catching up from an older one would
   * give the other party what it could not get on chain. By default none.
   */
  newestCoSigned?: (channelId: Hex) => bigint | undefined;
}>;

/** How often a channel of a restored copy asks the other party again to show the newest state both signed. */
export const RESUME_EVERY_MS = 5_000;

/** The least time between two resumes answered on a channel (a restored party asks every RESUME_EVERY_MS). */
export const RESUME_ANSWER_MS = 1_000;

/** What a channel's updater row holds: its data less the states kept elsewhere in the store. */
type StoredUpdater = Omit<UpdaterData, "head" | "headSignatures" | "inFlight"> &
  Readonly<{ headSeq: bigint; inFlight: Readonly<{ seq: bigint; batch: readonly Queued[]; signature: Hex }> | undefined }>;

export class Counterparty {
  private updaters = new Map<string, UpdaterData>();
  private sides = new Map<string, SwapSide>();
  /** Swaps not settled on this side: the only ones a step looks at. */
  private open = new Set<string>();
  /** Written in the step under way, stored at its end. */
  private dirty = { updaters: new Set<string>(), sides: new Set<string>(), terms: new Set<string>() };
  private outgoing: { channelId: Hex; message: UpdateMessage }[] = [];
  private events: { channelId: Hex; event: UpdateEvent }[] = [];
  private readonly book: ChannelBook;
  /** Per channel: what the update scheme is given (built once; it reads the swaps as they are). */
  private readonly envs = new Map<string, UpdateEnv>();
  /** The channels with the counterparty, as given; and lower case, to look them up. */
  private readonly list: Hex[] = [];
  private readonly members = new Set<string>();
  /** The counterparty (lower case): the other participant of every channel here. */
  readonly counterparty: string;
  /** Memory is ahead of the store (a nested step was rolled back): read it again before the next use. */
  private stale = false;
  /** Per channel (lower case): whether a close is asked for or signed on it, as last worked out. */
  private closingNow = new Map<string, boolean>();
  /** Per channel (lower case): whether it was closing when every open swap was last looked at (`drive`). */
  private walkedClosing = new Map<string, boolean>();
  /** Every open swap is looked at in the next step (the engine was just read from the store). */
  private walkPending = true;
  /**
   * Channels (lower case) whose ledger changed since `drive` last compared whether they are closing with
   * `walkedClosing`: only a change of its ledger starts or stops a channel's close, so a step looks at these only.
   */
  private closingUnchecked = new Set<string>();
  /** Sides read from a row that carries its terms, with no terms row: the next write of the side writes one. */
  private termsUnstored = new Set<string>();
  /** When this engine started (s): every state this key signed before then is numbered below this second's floor. */
  private readonly startedSec: bigint;
  /** Per frozen channel (lower case): when a resume was last asked for, and why it could not catch up last. */
  private readonly resumes = new Map<string, { askedAt: number; problem?: string }>();
  /**
   * Per channel (lower case): the highest floor of the other's resumes answered since this process started, and when
   * (ms). An asker takes the floor of the second it asks in, every RESUME_EVERY_MS: one answer per floor is all it
   * needs, and a resume at or below that floor is not answered again (each answer is a copy of the head, up to
   * MAX_LOCKS locks, and gives up a batch of ours in flight to sign it again at the floor). Nor is one within
   * RESUME_ANSWER_MS of the last answer: floors below this party's clock are taken, so a peer could otherwise walk
   * them up a second at a time, as fast as it sends.
   */
  private readonly resumesAnswered = new Map<string, Readonly<{ floor: bigint; at: number }>>();

  constructor(private readonly o: CounterpartyOptions) {
    if (o.channels.length === 0) throw new ChannelSdkError("a counterparty's channels: at least one");
    this.counterparty = this.otherOf(o.channels[0]!);
    this.book = o.book ?? new ChannelBook(o.store, o.signer);
    this.startedSec = this.nowSec();
    for (const id of o.channels) this.join(id);
    this.load();
  }

  private otherOf(channelId: Hex): string {
    const r = this.record(channelId);
    return r.params.participants[r.myIndex === 0 ? 1 : 0]!.toLowerCase();
  }

  private join(channelId: Hex) {
    const k = channelId.toLowerCase();
    if (this.members.has(k)) return;
    if (this.otherOf(channelId) !== this.counterparty) throw new ChannelSdkError(`channel ${channelId} is with another counterparty`);
    this.members.add(k);
    this.list.push(this.record(channelId).ref.channelId);
  }

  /**
   * A channel with the same counterparty joins: its ledger goes on from its newest co-signed state (or its opening
   * deposits), and swaps may use it from now on.
   */
  addChannel(channelId: Hex): void {
    if (this.members.has(channelId.toLowerCase())) return;
    this.join(channelId);
    this.fresh();
    this.updaters.set(channelId.toLowerCase(), this.startUpdater(this.record(channelId).ref.channelId, undefined));
  }

  /** Whether `channelId` is one of the counterparty's channels here. */
  has(channelId: Hex): boolean {
    return this.members.has(channelId.toLowerCase());
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
    this.closingNow = new Map();
    this.walkedClosing = new Map();
    this.walkPending = true; // read from the store: the next step looks at every swap
    this.closingUnchecked = new Set();
    for (const id of this.list) this.updaters.set(id.toLowerCase(), this.startUpdater(id, stored.get(id.toLowerCase())));
    // The swaps with this counterparty only: a store may hold other counterparties' swaps, driven by their own engine.
    const mine = (s: SwapSide) => this.members.has(s.terms.source.channelId.toLowerCase()) && this.members.has(s.terms.target.channelId.toLowerCase());
    this.termsUnstored = new Set();
    this.sides = new Map([...this.storedSides()].filter(([, s]) => mine(s)));
    this.open = new Set([...this.sides].filter(([, s]) => !settled(s)).map(([k]) => k));
  }

  /**
   * Every swap side the store holds, each with its terms: from the side's row and its terms' row (a row written
   * before terms had rows of their own carries them itself).
   */
  private storedSides(): Map<string, SwapSide> {
    const terms = this.o.store.batched<SwapTerms>("terms");
    const sides = new Map<string, SwapSide>();
    for (const [k, row] of this.o.store.batched<Omit<SwapSide, "terms"> & { terms?: SwapTerms }>("side")) {
      const t = row.terms ?? terms.get(k);
      if (t === undefined) throw new ChannelSdkError(`the terms of swap side ${k} are not in the store`);
      // Its row is written again without them (`step`): so its terms row is written with it.
      if (!terms.has(k)) this.termsUnstored.add(k);
      sides.set(k, { ...row, terms: t });
    }
    return sides;
  }

  /** A channel's updater from its row, or, for a channel with none yet, from its newest co-signed state. */
  private startUpdater(id: Hex, known: StoredUpdater | undefined): UpdaterData {
    if (known !== undefined) return this.fromRow(id, known);
    // A channel new to the scheme starts from its newest co-signed state (deposits counted, say).
    const record = this.record(id);
    const latest = this.o.store.latestCoSigned(id);
    const head = latest?.state ?? openingState(id, record.openingDeposits);
    const fresh = newUpdater(record.myIndex, head, latest?.signatures);
    // Numbers this key signed before (a store of 0.2.x) are used: nothing is signed at them again.
    const used = this.o.store.highestOwnSeq(id);
    return used > fresh.signedSeq ? { ...fresh, signedSeq: used } : fresh;
  }

  /** The counterparty's channels. */
  get channels(): readonly Hex[] {
    return this.list;
  }

  /** Forgets what memory holds: the transaction of the last steps was rolled back, so the store is read again. */
  invalidate(): void {
    this.stale = true;
  }

  private fresh() {
    if (!this.stale) return;
    this.stale = false;
    this.load();
  }

  /**
   * Whether a channel is closing: its close is queued, asked for, in flight or signed. From then on no lock is added
   * on it, and every swap with a lock on it that is not past its reveal is undone (its other channel stays open);
   * the close waits for the channel's last lock to be resolved.
   */
  closing(channelId: Hex): boolean {
    this.fresh();
    const k = channelId.toLowerCase();
    let known = this.closingNow.get(k);
    if (known === undefined) {
      const u = this.updaters.get(k);
      known = u !== undefined && (signedFinal(u) || closeAsked(u));
      this.closingNow.set(k, known);
    }
    return known;
  }

  /**
   * Whether a swap uses a frozen channel (a restored copy's): it is not undone here. What became of it after the copy
   * is not known (the lost process may have locked, revealed and paid it since); undone with no lock in the copy, it
   * would count as settled at once, so the channel would catch up (`catchUpBlocker`) and the swap be shown undone
   * whatever the newest states hold. It stays open until the chain settles it (a force close).
   */
  private ofCopy(side: SwapSide): boolean {
    const { store } = this.o;
    return store.frozenSince(side.terms.source.channelId) !== undefined || store.frozenSince(side.terms.target.channelId) !== undefined;
  }

  /** Whether a swap uses a closing channel (it takes no new lock, and is undone unless past its reveal). */
  private swapClosing(side: SwapSide): boolean {
    return this.closing(side.terms.source.channelId) || this.closing(side.terms.target.channelId);
  }

  /**
   * Counts on `channelId` the deposits the hub holds (final on chain): queued as a change of the next batch (the other
   * signs it only if its own reading of the hub holds as much). Nothing is queued if one is pending or they are counted,
   * nor on a frozen channel (a restored copy's, until it caught up).
   */
  countDeposits(channelId: Hex, deposits: readonly [bigint, bigint]): void {
    // A frozen channel (from a restored copy) signs nothing: its count waits until it caught up.
    if (this.o.store.frozenSince(channelId) !== undefined) return;
    this.step(() => this.apply(channelId, enqueue(this.updater(channelId), [{ kind: "deposits", deposits }], this.env(channelId))));
  }

  /**
   * Closes a channel cooperatively: every swap with a lock on it that is not past its reveal is undone, the others
   * complete, and its final state is signed once its last lock is resolved (then landed on chain by the caller).
   * The other channels stay open.
   */
  close(channelId: Hex): void {
    this.step(() => {
      this.apply(channelId, enqueue(this.updater(channelId), [{ kind: "close" }], this.env(channelId)));
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

  /** Per channel (lower case): how many open swaps use it, as source or target. */
  openPerChannel(): Map<string, number> {
    const open = new Map<string, number>();
    for (const side of this.openSwaps()) {
      for (const id of [side.terms.source.channelId, side.terms.target.channelId]) open.set(id.toLowerCase(), (open.get(id.toLowerCase()) ?? 0) + 1);
    }
    return open;
  }

  /** The channels still on the off-chain path: the only ones anything is asked, resent or signed on. */
  private live(): Hex[] {
    return this.list.filter((id) => this.o.offChainEnded?.(id) !== true);
  }

  /** The co-signed head of a channel. */
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

  /**
   * What a participant (by default this party) can still lock on a channel: its free balance less what the agreed
   * swaps will lock for it there.
   */
  available(channelId: Hex, who?: ParticipantIndex): bigint {
    const u = this.updater(channelId);
    const p = who ?? u.me;
    // Only open swaps reserve anything: settled ones are skipped without being read.
    const open = [...this.open].map((k) => this.sides.get(k)!);
    return unreserved(open, channelId, p, u.head.balances[p]);
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
    const me = this.o.signer.address.toLowerCase();
    const free = new Map<string, bigint>(); // per channel: `available` less the swaps agreed in this step
    this.step(() => {
      const open = this.openPerChannel();
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
          !this.members.has(source) || !this.members.has(target) || source === target
            ? "the swap's channels are not two channels with this counterparty"
            : mineIs.toLowerCase() !== me
              ? `this signer is not the swap's ${side.role}`
              : (side.sourceSender === this.updater(t.source.channelId).me) !== (side.role === "initiator") ||
                  (side.targetSender === this.updater(t.target.channelId).me) !== (side.role === "responder")
                ? "the lock senders do not match the participants" // the initiator sends on S, the responder on T
                : undefined;
        const [mine, amount] = side.role === "initiator" ? [t.source.channelId, t.give] : [t.target.channelId, t.take];
        const busiest = [t.source.channelId, t.target.channelId].find((id) => (open.get(id.toLowerCase()) ?? 0) >= (this.o.maxOpen ?? Infinity));
        // (A swap agreed on a closing channel is undone at once by `drive`, as any swap on it not past its reveal.)
        const full = reason === undefined && busiest !== undefined ? `channel ${busiest} has ${open.get(busiest.toLowerCase())} swaps open, the most its states can lock` : undefined;
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
        for (const c of [source, target]) open.set(c, (open.get(c) ?? 0) + 1);
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

  /**
   * Undoes many swaps in one step (each refused once its secret left or is known, and a swap of a frozen channel:
   * `ofCopy`).
   */
  cancelAll(hashlocks: readonly Hex[]): void {
    const known = hashlocks.filter((h) => {
      const side = this.side(h);
      return side !== undefined && !this.ofCopy(side);
    });
    if (known.length === 0) return;
    this.step(() => {
      for (const h of known) this.setSide(h.toLowerCase(), cancel(this.sides.get(h.toLowerCase())!).side);
      this.drive(false);
    });
  }

  /** A message of the counterparty's on `channelId`. Throws (and changes nothing) for one that is not the protocol's. */
  handle(channelId: Hex, message: UpdateMessage): void {
    // A head is taken only by a frozen channel that asked for one: any other is dropped before its state (up to
    // MAX_LOCKS locks) is read.
    if ((message as { kind?: unknown } | null)?.kind === "head" && this.unaskedHead(channelId)) return;
    const checked = checkUpdateMessage(message); // a peer's message: every field's shape, nothing else kept
    if (checked.kind === "head") {
      this.step(() => this.takeHead(channelId, checked));
      return;
    }
    // A resume is answered once per floor, and once a second at most: each answer is a copy of the head (up to
    // MAX_LOCKS locks) and may give up a batch of ours in flight to sign it again.
    if (checked.kind === "resume") {
      const answered = this.resumesAnswered.get(channelId.toLowerCase());
      // Answered already (or a later one was), or one was answered within the last RESUME_ANSWER_MS.
      if (answered !== undefined && (checked.floor <= answered.floor || this.now() - answered.at < RESUME_ANSWER_MS)) return;
    }
    // A frozen channel signs nothing: a batch numbered far above its own (the other's at a floor, before the head
    // that goes with it) is not answered, whose refusal would use numbers up to the floor and keep the head from
    // being taken (`catchUp`: the floor must be above every number used). Within MAX_SEQ_STEP it is answered as ever.
    if (checked.kind === "update" && this.o.store.frozenSince(channelId) !== undefined) {
      const { signedSeq } = this.updater(channelId);
      if (checked.seq > signedSeq + MAX_SEQ_STEP) throw new InvalidMessageError(`a batch numbered ${checked.seq} on a frozen channel, more than ${MAX_SEQ_STEP} above ${signedSeq}`);
    }
    this.step(() => {
      const step = receive(this.updater(channelId), checked, this.env(channelId));
      this.apply(channelId, step);
      if (checked.kind === "resume") this.resumesAnswered.set(channelId.toLowerCase(), { floor: checked.floor, at: this.now() });
      // A batch of ours a resume gave up goes again at the floor, unless this side is frozen too (restored itself):
      // it shows its head all the same, and catches up in turn.
      if (checked.kind === "resume" && this.o.store.frozenSince(channelId) === undefined) this.apply(channelId, propose(this.updater(channelId), this.env(channelId)));
      this.drive(step.events.some((e) => e.type === "cosigned"));
    });
  }

  /** Resends what is unanswered and tries again what waited; call it on a timer. */
  tick(): void {
    this.askToResume();
    this.step(() => {
      for (const id of this.live()) for (const message of resendable(this.updater(id))) this.outgoing.push({ channelId: id, message });
      this.drive(true, true);
    });
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** The second this engine's clock is in (what floors are taken from: `resumeFloor`). */
  private nowSec(): bigint {
    return BigInt(Math.floor(this.now() / 1000));
  }

  /**
   * Why a channel the store got from a copy (frozen: nothing is signed on it) cannot catch up from the other party,
   * or undefined if it may (docs/NODE.md, "Backups"). It may once it is open and idle: no close under way, and no
   * swap of the copy left on it (what became of one after the copy is not known here, so it is settled on chain).
   */
  catchUpBlocker(channelId: Hex): string | undefined {
    const { store } = this.o;
    if (store.frozenSince(channelId) === undefined) return "it is not frozen";
    const moved = store.movedAway();
    if (moved !== undefined) return `this store was moved to ${moved}, where the node goes on: a copy left behind never resumes`;
    if (this.o.offChainEnded?.(channelId) === true || store.channelOp(channelId) !== undefined) return "it is closing";
    const u = this.updater(channelId);
    if (signedFinal(u) || closeAsked(u)) return "a close of it was signed or asked for";
    const k = channelId.toLowerCase();
    const swaps = [...this.open].filter((h) => {
      const t = this.sides.get(h)!.terms;
      return t.source.channelId.toLowerCase() === k || t.target.channelId.toLowerCase() === k;
    }).length;
    if (swaps > 0) return `${swaps} swap(s) of the copy use it; force-close it`;
    return this.resumes.get(k)?.problem;
  }

  /** Frozen channels with what they last heard (for views): whether each may catch up, and why not. */
  resumeState(channelId: Hex): Readonly<{ askedAt?: number; problem?: string }> | undefined {
    if (this.o.store.frozenSince(channelId) === undefined) return undefined;
    const r = this.resumes.get(channelId.toLowerCase());
    return { askedAt: r?.askedAt, problem: this.catchUpBlocker(channelId) };
  }

  /**
   * Asks the other party to show the newest state both signed, on every frozen channel that may catch up (every
   * RESUME_EVERY_MS), numbered from the floor of this second: a floor taken after this process started is above
   * every number this key used before (RESUME_EPOCH_BITS). Signs nothing.
   */
  private askToResume(): void {
    const { store } = this.o;
    if (!this.list.some((id) => store.frozenSince(id) !== undefined)) return;
    const now = this.now();
    const sec = this.nowSec();
    if (sec <= this.startedSec) return; // the floor must be taken after the second this process started in
    const floor = resumeFloor(sec);
    const ask: Hex[] = [];
    for (const id of this.list) {
      const k = id.toLowerCase();
      const r = this.resumes.get(k);
      if (store.frozenSince(id) === undefined || (r !== undefined && now - r.askedAt < RESUME_EVERY_MS)) continue;
      const blocker = this.catchUpBlocker(id);
      if (blocker !== undefined && blocker !== r?.problem) continue; // blocked for good (the problem of an answer is asked again)
      this.resumes.set(k, { askedAt: now, problem: r?.problem });
      ask.push(id);
    }
    if (ask.length === 0) return;
    this.step(() => {
      for (const id of ask) this.outgoing.push({ channelId: id, message: { kind: "resume", floor } });
    });
  }

  /**
   * The other party's answer to a resume: its co-signed head, taken as this channel's own if the channel may catch
   * up (`catchUpBlocker`), the head has no lock (none of the copy's swaps is left, so a lock there is one this copy
   * does not know), is not final nor older than a state the watchtower holds (`newestCoSigned`), and its floor is one
   * this process could have asked for. The channel is not frozen from then on. A head that cannot be taken leaves the
   * channel frozen and says why (`resumeState`).
   */
  private takeHead(channelId: Hex, message: Extract<UpdateMessage, { kind: "head" }>): void {
    const { store } = this.o;
    if (this.unaskedHead(channelId)) return;
    const k = channelId.toLowerCase();
    const asked = this.resumes.get(k)!;
    const { floor } = message;
    const [lowest, highest] = [resumeFloor(this.startedSec + 1n), resumeFloor(this.nowSec())];
    if (floor < lowest || floor > highest) throw new InvalidMessageError(`a head numbered from ${floor}, outside what this process asked for (${lowest}..${highest})`);
    // A head that is not the protocol's (not signed by both, older than ours, ...) is refused before anything else.
    const step = catchUp(this.updater(channelId), message, {
      verify: (state, signature) => this.book.requireCounterSigned(state, signature),
      verifyOwn: (state, signature) => this.book.requireOwnSigned(state, signature),
      highestSigned: () => store.highestOwnSeq(channelId),
    });
    const problem = this.headProblem(channelId, message.state, asked.problem);
    if (problem !== undefined) {
      this.resumes.set(k, { askedAt: asked.askedAt, problem });
      return;
    }
    this.apply(channelId, step);
    store.thaw(channelId);
    this.walkPending = true; // a channel that takes changes again: every open swap is looked at
    this.resumes.delete(k);
  }

  /**
   * Whether a head on `channelId` comes unasked: true (nothing to take) once the channel caught up (a late answer);
   * throws InvalidMessageError if the channel never asked for one.
   */
  private unaskedHead(channelId: Hex): boolean {
    if (this.o.store.frozenSince(channelId) === undefined) return true; // caught up already: a late answer
    if (!this.resumes.has(channelId.toLowerCase())) throw new InvalidMessageError(`a co-signed head of channel ${channelId}, which asked for none`);
    return false;
  }

  /**
   * Why a valid head cannot be taken (the channel stays frozen), or undefined: the channel may not catch up now
   * (`catchUpBlocker`, but for the problem of the last answer, which this answer may mend), the head is older than
   * the newest state the watchtower holds, final, or holds a lock (a swap this copy does not know).
   */
  private headProblem(channelId: Hex, head: ChannelState, lastProblem: string | undefined): string | undefined {
    const blocker = this.catchUpBlocker(channelId);
    if (blocker !== undefined && blocker !== lastProblem) return blocker;
    const known = this.o.newestCoSigned?.(channelId);
    if (known !== undefined && head.seq < known) {
      return `the other party shows state ${head.seq}, older than state ${known} both signed that this node's watchtower holds; force-close it (the watchtower answers with the newer)`;
    }
    if (head.isFinal) return "the other party's newest state is final; land it or force-close";
    if (head.locks.length > 0) return `the other party's newest state holds ${head.locks.length} lock(s) of swaps this copy does not know; force-close it`;
    return undefined;
  }

  private setSide(k: string, side: SwapSide) {
    // A secret this side holds is kept where the on-chain path and the watchtower look for it, with whether it may be
    // revealed, in the same step: an initiator's once it reveals, never once it undid the swap before that.
    const before = this.sides.get(k);
    const rule = revealRule(side);
    if (side.secret !== undefined && (before?.secret !== side.secret || revealRule(before) !== rule)) {
      if (this.o.keepSecret !== undefined) this.o.keepSecret(side.terms.hashlock, side.secret, rule);
      else this.o.store.saveSecret(side.terms.hashlock, side.secret, rule);
    }
    this.sides.set(k, side);
    this.open.add(k);
    this.dirty.sides.add(k);
    if (before === undefined || this.termsUnstored.has(k)) this.dirty.terms.add(k);
  }

  private setUpdater(channelId: Hex, data: UpdaterData) {
    this.closingNow.delete(channelId.toLowerCase());
    this.closingUnchecked.add(channelId.toLowerCase());
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
      resumeLimit: () => resumeFloor(this.nowSec()),
      verify: (state, signature) => this.book.requireCounterSigned(state, signature),
      approve: (change) => {
        if (change.kind === "close") return APPROVED; // either may close; the other could go on chain anyway
        if (change.kind === "deposits") {
          const hold = this.o.hold?.(this.record(channelId).ref.chainId);
          if (hold !== undefined) return { ok: false, final: false, reason: hold };
          const held = this.o.finalDeposits?.(channelId);
          return held !== undefined && held[0] >= change.deposits[0] && held[1] >= change.deposits[1]
            ? APPROVED
            : { ok: false, final: false, reason: `the hub does not hold deposits of [${change.deposits.join(", ")}] at our final block yet` };
        }
        const side = this.sides.get(changeHashlock(change));
        if (side === undefined) return { ok: false, final: true, reason: "no agreed swap has this lock" };
        if (change.kind === "add" && this.swapClosing(side)) return { ok: false, final: true, reason: "a channel of the swap is closing" };
        // A new lock binds both chains of its swap (its twin on the other one): it waits while either is held.
        if (change.kind === "add") {
          const hold = this.o.hold?.(side.terms.source.chainId) ?? this.o.hold?.(side.terms.target.chainId);
          if (hold !== undefined) return { ok: false, final: false, reason: hold };
        }
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
      if (event.type === "caughtUp") {
        if (event.signatures !== undefined) this.book.keep({ state: event.state, signatures: event.signatures });
        continue; // what led to it is not known; no swap of the copy uses the channel
      }
      if (event.type === "resumed") continue; // no change made: nothing for the swaps
      // A change of a frozen channel refused (a request or batch of the copy's, answered by a peer that moved on):
      // the swap is not undone for it, as it is not by a cancel (`ofCopy`): its fate after the copy is not known.
      if (event.type === "refused" && this.o.store.frozenSince(channelId) !== undefined) continue;
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
  private drive(wakeAll: boolean, walkAll = false) {
    // A frozen channel (from a restored copy) signs nothing until it caught up: nothing is asked or proposed on it.
    const takes = (id: Hex) => this.o.offChainEnded?.(id) !== true && this.o.store.frozenSince(id) === undefined;
    // The swaps looked at: every open one on a tick (`walkAll`: a reveal gone late, a ghost to pass) or once a
    // channel started or stopped closing since the last such walk (its swaps are undone); else only those this step
    // changed. An untouched swap's wants are queued already (or moot until a change of its own touches it), so a step
    // costs what it changed, not the number of swaps open or channels with the counterparty. Only a channel whose
    // ledger changed can have started or stopped closing; one that takes no changes now is looked at again later.
    let closingMoved = false;
    for (const k of this.closingUnchecked) {
      if (!takes(k as Hex)) continue;
      this.closingUnchecked.delete(k);
      if ((this.walkedClosing.get(k) ?? false) !== this.closing(k as Hex)) closingMoved = true;
    }
    const full = walkAll || this.walkPending || closingMoved;
    const live = full ? this.list.filter(takes) : [];
    if (full) {
      this.walkPending = false;
      for (const id of live) this.walkedClosing.set(id.toLowerCase(), this.closing(id));
    }
    const asks = new Map<string, Change[]>(live.map((id) => [id.toLowerCase(), []]));
    /** The changes asked of a channel in this step: an entry for each channel that takes changes now. */
    const asksOf = (channelId: Hex): Change[] | undefined => {
      const k = channelId.toLowerCase();
      let list = asks.get(k);
      if (list === undefined && !full && this.members.has(k) && takes(channelId)) asks.set(k, (list = []));
      return list;
    };
    const keys = full ? [...this.open] : [...this.dirty.sides].filter((k) => this.open.has(k));
    // Channels where an undone swap's T lock may be in a refused batch of ours (a ghost) that nothing else will pass:
    // its S refund waits on it, so an empty batch passes it (on a tick).
    const haunted = new Set<string>();
    for (const k of keys) {
      const side = this.sides.get(k)!;
      if (settled(side)) {
        this.open.delete(k);
        continue;
      }
      let current = side;
      // An initiator about to reveal with too little time left on T undoes the swap instead; a swap with a channel
      // closing is undone unless past its reveal (cancel refuses those, which complete).
      const late = side.role === "initiator" && !side.revealed && side.target === "locked" && this.o.mayReveal?.(side) === false;
      if (!side.cancelled && !this.ofCopy(side) && (late || this.swapClosing(side))) {
        current = cancel(side).side;
        if (current !== side) this.setSide(k, current);
      }
      if (current.cancelled) {
        for (const w of cancel({ ...current, cancelled: false }).withdraw) this.setUpdater(w.channelId, withdraw(this.updater(w.channelId), [w.change]));
      }
      const t = current.terms;
      if (current.role === "responder" && current.cancelled && current.source === "locked" && current.target === "none" && maybeAdded(this.updater(t.target.channelId), t.hashlock)) {
        haunted.add(t.target.channelId.toLowerCase());
      }
      const { side: next, wants: ws } = wants(current);
      if (next !== current) this.setSide(k, next);
      for (const w of ws) asksOf(w.channelId)?.push(w.change);
    }
    // What "not yet" waited for may have moved (`wakeAll`): a channel with something queued tries again. One with
    // nothing queued has nothing to try.
    if (wakeAll && !full) for (const [k, u] of this.updaters) if (u.queue.length > 0) asksOf(k as Hex);
    for (const id of this.list) {
      const changes = asks.get(id.toLowerCase());
      if (changes === undefined) continue;
      if (changes.length > 0) this.apply(id, enqueue(this.updater(id), changes, this.env(id)));
      if (wakeAll) this.apply(id, wake(this.updater(id), this.env(id)));
      if (walkAll && haunted.has(id.toLowerCase())) this.apply(id, passGhosts(this.updater(id), this.env(id)));
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
        for (const k of this.dirty.updaters) store.saveBatched("updater", k, Counterparty.row(this.updaters.get(k)!));
        // A side's row holds what moves; its terms, which never change, are a row of their own written once.
        for (const k of this.dirty.terms) store.saveBatched("terms", k, this.sides.get(k)!.terms);
        for (const k of this.dirty.sides) {
          const { terms: _terms, ...moving } = this.sides.get(k)!;
          store.saveBatched("side", k, moving);
        }
        changed = [...this.dirty.sides];
        for (const k of this.dirty.terms) this.termsUnstored.delete(k); // (a rollback reads the store again: `load`)
      });
    } catch (error) {
      this.dirty = { updaters: new Set(), sides: new Set(), terms: new Set() };
      // The step never happened: memory goes back to what is stored (nested: once the caller has rolled back).
      if (this.o.nested === true) this.stale = true;
      else this.load();
      throw error;
    } finally {
      this.dirty = { updaters: new Set(), sides: new Set(), terms: new Set() };
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
