import { setTimeout as sleep } from "node:timers/promises";

import type { Provider, Signer, TransactionReceipt, TransactionRequest } from "ethers";

import { ChannelSdkError } from "../core/errors.js";
import { shortMessage } from "./errors.js";

/**
 * Fee escalation for transactions that must be mined before a deadline (docs/TIMING.md, "Getting a transaction in
 * before a deadline"): the transaction is replaced (same nonce) with both EIP-1559 fees raised until one version is
 * mined, never above `maxFeePerGasCap`.
 */
export type FeePolicy = Readonly<{
  /** Highest `maxFeePerGas` (wei) ever offered; the priority fee never exceeds it either. */
  maxFeePerGasCap: bigint;
  /** Raise of both fees per replacement, in percent (default 12.5; nodes refuse a replacement raised by under 10). */
  bumpPercent?: number;
  /** How long a version may wait for inclusion before it is replaced when no deadline presses (default 24 s). */
  bumpAfterMs?: number;
  /** Never replace sooner than this, however close the deadline (default 2 s). */
  minBumpAfterMs?: number;
  /** The cap is reached this long before the deadline: time left for the capped version to be mined (default 60 s). */
  deadlineMarginSeconds?: bigint;
  /** How often receipts are looked for (default 1 s). */
  pollMs?: number;
  /** A call without a deadline gives up after this long unmined (default PATIENCE_MS, 5 minutes). */
  patienceMs?: number;
  /**
   * How long the account's nonce may stand past a call's with none of its versions seen mined before the nonce
   * counts as taken by another transaction (default NONCE_TAKEN_AFTER_MS, 15 s: an RPC may show a receipt late).
   */
  nonceTakenAfterMs?: number;
  /** Progress: each version sent, the cap reached, a replacement the node refused, the version mined. */
  onEvent?: (event: FeeEvent) => void;
}>;

export type FeeEvent =
  | {
      kind: "sent";
      call: string;
      nonce: number;
      hash: string;
      maxFeePerGas: bigint;
      maxPriorityFeePerGas: bigint;
      /** The version this one replaces (undefined for the first). */
      replaces: string | undefined;
    }
  | { kind: "capReached"; call: string; nonce: number; hash: string; maxFeePerGas: bigint }
  /**
   * At the first send: the fee the chain asks now is above the cap, so the call may not land before its deadline
   * unless the market comes down or the cap goes up (said at once, not when the deadline is near).
   */
  | { kind: "capBelowMarket"; call: string; maxFeePerGasCap: bigint; marketMaxFeePerGas: bigint }
  | { kind: "replacementRefused"; call: string; nonce: number; reason: string }
  /** The node refused a first version (its fees under what the next block asks): the next rung is sent at once. */
  | { kind: "sendRefused"; call: string; nonce: number; maxFeePerGas: bigint; reason: string }
  /** An RPC request failed (ridden out up to MAX_RPC_ERRORS times in a row). */
  | { kind: "rpcError"; call: string; nonce: number; reason: string }
  /** The version in the pool was gone (dropped by the node, or never arrived): sent again as it was. */
  | { kind: "resent"; call: string; nonce: number; hash: string }
  | { kind: "mined"; call: string; nonce: number; hash: string; blockNumber: number }
  /** A mined version left the chain in a reorganisation before it was `confirmations` deep: it is sent again. */
  | { kind: "reorgedOut"; call: string; nonce: number; hash: string; blockNumber: number }
  /** Another transaction of this account took the nonce (another process with this key): the call goes again with the next one. */
  | { kind: "nonceTaken"; call: string; nonce: number }
  /** A call that went on in the background (`HubAdapterOptions.detachAfterMs`) ended without landing. */
  | { kind: "failed"; call: string; reason: string }
  /** The mined version is `confirmations` deep: the call has landed. */
  | { kind: "landed"; call: string; nonce: number; hash: string; blockNumber: number; gasUsed: bigint; fee: bigint };

export type Fees = Readonly<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }>;

export const FEE_DEFAULTS = {
  bumpPercent: 12.5,
  bumpAfterMs: 24_000,
  minBumpAfterMs: 2_000,
  deadlineMarginSeconds: 60n,
  pollMs: 1_000,
} as const;

/** The smallest raise this SDK sends: geth and most nodes require 10 %, the rest covers rounding and stricter nodes. */
export const MIN_BUMP_PERCENT = 12.5;

