// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {HubTestBase} from "./helpers/HubTestBase.sol";
import {IChannelHub} from "../../contracts/interfaces/IChannelHub.sol";
import {BlocklistToken} from "../../contracts/test/TestTokens.sol";
import {GasBurningReceiver, RevertingReceiver, ToggleReceiver} from "../../contracts/test/TestReceivers.sol";
import {
    ChannelId,
    ChannelParams,
    ChannelStatus,
    Lock,
    SignedState,
    SkipReason,
    State,
    TransferOutcome
} from "../../contracts/types/ChannelTypes.sol";

contract ChannelHubSettleTest is HubTestBase {
    bytes32 internal constant SECRET = keccak256("the swap secret");
    uint64 internal constant EXPIRY = uint64(START + 2 hours);

    ChannelParams internal p;
    ChannelId internal id;

    function setUp() public override {
        super.setUp();
        (p, id) = _open(address(0));
        _fund(p, id, 5 ether, 5 ether);
    }

    /// Alice (0) locks 2 ether to Bob and Bob (1) locks 1 ether to Alice under other secrets.
    function _locks() internal pure returns (Lock[] memory locks) {
        locks = new Lock[](3);
        locks[0] = _lock(0, 2 ether, SECRET, EXPIRY);
        locks[1] = _lock(1, 1 ether, keccak256("other"), EXPIRY);
        locks[2] = _lock(0, 0.5 ether, keccak256("third"), EXPIRY + 1 hours);
    }

    function _lockedState(Lock[] memory locks) internal view returns (State memory s) {
        s = _state(id, 4, [uint128(5 ether), 5 ether], [uint128(2.5 ether), 4 ether]);
        s.locksHash = hub.hashLocks(locks);
    }

    function _disputeWithLocks() internal returns (State memory s, Lock[] memory locks) {
        locks = _locks();
        s = _lockedState(locks);
        _forceClose(p, _sign(s));
    }

    function test_settle_paysLockWhoseSecretWasRevealedBeforeExpiry() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY - 10);
        registry.reveal(SECRET);
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0);
        assertEq(alice.balance, 2.5 ether + 0.5 ether, "alice: balance + her refunded third lock");
        assertEq(bob.balance, 4 ether + 2 ether + 1 ether, "bob: balance + paid lock + his refunded lock");
        assertEq(address(hub).balance, 0, "nothing left");
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 1) == TransferOutcome.Refunded, "lock 1 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Refunded, "lock 2 refunded");
        assertTrue(hub.transferOutcome(id, 3) == TransferOutcome.Unresolved, "no lock 3");
        assertEq(hub.getChannel(id).lockCount, 3, "lock count");
    }

    function test_settle_paysLockRevealedExactlyAtExpiry() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY);
        registry.reveal(SECRET);
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0);
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "paid");
    }

    function test_settle_refundsLockRevealedAfterExpiry() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY + 1);
        registry.reveal(SECRET);
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0);
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Refunded, "refunded");
        assertEq(alice.balance, 5 ether, "alice gets every lock of hers back");
        assertEq(bob.balance, 5 ether, "bob too");
    }

    /// The early-settle attack (PROTOCOL.md section 3): Alice force-closes S, waits out the challenge period and
    /// settles before her lock expires, hoping to refund it and still reveal on T. The hub refuses.
    function test_settle_refusesToRefundUnrevealedLockBeforeExpiry() public {
        Lock[] memory locks = new Lock[](1);
        locks[0] = _lock(0, 2 ether, SECRET, EXPIRY);
        State memory s = _state(id, 2, [uint128(5 ether), 5 ether], [uint128(3 ether), 5 ether]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(START + PERIOD); // the challenge period is over, the lock is still live
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.LockNotExpired.selector, id, 0, EXPIRY, START + PERIOD));
        hub.settle(p, s, locks, 0);
        vm.warp(EXPIRY);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.LockNotExpired.selector, id, 0, EXPIRY, EXPIRY));
        hub.settle(p, s, locks, 0);
        // Bob learns the secret (Alice revealed it on T) and registers it on S before the expiry: he is paid.
        registry.reveal(SECRET);
        hub.settle(p, s, locks, 0);
        assertEq(bob.balance, 7 ether, "bob paid");
        assertEq(alice.balance, 3 ether, "alice keeps the rest");
    }

    /// Locks 0 and 2 (both to Bob) revealed together in one revealMany call, in lock order, at time `at`.
    function _revealLocks0And2Together(uint256 at) internal {
        bytes32[] memory secrets = new bytes32[](2);
        (secrets[0], secrets[1]) = (SECRET, keccak256("third"));
        vm.warp(at);
        registry.revealMany(secrets);
    }

    function test_settle_readsLocksRevealedTogetherAsOneAndPaysTheSame() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        _revealLocks0And2Together(EXPIRY - 10);
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0x5); // locks 0 and 2
        assertEq(alice.balance, 2.5 ether, "alice: her balance only");
        assertEq(bob.balance, 4 ether + 2 ether + 1 ether + 0.5 ether, "bob: balance + both paid locks + his refund");
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 1) == TransferOutcome.Refunded, "lock 1 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
    }

    function test_settle_ignoresAMaskWhenTheNamedLocksWereNotRevealedTogether() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY - 10);
        registry.reveal(SECRET); // one by one: no batch record
        registry.reveal(keccak256("third"));
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0x5); // read one by one: both paid
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 1) == TransferOutcome.Refunded, "lock 1 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
    }

    function test_settle_anUnrevealedLockNamedWithTheBatchIsStillRefunded() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        _revealLocks0And2Together(EXPIRY - 10);
        vm.warp(EXPIRY + 2 hours);
        // Lock 1 named with the batch cannot borrow its time: the mask is not borne out and every lock is read.
        hub.settle(p, s, locks, 0x7);
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 1) == TransferOutcome.Refunded, "lock 1 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
        assertEq(bob.balance, 4 ether + 2 ether + 1 ether + 0.5 ether, "bob: balance + both paid locks + his refund");
    }

    function test_settle_ignoresPartOfABatchAndBitsPastTheLastLock() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        _revealLocks0And2Together(EXPIRY - 10);
        vm.warp(EXPIRY + 2 hours);
        uint256 snapshot = vm.snapshotState();
        hub.settle(p, s, locks, 0x1); // part of the batch
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
        vm.revertToState(snapshot);
        hub.settle(p, s, locks, 0x8 | 0x5); // past the last lock
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 1) == TransferOutcome.Refunded, "lock 1 refunded");
    }

    function test_settle_readsANamedLockOnItsOwnWhenTheBatchCameAfterItsExpiry() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        _revealLocks0And2Together(EXPIRY + 10); // after lock 0's expiry, before lock 2's
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0x5);
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Refunded, "lock 0 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
    }

    function test_settle_aNamedLockRevealedInTimeOnItsOwnIsPaidThoughTheBatchCameAfterItsExpiry() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY - 10);
        registry.reveal(keccak256("third")); // lock 2's secret, alone and in time
        _revealLocks0And2Together(EXPIRY + 10); // the batch: after lock 0's expiry (refunded), first to reveal SECRET
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0x5);
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Refunded, "lock 0 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
    }

    /// The griefing the hint must not allow: Bob sends revealMany(lock 0's and lock 2's secrets) and then settle
    /// naming both. A third party copies one secret out of the pending revealMany and reveals it first, alone; Bob's
    /// revealMany then records no batch. Settlement still goes through and pays both locks.
    function test_settle_aFrontRunRevealOfOneSecretOfTheBatchCannotBlockSettlement() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY - 10);
        vm.prank(address(0xF00D));
        registry.reveal(SECRET); // the front-runner, with lock 0's secret
        _revealLocks0And2Together(EXPIRY - 10);
        assertEq(registry.revealedTogetherAt(_hashlocks0And2()), 0, "no batch recorded");
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, 0x5);
        assertTrue(_status(id) == ChannelStatus.Closed, "settled");
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 1) == TransferOutcome.Refunded, "lock 1 refunded");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
        assertEq(bob.balance, 4 ether + 2 ether + 1 ether + 0.5 ether, "bob: balance + both paid locks + his refund");
    }

    /// The same front-run, against a batch settle: the channel is settled, not skipped, and the other one too.
    function test_settleMany_aFrontRunRevealCannotBlockTheBatch() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        (ChannelParams memory q, ChannelId qid) = _open(address(0));
        _fund(q, qid, 1 ether, 1 ether);
        State memory t = _state(qid, 1, [uint128(1 ether), 1 ether], [uint128(1 ether), 1 ether]);
        _forceClose(q, _sign(t));
        vm.warp(EXPIRY - 10);
        // The front-runner reveals the batch's secrets in another order: its batch record is not Bob's list.
        bytes32[] memory reordered = new bytes32[](2);
        (reordered[0], reordered[1]) = (keccak256("third"), SECRET);
        registry.revealMany(reordered);
        _revealLocks0And2Together(EXPIRY - 10);
        vm.warp(EXPIRY + 2 hours);
        ChannelParams[] memory ps = new ChannelParams[](2);
        State[] memory ss = new State[](2);
        Lock[][] memory ls = new Lock[][](2);
        uint256[] memory masks = new uint256[](2);
        (ps[0], ss[0], ls[0], masks[0]) = (p, s, locks, 0x5);
        (ps[1], ss[1], ls[1], masks[1]) = (q, t, new Lock[](0), 0x1);
        bool[] memory settled = hub.settleMany(ps, ss, ls, masks);
        assertTrue(settled[0] && settled[1], "both settled");
        assertTrue(hub.transferOutcome(id, 0) == TransferOutcome.Paid, "lock 0 paid");
        assertTrue(hub.transferOutcome(id, 2) == TransferOutcome.Paid, "lock 2 paid");
    }

    /// Whatever was revealed when (alone, in a batch, before or after each expiry, in any order) and whatever mask
    /// the settler names, each lock is paid iff its secret's first reveal was at or before its expiry.
    function testFuzz_settle_anyMaskPaysExactlyTheLocksRevealedByTheirExpiry(
        uint8[3] memory when,
        bool batchLate,
        bool batchReversed,
        uint256 mask
    ) public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        // when[i] % 4: 0 never, 1 alone before every expiry, 2 alone after locks 0 and 1 expired, 3 in the batch.
        uint64[2] memory times = [EXPIRY - 10, EXPIRY + 10];
        for (uint256 step; step < 2; ++step) {
            vm.warp(times[step]);
            for (uint256 i; i < 3; ++i) {
                if (when[i] % 4 == step + 1) registry.reveal(_secretOf(i));
            }
            if ((batchLate ? 1 : 0) == step) _revealBatch(when, batchReversed);
        }
        vm.warp(EXPIRY + 2 hours);
        hub.settle(p, s, locks, mask);
        for (uint256 i; i < 3; ++i) {
            uint64 t = registry.revealedAt(locks[i].hashlock);
            bool paid = t != 0 && t <= locks[i].expiry;
            assertTrue(hub.transferOutcome(id, i) == (paid ? TransferOutcome.Paid : TransferOutcome.Refunded), "outcome");
        }
        assertEq(alice.balance + bob.balance, 10 ether, "both deposits paid out");
    }

    function _secretOf(uint256 i) internal pure returns (bytes32) {
        return i == 0 ? SECRET : i == 1 ? keccak256("other") : keccak256("third");
    }

    function _revealBatch(uint8[3] memory when, bool reversed) internal {
        uint256 n;
        for (uint256 i; i < 3; ++i) {
            if (when[i] % 4 == 3) ++n;
        }
        if (n == 0) return;
        bytes32[] memory secrets = new bytes32[](n);
        uint256 k;
        for (uint256 i; i < 3; ++i) {
            if (when[i] % 4 == 3) secrets[reversed ? n - 1 - k++ : k++] = _secretOf(i);
        }
        registry.revealMany(secrets);
    }

    function _hashlocks0And2() internal pure returns (bytes32[] memory hashlocks) {
        hashlocks = new bytes32[](2);
        (hashlocks[0], hashlocks[1]) = (sha256(abi.encodePacked(SECRET)), sha256(abi.encodePacked(keccak256("third"))));
    }

    function test_settle_ignoresAMaskWithoutLocks() public {
        State memory s = _state(id, 2, [uint128(5 ether), 5 ether], [uint128(5 ether), 5 ether]);
        _forceClose(p, _sign(s));
        vm.warp(START + PERIOD);
        hub.settle(p, s, new Lock[](0), 1);
        assertTrue(_status(id) == ChannelStatus.Closed, "settled");
    }

    function test_settle_revertsBeforeDeadline() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(START + PERIOD - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.ChallengePeriodNotOver.selector, id, START + PERIOD, START + PERIOD - 1)
        );
        hub.settle(p, s, locks, 0);
    }

    function test_settle_revertsOnStateOtherThanRegistered() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        bytes32 registered = hub.getChannel(id).stateHash;
        s.balances = [uint128(4 ether), 2.5 ether];
        bytes32 given = keccak256(
            abi.encode(
                keccak256(
                    "State(bytes32 channelId,uint64 seq,uint128[2] deposits,uint128[2] balances,Lock[] locks,bool isFinal)"
                    "Lock(uint8 sender,uint128 amount,bytes32 hashlock,uint64 expiry)"
                ),
                s.channelId,
                s.seq,
                keccak256(abi.encodePacked(s.deposits)),
                keccak256(abi.encodePacked(s.balances)),
                s.locksHash,
                s.isFinal
            )
        );
        vm.warp(EXPIRY + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.StateMismatch.selector, id, registered, given));
        hub.settle(p, s, locks, 0);
    }

    function test_settle_revertsOnLocksOtherThanSigned() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        locks[1].sender = 0; // swap the direction of one lock
        vm.warp(EXPIRY + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.LocksMismatch.selector, id, s.locksHash, hub.hashLocks(locks))
        );
        hub.settle(p, s, locks, 0);
    }

    function test_settle_revertsOnInvalidLockSender() public {
        Lock[] memory locks = new Lock[](1);
        locks[0] = _lock(2, 1 ether, SECRET, EXPIRY);
        State memory s = _state(id, 2, [uint128(5 ether), 5 ether], [uint128(4 ether), 5 ether]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(EXPIRY + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidLockSender.selector, 0, 2));
        hub.settle(p, s, locks, 0);
    }

    function test_settle_revertsWhenLocksAndBalancesDoNotAddUp() public {
        Lock[] memory locks = new Lock[](1);
        locks[0] = _lock(0, 3 ether, SECRET, EXPIRY);
        State memory s = _state(id, 2, [uint128(5 ether), 5 ether], [uint128(4 ether), 5 ether]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(EXPIRY + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.AmountsDoNotAddUp.selector, id, 12 ether, 10 ether));
        hub.settle(p, s, locks, 0);
    }

    function test_settle_revertsOnMoreThanMaxLocks() public {
        uint256 max = hub.MAX_LOCKS();
        Lock[] memory locks = new Lock[](max + 1);
        for (uint256 i; i < locks.length; ++i) {
            locks[i] = _lock(0, 1, bytes32(i), EXPIRY);
        }
        State memory s = _state(id, 2, [uint128(5 ether), 5 ether], [uint128(5 ether - max - 1), 5 ether]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(EXPIRY + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.TooManyLocks.selector, max + 1, max));
        hub.settle(p, s, locks, 0);
    }

    function test_settle_resolvesMaxLocksInOneCall() public {
        uint256 max = hub.MAX_LOCKS();
        Lock[] memory locks = new Lock[](max);
        bytes32[] memory secrets = new bytes32[](max / 2);
        for (uint256 i; i < max; ++i) {
            locks[i] = _lock(uint8(i % 2), 1 gwei, bytes32(i + 1), EXPIRY);
            if (i % 4 == 0) secrets[i / 4] = bytes32(i + 1); // every fourth lock revealed
        }
        assembly {
            mstore(secrets, div(max, 4))
        }
        registry.revealMany(secrets);
        uint128 locked = uint128(max) * 1 gwei;
        State memory s = _state(id, 2, [uint128(5 ether), 5 ether], [uint128(5 ether - locked / 2), 5 ether - locked / 2]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(p, _sign(s));
        vm.warp(EXPIRY + 1);
        hub.settle(p, s, locks, 0);
        // Revealed locks are the ones at i % 4 == 0, all sent by Alice: max/4 gwei move to Bob.
        assertEq(bob.balance, 5 ether + (max / 4) * 1 gwei, "bob");
        assertEq(alice.balance, 5 ether - (max / 4) * 1 gwei, "alice");
        assertTrue(hub.transferOutcome(id, 4) == TransferOutcome.Paid, "lock 4 paid");
        assertTrue(hub.transferOutcome(id, 5) == TransferOutcome.Refunded, "lock 5 refunded");
    }

    function test_settle_neverPaysTwice() public {
        (State memory s, Lock[] memory locks) = _disputeWithLocks();
        vm.warp(EXPIRY + 1 hours + 1);
        hub.settle(p, s, locks, 0);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.ChannelNotDisputed.selector, id, ChannelStatus.Closed));
        hub.settle(p, s, locks, 0);
    }

    function test_settleMany_settlesSeveralChannelsInOneCall() public {
        (ChannelParams memory p2, ChannelId id2) = _open(address(token));
        _fund(p2, id2, 100, 50);
        (State memory s1, Lock[] memory locks1) = _disputeWithLocks();
        State memory s2 = _state(id2, 1, [uint128(100), 50], [uint128(30), 120]);
        SignedState memory signed2 = _sign(s2);
        vm.prank(bob);
        hub.forceClose(p2, signed2);
        vm.warp(EXPIRY + 1 hours + 1);

        ChannelParams[] memory ps = new ChannelParams[](2);
        State[] memory ss = new State[](2);
        Lock[][] memory ls = new Lock[][](2);
        (ps[0], ss[0], ls[0]) = (p, s1, locks1);
        (ps[1], ss[1], ls[1]) = (p2, s2, new Lock[](0));
        bool[] memory settled = hub.settleMany(ps, ss, ls, new uint256[](ps.length));
        assertTrue(settled.length == 2 && settled[0] && settled[1], "both reported settled");
        assertTrue(_status(id) == ChannelStatus.Closed && _status(id2) == ChannelStatus.Closed, "both closed");
        assertEq(token.balanceOf(alice), 30, "alice tokens");
        assertEq(token.balanceOf(bob), 120, "bob tokens");
        assertEq(alice.balance + bob.balance, 10 ether, "native all paid");
    }

    function test_settleMany_settlesTheOthersWhenAFrontRunnerSettledOneFirst() public {
        (ChannelParams[] memory ps, State[] memory ss, Lock[][] memory ls) = _batch(3);
        vm.warp(START + PERIOD);
        vm.prank(address(0xBAD));
        hub.settle(ps[0], ss[0], ls[0], 0); // a stranger settles the first channel of the batch first

        vm.expectEmit(address(hub));
        emit IChannelHub.SettlementSkipped(ss[0].channelId, SkipReason.AlreadyClosed);
        bool[] memory settled = hub.settleMany(ps, ss, ls, new uint256[](ps.length));

        assertTrue(!settled[0] && settled[1] && settled[2], "the first reported skipped, the other two settled");
        for (uint256 i; i < 3; ++i) {
            assertTrue(_status(ss[i].channelId) == ChannelStatus.Closed, "every channel closed");
        }
        // Channel i gives Bob (i + 1) / 10 ether of Alice's side; the front-runner's settle paid channel 0.
        assertEq(alice.balance, 3 ether - 0.6 ether, "alice paid on all three, once each");
        assertEq(bob.balance, 3 ether + 0.6 ether, "bob paid on all three, once each");
        assertEq(address(hub).balance, 10 ether, "only the setUp channel's deposits are left");
    }

    function test_settleMany_skipsEveryChannelThatIsNotReadyAndReportsWhy() public {
        ChannelParams[] memory ps = new ChannelParams[](5);
        State[] memory ss = new State[](5);
        Lock[][] memory ls = new Lock[][](5);
        // 0: open, never force-closed
        ChannelId id0;
        (ps[0], id0) = _open(address(0));
        ss[0] = _state(id0, 1, [uint128(0), 0], [uint128(0), 0]);
        // 2: force-closed now, then challenged with a newer state: the batch's state is no longer the registered one
        (ps[2], ss[2]) = _disputedAt(START, 0.3 ether);
        // 3: force-closed now with a lock whose secret stays unknown and whose expiry is after the batch
        ls[3] = new Lock[](1);
        ls[3][0] = _lock(0, 0.5 ether, SECRET, EXPIRY);
        (ps[3], ss[3]) = _disputedWithLocks(ls[3]);
        // 4: force-closed now, ready when the batch is mined
        (ps[4], ss[4]) = _disputedAt(START, 0.1 ether);
        vm.warp(START + 10);
        State memory newer = _state(ss[2].channelId, 2, [uint128(1 ether), 1 ether], [uint128(0.5 ether), 1.5 ether]);
        vm.prank(bob);
        hub.challenge(ps[2], _sign(newer));
        // 1: force-closed half a period later than the others: still in its challenge period at the batch
        (ps[1], ss[1]) = _disputedAt(START + PERIOD / 2, 0.2 ether);
        vm.warp(START + PERIOD);

        vm.expectEmit(address(hub));
        emit IChannelHub.SettlementSkipped(ss[0].channelId, SkipReason.NotDisputed);
        vm.expectEmit(address(hub));
        emit IChannelHub.SettlementSkipped(ss[1].channelId, SkipReason.ChallengePeriodNotOver);
        vm.expectEmit(address(hub));
        emit IChannelHub.SettlementSkipped(ss[2].channelId, SkipReason.StateReplaced);
        vm.expectEmit(address(hub));
        emit IChannelHub.SettlementSkipped(ss[3].channelId, SkipReason.LockNotExpired);
        bool[] memory settled = hub.settleMany(ps, ss, ls, new uint256[](ps.length));

        for (uint256 i; i < 4; ++i) {
            assertTrue(!settled[i], "not ready: skipped");
        }
        assertTrue(settled[4], "the ready channel settled");
        assertTrue(_status(ss[0].channelId) == ChannelStatus.Open, "0 still open");
        for (uint256 i = 1; i < 4; ++i) {
            assertTrue(_status(ss[i].channelId) == ChannelStatus.Disputed, "1 to 3 still disputed");
        }
        assertTrue(_status(ss[4].channelId) == ChannelStatus.Closed, "4 closed");

        // Once they are ready the skipped channels settle (2 with its newer state), and the settled one is skipped.
        vm.warp(EXPIRY + 1);
        ss[2] = newer;
        vm.expectEmit(address(hub));
        emit IChannelHub.SettlementSkipped(ss[4].channelId, SkipReason.AlreadyClosed);
        settled = hub.settleMany(ps, ss, ls, new uint256[](ps.length));
        assertTrue(!settled[0] && settled[1] && settled[2] && settled[3] && !settled[4], "the rest settled later");
    }

    function test_settleMany_stillRevertsOnInputThatCouldNeverSettle() public {
        (ChannelParams[] memory ps, State[] memory ss, Lock[][] memory ls) = _batch(2);
        vm.warp(START + PERIOD);
        State memory own = ss[0];
        ss[0] = ss[1]; // the state of another channel
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.WrongChannel.selector, own.channelId, ss[1].channelId)
        );
        hub.settleMany(ps, ss, ls, new uint256[](ps.length));

        ss[0] = own;
        ls[1] = _locks(); // locks the registered state does not carry
        vm.expectRevert(
            abi.encodeWithSelector(IChannelHub.LocksMismatch.selector, ss[1].channelId, EMPTY_LOCKS, hub.hashLocks(ls[1]))
        );
        hub.settleMany(ps, ss, ls, new uint256[](ps.length));
        assertTrue(_status(own.channelId) == ChannelStatus.Disputed, "nothing settled");
    }

    /// `n` native channels funded 1 ether a side, each force-closed now with a state in which Alice gave Bob
    /// (i + 1) / 10 ether; no locks.
    function _batch(uint256 n) internal returns (ChannelParams[] memory ps, State[] memory ss, Lock[][] memory ls) {
        ps = new ChannelParams[](n);
        ss = new State[](n);
        ls = new Lock[][](n);
        for (uint256 i; i < n; ++i) {
            (ps[i], ss[i]) = _disputedAt(block.timestamp, uint128(i + 1) * 0.1 ether);
        }
    }

    function _disputedAt(uint256 when, uint128 toBob) internal returns (ChannelParams memory q, State memory s) {
        vm.warp(when);
        ChannelId qid;
        (q, qid) = _open(address(0));
        _fund(q, qid, 1 ether, 1 ether);
        s = _state(qid, 1, [uint128(1 ether), 1 ether], [1 ether - toBob, 1 ether + toBob]);
        _forceClose(q, _sign(s));
    }

    function _disputedWithLocks(Lock[] memory locks) internal returns (ChannelParams memory q, State memory s) {
        ChannelId qid;
        (q, qid) = _open(address(0));
        _fund(q, qid, 1 ether, 1 ether);
        uint128 locked;
        for (uint256 i; i < locks.length; ++i) {
            locked += locks[i].amount;
        }
        s = _state(qid, 1, [uint128(1 ether), 1 ether], [1 ether - locked, 1 ether]);
        s.locksHash = hub.hashLocks(locks);
        _forceClose(q, _sign(s));
    }

    function test_settleMany_revertsOnLengthMismatch() public {
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.LengthMismatch.selector, 1, 0, 0, 0));
        hub.settleMany(new ChannelParams[](1), new State[](0), new Lock[][](0), new uint256[](0));
    }

    function test_payout_revertingReceiverIsDeferredWhileTheOtherIsPaid() public {
        RevertingReceiver sink = new RevertingReceiver();
        ChannelParams memory q = _params(address(0));
        q.payees = [address(0), address(sink)];
        ChannelId qid = hub.open(q);
        _fund(q, qid, 1 ether, 1 ether);
        State memory s = _state(qid, 1, [uint128(1 ether), 1 ether], [uint128(0.5 ether), 1.5 ether]);
        s.isFinal = true;
        hub.closeCooperatively(q, _sign(s));
        assertEq(alice.balance, 0.5 ether, "alice paid at once");
        assertEq(hub.deferredPayout(address(0), address(sink)), 1.5 ether, "bob's payee deferred");
    }

    function test_payout_gasBurningReceiverCannotBlockTheOther() public {
        GasBurningReceiver sink = new GasBurningReceiver();
        ChannelParams memory q = _params(address(0));
        q.payees = [address(sink), address(0)];
        ChannelId qid = hub.open(q);
        _fund(q, qid, 1 ether, 1 ether);
        vm.prank(bob);
        hub.forceCloseWithDeposits(q);
        vm.warp(START + PERIOD);
        hub.settle(q, _state(qid, 0, [uint128(1 ether), 1 ether], [uint128(1 ether), 1 ether]), new Lock[](0), 0);
        assertEq(bob.balance, 1 ether, "bob paid");
        assertEq(hub.deferredPayout(address(0), address(sink)), 1 ether, "burner deferred");
    }

    function test_payout_blocklistedReceiverWithdrawsToAnotherAddress() public {
        BlocklistToken blk = new BlocklistToken();
        ChannelParams memory q = _params(address(blk));
        ChannelId qid = hub.open(q);
        blk.mint(address(this), 200);
        blk.approve(address(hub), 200);
        hub.deposit(qid, 0, 100);
        hub.deposit(qid, 1, 100);
        blk.setBlocked(bob, true);
        State memory s = _state(qid, 1, [uint128(100), 100], [uint128(60), 140]);
        s.isFinal = true;
        hub.closeCooperatively(q, _sign(s));
        assertEq(blk.balanceOf(alice), 60, "alice paid despite bob's block");
        assertEq(hub.deferredPayout(address(blk), bob), 140, "bob deferred");

        vm.prank(bob);
        hub.withdraw(address(blk), address(0xB0B2));
        assertEq(blk.balanceOf(address(0xB0B2)), 140, "bob's fresh address");
        assertEq(hub.deferredPayout(address(blk), bob), 0, "cleared");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.NothingToWithdraw.selector, bob, address(blk)));
        hub.withdraw(address(blk), address(0xB0B2));
    }

    function test_withdraw_paysADeferredNativePayoutOnceTheReceiverAccepts() public {
        ToggleReceiver sink = new ToggleReceiver();
        ChannelParams memory q = _params(address(0));
        q.payees = [address(sink), address(0)];
        ChannelId qid = hub.open(q);
        _fund(q, qid, 1 ether, 0);
        State memory s = _state(qid, 1, [uint128(1 ether), 0], [uint128(1 ether), 0]);
        s.isFinal = true;
        hub.closeCooperatively(q, _sign(s));
        assertEq(hub.deferredPayout(address(0), address(sink)), 1 ether, "deferred");
        sink.setAccepting(true);
        sink.withdrawFrom(address(hub), address(0), address(sink));
        assertEq(address(sink).balance, 1 ether, "withdrawn");
        assertEq(hub.deferredPayout(address(0), address(sink)), 0, "cleared");
    }

    function test_settle_revertsWhenLocksAreOmitted() public {
        (State memory s,) = _disputeWithLocks();
        vm.warp(EXPIRY + 1 hours + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.LocksMismatch.selector, id, s.locksHash, EMPTY_LOCKS));
        hub.settle(p, s, new Lock[](0), 0);
    }

    function test_withdraw_revertsOnZeroReceiver() public {
        vm.expectRevert(abi.encodeWithSelector(IChannelHub.InvalidReceiver.selector, address(0)));
        hub.withdraw(address(0), address(0));
    }

    function test_payout_revertsWhenCallerStarvesPayoutOfGas() public {
        State memory s = _state(id, 1, [uint128(5 ether), 5 ether], [uint128(5 ether), 5 ether]);
        s.isFinal = true;
        SignedState memory signed = _sign(s);
        (bool ok, bytes memory ret) =
            address(hub).call{gas: 120_000}(abi.encodeCall(hub.closeCooperatively, (p, signed)));
        assertTrue(!ok, "starved call fails");
        assertTrue(bytes4(ret) == IChannelHub.InsufficientGasForPayout.selector, "with a clear error");
        assertTrue(_status(id) == ChannelStatus.Open, "nothing changed");
    }
}
