/**
 * The control API: JSON over HTTP, versioned under /api/v1, on 127.0.0.1 unless the configuration says otherwise.
 * Every route needs `Authorization: Bearer <token>`, the token a node writes at its first start to a file only
 * its owner can read (mode 0600), as lnd's admin macaroon. Errors are `{ "error": "..." }` with 400 (bad input,
 * naming the field), 401 (no or wrong token), 404 (unknown channel or swap), 409 (refused as things stand), 413 (a
 * body over 1 MiB), 421 (a Host the server does not listen as: DNS rebinding), 503 (the node's store is lost: `/info`
 * and everything that would sign answer so until the node is restarted).
 * Routes are thin: check the body, call one node method, answer. One table (`apiRoutes`) serves them and builds their
 * OpenAPI document (`openapi.ts`), request bodies' schemas included; docs/NODE.md describes them. Its reads of stored
 * data (`readRoutes`) are served by a standby too, from its snapshot of the database (standby.ts).
 * The same port serves the dashboard's three static files (GET / and /dashboard/<file>, no token: they hold no data;
 * the page asks for the token and calls the routes above with it). Every answer carries a strict
 * Content-Security-Policy (no inline script or style, no other origin), so a page served here runs only these files.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, lstatSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { serve, type Http2Bindings, type HttpBindings, type ServerType } from "@hono/node-server";
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { stream } from "hono/streaming";
import { z } from "zod";

import { ChannelSdkError, InsufficientBalanceError, InvalidTermsError, TimingRuleError } from "../core/errors.js";
import { StoreLostError } from "../store/store.js";
import { ChainHeldError, ChannelBusyError, ChannelClosingError, ChannelFrozenError, UnknownSwapError } from "../coordinator/swap-client.js";
import { UnknownChannelError } from "../coordinator/channels.js";
import { defaultMessage, problemsOf } from "./config.js";
import { UsageError } from "./errors.js";
import { hostAllowed, listenerHosts } from "./hosts.js";
import { ConflictError, NotFoundError, type ChannelNode } from "./node.js";
import { CHANNEL_DOC, openApiDocument, PEER_DOC, SWAP_DOC, type OpenApiDocument, type RouteDoc } from "./openapi.js";

export const API_PREFIX = "/api/v1";
/** The largest request body the API reads (413 past it): its requests are a few hundred bytes. */
export const MAX_API_BODY = 1 << 20;

/**
 * The API token: read from `file`, or created there (mode 0600) at first start. A token file that is a link, that
 * another user owns, or that others could read is never trusted: the first two are errors, the last is replaced by
 * a new token (the old one may have been seen).
 */
export function apiToken(file: string): string {
  if (existsSync(file)) {
    const st = lstatSync(file);
    if (!st.isFile()) throw new UsageError(`${file}: the API token file is not a regular file (a link?); remove it`);
    if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
      throw new UsageError(`${file}: the API token file belongs to another user; remove it`);
    }
    if ((st.mode & 0o077) === 0) return readFileSync(file, "utf8").trim();
    rmSync(file); // readable by others: a new token
  }
  writeFileSync(file, randomBytes(32).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  return readFileSync(file, "utf8").trim();
}

const OpenBody = z.strictObject({
  peer: z.string(),
  asset: z.string().meta({ example: "ETH@source" }),
  deposit: z.string().meta({ example: "5" }),
  challengePeriodSeconds: z.number().int().positive().optional(),
});
const DepositBody = z.strictObject({ amount: z.string().meta({ example: "2.5" }) });
const CloseBody = z.strictObject({ force: z.boolean().default(false) });
const ProposeBody = z.strictObject({
  peer: z.string(),
  give: z.string().meta({ example: "10 SRC@source" }),
  take: z.string().meta({ example: "0.5 ETH@target" }),
  source: z.string().optional(),
  target: z.string().optional(),
});
const NoBody = z.strictObject({});
const BackupBody = z.strictObject({ file: z.string().min(1, "name the file to write the copy to").meta({ example: "backups/node-2026-12-07.sqlite" }) });

class BadBody extends UsageError {}

/** Headers on every answer of the API: the dashboard runs only its own files, talks only to this origin, in no frame. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The dashboard's files, by the name the page asks for: a fixed list, so no request path ever reaches the file system. */
const DASHBOARD_FILES: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

/**
 * The built dashboard (`scripts/package/build-dashboard.mjs`): dist/dashboard next to dist/sdk in the package, or
 * the checkout's dist/dashboard when the node runs from source. Undefined when neither was built.
 */
