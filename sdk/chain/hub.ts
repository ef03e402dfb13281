import { setTimeout as sleep } from "node:timers/promises";

import {
  Contract,
  getAddress,
  isAddress,
  isError,
  JsonRpcApiProvider,
  ZeroAddress,
  type ContractRunner,
  type Provider,
  type Signer,
  type TransactionRequest,
} from "ethers";

import { HUB_DOMAIN_NAME, HUB_DOMAIN_VERSION, locksHash, stateStructHash, toOnChainState } from "../core/eip712.js";
import { hashlockOf } from "../core/swap.js";
import { ChannelSdkError, HubAddressError, HubNotDeployedError } from "../core/errors.js";
import { TransferOutcome, type ChannelParams, type ChannelState, type Hex, type Lock } from "../core/types.js";
import { shortMessage } from "./errors.js";
import { checkFeePolicy, sendWithFees, type FeePolicy } from "./fees.js";
import {
  ChannelHub__factory,
  SecretRegistry__factory,
  type ChannelHub,
  type SecretRegistry,
} from "../contracts.js";

const ERC20_APPROVE_ABI = ["function approve(address spender, uint256 amount) returns (bool)"];
const ERC20_DECIMALS_ABI = ["function decimals() view returns (uint8)"];

/** Channel status as the hub stores it. */
export type ChannelStatus = "none" | "open" | "disputed" | "closed";
const STATUS: readonly ChannelStatus[] = ["none", "open", "disputed", "closed"];

/** What the hub stores about a channel. */
export type ChannelInfo = Readonly<{
  status: ChannelStatus;
  deposits: readonly [bigint, bigint];
  /** Sequence number of the registered state (while disputed) or of the final state (once closed). */
  seq: bigint;
  deadline: bigint;
  stateHash: Hex;
}>;

/**
 * Chain ids of local development chains: 31337 (Hardhat's and Anvil's default) and 31338 (this project's second
 * local chain). They mine a block only when a transaction arrives (auto-mining), so a depth above 0 is reached only
 * by later transactions; they never reorg, so what they hold is final at once.
 */
export const LOCAL_CHAIN_IDS: ReadonlySet<bigint> = new Set([31337n, 31338n]);
/**
 * Confirmation depth of any chain not in LOCAL_CHAIN_IDS unless configured: Ethereum finalizes after two epochs (64
 * blocks). Set each chain's own figure: an L2's finality, or more on chains with deep reorgs. The one default of the
 * SDK, the node (`chains.<name>.confirmations`) and the docs.
 */
export const DEFAULT_CONFIRMATIONS = 64;

/** The confirmation depth used on `chainId` when none is configured: 0 on local chains, DEFAULT_CONFIRMATIONS elsewhere. */
export function defaultConfirmations(chainId: bigint): number {
  return LOCAL_CHAIN_IDS.has(chainId) ? 0 : DEFAULT_CONFIRMATIONS;
}

export type HubAdapterOptions = Readonly<{
  /**
   * Blocks a block must be under the chain's head before what it holds counts (a deposit, a channel's opening):
   * reads that decide what a state may contain are made at `latest - confirmations`. Default
   * `defaultConfirmations(chainId)`: 0 on local chains (LOCAL_CHAIN_IDS), DEFAULT_CONFIRMATIONS (64) elsewhere.
   */
  confirmations?: number;
  /**
   * Reuse a chain-time reading for this long (ms) instead of asking the node each time (off by default). Worth it
   * for busy clients: block timestamps only move once per block anyway.
   */
  timeCacheMs?: number;
  /**
   * Replace a transaction not mined in time with higher fees, up to a cap (sdk/chain/fees.ts, docs/TIMING.md).
   * Without it, each transaction is sent at the node's suggested fees, never raised, and waited for: a version the
   * node dropped is sent again as it was, one a reorganisation took out is followed, and a call with a deadline
   * gives up once it has passed.
   */
  fees?: FeePolicy;
  /**
   * Blocks a transaction's block must be under the head before the call returns (default 0: it returns once mined);
   * until then a version a reorganisation took out is sent again, with or without `fees`. A caller that decides from
   * the chain's state on every tick (the node, the watchtower) keeps 0: a call that left the chain is made again by
   * its next tick, and a loop never waits on one call's depth.
   */
  landingDepth?: number;
  /**
   * With `fees`: a force close, challenge, settle, reveal or cooperative close not mined after this long (ms) returns
   * and goes on being raised in the background (a failure then is a `failed` fee event); the same call asked again
   * meanwhile joins it. For a caller that decides from the chain every tick (the node): a transaction waiting to be
   * mined never holds up its loop. Default: every call waits until it is mined.
   */
  detachAfterMs?: number;
}>;

