/**
 * A node kept in PostgreSQL (docs/NODE.md, "PostgreSQL and a standby"): any number of `channels node start`
 * processes run on one database for one key, and exactly one leads. `runLeading` stands by (serving what a standby
 * can: the API's reads of stored data from a snapshot of the database, standby-views.ts; the dashboard; its own
 * metrics; every write 503 with the active one's address) until it takes the lead, then runs the node on the
 * database's rows under its new term, and steps down to standing by again the moment it may no longer lead (its
 * lock's session failed, or a commit was refused or went unanswered).
 */
import { hostname } from "node:os";
import { computeAddress } from "ethers";
import { Hono, type Context } from "hono";
import type { Logger } from "pino";
import { Gauge, Histogram, Registry } from "prom-client";

import type { Hex } from "../core/types.js";
import { ChannelSdkError } from "../core/errors.js";
import { ForeignDatabaseError, PgDatabase, redactUrl, type Leader } from "../store/postgres.js";
import { StoreLostError } from "../store/transactions.js";
import { API_PREFIX, apiApp, apiDocument, closeApi, dashboardFiles, errorAnswer, readRoutes, requireToken, serveApi, withSecurityHeaders } from "./api.js";
import { NODE_ACTIVE } from "./metrics.js";
import { ChannelNode, type StartOptions } from "./node.js";
import type { NodeConfig } from "./node-config.js";
import { AS_OF_HEADER } from "./headers.js";
import { activeOf, Snapshots } from "./standby-views.js";

/** How often a standby tries to take the lead (and how soon after the active one's death it does). */
export const LEAD_POLL_MS = 1_000;
/** How long a standby waits before it connects again to a database that does not answer. */
const RECONNECT_MS = 2_000;

type Served = Awaited<ReturnType<typeof serveApi>>;

