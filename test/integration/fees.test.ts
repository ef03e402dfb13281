import { expect } from "chai";
import { network } from "hardhat";
import { hexlify, randomBytes, sha256, toQuantity, Transaction, type Provider } from "ethers";

import {
  bumpFee,
  ChainCallError,
  checkFeePolicy,
  feeLadder,
  firstFees,
  HubAdapter,
  nextFees,
  rpcProvider,
  waitBeforeReplacing,
  type FeeEvent,
  type FeePolicy,
  type Fees,
  type Hex,
} from "../../sdk/index.js";
import { deployHub, localWallet } from "../../scripts/lib/local.js";
import { deploySuite } from "../helpers/chains.js";
import { track } from "../helpers/track.js";

const GWEI = 10n ** 9n;
const BUMP_BPS = 1_250n; // 12.5 %
/** The base fee of every block while the chain is congested: far above what the node suggested a moment before. */
const CONGESTED = 20n * GWEI;
/** Generous bound on waits for the sender to act, so a broken sender fails the test instead of hanging it. */
const PATIENCE_MS = 30_000;

type Sent = Extract<FeeEvent, { kind: "sent" }>;
const sentOf = (events: readonly FeeEvent[]) => events.filter((e): e is Sent => e.kind === "sent");

/** One chain with the suite deployed, driven over `provider`, and an adapter factory for one sender on it. */
type Rig = Readonly<{
  provider: Pick<Provider, "getTransaction" | "getTransactionReceipt"> & {
    send(method: string, params: unknown[]): Promise<unknown>;
  };
  adapter: (fees: FeePolicy) => Promise<HubAdapter>;
  close: () => Promise<void>;
}>;

/**
 * A fresh chain of its own (automine goes off in these tests). Blocks may share a timestamp: the tests mine many
 * blocks a second, and chain time must keep pace with the wall clock the sender's waits are measured in.
 */
const FRESH_CHAIN = { network: "source", override: { allowBlocksWithSameTimestamp: true } } as const;

/** The in-process chain and a Hardhat ethers signer (the node signs). */
async function hardhatSignerRig(): Promise<Rig> {
  const suite = await deploySuite(await network.create(FRESH_CHAIN));
  const hub = await suite.hub.getAddress();
  return {
    provider: suite.chain.ethers.provider,
    adapter: (fees) => HubAdapter.connect(hub, suite.alice, { fees }),
    close: async () => {},
  };
}

/** A chain served over JSON-RPC and an ethers Wallet (signs locally, sends raw transactions). */
async function walletRig(): Promise<Rig> {
  const server = await network.createServer(FRESH_CHAIN, "127.0.0.1", 0);
  const { address, port } = await server.listen();
  const provider = rpcProvider(`http://${address}:${port}`);
  const hub = await deployHub(provider);
  return {
    provider,
    adapter: (fees) => HubAdapter.connect(hub, localWallet(1, provider), { fees }),
    close: async () => {
      provider.destroy();
      await server.close();
    },
  };
}

async function mineAt(rig: Rig, baseFee: bigint): Promise<void> {
  await rig.provider.send("hardhat_setNextBlockBaseFeePerGas", [toQuantity(baseFee)]);
  await rig.provider.send("evm_mine", []);
}

/** Automine off, and a last block at 1 gwei: the node suggests about 3 gwei (2 x base fee + 1 gwei tip). */
async function quietThenManual(rig: Rig): Promise<void> {
  await rig.provider.send("evm_setAutomine", [false]);
  await mineAt(rig, GWEI);
}

/** Ends congestion: a cheap block mines whatever is pending, then automine is back on. */
async function relieve(rig: Rig): Promise<void> {
  await mineAt(rig, GWEI);
  await rig.provider.send("evm_setAutomine", [true]);
}

/**
 * Automine off (quietThenManual), then a reveal sent through an adapter with `policy`, its fee events collected,
 * and its first version waited for. `deadlineIn`: the reveal's deadline, that many seconds of chain time from now.
 */