/** For a call racing a deadline. */
export type DeadlineOptions = Readonly<{
  /**
   * Chain time (unix seconds) the transaction must be mined by. With `fees`, the fees are raised faster the
   * closer it is, to reach the cap `deadlineMarginSeconds` before it.
   */
  deadline?: bigint;
}>;

/** A state with both signatures, as the hub takes it. */
export type CoSignedArg = Readonly<{ state: ChannelState; signatures: readonly [Hex, Hex] }>;

/** Calls that revert once their work is done on chain, so that making one again can never do it twice. */
const REDO_SAFE: ReadonlySet<string> = new Set(["closeCooperatively", "forceClose", "challenge", "settle", "reveal", "revealMany"]);

/** A hub call that reverted; `reason` names the hub's custom error when it could be decoded. */
export class ChainCallError extends ChannelSdkError {
  constructor(readonly call: string, readonly reason: string, cause: unknown) {
    super(`${call} failed on chain: ${reason}`, { cause });
  }
}

/**
 * Typed access to one chain's ChannelHub and SecretRegistry over any ethers runner (an in-process Hardhat
 * network, or a JSON-RPC URL). Transactions are sent by `signer` and waited for.
 */
export class HubAdapter {
  readonly hub: ChannelHub;
  /** `registeredState`'s answers, by channel, number and hash (null: a state with locks, which cannot be rebuilt). */
  private readonly registeredRead = new Map<string, ChannelState | null>();
  readonly registry: SecretRegistry;

  private clock: { timestamp: bigint; at: number } | undefined;
  /** Calls under way that revert once done, by call and request: a later ask of the same call joins its outcome. */
  private readonly underWay = new Map<string, Promise<{ ok: true } | { ok: false; error: unknown }>>();
  /** Each asset's decimals as read once (undefined: the token has no `decimals()`). */
  private readonly decimals = new Map<string, number | undefined>();
  /** See HubAdapterOptions.confirmations. */
  readonly confirmations: number;

  private constructor(
    readonly chainId: bigint,
    readonly hubAddress: string,
    readonly registryAddress: string,
    readonly signer: Signer,
    private readonly options: HubAdapterOptions,
  ) {
    this.confirmations = options.confirmations ?? defaultConfirmations(chainId);
    if (!Number.isSafeInteger(this.confirmations) || this.confirmations < 0) {
      throw new ChannelSdkError(`confirmations must be a whole number of blocks, got ${options.confirmations}`);
    }
    this.hub = ChannelHub__factory.connect(hubAddress, signer);
    this.registry = SecretRegistry__factory.connect(registryAddress, signer);
  }

