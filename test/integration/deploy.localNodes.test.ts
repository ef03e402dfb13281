import { expect } from "chai";
import { JsonRpcProvider } from "ethers";

import { accountKey } from "../../scripts/lib/local.js";
import { ChannelHub__factory } from "../../typechain-types/index.js";
import { channels } from "../helpers/cli.js";
import { freePort, runHardhat, runHardhatProcess, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

type Deployed = { network: string; chainId: string; hub: string; registry: string };

describe("deploy script against two hardhat node processes", function () {
  let nodes: LocalNode[] = [];

  before(async function () {
    nodes = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
  });

  after(async function () {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("deploys registry and hub on both JSON-RPC chains with their own chain ids", async function () {
    const [s, t] = nodes as [LocalNode, LocalNode];
    const out = await runHardhat(["run", "scripts/deploy.ts"], { SOURCE_RPC_URL: s.url, TARGET_RPC_URL: t.url });
    const lines = out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Deployed);
    expect(lines.map((l) => [l.network, l.chainId])).to.deep.equal([
      ["localSource", "31337"],
      ["localTarget", "31338"],
    ]);
    for (const [node, deployed] of [[s, lines[0]!], [t, lines[1]!]] as const) {
      const provider = new JsonRpcProvider(node.url);
      try {
        expect((await provider.getNetwork()).chainId).to.equal(node.chainId);
        const hub = ChannelHub__factory.connect(deployed.hub, provider);
        expect(await hub.secretRegistry()).to.equal(deployed.registry);
        expect(await hub.MAX_LOCKS()).to.equal(256n);
      } finally {
        provider.destroy();
      }
    }
  });

  it("a chain that is not running: one line naming the network, its URL and how to start it, from the script and from channels deploy", async function () {
    const closed = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const line = `error: localSource: no answer at ${closed}; is the chain running? (npm run chain:source starts the local one)\n`;
    const script = await runHardhatProcess(["run", "--no-compile", "scripts/deploy.ts"], { SOURCE_RPC_URL: closed, NODE_OPTIONS: "--disable-warning=ExperimentalWarning" });
    expect([script.code, script.stderr]).to.deep.equal([1, line]);
    const cli = await channels(["deploy", "--source-rpc", closed, "--target-rpc", nodes[1]!.url]);
    expect([cli.code, cli.stderr]).to.deep.equal([1, line]);
  });

  it("checks DEPLOYER_PRIVATE_KEY and NETWORKS before deploying: one line each, exit code 2, no part of the key", async function () {
    const key = accountKey(4);
    const run = (env: Record<string, string>) =>
      runHardhatProcess(["run", "--no-compile", "scripts/deploy.ts"], { RPC_URL: nodes[0]!.url, NODE_OPTIONS: "--disable-warning=ExperimentalWarning", ...env });
    const [shortKey, unknown] = await Promise.all([
      run({ NETWORKS: "custom", DEPLOYER_PRIVATE_KEY: key.slice(0, -1) }), // Hardhat alone: a bug-report stack
      run({ NETWORKS: "custom,nowhere", DEPLOYER_PRIVATE_KEY: key }),
    ]);
    expect(shortKey.code, shortKey.stderr).to.equal(2);
    expect(shortKey.stderr.trim()).to.equal(
      "error: DEPLOYER_PRIVATE_KEY: has 63 hex digits, not 64; give the account's private key (0x and 64 hex digits)",
    );
    expect(unknown.code, unknown.stderr).to.equal(2);
    expect(unknown.stderr.trim()).to.match(/^error: NETWORKS: no network nowhere in hardhat.config.ts \(known: [^\n]*custom/);
    for (const { stdout, stderr } of [shortKey, unknown]) {
      for (let i = 2; i + 8 <= key.length; i++) expect(`${stdout}${stderr}`.toLowerCase()).not.to.include(key.slice(i, i + 8));
    }
  });
});
