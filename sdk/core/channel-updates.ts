/**
 * The channel update scheme: one proposer per channel, batches acknowledged in order (docs/SWAP.md, "Channel
 * updates"). Pure: no store, no network, no clock. The caller persists the returned data before it sends the
 * returned messages, and signs through `UpdateEnv.sign`, which must refuse a second state at a sequence number.
 *
 * Participant 0 of a channel is its proposer: the only party that puts new states together. Participant 1, the
 * acknowledger, asks for the changes it wants (`request`), and counter-signs or refuses each batch the proposer
 * signed (`update` -> `ack` | `refuse`). The proposer has at most one batch in flight and signs the next one only
 * once that one is co-signed or refused, at a sequence number above every one it ever signed. So:
 * - one sequence number never carries two different states signed by one party (each signs increasing numbers);
 * - the two never build on different heads (only the proposer builds, on the head both co-signed);
 * - nothing waits on the other in a cycle (the acknowledger answers every batch at once, yes or no).
 */
import { InvalidMessageError, InvalidStateError, LockNotFoundError } from "./errors.js";
import { checkState, MAX_LOCKS, sameState } from "./state.js";
import { hashlockOf } from "./swap.js";
import { peerText } from "./text.js";
import type { ChannelState, Hex, Lock, ParticipantIndex } from "./types.js";

/** One change a batch makes to a channel. */
export type Change =
  /** A new hash-locked transfer from `lock.sender`'s free balance. */
  | Readonly<{ kind: "add"; lock: Lock }>
  /** The lock of `hashlock` paid to its receiver; `secret` is its preimage (the receiver's proof, the sender's gain). */
  | Readonly<{ kind: "pay"; hashlock: Hex; secret: Hex }>
  /** The lock of `hashlock` given back to its sender (a cancel: its receiver gives up its claim). */
  | Readonly<{ kind: "refund"; hashlock: Hex }>
  /**
   * The deposits the hub holds for each participant, final on chain, counted from now on: each participant's free
   * balance grows by what was deposited for it since the last count (both check the hub before they sign).
   */
  | Readonly<{ kind: "deposits"; deposits: readonly [bigint, bigint] }>
  /**
   * The channel closes cooperatively: the state becomes final, to be landed with `closeCooperatively`. It goes in a
   * batch of its own once no lock is left, and nothing is applicable after it.
   */
  | Readonly<{ kind: "close" }>;

/** A change that adds or resolves one lock. */
export type LockChange = Extract<Change, { kind: "add" | "pay" | "refund" }>;

export function isLockChange(change: Change): change is LockChange {
  return change.kind === "add" || change.kind === "pay" || change.kind === "refund";
}

/** The proposer puts at most this many changes in one batch (a message stays a few hundred kB at most). */
export const MAX_BATCH_CHANGES = 512;

/** The most changes a proposer keeps queued for the acknowledger; more are dropped and asked for again later. */
export const MAX_REQUESTED = 4 * MAX_BATCH_CHANGES;

/**
 * How far above the last number it answered the acknowledger takes a batch's sequence number: the proposer counts
 * up by one per batch (more only after a crash lost a batch before it was sent), so a batch numbered near 2^64,
 * which would end the channel's updates, is never signed.
 */
export const MAX_SEQ_STEP = 16n;

/**
 * Sequence numbers of a channel resumed after a restore start at `unix seconds << RESUME_EPOCH_BITS` (a *floor*):
 * each party counts up by at most MAX_SEQ_STEP per state, far fewer than 2^20 numbers a second, so every state either
 * party signed by a time `t` is numbered below `(t + 1) << RESUME_EPOCH_BITS`. A party started from an old copy of
 * its store, which cannot know what it signed after the copy, resumes from a floor taken after it started: above
 * every number it ever used, whatever the copy lacks (docs/SWAP.md, "Catching up after a restore"). Floors stay
 * below 2^53 (exact as JavaScript numbers and in every store column) until the year 2242.
 */
export const RESUME_EPOCH_BITS = 20n;

/** The floor of numbers for a resume at `unixSeconds` (`RESUME_EPOCH_BITS`). */
export function resumeFloor(unixSeconds: bigint): bigint {
  return unixSeconds << RESUME_EPOCH_BITS;
}

/** Whether `floor` is one `resumeFloor` gives (a whole second's): a resume names no other. */
export function isResumeFloor(floor: bigint): boolean {
  return floor % (1n << RESUME_EPOCH_BITS) === 0n;
}

const SECRET = /^0x[0-9a-fA-F]{64}$/;

/**
 * The hashlock of the lock a change adds or resolves, in lower case; for a change of no lock (deposits, close), its
 * kind, which is never a hashlock.
 */
export function changeHashlock(change: Change): string {
  if (!isLockChange(change)) return change.kind;
  return (change.kind === "add" ? change.lock.hashlock : change.hashlock).toLowerCase();
}

/** The key under which a change is known in queues: one add, one resolution per hashlock; one count, one close. */
export function changeKey(change: Change): string {
  if (!isLockChange(change)) return change.kind;
  return `${change.kind === "add" ? "add" : "resolve"}:${changeHashlock(change)}`;
}

/** Whether `deposits` counts more than `counted` for some participant and less for none. */
function grows(deposits: readonly [bigint, bigint], counted: readonly [bigint, bigint]): boolean {
  return deposits[0] >= counted[0] && deposits[1] >= counted[1] && (deposits[0] > counted[0] || deposits[1] > counted[1]);
}

/**
 * Whether `change` can be applied to a state (final or not, with these deposits counted, `has` telling whether it
 * holds the lock of a hashlock): its lock absent for an add, present for a resolution; deposits above those counted;
 * nothing once the state is final.
 */
function applicableTo(final: boolean, deposits: readonly [bigint, bigint], has: (hashlock: string) => boolean, change: Change): boolean {
  if (final) return false;
  if (change.kind === "deposits") return grows(change.deposits, deposits);
  if (change.kind === "close") return true;
  const present = has(changeHashlock(change));
  return change.kind === "add" ? !present : present;
}

