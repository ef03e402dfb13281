import hardhatToolboxMochaEthersPlugin from "@nomicfoundation/hardhat-toolbox-mocha-ethers";
import { configVariable, defineConfig } from "hardhat/config";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { stopAllChildren } from "./test/helpers/processes.js";

const require = createRequire(import.meta.url);
/** Mocha files run at once, each worker running one after another (MOCHA_JOBS; mocha runs in one process below 2). */
const MOCHA_JOBS = Number(process.env.MOCHA_JOBS ?? 4);

// The compiler is the WebAssembly build shipped in the `solc` npm package: no download at build time.
// Hardhat needs its absolute path and the exact version it contains.
const solc = {
  version: require("solc/package.json").version as string,
  path: require.resolve("solc/soljson.js"),
};

// Bytecode must run on every chain a hub is deployed to: pin the EVM to the oldest fork among current
// testnets and L2s, and run the simulated chains on the same fork.
const EVM = "prague";

export default defineConfig({
  plugins: [hardhatToolboxMochaEthersPlugin],
  solidity: {
    ...solc,
    settings: { optimizer: { enabled: true, runs: 10_000 }, evmVersion: EVM },
  },
  paths: { tests: { solidity: "test/solidity", mocha: "test/integration" } },
  typechain: { outDir: fileURLToPath(new URL("./typechain-types", import.meta.url)) },
  test: {
    mocha: {
      timeout: 120_000,
      // Test files run in worker processes, a few at once: most of the suite waits on chains mining on an interval
      // and on child processes, not on this machine's cores. MOCHA_JOBS=1 runs them one after another.
      parallel: MOCHA_JOBS > 1,
      jobs: MOCHA_JOBS,
      // Whatever process a test file started and did not stop (its suite's `after` failed or never ran) is stopped
      // once the file has run; the exit of the worker kills the rest (test/helpers/processes.ts). Each worker loads
      // the hook from a file (functions in the config do not reach mocha's workers); mocha in one process reads no
      // such file, so there it is given here and runs once the last file has run: without it, the run waited for
      // ever on what a file left.
      ...(MOCHA_JOBS > 1
        ? { require: [fileURLToPath(new URL("./test/helpers/root-hooks.ts", import.meta.url))] }
        : { rootHooks: { afterAll: stopAllChildren } }),
    },
    solidity: {
      fuzz: { runs: 512 },
      invariant: { runs: 64, depth: 32 },
      // Read-only, for the test that checks docs/PROTOCOL.md's event table against the interfaces' ABIs.
      fsPermissions: {
        readFile: [
          "./docs/PROTOCOL.md",
          "./artifacts/contracts/interfaces/IChannelHub.sol/IChannelHub.json",
          "./artifacts/contracts/interfaces/ISecretRegistry.sol/ISecretRegistry.json",
        ],
      },
    },
  },
  networks: {
    // Two in-process chains for tests: S (source) and T (target), with different chain ids.
    source: { type: "edr-simulated", chainType: "l1", chainId: 31337, hardfork: EVM },
    target: { type: "edr-simulated", chainType: "l1", chainId: 31338, hardfork: EVM },
    // What `npm run chain:source` / `chain:target` serve (`hardhat node --network ...`): the same chains, with a
    // block every 10 s besides the automatic ones, so an idle chain's clock (the last block's time) never falls
    // behind the nodes' clock-skew bound and swaps are not refused after a quiet spell.
    chainSource: { type: "edr-simulated", chainType: "l1", chainId: 31337, hardfork: EVM, mining: { auto: true, interval: 10_000 } },
    chainTarget: { type: "edr-simulated", chainType: "l1", chainId: 31338, hardfork: EVM, mining: { auto: true, interval: 10_000 } },
    // Two local JSON-RPC nodes (`npx hardhat node --port 8545` and `--port 8546 --chain-id 31338`).
    localSource: {
      type: "http",
      chainType: "l1",
      url: configVariable("SOURCE_RPC_URL", { default: "http://127.0.0.1:8545" }),
    },
    localTarget: {
      type: "http",
      chainType: "l1",
      url: configVariable("TARGET_RPC_URL", { default: "http://127.0.0.1:8546" }),
    },
    // Any EVM network by URL: set RPC_URL and DEPLOYER_PRIVATE_KEY (env or `npx hardhat keystore set`).
    custom: {
      type: "http",
      chainType: "generic",
      url: configVariable("RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
    sepolia: {
      type: "http",
      chainType: "l1",
      url: configVariable("SEPOLIA_RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
    baseSepolia: {
      type: "http",
      chainType: "op",
      url: configVariable("BASE_SEPOLIA_RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
    arbitrumSepolia: {
      type: "http",
      chainType: "generic",
      url: configVariable("ARBITRUM_SEPOLIA_RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
  },
  verify: {
    etherscan: { apiKey: configVariable("ETHERSCAN_API_KEY") },
    blockscout: { enabled: false },
    sourcify: { enabled: false },
  },
});
