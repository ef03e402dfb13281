// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {CheatTest} from "./helpers/HubTestBase.sol";
import {Settlement} from "../../contracts/libraries/Settlement.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {ChannelId} from "../../contracts/types/ChannelTypes.sol";

/// @dev Exposes the pure payout arithmetic so reverts can be observed as calls.
contract SettlementHarness {
    function payouts(
        uint256[2] memory onChain,
        uint128[2] memory stateDeposits,
        uint128[2] memory balances,
        uint256[2] memory credited,
        uint256 locked
    ) external pure returns (uint256[2] memory) {
        return Settlement.payouts(ChannelId.wrap(0), onChain, stateDeposits, balances, credited, locked);
    }
}

contract SettlementTest is CheatTest {
    SettlementHarness internal harness = new SettlementHarness();

    function testFuzz_payouts_addUpToOnChainDeposits(
        uint120[2] memory ds,
        uint120[2] memory late,
        uint256 split,
        uint256 lockedShare,
        uint256 paidShare
    ) public view {
        uint256 locked = lockedShare % (uint256(ds[0]) + ds[1] + 1);
        uint256 free = uint256(ds[0]) + ds[1] - locked;
        uint128[2] memory balances = [uint128(split % (free + 1)), 0];
        balances[1] = uint128(free - balances[0]);
        uint256[2] memory credited = [paidShare % (locked + 1), 0];
        credited[1] = locked - credited[0];
        uint256[2] memory onChain = [uint256(ds[0]) + late[0], uint256(ds[1]) + late[1]];
        uint256[2] memory out = harness.payouts(onChain, [uint128(ds[0]), ds[1]], balances, credited, locked);
        assertEq(out[0] + out[1], onChain[0] + onChain[1], "payouts == deposits");
        assertEq(out[0], uint256(balances[0]) + credited[0] + late[0], "participant 0");
    }

    function testFuzz_payouts_rejectStatesThatDoNotAddUp(uint120 ds0, uint120 ds1, uint128 b0, uint128 b1) public {
        vm.assume(uint256(b0) + b1 != uint256(ds0) + ds1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChannelHub.AmountsDoNotAddUp.selector,
                ChannelId.wrap(0),
                uint256(b0) + b1,
                uint256(ds0) + ds1
            )
        );
        harness.payouts([uint256(ds0), ds1], [uint128(ds0), ds1], [b0, b1], [uint256(0), 0], 0);
    }

    function testFuzz_payouts_rejectStatesClaimingMoreThanDeposited(uint120 onChain1, uint128 claimed1) public {
        vm.assume(claimed1 > onChain1);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.StateUnderfunded.selector, ChannelId.wrap(0), 1, claimed1, onChain1)
        );
        harness.payouts([uint256(0), onChain1], [uint128(0), claimed1], [uint128(0), claimed1], [uint256(0), 0], 0);
    }
}