/** Whether `change` can be applied to `state` as it stands (`applicableTo`). */
export function applicable(state: ChannelState, change: Change): boolean {
  return applicableTo(state.isFinal, state.deposits, (key) => state.locks.some((l) => l.hashlock.toLowerCase() === key), change);
}

/**
 * A state being changed one change at a time: its locks by hashlock (a Map keeps their order), so a batch of n
 * changes costs O(n), not a copy of the lock list per change.
 */
class Draft {
  private readonly balances: [bigint, bigint];
  private deposits: readonly [bigint, bigint];
  private final: boolean;
  private readonly locks: Map<string, Lock>;

  constructor(private readonly base: ChannelState) {
    this.balances = [...base.balances];
    this.deposits = base.deposits;
    this.final = base.isFinal;
    this.locks = new Map(base.locks.map((l) => [l.hashlock.toLowerCase(), l]));
  }

  applicable(change: Change): boolean {
    return applicableTo(this.final, this.deposits, (key) => this.locks.has(key), change);
  }

  /**
   * Whether a change has no room now: an add for want of balance or lock count (it waits for resolutions), a close
   * while any lock is left (it waits for all of them). Checked without throwing.
   */
  noRoom(change: Change): boolean {
    if (change.kind === "close") return this.locks.size > 0;
    if (change.kind !== "add") return false;
    const { lock } = change;
    return this.locks.size >= MAX_LOCKS || (lock.amount > 0n && this.balances[lock.sender] < lock.amount);
  }

  /** Makes one change; throws InvalidStateError (or LockNotFoundError) and changes nothing if it cannot be made. */
  apply(change: Change): void {
    if (this.final) throw new InvalidStateError("the channel state is final; nothing follows it");
    if (change.kind === "deposits") {
      const [d0, d1] = [change.deposits[0] - this.deposits[0], change.deposits[1] - this.deposits[1]];
      if (d0 < 0n || d1 < 0n || d0 + d1 === 0n) throw new InvalidStateError("counted deposits only grow");
      this.balances[0] += d0;
      this.balances[1] += d1;
      this.deposits = change.deposits;
      return;
    }
    if (change.kind === "close") {
      if (this.locks.size > 0) throw new InvalidStateError(`a close with ${this.locks.size} locks left; every lock is resolved first`);
      this.final = true;
      return;
    }
    if (change.kind === "add") {
      const { lock } = change;
      const key = lock.hashlock.toLowerCase();
      if (this.locks.has(key)) throw new InvalidStateError(`two locks with hashlock ${lock.hashlock}`);
      if (lock.amount <= 0n) throw new InvalidStateError("a lock of zero");
      if (this.balances[lock.sender] < lock.amount) {
        throw new InvalidStateError(`participant ${lock.sender} has ${this.balances[lock.sender]} free, a lock of ${lock.amount} was asked`);
      }
      if (this.locks.size >= MAX_LOCKS) throw new InvalidStateError(`a channel state carries at most ${MAX_LOCKS} locks`);
      this.balances[lock.sender] -= lock.amount;
      this.locks.set(key, lock);
      return;
    }
    const key = change.hashlock.toLowerCase();
    const lock = this.locks.get(key);
    if (lock === undefined) throw new LockNotFoundError(change.hashlock);
    if (change.kind === "pay" && !SECRET.test(change.secret)) {
      // The registry reveals bytes32 secrets only: a longer preimage would pay here and never on chain.
      throw new InvalidStateError(`the secret given to pay lock ${lock.hashlock} is not 32 bytes`);
    }
    if (change.kind === "pay" && hashlockOf(change.secret).toLowerCase() !== key) {
      throw new InvalidStateError(`the secret given to pay lock ${lock.hashlock} does not match it`);
    }
    const to: ParticipantIndex = change.kind === "pay" ? (lock.sender === 0 ? 1 : 0) : lock.sender;
    this.balances[to] += lock.amount;
    this.locks.delete(key);
  }

  state(seq: bigint): ChannelState {
    const balances: readonly [bigint, bigint] = [this.balances[0], this.balances[1]];
    return { ...this.base, seq, deposits: this.deposits, balances, locks: [...this.locks.values()], isFinal: this.final };
  }
}

/** The state a batch makes of `head`, at sequence number `seq`; throws InvalidStateError for a batch that cannot be. */
export function applyChanges(head: ChannelState, changes: readonly Change[], seq: bigint): ChannelState {
  if (seq <= head.seq) throw new InvalidStateError(`a batch at sequence ${seq} does not follow ${head.seq}`);
  // An empty batch moves the head to a new number only: what passes a refused batch (`passGhosts`).
  if (changes.length > MAX_BATCH_CHANGES) {
    throw new InvalidStateError(`a batch of ${changes.length} changes; at most ${MAX_BATCH_CHANGES} are allowed`);
  }
  const keys = new Set<string>();
  const draft = new Draft(head);
  for (const change of changes) {
    const key = changeKey(change);
    if (keys.has(key)) throw new InvalidStateError(`a batch changes lock ${changeHashlock(change)} twice`);
    keys.add(key);
    draft.apply(change);
  }
  const next = draft.state(seq);
  checkState(next);
  return next;
}

/** What a party says of one change: yes; not yet (ask again once something changed); or never. */
export type Approval = Readonly<{ ok: true }> | Readonly<{ ok: false; final: boolean; reason: string }>;

export const APPROVED: Approval = { ok: true };

/** A change waiting for a batch, with whose it is: ours (to propose) or the acknowledger's (a request). */
export type Queued = Readonly<{
  change: Change;
  requested: boolean;
  /** Refused as "not yet" by the acknowledger: not proposed again until the head moves or `wake` is called. */
  deferred?: boolean;
}>;

