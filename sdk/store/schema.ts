/** The store's table layout: its DDL, its version (SQLite's user_version), and the check that a file has it. */
import type { DatabaseSync } from "node:sqlite";

import { ChannelSdkError } from "../core/errors.js";

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

/** A store of 0.2.x (layout 2) with work of the retired step protocol under way: not taken over. */
export class StoreMigrationError extends ChannelSdkError {
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(`The store ${path} was written by 0.2.x and has ${what}: finish it with 0.2.x (or let it settle), then start this version on the store.`);
  }
}

/**
 * Version 3. Rows that protocol steps write are keyed so that a step's inserts land next to each other: per channel
 * (states, signatures) or per session number (messages, transfers), a small integer given in arrival order. Only
 * one index entry per swap goes to a random place (its id), so a group commit writes few pages. The `batched` table
 * holds the update scheme's records (each channel's updater data, each swap's side, the closes this party asked
 * for); `secrets` carries whether each may be revealed (`RevealRule` in store.ts) and whether a watchtower saw it revealed on a
 * chain (`on_chain`); `chain_holds` the chains a node saw reorganise deeper than its confirmations, held until its
 * operator releases them, and `frozen` the channels of a backup copy (`Store.backupTo`), on which a node started from
 * the copy signs nothing (both added to version 3 stores as they are opened). A version 2 store (0.2.x) is
 * migrated on open (`migrateFrom2`) when none of the retired step protocol's work is under way in it.
 */
