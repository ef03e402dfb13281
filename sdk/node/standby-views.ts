/**
 * What a standby shows (docs/NODE.md, "PostgreSQL and a standby"): the node's stored data as the database holds it,
 * read as one snapshot (`PgDatabase.snapshot`: one REPEATABLE READ, READ ONLY transaction on a session of its own)
 * into a SQLite in memory, as a process that takes the lead loads it, and shown through the active node's own view
 * functions (views.ts). A standby never writes: the database refuses a write in the snapshot's transaction, and the
 * store it loads takes no commit.
 *
 * A snapshot is read when a request comes and the last one is older than SNAPSHOT_MAX_AGE_MS, one read at a time
 * (the requests that come meanwhile wait for it and share it); each is replaced by the next and closed, so a standby
 * holds one snapshot, and two while it reads the next. Every answer says when its snapshot was read (`asOf`).
 *
 * A standby reads no chain for its views and exchanges nothing with peers: a channel's view has none of the fields
 * the active node reads on chain (on-chain deposits, payouts, what the hub holds, a challenge's deadline) and its
 * status comes from the stored rows; a peer's link is "unknown"; chain health is the active process's to tell. It
 * asks each configured chain its id once (eth_chainId), to name chains and assets as the active node does.
 */
import { FetchRequest } from "ethers";
import type { Logger } from "pino";

import { storedSwap } from "../coordinator/session.js";
import { ChannelSdkError } from "../core/errors.js";
import { redactUrl, type Leader, type PgDatabase, type StoreRows } from "../store/postgres.js";
import { Store } from "../store/store.js";
import { StoreLostError } from "../store/transactions.js";
import type { ReadSource } from "./api.js";
import { storedPending } from "./channel-opening.js";
import type { NodeConfig } from "./node-config.js";
import { PeerBook } from "./peer-book.js";
import { Refusals } from "./refusals.js";
import { AssetBook } from "./units.js";
import { channelIds, channelView, configuredChains, resolveChannel, resolveSwap, storedCounts, swapView, swapViews, type Stored } from "./views.js";

/** How old a standby's snapshot may be when a request comes: an older one is read again before the answer. */
export const SNAPSHOT_MAX_AGE_MS = 2_000;
/** How long a standby waits for a chain's id, and how long before it asks a chain that did not answer again. */
const CHAIN_ID_TIMEOUT_MS = 2_000;
const CHAIN_ID_RETRY_MS = 30_000;

/** The active process as a standby shows it (`/info`, and every 503), or null before any process led. */
export type Active = Readonly<{ holder: string; api: string | null; term: number; since: string }> | null;

export function activeOf(leader: Leader | undefined): Active {
  return leader === undefined ? null : { holder: leader.holder, api: leader.api, term: leader.term, since: leader.since };
}

export type SnapshotDeps = Readonly<{
  config: NodeConfig;
  address: string;
  log: Logger;
  /** The database this process is connected to now (throws a StoreLostError while it connects again). */
  db: () => PgDatabase;
  /** Who leads, as the database says now. */
  leader: () => Leader | undefined;
  /** When this process started standing by. */
  startedAt: Date;
  /** Told each load's duration (seconds): the standby's metrics. */
  onLoad?: (seconds: number) => void;
}>;

/** A standby's snapshots of the database: the last one read, and the one being read. */
export class Snapshots {
  private current: Snapshot | undefined;
  private loading: Promise<Snapshot> | undefined;
  private closed = false;
  private readonly chains: ChainIds;

  constructor(private readonly d: SnapshotDeps) {
    this.chains = new ChainIds(d.config);
  }

  /**
   * A snapshot read at most SNAPSHOT_MAX_AGE_MS before this call: the last one if it is, else the one being read if
   * it began since, else a new one once that read is over. Rejects with a StoreLostError when the database does not
   * answer (the API's 503).
   */
  async fresh(): Promise<Snapshot> {
    const since = Date.now() - SNAPSHOT_MAX_AGE_MS;
    // At most twice round: a read that began before `since`, then one that began after it.
    for (;;) {
      if (this.current !== undefined && this.current.asOf.getTime() >= since) return this.current;
      this.loading ??= this.load().finally(() => (this.loading = undefined));
      await this.loading;
    }
  }

  /** Closes the snapshot held (the process leads now, or stops); a read under way is closed when it ends. */
  close(): void {
    this.closed = true;
    this.current?.close();
    this.current = undefined;
  }

  private async load(): Promise<Snapshot> {
    // Taken before the read begins: the snapshot holds every commit made before this time.
    const asOf = new Date();
    const started = performance.now();
    const [rows] = await Promise.all([this.d.db().snapshot("node"), this.chains.ready()]);
    const next = new Snapshot(rows, asOf, { ...this.d, assets: this.chains.assets(), chainIds: this.chains.known() });
    if (this.closed) {
      next.close();
      throw new StoreLostError(redactUrl(this.d.config.store), "this process no longer stands by");
    }
    const seconds = (performance.now() - started) / 1000;
    this.d.onLoad?.(seconds);
    this.d.log.debug({ event: "standbySnapshot", ms: Math.round(seconds * 1000), channels: next.channelCount }, "standby: read a snapshot of the database");
    this.current?.close(); // every view of it was built in the turn it was handed over: none reads it later
    this.current = next;
    return next;
  }
}

