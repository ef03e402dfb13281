/**
 * The batched update scheme on ONE channel pair, both parties in one process (Counterparty, each on its own SQLite
 * store, every step a committed transaction without fsync): how many state signatures, recoveries and messages a
 * swap costs at 1 to 256 swaps in flight, and how many swaps per second that sustains on one core (no network,
 * no chain: not yet a client's figure).
 *
 *   npm run bench:batched     # prints a table, rewrites the batched section of docs/BENCHMARKS.md
 *
 * The network is delivered in rounds: each round hands every party everything sent in the round before, as one
 * network latency would. New swaps start at the beginning of a round while fewer than the level are open.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Wallet } from "ethers";

import { decode, encode } from "../sdk/core/codec.js";

import { settled } from "../sdk/core/swap-rules.js";
import { cryptoBackend } from "../sdk/core/signing.js";
import { checkRun, Network, startSwap, type Name } from "./lib/batched-pair.js";
import { BatchedNode, type CryptoCounts } from "./lib/batched-node.js";
import { accountKey } from "./lib/local.js";
import { startPeer } from "./lib/peer-process.js";
import { replaceSection } from "./lib/bench-doc.js";

const SWAPS = Number(process.env.BATCHED_SWAPS ?? 2048);
const LEVELS = [1, 4, 16, 64, 256];

type Row = { inFlight: number; swaps: number; rounds: number; swapsPerRound: number; signsPerSwap: number; recoversPerSwap: number; messagesPerSwap: number; swapsPerSecond: number };

function run(level: number): Row {
  const net = new Network(BigInt(SWAPS));
  const swaps: { hashlock: string; initiator: Name; give: bigint; take: bigint }[] = [];
  const open = new Set<string>();
  let n = 0;
  let rounds = 0;
  const t0 = process.hrtime.bigint();
  while (swaps.length < SWAPS || open.size > 0) {
    for (const h of [...open]) if (settled(net.parties.A.swaps.get(h)!) && settled(net.parties.B.swaps.get(h)!)) open.delete(h);
    while (open.size < level && swaps.length < SWAPS) {
      const initiator: Name = n % 2 === 0 ? "A" : "B";
      const hashlock = startSwap(net, n++, initiator, 1n, 1n);
      if (hashlock === undefined) throw new Error("the deposits do not cover the swaps in flight");
      swaps.push({ hashlock, initiator, give: 1n, take: 1n });
      open.add(hashlock);
    }
    const round = net.inFlight.splice(0, net.inFlight.length);
    for (const p of round) net.parties[p.from === "A" ? "B" : "A"].handle(p);
    rounds++;
    if (round.length === 0 && open.size > 0) {
      net.parties.A.tick();
      net.parties.B.tick();
    }
    if (rounds > 100 * SWAPS) throw new Error("no progress");
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  checkRun(net, swaps);
  net.close();
  const signs = net.parties.A.signatures + net.parties.B.signatures;
  return {
    inFlight: level,
    swaps: swaps.length,
    rounds,
    swapsPerRound: swaps.length / rounds,
    signsPerSwap: signs / swaps.length,
    recoversPerSwap: signs / swaps.length, // each state signature is recovered once by the other party
    messagesPerSwap: net.sent / swaps.length,
    swapsPerSecond: swaps.length / seconds,
  };
}

const rows = LEVELS.map(run);

// ---------------------------------------------------------------- two processes over HTTP, every step on disk

const HTTP_SWAPS = Number(process.env.BATCHED_HTTP_SWAPS ?? 1024);
const HTTP_LEVELS = [1, 16, 64, 256];
type HttpRow = { inFlight: number; swaps: number; swapsPerSecond: number; p50Ms: number; p99Ms: number; signsPerSwap: number; stateSignsPerSwap: number; recoveriesPerSwap: number; cpuMsPerSwap: number; peerCpuMsPerSwap: number };

async function httpRuns(): Promise<HttpRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "bench-batched-"));
  const [aliceKey, bobKey] = [1, 2].map((i) => accountKey(i));
  const [alice, bob] = [aliceKey!, bobKey!].map((k) => new Wallet(k).address) as [string, string];
  const deposit = BigInt(HTTP_SWAPS * HTTP_LEVELS.length + 1);
  const { child, says: peerSays } = startPeer("scripts/lib/batched-peer.ts", {
    BATCHED_NODE: encode({ role: "responder", privateKey: bobKey, peerAddress: alice, store: join(dir, "bob.sqlite"), durability: "power", deposit }),
  });
  const peer = async () => {
    child.stdin.write("counts\n");
    const m = await peerSays(/PEER_COUNTS=(\S+) PEER_CPU=(\d+)/);
    return { counts: decode<CryptoCounts>(m[1]!), cpuUs: Number(m[2]) };
  };
  const url = (await peerSays(/PEER_URL=(\S+)/))[1]!;
  const node = await BatchedNode.start({ role: "initiator", privateKey: aliceKey!, peerAddress: bob!, store: join(dir, "alice.sqlite"), durability: "power", deposit });
  node.transport.connect(url);
  child.stdin.write(`${node.transport.url}\n`);
  const rows: HttpRow[] = [];
  const total = (c: CryptoCounts) => c.stateSigns + c.envelopeSigns + c.termsSigns;
  for (const level of HTTP_LEVELS) {
    const [a0, p0, cpu0] = [{ ...node.counts }, await peer(), process.cpuUsage()];
    const latencies: number[] = [];
    let started = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let done = 0;
      const next = () => {
        if (started >= HTTP_SWAPS) return;
        started++;
        const t = performance.now();
        void node.swap(1n, 1n).then(() => {
          latencies.push(performance.now() - t);
          if (++done === HTTP_SWAPS) resolve();
          else next();
        });
      };
      for (let i = 0; i < level; i++) next();
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const p1 = await peer();
    const a1 = node.counts;
    latencies.sort((x, y) => x - y);
    const q = (f: number) => latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))]!;
    const signs = total(a1) - total(a0) + total(p1.counts) - total(p0.counts);
    rows.push({
      inFlight: level,
      swaps: HTTP_SWAPS,
      swapsPerSecond: HTTP_SWAPS / seconds,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      signsPerSwap: signs / HTTP_SWAPS,
      stateSignsPerSwap: (a1.stateSigns - a0.stateSigns + p1.counts.stateSigns - p0.counts.stateSigns) / HTTP_SWAPS,
      recoveriesPerSwap: (a1.recoveries - a0.recoveries + p1.counts.recoveries - p0.counts.recoveries) / HTTP_SWAPS,
      cpuMsPerSwap: (cpu.user + cpu.system) / 1000 / HTTP_SWAPS,
      peerCpuMsPerSwap: (p1.cpuUs - p0.cpuUs) / 1000 / HTTP_SWAPS,
    });
    console.log(`http, ${level} in flight: ${rows.at(-1)!.swapsPerSecond.toFixed(0)} swaps/s`);
  }
  child.stdin.end();
  await node.close();
  await new Promise((r) => child.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
  return rows;
}

const httpRows = await httpRuns();
const f2 = (x: number) => x.toFixed(2);
const section = [
  `Batched updates on one channel pair (\`npm run bench:batched\`, ${SWAPS} swaps per level, swaps in both directions, ${cryptoBackend}`,
  "ECDSA): both parties' Counterparty in one process, each on its own SQLite store, every step a committed transaction",
  "(durability \"crash\": no fsync); no network and no chain, so swaps/s is both parties' work on one core.",
  "Signatures and recoveries count channel states only; a client adds one envelope signature and recovery per message.",
  "A round is one network latency: swaps per round is the one-pair throughput at 1 ms latency, in thousands per second.",
  "",
  "| in flight | swaps | rounds | swaps per round | state signatures / swap | recoveries / swap | messages / swap | swaps/s |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map((r) => `| ${r.inFlight} | ${r.swaps} | ${r.rounds} | ${f2(r.swapsPerRound)} | ${f2(r.signsPerSwap)} | ${f2(r.recoversPerSwap)} | ${f2(r.messagesPerSwap)} | ${r.swapsPerSecond.toFixed(0)} |`),
].join("\n");
const httpSection = [
  "",
  `Two processes over HTTP on loopback (Alice and Bob, \`BatchedNode\` in scripts/lib/batched-node.ts), ${HTTP_SWAPS} swaps per level`,
  "on one pair, every step a transaction on disk (durability \"power\": fdatasync per step). Terms are agreed in",
  "bulk (the proposals of one event-loop turn in one envelope, their acceptances in one envelope, agreed in one step;",
  "each swap's terms still signed by both), then the swaps run in batches. Signatures and recoveries count",
  "everything both parties did: states, envelopes and terms. Latency is from proposing to settled at Alice.",
  "",
  "| in flight | swaps | swaps/s | p50 ms | p99 ms | signatures / swap | of which states | recoveries / swap | CPU ms/swap Alice / Bob |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...httpRows.map((r) => `| ${r.inFlight} | ${r.swaps} | ${r.swapsPerSecond.toFixed(0)} | ${f2(r.p50Ms)} | ${f2(r.p99Ms)} | ${f2(r.signsPerSwap)} | ${f2(r.stateSignsPerSwap)} | ${f2(r.recoveriesPerSwap)} | ${f2(r.cpuMsPerSwap)} / ${f2(r.peerCpuMsPerSwap)} |`),
].join("\n");
console.log(section);
console.log(httpSection);
replaceSection("batched", section + "\n" + httpSection);
process.exit(0);