function dashboardFolder(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, "..", "..", "dashboard"), join(here, "..", "..", "dist", "dashboard")].find((d) => existsSync(join(d, "app.js")));
}

/** GET / and GET /dashboard/<file>: the dashboard's static files; 404 for any other name under /dashboard/. */
function dashboard(c: Context): Response {
  const name = c.req.path === "/" ? "index.html" : c.req.path.slice("/dashboard/".length);
  const type = Object.hasOwn(DASHBOARD_FILES, name) ? DASHBOARD_FILES[name]! : undefined;
  if (type === undefined) return c.json({ error: `no dashboard file ${c.req.path}` }, 404);
  const folder = dashboardFolder();
  if (folder === undefined) {
    return c.text("The dashboard is not built: run `npm run build:package` (or `node scripts/package/build-dashboard.mjs`) in the checkout.\n", 404);
  }
  return c.body(readFileSync(join(folder, name)), 200, { "content-type": type, "cache-control": "no-cache" });
}

/** The dashboard's files, served before the token check (they hold no data; a middleware, so they are no API route). */
export const dashboardFiles: MiddlewareHandler = async (c, next) =>
  c.req.method === "GET" && (c.req.path === "/" || c.req.path.startsWith("/dashboard/")) ? dashboard(c) : next();

async function body<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  let data: unknown = {};
  const text = await c.req.text();
  if (text.trim() !== "") {
    try {
      data = JSON.parse(text);
    } catch {
      throw new BadBody("body: not valid JSON");
    }
  }
  const result = schema.safeParse(data, { error: defaultMessage });
  if (!result.success) {
    const p = problemsOf(result.error.issues)[0]!;
    throw new BadBody(`${p.field === "" ? "body" : p.field}: ${p.message}`);
  }
  return result.data;
}

/** An error as the API answers it: `{ error }` with its status (`statusOf`); a stranger's error's text is not shown. */
export function errorAnswer(error: unknown, c: Context): Response {
  const message = error instanceof ChannelSdkError ? error.message : "internal error";
  return c.json({ error: message.split("\n")[0] }, statusOf(error));
}

function statusOf(error: unknown): 400 | 404 | 409 | 500 | 503 {
  if (error instanceof StoreLostError) return 503;
  if (error instanceof NotFoundError || error instanceof UnknownChannelError || error instanceof UnknownSwapError) return 404;
  if (error instanceof UsageError || error instanceof InvalidTermsError) return 400;
  if (error instanceof ConflictError || error instanceof ChannelBusyError || error instanceof ChannelClosingError || error instanceof InsufficientBalanceError || error instanceof ChainHeldError || error instanceof ChannelFrozenError || error instanceof TimingRuleError) return 409;
  return 500;
}

/** Sets SECURITY_HEADERS on every answer of `app` (the active node's and a standby's: the same port). */
export function withSecurityHeaders(app: Hono): Hono {
  return app.use("*", async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
  });
}

/** The bearer-token check every route after it goes through (the active node's API and a standby's). */
export function requireToken(token: string): MiddlewareHandler {
  const expected = Buffer.from(`Bearer ${token}`);
  return async (c, next) => {
    const given = Buffer.from(c.req.header("authorization") ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return c.json({ error: "missing or wrong bearer token (see the node's api.tokenFile)" }, 401);
    }
    await next();
  };
}

/** Stops a served API: no new connections, and the open ones (an event stream, keep-alive) cut. */
export function closeApi(api: Readonly<{ server: ServerType }>): void {
  api.server.close();
  if ("closeAllConnections" in api.server) (api.server as { closeAllConnections(): void }).closeAllConnections();
}

export function apiApp(node: ChannelNode, token: string): Hono {
  const app = withSecurityHeaders(new Hono());
  app.use("*", dashboardFiles);
  // Prometheus's scrape: behind the token like every route, unless the configuration makes it public.
  app.get("/metrics", async (c, next) => (node.metricsPublic ? metrics(c, node) : next()));
  app.use("*", requireToken(token));
  // Read only after the token is checked; a body past the cap is refused before it is held in memory.
  app.use("*", bodyLimit({ maxSize: MAX_API_BODY, onError: (c) => c.json({ error: `body: more than ${MAX_API_BODY} bytes` }, 413) }));
  app.onError(errorAnswer);
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  const v1 = new Hono();
  v1.get("/openapi.json", (c) => c.json(apiDocument()));
  for (const r of apiRoutes()) {
    if (r.path === "/openapi.json") continue;
    (r.base === API_PREFIX ? v1 : app).on(r.method.toUpperCase(), r.path, (c) => r.run(node, c));
  }
  app.route(API_PREFIX, v1);
  return app;
}

