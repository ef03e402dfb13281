/**
 * When the store's writes count: nested transactions counted by depth, savepoints for protocol steps, and the
 * durability rules (write-ahead log, and its sync after each outermost commit under durability "power").
 */
import { closeSync, fdatasyncSync, fstatSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { DatabaseSync } from "node:sqlite";

import { ChannelSdkError } from "../core/errors.js";
import type { Mirror, PgWrite } from "./postgres.js";

/**
 * The store's file is gone, replaced, or no longer takes writes (deleted under the running process, disk full, a
 * file system gone read-only, an I/O error). What is written from then on may never reach the disk, so nothing
 * more is signed from the store: a signature it cannot keep could be contradicted after a restart.
 */
export class StoreLostError extends ChannelSdkError {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`the store ${path} is lost: ${problem}`);
  }
}

/** SQLite's primary result codes that mean the file itself failed (READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB). */
const FILE_FAULTS = new Set([8, 10, 11, 13, 14, 26]);

/**
 * Why a failed store operation means the file failed (not a constraint or a busy lock), or undefined: an error of
 * SQLite in FILE_FAULTS, a failed sync of the log, or a StoreLostError.
 */
export function fileFault(error: unknown): string | undefined {
  if (error instanceof StoreLostError) return error.problem;
  const e = error as { code?: unknown; errcode?: unknown; errstr?: unknown; syscall?: unknown; message?: unknown };
  if (e?.code === "ERR_SQLITE_ERROR" && typeof e.errcode === "number" && FILE_FAULTS.has(e.errcode & 0xff)) {
    return `a write failed (${String(e.errstr ?? e.message)})`;
  }
  if (typeof e?.syscall === "string") return `a write failed (${String(e.message).split("\n")[0]})`; // fdatasync of the log
  return undefined;
}

/**
 * Sets up a writable connection: SQLite's write-ahead log with synchronous NORMAL. A store that must sync its
 * commits (`syncs`) refuses to run without the log (the connection is closed), since the log is what it syncs.
 */
export function useWriteAheadLog(db: DatabaseSync, path: string, syncs: boolean): void {
  const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string }).journal_mode;
  if (syncs && mode !== "wal") {
    db.close();
    throw new ChannelSdkError(`the store ${path} cannot use a write-ahead log (journal mode ${mode})`);
  }
  // A larger log between checkpoints: pages rewritten by many commits are copied into the database once. The
  // undo copies a savepoint (one protocol step) keeps of the pages it changes live in memory, not in a temporary
  // file: they only serve a rollback inside the open transaction, never crash recovery (the log does that).
  db.exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 8192; PRAGMA temp_store = MEMORY;");
}

/**
 * The transaction state of one connection. `depth` counts the open `begin`s and savepoints; only the outermost
 * `commit` ends the SQLite transaction, and under durability "power" it returns once the log is on disk.
 */
export class Transactions {
  private depth = 0;
  private savepoints = 0;
  /** The write-ahead log, open for syncing it (reopened if SQLite replaced the file). */
  private wal: { fd: number; ino: number } | undefined;
  private readonly walPath: string;
  private readonly dbPath: string;

  /**
   * @param syncs Whether a commit must reach the disk before it counts (durability "power" on a file).
   * @param forgetCached Drops every cached row: called whenever writes are undone.
   */
  /** Told how long each outermost commit took, in seconds (the log's sync included): for a node's metrics. */
  onCommit: ((seconds: number) => void) | undefined;
  /**
   * Where each outermost commit goes first (a PostgreSQL database under this process's term, postgres.ts): the
   * writes of the open transaction are kept in `writes`, cut back with the savepoints, and committed there before
   * SQLite commits. A mirror that refuses (another process leads) or cannot answer leaves the transaction open for
   * the caller's rollback, as a failed COMMIT does.
   */
  mirror: Mirror | undefined;
  private writes: PgWrite[] = [];
  /** How many writes there were when each open savepoint was made. */
  private marks: number[] = [];

  constructor(
    private readonly db: DatabaseSync,
    path: string,
    private readonly syncs: boolean,
    private readonly forgetCached: () => void,
  ) {
    this.dbPath = path;
    this.walPath = `${resolve(path)}-wal`;
  }

  /** Whether a transaction is open (writes made now land at its commit). */
  isOpen(): boolean {
    return this.depth > 0;
  }

  /** Whether the open transaction is a finished group: begun once, with no savepoint (no step) in it. */
  isIdleGroup(): boolean {
    return this.depth === 1 && this.savepoints === 0;
  }

