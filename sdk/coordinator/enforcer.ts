import { ChainCallError, type HubAdapter } from "../chain/hub.js";
import { openingState } from "../core/state.js";
import type { ChannelState, Hex } from "../core/types.js";
import type { ChannelRecord, CoSignedState } from "../store/store.js";

/** What enforcement reads about a channel: the client's ChannelBook, or a watchtower's copy of it. */
export interface ChannelLedger {
  record(channelId: Hex): ChannelRecord;
  latest(channelId: Hex): CoSignedState | undefined;
  stateAt(channelId: Hex, seq: bigint): ChannelState | undefined;
}

export type EnforcementOptions = Readonly<{
  /** Force-close an open channel (a participant may; a watchtower may not, and only answers disputes). */
  mayForceClose?: boolean;
  /** Seconds past a lock's expiry before counting it refundable (covers a chain clock running ahead). */
  clockSkewSeconds?: bigint;
}>;

/** What one enforcement step did, for progress reports. */
export type EnforcementStep =
  /** Force-closed with state `seq`, after registering the secrets of the locks it pays us (`revealed`). */
  | { kind: "forceClosed"; seq: bigint; revealed: readonly Hex[] }
  | { kind: "challenged"; seq: bigint; stale: bigint }
  /** Secrets registered in one transaction (`revealMany` when there are several), in the channel's lock order. */
  | { kind: "revealed"; hashlocks: readonly Hex[] }
  | { kind: "settled"; seq: bigint }
  | { kind: "waiting"; until: bigint; why: "challengePeriod" | "lockExpiry" | "open" }
  | { kind: "closed" };

/**
 * One step of enforcing a channel on chain with this client's newest co-signed state (batch settlement):
 * force-close if still open, answer a stale registered state, register secrets of locks this client receives
 * before they expire, and settle every lock in one call once the deadline has passed and each lock is decided.
 * Idempotent: call it again until it reports `closed`.
 */
export async function enforceChannel(
  book: ChannelLedger,
  chain: HubAdapter,
  channelId: Hex,
  findSecret: (hashlock: Hex) => Promise<Hex | undefined>,
  options: EnforcementOptions = {},
): Promise<EnforcementStep> {
  const { params, myIndex } = book.record(channelId);
  const latest = book.latest(channelId);
  const skew = options.clockSkewSeconds ?? 0n;
  const info = await chain.channelInfo(channelId);
  if (info.status === "closed") return { kind: "closed" };
  if (info.status === "open") {
    if (options.mayForceClose === false) return { kind: "waiting", until: 0n, why: "open" };
    // Secrets of locks this client receives are registered first: delta budgets one inclusion for them, so they
    // must not wait behind the force close.
    const revealed = await revealOwedSecrets(latest?.state, myIndex, chain, findSecret, await chain.now());
    await chain.forceClose(params, latest);
    return { kind: "forceClosed", seq: latest?.state.seq ?? 0n, revealed };
  }

  const now = await chain.now();
  if (latest !== undefined && latest.state.seq > info.seq && now < info.deadline) {
    await chain.challenge(params, latest, { deadline: info.deadline });
    return { kind: "challenged", seq: latest.state.seq, stale: info.seq };
  }
  // Only a state this client signed can be registered; not having it means the store is older than the chain (a
  // restored copy, its watchtower's store lost too). A state with no locks is rebuilt from the hub's own event and
  // checked against the hash the hub holds; one with locks can be settled only by whoever holds its locks.
  const registered: ChannelState | undefined =
    info.seq === 0n
      ? openingState(channelId, info.deposits)
      : (book.stateAt(channelId, info.seq) ?? (await chain.registeredState(channelId, info, params.challengePeriod)));
  if (registered === undefined) {
    throw new Error(
      `channel ${channelId}: registered state ${info.seq} is not in the store, and the hub's event of it shows locks (or was not found): ` +
        "its settlement needs those locks, which the peer or a watchtower holding that state has",
    );
  }

  const revealed = await revealOwedSecrets(registered, myIndex, chain, findSecret, now);
  if (revealed.length > 0) return { kind: "revealed", hashlocks: revealed };

  if (now < info.deadline) return { kind: "waiting", until: info.deadline, why: "challengePeriod" };
  for (const lock of registered.locks) {
    const revealedAt = await chain.revealedAt(lock.hashlock);
    const paid = revealedAt !== 0n && revealedAt <= lock.expiry;
    if (!paid && now <= lock.expiry + skew) return { kind: "waiting", until: lock.expiry + skew + 1n, why: "lockExpiry" };
  }
  try {
    await chain.settle(params, registered);
  } catch (error) {
    // Someone else (the counterparty, a watchtower) may have settled first: that is success too.
    if (error instanceof ChainCallError && (await chain.channelInfo(channelId)).status === "closed") {
      return { kind: "closed" };
    }
    throw error;
  }
  return { kind: "settled", seq: registered.seq };
}

/**
 * Registers the known secrets of `state`'s live locks owed to participant `myIndex` that the chain's registry does
 * not have yet, in one transaction: `reveal` for one secret, `revealMany` in lock order for several (one base fee,
 * and the registry records them as revealed together, so settling the channel reads one word for all of them).
 * The transaction races the earliest expiry among them. Returns their hashlocks.
 */
async function revealOwedSecrets(
  state: ChannelState | undefined,
  myIndex: number,
  chain: HubAdapter,
  findSecret: (hashlock: Hex) => Promise<Hex | undefined>,
  now: bigint,
): Promise<Hex[]> {
  const owed: { hashlock: Hex; secret: Hex; expiry: bigint }[] = [];
  for (const lock of state?.locks ?? []) {
    const receiver = lock.sender === 0 ? 1 : 0;
    if (receiver !== myIndex || now > lock.expiry) continue;
    if ((await chain.revealedAt(lock.hashlock)) !== 0n) continue;
    const secret = await findSecret(lock.hashlock);
    if (secret === undefined) continue;
    owed.push({ hashlock: lock.hashlock, secret, expiry: lock.expiry });
  }
  await revealSecrets(chain, owed);
  return owed.map((o) => o.hashlock);
}

/**
 * Registers `secrets` on `chain` in one transaction, `revealMany` when there are several (in the order given),
 * mined by the earliest of their locks' expiries. Nothing to send for none.
 */
export async function revealSecrets(chain: HubAdapter, secrets: readonly { secret: Hex; expiry: bigint }[]): Promise<void> {
  const first = secrets[0];
  if (first === undefined) return;
  const deadline = secrets.reduce((min, s) => (s.expiry < min ? s.expiry : min), first.expiry);
  if (secrets.length === 1) await chain.reveal(first.secret, { deadline });
  else await chain.revealMany(secrets.map((s) => s.secret), { deadline });
}
