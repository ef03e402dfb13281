import { getAddress, hexlify, randomBytes } from "ethers";

import type { HubAdapter } from "../chain/hub.js";
import { EnvelopeAuth, knownPublicKey } from "../core/envelope-auth.js";
import { ChannelSdkError, InvalidMessageError, InvalidTermsError, TransportNotConnectedError } from "../core/errors.js";
import { seal, type Envelope, type SwapBody } from "../core/messages.js";
import { hashlockOf, type SwapTerms } from "../core/swap.js";
import { checkClockAgreement, checkSwapTiming, type DeltaTable } from "../core/timing.js";
import { sameAddress, type Address, type ChannelState, type Hex } from "../core/types.js";
import type { ChannelRecord, CoSignedState, RevealRule, Store } from "../store/store.js";
import { ChannelBook } from "./channels.js";
import { ChainHeldError, ChannelFrozenError, DuplicateChainError, UnknownSwapError } from "./errors.js";
import { DEFAULT_GROUP_STEPS, GroupCommit } from "./group-commit.js";
import { type ClientEvent, type SwapPhase, type SwapProgress, type SwapRole, type SwapView } from "./phases.js";
import type { StateSigner } from "./signer.js";
import type { Transport } from "./transport.js";

export type SwapClientOptions = Readonly<{
  signer: StateSigner;
  store: Store;
  transport: Transport;
  /**
   * One adapter per chain this client has channels on, sending transactions from this client's account; two for one
   * chain id are a DuplicateChainError.
   */
  chains: readonly HubAdapter[];
  deltas: DeltaTable;
  /** Least time (s) between now and the target lock's expiry when a swap is agreed and when the secret is revealed. */
  minTargetWindow: bigint;
  /** How long a lock's receiver waits (s before expiry) before claiming it on chain anyway. */
  onChainMargin: bigint;
  /** How long (ms) to wait for the counterparty's next message before resending... */
  resendIntervalMs: number;
  /** ...and before giving up on it: abort before the locks, go on chain after. */
  confirmationTimeoutMs: number;
  /** Client clock in ms (a test may drive it). */
  clock?: () => number;
  /**
   * Responder policy: return a reason to refuse, or undefined to accept. Every swap this client agrees to as
   * responder is asked about here first, one at a time; `context.agreed` holds those agreed before it in the same
   * step that the store does not show yet (a `proposals` envelope), so a limit on what is open at once
   * counts them with the stored ones.
   */
  policy?: (terms: SwapTerms, context: PolicyContext) => string | undefined;
  /** What this client accepts of a channel it joins (`addChannel`); see ChannelPolicy for the defaults. */
  channelPolicy?: ChannelPolicy;
  /** Told of every phase a swap enters (once on disk), refusals, on-chain steps and closes; its errors are ignored. */
  onEvent?: (event: ClientEvent) => void;
  /**
   * Most protocol steps committed as one group (one transaction and one disk sync before their messages go out);
   * default 64. Steps that arrive together share a group, so swaps on many channels need far fewer syncs.
   */
  groupCommitSteps?: number;
  /** Receives every state this client signs, every co-signed state and every secret it learns (a watchtower). */
  watchtower?: Readonly<{
    /** Told of each channel the client adds, before anything is signed for it (a `Watchtower` starts guarding it). */
    guard?(record: ChannelRecord): void;
    signed(state: ChannelState, signature: Hex): void;
    update(cosigned: CoSignedState): void;
    addSecret(hashlock: Hex, secret: Hex): void;
    /** Runs `feed` (calls of the three above) as one unit of its own storage: one transaction, one sync. */
    batch?(feed: () => void): void;
    /**
     * The number of the newest co-signed state it holds of a channel, if any: a channel of a restored copy does not
     * catch up from an older one (`CounterpartyOptions.newestCoSigned`).
     */
    newest?(channelId: Hex): bigint | undefined;
  }>;
  /** Authenticates envelopes with keys agreed with counterparties (default: one over `signer`, of this client's own). */
  auth?: EnvelopeAuth;
  /** Asked before anything new that depends on a chain is signed (default: every chain is trusted); see ChainGuard. */
  chainGuard?: ChainGuard;
}>;

