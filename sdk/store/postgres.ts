/**
 * A store kept in PostgreSQL, with one active process per database (docs/NODE.md, "PostgreSQL and a standby").
 *
 * The store itself stays what it is (store.ts: SQLite, synchronous, its statements named): a process that leads
 * loads the database's rows into a SQLite of its own in memory, and every outermost commit of that store is first
 * committed to PostgreSQL, as one transaction that begins by checking this process's term (`Mirror.commit`). So the
 * durability rule is the same (a step is in the database before its message leaves), and a process that lost the
 * lead and has not noticed yet can commit nothing: the new leader raised the term before it read the rows.
 *
 * Leading is a PostgreSQL advisory lock held on a session of its own, plus the term (a fencing number) that the
 * process taking the lock raises. The database calls run on a worker thread; the store's thread waits for each
 * answer (Atomics.wait), as it waits for its file's sync today, for at most `callTimeoutMs`.
 */
import { createRequire } from "node:module";
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";

import { ChannelSdkError } from "../core/errors.js";
import { StoreLostError } from "./transactions.js";

/** The advisory lock a leading process holds (one database holds one node's store). */
const LEADER_LOCK = 7_355_608_201;
/** Held by a process running the migrations, so that two processes starting at once run them once. */
const MIGRATION_LOCK = 7_355_608_202;

/** The PostgreSQL schemas: the node's store, its watchtower's store, and the term and migrations. */
export type PgStoreSchema = "node" | "tower";
const META = "channels_meta";

/** Whether a configured `store` names a PostgreSQL database rather than a file. */
export function isPostgresUrl(store: string): boolean {
  return /^postgres(ql)?:\/\//i.test(store);
}

/**
 * Whether a database URL carries a password: in its user part, or in its query (`?password=`, `?sslpassword=`), which
 * the driver reads too (pg-connection-string takes every query parameter as a setting). Unreadable counts as one.
 */
export function urlHasPassword(url: string): boolean {
  try {
    const u = new URL(url);
    return u.password !== "" || [...u.searchParams.keys()].some((k) => /^(ssl)?password$/i.test(k));
  } catch {
    return true;
  }
}

/** A database URL fit to print: no password, no query (which may hold one). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username === "" ? "" : `${decodeURIComponent(u.username)}@`}${u.host}${u.pathname}`;
  } catch {
    return "postgres://(unreadable URL)";
  }
}

/** The tables of one store schema, in layout 3 of store/schema.ts (their columns as PostgreSQL types). */
const STORE_TABLES = `
CREATE TABLE channels (channel_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE cosigned (channel_id TEXT NOT NULL, seq TEXT NOT NULL, seq_num BIGINT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (channel_id, seq));
CREATE TABLE own_signatures (channel_id TEXT NOT NULL, seq TEXT NOT NULL, digest TEXT NOT NULL, signature TEXT NOT NULL,
  state TEXT NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE TABLE secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL, reveal TEXT NOT NULL, on_chain INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sessions (n BIGINT PRIMARY KEY, session_id TEXT NOT NULL UNIQUE);
CREATE TABLE swaps (n BIGINT PRIMARY KEY, role TEXT NOT NULL, terms TEXT NOT NULL, phase TEXT NOT NULL,
  updated_at BIGINT NOT NULL, active INTEGER NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL);
CREATE TABLE transfers (n BIGINT NOT NULL, channel_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (n, channel_id));
CREATE TABLE cursors (chain_id TEXT PRIMARY KEY, block BIGINT NOT NULL);
CREATE TABLE disputes (channel_id TEXT PRIMARY KEY, resolved INTEGER NOT NULL DEFAULT 0);
CREATE TABLE channel_ops (channel_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE batched (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE chain_holds (chain_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE frozen (channel_id TEXT PRIMARY KEY, since BIGINT NOT NULL);
`;

/** Every table of a store schema, in the order a load inserts them. */
export const STORE_TABLE_NAMES = [
  "channels", "cosigned", "own_signatures", "secrets", "sessions", "swaps", "transfers", "cursors", "disputes", "channel_ops", "batched", "chain_holds", "frozen",
] as const;

