/**
 * The records the store keeps, and how they map to rows: ids as lower-case keys, sequence numbers as decimal text,
 * flags as 0/1, and each record's body as JSON with its bigints intact (core/codec.ts).
 */
import type { ChannelRef, SwapTerms } from "../core/swap.js";
import type { ChannelParams, ChannelState, Hex, ParticipantIndex } from "../core/types.js";

/** A channel this client is a participant of. */
export type ChannelRecord = Readonly<{
  ref: ChannelRef;
  params: ChannelParams;
  myIndex: ParticipantIndex;
  /** On-chain deposits when the channel was added: the opening state until a state is co-signed. */
  openingDeposits: readonly [bigint, bigint];
}>;

/** A state with both participants' signatures, in participant order. */
export type CoSignedState = Readonly<{ state: ChannelState; signatures: readonly [Hex, Hex] }>;

/** A conditional transfer this client tracks: the state that introduced it, and whether it is confirmed. */
export type TransferRecord = Readonly<{
  swapId: Hex;
  channelId: Hex;
  hashlock: Hex;
  /** Sequence number of the co-signed state that introduced the lock. */
  lockSeq: bigint;
  /** Sequence number of the co-signed state that resolved it, once there is one. */
  resolvedSeq: bigint | undefined;
  /** Set when the resolving state is co-signed: only confirmed transfers count as done. */
  confirmed: boolean;
  outcome: "pending" | "paid" | "refunded";
}>;

/**
 * What a channel is doing besides swaps: a cooperative close or a deposit update being co-signed, a force close
 * under way, or closed for good. A channel with an operation takes no swap. `since` and `sentAt` are client clock
 * (ms) readings, as a swap's progress keeps them.
 */
export type ChannelOp = Readonly<{
  kind: "close" | "deposits" | "forceClose" | "closed";
  /** Who asked: this client ("requester") or the counterparty ("responder"). */
  role: "requester" | "responder";
  /** Sequence number of the state the operation co-signs (0 for a force close or a closed channel). */
  seq: bigint;
  since: number;
  sentAt: number;
}>;

/** A swap as its row decodes: the role and terms written once, and the progress `phase` each step rewrites. */
export type SwapEntry<P = unknown> = { role: "initiator" | "responder"; terms: SwapTerms; phase: P };

/** An id (channel, session, hashlock, digest) as a key column holds it: hex in lower case. */
export function key(hex: string): string {
  return hex.toLowerCase();
}

/** A sequence number as the `seq` key columns hold it (decimal text: exact however large). */
export function seqText(seq: bigint): string {
  return seq.toString();
}

/** A flag column's value. */
export function flag(on: boolean): 0 | 1 {
  return on ? 1 : 0;
}
