// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {
    ChannelId,
    ChannelInfo,
    ChannelParams,
    ChannelStatus,
    Lock,
    SignedState,
    SkipReason,
    State,
    TransferOutcome
} from "../types/ChannelTypes.sol";
import {ISecretRegistry} from "./ISecretRegistry.sol";

/// @title IChannelHub
/// @notice One hub per chain holds the deposits of many two-party channels and enforces their latest co-signed
///         state: open, deposit, cooperative close, or force close, challenge, settle; payouts go out at once and
///         fall back to `withdraw` when a receiver or token refuses them. See docs/PROTOCOL.md.
interface IChannelHub {
    // ------------------------------------------------------------------ events

    /// @notice A channel was opened. `packed` carries its parameters and the deposit made in the same call, as
    ///         `abi.encodePacked(participants[0], participants[1], uint64 challengePeriod, nonce, uint8 flags,
    ///         uint120 deposit)` (96 bytes): flags bit 0 is the participant the deposit is for (`openAndDeposit`;
    ///         `open` has deposit 0), bit 1 is set when `ChannelOpenedWith` follows with the payees and asset,
    ///         which are address(0) otherwise. `channelId(params)` of the parameters read back gives `channelId`.
    /// @dev Packed, not ABI-encoded: a channel's first funding stays one storage write and one three-word log.
    /// @param packed The parameters and the opening deposit (for tokens: what arrived), packed as above.
    event ChannelOpened(ChannelId indexed channelId, bytes32[3] packed);

    /// @notice The payees and asset of a channel just opened, emitted right after its `ChannelOpened` when any of
    ///         them is not address(0).
    /// @param payees Where each participant's payout goes (address(0): the participant itself).
    /// @param asset The channel's ERC-20 token, or address(0) for the native coin.
    event ChannelOpenedWith(ChannelId indexed channelId, address[2] payees, address asset);

    /// @notice Funds were added to one participant's side (by anyone: the payer is the transaction's sender).
    /// @param participant Index (0 or 1) of the participant credited.
    /// @param amount Amount received by the hub (for tokens: the balance change, not the requested amount).
    /// @param total The participant's new on-chain deposit total.
    event Deposited(ChannelId indexed channelId, uint8 participant, uint256 amount, uint256 total);

    /// @notice A final state was closed cooperatively and paid out.
    event ChannelClosed(ChannelId indexed channelId, uint64 seq, uint256[2] payouts);

    /// @notice A participant started the challenge period with `state` (seq 0 and no signatures: opening deposits).
    event ChannelForceClosed(ChannelId indexed channelId, address indexed by, State state, uint64 deadline);

    /// @notice A strictly newer co-signed state replaced the registered one; the deadline is unchanged.
    event ChannelChallenged(ChannelId indexed channelId, address indexed by, State state, uint64 deadline);

    /// @notice The registered state was settled: locks resolved and final balances paid out.
    /// @param paidMask Bit i is set when lock i of the state was paid to its receiver (else it was refunded).
    event ChannelSettled(ChannelId indexed channelId, uint64 seq, uint16 lockCount, uint256 paidMask, uint256[2] payouts);

    /// @notice `settleMany` left this channel unsettled because it was not ready; the rest of the batch went on.
    /// @param reason Why: closed already (e.g. settled by someone else first), never force-closed, still in its
    ///        challenge period, its registered state replaced by a challenge, or a lock still live.
    event SettlementSkipped(ChannelId indexed channelId, SkipReason reason);

    /// @notice A payout could not be pushed (the receiver reverted or the token refused); it waits in `withdraw`.
    event PayoutDeferred(ChannelId indexed channelId, address indexed account, address asset, uint256 amount);

    /// @notice A deferred payout was withdrawn.
    event Withdrawn(address indexed account, address indexed asset, address to, uint256 amount);

    // ------------------------------------------------------------------ errors

