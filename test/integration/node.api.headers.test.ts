/**
 * Every answer of the API port carries the dashboard's security headers (SECURITY_HEADERS: its Content-Security-
 * Policy, nosniff, no-referrer), as docs/NODE.md says: the active node's (401, 200, 404, 413, 500, the event
 * stream), the Host check's 421, and a standby's (a node kept in PostgreSQL that does not lead serves the same port:
 * 401, 404, its reads and writes 503, its metrics). A stub stands in for the node: only the API's layer is under test, on a real listener.
 */
import { expect } from "chai";
import { request } from "node:http";

import { apiApp, MAX_API_BODY, SECURITY_HEADERS, serveApi } from "../../sdk/node/api.js";
import type { ChannelNode } from "../../sdk/node/node.js";
import { standbyApp, standbyMetrics } from "../../sdk/node/standby.js";
import { StoreLostError } from "../../sdk/store/transactions.js";

const TOKEN = "a".repeat(64);
const AUTH = { authorization: `Bearer ${TOKEN}` };

/** What a node's routes under test need of it. */
const node = {
  address: "0x0000000000000000000000000000000000000001",
  metricsPublic: false,
  info: () => ({ address: "0x0000000000000000000000000000000000000001" }),
  releaseChain: () => {
    throw new Error("not a ChannelSdkError: answered 500");
  },
  subscribe: () => () => {},
} as unknown as ChannelNode;

type Case = Readonly<{ path: string; status: number; method?: string; headers?: Record<string, string>; body?: string }>;
type Answer = { status: number; headers: Record<string, unknown> };

/**
 * A request by node:http (fetch can set no Host, and gives up a request answered before its body is sent: the 413):
 * the answer's status and security headers, once its head has come (the event stream never ends).
 */
function headersOf(url: string, c: Case): Promise<Answer> {
  return new Promise((ok, fail) => {
    let answered = false;
    const req = request(url + c.path, { method: c.method ?? "GET", headers: c.headers ?? {} }, (res) => {
      answered = true;
      ok({ status: res.statusCode!, headers: Object.fromEntries(Object.keys(SECURITY_HEADERS).map((k) => [k, res.headers[k]])) });
      req.destroy();
    });
    req.on("error", (error) => (answered ? undefined : fail(error)));
    req.end(c.body);
  });
}

describe("the API port's security headers", function () {
  this.timeout(30_000);

  it("are on every answer of an active node's API, and on the Host check's 421", async function () {
    const { server, url } = await serveApi(apiApp(node, TOKEN), "127.0.0.1", 0);
    try {
      const cases: Case[] = [
        { path: "/api/v1/info", status: 401 },
        { path: "/api/v1/info", status: 200, headers: AUTH },
        { path: "/dashboard/nope.js", status: 404 },
        { path: "/api/v1/nope", status: 404, headers: AUTH },
        { path: "/api/v1/backup", status: 413, method: "POST", headers: AUTH, body: "x".repeat(MAX_API_BODY + 1) },
        { path: "/api/v1/chains/source/release", status: 500, method: "POST", headers: AUTH },
        { path: "/api/v1/events", status: 200, headers: AUTH },
        // A page rebinding its DNS name to the node's address: its Host is not one the node listens as.
        { path: "/", status: 421, headers: { host: "rebinding.example" } },
      ];
      for (const c of cases) expect(await headersOf(url, c), c.path).to.deep.equal({ status: c.status, headers: SECURITY_HEADERS });
    } finally {
      server.close();
    }
  });

  it("are on every answer of a standby's API", async function () {
    // A standby whose database does not answer: its reads are 503 too.
    const snapshots = { fresh: () => Promise.reject(new StoreLostError("postgres://db/alice", "it does not answer")) };
    const app = standbyApp({ token: TOKEN, metricsPublic: false, leader: () => undefined, snapshots, registry: standbyMetrics().registry });
    const { server, url } = await serveApi(app, "127.0.0.1", 0);
    try {
      const cases: Case[] = [
        { path: "/api/v1/info", status: 401 },
        { path: "/dashboard/nope.js", status: 404 },
        { path: "/api/v1/info", status: 503, headers: AUTH },
        { path: "/api/v1/channels", status: 503, headers: AUTH },
        { path: "/api/v1/swaps", status: 503, method: "POST", headers: AUTH, body: "{}" },
        { path: "/api/v1/nope", status: 404, headers: AUTH },
        { path: "/metrics", status: 200, headers: AUTH },
      ];
      for (const c of cases) expect(await headersOf(url, c), c.path).to.deep.equal({ status: c.status, headers: SECURITY_HEADERS });
    } finally {
      server.close();
    }
  });
});
