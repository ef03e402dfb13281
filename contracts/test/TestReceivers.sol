// SPDX-License-Identifier: MIT
// solhint-disable one-contract-per-file
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

/// @notice Refuses native coin until told otherwise, and can collect a deferred payout from a hub.
contract ToggleReceiver {
    bool public accepting;

    error NotAccepting();

    function setAccepting(bool value) external {
        accepting = value;
    }

    function withdrawFrom(address hub, address asset, address to) external {
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok, bytes memory reason) = hub.call(abi.encodeWithSignature("withdraw(address,address)", asset, to));
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
    }

    receive() external payable {
        if (!accepting) revert NotAccepting();
    }
}
