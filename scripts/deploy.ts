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
 *
 * Errors are printed as `error: ...` lines: exit code 2 for an unknown network or a malformed DEPLOYER_PRIVATE_KEY
 * (never repeated), 1 for a failure while deploying.
 */
import { rmSync } from "node:fs";
import hre, { network } from "hardhat";

import ChannelHubModule from "../ignition/modules/ChannelHub.js";
import { ChannelSdkError, LOCAL_CHAIN_IDS } from "../sdk/index.js";
import { EnvVarError, privateKeyFromEnv, runMain } from "../sdk/node/index.js";

/** The scripts that start the local chains of hardhat.config.ts. */
const LOCAL_CHAIN_SCRIPTS: Readonly<Record<string, string>> = { localSource: "npm run chain:source", localTarget: "npm run chain:target" };

/**
 * A network that refused the connection, as one line: its name and its URL's origin (a path or query may hold an API
 * key), and for a local chain the script that starts it. Hardhat's own says only `HHE703: Cannot connect to the
 * network "localSource".`, naming neither. Any other error is left as it is.
 */
async function unreachable(name: string, error: unknown): Promise<unknown> {
  const config = hre.config.networks[name];
  if ((error as { errorCode?: unknown }).errorCode !== "HHE703" || config?.type !== "http") return error;
  const origin = new URL(await config.url.get()).origin;
  const start = LOCAL_CHAIN_SCRIPTS[name];
  return new ChannelSdkError(
    `${name}: no answer at ${origin}; ${start === undefined ? "check the URL and that the chain's endpoint is up" : `is the chain running? (${start} starts the local one)`}`,
  );
}

await runMain(async () => {
  const names = (process.env.NETWORKS ?? "localSource,localTarget")
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  const unknown = names.filter((n) => hre.config.networks[n] === undefined);
  if (unknown.length > 0) {
    throw new EnvVarError(
      "NETWORKS",
      `no network ${unknown.join(", ")} in hardhat.config.ts (known: ${Object.keys(hre.config.networks).join(", ")})`,
    );
  }
  // The public networks sign with DEPLOYER_PRIVATE_KEY. Hardhat only checks that it is hex: with 63 digits it
  // silently signs as another account, with fewer or out of range it ends in a stack trace asking for a Hardhat bug
  // report. Check it here first, never printing it. (A key in Hardhat's keystore is read by Hardhat alone; a
  // variable in the environment wins over it.)
  if (process.env.DEPLOYER_PRIVATE_KEY !== undefined) privateKeyFromEnv("DEPLOYER_PRIVATE_KEY");

  for (const name of names) {
    const connection = await network.create(name);
    const chainId = await connection.ethers.provider.getNetwork().then(
      (n) => n.chainId,
      async (error: unknown) => {
        await connection.close();
        throw await unreachable(name, error);
      },
    );
    const local = LOCAL_CHAIN_IDS.has(chainId);
    const deploymentId = local ? `local-${chainId}` : `chain-${chainId}`;
    if (local) {
      rmSync(new URL(`../ignition/deployments/${deploymentId}`, import.meta.url), { recursive: true, force: true });
    }
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
});
