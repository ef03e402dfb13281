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
}