/**
 * What a client asks before it signs anything new that depends on a chain, and tells of the final blocks it relies
 * on (a node's chain health: sdk/node/chain-health.ts).
 */
export type ChainGuard = Readonly<{
  /**
   * Why nothing new that depends on chain `chainId` may be signed now (the chain does not answer, or it reorganised
   * deeper than its confirmations), or undefined. Asked for the terms of every swap (proposed, agreed, accepted),
   * every lock added and every count of deposits, whoever proposes them (a ChainHeldError, or a change left waiting);
   * payments, refunds, closes and the on-chain path are never held.
   */
  hold(chainId: bigint): string | undefined;
  /**
   * Told of a block taken as final before what it holds is counted (a deposit, a channel's opening), and awaited
   * before that read: the guard keeps the block's hash to notice a reorganisation that later replaces it.
   */
  trustFinal?(chainId: bigint, block: number): Promise<void>;
}>;

/** What a responder policy is told beside the terms of the swap it is asked about. */
export type PolicyContext = Readonly<{
  /**
   * Swaps this client agreed to as responder earlier in the same step, not in the store yet: a policy that limits
   * swaps in flight or what is at stake at once counts them with those the store shows as in progress.
   */
  agreed: readonly SwapTerms[];
}>;

/** What a client accepts of the fixed parameters of a channel it joins. */
export type ChannelPolicy = Readonly<{
  /** Our payout address, if not our own key's address: a channel naming any other payee for us is refused. */
  payee?: Address;
  /** Shortest challenge period (s) accepted: time to get a challenge in; default 1 hour. */
  minChallengePeriod?: bigint;
  /** Longest challenge period (s) accepted: how long funds may be held in a dispute; default 7 days. */
  maxChallengePeriod?: bigint;
}>;

export const DEFAULT_MIN_CHALLENGE_PERIOD = 3600n;
export const DEFAULT_MAX_CHALLENGE_PERIOD = 7n * 24n * 3600n;

/** Arguments of a new swap; expiries default to now + target duration and tT + delta. */
export type ProposeArgs = Readonly<{
  source: Hex;
  target: Hex;
  give: bigint;
  take: bigint;
  targetExpiry?: bigint;
  sourceExpiry?: bigint;
  /** Lifetime (s) of the target lock when `targetExpiry` is not given. */
  targetLockSeconds?: bigint;
}>;

/** Throws InvalidTermsError when the terms name one channel as both legs: its two locks would share a sequence number. */
export function requireDistinctChannels(source: Hex, target: Hex) {
  if (source.toLowerCase() === target.toLowerCase()) {
    throw new InvalidTermsError(`the source and target are the same channel ${source}; a swap needs two channels`);
  }
}

/** A swap as `store` holds it (UnknownSwapError if it holds none by that id). */
export function storedSwap(store: Store, swapId: Hex): SwapView {
  const s = store.swap<SwapProgress>(swapId);
  if (s === undefined) throw new UnknownSwapError(swapId);
  return { swapId, role: s.role, terms: s.terms, progress: s.phase };
}

/**
 * What every step of a swap needs: the store, the channel book, the chains, secrets, the checks of swap terms, and
 * the one way to record a phase and report it (`emitPhase`). The update scheme's driver (counterparties.ts), the
 * close and the chain paths work on it; messages leave through `send` (authenticated by `auth`), and every step runs
 * under its `groupCommit` (group-commit.ts).
 */
export class Session {
  readonly address: string;
  /** Authenticates envelopes to and from counterparties whose public key we know (core/envelope-auth.ts). */
  readonly auth: EnvelopeAuth;
  readonly book: ChannelBook;
  readonly chains = new Map<bigint, HubAdapter>();
  readonly clock: () => number;
  /** Runs protocol steps in turn and commits them in groups before their messages and events go out. */
  readonly groupCommit: GroupCommit;
  /**
   * Client clock when this process started: a wait that began before (in the store) counts from here, since the
   * counterparty cannot have answered what this client did not resend while it was down.
   */
  readonly startedAt: number;
  private readonly listeners = new Set<(event: ClientEvent) => void>();
  /** The error of the last failed send per channel (lower-case id), until a send for it succeeds. */
  private readonly sendFailures = new Map<string, unknown>();
  private readonly discards = new Set<(scope: "step" | "group") => void>();

