// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IChannelHub} from "../interfaces/IChannelHub.sol";

/// @title AssetTransfer
/// @notice Payouts that cannot be held hostage: a bounded-gas push that reports failure instead of reverting,
///         so one participant's reverting receiver, gas-burning hook or blocklisting token never blocks the other
///         participant's payout in the same transaction; and that cannot be starved: a caller who leaves too
///         little gas for the push to get all of PAYOUT_GAS gets a revert, never a failed (deferred) payout.
library AssetTransfer {
    /// @notice Gas each push gives its receiver (native coin) or its token (`transfer`).
    uint256 internal constant PAYOUT_GAS = 100_000;

    /// @notice First access to an account in a transaction (EIP-2929). A push may pay it twice: for the receiver
    ///         (or token) and, when that account's code is an EIP-7702 delegation, for the delegate.
    uint256 internal constant COLD_ACCOUNT_ACCESS = 2_600;
    /// @notice Surcharge of a CALL that sends native coin (G_callvalue).
    uint256 internal constant CALL_VALUE = 9_000;
    /// @notice The opcodes between the gas check and the CALL (the check's jump and the CALL's seven arguments),
    ///         rounded up: 37 gas on the native path and 38 on the token path with solc 0.8.37 and the optimizer.
    uint256 internal constant CHECK_TO_CALL = 100;
    /// @notice What must be left once the CALL has paid for itself for it to forward all of PAYOUT_GAS: it forwards
    ///         at most all but one 64th of that (EIP-150), and left - left / 64 >= PAYOUT_GAS holds for
    ///         left = PAYOUT_GAS + ceil(PAYOUT_GAS / 63).
    uint256 internal constant FORWARDING_RESERVE = PAYOUT_GAS + (PAYOUT_GAS + 62) / 63;

    /// @notice The least gas left at the check of a native push: the CALL pays for a cold receiver, a cold
    ///         EIP-7702 delegate and the value transfer. Creating an account (25,000) is not counted: only an
    ///         account without code is new, and it needs no gas to accept the coin. Memory costs nothing (the
    ///         push uses none). The receiver also gets the EVM's 2,300 stipend on top of PAYOUT_GAS.
    uint256 internal constant NATIVE_GAS_NEEDED =
        FORWARDING_RESERVE + 2 * COLD_ACCOUNT_ACCESS + CALL_VALUE + CHECK_TO_CALL;
    /// @notice The least gas left at the check of a token push: a cold token and a cold delegate, no value; its
    ///         memory (the first 0x60 bytes) is memory every Solidity contract has touched, so costs nothing.
    uint256 internal constant TOKEN_GAS_NEEDED = FORWARDING_RESERVE + 2 * COLD_ACCOUNT_ACCESS + CHECK_TO_CALL;

    /// @notice Sends `amount` of `asset` (address(0): native coin) to `to`, giving the call exactly PAYOUT_GAS.
    /// @dev Reverts `InsufficientGasForPayout` when less than NATIVE_GAS_NEEDED (TOKEN_GAS_NEEDED) is left, checked
    ///      right before the CALL: else a caller could starve the push (63/64 rule) and turn a payout into a
    ///      deferral. Token semantics follow OpenZeppelin's SafeERC20: success means the call did not revert and
    ///      returned either nothing (from a contract) or `true`. Return data is never copied beyond one word, so a
    ///      return bomb costs the hub nothing.
    /// @return ok Whether the transfer happened.
    function tryPush(address asset, address to, uint256 amount) internal returns (bool ok) {
        bytes4 starved = IChannelHub.InsufficientGasForPayout.selector;
        // The bounds are constant expressions; unchecked lets the optimizer fold each into one PUSH instead of
        // evaluating checked arithmetic on every push.
        if (asset == address(0)) {
            uint256 needed;
            unchecked {
                needed = NATIVE_GAS_NEEDED;
            }
            assembly ("memory-safe") {
                if lt(gas(), needed) {
                    mstore(0x00, starved)
                    mstore(0x04, gas())
                    mstore(0x24, needed)
                    revert(0x00, 0x44)
                }
                ok := call(PAYOUT_GAS, to, amount, 0, 0, 0, 0)
            }
            return ok;
        }
        bytes4 selector = 0xa9059cbb; // IERC20.transfer(address,uint256)
        uint256 tokenNeeded;
        unchecked {
            tokenNeeded = TOKEN_GAS_NEEDED;
        }
        assembly ("memory-safe") {
            let fmp := mload(0x40)
            mstore(0x00, selector)
            mstore(0x04, and(to, shr(96, not(0))))
            mstore(0x24, amount)
            if lt(gas(), tokenNeeded) {
                mstore(0x00, starved)
                mstore(0x04, gas())
                mstore(0x24, tokenNeeded)
                revert(0x00, 0x44)
            }
            ok := call(PAYOUT_GAS, asset, 0, 0x00, 0x44, 0x00, 0x20)
            if ok {
                switch returndatasize()
                case 0 { ok := gt(extcodesize(asset), 0) }
                default { ok := and(gt(returndatasize(), 31), eq(mload(0x00), 1)) }
            }
            mstore(0x40, fmp)
        }
    }
}