/** Throws if `policy` could send replacements a node refuses, or could not raise at all. */
export function checkFeePolicy(policy: FeePolicy): void {
  const bump = policy.bumpPercent ?? FEE_DEFAULTS.bumpPercent;
  if (!(bump >= MIN_BUMP_PERCENT)) {
    throw new ChannelSdkError(`fees.bumpPercent must be at least ${MIN_BUMP_PERCENT} (got ${bump}).`, {
      docs: "docs/TIMING.md",
    });
  }
  if (policy.maxFeePerGasCap <= 0n) {
    throw new ChannelSdkError("fees.maxFeePerGasCap must be positive.", { docs: "docs/TIMING.md" });
  }
  const after = policy.bumpAfterMs ?? FEE_DEFAULTS.bumpAfterMs;
  const min = policy.minBumpAfterMs ?? FEE_DEFAULTS.minBumpAfterMs;
  if (!(min > 0 && after >= min)) {
    throw new ChannelSdkError(`fees: need 0 < minBumpAfterMs <= bumpAfterMs (got ${min}, ${after}).`, {
      docs: "docs/TIMING.md",
    });
  }
}

/** `value` raised by `bps` basis points, rounded up, and by at least 1 wei. */
export function bumpFee(value: bigint, bps: bigint): bigint {
  const up = (value * (10_000n + bps) + 9_999n) / 10_000n;
  return up > value ? up : value + 1n;
}

/**
 * The fee ladder: `cap`, then each rung the one above divided by (1 + bump), ascending, from the lowest rung that is
 * at least `from`. Consecutive rungs differ by at least the bump, and the top rung is exactly the cap.
 */
export function feeLadder(cap: bigint, bps: bigint, from: bigint): bigint[] {
  const rungs: bigint[] = [];
  for (let rung = cap; rung >= from && rung > 0n; rung = (rung * 10_000n) / (10_000n + bps)) rungs.push(rung);
  return rungs.reverse();
}

/** Replacements that still fit before the cap must be reached (unbounded without a deadline). */
export function replacementsLeft(msLeft: number | undefined, minBumpAfterMs: number): number {
  if (msLeft === undefined) return Number.POSITIVE_INFINITY;
  return Math.max(0, Math.floor(msLeft / minBumpAfterMs));
}

/** A fee step: the fees to send and how many replacements remain before the cap. */
export type FeeStep = Readonly<{ fees: Fees; stepsToCap: number }>;

/**
 * Fees of the first version. The market fees (capped) when the ladder above them fits in the `left` replacements,
 * else the rung that leaves exactly `left` of them (the cap itself when none is left).
 */
export function firstFees(market: Fees, cap: bigint, bps: bigint, left: number): FeeStep {
  const start = market.maxFeePerGas < cap ? market.maxFeePerGas : cap;
  const rungs = start < cap ? feeLadder(cap, bps, bumpFee(start, bps)) : [];
  const skip = Math.min(rungs.length, Math.max(0, rungs.length - left));
  const maxFeePerGas = skip === 0 ? start : rungs[skip - 1]!;
  const maxPriorityFeePerGas = min(
    maxFeePerGas,
    scaled(market.maxPriorityFeePerGas, market.maxFeePerGas, maxFeePerGas),
  );
  return { fees: { maxFeePerGas, maxPriorityFeePerGas }, stepsToCap: rungs.length - skip };
}

/**
 * Fees of the replacement of a version sent with `current`: the next rung (both fees raised by at least the bump),
 * or a higher one when fewer than the remaining rungs fit in the `left` replacements still possible after this one.
 * Undefined when no rung is left below the cap: the version at `current` stays.
 */
export function nextFees(current: Fees, cap: bigint, bps: bigint, left: number): FeeStep | undefined {
  const rungs = feeLadder(cap, bps, bumpFee(current.maxFeePerGas, bps));
  if (rungs.length === 0) return undefined;
  const index = Math.min(rungs.length - 1, Math.max(0, rungs.length - 1 - left));
  const maxFeePerGas = rungs[index]!;
  const tip = scaled(current.maxPriorityFeePerGas, current.maxFeePerGas, maxFeePerGas);
  const maxPriorityFeePerGas = min(maxFeePerGas, max(bumpFee(current.maxPriorityFeePerGas, bps), tip));
  return { fees: { maxFeePerGas, maxPriorityFeePerGas }, stepsToCap: rungs.length - 1 - index };
}

