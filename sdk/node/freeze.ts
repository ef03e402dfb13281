/**
 * `channels store freeze [store]`: marks every channel of a store that was restored by other means than `channels
 * backup` frozen (docs/NODE.md, "Backups" and "PostgreSQL and a standby"): a SQLite file copied with `cp` or from a
 * disk snapshot, a database restored from a dump. A node started from such a copy cannot know whether it signed newer
 * states after the copy was taken; frozen, it signs nothing on those channels (ChannelBook.sign), as on a copy
 * `channels backup` wrote. The store must be there (nothing is created) and no process may run on it.
 */
import { existsSync, statSync } from "node:fs";

import { ChannelSdkError } from "../core/errors.js";
import { isPostgresUrl, NoStoreError, PgDatabase, redactUrl, urlHasPassword } from "../store/postgres.js";
import { Store } from "../store/store.js";
import { UsageError } from "./errors.js";
import { lockStore, unlockStore } from "./store-lock.js";

/** What a freeze did: the store (fit to print), the channels it froze now, those frozen before (which keep their time), and when. */
export type Freeze = Readonly<{ store: string; kind: "sqlite" | "postgres"; froze: number; frozenBefore: number; since: string }>;

/** Freezes every channel of `store` (a SQLite file or a postgres:// URL) in one transaction. */
export function freezeStore(store: string, now: number = Date.now()): Freeze {
  if (store.trim() === "") throw new UsageError("store: empty; name a SQLite file or a postgres:// URL, or leave it out for node.json's store");
  if (isPostgresUrl(store)) return freezeDatabase(store, now);
  // Any other scheme is a URL given by mistake, not a file name: only its scheme is named (the rest may hold a password).
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(store);
  if (scheme !== null) throw new UsageError(`store: a ${scheme[1]}:// URL; a store is a SQLite file or a postgres:// URL`);
  return freezeFile(store, now);
}

function freezeFile(file: string, now: number): Freeze {
  // Never made here: lockStore and SQLite would both make an empty file, and a node would then start on a new store.
  if (!existsSync(file)) throw new UsageError(`store: ${file} does not exist; nothing to freeze (restore the copy there first)`);
  if (statSync(file).isDirectory()) throw new UsageError(`store: ${file} is a folder; name the store file in it (node.json's store, node.sqlite by default)`);
  requireStoreFile(file);
  // Refused while a node runs on the file: it would go on signing from what it holds in memory.
  const lock = lockStore(file);
  try {
    // Opened as the node would (a store of an older layout is migrated first).
    const store = new Store(file);
    try {
      return result(file, "sqlite", store.freezeAll(now), now);
    } finally {
      store.close();
    }
  } finally {
    unlockStore(lock);
  }
}

/** Refuses a file that is not a channel store (an empty file, another program's database) before anything writes to it. */
function requireStoreFile(file: string): void {
  let tables: number;
  try {
    // Loaded here, as the store loads it, on first use (Node warns the moment node:sqlite is loaded).
    const db = new (process.getBuiltinModule("node:sqlite").DatabaseSync)(file, { readOnly: true });
    try {
      tables = Number((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('channels', 'frozen')").get() as { n: number | bigint }).n);
    } finally {
      db.close();
    }
  } catch (error) {
    throw new UsageError(`store: ${file} cannot be read as a store (${(error as Error).message.split("\n")[0]})`);
  }
  // A layout 2 store (0.2.x) has no `frozen` table yet: opening it as the node does adds it.
  if (tables === 0) throw new UsageError(`store: ${file} is not a channel store (it has no channels table); nothing to freeze`);
}

function freezeDatabase(url: string, now: number): Freeze {
  if (!URL.canParse(url)) throw new UsageError("store: not a readable postgres:// URL");
  if (urlHasPassword(url)) throw new UsageError("store: a password in the URL; give it in PGPASSWORD or ~/.pgpass instead");
  const where = redactUrl(url);
  let db: PgDatabase;
  try {
    // Never migrated here into a database no node has run on: that would make an empty store for a node to start on.
    db = PgDatabase.open(url, { applicationName: "channels store freeze", create: false });
  } catch (error) {
    if (error instanceof NoStoreError) throw new UsageError(`${error.message}; nothing to freeze (restore the dump into it first)`);
    throw error;
  }
  try {
    const leader = db.leader();
    if (leader === undefined) throw new UsageError(`store: the database ${where} holds no store: no node has led it; nothing to freeze`);
    // Taking the lead as the database's own node (its address, from its leader row) refuses while a process leads,
    // and raises the term: a process that led before and has not noticed it lost the lead can commit nothing after.
    const term = db.tryLead(leader.address, `channels store freeze (pid ${process.pid})`, undefined);
    if (term === undefined) {
      throw new UsageError(
        `store: a process leads ${where} (${leader.holder}, term ${leader.term}${leader.api === null ? "" : `, API ${leader.api}`}); stop every process of the node first`,
      );
    }
    // The store as the node loads it, its freeze committed to the database under this term, in one transaction.
    const store = new Store(":memory:", { mirror: db.mirror("node", term) });
    try {
      return result(where, "postgres", store.freezeAll(now), now);
    } finally {
      store.close();
    }
  } catch (error) {
    if (error instanceof ChannelSdkError || !(error instanceof Error)) throw error;
    throw new ChannelSdkError(`store: ${where}: ${error.message.split("\n")[0]}`);
  } finally {
    db.close();
  }
}

function result(store: string, kind: Freeze["kind"], r: Readonly<{ added: number; frozen: number }>, now: number): Freeze {
  return { store, kind, froze: r.added, frozenBefore: r.frozen - r.added, since: new Date(now).toISOString() };
}
