// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice Identifies one channel of one hub on one chain: keccak256(chain id, hub address, parameters).
type ChannelId is bytes32;

/// @notice The fixed part of a channel, chosen at `open` and never stored: it travels in calldata.
/// @dev Index 0 and 1 are used for the two participants everywhere (balances, deposits, lock senders).
struct ChannelParams {
    /// The two signing keys whose signatures every state carries (an EOA or an ERC-1271 contract each).
    address[2] participants;
    /// Where each participant's payout goes; address(0) means the participant's own address.
    address[2] payees;
    /// The asset held by the channel: address(0) for the chain's native coin, else an ERC-20 token. Rebasing tokens
    /// are not supported (docs/TOKENS.md).
    address asset;
    /// Seconds between a force close and the earliest settlement; newer states may be posted meanwhile.
    uint64 challengePeriod;
    /// Any number that makes the channel id unique for the same participants, asset and period.
    uint256 nonce;
}

/// @notice A hash-locked conditional transfer inside a channel state.
struct Lock {
    /// Index (0 or 1) of the participant the amount comes from; the other participant receives it.
    uint8 sender;
    /// Amount moved from the sender to the receiver if the secret is revealed in time.
    uint128 amount;
    /// sha256 of the 32-byte secret (the hashlock of a Bitcoin/Lightning HTLC).
    bytes32 hashlock;
    /// Unix time after which the lock refunds unless its secret was registered at or before it.
    uint64 expiry;
}

/// @notice One state of a channel's off-chain ledger, as both participants sign it (EIP-712).
/// @dev `locksHash` is the EIP-712 encoding of `Lock[] locks`: keccak256 of the concatenated lock struct hashes.
///      Signers see and sign the full lock list; the hub only needs its hash until settlement.
struct State {
    ChannelId channelId;
    /// Strictly increasing per channel; a higher number supersedes every lower one.
    uint64 seq;
    /// The on-chain deposit totals of each participant this state accounts for. Anything deposited on chain
    /// beyond them goes back to the participant it was deposited for, so later deposits never void a state.
    uint128[2] deposits;
    /// Free balance of each participant, locks excluded.
    uint128[2] balances;
    /// EIP-712 hash of the pending locks (see above); keccak256("") when there are none.
    bytes32 locksHash;
    /// Set on the last state both sign before a cooperative close.
    bool isFinal;
}

/// @notice A state with both participants' signatures, in participant order.
struct SignedState {
    State state;
    bytes[2] signatures;
}

/// @notice None -> Open -> Closed (cooperative close) or Open -> Disputed -> Closed (force close, settle).
enum ChannelStatus {
    None,
    Open,
    Disputed,
    Closed
}

/// @notice What became of a lock of a settled channel, by its index in the registered state's lock list.
enum TransferOutcome {
    /// The channel is not settled, or it had no lock at that index.
    Unresolved,
    /// The secret was registered at or before the expiry: the receiver was paid.
    Paid,
    /// The lock expired unrevealed: the amount went back to its sender.
    Refunded
}

/// @notice Everything the hub stores about a channel, for other contracts and clients.
struct ChannelInfo {
    ChannelStatus status;
    /// Address(0) for native-coin channels.
    address asset;
    /// On-chain deposit totals per participant.
    uint256[2] deposits;
    /// Sequence number of the registered state: set by force close and challenge, and by a cooperative close of a
    /// disputed channel; 0 otherwise (an undisputed cooperative close reports its number in ChannelClosed).
    uint64 seq;
    /// End of the challenge period (0 unless disputed or settled).
    uint64 deadline;
    /// Hash of the registered state while disputed (0 when none, or once settled).
    bytes32 stateHash;
    /// Number of locks resolved at settlement.
    uint16 lockCount;
}

/// @notice Why `settleMany` left a channel of its batch unsettled. Each is a state the channel can be in when the
///         batch is mined, whoever sent it; none of them is an error in the batch itself.
enum SkipReason {
    /// The channel is closed already: settled (e.g. by someone else first) or closed cooperatively.
    AlreadyClosed,
    /// The channel was never force-closed: it is open, or does not exist.
    NotDisputed,
    /// Its challenge period has not ended.
    ChallengePeriodNotOver,
    /// The registered state is not the one given: a challenge replaced it (or another state was given).
    StateReplaced,
    /// A lock of the state is still live: its secret was not registered and its expiry has not passed.
    LockNotExpired
}
