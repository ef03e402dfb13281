/** A 0x-prefixed hex string. */
export type Hex = `0x${string}`;

/** An EVM address (checksummed or not). */
export type Address = string;

/** Index of a participant in a channel: 0 or 1 everywhere (balances, deposits, lock senders). */
export type ParticipantIndex = 0 | 1;

/** The fixed part of a channel, chosen at open (mirrors `ChannelParams` in contracts/types/ChannelTypes.sol). */
export type ChannelParams = Readonly<{
  participants: readonly [Address, Address];
  /** Payout addresses; the zero address means the participant itself. */
  payees: readonly [Address, Address];
  /** The zero address for the chain's native coin, else an ERC-20 token. */
  asset: Address;
  challengePeriod: bigint;
  nonce: bigint;
}>;

/** A hash-locked conditional transfer. */
export type Lock = Readonly<{
  sender: ParticipantIndex;
  amount: bigint;
  /** sha256 of the 32-byte secret. */
  hashlock: Hex;
  /** Unix time (seconds) after which the lock refunds unless revealed at or before it. */
  expiry: bigint;
}>;

/** A channel state as both participants sign it: the full lock list travels off chain. */
export type ChannelState = Readonly<{
  channelId: Hex;
  seq: bigint;
  deposits: readonly [bigint, bigint];
  balances: readonly [bigint, bigint];
  locks: readonly Lock[];
  isFinal: boolean;
}>;

/** The state as the hub takes it: locks replaced by their EIP-712 hash. */
export type OnChainState = Readonly<{
  channelId: Hex;
  seq: bigint;
  deposits: readonly [bigint, bigint];
  balances: readonly [bigint, bigint];
  locksHash: Hex;
  isFinal: boolean;
}>;

/**
 * What became of lock `i` of a channel, as the hub's `transferOutcome(channelId, i)` returns it: the values of
 * `enum TransferOutcome` in contracts/types/ChannelTypes.sol, as bigints (how ethers reads a uint8). Only a settlement
 * after a dispute (`settle`) records outcomes: a cooperative close has no locks left to resolve (every lock was paid
 * or refunded off chain), so every index of such a channel reads Unresolved, as does a channel not settled yet.
 */
export const TransferOutcome = { Unresolved: 0n, Paid: 1n, Refunded: 2n } as const;
export type TransferOutcome = (typeof TransferOutcome)[keyof typeof TransferOutcome];

/** Whether two addresses are the same account, whatever their letter case (no checksum computed). */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
