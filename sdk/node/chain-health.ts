/**
 * Each chain's health as the node follows it, in one place every path asks (`hold`): whether the chain answers (since
 * when not, and the last error), its head and the head's age, the finality depth in use, the fee account's balance
 * against what the node's channels may need on chain, and whether a reorganisation deeper than the configured
 * confirmations was seen.
 *
 * A deep reorganisation is caught the way indexers catch one: the node keeps the hash of the highest block it took
 * as final (the block `confirmations` under the head at each check, and every final block a count of deposits or a
 * channel's opening was read at: `trustFinal`) and reads that block again at the next check. A different hash, or no
 * block at that height, means a reorganisation replaced a block the node relied on: deeper than the configuration
 * allows. (Reorganisations replace a suffix of the chain, so the highest such block stands for all below it.)
 *
 * While a chain does not answer, or once it reorganised that deep, the node signs nothing new that depends on it: no
 * swap's terms, no lock, no count of deposits, no new channel (the client's chain guard, `SwapClientOptions.chainGuard`,
 * and the node's own proposals ask `hold`). Payments, refunds, closes, the watchtower and every transaction on chain
 * go on. A chain that answers again is used again; a deep reorganisation holds its chain until the operator releases
 * it (`channels chain release <name>`: their word that the chain, its channels' deposits and
 * `chains.<name>.confirmations` were looked at). The hold is kept in the store, so a restart (a service manager's,
 * after a crash) does not end it.
 */
import { formatEther, JsonRpcProvider, type Block } from "ethers";
import type { Logger } from "pino";

import { shortMessage } from "../chain/errors.js";
import type { HubAdapter } from "../chain/hub.js";
import type { ChainGuard } from "../coordinator/session.js";
import type { Address } from "../core/types.js";
import type { Store } from "../store/store.js";
import type { Emit } from "./events.js";
import { ConflictError, NotFoundError } from "./node-errors.js";
import type { NodeConfig } from "./node-config.js";

/**
 * Gas one channel may need on chain to be defended: a force close or a challenge, then a settle (221,948 for the
 * three together in docs/BENCHMARKS.md), rounded up.
 */
export const DEFENCE_GAS_PER_CHANNEL = 250_000n;
/** Priority fee assumed on top of twice the base fee when pricing the fee reserve (ethers' default tip). */
const PRIORITY_FEE = 1_000_000_000n;

type Mark = Readonly<{ number: number; hash: string }>;

type DeepReorg = Readonly<{ block: number; trusted: string; found: string | undefined; at: number }>;
/** A deep reorganisation as the store keeps it (ChainHealth holds the chain until it is released). */
type StoredHold = Readonly<{ block: number; trusted: string; found: string | null; at: number }>;

type ChainState = {
  readonly name: string;
  readonly chainId: bigint;
  readonly adapter: HubAdapter;
  /** Undefined until the first check. */
  reachable: boolean | undefined;
  unreachableSince: number | undefined;
  lastError: string | undefined;
  head: { number: number; hash: string; timestamp: number; baseFee: bigint } | undefined;
  checkedAt: number | undefined;
  /** The highest block taken as final whose hash is known (see the file's comment). */
  checkpoint: Mark | undefined;
  deepReorg: DeepReorg | undefined;
  balance: bigint | undefined;
  reserve: bigint | undefined;
  /** Whether the fee account was last said to be short (said once per change). */
  short: boolean;
};

/** A chain's health as `channels info` and GET /info show it. */
export type ChainHealthView = Readonly<{
  /** Reachable, no deep reorganisation seen, and a fee account that covers the reserve. */
  healthy: boolean;
  /** Why nothing new that depends on this chain is signed now, if so. */
  holding: string | undefined;
  reachable: boolean | undefined;
  unreachableSince: string | undefined;
  lastError: string | undefined;
  head: number | undefined;
  headAgeSeconds: number | undefined;
  checkedAt: string | undefined;
  /** Blocks under the head before what a block holds counts (chains.<name>.confirmations, or the chain's default). */
  confirmations: number;
  deepReorg: Readonly<{ block: number; trusted: string; found: string | undefined; at: string }> | undefined;
  feeAccount: Readonly<{
    address: string;
    /** The native coin the account holds (ether units). */
    balance: string | undefined;
    /** What its channels here may need on chain at twice the current base fee (ether units). */
    reserve: string | undefined;
    enough: boolean | undefined;
  }>;
}>;

