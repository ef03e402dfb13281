/**
 * The store's health: a store found lost (this node's or its watchtower's) stops all signing, is said and copied out
 * for the operator (`StoreHealth`); and before a new store is made where none is, the check that this node never
 * had one there (`requireNewStore`).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";

import { decodePackedOpening } from "../chain/events.js";
import type { HubAdapter } from "../chain/hub.js";
import { decode } from "../core/codec.js";
import { sameAddress, type Address, type Hex } from "../core/types.js";
import { isPostgresUrl, redactUrl } from "../store/postgres.js";
import { Store, StoreLostError } from "../store/store.js";
import { UsageError } from "./errors.js";
import type { Emit } from "./events.js";
import type { NodeConfig } from "./node-config.js";

/** How many of this address's channel openings per chain (the newest) a start with no store reads further. */
const MAX_OPENINGS_CHECKED = 32;

export class StoreHealth {
  /** Set once the store or the tower's store is found lost: from then on nothing is signed (see `storeLost`). */
  private lostError: StoreLostError | undefined;
  /** The stores already copied out after being lost (path -> copy). */
  private readonly rescued = new Map<string, string>();

  /** `stores`: this node's store and its tower's. */
  constructor(
    private readonly stores: readonly Store[],
    private readonly log: Logger,
    private readonly emit: Emit,
  ) {}

  /** The StoreLostError once a store is found lost, else undefined. */
  get lost(): StoreLostError | undefined {
    return this.lostError;
  }

  /** Throws the StoreLostError if this node's store (or its tower's) is lost: nothing is signed from then on. */
  requireStore(): void {
    if (this.lostError !== undefined) throw this.lostError;
  }

  /**
   * Notices a lost store, this node's or its watchtower's (`Store.fileProblem`: deleted, replaced, or a write that
   * failed for the file's reason); with `probe`, also makes each take a write (an idle node has no other).
   */
  checkStore(probe: boolean): void {
    if (this.lostError !== undefined) return;
    for (const s of this.stores) {
      let problem = s.fileProblem();
      if (problem === undefined && probe) {
        try {
          s.probe();
        } catch {
          problem = s.fileProblem(); // another reason (the write lock held by a reader for long) is not the file's
        }
      }
      if (problem !== undefined) return this.storeLost(new StoreLostError(s.path, problem));
    }
  }

  /** At each heartbeat: probes the stores and, once one is lost, says so again (copying out what was not yet). */
  beat(): void {
    this.checkStore(true);
    if (this.lostError !== undefined) {
      this.rescue(); // a store inside a transaction when it was found lost is copied now
      this.log.error({ event: "storeLost", store: this.lostError.path, problem: this.lostError.problem, rescued: [...this.rescued.values()] }, `${this.lostError.message}: this node signs nothing more`);
    }
  }

  /**
   * The store is lost. The node goes on running, so that its watchtower and the on-chain paths (force close,
   * claims) still defend its channels, but signs nothing more: not a state, a message, swap terms or a proposal
   * (the signer refuses, `requireStore`), since what it would sign could not be kept and a restart could sign another
   * state with the same number. It says so at error level, on the event stream and through the API (503); and it
   * copies what its open files still hold beside the store, for the operator to put back before a restart.
   */
  private storeLost(error: StoreLostError): void {
    this.lostError = error;
    this.rescue();
    const copies = [...this.rescued.values()];
    const where = copies.length > 0 ? ` A copy of what it still held is at ${copies.join(" and ")}: stop the node, put the copy in place of the lost file, and start it again.` : " Stop the node and restore the store from a backup.";
    this.log.error({ event: "storeLost", store: error.path, problem: error.problem, rescued: copies }, `${error.message}: this node signs nothing more (its watchtower goes on).${where}`);
    this.emit("storeLost", { store: error.path, problem: error.problem, rescued: copies });
  }

  /** Copies each lost store out (`Store.copyTo`) once; a store inside a transaction is copied at a later heartbeat. */
  private rescue(): void {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    for (const s of this.stores) {
      // A store kept in a database has no file to rescue: the database holds every step it committed.
      if (s.path === ":memory:" || this.rescued.has(s.path) || s.fileProblem() === undefined || s.inTransaction()) continue;
      const copy = `${s.path}.rescued-${stamp}`;
      try {
        s.copyTo(copy);
        this.rescued.set(s.path, copy);
      } catch (error) {
        this.log.error({ event: "storeRescueFailed", store: s.path, error: (error as Error).message.split("\n")[0] }, `could not copy the lost store ${s.path} to ${copy}`);
      }
    }
  }
}