let document: OpenApiDocument | undefined;

/** The API's OpenAPI document (built once): the active node and a standby serve the same one. */
export function apiDocument(): OpenApiDocument {
  return (document ??= openApiDocument(apiRoutes()));
}

/** A route of the API: what the OpenAPI document says of it, and how it answers from `source` (the node, for most). */
export type ApiRoute<S> = RouteDoc & Readonly<{ run: (source: S, c: Context) => Response | Promise<Response> }>;

/**
 * What the routes that read stored data ask of: the active node, or a standby's snapshot of the database's rows
 * (standby-views.ts), each answering these with the same shapes where the data is stored.
 */
export type ReadSource = Readonly<{
  info: () => unknown;
  peers: () => unknown;
  channels: () => unknown;
  channel: (id: string) => unknown;
  swaps: () => unknown;
  swap: (id: string) => unknown;
  refused: () => unknown;
}>;

/** A JSON route under /api/v1 whose body, if it takes one, is checked against `body` before `handle` sees it. */
function route<N, S extends z.ZodType = z.ZodType>(
  method: "get" | "post",
  path: string,
  summary: string,
  response: Readonly<{ description: string; schema?: object }>,
  handle: (source: N, c: Context, body: z.output<S>) => unknown,
  options: Readonly<{ body?: S; status?: 200 | 201 }> = {},
): ApiRoute<N> {
  const status = options.status ?? 200;
  return {
    method, path, base: API_PREFIX, summary, body: options.body, status, response: { kind: "json", ...response },
    run: async (n, c) => c.json((await handle(n, c, (options.body === undefined ? undefined : await body(c, options.body)) as z.output<S>)) as object, status),
  };
}

const id = (c: Context) => c.req.param("id")!;

/**
 * The routes that read stored data and nothing else: the active node serves them, and a standby serves them from its
 * snapshot. A GET route's store reads happen before its first `await` (a standby's snapshot is read synchronously).
 */
export function readRoutes(): ApiRoute<ReadSource>[] {
  return [
    route("get", "/info", "Address, chains (with each one's health: head and its age, finality depth, fee account, deep reorganisation), assets, policy; 503 once the node's store is lost (a health check). A standby answers with role \"standby\", the active process, and its snapshot's counts (docs/NODE.md, \"PostgreSQL and a standby\")", { description: "node info" }, (n: ReadSource) => n.info()),
    route("get", "/peers", "Configured peers, each with its channel count and link state (up, down or unknown, with the last exchange)", { description: "peers", schema: { type: "array", items: PEER_DOC } }, (n: ReadSource) => n.peers()),
    route("get", "/channels", "Every channel, agreed or open or closed", { description: "channels", schema: { type: "array", items: CHANNEL_DOC } }, (n: ReadSource) => n.channels()),
    route("get", "/channels/:id", "One channel", { description: "the channel", schema: CHANNEL_DOC }, (n: ReadSource, c) => n.channel(id(c))),
    route("get", "/swaps", "Every swap", { description: "swaps", schema: { type: "array", items: SWAP_DOC } }, (n: ReadSource) => n.swaps()),
    route("get", "/swaps/:id", "One swap", { description: "the swap", schema: SWAP_DOC }, (n: ReadSource, c) => n.swap(id(c))),
    route("get", "/refusals", "Proposals this node refused, with the reason", { description: "refusals", schema: { type: "array" } }, (n: ReadSource) => n.refused()),
  ].map((r) => ({ ...r, standby: true }));
}