export type ChainHealthDeps = Readonly<{
  config: NodeConfig;
  log: Logger;
  address: Address;
  store: Store;
  chainIds: ReadonlyMap<string, bigint>;
  adapters: ReadonlyMap<bigint, HubAdapter>;
  /** The node's event stream (events of type "chainHealth"); set once the node is built. */
  emit?: Emit;
  clock?: () => number;
}>;

export class ChainHealth implements ChainGuard {
  private readonly chains = new Map<bigint, ChainState>();
  /** The check in flight: the next one is skipped until it ends. */
  private checking: Promise<void> | undefined;
  /** Why the holds could not be written at the last check (said once per reason), if so. */
  private holdsUnkept: string | undefined;
  emit: Emit | undefined;

  constructor(private readonly d: ChainHealthDeps) {
    this.emit = d.emit;
    const held = d.store.chainHolds<StoredHold>();
    for (const [name, chainId] of d.chainIds) {
      const h = held.get(chainId);
      const deepReorg = h === undefined ? undefined : { block: h.block, trusted: h.trusted, found: h.found ?? undefined, at: h.at };
      this.chains.set(chainId, {
        name, chainId, adapter: d.adapters.get(chainId)!, reachable: undefined, unreachableSince: undefined, lastError: undefined,
        head: undefined, checkedAt: undefined, checkpoint: undefined, deepReorg, balance: undefined, reserve: undefined, short: false,
      });
      if (deepReorg !== undefined) {
        d.log.error(
          { event: "chainHealth", chain: name, chainId: chainId.toString(), status: "deepReorg", block: h!.block, trusted: h!.trusted, found: h!.found, since: new Date(h!.at).toISOString() },
          `chain ${name} is still held: it reorganised deeper than its confirmations (block ${h!.block}, seen ${new Date(h!.at).toISOString()}). ` +
            `Nothing new is signed on it until you release it: channels chain release ${name}`,
        );
      }
    }
  }

  private now(): number {
    return (this.d.clock ?? Date.now)();
  }

  /**
   * Why nothing new that depends on chain `chainId` may be signed now, or undefined: a reorganisation deeper than its
   * confirmations was seen (until the operator releases it), or it did not answer at its last check (until it does).
   */
  hold(chainId: bigint): string | undefined {
    const s = this.chains.get(chainId);
    if (s === undefined) return undefined;
    if (s.deepReorg !== undefined) {
      return (
        `chain ${s.name} reorganised deeper than its ${s.adapter.confirmations} confirmations (block ${s.deepReorg.block}, taken as final, was replaced): ` +
        `nothing new is signed on it until the operator releases it (channels chain release ${s.name})`
      );
    }
    if (s.reachable === false) {
      return `chain ${s.name} does not answer (since ${new Date(s.unreachableSince!).toISOString()}: ${s.lastError}): nothing new is signed on it until it does`;
    }
    return undefined;
  }

  /**
   * Ends the hold a deep reorganisation put on chain `name` (the operator's word that the chain, its channels'
   * deposits and the configured confirmations were looked at): the block kept as final is read afresh at the next
   * check. NotFoundError for a chain the node does not have, ConflictError for one that is not held.
   */
  release(name: string): ChainHealthView {
    const chainId = this.d.chainIds.get(name);
    if (chainId === undefined) throw new NotFoundError(`no chain named ${name} in the configuration (known: ${[...this.d.chainIds.keys()].join(", ")})`);
    const s = this.chains.get(chainId)!;
    if (s.deepReorg === undefined) throw new ConflictError(`chain ${name} is not held by a deep reorganisation`);
    const was = s.deepReorg;
    this.d.store.saveChainHold(chainId, undefined);
    s.deepReorg = undefined;
    s.checkpoint = undefined;
    const fields = { chain: name, chainId: chainId.toString(), status: "released", block: was.block };
    this.d.log.warn({ event: "chainHealth", ...fields }, `chain ${name}: the hold after the deep reorganisation at block ${was.block} was released by the operator; new swaps, locks and deposit counts on it go on`);
    this.emit?.("chainHealth", fields);
    return this.view(name);
  }

