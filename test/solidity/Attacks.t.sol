// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {HostileSigner, ReentrantReceiver, ReentrantToken} from "../../contracts/test/Adversaries.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {
    ChannelId,
    ChannelParams,
    ChannelStatus,
    Lock,
    SignedState,
    State,
    TransferOutcome
} from "../../contracts/types/ChannelTypes.sol";

/// @notice Named attacks on the hub; each must fail (docs/SECURITY.md lists them with these tests).
contract AttacksTest is HubTestBase {
    function test_erc1271SignerThatRevertsIsAnInvalidSignature() public {
        HostileSigner signer = new HostileSigner();
        ChannelParams memory p = _params(address(0));
        p.participants = [address(signer), bob];
        ChannelId id = hub.open(p);
        _fund(p, id, 1 ether, 1 ether);
        State memory s = _state(id, 1, [uint128(1 ether), 1 ether], [uint128(0), 2 ether]);
        SignedState memory signed = _sign(s); // any bytes for the contract: it is asked, and reverts
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.forceClose(p, signed);
        signer.setGarbage(true);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.forceClose(p, signed);
    }

    function test_tokenReenteringDepositIsRefused() public {
        ReentrantToken bad = new ReentrantToken();
        (, ChannelId id) = _open(address(bad));
        bad.mint(address(this), 200);
        bad.approve(address(hub), 200);
        bad.arm(hub, id);
        vm.expectRevert(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        hub.deposit(id, 0, 100);
        assertEq(hub.getChannel(id).deposits[0], 0, "nothing credited");
    }

    function test_receiverReenteringOnPayoutIsDeferredAndPaysOnce() public {
        ReentrantReceiver sink = new ReentrantReceiver();
        ChannelParams memory p = _params(address(0));
        p.payees = [address(sink), address(0)];
        ChannelId id = hub.open(p);
        _fund(p, id, 1 ether, 1 ether);
        State memory s = _state(id, 1, [uint128(1 ether), 1 ether], [uint128(1.5 ether), 0.5 ether]);
        s.isFinal = true;
        SignedState memory signed = _sign(s);
        sink.aim(hub, p, signed);
        hub.closeCooperatively(p, signed);
        assertEq(hub.deferredPayout(address(0), address(sink)), 1.5 ether, "refused payment waits for withdraw");
        assertEq(bob.balance, 0.5 ether, "bob paid once");
        assertEq(address(hub).balance, 1.5 ether, "only the deferred payout is left");
    }

    function test_frontRunSettleChangesNothing() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 1 ether);
        State memory s = _state(id, 2, [uint128(1 ether), 1 ether], [uint128(0.25 ether), 1.75 ether]);
        _forceClose(p, _sign(s));
        vm.warp(START + PERIOD);
        vm.prank(address(0xBAD));
        hub.settle(p, s, new Lock[](0), 0); // a stranger gets there first
        assertEq(alice.balance, 0.25 ether, "alice as signed");
        assertEq(bob.balance, 1.75 ether, "bob as signed");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotDisputed.selector, id, ChannelStatus.Closed));
        hub.settle(p, s, new Lock[](0), 0);
    }

    function test_frontRunRevealStillPaysTheLockReceiver() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        bytes32 secret = keccak256("secret");
        Lock[] memory locks = new Lock[](1);
        locks[0] = _lock(0, 0.5 ether, secret, uint64(START + 2 hours));
        State memory s = _state(id, 1, [uint128(1 ether), 0], [uint128(0.5 ether), 0]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.prank(address(0xBAD));
        registry.reveal(secret); // copied from Bob's pending transaction
        vm.warp(START + 2 hours + 1);
        hub.settle(p, s, locks, 0);
        assertEq(bob.balance, 0.5 ether, "the receiver is paid whoever revealed");
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "paid");
    }

    function test_zeroAmountLockMovesNothing() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        Lock[] memory locks = new Lock[](1);
        locks[0] = _lock(0, 0, keccak256("z"), uint64(START + 10 minutes));
        State memory s = _state(id, 1, [uint128(1 ether), 0], [uint128(1 ether), 0]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(START + PERIOD);
        hub.settle(p, s, locks, 0);
        assertEq(alice.balance, 1 ether, "all back to alice");
    }

    function test_maxUint128BalancesCannotClaimUndepositedFunds() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        uint128 max = type(uint128).max;
        State memory s = _state(id, 1, [max, 0], [max, 0]);
        SignedState memory signed = _sign(s);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StateUnderfunded.selector, id, 0, max, 1 ether));
        hub.forceClose(p, signed);
    }

    /// Griefing with locks: the largest state a client signs (MAX_LOCKS) settles far below a block's gas limit.
    function test_settleWithMaxLocksFitsInABlock() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 1 ether);
        uint256 max = hub.MAX_LOCKS();
        Lock[] memory locks = new Lock[](max);
        for (uint256 i; i < max; ++i) {
            locks[i] = _lock(uint8(i % 2), 1, bytes32(i + 1), uint64(START + 10 minutes));
        }
        uint128 half = uint128(max / 2);
        State memory s = _state(id, 1, [uint128(1 ether), 1 ether], [uint128(1 ether) - half, uint128(1 ether) - half]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(START + PERIOD);
        uint256 before = gasleft();
        hub.settle(p, s, locks, 0);
        uint256 used = before - gasleft();
        assertTrue(used < 30_000_000 / 10, "settle of MAX_LOCKS uses under a tenth of a 30M block");
    }
}
