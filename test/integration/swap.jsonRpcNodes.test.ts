import { expect } from "chai";
import { JsonRpcProvider, ZeroAddress } from "ethers";

import {
  DeltaTable,
  HttpTransport,
  HubAdapter,
  keySigner,
  Store,
  SwapClient,
  type ChannelParams,
  rpcProvider,
  type Hex,
} from "../../sdk/index.js";
import { accountKey, deployHub, localWallet } from "../../scripts/lib/local.js";
import { startHardhatNode, type LocalNode } from "../helpers/nodes.js";

const ONE = 10n ** 18n;

describe("swap between two hardhat node JSON-RPC processes over HTTP", function () {
  let nodes: LocalNode[] = [];
  const closers: (() => Promise<void> | void)[] = [];

  before(async function () {
    nodes = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
  });
  after(async function () {
    for (const close of closers.reverse()) await close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("runs the four phases with two clients that talk HTTP on loopback and persist to SQLite", async function () {
    const [S, T] = nodes.map((n) => rpcProvider(n.url)) as [JsonRpcProvider, JsonRpcProvider];
    closers.push(() => S.destroy(), () => T.destroy());
    const [hubS, hubT] = [await deployHub(S), await deployHub(T)];
    const params: ChannelParams = {
      participants: [localWallet(1, S).address, localWallet(2, S).address],
      payees: [ZeroAddress, ZeroAddress],
      asset: ZeroAddress,
      challengePeriod: 3600n,
      nonce: 1n,
    };
    const a = { S: await HubAdapter.connect(hubS, localWallet(1, S)), T: await HubAdapter.connect(hubT, localWallet(1, T)) };
    const b = { S: await HubAdapter.connect(hubS, localWallet(2, S)), T: await HubAdapter.connect(hubT, localWallet(2, T)) };
    const sId = await a.S.open(params);
    await a.S.deposit(params, sId, 0, 5n * ONE);
    const tId = await b.T.open(params);
    await b.T.deposit(params, tId, 1, 5n * ONE);

    const timing = (chainId: bigint) => ({ chainId, finalitySeconds: 12n, inclusionSeconds: 60n, clockSkewSeconds: 30n });
    const deltas = new DeltaTable(new Map([[31337n, timing(31337n)], [31338n, timing(31338n)]]));
    const [ta, tb] = [await HttpTransport.start(), await HttpTransport.start()];
    ta.connect(tb.url);
    tb.connect(ta.url);
    closers.push(() => ta.close(), () => tb.close());
    const common = { deltas, minTargetWindow: 600n, onChainMargin: 120n, resendIntervalMs: 1_000, confirmationTimeoutMs: 30_000 };
    const alice = new SwapClient({ ...common, signer: keySigner(accountKey(1)), store: new Store(":memory:"), transport: ta, chains: [a.S, a.T] });
    const bob = new SwapClient({ ...common, signer: keySigner(accountKey(2)), store: new Store(":memory:"), transport: tb, chains: [b.S, b.T] });
    for (const c of [alice, bob]) {
      await c.addChannel(31337n, params);
      await c.addChannel(31338n, params);
    }

    const blocks = [await S.getBlockNumber(), await T.getBlockNumber()];
    const swapId: Hex = await alice.propose({ source: sId, target: tId, give: 2n * ONE, take: 3n * ONE });
    const known = (c: SwapClient) => c.swaps().find((s) => s.swapId === swapId);
    for (let i = 0; i < 500 && known(bob)?.progress.phase.kind !== "done"; i++) await new Promise((r) => setTimeout(r, 10));

    expect(alice.swap(swapId).progress.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(bob.swap(swapId).progress.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(ta.errors.concat(tb.errors)).to.deep.equal([]);
    expect(bob.book.head(sId).balances).to.deep.equal([3n * ONE, 2n * ONE]);
    expect(alice.book.head(tId).balances).to.deep.equal([3n * ONE, 2n * ONE]);
    expect([await S.getBlockNumber(), await T.getBlockNumber()]).to.deep.equal(blocks, "nothing touched a chain");

    await alice.requestClose(sId);
    await bob.requestClose(tId);
    for (let i = 0; i < 500; i++) {
      const [s, t] = [await a.S.channelInfo(sId), await a.T.channelInfo(tId)];
      if (s.status === "closed" && t.status === "closed") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await a.S.channelInfo(sId)).status).to.equal("closed");
    expect((await a.T.channelInfo(tId)).status).to.equal("closed");
    expect(await S.getBalance(hubS)).to.equal(0n);
    expect(await T.getBalance(hubT)).to.equal(0n);
  });
});
