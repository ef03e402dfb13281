// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ISecretRegistry
/// @notice Records when the preimage of a hashlock was first revealed on this chain. Any contract may read it:
///         a hash-locked transfer is paid if its secret was revealed at or before the lock's expiry.
interface ISecretRegistry {
    /// @notice A secret was revealed on this chain for the first time.
    /// @param hashlock sha256 of the secret.
    /// @param secret The 32-byte preimage, so that watchers can carry it to another chain.
    /// @param revealedAt The block timestamp of the first reveal.
    event SecretRevealed(bytes32 indexed hashlock, bytes32 secret, uint64 revealedAt);

    /// @notice A batch reveal was called with no secrets.
    error NoSecrets();

    /// @notice Records the reveal time of `sha256(secret)` unless it was revealed before (then nothing changes).
    /// @param secret The 32-byte preimage.
    /// @return revealedAt The first reveal time of this secret: now, or the earlier time.
    function reveal(bytes32 secret) external returns (uint64 revealedAt);

    /// @notice Reveals many secrets in one call; each is recorded as by `reveal`. When this call is the first to
    ///         reveal `secrets[0]`, it also records that all of them were revealed together (`revealedTogetherAt`),
    ///         at no extra storage cost: settling their locks then reads one word for all of them.
    /// @param secrets The 32-byte preimages (a settler lists the secrets of a channel's locks in lock order).
    function revealMany(bytes32[] calldata secrets) external;

    /// @notice The first reveal time of the secret of `hashlock`, or 0 if it was never revealed here.
    /// @param hashlock sha256 of the secret.
    function revealedAt(bytes32 hashlock) external view returns (uint64);

    /// @notice `revealedAt` for many hashlocks in one call.
    /// @param hashlocks sha256 hashes of the secrets.
    /// @return times The first reveal time of each, 0 where never revealed.
    function revealedAtMany(bytes32[] calldata hashlocks) external view returns (uint64[] memory times);

    /// @notice The time of the `revealMany` call that revealed exactly `hashlocks`' secrets, in this order, and was
    ///         the first to reveal the first of them; 0 if there was none. Each of these secrets was first revealed
    ///         at or before that time. One storage read answers for the whole list.
    /// @param hashlocks sha256 hashes of the secrets, in the order the call listed them.
    /// @return revealedAt The call's block timestamp, or 0.
    function revealedTogetherAt(bytes32[] calldata hashlocks) external view returns (uint64 revealedAt);
}
