/**
 * What following two chains costs two idle nodes: in-process nodes with their control APIs on real ports, two anvil
 * chains mining a block a second, and a counting JSON-RPC proxy between each node and each chain. Once their
 * channels are open and counted, idle nodes read no channel's state (no `eth_call`): they follow heads and the
 * hubs' logs, whose cost does not depend on how many channels there are.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerType } from "@hono/node-server";
import { Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";
import { pino } from "pino";

import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { RpcCounter, type RpcCounts } from "../../scripts/lib/rpc-counter.js";
import type { Hex } from "../../sdk/index.js";
import { apiApp, apiToken, serveApi } from "../../sdk/node/api.js";
import { ChannelNode } from "../../sdk/node/node.js";
import { loadNodeConfig } from "../../sdk/node/node-config.js";
import { anvilProvider, startAnvil, type Anvil } from "../helpers/anvil.js";
import { callApi } from "../helpers/in-process-nodes.js";
import { freePort, until } from "../helpers/nodes.js";

type Who = "alice" | "bob";
const WHO: readonly Who[] = ["alice", "bob"];
const ACCOUNT: Record<Who, number> = { alice: 1, bob: 2 };
const ADDRESS = Object.fromEntries(WHO.map((w) => [w, new Wallet(accountKey(ACCOUNT[w])).address])) as Record<Who, string>;
/** Channels each node opens (Alice on the source chain, Bob on the target chain). */
const CHANNELS = 3;
/** Blocks the idle stretch lasts on each chain. */
const IDLE_BLOCKS = 4;

describe("idle nodes following two chains (anvil, a block a second)", function () {
  this.timeout(120_000);
  const anvils: Anvil[] = [];
  const providers: JsonRpcProvider[] = [];
  const counters: RpcCounter[][] = []; // by node (alice, bob), then chain (source, target)
  const run: Partial<Record<Who, { node: ChannelNode; server: ServerType; base: string; token: string }>> = {};
  let dir: string;

  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => callApi<T>(run[who]!, method, path, body);

  before(async function () {
    for (const chainId of [31_441, 31_442]) {
      const anvil = await startAnvil({ chainId, blockTime: 1 });
      anvils.push(anvil);
      providers.push(anvilProvider(anvil));
    }
    const hubs = await Promise.all(providers.map((p) => deployHub(p)));
    for (const _ of WHO) counters.push(await Promise.all(anvils.map((a) => RpcCounter.start(a.url))));
    dir = mkdtempSync(join(tmpdir(), "node-follow-"));
    const ports = { alice: await freePort(), bob: await freePort() };
    const apiPorts = { alice: await freePort(), bob: await freePort() };
    for (const [n, who] of WHO.entries()) {
      const peer: Who = who === "alice" ? "bob" : "alice";
      const chain = (i: number) => ({
        rpcUrl: counters[n]![i]!.url, hub: hubs[i], confirmations: 2, finalitySeconds: 12, inclusionSeconds: 60, clockSkewSeconds: 30,
        assets: { ETH: { address: ZeroAddress, decimals: 18 } },
      });
      const file = join(dir, `${who}.json`);
      writeFileSync(file, JSON.stringify({
        key: { env: `${who.toUpperCase()}_KEY` }, store: `${who}.sqlite`, peer: { port: ports[who] },
        api: { port: apiPorts[who], tokenFile: `${who}.token` },
        chains: { source: chain(0), target: chain(1) },
        peers: { [peer]: { address: ADDRESS[peer], url: `http://127.0.0.1:${ports[peer]}` } },
        policy: { channels: { accept: ["ETH@source", "ETH@target"], minChallengePeriodSeconds: 300 } },
        timing: { tickMs: 250, heartbeatSeconds: 1 },
      }));
      const config = loadNodeConfig(file);
      const node = await ChannelNode.start(config, accountKey(ACCOUNT[who]) as Hex, pino({ level: "silent" }));
      const token = apiToken(config.api.tokenFile);
      const { server, url } = await serveApi(apiApp(node, token), config.api.host, config.api.port);
      run[who] = { node, server, base: `${url}/api/v1`, token };
    }
  });

  after(async function () {
    for (const who of WHO) {
      const r = run[who];
      if (r === undefined) continue;
      r.server.close();
      (r.server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await r.node.stop();
    }
    for (const c of counters.flat()) await c.close();
    for (const p of providers) p.destroy();
    for (const a of anvils) await a.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("read no channel's state while idle, however many channels they have, nor to list them (GET /channels): heads and logs only", async function () {
    const open = (who: Who, peer: Who, asset: string) => run[who]!.node.openChannel({ peer, asset, deposit: "1", challengePeriodSeconds: 300 });
    await Promise.all([
      Promise.all(Array.from({ length: CHANNELS }, () => open("alice", "bob", "ETH@source"))),
      Promise.all(Array.from({ length: CHANNELS }, () => open("bob", "alice", "ETH@target"))),
    ]);
    type Channel = { status: string; base?: { deposits: string[]; onChainDeposits?: string[] } };
    const counted = (c: Channel) => c.status === "open" && c.base?.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();
    for (const who of WHO) {
      await until(`${who}: ${2 * CHANNELS} channels open, deposits counted`, async () => ((await api<Channel[]>(who, "GET", "/channels")).json.filter(counted).length === 2 * CHANNELS ? true : undefined));
    }
    // The counts' batches and the reads of the API calls above are behind: from the next block on, nothing happens.
    const head = async (i: number) => providers[i]!.getBlockNumber();
    const settled = await head(0);
    await until("a block after the last count", async () => ((await head(0)) > settled + 1 ? true : undefined));
    const snap = () => counters.map((byChain) => byChain.map((c) => c.snapshot()));
    const [h0, c0] = [await Promise.all([head(0), head(1)]), snap()];
    await until(`${IDLE_BLOCKS} blocks on both chains`, async () => {
      const h = await Promise.all([head(0), head(1)]);
      return h.every((x, i) => x >= h0[i]! + IDLE_BLOCKS) ? true : undefined;
    });
    const [h1, c1] = [await Promise.all([head(0), head(1)]), snap()];
    for (const [n, who] of WHO.entries()) {
      for (const [i, chain] of ["source", "target"].entries()) {
        const d: RpcCounts = RpcCounter.between(c0[n]![i]!, c1[n]![i]!);
        const where = `${who} on ${chain}, ${h1[i]! - h0[i]!} blocks: ${JSON.stringify(d.byMethod)}`;
        expect(d.byMethod.eth_call ?? 0, `no channel read: ${where}`).to.equal(0);
        // Its own follower's logs at each new block, and the watchtower's at each heartbeat (a second here).
        expect(d.byMethod.eth_getLogs ?? 0, `logs once per block and heartbeat: ${where}`).to.be.at.most(2 * (h1[i]! - h0[i]! + 2));
      }
    }

    // GET /channels, however many channels, reads none of them from a chain: the list uses what the ticks follow.
    const before = snap();
    for (let k = 0; k < 3; k++) for (const who of WHO) expect((await api<Channel[]>(who, "GET", "/channels")).json.filter(counted)).to.have.length(2 * CHANNELS);
    const after = snap();
    for (const [n, who] of WHO.entries()) {
      for (const [i, chain] of ["source", "target"].entries()) {
        const d: RpcCounts = RpcCounter.between(before[n]![i]!, after[n]![i]!);
        expect(d.byMethod.eth_call ?? 0, `${who} on ${chain}, three GET /channels of ${2 * CHANNELS} channels: ${JSON.stringify(d.byMethod)}`).to.equal(0);
      }
    }
  });
});
