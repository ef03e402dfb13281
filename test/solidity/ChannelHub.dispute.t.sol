// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {ChannelHub} from "../../contracts/ChannelHub.sol";
import {ChannelId, ChannelInfo, ChannelParams, ChannelStatus, Lock, SignedState, State} from "../../contracts/types/ChannelTypes.sol";

contract ChannelHubDisputeTest is HubTestBase {
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    ChannelParams internal p;
    ChannelId internal id;

    function setUp() public override {
        super.setUp();
        (p, id) = _open(address(0));
        _fund(p, id, 2 ether, 2 ether);
    }

    function _s(uint64 seq, uint128 b0, uint128 b1) internal view returns (State memory) {
        return _state(id, seq, [uint128(2 ether), 2 ether], [b0, b1]);
    }

    function test_forceClose_registersStateAndDeadline() public {
        _forceClose(p, _sign(_s(3, 1 ether, 3 ether)));
        ChannelInfo memory info = hub.getChannel(id);
        assertTrue(info.status == ChannelStatus.Disputed, "disputed");
        assertEq(info.seq, 3, "seq");
        assertEq(info.deadline, START + PERIOD, "deadline");
        assertTrue(info.stateHash != bytes32(0), "state hash");
    }

    function test_forceClose_onlyByParticipant() public {
        SignedState memory s = _sign(_s(1, 2 ether, 2 ether));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NotParticipant.selector, id, address(this)));
        hub.forceClose(p, s);
    }

    function test_forceClose_revertsWhenAlreadyDisputed() public {
        _forceClose(p, _sign(_s(1, 2 ether, 2 ether)));
        SignedState memory s = _sign(_s(2, 2 ether, 2 ether));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotOpen.selector, id, ChannelStatus.Disputed));
        hub.forceClose(p, s);
    }

    function test_forceClose_revertsWhenBalancesExceedDeposits() public {
        SignedState memory s = _sign(_s(1, 3 ether, 2 ether));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.AmountsDoNotAddUp.selector, id, 5 ether, 4 ether));
        hub.forceClose(p, s);
    }

    function test_forceClose_revertsOnUnderfundedState() public {
        State memory s = _s(1, 3 ether, 2 ether);
        s.deposits = [uint128(3 ether), 2 ether];
        SignedState memory signed = _sign(s);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StateUnderfunded.selector, id, 0, 3 ether, 2 ether));
        hub.forceClose(p, signed);
    }

    function test_forceClose_rejectsHighSSignature() public {
        SignedState memory s = _sign(_s(1, 2 ether, 2 ether));
        // The same signature with s' = n - s and the other v is valid for raw ecrecover, but malleable.
        bytes memory sig = s.signatures[1];
        bytes32 r;
        bytes32 lowS;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            lowS := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        bytes32 highS = bytes32(SECP256K1_N - uint256(lowS));
        uint8 flippedV = v == 27 ? 28 : 27;
        assertTrue(ecrecover(hub.stateDigest(s.state), flippedV, r, highS) == bob, "raw ecrecover accepts it");
        s.signatures[1] = abi.encodePacked(r, highS, flippedV);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 1));
        hub.forceClose(p, s);
    }

    function test_forceClose_rejectsWrongLengthSignature() public {
        SignedState memory s = _sign(_s(1, 2 ether, 2 ether));
        s.signatures[0] = abi.encodePacked(s.signatures[0], bytes1(0));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.forceClose(p, s);
    }

    function test_forceClose_rejectsStateOfAnotherChannel() public {
        (ChannelParams memory p2, ChannelId id2) = _open(address(0));
        _fund(p2, id2, 2 ether, 2 ether);
        SignedState memory other = _sign(_state(id2, 9, [uint128(2 ether), 2 ether], [uint128(0), 4 ether]));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.WrongChannel.selector, id, id2));
        hub.forceClose(p, other);
    }

    function test_forceClose_rejectsSignatureMadeForAnotherChain() public {
        // Sign as the hub at this address would see it on chain 31338, then submit on this chain.
        State memory s = _s(1, 0, 4 ether);
        uint256 here = block.chainid;
        vm.chainId(31338);
        SignedState memory signedElsewhere = _sign(s);
        vm.chainId(here);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.forceClose(p, signedElsewhere);
    }

    function test_forceClose_rejectsSignatureMadeForAnotherHub() public {
        ChannelHub otherHub = new ChannelHub(registry);
        State memory s = _s(1, 0, 4 ether);
        bytes32 digest = otherHub.stateDigest(s);
        SignedState memory signed;
        signed.state = s;
        signed.signatures[0] = _sig(ALICE_PK, digest);
        signed.signatures[1] = _sig(BOB_PK, digest);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.forceClose(p, signed);
    }

    function test_forceCloseWithDeposits_registersOpeningDeposits() public {
        vm.prank(bob);
        hub.forceCloseWithDeposits(p);
        ChannelInfo memory info = hub.getChannel(id);
        assertTrue(info.status == ChannelStatus.Disputed, "disputed");
        assertEq(info.seq, 0, "seq 0");
        vm.warp(START + PERIOD);
        hub.settle(p, _s(0, 2 ether, 2 ether), new Lock[](0), 0);
        assertEq(alice.balance, 2 ether, "alice gets her deposit");
        assertEq(bob.balance, 2 ether, "bob gets his deposit");
    }

    function test_forceCloseWithDeposits_onlyByParticipant() public {
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NotParticipant.selector, id, address(this)));
        hub.forceCloseWithDeposits(p);
    }

    function test_challenge_replacesWithNewerStateKeepingDeadline() public {
        _forceClose(p, _sign(_s(3, 4 ether, 0)));
        vm.warp(START + PERIOD - 1);
        hub.challenge(p, _sign(_s(5, 1 ether, 3 ether))); // anyone may challenge
        ChannelInfo memory info = hub.getChannel(id);
        assertEq(info.seq, 5, "seq");
        assertEq(info.deadline, START + PERIOD, "deadline not extended");
        vm.warp(START + PERIOD);
        hub.settle(p, _s(5, 1 ether, 3 ether), new Lock[](0), 0);
        assertEq(alice.balance, 1 ether, "alice");
        assertEq(bob.balance, 3 ether, "bob");
    }

    function test_challenge_revertsOnEqualOrOlderSequence() public {
        _forceClose(p, _sign(_s(5, 4 ether, 0)));
        SignedState memory same = _sign(_s(5, 0, 4 ether));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StaleSequence.selector, id, 5, 5));
        hub.challenge(p, same);
        SignedState memory older = _sign(_s(4, 0, 4 ether));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StaleSequence.selector, id, 4, 5));
        hub.challenge(p, older);
    }

    function test_challenge_revertsAtDeadline() public {
        _forceClose(p, _sign(_s(1, 4 ether, 0)));
        SignedState memory newer = _sign(_s(2, 0, 4 ether));
        vm.warp(START + PERIOD);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChallengePeriodOver.selector, id, START + PERIOD));
        hub.challenge(p, newer);
    }

    function test_challenge_revertsWhenNotDisputed() public {
        SignedState memory s = _sign(_s(2, 0, 4 ether));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotDisputed.selector, id, ChannelStatus.Open));
        hub.challenge(p, s);
    }

    function test_challenge_revertsOnInvalidSignature() public {
        _forceClose(p, _sign(_s(1, 4 ether, 0)));
        SignedState memory s = _signWith(_s(2, 0, 4 ether), BOB_PK, BOB_PK);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.challenge(p, s);
    }
}
