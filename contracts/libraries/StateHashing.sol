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
    /// @dev `keccak256(abi.encode(block.chainid, address(this), params))`, hashed straight from the seven calldata
    ///      words of `params` (a static struct). Like the ABI decoder, it reverts on a word that is not a clean
    ///      value of its type: an id hashed from dirty bits would name a channel no later call could reach.
    function channelId(ChannelParams calldata params) internal view returns (ChannelId id) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, chainid())
            mstore(add(ptr, 0x20), address())
            calldatacopy(add(ptr, 0x40), params, 0xe0)
            // participants[2], payees[2] and asset are addresses; challengePeriod is a uint64; nonce is any word.
            let addresses := or(or(calldataload(params), calldataload(add(params, 0x20))), calldataload(add(params, 0x40)))
            addresses := or(addresses, or(calldataload(add(params, 0x60)), calldataload(add(params, 0x80))))
            if or(shr(160, addresses), shr(64, calldataload(add(params, 0xa0)))) { revert(0, 0) }
            id := keccak256(ptr, 0x120)
        }
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

    /// @notice EIP-712 encoding of a lock array: keccak256 of the concatenated struct hashes.
    function hashLocks(Lock[] calldata locks) internal pure returns (bytes32 hash) {
        (hash,,) = hashLocksAndSplit(locks, 0);
    }

    /// @notice `hashLocks`, and in the same pass over the calldata the locks' hashlocks in two lists, in lock order:
    ///         of the locks not named in `named` (bit i: lock i) and of the named ones. Settlement reads the first
    ///         list's reveal times one by one and the second's in one read (`Locks`).
    /// @dev Each lock is hashed straight from its four ABI words (`Lock` is a static struct: 128 bytes each), as
    ///      EIP-712 encodes it. A lock with dirty high bits hashes differently from what was signed, so it fails
    ///      the `locksHash` comparison; the fields are range-checked again when the locks are resolved. The lists
    ///      are allocated in memory, each laid out as the input of a registry call with one `bytes32[]` argument:
    ///      4 bytes left for a selector, the offset word left free, then the list's length and its hashlocks.
    /// @return hash The EIP-712 encoding of the locks.
    /// @return singles Memory pointer of the list of the locks not named.
    /// @return together Memory pointer of the list of the named locks.
    function hashLocksAndSplit(Lock[] calldata locks, uint256 named)
        internal
        pure
        returns (bytes32 hash, uint256 singles, uint256 together)
    {
        bytes32 typeHash = LOCK_TYPEHASH;
        assembly ("memory-safe") {
            let n := locks.length
            singles := mload(0x40)
            together := add(singles, add(0x44, shl(5, n)))
            // The two lists are allocated; the struct hashes and the encoding buffer after them are scratch.
            let hashes := add(together, add(0x44, shl(5, n)))
            mstore(0x40, hashes)
            let buffer := add(hashes, shl(5, n))
            mstore(buffer, typeHash)
            // Each hashlock is written to both lists; only the list it belongs to moves on.
            let one := add(singles, 0x44)
            let two := add(together, 0x44)
            let out := hashes
            for { let lock := locks.offset } lt(out, buffer) { lock := add(lock, 0x80) } {
                calldatacopy(add(buffer, 0x20), lock, 0x80)
                mstore(out, keccak256(buffer, 0xa0))
                out := add(out, 0x20)
                let hashlock := mload(add(buffer, 0x60))
                let isNamed := and(named, 1)
                named := shr(1, named)
                mstore(one, hashlock)
                mstore(two, hashlock)
                one := add(one, shl(5, iszero(isNamed)))
                two := add(two, shl(5, isNamed))
            }
            hash := keccak256(hashes, shl(5, n))
            mstore(add(singles, 0x24), shr(5, sub(one, add(singles, 0x44))))
            mstore(add(together, 0x24), shr(5, sub(two, add(together, 0x44))))
        }
    }
}
