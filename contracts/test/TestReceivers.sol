// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Payout receivers that misbehave, for tests only.

/// @notice Rejects every native-coin payment.
contract RevertingReceiver {
    error NoThanks();

    receive() external payable {
        revert NoThanks();
    }
}

/// @notice Burns all the gas it is given when paid.
contract GasBurningReceiver {
    receive() external payable {
        while (true) {}
    }
}