  constructor(readonly o: SwapClientOptions) {
    this.address = getAddress(o.signer.address);
    this.auth = o.auth ?? new EnvelopeAuth(o.signer);
    this.book = new ChannelBook(
      o.store,
      o.signer,
      {
        signed: (state, signature) => this.feedTower((t) => t.signed(state, signature)),
        cosigned: (cosigned) => this.feedTower((t) => t.update(cosigned)),
      },
      (chainId) => {
        const now = this.chains.get(chainId)?.lastNow();
        return now === undefined ? undefined : now + o.deltas.maxLockSeconds(chainId);
      },
    );
    this.clock = o.clock ?? Date.now;
    this.startedAt = this.clock();
    for (const c of o.chains) {
      const other = this.chains.get(c.chainId);
      if (other !== undefined) throw new DuplicateChainError(c.chainId, [other.hubAddress, c.hubAddress]);
      this.chains.set(c.chainId, c);
    }
    this.groupCommit = new GroupCommit(o.store, o.groupCommitSteps ?? DEFAULT_GROUP_STEPS, {
      transmit: (envelopes) => this.transmit(envelopes),
      report: (event) => this.report(event),
      committed: (work) => {
        const tower = this.o.watchtower;
        const all = () => {
          for (const w of work) w();
        };
        try {
          if (tower?.batch !== undefined) tower.batch(all);
          else all();
        } catch (error) {
          // The group is on disk and the client holds everything the tower was to be told: the client goes on, and
          // says the tower missed it (a later state or import brings the tower up to date).
          this.report({ type: "tickError", error: `watchtower: ${error instanceof Error ? error.message : String(error)}` });
        }
      },
      discard: (scope) => {
        for (const f of this.discards) f(scope);
      },
    });
  }

  /**
   * Sends envelopes in order. A failed send is left to a later resend (a tick's, or an answer to a duplicate) and
   * reported at once as a `sendFailed` event; the error is kept per channel until a send for it succeeds
   * (`sendFailure`), for a wait on that channel to say why nothing came back.
   */
  async transmit(envelopes: readonly Envelope[]): Promise<void> {
    if (envelopes.length === 0) return;
    const { transport } = this.o;
    const channelIds = [...new Map(envelopes.map((e) => [e.swapId.toLowerCase(), e.swapId])).values()];
    try {
      if (transport.sendMany !== undefined && envelopes.length > 1) await transport.sendMany(envelopes);
      else for (const envelope of envelopes) await transport.send(envelope);
    } catch (error) {
      for (const id of channelIds) this.sendFailures.set(id.toLowerCase(), error);
      const text = error instanceof Error ? error.message : String(error);
      this.report({ type: "sendFailed", channelIds, error: text, notConnected: error instanceof TransportNotConnectedError });
      return;
    }
    for (const id of channelIds) this.sendFailures.delete(id.toLowerCase());
  }

  /** Why the last send of a message for `channelId` failed, unless one has been sent since. */
  sendFailure(channelId: Hex): unknown {
    return this.sendFailures.get(channelId.toLowerCase());
  }

  /**
   * Seals `body` for the counterparty of channel `sessionId` and sends it once the step's group is on disk (at once
   * outside a step): authenticated with the key shared with it once its public key is known (from any signature of
   * its we verified), signed before that.
   */
  send(sessionId: Hex, body: SwapBody) {
    const to = knownPublicKey(this.book.counterparty(sessionId));
    const envelope = seal(to === undefined ? (d) => this.o.signer.sign(d) : (d) => this.auth.tag(d, to), this.address, sessionId, body);
    if (!this.groupCommit.holdEnvelopes([envelope])) void this.transmit([envelope]);
  }

  /** Calls `f` whenever uncommitted work is dropped (a step or a group rolled back): memory kept beside the store. */
  onDiscard(f: (scope: "step" | "group") => void) {
    this.discards.add(f);
  }

