/**
 * How the batched engine (sdk/coordinator/counterparty.ts) keeps a swap's side in the store: what moves in the side's
 * row, the terms (which never change) in a row of their own, written once; and a side row that still carries its
 * terms (as rows were written before) read as it is.
 */
import { expect } from "chai";

import { encode } from "../../sdk/core/codec.js";
import { heal, Network, startSwap } from "../../scripts/lib/batched-pair.js";

/** One swap of A's, to the end: the network, its hashlock, and A's side of it. */
function oneSwap() {
  const net = new Network();
  const hashlock = startSwap(net, 1, "A", 5n, 4n)!;
  heal(net);
  return { net, hashlock, A: net.parties.A, before: net.parties.A.swaps.get(hashlock)! };
}

describe("the engine's rows of a swap", function () {
  afterEach(() => Network.closeAll());

  it("writes a side's terms once, in a row of their own, and its moves without them; a restart reads both back whole", function () {
    const { hashlock, A, before } = oneSwap();
    const sideRow = A.store.batched<Record<string, unknown>>("side").get(hashlock)!;
    expect(sideRow, "the side's row holds no terms").to.not.have.property("terms");
    expect(A.store.batched<unknown>("terms").get(hashlock)).to.deep.equal(before.terms);
    A.crash(); // a new engine on the same file
    expect(A.swaps.get(hashlock)).to.deep.equal(before);
  });

  it("reads a side row that carries its terms itself, with no terms row", function () {
    const { net, hashlock, A, before } = oneSwap();
    A.store.transaction(() => {
      A.store.saveBatched("side", hashlock, before); // as a side was written before terms had rows of their own
      A.store.deleteBatched("terms", hashlock);
    });
    A.crash();
    expect(encode(A.swaps.get(hashlock))).to.equal(encode(before));
    // And a swap on from there writes the new layout.
    const next = startSwap(net, 2, "B", 3n, 2n)!;
    heal(net);
    expect(A.store.batched<Record<string, unknown>>("side").get(next)).to.not.have.property("terms");
  });

  it("keeps the terms of an open swap whose side row carried them when the side moves on: a restart still reads it", function () {
    const net = new Network();
    const hashlock = startSwap(net, 1, "A", 5n, 4n)!; // agreed, nothing delivered yet: open on both sides
    const { A } = net.parties;
    const agreed = A.swaps.get(hashlock)!;
    A.store.transaction(() => {
      A.store.saveBatched("side", hashlock, agreed); // as a side was written before terms had rows of their own
      A.store.deleteBatched("terms", hashlock);
    });
    A.crash();
    heal(net); // the swap goes through: A's side is written again, without its terms
    const done = A.swaps.get(hashlock)!;
    expect(done.source).to.equal("paid");
    A.crash(); // threw "the terms of swap side ... are not in the store": the rewritten row had dropped them
    expect(encode(A.swaps.get(hashlock))).to.equal(encode(done));
    expect(A.store.batched<unknown>("terms").get(hashlock)).to.deep.equal(agreed.terms);
  });
});
