/**
 * Off-chain swap throughput with persistence on, every step on disk (synchronous commits) before its message leaves.
 * Alice's client here and Bob's in a process of its own, over HTTP on loopback:
 *
 * - "one pair": ONE channel pair, one swap alone (in flight 1) and 256 in flight;
 * - "spread": 64 channel pairs between the same two parties, 256 swaps in flight spread over them;
 * - "process" (not run by default): both parties in one process over an in-memory link, 1 to 1,000 pairs.
 *
 * Prints swaps/s and p50/p99 latency beside the raw cost of the signatures and recoveries one swap needs (the crypto
 * bound), and records them in docs/BENCHMARKS.md and docs/bench-swaps.json.
 *
 *   npm run bench:swaps
 *   BENCH_PAIR_SWAPS=2048 BENCH_SWAPS_HTTP=2048 npm run bench:swaps        # shorter
 *   BENCH_PARTS=process BENCH_SWAPS=1000 BENCH_CHANNELS=1,10 BENCH_IN_FLIGHT=1,8 npm run bench:swaps
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hexlify, JsonRpcProvider, randomBytes, SigningKey } from "ethers";
import { network } from "hardhat";

import {
  cryptoBackend,
  encode,
  hashBackend,
  HttpTransport,
  hubDomain,
  InMemoryLink,
  recoverSigner,
  signDigest,
  stateDigest,
  type ClientEvent,
  type Hex,
  rpcProvider,
  type Transport,
} from "../sdk/index.js";
import { ChannelHub__factory } from "../typechain-types/index.js";
import { deployHub, localWallet } from "./lib/local.js";
import { startPeer } from "./lib/peer-process.js";
import { benchClient, pairSpecs, type PairSpec, expectedChannel, syncDeposits } from "./lib/swap-setup.js";
import { replaceSection } from "./lib/bench-doc.js";
import { startPostgres } from "../test/helpers/postgres.js";

const SWAPS = Number(process.env.BENCH_SWAPS ?? 10_000);
const HTTP_SWAPS = Number(process.env.BENCH_SWAPS_HTTP ?? 8192);
const CHANNELS = (process.env.BENCH_CHANNELS ?? "1,10,100,1000").split(",").map(Number);
/** Swaps in flight at once (each on a channel pair of its own, so at most the number of pairs): one run per value. */
const IN_FLIGHT = (process.env.BENCH_IN_FLIGHT ?? "1,128").split(",").map(Number);
const inFlightFor = (channels: number) => [...new Set(IN_FLIGHT.map((n) => Math.min(n, channels)))];
/** "spread": channel pairs between the same two parties, and the swaps in flight spread over them. */
const HTTP_CHANNELS = Number(process.env.BENCH_HTTP_CHANNELS ?? 64);
const HTTP_IN_FLIGHT = (process.env.BENCH_HTTP_IN_FLIGHT ?? "256").split(",").map(Number);
/** ONE channel pair run with batched updates, two processes over HTTP: swaps per run, and the levels in flight. */
const PAIR_SWAPS = Number(process.env.BENCH_PAIR_SWAPS ?? 8192);
const PAIR_IN_FLIGHT = (process.env.BENCH_PAIR_IN_FLIGHT ?? "1,256").split(",").map(Number);
/** Which parts run: "pair" (ONE pair), "spread" (two processes, many pairs), "process" (one process, many pairs). */
const PARTS = new Set((process.env.BENCH_PARTS ?? "pair,spread").split(",").map((p) => (p === "http" ? "spread" : p)));
const dir = mkdtempSync(join(tmpdir(), "bench-swaps-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------- the crypto bound
/** Cost of one call (ms): the median of 7 rounds, so a round disturbed by the machine does not move it. */
function perOp(fn: (i: number) => unknown, n: number): number {
  for (let i = 0; i < 200; i++) fn(i);
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    rounds.push((performance.now() - t) / n);
  }
  return rounds.sort((x, y) => x - y)[3]!;
}
// A swap never signs or recovers the same digest twice: the bound cycles through distinct digests and signatures
// (recovering one signature over and over measures a few per cent cheaper than that).
const RING = 256;
const key = new SigningKey(hexlify(randomBytes(32)));
const digests = Array.from({ length: RING }, () => hexlify(randomBytes(32)) as Hex);
const signatures = digests.map((d) => signDigest(key, d));
const digest = digests[0]!;
/** What one signature and one recovery cost right now, in this process (measured again before every run). */
const cryptoCost = () => ({
  signMs: perOp((i) => signDigest(key, digests[i % RING]!), 1000),
  recoverMs: perOp((i) => recoverSigner(digests[i % RING]!, signatures[i % RING]!), 1000),
});
const sampleState = {
  channelId: digest,
  seq: 12n,
  deposits: [10n ** 18n, 10n ** 18n] as const,
  balances: [10n ** 18n - 1000n, 10n ** 18n] as const,
  locks: [{ sender: 0 as const, amount: 1000n, hashlock: digest, expiry: 1_800_000_000n }],
  isFinal: false,
};
const { signMs, recoverMs } = cryptoCost();
const hashMs = perOp(() => stateDigest(hubDomain(31337n, "0x5FbDB2315678afecb367f032d93F642f64180aa3"), sampleState), 1000);
console.log(`crypto (${cryptoBackend}, keccak ${hashBackend}): sign ${(signMs * 1000).toFixed(1)} us, recover ${(recoverMs * 1000).toFixed(1)} us, state digest ${(hashMs * 1000).toFixed(1)} us`);

// ---------------------------------------------------------------- helpers
type Run = { mode: string; channels: number; inFlight: number; swaps: number; seconds: number; swapsPerSecond: number; p50Ms: number; p99Ms: number; signsPerSwap: number; recoveriesPerSwap: number; boundSwapsPerSecond: number; ofBound: number; failed: number; cpuMsPerSwap: number; peerCpuMsPerSwap?: number; signUs: number; recoverUs: number };
const runs: Run[] = [];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/** Resolves when the named party reports the swap done. */
class Completion {
  private readonly waiting = new Map<string, (outcome: string) => void>();
  private readonly done = new Map<string, string>();
  on = (e: ClientEvent) => {
    if (e.type !== "phase" || e.phase.kind !== "done") return;
    const resolve = this.waiting.get(e.swapId);
    if (resolve) resolve(e.phase.outcome);
    else this.done.set(e.swapId, e.phase.outcome);
  };
  wait(swapId: string): Promise<string> {
    const known = this.done.get(swapId);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => this.waiting.set(swapId, resolve));
  }
}

