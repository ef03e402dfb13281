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

/// @notice Needs every unit of gas a payout gives it: reverts when it is entered with less than `need`. With `need`
///         zero it records the gas it was entered with instead, to calibrate `need` on a call given the full gas.
contract GasHungryReceiver {
    uint256 public immutable need;
    uint256 public seen;

    error NeedsMoreGas(uint256 given, uint256 need);

    constructor(uint256 need_) {
        need = need_;
    }

    receive() external payable {
        _enter(gasleft()); // first thing: every instance reaches this point at the same cost
    }

    function _enter(uint256 given) private {
        if (need == 0) seen = given;
        else if (given < need) revert NeedsMoreGas(given, need);
    }
}