  /** Whether a wait that began at `since` (client clock, ms) has lasted `timeoutMs`, counted from this start at most. */
  waited(since: number, now: number, timeoutMs: number): boolean {
    return now - Math.max(since, this.startedAt) >= timeoutMs;
  }

  /**
   * The secret of `hashlock` if it may be revealed (the store keeps the rule with it: an initiator's own only once
   * its reveal is due, never once it undid the swap), else one a chain shows.
   */
  async findSecret(hashlock: Hex): Promise<Hex | undefined> {
    const known = this.o.store.secret(hashlock);
    if (known !== undefined) return known;
    for (const chain of this.chains.values()) {
      const secret = await chain.findSecret(hashlock);
      if (secret !== undefined) {
        this.keepSecret(hashlock, secret);
        return secret;
      }
    }
    return undefined;
  }

  /**
   * Keeps a secret in the store with whether it may be revealed (`RevealRule`): never forgotten once known. The
   * watchtower hears of it once it may be revealed.
   */
  keepSecret(hashlock: Hex, secret: Hex, reveal: RevealRule = "may") {
    this.o.store.saveSecret(hashlock, secret, reveal);
    if (reveal === "may") this.feedTower((t) => t.addSecret(hashlock, secret));
  }

  /**
   * Tells the watchtower something once the step's group is on disk (at once outside a step), all of a group's in
   * one unit of the tower's storage and before the group's messages leave: the tower never holds what the store
   * rolled back, and it pays one sync per group, not one per state or secret.
   */
  feedTower(tell: (tower: NonNullable<SwapClientOptions["watchtower"]>) => void) {
    const tower = this.o.watchtower;
    if (tower === undefined) return;
    if (!this.groupCommit.holdAfterCommit(() => tell(tower))) tell(tower);
  }

  /**
   * The responder policy's answer to `terms`: a reason to refuse, or undefined to accept. The one place a swap this
   * client would agree to as responder is put to the policy, whatever the path (one swap at a time, or a batched
   * pair's envelope); `agreed` are the swaps agreed before it in the same step and not stored yet, which the policy
   * counts as in flight. A ChannelSdkError the policy throws is a refusal.
   */
  admit(terms: SwapTerms, agreed: readonly SwapTerms[] = []): string | undefined {
    try {
      return this.o.policy?.(terms, { agreed });
    } catch (error) {
      if (!(error instanceof ChannelSdkError)) throw error;
      return error.message;
    }
  }

  /** Why the chain guard holds `chainId` (nothing new that depends on it is signed), or undefined. */
  hold(chainId: bigint): string | undefined {
    return this.o.chainGuard?.hold(chainId);
  }

  /** Throws a ChainHeldError when the chain guard holds `chainId` (see ChainGuard.hold). */
  requireChain(chainId: bigint) {
    const reason = this.hold(chainId);
    if (reason !== undefined) throw new ChainHeldError(chainId, reason);
  }

  /** Tells the chain guard of a block about to be read as final on `chainId` (ChainGuard.trustFinal). */
  async trustFinal(chainId: bigint, block: number): Promise<void> {
    await this.o.chainGuard?.trustFinal?.(chainId, block);
  }

  /** Throws unless each channel ref of the terms names the chain and hub this client knows the channel on. */
  requireRefs(terms: SwapTerms) {
    for (const ref of [terms.source, terms.target]) {
      const known = this.book.record(ref.channelId).ref;
      if (known.chainId !== ref.chainId || !sameAddress(known.hub, ref.hub)) {
        throw new InvalidMessageError(
          `channel ${ref.channelId} is on chain ${known.chainId} at hub ${known.hub}, the terms say chain ${ref.chainId} at ${ref.hub}`,
        );
      }
    }
  }