/**
 * How long to let a version wait before replacing it: the time left before the cap must be reached, spread over the
 * rungs still to climb, between `minBumpAfterMs` and `bumpAfterMs`. At the cap, `bumpAfterMs` between checks that
 * the node still holds the version.
 */
export function waitBeforeReplacing(
  stepsToCap: number,
  msLeft: number | undefined,
  minMs: number,
  maxMs: number,
): number {
  if (stepsToCap === 0 || msLeft === undefined) return maxMs;
  return Math.min(maxMs, Math.max(minMs, Math.floor(msLeft / stepsToCap)));
}

export type SendWithFeesArgs = Readonly<{
  /** Name of the call, for events and errors. */
  call: string;
  signer: Signer;
  /** The call (to, data, value); nonce, gas and fees are set here. */
  request: TransactionRequest;
  /**
   * How to raise the fees. Without one, the call goes at the fees the node suggests (EIP-1559 fees, or a legacy gas
   * price on a chain without them) and is never raised: a version the node dropped is sent again as it was, one a
   * reorganisation took out is followed, the account's nonces are taken in turn, and a pending transaction of the
   * account that no call of this process holds is never replaced (it may be one the application sent itself). No
   * time limit then but the deadline: without one, the call waits until it is mined.
   */
  policy?: FeePolicy;
  /** Chain time (unix seconds) the transaction must be mined by. */
  deadline?: bigint;
  /** The chain's current time (latest block timestamp). */
  chainNow: () => Promise<bigint>;
  /**
   * Blocks the mined version must be under the chain's head before the call counts as landed (default 0: mined is
   * landed). Until then its receipt is read again each poll; a version a reorganisation took out is sent again.
   */
  confirmations?: number;
  /**
   * Whether the call may go again under the next nonce when another transaction of the account took its own: only
   * for a call that reverts once done (a challenge, a reveal, a settle, a close), never for one that moves value
   * each time (a deposit, a withdrawal), which throws NonceTakenError instead.
   */
  retryOnNonceTaken?: boolean;
}>;

/** How many times a call takes a new nonce after another transaction of the account took its own. */
export const MAX_NONCE_RETRIES = 3;
/** RPC failures in a row a call rides out (a 503, a timeout, a second of outage) before it gives up. */
export const MAX_RPC_ERRORS = 3;
/**
 * How long the account's nonce may stand past a call's nonce with none of the call's versions seen mined before
 * the nonce counts as taken by another transaction (an RPC's backends may show a receipt some blocks late).
 */
export const NONCE_TAKEN_AFTER_MS = 15_000;
/** A call without a deadline gives up after this long unmined (its version stays in the pool for the next call). */
export const PATIENCE_MS = 300_000;

/** Another transaction of the account used the nonce of a call that must not simply go again (a deposit). */
export class NonceTakenError extends ChannelSdkError {
  constructor(call: string, nonce: number) {
    super(`${call}: nonce ${nonce} was used by another transaction of this account, none of this call's; check the chain before making it again (is another process sending with this key?).`, { docs: "docs/CHAINS.md" });
  }
}

/**
 * Per account and chain: the taking of a nonce and the first send under it, one at a time, so two calls of one
 * process (two channels' challenges, say) never take the same pending nonce and replace each other.
 */
const nonceTurns = new Map<string, Promise<unknown>>();

async function inTurn<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = nonceTurns.get(key) ?? Promise.resolve();
  const mine = before.then(fn, fn);
  const settled = mine.catch(() => undefined);
  nonceTurns.set(key, settled);
  try {
    return await mine;
  } finally {
    if (nonceTurns.get(key) === settled) nonceTurns.delete(key);
  }
}

/** A call in flight: the nonce it owns and its deadline. */
type Owner = { readonly nonce: number; readonly deadline: bigint | undefined };

/**
 * Per account and chain: the calls of this process in flight. A pending nonce none of them owns holds a version
 * nobody raises any more (its call failed, or the process restarted): the next call takes it over by replacing it,
 * since nothing of the account is mined behind it. And a call is paced by the earliest deadline among itself and
 * the calls behind it in the account's nonce order, which cannot be mined before it.
 */
const owners = new Map<string, Set<Owner>>();

