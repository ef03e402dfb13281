// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Lock} from "../types/ChannelTypes.sol";
import {IChannelHub} from "../interfaces/IChannelHub.sol";

/// @title Locks
/// @notice Resolution of a state's pending locks against the reveal times of their secrets.
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
    /// @param locks The state's pending locks (at most MAX_LOCKS, checked by the caller).
    /// @param revealedAt First reveal time of each lock's secret, 0 when never revealed.
    /// @param nowTs The current block timestamp.
    function resolve(Lock[] calldata locks, uint64[] memory revealedAt, uint256 nowTs)
        internal
        pure
        returns (Resolution memory r)
    {
        // Running totals in locals, written to `r` once: cheaper than updating memory per lock. Every lock credits
        // exactly one side, so the locked total is the sum of both credits.
        uint256 credited0;
        uint256 credited1;
        uint256 paidMask;
        for (uint256 i; i < locks.length; ++i) {
            Lock calldata lock = locks[i];
            uint8 sender = lock.sender;
            if (sender > 1) revert IChannelHub.InvalidLockSender(i, sender);
            uint64 revealTime = revealedAt[i];
            bool paid = revealTime != 0 && revealTime <= lock.expiry;
            if (!paid && nowTs <= lock.expiry) {
                r.liveLock = i + 1;
                return r;
            }
            if (paid) paidMask |= 1 << i;
            // Paid: to the receiver (1 - sender). Refunded: back to the sender.
            if ((sender == 0) == paid) credited1 += lock.amount;
            else credited0 += lock.amount;
        }
        r.credited = [credited0, credited1];
        r.locked = credited0 + credited1;
        r.paidMask = paidMask;
    }
}
