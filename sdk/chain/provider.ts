import { JsonRpcProvider } from "ethers";

/**
 * A JSON-RPC provider for the SDK: every request goes out at once (ethers otherwise holds requests up to 10 ms to
 * batch them, which dominates an off-chain swap's latency), and no response is served from a cache, so chain time
 * and channel status are always current. The chain id is asked once (`staticNetwork`): ethers otherwise sends an
 * `eth_chainId` before every request, half of all a node sends; `HubAdapter.servedChainId` asks it again (the node's
 * heartbeat checks it).
 */
export function rpcProvider(url: string): JsonRpcProvider {
  return new JsonRpcProvider(url, undefined, { cacheTimeout: -1, batchMaxCount: 1, batchStallTime: 0, staticNetwork: true });
}
