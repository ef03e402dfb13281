// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {GasHungryToken} from "../../contracts/test/TestTokens.sol";
import {GasHungryReceiver} from "../../contracts/test/TestReceivers.sol";
import {ChannelId, ChannelParams, SignedState, State} from "../../contracts/types/ChannelTypes.sol";

/// @notice The payout gas guard at its exact boundary. With the least gas a cooperative close goes through with, a
///         receiver (or token) that needs every unit of `PAYOUT_GAS` is paid; with one unit less the close reverts
///         `InsufficientGasForPayout`; around the boundary nothing is ever deferred. The boundary is found by
///         bisection, so no gas figure is written down here. Receivers and tokens are deployed in `setUp`, so they
///         are cold in the test's transaction as in a real close, and every probe runs in a frame that reverts, so
///         each probe finds them cold again (EIP-2929 access lists are rolled back with the frame).
contract ChannelHubPayoutGasTest is HubTestBase {
    enum Outcome {
        Paid,
        Deferred,
        Starved, // reverted InsufficientGasForPayout
        OutOfGas // ran out before it reached a payout
    }

    error Probed(Outcome outcome);

    /// An EOA whose code delegates to a gas-hungry receiver (EIP-7702): its CALL pays for two cold accounts.
    address internal constant DELEGATED_RECEIVER = address(uint160(uint256(keccak256("delegated receiver"))));
    /// The same for a token: an account delegating to a gas-hungry token.
    address internal constant DELEGATED_TOKEN = address(uint160(uint256(keccak256("delegated token"))));
    uint128 internal constant NATIVE = 1 ether;
    uint128 internal constant TOKENS = 100;

    ChannelParams internal toContract; // native, payee 1 a contract that needs all of PAYOUT_GAS
    ChannelParams internal toDelegated; // native, payee 1 a delegated EOA that needs all of PAYOUT_GAS
    ChannelParams internal viaToken; // a token whose transfer needs all of PAYOUT_GAS, paid to bob
    ChannelParams internal viaDelegatedToken; // the same token behind a delegated account
    address internal hungryReceiver;

    function setUp() public override {
        super.setUp();
        uint256 payoutGas = hub.PAYOUT_GAS();

        // What a receiver is entered with when its push gets all of PAYOUT_GAS (plus the EVM's value stipend).
        GasHungryReceiver calibrator = new GasHungryReceiver(0);
        vm.deal(address(this), 1);
        (bool ok,) = address(calibrator).call{value: 1, gas: payoutGas}("");
        assertTrue(ok, "calibration call");
        hungryReceiver = address(new GasHungryReceiver(calibrator.seen()));
        vm.etch(DELEGATED_RECEIVER, abi.encodePacked(hex"ef0100", hungryReceiver));

        GasHungryToken tokenCalibrator = new GasHungryToken(0);
        tokenCalibrator.mint(address(this), 1);
        (ok,) = address(tokenCalibrator).call{gas: payoutGas}(abi.encodeCall(IERC20.transfer, (bob, 1)));
        assertTrue(ok, "token calibration call");
        address hungryToken = address(new GasHungryToken(tokenCalibrator.seen()));
        vm.etch(DELEGATED_TOKEN, abi.encodePacked(hex"ef0100", hungryToken));

        toContract = _channelPaying(address(0), hungryReceiver, NATIVE);
        toDelegated = _channelPaying(address(0), DELEGATED_RECEIVER, NATIVE);
        viaToken = _channelPaying(hungryToken, address(0), TOKENS);
        viaDelegatedToken = _channelPaying(DELEGATED_TOKEN, address(0), TOKENS);
    }

    function test_payout_contractReceiverGetsAllOfPayoutGasAtTheLeastGasThatPasses() public {
        _checkBoundary(toContract, hungryReceiver, NATIVE);
    }

    function test_payout_delegatedAccountGetsAllOfPayoutGasAtTheLeastGasThatPasses() public {
        _checkBoundary(toDelegated, DELEGATED_RECEIVER, NATIVE);
    }

    function test_payout_tokenGetsAllOfPayoutGasAtTheLeastGasThatPasses() public {
        _checkBoundary(viaToken, bob, TOKENS);
    }

    function test_payout_delegatedTokenGetsAllOfPayoutGasAtTheLeastGasThatPasses() public {
        _checkBoundary(viaDelegatedToken, bob, TOKENS);
    }

    /// Runs a cooperative close with `gas` and reverts with its outcome, undoing everything it did.
    function probeClose(ChannelParams calldata q, SignedState calldata signed, address payee, uint256 gas) external {
        (bool ok, bytes memory ret) = address(hub).call{gas: gas}(abi.encodeCall(hub.closeCooperatively, (q, signed)));
        if (!ok) {
            if (ret.length == 0) revert Probed(Outcome.OutOfGas);
            assertTrue(bytes4(ret) == IChannelHub.InsufficientGasForPayout.selector, "only the guard may refuse");
            revert Probed(Outcome.Starved);
        }
        if (hub.deferredPayout(q.asset, payee) != 0) revert Probed(Outcome.Deferred);
        uint256 held = q.asset == address(0) ? payee.balance : IERC20(q.asset).balanceOf(payee);
        assertEq(held, 2 * uint256(signed.state.deposits[0]), "payee paid in full");
        revert Probed(Outcome.Paid);
    }

    /// A channel with `amount` deposited on each side whose final state gives everything to participant 1.
    function _channelPaying(address asset, address payee, uint128 amount) internal returns (ChannelParams memory q) {
        q = _params(asset);
        q.payees[1] = payee;
        ChannelId id = hub.open(q);
        _fund(q, id, amount, amount);
    }

    function _checkBoundary(ChannelParams memory q, address payee, uint128 amount) internal {
        State memory s = _state(hub.channelId(q), 1, [amount, amount], [uint128(0), 2 * amount]);
        s.isFinal = true;
        SignedState memory signed = _sign(s);

        // Bisection for the least gas with which the close goes through: more gas never makes it fail.
        uint256 lo = 30_000;
        uint256 hi = 1_000_000;
        assertTrue(!_goesThrough(q, signed, payee, lo), "too little gas fails");
        assertTrue(_goesThrough(q, signed, payee, hi), "ample gas goes through");
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_goesThrough(q, signed, payee, mid)) hi = mid;
            else lo = mid;
        }
        assertTrue(_probe(q, signed, payee, hi) == Outcome.Paid, "paid, not deferred, at the least gas that passes");
        assertTrue(_probe(q, signed, payee, hi - 1) == Outcome.Starved, "one unit less: InsufficientGasForPayout");
        for (uint256 gas = hi - 2_000; gas < hi + 2_000; gas += 50) {
            Outcome outcome = _probe(q, signed, payee, gas);
            assertTrue(outcome == (gas < hi ? Outcome.Starved : Outcome.Paid), "refused or paid, never deferred");
        }
    }

    function _goesThrough(ChannelParams memory q, SignedState memory signed, address payee, uint256 gas)
        internal
        returns (bool)
    {
        Outcome outcome = _probe(q, signed, payee, gas);
        return outcome == Outcome.Paid || outcome == Outcome.Deferred;
    }

    function _probe(ChannelParams memory q, SignedState memory signed, address payee, uint256 gas)
        internal
        returns (Outcome outcome)
    {
        try this.probeClose(q, signed, payee, gas) {
            revert("a probe always reverts");
        } catch (bytes memory data) {
            if (bytes4(data) != Probed.selector) {
                assembly ("memory-safe") {
                    revert(add(data, 0x20), mload(data))
                }
            }
            assembly ("memory-safe") {
                outcome := mload(add(data, 0x24))
            }
        }
    }
}