  /**
   * @param now The target chain's time: the window before tT is measured on T.
   * @param sourceNow The source chain's time: both clocks must agree within the skew bounds delta assumes.
   */
  validateTerms(terms: SwapTerms, now: bigint, sourceNow: bigint) {
    // Every path to a swap's terms (proposed, agreed, accepted, resent) asks the chain guard first.
    this.requireChain(terms.source.chainId);
    this.requireChain(terms.target.chainId);
    // A channel of a restored backup copy takes no swap: its locks could never be signed (ChannelBook.sign).
    for (const id of [terms.source.channelId, terms.target.channelId]) {
      const frozen = this.o.store.frozenSince(id);
      if (frozen !== undefined) throw new ChannelFrozenError(id, frozen);
    }
    requireDistinctChannels(terms.source.channelId, terms.target.channelId);
    this.requireRefs(terms);
    const bound = this.o.deltas.skewBound(terms.source.chainId, terms.target.chainId);
    if (bound !== undefined) checkClockAgreement({ sourceNow, targetNow: now, bound });
    if (terms.give <= 0n || terms.take <= 0n) throw new InvalidMessageError("swap amounts must be positive");
    checkSwapTiming({
      sourceExpiry: terms.sourceExpiry,
      targetExpiry: terms.targetExpiry,
      now,
      delta: this.o.deltas.delta(terms.source.chainId, terms.target.chainId),
      minTargetWindow: this.o.minTargetWindow,
      bounds: this.o.deltas.bounds(terms.source.chainId, terms.target.chainId),
    });
    // Balances are not checked here: each side checks what it has not promised yet (counterparty.ts).
  }

  /**
   * New terms of a swap this client initiates on `source` for `target` (its channels, with one counterparty), with a
   * fresh secret; expiries default to `nowT` plus the target lock's lifetime, and the source's after it by delta.
   */
  newTerms(source: ChannelRecord, target: ChannelRecord, args: ProposeArgs, nowT: bigint): { terms: SwapTerms; secret: Hex } {
    const delta = this.o.deltas.delta(source.ref.chainId, target.ref.chainId);
    const targetExpiry = args.targetExpiry ?? nowT + (args.targetLockSeconds ?? 3n * this.o.minTargetWindow);
    const secret = hexlify(randomBytes(32)) as Hex;
    const terms: SwapTerms = {
      swapId: hexlify(randomBytes(32)) as Hex,
      source: source.ref,
      target: target.ref,
      initiator: this.address,
      responder: getAddress(this.book.counterparty(source.ref.channelId)),
      give: args.give,
      take: args.take,
      hashlock: hashlockOf(secret),
      sourceExpiry: args.sourceExpiry ?? targetExpiry + delta,
      targetExpiry,
    };
    return { terms, secret };
  }

  progress(phase: SwapPhase): SwapProgress {
    const now = this.clock();
    return { phase, since: now, sentAt: now };
  }

  emitPhase(swapId: Hex, role: SwapRole, phase: SwapPhase) {
    this.emit({ type: "phase", swapId, role, phase });
  }

  /** Reports an event; one raised by a protocol step is reported once the step's group is on disk and sent. */
  emit(event: ClientEvent) {
    if (!this.groupCommit.holdEvent(event)) this.report(event);
  }

  /** Hands an event to `onEvent` and the subscribers; an error thrown there is theirs and changes nothing here. */
  private report(event: ClientEvent) {
    for (const listener of [...this.listeners, ...(this.o.onEvent === undefined ? [] : [this.o.onEvent])]) {
      try {
        listener(event);
      } catch {
        // ignored: the protocol must not depend on what a listener does
      }
    }
  }

  /** Tells `listener` of every event reported from now on (once on disk, as `onEvent`); returns the unsubscribe. */
  subscribe(listener: (event: ClientEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  chain(chainId: bigint): HubAdapter {
    const chain = this.chains.get(chainId);
    if (chain === undefined) throw new ChannelSdkError(`no adapter for chain ${chainId}`);
    return chain;
  }

  swap(swapId: Hex): SwapView {
    return storedSwap(this.o.store, swapId);
  }

  swaps(): SwapView[] {
    return this.o.store.swapIds().map((id) => this.swap(id));
  }

  /** Swaps still in progress (an indexed read: cheap however many swaps are done). */
  activeSwaps(): SwapView[] {
    return this.o.store.activeSwapIds().map((id) => this.swap(id));
  }
}
