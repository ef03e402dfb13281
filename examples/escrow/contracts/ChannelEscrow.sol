// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

// Imported by package path: Hardhat resolves them from node_modules/crosschain-channels.
import {IChannelHub} from "crosschain-channels/contracts/interfaces/IChannelHub.sol";
import {ChannelId, ChannelParams, TransferOutcome} from "crosschain-channels/contracts/types/ChannelTypes.sol";

/// @title ChannelEscrow
/// @notice A sponsor opens and funds a native-coin channel for a user in one call, and anyone (a merchant, another
///         contract) asks on chain whether a hash-locked payment was made: paid when its channel settled, or its
///         secret revealed in time, which pays any lock with that hashlock and expiry once its channel settles.
/// @dev Everything goes through `IChannelHub` and the registry it names; the hub holds the funds, not this contract.
contract ChannelEscrow {
    /// @notice The hub the channels are opened on.
    IChannelHub public immutable hub;

    /// @notice Who funded each channel opened through this escrow.
    mapping(ChannelId channelId => address sponsor) public sponsorOf;

    /// @notice A channel was opened with `amount` deposited for `user` (a participant), paid by `sponsor`.
    /// @param channelId The new channel.
    /// @param user The participant credited.
    /// @param sponsor Who paid the deposit.
    /// @param amount The deposit, in the native coin.
    event ChannelFunded(ChannelId indexed channelId, address indexed user, address indexed sponsor, uint256 amount);

    /// @notice This escrow funds native-coin channels only; `asset` is a token.
    error NotNative(address asset);

    /// @notice A channel opened through this escrow must be funded: no native coin was sent.
    error NothingSent();

    /// @param hub_ The channel hub of this chain.
    constructor(IChannelHub hub_) {
        hub = hub_;
    }

    /// @notice Opens a native-coin channel with `params` and deposits all of `msg.value` for participant `user`.
    /// @param params The channel's parameters; the user and the counterparty sign its states, not this contract.
    /// @param user Index (0 or 1) of the participant to credit.
    /// @return channelId The new channel's id (`hub.channelId(params)`).
    function openFor(ChannelParams calldata params, uint8 user) external payable returns (ChannelId channelId) {
        if (params.asset != address(0)) revert NotNative(params.asset);
        if (msg.value == 0) revert NothingSent();
        channelId = hub.openAndDeposit{value: msg.value}(params, user, msg.value);
        sponsorOf[channelId] = msg.sender;
        emit ChannelFunded(channelId, params.participants[user], msg.sender, msg.value);
    }

    /// @notice Whether lock `lockIndex` of a channel settled on chain after a dispute was paid to its receiver (false
    ///         while the channel is not settled, when the lock was refunded, or when it had no such lock). Only `settle`
    ///         records outcomes: after a cooperative close no lock is left on chain, and this is false for every index.
    /// @param channelId The channel.
    /// @param lockIndex The lock's index in the settled state's lock list.
    function lockPaid(ChannelId channelId, uint256 lockIndex) external view returns (bool) {
        return hub.transferOutcome(channelId, lockIndex) == TransferOutcome.Paid;
    }

    /// @notice Whether the secret of `hashlock` was revealed on this chain at or before `expiry`: then a lock with
    ///         that hashlock and expiry in the state a channel settles with is paid to its receiver.
    /// @param hashlock sha256 of the secret.
    /// @param expiry The lock's expiry (unix seconds).
    function secretRevealedInTime(bytes32 hashlock, uint64 expiry) external view returns (bool) {
        uint64 revealedAt = hub.secretRegistry().revealedAt(hashlock);
        return revealedAt != 0 && revealedAt <= expiry;
    }
}