/** What one party keeps of one channel's updates (plain data: it is stored as it is). */
export type UpdaterData = Readonly<{
  channelId: Hex;
  me: ParticipantIndex;
  /** The newest state both signed (the opening state before any), with the signatures in participant order. */
  head: ChannelState;
  headSignatures: readonly [Hex, Hex] | undefined;
  /**
   * The highest sequence number this party signed on the channel (the acknowledger: signed or refused): the next
   * state it signs is above it. A batch refused is never signed later, whatever arrives again.
   */
  signedSeq: bigint;
  /** Proposer: the batch it signed and sent, until it is co-signed or refused. */
  inFlight: Readonly<{ state: ChannelState; batch: readonly Queued[]; signature: Hex }> | undefined;
  /**
   * Proposer: batches it signed that came back refused. A refusal proves nothing: the acknowledger may have signed
   * the batch too and keep it for the chain. Each counts as possibly co-signed until a co-signed head passes its
   * number (then a challenge with the head beats it on chain).
   */
  ghosts: readonly Readonly<{ seq: bigint; adds: readonly Hex[] }>[];
  /** Acknowledger: its answer to the last batch it refused, sent again if that batch comes again. */
  refused?: Readonly<{ seq: bigint; refusals: readonly Readonly<{ index: number; final: boolean; reason: string }>[] }>;
  /** Proposer: changes for the next batch. Acknowledger: changes it asked for and has not seen co-signed. */
  queue: readonly Queued[];
  /**
   * Proposer: it signed a final state on the channel (an acknowledger signs one only as its new head). The other may
   * hold it co-signed and land it at any time while the channel is open (a cooperative close takes any final state,
   * whatever its number), so from then on the proposer signs nothing but a close of the same balances: no value
   * moves on the channel again.
   */
  finalSigned?: boolean;
}>;

/** Messages of the scheme (the caller wraps each in a signed envelope naming the channel). */
export type UpdateMessage =
  /** Acknowledger -> proposer: please put these changes in a batch. */
  | Readonly<{ kind: "request"; changes: readonly Change[] }>
  /** Proposer -> acknowledger: the batch on top of the co-signed head `base`, signed at `seq`. */
  | Readonly<{ kind: "update"; base: bigint; seq: bigint; changes: readonly Change[]; signature: Hex }>
  /** Acknowledger -> proposer: its signature on the state at `seq`. */
  | Readonly<{ kind: "ack"; seq: bigint; signature: Hex }>
  /**
   * Acknowledger -> proposer: the batch at `seq` is not signed; why, per change (by index). `above`: the number
   * is one the acknowledger used already (a state it signed before); the next batch goes above `above`.
   */
  | Readonly<{ kind: "refuse"; seq: bigint; refusals: readonly Readonly<{ index: number; final: boolean; reason: string }>[]; above?: bigint }>
  /** Proposer -> acknowledger: these requested changes will never be made (why, per change). */
  | Readonly<{ kind: "reject"; changes: readonly Readonly<{ change: Change; reason: string }>[] }>
  /**
   * A party started from a restored copy of its store -> the other: show me the newest state we both signed, and
   * from now on number every state of the channel at `floor` or above (`resumeFloor`; `onResume`).
   */
  | Readonly<{ kind: "resume"; floor: bigint }>
  /**
   * The other -> the restored party: its co-signed head (with both signatures in participant order; none for the
   * opening state), every later state numbered at `floor` or above (`catchUp`).
   */
  | Readonly<{ kind: "head"; floor: bigint; state: ChannelState; signatures?: readonly [Hex, Hex] }>;

/** What a step tells its caller: a state both signed (with the changes it made), or one of our changes refused for good. */
export type UpdateEvent =
  /** This party signed a batch (stored with the step): what it agreed to holds from now on, co-signed or not. */
  | Readonly<{ type: "signed"; state: ChannelState; changes: readonly Change[] }>
  | Readonly<{ type: "cosigned"; state: ChannelState; signatures: readonly [Hex, Hex]; changes: readonly Change[] }>
  | Readonly<{ type: "refused"; change: Change; reason: string }>
  /**
   * A restored party took the other's co-signed head as its own (`catchUp`): it signs again, from `floor` on. The
   * changes that led to `state` since the copy are not known.
   */
  | Readonly<{ type: "caughtUp"; state: ChannelState; signatures: readonly [Hex, Hex] | undefined; floor: bigint }>
  /** The other party, restored from a copy, asked to catch up: this party showed it `head` and numbers from `floor`. */
  | Readonly<{ type: "resumed"; head: ChannelState; floor: bigint }>;

/** What the scheme needs from its caller. */
export type UpdateEnv = Readonly<{
  /** Signs a state as this party; must refuse a second, different state at one sequence number (a store guard). */
  sign(state: ChannelState): Hex;
  /** Throws unless the counterparty signed `state` with `signature`. */
  verify(state: ChannelState, signature: Hex): void;
  /**
   * Whether this party agrees to `change` (ours or theirs): the swap rules of docs/SWAP.md. No side effects: what
   * signing a change commits the party to follows from the "signed" event.
   */
  approve(change: Change): Approval;
  /** The highest sequence number the signature guard holds for this channel (it may be ahead of stored data). */
  highestSigned?(): bigint;
  /**
   * The highest floor a resume may name now: `resumeFloor` of this party's clock. Without it, a resume is refused.
   * A floor is taken only once both clocks passed it, so each party's numbers stay below its own clock's floor.
   */
  resumeLimit?(): bigint;
}>;

/**
 * Whether this party may sign at `seq` however far it is above the numbers it used: at most the floor of its own
 * clock (`resumeLimit`), as a resume takes. A party that resumed asks again every few seconds with a later floor,
 * and the other takes the newest ask it saw; the restored side may have caught up from an earlier answer, so the
 * other's numbers start above its own, by up to the seconds between two asks. Every number signed by a time `t` stays
 * below the floor of `t + 1` (RESUME_EPOCH_BITS), as with a resume.
 */
function withinOwnFloor(seq: bigint, env: UpdateEnv): boolean {
  const limit = env.resumeLimit?.();
  return limit !== undefined && seq <= limit;
}