function ownersOf(account: string): Set<Owner> {
  let set = owners.get(account);
  if (set === undefined) owners.set(account, (set = new Set()));
  return set;
}

function pacingDeadline(account: string, me: Owner): bigint | undefined {
  let d = me.deadline;
  for (const o of ownersOf(account)) if (o.nonce > me.nonce && o.deadline !== undefined && (d === undefined || o.deadline < d)) d = o.deadline;
  return d;
}

/**
 * Sends `request` and replaces it with higher fees until one version is mined and `confirmations` deep; returns that
 * version's receipt. Without a `policy`, the first version goes at the node's suggested fees and is never raised,
 * all else as below. The nonce is taken in turn with the account's other calls in this process, never one a call
 * of this process holds (with a policy, a pending one nobody raises any more is taken over); a version mined while a
 * replacement was being sent is success; a version dropped from the pool is sent again, and so is one a
 * reorganisation took out; a few RPC failures in a row are ridden out.
 * Another transaction of the account taking the nonce makes the call go again under the next one (with
 * `retryOnNonceTaken`, up to MAX_NONCE_RETRIES times) or throw NonceTakenError. Gives up once its deadline has passed
 * (chain time, read from the chain or, when the chain stands still, moved on by the wall clock), or after
 * PATIENCE_MS without one (with a policy). Throws what the first send throws (a revert found by gas estimation, a
 * lack of funds), and on a mined version that reverted.
 */
export async function sendWithFees(args: SendWithFeesArgs): Promise<TransactionReceipt> {
  if (args.policy !== undefined) checkFeePolicy(args.policy);
  const provider = args.signer.provider;
  if (provider === null) throw new ChannelSdkError("the signer is not connected to a provider");
  for (let attempt = 0; ; attempt++) {
    const landed = await landOnce(args, provider);
    if (landed !== "nonceTaken") return landed;
    if (attempt >= MAX_NONCE_RETRIES) {
      throw new ChannelSdkError(`${args.call}: another transaction of this account took its nonce ${MAX_NONCE_RETRIES + 1} times (is another process sending with this key?).`);
    }
  }
}

/** Whether a refused send failed for want of funds, not of fees: raising the fee only makes it worse. */
function lacksFunds(error: unknown): boolean {
  return (error as { code?: unknown }).code === "INSUFFICIENT_FUNDS" || /insufficient funds/i.test(shortMessage(error));
}