/** The database's migrations, by version: each runs once, in order, in one transaction with its record. */
const MIGRATIONS: readonly string[] = [
  // 1: the term, and the two stores' tables (layout 3).
  `CREATE TABLE ${META}.leader (id INTEGER PRIMARY KEY CHECK (id = 1), address TEXT NOT NULL, term BIGINT NOT NULL,
     holder TEXT NOT NULL, api TEXT, since TIMESTAMPTZ NOT NULL);
   CREATE SCHEMA node; SET LOCAL search_path TO node; ${STORE_TABLES}
   CREATE SCHEMA tower; SET LOCAL search_path TO tower; ${STORE_TABLES}`,
  // 2: the term's check every commit begins with (its row shared until the commit: a new leader's raise waits).
  `CREATE FUNCTION ${META}.require_term(t BIGINT) RETURNS void LANGUAGE plpgsql AS $$
   DECLARE current BIGINT;
   BEGIN
     SELECT term INTO current FROM ${META}.leader WHERE id = 1 FOR SHARE;
     IF current IS DISTINCT FROM t THEN
       RAISE EXCEPTION 'term % is over', t USING ERRCODE = 'CC001', DETAIL = COALESCE(current, 0)::text;
     END IF;
   END $$`,
];

/** This process no longer leads: another raised the term (it took the lock after this one lost it). */
export class DeposedError extends StoreLostError {
  constructor(
    url: string,
    readonly term: number,
    readonly current: number,
  ) {
    super(redactUrl(url), `this process's term ${term} is over (the database is at term ${current}: another process leads)`);
  }
}

/** The database holds another node's store (another address leads it). */
export class ForeignDatabaseError extends ChannelSdkError {
  constructor(url: string, readonly owner: string, readonly address: string) {
    super(`store: the database ${redactUrl(url)} holds the store of node ${owner}, not of ${address}: give each node a database of its own`);
  }
}

/**
 * The database holds no store to open (PgDatabase.open with `create: false`): it does not exist, or no node has
 * run on it (no `channels_meta` schema). Nothing was created.
 */
export class NoStoreError extends ChannelSdkError {
  constructor(url: string, readonly why: string) {
    super(`store: the database ${redactUrl(url)} ${why}`);
  }
}

/** Who leads a database, as its row says. */
export type Leader = Readonly<{ address: string; term: number; holder: string; api: string | null; since: string }>;

/** One write as the database runs it: a statement of statements.ts in PostgreSQL's dialect, and its values. */
export type PgWrite = Readonly<{ sql: string; params: readonly unknown[] }>;

const dialects = new Map<string, string>();

/**
 * A write statement of statements.ts in PostgreSQL's dialect: numbered placeholders, and SQLite's `INSERT OR
 * IGNORE` as `ON CONFLICT DO NOTHING` (the other statements are written in the dialect both share).
 */
export function postgresDialect(sql: string): string {
  let pg = dialects.get(sql);
  if (pg === undefined) {
    let n = 0;
    pg = sql.replace(/\?/g, () => `$${++n}`);
    if (/^INSERT OR IGNORE INTO/.test(pg)) pg = `${pg.replace(/^INSERT OR IGNORE INTO/, "INSERT INTO")} ON CONFLICT DO NOTHING`;
    dialects.set(sql, pg);
  }
  return pg;
}

/** The rows of every table of one store schema, by table. */
export type StoreRows = Record<string, Record<string, unknown>[]>;

/**
 * What a store mirrors its commits into (store.ts): PostgreSQL, under a term. `commit` throws a StoreLostError
 * (a DeposedError when another process leads) and then nothing of it was committed, or nothing can be told.
 */
export interface Mirror {
  /** Where the rows are, fit to print. */
  readonly where: string;
  /** Commits these writes in one transaction, if this process still leads. */
  commit(writes: readonly PgWrite[]): void;
  /** The rows to start from. */
  rows(): StoreRows;
}

/** A request to the worker, and what it answers. */
type Request = { id: number; op: string; args: unknown };
type Answer = { id: number; ok?: unknown; error?: { message: string; code?: string; deposed?: { current: number } } };