async function deployHubs(rpc: { source: JsonRpcProvider; target: JsonRpcProvider }) {
  return { source: await deployHub(rpc.source), target: await deployHub(rpc.target) };
}

const indexOf = (params: PairSpec["sourceParams"], who: string) => params.participants.findIndex((a) => a.toLowerCase() === who.toLowerCase());

async function openPairs(rpc: { source: JsonRpcProvider; target: JsonRpcProvider }, hubs: { source: string; target: string }, pairs: PairSpec[]) {
  const alice = ChannelHub__factory.connect(hubs.source, localWallet(1, rpc.source));
  const bob = ChannelHub__factory.connect(hubs.target, localWallet(2, rpc.target));
  const amount = 10n ** 18n;
  const nonces = { a: await rpc.source.getTransactionCount(localWallet(1, rpc.source).address), b: await rpc.target.getTransactionCount(localWallet(2, rpc.target).address) };
  const sent = [];
  for (const p of pairs) {
    const arg = (x: PairSpec["sourceParams"]) => ({ participants: [x.participants[0], x.participants[1]] as [string, string], payees: [x.payees[0], x.payees[1]] as [string, string], asset: x.asset, challengePeriod: x.challengePeriod, nonce: x.nonce });
    // One transaction per chain at a time: an automining node refuses a nonce that arrives ahead of its turn.
    sent.push(...(await Promise.all([
      alice.openAndDeposit(arg(p.sourceParams), indexOf(p.sourceParams, localWallet(1, rpc.source).address), amount, { value: amount, nonce: nonces.a++ }),
      bob.openAndDeposit(arg(p.targetParams), indexOf(p.targetParams, localWallet(2, rpc.target).address), amount, { value: amount, nonce: nonces.b++ }),
    ])));
  }
  await Promise.all(sent.map((t) => t.wait()));
}

