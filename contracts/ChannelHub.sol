// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IChannelHub} from "./interfaces/IChannelHub.sol";
import {ISecretRegistry} from "./interfaces/ISecretRegistry.sol";
import {AssetTransfer} from "./libraries/AssetTransfer.sol";
import {Locks} from "./libraries/Locks.sol";
import {Settlement} from "./libraries/Settlement.sol";
import {StateHashing} from "./libraries/StateHashing.sol";
import {
    ChannelId,
    ChannelInfo,
    ChannelParams,
    ChannelStatus,
    Lock,
    SignedState,
    SkipReason,
    State,
    TransferOutcome
} from "./types/ChannelTypes.sol";

/// @title ChannelHub
/// @notice Holds the deposits of many two-party channels on one chain and enforces their latest co-signed state.
///         The same code runs on every chain; a cross-chain swap uses one channel on each. See docs/PROTOCOL.md.
contract ChannelHub is IChannelHub, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Shortest challenge period: long enough for a watchtower to get a challenge included on a busy chain.
    uint64 public constant MIN_CHALLENGE_PERIOD = 5 minutes;
    /// @notice Longest challenge period: bounds how long a vanished counterparty can keep funds locked.
    uint64 public constant MAX_CHALLENGE_PERIOD = 30 days;
    /// @notice Gas each pushed payout may use: plenty for an ERC-20 transfer or a contract wallet's receive, and a
    ///         bound on what a hostile receiver can burn before its payout is deferred to `withdraw`.
    ///         A push runs only with enough gas left to give the receiver all of it (see AssetTransfer).
    uint256 public constant PAYOUT_GAS = AssetTransfer.PAYOUT_GAS;
    /// @notice The most locks one state may carry (see Locks.MAX_LOCKS).
    uint256 public constant MAX_LOCKS = Locks.MAX_LOCKS;
    /// @notice Deposits are stored in 120 bits each so that status and both deposits share one storage slot.
    uint256 public constant MAX_DEPOSIT = type(uint120).max;

    /// @inheritdoc IChannelHub
    ISecretRegistry public immutable secretRegistry;

    /// @dev Bit offsets of the deposits in a channel's first word (see Channel), and that word for a native channel
    ///      just opened: status Open (ChannelStatus 1) in bits 0-7, the native flag in bits 8-15.
    uint256 private constant DEPOSIT0_SHIFT = 16;
    uint256 private constant DEPOSIT1_SHIFT = 136;
    uint256 private constant OPEN_NATIVE = 0x0101;

    struct Channel {
        // slot 0: read by every entry point. `deposit` reads and writes it as one word: status in bits 0-7, the
        // native flag in bits 8-15, deposit0 in bits 16-135, deposit1 in bits 136-255 (Solidity's packing order).
        ChannelStatus status;
        bool native;
        uint120 deposit0;
        uint120 deposit1;
        // slot 1: the registered state's number, the challenge deadline, the settled lock count
        uint64 seq;
        uint64 deadline;
        uint16 lockCount;
        // slot 2: hash of the registered state while disputed
        bytes32 stateHash;
        // slot 3: token channels only
        address asset;
        // slot 4: bit i set when lock i was paid at settlement
        uint256 paidMask;
    }

    mapping(ChannelId id => Channel) private _channels;
    mapping(address asset => mapping(address account => uint256)) private _deferred;

    /// @param registry The secret registry whose reveal times decide locks on this chain.
    constructor(ISecretRegistry registry) EIP712("ChannelHub", "1") {
        secretRegistry = registry;
    }

    // ------------------------------------------------------------------ Phase 0: funding

    /// @inheritdoc IChannelHub
    function open(ChannelParams calldata params) external returns (ChannelId id) {
        id = _open(params, 0, 0);
    }

    /// @inheritdoc IChannelHub
    function openAndDeposit(ChannelParams calldata params, uint8 participant, uint256 amount)
        external
        payable
        returns (ChannelId id)
    {
        _openNativeAndReturn(params, participant, amount);
        // Not a new native channel with valid parameters and value: a token channel, or a call that reverts below.
        if (participant > 1) revert InvalidParticipantIndex(participant);
        if (amount == 0) revert ZeroDeposit();
        id = _open(params, participant, amount);
    }

    /// @dev The first funding of a native channel, the usual start of a channel, in one pass: when `params` are valid
    ///      (as `_open` checks them), the channel is new, the asset is the native coin, `participant` is 0 or 1 and
    ///      `amount` is non-zero, at most MAX_DEPOSIT and equal to `msg.value`, it writes the channel's first word
    ///      once, emits what `_open` emits, and ends the call returning the id. Any other input returns here without
    ///      an effect and goes down `_open`, which handles it or reverts with the error that names the problem.
    function _openNativeAndReturn(ChannelParams calldata params, uint256 participant, uint256 amount) private {
        bytes32 opened = ChannelOpened.selector;
        bytes32 openedWith = ChannelOpenedWith.selector;
        assembly ("memory-safe") {
            let p0 := calldataload(params)
            let p1 := calldataload(add(params, 0x20))
            let payees := or(calldataload(add(params, 0x40)), calldataload(add(params, 0x60)))
            let period := calldataload(add(params, 0xa0))
            let other := or(or(iszero(p0), iszero(p1)), eq(p0, p1))
            other := or(other, or(lt(period, MIN_CHALLENGE_PERIOD), gt(period, MAX_CHALLENGE_PERIOD)))
            // A dirty address word goes to `_open` (which reverts), and so does a token (asset not zero).
            other := or(other, or(shr(160, or(or(p0, p1), payees)), calldataload(add(params, 0x80))))
            other := or(other, or(gt(participant, 1), iszero(amount)))
            other := or(other, or(xor(callvalue(), amount), shr(120, amount))) // amount > MAX_DEPOSIT (2^120 - 1)
            if iszero(other) {
                // keccak256(abi.encode(block.chainid, address(this), params)), as StateHashing.channelId.
                let ptr := mload(0x40)
                mstore(ptr, chainid())
                mstore(add(ptr, 0x20), address())
                calldatacopy(add(ptr, 0x40), params, 0xe0)
                let id := keccak256(ptr, 0x120)
                mstore(0x00, id)
                mstore(0x20, _channels.slot)
                let slot := keccak256(0x00, 0x40)
                if iszero(sload(slot)) {
                    sstore(slot, or(OPEN_NATIVE, shl(add(DEPOSIT0_SHIFT, mul(120, participant)), amount)))
                    // ChannelOpened's packed data, as `_emitOpened` writes it.
                    mstore(ptr, shl(96, p0))
                    mstore(add(ptr, 20), shl(96, p1))
                    mstore(add(ptr, 40), shl(192, period))
                    mstore(add(ptr, 48), calldataload(add(params, 0xc0)))
                    mstore(add(ptr, 80), or(shl(248, or(participant, shl(1, iszero(iszero(payees))))), shl(128, amount)))
                    log2(ptr, 96, opened, id)
                    if payees {
                        calldatacopy(ptr, add(params, 0x40), 0x60)
                        log2(ptr, 0x60, openedWith, id)
                    }
                    mstore(0x00, id)
                    return(0x00, 0x20)
                }
            }
        }
    }

    /// @dev Opens the channel of `params` with `amount` (0: none) deposited for `participant` (0 or 1, checked by the
    ///      caller): `open`, token channels, and every `openAndDeposit` that `_openNativeAndReturn` did not take.
    function _open(ChannelParams calldata params, uint256 participant, uint256 amount) private returns (ChannelId id) {
        id = StateHashing.channelId(params);
        address p0 = params.participants[0];
        address p1 = params.participants[1];
        if (p0 == address(0) || p1 == address(0) || p0 == p1) revert InvalidParticipants(p0, p1);
        uint64 period = params.challengePeriod;
        if (period < MIN_CHALLENGE_PERIOD || period > MAX_CHALLENGE_PERIOD) {
            revert InvalidChallengePeriod(period, MIN_CHALLENGE_PERIOD, MAX_CHALLENGE_PERIOD);
        }
        address asset = params.asset;
        if (asset != address(0) && asset.code.length == 0) revert InvalidAsset(asset);
        Channel storage ch = _channels[id];
        if (ch.status != ChannelStatus.None) revert ChannelExists(id);

        uint256 shift = participant == 0 ? DEPOSIT0_SHIFT : DEPOSIT1_SHIFT;
        if (asset == address(0)) {
            if (msg.value != amount) revert NativeValueMismatch(amount, msg.value);
            if (amount > MAX_DEPOSIT) revert DepositTooLarge(amount, MAX_DEPOSIT);
            // Status, native flag and deposit: the channel's first word, written once.
            assembly ("memory-safe") {
                sstore(ch.slot, or(OPEN_NATIVE, shl(shift, amount)))
            }
        } else {
            amount = _openToken(ch, asset, shift, amount);
        }
        _emitOpened(params, id, participant, amount);
    }

    /// @dev ChannelOpened's data is abi.encodePacked(participants[0], participants[1], uint64 challengePeriod, nonce,
    ///      uint8 flags, uint120 deposit): 96 bytes, written straight to memory (each field overwrites the zero tail
    ///      of the one before). Flags: bit 0 the participant the deposit is for, bit 1 set when ChannelOpenedWith
    ///      follows.
    function _emitOpened(ChannelParams calldata params, ChannelId id, uint256 participant, uint256 amount) private {
        bytes32 opened = ChannelOpened.selector;
        bytes32 openedWith = ChannelOpenedWith.selector;
        assembly ("memory-safe") {
            let extras := or(or(calldataload(add(params, 0x40)), calldataload(add(params, 0x60))), calldataload(add(params, 0x80)))
            let ptr := mload(0x40)
            mstore(ptr, shl(96, calldataload(params)))
            mstore(add(ptr, 20), shl(96, calldataload(add(params, 0x20))))
            mstore(add(ptr, 40), shl(192, calldataload(add(params, 0xa0))))
            mstore(add(ptr, 48), calldataload(add(params, 0xc0)))
            let flags := or(participant, shl(1, iszero(iszero(extras))))
            mstore(add(ptr, 80), or(shl(248, flags), shl(128, amount)))
            log2(ptr, 96, opened, id)
            if extras {
                calldatacopy(ptr, add(params, 0x40), 0x60)
                log2(ptr, 0x60, openedWith, id)
            }
        }
    }

    /// @dev Opens a token channel and pulls `amount` (0: none) into the deposit at `shift`; returns what arrived.
    function _openToken(Channel storage ch, address asset, uint256 shift, uint256 amount)
        private
        returns (uint256 received)
    {
        if (msg.value != 0) revert UnexpectedNativeValue(msg.value);
        // Open before the transfer, so that a token re-entering with the same parameters finds the id taken.
        ch.status = ChannelStatus.Open;
        ch.asset = asset;
        if (amount == 0) return 0;
        received = _pullToken(IERC20(asset), amount);
        if (received > MAX_DEPOSIT) revert DepositTooLarge(received, MAX_DEPOSIT);
        assembly ("memory-safe") {
            sstore(ch.slot, or(sload(ch.slot), shl(shift, received)))
        }
    }

    /// @inheritdoc IChannelHub
    function deposit(ChannelId id, uint8 participant, uint256 amount) external payable {
        if (participant > 1) revert InvalidParticipantIndex(participant);
        if (amount == 0) revert ZeroDeposit();
        Channel storage ch = _channels[id];
        // Slot 0 (status, native flag, both deposits) is read once and written once: deposits are the hot path.
        uint256 head;
        assembly ("memory-safe") {
            head := sload(ch.slot)
        }
        ChannelStatus status = ChannelStatus(uint8(head));
        if (status != ChannelStatus.Open) revert ChannelNotOpen(id, status);

        uint256 received;
        if (uint8(head >> 8) != 0) {
            // Native coin: no external call on this path, nothing to guard against re-entry.
            if (msg.value != amount) revert NativeValueMismatch(amount, msg.value);
            received = amount;
        } else {
            if (msg.value != 0) revert UnexpectedNativeValue(msg.value);
            received = _pullToken(IERC20(ch.asset), amount);
            assembly ("memory-safe") {
                head := sload(ch.slot)
            }
        }
        uint256 shift = participant == 0 ? DEPOSIT0_SHIFT : DEPOSIT1_SHIFT;
        uint256 current = (head >> shift) & MAX_DEPOSIT;
        if (received > MAX_DEPOSIT - current) revert DepositTooLarge(current + received, MAX_DEPOSIT);
        uint256 total = current + received;
        head = (head & ~(MAX_DEPOSIT << shift)) | (total << shift);
        assembly ("memory-safe") {
            sstore(ch.slot, head)
        }
        emit Deposited(id, participant, received, total);
    }

    /// @dev The balance change, not `amount`: a fee-on-transfer token must not create phantom funds. The transfer
    ///      precedes the credit because the credit depends on it; the guard blocks re-entry during the transfer.
    function _pullToken(IERC20 token, uint256 amount) private nonReentrant returns (uint256 received) {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        received = token.balanceOf(address(this)) - before;
        if (received == 0) revert NothingReceived(address(token));
    }

    // ------------------------------------------------------------------ Phase 1: cooperative close

    /// @inheritdoc IChannelHub
    function closeCooperatively(ChannelParams calldata params, SignedState calldata signed) external nonReentrant {
        State calldata s = signed.state;
        ChannelId id = _requireChannelOf(params, s);
        Channel storage ch = _channels[id];
        ChannelStatus status = ch.status;
        if (status != ChannelStatus.Open && status != ChannelStatus.Disputed) revert ChannelNotClosable(id, status);
        if (!s.isFinal) revert StateNotFinal(id);
        if (s.locksHash != StateHashing.EMPTY_LOCKS_HASH) revert StateHasLocks(id);
        if (status == ChannelStatus.Disputed && s.seq < ch.seq) revert StaleSequence(id, s.seq, ch.seq);
        _requireCoSigned(params, id, signed);
        uint256[2] memory out =
            Settlement.payouts(id, _deposits(ch), s.deposits, s.balances, [uint256(0), uint256(0)], 0);

        ch.status = ChannelStatus.Closed;
        if (status == ChannelStatus.Disputed) {
            // Only a dispute wrote these slots; an undisputed close leaves them untouched (the final sequence
            // number is in the ChannelClosed event) and costs no new storage.
            ch.seq = s.seq;
            ch.stateHash = bytes32(0);
        }
        emit ChannelClosed(id, s.seq, out);
        _payOut(id, params, out);
    }

    // ------------------------------------------------------------------ Phase 2: dispute

    /// @inheritdoc IChannelHub
    function forceClose(ChannelParams calldata params, SignedState calldata signed) external nonReentrant {
        State calldata s = signed.state;
        ChannelId id = _requireChannelOf(params, s);
        Channel storage ch = _requireOpenByParticipant(params, id);
        Settlement.requireFunded(id, _deposits(ch), s.deposits, s.balances);
        bytes32 stateHash = _requireCoSigned(params, id, signed);
        _register(ch, params.challengePeriod, s.seq, stateHash);
        emit ChannelForceClosed(id, msg.sender, s, ch.deadline);
    }

    /// @inheritdoc IChannelHub
    function forceCloseWithDeposits(ChannelParams calldata params) external nonReentrant {
        ChannelId id = StateHashing.channelId(params);
        Channel storage ch = _requireOpenByParticipant(params, id);
        uint128[2] memory deposits = [uint128(ch.deposit0), uint128(ch.deposit1)];
        State memory opening = State({
            channelId: id,
            seq: 0,
            deposits: deposits,
            balances: deposits,
            locksHash: StateHashing.EMPTY_LOCKS_HASH,
            isFinal: false
        });
        _register(ch, params.challengePeriod, 0, StateHashing.hashState(opening));
        emit ChannelForceClosed(id, msg.sender, opening, ch.deadline);
    }

    /// @inheritdoc IChannelHub
    function challenge(ChannelParams calldata params, SignedState calldata signed) external nonReentrant {
        State calldata s = signed.state;
        ChannelId id = _requireChannelOf(params, s);
        Channel storage ch = _channels[id];
        if (ch.status != ChannelStatus.Disputed) revert ChannelNotDisputed(id, ch.status);
        if (block.timestamp >= ch.deadline) revert ChallengePeriodOver(id, ch.deadline);
        if (s.seq <= ch.seq) revert StaleSequence(id, s.seq, ch.seq);
        Settlement.requireFunded(id, _deposits(ch), s.deposits, s.balances);
        bytes32 stateHash = _requireCoSigned(params, id, signed);

        ch.seq = s.seq; // the deadline stays: no extension (PROTOCOL.md section 3)
        ch.stateHash = stateHash;
        emit ChannelChallenged(id, msg.sender, s, ch.deadline);
    }

    // ------------------------------------------------------------------ Phase 3: batch settlement

    /// @inheritdoc IChannelHub
    function settle(ChannelParams calldata params, State calldata state, Lock[] calldata locks, uint256 revealedTogether)
        external
        nonReentrant
    {
        _settle(params, state, locks, revealedTogether, false);
    }

    /// @inheritdoc IChannelHub
    function settleMany(
        ChannelParams[] calldata params,
        State[] calldata states,
        Lock[][] calldata locks,
        uint256[] calldata revealedTogether
    ) external nonReentrant returns (bool[] memory settled) {
        uint256 n = params.length;
        if (states.length != n || locks.length != n || revealedTogether.length != n) {
            revert LengthMismatch(n, states.length, locks.length, revealedTogether.length);
        }
        settled = new bool[](params.length);
        // A channel that is not ready is skipped, not reverted on: anyone may settle or challenge one channel of the
        // batch first, and that must not undo the others. Each channel's checks and effects come before its own
        // payouts; the reentrancy guard keeps payout receivers from changing what a later channel's checks read.
        for (uint256 i; i < params.length; ++i) {
            settled[i] = _settle(params[i], states[i], locks[i], revealedTogether[i], true);
        }
    }

    // ------------------------------------------------------------------ Phase 4: asset settlement

    /// @inheritdoc IChannelHub
    function withdraw(address asset, address to) external nonReentrant {
        if (to == address(0)) revert InvalidReceiver(to);
        uint256 amount = _deferred[asset][msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender, asset);

        delete _deferred[asset][msg.sender];
        emit Withdrawn(msg.sender, asset, to, amount);
        if (asset == address(0)) Address.sendValue(payable(to), amount);
        else IERC20(asset).safeTransfer(to, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IChannelHub
    function channelId(ChannelParams calldata params) external view returns (ChannelId) {
        return StateHashing.channelId(params);
    }

    /// @inheritdoc IChannelHub
    function getChannel(ChannelId id) external view returns (ChannelInfo memory info) {
        Channel storage ch = _channels[id];
        info = ChannelInfo({
            status: ch.status,
            asset: ch.asset,
            deposits: _deposits(ch),
            seq: ch.seq,
            deadline: ch.deadline,
            stateHash: ch.stateHash,
            lockCount: ch.lockCount
        });
    }

    /// @inheritdoc IChannelHub
    function transferOutcome(ChannelId id, uint256 lockIndex) external view returns (TransferOutcome) {
        Channel storage ch = _channels[id];
        if (ch.status != ChannelStatus.Closed || lockIndex >= ch.lockCount) return TransferOutcome.Unresolved;
        return (ch.paidMask >> lockIndex) & 1 == 1 ? TransferOutcome.Paid : TransferOutcome.Refunded;
    }

    /// @inheritdoc IChannelHub
    function deferredPayout(address asset, address account) external view returns (uint256) {
        return _deferred[asset][account];
    }

    /// @inheritdoc IChannelHub
    function stateDigest(State calldata state) external view returns (bytes32) {
        return _hashTypedDataV4(StateHashing.hashState(state));
    }

    /// @inheritdoc IChannelHub
    function hashLocks(Lock[] calldata locks) external pure returns (bytes32) {
        return StateHashing.hashLocks(locks);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Settles one channel and returns true. A channel that is not ready to settle (see SkipReason) reverts
    ///      with the matching error, or with `skipIfNotReady` is reported by SettlementSkipped and left as it is
    ///      (returns false). Input that could never settle (another channel's state, locks that do not match the
    ///      state, amounts that do not add up) reverts either way.
    function _settle(
        ChannelParams calldata params,
        State calldata state,
        Lock[] calldata locks,
        uint256 revealedTogether,
        bool skipIfNotReady
    ) private returns (bool) {
        ChannelId id = _requireChannelOf(params, state);
        Channel storage ch = _channels[id];
        if (ch.status != ChannelStatus.Disputed) {
            if (!skipIfNotReady) revert ChannelNotDisputed(id, ch.status);
            return _skip(id, ch.status == ChannelStatus.Closed ? SkipReason.AlreadyClosed : SkipReason.NotDisputed);
        }
        if (block.timestamp < ch.deadline) {
            if (!skipIfNotReady) revert ChallengePeriodNotOver(id, ch.deadline, uint64(block.timestamp));
            return _skip(id, SkipReason.ChallengePeriodNotOver);
        }
        {
            bytes32 given = StateHashing.hashState(state);
            if (given != ch.stateHash) {
                if (!skipIfNotReady) revert StateMismatch(id, ch.stateHash, given);
                return _skip(id, SkipReason.StateReplaced);
            }
        }
        if (locks.length > MAX_LOCKS) revert TooManyLocks(locks.length, MAX_LOCKS);
        Locks.Resolution memory r;
        {
            (bytes32 given, uint256 singles, uint256 together) = StateHashing.hashLocksAndSplit(locks, revealedTogether);
            if (given != state.locksHash) revert LocksMismatch(id, state.locksHash, given);
            if (locks.length != 0) {
                r = Locks.resolve(locks, revealedTogether, singles, together, secretRegistry, block.timestamp);
            }
        }
        if (r.liveLock != 0) {
            uint256 live = r.liveLock - 1;
            if (!skipIfNotReady) revert LockNotExpired(id, live, locks[live].expiry, uint64(block.timestamp));
            return _skip(id, SkipReason.LockNotExpired);
        }
        uint256[2] memory out = Settlement.payouts(id, _deposits(ch), state.deposits, state.balances, r.credited, r.locked);

        ch.status = ChannelStatus.Closed;
        ch.stateHash = bytes32(0);
        if (locks.length != 0) {
            ch.lockCount = uint16(locks.length);
            if (r.paidMask != 0) ch.paidMask = r.paidMask;
        }
        emit ChannelSettled(id, state.seq, uint16(locks.length), r.paidMask, out);
        _payOut(id, params, out);
        return true;
    }

    function _skip(ChannelId id, SkipReason reason) private returns (bool) {
        emit SettlementSkipped(id, reason);
        return false;
    }

    /// @dev Registers a state and starts the challenge period.
    function _register(Channel storage ch, uint64 period, uint64 seq, bytes32 stateHash) private {
        ch.status = ChannelStatus.Disputed;
        ch.seq = seq;
        ch.deadline = uint64(block.timestamp) + period;
        ch.stateHash = stateHash;
    }

    /// @dev The state must name the channel of `params` on this hub and chain.
    function _requireChannelOf(ChannelParams calldata params, State calldata state) private view returns (ChannelId id) {
        id = StateHashing.channelId(params);
        if (ChannelId.unwrap(state.channelId) != ChannelId.unwrap(id)) revert WrongChannel(id, state.channelId);
    }

    function _requireOpenByParticipant(ChannelParams calldata params, ChannelId id)
        private
        view
        returns (Channel storage ch)
    {
        if (msg.sender != params.participants[0] && msg.sender != params.participants[1]) {
            revert NotParticipant(id, msg.sender);
        }
        ch = _channels[id];
        if (ch.status != ChannelStatus.Open) revert ChannelNotOpen(id, ch.status);
    }

    /// @dev The one signature check: both participants signed this exact state for this hub on this chain.
    ///      ERC-1271 signers are asked now; once registered, a state no longer depends on them.
    /// @return stateHash The state's EIP-712 struct hash.
    function _requireCoSigned(ChannelParams calldata params, ChannelId id, SignedState calldata signed)
        private
        view
        returns (bytes32 stateHash)
    {
        stateHash = StateHashing.hashState(signed.state);
        bytes32 digest = _hashTypedDataV4(stateHash);
        for (uint8 i; i < 2; ++i) {
            address signer = params.participants[i];
            bytes calldata signature = signed.signatures[i];
            // ECDSA first: no contract can produce an ECDSA signature of its own address, and an EOA signer then
            // costs no code-size look-up. Anything else is asked through ERC-1271.
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
            if (err == ECDSA.RecoverError.NoError && recovered == signer) continue;
            if (!SignatureChecker.isValidERC1271SignatureNowCalldata(signer, digest, signature)) {
                revert InvalidSignature(id, i);
            }
        }
    }

    function _deposits(Channel storage ch) private view returns (uint256[2] memory) {
        return [uint256(ch.deposit0), uint256(ch.deposit1)];
    }

    /// @dev Pushes both payouts with bounded gas; a refused payout waits in `withdraw` for its receiver. Each push
    ///      reverts when it cannot give its receiver all of PAYOUT_GAS: a starved push is never deferred.
    function _payOut(ChannelId id, ChannelParams calldata params, uint256[2] memory amounts) private {
        address asset = params.asset;
        for (uint256 i; i < 2; ++i) {
            uint256 amount = amounts[i];
            if (amount == 0) continue;
            address to = params.payees[i] == address(0) ? params.participants[i] : params.payees[i];
            if (!AssetTransfer.tryPush(asset, to, amount)) {
                _deferred[asset][to] += amount;
                emit PayoutDeferred(id, to, asset, amount);
            }
        }
    }
}
