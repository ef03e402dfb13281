import { closeSync, existsSync, fdatasyncSync, fstatSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementResultingChanges, type StatementSync } from "node:sqlite";

import { decode, encode } from "../core/codec.js";
import { ChannelSdkError, DoubleSignError } from "../core/errors.js";
import type { ChannelRef, SwapTerms } from "../core/swap.js";
import type { ChannelParams, ChannelState, Hex, ParticipantIndex } from "../core/types.js";

/** A channel this client is a participant of. */
export type ChannelRecord = Readonly<{
  ref: ChannelRef;
  params: ChannelParams;
  myIndex: ParticipantIndex;
  /** On-chain deposits when the channel was added: the opening state until a state is co-signed. */
  openingDeposits: readonly [bigint, bigint];
}>;

/** A state with both participants' signatures, in participant order. */
export type CoSignedState = Readonly<{ state: ChannelState; signatures: readonly [Hex, Hex] }>;

/** A conditional transfer this client tracks: the state that introduced it, and whether it is confirmed. */
export type TransferRecord = Readonly<{
  swapId: Hex;
  channelId: Hex;
  hashlock: Hex;
  /** Sequence number of the co-signed state that introduced the lock. */
  lockSeq: bigint;
  /** Sequence number of the co-signed state that resolved it, once there is one. */
  resolvedSeq: bigint | undefined;
  /** Set when the resolving state is co-signed: only confirmed transfers count as done. */
  confirmed: boolean;
  outcome: "pending" | "paid" | "refunded";
}>;

/**
 * What a channel is doing besides swaps: a cooperative close or a deposit update being co-signed, a force close
 * under way, or closed for good. A channel with an operation takes no swap. `since` and `sentAt` are client clock
 * (ms) readings, as a swap's progress keeps them.
 */
export type ChannelOp = Readonly<{
  kind: "close" | "deposits" | "forceClose" | "closed";
  /** Who asked: this client ("requester") or the counterparty ("responder"). */
  role: "requester" | "responder";
  /** Sequence number of the state the operation co-signs (0 for a force close or a closed channel). */
  seq: bigint;
  since: number;
  sentAt: number;
}>;

/** The store was written by another version of this SDK, with a different table layout. */
export class StoreVersionError extends ChannelSdkError {
  constructor(
    readonly path: string,
    readonly found: number,
    readonly expected: number,
  ) {
    super(
      `The store ${path} has table layout version ${found}; this SDK reads version ${expected}. Settle its channels with the ` +
        `SDK version that wrote it, or start a new store file.`,
    );
  }
}

/** A store opened read-only (another program's, e.g. a client's store a watchtower imports from) is not there. */
export class StoreNotFoundError extends ChannelSdkError {
  constructor(readonly path: string) {
    super(`The store ${path} does not exist (a store opened read-only is never created).`);
  }
}

/**
 * Version 2. Rows that protocol steps write are keyed so that a step's inserts land next to each other: per channel
 * (states, signatures) or per session number (messages, transfers), a small integer given in arrival order. Only
 * one index entry per swap goes to a random place (its id), so a group commit writes few pages.
 */
