// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ISecretRegistry} from "./interfaces/ISecretRegistry.sol";

/// @title SecretRegistry
/// @notice Standalone record of first reveal times of sha256 hashlocks. Reveal times never change once set, so
///         any contract can decide a hash-locked transfer long after its expiry.
contract SecretRegistry is ISecretRegistry {
    mapping(bytes32 hashlock => uint64 revealedAt) private _revealedAt;

    /// @inheritdoc ISecretRegistry
    function reveal(bytes32 secret) external returns (uint64) {
        return _reveal(secret);
    }

    /// @inheritdoc ISecretRegistry
    function revealMany(bytes32[] calldata secrets) external {
        if (secrets.length == 0) revert NoSecrets();
        for (uint256 i; i < secrets.length; ++i) {
            _reveal(secrets[i]);
        }
    }

    /// @inheritdoc ISecretRegistry
    function revealedAt(bytes32 hashlock) external view returns (uint64) {
        return _revealedAt[hashlock];
    }

    /// @inheritdoc ISecretRegistry
    function revealedAtMany(bytes32[] calldata hashlocks) external view returns (uint64[] memory times) {
        times = new uint64[](hashlocks.length);
        for (uint256 i; i < hashlocks.length; ++i) {
            times[i] = _revealedAt[hashlocks[i]];
        }
    }

    function _reveal(bytes32 secret) private returns (uint64 time) {
        bytes32 hashlock = sha256(abi.encodePacked(secret));
        time = _revealedAt[hashlock];
        if (time == 0) {
            time = uint64(block.timestamp);
            _revealedAt[hashlock] = time;
            emit SecretRevealed(hashlock, secret, time);
        }
    }
}
