/**
 * Transactions sent without a fee policy (`HubAdapter.connect(hub, wallet)`, the SDK's default, what a dApp and a
 * SwapClient get) against anvil mining a block a second: a version the node dropped from its pool is sent again as
 * it was, under the same nonce, while a call made meanwhile takes the next nonce; a version a reorganisation took
 * out after it was mined is followed and counted once it is `landingDepth` deep; and on a chain without EIP-1559
 * fees the same sender goes at the node's gas price. Without a policy the fees are never raised.
 */
import { expect } from "chai";
import { hexlify, randomBytes, type JsonRpcProvider } from "ethers";

import { HubAdapter, hashlockOf, sendWithFees, type Hex } from "../../sdk/index.js";
import { deployHub, localWallet } from "../../scripts/lib/local.js";
import { anvilProvider, startAnvil, type Anvil } from "../helpers/anvil.js";
import { TappedProvider } from "../helpers/tapped-provider.js";
import { track } from "../helpers/track.js";

/**
 * Generous bound on waits, so a sender that never sends a dropped version again fails the test instead of hanging
 * it (it looks for the version in the pool every 24 s when nothing is mined).
 */
const PATIENCE_MS = 60_000;

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > PATIENCE_MS) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Pooled = { hash: string; nonce: number };

describe("transactions sent without a fee policy on a chain that misbehaves (anvil, a block a second)", function () {
  this.timeout(180_000);
  let anvil: Anvil;
  let provider: JsonRpcProvider;
  let hub: string;

  before(async function () {
    anvil = await startAnvil({ chainId: 31_411, blockTime: 1 });
    provider = anvilProvider(anvil);
    hub = await deployHub(provider);
  });

  after(async function () {
    provider?.destroy();
    await anvil?.stop();
  });

  /** The transactions of `address` in anvil's pool, ready or waiting for a lower nonce, by nonce. */
  async function pooled(address: string): Promise<Pooled[]> {
    type Pool = Record<"pending" | "queued", Record<string, Record<string, { hash: string; nonce: string }>>>;
    const pool = await anvil.rpc<Pool>("txpool_content");
    const mine = (section: Pool["pending"]) =>
      Object.entries(section).flatMap(([from, txs]) => (from.toLowerCase() === address.toLowerCase() ? Object.values(txs) : []));
    return [...mine(pool.pending), ...mine(pool.queued)].map((t) => ({ hash: t.hash, nonce: Number(t.nonce) })).sort((a, b) => a.nonce - b.nonce);
  }

  /** A reveal of a fresh secret with `deadline` that many seconds of chain time ahead; and how to see it on chain. */
  async function reveal(adapter: HubAdapter, deadlineIn: bigint) {
    const secret = hexlify(randomBytes(32)) as Hex;
    const deadline = (await adapter.now()) + deadlineIn;
    const call = track(adapter.reveal(secret, { deadline }));
    const hashlock = hashlockOf(secret);
    const revealedAt = () => adapter.revealedAt(hashlock);
    const onChain = () => adapter.registry.queryFilter(adapter.registry.filters.SecretRevealed(hashlock));
    return { call, deadline, revealedAt, onChain };
  }

  it("sends again, under the same nonce, a reveal the node dropped from its pool, and a call made meanwhile takes the next nonce", async function () {
    const wallet = localWallet(1, provider);
    const adapter = await HubAdapter.connect(hub, wallet);
    await anvil.rpc("evm_setIntervalMining", [0]); // nothing mined while the first version is dropped
    const first = await reveal(adapter, 120n);
    await waitFor("the first reveal in the pool", async () => (await pooled(wallet.address)).length === 1);
    const [dropped] = await pooled(wallet.address);
    await anvil.rpc("anvil_dropTransaction", [dropped!.hash]);
    expect(await provider.getTransaction(dropped!.hash), "the first version, dropped").to.equal(null);
    // The node's pending count is back at the dropped nonce: a second call must not take it.
    const second = await reveal(adapter, 120n);
    await waitFor("the second reveal in the pool", async () => (await pooled(wallet.address)).length === 1);
    const [next] = await pooled(wallet.address);
    expect(next!.nonce, "the second call's nonce").to.equal(dropped!.nonce + 1);
    await anvil.rpc("evm_setIntervalMining", [1]);
    await waitFor("both reveals to land", () => first.call.done && second.call.done);
    expect(first.call.failed, String(first.call.failed)).to.equal(undefined);
    expect(second.call.failed, String(second.call.failed)).to.equal(undefined);
    const landed = await provider.getTransaction(dropped!.hash);
    expect(landed?.blockNumber, "the dropped version itself, sent again as it was, is mined").to.be.a("number");
    expect(landed!.nonce).to.equal(dropped!.nonce);
    for (const r of [first, second]) {
      const at = await r.revealedAt();
      expect(at, "revealed on chain").to.be.greaterThan(0n);
      expect(at, "before its deadline").to.be.at.most(r.deadline);
    }
  });

  it("follows a reveal a reorganisation took out after it was mined: sent again, and counted once 3 blocks deep", async function () {
    // The sender's requests are counted: it reads its receipt once when it sees its nonce used, then again while it
    // waits for the depth. The reorganisation comes after that, so it takes out a transaction the sender saw mined.
    const tapped = new TappedProvider(anvil.url);
    try {
      const wallet = localWallet(2, tapped);
      const adapter = await HubAdapter.connect(hub, wallet, { landingDepth: 3 });
      const nonce = await wallet.getNonce();
      const r = await reveal(adapter, 120n);
      const receiptsRead = () => tapped.counts.get("eth_getTransactionReceipt") ?? 0;
      await waitFor("the sender to see its reveal mined", async () => r.call.done || (receiptsRead() >= 2 && (await r.onChain()).length > 0));
      const [mined] = await r.onChain();
      expect(r.call.done, "mined, not yet 3 blocks deep: the call still waits").to.equal(false);
      await anvil.reorg((await provider.getBlockNumber()) - mined!.blockNumber + 1); // its block and every one after it
      expect(await provider.getTransactionReceipt(mined!.transactionHash), "the mined version, reorganised out").to.equal(null);
      await waitFor("the reveal to land", () => r.call.done);
      expect(r.call.failed, String(r.call.failed)).to.equal(undefined);
      const events = await r.onChain();
      expect(events, "revealed once in the chain as it now stands").to.have.length(1);
      expect((await provider.getBlockNumber()) - events[0]!.blockNumber, "at least 3 blocks deep").to.be.at.least(3);
      expect((await provider.getTransaction(events[0]!.transactionHash))!.nonce, "under the same nonce").to.equal(nonce);
      expect(await r.revealedAt()).to.be.at.most(r.deadline);
    } finally {
      tapped.destroy();
    }
  });

  it("sends at the node's gas price on a chain without EIP-1559 fees, where fee escalation refuses to start", async function () {
    const legacy = await startAnvil({ chainId: 31_412, hardfork: "berlin" });
    const p = anvilProvider(legacy);
    try {
      const { maxFeePerGas, gasPrice } = await p.getFeeData();
      expect(maxFeePerGas, "no EIP-1559 fees").to.equal(null);
      const wallet = localWallet(1, p);
      const args = {
        call: "transfer",
        signer: wallet,
        request: { to: localWallet(2, p).address, value: 1n },
        chainNow: async () => BigInt((await p.getBlock("latest"))!.timestamp),
      };
      const receipt = await sendWithFees(args);
      const tx = await p.getTransaction(receipt.hash);
      expect(tx!.type, "a legacy transaction").to.equal(0);
      expect(tx!.gasPrice, "at the node's gas price").to.equal(gasPrice);
      let refused: unknown;
      await sendWithFees({ ...args, policy: { maxFeePerGasCap: 100n * gasPrice! } }).catch((e: unknown) => (refused = e));
      expect(String(refused)).to.match(/needs an EIP-1559 chain/);
    } finally {
      p.destroy();
      await legacy.stop();
    }
  });
});
