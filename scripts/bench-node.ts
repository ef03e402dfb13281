/**
 * Swap throughput through the product: two `hardhat node` chains, two `channels node start` processes (Alice and
 * Bob, each initialised with `channels init`), channels opened and funded with `channels channel open --wait`, then
 * swaps posted to Alice's control API (`POST /api/v1/swaps`) by concurrent clients. Each client posts a swap, waits
 * for its `done` on the node's event stream (`GET /api/v1/events`, one stream shared by all clients), then posts the
 * next. Prints swaps/s, p50/p99 latency (post to done), failures and each process's CPU per swap (from
 * /proc/<pid>/stat), and records them in docs/BENCHMARKS.md and docs/bench-node.json. Everything listens on
 * 127.0.0.1.
 *
 *   npm run bench:node                                   # 2,000 swaps by 32 clients on one channel pair, twice
 *   BENCH_NODE_SWAPS=500 BENCH_NODE_CLIENTS=8,64 BENCH_NODE_PAIRS=4 BENCH_NODE_ROUNDS=1 npm run bench:node
 *   BENCH_NODE_PROFILE=1 npm run bench:node             # also: both nodes under `node --cpu-prof`, top functions
 *
 * BENCH_NODE_LEGS=named names each swap's channels (client i on pair i mod pairs); by default the swap names none
 * and the node picks (the channel with the most free).
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { rpcProvider } from "../sdk/index.js";
import { CHANNELS_BIN, channelsJson, editJson } from "../test/helpers/cli.js";
import { freePort, PROJECT_ROOT, startHardhatNode, type LocalNode } from "../test/helpers/nodes.js";
import { spawnChild, stopChild } from "../test/helpers/processes.js";
import { summariseProfile, type ProfileSummary } from "./lib/cpu-profile.js";
import { DoneStream } from "./lib/done-stream.js";
import { deployHub } from "./lib/local.js";
import { replaceSection } from "./lib/bench-doc.js";

const SWAPS = Number(process.env.BENCH_NODE_SWAPS ?? 2000);
const CLIENTS = (process.env.BENCH_NODE_CLIENTS ?? "32").split(",").map(Number);
const PAIRS = Number(process.env.BENCH_NODE_PAIRS ?? 1);
/** Measured rounds per client count, on the same nodes and channels (their spread is the run-to-run noise). */
const ROUNDS = Number(process.env.BENCH_NODE_ROUNDS ?? 2);
/** Swaps before the first measured round (not counted): the nodes' code warms up. */
const WARMUP = Number(process.env.BENCH_NODE_WARMUP ?? 200);
const NAMED_LEGS = process.env.BENCH_NODE_LEGS === "named";
const PROFILE = process.env.BENCH_NODE_PROFILE === "1";
/** A swap not done after this long counts as failed; a round stops posting after ROUND_LIMIT_MS. */
const SWAP_TIMEOUT_MS = 60_000;
const ROUND_LIMIT_MS = Number(process.env.BENCH_NODE_ROUND_LIMIT_MS ?? 90_000);
const GIVE = "0.001 ETH@source";
const TAKE = "0.001 ETH@target";
const ENV = { CHANNELS_PASSWORD: "bench password" };
const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

