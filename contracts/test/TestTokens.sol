// SPDX-License-Identifier: MIT
// solhint-disable one-contract-per-file
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

// Tokens with the behaviours a hub meets in the wild, for tests only.

/// @notice A plain ERC-20 anyone can mint, for tests.
contract TestToken is ERC20 {
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice Keeps `feeBps` of every transfer (burned), as fee-on-transfer tokens do.
contract FeeOnTransferToken is ERC20 {
    uint256 public immutable feeBps;

    constructor(uint256 feeBps_) ERC20("Fee Token", "FEE") {
        feeBps = feeBps_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = (value * feeBps) / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}

/// @notice Reverts every transfer to or from a blocklisted address, as USDC/USDT-style tokens do.
contract BlocklistToken is ERC20 {
    mapping(address => bool) public blocked;

    error Blocked(address account);

    constructor() ERC20("Blocklist Token", "BLK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setBlocked(address account, bool value) external {
        blocked[account] = value;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[from]) revert Blocked(from);
        if (blocked[to]) revert Blocked(to);
        super._update(from, to, value);
    }
}

/// @notice A token whose `transfer` needs every unit of gas a payout gives it: reverts when it is entered with less
///         than `need`. With `need` zero it records the gas it was entered with instead, to calibrate `need`.
contract GasHungryToken is ERC20 {
    uint256 public immutable need;
    uint256 public seen;

    error NeedsMoreGas(uint256 given, uint256 need);

    constructor(uint256 need_) ERC20("Hungry Token", "HGR") {
        need = need_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        uint256 given = gasleft(); // first: every instance reaches this point at the same cost
        if (need == 0) seen = given;
        else if (given < need) revert NeedsMoreGas(given, need);
        return super.transfer(to, value);
    }
}

/// @notice Returns false instead of reverting when a transfer fails, and credits nothing then.
contract FalseReturningToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    bool public refuseTransfers;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function setRefuseTransfers(bool value) external {
        refuseTransfers = value;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        if (refuseTransfers || balanceOf[msg.sender] < amount) return false;
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        if (refuseTransfers || balanceOf[from] < amount || allowance[from][msg.sender] < amount) return false;
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        return true;
    }
}

/// @notice Returns nothing from `transfer`, `transferFrom` and `approve`, and reverts on failure, as USDT does on
///         Ethereum.
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    error InsufficientBalance(address from, uint256 amount);
    error InsufficientAllowance(address from, uint256 amount);

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external {
        if (allowance[from][msg.sender] < amount) revert InsufficientAllowance(from, amount);
        allowance[from][msg.sender] -= amount;
        _move(from, to, amount);
    }

    function _move(address from, address to, uint256 amount) private {
        if (balanceOf[from] < amount) revert InsufficientBalance(from, amount);
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }
}

/// @notice A rebasing token (stETH/AMPL style): holders own shares of a supply that `rebase` scales at will, so
///         every balance grows or shrinks at once, without a transfer. Balance = shares * scale / 1e18.
contract RebasingToken {
    uint256 private constant ONE = 1e18;

    uint256 public scale = ONE;
    mapping(address => uint256) public sharesOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error InsufficientShares(address from, uint256 needed, uint256 held);
    error InsufficientAllowance(address from, uint256 amount);

    function mint(address to, uint256 amount) external {
        sharesOf[to] += (amount * ONE) / scale;
        emit Transfer(address(0), to, amount);
    }

    /// @notice Multiplies every balance by `numerator / denominator`.
    function rebase(uint256 numerator, uint256 denominator) external {
        scale = (scale * numerator) / denominator;
    }

    function balanceOf(address account) external view returns (uint256) {
        return (sharesOf[account] * scale) / ONE;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        if (allowance[from][msg.sender] < amount) revert InsufficientAllowance(from, amount);
        allowance[from][msg.sender] -= amount;
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        uint256 shares = (amount * ONE + scale - 1) / scale; // rounded up: a sender never pays less than `amount`
        if (sharesOf[from] < shares) revert InsufficientShares(from, shares, sharesOf[from]);
        sharesOf[from] -= shares;
        sharesOf[to] += shares;
        emit Transfer(from, to, amount);
    }
}