  /**
   * Connects to the hub at `hubAddress` (its registry is read from it). An address with no code on the signer's
   * chain is a HubNotDeployedError naming the chain; one that is not an address, has a wrong checksum, or holds a
   * contract that is not a ChannelHub of this version (its EIP-712 domain is read) is a HubAddressError.
   */
  static async connect(hubAddress: string, signer: Signer, options: HubAdapterOptions = {}): Promise<HubAdapter> {
    if (options.fees !== undefined) checkFeePolicy(options.fees);
    const provider = requireProvider(signer);
    const chainId = (await provider.getNetwork()).chainId;
    // Checked here: ethers takes anything else for an ENS name ("network does not support ENS") or throws a bare
    // TypeError ("bad address checksum").
    if (!/^0x[0-9a-fA-F]{40}$/.test(hubAddress)) throw new HubAddressError("notAnAddress", chainId, hubAddress);
    if (!isAddress(hubAddress)) throw new HubAddressError("badChecksum", chainId, hubAddress);
    const hub = getAddress(hubAddress);
    const contract = ChannelHub__factory.connect(hub, signer);
    let registry: string;
    let domain: { name: string; version: string };
    try {
      [registry, domain] = await Promise.all([contract.secretRegistry(), contract.eip712Domain()]);
    } catch (error) {
      // A chain that does not answer: its own error. No code there: no hub. Code that reverts the hub's calls or
      // answers what does not decode as theirs: not a hub.
      const unanswered = isError(error, "NETWORK_ERROR") || isError(error, "TIMEOUT") || isError(error, "SERVER_ERROR");
      const code = unanswered ? undefined : await provider.getCode(hub).catch(() => undefined);
      if (code === undefined) throw error;
      if (code === "0x") throw new HubNotDeployedError({ chainId, hub });
      throw new HubAddressError("notAHub", chainId, hub, `the hub's secretRegistry() and eip712Domain() fail there (${shortMessage(error)})`, error);
    }
    if (domain.name !== HUB_DOMAIN_NAME || domain.version !== HUB_DOMAIN_VERSION) {
      const theirs = `its EIP-712 domain is "${domain.name}" version "${domain.version}"`;
      throw new HubAddressError("notAHub", chainId, hub, `${theirs}, where this SDK signs for "${HUB_DOMAIN_NAME}" version "${HUB_DOMAIN_VERSION}"`);
    }
    return new HubAdapter(chainId, hub, getAddress(registry), signer, options);
  }

  get provider(): Provider {
    return requireProvider(this.signer);
  }

  /**
   * The latest block's timestamp: the clock lock expiries and deadlines are measured against. With
   * `timeCacheMs`, a reading that recent is reused, moved on by the wall time since.
   */
  async now(): Promise<bigint> {
    const cacheMs = this.options.timeCacheMs ?? 0;
    const wall = Date.now();
    if (this.clock !== undefined && wall - this.clock.at < cacheMs) {
      return this.clock.timestamp + BigInt(Math.floor((wall - this.clock.at) / 1000));
    }
    const block = await this.provider.getBlock("latest");
    if (block === null) throw new ChannelSdkError("the chain returned no latest block");
    this.clock = { timestamp: BigInt(block.timestamp), at: wall };
    return this.clock.timestamp;
  }

  /**
   * A latest block's timestamp read elsewhere (a ChainFollower's step): taken as `now` would take its own reading,
   * so that a client following the chain's heads needs no request of its own for the time.
   */
  observeHead(timestamp: bigint): void {
    this.clock = { timestamp, at: Date.now() };
  }

  /**
   * The chain id the endpoint answers with now (`eth_chainId`, asked each time). The SDK's providers detect the
   * network once (`rpcProvider`): this is the check that the endpoint still serves the chain it served then.
   */
  async servedChainId(): Promise<bigint> {
    const p = this.provider;
    if (p instanceof JsonRpcApiProvider) return BigInt(await p.send("eth_chainId", []));
    return (await p.getNetwork()).chainId;
  }

  /**
   * The last chain time read by `now`, moved on by the wall time since; undefined before the first reading. For
   * checks that must not wait on the network (the lock horizon of a state about to be signed).
   */
  lastNow(): bigint | undefined {
    if (this.clock === undefined) return undefined;
    return this.clock.timestamp + BigInt(Math.floor((Date.now() - this.clock.at) / 1000));
  }

  /** The newest block whose content counts: the head less `confirmations` (never below 0). */
  async finalBlock(): Promise<number> {
    return Math.max(0, (await this.headBlock()) - this.confirmations);
  }

  /**
   * The chain's head block number, asked of the node each time. A plain ethers JsonRpcProvider answers from a cache
   * for 250 ms: right after a transaction its answer can predate it, and a channel just opened would not be open yet
   * at the "final" block (rpcProvider() turns that cache off; this works with either).
   */
  async headBlock(): Promise<number> {
    const p = this.provider;
    if (p instanceof JsonRpcApiProvider && (p._getOption("cacheTimeout") ?? 0) >= 0) return Number(await p.send("eth_blockNumber", []));
    return p.getBlockNumber();
  }

  // ---------------------------------------------------------------- funding

