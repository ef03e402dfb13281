// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ChannelId, ChannelParams, Lock, State} from "../types/ChannelTypes.sol";

/// @title StateHashing
/// @notice EIP-712 type strings, type hashes and struct hashes of channel states and locks, and channel ids.
/// @dev The signed type is `State` with a `Lock[] locks` member; a `State` struct carries the EIP-712 encoding of
///      that array (`locksHash`) so the hub can verify signatures without the lock list.
library StateHashing {
    /// @notice EIP-712 type string of a lock.
    string internal constant LOCK_TYPE = "Lock(uint8 sender,uint128 amount,bytes32 hashlock,uint64 expiry)";

    /// @notice EIP-712 type string of a state (with the referenced Lock type appended, as EIP-712 requires).
    string internal constant STATE_TYPE =
        "State(bytes32 channelId,uint64 seq,uint128[2] deposits,uint128[2] balances,Lock[] locks,bool isFinal)"
        "Lock(uint8 sender,uint128 amount,bytes32 hashlock,uint64 expiry)";

    bytes32 internal constant LOCK_TYPEHASH = keccak256(bytes(LOCK_TYPE));
    bytes32 internal constant STATE_TYPEHASH = keccak256(bytes(STATE_TYPE));

    /// @notice `locksHash` of a state without pending locks: the EIP-712 encoding of an empty array.
    bytes32 internal constant EMPTY_LOCKS_HASH = keccak256("");

    /// @notice The channel id: binds the chain, the hub (this contract) and every fixed parameter.
    function channelId(ChannelParams calldata params) internal view returns (ChannelId) {
        return ChannelId.wrap(keccak256(abi.encode(block.chainid, address(this), params)));
    }

    /// @notice EIP-712 struct hash of a state.
    function hashState(State memory state) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                STATE_TYPEHASH,
                state.channelId,
                state.seq,
                keccak256(abi.encodePacked(state.deposits)),
                keccak256(abi.encodePacked(state.balances)),
                state.locksHash,
                state.isFinal
            )
        );
    }

    /// @notice EIP-712 struct hash of a lock.
    function hashLock(Lock calldata lock) internal pure returns (bytes32) {
        return keccak256(abi.encode(LOCK_TYPEHASH, lock.sender, lock.amount, lock.hashlock, lock.expiry));
    }

    /// @notice EIP-712 encoding of a lock array: keccak256 of the concatenated struct hashes.
    function hashLocks(Lock[] calldata locks) internal pure returns (bytes32) {
        bytes32[] memory hashes = new bytes32[](locks.length);
        for (uint256 i; i < locks.length; ++i) {
            hashes[i] = hashLock(locks[i]);
        }
        return keccak256(abi.encodePacked(hashes));
    }
}
