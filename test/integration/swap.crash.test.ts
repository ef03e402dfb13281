import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { encode, InMemoryLink, Store, type ChannelState, type Envelope, type Hex } from "../../sdk/index.js";
import { addChannels, blockNumbers, fundedChannels, makeParty, ManualClock, ONE, phaseOf, type Party, type Setup } from "../helpers/swapHarness.js";
import { syncDeposits } from "../../scripts/lib/swap-setup.js";

type Name = "alice" | "bob";

/**
 * Every message of one swap Alice proposes (S -> T), in the order they are sent. Alice is participant 0, so the
 * proposer, of both channels: she puts every batch together; Bob asks for his changes and acknowledges hers.
 * Each message is named by its sender, channel, kind and the changes it carries (an ack: those of the batch it
 * acknowledges).
 */
const MESSAGES: { label: string; what: string; sender: Name }[] = [
  { label: "proposals", what: "the proposals", sender: "alice" },
  { label: "acceptances", what: "the acceptances", sender: "bob" },
  { label: "S update add", what: "the batch adding the source lock", sender: "alice" },
  { label: "S ack add", what: "the acknowledgement of the source lock", sender: "bob" },
  { label: "T request add", what: "the request for the target lock", sender: "bob" },
  { label: "T update add", what: "the batch adding the target lock", sender: "alice" },
  { label: "T ack add", what: "the acknowledgement of the target lock", sender: "bob" },
  { label: "S update pay", what: "the batch paying the source lock, sent as she reveals", sender: "alice" },
  { label: "T update pay", what: "the batch carrying the reveal (the target lock paid with the secret)", sender: "alice" },
  { label: "S ack pay", what: "the acknowledgement of the source payment", sender: "bob" },
  { label: "T ack pay", what: "the acknowledgement of the reveal", sender: "bob" },
];

/** Names each envelope as MESSAGES does; remembers the changes of each batch to name the ack of it. */
function labeller(setup: Setup) {
  const batches = new Map<string, string>();
  return (e: Envelope): string => {
    if (e.body.step !== "batch") return e.body.step;
    const channel = e.swapId === setup.sId ? "S" : e.swapId === setup.tId ? "T" : e.swapId;
    const m = e.body.message;
    if (m.kind === "update") batches.set(`${channel}/${m.seq}`, m.changes.map((c) => c.kind).join(","));
    const changes = m.kind === "update" || m.kind === "request" ? m.changes.map((c) => c.kind).join(",") : m.kind === "ack" ? batches.get(`${channel}/${m.seq}`) : undefined;
    return [channel, m.kind, changes].filter((x) => x !== undefined).join(" ");
  };
}

/**
 * Alice and Bob with file-backed stores, so a party can be dropped and rebuilt from its store alone. Every state
 * each party signs is recorded across restarts: two different states signed by one party at one number are kept
 * in `doubleSigned`.
 */
async function durableParties(setup: Setup, dir: string) {
  const link = new InMemoryLink();
  const clock = new ManualClock();
  const signed: Record<Name, Map<string, string>> = { alice: new Map(), bob: new Map() };
  const doubleSigned: string[] = [];
  const start = (who: Name): Party => {
    const watchtower = {
      signed: (state: ChannelState) => {
        const k = `${state.channelId}/${state.seq}`;
        const before = signed[who].get(k);
        if (before !== undefined && before !== encode(state)) doubleSigned.push(`${who} signed two states at ${k}`);
        signed[who].set(k, encode(state));
      },
      update: () => undefined,
      addSecret: () => undefined,
    };
    return makeParty(setup, who, who === "alice" ? link.a : link.b, clock, { watchtower }, new Store(join(dir, `${who}.sqlite`)));
  };
  const parties = { alice: start("alice"), bob: start("bob") };
  await addChannels(setup, Object.values(parties));
  await syncDeposits([parties.alice.client, parties.bob.client], [setup.sId, setup.tId]);
  /** The process dies: everything in memory is gone; a new one starts from the same store file. */
  const restart = (who: Name): Party => {
    parties[who].store.close();
    parties[who] = start(who);
    return parties[who];
  };
  return { link, clock, parties, restart, signed, doubleSigned };
}

/**
 * From the moment `who` sends the message labelled `label`, `who` is down: that message and every later one from or
 * to it is lost (it sends nothing more, and what was sent to it never arrives). `crashed()` tells whether it happened.
 */
