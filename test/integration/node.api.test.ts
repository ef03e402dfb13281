/**
 * The node's control API against a running `channels node start` process: the bearer token on every route, bad
 * bodies named by field, unknown channels and swaps, and the OpenAPI document against the real routes.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZeroAddress } from "ethers";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { rpcProvider } from "../../sdk/index.js";
import { apiApp, apiRoutes } from "../../sdk/node/api.js";
import type { ChannelNode } from "../../sdk/node/node.js";
import { openApiDocument } from "../../sdk/node/openapi.js";
import { NodeProcess } from "../helpers/cli.js";

const OPENAPI = openApiDocument(apiRoutes());
import { freePort, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

describe("node control API", function () {
  this.timeout(120_000);
  let chain: LocalNode;
  let dir: string;
  let node: NodeProcess;
  let base: string;
  let token: string;

  before(async function () {
    chain = await startHardhatNode(31337n);
    const provider = rpcProvider(chain.url);
    const hub = await deployHub(provider);
    provider.destroy();
    dir = mkdtempSync(join(tmpdir(), "channels-api-"));
    const port = await freePort();
    writeFileSync(
      join(dir, "node.json"),
      JSON.stringify({
        key: { env: "NODE_KEY" },
        store: "node.sqlite",
        peer: { port: await freePort() },
        api: { port },
        chains: { source: { rpcUrl: chain.url, hub, confirmations: 0, assets: { ETH: { address: ZeroAddress } } } },
        peers: { bob: { address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", url: "http://127.0.0.1:9" } },
      }),
    );
    node = await NodeProcess.start(join(dir, "node.json"), { NODE_KEY: accountKey(1) });
    base = `http://127.0.0.1:${port}/api/v1`;
    token = readFileSync(join(dir, "api.token"), "utf8").trim();
  });
  after(async function () {
    await node?.stop();
    await chain?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, path: string, auth: string | undefined, body?: unknown) =>
    fetch(path.startsWith("http") ? path : base + path, {
      method,
      headers: { ...(auth === undefined ? {} : { authorization: auth }), ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const HTTP_METHODS = new Set(["get", "post", "put", "patch", "delete"]);
  /** Every documented route: its path under the API's base, or its whole URL for one outside it (/metrics). */
  const routes = () =>
    Object.entries(OPENAPI.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => HTTP_METHODS.has(m))
        .map((m) => ({ method: m.toUpperCase(), path: ("servers" in ops ? new URL(base).origin : "") + path.replace("{id}", "0xabcdef12").replace("{name}", "source") })),
    );

  it("writes the token readable by its owner only, and never logs the key", function () {
    expect(statSync(join(dir, "api.token")).mode & 0o777).to.equal(0o600);
    expect(JSON.stringify(node.lines) + node.stderr).to.not.include(accountKey(1).slice(2));
  });

  it("answers 401 on every route without a token or with a wrong one", async function () {
    for (const r of routes()) {
      for (const auth of [undefined, "Bearer wrong", `Bearer ${token}x`, token]) {
        const res = await call(r.method, r.path, auth, r.method === "POST" ? {} : undefined);
        expect(res.status, `${r.method} ${r.path} with ${auth ?? "no token"}`).to.equal(401);
        await res.body?.cancel();
      }
    }
  });

  it("answers 400 naming the field of a bad body", async function () {
    const auth = `Bearer ${token}`;
    const cases: [string, string, unknown, RegExp][] = [
      ["POST", "/channels", { peer: 1, asset: "ETH@source", deposit: "1" }, /^peer: /],
      ["POST", "/channels", { peer: "bob", asset: "ETH@source" }, /^deposit: missing/],
      ["POST", "/channels", { peer: "bob", asset: "DOGE@source", deposit: "1" }, /^asset: no asset DOGE/],
      ["POST", "/swaps", { give: "1 ETH@source", take: "1 ETH@source" }, /^peer: missing/],
      ["POST", "/swaps", { peer: "bob", give: "lots", take: "1 ETH@source" }, /^give: expected an amount/],
      ["POST", "/swaps", { peer: "bob", give: "1 ETH@source", take: "1 ETH@source", extra: 1 }, /^extra: unknown field/],
      ["POST", "/channels/0xabcdef12/close", { force: "yes" }, /^force: /],
      ["POST", "/swaps", { peer: "bob", give: "1 ETH@source", take: "1 ETH@target", source: 7 }, /^source: /],
    ];
    for (const [method, path, body, message] of cases) {
      const res = await call(method, path, auth, body);
      const json = (await res.json()) as { error: string };
      expect(res.status, `${path} ${JSON.stringify(body)}: ${json.error}`).to.equal(400);
      expect(json.error).to.match(message);
    }
  });

  it("answers 404 for an unknown channel or swap", async function () {
    const auth = `Bearer ${token}`;
    for (const [method, path, body] of [
      ["GET", "/channels/0xabcdef12", undefined],
      ["POST", "/channels/0xabcdef12/deposit", { amount: "1" }],
      ["POST", "/channels/0xabcdef12/close", {}],
      ["POST", "/channels/0xabcdef12/withdraw", {}],
      ["GET", "/swaps/0xabcdef12", undefined],
    ] as const) {
      const res = await call(method, path, auth, body);
      expect(res.status, path).to.equal(404);
      expect(((await res.json()) as { error: string }).error).to.match(/no (channel|swap) 0xabcdef12/);
    }
  });

  it("answers 4xx naming the unknown peer, chain or asset, never 500, for names every object inherits", async function () {
    const auth = `Bearer ${token}`;
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      const cases: [string, string, unknown][] = [
        ["POST", "/channels", { peer: name, asset: "ETH@source", deposit: "1" }],
        ["POST", "/channels", { peer: "bob", asset: `ETH@${name}`, deposit: "1" }],
        ["POST", "/channels", { peer: "bob", asset: `${name}@source`, deposit: "1" }],
        ["POST", "/swaps", { peer: name, give: "1 ETH@source", take: "1 ETH@source" }],
        ["POST", "/swaps", { peer: "bob", give: `1 ETH@${name}`, take: "1 ETH@source" }],
        ["POST", "/swaps", { peer: "bob", give: "1 ETH@source", take: `1 ${name}@source` }],
      ];
      for (const [method, path, body] of cases) {
        const res = await call(method, path, auth, body);
        const json = (await res.json()) as { error: string };
        expect(res.status, `${path} ${JSON.stringify(body)}: ${json.error}`).to.be.within(400, 499);
        expect(json.error, `${path} ${JSON.stringify(body)}`).to.include(name);
      }
    }
  });

  it("streams events as NDJSON, starting with a hello line", async function () {
    const controller = new AbortController();
    const res = await fetch(`${base}/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.match(/application\/x-ndjson/);
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    const first = JSON.parse(new TextDecoder().decode(value).split("\n")[0]!) as { type: string; address: string };
    expect(first).to.include({ type: "hello", address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" });
    controller.abort();
  });

  it("checks request bodies against the schemas its OpenAPI document shows: each field it requires, left out, is refused by name", async function () {
    let checked = 0;
    for (const [path, ops] of Object.entries(OPENAPI.paths)) {
      const post = ops.post as { requestBody?: { content: { "application/json": { schema: { required?: string[]; additionalProperties?: boolean } } } } } | undefined;
      const schema = post?.requestBody?.content["application/json"].schema;
      if (schema === undefined) continue;
      expect(schema.additionalProperties, `${path}: unknown fields refused`).to.equal(false);
      for (const field of schema.required ?? []) {
        const body = Object.fromEntries((schema.required ?? []).filter((k) => k !== field).map((k) => [k, "x"]));
        const res = await call("POST", path.replace("{id}", "0xabcdef12"), `Bearer ${token}`, body);
        const answer = (await res.json()) as { error: string };
        expect([res.status, answer.error], `${path} without ${field}`).to.deep.equal([400, `${field}: missing`]);
        checked++;
      }
      const extra = await call("POST", path.replace("{id}", "0xabcdef12"), `Bearer ${token}`, { surplus: 1 });
      expect(((await extra.json()) as { error: string }).error, `${path} with an unknown field`).to.match(/^(surplus: unknown field|\w+: missing)$/);
    }
    expect(checked, "required fields checked").to.be.at.least(7);
  });

  it("serves an OpenAPI document that lists exactly the routes the server answers", async function () {
    const res = await call("GET", "/openapi.json", `Bearer ${token}`);
    expect(await res.json()).to.deep.equal(JSON.parse(JSON.stringify(OPENAPI)));
    const real = [...new Set(apiApp({} as ChannelNode, "t")
      .routes.filter((r) => r.method !== "ALL")
      .map((r) => `${r.method} ${r.path.replace("/api/v1", "").replace(/:([a-z]+)/g, "{$1}")}`))]
      .sort();
    const documented = Object.entries(OPENAPI.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => HTTP_METHODS.has(m)).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    expect(real).to.deep.equal(documented);
    const info = await (await call("GET", "/info", `Bearer ${token}`)).json();
    expect((info as { address: string }).address).to.equal("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
  });
});