    /// @notice A participant signing key is zero, or both are the same.
    error InvalidParticipants(address participant0, address participant1);
    /// @notice The challenge period is outside the allowed range.
    error InvalidChallengePeriod(uint64 given, uint64 min, uint64 max);
    /// @notice The asset is neither address(0) (native coin) nor a contract.
    error InvalidAsset(address asset);
    /// @notice A channel with these parameters exists already (choose another nonce).
    error ChannelExists(ChannelId channelId);
    /// @notice The channel is not open (it does not exist, is disputed, or is closed).
    error ChannelNotOpen(ChannelId channelId, ChannelStatus status);
    /// @notice The channel is not in its challenge period or awaiting settlement (`settleMany` skips it instead).
    error ChannelNotDisputed(ChannelId channelId, ChannelStatus status);
    /// @notice The channel can no longer be closed cooperatively.
    error ChannelNotClosable(ChannelId channelId, ChannelStatus status);
    /// @notice A participant index other than 0 or 1.
    error InvalidParticipantIndex(uint8 index);
    /// @notice A deposit of zero.
    error ZeroDeposit();
    /// @notice A native-coin deposit whose `msg.value` differs from `amount`.
    error NativeValueMismatch(uint256 amount, uint256 value);
    /// @notice Native coin sent along a token deposit.
    error UnexpectedNativeValue(uint256 value);
    /// @notice The deposit would take a participant's total past what the hub accounts for.
    error DepositTooLarge(uint256 total, uint256 max);
    /// @notice A token that credits nothing to the hub on transfer.
    error NothingReceived(address token);
    /// @notice The caller is not one of the channel's participants.
    error NotParticipant(ChannelId channelId, address caller);
    /// @notice The state names another channel (of this or any other hub or chain).
    error WrongChannel(ChannelId expected, ChannelId given);
    /// @notice The signature of participant `index` is not valid for this state on this hub and chain.
    error InvalidSignature(ChannelId channelId, uint8 index);
    /// @notice The state is not newer than the registered one.
    error StaleSequence(ChannelId channelId, uint64 given, uint64 registered);
    /// @notice The challenge period has ended; only settlement is possible.
    error ChallengePeriodOver(ChannelId channelId, uint64 deadline);
    /// @notice The challenge period has not ended yet (`settleMany` skips the channel instead).
    error ChallengePeriodNotOver(ChannelId channelId, uint64 deadline, uint64 nowTs);
    /// @notice A cooperative close needs a state marked final.
    error StateNotFinal(ChannelId channelId);
    /// @notice A cooperative close needs a state with no pending locks.
    error StateHasLocks(ChannelId channelId);
    /// @notice The state accounts for more than was deposited on chain for a participant.
    error StateUnderfunded(ChannelId channelId, uint8 participant, uint256 stateDeposit, uint256 onChainDeposit);
    /// @notice Balances plus locks differ from the deposits the state accounts for.
    error AmountsDoNotAddUp(ChannelId channelId, uint256 allocated, uint256 deposited);
    /// @notice The state given to `settle` is not the registered one (`settleMany` skips the channel instead).
    error StateMismatch(ChannelId channelId, bytes32 registered, bytes32 given);
    /// @notice The locks given to `settle` do not hash to the state's `locksHash`.
    error LocksMismatch(ChannelId channelId, bytes32 expected, bytes32 given);
    /// @notice More locks than one settlement may resolve.
    error TooManyLocks(uint256 count, uint256 max);
    /// @notice A lock whose sender index is not 0 or 1.
    error InvalidLockSender(uint256 lockIndex, uint8 sender);
    /// @notice A lock whose secret is not registered cannot be refunded before its expiry has passed (`settleMany`
    ///         skips the channel instead).
    error LockNotExpired(ChannelId channelId, uint256 lockIndex, uint64 expiry, uint64 nowTs);
    /// @notice Not enough gas left to give a payout all of PAYOUT_GAS, so the whole call reverts rather than let the
    ///         push fail for lack of gas and defer the payout. `needed` covers the CALL's own cost in the worst case
    ///         (cold receiver, cold EIP-7702 delegate, value transfer) and the 1/64 the EVM keeps back.
    error InsufficientGasForPayout(uint256 gasLeft, uint256 needed);
    /// @notice `settleMany` was given arrays of different lengths.
    error LengthMismatch(uint256 params, uint256 states, uint256 locks, uint256 revealedTogether);
    /// @notice Withdrawal to address(0).
    error InvalidReceiver(address to);
    /// @notice No deferred payout waits for this account and asset.
    error NothingToWithdraw(address account, address asset);

