import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, linkSync, openSync, rmSync, statSync } from "node:fs";
import type { DatabaseSync, SQLInputValue, StatementResultingChanges } from "node:sqlite";

import { decode, encode } from "../core/codec.js";
import { ChannelSdkError, DoubleSignError } from "../core/errors.js";
import type { RevealRule, SwapTerms } from "../core/swap.js";
import type { ChannelState, Hex } from "../core/types.js";
import { remember, RowCache } from "./cache.js";
import { flag, key, seqText, type ChannelOp, type ChannelRecord, type CoSignedState, type TransferRecord } from "./rows.js";
import { postgresDialect, STORE_TABLE_NAMES, type Mirror, type StoreRows } from "./postgres.js";
import { openSchema, requireSchema, SCHEMA_VERSION } from "./schema.js";
import { SQL, Statements } from "./statements.js";
import { fileFault, StoreLostError, Transactions, useWriteAheadLog } from "./transactions.js";

export type { ChannelOp, ChannelRecord, CoSignedState, TransferRecord } from "./rows.js";
export { StoreVersionError } from "./schema.js";
export { StoreLostError } from "./transactions.js";

export type { RevealRule } from "../core/swap.js";

/**
 * node:sqlite, loaded when the first store is opened rather than when the package is imported: Node prints an
 * ExperimentalWarning the moment the module loads, and a program that uses no store (a contract's tests, a digest)
 * should not see it.
 */
let sqlite: typeof import("node:sqlite") | undefined;
function loadSqlite(): typeof import("node:sqlite") {
  return (sqlite ??= process.getBuiltinModule("node:sqlite"));
}

/** The kinds of records the `batched` table holds. */
export type BatchedKind = "updater" | "side" | "terms" | "pair" | "close" | "pending" | "refusal" | "moved";

/** A store opened read-only (another program's, e.g. a client's store a watchtower imports from) is not there. */
export class StoreNotFoundError extends ChannelSdkError {
  constructor(readonly path: string) {
    super(`The store ${path} does not exist (a store opened read-only is never created).`);
  }
}

/**
 * The client's embedded store (SQLite through node:sqlite). Every method is synchronous. Outside a transaction
 * each write is committed (and on disk, see `durability`) when it returns; inside `transaction` or
 * `begin`/`commit`, at the outermost commit. The coordinator runs each protocol step as a savepoint inside one
 * transaction per group of steps and sends the messages those steps produced once `commit` has put the group on
 * disk (group commit).
 *
 * This class composes the parts: the table layout (schema.ts), the SQL (statements.ts), the records and their rows
 * (rows.ts), the decoded-row caches (cache.ts) and the transactions with their durability rules (transactions.ts).
 */
export class Store {
  private readonly db: DatabaseSync;
  private readonly statements: Statements;
  private readonly cache = new RowCache();
  private readonly tx: Transactions;
  /** The file this connection opened (a writable store on disk): a file at its path later must still be this one. */
  private readonly file: Readonly<{ dev: bigint; ino: bigint }> | undefined;
  /** Why the file can no longer be trusted to keep what is written; once set, it stays. */
  private lost: string | undefined;
  /** The channels of a backup copy this store was made from, and when the copy was taken (ms): see `frozenSince`. */
  private readonly frozen = new Map<string, number>();
  /** Set when writes were undone: `frozen` is read again before its next use. */
  private frozenStale = false;

