/**
 * Bob's side of `npm run bench:swaps` in a process of its own: a SwapClient over HTTP on loopback, answering
 * Alice's swaps. Configured by the BENCH_PEER JSON in the environment; prints PEER_URL=… once listening, and
 * PEER_CPU=… (its CPU time in microseconds) and PEER_SIGNS=… (the signatures it made) when asked. Told "ready",
 * it ticks every 200 ms and prints PEER_READY=1 once both ledgers of its first channel pair count the deposits.
 */
import { decode, HttpTransport, rpcProvider, type Hex } from "../../sdk/index.js";
import { localWallet } from "./local.js";
import { benchClient, type PairSpec, expectedChannel } from "./swap-setup.js";

type PeerConfig = { rpc: { source: string; target: string }; hubs: { source: string; target: string }; pairs: PairSpec[]; store: string };
const config = decode<PeerConfig>(process.env.BENCH_PEER ?? "");
const providers = {
  source: rpcProvider(config.rpc.source),
  target: rpcProvider(config.rpc.target),
};
const transport = await HttpTransport.start();
let signs = 0;
const { client } = await benchClient(
  2,
  config.hubs,
  { source: localWallet(2, providers.source), target: localWallet(2, providers.target) },
  transport,
  config.store,
  () => {},
  (n) => (signs += n),
);
const ids: Hex[] = [];
let ticker: NodeJS.Timeout | undefined;
const [sourceChainId, targetChainId] = [(await providers.source.getNetwork()).chainId, (await providers.target.getNetwork()).chainId];
for (const pair of config.pairs) {
  ids.push(await client.addChannel(sourceChainId, pair.sourceParams, expectedChannel(pair.sourceParams, client.address)));
  ids.push(await client.addChannel(targetChainId, pair.targetParams, expectedChannel(pair.targetParams, client.address)));
}
// Lines on stdin: Alice's URL to connect to, or "cpu" to print this process's CPU time so far (us).
process.stdin.on("data", (chunk: Buffer) => {
  for (const line of chunk.toString().split("\n").map((l) => l.trim())) {
    if (line.startsWith("http")) transport.connect(line);
    if (line === "cpu") {
      const { user, system } = process.cpuUsage();
      console.log(`PEER_CPU=${user + system} PEER_SIGNS=${signs}`);
    }
    if (line === "ready") {
      // Once both ledgers count the deposits here too (this side may propose one of the updates: it ticks).
      ticker = setInterval(() => void client.tick().catch(() => undefined), 200);
      void Promise.all(ids.slice(0, 2).map((id) => client.syncDeposits(id))).then(() => console.log("PEER_READY=1"));
    }
  }
});
console.log(`PEER_URL=${transport.url}`);
await new Promise<void>((resolve) => process.stdin.on("end", () => resolve()));
await transport.close();
if (ticker !== undefined) clearInterval(ticker);
await client.idle();
process.exit(0);