  async open(params: ChannelParams): Promise<Hex> {
    await this.send("open", () => this.hub.open.populateTransaction(paramsArg(params)));
    return (await this.hub.channelId(paramsArg(params))) as Hex;
  }

  /** Opens a channel and deposits for participant `index` in one transaction (approving a token first). */
  async openAndDeposit(params: ChannelParams, index: 0 | 1, amount: bigint): Promise<Hex> {
    if (params.asset === ZeroAddress) {
      await this.send("openAndDeposit", () =>
        this.hub.openAndDeposit.populateTransaction(paramsArg(params), index, amount, { value: amount }),
      );
    } else {
      const token = new Contract(params.asset, ERC20_APPROVE_ABI, this.signer);
      await this.send("approve", () => token.getFunction("approve").populateTransaction(this.hubAddress, amount));
      await this.send("openAndDeposit", () => this.hub.openAndDeposit.populateTransaction(paramsArg(params), index, amount));
    }
    return (await this.hub.channelId(paramsArg(params))) as Hex;
  }

  /** Deposits for participant `index`; for a token channel, approves the hub first. */
  async deposit(params: ChannelParams, channelId: Hex, index: 0 | 1, amount: bigint): Promise<void> {
    if (params.asset === ZeroAddress) {
      await this.send("deposit", () => this.hub.deposit.populateTransaction(channelId, index, amount, { value: amount }));
      return;
    }
    const token = new Contract(params.asset, ERC20_APPROVE_ABI, this.signer);
    await this.send("approve", () => token.getFunction("approve").populateTransaction(this.hubAddress, amount));
    await this.send("deposit", () => this.hub.deposit.populateTransaction(channelId, index, amount));
  }

  // ---------------------------------------------------------------- closing and disputes

  async closeCooperatively(params: ChannelParams, signed: CoSignedArg): Promise<void> {
    await this.send("closeCooperatively", () =>
      this.hub.closeCooperatively.populateTransaction(paramsArg(params), signedArg(signed)),
    );
  }

  /** Registers `signed`, or the opening deposits when no state was ever co-signed. */
  async forceClose(params: ChannelParams, signed: CoSignedArg | undefined, options: DeadlineOptions = {}): Promise<void> {
    if (signed === undefined || signed.state.seq === 0n) {
      const tx = () => this.hub.forceCloseWithDeposits.populateTransaction(paramsArg(params));
      await this.send("forceCloseWithDeposits", tx, options);
    } else {
      const tx = () => this.hub.forceClose.populateTransaction(paramsArg(params), signedArg(signed));
      await this.send("forceClose", tx, options);
    }
  }

  /** Answers a registered state with the newer `signed`; `options.deadline` is the channel's challenge deadline. */
  async challenge(params: ChannelParams, signed: CoSignedArg, options: DeadlineOptions = {}): Promise<void> {
    const tx = () => this.hub.challenge.populateTransaction(paramsArg(params), signedArg(signed));
    await this.send("challenge", tx, options);
  }

  /**
   * Settles the registered `state` (its locks are passed along). Locks whose secrets one `revealMany` call revealed
   * together are named to the hub (`revealedTogether`), which then reads one registry word for all of them.
   */
  async settle(params: ChannelParams, state: ChannelState, options: DeadlineOptions = {}): Promise<void> {
    const together = await this.revealedTogether(state.locks);
    await this.send(
      "settle",
      () =>
        this.hub.settle.populateTransaction(paramsArg(params), stateArg(state), state.locks.map((l) => lockArg(l)), together),
      options,
    );
  }

