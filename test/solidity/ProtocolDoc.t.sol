// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {CheatTest} from "./helpers/HubTestBase.sol";

/// @dev The file, string and JSON cheatcodes this test uses (read access is granted in hardhat.config.ts).
interface VmFiles {
    function readFile(string calldata path) external view returns (string memory);
    function split(string calldata input, string calldata delimiter) external pure returns (string[] memory);
    function keyExistsJson(string calldata json, string calldata key) external view returns (bool);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
}

/// @notice docs/PROTOCOL.md lists, in its event table, exactly the events the interfaces declare, each with the
///         parameter names of the interface (the channel id written `id`), so the table cannot drift.
contract ProtocolDocTest is CheatTest {
    VmFiles internal constant files = VmFiles(address(vm));

    function test_protocolDoc_eventTableListsEveryDeclaredEventWithItsParameters() public view {
        string[] memory rows = _eventTableRows("docs/PROTOCOL.md");
        string[] memory hub = _declaredEvents("artifacts/contracts/interfaces/IChannelHub.sol/IChannelHub.json");
        string[] memory registry =
            _declaredEvents("artifacts/contracts/interfaces/ISecretRegistry.sol/ISecretRegistry.json");
        for (uint256 i; i < hub.length + registry.length; ++i) {
            string memory declared = i < hub.length ? hub[i] : registry[i - hub.length];
            assertTrue(_has(rows, declared), string.concat("PROTOCOL.md's event table lacks `", declared, "`"));
        }
        assertEq(rows.length, hub.length + registry.length, "PROTOCOL.md's event table rows, one per event");
    }

    /// The first code span of every row of the table under "## Events", e.g. "Deposited(id, participant, ...)".
    function _eventTableRows(string memory path) internal view returns (string[] memory rows) {
        string memory doc = files.readFile(path);
        string memory section = files.split(files.split(doc, "\n## Events\n")[1], "\n## ")[0];
        string[] memory lines = files.split(section, "\n");
        rows = new string[](lines.length);
        uint256 n;
        for (uint256 i; i < lines.length; ++i) {
            if (_startsWith(lines[i], "| `")) rows[n++] = files.split(lines[i], "`")[1];
        }
        assembly ("memory-safe") {
            mstore(rows, n)
        }
    }

    /// Every event of a compiled ABI as "Name(param, param)", with `channelId` written `id` as the doc does.
    function _declaredEvents(string memory artifact) internal view returns (string[] memory events) {
        string memory json = files.readFile(artifact);
        uint256 count;
        while (files.keyExistsJson(json, string.concat(".abi[", _str(count), "]"))) ++count;
        events = new string[](count);
        uint256 n;
        for (uint256 i; i < count; ++i) {
            string memory entry = string.concat(".abi[", _str(i), "]");
            if (keccak256(bytes(files.parseJsonString(json, string.concat(entry, ".type")))) != keccak256("event")) {
                continue;
            }
            string memory sig = string.concat(files.parseJsonString(json, string.concat(entry, ".name")), "(");
            for (uint256 j; files.keyExistsJson(json, string.concat(entry, ".inputs[", _str(j), "]")); ++j) {
                string memory name = files.parseJsonString(json, string.concat(entry, ".inputs[", _str(j), "].name"));
                if (keccak256(bytes(name)) == keccak256("channelId")) name = "id";
                sig = string.concat(sig, j == 0 ? "" : ", ", name);
            }
            events[n++] = string.concat(sig, ")");
        }
        assembly ("memory-safe") {
            mstore(events, n)
        }
    }

    function _has(string[] memory list, string memory item) internal pure returns (bool) {
        for (uint256 i; i < list.length; ++i) {
            if (keccak256(bytes(list[i])) == keccak256(bytes(item))) return true;
        }
        return false;
    }

    function _startsWith(string memory s, string memory prefix) internal pure returns (bool) {
        bytes memory a = bytes(s);
        bytes memory b = bytes(prefix);
        if (a.length < b.length) return false;
        for (uint256 i; i < b.length; ++i) {
            if (a[i] != b[i]) return false;
        }
        return true;
    }
}
