import { expect } from "chai";

import { HttpTransport, Store, SwapClient, type Hex } from "../../sdk/index.js";
import { fundedPairOnNodes, startHardhatNode, type LocalNode } from "../helpers/nodes.js";
import { syncDeposits } from "../../scripts/lib/swap-setup.js";

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
    const { S, T, hubS, hubT, a, sId, tId, client, close } = await fundedPairOnNodes(nodes, 1n);
    closers.push(close);
    const [ta, tb] = [await HttpTransport.start(), await HttpTransport.start()];
    ta.connect(tb.url);
    tb.connect(ta.url);
    closers.push(() => ta.close(), () => tb.close());
    const alice = await client(1, ta, new Store(":memory:"));
    const bob = await client(2, tb, new Store(":memory:"));
    await syncDeposits([alice, bob], [sId, tId]);

    const blocks = [await S.getBlockNumber(), await T.getBlockNumber()];
    const swapId: Hex = await alice.propose({ source: sId, target: tId, give: 2n * ONE, take: 3n * ONE });
    const known = (c: SwapClient) => c.swaps().find((s) => s.swapId === swapId);
    // Both are done once the last acknowledgements arrive (Bob's of Alice's payments reach her after he is done).
    const done = (c: SwapClient) => known(c)?.progress.phase.kind === "done";
    for (let i = 0; i < 500 && !(done(alice) && done(bob)); i++) await new Promise((r) => setTimeout(r, 10));

    expect(alice.swap(swapId).progress.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(bob.swap(swapId).progress.phase).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(ta.errors.concat(tb.errors)).to.deep.equal([]);
    expect(bob.book.head(sId).balances).to.deep.equal([3n * ONE, 2n * ONE]);
    expect(alice.book.head(tId).balances).to.deep.equal([3n * ONE, 2n * ONE]);
    expect([await S.getBlockNumber(), await T.getBlockNumber()]).to.deep.equal(blocks, "nothing touched a chain");

    await alice.requestClose(sId);
    await bob.requestClose(tId);
    // The final states are co-signed over HTTP; whoever asked lands its close on a tick.
    for (let i = 0; i < 500; i++) {
      const [s, t] = [await a.S.channelInfo(sId), await a.T.channelInfo(tId)];
      if (s.status === "closed" && t.status === "closed") break;
      await Promise.all([alice.tick(), bob.tick()]);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await a.S.channelInfo(sId)).status).to.equal("closed");
    expect((await a.T.channelInfo(tId)).status).to.equal("closed");
    expect(await S.getBalance(hubS)).to.equal(0n);
    expect(await T.getBalance(hubT)).to.equal(0n);
  });
});
