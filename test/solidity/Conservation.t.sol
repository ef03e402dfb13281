// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {ChannelId, ChannelParams, ChannelStatus, Lock, State} from "../../contracts/types/ChannelTypes.sol";

/// @notice Guarantee 3 (conservation): whatever was deposited, whatever the co-signed state and its locks,
///         whichever way the channel ends, the payouts add up to the deposits and the hub keeps nothing.
contract ConservationTest is HubTestBase {
    uint256 internal constant MAX_FUZZ_LOCKS = 12;

    struct Scenario {
        ChannelId id;
        uint256 remaining;
        uint256 seed;
        uint64 lastExpiry;
        State state;
        Lock[] locks;
        bytes32[] secrets;
    }

    function _next(Scenario memory sc) internal pure returns (uint256) {
        sc.seed = uint256(keccak256(abi.encode(sc.seed)));
        return sc.seed;
    }

    /// @dev A random state over deposits (d0, d1): random locks in random directions, the rest split at random.
    function _randomState(Scenario memory sc, uint128 d0, uint128 d1, uint256 lockCount) internal view {
        sc.remaining = uint256(d0) + d1;
        sc.lastExpiry = uint64(START + PERIOD);
        sc.locks = new Lock[](lockCount);
        sc.secrets = new bytes32[](lockCount);
        for (uint256 i; i < lockCount; ++i) {
            uint128 amount = uint128(_next(sc) % (sc.remaining + 1));
            sc.remaining -= amount;
            uint64 expiry = uint64(START + 10 minutes + (_next(sc) % 3 days));
            if (expiry > sc.lastExpiry) sc.lastExpiry = expiry;
            sc.secrets[i] = bytes32(_next(sc));
            sc.locks[i] = _lock(uint8(_next(sc) % 2), amount, sc.secrets[i], expiry);
        }
        uint128 b0 = uint128(_next(sc) % (sc.remaining + 1));
        sc.state = _state(sc.id, uint64(1 + _next(sc) % 1000), [d0, d1], [b0, uint128(sc.remaining - b0)]);
        sc.state.locksHash = hub.hashLocks(sc.locks);
    }

    function testFuzz_closeOrSettle_paysOutExactlyWhatWasDeposited(
        uint96 d0,
        uint96 d1,
        uint96 late0,
        uint96 late1,
        uint8 lockCount,
        uint256 seed
    ) public {
        Scenario memory sc;
        sc.seed = seed;
        ChannelParams memory p;
        (p, sc.id) = _open(address(0));
        _fund(p, sc.id, d0, d1);
        _randomState(sc, d0, d1, uint256(lockCount) % (MAX_FUZZ_LOCKS + 1));

        _deposit(p, sc.id, 0, late0); // deposits made after the state was signed
        _deposit(p, sc.id, 1, late1);

        if (sc.locks.length == 0 && _next(sc) % 2 == 0) {
            sc.state.isFinal = true;
            hub.closeCooperatively(p, _sign(sc.state));
        } else {
            _forceClose(p, _sign(sc.state));
            for (uint256 i; i < sc.locks.length; ++i) {
                uint256 r = _next(sc) % 3; // 0: never revealed, 1: revealed at the expiry, 2: one second late
                if (r == 0) continue;
                vm.warp(r == 1 ? sc.locks[i].expiry : uint256(sc.locks[i].expiry) + 1);
                registry.reveal(sc.secrets[i]);
            }
            vm.warp(uint256(sc.lastExpiry) + 1);
            hub.settle(p, sc.state, sc.locks, 0);
        }

        assertTrue(_status(sc.id) == ChannelStatus.Closed, "closed");
        assertEq(alice.balance + bob.balance, uint256(d0) + d1 + late0 + late1, "paid out == deposited");
        assertEq(address(hub).balance, 0, "nothing stuck in the hub");
    }
}