  /**
   * The `revealedTogether` mask for settling `locks`: the locks paid by their reveal times, when the registry confirms
   * that one `revealMany` call revealed exactly their secrets, in lock order, by each one's expiry; failing that, the
   * paid locks of one receiver (what a party or its watchtower reveals in one call); else 0 (each lock is read on its
   * own, which costs more gas and gives the same outcome). The hub takes the mask as a hint only: one that no longer
   * holds when the transaction runs is ignored, never a reason to revert.
   */
  async revealedTogether(locks: readonly Lock[]): Promise<bigint> {
    if (locks.length < 2) return 0n;
    const times = await this.registry.revealedAtMany(locks.map((l) => l.hashlock));
    const paid = locks.map((lock, i) => {
      const t = times[i] ?? 0n;
      return t !== 0n && t <= lock.expiry;
    });
    const candidates = [
      (i: number) => paid[i] === true,
      (i: number) => paid[i] === true && locks[i]!.sender === 1,
      (i: number) => paid[i] === true && locks[i]!.sender === 0,
    ];
    const asked = new Set<string>();
    for (const named of candidates) {
      const indices = locks.map((_, i) => i).filter(named);
      // One receiver's paid locks are often all the paid locks: the same list is not asked twice.
      const key = indices.join();
      if (indices.length < 2 || asked.has(key)) continue;
      asked.add(key);
      const at = await this.registry.revealedTogetherAt(indices.map((i) => locks[i]!.hashlock));
      if (at !== 0n && indices.every((i) => at <= locks[i]!.expiry)) {
        return indices.reduce((mask, i) => mask | (1n << BigInt(i)), 0n);
      }
    }
    return 0n;
  }

  /** Collects this signer's deferred payouts in `asset` (a payout the hub could not push), sent to `to`. */
  async withdraw(asset: string, to: string): Promise<void> {
    await this.send("withdraw", () => this.hub.withdraw.populateTransaction(asset, to));
  }

  // ---------------------------------------------------------------- secrets

  /** Registers `secret`; `options.deadline` is the expiry of the lock it pays (it must be mined by then). */
  async reveal(secret: Hex, options: DeadlineOptions = {}): Promise<void> {
    await this.send("reveal", () => this.registry.reveal.populateTransaction(secret), options);
  }

  /**
   * Registers many secrets in one transaction; listed in the lock order of one channel, they are recorded as
   * revealed together and that channel's settlement reads one word for all of them.
   */
  async revealMany(secrets: readonly Hex[], options: DeadlineOptions = {}): Promise<void> {
    await this.send("revealMany", () => this.registry.revealMany.populateTransaction([...secrets]), options);
  }

  /**
   * The state registered for a disputed channel, rebuilt from the hub's own `ChannelForceClosed` or
   * `ChannelChallenged` event and taken only if its hash is the one the hub holds (`info.stateHash`), when that state
   * has no locks: what a client whose store lacks the state (restored from an older copy, its watchtower's store
   * lost too) needs to settle a channel the peer registered a newer state on. A state with locks cannot be rebuilt
   * (the events carry only the locks' hash): undefined then, and when no event matches. The logs are read from the
   * head down, to no earlier than the dispute's start (`deadline - challengePeriod`), in ranges halved when the
   * endpoint refuses one.
   */
  async registeredState(channelId: Hex, info: ChannelInfo, challengePeriod: bigint): Promise<ChannelState | undefined> {
    if (info.status !== "disputed") return undefined;
    // Asked at every tick while the channel waits: the answer for one registered state is read from the logs once.
    const k = `${channelId.toLowerCase()}:${info.seq}:${info.stateHash.toLowerCase()}`;
    if (this.registeredRead.has(k)) return this.registeredRead.get(k) ?? undefined;
    const found = await this.readRegisteredState(channelId, info, challengePeriod);
    if (found === undefined) return undefined; // not found (yet: an endpoint may index it late): asked again next time
    if (this.registeredRead.size >= 1024) this.registeredRead.clear();
    this.registeredRead.set(k, found === "locked" ? null : found);
    return found === "locked" ? undefined : found;
  }