/** One attempt of `sendWithFees` under one nonce: the receipt once landed, or "nonceTaken". */
async function landOnce(args: SendWithFeesArgs, provider: Provider): Promise<TransactionReceipt | "nonceTaken"> {
  const { call, signer, policy } = args;
  /** Whether the fees are raised: without a policy, every version goes at the first one's fees. */
  const raising = policy !== undefined;
  const bps = BigInt(Math.round((policy?.bumpPercent ?? FEE_DEFAULTS.bumpPercent) * 100));
  const maxMs = policy?.bumpAfterMs ?? FEE_DEFAULTS.bumpAfterMs;
  const minMs = policy?.minBumpAfterMs ?? FEE_DEFAULTS.minBumpAfterMs;
  const margin = policy?.deadlineMarginSeconds ?? FEE_DEFAULTS.deadlineMarginSeconds;
  const pollMs = policy?.pollMs ?? FEE_DEFAULTS.pollMs;
  const patienceMs = raising ? (policy.patienceMs ?? PATIENCE_MS) : Number.POSITIVE_INFINITY;
  const confirmations = args.confirmations ?? 0;
  const emit = (event: FeeEvent): void => {
    try {
      policy?.onEvent?.(event);
    } catch {
      // A failing progress report must not stop a transaction racing its deadline.
    }
  };
  // Chain time as this call sees it: the chain's reading, moved on by the wall clock while the chain stands still
  // (an RPC whose node stopped following the chain, or a chain that stalled, must not keep a call past its deadline).
  // Read first when a deadline needs it: a call without one mined at once never asks.
  let clock: { chain: bigint; wall: number; read: number } | undefined;
  const chainTime = async (): Promise<bigint> => {
    if (clock === undefined) {
      const chain = await args.chainNow();
      clock = { chain, wall: Date.now(), read: Date.now() };
    } else if (Date.now() - clock.read >= pollMs) {
      clock.read = Date.now(); // read at most once a poll
      try {
        const read = await args.chainNow();
        if (read > clock.chain) Object.assign(clock, { chain: read, wall: Date.now() });
      } catch {
        // unreadable now: the wall clock moves it on
      }
    }
    return clock.chain + BigInt(Math.floor((Date.now() - clock.wall) / 1000));
  };
  const started = Date.now();

  // Gas is estimated without fees (a node may refuse to estimate under the base fee) and reused by every version.
  const gasLimit = args.request.gasLimit ?? (await signer.estimateGas(args.request));
  const { fees: market, legacy } = await marketFees(provider, !raising);
  /** Without a policy, the node's suggestion is the cap: the ladder above the first version is empty. */
  const cap = policy?.maxFeePerGasCap ?? market.maxFeePerGas;
  const priced = (fees: Fees): TransactionRequest =>
    legacy ? { type: 0, gasPrice: fees.maxFeePerGas } : { type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas };
  if (market.maxFeePerGas > cap) emit({ kind: "capBelowMarket", call, maxFeePerGasCap: cap, marketMaxFeePerGas: market.maxFeePerGas });
  const account = `${(await provider.getNetwork()).chainId}:${(await signer.getAddress()).toLowerCase()}`;
  const mine = ownersOf(account);
  let me: Owner = { nonce: -1, deadline: args.deadline };
  const msLeft = async (): Promise<number | undefined> => {
    const d = pacingDeadline(account, me);
    return d === undefined ? undefined : Number(d - margin - (await chainTime())) * 1000;
  };
  let step = firstFees(market, cap, bps, replacementsLeft(await msLeft(), minMs));
  try {
    const { nonce, base, hash } = await inTurn(account, async () => {
      // A node that refuses the first version (its fees under what the next block asks: anvil, and nodes with a
      // minimum; or under a version it holds at that nonce) gets the next rung at once, up to the cap: nothing of
      // ours is in the pool yet. A refusal for want of funds ends the call at once.
      for (let tries = 0; ; tries++) {
        const pending = await signer.getNonce("pending");
        const owned = new Set([...mine].map((o) => o.nonce));
        // Never a nonce a call of this process holds, even while its version is out of the pool (dropped, or taken
        // out by a reorganisation) and the node's pending count does not cover it.
        let nonce = pending;
        while (owned.has(nonce)) nonce++;
        if (raising) {
          for (let n = await signer.getNonce("latest"); n < pending; n++) {
            if (!owned.has(n)) {
              nonce = n; // a version nobody raises any more: replaced by this call
              break;
            }
          }
        }
        const { gasPrice: _gasPrice, maxFeePerGas: _maxFee, maxPriorityFeePerGas: _tip, ...populated } = await signer.populateTransaction({ ...args.request, gasLimit, nonce, ...priced(market) });
        const base: TransactionRequest = { ...populated, nonce, gasLimit };
        try {
          const hash = (await signer.sendTransaction({ ...base, ...priced(step.fees) })).hash;
          me = { nonce, deadline: args.deadline };
          mine.add(me);
          return { nonce, base, hash };
        } catch (error) {
          if (lacksFunds(error)) throw new ChannelSdkError(`${call}: the account has too little for gas (${shortMessage(error)}); fund it.`, { cause: error, docs: "docs/CHAINS.md" });
          if (!raising) throw error; // nothing higher to offer: refused as it would have been by the signer alone
          const next = nextFees(step.fees, cap, bps, Number.POSITIVE_INFINITY);
          emit({ kind: "sendRefused", call, nonce, maxFeePerGas: step.fees.maxFeePerGas, reason: shortMessage(error) });
          if (next === undefined || tries > 64) {
            throw new ChannelSdkError(
              `${call}: the node refused it even at the fee cap of ${step.fees.maxFeePerGas} wei per gas (${shortMessage(error)}); raise the cap or wait for lower fees.`,
              { cause: error, docs: "docs/CHAINS.md" },
            );
          }
          step = { fees: next.fees, stepsToCap: next.stepsToCap };
        }
      }
    });
    let current = { hash, fees: step.fees };
    /** The fees of the last version offered, taken or refused: the next one climbs from them. */
    let offered = step.fees;
    const hashes = [current.hash];
    emit({ kind: "sent", call, nonce, hash: current.hash, ...current.fees, replaces: undefined });
    let capReported = false;
    let failures = 0;
    /** Since when the account's nonce stands past ours with none of our versions seen mined. */
    let passedSince: number | undefined;
    /** Sends the current version again if the node no longer holds it (dropped, or a reorganisation took it out). */
    const keepInPool = async () => {
      if ((await provider.getTransaction(current.hash)) !== null) return;
      await signer.sendTransaction({ ...base, ...priced(current.fees) }).then(
        () => emit({ kind: "resent", call, nonce, hash: current.hash }),
        () => undefined, // known again meanwhile, or the nonce is used: the next look finds out
      );
    };
    /** Whether one of our versions is mined, as far as the RPC shows (a receipt, or a transaction with a block). */
    const oursMined = async (): Promise<boolean> => {
      for (const h of hashes) if ((await provider.getTransaction(h))?.blockNumber != null) return true;
      return false;
    };

    for (;;) {
      try {
        const wait = waitBeforeReplacing(step.stepsToCap, await msLeft(), minMs, maxMs);
        const receipt = await pollMined(provider, signer, nonce, hashes, wait, pollMs);
        if (receipt === undefined) {
          const now = await chainTime();
          if (args.deadline !== undefined && now > args.deadline) {
            // Too late to matter (a challenge or a claim past its deadline is refused on chain): the caller's loop goes on.
            throw new ChannelSdkError(`${call}: not mined by its deadline ${args.deadline} (nonce ${nonce}, last offer ${offered.maxFeePerGas} wei per gas).`, { docs: "docs/CHAINS.md" });
          }
          if (args.deadline === undefined && Date.now() - started > patienceMs) {
            throw new ChannelSdkError(`${call}: not mined within ${Math.round((Date.now() - started) / 1000)} s (nonce ${nonce}, last offer ${offered.maxFeePerGas} wei per gas); its next call takes the nonce over.`, { docs: "docs/CHAINS.md" });
          }
        }
        failures = 0;
        if (receipt !== undefined) {
          passedSince = undefined;
          const landed = await deepEnough(provider, mined(call, nonce, receipt, emit), confirmations, pollMs);
          if (landed !== undefined) {
            emit({ kind: "landed", call, nonce, hash: landed.hash, blockNumber: landed.blockNumber, gasUsed: landed.gasUsed, fee: landed.fee });
            return landed;
          }
          emit({ kind: "reorgedOut", call, nonce, hash: receipt.hash, blockNumber: receipt.blockNumber });
          await keepInPool();
          continue;
        }
        if ((await signer.getNonce("latest")) > nonce) {
          // The nonce is used: by one of ours (its receipt may show up late on a load-balanced RPC), or by another
          // transaction of this account. Only once none of ours is seen mined for a while is it another's.
          if (await oursMined()) continue;
          passedSince ??= Date.now();
          if (Date.now() - passedSince < (policy?.nonceTakenAfterMs ?? NONCE_TAKEN_AFTER_MS)) continue;
          emit({ kind: "nonceTaken", call, nonce });
          if (args.retryOnNonceTaken === true) return "nonceTaken";
          throw new NonceTakenError(call, nonce);
        }
        passedSince = undefined;

        const next = nextFees(offered, cap, bps, replacementsLeft(await msLeft(), minMs));
        if (next === undefined) {
          if (!capReported && raising) {
            emit({ kind: "capReached", call, nonce, hash: current.hash, maxFeePerGas: offered.maxFeePerGas });
            capReported = true;
          }
          step = { fees: offered, stepsToCap: 0 };
          // At the cap: keep the version in the node's pool (a node may drop it), and keep waiting.
          await keepInPool();
          continue;
        }
        try {
          const replacement = await signer.sendTransaction({ ...base, ...priced(next.fees) });
          emit({ kind: "sent", call, nonce, hash: replacement.hash, ...next.fees, replaces: current.hash });
          current = { hash: replacement.hash, fees: next.fees };
          offered = next.fees;
          hashes.push(current.hash);
          step = next;
        } catch (error) {
          if (lacksFunds(error)) throw new ChannelSdkError(`${call}: the account has too little for gas at ${next.fees.maxFeePerGas} wei per gas (${shortMessage(error)}); fund it.`, { cause: error, docs: "docs/CHAINS.md" });
          // An earlier version may have been mined meanwhile ("nonce too low"): the loop above finds its receipt.
          emit({ kind: "replacementRefused", call, nonce, reason: shortMessage(error) });
          // Refused (under what the next block asks, on a node that checks it): the next look offers the rung above.
          offered = next.fees;
          step = next;
        }
      } catch (error) {
        if (error instanceof ChannelSdkError) throw error; // a revert, a deadline passed, a lack of funds: the call's end
        // An RPC failure (a 503, a timeout, an outage of a second): ridden out a few times in a row.
        if (++failures > MAX_RPC_ERRORS) {
          throw new ChannelSdkError(`${call}: the RPC failed ${failures} times in a row (${shortMessage(error)}); its version stays in the pool for the next call to take over.`, { cause: error, docs: "docs/CHAINS.md" });
        }
        emit({ kind: "rpcError", call, nonce, reason: shortMessage(error) });
        await sleep(pollMs);
      }
    }
  } finally {
    mine.delete(me);
    if (mine.size === 0) owners.delete(account);
  }
}