/** How long the store's thread waits for one database call before the database counts as unreachable. */
const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/**
 * How long a read of a whole store (a start, a takeover) or a move's write of one may take: it grows with the store's
 * history (about 7 µs a row of 1 KB on loopback), and a takeover bounded by a commit's timeout would fail for ever
 * once a node had a long one. Nothing is signed while it runs, so waiting longer risks nothing but time.
 */
const LOAD_TIMEOUT_MS = 600_000;
/**
 * How long connecting, migrating and taking the lead may take: none is a commit a step waits on, and on a busy
 * machine (or across a network) each may take longer than a commit's bound. The driver's own connection timeout
 * (5 s a session) and the migration's lock bound them first.
 */
const START_TIMEOUT_MS = 30_000;

/**
 * A PostgreSQL database, called synchronously (from the store's thread) through a worker that holds two sessions:
 * one for the leader's advisory lock, one for everything else. `onLockLost` is told when the lock's session fails
 * (this process must stop signing and step down: whoever takes the lock next raises the term).
 */
export class PgDatabase {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));
  /** The port of the calls not waited for (`snapshot`): answered on a session of their own, without the signal. */
  private readonly readPort: MessagePort;
  private readonly reading = new Map<number, Readonly<{ ok: (rows: StoreRows) => void; fail: (error: Error) => void }>>();
  private nextId = 1;
  /** Set once a call failed in a way that leaves the connection's state unknown: every later call fails. */
  private broken: string | undefined;
  onLockLost: ((reason: string) => void) | undefined;

  private constructor(
    readonly url: string,
    private readonly callTimeoutMs: number,
  ) {
    const { port1, port2 } = new MessageChannel();
    const events = new MessageChannel();
    const reads = new MessageChannel();
    this.port = port1;
    this.readPort = reads.port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { pgPath: createRequire(import.meta.url).resolve("pg"), signal: this.signal, port: port2, events: events.port2, reads: reads.port2 },
      transferList: [port2, events.port2, reads.port2],
    });
    this.worker.unref();
    events.port1.on("message", (m: { lockLost: string }) => this.onLockLost?.(m.lockLost));
    events.port1.unref();
    this.readPort.on("message", (a: Answer) => this.answered(a));
    this.readPort.unref();
  }

  /**
   * Connects (both sessions) and runs the migrations this version has and the database lacks. With `create: false`
   * (a command that works on a store that must be there already) a database that does not exist or that no node has
   * run on is refused with NoStoreError, and nothing is created in it.
   */
  static open(url: string, options: Readonly<{ callTimeoutMs?: number; applicationName?: string; create?: boolean }> = {}): PgDatabase {
    const db = new PgDatabase(url, options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
    const create = options.create !== false;
    try {
      const timeoutMs = Math.max(db.callTimeoutMs, START_TIMEOUT_MS);
      if (db.call("connect", { url, applicationName: options.applicationName ?? "channels-node", create }, timeoutMs) === "missing") {
        throw new NoStoreError(url, "does not exist");
      }
      if (db.call("migrate", { meta: META, lock: MIGRATION_LOCK, migrations: MIGRATIONS, create }, timeoutMs) === "absent") {
        throw new NoStoreError(url, `holds no store: no node has run on it (no ${META} schema)`);
      }
    } catch (error) {
      db.close();
      throw error;
    }
    return db;
  }

  /** Who leads, as the database says (undefined before any process led). */
  leader(): Leader | undefined {
    return (this.call("leader", { meta: META }) as Leader | null) ?? undefined;
  }

  /**
   * Takes the lead if no process holds it: the advisory lock, then the term raised (by one) and this process's
   * name and API address written. Returns the new term, or undefined while another process leads. A database that
   * another address leads is refused (ForeignDatabaseError).
   */
  tryLead(address: string, holder: string, api: string | undefined): number | undefined {
    const got = this.call("lead", { meta: META, lock: LEADER_LOCK, address: address.toLowerCase(), holder, api: api ?? null }, Math.max(this.callTimeoutMs, START_TIMEOUT_MS)) as
      | { term: number }
      | { owner: string }
      | null;
    if (got === null) return undefined;
    if ("owner" in got) throw new ForeignDatabaseError(this.url, got.owner, address);
    return got.term;
  }

  /** Whether a store schema holds no row (a database no node has written yet). */
  isEmpty(schema: PgStoreSchema): boolean {
    return this.call("empty", { schema, tables: STORE_TABLE_NAMES }) as boolean;
  }

  /** A store schema's rows, all read in one snapshot. */
  rows(schema: PgStoreSchema): StoreRows {
    const timeoutMs = Math.max(this.callTimeoutMs, LOAD_TIMEOUT_MS);
    return this.call("rows", { schema, tables: STORE_TABLE_NAMES, timeoutMs }, timeoutMs) as StoreRows;
  }

  /**
   * A store schema's rows, all read in one snapshot (REPEATABLE READ, READ ONLY: the database refuses any write in
   * it) on a session of its own, without holding this thread: what a standby shows (node/standby-views.ts) while its
   * thread goes on answering and polling for the lead. One read at a time is the caller's to keep. A read that
   * fails or is not answered within the load's bound rejects with a StoreLostError; the connection stays usable.
   */
  snapshot(schema: PgStoreSchema): Promise<StoreRows> {
    const where = redactUrl(this.url);
    if (this.broken !== undefined) return Promise.reject(new StoreLostError(where, this.broken));
    const id = this.nextId++;
    const timeoutMs = Math.max(this.callTimeoutMs, LOAD_TIMEOUT_MS);
    return new Promise<StoreRows>((ok, fail) => {
      const timer = setTimeout(() => this.settleRead(id, new StoreLostError(where, `the database did not answer within ${timeoutMs / 1000} s (snapshot)`)), timeoutMs);
      this.reading.set(id, {
        ok: (rows) => (clearTimeout(timer), ok(rows)),
        fail: (error) => (clearTimeout(timer), fail(error)),
      });
      this.readPort.ref(); // a read under way keeps the process up; an idle port does not
      this.readPort.postMessage({ id, op: "snapshot", args: { schema, tables: STORE_TABLE_NAMES, timeoutMs } } satisfies Request);
    });
  }

  /** An answer on the read port: its read settled (one that timed out or was cut by `close` is gone already). */
  private answered(a: Answer): void {
    if (a.error === undefined) this.settleRead(a.id, undefined, a.ok as StoreRows);
    else this.settleRead(a.id, new StoreLostError(redactUrl(this.url), `a snapshot read failed (${a.error.message})`));
  }

  private settleRead(id: number, error: Error | undefined, rows?: StoreRows): void {
    const r = this.reading.get(id);
    if (r === undefined) return;
    this.reading.delete(id);
    if (this.reading.size === 0) this.readPort.unref();
    if (error === undefined) r.ok(rows!);
    else r.fail(error);
  }

  /** Commits writes to one schema in one transaction that first checks `term` (throws DeposedError if it is over). */
  commit(schema: PgStoreSchema, term: number, writes: readonly PgWrite[]): void {
    this.call("commit", { meta: META, schema, term, writes });
  }

  /**
   * Writes whole stores' rows into schemas that hold none, all in one transaction (a move from SQLite): a schema
   * that holds a row already is refused, and then nothing is written.
   */
  fill(stores: Partial<Record<PgStoreSchema, StoreRows>>): void {
    const timeoutMs = Math.max(this.callTimeoutMs, LOAD_TIMEOUT_MS);
    this.call("fill", { stores, tables: STORE_TABLE_NAMES, timeoutMs }, timeoutMs);
  }

  /** The mirror of one store schema under `term`. */
  mirror(schema: PgStoreSchema, term: number): Mirror {
    return {
      where: `${redactUrl(this.url)} (schema ${schema})`,
      commit: (writes) => this.commit(schema, term, writes),
      rows: () => this.rows(schema),
    };
  }

  /** Gives up the lead (the lock's session is closed) and both sessions; the worker ends, and every later call fails at once. */
  close(): void {
    try {
      if (this.broken === undefined) this.call("close", {});
    } catch {
      // closing: the worker is ended below either way, which closes its sockets
    }
    // Closed for good: a later call (a second close) fails at once rather than wait out the timeout on no worker.
    this.broken ??= "the connection was closed";
    for (const id of [...this.reading.keys()]) this.settleRead(id, new StoreLostError(redactUrl(this.url), this.broken));
    this.readPort.close();
    void this.worker.terminate();
  }

  /** One call to the worker, waited for; a timeout or a lost worker breaks this connection for good. */
  private call(op: string, args: unknown, timeoutMs = this.callTimeoutMs): unknown {
    if (this.broken !== undefined) throw new StoreLostError(redactUrl(this.url), this.broken);
    const id = this.nextId++;
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage({ id, op, args } satisfies Request);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const received = receiveMessageOnPort(this.port);
      if (received === undefined) {
        // The worker posts its answer, then sets the signal: a set signal with nothing to read is an answer read
        // already (one that came late), so it is cleared and the port read again before waiting.
        if (Atomics.load(this.signal, 0) !== 0) {
          Atomics.store(this.signal, 0, 0);
          continue;
        }
        const left = deadline - Date.now();
        if (left <= 0 || Atomics.wait(this.signal, 0, 0, left) === "timed-out") {
          this.broken = `the database did not answer within ${timeoutMs / 1000} s (${op})`;
          throw new StoreLostError(redactUrl(this.url), this.broken);
        }
        continue;
      }
      const answer = received.message as Answer;
      if (answer.id !== id) continue; // the answer to a call that timed out: this connection is broken already
      if (answer.error === undefined) return answer.ok;
      const e = answer.error;
      if (e.deposed !== undefined) throw new DeposedError(this.url, (args as { term: number }).term, e.deposed.current);
      const sqlState = e.code !== undefined && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
      if (op === "commit" || sqlState === undefined || /^(08|53|57|58|XX)/.test(sqlState)) {
        // A commit whose outcome is unknown, or a connection or server gone: what the database holds can no longer
        // be told from here. The store counts as lost; a process that leads next starts from the database's rows.
        this.broken = `a database call failed (${op}: ${e.message})`;
        throw new StoreLostError(redactUrl(this.url), this.broken);
      }
      throw new ChannelSdkError(`store: ${redactUrl(this.url)}: ${e.message}`);
    }
  }
}

