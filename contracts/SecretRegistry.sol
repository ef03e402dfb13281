// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ISecretRegistry} from "./interfaces/ISecretRegistry.sol";

/// @title SecretRegistry
/// @notice Standalone record of first reveal times of sha256 hashlocks. Reveal times never change once set, so
///         any contract can decide a hash-locked transfer long after its expiry. Secrets revealed together by one
///         `revealMany` call can be read together from one storage word (`revealedTogetherAt`).
contract SecretRegistry is ISecretRegistry {
    /// @dev Low bits of a record: the first reveal time. block.timestamp fits in 40 bits until the year 36812.
    uint256 private constant TIME_MASK = (1 << 40) - 1;

    /// @dev One word per hashlock, written once when its secret is first revealed: the reveal time in bits 0-39 and,
    ///      when the secret was the first of a `revealMany` call, the call's batch tag in bits 40-255: the top 216
    ///      bits of keccak256 of all the call's hashlocks in order. Forging a batch (a list that was not revealed
    ///      with the same tag) is a keccak collision on 216 bits: about 2^108 hashes.
    mapping(bytes32 hashlock => uint256 record) private _records;

    /// @inheritdoc ISecretRegistry
    function reveal(bytes32 secret) external returns (uint64) {
        return _reveal(_hashlock(secret), secret, 0);
    }

    /// @inheritdoc ISecretRegistry
    function revealMany(bytes32[] calldata secrets) external {
        uint256 n = secrets.length;
        if (n == 0) revert NoSecrets();
        bytes32[] memory hashlocks = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            hashlocks[i] = _hashlock(secrets[i]);
        }
        uint256 tag;
        assembly ("memory-safe") {
            tag := and(keccak256(add(hashlocks, 0x20), shl(5, n)), not(TIME_MASK))
        }
        // The batch is recorded in the first secret's word, and only if this call reveals it first: a word is
        // written once, so a batch record never changes either.
        _reveal(hashlocks[0], secrets[0], tag);
        for (uint256 i = 1; i < n; ++i) {
            _reveal(hashlocks[i], secrets[i], 0);
        }
    }

    /// @inheritdoc ISecretRegistry
    function revealedAt(bytes32 hashlock) external view returns (uint64) {
        return uint64(_records[hashlock] & TIME_MASK);
    }

    /// @inheritdoc ISecretRegistry
    function revealedAtMany(bytes32[] calldata hashlocks) external view returns (uint64[] memory) {
        // Settlement reads one word per lock through here: the answer is encoded straight into memory and returned.
        assembly ("memory-safe") {
            let n := hashlocks.length
            let out := mload(0x40)
            mstore(out, 0x20)
            mstore(add(out, 0x20), n)
            let times := add(out, 0x40)
            mstore(0x20, _records.slot)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(0x00, calldataload(add(hashlocks.offset, shl(5, i))))
                mstore(add(times, shl(5, i)), and(sload(keccak256(0x00, 0x40)), TIME_MASK))
            }
            return(out, add(0x40, shl(5, n)))
        }
    }

    /// @inheritdoc ISecretRegistry
    function revealedTogetherAt(bytes32[] calldata hashlocks) external view returns (uint64) {
        if (hashlocks.length == 0) return 0;
        uint256 record = _records[hashlocks[0]];
        uint256 tag;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, hashlocks.length)
            calldatacopy(ptr, hashlocks.offset, size)
            tag := and(keccak256(ptr, size), not(TIME_MASK))
        }
        // A record without a tag (revealed alone, or not first in its call) never matches.
        if (record <= TIME_MASK || record & ~TIME_MASK != tag) return 0;
        return uint64(record & TIME_MASK);
    }

    function _reveal(bytes32 hashlock, bytes32 secret, uint256 tag) private returns (uint64 time) {
        uint256 record = _records[hashlock];
        if (record != 0) return uint64(record & TIME_MASK);
        time = SafeCast.toUint40(block.timestamp);
        _records[hashlock] = tag | uint256(time);
        emit SecretRevealed(hashlock, secret, time);
    }

    function _hashlock(bytes32 secret) private pure returns (bytes32) {
        return sha256(abi.encodePacked(secret));
    }
}
