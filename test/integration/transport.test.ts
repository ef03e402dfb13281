import { expect } from "chai";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import { hexlify, randomBytes } from "ethers";

import { encode, HttpTransport, InvalidMessageError, type Envelope, type Hex } from "../../sdk/index.js";

/** An envelope whose body says `text` (an acceptance refusing one proposal: any body of the protocol would do). */
const envelope = (i: number, text = `message ${i}`): Envelope => {
  const swapId = hexlify(randomBytes(32)) as Hex;
  return { swapId, from: "0x0000000000000000000000000000000000000001", body: { step: "acceptances", items: [{ swapId, refusal: text }] }, signature: "0x" };
};
/** The text an envelope of `envelope` carries. */
const textOf = (e: Envelope): string => (e.body.step === "acceptances" ? e.body.items[0]?.refusal ?? "" : "");

describe("HTTP transport", function () {
  it("delivers messages in the order they were sent, however many are sent at once", async function () {
    const receiver = await HttpTransport.start();
    const sender = await HttpTransport.start(0, receiver.url);
    const received: string[] = [];
    receiver.listen(async (e) => {
      received.push(textOf(e));
    });
    const sent = Array.from({ length: 200 }, (_, i) => envelope(i));
    // Single sends and groups, none awaited before the next: they queue behind the request in flight.
    await Promise.all([
      ...sent.slice(0, 50).map((e) => sender.send(e)),
      sender.sendMany(sent.slice(50, 150)),
      ...sent.slice(150).map((e) => sender.send(e)),
    ]);
    while (received.length < sent.length) await new Promise((r) => setTimeout(r, 5));
    expect(received).to.deep.equal(sent.map(textOf));
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

  it("skips a line that is not an envelope, records why, and handles the lines after it", async function () {
    const receiver = await HttpTransport.start();
    const received: Envelope[] = [];
    receiver.listen(async (e) => void received.push(e));
    const good = envelope(2);
    const res = await fetch(receiver.url, { method: "POST", body: `not json\n${encode(good)}\n` });
    expect(res.status).to.equal(200);
    await res.text(); // the answer ends once the request has been read to its end
    expect(received).to.deep.equal([good]);
    expect(receiver.errors).to.have.length(1);
    expect(receiver.errors[0]).to.be.instanceOf(InvalidMessageError).and.have.property("message").that.matches(/not JSON/);
    await receiver.close();
  });

  it("cuts off a request whose line grows past the limit without a newline", async function () {
    const receiver = await HttpTransport.start();
    const received: Envelope[] = [];
    receiver.listen(async (e) => void received.push(e));
    await fetch(receiver.url, { method: "POST", body: "x".repeat((1 << 20) + 10) }).then((r) => r.text()).catch(() => undefined);
    expect(received).to.deep.equal([]);
    expect(String(receiver.errors[0])).to.match(/longer than 1048576 characters/);
    await receiver.close();
  });

  it("opens a new request when the peer restarts, and delivers what is sent after", async function () {
    const first = await HttpTransport.start();
    first.listen(async () => {});
    const sender = await HttpTransport.start(0, first.url);
    await sender.send(envelope(0));
    const port = Number(new URL(first.url).port);
    await first.close(); // the open request dies with the peer

    const again = await HttpTransport.start(port);
    const received: Envelope[] = [];
    again.listen(async (e) => void received.push(e));
    // A send that raced the old connection's end may fail or be lost (the client's tick resends those); later ones arrive.
    for (let i = 0; i < 50 && received.length === 0; i++) {
      await sender.send(envelope(1)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(received.length).to.be.greaterThan(0);
    await sender.close();
    await again.close();
  });

  it("gives up on a peer that accepts the connection and never answers, then fails at once for a while", async function () {
    const sockets: Socket[] = [];
    const silent = createTcpServer((socket) => void sockets.push(socket)); // reads nothing, answers nothing
    await new Promise<void>((ok) => silent.listen(0, "127.0.0.1", () => ok()));
    const { port } = silent.address() as { port: number };
    const sender = await HttpTransport.start(0, `http://127.0.0.1:${port}`, { timeoutMs: 200 });

    const t0 = performance.now();
    let failure: unknown;
    await sender.send(envelope(0)).catch((e: unknown) => (failure = e));
    expect(String(failure)).to.match(/no answer within 200 ms/);
    expect(performance.now() - t0).to.be.below(5_000);
    // No second wait for the same silent peer: the error says it failed lately (a wait would say "no answer").
    await sender.send(envelope(1)).catch((e: unknown) => (failure = e));
    expect(String(failure)).to.match(/failed lately/);

    await sender.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((ok) => silent.close(() => ok()));
  });

  it("gives up on a peer that answers and then stops reading what it is sent", async function () {
    const stalled = createHttpServer((req, res) => {
      res.writeHead(200).flushHeaders();
      req.pause(); // takes nothing: the connection's buffers fill up
    });
    stalled.requestTimeout = 0;
    await new Promise<void>((ok) => stalled.listen(0, "127.0.0.1", () => ok()));
    const { port } = stalled.address() as { port: number };
    const sender = await HttpTransport.start(0, `http://127.0.0.1:${port}`, { timeoutMs: 300 });
    const big = (i: number): Envelope => envelope(i, "x".repeat(1 << 19));

    let failure: unknown;
    for (let i = 0; i < 400 && failure === undefined; i++) await sender.send(big(i)).catch((e: unknown) => (failure = e));
    expect(String(failure)).to.match(/took no data for 300 ms/);

    await sender.close();
    stalled.closeAllConnections();
    await new Promise<void>((ok) => stalled.close(() => ok()));
  });

  it("refuses to send once closed instead of opening a new connection", async function () {
    const receiver = await HttpTransport.start();
    receiver.listen(async () => {});
    const sender = await HttpTransport.start(0, receiver.url);
    await sender.send(envelope(0));
    await sender.close();
    let failure: unknown;
    await sender.send(envelope(1)).catch((e: unknown) => (failure = e));
    expect(String(failure)).to.match(/transport is closed/);
    await receiver.close();
  });
});
