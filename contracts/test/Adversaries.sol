// SPDX-License-Identifier: MIT
// solhint-disable one-contract-per-file
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {IChannelHub} from "../interfaces/IChannelHub.sol";
import {ChannelId, ChannelParams, SignedState} from "../types/ChannelTypes.sol";

// Hostile contracts for the attack tests only.

/// @notice An ERC-1271 signer whose check reverts (or answers garbage), as a broken or hostile wallet would.
contract HostileSigner {
    bool public garbage;

    error NoSignaturesToday();

    function setGarbage(bool value) external {
        garbage = value;
    }

    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        if (garbage) return 0xdeadbeef;
        revert NoSignaturesToday();
    }
}

/// @notice A token that re-enters the hub from inside `transferFrom`, trying to be credited twice.
contract ReentrantToken is ERC20 {
    IChannelHub public hub;
    ChannelId public victim;
    bool public armed;

    constructor() ERC20("Reentrant", "RE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(IChannelHub hub_, ChannelId target_) external {
        hub = hub_;
        victim = target_;
        armed = true;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (armed) {
            armed = false;
            hub.deposit(victim, 0, value); // re-entry: must be refused
        }
        return super.transferFrom(from, to, value);
    }
}

/// @notice A payee that tries to re-enter the hub when paid: settle again, or close again.
contract ReentrantReceiver {
    IChannelHub public hub;
    ChannelParams internal _params;
    SignedState internal _signed;
    bool public attempted;

    function aim(IChannelHub hub_, ChannelParams calldata params, SignedState calldata signed) external {
        hub = hub_;
        _params = params;
        _signed = signed;
    }

    // solhint-disable-next-line no-complex-fallback
    receive() external payable {
        attempted = true;
        hub.closeCooperatively(_params, _signed); // re-entry: reverts, so this payment is refused and deferred
    }
}