/**
 * What the files beside a store file not there yet say of a store that was: the watchtower's store holding
 * channels, channels agreed with peers, a copy rescued from a lost store (see `requireNewStore`).
 */
export function filesBeside(store: string): string[] {
  const found: string[] = [];
  const tower = `${store}.tower`;
  if (existsSync(tower)) {
    try {
      const s = new Store(tower);
      const n = s.channels().length;
      s.close();
      if (n > 0) found.push(`its watchtower's store ${tower} holds ${n} channel(s)`);
    } catch (error) {
      found.push(`its watchtower's store ${tower} is there (unreadable: ${(error as Error).message.split("\n")[0]})`);
    }
  }
  const pendingFile = `${store}.pending.json`;
  if (existsSync(pendingFile)) {
    let n: number | undefined;
    try {
      n = decode<unknown[]>(readFileSync(pendingFile, "utf8")).length;
    } catch {
      n = undefined;
    }
    if (n !== 0) found.push(`${pendingFile} holds ${n ?? "unreadable"} channel agreement(s)`);
  }
  const rescued = existsSync(dirname(store)) ? readdirSync(dirname(store)).filter((f) => f.startsWith(`${basename(store)}.rescued-`)) : [];
  if (rescued.length > 0) found.push(`a copy rescued from the lost store is at ${dirname(store)}/${rescued.sort().at(-1)}`);
  return found;
}

/**
 * Before a store is created where none is: refuses (a UsageError, one line) when what is left beside it or on the
 * chains says this node had one there, i.e. it was deleted or moved, unless `allow`. Evidence that cannot come
 * from a first start: `evidence` (for a file, `filesBeside`: the watchtower's store, `<store>.tower`, made at the
 * first start with the store, holding channels; channels agreed with peers, `<store>.pending.json`; a copy rescued
 * from a lost store, `<store>.rescued-*`, see `storeLost`; for a database, its watchtower's rows); a channel this address opened (the opening transaction sent from it, so
 * that nobody else can make a new node refuse to start by opening channels naming it) that is not closed on
 * chain. The refusals file is no evidence: a node refuses proposals before it has any channel.
 */
export async function requireNewStore(
  config: NodeConfig,
  address: Address,
  chains: readonly { name: string; adapter: HubAdapter }[],
  log: Logger,
  allow: boolean,
  evidence: readonly string[],
): Promise<void> {
  const found = [...evidence];
  for (const { name, adapter } of chains) {
    try {
      const open = await openedAndNotClosed(adapter, address);
      if (open > 0) found.push(`${open} channel(s) it opened on ${name} are not closed on chain`);
    } catch (error) {
      log.warn({ event: "openingsUnread", chain: name, error: (error as Error).message.split("\n")[0] }, `could not read the channels opened on ${name}; going by the files beside the store`);
    }
  }
  if (found.length === 0) return;
  if (allow) {
    log.warn({ event: "emptyStore", store: isPostgresUrl(config.store) ? redactUrl(config.store) : config.store, found }, `starting with a new store although ${found.join("; ")} (--allow-empty-store)`);
    return;
  }
  throw new UsageError(
    `store: ${isPostgresUrl(config.store) ? `the database ${redactUrl(config.store)} holds no store` : `${config.store} does not exist`}, but ${found.join("; ")}. Restore the store from a backup (or that copy), or start ` +
      "with --allow-empty-store to begin a new one: its channels are then defended only on chain, by the watchtower",
  );
}

/**
 * How many channels `address` opened on the adapter's hub (one log query for the hub's ChannelOpened events, the
 * newest MAX_OPENINGS_CHECKED naming it as a participant read further) and that are not closed.
 */
async function openedAndNotClosed(adapter: HubAdapter, address: Address): Promise<number> {
  const openings = await adapter.hub.queryFilter(adapter.hub.filters.ChannelOpened(), 0, "latest");
  const ours = openings.filter((e) => decodePackedOpening(e.args.packed).participants.some((p) => sameAddress(p, address))).slice(-MAX_OPENINGS_CHECKED);
  let open = 0;
  for (const e of ours) {
    const tx = await adapter.provider.getTransaction(e.transactionHash);
    if (tx === null || !sameAddress(tx.from, address)) continue;
    if ((await adapter.channelInfo(e.args.channelId as Hex)).status !== "closed") open++;
  }
  return open;
}