const dir = mkdtempSync(join(tmpdir(), "bench-node-"));
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU of a process so far, in ms (/proc/<pid>/stat fields 14 and 15, after the command's ")"). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** The process's monotonic clock in microseconds: the clock of `--cpu-prof` sample times. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

type Node = { name: "alice" | "bob"; config: string; child: ChildProcess; api: string; token: string; log: string };

/** `channels --config <config> node start`, its log in a file; resolves once its control API listens. */
async function startNode(name: "alice" | "bob", config: string): Promise<Node> {
  const log = join(dir, `${name}.log`);
  const out = openSync(log, "w");
  const profile = PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${join(dir, "prof", name)}`] : [];
  const child = spawnChild(process.execPath, [...profile, CHANNELS_BIN, "--config", config, "node", "start"], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...ENV },
    stdio: ["ignore", out, "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const end = Date.now() + 60_000;
  for (;;) {
    const line = readFileSync(log, "utf8").split("\n").find((l) => l.includes('"event":"api"'));
    if (line !== undefined) {
      const url = (JSON.parse(line) as { url: string }).url;
      const token = readFileSync(join(config, "..", "api.token"), "utf8").trim();
      return { name, config, child, api: url, token, log };
    }
    if (child.exitCode !== null || Date.now() > end) {
      await stopChild(child);
      throw new Error(`${name}'s node did not start:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function apiGet<T>(node: Node, path: string): Promise<T> {
  const r = await fetch(`${node.api}${path}`, { headers: { authorization: `Bearer ${node.token}` } });
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

type Run = {
  pairs: number;
  clients: number;
  round: number;
  swaps: number;
  seconds: number;
  swapsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  failures: Record<string, number>;
  cpuMsPerSwap: { alice: number; bob: number; chains: number; bench: number };
  window: [number, number];
};

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** `count` swaps by `clients` concurrent posters; each waits for its swap's `done` before posting the next. */
async function swapRound(alice: Node, stream: DoneStream, count: number, clients: number, legs: { s: string; t: string }[]) {
  let next = 0;
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const fail = (why: string) => (failures[why] = (failures[why] ?? 0) + 1);
  const deadline = Date.now() + ROUND_LIMIT_MS;
  const worker = async (w: number) => {
    while (next < count && Date.now() < deadline) {
      next++;
      const leg = legs[w % legs.length];
      const body = JSON.stringify({ peer: "bob", give: GIVE, take: TAKE, ...(NAMED_LEGS && leg ? { source: leg.s, target: leg.t } : {}) });
      const t0 = performance.now();
      let r: Response;
      try {
        r = await fetch(`${alice.api}/swaps`, { method: "POST", headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" }, body });
      } catch (error) {
        fail(`post: ${(error as Error).message}`);
        continue;
      }
      const answer = (await r.json()) as { id?: string; error?: string };
      if (r.status !== 201 || answer.id === undefined) {
        fail(`${r.status} ${String(answer.error).slice(0, 80)}`);
        continue;
      }
      const outcome = await stream.done(answer.id);
      if (outcome === "swapped") latencies.push(performance.now() - t0);
      else fail(outcome);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { seconds, latencies, failures, posted: next };
}

// ---------------------------------------------------------------- chains, nodes, channels
const t00 = Date.now();
const chains: LocalNode[] = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
const nodes: Node[] = [];
const stopAll = async () => {
  await Promise.all(nodes.map((n) => stopChild(n.child)));
  await Promise.all(chains.map((c) => c.stop()));
};
let stream: DoneStream | undefined;
const runs: Run[] = [];
const profiles: Record<string, ProfileSummary> = {};
try {
  const hubs = await Promise.all(
    chains.map(async (c) => {
      const provider = rpcProvider(c.url);
      try {
        return await deployHub(provider);
      } finally {
        provider.destroy();
      }
    }),
  );
  const [ap, aa, bp, ba] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const init = (who: string, account: string, peerPort: number, apiPort: number, peer: string) =>
    channelsJson<{ address: string; config: string }>(
      ["init", "--dir", join(dir, who), "--local-account", account, "--scrypt-n", "1024",
        "--source-rpc", chains[0]!.url, "--target-rpc", chains[1]!.url, "--source-hub", hubs[0]!, "--target-hub", hubs[1]!,
        "--peer-port", String(peerPort), "--api-port", String(apiPort), "--peer", peer],
      ENV,
    );
  const cfg = {
    alice: (await init("alice", "1", ap, aa, `bob=${BOB}@http://127.0.0.1:${bp}`)).config,
    bob: (await init("bob", "2", bp, ba, `alice=${ALICE}@http://127.0.0.1:${ap}`)).config,
  };
  // Permissive: channels of both assets accepted, Alice's swaps answered however many are in flight. Timing as
  // `channels init` writes it (the defaults).
  for (const file of [cfg.alice, cfg.bob]) {
    editJson(file, (c) => {
      c.policy = {
        channels: { accept: ["ETH@source", "ETH@target"] },
        swaps: { pairs: [{ give: "ETH@source", take: "ETH@target", maxRate: "1", maxAmount: "1" }], maxInFlight: 1_000_000 },
      };
    });
  }
  nodes.push(await startNode("alice", cfg.alice), await startNode("bob", cfg.bob));
  const [alice, bob] = nodes as [Node, Node];
  // Each party opens and funds the channel where it gives (as nodes open a pair): Alice on S, Bob on T.
  const deposit = String(Math.ceil(((SWAPS * ROUNDS * CLIENTS.length + WARMUP) * 0.001) / PAIRS) + 1);
  const legs: { s: string; t: string }[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const open = (who: "alice" | "bob", asset: string) =>
      channelsJson<{ id: string }>(["--config", cfg[who], "channel", "open", "--peer", who === "alice" ? "bob" : "alice", "--asset", asset, "--deposit", deposit, "--wait"], ENV);
    const [s, t] = await Promise.all([open("alice", "ETH@source"), open("bob", "ETH@target")]);
    legs.push({ s: s.id, t: t.id });
  }
  // Both nodes count both deposits of every channel before the first swap.
  for (const n of nodes) {
    const end = Date.now() + 120_000;
    for (;;) {
      const list = await apiGet<{ status: string; base: { deposits: string[]; onChainDeposits?: string[] } }[]>(n, "/channels");
      const counted = list.filter((c) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join());
      if (counted.length === 2 * PAIRS) break;
      if (Date.now() > end) throw new Error(`${n.name}'s node does not count the deposits`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  console.log(`set up in ${((Date.now() - t00) / 1000).toFixed(1)} s: ${PAIRS} channel pair(s) of ${deposit} ETH per side; alice pid ${alice.child.pid}, bob pid ${bob.child.pid}`);
  stream = new DoneStream(SWAP_TIMEOUT_MS);
  await stream.open(alice);
  if (WARMUP > 0) {
    const w = await swapRound(alice, stream, WARMUP, Math.min(...CLIENTS), legs);
    console.log(`warm-up: ${w.latencies.length} of ${WARMUP} swaps in ${w.seconds.toFixed(1)} s`);
  }

  // ---------------------------------------------------------------- measured rounds
  const pids = { alice: alice.child.pid!, bob: bob.child.pid!, chains: chains.map((c) => c.pid) };
  for (const clients of CLIENTS) {
    for (let round = 1; round <= ROUNDS; round++) {
      const cpu0 = { alice: cpuMs(pids.alice), bob: cpuMs(pids.bob), chains: pids.chains.reduce((s, p) => s + cpuMs(p), 0), bench: process.cpuUsage() };
      const w0 = nowUs();
      const r = await swapRound(alice, stream, SWAPS, clients, legs);
      const w1 = nowUs();
      const done = r.latencies.length;
      const failed = Object.values(r.failures).reduce((s, n) => s + n, 0);
      const per = (ms: number) => ms / Math.max(1, done);
      const bench = process.cpuUsage(cpu0.bench);
      const run: Run = {
        pairs: PAIRS,
        clients,
        round,
        swaps: done,
        seconds: r.seconds,
        swapsPerSecond: done / r.seconds,
        p50Ms: quantile(r.latencies, 0.5),
        p99Ms: quantile(r.latencies, 0.99),
        failed: failed + (SWAPS - r.posted),
        failures: r.failures,
        cpuMsPerSwap: {
          alice: per(cpuMs(pids.alice) - cpu0.alice),
          bob: per(cpuMs(pids.bob) - cpu0.bob),
          chains: per(pids.chains.reduce((s, p) => s + cpuMs(p), 0) - cpu0.chains),
          bench: per((bench.user + bench.system) / 1000),
        },
        window: [w0, w1],
      };
      runs.push(run);
      const c = run.cpuMsPerSwap;
      console.log(
        `${String(PAIRS).padStart(2)} pair(s), ${String(clients).padStart(3)} clients, round ${round}: ${done} swaps in ${r.seconds.toFixed(1)} s, ` +
          `${run.swapsPerSecond.toFixed(1)} swaps/s, p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, failed ${run.failed}` +
          `${failed > 0 ? ` ${JSON.stringify(r.failures)}` : ""}; CPU ms/swap alice ${c.alice.toFixed(2)}, bob ${c.bob.toFixed(2)}, chains ${c.chains.toFixed(2)}, bench ${c.bench.toFixed(2)}`,
      );
    }
  }
} finally {
  stream?.close();
  await stopAll();
}

// ---------------------------------------------------------------- profile (BENCH_NODE_PROFILE=1)
if (PROFILE) {
  // The node's own code and what it calls per request or event, counted inclusively.
  const watched = (f: { functionName: string; url: string }) =>
    /dist\/sdk\/(node|coordinator|store|core)\//.test(f.url) || /node_modules\/(pino|hono|@hono|zod|sonic-boom)\//.test(f.url);
  for (const who of ["alice", "bob"]) {
    const folder = join(dir, "prof", who);
    const file = readdirSync(folder).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) {
      console.log(`${who}: no profile written`);
      continue;
    }
    const p = summariseProfile(join(folder, file), runs.map((r) => r.window), watched, 120);
    profiles[who] = p;
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`.padStart(7);
    console.log(`\n${who}: ${p.samples} samples in the measured rounds, ${pct(p.idle / Math.max(1, p.samples))} idle; of the busy samples:`);
    console.log("  self time, by function:");
    for (const l of p.self.slice(0, 30)) console.log(`  ${pct(l.share)}  ${l.name}  ${l.where}`);
    console.log("  self time, by file:");
    for (const l of p.files.slice(0, 20)) console.log(`  ${pct(l.share)}  ${l.name}`);
    console.log("  inclusive time, the node's code and its libraries:");
    for (const l of p.inclusive.slice(0, 40)) console.log(`  ${pct(l.share)}  ${l.name}  ${l.where}`);
    console.log("  native self time, by the project's caller:");
    for (const l of p.native.slice(0, 15)) console.log(`  ${pct(l.share)}  ${l.name}`);
  }
  const out = process.env.BENCH_NODE_PROFILE_OUT ?? join(tmpdir(), "bench-node-profile.json");
  writeFileSync(out, JSON.stringify({ runs, profiles }, null, 2) + "\n");
  console.log(`\nprofile summary written to ${out} (profiled runs are not recorded in docs/)`);
  // BENCH_NODE_KEEP=<dir>: the two .cpuprofile files kept there, with each round's window (us, the profiles' clock).
  if (process.env.BENCH_NODE_KEEP !== undefined) {
    cpSync(join(dir, "prof"), process.env.BENCH_NODE_KEEP, { recursive: true });
    for (const r of runs) console.log(`profiles kept in ${process.env.BENCH_NODE_KEEP}; round ${r.round} of ${r.clients} clients: window ${r.window[0]} ${r.window[1]}`);
  }
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

// ---------------------------------------------------------------- record
const json = { swapsPerRound: SWAPS, warmup: WARMUP, legs: NAMED_LEGS ? "named" : "picked by the node", give: GIVE, take: TAKE, runs: runs.map(({ window: _w, ...r }) => r) };
writeFileSync(new URL("../docs/bench-node.json", import.meta.url), JSON.stringify(json, null, 2) + "\n");
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const section = [
  "Measured by `npm run bench:node`: two `hardhat node` chains and two `channels node start` processes (Alice and Bob,",
  "initialised with `channels init`, default timing, a policy that answers any number of swaps in flight), one",
  "channel pair opened and funded with `channels channel open --wait` (each party funds the channel where it gives).",
  `After ${WARMUP} warm-up swaps, each round posts ${SWAPS} swaps of ${GIVE} for ${TAKE} to Alice's control API (\`POST /api/v1/swaps\`,`,
  `${NAMED_LEGS ? "each naming its channels" : "naming no channel: the node picks"}) from "clients" concurrent posters; each waits for its swap's \`done\` on the`,
  "event stream (`GET /api/v1/events`, one stream shared by all posters) before posting the next. Latency is post to",
  "done. CPU is each process's user + system time over the round (/proc/<pid>/stat) per swap: the two nodes, both",
  "chains together, and the bench's own posters and stream reader. Everything on 127.0.0.1; every step on disk.",
  "",
  "| pairs | clients | round | swaps | swaps/s | p50 ms | p99 ms | failed | CPU ms/swap Alice | Bob | chains | bench |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...runs.map(
    (r) =>
      `| ${r.pairs} | ${r.clients} | ${r.round} | ${r.swaps} | ${f1(r.swapsPerSecond)} | ${f1(r.p50Ms)} | ${f1(r.p99Ms)} | ${r.failed} | ${f2(r.cpuMsPerSwap.alice)} | ${f2(r.cpuMsPerSwap.bob)} | ${f2(r.cpuMsPerSwap.chains)} | ${f2(r.cpuMsPerSwap.bench)} |`,
  ),
].join("\n");
replaceSection("node", section);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