/**
 * Runs `swaps` swaps with `inFlight` of them at a time, each on a channel pair of its own: worker w proposes on the
 * pairs w, w + inFlight, w + 2 inFlight, ... in turn and waits for each swap to finish before its next one.
 */
async function runSwaps(mode: string, channels: number, inFlight: number, swaps: number, propose: (pair: number) => Promise<string>, completions: Completion[], signs: () => number, parallel = false) {
  const latencies: number[] = [];
  let failed = 0;
  const { signMs, recoverMs } = cryptoCost();
  const signsBefore = signs();
  const cpu0 = process.cpuUsage();
  const from = process.hrtime.bigint() / 1000n;
  const t0 = performance.now();
  const worker = async (w: number) => {
    for (let k = 0; k < Math.floor(swaps / inFlight) + (w < swaps % inFlight ? 1 : 0); k++) {
      const start = performance.now();
      const swapId = await propose((w + k * inFlight) % channels); // spread over the pairs, each worker in turn
      const outcomes = await Promise.all(completions.map((c) => c.wait(swapId)));
      latencies.push(performance.now() - start);
      if (outcomes.some((o) => o !== "swapped")) failed++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  // Every signature one party makes, the other recovers once. Two processes sign and recover in parallel: the bound
  // is then one process's share (the parties' shares are alike when each proposes on half the channels).
  const signsPerSwap = (signs() - signsBefore) / swaps;
  const cryptoMs = (parallel ? signsPerSwap / 2 : signsPerSwap) * (signMs + recoverMs);
  const run: Run = {
    mode, channels, inFlight, swaps, seconds,
    swapsPerSecond: swaps / seconds,
    p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99),
    signsPerSwap,
    recoveriesPerSwap: signsPerSwap,
    boundSwapsPerSecond: 1000 / cryptoMs,
    ofBound: swaps / seconds / (1000 / cryptoMs),
    failed,
    cpuMsPerSwap: (cpu.user + cpu.system) / 1000 / swaps,
    signUs: signMs * 1000,
    recoverUs: recoverMs * 1000,
  };
  runs.push(run);
  // The run's window on the machine's monotonic clock (us), to cut a `--cpu-prof` profile of either process to it.
  console.log(`  window ${from} ${process.hrtime.bigint() / 1000n}`);
  console.log(`${mode.padEnd(22)} ${String(channels).padStart(5)} pairs, ${String(inFlight).padStart(3)} at a time, ${String(swaps).padStart(6)} swaps: ${run.swapsPerSecond.toFixed(1)} swaps/s, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, ${(run.ofBound * 100).toFixed(1)} % of the crypto bound (${run.boundSwapsPerSecond.toFixed(0)}/s), failed ${failed}, this process's CPU ${run.cpuMsPerSwap.toFixed(2)} ms/swap`);
}

async function jsonRpcChains() {
  const servers = await Promise.all([network.createServer("source", "127.0.0.1", 0), network.createServer("target", "127.0.0.1", 0)]);
  const urls = await Promise.all(servers.map(async (s) => {
    const { address, port } = await s.listen();
    return `http://${address}:${port}`;
  }));
  const rpc = { source: rpcProvider(urls[0]!), target: rpcProvider(urls[1]!) };
  const close = async () => {
    rpc.source.destroy();
    rpc.target.destroy();
    await Promise.all(servers.map((s) => s.close()));
  };
  return { urls: { source: urls[0]!, target: urls[1]! }, rpc, close };
}

// ---------------------------------------------------------------- one process, in-memory link
const DURABILITY = (process.env.BENCH_DURABILITY ?? "power,crash").split(",") as ("power" | "crash")[];
const configs = CHANNELS.map((channels) => ({ channels, durability: "power" as const }));
if (DURABILITY.includes("crash")) configs.push({ channels: CHANNELS.includes(100) ? 100 : CHANNELS[0]!, durability: "crash" as never });
for (const { channels, durability } of PARTS.has("process") ? configs : []) {
  const { rpc, close } = await jsonRpcChains();
  const hubs = await deployHubs(rpc);
  const pairs = pairSpecs(channels, localWallet(1, rpc.source).address, localWallet(2, rpc.source).address, BigInt(channels));
  await openPairs(rpc, hubs, pairs);
  const link = new InMemoryLink();
  const [ca, cb] = [new Completion(), new Completion()];
  let signs = 0;
  const count = (n: number) => (signs += n);
  const alice = await benchClient(1, hubs, { source: localWallet(1, rpc.source), target: localWallet(1, rpc.target) }, link.a, join(dir, `a-${channels}-${durability}.sqlite`), ca.on, count, durability);
  const bob = await benchClient(2, hubs, { source: localWallet(2, rpc.source), target: localWallet(2, rpc.target) }, link.b, join(dir, `b-${channels}-${durability}.sqlite`), cb.on, count, durability);
  const ids: { s: Hex; t: Hex }[] = [];
  for (const p of pairs) {
    const s = await alice.client.addChannel(alice.chains[0].chainId, p.sourceParams, expectedChannel(p.sourceParams, alice.client.address));
    const t = await alice.client.addChannel(alice.chains[1].chainId, p.targetParams, expectedChannel(p.targetParams, alice.client.address));
    await bob.client.addChannel(bob.chains[0].chainId, p.sourceParams, expectedChannel(p.sourceParams, bob.client.address));
    await bob.client.addChannel(bob.chains[1].chainId, p.targetParams, expectedChannel(p.targetParams, bob.client.address));
    ids.push({ s, t });
  }
  await syncDeposits([alice.client, bob.client], ids.flatMap((i) => [i.s, i.t]));
  for (const inFlight of inFlightFor(channels)) {
    await runSwaps(`one process, ${durability === "power" ? "sync" : "no sync"}`, channels, inFlight, SWAPS, (i) => alice.client.propose({ source: ids[i]!.s, target: ids[i]!.t, give: 1000n, take: 10n }), [ca, cb], () => signs);
  }
  alice.store.close();
  bob.store.close();
  await close();
}

// ---------------------------------------------------------------- many pairs, two processes over HTTP
if (PARTS.has("spread")) {
  const channels = HTTP_CHANNELS;
  const { urls, rpc, close } = await jsonRpcChains();
  const hubs = await deployHubs(rpc);
  const pairs = pairSpecs(channels, localWallet(1, rpc.source).address, localWallet(2, rpc.source).address, 99n);
  await openPairs(rpc, hubs, pairs);
  const { child, says } = startPeer("scripts/lib/bench-peer.ts", { BENCH_PEER: encode({ rpc: urls, hubs, pairs, store: join(dir, "peer.sqlite") }) });
  const peerSays = async (pattern: RegExp) => (await says(pattern))[1]!;
  const peerCpuUs = async () => {
    child.stdin.write("cpu\n");
    return Number(await peerSays(/PEER_CPU=(\d+)/));
  };
  const peerUrl = await peerSays(/PEER_URL=(\S+)/);
  const transport: Transport & { connect(url: string): void; url: string; close(): Promise<void> } = await HttpTransport.start(0, peerUrl);
  child.stdin.write(`${transport.url}\n`);
  const ca = new Completion();
  let signs = 0;
  const alice = await benchClient(1, hubs, { source: localWallet(1, rpc.source), target: localWallet(1, rpc.target) }, transport, join(dir, "a-http.sqlite"), ca.on, (n) => (signs += n));
  const ids: { s: Hex; t: Hex }[] = [];
  for (const p of pairs) ids.push({ s: await alice.client.addChannel(alice.chains[0].chainId, p.sourceParams, expectedChannel(p.sourceParams, alice.client.address)), t: await alice.client.addChannel(alice.chains[1].chainId, p.targetParams, expectedChannel(p.targetParams, alice.client.address)) });
  await syncDeposits([alice.client], ids.flatMap((i) => [i.s, i.t])); // Bob's process answers the updates
  // Alice's signatures are counted here; Bob's (in the other process) are the same number by symmetry of the protocol.
  child.stdin.write("ready\n"); // the peer ticks (resends) from here on
  const ticker = setInterval(() => void alice.client.tick().catch(() => undefined), 200);
  for (const inFlight of HTTP_IN_FLIGHT) {
    const peerCpu0 = await peerCpuUs();
    await runSwaps("spread, HTTP, sync", channels, inFlight, HTTP_SWAPS, (i) => alice.client.propose({ source: ids[i]!.s, target: ids[i]!.t, give: 1000n, take: 10n }), [ca], () => signs * 2, true);
    const run = runs[runs.length - 1]!;
    run.peerCpuMsPerSwap = ((await peerCpuUs()) - peerCpu0) / 1000 / run.swaps;
    console.log(`  the peer process's CPU: ${run.peerCpuMsPerSwap.toFixed(2)} ms/swap`);
  }
  clearInterval(ticker);
  child.stdin.end();
  await new Promise((r) => child.once("exit", r));
  alice.store.close();
  await transport.close();
  await close();
}

// ---------------------------------------------------------------- ONE pair, batched updates, two processes over HTTP
/**
 * Alice's store in the "one pair" runs: her SQLite file, and (BENCH_PAIR_STORES) a PostgreSQL database on this
 * machine that the benchmark starts (every commit there first, under her term, as a node kept in PostgreSQL does).
 */
const PAIR_STORES = (process.env.BENCH_PAIR_STORES ?? "sqlite,postgres").split(",");
for (const storeKind of PARTS.has("pair") ? PAIR_STORES : []) {
  const pg = storeKind === "postgres" ? await startPostgres() : undefined;
  const aliceStore = pg === undefined ? join(dir, "a-pair.sqlite") : await pg.createDatabase("alice");
  const mode = `one pair, HTTP, ${pg === undefined ? "sync" : "PostgreSQL"}`;
  const { urls, rpc, close } = await jsonRpcChains();
  const hubs = await deployHubs(rpc);
  const [a, b] = [localWallet(1, rpc.source).address, localWallet(2, rpc.source).address];
  // As nodes open a pair: each party opens the channel on the chain where it gives, as its participant 0, and so
  // proposes that channel's batches (Alice on S, Bob on T). BENCH_PAIR_LAYOUT=same makes Alice participant 0 of both.
  const crossed = (process.env.BENCH_PAIR_LAYOUT ?? "crossed") === "crossed";
  const pairs = pairSpecs(1, a, b, 7n).map((p) => (crossed ? { ...p, targetParams: { ...p.targetParams, participants: [b, a] as const } } : p));
  await openPairs(rpc, hubs, pairs);
  const { child, says } = startPeer("scripts/lib/bench-peer.ts", { BENCH_PEER: encode({ rpc: urls, hubs, pairs, store: join(dir, `peer-pair-${storeKind}.sqlite`) }) });
  const peerUsage = async () => {
    child.stdin.write("cpu\n");
    const m = await says(/PEER_CPU=(\d+) PEER_SIGNS=(\d+)/);
    return { cpuUs: Number(m[1]), signs: Number(m[2]) };
  };
  const peerUrl = (await says(/PEER_URL=(\S+)/))[1]!;
  const transport = await HttpTransport.start(0, peerUrl);
  child.stdin.write(`${transport.url}\n`);
  const ca = new Completion();
  let signs = 0;
  const alice = await benchClient(1, hubs, { source: localWallet(1, rpc.source), target: localWallet(1, rpc.target) }, transport, aliceStore, ca.on, (n) => (signs += n));
  const p = pairs[0]!;
  const s = await alice.client.addChannel(alice.chains[0].chainId, p.sourceParams, expectedChannel(p.sourceParams, alice.client.address));
  const t = await alice.client.addChannel(alice.chains[1].chainId, p.targetParams, expectedChannel(p.targetParams, alice.client.address));
  child.stdin.write("ready\n");
  await Promise.all([s, t].map((id) => alice.client.syncDeposits(id)));
  await says(/PEER_READY=1/);
  const ticker = setInterval(() => void alice.client.tick().catch(() => undefined), 200);
  for (const inFlight of PAIR_IN_FLIGHT) {
    const before = await peerUsage();
    const mine = signs;
    await runSwaps(mode, 1, inFlight, PAIR_SWAPS, () => alice.client.propose({ source: s, target: t, give: 1000n, take: 10n }), [ca], () => signs);
    const after = await peerUsage();
    const run = runs[runs.length - 1]!;
    // Every signature one party makes, the other recovers once: recoveries per swap equal signatures per swap.
    const [aliceSigns, bobSigns] = [(signs - mine) / run.swaps, (after.signs - before.signs) / run.swaps];
    run.signsPerSwap = aliceSigns + bobSigns;
    run.recoveriesPerSwap = aliceSigns + bobSigns;
    // The two processes sign and recover in parallel: the bound is the busier one's crypto (each recovers what the
    // other signs).
    const busier = Math.max(aliceSigns * run.signUs + bobSigns * run.recoverUs, bobSigns * run.signUs + aliceSigns * run.recoverUs) / 1000;
    run.boundSwapsPerSecond = 1000 / busier;
    run.ofBound = run.swapsPerSecond / run.boundSwapsPerSecond;
    run.peerCpuMsPerSwap = (after.cpuUs - before.cpuUs) / 1000 / run.swaps;
    console.log(`  ${run.signsPerSwap.toFixed(2)} signatures and as many recoveries per swap (both parties); the peer process's CPU: ${run.peerCpuMsPerSwap.toFixed(2)} ms/swap`);
  }
  clearInterval(ticker);
  child.stdin.end();
  await new Promise((r) => child.once("exit", r));
  await alice.client.idle();
  alice.store.close();
  await transport.close();
  await close();
  await pg?.destroy();
}

// ---------------------------------------------------------------- record
const json = { cryptoBackend, hashBackend, signUs: signMs * 1000, recoverUs: recoverMs * 1000, stateDigestUs: hashMs * 1000, runs };
writeFileSync(new URL("../docs/bench-swaps.json", import.meta.url), JSON.stringify(json, null, 2) + "\n");
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const section = [
  "Measured by `npm run bench:swaps`. Alice's client proposes swaps, \"in flight\" at a time (1: one after the other;",
  "more: as many workers, each waiting for its swap before proposing the next), to Bob's client in a process of its own,",
  "over HTTP on loopback; \"one pair\" runs every swap on ONE channel pair, \"spread\" over 64 pairs between the same",
  "two parties. Each party persists every protocol step to its own SQLite file before the messages that depend on it",
  "leave (\"sync\": on disk, survives a power cut; \"PostgreSQL\": Alice's store kept in a PostgreSQL server on this machine, each",
  "commit there first in one transaction that checks her term, as a node kept in PostgreSQL runs). Steps that arrive together share one commit and one log sync (group",
  "commit). A swap counts when Alice's client reports it done. Signatures are counted in both processes (states and",
  "terms; envelopes carry authenticators once the parties know each other's keys) and each is recovered once by the",
  "other; the crypto bound is what one process's share of them costs (the two sign and recover in parallel), measured",
  `just before each run (median of 7 rounds over ${RING} distinct digests; ${cryptoBackend}, keccak ${hashBackend}). CPU is each process's`,
  "own CPU time per swap (user + system, including its I/O threads), Alice's / Bob's. Both clients tick every 200 ms.",
  "",
  "| mode | pairs | in flight | swaps | swaps/s | p50 ms | p99 ms | signatures / recoveries per swap | CPU ms/swap | sign / recover us | crypto bound swaps/s | of bound | failed |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...runs.map((r) =>
    `| ${r.mode} | ${r.channels} | ${r.inFlight} | ${r.swaps} | ${f1(r.swapsPerSecond)} | ${f2(r.p50Ms)} | ${f2(r.p99Ms)} | ${f2(r.signsPerSwap)} / ${f2(r.recoveriesPerSwap)} | ${f2(r.cpuMsPerSwap)}${r.peerCpuMsPerSwap === undefined ? "" : ` / ${f2(r.peerCpuMsPerSwap)}`} | ${f1(r.signUs)} / ${f1(r.recoverUs)} | ${r.boundSwapsPerSecond.toFixed(0)} | ${f1(r.ofBound * 100)} % | ${r.failed} |`,
  ),
].join("\n");
replaceSection("swaps", section);
process.exit(0);