function crashOn(link: InMemoryLink, setup: Setup, who: Name, label: string) {
  const name = labeller(setup);
  const side = who === "alice" ? "a" : "b";
  let down = false;
  link.fault = (e, from) => {
    const l = name(e);
    if (!down && from === side && l === label) down = true;
    return down ? "drop" : "deliver";
  };
  return { crashed: () => down };
}

describe("crash recovery from the embedded store (guarantee 6)", function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "swap-crash-"));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends the messages listed here, in this order, for one swap", async function () {
    const setup = await fundedChannels();
    const { link, parties } = await durableParties(setup, dir);
    const name = labeller(setup);
    const seen: [string, Name][] = [];
    link.fault = (e, from) => (seen.push([name(e), from === "a" ? "alice" : "bob"]), "deliver");
    const swapId = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: 10n * ONE, take: ONE / 2n });
    await link.settled();
    expect(seen).to.deep.equal(MESSAGES.map((m) => [m.label, m.sender]));
    expect(phaseOf(parties.alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
    for (const p of Object.values(parties)) p.store.close();
  });

  for (const { label, what, sender } of MESSAGES) {
    it(`finishes the swap off chain when ${sender} crashes right after sending ${what} (${label}) and that message is lost`, async function () {
      const setup = await fundedChannels();
      const { link, clock, parties, restart, signed, doubleSigned } = await durableParties(setup, dir);
      const before = await blockNumbers(setup);
      const crash = crashOn(link, setup, sender, label);
      const swapId: Hex = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: 10n * ONE, take: ONE / 2n });
      await link.settled();
      expect(crash.crashed()).to.equal(true, `${label} was sent`);
      restart(sender);
      link.fault = () => "deliver";

      for (let round = 0; round < 10; round++) {
        if (phaseOf(parties.alice, swapId).kind === "done" && phaseOf(parties.bob, swapId).kind === "done") break;
        clock.advance(2_000); // the resend interval, well inside the confirmation timeout
        await parties.alice.client.tick();
        await parties.bob.client.tick();
        await link.settled();
      }

      expect(doubleSigned).to.deep.equal([], "never signed two states at one number");
      for (const id of [setup.sId, setup.tId]) {
        const head = `${id}/${parties.alice.client.book.head(id).seq}`;
        expect([signed.alice.has(head), signed.bob.has(head)]).to.deep.equal([true, true], "each signature was seen by the check");
      }
      expect(link.errors).to.deep.equal([]);
      expect(phaseOf(parties.alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
      expect(phaseOf(parties.bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
      for (const id of [setup.sId, setup.tId]) {
        expect(parties.alice.client.book.latest(id)).to.deep.equal(parties.bob.client.book.latest(id), "same co-signed head");
      }
      expect(parties.alice.client.book.head(setup.sId).balances).to.deep.equal([90n * ONE, 20n * ONE]);
      expect(parties.alice.client.book.head(setup.tId).balances).to.deep.equal([ONE + ONE / 2n, 20n * ONE - ONE / 2n]);
      expect(await blockNumbers(setup)).to.deep.equal(before, "recovered without touching a chain");
      for (const p of Object.values(parties)) p.store.close();
    });
  }

  it("keeps a revealed secret and every counter-signature across a restart", async function () {
    const setup = await fundedChannels();
    const { link, parties, restart } = await durableParties(setup, dir);
    // Bob acknowledged the source payment, then is gone as his acknowledgement of the reveal leaves (it is lost).
    crashOn(link, setup, "bob", "T ack pay");
    const swapId = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: 10n * ONE, take: ONE / 2n });
    await link.settled();
    const bob = restart("bob");
    const { terms } = bob.client.swap(swapId);
    expect(bob.store.secret(terms.hashlock)).to.not.equal(undefined, "the secret Alice revealed");
    const source = bob.client.book.latest(setup.sId)?.state;
    expect(source?.locks).to.deep.equal([], "the co-signed source payment");
    expect(source?.balances).to.deep.equal([90n * ONE, 20n * ONE], "the source lock paid to Bob");
    const target = bob.client.book.latest(setup.tId)?.state;
    expect(target?.seq).to.equal(3n, "the co-signed target resolution (after the deposit update and the lock)");
    expect(target?.locks).to.deep.equal([]);
    expect(target?.balances).to.deep.equal([ONE + ONE / 2n, 20n * ONE - ONE / 2n], "the target lock paid to Alice");
    for (const p of Object.values(parties)) p.store.close();
  });
});
