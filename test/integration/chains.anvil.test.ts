/**
 * Transactions that must land before a deadline, against a chain that misbehaves: anvil (a second EVM client, in a
 * process of its own) mining a block a second, dropping a pending transaction, raising its base fee twentyfold,
 * reorganising a transaction out of the chain after it was mined, and another process sending from the same key.
 * Each test sends through `HubAdapter` with a fee policy, as a node does, and checks what landed on chain.
 */
import { expect } from "chai";
import { hexlify, randomBytes, type JsonRpcProvider } from "ethers";

import { HubAdapter, hashlockOf, type FeeEvent, type FeePolicy, type Hex } from "../../sdk/index.js";
import { deployHub, localWallet } from "../../scripts/lib/local.js";
import { anvilProvider, startAnvil, type Anvil } from "../helpers/anvil.js";
import { track } from "../helpers/track.js";

const GWEI = 10n ** 9n;
/** Generous bound on waits, so a broken sender fails the test instead of hanging it. */
const PATIENCE_MS = 60_000;
/** Paced for a chain of one block a second: replacements every 0.5-1.5 s, the cap 10 s before the deadline. */
const POLICY: FeePolicy = { maxFeePerGasCap: 60n * GWEI, bumpAfterMs: 1_500, minBumpAfterMs: 500, pollMs: 150, deadlineMarginSeconds: 10n, nonceTakenAfterMs: 3_000 };

