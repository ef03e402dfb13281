import { TimingRuleError } from "./errors.js";

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

/** Deltas per ordered chain pair (source -> target), for pairs whose measured delta differs from the formula. */
export class DeltaTable {
  private readonly overrides = new Map<string, bigint>();

  constructor(private readonly chains: ReadonlyMap<bigint, ChainTiming>) {}

  set(sourceChainId: bigint, targetChainId: bigint, delta: bigint): this {
    this.overrides.set(`${sourceChainId}->${targetChainId}`, delta);
    return this;
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
}>;

/** Throws TimingRuleError unless tT < tS, tS - tT >= delta and tT leaves the swap enough time from now. */
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
