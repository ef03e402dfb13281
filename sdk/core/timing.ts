import { TimingBoundError, TimingRuleError } from "./errors.js";

/** What the timing rule needs to know about one chain (all in seconds). */
export type ChainTiming = Readonly<{
  chainId: bigint;
  /** Time to see a transaction as final: block time times the confirmation depth the client waits for. */
  finalitySeconds: bigint;
  /** Worst-case time to get a transaction included (congestion, fee bumps). */
  inclusionSeconds: bigint;
  /** How far this chain's block.timestamp may lag or lead real time (L2 sequencers can lag for hours). */
  clockSkewSeconds: bigint;
}>;

/**
 * The smallest safe gap between the target lock's expiry tT and the source lock's expiry tS: in the worst case the
 * initiator reveals on T at tT; the responder must see that reveal final on T, then get his own reveal included and
 * final on S before tS, with both clocks off by their skew bounds.
 */
export function requiredDelta(source: ChainTiming, target: ChainTiming): bigint {
  return (
    target.inclusionSeconds +
    target.finalitySeconds +
    target.clockSkewSeconds +
    source.inclusionSeconds +
    source.finalitySeconds +
    source.clockSkewSeconds
  );
}

/**
 * Upper bounds on a swap's lock lifetimes, per chain pair. No unrevealed lock may be refunded before it expires, so
 * without them a counterparty could lock a channel's whole balance until an expiry of its choosing, and hold a
 * free option on the price for as long.
 */
export type TimingBounds = Readonly<{
  /** Longest time (s) from now to the target lock's expiry: `tT - now <= maxTargetLockSeconds`. */
  maxTargetLockSeconds: bigint;
  /** How much longer than delta the source lock may outlive the target lock: `tS - tT <= delta + slackSeconds`. */
  slackSeconds: bigint;
}>;

/** Hours, not days: a target lock of at most 4 h, a source lock at most 1 h past the least safe gap. */
export const DEFAULT_TIMING_BOUNDS: TimingBounds = { maxTargetLockSeconds: 4n * 3600n, slackSeconds: 3600n };

/** Deltas per ordered chain pair (source -> target), for pairs whose measured delta differs from the formula. */
export class DeltaTable {
  private readonly overrides = new Map<string, bigint>();
  private readonly boundOverrides = new Map<string, TimingBounds>();

  /** @param defaultBounds The upper bounds of every chain pair without bounds of its own (`setBounds`). */
  constructor(
    private readonly chains: ReadonlyMap<bigint, ChainTiming>,
    private readonly defaultBounds: TimingBounds = DEFAULT_TIMING_BOUNDS,
  ) {}

  set(sourceChainId: bigint, targetChainId: bigint, delta: bigint): this {
    this.overrides.set(`${sourceChainId}->${targetChainId}`, delta);
    return this;
  }

  /** Upper bounds for one ordered chain pair (source -> target). */
  setBounds(sourceChainId: bigint, targetChainId: bigint, bounds: TimingBounds): this {
    this.boundOverrides.set(`${sourceChainId}->${targetChainId}`, bounds);
    return this;
  }

  bounds(sourceChainId: bigint, targetChainId: bigint): TimingBounds {
    return this.boundOverrides.get(`${sourceChainId}->${targetChainId}`) ?? this.defaultBounds;
  }

  /**
   * The longest a lock on `chainId` may live from now, whichever role the chain has in a swap: a source lock
   * expires at most `maxTargetLockSeconds + delta + slackSeconds` from now on T's clock, a target lock sooner; the
   * two clocks may differ by the pair's skew bound, which is added. A state with a lock past it is never signed
   * (`checkState`), whatever the terms said.
   */
  maxLockSeconds(chainId: bigint): bigint {
    let longest = 0n;
    for (const other of this.chains.keys()) {
      for (const [s, t] of [[chainId, other], [other, chainId]] as const) {
        if (s === t || !this.chains.has(s) || !this.chains.has(t)) continue;
        const b = this.bounds(s, t);
        const life = b.maxTargetLockSeconds + this.delta(s, t) + b.slackSeconds + (this.skewBound(s, t) ?? 0n);
        if (life > longest) longest = life;
      }
    }
    if (longest === 0n) throw new TimingRuleError(`no timing known for a chain pair with chain ${chainId}`);
    return longest;
  }