    // ------------------------------------------------------------------ funding

    /// @notice Creates a channel. Anyone may open it; the id binds this chain, this hub and `params`.
    /// @dev `params.asset` is address(0) for the native coin or an ERC-20 token; the hub only checks that a token is
    ///      a contract. Supported: plain, fee-on-transfer (credited what arrives), no-return and false-returning,
    ///      blocklisting tokens (a refused payout is deferred to `withdraw`). NOT supported: rebasing tokens, or any
    ///      token whose balances change without a transfer. The hub pays fixed amounts out of one balance per token:
    ///      after a negative rebase the channels of that token that close last are paid short (their payouts that
    ///      no longer fit are deferred and cannot be withdrawn until the hub holds the token again), and a positive
    ///      rebase stays in the hub, owed to nobody. See docs/TOKENS.md.
    /// @param params The fixed parameters; keep them, every later call but `deposit` takes them.
    /// @return channelId The new channel's id.
    function open(ChannelParams calldata params) external returns (ChannelId channelId);

    /// @notice `open` and `deposit` in one transaction (the usual start when one side funds the channel).
    /// @dev The same tokens as `open` are supported: not rebasing ones (docs/TOKENS.md).
    /// @param params The fixed parameters.
    /// @param participant Index (0 or 1) of the participant to credit.
    /// @param amount The amount to deposit (native: equal to `msg.value`; token: pulled with `transferFrom`).
    /// @return channelId The new channel's id.
    function openAndDeposit(ChannelParams calldata params, uint8 participant, uint256 amount)
        external
        payable
        returns (ChannelId channelId);

    /// @notice Adds funds to a participant's side of an open channel. Anyone may deposit for a participant.
    /// @dev Native coin: `msg.value` must equal `amount`. Tokens: the hub pulls `amount` with `transferFrom`
    ///      (approve first) and credits the balance it actually received, so fee-on-transfer tokens never create
    ///      funds that do not exist.
    /// @param channelId The channel.
    /// @param participant Index (0 or 1) of the participant to credit.
    /// @param amount The amount to deposit.
    function deposit(ChannelId channelId, uint8 participant, uint256 amount) external payable;

    // ------------------------------------------------------------------ cooperative close

    /// @notice Closes the channel at once with a final, lock-free state both participants signed, and pays out.
    ///         Anyone may submit it; works while open or disputed (before settlement).
    /// @param params The channel's parameters.
    /// @param signed The final state and both signatures.
    function closeCooperatively(ChannelParams calldata params, SignedState calldata signed) external;

    // ------------------------------------------------------------------ dispute

    /// @notice A participant registers the newest co-signed state it has and starts the challenge period.
    /// @param params The channel's parameters.
    /// @param signed The state and both signatures.
    function forceClose(ChannelParams calldata params, SignedState calldata signed) external;

    /// @notice A participant starts the challenge period when no state was ever co-signed: the opening deposits
    ///         (each participant's own on-chain deposit) are registered as state 0.
    /// @param params The channel's parameters.
    function forceCloseWithDeposits(ChannelParams calldata params) external;

    /// @notice Anyone replaces the registered state with a strictly newer co-signed one before the deadline.
    ///         The deadline is not extended.
    /// @param params The channel's parameters.
    /// @param signed The newer state and both signatures.
    function challenge(ChannelParams calldata params, SignedState calldata signed) external;

    // ------------------------------------------------------------------ batch settlement