export const SCHEMA_VERSION = 3;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS channels (channel_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cosigned (channel_id TEXT NOT NULL, seq TEXT NOT NULL, seq_num INTEGER NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE TABLE IF NOT EXISTS own_signatures (channel_id TEXT NOT NULL, seq TEXT NOT NULL, digest TEXT NOT NULL,
  signature TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE TABLE IF NOT EXISTS secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL, reveal TEXT NOT NULL,
  on_chain INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (n INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS swaps (n INTEGER PRIMARY KEY, role TEXT NOT NULL, terms TEXT NOT NULL,
  phase TEXT NOT NULL, updated_at INTEGER NOT NULL, active INTEGER NOT NULL, source TEXT NOT NULL,
  target TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS swaps_active ON swaps (source, target) WHERE active = 1;
CREATE TABLE IF NOT EXISTS transfers (n INTEGER NOT NULL, channel_id TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (n, channel_id));
CREATE TABLE IF NOT EXISTS cursors (chain_id TEXT PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS disputes (channel_id TEXT PRIMARY KEY, resolved INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS channel_ops (channel_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batched (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS chain_holds (chain_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frozen (channel_id TEXT PRIMARY KEY, since INTEGER NOT NULL);
`;

/**
 * Creates the tables of a new store; refuses a store made by another schema version rather than misread it. On
 * refusal the connection is closed.
 */
export function openSchema(db: DatabaseSync, path: string): void {
  const version = userVersion(db);
  if (version === SCHEMA_VERSION || version === 2 || (version === 0 && tableCount(db) === 0)) {
    db.exec("BEGIN IMMEDIATE");
    try {
      if (version === 2) migrateFrom2(db, path);
      db.exec(SCHEMA);
      addRevealRules(db);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      db.close();
      throw error;
    }
    return;
  }
  db.close();
  throw new StoreVersionError(path, version === 0 ? 1 : version, SCHEMA_VERSION);
}

/**
 * Reveal rules for a store written before them (0.2.x, no `reveal` column), or before a watchtower kept which secrets a
 * chain showed (no `on_chain` column: the version whose migration made every secret of a tower's store revealable).
 * A secret gets the rule that what the store holds proves, and "held" when nothing does:
 * - a batched swap's side: its own rule (`revealRule`): "may" for a responder's and for an initiator's once revealed,
 *   "never" for one its initiator undid before revealing, else "held";
 * - a swap of the one-at-a-time protocol: "may" for a responder (it learned the secret from a reveal) and for an
 *   initiator past its reveal (both locks co-signed: `revealed`, `settlingOnChain`, or done but not aborted), else
 *   "held";
 * - anything else "held". That is every secret of a watchtower's store (it has no swaps): before the rules a tower
 *   was given every secret of its client, the initiator's unrevealed and undone ones among them, as well as those it
 *   read from chains, and nothing tells them apart. The tower takes each one's rule from its client's store at the
 *   next import, and carries a held one only once a chain shows it revealed (Watchtower).
 * A store that already had rules keeps its "held" and "never"; only its "may" are checked again. In the caller's
 * transaction.
 */
function addRevealRules(db: DatabaseSync): void {
  const columns = new Set((db.prepare("PRAGMA table_info(secrets)").all() as { name: string }[]).map((c) => c.name));
  const before = columns.has("reveal");
  if (before && columns.has("on_chain")) return;
  // In the caller's transaction (openSchema's).
  if (!before) db.exec("ALTER TABLE secrets ADD COLUMN reveal TEXT NOT NULL DEFAULT 'held'");
  if (!columns.has("on_chain")) db.exec("ALTER TABLE secrets ADD COLUMN on_chain INTEGER NOT NULL DEFAULT 0");
  const proven = provenRules(db);
  const set = db.prepare("UPDATE secrets SET reveal = ? WHERE hashlock = ?");
  const rows = db.prepare(before ? "SELECT hashlock FROM secrets WHERE reveal = 'may'" : "SELECT hashlock FROM secrets").all() as { hashlock: string }[];
  for (const { hashlock } of rows) set.run(proven.get(hashlock) ?? "held", hashlock);
}

/** The phase kinds of the retired step protocol, as a 0.2.x store holds them in a swap's row. */
const STEP_PHASES = new Set(["accepted", "sourceLockSent", "targetLockSent", "locked", "revealed", "resolveSent", "settlingOnChain"]);

/**
 * Takes over a store of 0.2.x, in the caller's transaction: a swap of a batched pair goes on under its new phase name
 * (its stage); a step-protocol proposal nobody answered (nothing locked) is given up; each channel joins the update
 * scheme from its newest co-signed state, above every number its key signed (the engine reads both). Refused with
 * StoreMigrationError while a step-protocol swap has locks under way or a step-protocol close or deposit update is
 * half done: only 0.2.x can finish those.
 */
function migrateFrom2(db: DatabaseSync, path: string): void {
  const batched = new Set(
    (db.prepare("SELECT body FROM batched WHERE kind = 'side'").all() as { body: string }[]).map((r) => (JSON.parse(r.body) as { terms: { swapId: string } }).terms.swapId.toLowerCase()),
  );
  let stepSwaps = 0;
  const swaps = db.prepare("SELECT n, terms, phase FROM swaps WHERE active = 1").all() as { n: number; terms: string; phase: string }[];
  const update = db.prepare("UPDATE swaps SET phase = ?, active = ? WHERE n = ?");
  for (const row of swaps) {
    const progress = JSON.parse(row.phase) as { phase: { kind: string; stage?: string } };
    const { swapId } = JSON.parse(row.terms) as { swapId: string };
    const kind = progress.phase.kind;
    if (kind === "batched") {
      update.run(JSON.stringify({ ...progress, phase: { kind: progress.phase.stage } }), 1, row.n);
    } else if (kind === "proposed" && !batched.has(swapId.toLowerCase())) {
      update.run(JSON.stringify({ ...progress, phase: { kind: "done", outcome: "aborted", reason: "a 0.2.x proposal given up at the upgrade" } }), 0, row.n);
    } else if (STEP_PHASES.has(kind) && !batched.has(swapId.toLowerCase())) {
      stepSwaps++;
    }
  }
  if (stepSwaps > 0) throw new StoreMigrationError(path, `${stepSwaps} swap${stepSwaps === 1 ? "" : "s"} of the step protocol in progress`);
  const ops = db.prepare("SELECT channel_id, body FROM channel_ops").all() as { channel_id: string; body: string }[];
  for (const op of ops) {
    const { kind, role } = JSON.parse(op.body) as { kind: string; role?: string };
    if (kind === "close") throw new StoreMigrationError(path, `a cooperative close of channel ${op.channel_id} under way`);
    // Participant 1 signed the count and waits for its co-signature: the other may hold that state co-signed, above
    // the head this store would start from. Only 0.2.x can finish it.
    if (kind === "deposits" && role === "responder") throw new StoreMigrationError(path, `a count of deposits of channel ${op.channel_id} signed and not yet acknowledged`);
    // A deposit update half done: the channel's numbers above it are skipped (the engine starts above every number
    // this key signed), and the deposit is counted again by the update scheme.
    if (kind === "deposits") db.prepare("DELETE FROM channel_ops WHERE channel_id = ?").run(op.channel_id);
  }
  db.exec("DELETE FROM batched WHERE kind = 'pair'"); // every channel runs the scheme now: no pairs to name
  db.exec("DROP TABLE IF EXISTS outbox"); // the step protocol's messages kept for resending
}

/** The rule each swap the store holds proves for its secret, by hashlock (lower case, as the store keys it). */
function provenRules(db: DatabaseSync): Map<string, "may" | "held" | "never"> {
  const rules = new Map<string, "may" | "held" | "never">();
  const past = new Set(["revealed", "settlingOnChain"]);
  // A row that does not read as expected proves nothing: its secret stays held.
  for (const row of db.prepare("SELECT role, terms, phase FROM swaps").all() as { role: string; terms: string; phase: string }[]) {
    const hashlock = (JSON.parse(row.terms) as { hashlock?: unknown })?.hashlock;
    const phase = (JSON.parse(row.phase) as { phase?: { kind?: unknown; outcome?: unknown } })?.phase;
    if (typeof hashlock !== "string") continue;
    const revealed = past.has(String(phase?.kind)) || (phase?.kind === "done" && phase.outcome !== "aborted");
    rules.set(hashlock.toLowerCase(), row.role === "responder" || revealed ? "may" : "held");
  }
  // A batched swap also has a row in `swaps` (phase `batched`): its side says more, and wins.
  for (const row of db.prepare("SELECT body FROM batched WHERE kind = 'side'").all() as { body: string }[]) {
    const side = JSON.parse(row.body) as { role?: unknown; revealed?: unknown; cancelled?: unknown; terms?: { hashlock?: unknown } };
    const hashlock = side?.terms?.hashlock;
    if (typeof hashlock !== "string") continue;
    const rule = side.role === "responder" || side.revealed === true ? "may" : side.cancelled === true ? "never" : "held";
    rules.set(hashlock.toLowerCase(), rule);
  }
  return rules;
}

/** For a read-only store: the tables must already be there, in this SDK's layout (else the connection is closed). */
export function requireSchema(db: DatabaseSync, path: string): void {
  const version = userVersion(db);
  if (version === SCHEMA_VERSION) return;
  if (version === 2) {
    db.close();
    // Read as it is, every secret would look revealable: the initiator's of an undone swap among them.
    throw new ChannelSdkError(
      `The store ${path} was written by 0.2.x and predates the reveal rules of secrets; start its client or node once with this version (it migrates the store), then read it.`,
    );
  }
  const tables = tableCount(db);
  db.close();
  if (version === 0 && tables === 0) throw new ChannelSdkError(`${path} is not a channel store: it has no tables.`);
  throw new StoreVersionError(path, version === 0 ? 1 : version, SCHEMA_VERSION);
}

/** The layout version the file records: 0 for a new file, and for a version 1 store (which did not record it). */
function userVersion(db: DatabaseSync): number {
  return (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
}

function tableCount(db: DatabaseSync): number {
  return (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
}
