import { hubDomain, stateDigest } from "../core/eip712.js";
import { ChannelSdkError } from "../core/errors.js";
import { requireSignedBy } from "../core/signing.js";
import { checkState, openingState, sameState } from "../core/state.js";
import { sameAddress, type ChannelState, type Hex, type ParticipantIndex } from "../core/types.js";
import type { ChannelRecord, CoSignedState, Store } from "../store/store.js";
import { ChannelFrozenError } from "./errors.js";
import type { StateSigner } from "./signer.js";

/** The channel is not one this client knows. */
export class UnknownChannelError extends ChannelSdkError {
  constructor(readonly channelId: string) {
    super(`Channel ${channelId} is not known to this client; add it first.`);
  }
}

/** A channel's newest co-signed state in `store`, or its opening deposits when nothing was co-signed yet. */
export function storedHead(store: Store, record: ChannelRecord): ChannelState {
  return store.latestCoSigned(record.ref.channelId)?.state ?? openingState(record.ref.channelId, record.openingDeposits);
}

/**
 * The client's view of its channels: their heads, and the only place states get signed, so that every
 * signature passes the store's double-sign guard before it exists.
 */
export class ChannelBook {
  private readonly digests = new WeakMap<ChannelState, Hex>();

  constructor(
    private readonly store: Store,
    private readonly signer: Pick<StateSigner, "address" | "sign">,
    /** Told of every state this client signs and every co-signed state, once stored (a watchtower feed). */
    private readonly feed: Readonly<{
      signed?: (state: ChannelState, signature: Hex) => void;
      cosigned?: (cosigned: CoSignedState) => void;
    }> = {},
    /**
     * The latest lock expiry this client signs now on a chain (its time plus the longest lock the timing bounds
     * allow), or undefined while its time is unknown. Without it, locks are checked against nothing.
     */
    private readonly lockHorizon?: (chainId: bigint) => bigint | undefined,
  ) {}

  add(record: ChannelRecord): void {
    if (!sameAddress(record.params.participants[record.myIndex], this.signer.address)) {
      throw new ChannelSdkError(`this client's key is not participant ${record.myIndex} of channel ${record.ref.channelId}`);
    }
    this.store.saveChannel(record);
  }

  record(channelId: Hex): ChannelRecord {
    const record = this.store.channel(channelId);
    if (record === undefined) throw new UnknownChannelError(channelId);
    return record;
  }

  has(channelId: Hex): boolean {
    return this.store.channel(channelId) !== undefined;
  }

  myIndex(channelId: Hex): ParticipantIndex {
    return this.record(channelId).myIndex;
  }

  /** Index of `address` among the channel's participants (throws for a stranger). */
  indexOf(channelId: Hex, address: string): ParticipantIndex {
    const index = this.record(channelId).params.participants.findIndex((p) => sameAddress(p, address));
    if (index < 0) throw new ChannelSdkError(`${address} is not a participant of channel ${channelId}`);
    return index as ParticipantIndex;
  }

  counterparty(channelId: Hex): string {
    const r = this.record(channelId);
    return r.params.participants[r.myIndex === 0 ? 1 : 0];
  }

  /** The newest co-signed state, or the opening deposits when nothing was co-signed yet. */
  head(channelId: Hex): ChannelState {
    return storedHead(this.store, this.record(channelId));
  }

  latest(channelId: Hex): CoSignedState | undefined {
    return this.store.latestCoSigned(channelId);
  }

  /** A state known by sequence number: co-signed, or signed by this client alone. */
  stateAt(channelId: Hex, seq: bigint): ChannelState | undefined {
    return this.store.coSignedAt(channelId, seq)?.state ?? this.store.ownSignedAt(channelId, seq)?.state;
  }

  /** The EIP-712 digest of `state` on its channel's hub (remembered per state object: states are immutable). */
  digest(state: ChannelState): Hex {
    const known = this.digests.get(state);
    if (known !== undefined) return known;
    const { ref } = this.record(state.channelId);
    const digest = stateDigest(hubDomain(ref.chainId, ref.hub), state);
    this.digests.set(state, digest);
    return digest;
  }

  /**
   * Signs `state` as this client (once per sequence number, ever). A state with a lock is checked against the lock
   * horizon first: no lock outlives what the timing bounds allow, whatever the terms said. Nothing new is signed on a
   * channel the store got frozen from a backup copy (ChannelFrozenError): every path that signs a state comes here.
   */
  sign(state: ChannelState): Hex {
    const frozen = this.store.frozenSince(state.channelId);
    if (frozen !== undefined) {
      // A channel of a restored backup copy: only a state the copy shows signed is signed again (a resend).
      const before = this.store.ownSignedAt(state.channelId, state.seq);
      if (before === undefined || !sameState(before.state, state)) throw new ChannelFrozenError(state.channelId, frozen);
    }
    if (state.locks.length > 0 && this.lockHorizon !== undefined) this.requireWithinHorizon(state);
    const digest = this.digest(state);
    const signature = this.store.recordOwnSignature(state, digest, () => this.signer.sign(digest));
    this.feed.signed?.(state, signature);
    return signature;
  }

  /**
   * Throws unless every lock of `state` expires within the lock horizon. A state signed before (a resend) passes
   * whatever the clock says now: the check held when it was signed. The store is read only on that rare path.
   */
  private requireWithinHorizon(state: ChannelState): void {
    const chainId = this.record(state.channelId).ref.chainId;
    const horizon = this.lockHorizon?.(chainId);
    try {
      if (horizon === undefined) throw new ChannelSdkError(`the time of chain ${chainId} is not known yet; read it before signing a lock`);
      checkState(state, horizon);
    } catch (error) {
      const before = this.store.ownSignedAt(state.channelId, state.seq);
      if (before === undefined || !sameState(before.state, state)) throw error;
    }
  }

  /** Throws unless the counterparty signed `state`. */
  requireCounterSigned(state: ChannelState, signature: string): void {
    requireSignedBy(`state ${state.seq} of channel ${state.channelId}`, this.counterparty(state.channelId), this.digest(state), signature);
  }

  /** Throws unless this client signed `state` (a state shown back by the counterparty, checked against our own key). */
  requireOwnSigned(state: ChannelState, signature: string): void {
    requireSignedBy(`state ${state.seq} of channel ${state.channelId}`, this.signer.address, this.digest(state), signature);
  }

  /** Keeps a co-signed state whose signatures are already in participant order. */
  keep(cosigned: CoSignedState): void {
    this.store.saveCoSigned(cosigned);
    this.feed.cosigned?.(cosigned);
  }
}
