/**
 * The active node's view of one channel (views.ts) when the chain's RPC fails: the view goes without what it reads
 * on chain, and the failed read never becomes an unhandled rejection (the node's process exits on one: main.ts).
 */
import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { ZeroAddress, ZeroHash } from "ethers";

import type { ChannelInfo } from "../../sdk/chain/hub.js";
import type { Hex } from "../../sdk/core/types.js";
import { Views, type ViewDeps } from "../../sdk/node/views.js";
import { Store } from "../../sdk/store/store.js";

describe("the node's view of one channel while its chain's RPC fails", function () {
  it("a closed channel asked for again while the RPC fails: shown closed, and its failed read is no unhandled rejection", async function () {
    const store = new Store(":memory:");
    const channelId = `0x${randomBytes(32).toString("hex")}` as Hex;
    store.saveChannel({
      ref: { chainId: 31337n, hub: ZeroAddress, channelId },
      params: { participants: [ZeroAddress, ZeroAddress], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: 1n },
      myIndex: 0,
      openingDeposits: [10n, 5n],
    });
    let rpcDown = false;
    const closed: ChannelInfo = { status: "closed", deposits: [10n, 5n], seq: 1n, deadline: 0n, stateHash: ZeroHash as Hex };
    const adapter = {
      chainId: 31337n,
      channelInfo: async () => {
        if (rpcDown) throw new Error("the RPC is down");
        return closed;
      },
      hub: {
        filters: { ChannelClosed: () => ({}), ChannelSettled: () => ({}) },
        queryFilter: async () => [],
        deferredPayout: async () => 0n,
      },
    };
    const views = new Views({
      store,
      adapters: new Map([[31337n, adapter]]),
      client: { isClosing: () => false, catchUpState: () => undefined },
      assets: { byAddress: () => undefined, chainName: () => "local" },
      peers: { peerNameOf: () => undefined },
      pending: new Map(),
    } as unknown as ViewDeps);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      expect((await views.channelView(channelId)).status).to.equal("closed");
      rpcDown = true;
      expect((await views.channelView(channelId)).status, "as read before").to.equal("closed");
      for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10)); // a rejection left unhandled is reported by now
      expect(unhandled.map((e) => (e as Error).message)).to.deep.equal([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      store.close();
    }
  });
});