  /**
   * @param path A file path, or ":memory:" for a store that lives as long as the process.
   * @param options `durability`: "power" (default) puts every commit on disk before it counts, so it survives a
   *   power cut; "crash" leaves that to the operating system: a commit survives the client process crashing,
   *   which is what guarantee 6 asks, at a fraction of the cost. Both run SQLite's write-ahead log with
   *   synchronous NORMAL; "power" adds an fdatasync of the log after each outermost commit, which is what
   *   synchronous FULL does inside every commit.
   *   `readOnly`: reads a store another program writes (a client's store a watchtower takes channels from). The
   *   file must exist and have this SDK's table layout; it is never created or changed (writes throw).
   *   `mirror`: a store kept in PostgreSQL (postgres.ts). `path` is then ":memory:": the store starts from the
   *   database's rows and commits each transaction there first, under this process's term.
   */
  constructor(
    readonly path: string,
    options: Readonly<{ durability?: "power" | "crash"; readOnly?: boolean; mirror?: Mirror }> = {},
  ) {
    const readOnly = options.readOnly === true;
    // SQLite's own answer to a missing file is "unable to open database file"; ":memory:" would be a new, empty store.
    if (readOnly && (path === ":memory:" || path === "" || !existsSync(path))) throw new StoreNotFoundError(path);
    this.db = new (loadSqlite().DatabaseSync)(path, { readOnly });
    this.statements = new Statements(this.db);
    const syncs = !readOnly && options.durability !== "crash" && path !== ":memory:" && path !== "";
    this.tx = new Transactions(this.db, path, syncs, () => {
      this.cache.clear();
      this.frozenStale = true; // a thaw may be undone: read again at the next use, once the rollback is done
    });
    // A second connection (a watchtower reading this file) may hold the write lock briefly: wait for it.
    this.db.exec("PRAGMA busy_timeout = 5000;");
    if (readOnly) {
      requireSchema(this.db, path);
      return;
    }
    useWriteAheadLog(this.db, path, syncs);
    openSchema(this.db, path);
    this.tx.syncLog(false);
    if (options.mirror !== undefined) {
      this.fill(options.mirror.rows());
      this.tx.mirror = options.mirror;
    }
    this.loadFrozen();
    if (path !== ":memory:" && path !== "") {
      const { dev, ino } = statSync(path, { bigint: true });
      this.file = { dev, ino };
    }
  }

  /** Closes the store; a transaction left open with no savepoint in it (a finished group) is committed first. */
  close(): void {
    if (this.db.isOpen && this.tx.isIdleGroup()) this.commit();
    this.tx.close();
    this.statements.clear();
    this.cache.clear();
    this.db.close();
  }

  /** Runs one write; outside a transaction it is a transaction of its own (committed on return). */
  private write(sql: string, ...params: SQLInputValue[]): StatementResultingChanges {
    if (this.tx.isOpen()) return this.run(sql, params);
    return this.transaction(() => this.run(sql, params));
  }

  /** Runs one write in the open transaction, and keeps it for the mirror (a new session with the number SQLite gave it). */
  private run(sql: string, params: SQLInputValue[]): StatementResultingChanges {
    const result = this.noting(() => this.statements.get(sql).run(...params));
    this.tx.record(() =>
      sql === SQL.newSession
        ? { sql: "INSERT INTO sessions (n, session_id) VALUES ($1, $2)", params: [Number(result.lastInsertRowid), ...params] }
        : { sql: postgresDialect(sql), params },
    );
    return result;
  }

