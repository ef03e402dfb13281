// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IChannelHub} from "../interfaces/IChannelHub.sol";
import {ChannelId, ChannelParams, SignedState} from "../types/ChannelTypes.sol";

/// @title ChannelWallet
/// @notice Example of a contract that is a channel participant: its channel states are signed by a rotating
///         EOA key and checked by the hub through ERC-1271. It opens and funds channels, force-closes and
///         collects deferred payouts through `IChannelHub`.
/// @dev Rotating the key revokes every signature the old key made: a counterparty must treat such a
///      participant's states as safe only once they are registered on chain (docs/PROTOCOL.md, "ERC-1271").
contract ChannelWallet is IERC1271, Ownable {
    using SafeERC20 for IERC20;

    /// @notice The hub this wallet uses.
    IChannelHub public immutable hub;
    /// @notice The key whose ECDSA signatures this wallet accepts as its own.
    address public signingKey;

    /// @notice The signing key changed; signatures of the old key are no longer valid.
    event SigningKeyRotated(address indexed previousKey, address indexed newKey);

    /// @notice The signing key cannot be address(0).
    error ZeroSigningKey();

    /// @param hub_ The channel hub.
    /// @param owner_ Who may move this wallet's funds and channels.
    /// @param signingKey_ The first signing key.
    constructor(IChannelHub hub_, address owner_, address signingKey_) Ownable(owner_) {
        if (signingKey_ == address(0)) revert ZeroSigningKey();
        hub = hub_;
        signingKey = signingKey_;
    }

    /// @notice Accepts native coin (deposits to fund channels, and payouts).
    receive() external payable {}

    /// @notice Replaces the signing key, revoking every signature of the previous one.
    /// @param newKey The new signing key.
    function rotateSigningKey(address newKey) external onlyOwner {
        if (newKey == address(0)) revert ZeroSigningKey();
        emit SigningKeyRotated(signingKey, newKey);
        signingKey = newKey;
    }

    /// @notice ERC-1271: valid when the current signing key signed `digest`.
    /// @param digest The EIP-712 digest of a channel state.
    /// @param signature A 65-byte ECDSA signature.
    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == signingKey) return IERC1271.isValidSignature.selector;
        return 0xffffffff;
    }

    /// @notice Opens a channel and deposits `amount` from this wallet for participant `participant`.
    /// @param params The channel parameters (this wallet must be one of the participants).
    /// @param participant This wallet's index in `params.participants`.
    /// @param amount What to deposit from this wallet's balance.
    function openAndFund(ChannelParams calldata params, uint8 participant, uint256 amount)
        external
        onlyOwner
        returns (ChannelId id)
    {
        id = hub.open(params);
        if (params.asset == address(0)) {
            hub.deposit{value: amount}(id, participant, amount);
        } else {
            IERC20(params.asset).forceApprove(address(hub), amount);
            hub.deposit(id, participant, amount);
        }
    }

    /// @notice Force-closes a channel of this wallet with the newest co-signed state.
    /// @param params The channel parameters.
    /// @param signed The state and both signatures.
    function forceClose(ChannelParams calldata params, SignedState calldata signed) external onlyOwner {
        hub.forceClose(params, signed);
    }

    /// @notice Force-closes a channel of this wallet at its opening deposits.
    /// @param params The channel parameters.
    function forceCloseWithDeposits(ChannelParams calldata params) external onlyOwner {
        hub.forceCloseWithDeposits(params);
    }

    /// @notice Collects this wallet's deferred payouts in `asset` from the hub.
    /// @param asset address(0) for native coin, else the token.
    function collect(address asset) external onlyOwner {
        hub.withdraw(asset, address(this));
    }

    /// @notice Sends funds held by this wallet to `to`.
    /// @param asset address(0) for native coin, else the token.
    /// @param to The receiver.
    /// @param amount The amount.
    function sweep(address asset, address payable to, uint256 amount) external onlyOwner {
        if (asset == address(0)) {
            (bool ok, bytes memory reason) = to.call{value: amount}("");
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason))
                }
            }
        } else {
            IERC20(asset).safeTransfer(to, amount);
        }
    }
}