  /** BEGIN IMMEDIATE at depth 0 (the write lock at once); the depth counts a begin only once BEGIN went through. */
  begin(): void {
    if (this.depth === 0) {
      this.db.exec("BEGIN IMMEDIATE");
      this.writes = [];
      this.marks = [];
    }
    this.depth++;
  }

  /** Keeps a write of the open transaction for the mirror, if any (in PostgreSQL's dialect). */
  record(write: () => PgWrite): void {
    if (this.mirror !== undefined) this.writes.push(write());
  }

  /**
   * An inner commit only counts down. The outermost runs COMMIT, and if that throws the transaction stays open at
   * depth 1 for the caller's rollback; once it went through, the log is synced before this returns.
   */
  commit(): void {
    if (this.depth <= 0) throw new ChannelSdkError("commit without an open transaction");
    if (this.depth > 1) {
      this.depth--;
      return;
    }
    const start = performance.now();
    const mirrored = this.mirror !== undefined && this.writes.length > 0;
    if (mirrored) this.mirror!.commit(this.writes); // throws with the transaction still open: the caller rolls back
    try {
      this.db.exec("COMMIT"); // throws with the transaction still open (depth 1): the caller rolls back
    } catch (error) {
      // The database has what this copy could not keep: only a start from the database's rows can go on.
      if (mirrored) throw new StoreLostError(this.mirror!.where, `the local copy refused a commit the database took (${(error as Error).message})`);
      throw error;
    }
    this.writes = [];
    this.depth = 0;
    this.syncLog();
    this.onCommit?.((performance.now() - start) / 1000);
  }

  /**
   * Counts down; at depth 0 runs ROLLBACK if SQLite still has the transaction open, and forgets every cached row.
   * At depth 0 already (the commit went through, what failed came after it) it does nothing.
   */
  rollback(): void {
    if (this.depth === 0) return; // the commit went through and what failed came after it
    if (--this.depth === 0) {
      if (this.db.isOpen && this.db.isTransaction) this.db.exec("ROLLBACK");
      this.writes = [];
      this.marks = [];
      this.forgetCached();
    }
  }

  /** Rolls back whatever SQLite still has open and starts over at depth 0, whatever the counts said. */
  abandon(): void {
    if (this.db.isOpen && this.db.isTransaction) this.db.exec("ROLLBACK");
    this.depth = 0;
    this.savepoints = 0;
    this.writes = [];
    this.marks = [];
    this.forgetCached();
  }

  /** SAVEPOINT inside the open transaction; it counts as one more level of depth, and as a savepoint. */
  savepoint(): void {
    if (this.depth === 0) throw new ChannelSdkError("a savepoint needs an open transaction");
    this.db.exec("SAVEPOINT step");
    this.marks.push(this.writes.length);
    this.depth++;
    this.savepoints++;
  }

  /** RELEASE of the newest savepoint. */
  releaseSavepoint(): void {
    this.db.exec("RELEASE step");
    this.marks.pop();
    this.depth--;
    this.savepoints--;
  }

  /** Forgets the cached rows first, then ROLLBACK TO and RELEASE of the newest savepoint. */
  rollbackToSavepoint(): void {
    this.forgetCached();
    this.db.exec("ROLLBACK TO step; RELEASE step"); // throws if SQLite already ended the transaction: see `abandon`
    this.writes.length = this.marks.pop() ?? 0;
    this.depth--;
    this.savepoints--;
  }

  /** Puts the log on disk (durability "power"); `afterWrite` false: a store just opened may have no log yet. */
  syncLog(afterWrite = true): void {
    const fd = this.logFd(afterWrite);
    if (fd !== undefined) fdatasyncSync(fd);
  }

  /** Closes the log file and forgets the transaction state (the connection is being closed). */
  close(): void {
    if (this.wal !== undefined) closeSync(this.wal.fd);
    this.wal = undefined;
    this.depth = 0;
    this.savepoints = 0;
  }

  /**
   * The log's file descriptor, or undefined when there is nothing to sync (durability "crash"). After a write the
   * log must exist: a missing one means the commit is somewhere this store does not sync, which is an error.
   */
  private logFd(afterWrite: boolean): number | undefined {
    if (!this.syncs) return undefined;
    const path = this.walPath;
    let ino: number;
    try {
      ino = statSync(path).ino;
    } catch (error) {
      if (!afterWrite) return undefined; // opened, nothing written yet
      throw new StoreLostError(this.dbPath, `its write-ahead log ${path} is gone (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
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
}
