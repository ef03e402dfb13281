/**
 * The account's nonce order and fee escalation: a transaction is mined only after every lower nonce of its account,
 * so a version nobody raises any more (its call failed on an RPC error, or the process restarted), or one raised on
 * a slower schedule (a call without a deadline), holds back a call racing its deadline however high that call bids.
 * On Hardhat's chain over JSON-RPC, which keeps an underpriced version in its pool as geth does (anvil drops it).
 */
import { expect } from "chai";
import { network } from "hardhat";
import { hexlify, randomBytes, toQuantity, Wallet } from "ethers";

import { HubAdapter, hashlockOf, type FeeEvent, type FeePolicy, type Hex } from "../../sdk/index.js";
import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { TappedProvider } from "../helpers/tapped-provider.js";
import { track } from "../helpers/track.js";

const GWEI = 10n ** 9n;
const CONGESTED = 20n * GWEI;
const PATIENCE_MS = 90_000;

type Sent = Extract<FeeEvent, { kind: "sent" }>;
const sentOf = (events: readonly FeeEvent[]) => events.filter((e): e is Sent => e.kind === "sent");
const message = (e: unknown) => String((e as Error | undefined)?.message);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > PATIENCE_MS) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}

describe("fee escalation and the account's nonce order (Hardhat's chain over JSON-RPC, blocks every 500 ms)", function () {
  this.timeout(180_000);
  let provider: TappedProvider;
  let hub: string;
  let close: () => Promise<void>;
  /** The base fee of the blocks the miner makes. */
  let baseFee = GWEI;
  let mining = true;
  let miner: Promise<void>;

  before(async function () {
    const server = await network.createServer({ network: "source", override: { allowBlocksWithSameTimestamp: true } }, "127.0.0.1", 0);
    const { address, port } = await server.listen();
    provider = new TappedProvider(`http://${address}:${port}`);
    hub = await deployHub(provider);
    await provider.send("evm_setAutomine", [false]);
    // A block every 500 ms at `baseFee`: chain time keeps pace with the wall clock.
    miner = (async () => {
      while (mining) {
        await provider.send("hardhat_setNextBlockBaseFeePerGas", [toQuantity(baseFee)]);
        await provider.send("evm_mine", []);
        await sleep(500);
      }
    })();
    close = async () => {
      mining = false;
      await miner;
      provider.destroy();
      await server.close();
    };
  });

  afterEach(async function () {
    provider.tap = undefined;
    baseFee = GWEI; // whatever is still pending gets in
    await sleep(1_500);
  });

  after(async function () {
    await close?.();
  });

  async function sender(index: number, policy: Partial<FeePolicy> = {}) {
    const events: FeeEvent[] = [];
    const fees: FeePolicy = { maxFeePerGasCap: 60n * GWEI, bumpAfterMs: 1_500, minBumpAfterMs: 500, pollMs: 150, deadlineMarginSeconds: 10n, ...policy, onEvent: (e) => events.push(e) };
    const adapter = await HubAdapter.connect(hub, new Wallet(accountKey(index), provider), { fees });
    return { adapter, events };
  }

  it("a call made again after an RPC error ended the first try replaces that try's version in the pool, and lands before its deadline", async function () {
    const { adapter, events } = await sender(3);
    baseFee = GWEI;
    const secret = hexlify(randomBytes(32)) as Hex;
    const deadline = (await adapter.now()) + 40n;
    const first = track(adapter.reveal(secret, { deadline }));
    await waitFor("the first version", () => sentOf(events).length >= 1);
    baseFee = CONGESTED; // from now on the first version (about 3 gwei) is not mined unless it is raised
    // One failed receipt lookup (a 503, a timeout, an outage of a second; or the process restarting): the call ends
    // with an error and its version stays in the pool, raised by nobody.
    provider.tap = (p) => (p.method === "eth_getTransactionReceipt" ? new Error("503 Service Unavailable") : undefined);
    await waitFor("the first call to fail", () => first.done);
    provider.tap = undefined;
    expect(first.failed, "the first call failed on the RPC error").to.not.equal(undefined);
    // The node's next tick makes the call again from what the chain shows (the secret is not revealed yet).
    const again = track(adapter.reveal(secret, { deadline }));
    await waitFor("the call made again to end", () => again.done);
    const offers = sentOf(events).map((e) => `nonce ${e.nonce} at ${Number(e.maxFeePerGas) / 1e9} gwei`);
    expect(again.failed, `${message(again.failed)}; offers: ${offers.join(", ")}`).to.equal(undefined);
    const at = await adapter.revealedAt(hashlockOf(secret));
    expect(at, "revealed by its deadline").to.be.within(1n, deadline);
  });

  it("a call with a deadline behind the account's call without one lands before its deadline (the node's pacing: a raise every 24 s)", async function () {
    const { adapter, events } = await sender(4, { bumpAfterMs: 24_000 });
    baseFee = GWEI;
    // A call without a deadline (a settle, a withdrawal, a deposit, a cooperative close, a force close) goes first.
    const slow = track(adapter.reveal(hexlify(randomBytes(32)) as Hex));
    await waitFor("the call without a deadline sent", () => sentOf(events).length >= 1);
    baseFee = CONGESTED; // within the cap of 60 gwei
    const secret = hexlify(randomBytes(32)) as Hex;
    const deadline = (await adapter.now()) + 40n;
    const urgent = track(adapter.reveal(secret, { deadline }));
    await waitFor("the urgent call to end", () => urgent.done);
    const offers = sentOf(events).map((e) => `nonce ${e.nonce} at ${Number(e.maxFeePerGas) / 1e9} gwei`);
    expect(urgent.failed, `${message(urgent.failed)}; offers: ${offers.join(", ")}`).to.equal(undefined);
    expect(await adapter.revealedAt(hashlockOf(secret)), "revealed by its deadline").to.be.within(1n, deadline);
    baseFee = GWEI;
    await waitFor("the call without a deadline to end", () => slow.done);
  });
});