/**
 * The worker (CommonJS, evaluated): the `pg` driver (its path given by the main thread, so that it resolves the
 * way the package does), two sessions, and a ping of the lock's session every second. Each answer is posted, then
 * the shared signal set and notified.
 */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const pg = require(workerData.pgPath);
const { signal, port, events, reads } = workerData;
// BIGINT columns come back as numbers when they fit (every value the store writes does), else as text.
pg.types.setTypeParser(20, (v) => { const n = Number(v); return Number.isSafeInteger(n) ? n : v; });
let work, lock, reader, opened, pinger, leading = false, lostSaid = false;
const q = (ident) => '"' + String(ident).replace(/"/g, '""') + '"';
function lockLost(reason) {
  if (!leading || lostSaid) return;
  lostSaid = true;
  clearInterval(pinger);
  events.postMessage({ lockLost: reason });
}
async function session(url, name) {
  const c = new pg.Client({ connectionString: url, keepAlive: true, connectionTimeoutMillis: 5000, query_timeout: 8000, application_name: name });
  c.on("error", (e) => { if (c === lock) lockLost("the lock's session failed: " + e.message); if (c === reader) reader = undefined; });
  c.on("end", () => { if (c === lock) lockLost("the lock's session ended"); if (c === reader) reader = undefined; });
  await c.connect();
  return c;
}
const ops = {
  async connect({ url, applicationName, create }) {
    opened = { url, applicationName };
    try {
      work = await session(url, applicationName);
    } catch (e) {
      if (!create && e && e.code === "3D000") return "missing"; // invalid_catalog_name: no such database
      throw e;
    }
    lock = await session(url, applicationName + " (lock)");
  },
  async migrate({ meta, lock: key, migrations, create }) {
    await work.query("BEGIN");
    try {
      await work.query("SELECT pg_advisory_xact_lock($1)", [key]);
      if (!create && (await work.query("SELECT to_regclass($1) AS t", [q(meta) + ".migrations"])).rows[0].t === null) {
        await work.query("ROLLBACK");
        return "absent";
      }
      await work.query("CREATE SCHEMA IF NOT EXISTS " + q(meta));
      await work.query("CREATE TABLE IF NOT EXISTS " + q(meta) + ".migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
      const done = (await work.query("SELECT COALESCE(MAX(version), 0) AS v FROM " + q(meta) + ".migrations")).rows[0].v;
      if (done > migrations.length) throw new Error("the database was migrated by a newer version (layout " + done + "; this version knows " + migrations.length + ")");
      for (let v = done + 1; v <= migrations.length; v++) {
        await work.query(migrations[v - 1]);
        await work.query("INSERT INTO " + q(meta) + ".migrations (version) VALUES ($1)", [v]);
      }
      await work.query("COMMIT");
    } catch (e) {
      await work.query("ROLLBACK").catch(() => {});
      throw e;
    }
  },
  async leader({ meta }) {
    const r = await work.query("SELECT address, term, holder, api, to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\\"T\\"HH24:MI:SS.MS\\"Z\\"') AS since FROM " + q(meta) + ".leader WHERE id = 1");
    return r.rows[0] ?? null;
  },
  async lead({ meta, lock: key, address, holder, api }) {
    // Another node's database is refused whether or not a process leads it now: a standby of the wrong key must not
    // stand by unnoticed until the leader dies.
    const known = (await work.query("SELECT address FROM " + q(meta) + ".leader WHERE id = 1")).rows[0];
    if (known !== undefined && known.address !== address) return { owner: known.address };
    let took = false;
    if (!leading) {
      const got = (await lock.query("SELECT pg_try_advisory_lock($1) AS ok", [key])).rows[0].ok;
      if (!got) return null;
      leading = took = true;
      pinger = setInterval(() => {
        const t = setTimeout(() => lockLost("the lock's session did not answer for 3 s"), 3000);
        lock.query("SELECT 1").then(() => clearTimeout(t), (e) => { clearTimeout(t); lockLost("the lock's session failed: " + e.message); });
      }, 1000);
    }
    await work.query("BEGIN");
    try {
      const owner = (await work.query("SELECT address FROM " + q(meta) + ".leader WHERE id = 1 FOR UPDATE")).rows[0];
      if (owner !== undefined && owner.address !== address) {
        await work.query("ROLLBACK");
        // Refused: the lock this call took is given back, or the database's own node could not lead while this runs.
        if (took) {
          leading = false;
          clearInterval(pinger);
          await lock.query("SELECT pg_advisory_unlock($1)", [key]);
        }
        return { owner: owner.address };
      }
      const r = await work.query(
        "INSERT INTO " + q(meta) + ".leader (id, address, term, holder, api, since) VALUES (1, $1, 1, $2, $3, now()) " +
        "ON CONFLICT (id) DO UPDATE SET term = " + q(meta) + ".leader.term + 1, holder = excluded.holder, api = excluded.api, since = now() RETURNING term",
        [address, holder, api]);
      await work.query("COMMIT");
      // Leading, the process reads through its own store: the session of a standby's snapshots is given back.
      if (reader !== undefined) { const old = reader; reader = undefined; old.end().catch(() => {}); }
      return { term: r.rows[0].term };
    } catch (e) {
      await work.query("ROLLBACK").catch(() => {});
      throw e;
    }
  },
  async empty({ schema, tables }) {
    for (const t of tables) {
      if ((await work.query("SELECT 1 FROM " + q(schema) + "." + q(t) + " LIMIT 1")).rows.length > 0) return false;
    }
    return true;
  },
  async rows({ schema, tables, timeoutMs }) {
    return readAll(work, schema, tables, timeoutMs);
  },
  // A standby's snapshot: on a session of its own (opened at the first, given back on any failure), so that it never
  // waits on nor interleaves with the calls the main thread waits for (the poll for the lead).
  async snapshot({ schema, tables, timeoutMs }) {
    if (leading) throw new Error("this process leads: it reads its own store, not snapshots");
    const c = reader ?? (reader = await session(opened.url, opened.applicationName + " (read)"));
    // The lead taken while it connected (the lead's call runs on the other session meanwhile): given back at once.
    if (leading) { reader = undefined; c.end().catch(() => {}); throw new Error("this process took the lead"); }
    try {
      return await readAll(c, schema, tables, timeoutMs);
    } catch (e) {
      if (reader === c) { reader = undefined; c.end().catch(() => {}); }
      throw e;
    }
  },
  async commit({ meta, schema, term, writes }) {
    // One round trip: the statements go as one text (the simple query protocol), which PostgreSQL runs as one
    // implicit transaction: the term's check first (it raises, and nothing is written, if the term is over), then
    // the writes, committed together at the end or not at all. Values are written as literals: text through the
    // driver's escapeLiteral (the store writes only hex, decimal and JSON text), numbers only when whole.
    const lit = (v) => {
      if (v === null || v === undefined) return "NULL";
      if (typeof v === "bigint") return v.toString();
      if (typeof v === "number") { if (!Number.isSafeInteger(v)) throw new Error("not a whole number: " + v); return String(v); }
      if (typeof v === "string") return work.escapeLiteral(v);
      throw new Error("a value of type " + typeof v + " in a store write");
    };
    const text = ["SELECT " + q(meta) + ".require_term(" + lit(term) + ")", "SET LOCAL search_path TO " + q(schema)];
    for (const w of writes) text.push(w.sql.replace(/\\$(\\d+)/g, (_, i) => lit(w.params[Number(i) - 1])));
    try {
      await work.query(text.join(";\\n"));
    } catch (e) {
      if (e.code === "CC001") { const d = new Error("deposed"); d.deposed = { current: Number(e.detail) }; throw d; }
      throw e;
    }
  },
  async fill({ stores, tables, timeoutMs }) {
    await work.query("BEGIN");
    try {
      for (const [schema, rows] of Object.entries(stores)) {
        if (!(await ops.empty({ schema, tables }))) {
          const e = new Error("the database holds a store already (schema " + schema + ")"); e.code = "23505"; throw e;
        }
        for (const t of tables) {
          for (const row of rows[t] ?? []) {
            const cols = Object.keys(row);
            await work.query({ text: "INSERT INTO " + q(schema) + "." + q(t) + " (" + cols.map(q).join(", ") + ") VALUES (" + cols.map((_, i) => "$" + (i + 1)).join(", ") + ")", values: cols.map((c) => row[c]), query_timeout: timeoutMs });
          }
        }
      }
      await work.query("COMMIT");
    } catch (e) {
      await work.query("ROLLBACK").catch(() => {});
      throw e;
    }
  },
  async close() {
    clearInterval(pinger);
    leading = false;
    await Promise.allSettled([work?.end(), lock?.end(), reader?.end()]);
  },
};
// Every row of a store schema's tables, in one snapshot: one REPEATABLE READ transaction, READ ONLY.
async function readAll(c, schema, tables, timeoutMs) {
  await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const out = {};
    for (const t of tables) out[t] = (await c.query({ text: "SELECT * FROM " + q(schema) + "." + q(t), query_timeout: timeoutMs })).rows;
    await c.query("COMMIT");
    return out;
  } catch (e) {
    await c.query("ROLLBACK").catch(() => {});
    throw e;
  }
}
async function run(req) {
  try {
    return { id: req.id, ok: (await ops[req.op](req.args)) ?? null };
  } catch (e) {
    return { id: req.id, error: { message: String(e && e.message || e).split("\\n")[0], code: e && e.code, deposed: e && e.deposed } };
  }
}
port.on("message", async (req) => {
  port.postMessage(await run(req));
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
// The reads not waited for: answered on their own port, without the signal (the main thread is not blocked on them).
reads.on("message", async (req) => {
  reads.postMessage(req.op === "snapshot" ? await run(req) : { id: req.id, error: { message: "not a read: " + req.op } });
});
`;
