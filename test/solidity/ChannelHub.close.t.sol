// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {ChannelId, ChannelParams, ChannelStatus, Lock, SignedState, State} from "../../contracts/types/ChannelTypes.sol";

contract ChannelHubCooperativeCloseTest is HubTestBase {
    function _final(ChannelId id, uint64 seq, uint128[2] memory deposits, uint128[2] memory balances)
        internal
        pure
        returns (State memory s)
    {
        s = _state(id, seq, deposits, balances);
        s.isFinal = true;
    }

    function test_closeCooperatively_paysBothNativeAtOnce() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 3 ether, 1 ether);
        hub.closeCooperatively(p, _sign(_final(id, 7, [uint128(3 ether), 1 ether], [uint128(1 ether), 3 ether])));
        assertEq(alice.balance, 1 ether, "alice paid");
        assertEq(bob.balance, 3 ether, "bob paid");
        assertEq(address(hub).balance, 0, "hub empty");
        assertTrue(_status(id) == ChannelStatus.Closed, "closed");
        assertEq(hub.getChannel(id).seq, 0, "an undisputed close writes no sequence number");
    }

    function test_closeCooperatively_paysBothTokens() public {
        (ChannelParams memory p, ChannelId id) = _open(address(token));
        _fund(p, id, 600, 400);
        hub.closeCooperatively(p, _sign(_final(id, 2, [uint128(600), 400], [uint128(250), 750])));
        assertEq(token.balanceOf(alice), 250, "alice paid");
        assertEq(token.balanceOf(bob), 750, "bob paid");
        assertEq(token.balanceOf(address(hub)), 0, "hub empty");
    }

    function test_closeCooperatively_returnsLaterDepositsToTheirParticipant() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 2 ether, 0);
        State memory s = _final(id, 1, [uint128(2 ether), 0], [uint128(1 ether), 1 ether]);
        _deposit(p, id, 1, 5 ether); // after the state was signed: must not void it
        hub.closeCooperatively(p, _sign(s));
        assertEq(alice.balance, 1 ether, "alice");
        assertEq(bob.balance, 6 ether, "bob gets his late deposit back");
    }

    function test_closeCooperatively_paysToPayeesWhenSet() public {
        ChannelParams memory p = _params(address(0));
        p.payees = [address(0xA1), address(0)];
        ChannelId id = hub.open(p);
        _fund(p, id, 1 ether, 1 ether);
        hub.closeCooperatively(p, _sign(_final(id, 1, [uint128(1 ether), 1 ether], [uint128(1 ether), 1 ether])));
        assertEq(address(0xA1).balance, 1 ether, "payee of alice");
        assertEq(alice.balance, 0, "alice's key receives nothing");
        assertEq(bob.balance, 1 ether, "bob");
    }

    function test_closeCooperatively_worksWhileDisputed() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 1 ether);
        _forceClose(p, _sign(_state(id, 4, [uint128(1 ether), 1 ether], [uint128(1 ether), 1 ether])));
        hub.closeCooperatively(p, _sign(_final(id, 5, [uint128(1 ether), 1 ether], [uint128(0), 2 ether])));
        assertEq(bob.balance, 2 ether, "bob");
        assertTrue(_status(id) == ChannelStatus.Closed, "closed");
        assertEq(hub.getChannel(id).seq, 5, "the final number replaces the registered one");
        assertTrue(hub.getChannel(id).stateHash == bytes32(0), "registered state cleared");
    }

    function test_closeCooperatively_revertsOnOlderFinalStateWhileDisputed() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 1 ether);
        _forceClose(p, _sign(_state(id, 4, [uint128(1 ether), 1 ether], [uint128(1 ether), 1 ether])));
        SignedState memory old = _sign(_final(id, 3, [uint128(1 ether), 1 ether], [uint128(0), 2 ether]));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StaleSequence.selector, id, 3, 4));
        hub.closeCooperatively(p, old);
    }

    function test_closeCooperatively_revertsOnNonFinalState() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        SignedState memory s = _sign(_state(id, 1, [uint128(1 ether), 0], [uint128(1 ether), 0]));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StateNotFinal.selector, id));
        hub.closeCooperatively(p, s);
    }

    function test_closeCooperatively_revertsOnPendingLocks() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        Lock[] memory locks = new Lock[](1);
        locks[0] = _lock(0, 1, bytes32(uint256(1)), uint64(START + 1 days));
        State memory s = _final(id, 1, [uint128(1 ether), 0], [uint128(1 ether - 1), 0]);
        s.locksHash = hub.hashLocks(locks);
        SignedState memory signed = _sign(s);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StateHasLocks.selector, id));
        hub.closeCooperatively(p, signed);
    }

    function test_closeCooperatively_revertsOnWrongSigner() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        SignedState memory s = _signWith(_final(id, 1, [uint128(1 ether), 0], [uint128(1 ether), 0]), ALICE_PK, 0xBAD);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 1));
        hub.closeCooperatively(p, s);
        s = _signWith(_final(id, 1, [uint128(1 ether), 0], [uint128(1 ether), 0]), BOB_PK, BOB_PK);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.closeCooperatively(p, s);
    }

    function test_closeCooperatively_revertsWhenAmountsDoNotAddUp() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 1 ether);
        SignedState memory s = _sign(_final(id, 1, [uint128(1 ether), 1 ether], [uint128(1 ether), 0.5 ether]));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.AmountsDoNotAddUp.selector, id, 1.5 ether, 2 ether));
        hub.closeCooperatively(p, s);
    }

    function test_closeCooperatively_revertsWhenStateClaimsUndepositedFunds() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        SignedState memory s = _sign(_final(id, 1, [uint128(1 ether), 1 ether], [uint128(1 ether), 1 ether]));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StateUnderfunded.selector, id, 1, 1 ether, 0));
        hub.closeCooperatively(p, s);
    }

    function test_closeCooperatively_revertsOnceClosed() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 0);
        SignedState memory s = _sign(_final(id, 1, [uint128(1 ether), 0], [uint128(1 ether), 0]));
        hub.closeCooperatively(p, s);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotClosable.selector, id, ChannelStatus.Closed));
        hub.closeCooperatively(p, s);
    }
}