/**
 * Waits up to `forMs` (looking every `pollMs`, at least once) for one of `hashes` to be mined: the receipt, or
 * undefined. Each look asks the account's mined nonce first and the receipts only once it has passed ours: one
 * request per look while nothing moves, however many versions were sent.
 */
async function pollMined(provider: Provider, signer: Signer, nonce: number, hashes: readonly string[], forMs: number, pollMs: number) {
  const until = Date.now() + forMs;
  for (;;) {
    if ((await signer.getNonce("latest")) > nonce) {
      for (const hash of hashes) {
        const receipt = await provider.getTransactionReceipt(hash);
        if (receipt !== null) return receipt;
      }
      return undefined; // the nonce moved and no receipt of ours (yet): the caller looks closer
    }
    const left = until - Date.now();
    if (left <= 0) return undefined;
    await sleep(Math.min(pollMs, left));
  }
}

/**
 * Waits until the block of `receipt` is `confirmations` under the head, reading the receipt again each poll: the
 * receipt as it then stands, or undefined once a reorganisation took the transaction out of the chain.
 */
async function deepEnough(provider: Provider, receipt: TransactionReceipt, confirmations: number, pollMs: number): Promise<TransactionReceipt | undefined> {
  if (confirmations <= 0) return receipt;
  let seen = receipt;
  for (;;) {
    const head = await provider.getBlockNumber();
    const now = await provider.getTransactionReceipt(seen.hash);
    if (now === null) return undefined;
    seen = now; // mined again in another block of the new branch: its depth counts from there
    if (head - now.blockNumber >= confirmations) return now;
    await sleep(pollMs);
  }
}

