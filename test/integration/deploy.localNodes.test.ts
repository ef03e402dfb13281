import { expect } from "chai";
import { JsonRpcProvider } from "ethers";

import { ChannelHub__factory } from "../../typechain-types/index.js";
import { runHardhat, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

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
});
