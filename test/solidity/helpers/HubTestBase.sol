// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelHub} from "../../../contracts/ChannelHub.sol";
import {SecretRegistry} from "../../../contracts/SecretRegistry.sol";
import {IChannelHub} from "../../../contracts/interfaces/IChannelHub.sol";
import {TestToken} from "../../../contracts/test/TestTokens.sol";
import {
    ChannelId,
    ChannelParams,
    ChannelStatus,
    Lock,
    SignedState,
    State
} from "../../../contracts/types/ChannelTypes.sol";

/// @dev The Hardhat/Foundry cheatcodes these tests use.
interface Vm {
    function warp(uint256 newTimestamp) external;
    function deal(address who, uint256 newBalance) external;
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function assume(bool condition) external pure;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectPartialRevert(bytes4 selector) external;
    function expectEmit(address emitter) external;
    function chainId(uint256 newChainId) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);

    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
}

abstract contract CheatTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", _str(a), " != ", _str(b)));
    }

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) revert(what);
    }

    /// @dev `v` in decimal, for messages.
    function _str(uint256 v) internal pure returns (string memory s) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + (v % 10))), b);
            v /= 10;
        }
        s = string(b);
    }
}

/// @dev A hub, a registry, a token and two funded participants with known keys.
abstract contract HubTestBase is CheatTest {
    uint256 internal constant ALICE_PK = 0xA11CE;
    uint256 internal constant BOB_PK = 0xB0B;
    uint64 internal constant PERIOD = 1 hours;
    uint256 internal constant START = 1_700_000_000;
    bytes32 internal constant EMPTY_LOCKS = keccak256("");

    SecretRegistry internal registry;
    ChannelHub internal hub;
    TestToken internal token;
    address internal alice;
    address internal bob;
    uint256 private _nonce;

    function setUp() public virtual {
        vm.warp(START);
        registry = new SecretRegistry();
        hub = new ChannelHub(registry);
        token = new TestToken("Test", "TST");
        alice = vm.addr(ALICE_PK);
        bob = vm.addr(BOB_PK);
    }

    receive() external payable {}

    function _params(address asset) internal returns (ChannelParams memory p) {
        p.participants = [alice, bob];
        p.asset = asset;
        p.challengePeriod = PERIOD;
        p.nonce = ++_nonce;
    }

    function _open(address asset) internal returns (ChannelParams memory p, ChannelId id) {
        p = _params(asset);
        id = hub.open(p);
    }

    function _fund(ChannelParams memory p, ChannelId id, uint256 a0, uint256 a1) internal {
        _deposit(p, id, 0, a0);
        _deposit(p, id, 1, a1);
    }

    function _deposit(ChannelParams memory p, ChannelId id, uint8 who, uint256 amount) internal {
        if (amount == 0) return;
        if (p.asset == address(0)) {
            vm.deal(address(this), address(this).balance + amount);
            hub.deposit{value: amount}(id, who, amount);
        } else {
            TestToken(p.asset).mint(address(this), amount);
            TestToken(p.asset).approve(address(hub), amount);
            hub.deposit(id, who, amount);
        }
    }

    function _state(ChannelId id, uint64 seq, uint128[2] memory deposits, uint128[2] memory balances)
        internal
        pure
        returns (State memory s)
    {
        s = State({
            channelId: id,
            seq: seq,
            deposits: deposits,
            balances: balances,
            locksHash: EMPTY_LOCKS,
            isFinal: false
        });
    }

    function _sign(State memory s) internal view returns (SignedState memory) {
        return _signWith(s, ALICE_PK, BOB_PK);
    }

    function _signWith(State memory s, uint256 pk0, uint256 pk1) internal view returns (SignedState memory signed) {
        bytes32 digest = hub.stateDigest(s);
        signed.state = s;
        signed.signatures[0] = _sig(pk0, digest);
        signed.signatures[1] = _sig(pk1, digest);
    }

    function _sig(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _lock(uint8 sender, uint128 amount, bytes32 secret, uint64 expiry) internal pure returns (Lock memory) {
        return Lock({sender: sender, amount: amount, hashlock: sha256(abi.encodePacked(secret)), expiry: expiry});
    }

    function _forceClose(ChannelParams memory p, SignedState memory signed) internal {
        vm.prank(alice);
        hub.forceClose(p, signed);
    }

    /// @dev ChannelOpened's `packed` for `p` with `amount` deposited for `participant` (docs/PROTOCOL.md, Events).
    function _packedOpening(ChannelParams memory p, uint8 participant, uint256 amount)
        internal
        pure
        returns (bytes32[3] memory packed)
    {
        bool with = p.payees[0] != address(0) || p.payees[1] != address(0) || p.asset != address(0);
        uint8 flags = participant | (with ? 2 : 0);
        bytes memory b = abi.encodePacked(
            p.participants[0], p.participants[1], p.challengePeriod, p.nonce, flags, uint120(amount)
        );
        packed = abi.decode(b, (bytes32[3]));
    }

    function _status(ChannelId id) internal view returns (ChannelStatus) {
        return hub.getChannel(id).status;
    }
}