type Sent = Extract<FeeEvent, { kind: "sent" }>;
const sentOf = (events: readonly FeeEvent[]) => events.filter((e): e is Sent => e.kind === "sent");

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > PATIENCE_MS) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("deadline transactions on a chain that misbehaves (anvil, a block a second)", function () {
  this.timeout(180_000);
  let anvil: Anvil;
  let provider: JsonRpcProvider;
  let hub: string;
  /** The base fee of a quiet chain: each test's spike is a multiple of it, and the chain comes back to it after. */
  let quiet: bigint;

  before(async function () {
    anvil = await startAnvil({ chainId: 31_401, blockTime: 1 });
    provider = anvilProvider(anvil);
    hub = await deployHub(provider);
    quiet = (await provider.getBlock("latest"))!.baseFeePerGas!;
  });

  after(async function () {
    provider?.destroy();
    await anvil?.stop();
  });

  /** An adapter for local account `index` with POLICY (and `cap`), its fee events collected. */
  async function sender(index: number, options: { cap?: bigint; confirmations?: number } = {}) {
    const events: FeeEvent[] = [];
    const fees: FeePolicy = { ...POLICY, maxFeePerGasCap: options.cap ?? POLICY.maxFeePerGasCap, onEvent: (e) => events.push(e) };
    const adapter = await HubAdapter.connect(hub, localWallet(index, provider), { fees, landingDepth: options.confirmations ?? 0 });
    return { adapter, events };
  }

  /**
   * Every block at `baseFee` until the returned stop is called; resolves once the latest block shows it (a spike in
   * progress, as the fee market reports it).
   */
  async function spikeAt(baseFee: bigint): Promise<() => Promise<void>> {
    let spiking = true;
    const loop = (async () => {
      while (spiking) {
        await anvil.setNextBaseFee(baseFee); // before each block of the stretch is mined
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    await waitFor("the spike to show", async () => (await provider.getBlock("latest"))!.baseFeePerGas! >= baseFee);
    return async () => {
      spiking = false;
      await loop;
      await anvil.setNextBaseFee(quiet); // the stretch ends: the next test starts on a quiet chain
      await waitFor("the chain to be quiet again", async () => (await provider.getBlock("latest"))!.baseFeePerGas! <= quiet);
    };
  }

  /** A reveal of a fresh secret with `deadline` that many seconds of chain time ahead; and how to see it on chain. */
  async function reveal(adapter: HubAdapter, deadlineIn: bigint) {
    const secret = hexlify(randomBytes(32)) as Hex;
    const deadline = (await adapter.now()) + deadlineIn;
    const call = track(adapter.reveal(secret, { deadline }));
    const revealedAt = () => adapter.revealedAt(hashlockOf(secret));
    return { call, deadline, revealedAt };
  }

  it("lands a reveal the node dropped from its pool, before its deadline", async function () {
    const { adapter, events } = await sender(1);
    await anvil.rpc("evm_setIntervalMining", [0]); // nothing mined while the first version is dropped
    const r = await reveal(adapter, 90n);
    await waitFor("the first version", () => sentOf(events).length >= 1);
    await anvil.rpc("anvil_dropTransaction", [sentOf(events)[0]!.hash]);
    expect(await provider.getTransaction(sentOf(events)[0]!.hash), "the first version, dropped").to.equal(null);
    await anvil.rpc("evm_setIntervalMining", [1]);
    await waitFor("the reveal to land", () => r.call.done);
    expect(r.call.failed).to.equal(undefined);
    const at = await r.revealedAt();
    expect(at, "revealed on chain").to.be.greaterThan(0n);
    expect(at, "before its deadline").to.be.at.most(r.deadline);
  });

  it("lands a reveal through a twentyfold base fee before its deadline, never offering more than the cap", async function () {
    const { adapter, events } = await sender(2);
    const spike = 20n * quiet;
    const stop = await spikeAt(spike);
    const r = await reveal(adapter, 60n);
    await waitFor("the reveal to land", () => r.call.done).finally(stop);
    expect(r.call.failed, (r.call.failed as Error)?.message).to.equal(undefined);
    const offers = events.flatMap((e) => (e.kind === "sendRefused" || e.kind === "sent" ? [e.maxFeePerGas] : []));
    expect(offers.every((f) => f <= POLICY.maxFeePerGasCap), `offers ${offers.join(", ")} under the cap`).to.equal(true);
    expect(sentOf(events).at(-1)!.maxFeePerGas, "the version that landed pays the spiked base fee").to.be.at.least(spike);
    const at = await r.revealedAt();
    expect(at, "revealed on chain").to.be.greaterThan(0n);
    expect(at, "before its deadline").to.be.at.most(r.deadline);
  });

  it("says at once that its cap is below what the chain asks, long before the deadline, and never offers more", async function () {
    const spike = 20n * quiet;
    const cap = spike / 4n;
    const { adapter, events } = await sender(3, { cap });
    const stop = await spikeAt(spike);
    const r = await reveal(adapter, 600n);
    await waitFor("the call to give up", () => r.call.done).finally(stop);
    expect(events[0]?.kind, "the warning comes before anything is sent").to.equal("capBelowMarket");
    expect(String((r.call.failed as Error)?.message), "the error names the cap").to.match(/even at the fee cap of \d+ wei per gas/);
    expect(r.deadline - (await adapter.now()), "seconds of chain time left when it gave up").to.be.greaterThan(500n);
    const offers = events.flatMap((e) => (e.kind === "sendRefused" || e.kind === "sent" ? [e.maxFeePerGas] : []));
    expect(offers.every((f) => f <= cap), `offers ${offers.join(", ")} under the cap`).to.equal(true);
    // Once the market is back under the cap, the call goes through (a node's next tick sends it again).
    await waitFor("fees back under the cap", async () => (await provider.getBlock("latest"))!.baseFeePerGas! * 2n < cap);
    const again = await reveal(adapter, 120n);
    await waitFor("the reveal to land", () => again.call.done);
    expect(again.call.failed).to.equal(undefined);
  });

  it("gives up once its deadline has passed with the market above its cap, so the caller's loop goes on", async function () {
    const base = quiet;
    const cap = 8n * base;
    const { adapter, events } = await sender(7, { cap });
    await anvil.rpc("evm_setIntervalMining", [0]); // the first version goes into the pool at today's fees
    const r = await reveal(adapter, 10n);
    await waitFor("the first version", () => sentOf(events).length >= 1);
    await anvil.rpc("evm_setIntervalMining", [1]);
    const stop = await spikeAt(20n * base); // from now on every block asks more than the cap
    await waitFor("the call to give up", () => r.call.done).finally(stop);
    expect(String((r.call.failed as Error)?.message)).to.match(/not mined by its deadline/);
    expect(await adapter.now(), "not before the deadline").to.be.greaterThan(r.deadline);
    expect(events.map((e) => e.kind), "it climbed to the cap first").to.include("capReached");
    expect(sentOf(events).every((e) => e.maxFeePerGas <= cap)).to.equal(true);
    expect(await r.revealedAt()).to.equal(0n);
  });

  it("sends again a reveal a reorganisation took out after it was mined, and counts it only once deep enough", async function () {
    const { adapter, events } = await sender(4, { confirmations: 3 });
    const r = await reveal(adapter, 120n);
    await waitFor("the first version mined", () => events.some((e) => e.kind === "mined")).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(events, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
    });
    const mined = events.find((e): e is Extract<FeeEvent, { kind: "mined" }> => e.kind === "mined")!;
    const head = await provider.getBlockNumber();
    await anvil.reorg(head - mined.blockNumber + 1); // its block and every one after it replaced by empty ones
    expect(await provider.getTransactionReceipt(mined.hash), "the mined version, reorganised out").to.equal(null);
    await waitFor("the reveal to land", () => r.call.done);
    expect(r.call.failed).to.equal(undefined);
    const kinds = events.map((e) => e.kind);
    expect(kinds, "noticed").to.include("reorgedOut");
    const landed = events.find((e): e is Extract<FeeEvent, { kind: "landed" }> => e.kind === "landed")!;
    expect((await provider.getBlockNumber()) - landed.blockNumber, "landed 3 blocks deep").to.be.at.least(3);
    expect(await provider.getTransactionReceipt(landed.hash), "in the chain as it now stands").to.not.equal(null);
    expect(await r.revealedAt()).to.be.greaterThan(0n);
  });

  it("takes the next nonce when another process with the same key used its own, and lands", async function () {
    const { adapter, events } = await sender(5);
    await anvil.rpc("evm_setIntervalMining", [0]);
    const r = await reveal(adapter, 120n);
    await waitFor("the first version", () => sentOf(events).length >= 1);
    // Another process with the same key replaces it in the pool with a transfer of its own, at ten times the fee.
    const first = sentOf(events)[0]!;
    const other = localWallet(5, provider);
    await other.sendTransaction({ to: other.address, value: 1n, nonce: first.nonce, maxFeePerGas: first.maxFeePerGas * 10n, maxPriorityFeePerGas: first.maxPriorityFeePerGas * 10n });
    await anvil.rpc("evm_setIntervalMining", [1]);
    await waitFor("the reveal to land", () => r.call.done);
    expect(r.call.failed).to.equal(undefined);
    expect(events.map((e) => e.kind)).to.include("nonceTaken");
    const last = sentOf(events).at(-1)!;
    expect(last.nonce, "sent again under the next nonce").to.equal(first.nonce + 1);
    expect(await r.revealedAt()).to.be.greaterThan(0n);
  });

  it("never gives two calls of one account the same nonce, however close together they start", async function () {
    const { adapter, events } = await sender(6);
    await anvil.rpc("evm_setIntervalMining", [0]);
    const calls = await Promise.all([reveal(adapter, 120n), reveal(adapter, 120n), reveal(adapter, 120n)]);
    await waitFor("three first versions", () => sentOf(events).length >= 3);
    await anvil.rpc("evm_setIntervalMining", [1]);
    await waitFor("all three to land", () => calls.every((c) => c.call.done));
    for (const c of calls) {
      expect(c.call.failed).to.equal(undefined);
      expect(await c.revealedAt()).to.be.greaterThan(0n);
    }
    const nonces = new Set(sentOf(events).filter((e) => e.replaces === undefined).map((e) => e.nonce));
    expect(nonces.size, "three nonces for three calls").to.equal(3);
    expect(events.map((e) => e.kind)).to.not.include("nonceTaken");
  });
});
