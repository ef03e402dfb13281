/**
 * Bob's side of `npm run bench:batched` over HTTP, in a process of its own: a BatchedNode answering Alice's swaps.
 * Configured by the BATCHED_NODE JSON in the environment; prints PEER_URL=… once listening. Lines on stdin: Alice's
 * URL to connect to; "counts" to print PEER_COUNTS=… (its cryptography) and PEER_CPU=… (its CPU time, us).
 */
import { encode } from "../../sdk/core/codec.js";
import { BatchedNode, peerConfig } from "./batched-node.js";

const node = await BatchedNode.start(peerConfig(process.env.BATCHED_NODE ?? ""));
process.stdin.on("data", (chunk: Buffer) => {
  for (const line of chunk.toString().split("\n").map((l) => l.trim())) {
    if (line.startsWith("http")) node.transport.connect(line);
    if (line === "counts") {
      const { user, system } = process.cpuUsage();
      console.log(`PEER_COUNTS=${encode(node.counts)} PEER_CPU=${user + system}`);
    }
  }
});
console.log(`PEER_URL=${node.transport.url}`);
await new Promise<void>((resolve) => process.stdin.on("end", () => resolve()));
await node.close();
process.exit(0);