/** Whether a state this party signed above the co-signed head, and that may be co-signed, adds the lock `hashlock`. */
export function maybeAdded(data: UpdaterData, hashlock: Hex): boolean {
  const key = hashlock.toLowerCase();
  if (data.inFlight?.batch.some((q) => q.change.kind === "add" && q.change.lock.hashlock.toLowerCase() === key)) return true;
  return data.ghosts.some((g) => g.seq > data.head.seq && g.adds.some((h) => h.toLowerCase() === key));
}

/** `ghosts` with `ghost` added: each lock's add kept only in the newest ghost that has it, empty ghosts dropped. */
function mergeGhosts(ghosts: UpdaterData["ghosts"], ghost: UpdaterData["ghosts"][number]): UpdaterData["ghosts"] {
  const newer = new Set(ghost.adds.map((h) => h.toLowerCase()));
  const kept = ghosts.map((g) => ({ seq: g.seq, adds: g.adds.filter((h) => !newer.has(h.toLowerCase())) })).filter((g) => g.adds.length > 0);
  return ghost.adds.length > 0 ? [...kept, ghost] : kept;
}

function addsOf(changes: readonly Change[]): Hex[] {
  return changes.flatMap((c) => (c.kind === "add" ? [c.lock.hashlock] : []));
}

export type Step = Readonly<{ data: UpdaterData; send: readonly UpdateMessage[]; events: readonly UpdateEvent[] }>;

const PROPOSER: ParticipantIndex = 0;

function isProposer(data: UpdaterData): boolean {
  return data.me === PROPOSER;
}

/** A channel's updater before any update: `opening` is the state both start from (seq 0, or a co-signed head). */
export function newUpdater(me: ParticipantIndex, opening: ChannelState, headSignatures?: readonly [Hex, Hex]): UpdaterData {
  return { channelId: opening.channelId, me, head: opening, headSignatures, signedSeq: opening.seq, inFlight: undefined, ghosts: [], queue: [] };
}

/** The keys of every change waiting in the queue or in the batch in flight (one pass, for many lookups). */
function pendingKeys(data: UpdaterData): Set<string> {
  const keys = new Set(data.queue.map((q) => changeKey(q.change)));
  for (const q of data.inFlight?.batch ?? []) keys.add(changeKey(q.change));
  return keys;
}

/**
 * Our own changes: the proposer queues them and proposes a batch if none is in flight; the acknowledger queues
 * them and asks the proposer. A change already pending, or moot on the head (its lock added or resolved), is skipped.
 */
export function enqueue(data: UpdaterData, changes: readonly Change[], env: UpdateEnv): Step {
  const known = pendingKeys(data);
  const fresh = changes.filter((c) => !known.has(changeKey(c)) && applicable(data.head, c));
  if (fresh.length === 0) return { data, send: [], events: [] };
  const queued: UpdaterData = { ...data, queue: [...data.queue, ...fresh.map((change) => ({ change, requested: false }))] };
  if (isProposer(data)) return propose(queued, env);
  return { data: queued, send: [{ kind: "request", changes: fresh }], events: [] };
}

/** Drops our queued changes with these keys that are not in flight (a swap taking back what it asked for). */
export function withdraw(data: UpdaterData, changes: readonly Change[]): UpdaterData {
  const keys = new Set(changes.map(changeKey));
  return { ...data, queue: data.queue.filter((q) => q.requested || !keys.has(changeKey(q.change))) };
}

/**
 * Proposer: with no batch in flight, signs and sends the next batch of every queued change both rules allow now.
 * Changes that are not allowed yet stay queued (`wake` tries again); those refused for good are dropped and
 * reported (to the acknowledger too, if it asked for them).
 */
export function propose(data: UpdaterData, env: UpdateEnv): Step {
  if (!isProposer(data) || data.inFlight !== undefined || data.queue.length === 0) return { data, send: [], events: [] };
  const events: UpdateEvent[] = [];
  const rejected: { change: Change; reason: string }[] = [];
  const keep: Queued[] = [];
  const batch: Queued[] = [];
  const draft = new Draft(data.head);
  // A close is looked at last: it goes in a batch of its own, once nothing else is to be proposed and no lock is left.
  const ordered = data.queue.some((q) => q.change.kind === "close")
    ? [...data.queue.filter((q) => q.change.kind !== "close"), ...data.queue.filter((q) => q.change.kind === "close")]
    : data.queue;
  // After a final state of ours, only a close is signed again (at a new number, the same balances).
  const frozen = data.finalSigned === true;
  for (const q of ordered) {
    if (!draft.applicable(q.change)) continue; // moot: its lock added or resolved already, its deposits counted
    if (q.deferred === true || (frozen && q.change.kind !== "close")) {
      keep.push(q);
      continue;
    }
    // No room now: it waits for resolutions (a queue of many adds over a full state is checked without throwing).
    // A close goes in a batch of its own on a head with no lock: every final state this party signs then has the
    // balances of a head both signed, whatever becomes of the batch.
    const waits = q.change.kind === "close" ? batch.length > 0 || draft.noRoom(q.change) : batch.length >= MAX_BATCH_CHANGES || draft.noRoom(q.change);
    if (waits) {
      keep.push(q);
      continue;
    }
    const approval = env.approve(q.change);
    if (approval.ok) {
      try {
        draft.apply(q.change);
      } catch (error) {
        if (!(error instanceof InvalidStateError)) throw error;
        refuse(q, error.message); // room was checked above: a bad secret or the like, which never fits
        continue;
      }
      batch.push(q);
    } else if (approval.final) {
      refuse(q, approval.reason);
    } else {
      keep.push(q);
    }
  }
  function refuse(q: Queued, reason: string) {
    if (q.requested) rejected.push({ change: q.change, reason });
    else events.push({ type: "refused", change: q.change, reason });
  }
  const send: UpdateMessage[] = rejected.length > 0 ? [{ kind: "reject", changes: rejected }] : [];
  if (batch.length === 0) return { data: { ...data, queue: keep }, send, events };
  const guard = env.highestSigned?.() ?? 0n;
  const used = [data.signedSeq, data.head.seq, guard].reduce((a, b) => (a > b ? a : b));
  const seq = used + 1n;
  const state = draft.state(seq);
  checkState(state);
  const signature = env.sign(state);
  const inFlight = { state, batch, signature };
  const changes = batch.map((q) => q.change);
  send.push({ kind: "update", base: data.head.seq, seq, changes, signature });
  events.push({ type: "signed", state, changes });
  const finalSigned = state.isFinal || frozen ? { finalSigned: true } : {};
  return { data: { ...data, queue: keep, signedSeq: seq, inFlight, ...finalSigned }, send, events };
}

