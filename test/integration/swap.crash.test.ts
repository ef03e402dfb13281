import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { DoubleSignError, InMemoryLink, Store, type Envelope, type Hex, type STEP_ORDER } from "../../sdk/index.js";
import {
  blockNumbers,
  fundedChannels,
  makeParty,
  ManualClock,
  ONE,
  phaseOf,
  type Party,
  type Setup,
} from "../helpers/swapHarness.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";

type Step = keyof typeof STEP_ORDER;
const STEPS: { step: Step; sender: "alice" | "bob" }[] = [
  { step: "propose", sender: "alice" },
  { step: "accept", sender: "bob" },
  { step: "sourceLock", sender: "alice" },
  { step: "targetLock", sender: "bob" },
  { step: "targetLockAck", sender: "alice" },
  { step: "reveal", sender: "alice" },
  { step: "resolve", sender: "bob" },
  { step: "resolveAck", sender: "alice" },
];

/** Alice and Bob with file-backed stores, so a party can be dropped and rebuilt from its store alone. */
async function durableParties(setup: Setup, dir: string) {
  const link = new InMemoryLink();
  const clock = new ManualClock();
  const paths = { alice: join(dir, "alice.sqlite"), bob: join(dir, "bob.sqlite") };
  const start = (who: "alice" | "bob") =>
    makeParty(setup, who, who === "alice" ? link.a : link.b, clock, {}, new Store(paths[who]));
  const parties = { alice: start("alice"), bob: start("bob") };
  for (const p of Object.values(parties)) {
    await p.client.addChannel(setup.S.chainId, setup.sParams, expectedChannel(setup.sParams, p.client.address));
    await p.client.addChannel(setup.T.chainId, setup.tParams, expectedChannel(setup.tParams, p.client.address));
  }
  await syncDeposits([parties.alice.client, parties.bob.client], [setup.sId, setup.tId]);
  /** The process dies: everything in memory is gone; a new one starts from the same store file. */
  const restart = (who: "alice" | "bob"): Party => {
    parties[who].store.close();
    parties[who] = start(who);
    return parties[who];
  };
  return { link, clock, parties, restart };
}

describe("crash recovery from the embedded store (guarantee 6)", function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "swap-crash-"));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  for (const { step, sender } of STEPS) {
    it(`finishes the swap when ${sender} crashes right after sending ${step} and that message is lost`, async function () {
      const setup = await fundedChannels();
      const { link, clock, parties, restart } = await durableParties(setup, dir);
      const before = await blockNumbers(setup);
      let crashed = false;
      link.fault = (e: Envelope) => {
        if (!crashed && e.body.step === step) {
          crashed = true;
          return "drop";
        }
        return "deliver";
      };
      const swapId: Hex = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: 10n * ONE, take: ONE / 2n });
      await link.settled();
      expect(crashed).to.equal(true, `${step} was sent`);
      restart(sender);

      for (let round = 0; round < 10; round++) {
        if (phaseOf(parties.alice, swapId).kind === "done" && phaseOf(parties.bob, swapId).kind === "done") break;
        clock.advance(2_000); // the resend interval, well inside the confirmation timeout
        await parties.alice.client.tick();
        await parties.bob.client.tick();
        await link.settled();
      }

      expect(link.errors.filter((e) => e instanceof DoubleSignError)).to.deep.equal([], "never signed a number twice");
      expect(phaseOf(parties.alice, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
      expect(phaseOf(parties.bob, swapId)).to.deep.equal({ kind: "done", outcome: "swapped" });
      for (const p of Object.values(parties)) {
        expect(p.client.transfers(swapId).map((t) => [t.confirmed, t.outcome])).to.deep.equal(
          [[true, "paid"], [true, "paid"]],
          "both transfers tracked and confirmed",
        );
      }
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
    link.fault = (e: Envelope) => (e.body.step === "resolve" ? "drop" : "deliver");
    const swapId = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: 10n * ONE, take: ONE / 2n });
    await link.settled();
    const bob = restart("bob");
    const { terms } = bob.client.swap(swapId);
    expect(bob.store.secret(terms.hashlock)).to.not.equal(undefined, "the secret Alice revealed");
    expect(bob.client.book.latest(setup.sId)?.state.locks).to.have.length(1, "the co-signed source lock");
    expect(bob.client.book.latest(setup.tId)?.state.seq).to.equal(3n, "the co-signed target resolution (after the deposit update and the lock)");
    for (const p of Object.values(parties)) p.store.close();
  });
});
