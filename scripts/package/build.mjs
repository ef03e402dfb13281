// The package's build, after `hardhat build` and `tsc -p tsconfig.build.json`: writes the hub's and the registry's
// ABI and bytecode to abi/ (imported as `crosschain-channels/abi/ChannelHub.json`). Plain JavaScript: it runs where
// the package is packed, with no TypeScript loader.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const contracts = [
  ["ChannelHub", "contracts/ChannelHub.sol/ChannelHub.json"],
  ["SecretRegistry", "contracts/SecretRegistry.sol/SecretRegistry.json"],
  ["IChannelHub", "contracts/interfaces/IChannelHub.sol/IChannelHub.json"],
  ["ISecretRegistry", "contracts/interfaces/ISecretRegistry.sol/ISecretRegistry.json"],
];
mkdirSync(join(root, "abi"), { recursive: true });
for (const [name, path] of contracts) {
  const artifact = JSON.parse(readFileSync(join(root, "artifacts", path), "utf8"));
  const out = { contractName: name, abi: artifact.abi, bytecode: artifact.bytecode, deployedBytecode: artifact.deployedBytecode };
  writeFileSync(join(root, "abi", `${name}.json`), `${JSON.stringify(out, null, 2)}\n`);
}
console.log(`abi/: ${contracts.map(([n]) => n).join(", ")}`);
