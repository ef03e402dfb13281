import type { Log } from "ethers";

import { FOLLOW_MAX_RANGE } from "../chain/follower.js";
import type { HubAdapter } from "../chain/hub.js";
import { hubDomain, stateDigest } from "../core/eip712.js";
import { ChannelSdkError } from "../core/errors.js";
import type { ChannelState, Hex } from "../core/types.js";
import { enforceChannel, revealSecrets, type ChannelLedger, type EnforcementStep } from "../coordinator/enforcer.js";
import type { ChannelRecord, CoSignedState, Store } from "../store/store.js";

/** How the watchtower treats one chain. */
export type ChainWatch = Readonly<{
  chain: HubAdapter;
  /** Blocks an event must be under before the cursor passes it: a reorg above that depth is read again. */
  confirmations: number;
  /** Seconds this chain's clock may run ahead: locks count as refundable only that long after expiry. */
  clockSkewSeconds: bigint;
  /**
   * A lock owed to the guarded participant that is still pending this close to its expiry gets its secret
   * registered even if nobody revealed it elsewhere (the client may be down). Earlier, only a secret already
   * revealed on another chain is carried.
   */
  claimWindowSeconds: bigint;
}>;

export type WatchtowerEvent =
  | { type: "dispute"; channelId: Hex; seq: bigint; by: string }
  | { type: "secret"; hashlock: Hex; chainId: bigint }
  | { type: "carried"; hashlock: Hex; toChainId: bigint }
  | { type: "enforced"; channelId: Hex; step: EnforcementStep };

/**
 * Guards channels for one participant while its client is offline: follows both chains' hub and registry events
 * from a cursor kept in its store (so a restart resumes where it stopped), answers a stale force close with the
 * newest co-signed state it was given, carries a secret revealed on one chain to the other chain's registry for
 * the guarded participant's locks, and settles disputed channels after their deadlines. It never force-closes.
 */
/**
 * Blocks the tower's cursor stays below the head at least, whatever the confirmations: its events are read again
 * for that long (one query either way), so a log an endpoint indexes some blocks late is still seen.
 */
export const TOWER_MIN_WINDOW = 64;

/** How long a poll waits for the duties it started before it returns (they go on; their chain is skipped till then). */
export const POLL_WAIT_MS = 2_000;

export class Watchtower {
  private readonly chains = new Map<bigint, ChainWatch>();
  /** Per chain: its duties started by an earlier poll and still under way. */
  private readonly busy = new Map<bigint, Promise<void>>();
  /** Per chain: the widest log query its endpoint takes, narrowed when one is refused. */
  private readonly ranges = new Map<bigint, number>();
  private readonly ledger: ChannelLedger;

  constructor(
    private readonly store: Store,
    chains: readonly ChainWatch[],
    private readonly onEvent: (event: WatchtowerEvent) => void = () => {},
  ) {
    for (const c of chains) this.chains.set(c.chain.chainId, c);
    this.ledger = {
      record: (id) => {
        const r = store.channel(id);
        if (r === undefined) throw new ChannelSdkError(`channel ${id} is not guarded by this watchtower`);
        return r;
      },
      latest: (id) => store.latestCoSigned(id),
      stateAt: (id, seq) => store.coSignedAt(id, seq)?.state ?? store.ownSignedAt(id, seq)?.state,
    };
  }