/**
 * One snapshot of the database's node schema, in a SQLite of its own in memory, and the API's reads of it with the
 * active node's shapes (ReadSource). Every read is synchronous.
 */
export class Snapshot implements ReadSource {
  private readonly store: Store;
  private readonly stored: Stored;
  private readonly peerBook: PeerBook;
  private readonly refusals: Refusals;

  constructor(
    rows: StoreRows,
    readonly asOf: Date,
    private readonly d: SnapshotDeps & Readonly<{ assets: AssetBook; chainIds: ReadonlyMap<string, bigint> }>,
  ) {
    const where = `${redactUrl(d.config.store)} (a standby's snapshot)`;
    this.store = new Store(":memory:", {
      mirror: {
        where,
        rows: () => rows,
        commit: () => {
          throw new ChannelSdkError(`store: ${where}: a standby writes nothing`);
        },
      },
    });
    this.peerBook = new PeerBook({ config: d.config, store: this.store, address: d.address });
    this.stored = { store: this.store, assets: d.assets, peers: this.peerBook, pending: storedPending(this.store) };
    this.refusals = new Refusals({ config: d.config, log: d.log, store: this.store, emit: () => {} });
    this.refusals.load();
  }

  get channelCount(): number {
    return this.store.channels().length;
  }

  /** What the active node's /info says that is stored or configured, with who leads and when this snapshot was read. */
  info() {
    return {
      address: this.d.address,
      version: 1,
      /** "standby": this process signs and sends nothing; `active` does. */
      role: "standby" as const,
      active: activeOf(this.d.leader()),
      asOf: this.asOf.toISOString(),
      store: { kind: "postgres" as const },
      startedAt: this.d.startedAt.toISOString(),
      chains: configuredChains(this.d.config, this.d.chainIds),
      ...storedCounts(this.store),
      policy: this.d.config.policy,
    };
  }

  peers() {
    return this.peerBook.peers();
  }

  channels() {
    return channelIds(this.stored).map((id) => channelView(this.stored, id));
  }

  channel(id: string) {
    return channelView(this.stored, resolveChannel(this.stored, id));
  }

  swaps() {
    return swapViews(this.stored);
  }

  swap(id: string) {
    return swapView(this.stored, storedSwap(this.store, resolveSwap(this.store, id)));
  }

  refused() {
    return this.refusals.all();
  }

  close(): void {
    this.store.close();
  }
}

/**
 * The configured chains' ids, asked of each chain once (eth_chainId, within CHAIN_ID_TIMEOUT_MS): the active node
 * knows them from its connections, and a standby names chains and assets by them. A chain that did not answer is
 * asked again CHAIN_ID_RETRY_MS later; until then its channels show its id and their amounts in base units.
 */
class ChainIds {
  private readonly ids = new Map<string, bigint>();
  private readonly first: Promise<void>;
  private asked = 0;
  private asking: Promise<void> | undefined;

  constructor(private readonly config: NodeConfig) {
    this.first = this.ask();
  }

  /** Resolves once the first asking is over (bounded); asks again in the background the chains that did not answer. */
  ready(): Promise<void> {
    if (this.asking === undefined && this.ids.size < Object.keys(this.config.chains).length && Date.now() - this.asked >= CHAIN_ID_RETRY_MS) void this.ask();
    return this.first;
  }

  known(): ReadonlyMap<string, bigint> {
    return new Map(this.ids);
  }

  assets(): AssetBook {
    return new AssetBook(Object.fromEntries([...this.ids].map(([name, chainId]) => [name, { ...this.config.chains[name]!, chainId }])));
  }

  private ask(): Promise<void> {
    this.asked = Date.now();
    const missing = Object.keys(this.config.chains).filter((name) => !this.ids.has(name));
    this.asking = Promise.all(
      missing.map(async (name) => {
        const id = await chainIdOf(this.config.chains[name]!.rpcUrl);
        if (id !== undefined) this.ids.set(name, id);
      }),
    ).then(() => (this.asking = undefined));
    return this.asking;
  }
}

/** A chain's id as its endpoint answers eth_chainId, or undefined if it does not within CHAIN_ID_TIMEOUT_MS. */
async function chainIdOf(rpcUrl: string): Promise<bigint | undefined> {
  const request = new FetchRequest(rpcUrl);
  request.timeout = CHAIN_ID_TIMEOUT_MS;
  request.body = { jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] };
  try {
    const response = await request.send();
    response.assertOk();
    const result = (response.bodyJson as { result?: unknown }).result;
    return typeof result === "string" && /^0x[0-9a-f]+$/i.test(result) ? BigInt(result) : undefined;
  } catch {
    return undefined;
  }
}
