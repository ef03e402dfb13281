import type { EnforcementStep } from "./enforcer.js";
import type { SwapTerms } from "../core/swap.js";
import type { Hex } from "../core/types.js";

export type SwapRole = "initiator" | "responder";

/** Why a swap left the off-chain path. */
export type OnChainReason =
  /** The counterparty did not confirm within the confirmation timeout. */
  | "counterpartySilent"
  /** A lock this client must claim is close to its expiry. */
  | "nearExpiry"
  /** The secret was revealed on chain (the initiator claimed on the target chain). */
  | "secretOnChain"
  /** The counterparty's lock expired unrevealed: refunds go through the chain. */
  | "lockExpired"
  /** A channel of the swap was force-closed. */
  | "disputed";

/**
 * Where a swap stands, the same for both roles, through its four phases (docs/SWAP.md). Negotiation: `proposed`
 * (the initiator's terms sent), `agreed` (both signed the terms; its locks are being added). Execution: `locked`
 * (both locks co-signed, the secret not yet out), `revealed` (the initiator sent the secret, or the responder has it:
 * the swap can only complete; both locks are being paid in co-signed batches), or `cancelling` (undone off chain
 * before its reveal). Batch settlement: `settlingOnChain` (the counterparty did not co-sign in time). Asset
 * settlement: `done`, with the outcome (`swapped` off chain, `aborted`, or `settledOnChain`).
 */
export type SwapPhase =
  | { kind: "proposed" }
  | { kind: "agreed" }
  | { kind: "locked" }
  | { kind: "revealed" }
  | { kind: "cancelling" }
  | { kind: "settlingOnChain"; reason: OnChainReason; channels: readonly Hex[] }
  | { kind: "done"; outcome: "swapped" | "aborted" | "settledOnChain"; reason?: string };

/** A swap as the store keeps it: the phase, when it was entered, and which messages were last sent. */
export type SwapProgress = Readonly<{
  phase: SwapPhase;
  /** Client clock (ms) when the phase was entered: timeouts count from here. */
  since: number;
  /** Client clock (ms) of the last (re)send of its proposal. */
  sentAt: number;
}>;

export type SwapView = Readonly<{ swapId: Hex; role: SwapRole; terms: SwapTerms; progress: SwapProgress }>;

/** Progress a client reports (the demo prints these). */
export type ClientEvent =
  | { type: "phase"; swapId: Hex; role: SwapRole; phase: SwapPhase }
  | { type: "chain"; swapId: Hex | undefined; channelId: Hex; step: EnforcementStep }
  | { type: "closed"; channelId: Hex; cooperative: boolean }
  /** A channel frozen from a restored copy took the counterparty's newest co-signed state, and signs again from `floor`. */
  | { type: "caughtUp"; channelId: Hex; seq: bigint; floor: bigint; balances: readonly [bigint, bigint] }
  /** The counterparty, restored from a copy, asked a channel to catch up: it was shown state `seq`, numbered from `floor` on. */
  | { type: "peerResumed"; channelId: Hex; seq: bigint; floor: bigint }
  /** A tick's work on one swap or channel failed; the rest of the tick went on (`tick` rejects at its end). */
  | { type: "tickError"; swapId?: Hex; channelId?: Hex; error: string }
  /**
   * Messages for the counterparty could not be sent (a later tick resends them): the channels they were for, why, and
   * `notConnected` when the transport has no address for the peer at all (a setup mistake: `transport.connect`).
   */
  | { type: "sendFailed"; channelIds: readonly Hex[]; error: string; notConnected: boolean }
  /** A deposit update was co-signed: the ledger now counts these deposits. */
  | { type: "deposits"; channelId: Hex; deposits: readonly [bigint, bigint] }
  /** A proposal refused, `by` us as responder or by the counterparty (ours): `counterparty`, the other party's address. */
  | { type: "rejected"; swapId: Hex; reason: string; counterparty?: string; by: "us" | "counterparty" };

export function isActive(phase: SwapPhase): boolean {
  return phase.kind !== "done";
}
