/**
 * What following the chains costs a node: two anvil chains mining a block every BENCH_FOLLOW_BLOCK_TIME seconds, two
 * `channels node start` processes (Alice and Bob, default timing), and a counting JSON-RPC proxy between each node
 * and each chain (scripts/lib/rpc-counter.ts), so every request a node makes to a chain is counted, by method.
 * Channels are opened through the nodes' control API (`POST /api/v1/channels`; Alice funds hers on the source chain,
 * Bob his on the target chain) up to each size of BENCH_FOLLOW_CHANNELS per chain in turn (the channels add up), and
 * at each size, in each of BENCH_FOLLOW_ROUNDS rounds, the requests are counted over an idle window (nothing
 * happens: no swap, no transaction) and over a window of swaps posted to Alice's API at a fixed rate. Records
 * requests per second per node per chain, and per block, in docs/BENCHMARKS.md and docs/bench-follow.json under the
 * label BENCH_FOLLOW_LABEL ("before" or "after" a change; the other label's runs are kept).
 *
 *   npm run bench:follow                                              # 1, 20 and 1,000 channels per chain, 3 rounds
 *   BENCH_FOLLOW_CHANNELS=1,20 BENCH_FOLLOW_ROUNDS=1 BENCH_FOLLOW_IDLE_SECONDS=10 npm run bench:follow
 *   BENCH_FOLLOW_LABEL=before npm run bench:follow                 # on the code before a change (its own checkout)
 *   BENCH_FOLLOW_RECORD_ONLY=1 npm run bench:follow                 # the table again from docs/bench-follow.json
 *
 * Anvil rather than `hardhat node`: anvil mines on an interval (`--block-time`) whether or not a transaction comes, as
 * a public chain does, so "per block" means what it means there and a node that follows heads sees new blocks while
 * idle; `hardhat node` mines only when a transaction arrives, and an idle node would see no block at all.
 */