async function startReveal(rig: Rig, policy: Omit<FeePolicy, "onEvent">, deadlineIn?: bigint) {
  const events: FeeEvent[] = [];
  const adapter = await rig.adapter({ ...policy, onEvent: (e) => events.push(e) });
  await quietThenManual(rig);
  const secret = hexlify(randomBytes(32)) as Hex;
  const deadline = deadlineIn === undefined ? undefined : (await adapter.now()) + deadlineIn;
  const reveal = track(adapter.reveal(secret, { deadline }));
  await waitFor("the first version", () => sentOf(events).length >= 1);
  return { events, adapter, secret, deadline, reveal };
}

/** Mines a block at `baseFee` every few ms until `stop()` holds or PATIENCE_MS passes. */
async function mineUntil(rig: Rig, baseFee: bigint, stop: () => boolean): Promise<void> {
  const started = Date.now();
  while (!stop() && Date.now() - started < PATIENCE_MS) {
    await mineAt(rig, baseFee);
    await sleep(25);
  }
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > PATIENCE_MS) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}

/** Each version after the first has the same nonce, a new hash, and both fees raised by at least 12.5 %. */
function expectProperReplacements(sent: readonly Sent[], cap: bigint): void {
  expect(new Set(sent.map((s) => s.nonce)).size, "one nonce for every version").to.equal(1);
  expect(new Set(sent.map((s) => s.hash)).size, "a new hash for every version").to.equal(sent.length);
  for (const [i, s] of sent.entries()) {
    expect(s.maxFeePerGas <= cap, `version ${i} offers ${s.maxFeePerGas}, above the cap ${cap}`).to.equal(true);
    expect(s.maxPriorityFeePerGas <= s.maxFeePerGas).to.equal(true);
    const before = sent[i - 1];
    if (before === undefined) continue;
    expect(s.replaces).to.equal(before.hash);
    expect(
      s.maxFeePerGas >= bumpFee(before.maxFeePerGas, BUMP_BPS),
      `max fee of version ${i} raised by 12.5 %`,
    ).to.equal(true);
    expect(
      s.maxPriorityFeePerGas >= bumpFee(before.maxPriorityFeePerGas, BUMP_BPS),
      `tip of version ${i} raised by 12.5 %`,
    ).to.equal(true);
  }
}

