import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { InMemoryLink, Store } from "../../sdk/index.js";
import { accountKey } from "../../scripts/lib/local.js";
import { fundedPairOnNodes, runHardhat, startHardhatNode, type LocalNode } from "../helpers/nodes.js";
import { syncDeposits } from "../../scripts/lib/swap-setup.js";

const ONE = 10n ** 18n;

describe("watch command against two hardhat node processes", function () {
  let nodes: LocalNode[] = [];
  let dir: string;

  before(async function () {
    nodes = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    dir = mkdtempSync(join(tmpdir(), "watch-cmd-"));
  });
  after(async function () {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes Bob's channels from his client's store and answers Alice's stale force close", async function () {
    const { hubS, hubT, params, a, sId, tId, client, close } = await fundedPairOnNodes(nodes, 7n);
    const link = new InMemoryLink();
    const bobStorePath = join(dir, "bob.sqlite");
    const alice = await client(1, link.a, new Store(":memory:"));
    const bobStore = new Store(bobStorePath);
    await syncDeposits([alice, await client(2, link.b, bobStore)], [sId, tId]);
    for (let i = 0; i < 2; i++) {
      await alice.propose({ source: sId, target: tId, give: ONE, take: ONE / 2n });
      await link.settled();
    }
    bobStore.close(); // Bob's client goes offline
    await a.S.forceClose(params, undefined); // Alice registers the opening deposits on S: stale

    const config = {
      store: join(dir, "tower.sqlite"),
      importFrom: bobStorePath,
      once: true,
      chains: [
        { rpcUrl: nodes[0]!.url, hub: hubS, confirmations: 0 },
        { rpcUrl: nodes[1]!.url, hub: hubT, confirmations: 0 },
      ],
    };
    writeFileSync(join(dir, "watch.json"), JSON.stringify(config));
    const out = await runHardhat(["run", "scripts/watch.ts"], {
      WATCH_CONFIG: join(dir, "watch.json"),
      WATCHTOWER_PRIVATE_KEY: accountKey(3),
    });
    expect(out).to.match(/guarding 2 channel\(s\), 1 open dispute\(s\)/);
    expect(out).to.match(/challenged/);
    expect((await a.S.channelInfo(sId)).seq).to.equal(alice.book.head(sId).seq, "the newest state is registered");
    close();
  });
});