/** Every route of the control API: served by `apiApp` (the reads also by a standby), and its OpenAPI document (`openApiDocument`). */
export function apiRoutes(): ApiRoute<ChannelNode>[] {
  const channel = { description: "the channel", schema: CHANNEL_DOC };
  const swap = { description: "the swap", schema: SWAP_DOC };
  return [
    route("get", "/openapi.json", "This document", { description: "the document" }, () => undefined),
    ...readRoutes(),
    route("post", "/backup", "Write a consistent copy of the node's store to a new file (relative to the configuration's folder), its channels frozen in the copy (docs/NODE.md, \"Backups\"); 409 if the file exists", { description: "the file, and the channels frozen in it" }, (n: ChannelNode, _c, b) => n.backup(b.file), { body: BackupBody }),
    route("post", "/chains/:name/release", "End the hold a reorganisation deeper than its confirmations put on a chain (after checking the chain, its channels' deposits and the confirmations); 409 if not held", { description: "the chain's health" }, (n: ChannelNode, c) => n.releaseChain(c.req.param("name")!)),
    route("post", "/channels", "Open a channel with a peer (negotiated with its node, then opened and funded on chain)", channel, (n: ChannelNode, _c, b) => n.openChannel(b), { body: OpenBody, status: 201 }),
    route("post", "/channels/:id/deposit", "Deposit more (token units); refused on a closing channel", channel, (n: ChannelNode, c, b) => n.deposit(id(c), b.amount), { body: DepositBody }),
    route("post", "/channels/:id/close", "Close cooperatively (the swaps using it undone or completed first), or force close (with every channel a swap in flight ties to it)", channel, (n: ChannelNode, c, b) => n.close(id(c), b.force), { body: CloseBody }),
    route("post", "/channels/:id/withdraw", "Pull a payout the hub holds for us", channel, (n: ChannelNode, c) => n.withdraw(id(c)), { body: NoBody }),
    route("post", "/swaps", "Propose a swap to a peer", swap, (n: ChannelNode, _c, b) => n.propose(b), { body: ProposeBody, status: 201 }),
    {
      method: "get", path: "/events", base: API_PREFIX, summary: "Event stream: one JSON object per line (NDJSON)", status: 200,
      response: { kind: "stream", description: "events", contentType: "application/x-ndjson" },
      run: (n, c) => events(c, n),
    },
    {
      method: "get", path: "/metrics", base: "", status: 200,
      summary: "The node's metrics in the Prometheus text format (docs/NODE.md, \"Metrics\"); without the token when api.metricsPublic is true",
      response: { kind: "stream", description: "metrics", contentType: "text/plain; version=0.0.4" },
      run: (n, c) => metrics(c, n),
    },
  ];
}

async function metrics(c: Context, node: ChannelNode): Promise<Response> {
  const m = await node.scrapeMetrics();
  return c.body(m.text, 200, { "content-type": m.contentType });
}

/** GET /events: the node's events as NDJSON, a keep-alive line every 15 s without one. */
function events(c: Context, node: ChannelNode): Response {
  c.header("content-type", "application/x-ndjson");
  return stream(c, async (s) => {
    const queue: string[] = [];
    let wake = () => {};
    const unsubscribe = node.subscribe((e) => {
      queue.push(JSON.stringify(e) + "\n");
      wake();
    });
    s.onAbort(() => {
      unsubscribe();
      wake();
    });
    await s.write(JSON.stringify({ time: new Date().toISOString(), type: "hello", address: node.address }) + "\n");
    while (!s.aborted) {
      while (queue.length > 0) await s.write(queue.shift()!);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((r) => {
        wake = r;
        timer = setTimeout(r, 15_000);
      });
      clearTimeout(timer); // woken by an event: no 15 s timer left behind per wake
      if (queue.length === 0 && !s.aborted) await s.write("\n"); // keep-alive
    }
  });
}

/**
 * Serves the API; resolves with the server once it listens. A request whose Host is not a name the server listens
 * as (`listenerHosts`: a web page rebinding its DNS name to this address) is answered 421 before any route sees it.
 */
export async function serveApi(app: Hono, host: string, port: number): Promise<{ server: ServerType; url: string }> {
  let allowed: ReadonlySet<string> = new Set(); // known once listening (port 0 picks one)
  const guarded = (req: Request, env: HttpBindings | Http2Bindings) =>
    hostAllowed(allowed, req.headers.get("host") ?? undefined) ? app.fetch(req, env) : new Response(null, { status: 421, headers: SECURITY_HEADERS });
  return new Promise((ok, fail) => {
    const server = serve({ fetch: guarded, hostname: host, port }, (info) => {
      allowed = listenerHosts(host, info.port);
      ok({ server, url: `http://${host.includes(":") ? `[${host}]` : host}:${info.port}` });
    });
    server.once("error", (error: NodeJS.ErrnoException) =>
      fail(
        error.code === "EADDRINUSE"
          ? new UsageError(`api.port: ${port} on ${host} is taken (another node, or a second process of this node on this machine: give each its own api.port)`)
          : error,
      ),
    );
  });
}
