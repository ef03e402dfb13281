/** The node's event stream as subscribers see it (sdk/node/events.ts). */
import { expect } from "chai";
import { Writable } from "node:stream";
import { pino } from "pino";

import { NodeEvents, type NodeEvent } from "../../sdk/node/events.js";

describe("the node's event stream", function () {
  it("gives every subscriber its event when one of them throws, and logs that one", function () {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ base: undefined }, new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }));
    const events = new NodeEvents({ log, refuse: () => {}, peerNameOf: () => "peer", swapCounterparty: () => undefined, describeChannel: () => undefined });
    const seen: NodeEvent[] = [];
    events.subscribe(() => {
      throw new Error("a metrics store closed under it");
    });
    events.subscribe((e) => seen.push(e));
    events.emit("chainTx", { chain: "source", kind: "sent" });
    expect(seen.map((e) => [e.type, e.kind])).to.deep.equal([["chainTx", "sent"]]);
    expect(lines.map((l) => [l.event, l.type, l.error, l.level])).to.deep.equal([["subscriberFailed", "chainTx", "a metrics store closed under it", 50]]);
  });
});