/**
 * Proposer with nothing to propose: a refused batch that added a lock is a ghost until a co-signed head passes its
 * number (the acknowledger may hold it signed), and a change that waits on it (the refund of the swap's other lock,
 * on the other channel) would wait for good where nothing else moves on this one. So an empty batch, the head at a
 * new number, passes it. Only with no batch in flight and nothing queued, and never after a final state of ours
 * (only closes are signed then); a no-op otherwise.
 */
export function passGhosts(data: UpdaterData, env: UpdateEnv): Step {
  const haunted = data.ghosts.some((g) => g.seq > data.head.seq && g.adds.length > 0);
  const idle = isProposer(data) && data.inFlight === undefined && data.queue.length === 0;
  if (!idle || !haunted || data.finalSigned === true || data.head.isFinal) return { data, send: [], events: [] };
  const guard = env.highestSigned?.() ?? 0n;
  const seq = [data.signedSeq, data.head.seq, guard].reduce((a, b) => (a > b ? a : b)) + 1n;
  const state = { ...data.head, seq };
  const signature = env.sign(state);
  return {
    data: { ...data, signedSeq: seq, inFlight: { state, batch: [], signature } },
    send: [{ kind: "update", base: data.head.seq, seq, changes: [], signature }],
    events: [{ type: "signed", state, changes: [] }],
  };
}

/**
 * Tries again what the acknowledger refused as "not yet": call it when the other channel of the pair moved, and on
 * a timer. (A head that moves on this channel wakes them by itself.)
 */
export function wake(data: UpdaterData, env: UpdateEnv): Step {
  const queue = undeferred(data.queue);
  return propose(queue === data.queue ? data : { ...data, queue }, env);
}

/** `queue` with every "not yet" mark taken off (the same array if none has one). */
function undeferred(queue: readonly Queued[]): readonly Queued[] {
  if (!queue.some((q) => q.deferred === true)) return queue;
  return queue.map((q) => (q.deferred === true ? { change: q.change, requested: q.requested } : q));
}

/**
 * What to send again after a while without an answer: the batch in flight (proposer) or the requests not yet seen
 * co-signed (acknowledger). Both sides answer duplicates idempotently.
 */
export function resendable(data: UpdaterData): UpdateMessage[] {
  if (isProposer(data)) {
    const f = data.inFlight;
    return f === undefined ? [] : [{ kind: "update", base: data.head.seq, seq: f.state.seq, changes: f.batch.map((q) => q.change), signature: f.signature }];
  }
  const mine = data.queue.map((q) => q.change).filter((c) => applicable(data.head, c));
  const out: UpdateMessage[] = [];
  for (let i = 0; i < mine.length; i += MAX_BATCH_CHANGES) out.push({ kind: "request", changes: mine.slice(i, i + MAX_BATCH_CHANGES) });
  return out;
}

/** Handles a message from the counterparty; throws InvalidMessageError for one that is not the protocol's. */
export function receive(data: UpdaterData, message: UpdateMessage, env: UpdateEnv): Step {
  const none: Step = { data, send: [], events: [] };
  switch (message.kind) {
    case "request": {
      if (!isProposer(data)) throw new InvalidMessageError("a request sent to the channel's acknowledger");
      // A payment asked for supersedes our own queued refund of the same lock (the secret settles it).
      const paid = new Set(message.changes.filter((c) => c.kind === "pay").map(changeKey));
      const inFlight = new Set(data.inFlight?.batch.map((q) => changeKey(q.change)) ?? []);
      const queue = data.queue.filter((q) => !(q.change.kind === "refund" && paid.has(changeKey(q.change)) && !inFlight.has(changeKey(q.change))));
      const base = { ...data, queue };
      // Past the cap, the rest is dropped: the acknowledger asks again once batches have made room.
      const room = MAX_REQUESTED - queue.filter((q) => q.requested).length;
      const known = pendingKeys(base);
      const fresh = message.changes.filter((c) => !known.has(changeKey(c)) && applicable(data.head, c)).slice(0, Math.max(0, room));
      if (fresh.length === 0) return queue.length === data.queue.length ? none : propose(base, env);
      return propose({ ...base, queue: [...queue, ...fresh.map((change) => ({ change, requested: true }))] }, env);
    }
    case "reject": {
      if (isProposer(data)) throw new InvalidMessageError("a reject sent to the channel's proposer");
      const events: UpdateEvent[] = [];
      let queue = data.queue;
      for (const { change, reason } of message.changes) {
        const key = changeKey(change);
        const ours = queue.find((q) => changeKey(q.change) === key);
        if (ours === undefined || ours.change.kind !== change.kind) continue;
        queue = queue.filter((q) => q !== ours);
        events.push({ type: "refused", change: ours.change, reason: `counterparty: ${reason}` });
      }
      return { data: { ...data, queue }, send: [], events };
    }
    case "update":
      return onUpdate(data, message, env);
    case "resume":
      return onResume(data, message, env);
    case "head":
      throw new InvalidMessageError("a co-signed head sent unasked (only a party catching up takes one)");
    case "ack": {
      const f = data.inFlight;
      if (!isProposer(data)) throw new InvalidMessageError("an ack sent to the channel's acknowledger");
      if (f === undefined || f.state.seq !== message.seq) return none; // a duplicate of an ack handled before
      env.verify(f.state, message.signature);
      const signatures: readonly [Hex, Hex] = [f.signature, message.signature];
      const queue = undeferred(data.queue);
      const ghosts = data.ghosts.filter((g) => g.seq > f.state.seq);
      const acked: UpdaterData = { ...data, head: f.state, headSignatures: signatures, inFlight: undefined, ghosts, queue };
      const next = propose(acked, env);
      const changes = f.batch.map((q) => q.change);
      return { ...next, events: [{ type: "cosigned", state: f.state, signatures, changes }, ...next.events] };
    }
    case "refuse": {
      const f = data.inFlight;
      if (!isProposer(data)) throw new InvalidMessageError("a refusal sent to the channel's acknowledger");
      if (f === undefined || f.state.seq !== message.seq) return none;
      const indexes = new Set(message.refusals.map((r) => r.index));
      // An empty batch (one that passes ghosts) is refused naming no change: it stays unsigned, tried on a later tick.
      const bumpRefused = f.batch.length === 0 && message.refusals.length === 0;
      if (!bumpRefused && (indexes.size === 0 || indexes.size !== message.refusals.length || message.refusals.some((r) => r.index < 0 || r.index >= f.batch.length))) {
        throw new InvalidMessageError("a refusal names no change, one twice, or one outside the batch");
      }
      // The batch is dead (only we signed it): its changes go back to the queue, but those refused for good.
      const events: UpdateEvent[] = [];
      const rejected: { change: Change; reason: string }[] = [];
      const back: Queued[] = [];
      f.batch.forEach((q, index) => {
        const r = message.refusals.find((x) => x.index === index);
        // A close is never given up: a final state of ours may be held co-signed already (a refusal proves nothing),
        // so the channel stays closing and the close is asked for again (the same balances, a new number).
        if (r !== undefined && r.final && q.change.kind !== "close") {
          if (q.requested) rejected.push({ change: q.change, reason: r.reason });
          else events.push({ type: "refused", change: q.change, reason: `counterparty: ${r.reason}` });
        } else if (r !== undefined) {
          back.push({ ...q, deferred: true }); // not yet: proposed again once something moved
        } else {
          back.push(q);
        }
      });
      // The rest of the batch goes again at once, at a new sequence number. The refused batch stays a ghost (only
      // its adds matter, and only the newest ghost per lock: ghosts cannot pile up).
      const ghosts = mergeGhosts(data.ghosts, { seq: f.state.seq, adds: addsOf(f.batch.map((q) => q.change)) });
      // Past a resume the other took, its numbers start at the floor (maybe a later ask's than the one answered here):
      // a jump up to the floor of this party's own clock is taken as well.
      const a = message.above;
      const above = a !== undefined && a > data.signedSeq && (a <= data.signedSeq + MAX_SEQ_STEP || withinOwnFloor(a + 1n, env)) ? a : data.signedSeq;
      const next = propose({ ...data, inFlight: undefined, ghosts, signedSeq: above, queue: [...back, ...data.queue] }, env);
      const send: UpdateMessage[] = rejected.length > 0 ? [{ kind: "reject", changes: rejected }, ...next.send] : [...next.send];
      return { data: next.data, send, events: [...events, ...next.events] };
    }
  }
}

