/**
 * One node per store: the lock a node takes on its store's file at start (`lockStore`) and gives up at stop
 * (`unlockStore`), so that two processes never sign from one store.
 */
import { closeSync, existsSync, linkSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";

import { UsageError } from "./errors.js";

/** A node's lock of its store's file: the lock file, and what this node wrote in it (to remove only its own). */
export type StoreLock = Readonly<{ file: string; token: string }>;

/**
 * Locks the store's file itself, or refuses with a one-line UsageError naming the node that runs on it. The lock is
 * `<real path of the store>.lock`, beside the file every path to it resolves to (a symbolic link, a path through a
 * linked folder or `..`): not in a temporary folder, which two services may each see privately. It holds the pid of the node, the
 * store's real path and a token; one left by a process that is gone (SIGKILL) is taken over. A store file with more
 * than one name (hard links) is refused even when no node runs on it: SQLite keeps its write-ahead log beside the
 * name it was opened by, so two names are two logs over one file. A store not there yet is made (empty: SQLite
 * takes it as a new store) so that it has an inode to lock.
 */
export function lockStore(store: string): StoreLock {
  try {
    if (!existsSync(store)) closeSync(openSync(store, "a", 0o600));
  } catch (error) {
    throw new UsageError(`store: cannot create ${store} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const real = realpathSync(store);
  const { nlink } = statSync(real, { bigint: true });
  const file = `${real}.lock`;
  const token = randomBytes(16).toString("hex");
  // Written whole under another name, then linked into place: the lock is never seen half written.
  const draft = `${file}.${token}`;
  writeFileSync(draft, JSON.stringify({ pid: process.pid, path: real, token }) + "\n", { flag: "wx", mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(draft, file);
        if (nlink > 1n) {
          unlockStore({ file, token });
          throw new UsageError(`store: ${store} has ${nlink} names (hard links to one file); SQLite keeps a log beside each name, so two names are two stores on one file: remove the other links`);
        }
        return { file, token };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const held = readLock(file);
        if (held !== undefined && alive(held.pid)) {
          const other = held.path === real ? "" : ` (the same file as ${held.path})`;
          throw new UsageError(`store: another node (pid ${held.pid}) runs on ${store}${other}; stop it first (one node per store)`);
        }
        rmSync(file, { force: true }); // stale: its process is gone
      }
    }
    throw new UsageError(`store: cannot take the lock ${file} of ${store}`);
  } finally {
    rmSync(draft, { force: true });
  }
}

/** What a lock file says, or undefined if it cannot be read as one. */
function readLock(file: string): { pid: number; path: string; token: string } | undefined {
  try {
    const held = JSON.parse(readFileSync(file, "utf8")) as { pid?: unknown; path?: unknown; token?: unknown };
    if (!Number.isSafeInteger(held.pid) || (held.pid as number) <= 0 || typeof held.path !== "string" || typeof held.token !== "string") return undefined;
    return { pid: held.pid as number, path: held.path, token: held.token };
  } catch {
    return undefined;
  }
}

/** Removes the lock if it is still this node's. */
export function unlockStore(lock: StoreLock): void {
  if (readLock(lock.file)?.token === lock.token) rmSync(lock.file, { force: true });
}

/** Whether a process with id `pid` runs (one of another user counts: it cannot be signalled, but it is there). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
