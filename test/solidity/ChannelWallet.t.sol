// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {ChannelWallet} from "../../contracts/examples/ChannelWallet.sol";
import {BlocklistToken} from "../../contracts/test/TestTokens.sol";
import {RevertingReceiver} from "../../contracts/test/TestReceivers.sol";
import {ChannelId, ChannelParams, ChannelStatus, Lock, SignedState, State} from "../../contracts/types/ChannelTypes.sol";

/// @notice A contract participant (ERC-1271) through the example wallet that calls IChannelHub.
contract ChannelWalletTest is HubTestBase {
    uint256 internal constant WALLET_KEY = 0x5161;
    ChannelWallet internal wallet;

    function setUp() public override {
        super.setUp();
        wallet = new ChannelWallet(hub, address(this), vm.addr(WALLET_KEY));
        vm.deal(address(wallet), 10 ether);
    }

    function _walletParams() internal returns (ChannelParams memory p) {
        p = _params(address(0));
        p.participants = [address(wallet), bob];
    }

    function test_wallet_opensFundsAndForceClosesWithContractSignature() public {
        ChannelParams memory p = _walletParams();
        ChannelId id = wallet.openAndFund(p, 0, 3 ether);
        assertEq(hub.getChannel(id).deposits[0], 3 ether, "funded");
        State memory s = _state(id, 1, [uint128(3 ether), 0], [uint128(1 ether), 2 ether]);
        wallet.forceClose(p, _signWith(s, WALLET_KEY, BOB_PK));
        assertTrue(_status(id) == ChannelStatus.Disputed, "disputed");
        vm.warp(START + PERIOD);
        hub.settle(p, s, new Lock[](0), 0);
        assertEq(address(wallet).balance, 10 ether - 2 ether, "wallet paid back");
        assertEq(bob.balance, 2 ether, "bob paid");
    }

    function test_wallet_rotatedKeyRevokesEarlierSignatures() public {
        ChannelParams memory p = _walletParams();
        ChannelId id = wallet.openAndFund(p, 0, 1 ether);
        SignedState memory signed = _signWith(_state(id, 1, [uint128(1 ether), 0], [uint128(0), 1 ether]), WALLET_KEY, BOB_PK);
        wallet.rotateSigningKey(vm.addr(0x5162));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidSignature.selector, id, 0));
        hub.forceClose(p, signed);
    }

    function test_wallet_registeredStateSurvivesKeyRotation() public {
        ChannelParams memory p = _walletParams();
        ChannelId id = wallet.openAndFund(p, 0, 1 ether);
        State memory s = _state(id, 1, [uint128(1 ether), 0], [uint128(0), 1 ether]);
        SignedState memory signed = _signWith(s, WALLET_KEY, BOB_PK);
        vm.prank(bob);
        hub.forceClose(p, signed); // checkpointed on chain while the key was valid
        wallet.rotateSigningKey(vm.addr(0x5162));
        vm.warp(START + PERIOD);
        hub.settle(p, s, new Lock[](0), 0);
        assertEq(bob.balance, 1 ether, "bob paid");
    }

    function test_wallet_fundsTokenChannelsForceClosesAtDepositsAndSweeps() public {
        ChannelParams memory p = _walletParams();
        p.asset = address(token);
        token.mint(address(wallet), 500);
        ChannelId id = wallet.openAndFund(p, 0, 500);
        assertEq(hub.getChannel(id).deposits[0], 500, "funded with tokens");
        wallet.forceCloseWithDeposits(p);
        vm.warp(START + PERIOD);
        hub.settle(p, _state(id, 0, [uint128(500), 0], [uint128(500), 0]), new Lock[](0), 0);
        assertEq(token.balanceOf(address(wallet)), 500, "paid back");
        wallet.sweep(address(token), payable(bob), 200);
        wallet.sweep(address(0), payable(bob), 1 ether);
        assertEq(token.balanceOf(bob), 200, "tokens swept");
        assertEq(bob.balance, 1 ether, "coin swept");
    }

    function test_wallet_collectsDeferredPayouts() public {
        BlocklistToken blk = new BlocklistToken();
        ChannelParams memory p = _walletParams();
        p.asset = address(blk);
        blk.mint(address(wallet), 100);
        ChannelId id = wallet.openAndFund(p, 0, 100);
        blk.setBlocked(address(wallet), true);
        State memory s = _state(id, 1, [uint128(100), 0], [uint128(100), 0]);
        s.isFinal = true;
        hub.closeCooperatively(p, _signWith(s, WALLET_KEY, BOB_PK));
        assertEq(hub.deferredPayout(address(blk), address(wallet)), 100, "deferred while blocked");
        blk.setBlocked(address(wallet), false);
        wallet.collect(address(blk));
        assertEq(blk.balanceOf(address(wallet)), 100, "collected");
    }

    function test_wallet_rejectsSignaturesOfOtherKeysAndZeroKeys() public {
        bytes32 digest = keccak256("anything");
        assertTrue(wallet.isValidSignature(digest, _sig(BOB_PK, digest)) == bytes4(0xffffffff), "other key");
        assertTrue(wallet.isValidSignature(digest, _sig(WALLET_KEY, digest)) == bytes4(0x1626ba7e), "own key");
        vm.expectRevert(ChannelWallet.ZeroSigningKey.selector);
        wallet.rotateSigningKey(address(0));
        vm.expectRevert(ChannelWallet.ZeroSigningKey.selector);
        new ChannelWallet(hub, address(this), address(0));
    }

    function test_wallet_sweepBubblesARefusingReceiversError() public {
        RevertingReceiver sink = new RevertingReceiver();
        vm.expectRevert(RevertingReceiver.NoThanks.selector);
        wallet.sweep(address(0), payable(address(sink)), 1 ether);
    }

    function test_wallet_onlyOwnerMovesChannels() public {
        ChannelParams memory p = _walletParams();
        vm.prank(bob);
        vm.expectPartialRevert(bytes4(keccak256("OwnableUnauthorizedAccount(address)")));
        wallet.openAndFund(p, 0, 1 ether);
    }
}