/**
 * The other party resumes after a restore: from now on this party numbers the channel's states at `floor` or above
 * (its next batch, or the next it answers), and shows its co-signed head. A batch of ours in flight below the floor
 * is a ghost (the restored party may hold it signed) and its changes go back to the queue: the caller proposes them
 * again (`propose`), at the floor, unless it cannot sign on the channel itself. Signs nothing.
 */
function onResume(data: UpdaterData, message: Extract<UpdateMessage, { kind: "resume" }>, env: UpdateEnv): Step {
  const limit = env.resumeLimit?.();
  if (limit === undefined) throw new InvalidMessageError("a resume, which this party does not take");
  if (message.floor > limit) throw new InvalidMessageError(`a resume from ${message.floor}, above ${limit}, the floor of this party's clock`);
  // A floor is a whole second's (`resumeFloor`): so a batch of ours in flight is given up for a resume at most once a
  // second, however many resumes come (each gives up the batch and signs it again at the floor).
  if (!isResumeFloor(message.floor)) throw new InvalidMessageError(`a resume from ${message.floor}, which is not a floor (unix seconds << ${RESUME_EPOCH_BITS})`);
  let next = data;
  const f = data.inFlight;
  if (f !== undefined && f.state.seq < message.floor) {
    const ghosts = mergeGhosts(data.ghosts, { seq: f.state.seq, adds: addsOf(f.batch.map((q) => q.change)) });
    next = { ...next, inFlight: undefined, ghosts, queue: [...f.batch, ...data.queue] };
  }
  const moved = next.signedSeq < message.floor - 1n;
  if (moved) next = { ...next, signedSeq: message.floor - 1n };
  const head: UpdateMessage = next.headSignatures === undefined
    ? { kind: "head", floor: message.floor, state: next.head }
    : { kind: "head", floor: message.floor, state: next.head, signatures: next.headSignatures };
  // Told once per floor that moves the numbers (a resume repeated, or one below them, changes nothing to tell).
  const events: UpdateEvent[] = moved ? [{ type: "resumed", head: next.head, floor: message.floor }] : [];
  return { data: next, send: [head], events };
}

/** What `catchUp` needs besides the scheme's env: a check that this party signed a state. */
export type CatchUpEnv = Pick<UpdateEnv, "verify" | "highestSigned"> & Readonly<{ verifyOwn(state: ChannelState, signature: Hex): void }>;

/**
 * A party started from a restored copy of its store takes the other's co-signed head as its own (the answer to its
 * `resume`): a state at or above its own head, below the floor, signed by both (this party's signature checked
 * against its own key). From then on it signs only at the floor or above, above every number it may have used after
 * the copy, so no state it signs again can meet one it lost. Throws InvalidMessageError (and changes nothing) for a
 * head it cannot take. What the caller checks first: that the channel is restored, the floor is one it asked for or
 * could have, and that no swap of the copy is left on the channel.
 */
