import { expect } from "chai";
import { hexlify, randomBytes } from "ethers";

import { HttpTransport, type Envelope, type Hex } from "../../sdk/index.js";

const envelope = (i: number): Envelope => ({
  swapId: hexlify(randomBytes(32)) as Hex,
  from: "0x0000000000000000000000000000000000000001",
  body: { step: "abort", reason: `message ${i}` },
  signature: "0x",
});

describe("HTTP transport", function () {
  it("delivers messages in the order they were sent, however many are sent at once", async function () {
    const receiver = await HttpTransport.start();
    const sender = await HttpTransport.start(0, receiver.url);
    const received: string[] = [];
    receiver.listen(async (e) => {
      if (e.body.step === "abort") received.push(e.body.reason);
    });
    const sent = Array.from({ length: 200 }, (_, i) => envelope(i));
    // Single sends and groups, none awaited before the next: they queue behind the request in flight.
    await Promise.all([
      ...sent.slice(0, 50).map((e) => sender.send(e)),
      sender.sendMany(sent.slice(50, 150)),
      ...sent.slice(150).map((e) => sender.send(e)),
    ]);
    while (received.length < sent.length) await new Promise((r) => setTimeout(r, 5));
    expect(received).to.deep.equal(sent.map((e) => (e.body.step === "abort" ? e.body.reason : "")));
    await sender.close();
    await receiver.close();
  });

  it("rejects the sends of a request the peer refused, and sends later ones", async function () {
    const receiver = await HttpTransport.start();
    const sender = await HttpTransport.start(0, receiver.url);
    let failure: unknown;
    await sender.send(envelope(0)).catch((e: unknown) => (failure = e)); // no handler yet: 503
    expect(String(failure)).to.match(/peer answered 503/);
    const received: Envelope[] = [];
    receiver.listen(async (e) => void received.push(e));
    await sender.send(envelope(1));
    while (received.length < 1) await new Promise((r) => setTimeout(r, 5));
    await sender.close();
    await receiver.close();
  });
});