  /**
   * Waits (up to `ms`) for the duties earlier polls left running (a transaction being mined): before the tower's
   * store is closed.
   */
  async idle(ms = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.busy.values()]), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** Starts guarding a channel for the participant `record.myIndex`. */
  guard(record: ChannelRecord): void {
    if (!this.chains.has(record.ref.chainId)) throw new ChannelSdkError(`the watchtower does not follow chain ${record.ref.chainId}`);
    this.store.saveChannel(record);
  }

  /** A newer co-signed state of a guarded channel (the client sends each one it gets). */
  update(cosigned: CoSignedState): void {
    this.ledger.record(cosigned.state.channelId);
    this.store.saveCoSigned(cosigned);
  }

  /**
   * A state the guarded participant signed (the counterparty may hold it co-signed and register it, and the
   * watchtower then needs its locks to settle).
   */
  signed(state: ChannelState, signature: Hex): void {
    const { ref } = this.ledger.record(state.channelId);
    this.store.recordOwnSignature(state, stateDigest(hubDomain(ref.chainId, ref.hub), state), () => signature);
  }

  /**
   * The number of the newest co-signed state this tower holds of a channel, if any: what a client restored from an
   * old copy of its store must not catch up below (its tower's store, kept, may be newer than the copy).
   */
  newest(channelId: Hex): bigint | undefined {
    return this.store.latestCoSigned(channelId)?.state.seq;
  }

  /** Runs `feed` (states and secrets a client tells) in one transaction of the tower's store: one sync for all. */
  batch(feed: () => void): void {
    this.store.transaction(feed);
  }

  /**
   * A secret the guarded participant may reveal (carried to any chain where it is owed a lock with that hashlock).
   * A client tells the tower of a secret only once its rules let it be revealed (`RevealRule`). One the tower keeps
   * as never to be revealed stays so (`Store.adoptSecret`).
   */
  addSecret(hashlock: Hex, secret: Hex): void {
    this.store.adoptSecret(hashlock, secret, "may");
  }

  /**
   * Takes over what a client's store holds: its channels on chains this tower follows, their newest co-signed
   * and own-signed states, and the rule of every secret (`Store.adoptSecret`): the tower takes a secret only once
   * it may be revealed (an initiator's own once it revealed it), and a secret it has follows the client's word:
   * held back while the client holds it, never revealed once the client undid its swap. Idempotent; a tower next to
   * a client can call it before every poll.
   * @returns The number of channels guarded.
   */
  importFrom(client: Store): number {
    let guarded = 0;
    for (const record of client.channels()) {
      if (!this.chains.has(record.ref.chainId)) continue;
      this.guard(record);
      guarded++;
      const id = record.ref.channelId;
      const latest = client.latestCoSigned(id);
      if (latest !== undefined) this.update(latest);
      const own = client.ownSignedAt(id, client.highestOwnSeq(id));
      if (own !== undefined) this.signed(own.state, own.signature);
    }
    for (const { hashlock, secret, reveal } of client.secrets()) this.store.adoptSecret(hashlock, secret, reveal);
    return guarded;
  }

  /**
   * How many secrets this tower holds back without its client's word: "held" in its store and, if `client` is given,
   * unknown to that client's store (without one, every held secret). The tower takes a secret only once it may be
   * revealed, so these come from a store written before reveal rules (every secret in it is held, see schema.ts):
   * the tower reveals none of them until its client's store says it may (`importFrom`), or a chain shows it revealed
   * (then it is public).
   */
  heldWithoutWord(client?: Store): number {
    return this.store.heldSecrets().filter((h) => client?.knownSecret(h) === undefined).length;
  }

  /**
   * Reads new events on every chain and works out what is due, then acts on each chain on its own: its secrets due,
   * then its open disputes. A chain whose duties of an earlier poll are still under way (a transaction waiting to be
   * mined) is left to them; the poll returns once the duties it started are done or after `waitMs` (default
   * POLL_WAIT_MS), whichever is first, so one transaction that does not land never keeps the tower from another
   * chain. Each chain, each channel and each dispute on its own: a chain that does not answer never keeps the tower
   * from the others (it rejects with the first error once everything else was done or left running).
   */
  async poll(waitMs = POLL_WAIT_MS): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        errors.push(error);
      }
    };
    for (const watch of this.chains.values()) await attempt(() => this.follow(watch));
    const due = await this.secretsDue(attempt);
    const disputes = new Map<bigint, Hex[]>();
    for (const channelId of this.store.openDisputes()) {
      const { chainId } = this.ledger.record(channelId).ref;
      disputes.set(chainId, [...(disputes.get(chainId) ?? []), channelId]);
    }
    const started: Promise<void>[] = [];
    for (const chainId of this.chains.keys()) {
      const work = { secrets: due.get(chainId) ?? [], disputes: disputes.get(chainId) ?? [] };
      if (this.busy.has(chainId) || (work.secrets.length === 0 && work.disputes.length === 0)) continue;
      const task = this.actOn(chainId, work, attempt).finally(() => this.busy.delete(chainId));
      this.busy.set(chainId, task);
      started.push(task);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(started), new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    if (errors.length > 0) throw errors[0];
  }

  /** One chain's duties: the secrets due on it in one transaction, then each open dispute on it in turn. */
  private async actOn(chainId: bigint, work: { secrets: { hashlock: Hex; secret: Hex; expiry: bigint }[]; disputes: Hex[] }, attempt: (work: () => Promise<void>) => Promise<void>) {
    const watch = this.chains.get(chainId)!;
    if (work.secrets.length > 0) {
      await attempt(async () => {
        await revealSecrets(watch.chain, work.secrets);
        for (const { hashlock } of work.secrets) this.onEvent({ type: "carried", hashlock, toChainId: chainId });
      });
    }
    for (const channelId of work.disputes) {
      await attempt(async () => {
        const step = await enforceChannel(this.ledger, watch.chain, channelId, (h) => this.revealable(h), {
          mayForceClose: false,
          clockSkewSeconds: watch.clockSkewSeconds,
        });
        this.onEvent({ type: "enforced", channelId, step });
        // Resolved once the close is at the chain's final block (`confirmations` under the head): a settle a
        // reorganisation takes out before that leaves the channel disputed, and the next poll settles it again.
        if ((step.kind === "closed" || step.kind === "settled") && (await this.closedForGood(watch, channelId))) this.store.markResolved(channelId);
      });
    }
  }

  /** Whether the channel is closed at the block `confirmations` under the head. */
  private async closedForGood({ chain, confirmations }: ChainWatch, channelId: Hex): Promise<boolean> {
    const block = (await chain.provider.getBlockNumber()) - confirmations;
    return block >= 0 && (await chain.channelInfo(channelId, block)).status === "closed";
  }

  /**
   * Events since the cursor: disputes on guarded channels, and every revealed secret (it may be owed elsewhere). The
   * three kinds come in one `eth_getLogs` over both contracts (more only to catch up a long way, FOLLOW_MAX_RANGE
   * blocks a request).
   */
  private async follow({ chain, confirmations }: ChainWatch): Promise<void> {
    const head = await chain.provider.getBlockNumber();
    const from = (this.store.cursor(chain.chainId) ?? -1) + 1;
    if (from > head) return;
    const guarded = new Set(this.store.channels().filter((c) => c.ref.chainId === chain.chainId).map((c) => c.ref.channelId.toLowerCase()));
    const [closed, challenged, revealed] = [
      chain.hub.interface.getEvent("ChannelForceClosed"),
      chain.hub.interface.getEvent("ChannelChallenged"),
      chain.registry.interface.getEvent("SecretRevealed"),
    ];
    for (let start = from; start <= head; ) {
      const range = this.ranges.get(chain.chainId) ?? FOLLOW_MAX_RANGE;
      const end = Math.min(head, start + range - 1);
      let logs: Log[];
      try {
        logs = await chain.provider.getLogs({
          address: [chain.hubAddress, chain.registryAddress],
          topics: [[closed.topicHash, challenged.topicHash, revealed.topicHash]],
          fromBlock: start,
          toBlock: end,
        });
      } catch (error) {
        // An endpoint that caps the range of a query: half of it, from then on, down to a block (then its error).
        if (end === start) throw error;
        this.ranges.set(chain.chainId, Math.max(1, Math.floor((end - start + 1) / 2)));
        continue;
      }
      for (const log of logs) {
        const fromHub = log.address.toLowerCase() === chain.hubAddress.toLowerCase();
        const parsed = fromHub ? chain.hub.interface.parseLog(log) : chain.registry.interface.parseLog(log);
        if (parsed === null) continue;
        if (fromHub && (parsed.name === closed.name || parsed.name === challenged.name)) {
          const channelId = parsed.args.channelId as Hex;
          if (!guarded.has(channelId.toLowerCase())) continue;
          // Events are read again for the window below the head: a dispute is told once, when first seen. One is
          // resolved only once its close is final, so a close a reorganisation takes out finds it still open.
          if (!this.store.markDisputed(channelId)) continue;
          this.onEvent({ type: "dispute", channelId, seq: parsed.args.state.seq as bigint, by: parsed.args.by as string });
        } else if (!fromHub && parsed.name === revealed.name) {
          const hashlock = parsed.args.hashlock as Hex;
          const known = this.store.secret(hashlock) !== undefined;
          // Public now: marked so even when known, so that no client's word takes it back.
          if (this.store.publicSecret(hashlock, parsed.args.secret as Hex) && !known) this.onEvent({ type: "secret", hashlock, chainId: chain.chainId });
        }
      }
      // Everything read up to `end` was acted on; the cursor stays `confirmations` below the head (at least
      // TOWER_MIN_WINDOW blocks) so a reorg, or a log an endpoint indexes late, is read again.
      this.store.saveCursor(chain.chainId, Math.max(start - 1, Math.min(end, head - Math.max(confirmations, TOWER_MIN_WINDOW))));
      start = end + 1;
    }
  }

  /**
   * The secrets due, per chain: for every guarded channel, the pending locks of its newest co-signed state owed to
   * the guarded participant, whose secret is known and not yet registered on that chain, while the lock is live, as
   * soon as the secret is public on another chain, or once the lock is within the claim window of its expiry. The
   * secrets due on one chain go in one transaction (`revealMany` when there are several, channel by channel in lock
   * order), mined by the earliest of their expiries (`actOn`).
   */
  private async secretsDue(attempt: (work: () => Promise<void>) => Promise<void>): Promise<Map<bigint, { hashlock: Hex; secret: Hex; expiry: bigint }[]>> {
    const due = new Map<bigint, { hashlock: Hex; secret: Hex; expiry: bigint }[]>();
    for (const record of this.store.channels()) {
      const watch = this.chains.get(record.ref.chainId);
      if (watch === undefined) continue;
      const state: ChannelState | undefined = this.store.latestCoSigned(record.ref.channelId)?.state;
      // Each channel on its own (a chain that does not answer leaves its channels for the next poll).
      await attempt(async () => {
        for (const lock of state?.locks ?? []) {
          const receiver = lock.sender === 0 ? 1 : 0;
          if (receiver !== record.myIndex) continue;
          const secret = await this.revealable(lock.hashlock);
          if (secret === undefined) continue;
          const now = await watch.chain.now();
          if (now > lock.expiry) continue;
          const onChain = due.get(record.ref.chainId) ?? [];
          if (onChain.some((d) => d.hashlock.toLowerCase() === lock.hashlock.toLowerCase())) continue;
          if ((await watch.chain.revealedAt(lock.hashlock)) !== 0n) continue;
          const urgent = lock.expiry - now <= watch.claimWindowSeconds;
          if (!urgent && !(await this.publicElsewhere(lock.hashlock, record.ref.chainId))) continue;
          due.set(record.ref.chainId, [...onChain, { hashlock: lock.hashlock, secret, expiry: lock.expiry }]);
        }
      });
    }
    return due;
  }

  /**
   * The secret of `hashlock` if this tower may reveal it. One it holds back ("held": no word from its client) is
   * released only once a chain shows it revealed: public, nothing is left to keep. (A tower that read that reveal
   * before its store had reveal rules holds the secret now, and its cursor has passed the event.)
   */
  private async revealable(hashlock: Hex): Promise<Hex | undefined> {
    const known = this.store.knownSecret(hashlock);
    if (known === undefined || known.reveal === "may") return known?.secret;
    if (known.reveal === "never") return undefined;
    for (const watch of this.chains.values()) {
      if ((await watch.chain.revealedAt(hashlock)) === 0n) continue;
      this.store.publicSecret(hashlock, known.secret);
      return known.secret;
    }
    return undefined;
  }

  private async publicElsewhere(hashlock: Hex, chainId: bigint): Promise<boolean> {
    for (const [id, watch] of this.chains) {
      if (id !== chainId && (await watch.chain.revealedAt(hashlock)) !== 0n) return true;
    }
    return false;
  }
}