const SCHEMA_VERSION = 2;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS channels (channel_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cosigned (channel_id TEXT NOT NULL, seq TEXT NOT NULL, seq_num INTEGER NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE TABLE IF NOT EXISTS own_signatures (channel_id TEXT NOT NULL, seq TEXT NOT NULL, digest TEXT NOT NULL,
  signature TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE TABLE IF NOT EXISTS secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (n INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS swaps (n INTEGER PRIMARY KEY, role TEXT NOT NULL, terms TEXT NOT NULL,
  phase TEXT NOT NULL, updated_at INTEGER NOT NULL, active INTEGER NOT NULL, source TEXT NOT NULL,
  target TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS swaps_active ON swaps (source, target) WHERE active = 1;
CREATE TABLE IF NOT EXISTS transfers (n INTEGER NOT NULL, channel_id TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (n, channel_id));
CREATE TABLE IF NOT EXISTS cursors (chain_id TEXT PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS disputes (channel_id TEXT PRIMARY KEY, resolved INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS outbox (n INTEGER NOT NULL, step TEXT NOT NULL, envelope TEXT NOT NULL,
  PRIMARY KEY (n, step));
CREATE TABLE IF NOT EXISTS channel_ops (channel_id TEXT PRIMARY KEY, body TEXT NOT NULL);
`;

/**
 * The client's embedded store (SQLite through node:sqlite). Every method is synchronous. Outside a transaction
 * each write is committed (and on disk, see `durability`) when it returns; inside `transaction` or
 * `begin`/`commit`, at the outermost commit. The coordinator runs each protocol step as a savepoint inside one
 * transaction per group of steps and sends the messages those steps produced once `commit` has put the group on
 * disk (group commit).
 */
export class Store {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  /** Decoded channel records (they never change once saved, except through saveChannel). */
  private readonly records = new Map<string, ChannelRecord>();
  /** The newest co-signed state per channel, as last read or written. */
  private readonly latest = new Map<string, CoSignedState | null>();
  /** Decoded swaps, as last read or written. */
  private readonly swapCache = new Map<string, { role: "initiator" | "responder"; terms: SwapTerms; phase: unknown }>();
  /** Session numbers by session id, as last read or given. */
  private readonly sessionNumbers = new Map<string, number>();
  /** Decoded channel operations by channel id (null: none); every swap step asks whether its channels have one. */
  private readonly ops = new Map<string, ChannelOp | null>();
  private depth = 0;
  private savepoints = 0;
  /** Whether a commit must reach the disk before it counts (durability "power" on a file). */
  private readonly syncs: boolean;
  /** The write-ahead log, open for syncing it (reopened if SQLite replaced the file). */
  private wal: { fd: number; ino: number } | undefined;
  private readonly walPath: string;

  /**
   * @param path A file path, or ":memory:" for a store that lives as long as the process.
   * @param options `durability`: "power" (default) puts every commit on disk before it counts, so it survives a
   *   power cut; "crash" leaves that to the operating system: a commit survives the client process crashing,
   *   which is what guarantee 6 asks, at a fraction of the cost. Both run SQLite's write-ahead log with
   *   synchronous NORMAL; "power" adds an fdatasync of the log after each outermost commit, which is what
   *   synchronous FULL does inside every commit.
   *   `readOnly`: reads a store another program writes (a client's store a watchtower takes channels from). The
   *   file must exist and have this SDK's table layout; it is never created or changed (writes throw).
   */
  constructor(
    readonly path: string,
    options: Readonly<{ durability?: "power" | "crash"; readOnly?: boolean }> = {},
  ) {
    const readOnly = options.readOnly === true;
    // SQLite's own answer to a missing file is "unable to open database file"; ":memory:" would be a new, empty store.
    if (readOnly && (path === ":memory:" || path === "" || !existsSync(path))) throw new StoreNotFoundError(path);
    this.db = new DatabaseSync(path, { readOnly });
    this.syncs = !readOnly && options.durability !== "crash" && path !== ":memory:" && path !== "";
    this.walPath = `${resolve(path)}-wal`;
    // A second connection (a watchtower reading this file) may hold the write lock briefly: wait for it.
    this.db.exec("PRAGMA busy_timeout = 5000;");
    if (readOnly) {
      this.requireSchema();
      return;
    }
    const mode = (this.db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string }).journal_mode;
    if (this.syncs && mode !== "wal") {
      this.db.close();
      throw new ChannelSdkError(`the store ${path} cannot use a write-ahead log (journal mode ${mode})`);
    }
    // A larger log between checkpoints: pages rewritten by many commits are copied into the database once. The
    // undo copies a savepoint (one protocol step) keeps of the pages it changes live in memory, not in a temporary
    // file: they only serve a rollback inside the open transaction, never crash recovery (the log does that).
    this.db.exec(
      "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 8192; PRAGMA temp_store = MEMORY;",
    );
    this.openSchema();
    this.syncLogNow(false);
  }

  /** Creates the tables of a new store; refuses a store made by another schema version rather than misread it. */
  private openSchema(): void {
    const version = (this.db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    const tables = (this.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
    if (version === SCHEMA_VERSION || (version === 0 && tables === 0)) {
      this.db.exec(SCHEMA);
      this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      return;
    }
    this.db.close();
    throw new StoreVersionError(this.path, version === 0 ? 1 : version, SCHEMA_VERSION);
  }

  /** For a read-only store: the tables must already be there, in this SDK's layout. */
  private requireSchema(): void {
    const version = (this.db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version === SCHEMA_VERSION) return;
    const tables = (this.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
    this.db.close();
    if (version === 0 && tables === 0) throw new ChannelSdkError(`${this.path} is not a channel store: it has no tables.`);
    throw new StoreVersionError(this.path, version === 0 ? 1 : version, SCHEMA_VERSION);
  }

  /** Closes the store; a transaction left open with no savepoint in it (a finished group) is committed first. */
  close(): void {
    if (this.db.isOpen && this.depth === 1 && this.savepoints === 0) this.commit();
    if (this.wal !== undefined) closeSync(this.wal.fd);
    this.wal = undefined;
    this.depth = 0;
    this.savepoints = 0;
    this.statements.clear();
    this.forgetCached();
    this.db.close();
  }

  /** A prepared statement, compiled once per store. */
  private stmt(sql: string): StatementSync {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs one write; outside a transaction it is a transaction of its own (committed on return). */
  private write(sql: string, ...params: SQLInputValue[]): StatementResultingChanges {
    if (this.depth > 0) return this.stmt(sql).run(...params);
    return this.transaction(() => this.stmt(sql).run(...params));
  }

  isOpen(): boolean {
    return this.db.isOpen;
  }

  /** Whether a transaction is open (writes made now land at its commit). */
  inTransaction(): boolean {
    return this.depth > 0;
  }

  /** Runs `fn` in one transaction: all of its writes land, or none. A nested call joins the outer one. */
  transaction<T>(fn: () => T): T {
    this.begin();
    try {
      const result = fn();
      this.commit();
      return result;
    } catch (error) {
      this.rollback();
      throw error;
    }
  }

  /** Opens a transaction, or joins the one already open. Pair with `commit` or `rollback`. */
  begin(): void {
    if (this.depth === 0) this.db.exec("BEGIN IMMEDIATE");
    this.depth++;
  }

  /** Ends the outermost transaction: its writes are on disk when this returns. */
  commit(): void {
    if (this.depth <= 0) throw new ChannelSdkError("commit without an open transaction");
    if (this.depth > 1) {
      this.depth--;
      return;
    }
    this.db.exec("COMMIT"); // throws with the transaction still open (depth 1): the caller rolls back
    this.depth = 0;
    this.syncLogNow();
  }

  /** Abandons the outermost transaction's writes (an inner rollback leaves that to the outermost). */
  rollback(): void {
    if (this.depth === 0) return; // the commit went through and what failed came after it
    if (--this.depth === 0) {
      if (this.db.isOpen && this.db.isTransaction) this.db.exec("ROLLBACK");
      this.forgetCached();
    }
  }

  /**
   * After an error that may have ended the transaction behind the store's back (SQLite rolls back by itself on
   * some I/O errors): rolls back whatever is still open and forgets every savepoint and cached row.
   */
  abandon(): void {
    if (this.db.isOpen && this.db.isTransaction) this.db.exec("ROLLBACK");
    this.depth = 0;
    this.savepoints = 0;
    this.forgetCached();
  }

  private syncLogNow(afterWrite = true): void {
    const fd = this.logFd(afterWrite);
    if (fd !== undefined) fdatasyncSync(fd);
  }

  /**
   * The log's file descriptor, or undefined when there is nothing to sync (durability "crash"). After a write the
   * log must exist: a missing one means the commit is somewhere this store does not sync, which is an error.
   */
  private logFd(afterWrite = true): number | undefined {
    if (!this.syncs) return undefined;
    const path = this.walPath;
    let ino: number;
    try {
      ino = statSync(path).ino;
    } catch (error) {
      if (!afterWrite) return undefined; // opened, nothing written yet
      throw new ChannelSdkError(`cannot sync the store's log ${path}: ${(error as Error).message}`);
    }
    if (this.wal?.ino !== ino) {
      // A new log file: its directory entry must reach the disk too (SQLite does the same for a log it creates).
      if (this.wal !== undefined) closeSync(this.wal.fd);
      const fd = openSync(path, "r");
      this.wal = { fd, ino: fstatSync(fd).ino };
      let dir: number | undefined;
      try {
        dir = openSync(dirname(path), "r");
        fdatasyncSync(dir);
      } catch {
        // Platforms that cannot open or sync a directory (Windows) make its entry durable themselves.
      } finally {
        if (dir !== undefined) closeSync(dir);
      }
    }
    return this.wal.fd;
  }

  /**
   * Marks a point inside the open transaction that `rollbackToSavepoint` returns to: one protocol step inside a
   * group of steps. Savepoints nest; pair each with `releaseSavepoint` or `rollbackToSavepoint`.
   */
  savepoint(): void {
    if (this.depth === 0) throw new ChannelSdkError("a savepoint needs an open transaction");
    this.db.exec("SAVEPOINT step");
    this.depth++;
    this.savepoints++;
  }

  /** Keeps the writes made since the newest savepoint (they land with the transaction's commit). */
  releaseSavepoint(): void {
    this.db.exec("RELEASE step");
    this.depth--;
    this.savepoints--;
  }

  /** Undoes the writes made since the newest savepoint, leaving the rest of the transaction as it was. */
  rollbackToSavepoint(): void {
    this.forgetCached();
    this.db.exec("ROLLBACK TO step; RELEASE step"); // throws if SQLite already ended the transaction: see `abandon`
    this.depth--;
    this.savepoints--;
  }

  private forgetCached(): void {
    this.latest.clear();
    this.records.clear();
    this.swapCache.clear();
    this.sessionNumbers.clear();
    this.ops.clear();
  }

  // ---------------------------------------------------------------- channels

  saveChannel(record: ChannelRecord): void {
    this.records.set(key(record.ref.channelId), record);
    this.write(
      "INSERT INTO channels (channel_id, record) VALUES (?, ?) ON CONFLICT (channel_id) DO UPDATE SET record = excluded.record",
      key(record.ref.channelId),
      encode(record),
    );
  }

  channel(channelId: Hex): ChannelRecord | undefined {
    const k = key(channelId);
    const cached = this.records.get(k);
    if (cached !== undefined) return cached;
    const row = this.stmt("SELECT record FROM channels WHERE channel_id = ?").get(k) as { record: string } | undefined;
    if (row === undefined) return undefined;
    const record = decode<ChannelRecord>(row.record);
    this.records.set(k, record);
    return record;
  }

  channels(): ChannelRecord[] {
    const rows = this.stmt("SELECT record FROM channels ORDER BY channel_id").all() as { record: string }[];
    return rows.map((r) => decode<ChannelRecord>(r.record));
  }

  /** The operation in progress on a channel (or its closed mark), if any. */
  channelOp(channelId: Hex): ChannelOp | undefined {
    const k = key(channelId);
    const cached = this.ops.get(k);
    if (cached !== undefined) return cached ?? undefined;
    const row = this.stmt("SELECT body FROM channel_ops WHERE channel_id = ?").get(k) as { body: string } | undefined;
    const op = row === undefined ? undefined : decode<ChannelOp>(row.body);
    remember(this.ops, k, op ?? null);
    return op;
  }

  /** Records (or, with undefined, ends) the operation of a channel. */
  saveChannelOp(channelId: Hex, op: ChannelOp | undefined): void {
    this.ops.delete(key(channelId)); // read again after the write (a rollback forgets every cache)
    if (op === undefined) this.write("DELETE FROM channel_ops WHERE channel_id = ?", key(channelId));
    else {
      this.write(
        "INSERT INTO channel_ops (channel_id, body) VALUES (?, ?) ON CONFLICT (channel_id) DO UPDATE SET body = excluded.body",
        key(channelId),
        encode(op),
      );
    }
  }

  /** Channels with an operation in progress (closed ones left out). */
  pendingChannelOps(): { channelId: Hex; op: ChannelOp }[] {
    const rows = this.stmt("SELECT channel_id, body FROM channel_ops ORDER BY channel_id").all() as { channel_id: string; body: string }[];
    return rows
      .map((r) => ({ channelId: r.channel_id as Hex, op: decode<ChannelOp>(r.body) }))
      .filter((r) => r.op.kind !== "closed");
  }

  // ---------------------------------------------------------------- states and signatures

  /** Keeps a co-signed state (idempotent: the same state twice is one row). */
  saveCoSigned(cosigned: CoSignedState): void {
    const { state } = cosigned;
    const k = key(state.channelId);
    this.write(
      "INSERT OR IGNORE INTO cosigned (channel_id, seq, seq_num, body) VALUES (?, ?, ?, ?)",
      k,
      state.seq.toString(),
      Number(state.seq),
      encode(cosigned),
    );
    const current = this.latest.get(k);
    if (current === undefined) this.latest.delete(k);
    else if (current === null || current.state.seq < state.seq) this.latest.set(k, cosigned);
  }

  /** The co-signed state with the highest sequence number, if any. */
  latestCoSigned(channelId: Hex): CoSignedState | undefined {
    const k = key(channelId);
    const cached = this.latest.get(k);
    if (cached !== undefined) return cached ?? undefined;
    const row = this.stmt("SELECT body FROM cosigned WHERE channel_id = ? ORDER BY seq_num DESC LIMIT 1").get(k) as
      | { body: string }
      | undefined;
    const found = row === undefined ? undefined : decode<CoSignedState>(row.body);
    this.latest.set(k, found ?? null);
    return found;
  }

  coSignedAt(channelId: Hex, seq: bigint): CoSignedState | undefined {
    const row = this.stmt("SELECT body FROM cosigned WHERE channel_id = ? AND seq = ?")
      .get(key(channelId), seq.toString()) as { body: string } | undefined;
    return row === undefined ? undefined : decode<CoSignedState>(row.body);
  }

  /**
   * Records that this client signs `state` (digest `digest`) before the signature leaves the process. Signing
   * the same digest again returns the recorded signature (a resend); a different digest with the same sequence
   * number throws DoubleSignError and records nothing.
   */
  recordOwnSignature(state: ChannelState, digest: Hex, sign: () => Hex): Hex {
    const channelId = key(state.channelId);
    const seq = state.seq.toString();
    return this.transaction(() => {
      const row = this.stmt("SELECT digest, signature FROM own_signatures WHERE channel_id = ? AND seq = ?")
        .get(channelId, seq) as { digest: string; signature: string } | undefined;
      if (row !== undefined) {
        if (row.digest !== key(digest)) throw new DoubleSignError(state.channelId, state.seq);
        return row.signature as Hex;
      }
      const signature = sign();
      this.write(
        "INSERT INTO own_signatures (channel_id, seq, digest, signature, state) VALUES (?, ?, ?, ?, ?)",
        channelId,
        seq,
        key(digest),
        signature,
        encode(state),
      );
      return signature;
    });
  }

  /** A state this client signed with sequence number `seq`, and its signature. */
  ownSignedAt(channelId: Hex, seq: bigint): { state: ChannelState; signature: Hex } | undefined {
    const row = this.stmt("SELECT state, signature FROM own_signatures WHERE channel_id = ? AND seq = ?")
      .get(key(channelId), seq.toString()) as { state: string; signature: string } | undefined;
    return row === undefined ? undefined : { state: decode<ChannelState>(row.state), signature: row.signature as Hex };
  }

  /** The highest sequence number this client ever signed on a channel (0 if none). */
  highestOwnSeq(channelId: Hex): bigint {
    const row = this.stmt("SELECT MAX(CAST(seq AS INTEGER)) AS seq FROM own_signatures WHERE channel_id = ?").get(
      key(channelId),
    ) as { seq: number | bigint | null };
    return row.seq === null ? 0n : BigInt(row.seq);
  }

  // ---------------------------------------------------------------- secrets

  saveSecret(hashlock: Hex, secret: Hex): void {
    this.write("INSERT OR IGNORE INTO secrets (hashlock, secret) VALUES (?, ?)", key(hashlock), secret);
  }

  /** Every known secret, keyed by hashlock. */
  secrets(): { hashlock: Hex; secret: Hex }[] {
    const rows = this.stmt("SELECT hashlock, secret FROM secrets ORDER BY hashlock").all() as {
      hashlock: string;
      secret: string;
    }[];
    return rows.map((r) => ({ hashlock: r.hashlock as Hex, secret: r.secret as Hex }));
  }

  secret(hashlock: Hex): Hex | undefined {
    const row = this.stmt("SELECT secret FROM secrets WHERE hashlock = ?").get(key(hashlock)) as
      | { secret: string }
      | undefined;
    return row?.secret as Hex | undefined;
  }

  // ---------------------------------------------------------------- event following (watchtower)

  /** The last block of a chain whose events were processed for good (below the confirmation depth). */
  cursor(chainId: bigint): number | undefined {
    const row = this.stmt("SELECT block FROM cursors WHERE chain_id = ?").get(chainId.toString()) as
      | { block: number }
      | undefined;
    return row?.block;
  }

  saveCursor(chainId: bigint, block: number): void {
    this.write(
      "INSERT INTO cursors (chain_id, block) VALUES (?, ?) ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block",
      chainId.toString(),
      block,
    );
  }

  /** Records that a guarded channel was force-closed (idempotent). */
  markDisputed(channelId: Hex): void {
    this.write("INSERT OR IGNORE INTO disputes (channel_id) VALUES (?)", key(channelId));
  }

  markResolved(channelId: Hex): void {
    this.write("UPDATE disputes SET resolved = 1 WHERE channel_id = ?", key(channelId));
  }

  /** Force-closed guarded channels not yet settled. */
  openDisputes(): Hex[] {
    const rows = this.stmt("SELECT channel_id FROM disputes WHERE resolved = 0 ORDER BY channel_id").all() as {
      channel_id: string;
    }[];
    return rows.map((r) => r.channel_id as Hex);
  }

  // ---------------------------------------------------------------- swaps, transfers, outbox

  /**
   * The local number of a swap or close session (given in arrival order, so rows keyed by it land together), or
   * undefined if the session is unknown and `create` is false.
   */
  private sessionNumber(sessionId: Hex, create: boolean): number | undefined {
    const k = key(sessionId);
    const cached = this.sessionNumbers.get(k);
    if (cached !== undefined) return cached;
    const row = this.stmt("SELECT n FROM sessions WHERE session_id = ?").get(k) as { n: number } | undefined;
    let n = row?.n;
    if (n === undefined && create) {
      n = Number(this.write("INSERT INTO sessions (session_id) VALUES (?)", k).lastInsertRowid);
    }
    if (n !== undefined) remember(this.sessionNumbers, k, n);
    return n;
  }

  /** Keeps a swap's progress; `active` marks swaps still in progress (indexed: tick and busy checks read it). */
  saveSwap<P>(swapId: Hex, role: "initiator" | "responder", terms: SwapTerms, phase: P, active: boolean): void {
    const k = key(swapId);
    if (this.swapCache.has(k)) {
      // Known row: only the progress changes (the terms are written once).
      const n = this.sessionNumber(swapId, true)!;
      this.write("UPDATE swaps SET phase = ?, updated_at = ?, active = ? WHERE n = ?", encode(phase), Date.now(), active ? 1 : 0, n);
    } else {
      this.transaction(() => {
        const n = this.sessionNumber(swapId, true)!;
        this.write(
          `INSERT INTO swaps (n, role, terms, phase, updated_at, active, source, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (n) DO UPDATE SET phase = excluded.phase, updated_at = excluded.updated_at, active = excluded.active`,
          n,
          role,
          encode(terms),
          encode(phase),
          Date.now(),
          active ? 1 : 0,
          key(terms.source.channelId),
          key(terms.target.channelId),
        );
      });
    }
    remember(this.swapCache, k, { role, terms, phase });
  }

  /** Swaps still in progress, oldest first. */
  activeSwapIds(): Hex[] {
    const rows = this.stmt(
      "SELECT s.session_id FROM swaps w JOIN sessions s ON s.n = w.n WHERE w.active = 1 ORDER BY w.updated_at",
    ).all() as { session_id: string }[];
    return rows.map((r) => r.session_id as Hex);
  }

  /** Whether a swap in progress uses `channelId`. */
  channelBusy(channelId: Hex): boolean {
    const id = key(channelId);
    return this.stmt("SELECT 1 FROM swaps WHERE active = 1 AND (source = ? OR target = ?) LIMIT 1").get(id, id) !== undefined;
  }

  swap<P>(swapId: Hex): { role: "initiator" | "responder"; terms: SwapTerms; phase: P } | undefined {
    const k = key(swapId);
    const cached = this.swapCache.get(k);
    if (cached !== undefined) return cached as { role: "initiator" | "responder"; terms: SwapTerms; phase: P };
    const n = this.sessionNumber(swapId, false);
    if (n === undefined) return undefined;
    const row = this.stmt("SELECT role, terms, phase FROM swaps WHERE n = ?").get(n) as
      | { role: "initiator" | "responder"; terms: string; phase: string }
      | undefined;
    if (row === undefined) return undefined;
    const found = { role: row.role, terms: decode<SwapTerms>(row.terms), phase: decode<P>(row.phase) };
    remember(this.swapCache, k, found);
    return found;
  }

  swapIds(): Hex[] {
    const rows = this.stmt("SELECT s.session_id FROM swaps w JOIN sessions s ON s.n = w.n ORDER BY w.updated_at").all() as {
      session_id: string;
    }[];
    return rows.map((r) => r.session_id as Hex);
  }

  saveTransfer(transfer: TransferRecord): void {
    this.transaction(() =>
      this.write(
        `INSERT INTO transfers (n, channel_id, body) VALUES (?, ?, ?)
         ON CONFLICT (n, channel_id) DO UPDATE SET body = excluded.body`,
        this.sessionNumber(transfer.swapId, true)!,
        key(transfer.channelId),
        encode(transfer),
      ),
    );
  }

  transfers(swapId: Hex): TransferRecord[] {
    const n = this.sessionNumber(swapId, false);
    if (n === undefined) return [];
    const rows = this.stmt("SELECT body FROM transfers WHERE n = ? ORDER BY channel_id").all(n) as { body: string }[];
    return rows.map((r) => decode<TransferRecord>(r.body));
  }

  /**
   * Keeps the message this client sent (or will send) for a step of a session (a swap, or a channel's close), so
   * it can be sent again after a crash.
   */
  saveOutgoing(sessionId: Hex, step: string, envelope: unknown): void {
    this.transaction(() =>
      this.write("INSERT OR REPLACE INTO outbox (n, step, envelope) VALUES (?, ?, ?)", this.sessionNumber(sessionId, true)!, step, encode(envelope)),
    );
  }

  outgoing<E>(sessionId: Hex, step: string): E | undefined {
    const n = this.sessionNumber(sessionId, false);
    if (n === undefined) return undefined;
    const row = this.stmt("SELECT envelope FROM outbox WHERE n = ? AND step = ?").get(n, step) as { envelope: string } | undefined;
    return row === undefined ? undefined : decode<E>(row.envelope);
  }
}

/** The most entries a decoded-row cache keeps; past it, it starts over (the store has every row anyway). */
const CACHE_LIMIT = 10_000;

function remember<V>(cache: Map<string, V>, k: string, value: V): void {
  if (cache.size >= CACHE_LIMIT && !cache.has(k)) cache.clear();
  cache.set(k, value);
}

function key(hex: string): string {
  return hex.toLowerCase();
}
