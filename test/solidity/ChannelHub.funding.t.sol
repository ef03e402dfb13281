// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase, Vm} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {FeeOnTransferToken, FalseReturningToken} from "../../contracts/test/TestTokens.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ChannelId, ChannelInfo, ChannelParams, ChannelStatus} from "../../contracts/types/ChannelTypes.sol";

contract ChannelHubFundingTest is HubTestBase {
    function test_open_derivesIdFromChainHubAndParams() public {
        ChannelParams memory p = _params(address(0));
        ChannelId id = hub.open(p);
        bytes32 expected = keccak256(abi.encode(block.chainid, address(hub), p));
        assertTrue(ChannelId.unwrap(id) == expected, "channel id");
        assertTrue(ChannelId.unwrap(hub.channelId(p)) == expected, "channelId view");
        ChannelInfo memory info = hub.getChannel(id);
        assertTrue(info.status == ChannelStatus.Open, "status");
        assertEq(info.deposits[0] + info.deposits[1], 0, "no deposits");
    }

    function test_open_storesTokenAsset() public {
        (, ChannelId id) = _open(address(token));
        assertTrue(hub.getChannel(id).asset == address(token), "asset");
    }

    function test_open_revertsOnZeroOrEqualParticipants() public {
        ChannelParams memory p = _params(address(0));
        p.participants[1] = address(0);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidParticipants.selector, alice, address(0)));
        hub.open(p);
        p.participants[1] = alice;
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidParticipants.selector, alice, alice));
        hub.open(p);
    }

    function test_open_revertsOnChallengePeriodOutOfRange() public {
        ChannelParams memory p = _params(address(0));
        p.challengePeriod = 4 minutes;
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.InvalidChallengePeriod.selector, 4 minutes, 5 minutes, 30 days)
        );
        hub.open(p);
        p.challengePeriod = 31 days;
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.InvalidChallengePeriod.selector, 31 days, 5 minutes, 30 days)
        );
        hub.open(p);
    }

    function test_open_revertsOnAssetWithoutCode() public {
        ChannelParams memory p = _params(address(0xBEEF));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidAsset.selector, address(0xBEEF)));
        hub.open(p);
    }

    function test_open_revertsWhenChannelExists() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelExists.selector, id));
        hub.open(p);
    }

    function test_openAndDeposit_opensAndCreditsInOneCall() public {
        ChannelParams memory p = _params(address(0));
        vm.deal(address(this), 2 ether);
        ChannelId id = hub.openAndDeposit{value: 2 ether}(p, 1, 2 ether);
        ChannelInfo memory info = hub.getChannel(id);
        assertTrue(info.status == ChannelStatus.Open, "open");
        assertEq(info.deposits[1], 2 ether, "credited");

        ChannelParams memory q = _params(address(token));
        token.mint(address(this), 300);
        token.approve(address(hub), 300);
        ChannelId tid = hub.openAndDeposit(q, 0, 300);
        assertEq(hub.getChannel(tid).deposits[0], 300, "token credited");
    }

    function test_openAndDeposit_emitsOneEventWithTheParametersAndTheOpeningDeposit() public {
        ChannelParams memory p = _params(address(0));
        vm.deal(address(this), 2 ether);
        vm.expectEmit(address(hub));
        emit IChannelHub.ChannelOpened(hub.channelId(p), _packedOpening(p, 1, 2 ether));
        hub.openAndDeposit{value: 2 ether}(p, 1, 2 ether);
        ChannelParams memory q = _params(address(0));
        vm.expectEmit(address(hub));
        emit IChannelHub.ChannelOpened(hub.channelId(q), _packedOpening(q, 0, 0));
        hub.open(q);
    }

    function test_open_emitsPayeesAndAssetAfterTheParametersWhenSet() public {
        ChannelParams memory p = _params(address(token));
        p.payees[1] = address(0xB0B);
        token.mint(address(this), 300);
        token.approve(address(hub), 300);
        ChannelId id = hub.channelId(p);
        vm.expectEmit(address(hub));
        emit IChannelHub.ChannelOpened(id, _packedOpening(p, 0, 300));
        vm.expectEmit(address(hub));
        emit IChannelHub.ChannelOpenedWith(id, p.payees, address(token));
        hub.openAndDeposit(p, 0, 300);
    }

    function testFuzz_channelOpened_parametersReadBackFromTheLogGiveTheChannelId(
        address p0,
        address p1,
        uint64 period,
        uint256 nonce,
        bool second,
        uint120 amount
    ) public {
        vm.assume(p0 != address(0) && p1 != address(0) && p0 != p1 && amount != 0);
        period = uint64(hub.MIN_CHALLENGE_PERIOD() + period % (hub.MAX_CHALLENGE_PERIOD() - hub.MIN_CHALLENGE_PERIOD() + 1));
        ChannelParams memory p = _params(address(0));
        (p.participants[0], p.participants[1], p.challengePeriod, p.nonce) = (p0, p1, period, nonce);
        vm.deal(address(this), amount);
        vm.recordLogs();
        ChannelId id = hub.openAndDeposit{value: amount}(p, second ? 1 : 0, amount);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one log");
        assertTrue(logs[0].topics[0] == IChannelHub.ChannelOpened.selector, "event");
        assertTrue(logs[0].topics[1] == ChannelId.unwrap(id), "id topic");
        (ChannelParams memory back, uint256 flags, uint256 deposit) = this.unpackOpening(logs[0].data);
        assertTrue(ChannelId.unwrap(hub.channelId(back)) == ChannelId.unwrap(id), "parameters read back");
        assertEq(flags, second ? 1 : 0, "flags");
        assertEq(deposit, amount, "deposit");
    }

    /// @dev Reads ChannelOpened's data back as a follower does (sdk/chain/events.ts does the same in TypeScript).
    function unpackOpening(bytes calldata data)
        external
        pure
        returns (ChannelParams memory p, uint256 flags, uint256 deposit)
    {
        assertEq(data.length, 96, "three words");
        p.participants[0] = address(bytes20(data[0:20]));
        p.participants[1] = address(bytes20(data[20:40]));
        p.challengePeriod = uint64(bytes8(data[40:48]));
        p.nonce = uint256(bytes32(data[48:80]));
        flags = uint8(data[80]);
        deposit = uint120(bytes15(data[81:96]));
    }

    function test_openAndDeposit_inputTheNativePathDoesNotTakeRevertsWithItsError() public {
        ChannelParams memory p = _params(address(0));
        vm.deal(address(this), 10 ether);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NativeValueMismatch.selector, 2 ether, 1 ether));
        hub.openAndDeposit{value: 1 ether}(p, 0, 2 ether);
        p.participants[1] = p.participants[0];
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidParticipants.selector, alice, alice));
        hub.openAndDeposit{value: 1 ether}(p, 0, 1 ether);
        p = _params(address(0));
        p.challengePeriod = 31 days;
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.InvalidChallengePeriod.selector, 31 days, 5 minutes, 30 days)
        );
        hub.openAndDeposit{value: 1 ether}(p, 0, 1 ether);
        p = _params(address(0));
        ChannelId id = hub.openAndDeposit{value: 1 ether}(p, 0, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelExists.selector, id));
        hub.openAndDeposit{value: 1 ether}(p, 1, 1 ether);
        assertEq(hub.getChannel(id).deposits[0], 1 ether, "first funding kept");
        assertEq(hub.getChannel(id).deposits[1], 0, "second refused");
    }

    function test_openAndDeposit_revertsOnADirtyPayeeWord() public {
        ChannelParams memory p = _params(address(0));
        bytes memory input = abi.encodeCall(hub.openAndDeposit, (p, 0, 1 ether));
        // Word 3 of the arguments is payees[0]: set a bit above 160.
        assembly {
            let word := add(add(input, 0x24), 0x40)
            mstore(word, or(mload(word), shl(200, 1)))
        }
        vm.deal(address(this), 1 ether);
        (bool ok,) = address(hub).call{value: 1 ether}(input);
        assertTrue(!ok, "dirty payee word refused");
        assertTrue(_status(hub.channelId(p)) == ChannelStatus.None, "nothing opened");
    }

    function test_open_revertsOnParametersWithDirtyHighBits() public {
        ChannelParams memory p = _params(address(0));
        bytes memory input = abi.encodeCall(hub.open, (p));
        // Word 5 of the arguments is the asset (after two participants and two payees): set a bit above 160.
        assembly {
            let word := add(add(input, 0x24), 0x80)
            mstore(word, or(mload(word), shl(200, 1)))
        }
        (bool ok,) = address(hub).call(input);
        assertTrue(!ok, "dirty asset word refused");
        assertTrue(_status(hub.channelId(p)) == ChannelStatus.None, "nothing opened");
    }

    function test_openAndDeposit_revertsOnBadParticipantZeroAmountAndTooLargeDeposits() public {
        ChannelParams memory p = _params(address(0));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidParticipantIndex.selector, 2));
        hub.openAndDeposit(p, 2, 1);
        vm.expectRevert(IChannelHub.ZeroDeposit.selector);
        hub.openAndDeposit(p, 0, 0);
        uint256 max = hub.MAX_DEPOSIT();
        vm.deal(address(this), max + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.DepositTooLarge.selector, max + 1, max));
        hub.openAndDeposit{value: max + 1}(p, 0, max + 1);

        ChannelParams memory q = _params(address(token));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.UnexpectedNativeValue.selector, 1));
        hub.openAndDeposit{value: 1}(q, 0, 5);
        token.mint(address(this), max + 1);
        token.approve(address(hub), max + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.DepositTooLarge.selector, max + 1, max));
        hub.openAndDeposit(q, 1, max + 1);
        assertTrue(_status(hub.channelId(p)) == ChannelStatus.None, "native channel not opened");
        assertTrue(_status(hub.channelId(q)) == ChannelStatus.None, "token channel not opened");
    }

    function test_openAndDeposit_revertsWholeWhenTheDepositFails() public {
        ChannelParams memory p = _params(address(0));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NativeValueMismatch.selector, 5, 0));
        hub.openAndDeposit(p, 0, 5);
        assertTrue(_status(hub.channelId(p)) == ChannelStatus.None, "not opened either");
    }

    function test_deposit_nativeCreditsEachParticipant() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 3 ether, 2 ether);
        _deposit(p, id, 0, 1 ether);
        ChannelInfo memory info = hub.getChannel(id);
        assertEq(info.deposits[0], 4 ether, "deposit 0");
        assertEq(info.deposits[1], 2 ether, "deposit 1");
        assertEq(address(hub).balance, 6 ether, "hub balance");
    }

    function test_deposit_tokenCreditsEachParticipant() public {
        (ChannelParams memory p, ChannelId id) = _open(address(token));
        _fund(p, id, 500, 700);
        ChannelInfo memory info = hub.getChannel(id);
        assertEq(info.deposits[0], 500, "deposit 0");
        assertEq(info.deposits[1], 700, "deposit 1");
        assertEq(token.balanceOf(address(hub)), 1200, "hub balance");
    }

    function test_deposit_feeOnTransferTokenCreditsOnlyWhatArrived() public {
        FeeOnTransferToken fee = new FeeOnTransferToken(100); // 1 %
        (, ChannelId id) = _open(address(fee));
        fee.mint(address(this), 10_000);
        fee.approve(address(hub), 10_000);
        hub.deposit(id, 0, 10_000);
        assertEq(hub.getChannel(id).deposits[0], 9_900, "credited");
        assertEq(fee.balanceOf(address(hub)), 9_900, "held");
    }

    function test_deposit_revertsWhenTokenDeliversNothing() public {
        FeeOnTransferToken fee = new FeeOnTransferToken(10_000); // keeps everything
        (, ChannelId id) = _open(address(fee));
        fee.mint(address(this), 100);
        fee.approve(address(hub), 100);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NothingReceived.selector, address(fee)));
        hub.deposit(id, 0, 100);
    }

    function test_deposit_revertsWhenTokenReturnsFalse() public {
        FalseReturningToken bad = new FalseReturningToken();
        (, ChannelId id) = _open(address(bad));
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(bad)));
        hub.deposit(id, 0, 100); // no balance: the token answers false
    }

    function test_deposit_revertsOnInvalidIndexZeroAmountAndUnknownChannel() public {
        (, ChannelId id) = _open(address(0));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidParticipantIndex.selector, 2));
        hub.deposit{value: 1}(id, 2, 1);
        vm.expectRevert(IChannelHub.ZeroDeposit.selector);
        hub.deposit(id, 0, 0);
        ChannelId unknown = ChannelId.wrap(bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotOpen.selector, unknown, ChannelStatus.None));
        hub.deposit{value: 1}(unknown, 0, 1);
    }

    function test_deposit_revertsOnNativeValueMismatch() public {
        (, ChannelId id) = _open(address(0));
        vm.deal(address(this), 10);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NativeValueMismatch.selector, 5, 4));
        hub.deposit{value: 4}(id, 0, 5);
    }

    function test_deposit_revertsOnNativeValueForTokenChannel() public {
        (, ChannelId id) = _open(address(token));
        vm.deal(address(this), 10);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.UnexpectedNativeValue.selector, 1));
        hub.deposit{value: 1}(id, 0, 5);
    }

    function test_deposit_revertsPastMaxDeposit() public {
        (ChannelParams memory p, ChannelId id) = _open(address(token));
        uint256 max = hub.MAX_DEPOSIT();
        _deposit(p, id, 1, max);
        token.mint(address(this), 1);
        token.approve(address(hub), 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.DepositTooLarge.selector, max + 1, max));
        hub.deposit(id, 1, 1);
    }

    function test_deposit_maxUintAmountFailsWithoutFunds() public {
        (, ChannelId id) = _open(address(0));
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NativeValueMismatch.selector, type(uint256).max, 0));
        hub.deposit(id, 0, type(uint256).max);
    }

    function test_deposit_revertsOnceChannelIsDisputed() public {
        (ChannelParams memory p, ChannelId id) = _open(address(0));
        _fund(p, id, 1 ether, 1 ether);
        vm.prank(bob);
        hub.forceCloseWithDeposits(p);
        vm.deal(address(this), 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotOpen.selector, id, ChannelStatus.Disputed));
        hub.deposit{value: 1}(id, 0, 1);
    }
}
