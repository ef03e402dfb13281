/**
 * Every channel of a client runs under the one update scheme (docs/SWAP.md): per counterparty, one engine
 * (counterparty.ts) holds all its channels with that counterparty, and a swap may use any two of them, its source
 * and its target, many swaps at once, each lock added, paid or refunded in co-signed batches; a swap that ends
 * before its secret is out is undone off chain while the others go on.
 *
 * Terms are agreed in bulk: the initiator sends the terms of many swaps in one `proposals` envelope, each signed;
 * the responder checks each (refs, timing, policy) and against what its side has not promised yet, and answers in
 * one `acceptances` envelope. Each step here is a protocol step of the client's group commit: its batches,
 * envelopes and phase rows are on disk before anything leaves.
 *
 * The chain is used only when the counterparty does not co-sign in time: a lock that pays us nears its expiry
 * with the secret in hand, a lock has expired unresolved, the secret of a swap appeared on chain, or a channel left
 * the open state. Then that channel, and every channel an open swap ties to it, is closed on chain with the newest
 * co-signed state, every pending lock settled by its secret or refunded (close.ts, enforcer.ts), and no state is
 * signed on them again. The counterparty's other channels go on.
 */
import { formatUnits, ZeroAddress } from "ethers";

import type { ChannelInfo } from "../chain/hub.js";
import { applicable, type UpdateEvent } from "../core/channel-updates.js";
import { ChannelSdkError, InsufficientBalanceError, InvalidMessageError, UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { requireSignedBy } from "../core/signing.js";
import { checkTermsShape, termsDigest, type SwapTerms } from "../core/swap.js";
import { newSide, outcome, settled, type SwapSide } from "../core/swap-rules.js";
import { peerText } from "../core/text.js";
import { MAX_LOCKS } from "../core/state.js";
import { sameAddress, type Hex } from "../core/types.js";
import type { Head } from "../chain/follower.js";
import { Counterparty } from "./counterparty.js";
import * as close from "./close.js";
import { ChannelBusyError, ChannelClosingError, channelOpError } from "./errors.js";
import { Following } from "./following.js";
import type { OnChainReason, SwapPhase, SwapProgress, SwapView } from "./phases.js";
import { requireDistinctChannels, type ProposeArgs, type Session } from "./session.js";

/** The most swaps a client keeps open at once on one channel: as many as one channel state can lock. */
export const MAX_OPEN_SWAPS = MAX_LOCKS;

/** The most proposals one envelope carries; a responder reads no more of one. */
export const MAX_PROPOSALS = 512;

/**
 * Per counterparty: its live channels' status and its chains' time (read before a tick's turn), or why not. A chain
 * that failed leaves its channels out (`failed` says why), the others are there.
 */
export type PairFacts = Map<Counterparty, Readonly<{ status: ReadonlyMap<string, string>; now: ReadonlyMap<string, bigint>; failed?: Error }> | Error>;

/** What `proposals` would lock on `channelId` as their source. */
function proposedOn(channelId: Hex, proposals: readonly SwapView[]): bigint {
  let sum = 0n;
  for (const view of proposals) if (lower(view.terms.source.channelId) === lower(channelId)) sum += view.terms.give;
  return sum;
}

/** What one proposal of a `proposeMany` gave: the swap id, or why this one was not proposed. */
export type ProposeOutcome = Readonly<{ swapId: Hex }> | Readonly<{ error: Error }>;

const lower = (h: string) => h.toLowerCase();

export class Counterparties {
  /** Each channel's engine (every channel with one counterparty shares one), by lower-case channel id. */
  private readonly engines = new Map<string, Counterparty>();
  /** Each counterparty's engine, by lower-case address. */
  private readonly peers = new Map<string, Counterparty>();
  /** Swaps (by hashlock, per engine) whose side changed in the step under way: their phase rows are brought up to date. */
  private touched = new Map<Counterparty, Set<string>>();
  /**
   * Engines a step of ours ran and that did not finish yet: the ones to read the store again if it is rolled back
   * (a failed step of another kind, a junk message say, leaves them as they are).
   */
  private running = new Set<Counterparty>();
  /** Per channel: the deposits the hub holds at the final block, as a tick last read them (lower-case channel id). */
  private readonly held = new Map<string, readonly [bigint, bigint]>();
  /** Per channel whose deposits the head does not count: the final block `held` was read at by a tick. */
  private readonly heldAt = new Map<string, number>();
  /** The chains' heads and the live channels' state on chain, read again only when a log concerns them. */
  private readonly following: Following;

  constructor(private readonly ctx: Session) {
    this.following = new Following((chainId) => ctx.chain(chainId));
    const byPeer = new Map<string, Hex[]>();
    for (const record of ctx.o.store.channels()) {
      const peer = lower(record.params.participants[record.myIndex === 0 ? 1 : 0]!);
      byPeer.set(peer, [...(byPeer.get(peer) ?? []), record.ref.channelId]);
    }
    for (const [peer, channels] of byPeer) this.start(peer, channels);
    ctx.onDiscard((scope) => {
      const engines = scope === "group" ? new Set(this.engines.values()) : this.running;
      for (const engine of engines) engine.invalidate();
      this.running = new Set();
      this.touched = new Map();
    });
  }

  /** Whether `channelId` is a channel of this client's (every one runs under the update scheme). */
  has(channelId: Hex): boolean {
    return this.engines.has(lower(channelId));
  }

  /** Whether a swap with these terms is one of this client's engines' (both its channels with one counterparty). */
  owns(terms: SwapTerms): boolean {
    const engine = this.engines.get(lower(terms.source.channelId));
    return engine !== undefined && engine === this.engines.get(lower(terms.target.channelId));
  }

  /** The engine of the counterparty of `channelId`. */
  engine(channelId: Hex): Counterparty {
    const engine = this.engines.get(lower(channelId));
    if (engine === undefined) throw new ChannelSdkError(`channel ${channelId} is not known to this client`);
    return engine;
  }

  /** A channel the client just added joins its counterparty's engine (a new engine for a new counterparty). */
  join(channelId: Hex): void {
    const record = this.ctx.book.record(channelId);
    const peer = lower(record.params.participants[record.myIndex === 0 ? 1 : 0]!);
    const engine = this.peers.get(peer);
    if (engine === undefined) return this.start(peer, [record.ref.channelId]);
    engine.addChannel(record.ref.channelId);
    this.engines.set(lower(channelId), engine);
  }

  private start(peer: string, channels: readonly Hex[]) {
    const { ctx } = this;
    const engine: Counterparty = new Counterparty({
      store: ctx.o.store,
      signer: ctx.o.signer,
      channels,
      offChainEnded: (channelId) => this.onChain(channelId),
      book: ctx.book,
      nested: true,
      send: (channelId, message) => this.send(channelId, { step: "batch", message }),
      onEvent: (channelId, event) => this.onEvent(engine, channelId, event),
      onSides: (hashlocks) => this.touch(engine, hashlocks),
      keepSecret: (hashlock, secret, rule) => ctx.keepSecret(hashlock, secret, rule),
      mayReveal: (side) => this.mayReveal(side),
      maxOpen: MAX_OPEN_SWAPS,
      finalDeposits: (channelId) => this.held.get(lower(channelId)),
      hold: (chainId) => ctx.hold(chainId),
      now: () => ctx.clock(),
      newestCoSigned: (channelId) => ctx.o.watchtower?.newest?.(channelId),
    });
    for (const id of channels) this.engines.set(lower(id), engine);
    this.peers.set(peer, engine);
  }

  private onEvent(engine: Counterparty, channelId: Hex, event: UpdateEvent) {
    if (event.type === "cosigned") this.cosigned(engine, channelId, event);
    if (event.type === "caughtUp") {
      // Our proposals still waiting on the channel are the copy's (a frozen channel takes no new one): the other may
      // have accepted one after the copy and seen it through, and holds its secret. Accepted now, it would lock our
      // side again for the other to claim with that secret: given up in the step that thaws the channel.
      this.abortProposals(engine, "proposed in a copy of the store: what became of it after the copy is not known", [channelId]);
      this.ctx.emit({ type: "caughtUp", channelId, seq: event.state.seq, floor: event.floor, balances: event.state.balances });
    }
    if (event.type === "resumed") this.ctx.emit({ type: "peerResumed", channelId, seq: event.head.seq, floor: event.floor });
  }

  /**
   * Swaps whose side a step of `engine` changed: `run` brings their phase rows up to date. (The watchtower hears of a
   * secret through `keepSecret` once its rule lets it be revealed: the responder's once known, the initiator's once
   * it left, whether in a batch it signed or in a request the other has to put in one.)
   */
  private touch(engine: Counterparty, hashlocks: readonly string[]) {
    const set = this.touched.get(engine) ?? new Set<string>();
    for (const k of hashlocks) set.add(k);
    this.touched.set(engine, set);
  }

  /**
   * A co-signed state that counts deposits is reported; a final one starts the channel's close (close.ts): the party
   * that asked for it lands it at once, the other after the confirmation timeout if it was not landed meanwhile.
   */
  private cosigned(engine: Counterparty, channelId: Hex, event: Extract<UpdateEvent, { type: "cosigned" }>) {
    const { ctx } = this;
    const { state } = event;
    if (event.changes.some((c) => c.kind === "deposits")) ctx.emit({ type: "deposits", channelId, deposits: state.deposits });
    if (!state.isFinal || ctx.o.store.channelOp(channelId) !== undefined) return;
    const asked = this.ctx.o.store.batched<boolean>("close").get(lower(channelId)) === true;
    const now = ctx.clock();
    ctx.o.store.saveChannelOp(channelId, { kind: "close", role: asked ? "requester" : "responder", seq: state.seq, since: now, sentAt: now });
  }

  /**
   * Closes `channelId` cooperatively: no new swap on it, our proposals using it still unanswered given up, every swap
   * using it not past its reveal undone off chain (its other channel stays open) and the others completed; its final
   * state is signed once its last lock is resolved, then landed on chain (by us at once, by the other after the
   * confirmation timeout). Runs inside a protocol step.
   */
  requestClose(channelId: Hex) {
    const { ctx } = this;
    const engine = this.engine(channelId);
    const id = ctx.book.record(channelId).ref.channelId;
    const op = ctx.o.store.channelOp(id);
    if (op !== undefined && op.kind !== "close") throw channelOpError(id, op.kind);
    ctx.o.store.saveBatched("close", lower(id), true);
    this.abortProposals(engine, `channel ${id} is closing`, [id]);
    this.run(engine, () => engine.close(id));
    this.done();
  }

  /**
   * Participant 0 of a batched channel: offers to count the deposits the hub holds at the final block (read now) that
   * the head does not count yet. Runs inside a protocol step; returns whether an offer was made.
   */
  async countDeposits(channelId: Hex): Promise<boolean> {
    const engine = this.engine(channelId);
    await this.readHeld([channelId]);
    return this.offerDeposits(engine, channelId);
  }

  private offerDeposits(engine: Counterparty, channelId: Hex): boolean {
    const u = engine.updater(channelId);
    const held = this.held.get(lower(channelId));
    // A frozen channel (a restored copy's) signs nothing until it caught up: its deposits are counted after that.
    if (u.me !== 0 || held === undefined || engine.closing(channelId) || this.onChain(channelId) || this.ctx.o.store.frozenSince(channelId) !== undefined) return false;
    const count = { kind: "deposits", deposits: held } as const;
    if (!applicable(u.head, count)) return false; // counted already (or a node behind the one read before)
    this.run(engine, () => engine.countDeposits(channelId, held));
    this.done();
    return true;
  }

  /**
   * Reads what the hub holds on each of `channels` at its chain's final block, that block told to the chain guard
   * first (it keeps its hash to notice a deeper reorganisation): the final block below `heads` (a tick's, read again
   * only once that final block moved on), or asked of the chain now. A chain the guard holds is not read: nothing is
   * counted on it.
   */
  private async readHeld(channels: readonly Hex[], heads?: ReadonlyMap<bigint, Head | Error>) {
    for (const id of channels) {
      const { chainId } = this.ctx.book.record(id).ref;
      if (this.ctx.hold(chainId) !== undefined) {
        this.held.delete(lower(id));
        this.heldAt.delete(lower(id));
        continue;
      }
      const chain = this.ctx.chain(chainId);
      const head = heads?.get(chainId);
      if (head instanceof Error) throw head;
      const final = head === undefined ? await chain.finalBlock() : Math.max(0, head.number - chain.confirmations);
      if (head !== undefined && this.heldAt.get(lower(id)) === final) continue;
      await this.ctx.trustFinal(chainId, final);
      this.held.set(lower(id), (await chain.channelInfo(id, final)).deposits);
      if (head !== undefined) this.heldAt.set(lower(id), final);
    }
  }

  /** Our proposals with `engine`'s counterparty still waiting for an answer, using one of `channels`, are given up. */
  private abortProposals(engine: Counterparty, reason: string, channels: readonly Hex[]) {
    const ids = new Set(channels.map(lower));
    for (const view of this.ctx.activeSwaps()) {
      const uses = ids.has(lower(view.terms.source.channelId)) || ids.has(lower(view.terms.target.channelId));
      if (uses && this.owns(view.terms) && this.engine(view.terms.source.channelId) === engine && view.progress.phase.kind === "proposed") {
        this.enter(view.swapId, view.role, view.terms, { kind: "done", outcome: "aborted", reason });
      }
    }
  }

  /**
   * Whether an initiator may reveal now: at least `minTargetWindow` left before its T lock expires (docs/TIMING.md), by the T chain's last reading moved on by the wall clock. Not knowing the time, it waits.
   */
  private mayReveal(side: SwapSide): boolean {
    const now = this.ctx.chain(side.terms.target.chainId).lastNow();
    return now !== undefined && side.terms.targetExpiry - now >= this.ctx.o.minTargetWindow;
  }

  /** Seals a message and sends it once the step's group is on disk (at once outside a step). */
  private send(sessionId: Hex, body: SwapBody) {
    this.ctx.send(sessionId, body);
  }

  // ---------------------------------------------------------------- terms

  /**
   * Proposes many swaps in one step: each is checked (channels, timing, what its source channel has not promised
   * yet) and kept with its secret, and the valid ones leave in one envelope per counterparty. A proposal that fails
   * its checks is reported as an error and the others go on.
   */
  async proposeMany(all: readonly ProposeArgs[]): Promise<ProposeOutcome[]> {
    const { ctx } = this;
    const out: ProposeOutcome[] = [];
    const items = new Map<Counterparty, { terms: SwapTerms; termsSig: Hex }[]>();
    const promised = new Map<string, bigint>(); // per source channel: what this call's proposals already need
    const free = new Map<string, bigint>(); // per source channel: what it had not promised when this call began
    const opened = new Map<Counterparty, Map<string, number>>(); // per counterparty and channel: open swaps and this call's proposals
    const times = new Map<Counterparty, Map<string, bigint>>(); // per counterparty: its chains' times, read once per call
    let proposals: SwapView[] | undefined; // our proposals still waiting for an answer, read once per call
    const waiting = () => (proposals ??= this.waitingProposals());
    for (const args of all) {
      try {
        const engine = this.engine(args.source);
        if (this.engine(args.target) !== engine) throw new ChannelSdkError("the source and target channels must be with the same counterparty");
        requireDistinctChannels(args.source, args.target);
        for (const id of [args.source, args.target]) {
          this.requireOpen(id);
          if (engine.closing(id)) throw new ChannelClosingError(id, "close");
        }
        const open = opened.get(engine) ?? this.openWithProposals(engine, waiting());
        opened.set(engine, open);
        for (const id of [args.source, args.target]) {
          const n = open.get(lower(id)) ?? 0;
          if (n >= MAX_OPEN_SWAPS) throw new ChannelBusyError(id, `${n} swaps open or proposed on it, the most its states can lock`);
        }
        const source = ctx.book.record(args.source);
        const target = ctx.book.record(args.target);
        const pairTimes = times.get(engine) ?? (await this.pairTimes(engine));
        times.set(engine, pairTimes);
        const [nowT, nowS] = [pairTimes.get(`${target.ref.chainId}`)!, pairTimes.get(`${source.ref.chainId}`)!];
        const { terms, secret } = ctx.newTerms(source, target, args, nowT);
        ctx.validateTerms(terms, nowT, nowS);
        const k = lower(args.source);
        const need = (promised.get(k) ?? 0n) + args.give;
        // What the pair has not promised, less what our proposals still waiting for an answer would lock on this
        // channel: summed once per call.
        const left = free.get(k) ?? engine.available(args.source) - proposedOn(args.source, waiting());
        free.set(k, left);
        if (left < need) throw await this.shortOf(engine, args.source, left - (need - args.give), args.give);
        promised.set(k, need);
        for (const id of [args.source, args.target]) open.set(lower(id), (open.get(lower(id)) ?? 0) + 1);
        // The secret and the swap are stored before the proposal leaves, the secret held: it may be revealed only once
        // the initiator reveals it (a signed payment of the T lock), and never once the swap is undone (swap-rules.ts
        // `revealRule`). The watchtower hears of it once it may be revealed (`touch`).
        ctx.o.store.saveSecret(terms.hashlock, secret, "held");
        ctx.o.store.saveSwap(terms.swapId, "initiator", terms, ctx.progress({ kind: "proposed" }), true);
        ctx.emitPhase(terms.swapId, "initiator", { kind: "proposed" });
        const list = items.get(engine) ?? [];
        list.push({ terms, termsSig: ctx.o.signer.sign(termsDigest(terms)) });
        items.set(engine, list);
        out.push({ swapId: terms.swapId });
      } catch (error) {
        if (!(error instanceof ChannelSdkError)) throw error;
        out.push({ error });
      }
    }
    for (const list of items.values()) this.sendProposals(list);
    return out;
  }

  /**
   * The error of a proposal its source channel cannot cover: the channel, its chain, the amounts in the asset's
   * units, and the next step. Deposits the hub holds at the final block and the co-signed state does not count yet
   * want `syncDeposits`; one not final yet wants `confirmations` blocks more; else the channel holds too little.
   */
  private async shortOf(engine: Counterparty, channelId: Hex, available: bigint, needed: bigint): Promise<InsufficientBalanceError> {
    const { ref, params } = this.ctx.book.record(channelId);
    const me = engine.updater(channelId).me;
    const chain = this.ctx.chain(ref.chainId);
    const decimals = await chain.assetDecimals(params.asset).catch(() => undefined);
    const format = (a: bigint) => (decimals === undefined ? a.toString() : formatUnits(a, decimals));
    const unit = `${params.asset === ZeroAddress ? "native coin" : `token ${params.asset}`}${decimals === undefined ? ", base units" : ""}`;
    const counted = engine.head(channelId).deposits[me];
    let hint: string;
    try {
      const final = await chain.finalBlock();
      const atFinal = (await chain.channelInfo(channelId, final)).deposits[me];
      const atHead = (await chain.channelInfo(channelId)).deposits[me];
      hint =
        atFinal > counted
          ? `The hub holds ${format(atFinal - counted)} more for participant ${me} at the final block than the channel's ` +
            `co-signed state counts: count it with syncDeposits(${channelId}) on both clients (participant 0 proposes ` +
            "the count, participant 1 signs it), then propose again."
          : atHead > atFinal
            ? `A deposit of ${format(atHead - atFinal)} for participant ${me} is on chain but not final yet: it counts ` +
              `once ${chain.confirmations} blocks deep (confirmations), then syncDeposits(${channelId}) on both clients.`
            : `Deposit more for participant ${me} (HubAdapter.deposit, then syncDeposits) or swap less` +
              (available < engine.head(channelId).balances[me] ? "; swaps in flight and proposals hold part of the balance." : ".");
    } catch {
      hint = `If a deposit was made lately, count it with syncDeposits(${channelId}) on both clients once it is final.`;
    }
    return new InsufficientBalanceError(me, available, needed, { channelId, chainId: ref.chainId, format, unit, hint });
  }

  private sendProposals(list: readonly { terms: SwapTerms; termsSig: Hex }[]) {
    for (let i = 0; i < list.length; i += MAX_PROPOSALS) {
      const chunk = list.slice(i, i + MAX_PROPOSALS);
      this.send(chunk[0]!.terms.source.channelId, { step: "proposals", items: chunk });
    }
  }

  /** Per channel of `engine` (lower case): its open swaps and our proposals using it still waiting for an answer. */
  private openWithProposals(engine: Counterparty, proposals: readonly SwapView[]): Map<string, number> {
    const open = engine.openPerChannel();
    for (const view of proposals) {
      if (!engine.has(view.terms.source.channelId)) continue;
      for (const id of [view.terms.source.channelId, view.terms.target.channelId]) open.set(lower(id), (open.get(lower(id)) ?? 0) + 1);
    }
    return open;
  }

  /** Our proposals still waiting for an answer, on every pair. */
  private waitingProposals(): SwapView[] {
    return this.ctx.activeSwaps().filter((view) => view.role === "initiator" && view.progress.phase.kind === "proposed");
  }

  /** Throws unless the channel is open as far as this client knows (no close or force close under way). */
  private requireOpen(channelId: Hex) {
    const op = this.ctx.o.store.channelOp(channelId);
    if (op !== undefined) throw channelOpError(channelId, op.kind);
  }

  /** Whether any swap this client knows, on any pair, or any secret it holds, uses `hashlock`. */
  private hashlockKnown(hashlock: Hex): boolean {
    if (this.ctx.o.store.knownSecret(hashlock) !== undefined) return true;
    for (const engine of new Set(this.engines.values())) if (engine.side(hashlock) !== undefined) return true;
    return false;
  }

  /**
   * Responder: the terms of many swaps. Each is checked and agreed or refused; all are answered in one envelope.
   * A proposal seen before is answered as before. The pair's chain times are read once for the envelope.
   */
  async onProposals(envelope: Envelope, body: Extract<SwapBody, { step: "proposals" }>) {
    const { ctx } = this;
    const { engine, from } = this.openEnvelope(envelope, body.items);
    // A chain the guard holds refuses every proposal of the envelope with its reason (not read, it may not answer).
    let times = new Map<string, bigint>();
    let held: ChannelSdkError | undefined;
    try {
      times = await this.pairTimes(engine);
    } catch (error) {
      if (!(error instanceof ChannelSdkError)) throw error;
      held = error;
    }
    const answers: { swapId: Hex; termsSig?: Hex; refusal?: string }[] = [];
    const candidates: SwapSide[] = [];
    const digests = new Map<string, Hex>(); // by swap id: each item's terms hashed once, for checking and signing
    const seen = new Set<string>(); // swap ids and hashlocks of this envelope
    for (const item of body.items) {
      const { terms } = item;
      checkTermsShape(terms);
      const digest = termsDigest(terms);
      requireSignedBy("swap terms", from, digest, item.termsSig);
      const known = engine.side(terms.hashlock);
      const row = ctx.o.store.swap<SwapProgress>(terms.swapId);
      if (known !== undefined && known.terms.swapId === terms.swapId && known.role === "responder" && termsDigest(known.terms) === digest) {
        answers.push({ swapId: terms.swapId, termsSig: ctx.o.signer.sign(digest) }); // a resend
        continue;
      }
      let refusal: string | undefined;
      try {
        if (seen.has(lower(terms.swapId)) || seen.has(lower(terms.hashlock))) throw new InvalidMessageError("a swap id or hashlock twice in one envelope");
        seen.add(lower(terms.swapId));
        seen.add(lower(terms.hashlock));
        // A hashlock already in use (any pair, any swap, or a secret held) could make one claim pay out another lock.
        if (row !== undefined || this.hashlockKnown(terms.hashlock)) throw new InvalidMessageError("a swap with this id or hashlock is known already");
        if (!sameAddress(terms.initiator, from) || !sameAddress(terms.responder, ctx.address)) {
          throw new InvalidMessageError("initiator and responder do not match the channels' participants");
        }
        if (!this.owns(terms) || this.engine(terms.source.channelId) !== engine) throw new InvalidMessageError("the swap's channels are not two channels with the sender");
        for (const id of [terms.source.channelId, terms.target.channelId]) {
          this.requireOpen(id);
          if (engine.closing(id)) throw new ChannelClosingError(id, "close");
        }
        ctx.requireRefs(terms);
        if (held !== undefined) throw held;
        ctx.validateTerms(terms, times.get(`${terms.target.chainId}`)!, times.get(`${terms.source.chainId}`)!);
      } catch (error) {
        if (!(error instanceof ChannelSdkError)) throw error;
        refusal = error.message;
      }
      if (refusal !== undefined) {
        // No row is kept for a refusal: a peer could grow them without end.
        if (row === undefined) ctx.emit({ type: "rejected", swapId: terms.swapId, reason: refusal, counterparty: from, by: "us" });
        answers.push({ swapId: terms.swapId, refusal });
        continue;
      }
      digests.set(lower(terms.swapId), digest);
      candidates.push(newSide(terms, "responder", this.senders(terms)));
    }
    // The policy is asked as each swap is taken, told of those taken before it in this envelope: none is stored
    // until all are, and a policy reading only the store would let one envelope past a limit on swaps in flight.
    const admit = (side: SwapSide, before: readonly SwapSide[]) => ctx.admit(side.terms, before.map((s) => s.terms));
    const { agreed, refused } = this.run(engine, () => engine.agreeAll(candidates, admit));
    for (const side of agreed) {
      this.record(engine, side);
      answers.push({ swapId: side.terms.swapId, termsSig: ctx.o.signer.sign(digests.get(lower(side.terms.swapId)) ?? termsDigest(side.terms)) });
    }
    for (const { side, reason } of refused) {
      ctx.emit({ type: "rejected", swapId: side.terms.swapId, reason, counterparty: from, by: "us" });
      answers.push({ swapId: side.terms.swapId, refusal: reason });
    }
    if (answers.length > 0) this.send(envelope.swapId, { step: "acceptances", items: answers });
    this.done();
  }

  /**
   * The pair an envelope of terms (proposals or acceptances, sent on a channel of the pair) is for, and its sender:
   * throws unless the counterparty signed it and it carries at most MAX_PROPOSALS items.
   */
  private openEnvelope(envelope: Envelope, items: unknown): { engine: Counterparty; from: string } {
    const engine = this.engine(envelope.swapId);
    const from = this.ctx.book.counterparty(envelope.swapId);
    unseal(envelope, from, this.ctx.auth);
    if (!Array.isArray(items) || items.length > MAX_PROPOSALS) throw new InvalidMessageError(`${envelope.body.step}: at most ${MAX_PROPOSALS} items per envelope`);
    return { engine, from };
  }

  /**
   * The time of each chain of the pair, read once (by chain id). Throws a ChainHeldError, before any read, when the
   * chain guard holds one of them: no terms are checked, and so none signed, against a chain it holds.
   */
  private async pairTimes(engine: Counterparty): Promise<Map<string, bigint>> {
    const chains = new Set(engine.channels.map((id) => this.ctx.book.record(id).ref.chainId));
    for (const chainId of chains) this.ctx.requireChain(chainId);
    const times = new Map<string, bigint>();
    for (const chainId of chains) times.set(`${chainId}`, await this.ctx.chain(chainId).now());
    return times;
  }

  private senders(terms: SwapTerms) {
    return { source: this.ctx.book.indexOf(terms.source.channelId, terms.initiator), target: this.ctx.book.indexOf(terms.target.channelId, terms.responder) };
  }

  /**
   * Initiator: the responder's answers. An accepted swap starts locking at once if its timing still holds (checked
   * again: the answer may come late); a refused one is done.
   */
  async onAcceptances(envelope: Envelope, body: Extract<SwapBody, { step: "acceptances" }>) {
    const { ctx } = this;
    const { engine, from } = this.openEnvelope(envelope, body.items);
    const sides: SwapSide[] = [];
    let times: Map<string, bigint> | undefined;
    for (const item of body.items) {
      const row = ctx.o.store.swap<SwapProgress>(item.swapId);
      // Only our own proposals on this pair, still waiting: anything else is a late duplicate.
      if (row === undefined || row.role !== "initiator" || row.phase.phase.kind !== "proposed" || !this.owns(row.terms) || this.engine(row.terms.source.channelId) !== engine) continue;
      if (item.termsSig === undefined) {
        // The peer's words, bounded: they are kept with the swap, logged and shown (a peer could send up to a body's size).
        const words = typeof item.refusal === "string" && item.refusal !== "" ? peerText(item.refusal) : "refused";
        const reason = `counterparty: ${words}`;
        this.enter(item.swapId, "initiator", row.terms, { kind: "done", outcome: "aborted", reason });
        ctx.emit({ type: "rejected", swapId: item.swapId, reason, counterparty: from, by: "counterparty" });
        continue;
      }
      requireSignedBy("swap terms", from, termsDigest(row.terms), item.termsSig);
      try {
        times ??= await this.pairTimes(engine);
        ctx.validateTerms(row.terms, times.get(`${row.terms.target.chainId}`)!, times.get(`${row.terms.source.chainId}`)!);
      } catch (error) {
        if (!(error instanceof ChannelSdkError)) throw error;
        // Too late now: the swap is off (the responder's side times out; nothing was locked).
        this.enter(item.swapId, "initiator", row.terms, { kind: "done", outcome: "aborted", reason: `accepted too late: ${error.message}` });
        continue;
      }
      const secret = ctx.o.store.knownSecret(row.terms.hashlock)?.secret;
      if (secret === undefined) throw new ChannelSdkError(`the secret of swap ${item.swapId} is not in the store`);
      sides.push(newSide(row.terms, "initiator", this.senders(row.terms), secret));
    }
    if (sides.length > 0) {
      const { agreed, refused } = this.run(engine, () => engine.agreeAll(sides));
      for (const side of agreed) this.record(engine, side);
      for (const { side, reason } of refused) this.enter(side.terms.swapId, "initiator", side.terms, { kind: "done", outcome: "aborted", reason });
    }
    this.done();
  }

  /**
   * A message of the update scheme on a batched channel. One that asks us to sign a count of deposits has the hub read
   * at our final block first (the engine signs a count only up to what we read).
   */
  async onBatch(envelope: Envelope, body: Extract<SwapBody, { step: "batch" }>) {
    const engine = this.engines.get(lower(envelope.swapId));
    if (engine === undefined) throw new UnexpectedMessageError(`a batch for channel ${envelope.swapId}, which is not a channel of ours`);
    unseal(envelope, this.ctx.book.counterparty(envelope.swapId), this.ctx.auth);
    if (this.onChain(envelope.swapId)) return; // the pair is on chain: nothing more is signed on it
    if (countsDeposits(body.message)) await this.readHeld([envelope.swapId]);
    this.run(engine, () => engine.handle(envelope.swapId, body.message));
    this.done();
  }

  /**
   * Runs a call of `engine` and brings the phase rows of the swaps it touched up to date, in the same step. Until the
   * step is done, a rollback makes the engine read the store again.
   */
  private run<T>(engine: Counterparty, fn: () => T): T {
    this.running.add(engine);
    this.touched = new Map();
    const result = fn();
    const touched = this.touched.get(engine) ?? new Set<string>();
    this.touched = new Map();
    for (const k of touched) {
      const side = engine.side(k as Hex);
      if (side !== undefined) this.record(engine, side);
    }
    return result;
  }

  /** A step of ours finished: its engines need no reload if a later, unrelated step fails. */
  private done() {
    this.running = new Set();
  }

  // ---------------------------------------------------------------- phases

  /**
   * The phase a side shows: stages while the batches run, done once settled off chain. A side undone while a lock of
   * it is in our batch still unanswered is still being undone: the answer, or the chain once that lock expired, ends it.
   */
  private phaseOf(engine: Counterparty, side: SwapSide): SwapPhase {
    const t = side.terms;
    // An undone side whose lock is in our batch still unanswered waits for the answer (or, once that lock expired, for
    // the chain). A refused batch that may have been signed anyway (a ghost) does not hold it: its lock can only be
    // refunded, whoever registers it, since an undone side never reveals.
    const undone = settled(side) && outcome(side) !== "swapped";
    const inFlight = (channelId: Hex) => {
      const key = lower(t.hashlock);
      return engine.updater(channelId).inFlight?.batch.some((q) => q.change.kind === "add" && lower(q.change.lock.hashlock) === key) === true;
    };
    const pending = undone && (inFlight(t.source.channelId) || inFlight(t.target.channelId));
    if (settled(side) && !pending) {
      return outcome(side) === "swapped" ? { kind: "done", outcome: "swapped" } : { kind: "done", outcome: "aborted", reason: "undone off chain" };
    }
    if (side.cancelled || settled(side)) return { kind: "cancelling" };
    const both = (s: SwapSide["source"]) => s === "locked" || s === "paid";
    if (!both(side.source) || !both(side.target)) return { kind: "agreed" };
    const out = side.role === "initiator" ? side.revealed : side.secret !== undefined;
    return { kind: out ? "revealed" : "locked" };
  }

  /** Writes the swap's phase row if its phase changed (in the step under way) and reports it once on disk. */
  private record(engine: Counterparty, side: SwapSide) {
    const row = this.ctx.o.store.swap<SwapProgress>(side.terms.swapId);
    if (row !== undefined && lower(row.terms.hashlock) !== lower(side.terms.hashlock)) return; // another swap's row
    const before = row?.phase.phase;
    if (before?.kind === "done" || before?.kind === "settlingOnChain") return; // the chain decides from there
    const phase = this.phaseOf(engine, side);
    if (before === undefined || !samePhase(before, phase)) this.enter(side.terms.swapId, side.role, side.terms, phase);
    this.track(engine, side);
  }

  /**
   * Brings the swap's two transfer records up to date from the co-signed heads: a lock in the head is pending from
   * the state that introduced it; once a co-signed head resolved it, the transfer is confirmed, paid or refunded.
   */
  private track(engine: Counterparty, side: SwapSide) {
    const { store } = this.ctx.o;
    const t = side.terms;
    const known = new Map(store.transfers(t.swapId).map((r) => [lower(r.channelId), r] as const));
    for (const [channelId, stand] of [[t.source.channelId, side.source], [t.target.channelId, side.target]] as const) {
      if (stand === "none") continue;
      const seq = engine.head(channelId).seq;
      const had = known.get(lower(channelId));
      if (stand === "locked") {
        if (had === undefined) store.saveTransfer({ swapId: t.swapId, channelId, hashlock: t.hashlock, lockSeq: seq, resolvedSeq: undefined, confirmed: false, outcome: "pending" });
      } else if (had === undefined || !had.confirmed) {
        store.saveTransfer({ swapId: t.swapId, channelId, hashlock: t.hashlock, lockSeq: had?.lockSeq ?? seq, resolvedSeq: seq, confirmed: true, outcome: stand });
      }
    }
  }

  private enter(swapId: Hex, role: SwapSide["role"], terms: SwapTerms, phase: SwapPhase) {
    this.ctx.o.store.saveSwap(swapId, role, terms, this.ctx.progress(phase), phase.kind !== "done");
    this.ctx.emitPhase(swapId, role, phase);
  }

  // ---------------------------------------------------------------- ticks

  /**
   * One step of one pair not on chain: resends what is unanswered, proposals too while their timing still holds
   * (given up after the confirmation timeout or once too late), undoes in one engine step the swaps that made no
   * progress within it, and shows as done the swaps whose undone lock can no longer be co-signed. Runs inside a
   * protocol step; `times` are the pair's chain times read before the tick's turn, `active` the swaps in progress.
   */
  tickStep(engine: Counterparty, now: number, times: ReadonlyMap<string, bigint> | undefined, active: readonly SwapView[]) {
    const { ctx } = this;
    const resend: { terms: SwapTerms; termsSig: Hex }[] = [];
    const cancels: Hex[] = [];
    for (const view of active) {
      if (!this.owns(view.terms) || this.engine(view.terms.source.channelId) !== engine) continue;
      const { phase, since, sentAt } = view.progress;
      const timedOut = ctx.waited(since, now, ctx.o.confirmationTimeoutMs);
      if (phase.kind === "proposed") {
        let tooLate: string | undefined;
        const [nowT, nowS] = [times?.get(`${view.terms.target.chainId}`), times?.get(`${view.terms.source.chainId}`)];
        if (nowT !== undefined && nowS !== undefined) {
          try {
            ctx.validateTerms(view.terms, nowT, nowS);
          } catch (error) {
            if (!(error instanceof ChannelSdkError)) throw error;
            tooLate = error.message;
          }
        }
        if (timedOut || tooLate !== undefined) {
          this.enter(view.swapId, "initiator", view.terms, { kind: "done", outcome: "aborted", reason: tooLate ?? "counterparty silent" });
        } else if (now - sentAt >= ctx.o.resendIntervalMs || sentAt < ctx.startedAt) {
          ctx.o.store.saveSwap(view.swapId, view.role, view.terms, { ...view.progress, sentAt: now }, true);
          resend.push({ terms: view.terms, termsSig: ctx.o.signer.sign(termsDigest(view.terms)) });
        }
        continue;
      }
      // A swap that made no progress within the timeout is undone (a no-op once it can only complete).
      if ((phase.kind === "agreed" || phase.kind === "locked") && timedOut) cancels.push(view.terms.hashlock);
      // A swap being undone whose lock may no longer be co-signed shows as done.
      if (phase.kind === "cancelling") {
        const side = engine.side(view.terms.hashlock);
        if (side !== undefined) this.record(engine, side);
      }
    }
    if (resend.length > 0) this.sendProposals(resend);
    if (cancels.length > 0) this.run(engine, () => engine.cancelAll(cancels));
    for (const id of engine.channels) this.offerDeposits(engine, id);
    this.run(engine, () => engine.tick());
    this.done();
  }

  /** Every counterparty's engine. */
  pairs(): Counterparty[] {
    return [...this.peers.values()];
  }

  /** Whether a channel has a final state both signed: nothing is left to do on it but land it. */
  private finished(engine: Counterparty, channelId: Hex): boolean {
    return engine.head(channelId).isFinal;
  }

  /**
   * Whether `channelId` went on chain: force-closed, or closed without a final state of ours (nothing is signed on
   * it any more; its locks settle on chain).
   */
  onChain(channelId: Hex): boolean {
    const engine = this.engines.get(lower(channelId));
    const op = this.ctx.o.store.channelOp(channelId)?.kind;
    return op === "forceClose" || (op === "closed" && engine !== undefined && !engine.signedFinal(channelId));
  }

  /** The channels of `engine` still followed off chain: neither on chain nor finished. */
  private live(engine: Counterparty): Hex[] {
    return engine.channels.filter((id) => !this.onChain(id) && !this.finished(engine, id) && this.ctx.o.store.channelOp(id)?.kind !== "closed");
  }

  /**
   * What a tick needs of the chains for each counterparty: its live channels' status and each chain's time. Read
   * before the tick takes its turn among the steps, so that a slow chain node never holds up the messages (a
   * counterparty whose reads failed carries the error into the tick).
   *
   * Each chain is followed (following.ts): its head once (its time), its hub's and registry's logs once per new
   * block, and a channel's state read only when a log concerns it. Idle, a tick costs one request per chain, and
   * one more per new block, however many channels there are.
   */
  async readChains(): Promise<PairFacts> {
    const facts: PairFacts = new Map();
    const pairs: [Counterparty, Hex[]][] = [];
    const chainIds = new Set<bigint>();
    for (const engine of this.peers.values()) {
      const live = this.live(engine);
      if (live.length === 0) continue;
      pairs.push([engine, live]);
      for (const id of engine.channels) chainIds.add(this.ctx.book.record(id).ref.chainId);
    }
    const heads = await this.following.step(chainIds);
    const followed = new Set<string>();
    for (const [engine, live] of pairs) {
      const byChain = new Map<bigint, Hex[]>();
      for (const id of live) {
        const { chainId } = this.ctx.book.record(id).ref;
        byChain.set(chainId, [...(byChain.get(chainId) ?? []), id]);
        followed.add(lower(id));
      }
      // Each chain of the pair on its own: one that does not answer leaves its channels out of this tick (the next
      // reads them again, and the tick reports the error) while the pair's channels on its other chains are looked
      // after. A chain the guard holds is read as any other: what goes on chain defends what was signed before.
      const status = new Map<string, string>();
      const now = new Map<string, bigint>();
      let failed: Error | undefined;
      for (const [chainId, ids] of byChain) {
        try {
          const head = heads.get(chainId);
          if (head === undefined) continue; // joined after the chains were listed: the next tick reads it
          if (head instanceof Error) throw head;
          const read = new Map<string, string>();
          const uncounted: Hex[] = [];
          for (const id of ids) {
            const info = await this.following.info(chainId, id);
            read.set(lower(id), info.status);
            if (applicable(engine.head(id), { kind: "deposits", deposits: info.deposits })) uncounted.push(id);
            else this.heldAt.delete(lower(id));
          }
          // Deposits the head does not count by the latest block: what the final block holds (both sides read it, to
          // offer a count and to sign one), read again as the final block moves on.
          await this.readHeld(uncounted, heads);
          now.set(`${chainId}`, head.timestamp);
          for (const [id, st] of read) status.set(id, st);
        } catch (error) {
          failed ??= error instanceof Error ? error : new Error(String(error));
        }
      }
      facts.set(engine, status.size === 0 && failed !== undefined ? failed : { status, now, failed });
    }
    this.following.keepOnly(followed);
    return facts;
  }

  /**
   * The chain side of a tick (outside any step): for each counterparty, the channels that must go on chain now (from
   * `facts`, read before the tick's turn) with every channel an open swap ties to them, and for channels on chain,
   * the swaps that are done once all their channels are closed.
   */
  async tickChain(facts: PairFacts, each: (channelId: Hex, work: () => Promise<void>) => Promise<void>) {
    for (const engine of this.peers.values()) {
      await each(engine.channels[0]!, async () => {
        await this.settleOnChain(engine);
        const known = facts.get(engine);
        if (known instanceof Error) throw known;
        if (known === undefined) return; // joined after the reads: the next tick looks
        const found = await this.chainReason(engine, known);
        if (found !== undefined) await this.goOnChain(engine, found.reason, found.channels);
        if (known.failed !== undefined) throw known.failed; // reported once the other chains were looked after
      });
    }
  }

  /** Why channels of `engine` must go on chain now, if any must, and which (before ties). */
  private async chainReason(
    engine: Counterparty,
    facts: Readonly<{ status: ReadonlyMap<string, string>; now: ReadonlyMap<string, bigint> }>,
  ): Promise<{ reason: OnChainReason; channels: Hex[] } | undefined> {
    const { ctx } = this;
    const live = this.live(engine).filter((id) => facts.status.has(lower(id)));
    // A channel closing cooperatively leaves the open state without a dispute: its final state co-signed, or closed on
    // chain after we signed one (the other landed it before our copy of its signature came).
    const cooperative = (id: Hex) => engine.head(id).isFinal || (facts.status.get(lower(id)) === "closed" && engine.signedFinal(id));
    const disputed = live.filter((id) => facts.status.get(lower(id)) !== "open" && !cooperative(id));
    if (disputed.length > 0) return { reason: "disputed", channels: disputed };
    const timeOf = (chainId: bigint) => facts.now.get(`${chainId}`)!;
    for (const id of live) {
      const { ref } = ctx.book.record(id);
      const u = engine.updater(id);
      // A batch of ours still unanswered when one of its locks expired: only the chain can show which state holds.
      if (u.inFlight?.state.locks.some((l) => timeOf(ref.chainId) > l.expiry) === true) return { reason: "lockExpired", channels: [id] };
      const me = u.me;
      for (const lock of engine.head(id).locks) {
        if (timeOf(ref.chainId) > lock.expiry) return { reason: "lockExpired", channels: [id] }; // its refund was not co-signed in time
        const paysMe = lock.sender !== me;
        if (paysMe && lock.expiry - timeOf(ref.chainId) <= ctx.o.onChainMargin && ctx.o.store.secret(lock.hashlock) !== undefined) return { reason: "nearExpiry", channels: [id] };
      }
    }
    const liveSet = new Set(live.map(lower));
    for (const side of engine.openSwaps()) {
      const t = side.terms;
      if (!liveSet.has(lower(t.source.channelId)) || !liveSet.has(lower(t.target.channelId))) continue; // on chain already
      // Past its source expiry a swap can no longer finish off chain: a batch of ours with its lock went unanswered,
      // and only the chain can show which state holds.
      if (timeOf(t.source.chainId) > t.sourceExpiry) return { reason: "lockExpired", channels: [t.source.channelId, t.target.channelId] };
      // A responder whose T lock nears its expiry watches the target chain: the initiator may claim it there.
      if (side.role !== "responder" || side.secret !== undefined || side.target !== "locked") continue;
      if (t.targetExpiry - timeOf(t.target.chainId) > ctx.o.onChainMargin) continue;
      const secret = await ctx.chain(t.target.chainId).findSecret(t.hashlock);
      if (secret !== undefined) {
        ctx.keepSecret(t.hashlock, secret, "may"); // public on T
        return { reason: "secretOnChain", channels: [t.source.channelId, t.target.channelId] };
      }
    }
    return undefined;
  }

  /**
   * `channels` and every channel of `engine` an open swap ties to them, transitively: what goes on chain together
   * (a swap's two locks settle by the same secret, so neither leg stays off chain while the other is on it).
   */
  /** What the hub stores about a channel at the latest block, as followed (read again once a log concerns it). */
  followedInfo(chainId: bigint, channelId: Hex): Promise<ChannelInfo> {
    return this.following.info(chainId, channelId);
  }

  /** The deposits the hub held at the final block, for a channel whose head did not count them at the last tick. */
  finalDeposits(channelId: Hex): readonly [bigint, bigint] | undefined {
    return this.held.get(lower(channelId));
  }

  tied(engine: Counterparty, channels: readonly Hex[]): Hex[] {
    const out = new Map(channels.map((id) => [lower(id), this.ctx.book.record(id).ref.channelId] as const));
    const open = engine.openSwaps();
    for (let grew = true; grew; ) {
      grew = false;
      for (const side of open) {
        const ids = [side.terms.source.channelId, side.terms.target.channelId];
        if (!ids.some((id) => out.has(lower(id))) || ids.every((id) => out.has(lower(id)))) continue;
        for (const id of ids) out.set(lower(id), this.ctx.book.record(id).ref.channelId);
        grew = true;
      }
    }
    return [...out.values()];
  }

  /**
   * Takes `channels` on chain, with every channel an open swap ties to them: the open swaps using them are marked
   * settling, our proposals using them given up, and each is force-closed with the newest co-signed state (secrets
   * owed to us registered first); later ticks answer and settle them (close.ts). The counterparty's other channels
   * go on off chain.
   */
  async goOnChain(engine: Counterparty, reason: OnChainReason, channels: readonly Hex[]) {
    const { ctx } = this;
    const all = this.tied(engine, channels);
    const ids = new Set(all.map(lower));
    ctx.o.store.transaction(() => {
      for (const view of ctx.activeSwaps()) {
        const t = view.terms;
        // A swap in progress using a channel that goes on chain settles there, on those of its channels that do.
        const mine = [t.source.channelId, t.target.channelId].filter((id) => ids.has(lower(id)));
        const kind = view.progress.phase.kind;
        if (mine.length === 0 || kind === "proposed" || kind === "settlingOnChain" || !engine.has(t.source.channelId)) continue;
        this.enter(view.swapId, view.role, t, { kind: "settlingOnChain", reason, channels: mine });
      }
      this.abortProposals(engine, `channel on chain: ${reason}`, all); // proposals not agreed yet are off
    });
    for (const id of all) await close.forceClose(ctx, id);
  }

  /**
   * Channels of `engine` on chain: every channel an open swap ties to them goes on chain too (a counterparty's force
   * close of one, say), and a swap settling on chain is done once all its channels are closed.
   */
  private async settleOnChain(engine: Counterparty) {
    const { ctx } = this;
    const onChain = engine.channels.filter((id) => this.onChain(id));
    if (onChain.length === 0) return;
    for (const id of this.tied(engine, onChain)) {
      if (ctx.o.store.channelOp(id) === undefined) await close.forceClose(ctx, id);
    }
    const closed = (id: Hex) => ctx.o.store.channelOp(id)?.kind === "closed";
    const open = new Set(engine.openSwaps().map((s) => lower(s.terms.hashlock)));
    ctx.o.store.transaction(() => {
      for (const view of ctx.activeSwaps()) {
        const t = view.terms;
        if (!engine.has(t.source.channelId) || !engine.has(t.target.channelId)) continue;
        let phase = view.progress.phase;
        // Its channels on chain: both for a swap still open here (its locks settle by one secret), else the one of
        // them that went (a swap undone off chain whose lock was in a batch that channel's chain now decides).
        const onChain = [t.source.channelId, t.target.channelId].filter((id) => this.onChain(id));
        if (onChain.length > 0 && phase.kind !== "settlingOnChain" && phase.kind !== "proposed") {
          phase = { kind: "settlingOnChain", reason: "disputed", channels: open.has(lower(t.hashlock)) ? [t.source.channelId, t.target.channelId] : onChain };
          this.enter(view.swapId, view.role, t, phase);
        }
        if (phase.kind === "settlingOnChain" && phase.channels.every(closed)) this.enter(view.swapId, view.role, t, { kind: "done", outcome: "settledOnChain" });
      }
    });
  }
}

/** Whether a peer's message (not checked yet) carries a count of deposits to sign or to put in a batch. */
function countsDeposits(message: unknown): boolean {
  const changes = typeof message === "object" && message !== null ? (message as { changes?: unknown }).changes : undefined;
  return Array.isArray(changes) && changes.some((c: unknown) => typeof c === "object" && c !== null && (c as { kind?: unknown }).kind === "deposits");
}

function samePhase(a: SwapPhase, b: SwapPhase): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "done" && b.kind === "done") return a.outcome === b.outcome;
  return true;
}
