// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {
    BlocklistToken,
    FalseReturningToken,
    FeeOnTransferToken,
    GasHungryToken,
    NoReturnToken,
    RebasingToken
} from "../../contracts/test/TestTokens.sol";
import {ChannelId, ChannelParams, State} from "../../contracts/types/ChannelTypes.sol";

/// @dev The two calls every token of TestTokens.sol has, declared without return values.
interface MintableToken {
    function mint(address to, uint256 amount) external;
    function approve(address spender, uint256 amount) external;
}

/// @notice What docs/TOKENS.md says each kind of token does in a channel, shown on the hub. The document names the
///         test behind each of its rows (these, and the deposit and payout tests of the phase files).
contract TokensTest is HubTestBase {
    function test_noReturnToken_isDepositedAndPaidOut() public {
        NoReturnToken usdt = new NoReturnToken();
        (ChannelParams memory p, ChannelId id) = _openFunded(address(usdt), 100, 100);
        _closeFinal(p, id, [uint128(100), 100], [uint128(70), 130]);
        assertEq(usdt.balanceOf(alice), 70, "alice paid");
        assertEq(usdt.balanceOf(bob), 130, "bob paid");
    }

    function test_feeOnTransferToken_payeeGetsThePayoutLessTheFee() public {
        FeeOnTransferToken fee = new FeeOnTransferToken(100); // 1 % of every transfer, both ways
        (ChannelParams memory p, ChannelId id) = _openFunded(address(fee), 10_000, 10_000);
        assertEq(hub.getChannel(id).deposits[0], 9_900, "credited what arrived");
        _closeFinal(p, id, [uint128(9_900), 9_900], [uint128(10_000), 9_800]);
        assertEq(fee.balanceOf(alice), 9_900, "alice: her 10,000 payout less 1 %");
        assertEq(fee.balanceOf(bob), 9_702, "bob: his 9,800 payout less 1 %");
        assertEq(fee.balanceOf(address(hub)), 0, "the hub paid out exactly what it held");
    }

    function test_falseReturningToken_payoutIsDeferredUntilTheTokenPays() public {
        FalseReturningToken bad = new FalseReturningToken();
        (ChannelParams memory p, ChannelId id) = _openFunded(address(bad), 100, 100);
        bad.setRefuseTransfers(true);
        _closeFinal(p, id, [uint128(100), 100], [uint128(40), 160]);
        assertEq(hub.deferredPayout(address(bad), alice), 40, "alice deferred");
        assertEq(hub.deferredPayout(address(bad), bob), 160, "bob deferred");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(bad)));
        hub.withdraw(address(bad), bob);
        bad.setRefuseTransfers(false);
        vm.prank(bob);
        hub.withdraw(address(bad), bob);
        assertEq(bad.balanceOf(bob), 160, "bob withdrew once the token paid");
    }

    function test_blocklistToken_blockedHubDefersEveryPayoutUntilUnblocked() public {
        BlocklistToken blk = new BlocklistToken();
        (ChannelParams memory p, ChannelId id) = _openFunded(address(blk), 100, 100);
        blk.mint(address(this), 100);
        blk.approve(address(hub), 100);
        blk.setBlocked(address(hub), true);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.Blocked.selector, address(hub)));
        hub.deposit(id, 0, 100);
        _closeFinal(p, id, [uint128(100), 100], [uint128(50), 150]);
        assertEq(hub.deferredPayout(address(blk), alice), 50, "alice deferred");
        assertEq(hub.deferredPayout(address(blk), bob), 150, "bob deferred");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.Blocked.selector, address(hub)));
        hub.withdraw(address(blk), bob);
        blk.setBlocked(address(hub), false);
        vm.prank(bob);
        hub.withdraw(address(blk), bob);
        assertEq(blk.balanceOf(bob), 150, "paid once the hub is unblocked");
    }

    function test_expensiveToken_payoutIsDeferredAndWithdrawnWithMoreGas() public {
        GasHungryToken heavy = new GasHungryToken(2 * hub.PAYOUT_GAS()); // its transfer needs twice PAYOUT_GAS
        (ChannelParams memory p, ChannelId id) = _openFunded(address(heavy), 100, 100);
        _closeFinal(p, id, [uint128(100), 100], [uint128(100), 100]);
        assertEq(hub.deferredPayout(address(heavy), alice), 100, "the push could not pay alice");
        vm.prank(alice);
        hub.withdraw(address(heavy), alice); // withdraw forwards all the gas it has
        assertEq(heavy.balanceOf(alice), 100, "alice withdrew");
    }

    /// docs/TOKENS.md, negative rebase: the hub pays each channel what its state says, in the order channels close,
    /// so the whole loss falls on whoever closes last.
    function test_rebasingToken_negativeRebaseLeavesTheLastChannelToCloseShort() public {
        RebasingToken reb = new RebasingToken();
        (ChannelParams memory first, ChannelId firstId) = _openFunded(address(reb), 120, 120);
        (ChannelParams memory last, ChannelId lastId) = _openFunded(address(reb), 120, 120);
        reb.rebase(3, 4); // -25 %
        assertEq(reb.balanceOf(address(hub)), 360, "the hub holds 360 for 480 of deposits");
        assertEq(hub.getChannel(lastId).deposits[0], 120, "the deposits it records do not change");

        _closeFinal(first, firstId, [uint128(120), 120], [uint128(150), 90]);
        assertEq(reb.balanceOf(alice), 150, "the first channel to close: alice paid in full");
        assertEq(reb.balanceOf(bob), 90, "the first channel to close: bob paid in full");

        // Participant 0's payout is pushed first and still fits; participant 1's no longer does and is deferred.
        _closeFinal(last, lastId, [uint128(120), 120], [uint128(60), 180]);
        assertEq(reb.balanceOf(alice), 150 + 60, "alice's 60 still fit");
        assertEq(reb.balanceOf(bob), 90, "bob's 180 did not");
        assertEq(hub.deferredPayout(address(reb), bob), 180, "deferred to withdraw");
        assertEq(reb.balanceOf(address(hub)), 60, "60 left for 180 owed: the last channel bears the 120 lost");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(RebasingToken.InsufficientShares.selector, address(hub), 240, 80));
        hub.withdraw(address(reb), bob);

        // The withdrawal goes through only once someone deposits the token into another channel, which is then
        // the one that is short.
        (, ChannelId nextId) = _openFunded(address(reb), 120, 120);
        vm.prank(bob);
        hub.withdraw(address(reb), bob);
        assertEq(reb.balanceOf(bob), 90 + 180, "bob paid out of the next channel's deposits");
        assertEq(hub.getChannel(nextId).deposits[0] + hub.getChannel(nextId).deposits[1], 240, "next records 240");
        assertEq(reb.balanceOf(address(hub)), 120, "but the hub holds only 120 for it");
    }

    /// docs/TOKENS.md, positive rebase: payouts stay what the states say; the surplus belongs to no channel.
    function test_rebasingToken_positiveRebaseSurplusStaysInTheHubUnclaimed() public {
        RebasingToken reb = new RebasingToken();
        (ChannelParams memory p, ChannelId id) = _openFunded(address(reb), 100, 100);
        reb.rebase(2, 1); // +100 %
        assertEq(reb.balanceOf(address(hub)), 400, "the hub holds 400 for 200 of deposits");

        _closeFinal(p, id, [uint128(100), 100], [uint128(150), 50]);
        assertEq(reb.balanceOf(alice), 150, "alice gets what the state says");
        assertEq(reb.balanceOf(bob), 50, "bob too");
        assertEq(reb.balanceOf(address(hub)), 200, "the surplus stays in the hub");
        for (uint256 i; i < 2; ++i) {
            address who = i == 0 ? alice : bob;
            assertEq(hub.deferredPayout(address(reb), who), 0, "owed to nobody");
            vm.prank(who);
            vm.expectRevert(abi.encodeWithSelector(IChannelHub.NothingToWithdraw.selector, who, address(reb)));
            hub.withdraw(address(reb), who);
        }
    }

    /// @dev Opens a channel of `asset` (any token of TestTokens.sol) and deposits `a0` and `a1` for its participants.
    function _openFunded(address asset, uint256 a0, uint256 a1) internal returns (ChannelParams memory p, ChannelId id) {
        (p, id) = _open(asset);
        MintableToken(asset).mint(address(this), a0 + a1);
        MintableToken(asset).approve(address(hub), a0 + a1); // no return value read: NoReturnToken returns none
        hub.deposit(id, 0, a0);
        hub.deposit(id, 1, a1);
    }

    function _closeFinal(ChannelParams memory p, ChannelId id, uint128[2] memory deposits, uint128[2] memory balances)
        internal
    {
        State memory s = _state(id, 1, deposits, balances);
        s.isFinal = true;
        hub.closeCooperatively(p, _sign(s));
    }
}