    /// @notice After the deadline anyone settles the registered state: every pending lock goes to its receiver
    ///         if its secret was registered at or before its expiry, else back to its sender (never before the
    ///         expiry has passed); then both final balances are paid out.
    /// @dev Each lock's reveal time is read from the registry, one storage word per lock, except for the locks named
    ///      in `revealedTogether`: their secrets were revealed by one `revealMany` call (listed in lock order), and
    ///      one word answers for all of them (`ISecretRegistry.revealedTogetherAt`). The mask is a hint that only
    ///      saves reads: when the registry does not bear it out (another set or order, a bit past the last lock, a
    ///      batch that was not first to reveal its first secret, a batch after a named lock's expiry), every lock is
    ///      read on its own. Either way the outcome is the one reading each lock gives, and nothing a third party
    ///      reveals can make a settlement revert.
    /// @param params The channel's parameters.
    /// @param state The registered state (as emitted by the force close or the last challenge).
    /// @param locks The state's pending locks, in signed order.
    /// @param revealedTogether Bit i set: lock i is one of the locks whose secrets were revealed together, at or
    ///        before each one's expiry; 0 to read every lock on its own.
    function settle(ChannelParams calldata params, State calldata state, Lock[] calldata locks, uint256 revealedTogether)
        external;

    /// @notice `settle` for many channels in one call, settling every channel of the batch that is ready. A channel
    ///         that is not ready is skipped and reported (`SettlementSkipped` with its reason) where `settle` would
    ///         revert: already closed (someone settled it first), not disputed, still in its challenge period, its
    ///         registered state replaced by a challenge (or not the state given), or a lock still live. So a
    ///         front-runner who settles one channel of the batch does not undo the others.
    /// @dev The arrays are parallel: channel i is `params[i]`, `states[i]`, `locks[i]`, `revealedTogether[i]`.
    ///      Input that no later block would accept either still reverts the whole call: arrays of different lengths
    ///      (`LengthMismatch`), a state of another channel (`WrongChannel`), and for a channel whose given state is
    ///      the registered one: locks that do not hash to it (`LocksMismatch`), more than MAX_LOCKS locks, an
    ///      invalid lock sender, amounts that do not add up (a `revealedTogether` entry is a hint, as for `settle`). A
    ///      payout that cannot get its gas reverts the whole call too (`InsufficientGasForPayout`). The caller
    ///      chooses the batch: its length is the caller's own gas.
    /// @param params The channels' parameters.
    /// @param states The states to settle, each the one registered for its channel.
    /// @param locks Each state's pending locks, in signed order.
    /// @param revealedTogether Each channel's mask of locks revealed together, as for `settle` (0: none).
    /// @return settled Entry i is true when channel i was settled by this call, false when it was skipped.
    function settleMany(
        ChannelParams[] calldata params,
        State[] calldata states,
        Lock[][] calldata locks,
        uint256[] calldata revealedTogether
    ) external returns (bool[] memory settled);

    // ------------------------------------------------------------------ asset settlement

    /// @notice Sends the caller's deferred payouts in `asset` to `to` (which may differ from the caller, e.g.
    ///         when the caller's own address is blocklisted by the token).
    /// @param asset address(0) for native coin, else the token.
    /// @param to The receiver.
    function withdraw(address asset, address to) external;

    // ------------------------------------------------------------------ views

    /// @notice The registry whose reveal times decide locks.
    function secretRegistry() external view returns (ISecretRegistry);

    /// @notice The id a channel with `params` has on this hub and chain.
    function channelId(ChannelParams calldata params) external view returns (ChannelId);

    /// @notice Everything stored about a channel.
    function getChannel(ChannelId channelId) external view returns (ChannelInfo memory);

    /// @notice Whether lock `lockIndex` of a settled channel was paid or refunded.
    function transferOutcome(ChannelId channelId, uint256 lockIndex) external view returns (TransferOutcome);

    /// @notice The payout waiting in `withdraw` for `account` in `asset`.
    function deferredPayout(address asset, address account) external view returns (uint256);

    /// @notice The EIP-712 digest participants sign for `state` on this hub and chain.
    function stateDigest(State calldata state) external view returns (bytes32);

    /// @notice The EIP-712 hash of a lock list, as carried in `State.locksHash`.
    function hashLocks(Lock[] calldata locks) external pure returns (bytes32);
}
