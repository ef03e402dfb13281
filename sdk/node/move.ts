/**
 * `channels store move <postgres-url>`: moves a stopped node's SQLite store into PostgreSQL (docs/NODE.md,
 * "PostgreSQL and a standby"): the store, its watchtower's store, the channels agreed and not yet open, and the
 * refusals, in one transaction, into a database that holds no store. The files stay, with the store's channels
 * marked frozen once the database has them: a node started on the file again signs nothing new on them.
 */
import { existsSync, readFileSync } from "node:fs";
import { computeAddress } from "ethers";

import { decode, encode } from "../core/codec.js";
import { ChannelSdkError } from "../core/errors.js";
import type { Hex } from "../core/types.js";
import { isPostgresUrl, PgDatabase, redactUrl, urlHasPassword, type StoreRows } from "../store/postgres.js";
import { Store, StoreLostError } from "../store/store.js";
import { UsageError } from "./errors.js";
import type { NodeConfig } from "./node-config.js";
import { lockStore, unlockStore } from "./store-lock.js";

/** What a move copied. */
export type Moved = Readonly<{ to: string; channels: number; swaps: number; towerChannels: number; pending: number; refusals: number; term: number }>;

/** As many refusals as a node keeps (refusals.ts). */
const MAX_REFUSALS = 1_000;

export function moveStore(config: NodeConfig, key: Hex, url: string): Moved {
  if (isPostgresUrl(config.store)) throw new UsageError(`store: ${redactUrl(config.store)} is a database already; nothing to move`);
  if (!isPostgresUrl(url)) throw new UsageError(`<url>: ${url} is not a postgres:// URL`);
  if (!URL.canParse(url)) throw new UsageError("<url>: not a readable postgres:// URL");
  if (urlHasPassword(url)) throw new UsageError("<url>: a password in the URL; give it in PGPASSWORD or ~/.pgpass instead");
  if (!existsSync(config.store)) throw new UsageError(`store: ${config.store} does not exist`);
  // The node must be stopped: what it wrote after the copy would be lost.
  const lock = lockStore(config.store);
  let store: Store | undefined;
  try {
    // Opened as the node would (a store of an older layout is migrated first), and kept open to freeze it after.
    store = new Store(config.store);
    const rows: { node: StoreRows; tower?: StoreRows } = { node: store.rows() };
    if (existsSync(`${config.store}.tower`)) rows.tower = read(`${config.store}.tower`);
    const pending = readPending(`${config.store}.pending.json`);
    const refusals = readRefusals(`${config.store}.refusals.jsonl`);
    const batched = rows.node.batched ?? [];
    if (pending.length > 0) batched.push({ kind: "pending", key: "all", body: encode(pending) });
    refusals.forEach((r, i) => batched.push({ kind: "refusal", key: String(i).padStart(12, "0"), body: r }));
    rows.node.batched = batched;
    let db: PgDatabase;
    try {
      db = PgDatabase.open(url, { applicationName: "channels store move" });
    } catch (error) {
      // Nothing is lost here: the database did not answer, and the file is as it was.
      if (!(error instanceof ChannelSdkError)) throw error;
      const why = error instanceof StoreLostError ? error.problem : error.message.replace(/^store: \S+: /, "");
      // Told to make the database only when that is what is wrong (not when the server does not answer).
      const hint = /database ".*" does not exist/.test(why) ? " (make it first: createdb, or CREATE DATABASE)" : "";
      throw new ChannelSdkError(`<url>: cannot use the database ${redactUrl(url)}: ${why}${hint}`);
    }
    try {
      // Taking the lead records the node's address and refuses while a node runs on the database.
      const term = db.tryLead(computeAddress(key), `channels store move (pid ${process.pid})`, undefined);
      if (term === undefined) throw new UsageError(`<url>: a node runs on ${redactUrl(url)}; stop it first`);
      // Leading, this process is the only writer: what it finds empty stays so until its fill (which checks again).
      if (!db.isEmpty("node") || !db.isEmpty("tower")) throw new UsageError(`<url>: ${redactUrl(url)} holds a store already; move into an empty database`);
      db.fill(rows);
      // The database holds the node now. The file's channels are frozen (what the database got was read before): a
      // node started on the file again (an old node.json) would sign states the database's node may have signed
      // others at; frozen, it only resends what it signed and enforces on chain, as a restored copy does, and never
      // catches up from a peer (the database's node goes on).
      const file = store;
      file.transaction(() => {
        file.freezeAll(Date.now());
        file.markMovedAway(redactUrl(url));
      });
      return {
        to: redactUrl(url),
        channels: rows.node.channels?.length ?? 0,
        swaps: rows.node.swaps?.length ?? 0,
        towerChannels: rows.tower?.channels?.length ?? 0,
        pending: pending.length,
        refusals: refusals.length,
        term,
      };
    } finally {
      db.close();
    }
  } finally {
    store?.close();
    unlockStore(lock);
  }
}

/** Every row of a store file (opened as the node would: a store of an older layout is migrated first). */
function read(file: string): StoreRows {
  const store = new Store(file);
  try {
    return store.rows();
  } finally {
    store.close();
  }
}

function readPending(file: string): unknown[] {
  if (!existsSync(file)) return [];
  try {
    return decode<unknown[]>(readFileSync(file, "utf8"));
  } catch (error) {
    throw new UsageError(`${file}: not readable as the node's channel agreements (${(error as Error).message.split("\n")[0]}); fix or remove it first`);
  }
}

/** The refusals file's lines, as the node keeps them (a torn line skipped), the newest MAX_REFUSALS. */
function readRefusals(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => {
      try {
        return l !== "" && typeof JSON.parse(l) === "object";
      } catch {
        return false;
      }
    })
    .slice(-MAX_REFUSALS);
}
