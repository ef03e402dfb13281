import hardhatEthers from "@nomicfoundation/hardhat-ethers";
import hardhatEthersChaiMatchers from "@nomicfoundation/hardhat-ethers-chai-matchers";
import hardhatMocha from "@nomicfoundation/hardhat-mocha";
import hardhatNetworkHelpers from "@nomicfoundation/hardhat-network-helpers";
import { defineConfig } from "hardhat/config";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

// The compiler is the WebAssembly build in the `solc` npm package: nothing is downloaded (where Hardhat cannot fetch
// its compiler list, a build stops with HHE905). Hardhat wants its absolute path and the exact version it holds.
const solc = { version: require("solc/package.json").version as string, path: require.resolve("solc/soljson.js") };

export default defineConfig({
  plugins: [hardhatEthers, hardhatEthersChaiMatchers, hardhatMocha, hardhatNetworkHelpers],
  // `prague`: the EVM the package's hub is compiled for, and what current testnets and L2s run.
  solidity: { ...solc, settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "prague" } },
  test: { mocha: { timeout: 60_000 } },
});