/** A standby's metrics: that it is one, and how long its snapshots of the database take to read. */
export function standbyMetrics(): { registry: Registry; loaded: (seconds: number) => void } {
  const registry = new Registry();
  new Gauge({ ...NODE_ACTIVE, registers: [registry] }).set(0);
  const loads = new Histogram({
    name: "channels_standby_snapshot_load_seconds",
    help: "a standby's reads of the database's rows into a snapshot (one at most every 2 s, while its API is asked)",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return { registry, loaded: (seconds) => loads.observe(seconds) };
}

/**
 * The API a standby serves: the dashboard's files; the API's reads of stored data (`readRoutes`) from a snapshot no
 * older than SNAPSHOT_MAX_AGE_MS, its time in the AS_OF_HEADER; its metrics; and 503 naming the active process for
 * every write (before its body is read) and for the event stream (what the active process alone can tell). Its
 * answers carry the active node's security headers and need its token: the port is the same.
 */
export function standbyApp(
  d: Readonly<{ token: string; metricsPublic: boolean; leader: () => Leader | undefined; snapshots: Pick<Snapshots, "fresh">; registry: Registry }>,
): Hono {
  const app = withSecurityHeaders(new Hono());
  const metrics = async () => new Response(await d.registry.metrics(), { headers: { "content-type": d.registry.contentType } });
  const elsewhere = (c: Context) => {
    const a = activeOf(d.leader());
    const where = a === null ? "no process leads yet" : `the active node is ${a.holder}${a.api === null ? "" : ` (API ${a.api})`}`;
    return c.json({ error: `this process is a standby: ${where}`, active: a }, 503);
  };
  app.use("*", dashboardFiles);
  app.get("/metrics", async (_c, next) => (d.metricsPublic ? metrics() : next()));
  app.use("*", requireToken(d.token));
  app.get("/metrics", () => metrics());
  app.use("*", async (c, next) => ((c.req.method === "GET" || c.req.method === "HEAD") && c.req.path !== `${API_PREFIX}/events` ? next() : elsewhere(c)));
  app.get(`${API_PREFIX}/openapi.json`, (c) => c.json(apiDocument()));
  for (const r of readRoutes()) {
    app.get(`${API_PREFIX}${r.path}`, async (c) => {
      const snapshot = await d.snapshots.fresh();
      c.header(AS_OF_HEADER, snapshot.asOf.toISOString());
      return r.run(snapshot, c);
    });
  }
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((error, c) =>
    error instanceof StoreLostError ? c.json({ error: `the database does not answer: ${error.problem.split("\n")[0]}` }, 503) : errorAnswer(error, c),
  );
  return app;
}

/**
 * Runs a node kept in PostgreSQL until `stopped` resolves: stands by, leads when it can, steps down when it must.
 * `token` is the API's bearer token.
 */
export async function runLeading(config: NodeConfig, key: Hex, log: Logger, token: string, options: StartOptions, stopped: Promise<string>): Promise<void> {
  const address = computeAddress(key);
  const holder = `${hostname()} pid ${process.pid}`;
  const where = redactUrl(config.store);
  let stop: string | undefined;
  void stopped.then((signal) => (stop = signal));
  const sleep = (ms: number) => Promise.race([new Promise((r) => setTimeout(r, ms)), stopped]);
  while (stop === undefined) {
    // ---- standing by
    let db: PgDatabase | undefined;
    let api: Served | undefined;
    let term: number | undefined;
    let snapshots: Snapshots | undefined;
    let unreachableSaid = 0;
    while (stop === undefined && term === undefined) {
      try {
        db ??= PgDatabase.open(config.store, { applicationName: `channels-node pid ${process.pid}` });
        if (api === undefined) {
          // The database this process is connected to now: after a reconnect, the new one (not the one closed).
          const connected = () => {
            if (db === undefined) throw new StoreLostError(where, "connecting to the database again");
            return db;
          };
          const leader = () => connected().leader();
          const metrics = standbyMetrics();
          snapshots = new Snapshots({ config, address, log, db: connected, leader, startedAt: new Date(), onLoad: metrics.loaded });
          const app = standbyApp({ token, metricsPublic: config.api.metricsPublic, leader, snapshots, registry: metrics.registry });
          api = await serveApi(app, config.api.host, config.api.port);
          log.info({ event: "standby", api: `${api.url}${API_PREFIX}`, store: where }, `standing by on ${where}: the node starts here once no other process leads it`);
        }
        term = db.tryLead(address, holder, `${api.url}${API_PREFIX}`);
        if (term === undefined) await sleep(LEAD_POLL_MS);
      } catch (error) {
        // The database gone or refusing (a restart, a network cut): stand by and try again. Anything else (the
        // API's port taken, another node's database) is the operator's to fix.
        if (error instanceof ForeignDatabaseError || !(error instanceof StoreLostError || error instanceof ChannelSdkError)) throw error;
        if (Date.now() - unreachableSaid >= 60_000) {
          unreachableSaid = Date.now();
          log.warn({ event: "databaseUnreachable", store: where, error: error.message.split("\n")[0] }, `${error.message.split("\n")[0]}; trying again`);
        }
        db?.close();
        db = undefined;
        await sleep(RECONNECT_MS);
      }
    }
    if (api !== undefined) closeApi(api);
    snapshots?.close();
    if (stop !== undefined || term === undefined || db === undefined) {
      db?.close();
      break;
    }
    // ---- leading
    const lead = db;
    let stepDown: (reason: string) => void = () => {};
    const down = new Promise<string>((r) => (stepDown = r));
    lead.onLockLost = (reason) => stepDown(reason);
    log.info({ event: "leading", term, store: where }, `leading ${where} under term ${term}`);
    let node: ChannelNode;
    try {
      node = await ChannelNode.start(config, key, log, { ...options, leadership: { db: lead, term } });
    } catch (error) {
      lead.close();
      // The database gone or another process leading while this one started (a restart, a cut, a term raised
      // meanwhile): stand by again. Anything else (a configuration the node refuses) is the operator's to fix.
      if (!(error instanceof StoreLostError)) throw error;
      log.error({ event: "steppingDown", term, reason: error.message }, `could not start under term ${term}: ${error.message}; standing by`);
      await sleep(RECONNECT_MS);
      continue;
    }
    node.subscribe((e) => {
      if (e.type === "storeLost") stepDown(`its store is lost: ${String((e as { problem?: unknown }).problem)}`);
    });
    let active: Served;
    try {
      active = await serveApi(apiApp(node, token), config.api.host, config.api.port);
    } catch (error) {
      await node.stop();
      lead.close();
      throw error;
    }
    log.info({ event: "api", url: `${active.url}${API_PREFIX}`, tokenFile: config.api.tokenFile }, "control API listening");
    const why = await Promise.race([down, stopped.then((s) => `signal ${s}`)]);
    closeApi(active);
    if (stop === undefined) log.error({ event: "steppingDown", term, reason: why }, `stepping down from term ${term}: ${why}; standing by (another process may lead now)`);
    await node.stop();
    lead.close();
  }
}
