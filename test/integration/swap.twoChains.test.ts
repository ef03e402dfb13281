import { expect } from "chai";

import { blockNumbers, fundedChannels, ONE, phaseOf, twoParties } from "../helpers/swapHarness.js";

describe("cross-chain swap over two channels", function () {
  it("swaps off chain through all four phases with no transaction on either chain (guarantee 1)", async function () {
    const setup = await fundedChannels();
    const { link, alice, bob } = await twoParties(setup);
    const before = await blockNumbers(setup);

    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: 10n * ONE, take: ONE / 2n });
    await link.settled();

    expect(link.errors).to.deep.equal([]);
    expect(phaseOf(alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    expect(phaseOf(bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    for (const party of [alice, bob]) {
      const s = party.client.book.head(setup.sId);
      const t = party.client.book.head(setup.tId);
      expect(s.balances).to.deep.equal([90n * ONE, 20n * ONE]);
      expect(t.balances).to.deep.equal([ONE + ONE / 2n, 20n * ONE - ONE / 2n]);
      expect(s.locks).to.have.length(0);
      expect(party.client.transfers(swapId).map((t) => [t.confirmed, t.outcome])).to.deep.equal([
        [true, "paid"],
        [true, "paid"],
      ]);
    }
    expect(await blockNumbers(setup)).to.deep.equal(before);
  });
});