import { type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";

import { rpcProvider } from "../sdk/index.js";
import { startAnvil, type Anvil } from "../test/helpers/anvil.js";
import { CHANNELS_BIN } from "../test/helpers/cli.js";
import { freePort, PROJECT_ROOT } from "../test/helpers/nodes.js";
import { spawnChild, stopChild } from "../test/helpers/processes.js";
import { DoneStream } from "./lib/done-stream.js";
import { accountKey, deployHub } from "./lib/local.js";
import { RpcCounter, type RpcCounts } from "./lib/rpc-counter.js";
import { replaceSection } from "./lib/bench-doc.js";

const SIZES = (process.env.BENCH_FOLLOW_CHANNELS ?? "1,20,1000").split(",").map(Number);
const ROUNDS = Number(process.env.BENCH_FOLLOW_ROUNDS ?? 3);
const IDLE_SECONDS = Number(process.env.BENCH_FOLLOW_IDLE_SECONDS ?? 30);
const SWAP_SECONDS = Number(process.env.BENCH_FOLLOW_SWAP_SECONDS ?? 30);
/** Swaps posted per second in a swap window (a fixed rate, so that runs of two versions carry the same work). */
const SWAP_RATE = Number(process.env.BENCH_FOLLOW_SWAP_RATE ?? 10);
const BLOCK_TIME = Number(process.env.BENCH_FOLLOW_BLOCK_TIME ?? 1);
const CONFIRMATIONS = Number(process.env.BENCH_FOLLOW_CONFIRMATIONS ?? 2);
/** Channel openings in flight per node (a node agrees to at most 16 channels a peer has not opened yet). */
const OPEN_CONCURRENCY = Number(process.env.BENCH_FOLLOW_OPEN_CONCURRENCY ?? 12);
const LABEL = process.env.BENCH_FOLLOW_LABEL ?? "after";
/** Measure nothing: write docs/BENCHMARKS.md again from docs/bench-follow.json. */
const RECORD_ONLY = process.env.BENCH_FOLLOW_RECORD_ONLY === "1";
const DEPOSIT = "1";
const GIVE = "0.0001 ETH@source";
const TAKE = "0.0001 ETH@target";
const SWAP_TIMEOUT_MS = 60_000;
const CHAIN_IDS = [31_421, 31_422];

type Who = "alice" | "bob";
type ChainName = "source" | "target";
const WHO: readonly Who[] = ["alice", "bob"];
const CHAINS: readonly ChainName[] = ["source", "target"];
const ACCOUNT: Record<Who, number> = { alice: 1, bob: 2 };
const ADDRESS = Object.fromEntries(WHO.map((w) => [w, new Wallet(accountKey(ACCOUNT[w])).address])) as Record<Who, string>;

type Node = { name: Who; child: ChildProcess; api: string; token: string; log: string };

/** One measured window: requests per node and chain, blocks mined, swaps done. */
type Window = {
  label: string;
  channelsPerChain: number;
  round: number;
  load: "idle" | "swaps";
  seconds: number;
  blocks: Record<ChainName, number>;
  /** Requests per second, by node then chain. */
  perSecond: Record<Who, Record<ChainName, number>>;
  /** Requests by node, chain and method over the window. */
  byMethod: Record<Who, Record<ChainName, Record<string, number>>>;
  swaps?: { done: number; failed: number };
};

const dir = mkdtempSync(join(tmpdir(), "bench-follow-"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `channels --config <config> node start`, its log in a file; resolves once its control API listens. */
async function startNode(name: Who, config: string): Promise<Node> {
  const log = join(dir, `${name}.log`);
  const out = openSync(log, "w");
  const child = spawnChild(process.execPath, [CHANNELS_BIN, "--config", config, "node", "start"], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, [`${name.toUpperCase()}_KEY`]: accountKey(ACCOUNT[name]) },
    stdio: ["ignore", out, "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const end = Date.now() + 60_000;
  for (;;) {
    const line = readFileSync(log, "utf8").split("\n").find((l) => l.includes('"event":"api"'));
    if (line !== undefined) {
      const url = (JSON.parse(line) as { url: string }).url;
      return { name, child, api: url, token: readFileSync(join(dir, `${name}.token`), "utf8").trim(), log };
    }
    if (child.exitCode !== null || Date.now() > end) {
      await stopChild(child);
      throw new Error(`${name}'s node did not start:\n${stderr}`);
    }
    await sleep(100);
  }
}

async function api<T>(node: Node, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const r = await fetch(`${node.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${node.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as T };
}

/** Opens `count` channels from `node` to `peer` holding `asset`, OPEN_CONCURRENCY at a time. */
async function openMany(node: Node, peer: Who, asset: string, count: number): Promise<void> {
  let left = count;
  const end = Date.now() + 120_000 + count * 2_000;
  const worker = async () => {
    while (left > 0) {
      left--;
      for (;;) {
        if (Date.now() > end) throw new Error(`${node.name}: channels not opened in time`);
        const { status, json } = await api<{ error?: string }>(node, "POST", "/channels", { peer, asset, deposit: DEPOSIT });
        if (status === 201) break;
        // The peer agrees to a bounded number of channels it has not joined yet: wait for it to join some.
        if (status === 409 && /not opened yet/.test(String(json.error))) {
          await sleep(500);
          continue;
        }
        throw new Error(`${node.name}: POST /channels: ${status} ${JSON.stringify(json)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, () => worker()));
}

type ChannelView = { status: string; base?: { deposits: string[]; onChainDeposits?: string[] } };
const counted = (c: ChannelView) => c.status === "open" && c.base?.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();

/** Waits until both nodes show `total` channels open with their deposits counted. */
async function waitCounted(nodes: readonly Node[], total: number): Promise<void> {
  const end = Date.now() + 120_000 + total * 200;
  for (const n of nodes) {
    for (;;) {
      const { json } = await api<ChannelView[]>(n, "GET", "/channels");
      const ok = json.filter(counted).length;
      if (ok >= total) break;
      if (Date.now() > end) throw new Error(`${n.name}: ${ok} of ${total} channels counted`);
      await sleep(2_000);
    }
  }
}

/** Posts swaps to Alice at SWAP_RATE a second for `seconds`; resolves once all are done (or timed out). */
async function swapWindow(alice: Node, stream: DoneStream, seconds: number): Promise<{ posting: Promise<void>; finished: Promise<{ done: number; failed: number }> }> {
  let done = 0;
  let failed = 0;
  const all: Promise<void>[] = [];
  const one = async () => {
    try {
      const { status, json } = await api<{ id?: string }>(alice, "POST", "/swaps", { peer: "bob", give: GIVE, take: TAKE });
      if (status !== 201 || json.id === undefined) {
        failed++;
        return;
      }
      if ((await stream.done(json.id)) === "swapped") done++;
      else failed++;
    } catch {
      failed++;
    }
  };
  const posting = (async () => {
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < seconds * 1000; i++) {
      all.push(one());
      const next = t0 + ((i + 1) * 1000) / SWAP_RATE;
      await sleep(Math.max(0, next - Date.now()));
    }
  })();
  const finished = posting.then(async () => {
    await Promise.all(all);
    return { done, failed };
  });
  return { posting, finished };
}

// ---------------------------------------------------------------- chains, proxies, nodes
const t00 = Date.now();
const anvils: Anvil[] = [];
const providers: JsonRpcProvider[] = [];
const counters: Record<Who, Record<ChainName, RpcCounter>> = { alice: {}, bob: {} } as Record<Who, Record<ChainName, RpcCounter>>;
const nodes: Node[] = [];
let stream: DoneStream | undefined;
const windows: Window[] = [];
if (!RECORD_ONLY) {
  try {
    for (const chainId of CHAIN_IDS) anvils.push(await startAnvil({ chainId, blockTime: BLOCK_TIME }));
    // The deploying providers stay open until the end: ethers may still poll on them after the deployment.
    for (const a of anvils) providers.push(rpcProvider(a.url));
    const hubs = await Promise.all(providers.map((p) => deployHub(p)));
    for (const who of WHO) for (const [i, chain] of CHAINS.entries()) counters[who][chain] = await RpcCounter.start(anvils[i]!.url);
    const ports = { alice: await freePort(), bob: await freePort() };
    const apiPorts = { alice: await freePort(), bob: await freePort() };
    for (const who of WHO) {
      const peer: Who = who === "alice" ? "bob" : "alice";
      const chain = (i: number) => ({
        rpcUrl: counters[who][CHAINS[i]!].url,
        hub: hubs[i],
        confirmations: CONFIRMATIONS,
        finalitySeconds: Math.max(12, CONFIRMATIONS * BLOCK_TIME * 2),
        assets: { ETH: { address: ZeroAddress, decimals: 18 } },
      });
      writeFileSync(
        join(dir, `${who}.json`),
        JSON.stringify({
          key: { env: `${who.toUpperCase()}_KEY` },
          store: `${who}.sqlite`,
          peer: { port: ports[who] },
          api: { port: apiPorts[who], tokenFile: `${who}.token` },
          chains: { source: chain(0), target: chain(1) },
          peers: { [peer]: { address: ADDRESS[peer], url: `http://127.0.0.1:${ports[peer]}` } },
          policy: {
            channels: { accept: ["ETH@source", "ETH@target"] },
            swaps: { pairs: [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "1" }], maxInFlight: 1_000_000 },
          },
        }),
      );
    }
    for (const who of WHO) nodes.push(await startNode(who, join(dir, `${who}.json`)));
    const [alice, bob] = nodes as [Node, Node];
    stream = new DoneStream(SWAP_TIMEOUT_MS);
    await stream.open(alice);
    console.log(`chains and nodes up in ${((Date.now() - t00) / 1000).toFixed(1)} s (label ${LABEL}; anvil, a block every ${BLOCK_TIME} s, confirmations ${CONFIRMATIONS})`);

    const snapshot = () => Object.fromEntries(WHO.map((w) => [w, Object.fromEntries(CHAINS.map((c) => [c, counters[w][c].snapshot()]))])) as Record<Who, Record<ChainName, RpcCounts>>;
    const heads = () => Promise.all(anvils.map(async (a) => Number(await a.rpc<string>("eth_blockNumber"))));

    const measure = async (channelsPerChain: number, round: number, load: Window["load"]) => {
      const [h0, c0, t0] = [await heads(), snapshot(), performance.now()];
      let swaps: Window["swaps"];
      let finished: Promise<{ done: number; failed: number }> | undefined;
      if (load === "idle") await sleep(IDLE_SECONDS * 1000);
      else {
        const w = await swapWindow(alice, stream!, SWAP_SECONDS);
        await w.posting;
        finished = w.finished;
      }
      const [h1, c1, seconds] = [await heads(), snapshot(), (performance.now() - t0) / 1000];
      if (finished !== undefined) swaps = await finished; // the swaps still in flight finish outside the window
      const perSecond = {} as Window["perSecond"];
      const byMethod = {} as Window["byMethod"];
      for (const w of WHO) {
        perSecond[w] = {} as Record<ChainName, number>;
        byMethod[w] = {} as Record<ChainName, Record<string, number>>;
        for (const c of CHAINS) {
          const d = RpcCounter.between(c0[w][c], c1[w][c]);
          perSecond[w][c] = d.calls / seconds;
          byMethod[w][c] = d.byMethod;
        }
      }
      const window: Window = { label: LABEL, channelsPerChain, round, load, seconds, blocks: { source: h1[0]! - h0[0]!, target: h1[1]! - h0[1]! }, perSecond, byMethod, swaps };
      windows.push(window);
      const f = (x: number) => x.toFixed(1);
      console.log(
        `${String(channelsPerChain).padStart(5)} channels/chain, round ${round}, ${load.padEnd(5)}: ` +
          WHO.map((w) => CHAINS.map((c) => `${w}@${c} ${f(perSecond[w][c])}/s`).join(", ")).join("; ") +
          ` (${window.blocks.source} and ${window.blocks.target} blocks in ${f(seconds)} s)` +
          (swaps === undefined ? "" : `, ${swaps.done} swaps done, ${swaps.failed} failed`),
      );
    };

    let open = 0;
    for (const size of SIZES) {
      const t0 = Date.now();
      if (size > open) {
        await Promise.all([openMany(alice, "bob", "ETH@source", size - open), openMany(bob, "alice", "ETH@target", size - open)]);
        open = size;
      }
      await waitCounted(nodes, 2 * open);
      console.log(`${open} channels per chain open and counted by both nodes (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      await sleep(5_000); // the last counts' batches and the API's reads out of the way
      for (let round = 1; round <= ROUNDS; round++) {
        await measure(open, round, "idle");
        await measure(open, round, "swaps");
      }
    }
  } finally {
    stream?.close();
    await Promise.all(nodes.map((n) => stopChild(n.child)));
    for (const who of WHO) for (const c of CHAINS) await counters[who][c]?.close();
    for (const p of providers) p.destroy();
    for (const a of anvils) await a.stop();
  }
}

// ---------------------------------------------------------------- record
type Recorded = { setup: Record<string, unknown>; runs: Record<string, Window[]> };
const jsonFile = new URL("../docs/bench-follow.json", import.meta.url);
const recorded: Recorded = existsSync(jsonFile) ? (JSON.parse(readFileSync(jsonFile, "utf8")) as Recorded) : { setup: {}, runs: {} };
if (!RECORD_ONLY) recorded.setup = { blockTimeSeconds: BLOCK_TIME, confirmations: CONFIRMATIONS, idleSeconds: IDLE_SECONDS, swapSeconds: SWAP_SECONDS, swapRate: SWAP_RATE, give: GIVE, take: TAKE, rounds: ROUNDS };
if (!RECORD_ONLY) recorded.runs[LABEL] = windows;
writeFileSync(jsonFile, JSON.stringify(recorded, null, 2) + "\n");

/** "median (min-max)" of `xs`. */
function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const median = s[Math.floor((s.length - 1) / 2)]!;
  return s.length === 1 ? f(median) : `${f(median)} (${f(s[0]!)}-${f(s[s.length - 1]!)})`;
}

const rows: string[] = [];
const order = (label: string) => (label === "before" ? 0 : label === "after" ? 1 : 2);
for (const label of Object.keys(recorded.runs).sort((a, b) => order(a) - order(b) || a.localeCompare(b))) {
  const runs = recorded.runs[label]!;
  const keys = [...new Set(runs.map((r) => `${r.channelsPerChain}|${r.load}`))];
  for (const key of keys) {
    const [n, load] = key.split("|");
    const of = runs.filter((r) => `${r.channelsPerChain}|${r.load}` === key);
    const cell = (w: Who, c: ChainName) => spread(of.map((r) => r.perSecond[w][c]));
    // Requests per block: the busiest node on the busiest chain, per block that chain mined in the window.
    const perBlock = of.map((r) => Math.max(...WHO.flatMap((w) => CHAINS.map((c) => (r.perSecond[w][c] * r.seconds) / Math.max(1, r.blocks[c])))));
    const swaps = load === "swaps" ? spread(of.map((r) => (r.swaps?.done ?? 0) / r.seconds)) : "";
    rows.push(`| ${label} | ${Number(n).toLocaleString("en")} | ${load} | ${cell("alice", "source")} | ${cell("bob", "source")} | ${cell("alice", "target")} | ${cell("bob", "target")} | ${spread(perBlock)} | ${swaps} |`);
  }
}
const setup = recorded.setup;
const section = [
  "Measured by `npm run bench:follow`: two anvil chains mining a block every",
  `${setup.blockTimeSeconds} s, two \`channels node start\` processes (Alice and Bob, default timing: a tick a second, a heartbeat a`,
  `minute; confirmations ${setup.confirmations}), and a counting JSON-RPC proxy between each node and each chain. Channels are opened through`,
  "the control API (Alice funds hers on the source chain S, Bob his on the target chain T), up to each size per chain",
  `in turn. At each size, ${setup.rounds} rounds of a ${setup.idleSeconds} s idle window (no swap, no transaction) and a ${setup.swapSeconds} s window of swaps posted to`,
  `Alice's API at ${setup.swapRate} a second (${setup.give} for ${setup.take}, the node picks the channels). Requests per second each node`,
  "sends each chain, median (least-most) over the rounds; \"per block\" is the busiest node on the busiest chain. Raw",
  "numbers, by JSON-RPC method: `docs/bench-follow.json`. Anvil rather than `hardhat node` because it mines on an",
  "interval whether or not a transaction comes, as public chains do: an idle node following heads sees new blocks.",
  "",
  "| version | channels per chain | load | S: Alice | S: Bob | T: Alice | T: Bob | per block (most) | swaps/s |",
  "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows,
].join("\n");
replaceSection("follow", section);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