  /** Throws a ConflictError (409) with the hold's reason when `chainId` is held: for the node's own requests. */
  require(chainId: bigint): void {
    const reason = this.hold(chainId);
    if (reason !== undefined) throw new ConflictError(reason);
  }

  /**
   * A block about to be read as final on `chainId` (a count of deposits, a channel's opening): its hash is kept, the
   * block kept before it checked first, so that a reorganisation replacing either is caught.
   */
  async trustFinal(chainId: bigint, block: number): Promise<void> {
    const s = this.chains.get(chainId);
    if (s === undefined || s.deepReorg !== undefined) return;
    if (s.checkpoint !== undefined && block <= s.checkpoint.number) return; // the block kept covers it
    const read = await s.adapter.provider.getBlock(block);
    if (read === null || read.hash === null) return;
    await this.verify(s);
    this.keep(s, { number: block, hash: read.hash });
  }

  /** Checks every chain once (in turn), then puts the holds in the store; a check still running is not doubled. */
  check(): Promise<void> {
    this.checking ??= (async () => {
      try {
        for (const s of this.chains.values()) await this.checkChain(s);
        this.keepHolds();
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }

  /**
   * Makes the store hold what memory holds: each chain's hold, or no row once released. A hold is written when it is
   * seen and a release when the operator gives it, but that write may be lost: the store's connection is the client's
   * too, and a write made while a protocol step is open (a step awaits chain reads; checks run on their own timer) is
   * undone with the step if the step fails; or the write itself failed. So at each check, when no transaction is open,
   * the rows are read and what differs is written again.
   */
  private keepHolds(): void {
    const { store, log } = this.d;
    if (!store.isOpen() || store.inTransaction()) return; // at the next check
    try {
      const stored = store.chainHolds<StoredHold>();
      for (const s of this.chains.values()) {
        if ((s.deepReorg !== undefined) === stored.has(s.chainId)) continue;
        store.saveChainHold(s.chainId, s.deepReorg === undefined ? undefined : storedHold(s.deepReorg));
        const status = s.deepReorg === undefined ? "released" : "deepReorg";
        log.warn({ event: "chainHealth", chain: s.name, chainId: s.chainId.toString(), status, kept: true }, `chain ${s.name}: the ${status === "released" ? "release of its hold" : "hold"} is now kept in the store (the first write was undone or failed)`);
      }
      this.holdsUnkept = undefined;
    } catch (error) {
      const text = shortMessage(error);
      if (text === this.holdsUnkept) return;
      this.holdsUnkept = text;
      log.error({ event: "chainHealth", error: text }, `the chains' holds could not be kept in the store (${text}): tried again at each check; a restart now would forget a hold`);
    }
  }

  /** Resolves once the check in flight, if any, has ended. */
  async idle(): Promise<void> {
    await this.checking;
  }

  /**
   * Chain `chainId`'s clock now, in seconds, as far as the node knows it: the head's timestamp at the last check that
   * answered plus the time since. Undefined before one did.
   */
  chainTime(chainId: bigint): number | undefined {
    const s = this.chains.get(chainId);
    if (s?.head === undefined || s.checkedAt === undefined) return undefined;
    return s.head.timestamp + Math.max(0, (this.now() - s.checkedAt) / 1000);
  }

  /** Each chain's health, by chain name. */
  view(name: string): ChainHealthView {
    const s = this.chains.get(this.d.chainIds.get(name)!)!;
    const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
    const enough = s.balance === undefined || s.reserve === undefined ? undefined : s.balance >= s.reserve;
    return {
      healthy: s.reachable === true && s.deepReorg === undefined && enough !== false,
      holding: this.hold(s.chainId),
      reachable: s.reachable,
      unreachableSince: iso(s.unreachableSince),
      lastError: s.lastError,
      head: s.head?.number,
      headAgeSeconds: s.head === undefined ? undefined : Math.max(0, Math.round(this.now() / 1000 - s.head.timestamp)),
      checkedAt: iso(s.checkedAt),
      confirmations: s.adapter.confirmations,
      deepReorg: s.deepReorg === undefined ? undefined : { ...s.deepReorg, at: iso(s.deepReorg.at)! },
      feeAccount: {
        address: this.d.address,
        balance: s.balance === undefined ? undefined : formatEther(s.balance),
        reserve: s.reserve === undefined ? undefined : formatEther(s.reserve),
        enough,
      },
    };
  }

  /** Moves the block kept for `s` up to `mark` (never down). */
  private keep(s: ChainState, mark: Mark): void {
    if (s.checkpoint === undefined || mark.number > s.checkpoint.number) s.checkpoint = mark;
  }

  /**
   * Reads the block kept for `s` again: another hash, read twice, is a deep reorganisation. No block at its height
   * is an endpoint behind the chain (a lagging backend of a load balancer), not a reorganisation: looked at again at
   * the next check.
   */
  private async verify(s: ChainState): Promise<void> {
    const mark = s.checkpoint;
    if (mark === undefined || s.deepReorg !== undefined) return;
    const now = await s.adapter.provider.getBlock(mark.number);
    if (now === null || now.hash === null || now.hash === mark.hash) return;
    const again = await s.adapter.provider.getBlock(mark.number);
    if (again === null || again.hash === null || again.hash === mark.hash) return;
    this.deepReorgSeen(s, mark, again.hash);
  }

  private async checkChain(s: ChainState): Promise<void> {
    const provider = s.adapter.provider;
    const timeoutMs = Math.max(5_000, this.d.config.timing.chainCheckSeconds * 1000);
    try {
      await withTimeout(
        (async () => {
          // The chain id is asked once by the provider; an endpoint now serving another chain is one this chain's
          // channels cannot be defended on: held as a chain that does not answer, the error saying which it serves.
          if (provider instanceof JsonRpcProvider) {
            const served = BigInt(String(await provider.send("eth_chainId", [])));
            if (served !== s.chainId) throw new Error(`the endpoint now serves chain ${served}, not ${s.chainId}`);
          }
          const head = await provider.getBlock("latest");
          if (head === null || head.hash === null) throw new Error("the chain returned no latest block");
          // The new block to keep is read before the kept one is checked: a reorganisation between the two reads is
          // then caught now or at the next check, never missed.
          const final = Math.max(0, head.number - s.adapter.confirmations);
          const candidate: Block | null = s.checkpoint === undefined || final > s.checkpoint.number ? await provider.getBlock(final) : null;
          await this.verify(s);
          if (candidate !== null && candidate.hash !== null && s.deepReorg === undefined) this.keep(s, { number: final, hash: candidate.hash });
          const balance = await provider.getBalance(this.d.address);
          s.head = { number: head.number, hash: head.hash, timestamp: head.timestamp, baseFee: head.baseFeePerGas ?? 0n };
          s.checkedAt = this.now();
          this.fees(s, balance);
        })(),
        timeoutMs,
        `no answer within ${timeoutMs / 1000} s`,
      );
      this.answered(s);
    } catch (error) {
      this.failed(s, error);
    }
  }

  private answered(s: ChainState): void {
    const was = s.reachable;
    s.reachable = true;
    if (was !== false) return;
    const downSeconds = Math.round((this.now() - s.unreachableSince!) / 1000);
    this.d.log.info(
      { event: "chainHealth", chain: s.name, chainId: s.chainId.toString(), status: "reachable", downSeconds, block: s.head?.number },
      `chain ${s.name} answers again after ${downSeconds} s (block ${s.head?.number}): swaps, locks and deposit counts on it go on`,
    );
    s.unreachableSince = undefined;
    this.emit?.("chainHealth", { chain: s.name, chainId: s.chainId.toString(), status: "reachable", downSeconds, block: s.head?.number });
  }

  private failed(s: ChainState, error: unknown): void {
    const text = shortMessage(error);
    s.lastError = text;
    if (s.reachable === false) return; // said when it stopped answering
    s.reachable = false;
    s.unreachableSince = this.now();
    const since = new Date(s.unreachableSince).toISOString();
    this.d.log.warn(
      { event: "chainHealth", chain: s.name, chainId: s.chainId.toString(), status: "unreachable", since, error: text, rpc: new URL(this.d.config.chains[s.name]!.rpcUrl).origin },
      `chain ${s.name} does not answer (${text}): no new swap, lock, deposit count or channel on it until it does; ` +
        `the watchtower and the on-chain work retry. Check chains.${s.name}.rpcUrl and the node behind it`,
    );
    this.emit?.("chainHealth", { chain: s.name, chainId: s.chainId.toString(), status: "unreachable", since, error: text });
  }

  private deepReorgSeen(s: ChainState, mark: Mark, found: string | undefined): void {
    s.deepReorg = { block: mark.number, trusted: mark.hash, found, at: this.now() };
    try {
      this.d.store.saveChainHold(s.chainId, storedHold(s.deepReorg));
    } catch (error) {
      // Held in memory all the same, and written again at the next check (`keepHolds`).
      this.d.log.error({ event: "chainHealth", chain: s.name, error: shortMessage(error) }, `chain ${s.name}: the hold could not be kept in the store yet (tried again at the next check)`);
    }
    const fields = { chain: s.name, chainId: s.chainId.toString(), status: "deepReorg", block: mark.number, trusted: mark.hash, found: found ?? null, confirmations: s.adapter.confirmations };
    this.d.log.error(
      { event: "chainHealth", ...fields },
      `chain ${s.name}: block ${mark.number}, taken as final (${s.adapter.confirmations} confirmations), is ${found === undefined ? "gone" : `now ${found}`} (was ${mark.hash}): ` +
        `a reorganisation deeper than chains.${s.name}.confirmations. Nothing new is signed on ${s.name} (no swap, lock, deposit count or channel), ` +
        `across restarts, until you release it (channels chain release ${s.name}); the watchtower and the on-chain work go on. ` +
        "Check the chain and its channels' deposits, and raise the confirmations",
    );
    this.emit?.("chainHealth", fields);
  }

  /** The fee account against what the node's open channels on `s` may need on chain; said when it turns short or back. */
  private fees(s: ChainState, balance: bigint): void {
    const open = this.d.store.channels().filter((c) => c.ref.chainId === s.chainId && this.d.store.channelOp(c.ref.channelId)?.kind !== "closed").length;
    const price = 2n * (s.head?.baseFee ?? 0n) + PRIORITY_FEE;
    s.balance = balance;
    s.reserve = BigInt(open) * DEFENCE_GAS_PER_CHANNEL * price;
    const short = balance < s.reserve;
    if (short === s.short) return;
    s.short = short;
    const fields = { chain: s.name, chainId: s.chainId.toString(), status: short ? "feeShort" : "feeEnough", balance: formatEther(balance), reserve: formatEther(s.reserve), channels: open };
    if (short) {
      this.d.log.warn(
        { event: "chainHealth", ...fields },
        `chain ${s.name}: the fee account ${this.d.address} holds ${formatEther(balance)}, less than the ${formatEther(s.reserve)} its ${open} channel(s) may need ` +
          `on chain (a force close or challenge and a settle each, at twice the base fee): fund it, or challenges may not land in time`,
      );
    } else {
      this.d.log.info({ event: "chainHealth", ...fields }, `chain ${s.name}: the fee account covers its channels' on-chain reserve again`);
    }
    this.emit?.("chainHealth", fields);
  }
}

/** A deep reorganisation as the store keeps it. */
function storedHold(h: DeepReorg): StoredHold {
  return { block: h.block, trusted: h.trusted, found: h.found ?? null, at: h.at };
}

/** `work`, or a rejection with `message` once `ms` passed without it settling. */
async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(message)), ms)));
  work.catch(() => undefined); // settled after the timeout: nobody waits for it
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
