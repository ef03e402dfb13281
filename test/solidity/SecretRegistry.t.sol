// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {CheatTest} from "./helpers/HubTestBase.sol";
import {SecretRegistry} from "../../contracts/SecretRegistry.sol";
import {ISecretRegistry} from "../../contracts/interfaces/ISecretRegistry.sol";

contract SecretRegistryTest is CheatTest {
    SecretRegistry internal registry;

    function setUp() public {
        vm.warp(1_000);
        registry = new SecretRegistry();
    }

    function test_reveal_recordsTimeUnderSha256OfSecret() public {
        bytes32 secret = keccak256("s");
        assertEq(registry.reveal(secret), 1_000, "returned");
        assertEq(registry.revealedAt(sha256(abi.encodePacked(secret))), 1_000, "stored under sha256");
        assertEq(registry.revealedAt(keccak256(abi.encodePacked(secret))), 0, "not under keccak");
    }

    function test_reveal_keepsTheFirstRevealTime() public {
        bytes32 secret = keccak256("s");
        registry.reveal(secret);
        vm.warp(5_000);
        assertEq(registry.reveal(secret), 1_000, "first time returned");
        assertEq(registry.revealedAt(sha256(abi.encodePacked(secret))), 1_000, "first time kept");
    }

    function test_revealMany_recordsEverySecret() public {
        bytes32[] memory secrets = new bytes32[](3);
        bytes32[] memory hashes = new bytes32[](4);
        for (uint256 i; i < 3; ++i) {
            secrets[i] = bytes32(i + 1);
            hashes[i] = sha256(abi.encodePacked(secrets[i]));
        }
        hashes[3] = sha256(abi.encodePacked(bytes32(uint256(99))));
        registry.revealMany(secrets);
        uint64[] memory times = registry.revealedAtMany(hashes);
        for (uint256 i; i < 3; ++i) {
            assertEq(times[i], 1_000, "revealed");
        }
        assertEq(times[3], 0, "never revealed");
    }

    function test_revealMany_revertsOnEmptyBatch() public {
        vm.expectRevert(ISecretRegistry.NoSecrets.selector);
        registry.revealMany(new bytes32[](0));
    }

    function testFuzz_reveal_isIdempotent(bytes32 secret, uint32 later) public {
        registry.reveal(secret);
        vm.warp(1_000 + uint256(later));
        registry.reveal(secret);
        assertEq(registry.revealedAt(sha256(abi.encodePacked(secret))), 1_000, "first time");
    }

    function _hashes(bytes32[] memory secrets) internal pure returns (bytes32[] memory hashes) {
        hashes = new bytes32[](secrets.length);
        for (uint256 i; i < secrets.length; ++i) {
            hashes[i] = sha256(abi.encodePacked(secrets[i]));
        }
    }

    function _secrets(uint256 n, uint256 from) internal pure returns (bytes32[] memory secrets) {
        secrets = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            secrets[i] = bytes32(from + i);
        }
    }

    function test_revealMany_recordsTheBatchInTheFirstSecretsWordOnly() public {
        bytes32[] memory hashes = _hashes(_secrets(3, 1));
        registry.revealMany(_secrets(3, 1));
        assertEq(registry.revealedTogetherAt(hashes), 1_000, "the whole list, in order");
        assertEq(registry.revealedAt(hashes[0]), 1_000, "the tag does not show in the reveal time");
        bytes32[] memory reordered = new bytes32[](3);
        (reordered[0], reordered[1], reordered[2]) = (hashes[0], hashes[2], hashes[1]);
        assertEq(registry.revealedTogetherAt(reordered), 0, "another order");
        bytes32[] memory prefix = new bytes32[](2);
        (prefix[0], prefix[1]) = (hashes[0], hashes[1]);
        assertEq(registry.revealedTogetherAt(prefix), 0, "part of the list");
        bytes32[] memory tail = new bytes32[](2);
        (tail[0], tail[1]) = (hashes[1], hashes[2]);
        assertEq(registry.revealedTogetherAt(tail), 0, "a list that starts elsewhere");
        assertEq(registry.revealedTogetherAt(new bytes32[](0)), 0, "no list");
    }

    function test_revealMany_recordsNoBatchWhenItsFirstSecretWasRevealedBefore() public {
        registry.reveal(bytes32(uint256(1)));
        vm.warp(2_000);
        registry.revealMany(_secrets(2, 1));
        assertEq(registry.revealedTogetherAt(_hashes(_secrets(2, 1))), 0, "no batch record");
        uint64[] memory times = registry.revealedAtMany(_hashes(_secrets(2, 1)));
        assertEq(times[0], 1_000, "first reveal kept");
        assertEq(times[1], 2_000, "second revealed now");
    }

    function test_revealMany_batchTimeNeverChanges() public {
        bytes32[] memory hashes = _hashes(_secrets(2, 1));
        registry.revealMany(_secrets(2, 1));
        vm.warp(9_000);
        registry.revealMany(_secrets(2, 1));
        registry.reveal(bytes32(uint256(1)));
        assertEq(registry.revealedTogetherAt(hashes), 1_000, "first batch time");
    }

    function test_revealedTogetherAt_aSingleRevealIsNoBatch() public {
        registry.reveal(bytes32(uint256(7)));
        assertEq(registry.revealedTogetherAt(_hashes(_secrets(1, 7))), 0, "reveal records no batch");
        registry.revealMany(_secrets(1, 8));
        assertEq(registry.revealedTogetherAt(_hashes(_secrets(1, 8))), 1_000, "revealMany of one does");
    }
}
