/**
 * Deploys SecretRegistry + ChannelHub (Ignition module ChannelHubModule) to one or more networks of
 * hardhat.config.ts and prints one JSON line per network.
 *
 *   npx hardhat run scripts/deploy.ts                                  # localSource and localTarget
 *   NETWORKS=sepolia,baseSepolia npx hardhat run scripts/deploy.ts     # public testnets
 *
 * Local chains (ids 31337 and 31338) are deployed without a journal, since they restart empty. Any other chain
 * records its deployment in ignition/deployments/chain-<id>/, so a re-run resumes instead of redeploying.
 */
import { network } from "hardhat";

import ChannelHubModule from "../ignition/modules/ChannelHub.js";

const LOCAL_CHAIN_IDS = new Set([31337n, 31338n]);
const names = (process.env.NETWORKS ?? "localSource,localTarget")
  .split(",")
  .map((n) => n.trim())
  .filter((n) => n.length > 0);

for (const name of names) {
  const connection = await network.create(name);
  const chainId = (await connection.ethers.provider.getNetwork()).chainId;
  const deploymentId = LOCAL_CHAIN_IDS.has(chainId) ? undefined : `chain-${chainId}`;
  const { hub, registry } = await connection.ignition.deploy(ChannelHubModule, {
    ...(deploymentId === undefined ? {} : { deploymentId }),
    displayUi: false,
  });
  console.log(
    JSON.stringify({
      network: name,
      chainId: chainId.toString(),
      hub: await hub.getAddress(),
      registry: await registry.getAddress(),
    }),
  );
  await connection.close();
}
