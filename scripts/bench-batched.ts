/**
 * The batched update scheme on ONE channel pair, both parties in one process (BatchedSwaps, each on its own SQLite
 * store, every step a committed transaction without fsync): how many state signatures, recoveries and messages a
 * swap costs at 1 to 256 swaps in flight, and how many swaps per second that sustains on one core (no network,
 * no chain: not yet a client's figure).
 *
 *   npm run bench:batched     # prints a table, rewrites the batched section of docs/BENCHMARKS.md
 *
 * The network is delivered in rounds: each round hands every party everything sent in the round before, as one
 * network latency would. New swaps start at the beginning of a round while fewer than the level are open.
 */
import { readFileSync, writeFileSync } from "node:fs";

import { settled } from "../sdk/core/swap-rules.js";
import { cryptoBackend } from "../sdk/core/signing.js";
import { checkRun, Network, startSwap, type Name } from "./lib/batched-pair.js";

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
const f2 = (x: number) => x.toFixed(2);
const section = [
  `Batched updates on one channel pair (\`npm run bench:batched\`, ${SWAPS} swaps per level, swaps in both directions, ${cryptoBackend}`,
  "ECDSA): both parties' BatchedSwaps in one process, each on its own SQLite store, every step a committed transaction",
  "(durability \"crash\": no fsync); no network and no chain, so swaps/s is both parties' work on one core.",
  "Signatures and recoveries count channel states only; a client adds one envelope signature and recovery per message.",
  "A round is one network latency: swaps per round is the one-pair throughput at 1 ms latency, in thousands per second.",
  "",
  "| in flight | swaps | rounds | swaps per round | state signatures / swap | recoveries / swap | messages / swap | swaps/s |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map((r) => `| ${r.inFlight} | ${r.swaps} | ${r.rounds} | ${f2(r.swapsPerRound)} | ${f2(r.signsPerSwap)} | ${f2(r.recoversPerSwap)} | ${f2(r.messagesPerSwap)} | ${r.swapsPerSecond.toFixed(0)} |`),
].join("\n");
console.log(section);
const file = new URL("../docs/BENCHMARKS.md", import.meta.url);
const text = readFileSync(file, "utf8");
const [start, end] = ["<!-- batched:start -->", "<!-- batched:end -->"];
if (text.includes(start)) writeFileSync(file, text.slice(0, text.indexOf(start) + start.length) + "\n" + section + "\n" + text.slice(text.indexOf(end)));
else writeFileSync(file, `${text.trimEnd()}\n\n## Many swaps on one pair (batched updates)\n\n${start}\n${section}\n${end}\n`);
