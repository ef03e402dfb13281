import { InsufficientBalanceError, InvalidStateError, LockNotFoundError, TimingBoundError } from "./errors.js";
import type { ChannelState, Hex, Lock, ParticipantIndex } from "./types.js";

/** The most locks a state may carry (`ChannelHub.MAX_LOCKS`): the client never signs a state with more. */
export const MAX_LOCKS = 256;
const MAX_UINT128 = (1n << 128n) - 1n;
const MAX_UINT64 = (1n << 64n) - 1n;

/** The state that stands for a channel before anything was signed: each participant holds its own deposit. */
export function openingState(channelId: Hex, deposits: readonly [bigint, bigint]): ChannelState {
  return { channelId, seq: 0n, deposits, balances: deposits, locks: [], isFinal: false };
}

export function lockedTotal(state: ChannelState): bigint {
  return state.locks.reduce((sum, lock) => sum + lock.amount, 0n);
}

/**
 * Throws InvalidStateError unless the hub would accept `state` (and settle it). With `latestExpiry` (the client's
 * lock horizon: chain time now plus the longest lock its timing bounds allow), also throws TimingBoundError for a
 * lock that expires after it: such a lock would freeze the channel until then.
 */
export function checkState(state: ChannelState, latestExpiry?: bigint): void {
  const amounts = [...state.deposits, ...state.balances, ...state.locks.map((l) => l.amount)];
  if (amounts.some((a) => a < 0n || a > MAX_UINT128)) throw new InvalidStateError("an amount is outside 0..2^128-1");
  if (state.seq < 0n || state.seq > MAX_UINT64) throw new InvalidStateError("sequence number outside 0..2^64-1");
  if (state.locks.length > MAX_LOCKS) {
    throw new InvalidStateError(`${state.locks.length} locks, at most ${MAX_LOCKS} can be settled in one call`);
  }
  const seen = new Set<string>();
  for (const lock of state.locks) {
    if (lock.sender !== 0 && lock.sender !== 1) throw new InvalidStateError(`lock sender ${String(lock.sender)}`);
    if (lock.amount === 0n) throw new InvalidStateError("a lock of zero");
    if (lock.expiry <= 0n || lock.expiry > MAX_UINT64) throw new InvalidStateError("lock expiry outside 1..2^64-1");
    if (latestExpiry !== undefined && lock.expiry > latestExpiry) {
      throw new TimingBoundError(
        "lockHorizon",
        latestExpiry,
        `a lock expires at ${lock.expiry}, after ${latestExpiry}, the latest expiry the timing bounds allow now`,
      );
    }
    const key = lock.hashlock.toLowerCase();
    if (seen.has(key)) throw new InvalidStateError(`two locks with hashlock ${lock.hashlock}`);
    seen.add(key);
  }
  const allocated = state.balances[0] + state.balances[1] + lockedTotal(state);
  const deposited = state.deposits[0] + state.deposits[1];
  if (allocated !== deposited) {
    throw new InvalidStateError(`balances and locks add up to ${allocated}, deposits to ${deposited}`);
  }
  if (state.isFinal && state.locks.length > 0) throw new InvalidStateError("a final state with pending locks");
}

function withBalance(balances: readonly [bigint, bigint], i: ParticipantIndex, delta: bigint): readonly [bigint, bigint] {
  return i === 0 ? [balances[0] + delta, balances[1]] : [balances[0], balances[1] + delta];
}

function requireOpen(state: ChannelState): void {
  if (state.isFinal) throw new InvalidStateError("the channel state is final; nothing follows it");
}

function requireFree(state: ChannelState, who: ParticipantIndex, amount: bigint): void {
  if (amount <= 0n) throw new InvalidStateError("amounts must be positive");
  if (state.balances[who] < amount) throw new InsufficientBalanceError(who, state.balances[who], amount, { channelId: state.channelId });
}

/** The next state with `lock` added: its amount leaves the sender's free balance. */
export function addLock(state: ChannelState, lock: Lock): ChannelState {
  requireOpen(state);
  requireFree(state, lock.sender, lock.amount);
  const next: ChannelState = {
    ...state,
    seq: state.seq + 1n,
    balances: withBalance(state.balances, lock.sender, -lock.amount),
    locks: [...state.locks, lock],
  };
  checkState(next);
  return next;
}

/** The next state with the lock of `hashlock` removed: paid to its receiver, or refunded to its sender. */
export function resolveLock(state: ChannelState, hashlock: Hex, outcome: "paid" | "refunded"): ChannelState {
  requireOpen(state);
  const index = state.locks.findIndex((l) => l.hashlock.toLowerCase() === hashlock.toLowerCase());
  const lock = state.locks[index];
  if (lock === undefined) throw new LockNotFoundError(hashlock);
  const to: ParticipantIndex = outcome === "paid" ? (lock.sender === 0 ? 1 : 0) : lock.sender;
  const next: ChannelState = {
    ...state,
    seq: state.seq + 1n,
    balances: withBalance(state.balances, to, lock.amount),
    locks: state.locks.filter((_, i) => i !== index),
  };
  checkState(next);
  return next;
}

/** The next state with `amount` moved from `from`'s free balance to the other participant. */
export function transfer(state: ChannelState, from: ParticipantIndex, amount: bigint): ChannelState {
  requireOpen(state);
  requireFree(state, from, amount);
  const to: ParticipantIndex = from === 0 ? 1 : 0;
  const next: ChannelState = {
    ...state,
    seq: state.seq + 1n,
    balances: withBalance(withBalance(state.balances, from, -amount), to, amount),
  };
  checkState(next);
  return next;
}

/** The next state counting deposits made on chain since `state` (each goes to the participant it was made for). */
export function withDeposits(state: ChannelState, deposits: readonly [bigint, bigint]): ChannelState {
  requireOpen(state);
  const d0 = deposits[0] - state.deposits[0];
  const d1 = deposits[1] - state.deposits[1];
  if (d0 < 0n || d1 < 0n) throw new InvalidStateError("on-chain deposits never decrease");
  const next: ChannelState = {
    ...state,
    seq: state.seq + 1n,
    deposits,
    balances: [state.balances[0] + d0, state.balances[1] + d1],
  };
  checkState(next);
  return next;
}

/** The final state for a cooperative close: same balances, no locks, marked final. */
export function finalize(state: ChannelState): ChannelState {
  requireOpen(state);
  if (state.locks.length > 0) throw new InvalidStateError("resolve every lock before closing cooperatively");
  return { ...state, seq: state.seq + 1n, isFinal: true };
}

/** Deep equality of two states (amounts, locks in order, flags). */
export function sameState(a: ChannelState, b: ChannelState): boolean {
  return (
    a.channelId.toLowerCase() === b.channelId.toLowerCase() &&
    a.seq === b.seq &&
    a.deposits[0] === b.deposits[0] &&
    a.deposits[1] === b.deposits[1] &&
    a.balances[0] === b.balances[0] &&
    a.balances[1] === b.balances[1] &&
    a.isFinal === b.isFinal &&
    a.locks.length === b.locks.length &&
    a.locks.every((l, i) => {
      const m = b.locks[i];
      return (
        m !== undefined &&
        l.sender === m.sender &&
        l.amount === m.amount &&
        l.expiry === m.expiry &&
        l.hashlock.toLowerCase() === m.hashlock.toLowerCase()
      );
    })
  );
}
