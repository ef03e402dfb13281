import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonRpcProvider, ZeroAddress } from "ethers";

import { DeltaTable, HubAdapter, InMemoryLink, keySigner, rpcProvider, Store, SwapClient, type ChannelParams } from "../../sdk/index.js";
import { accountKey, deployHub, localWallet } from "../../scripts/lib/local.js";
import { runHardhat, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

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
    const [S, T] = nodes.map((n) => rpcProvider(n.url)) as [JsonRpcProvider, JsonRpcProvider];
    const [hubS, hubT] = [await deployHub(S), await deployHub(T)];
    const params: ChannelParams = {
      participants: [localWallet(1, S).address, localWallet(2, S).address],
      payees: [ZeroAddress, ZeroAddress],
      asset: ZeroAddress,
      challengePeriod: 3600n,
      nonce: 7n,
    };
    const a = { S: await HubAdapter.connect(hubS, localWallet(1, S)), T: await HubAdapter.connect(hubT, localWallet(1, T)) };
    const b = { S: await HubAdapter.connect(hubS, localWallet(2, S)), T: await HubAdapter.connect(hubT, localWallet(2, T)) };
    const sId = await a.S.openAndDeposit(params, 0, 5n * ONE);
    const tId = await b.T.openAndDeposit(params, 1, 5n * ONE);

    const link = new InMemoryLink();
    const timing = (chainId: bigint) => ({ chainId, finalitySeconds: 12n, inclusionSeconds: 60n, clockSkewSeconds: 30n });
    const common = {
      deltas: new DeltaTable(new Map([[31337n, timing(31337n)], [31338n, timing(31338n)]])),
      minTargetWindow: 600n, onChainMargin: 120n, resendIntervalMs: 1_000, confirmationTimeoutMs: 30_000,
    };
    const bobStorePath = join(dir, "bob.sqlite");
    const alice = new SwapClient({ ...common, signer: keySigner(accountKey(1)), store: new Store(":memory:"), transport: link.a, chains: [a.S, a.T] });
    const bobStore = new Store(bobStorePath);
    const bob = new SwapClient({ ...common, signer: keySigner(accountKey(2)), store: bobStore, transport: link.b, chains: [b.S, b.T] });
    for (const c of [alice, bob]) {
      await c.addChannel(31337n, params);
      await c.addChannel(31338n, params);
    }
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
    S.destroy();
    T.destroy();
  });
});