  /** The logs' part of `registeredState`: the state, "locked" when it has locks, undefined when no event matched it. */
  private async readRegisteredState(channelId: Hex, info: ChannelInfo, challengePeriod: bigint): Promise<ChannelState | "locked" | undefined> {
    const topics = [[this.hub.interface.getEvent("ChannelForceClosed").topicHash, this.hub.interface.getEvent("ChannelChallenged").topicHash], channelId];
    const earliest = info.deadline - challengePeriod;
    let to = await this.provider.getBlockNumber();
    let range = 10_000;
    while (to >= 0) {
      const from = Math.max(0, to - range + 1);
      let logs: Awaited<ReturnType<typeof this.provider.getLogs>>;
      try {
        logs = await this.provider.getLogs({ address: this.hubAddress, topics, fromBlock: from, toBlock: to });
      } catch (error) {
        if (range === 1) throw error;
        range = Math.ceil(range / 2);
        continue;
      }
      for (const log of [...logs].reverse()) {
        const parsed = this.hub.interface.parseLog(log);
        const s = parsed?.args.state as { channelId: string; seq: bigint; deposits: bigint[]; balances: bigint[]; locksHash: string; isFinal: boolean } | undefined;
        if (s === undefined || s.seq !== info.seq || s.channelId.toLowerCase() !== channelId.toLowerCase()) continue;
        if (s.locksHash.toLowerCase() !== locksHash([]).toLowerCase()) return "locked";
        const state: ChannelState = {
          channelId,
          seq: s.seq,
          deposits: [s.deposits[0]!, s.deposits[1]!],
          balances: [s.balances[0]!, s.balances[1]!],
          locks: [],
          isFinal: s.isFinal,
        };
        // An event whose state is not the one the hub holds (an endpoint that answers wrong): none, asked again.
        return stateStructHash(state).toLowerCase() === info.stateHash.toLowerCase() ? state : undefined;
      }
      const block = await this.provider.getBlock(from);
      if (block === null || BigInt(block.timestamp) < earliest || from === 0) return undefined;
      to = from - 1;
    }
    return undefined;
  }

  /** First reveal time of the secret of `hashlock` on this chain, 0 if never revealed. */
  async revealedAt(hashlock: Hex): Promise<bigint> {
    return this.registry.revealedAt(hashlock);
  }

  /**
   * The secret of `hashlock` if it was revealed on this chain, read from the registry's event in the blocks of its
   * first reveal time (`revealedAt`): one call when it was never revealed, and never a log query over the whole chain,
   * which public endpoints refuse (they cap eth_getLogs at 1,000 blocks or fewer). Only a secret whose sha256 is
   * `hashlock` is returned, whatever logs the endpoint answers with.
   */
  async findSecret(hashlock: Hex): Promise<Hex | undefined> {
    const at = await this.revealedAt(hashlock);
    if (at === 0n) return undefined;
    const [from, to] = await this.blocksAt(Number(at));
    if (from > to) return undefined; // the reveal's block is gone (a reorganisation): asked again later
    return this.revealedIn(hashlock, from, to);
  }

  /**
   * The secret of `hashlock` from the registry's logs in blocks [from, to]. A range the endpoint refuses (more blocks
   * share a timestamp than its eth_getLogs cap allows) is asked again in halves, the first half first, down to one
   * block, whose refusal is thrown: an endpoint that refuses every query fails after about log2(to - from) of them.
   */
  private async revealedIn(hashlock: Hex, from: number, to: number): Promise<Hex | undefined> {
    let events: Awaited<ReturnType<typeof this.registry.queryFilter>>;
    try {
      events = await this.registry.queryFilter(this.registry.filters.SecretRevealed(hashlock), from, to);
    } catch (error) {
      if (from >= to) throw error;
      const mid = Math.floor((from + to) / 2);
      return (await this.revealedIn(hashlock, from, mid)) ?? (await this.revealedIn(hashlock, mid + 1, to));
    }
    // The log's own hashlock is not trusted: an endpoint that drops the topic filter answers every reveal in the range.
    for (const e of events) {
      const secret = "args" in e ? (e.args.secret as string) : undefined;
      if (secret !== undefined && hashlockOf(secret as Hex).toLowerCase() === hashlock.toLowerCase()) return secret as Hex;
    }
    return undefined;
  }

