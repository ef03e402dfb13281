/**
 * Deploys SecretRegistry + ChannelHub (Ignition module ChannelHubModule) to one or more networks of
 * hardhat.config.ts and prints one JSON line per network.
 *
 *   npx hardhat run scripts/deploy.ts                                  # localSource and localTarget
 *   NETWORKS=sepolia,baseSepolia npx hardhat run scripts/deploy.ts     # public testnets
 *
 * Every chain records its deployment in ignition/deployments/: public chains in chain-<id>/, so a re-run resumes
 * instead of redeploying; local chains (ids 31337, 31338) in local-<id>/, cleared first because a local node
 * restarts empty and an old journal would point at contracts that no longer exist.
 */
import { rmSync } from "node:fs";
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
  const local = LOCAL_CHAIN_IDS.has(chainId);
  const deploymentId = local ? `local-${chainId}` : `chain-${chainId}`;
  if (local) rmSync(new URL(`../ignition/deployments/${deploymentId}`, import.meta.url), { recursive: true, force: true });
  const { hub, registry } = await connection.ignition.deploy(ChannelHubModule, { deploymentId, displayUi: false });
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