export function catchUp(data: UpdaterData, message: Extract<UpdateMessage, { kind: "head" }>, env: CatchUpEnv): Step {
  const { state, floor, signatures } = message;
  if (state.channelId.toLowerCase() !== data.channelId.toLowerCase()) throw new InvalidMessageError(`a head of channel ${state.channelId}, not ${data.channelId}`);
  if (state.seq < data.head.seq) throw new InvalidMessageError(`a head at ${state.seq}, older than the co-signed state ${data.head.seq} held here`);
  if (state.seq >= floor) throw new InvalidMessageError(`a head at ${state.seq}, not below the floor ${floor}`);
  const used = [data.signedSeq, data.head.seq, env.highestSigned?.() ?? 0n].reduce((a, b) => (a > b ? a : b));
  if (floor <= used) throw new InvalidMessageError(`a floor of ${floor}, not above ${used}, a number this party used`);
  try {
    checkState(state);
  } catch (error) {
    if (!(error instanceof InvalidStateError)) throw error;
    throw new InvalidMessageError(`a head that is not a valid state: ${error.message}`);
  }
  if (signatures === undefined) {
    // The opening state: nothing signed on the channel yet, by the other's account and ours.
    if (state.seq !== 0n || data.head.seq !== 0n || !sameState(state, data.head)) throw new InvalidMessageError(`a head at ${state.seq} without signatures`);
  } else {
    const other = data.me === 0 ? 1 : 0;
    env.verify(state, signatures[other]);
    env.verifyOwn(state, signatures[data.me]);
    if (state.seq === data.head.seq && !sameState(state, data.head)) throw new InvalidMessageError(`a head at ${state.seq} other than the co-signed state held at that number`);
  }
  const next: UpdaterData = { channelId: data.channelId, me: data.me, head: state, headSignatures: signatures ?? data.headSignatures, signedSeq: floor - 1n, inFlight: undefined, ghosts: [], queue: [] };
  return { data: next, send: [], events: [{ type: "caughtUp", state, signatures: next.headSignatures, floor }] };
}

/** Acknowledger: counter-signs a batch that every rule allows, refuses it otherwise; answers a duplicate again. */
function onUpdate(data: UpdaterData, message: Extract<UpdateMessage, { kind: "update" }>, env: UpdateEnv): Step {
  if (isProposer(data)) throw new InvalidMessageError("an update sent to the channel's proposer");
  const none: Step = { data, send: [], events: [] };
  if (message.seq <= data.head.seq) {
    // Our ack was lost: the head is that batch. Sign nothing new; send the signature we gave.
    if (message.seq === data.head.seq && data.headSignatures !== undefined) {
      return { data, send: [{ kind: "ack", seq: message.seq, signature: data.headSignatures[data.me] }], events: [] };
    }
    return none;
  }
  if (message.seq > data.signedSeq + MAX_SEQ_STEP && !withinOwnFloor(message.seq, env)) {
    throw new InvalidMessageError(`a batch numbered ${message.seq}, more than ${MAX_SEQ_STEP} above ${data.signedSeq}`);
  }
  if (message.base !== data.head.seq) {
    throw new InvalidMessageError(`a batch on top of state ${message.base}; the co-signed head is ${data.head.seq}`);
  }
  // An empty batch only moves the head past a number we answered without co-signing (a ghost: `passGhosts`); any
  // other would be a signature, a row and a message of ours for nothing, as often as the proposer likes.
  if (message.changes.length === 0 && data.signedSeq <= data.head.seq) {
    throw new InvalidMessageError(`an empty batch at ${message.seq}, with no refused batch above the head ${data.head.seq} to pass`);
  }
  if (message.seq <= data.signedSeq) {
    // The batch we refused came again (our answer was lost): the same answer.
    const r = data.refused;
    if (r !== undefined && r.seq === message.seq) return { data, send: [{ kind: "refuse", seq: r.seq, refusals: r.refusals }], events: [] };
    // A number we used otherwise (a state signed before, under another protocol or lost in a crash of the proposer):
    // not signed; the proposer numbers its next batch above ours. Older, answered numbers are stale.
    if (message.base === data.head.seq) {
      const refusals = message.changes.map((_, index) => ({ index, final: false, reason: `sequence number ${message.seq} was used` }));
      return { data, send: [{ kind: "refuse", seq: message.seq, refusals, above: data.signedSeq }], events: [] };
    }
    return none;
  }
  let state: ChannelState;
  try {
    state = applyChanges(data.head, message.changes, message.seq);
  } catch (error) {
    if (!(error instanceof InvalidStateError || error instanceof LockNotFoundError)) throw error;
    env.verify({ ...data.head, seq: message.seq }, message.signature); // only the proposer may make us answer
    const refusals = message.changes.map((_, index) => ({ index, final: true, reason: (error as Error).message }));
    return { data: { ...data, signedSeq: message.seq, refused: { seq: message.seq, refusals } }, send: [{ kind: "refuse", seq: message.seq, refusals }], events: [] };
  }
  env.verify(state, message.signature);
  const refusals: { index: number; final: boolean; reason: string }[] = [];
  message.changes.forEach((change, index) => {
    const approval = env.approve(change);
    if (!approval.ok) refusals.push({ index, final: approval.final, reason: approval.reason });
  });
  // Refused for good at this number: a copy of the batch that arrives later (when the answer might differ) is stale.
  if (refusals.length > 0) {
    return { data: { ...data, signedSeq: message.seq, refused: { seq: message.seq, refusals } }, send: [{ kind: "refuse", seq: message.seq, refusals }], events: [] };
  }
  const mine = env.sign(state);
  const signatures: readonly [Hex, Hex] = [message.signature, mine];
  const made = new Set(message.changes.map(changeKey));
  const queue = data.queue.filter((q) => !made.has(changeKey(q.change)) && applicable(state, q.change));
  return {
    data: { ...data, head: state, headSignatures: signatures, signedSeq: message.seq, queue },
    send: [{ kind: "ack", seq: message.seq, signature: mine }],
    events: [
      { type: "signed", state, changes: message.changes },
      { type: "cosigned", state, signatures, changes: message.changes },
    ],
  };
}

const HEX32 = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const MAX_U64 = (1n << 64n) - 1n;
const MAX_U128 = (1n << 128n) - 1n;