  /**
   * The blocks whose timestamp is `timestamp` (several on a chain that makes more than a block a second), as
   * `[first, last]`; empty (`first > last`) when there is none. A binary search over block numbers for the first, then
   * steps doubling from it for the last: about log2(head) + 3 header reads (28 on a chain of 20 million blocks).
   */
  private async blocksAt(timestamp: number): Promise<[number, number]> {
    const head = await this.provider.getBlock("latest");
    if (head === null) throw new Error("the chain returned no latest block");
    const read = new Map<number, number>([[head.number, head.timestamp]]);
    const stampOf = async (n: number) => {
      let t = read.get(n);
      if (t === undefined) {
        const b = await this.provider.getBlock(n);
        if (b === null) throw new Error(`the chain returned no block ${n}`);
        read.set(n, (t = b.timestamp));
      }
      return t;
    };
    /** The lowest block in [lo, hi] whose timestamp is above `t` (hi = head + 1: none is), by bisection. */
    const firstAbove = async (t: number, lo: number, hi: number) => {
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if ((await stampOf(mid)) > t) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    };
    const first = await firstAbove(timestamp - 1, 0, head.number + 1);
    // Few blocks share a timestamp: the end of the run is looked for in steps doubling from its start.
    let step = 1;
    while (first + step <= head.number && (await stampOf(first + step)) <= timestamp) step *= 2;
    const end = await firstAbove(timestamp, first + Math.floor(step / 2), Math.min(first + step, head.number + 1));
    return [first, end - 1];
  }

  // ---------------------------------------------------------------- reading channels

  /**
   * Decimals of a channel's asset, to show amounts in its units: 18 for the native coin, a token's `decimals()`
   * (read once), undefined when the token has none.
   */
  async assetDecimals(asset: string): Promise<number | undefined> {
    if (asset === ZeroAddress) return 18;
    const key = asset.toLowerCase();
    if (!this.decimals.has(key)) {
      const token = new Contract(asset, ERC20_DECIMALS_ABI, this.provider);
      const read = await token.getFunction("decimals")().then((d: bigint) => Number(d), () => undefined);
      this.decimals.set(key, read);
    }
    return this.decimals.get(key);
  }

  /**
   * Whether lock `index` of a channel settled after a dispute was paid, refunded, or is not resolved on chain
   * (TransferOutcome): a channel closed cooperatively records no outcomes, so its every index is "unresolved".
   */
  async transferOutcome(channelId: Hex, index: number): Promise<"unresolved" | "paid" | "refunded"> {
    const outcome = await this.hub.transferOutcome(channelId, index);
    return outcome === TransferOutcome.Paid ? "paid" : outcome === TransferOutcome.Refunded ? "refunded" : "unresolved";
  }

  /**
   * What the hub stores about a channel, at the latest block or at `block` (a final block, for reads that decide
   * what a state may contain).
   */
  async channelInfo(channelId: Hex, block?: number): Promise<ChannelInfo> {
    let info: Awaited<ReturnType<ChannelHub["getChannel"]>>;
    try {
      info = block === undefined ? await this.hub.getChannel(channelId) : await this.hub.getChannel(channelId, { blockTag: block });
    } catch (error) {
      throw (await this.missingHub(error, block)) ?? error;
    }
    return {
      status: STATUS[Number(info.status)] ?? "none",
      deposits: [info.deposits[0], info.deposits[1]],
      seq: info.seq,
      deadline: info.deadline,
      stateHash: info.stateHash as Hex,
    };
  }

  /**
   * A HubNotDeployedError when `error` is the empty answer of a call to an address with no code at `block` (ethers'
   * "could not decode result data (value=\"0x\")"): the hub is not deployed there, or not yet at that block.
   */
  private async missingHub(error: unknown, block: number | undefined): Promise<HubNotDeployedError | undefined> {
    if (!isError(error, "BAD_DATA")) return undefined;
    const at = block ?? (await this.headBlock());
    if ((await this.provider.getCode(this.hubAddress, at)) !== "0x") return undefined;
    const later = block !== undefined && (await this.provider.getCode(this.hubAddress)) !== "0x";
    if (!later) return new HubNotDeployedError({ chainId: this.chainId, hub: this.hubAddress });
    return new HubNotDeployedError({
      chainId: this.chainId,
      hub: this.hubAddress,
      notYet: { block: at, head: await this.headBlock(), confirmations: this.confirmations, local: LOCAL_CHAIN_IDS.has(this.chainId) },
    });
  }