describe("fee escalation", function () {
  describe("schedule", function () {
    const cap = 40n * GWEI;
    const market: Fees = { maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI };

    it("raises both fees by at least 12.5 % a step, never past the cap, and ends exactly at it", function () {
      let step = firstFees(market, cap, BUMP_BPS, Number.POSITIVE_INFINITY);
      expect(step.fees).to.deep.equal(market);
      const versions = [step.fees];
      for (
        let next = nextFees(step.fees, cap, BUMP_BPS, Infinity);
        next !== undefined;
        next = nextFees(step.fees, cap, BUMP_BPS, Infinity)
      ) {
        expect(next.fees.maxFeePerGas >= bumpFee(step.fees.maxFeePerGas, BUMP_BPS)).to.equal(true);
        expect(next.fees.maxPriorityFeePerGas >= bumpFee(step.fees.maxPriorityFeePerGas, BUMP_BPS)).to.equal(true);
        expect(next.fees.maxFeePerGas <= cap && next.fees.maxPriorityFeePerGas <= next.fees.maxFeePerGas).to.equal(
          true,
        );
        expect(next.stepsToCap).to.equal(step.stepsToCap - 1);
        step = next;
        versions.push(step.fees);
      }
      expect(step.fees.maxFeePerGas).to.equal(cap);
      expect(step.stepsToCap).to.equal(0);
      expect(versions.length).to.equal(feeLadder(cap, BUMP_BPS, bumpFee(market.maxFeePerGas, BUMP_BPS)).length + 1);
    });

    it("climbs faster the closer the deadline: the cap is reached within the replacements that fit", function () {
      const rungs = feeLadder(cap, BUMP_BPS, bumpFee(market.maxFeePerGas, BUMP_BPS)).length;
      expect(rungs).to.be.greaterThan(10);
      // Room for 3 replacements: the first version already starts 3 rungs below the cap.
      const first = firstFees(market, cap, BUMP_BPS, 3);
      expect(first.stepsToCap).to.equal(3);
      expect(first.fees.maxFeePerGas > market.maxFeePerGas).to.equal(true);
      // Room for 1 more: the next version skips to one rung below the cap; none left: straight to the cap.
      expect(nextFees(market, cap, BUMP_BPS, 1)?.stepsToCap).to.equal(1);
      expect(nextFees(market, cap, BUMP_BPS, 0)?.fees.maxFeePerGas).to.equal(cap);
      expect(firstFees(market, cap, BUMP_BPS, 0).fees.maxFeePerGas).to.equal(cap);
      // The wait between versions shrinks with the time left, within its bounds.
      expect(waitBeforeReplacing(10, 600_000, 2_000, 24_000)).to.equal(24_000);
      expect(waitBeforeReplacing(10, 60_000, 2_000, 24_000)).to.equal(6_000);
      expect(waitBeforeReplacing(10, 5_000, 2_000, 24_000)).to.equal(2_000);
    });

    it("stays at the cap: no replacement above it, and a market above the cap is cut to it", function () {
      expect(nextFees({ maxFeePerGas: cap, maxPriorityFeePerGas: GWEI }, cap, BUMP_BPS, 5)).to.equal(undefined);
      // Less than one bump below the cap: no replacement would be accepted at the cap, so none is sent.
      expect(nextFees({ maxFeePerGas: cap - 1n, maxPriorityFeePerGas: GWEI }, cap, BUMP_BPS, 5)).to.equal(undefined);
      const expensive = firstFees({ maxFeePerGas: 2n * cap, maxPriorityFeePerGas: 4n * GWEI }, cap, BUMP_BPS, 5);
      expect(expensive.fees).to.deep.equal({ maxFeePerGas: cap, maxPriorityFeePerGas: 2n * GWEI });
      expect(expensive.stepsToCap).to.equal(0);
    });

    it("refuses a bump nodes would reject as a replacement", function () {
      expect(() => checkFeePolicy({ maxFeePerGasCap: cap, bumpPercent: 10 })).to.throw(/at least 12.5/);
      expect(() => checkFeePolicy({ maxFeePerGasCap: 0n })).to.throw(/positive/);
    });
  });

  for (const [signerKind, makeRig] of [
    ["a Hardhat signer", hardhatSignerRig],
    ["an ethers Wallet over JSON-RPC", walletRig],
  ] as const) {
    describe(`on a congested chain, with ${signerKind}`, function () {
      let rig: Rig;
      before(async function () {
        rig = await makeRig();
      });
      after(async function () {
        await rig.close();
      });
      afterEach(async function () {
        await relieve(rig);
      });

      it("replaces a reveal stuck behind a low fee until it is mined before the lock expires, under the cap", async function () {
        const cap = 40n * GWEI;
        // Left to itself the sender would wait 24 s per version; the deadline makes it climb the ~20 rungs from
        // 3 gwei to the cap within the 3 s before deadline - margin.
        const { events, adapter, secret, deadline, reveal } = await startReveal(
          rig,
          { maxFeePerGasCap: cap, bumpAfterMs: 24_000, minBumpAfterMs: 50, pollMs: 20, deadlineMarginSeconds: 30n },
          33n,
        );

        // From now on every block costs 20 gwei: the first version (about 3 gwei) can only get in if it is replaced.
        let blocksAffordable = 0;
        await mineUntil(rig, CONGESTED, () => {
          if (sentOf(events).some((s) => s.maxFeePerGas >= CONGESTED)) blocksAffordable++;
          return reveal.done || blocksAffordable > 20;
        });
        expect(reveal.done, "the reveal was not mined on the congested chain").to.equal(true);
        await reveal.promise;

        const sent = sentOf(events);
        expect(sent[0]!.maxFeePerGas < CONGESTED, "the first version is underpriced").to.equal(true);
        expect(sent.length).to.be.greaterThan(1);
        expectProperReplacements(sent, cap);
        const mined = events.find((e) => e.kind === "mined");
        expect(mined?.hash).to.be.oneOf(sent.slice(1).map((s) => s.hash));
        const tx = await rig.provider.getTransaction(mined!.hash);
        expect(tx?.nonce).to.equal(sent[0]!.nonce);
        expect(tx!.maxFeePerGas! >= CONGESTED && tx!.maxFeePerGas! <= cap).to.equal(true);
        expect(await rig.provider.getTransactionReceipt(sent[0]!.hash)).to.equal(null);
        const revealedAt = await adapter.revealedAt(sha256(secret) as Hex);
        expect(revealedAt > 0n && revealedAt <= deadline!).to.equal(true);
      });

      it("counts an earlier version that got mined after it was replaced as success", async function () {
        const { events, adapter, secret, reveal } = await startReveal(rig, {
          maxFeePerGasCap: 40n * GWEI,
          bumpAfterMs: 1_000,
          minBumpAfterMs: 50,
          pollMs: 20,
        });
        const first = sentOf(events)[0]!;
        const firstRaw = Transaction.from((await rig.provider.getTransaction(first.hash))!).serialized;
        await waitFor("a replacement", () => sentOf(events).length >= 2 || reveal.done);

        // The replacement loses: the node forgets it and mines the first version instead.
        for (const s of sentOf(events)) await rig.provider.send("hardhat_dropTransaction", [s.hash]);
        await rig.provider.send("eth_sendRawTransaction", [firstRaw]);
        await mineAt(rig, GWEI);
        await reveal.promise;

        expect(events.find((e) => e.kind === "mined")?.hash).to.equal(first.hash);
        expect(await adapter.revealedAt(sha256(secret) as Hex)).to.not.equal(0n);
      });
    });
  }

  describe("at the cap, with a Hardhat signer", function () {
    let rig: Rig;
    before(async function () {
      rig = await hardhatSignerRig();
    });
    afterEach(async function () {
      await relieve(rig);
    });

    it("stops raising at the cap, keeps the capped version waiting, and reports it", async function () {
      const cap = 10n * GWEI; // below the congested base fee: nothing under the cap gets in while it lasts
      const { events, reveal } = await startReveal(rig, {
        maxFeePerGasCap: cap,
        bumpAfterMs: 100,
        minBumpAfterMs: 50,
        pollMs: 20,
      });

      await mineUntil(rig, CONGESTED, () => reveal.done || events.some((e) => e.kind === "capReached"));
      const capped = events.find((e) => e.kind === "capReached");
      expect(capped, "the sender never reported reaching the cap").to.not.equal(undefined);
      const versions = sentOf(events).length;
      // Ten more rounds of congestion: no further version, and nothing mined.
      for (let i = 0; i < 10; i++) {
        await mineAt(rig, CONGESTED);
        await sleep(100);
      }
      expect(sentOf(events).length, "a version was sent after the cap was reached").to.equal(versions);
      expect(reveal.done).to.equal(false);
      expect(sentOf(events).at(-1)!.maxFeePerGas, "the last version offers the cap").to.equal(cap);

      // The congestion ends below the cap: the capped version is mined.
      await mineAt(rig, 5n * GWEI);
      await reveal.promise;
      const sent = sentOf(events);
      expectProperReplacements(sent, cap);
      expect(capped?.hash).to.equal(sent.at(-1)!.hash);
      expect(events.find((e) => e.kind === "mined")?.hash).to.equal(sent.at(-1)!.hash);
    });

    it("goes straight to the cap when the deadline is already within the margin", async function () {
      const cap = 40n * GWEI;
      const { events, reveal } = await startReveal(rig, { maxFeePerGasCap: cap, deadlineMarginSeconds: 60n, pollMs: 20 }, 30n);
      await mineAt(rig, CONGESTED);
      await reveal.promise;
      expect(sentOf(events).map((s) => s.maxFeePerGas)).to.deep.equal([cap]);
    });

    it("still reports a revert with the hub's custom error", async function () {
      const adapter = await rig.adapter({ maxFeePerGasCap: 40n * GWEI, pollMs: 20 });
      const params = {
        participants: [
          "0x0000000000000000000000000000000000000001",
          "0x0000000000000000000000000000000000000002",
        ] as const,
        payees: ["0x0000000000000000000000000000000000000000", "0x0000000000000000000000000000000000000000"] as const,
        asset: "0x0000000000000000000000000000000000000000",
        challengePeriod: 3600n,
        nonce: 1n,
      };
      const error = await adapter.forceClose(params, undefined, { deadline: 1n }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(ChainCallError);
      expect((error as ChainCallError).reason).to.match(/^NotParticipant\(0x[0-9a-f]{64}, 0x[0-9a-fA-F]{40}\)$/);
    });
  });
});