  /** Every row of a store kept elsewhere (a database's, at start), into this new store's tables, in one transaction. */
  private fill(rows: StoreRows): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      for (const table of STORE_TABLE_NAMES) {
        for (const row of rows[table] ?? []) {
          const columns = Object.keys(row);
          const insert = this.statements.get(`INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`);
          insert.run(...columns.map((c) => row[c] as SQLInputValue));
        }
      }
      this.db.exec("COMMIT");
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
  }

  /** Every row of this store, by table (what a move to PostgreSQL copies). */
  rows(): StoreRows {
    const out: StoreRows = {};
    for (const table of STORE_TABLE_NAMES) out[table] = this.db.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[];
    return out;
  }

  /** Runs `fn`; an error that says the file failed (fileFault) marks the store lost before it is thrown on. */
  private noting<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      this.lost ??= fileFault(error);
      throw error;
    }
  }

  isOpen(): boolean {
    return this.db.isOpen;
  }

  // ---------------------------------------------------------------- the file itself

  /**
   * Why this store can no longer keep what is written to it, or undefined while it can. A file deleted or replaced
   * under a running process still takes writes, into a file no path leads to: they are gone when the process ends.
   * So the file at the store's path must still be the one opened (same device and inode), with its write-ahead log
   * and shared-memory index beside it; and no write may have failed for a reason of the file's (disk full, I/O
   * error, read-only). Once lost, always lost: it says so until the store is closed. `quick` checks the file only
   * (one stat, what every signature pays). A store in memory, or opened read-only, is never lost.
   */
  fileProblem(quick = false): string | undefined {
    if (this.lost !== undefined || this.file === undefined || !this.db.isOpen) return this.lost;
    try {
      const { dev, ino } = statSync(this.path, { bigint: true });
      if (dev !== this.file.dev || ino !== this.file.ino) this.lost = "another file is at its path now (the file this process opened was moved or deleted)";
      else if (!quick) {
        const gone = ["-wal", "-shm"].find((suffix) => !existsSync(`${this.path}${suffix}`));
        if (gone !== undefined) this.lost = `its ${gone === "-wal" ? "write-ahead log" : "shared-memory index"} ${this.path}${gone} was deleted`;
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.lost = code === "ENOENT" ? "its file was deleted" : `its file cannot be read (${code ?? (error as Error).message})`;
    }
    return this.lost;
  }

  /** Throws StoreLostError if the store is lost (`fileProblem`). */
  requireFile(quick = false): void {
    const problem = this.fileProblem(quick);
    if (problem !== undefined) throw new StoreLostError(this.path, problem);
  }

  /**
   * A write that must reach the file (the layout version written again, synced like any commit): a file that no
   * longer takes writes throws, and the store is lost. Inside a transaction it does nothing (that commit will tell).
   */
  probe(): void {
    if (this.tx.isOpen()) return;
    if (this.tx.mirror !== undefined) {
      // Kept in a database: an empty commit there checks that this process still leads and the database answers.
      this.noting(() => this.tx.mirror!.commit([]));
      return;
    }
    if (this.file === undefined) return;
    this.transaction(() => this.noting(() => this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)));
  }

  /**
   * Writes a copy of everything this connection sees to a new file `file` (SQLite's VACUUM INTO): what a lost store
   * still holds through the process's open files, for the operator to put back in place. Not inside a transaction.
   */
  copyTo(file: string): void {
    if (this.tx.isOpen()) throw new ChannelSdkError("the store cannot be copied while a transaction is open");
    this.db.prepare("VACUUM INTO ?").run(file);
  }

  /**
   * Writes a consistent copy of the store, as committed, to the new file `file` (SQLite's online backup, from a
   * read-only connection of its own: the node goes on writing meanwhile) and marks every channel in the copy as
   * frozen. A node started from the copy cannot know whether it signed newer states of those channels after the
   * copy was taken, so it signs none (`frozenSince`): it can only enforce them on chain with what the copy holds.
   * Channels opened after a restore are not frozen. Resolves with the number of channels frozen in the copy.
   */
  async backupTo(file: string): Promise<number> {
    if (this.path === ":memory:" || this.path === "") throw new ChannelSdkError("a store in memory has no file to copy");
    if (existsSync(file)) throw new ChannelSdkError(`${file} exists already: a backup never overwrites a file`);
    // Written under a name of its own, frozen and synced, and only then linked to `file`: a copy without its frozen
    // marks (a backup cut short) must never stand under the name an operator would restore from.
    const partial = `${file}.${randomBytes(6).toString("hex")}.partial`;
    const sqlite = loadSqlite();
    try {
      const source = new sqlite.DatabaseSync(this.path, { readOnly: true });
      try {
        source.exec("PRAGMA busy_timeout = 5000;");
        await sqlite.backup(source, partial, { rate: -1 }); // one step: one snapshot, however the node writes meanwhile
      } finally {
        source.close();
      }
      let frozen: number;
      const copy = new sqlite.DatabaseSync(partial);
      try {
        copy.exec("PRAGMA busy_timeout = 5000;");
        copy.exec("BEGIN IMMEDIATE");
        copy.prepare("INSERT OR IGNORE INTO frozen (channel_id, since) SELECT channel_id, ? FROM channels").run(Date.now());
        frozen = Number((copy.prepare("SELECT COUNT(*) AS n FROM frozen").get() as { n: number | bigint }).n);
        copy.exec("COMMIT");
        copy.exec("PRAGMA journal_mode = DELETE"); // one file: no log beside it to lose or to leave behind
      } finally {
        copy.close();
      }
      const fd = openSync(partial, "r");
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      linkSync(partial, file); // fails if `file` appeared meanwhile (another backup): never overwritten
      return frozen;
    } finally {
      for (const f of [partial, `${partial}-wal`, `${partial}-shm`, `${partial}-journal`]) rmSync(f, { force: true });
    }
  }

  /**
   * When the backup copy this store was restored from was taken (ms since the epoch), if `channelId` was in it:
   * nothing is signed on such a channel (ChannelBook.sign), since the node may have signed newer states of it after
   * the copy. Undefined for a channel this store did not get from a copy.
   */
  frozenSince(channelId: Hex): number | undefined {
    if (this.frozenStale) this.loadFrozen();
    return this.frozen.size === 0 ? undefined : this.frozen.get(key(channelId));
  }

  /**
   * Marks every channel of this store frozen since `since` (ms), as a backup copy's are (`frozenSince`): what a move
   * to PostgreSQL leaves in the file it moved from, so that a node started on that file again signs nothing new on a
   * channel the database's node may have signed newer states of; and what `channels store freeze` marks in a store
   * restored by other means. A channel frozen already keeps its time. One transaction. Returns how many channels it
   * froze now (`added`) and how many are frozen in all (`frozen`).
   */
  freezeAll(since: number): Readonly<{ added: number; frozen: number }> {
    const { changes } = this.write(SQL.freezeAll, since);
    this.loadFrozen();
    return { added: Number(changes), frozen: this.frozen.size };
  }

  /**
   * A frozen channel caught up from the other party (Counterparty, `catchUp`): it signs again, numbered above every
   * state this key may have signed after the copy. Part of the open transaction.
   */
  thaw(channelId: Hex): void {
    this.write(SQL.thaw, key(channelId));
    this.frozen.delete(key(channelId));
  }

  /**
   * Marks this store as moved to `to` (a database, its URL without a password): its channels stay frozen for good,
   * never caught up from a peer, since the node goes on from the database.
   */
  markMovedAway(to: string): void {
    this.saveBatched("moved", "to", { to, at: Date.now() });
  }

  /** Where this store was moved to (`markMovedAway`), if it was. */
  movedAway(): string | undefined {
    return this.batched<{ to: string }>("moved").get("to")?.to;
  }

  /** Reads which channels are frozen, and since when. */
  private loadFrozen(): void {
    this.frozenStale = false;
    this.frozen.clear();
    for (const r of this.statements.get(SQL.frozen).all() as { channel_id: string; since: number }[]) this.frozen.set(r.channel_id, r.since);
  }

  /** How many channels came frozen from a backup copy (see `frozenSince`) and are not closed yet. */
  frozenCount(): number {
    if (this.frozenStale) this.loadFrozen();
    let open = 0;
    for (const id of this.frozen.keys()) if (this.channelOp(id as Hex)?.kind !== "closed") open++;
    return open;
  }

  // ---------------------------------------------------------------- transactions (transactions.ts)

  /** Whether a transaction is open (writes made now land at its commit). */
  inTransaction(): boolean {
    return this.tx.isOpen();
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
    this.noting(() => this.tx.begin());
  }

  /** Told how long each outermost commit took, in seconds (the log's sync included): for a node's metrics. */
  set onCommit(fn: ((seconds: number) => void) | undefined) {
    this.tx.onCommit = fn;
  }

  /** Ends the outermost transaction: its writes are on disk when this returns. */
  commit(): void {
    this.noting(() => this.tx.commit());
  }

  /** Abandons the outermost transaction's writes (an inner rollback leaves that to the outermost). */
  rollback(): void {
    this.tx.rollback();
  }

  /**
   * After an error that may have ended the transaction behind the store's back (SQLite rolls back by itself on
   * some I/O errors): rolls back whatever is still open and forgets every savepoint and cached row.
   */
  abandon(): void {
    this.tx.abandon();
  }

  /**
   * Marks a point inside the open transaction that `rollbackToSavepoint` returns to: one protocol step inside a
   * group of steps. Savepoints nest; pair each with `releaseSavepoint` or `rollbackToSavepoint`.
   */
  savepoint(): void {
    this.tx.savepoint();
  }

  /** Keeps the writes made since the newest savepoint (they land with the transaction's commit). */
  releaseSavepoint(): void {
    this.tx.releaseSavepoint();
  }

  /** Undoes the writes made since the newest savepoint, leaving the rest of the transaction as it was. */
  rollbackToSavepoint(): void {
    this.tx.rollbackToSavepoint();
  }

  // ---------------------------------------------------------------- channels

  saveChannel(record: ChannelRecord): void {
    this.cache.records.set(key(record.ref.channelId), record);
    this.write(SQL.saveChannel, key(record.ref.channelId), encode(record));
  }

  channel(channelId: Hex): ChannelRecord | undefined {
    const k = key(channelId);
    const cached = this.cache.records.get(k);
    if (cached !== undefined) return cached;
    const row = this.statements.get(SQL.channel).get(k) as { record: string } | undefined;
    if (row === undefined) return undefined;
    const record = decode<ChannelRecord>(row.record);
    this.cache.records.set(k, record);
    return record;
  }

  /** Every channel, by channel id (read and decoded once, then from the cache). */
  channels(): ChannelRecord[] {
    const { records } = this.cache;
    if (this.cache.allRecords) return [...records.keys()].sort().map((k) => records.get(k)!);
    const rows = this.statements.get(SQL.channels).all() as { record: string }[];
    const all = rows.map((r) => decode<ChannelRecord>(r.record));
    for (const record of all) records.set(key(record.ref.channelId), record);
    this.cache.allRecords = true;
    return all;
  }

  /** The operation in progress on a channel (or its closed mark), if any. */
  channelOp(channelId: Hex): ChannelOp | undefined {
    return this.cachedBody(this.cache.ops, SQL.channelOp, key(channelId));
  }

  /** Records (or, with undefined, ends) the operation of a channel. */
  saveChannelOp(channelId: Hex, op: ChannelOp | undefined): void {
    this.cache.ops.delete(key(channelId)); // read again after the write (a rollback forgets every cache)
    if (op === undefined) this.write(SQL.endChannelOp, key(channelId));
    else this.write(SQL.saveChannelOp, key(channelId), encode(op));
  }

  /** Channels with an operation in progress (closed ones left out). */
  pendingChannelOps(): { channelId: Hex; op: ChannelOp }[] {
    const rows = this.statements.get(SQL.channelOps).all() as { channel_id: string; body: string }[];
    return rows
      .map((r) => ({ channelId: r.channel_id as Hex, op: decode<ChannelOp>(r.body) }))
      .filter((r) => r.op.kind !== "closed");
  }

  // ---------------------------------------------------------------- states and signatures

  /** Keeps a co-signed state (idempotent: the same state twice is one row). */
  saveCoSigned(cosigned: CoSignedState): void {
    const { state } = cosigned;
    const k = key(state.channelId);
    this.write(SQL.saveCoSigned, k, seqText(state.seq), Number(state.seq), encode(cosigned));
    const current = this.cache.latest.get(k);
    if (current === undefined) this.cache.latest.delete(k);
    else if (current === null || current.state.seq < state.seq) this.cache.latest.set(k, cosigned);
  }

  /** The co-signed state with the highest sequence number, if any. */
  latestCoSigned(channelId: Hex): CoSignedState | undefined {
    return this.cachedBody(this.cache.latest, SQL.latestCoSigned, key(channelId));
  }

  /** The decoded `body` of the row `sql` finds by key `k`, read through `cache` (null remembers there is none). */
  private cachedBody<V>(cache: Map<string, V | null>, sql: string, k: string): V | undefined {
    const cached = cache.get(k);
    if (cached !== undefined) return cached ?? undefined;
    const row = this.statements.get(sql).get(k) as { body: string } | undefined;
    const found = row === undefined ? undefined : decode<V>(row.body);
    remember(cache, k, found ?? null);
    return found;
  }

  coSignedAt(channelId: Hex, seq: bigint): CoSignedState | undefined {
    const row = this.statements.get(SQL.coSignedAt).get(key(channelId), seqText(seq)) as { body: string } | undefined;
    return row === undefined ? undefined : decode<CoSignedState>(row.body);
  }

  /**
   * Records that this client signs `state` (digest `digest`) before the signature leaves the process. Signing
   * the same digest again returns the recorded signature (a resend); a different digest with the same sequence
   * number throws DoubleSignError and records nothing. A lost store (`fileProblem`) signs nothing new: it throws
   * StoreLostError, since the record could vanish and a restart could then sign another state with that number.
   */
  recordOwnSignature(state: ChannelState, digest: Hex, sign: () => Hex): Hex {
    const channelId = key(state.channelId);
    const seq = seqText(state.seq);
    return this.transaction(() => {
      const row = this.statements.get(SQL.ownDigestAt).get(channelId, seq) as { digest: string; signature: string } | undefined;
      if (row !== undefined) {
        if (row.digest !== key(digest)) throw new DoubleSignError(state.channelId, state.seq);
        return row.signature as Hex;
      }
      this.requireFile(true);
      const signature = sign();
      this.write(SQL.saveOwnSignature, channelId, seq, key(digest), signature, encode(state));
      return signature;
    });
  }

  /** A state this client signed with sequence number `seq`, and its signature. */
  ownSignedAt(channelId: Hex, seq: bigint): { state: ChannelState; signature: Hex } | undefined {
    const row = this.statements.get(SQL.ownSignedAt).get(key(channelId), seqText(seq)) as
      | { state: string; signature: string }
      | undefined;
    return row === undefined ? undefined : { state: decode<ChannelState>(row.state), signature: row.signature as Hex };
  }

  /** The highest sequence number this client ever signed on a channel (0 if none). */
  highestOwnSeq(channelId: Hex): bigint {
    const statement = this.statements.get(SQL.highestOwnSeq);
    statement.setReadBigInts(true); // exact above 2^53 too
    const row = statement.get(key(channelId)) as { seq: bigint | null };
    return row.seq === null ? 0n : BigInt(row.seq);
  }

  // ---------------------------------------------------------------- batched updates

  /**
   * Keeps one record of the batched update scheme (a channel's updater data, a swap's side, a close asked for), or
   * of a node kept in a database (its channels agreed and not yet open, "pending"; its refused proposals, "refusal"),
   * by key.
   */
  saveBatched(kind: BatchedKind, k: string, value: unknown): void {
    this.write(SQL.saveBatched, kind, key(k), encode(value));
  }

  /** Removes one record (a node's refusal that fell out of the newest kept). */
  deleteBatched(kind: BatchedKind, k: string): void {
    this.write(SQL.deleteBatched, kind, key(k));
  }

  /** Every record of one kind, by key. */
  batched<T>(kind: BatchedKind): Map<string, T> {
    const rows = this.statements.get(SQL.batched).all(kind) as { key: string; body: string }[];
    return new Map(rows.map((r) => [r.key, decode<T>(r.body)]));
  }

  // ---------------------------------------------------------------- secrets

  /**
   * Keeps a secret with whether it may be revealed. Saved again, its rule only moves forward: "held" becomes "may"
   * or "never", and "may" wins over "never" (a secret revealed or public is no longer ours to keep).
   */
  saveSecret(hashlock: Hex, secret: Hex, reveal: RevealRule): void {
    this.write(SQL.saveSecret, key(hashlock), secret, reveal);
  }

  /** Every known secret, keyed by hashlock, with its rule. */
  secrets(): { hashlock: Hex; secret: Hex; reveal: RevealRule }[] {
    const rows = this.statements.get(SQL.secrets).all() as { hashlock: string; secret: string; reveal: RevealRule }[];
    return rows.map((r) => ({ hashlock: r.hashlock as Hex, secret: r.secret as Hex, reveal: r.reveal }));
  }

  /**
   * The secret of `hashlock` if it may be revealed: what every component that can reveal (the client's messages, the
   * enforcer, the watchtower) reads. A secret held back or never to be revealed is `undefined` here.
   */
  secret(hashlock: Hex): Hex | undefined {
    const row = this.knownSecret(hashlock);
    return row?.reveal === "may" ? row.secret : undefined;
  }

  /** The secret of `hashlock` whatever its rule (the initiator's own, to check or to reveal once the rules let it). */
  knownSecret(hashlock: Hex): { secret: Hex; reveal: RevealRule } | undefined {
    return this.statements.get(SQL.secret).get(key(hashlock)) as { secret: Hex; reveal: RevealRule } | undefined;
  }

  /**
   * A watchtower's copy of a secret, with the rule its client's store gives it (`word`). The client made or learned
   * the secret, so its word decides, either way: "held" becomes "may" once the client revealed it; "held" or "may"
   * becomes "never" once the client undid the swap; a "may" goes back to "held" while the client holds the secret (a
   * "may" the tower got from a store written before reveal rules, or from a step of the client that did not commit).
   * Two things no word changes: "never" (once undone, nothing the client says later makes the secret safe to
   * reveal), and a secret a chain showed revealed (`publicSecret`: public, whatever a client's store says). A secret
   * the tower does not have is kept only if it may be revealed: a tower has no use for one it must not reveal.
   */
  adoptSecret(hashlock: Hex, secret: Hex, word: RevealRule): void {
    const k = key(hashlock);
    this.transaction(() => {
      const row = this.statements.get(SQL.towerSecret).get(k) as { reveal: RevealRule; on_chain: number } | undefined;
      if (row === undefined ? word !== "may" : row.reveal === "never" || row.on_chain === 1 || row.reveal === word) return;
      this.write(SQL.setTowerSecret, k, secret, word, 0);
    });
  }

  /**
   * A watchtower saw `secret` revealed on a chain: public, so it may be revealed from now on and no client's word
   * takes that back (`adoptSecret`). A secret the tower keeps as "never" stays so: the swap was undone, so its newest
   * state owes the participant nothing with it, and the client (which knows the swap) reads public secrets itself.
   * @returns Whether the tower may reveal it now.
   */
  publicSecret(hashlock: Hex, secret: Hex): boolean {
    const k = key(hashlock);
    return this.transaction(() => {
      const row = this.statements.get(SQL.towerSecret).get(k) as { reveal: RevealRule; on_chain: number } | undefined;
      if (row?.reveal === "never") return false;
      if (row?.on_chain !== 1) this.write(SQL.setTowerSecret, k, secret, "may", 1);
      return true;
    });
  }

  /** The hashlocks of the secrets held back ("held"), in order. */
  heldSecrets(): Hex[] {
    return (this.statements.get(SQL.heldSecrets).all() as { hashlock: string }[]).map((r) => r.hashlock as Hex);
  }

  // ---------------------------------------------------------------- event following (watchtower)

  /** The last block of a chain whose events were processed for good (below the confirmation depth). */
  cursor(chainId: bigint): number | undefined {
    const row = this.statements.get(SQL.cursor).get(chainId.toString()) as { block: number } | undefined;
    return row?.block;
  }

  saveCursor(chainId: bigint, block: number): void {
    this.write(SQL.saveCursor, chainId.toString(), block);
  }

  /** Chains held after a reorganisation deeper than their confirmations (ChainHealth), by chain id: what was seen. */
  chainHolds<T>(): Map<bigint, T> {
    const rows = this.statements.get(SQL.chainHolds).all() as { chain_id: string; body: string }[];
    return new Map(rows.map((r) => [BigInt(r.chain_id), decode<T>(r.body)]));
  }

  /** Keeps chain `chainId` held with what was seen (`hold`), or ends its hold (undefined). */
  saveChainHold(chainId: bigint, hold: unknown): void {
    if (hold === undefined) this.write(SQL.endChainHold, chainId.toString());
    else this.write(SQL.saveChainHold, chainId.toString(), encode(hold));
  }

  /** Records a dispute on `channelId`; whether it is new (one known already, open or resolved, is left as it is). */
  markDisputed(channelId: Hex): boolean {
    return Number(this.write(SQL.markDisputed, key(channelId)).changes) > 0;
  }

  markResolved(channelId: Hex): void {
    this.write(SQL.markResolved, key(channelId));
  }

  /** Force-closed guarded channels not yet settled. */
  openDisputes(): Hex[] {
    const rows = this.statements.get(SQL.openDisputes).all() as { channel_id: string }[];
    return rows.map((r) => r.channel_id as Hex);
  }

  // ---------------------------------------------------------------- swaps, transfers

  /**
   * The local number of a swap or close session (given in arrival order, so rows keyed by it land together), or
   * undefined if the session is unknown and `create` is false.
   */
  private sessionNumber(sessionId: Hex, create: boolean): number | undefined {
    const k = key(sessionId);
    const cached = this.cache.sessionNumbers.get(k);
    if (cached !== undefined) return cached;
    const row = this.statements.get(SQL.sessionNumber).get(k) as { n: number } | undefined;
    let n = row?.n;
    if (n === undefined && create) n = Number(this.write(SQL.newSession, k).lastInsertRowid);
    if (n !== undefined) remember(this.cache.sessionNumbers, k, n);
    return n;
  }

  /** Keeps a swap's progress; `active` marks swaps still in progress (indexed: tick and busy checks read it). */
  saveSwap<P>(swapId: Hex, role: "initiator" | "responder", terms: SwapTerms, phase: P, active: boolean): void {
    const k = key(swapId);
    if (this.cache.swaps.has(k)) {
      // Known row: only the progress changes (the terms are written once).
      const n = this.sessionNumber(swapId, true)!;
      this.write(SQL.updateSwapProgress, encode(phase), Date.now(), flag(active), n);
    } else {
      this.transaction(() => {
        const n = this.sessionNumber(swapId, true)!;
        const [source, target] = [key(terms.source.channelId), key(terms.target.channelId)];
        this.write(SQL.saveSwap, n, role, encode(terms), encode(phase), Date.now(), flag(active), source, target);
      });
    }
    remember(this.cache.swaps, k, { role, terms, phase });
  }

  /** Swaps still in progress, oldest first. */
  activeSwapIds(): Hex[] {
    const rows = this.statements.get(SQL.activeSwapIds).all() as { session_id: string }[];
    return rows.map((r) => r.session_id as Hex);
  }

  /** Whether a swap in progress uses `channelId`. */
  channelBusy(channelId: Hex): boolean {
    const id = key(channelId);
    return this.statements.get(SQL.channelBusy).get(id, id) !== undefined;
  }

  swap<P>(swapId: Hex): { role: "initiator" | "responder"; terms: SwapTerms; phase: P } | undefined {
    const k = key(swapId);
    const cached = this.cache.swaps.get(k);
    if (cached !== undefined) return cached as { role: "initiator" | "responder"; terms: SwapTerms; phase: P };
    const n = this.sessionNumber(swapId, false);
    if (n === undefined) return undefined;
    const row = this.statements.get(SQL.swap).get(n) as { role: "initiator" | "responder"; terms: string; phase: string } | undefined;
    if (row === undefined) return undefined;
    const found = { role: row.role, terms: decode<SwapTerms>(row.terms), phase: decode<P>(row.phase) };
    remember(this.cache.swaps, k, found);
    return found;
  }

  swapIds(): Hex[] {
    const rows = this.statements.get(SQL.swapIds).all() as { session_id: string }[];
    return rows.map((r) => r.session_id as Hex);
  }

  saveTransfer(transfer: TransferRecord): void {
    this.transaction(() =>
      this.write(SQL.saveTransfer, this.sessionNumber(transfer.swapId, true)!, key(transfer.channelId), encode(transfer)),
    );
  }

  transfers(swapId: Hex): TransferRecord[] {
    const n = this.sessionNumber(swapId, false);
    if (n === undefined) return [];
    const rows = this.statements.get(SQL.transfers).all(n) as { body: string }[];
    return rows.map((r) => decode<TransferRecord>(r.body));
  }
}
