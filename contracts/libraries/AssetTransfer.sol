// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title AssetTransfer
/// @notice Payouts that cannot be held hostage: a bounded-gas push that reports failure instead of reverting,
///         so one participant's reverting receiver, gas-burning hook or blocklisting token never blocks the other
///         participant's payout in the same transaction.
library AssetTransfer {
    /// @notice Sends `amount` of `asset` (address(0): native coin) to `to`, giving the call at most `gasLimit`.
    /// @dev Token semantics follow OpenZeppelin's SafeERC20: success means the call did not revert and returned
    ///      either nothing (from a contract) or `true`. Return data is never copied beyond one word, so a return
    ///      bomb costs the hub nothing.
    /// @return ok Whether the transfer happened.
    function tryPush(address asset, address to, uint256 amount, uint256 gasLimit) internal returns (bool ok) {
        if (asset == address(0)) {
            assembly ("memory-safe") {
                ok := call(gasLimit, to, amount, 0, 0, 0, 0)
            }
            return ok;
        }
        bytes4 selector = 0xa9059cbb; // IERC20.transfer(address,uint256)
        assembly ("memory-safe") {
            let fmp := mload(0x40)
            mstore(0x00, selector)
            mstore(0x04, and(to, shr(96, not(0))))
            mstore(0x24, amount)
            ok := call(gasLimit, asset, 0, 0x00, 0x44, 0x00, 0x20)
            if ok {
                switch returndatasize()
                case 0 { ok := gt(extcodesize(asset), 0) }
                default { ok := and(gt(returndatasize(), 31), eq(mload(0x00), 1)) }
            }
            mstore(0x40, fmp)
        }
    }
}