  /** How far apart the two chains' clocks may be (the sum of their skew bounds), if both chains are known. */
  skewBound(sourceChainId: bigint, targetChainId: bigint): bigint | undefined {
    const s = this.chains.get(sourceChainId);
    const t = this.chains.get(targetChainId);
    return s === undefined || t === undefined ? undefined : s.clockSkewSeconds + t.clockSkewSeconds;
  }

  delta(sourceChainId: bigint, targetChainId: bigint): bigint {
    const override = this.overrides.get(`${sourceChainId}->${targetChainId}`);
    if (override !== undefined) return override;
    const s = this.chains.get(sourceChainId);
    const t = this.chains.get(targetChainId);
    if (s === undefined || t === undefined) {
      throw new TimingRuleError(`no timing known for chain pair ${sourceChainId} -> ${targetChainId}`);
    }
    return requiredDelta(s, t);
  }
}

export type SwapTiming = Readonly<{
  sourceExpiry: bigint;
  targetExpiry: bigint;
  /** The current time, as the client's clock and the target chain agree within the skew bound. */
  now: bigint;
  delta: bigint;
  /** The least time the swap needs before tT: both locks, the reveal, and on-chain claim on T if needed. */
  minTargetWindow: bigint;
  /** Upper bounds of the chain pair; without them only the lower bounds are checked (a test of the rule alone). */
  bounds?: TimingBounds;
}>;

/**
 * Throws TimingRuleError unless tT < tS, tS - tT >= delta and tT leaves the swap enough time from now; and
 * TimingBoundError when a lock would live longer than the bounds allow (`tT - now <= maxTargetLockSeconds`,
 * `tS - tT <= delta + slackSeconds`).
 */
export function checkSwapTiming(t: SwapTiming): void {
  if (t.targetExpiry >= t.sourceExpiry) {
    throw new TimingRuleError(
      `the target lock must expire before the source lock (target ${t.targetExpiry}, source ${t.sourceExpiry})`,
    );
  }
  if (t.sourceExpiry - t.targetExpiry < t.delta) {
    throw new TimingRuleError(
      `source lock must expire at least ${t.delta}s after the target lock ` +
        `(source ${t.sourceExpiry}, target ${t.targetExpiry}: ${t.sourceExpiry - t.targetExpiry}s)`,
    );
  }
  if (t.targetExpiry - t.now < t.minTargetWindow) {
    throw new TimingRuleError(
      `the target lock expires in ${t.targetExpiry - t.now}s, the swap needs at least ${t.minTargetWindow}s`,
    );
  }
  if (t.bounds === undefined) return;
  const targetLife = t.targetExpiry - t.now;
  if (targetLife > t.bounds.maxTargetLockSeconds) {
    throw new TimingBoundError(
      "maxTargetLockSeconds",
      t.bounds.maxTargetLockSeconds,
      `the target lock expires in ${targetLife}s, more than maxTargetLockSeconds (${t.bounds.maxTargetLockSeconds}s)`,
    );
  }
  const gap = t.sourceExpiry - t.targetExpiry;
  if (gap > t.delta + t.bounds.slackSeconds) {
    throw new TimingBoundError(
      "slackSeconds",
      t.delta + t.bounds.slackSeconds,
      `the source lock expires ${gap}s after the target lock, more than delta (${t.delta}s) + slackSeconds (${t.bounds.slackSeconds}s)`,
    );
  }
}

/**
 * Throws TimingRuleError when the two chains' latest block times differ by more than their skew bounds allow:
 * delta was computed for clocks within those bounds, so a swap on clocks further apart is not known to be safe.
 */
export function checkClockAgreement(p: Readonly<{ sourceNow: bigint; targetNow: bigint; bound: bigint }>): void {
  const gap = p.sourceNow > p.targetNow ? p.sourceNow - p.targetNow : p.targetNow - p.sourceNow;
  if (gap > p.bound) {
    throw new TimingRuleError(
      `the chains' clocks are ${gap}s apart (source ${p.sourceNow}, target ${p.targetNow}), more than the ${p.bound}s the skew bounds allow`,
    );
  }
}