  /**
   * Sends the transaction `tx` builds and waits until it is mined and `landingDepth` deep: at the node's fees, or
   * with `fees`, replaced with higher fees until mined (paced by `options.deadline` when given). Either way a dropped
   * version is sent again and a call gives up once `options.deadline` has passed (sdk/chain/fees.ts).
   */
  private async send(call: string, tx: () => Promise<TransactionRequest>, options: DeadlineOptions = {}): Promise<void> {
    try {
      const request = await tx();
      const fees = this.options.fees;
      const redoSafe = REDO_SAFE.has(call);
      // With or without `fees`, one sender: without them it never raises the fees, and still sends a dropped
      // version again, follows one a reorganisation took out, and takes the account's nonces in turn.
      const start = () =>
        sendWithFees({
          call,
          signer: this.signer,
          request,
          policy: fees,
          deadline: options.deadline,
          chainNow: () => this.now(),
          confirmations: this.options.landingDepth ?? 0,
          // Made again under the next nonce only where doing it twice reverts (done once is done): never a deposit.
          retryOnNonceTaken: redoSafe,
        }).then(
          () => ({ ok: true as const }),
          (error: unknown) => ({ ok: false as const, error }),
        );
      // The same call already under way (asked again by a later tick while its transaction waits) is joined, not
      // sent twice; only calls that revert once done are joined (two deposits of one amount are two deposits).
      const key = `${call}:${String(request.to)}:${String(request.data)}:${String(request.value ?? 0)}`;
      let outcome = redoSafe ? this.underWay.get(key) : undefined;
      if (outcome === undefined) {
        outcome = start();
        if (redoSafe) {
          this.underWay.set(key, outcome);
          void outcome.then((o) => {
            this.underWay.delete(key);
            if (!o.ok) fees?.onEvent?.({ kind: "failed", call, reason: shortMessage(o.error) });
          });
        }
      }
      const detach = fees === undefined ? undefined : this.options.detachAfterMs;
      const o = detach !== undefined && redoSafe ? await Promise.race([outcome, sleep(detach).then(() => undefined)]) : await outcome;
      if (o !== undefined && !o.ok) throw o.error;
      // undefined: still waiting to be mined after detachAfterMs; it goes on, and the caller's next tick looks again.
    } catch (error) {
      throw new ChainCallError(call, describeRevert(this.hub, error), error);
    }
  }
}

function requireProvider(runner: ContractRunner): Provider {
  if (runner.provider === null || runner.provider === undefined) {
    throw new ChannelSdkError("the signer is not connected to a provider");
  }
  return runner.provider;
}

/** The name and arguments of a hub custom error in `error`, else its message. */
function describeRevert(hub: ChannelHub, error: unknown): string {
  const data = findRevertData(error);
  if (data !== undefined) {
    try {
      const parsed = hub.interface.parseError(data);
      if (parsed !== null) return `${parsed.name}(${parsed.args.map((a: unknown) => String(a)).join(", ")})`;
    } catch {
      // not one of the hub's errors
    }
  }
  return shortMessage(error);
}

function findRevertData(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== null && typeof e === "object"; depth++) {
    const data = (e as { data?: unknown }).data;
    if (typeof data === "string" && data.startsWith("0x") && data.length >= 10) return data;
    e = (e as { error?: unknown; cause?: unknown }).error ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function paramsArg(p: ChannelParams) {
  return {
    participants: [p.participants[0], p.participants[1]] as [string, string],
    payees: [p.payees[0], p.payees[1]] as [string, string],
    asset: p.asset,
    challengePeriod: p.challengePeriod,
    nonce: p.nonce,
  };
}

export function stateArg(s: ChannelState) {
  const o = toOnChainState(s);
  return {
    channelId: o.channelId,
    seq: o.seq,
    deposits: [o.deposits[0], o.deposits[1]] as [bigint, bigint],
    balances: [o.balances[0], o.balances[1]] as [bigint, bigint],
    locksHash: o.locksHash,
    isFinal: o.isFinal,
  };
}

export function lockArg(l: Lock) {
  return { sender: l.sender, amount: l.amount, hashlock: l.hashlock, expiry: l.expiry };
}

export function signedArg(s: CoSignedArg) {
  return { state: stateArg(s.state), signatures: [s.signatures[0], s.signatures[1]] as [string, string] };
}
