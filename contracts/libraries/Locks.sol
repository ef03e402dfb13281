// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Lock} from "../types/ChannelTypes.sol";
import {IChannelHub} from "../interfaces/IChannelHub.sol";
import {ISecretRegistry} from "../interfaces/ISecretRegistry.sol";
import {StateHashing} from "./StateHashing.sol";

/// @title Locks
/// @notice Resolution of a state's pending locks against the reveal times of their secrets.
/// @dev Settlement reads each lock's reveal time from the registry: one cold storage read (2,100 gas) per lock,
///      the floor of what a lock costs. Locks whose secrets were revealed together by one `revealMany` call (the
///      usual case: the receiver reveals what it is owed, then settles) can be named in a mask and are read from
///      one word for all of them. The mask is a hint: one the registry does not bear out is ignored. A lock
///      refunded must always be read on its own: only its own word shows that its secret was not revealed in time.
library Locks {
    /// @notice The most locks one state may carry: settlement stays far below a block's gas limit and the
    ///         outcome of every lock fits one 256-bit mask. Clients refuse to sign a state with more.
    uint256 internal constant MAX_LOCKS = 256;

    /// @notice What the locks of a settled state amount to.
    struct Resolution {
        /// Amount each participant receives from the locks (paid to the receiver or refunded to the sender).
        uint256[2] credited;
        /// Sum of all lock amounts.
        uint256 locked;
        /// Bit i set: lock i was paid to its receiver; clear: refunded to its sender.
        uint256 paidMask;
        /// 1 + the index of the first lock that is still live, 0 when every lock is decided. When it is set, the
        /// other fields are incomplete: the state cannot be settled yet.
        uint256 liveLock;
    }

    /// @notice Decides every lock: paid if its secret was revealed at or before its expiry, refunded if not and
    ///         its expiry has passed. A lock that is neither is still live: resolution stops there and reports it
    ///         in `liveLock`, and the caller must not settle, so nobody can refund a lock early and then reveal its
    ///         secret on the other chain (the early-settle attack, PROTOCOL.md section 3).
    /// @dev `revealedTogether` is a hint that only saves reads; it never changes an outcome and never makes
    ///      resolution fail. The named locks are read with one `revealedTogetherAt` call; a named lock is paid when
    ///      that batch time is at or before its expiry (its secret was first revealed at or before the batch). When
    ///      the registry does not confirm the named list (another set or order, bits past the last lock that leave
    ///      no list, or a call that was not first to reveal the list's first secret, e.g. because someone revealed
    ///      that secret alone before it), or the batch came after a named lock's expiry, every lock is read on its
    ///      own instead (`_resolveEach`): the outcome is the one reading each lock gives. A refund is only ever
    ///      decided from the lock's own word. Lock fields that are not clean values of their types revert without
    ///      data, as the ABI decoder would.
    /// @param locks The state's pending locks, already checked against its `locksHash` (at most MAX_LOCKS).
    /// @param revealedTogether Bit i set: lock i is one of the locks revealed together (0: none).
    /// @param singles The hashlocks of the locks not named, from `StateHashing.hashLocksAndSplit`.
    /// @param together The hashlocks of the named locks, from the same call.
    /// @param registry The registry of reveal times.
    /// @param nowTs The current block timestamp.
    function resolve(
        Lock[] calldata locks,
        uint256 revealedTogether,
        uint256 singles,
        uint256 together,
        ISecretRegistry registry,
        uint256 nowTs
    ) internal view returns (Resolution memory r) {
        bool hinted = _listLength(together) != 0;
        uint256 togetherAt;
        if (hinted) {
            togetherAt = _readTogether(together, registry);
            if (togetherAt == 0) return _resolveEach(locks, registry, nowTs);
        }
        _readEach(singles, registry);
        (uint256 locked, uint256 credited1, uint256 paidMask, uint256 halt) =
            _decide(locks, revealedTogether, singles, togetherAt, nowTs);
        if (halt != 0) {
            uint256 index = halt - 1;
            // A named lock the batch does not pay (the batch came after its expiry) may still have been revealed
            // in time on its own: read every lock on its own.
            if (hinted && (revealedTogether >> index) & 1 == 1) return _resolveEach(locks, registry, nowTs);
            assembly ("memory-safe") {
                // A field that is not a clean value of its type reverts without data, as the ABI decoder does.
                let lock := add(locks.offset, shl(7, index))
                let dirty := or(shr(8, calldataload(lock)), shr(128, calldataload(add(lock, 0x20))))
                if or(dirty, shr(64, calldataload(add(lock, 0x60)))) { revert(0x00, 0x00) }
            }
            uint8 sender = locks[index].sender;
            if (sender > 1) revert IChannelHub.InvalidLockSender(index, sender);
            r.liveLock = index + 1;
            return r;
        }
        r.credited = [locked - credited1, credited1];
        r.locked = locked;
        r.paidMask = paidMask;
    }

    /// @dev `resolve` without a hint: every lock's reveal time read on its own (the hashlock lists laid out again).
    function _resolveEach(Lock[] calldata locks, ISecretRegistry registry, uint256 nowTs)
        private
        view
        returns (Resolution memory)
    {
        (, uint256 singles, uint256 together) = StateHashing.hashLocksAndSplit(locks, 0);
        return resolve(locks, 0, singles, together, registry, nowTs);
    }

    /// @dev The loop of `resolve`, without branches but one: it stops at the first lock that is still live, has an
    ///      invalid sender or a dirty field, or is named but not paid by the batch (which came after its expiry), and
    ///      returns 1 + its index in `halt` for `resolve` to tell which. `singles` holds the reveal times of the locks
    ///      not named, in lock order; a named lock has the batch's time. Every lock credits exactly one side, so
    ///      participant 0's credit is the locked total less participant 1's (each amount is below 2^128 and there
    ///      are at most 256: no overflow).
    function _decide(
        Lock[] calldata locks,
        uint256 revealedTogether,
        uint256 singles,
        uint256 togetherAt,
        uint256 nowTs
    ) private pure returns (uint256 locked, uint256 credited1, uint256 paidMask, uint256 halt) {
        assembly ("memory-safe") {
            // singles moves on to the next single time as it is used.
            let end := add(locks.offset, shl(7, locks.length))
            for { let lock := locks.offset } lt(lock, end) { lock := add(lock, 0x80) } {
                let expiry := calldataload(add(lock, 0x60))
                // revealedTogether is shifted right once per lock: bit 0 is the current lock's.
                let isNamed := and(revealedTogether, 1)
                revealedTogether := shr(1, revealedTogether)
                // The next single time is read whether or not this lock uses it; it moves on only if it does.
                let t := mload(singles)
                singles := add(singles, shl(5, iszero(isNamed)))
                t := add(mul(isNamed, togetherAt), mul(iszero(isNamed), t))
                let paid := and(iszero(iszero(t)), iszero(gt(t, expiry)))
                // Neither paid nor expired: still live, so no outcome may be fixed yet.
                let halts := or(iszero(or(paid, gt(nowTs, expiry))), gt(isNamed, paid))
                halts := or(halts, or(shr(64, expiry), gt(calldataload(lock), 1)))
                let amount := calldataload(add(lock, 0x20))
                if or(halts, shr(128, amount)) {
                    halt := add(shr(7, sub(lock, locks.offset)), 1)
                    break
                }
                paidMask := or(paidMask, shl(shr(7, sub(lock, locks.offset)), paid))
                locked := add(locked, amount)
                // Paid: to the receiver (1 - sender). Refunded: back to the sender.
                credited1 := add(credited1, mul(amount, eq(iszero(calldataload(lock)), paid)))
            }
        }
    }

    /// @dev The number of hashlocks in a list laid out by `StateHashing.hashLocksAndSplit`.
    function _listLength(uint256 list) private pure returns (uint256 length) {
        assembly ("memory-safe") {
            length := mload(add(list, 0x24))
        }
    }

    /// @dev `revealedTogetherAt` of a non-empty list laid out by `StateHashing.hashLocksAndSplit`.
    /// @return togetherAt The batch time of the named locks, 0 when the registry does not confirm them.
    function _readTogether(uint256 together, ISecretRegistry registry) private view returns (uint256 togetherAt) {
        bytes4 readTogether = ISecretRegistry.revealedTogetherAt.selector;
        assembly ("memory-safe") {
            mstore(together, readTogether) // the offset word below overwrites the rest
            mstore(add(together, 0x04), 0x20)
            let size := add(0x44, shl(5, mload(add(together, 0x24))))
            if iszero(staticcall(gas(), registry, together, size, 0x00, 0x20)) {
                returndatacopy(0x00, 0x00, returndatasize())
                revert(0x00, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0x00, 0x00) }
            togetherAt := mload(0x00)
        }
    }

    /// @dev `revealedAtMany` of a list laid out by `StateHashing.hashLocksAndSplit` (nothing when it is empty): the
    ///      times are left at `list`, in the order asked, where the input was.
    function _readEach(uint256 list, ISecretRegistry registry) private view {
        bytes4 readMany = ISecretRegistry.revealedAtMany.selector;
        assembly ("memory-safe") {
            let k := mload(add(list, 0x24))
            if k {
                mstore(list, readMany)
                mstore(add(list, 0x04), 0x20)
                if iszero(staticcall(gas(), registry, list, add(0x44, shl(5, k)), 0x00, 0x00)) {
                    returndatacopy(0x00, 0x00, returndatasize())
                    revert(0x00, returndatasize())
                }
                if lt(returndatasize(), add(0x40, shl(5, k))) { revert(0x00, 0x00) }
                // The times come after the offset and length words.
                returndatacopy(list, 0x40, shl(5, k))
            }
        }
    }
}
