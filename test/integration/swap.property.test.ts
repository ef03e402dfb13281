import { expect } from "chai";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { DoubleSignError, InMemoryLink, Store, type Delivery, type Hex } from "../../sdk/index.js";
import {
  fundedChannels,
  increaseBoth,
  makeParty,
  ManualClock,
  ONE,
  payoutsOf,
  phaseOf,
  type Party,
  type Setup,
} from "../helpers/swapHarness.js";
import { expectedChannel, syncDeposits } from "../../scripts/lib/swap-setup.js";

const GIVE = 10n * ONE; // S: deposits [100, 10]
const TAKE = ONE / 2n; // T: deposits [1, 20]

/**
 * Where each party's money ended: on chain if the channel closed, else in the co-signed head of `witness` (a party
 * that stayed: one that went silent may never have heard the acknowledgement of its last batch).
 */
async function finalBalances(setup: Setup, witness: Party) {
  const leg = async (suite: Setup["S"], id: Hex) => {
    const status = (await (suite === setup.S ? setup.adapters.aliceS : setup.adapters.aliceT).channelInfo(id)).status;
    if (status === "closed") return { onChain: true, balances: await payoutsOf(suite, id) };
    return { onChain: false, balances: witness.client.book.head(id).balances as readonly [bigint, bigint] };
  };
  return { S: await leg(setup.S, setup.sId), T: await leg(setup.T, setup.tId) };
}

describe("random interleavings: drops, duplicates, crashes, silence, timeouts (guarantees 1-4, 6)", function () {
  it("never leaves a party that stayed with one leg only, conserves every deposit, and ends in bounded time", async function () {
    const outcomes = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom<Delivery>("deliver", "deliver", "deliver", "drop", "duplicate"), { minLength: 80, maxLength: 80 }),
        fc.option(fc.record({ who: fc.constantFrom<"alice" | "bob">("alice", "bob"), afterMessage: fc.nat({ max: 10 }) }), { nil: undefined }),
        fc.integer({ min: 1, max: 8 }),
        fc.option(fc.record({ who: fc.constantFrom<"alice" | "bob">("alice", "bob"), fromMessage: fc.nat({ max: 14 }) }), { nil: undefined }),
        async (fates, crash, chainEvery, silence) => {
          const dir = mkdtempSync(join(tmpdir(), "swap-prop-"));
          const open: Party[] = [];
          try {
            const setup = await fundedChannels();
            const link = new InMemoryLink();
            const clock = new ManualClock();
            const start = (who: "alice" | "bob") => {
              const party = makeParty(setup, who, who === "alice" ? link.a : link.b, clock, {}, new Store(join(dir, `${who}.sqlite`)));
              open.push(party);
              return party;
            };
            const parties = { alice: start("alice"), bob: start("bob") };
            for (const p of Object.values(parties)) {
              await p.client.addChannel(setup.S.chainId, setup.sParams, expectedChannel(setup.sParams, p.client.address));
              await p.client.addChannel(setup.T.chainId, setup.tParams, expectedChannel(setup.tParams, p.client.address));
            }
            await syncDeposits([parties.alice.client, parties.bob.client], [setup.sId, setup.tId]);
            let sent = 0;
            let crashed = false;
            // A silenced party is gone for good from its message `fromMessage` on: nothing from or to it arrives.
            const silenced = () => silence !== undefined && sent > silence.fromMessage;
            link.fault = () => (silenced() ? "drop" : fates[sent++ % fates.length]!);

            const swapId = await parties.alice.client.propose({ source: setup.sId, target: setup.tId, give: GIVE, take: TAKE });
            await link.settled();
            let rounds = 0;
            const online = () => (["alice", "bob"] as const).filter((w) => !(silenced() && silence?.who === w));
            const done = () => online().every((w) => {
              const p = parties[w];
              return p.client.swaps().some((s) => s.swapId === swapId) ? phaseOf(p, swapId).kind === "done" : true;
            });
            while (!done()) {
              if (++rounds > 300) {
                const views = (["alice", "bob"] as const).map((w) => parties[w].client.swaps().map((v) => `${w}:${v.progress.phase.kind}`).join(","));
                throw new Error(`no end within 300 rounds (liveness): ${views.join(" ")} sent=${sent} errors=${link.errors.map(String).join(" | ")}`);
              }
              if (crash !== undefined && !crashed && sent > crash.afterMessage) {
                crashed = true; // the process dies; a new one starts from its store
                parties[crash.who].store.close();
                parties[crash.who] = start(crash.who);
              }
              for (const w of ["alice", "bob"] as const) if (!(silenced() && silence?.who === w)) await parties[w].client.tick();
              await link.settled();
              clock.advance(2_000);
              if (rounds % chainEvery === 0) await increaseBoth(setup, 300);
            }

            expect(link.errors.filter((e) => e instanceof DoubleSignError)).to.deep.equal([]);
            const gone = silenced() ? silence?.who : undefined;
            const f = await finalBalances(setup, parties[gone === "alice" ? "bob" : "alice"]);
            const bobGotGive = f.S.balances[1] === 10n * ONE + GIVE;
            const aliceGotTake = f.T.balances[0] === ONE + TAKE;
            // Guarantee 1 for every party that stayed: it never gives without getting.
            if (gone !== "alice") expect(bobGotGive && !aliceGotTake, "Alice gave on S and got nothing on T").to.equal(false);
            if (gone !== "bob") expect(aliceGotTake && !bobGotGive, "Bob gave on T and got nothing on S").to.equal(false);
            const witness = parties[gone === "alice" ? "bob" : "alice"];
            const seen = witness.client.swaps().some((v) => v.swapId === swapId);
            const a = seen ? phaseOf(witness, swapId) : undefined;
            outcomes.add(a === undefined ? "never seen" : a.kind === "done" ? a.outcome : a.kind);
            if (gone === undefined && !bobGotGive) {
              expect(f.S.balances).to.deep.equal([100n * ONE, 10n * ONE]);
              expect(f.T.balances).to.deep.equal([ONE, 20n * ONE]);
            }
            expect(f.S.balances[0] + f.S.balances[1]).to.equal(110n * ONE, "S conserves its deposits");
            expect(f.T.balances[0] + f.T.balances[1]).to.equal(21n * ONE, "T conserves its deposits");
          } finally {
            for (const p of open) if (p.store.isOpen()) p.store.close();
            rmSync(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 40, seed: 20261124, endOnFailure: true },
    );
    // The sample must have reached every ending, or the property says little.
    expect([...outcomes]).to.include.members(["aborted", "settledOnChain", "swapped"]);
  });
});
