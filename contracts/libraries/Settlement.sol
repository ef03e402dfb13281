// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ChannelId} from "../types/ChannelTypes.sol";
import {IChannelHub} from "../interfaces/IChannelHub.sol";

/// @title Settlement
/// @notice Payout arithmetic of a channel: pure, so it is fuzzed on its own.
/// @dev Participant i receives its free balance, what the locks credit it, and whatever was deposited on chain
///      for it beyond what the state accounts for. Payouts always add up to the on-chain deposits.
library Settlement {
    /// @notice Checks a state can be enforced against the on-chain deposits: it accounts for no more than was
    ///         deposited for each participant, and its free balances do not exceed what it accounts for.
    function requireFunded(
        ChannelId id,
        uint256[2] memory onChain,
        uint128[2] calldata stateDeposits,
        uint128[2] calldata balances
    ) internal pure {
        _requireDeposited(id, onChain, stateDeposits);
        uint256 allocated = uint256(balances[0]) + balances[1];
        uint256 deposited = uint256(stateDeposits[0]) + stateDeposits[1];
        if (allocated > deposited) revert IChannelHub.AmountsDoNotAddUp(id, allocated, deposited);
    }

    /// @notice Final payouts of a state whose locks are resolved.
    /// @param onChain The participants' on-chain deposit totals.
    /// @param stateDeposits The deposits the state accounts for.
    /// @param balances The state's free balances.
    /// @param credited What the resolved locks give each participant.
    /// @param locked The sum of all lock amounts.
    function payouts(
        ChannelId id,
        uint256[2] memory onChain,
        uint128[2] memory stateDeposits,
        uint128[2] memory balances,
        uint256[2] memory credited,
        uint256 locked
    ) internal pure returns (uint256[2] memory out) {
        _requireDeposited(id, onChain, stateDeposits);
        // Each term is below 2^128 and there are at most 258 of them: no overflow before the check.
        uint256 allocated = uint256(balances[0]) + balances[1] + locked;
        uint256 deposited = uint256(stateDeposits[0]) + stateDeposits[1];
        if (allocated != deposited) revert IChannelHub.AmountsDoNotAddUp(id, allocated, deposited);
        out[0] = balances[0] + credited[0] + (onChain[0] - stateDeposits[0]);
        out[1] = balances[1] + credited[1] + (onChain[1] - stateDeposits[1]);
    }

    /// @dev A state may account for no more than was deposited on chain for each participant.
    function _requireDeposited(ChannelId id, uint256[2] memory onChain, uint128[2] memory stateDeposits)
        private
        pure
    {
        for (uint8 i; i < 2; ++i) {
            if (stateDeposits[i] > onChain[i]) {
                revert IChannelHub.StateUnderfunded(id, i, stateDeposits[i], onChain[i]);
            }
        }
    }
}