/**
 * The fees the node suggests now, as ethers' signer would send them. On a chain without EIP-1559 fees (`legacy`), the
 * gas price stands for both fees, which is what it pays; allowed only with `legacyOk` (a call whose fees are not
 * raised).
 */
async function marketFees(provider: Provider, legacyOk: boolean): Promise<{ fees: Fees; legacy: boolean }> {
  const data = await provider.getFeeData();
  if (data.maxFeePerGas !== null && data.maxPriorityFeePerGas !== null) {
    return { fees: { maxFeePerGas: data.maxFeePerGas, maxPriorityFeePerGas: data.maxPriorityFeePerGas }, legacy: false };
  }
  if (legacyOk && data.gasPrice !== null) return { fees: { maxFeePerGas: data.gasPrice, maxPriorityFeePerGas: data.gasPrice }, legacy: true };
  throw new ChannelSdkError(
    legacyOk
      ? "the node suggests no fees (neither maxFeePerGas nor gasPrice)."
      : "fee escalation needs an EIP-1559 chain (the node reports no maxFeePerGas); leave `fees` out on this chain.",
  );
}

function mined(
  call: string,
  nonce: number,
  receipt: TransactionReceipt,
  emit: (e: FeeEvent) => void,
): TransactionReceipt {
  emit({ kind: "mined", call, nonce, hash: receipt.hash, blockNumber: receipt.blockNumber });
  if (receipt.status !== 1) {
    throw new ChannelSdkError(`transaction ${receipt.hash} reverted in block ${receipt.blockNumber}`);
  }
  return receipt;
}

/** `value * to / from`, rounded up (a fee scaled with the max fee). */
function scaled(value: bigint, from: bigint, to: bigint): bigint {
  return from === 0n ? value : (value * to + from - 1n) / from;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