function field(o: Record<string, unknown>, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, name) ? o[name] : undefined;
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new InvalidMessageError(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function uint(v: unknown, max: bigint, what: string): bigint {
  if (typeof v !== "bigint" || v < 0n || v > max) throw new InvalidMessageError(`${what} is not a whole number in 0..${max}`);
  return v;
}

function hex(v: unknown, pattern: RegExp, what: string): Hex {
  if (typeof v !== "string" || !pattern.test(v)) throw new InvalidMessageError(`${what} is not hex of the right length`);
  return v as Hex;
}

function list(v: unknown, max: number, what: string): unknown[] {
  if (!Array.isArray(v) || v.length > max) throw new InvalidMessageError(`${what} is not a list of at most ${max}`);
  return v;
}

function reason(v: unknown): string {
  if (typeof v !== "string") throw new InvalidMessageError("a reason is not text");
  return peerText(v);
}

function lockOf(v: unknown): Lock {
  const l = object(v, "a lock");
  const sender = field(l, "sender");
  if (sender !== 0 && sender !== 1) throw new InvalidMessageError("a lock's sender is not 0 or 1");
  const amount = uint(field(l, "amount"), MAX_U128, "a lock's amount");
  return { sender, amount, hashlock: hex(field(l, "hashlock"), HEX32, "a hashlock"), expiry: uint(field(l, "expiry"), MAX_U64, "a lock's expiry") };
}

/** Two amounts, one per participant (`what` names the pair, `each` one of them). */
function pair(v: unknown, max: bigint, what: string, each: string): readonly [bigint, bigint] {
  const d = list(v, 2, what);
  if (d.length !== 2) throw new InvalidMessageError(`${what} are not two amounts`);
  return [uint(d[0], max, each), uint(d[1], max, each)];
}

/** A channel state as a peer sends it: every field checked for type and size (not yet for its sums: `checkState`). */
function stateOf(v: unknown): ChannelState {
  const o = object(v, "a state");
  const isFinal = field(o, "isFinal");
  if (typeof isFinal !== "boolean") throw new InvalidMessageError("a state's final flag");
  return {
    channelId: hex(field(o, "channelId"), HEX32, "a state's channel id"),
    seq: uint(field(o, "seq"), MAX_U64, "a state's seq"),
    deposits: pair(field(o, "deposits"), MAX_U128, "a state's deposits", "a state's deposit"),
    balances: pair(field(o, "balances"), MAX_U128, "a state's balances", "a state's balance"),
    locks: list(field(o, "locks"), MAX_LOCKS, "a state's locks").map(lockOf),
    isFinal,
  };
}

function changeOf(v: unknown): Change {
  const o = object(v, "a change");
  const kind = field(o, "kind");
  if (kind === "add") return { kind, lock: lockOf(field(o, "lock")) };
  if (kind === "pay") return { kind, hashlock: hex(field(o, "hashlock"), HEX32, "a hashlock"), secret: hex(field(o, "secret"), HEX32, "a secret") };
  if (kind === "refund") return { kind, hashlock: hex(field(o, "hashlock"), HEX32, "a hashlock") };
  if (kind === "deposits") return { kind, deposits: pair(field(o, "deposits"), MAX_U128, "the deposits", "a deposit") };
  if (kind === "close") return { kind };
  throw new InvalidMessageError(`a change of kind ${String(kind)}`);
}

/**
 * A message from the peer as the scheme takes it: every field checked for its type and size, and rebuilt from those
 * fields alone (nothing else a peer adds is kept or stored). Throws InvalidMessageError naming the first bad field.
 */
export function checkUpdateMessage(message: unknown): UpdateMessage {
  const o = object(message, "an update message");
  const kind = field(o, "kind");
  switch (kind) {
    case "request":
      return { kind, changes: list(field(o, "changes"), MAX_BATCH_CHANGES, "the changes").map(changeOf) };
    case "update":
      return {
        kind,
        base: uint(field(o, "base"), MAX_U64, "base"),
        seq: uint(field(o, "seq"), MAX_U64, "seq"),
        changes: list(field(o, "changes"), MAX_BATCH_CHANGES, "the changes").map(changeOf),
        signature: hex(field(o, "signature"), SIGNATURE, "the signature"),
      };
    case "ack":
      return { kind, seq: uint(field(o, "seq"), MAX_U64, "seq"), signature: hex(field(o, "signature"), SIGNATURE, "the signature") };
    case "refuse": {
      const refusals = list(field(o, "refusals"), MAX_BATCH_CHANGES, "the refusals").map((r) => {
        const x = object(r, "a refusal");
        const index = field(x, "index");
        const final = field(x, "final");
        if (typeof index !== "number" || !Number.isInteger(index) || index < 0) throw new InvalidMessageError("a refusal's index");
        if (typeof final !== "boolean") throw new InvalidMessageError("a refusal's final flag");
        return { index, final, reason: reason(field(x, "reason")) };
      });
      const above = field(o, "above");
      const seq = uint(field(o, "seq"), MAX_U64, "seq");
      return above === undefined ? { kind, seq, refusals } : { kind, seq, refusals, above: uint(above, MAX_U64, "above") };
    }
    case "resume":
      return { kind, floor: uint(field(o, "floor"), MAX_U64, "floor") };
    case "head": {
      const floor = uint(field(o, "floor"), MAX_U64, "floor");
      const state = stateOf(field(o, "state"));
      const sigs = field(o, "signatures");
      if (sigs === undefined) return { kind, floor, state };
      const s = list(sigs, 2, "the signatures");
      if (s.length !== 2) throw new InvalidMessageError("the signatures are not two");
      return { kind, floor, state, signatures: [hex(s[0], SIGNATURE, "a signature"), hex(s[1], SIGNATURE, "a signature")] };
    }
    case "reject":
      return {
        kind,
        changes: list(field(o, "changes"), MAX_BATCH_CHANGES, "the changes").map((c) => {
          const x = object(c, "a rejected change");
          return { change: changeOf(field(x, "change")), reason: reason(field(x, "reason")) };
        }),
      };
    default:
      throw new InvalidMessageError(`an update message of kind ${String(kind)}`);
  }
}
