// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {CheatTest} from "../helpers/HubTestBase.sol";
import {ChannelHub} from "../../../contracts/ChannelHub.sol";
import {SecretRegistry} from "../../../contracts/SecretRegistry.sol";
import {
    ChannelId,
    ChannelInfo,
    ChannelParams,
    ChannelStatus,
    Lock,
    SignedState,
    State,
    TransferOutcome
} from "../../../contracts/types/ChannelTypes.sol";


/// @notice Drives a hub through random sequences of every channel operation with valid co-signed states, and keeps
///         the ghost totals and flags the invariants check.
contract ChannelHubHandler is CheatTest {
    uint256 internal constant ALICE_PK = 0xA11CE;
    uint256 internal constant BOB_PK = 0xB0B;
    uint256 internal constant MAX_CHANNELS = 6;
    uint256 internal constant MAX_LOCKS = 6;

    ChannelHub public immutable hub;
    SecretRegistry public immutable registry;
    address public immutable alice;
    address public immutable bob;

    struct Tracked {
        ChannelParams params;
        ChannelId id;
        State registered;
        Lock[] locks;
        bytes32[] secrets;
        uint64 lastSeq;
        bool settled;
        uint8[] outcomes;
    }

    Tracked[] internal _channels;
    uint256 public totalDeposited;
    bool public seqDecreased;
    bool public paidTwice;
    bool public outcomeChanged;
    uint256 public settlements;

    constructor(ChannelHub hub_, SecretRegistry registry_) {
        hub = hub_;
        registry = registry_;
        alice = vm.addr(ALICE_PK);
        bob = vm.addr(BOB_PK);
    }

    receive() external payable {}

    function channelCount() external view returns (uint256) {
        return _channels.length;
    }

    // ------------------------------------------------------------------ actions

    function open(uint96 a0, uint96 a1) external {
        if (_channels.length >= MAX_CHANNELS) return;
        Tracked storage t = _channels.push();
        t.params.participants = [alice, bob];
        t.params.asset = address(0);
        t.params.challengePeriod = 1 hours;
        t.params.nonce = _channels.length;
        t.id = hub.open(t.params);
        _deposit(t, 0, a0);
        _deposit(t, 1, a1);
    }

    function deposit(uint8 index, bool second, uint96 amount) external {
        if (_channels.length == 0) return;
        Tracked storage t = _channels[index % _channels.length];
        if (hub.getChannel(t.id).status != ChannelStatus.Open) return;
        _deposit(t, second ? 1 : 0, amount);
    }

    /// A co-signed state over the current deposits: random locks in random directions, the rest split at random.
    function forceClose(uint8 index, uint64 seq, uint256 seed, bool byBob) external {
        if (_channels.length == 0) return;
        Tracked storage t = _channels[index % _channels.length];
        if (hub.getChannel(t.id).status != ChannelStatus.Open) return;
        _randomState(t, seq % 1000, seed);
        SignedState memory signed = _sign(t.registered);
        vm.prank(byBob ? bob : alice);
        hub.forceClose(t.params, signed);
        _afterRegistration(t);
    }

    function challenge(uint8 index, uint64 bump, uint256 seed) external {
        if (_channels.length == 0) return;
        Tracked storage t = _channels[index % _channels.length];
        ChannelInfo memory info = hub.getChannel(t.id);
        if (info.status != ChannelStatus.Disputed || block.timestamp >= info.deadline) return;
        _randomState(t, info.seq + 1 + (bump % 100), seed);
        hub.challenge(t.params, _sign(t.registered));
        _afterRegistration(t);
    }

    function reveal(uint8 index, uint8 lockIndex) external {
        if (_channels.length == 0) return;
        Tracked storage t = _channels[index % _channels.length];
        if (t.secrets.length == 0) return;
        registry.reveal(t.secrets[lockIndex % t.secrets.length]);
    }

    function warp(uint32 seconds_) external {
        vm.warp(block.timestamp + (seconds_ % 2 days));
    }

    function settle(uint8 index) external {
        if (_channels.length == 0) return;
        Tracked storage t = _channels[index % _channels.length];
        ChannelInfo memory info = hub.getChannel(t.id);
        if (info.status == ChannelStatus.Closed && t.settled) {
            // A settled channel must never pay again.
            try hub.settle(t.params, t.registered, t.locks, 0) {
                paidTwice = true;
            } catch {}
            _checkOutcomes(t);
            return;
        }
        if (info.status != ChannelStatus.Disputed || block.timestamp < info.deadline) return;
        for (uint256 i; i < t.locks.length; ++i) {
            uint64 at = registry.revealedAt(t.locks[i].hashlock);
            if ((at == 0 || at > t.locks[i].expiry) && block.timestamp <= t.locks[i].expiry) return; // not decidable
        }
        hub.settle(t.params, t.registered, t.locks, 0);
        t.settled = true;
        ++settlements;
        for (uint256 i; i < t.locks.length; ++i) {
            t.outcomes.push(uint8(hub.transferOutcome(t.id, i)));
        }
    }

    function closeCooperatively(uint8 index, uint256 split) external {
        if (_channels.length == 0) return;
        Tracked storage t = _channels[index % _channels.length];
        ChannelInfo memory info = hub.getChannel(t.id);
        if (info.status != ChannelStatus.Open) return;
        uint128 total = uint128(info.deposits[0] + info.deposits[1]);
        uint128 b0 = uint128(split % (uint256(total) + 1));
        State memory s = State({
            channelId: t.id,
            seq: t.lastSeq + 1,
            deposits: [uint128(info.deposits[0]), uint128(info.deposits[1])],
            balances: [b0, total - b0],
            locksHash: keccak256(""),
            isFinal: true
        });
        hub.closeCooperatively(t.params, _sign(s));
    }

    // ------------------------------------------------------------------ internals

    function _deposit(Tracked storage t, uint8 who, uint96 amount) private {
        if (amount == 0) return;
        vm.deal(address(this), address(this).balance + amount);
        hub.deposit{value: amount}(t.id, who, amount);
        totalDeposited += amount;
    }

    function _randomState(Tracked storage t, uint64 seq, uint256 seed) private {
        ChannelInfo memory info = hub.getChannel(t.id);
        uint256 remaining = info.deposits[0] + info.deposits[1];
        delete t.locks;
        delete t.secrets;
        uint256 n = seed % (MAX_LOCKS + 1);
        for (uint256 i; i < n; ++i) {
            seed = uint256(keccak256(abi.encode(seed, i)));
            uint128 amount = uint128(seed % (remaining + 1));
            if (amount == 0) continue;
            remaining -= amount;
            bytes32 secret = keccak256(abi.encode(seed, "secret"));
            t.secrets.push(secret);
            t.locks.push(
                Lock({
                    sender: uint8(seed % 2),
                    amount: amount,
                    hashlock: sha256(abi.encodePacked(secret)),
                    expiry: uint64(block.timestamp + 10 minutes + (seed % 1 days))
                })
            );
        }
        uint128 b0 = uint128(uint256(keccak256(abi.encode(seed, "split"))) % (remaining + 1));
        t.registered = State({
            channelId: t.id,
            seq: seq,
            deposits: [uint128(info.deposits[0]), uint128(info.deposits[1])],
            balances: [b0, uint128(remaining) - b0],
            locksHash: hub.hashLocks(t.locks),
            isFinal: false
        });
    }

    function _afterRegistration(Tracked storage t) private {
        uint64 seq = hub.getChannel(t.id).seq;
        if (seq < t.lastSeq) seqDecreased = true;
        t.lastSeq = seq;
    }

    function _checkOutcomes(Tracked storage t) private {
        for (uint256 i; i < t.outcomes.length; ++i) {
            TransferOutcome o = hub.transferOutcome(t.id, i);
            if (uint8(o) != t.outcomes[i] || o == TransferOutcome.Unresolved) outcomeChanged = true;
        }
    }

    function _sign(State memory s) private view returns (SignedState memory signed) {
        bytes32 digest = hub.stateDigest(s);
        signed.state = s;
        (uint8 v, bytes32 r, bytes32 sig) = vm.sign(ALICE_PK, digest);
        signed.signatures[0] = abi.encodePacked(r, sig, v);
        (v, r, sig) = vm.sign(BOB_PK, digest);
        signed.signatures[1] = abi.encodePacked(r, sig, v);
    }
}

/// @notice Properties that hold after any sequence of opens, deposits, force closes, challenges, reveals, clock
///         moves, settlements and cooperative closes.
contract ChannelHubInvariantTest is CheatTest {
    ChannelHub internal hub;
    ChannelHubHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        SecretRegistry registry = new SecretRegistry();
        hub = new ChannelHub(registry);
        handler = new ChannelHubHandler(hub, registry);
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    /// Guarantee 3: whatever has left the hub plus what it still holds is exactly what was deposited.
    function invariant_paidOutPlusHeldEqualsDeposited() public view {
        uint256 paid = handler.alice().balance + handler.bob().balance;
        assertEq(paid + address(hub).balance, handler.totalDeposited(), "conservation");
    }

    function invariant_registeredSequenceNumberOnlyRises() public view {
        assertTrue(!handler.seqDecreased(), "a registered sequence number went down");
    }

    function invariant_settledChannelNeverPaysTwice() public view {
        assertTrue(!handler.paidTwice(), "a settled channel paid again");
    }

    function invariant_lockOutcomeIsFinalAndNeverBoth() public view {
        assertTrue(!handler.outcomeChanged(), "a lock outcome changed after settlement");
    }
}
