/**
 * How one transaction that does not land holds up the rest of a node's duties, against anvil (a block a second):
 * a chain that stops making blocks (its RPC node out of sync), a node that refuses every send, a receipt the RPC is
 * slow to show, a transaction on one chain that cannot be mined while the watchtower owes a reveal on the other, and
 * a settle reorganised out after the watchtower counted it done. Each test states what must hold; on the code under
 * review each one fails (see the commit that adds this file). Anvil drops a pending transaction whose max fee is
 * under the base fee, so what a version left in the pool does to the account's later ones is shown on Hardhat's
 * chain, which keeps it as geth does (fees.nonceOrder.test.ts).
 */
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hexlify, randomBytes, Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";

import {
  HubAdapter,
  hashlockOf,
  Store,
  Watchtower,
  type ChannelParams,
  type FeeEvent,
  type FeePolicy,
  type Hex,
} from "../../sdk/index.js";
import { accountKey, deployHub, localWallet } from "../../scripts/lib/local.js";
import { anvilProvider, startAnvil, type Anvil } from "../helpers/anvil.js";
import { TappedProvider } from "../helpers/tapped-provider.js";
import { track } from "../helpers/track.js";

const GWEI = 10n ** 9n;
const PATIENCE_MS = 60_000;
const POLICY: FeePolicy = { maxFeePerGasCap: 60n * GWEI, bumpAfterMs: 1_500, minBumpAfterMs: 500, pollMs: 150, deadlineMarginSeconds: 10n };

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, patience = PATIENCE_MS): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > patience) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const message = (e: unknown) => String((e as Error | undefined)?.message);

describe("one transaction that does not land, and the node's other duties (anvil, a block a second)", function () {
  this.timeout(240_000);
  let S: Anvil;
  let T: Anvil;
  let sp: JsonRpcProvider;
  let tp: JsonRpcProvider;
  let hubS: string;
  let hubT: string;
  let dir: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async function () {
    S = await startAnvil({ chainId: 31_421, blockTime: 1 });
    T = await startAnvil({ chainId: 31_422, blockTime: 1 });
    sp = anvilProvider(S);
    tp = anvilProvider(T);
    hubS = await deployHub(sp);
    hubT = await deployHub(tp);
    // Anvil funds the first ten accounts only: these tests use accounts of their own.
    for (let i = 11; i <= 20; i++) {
      for (const a of [S, T]) await a.rpc("anvil_setBalance", [new Wallet(accountKey(i)).address, "0x56BC75E2D63100000"]);
    }
    dir = mkdtempSync(join(tmpdir(), "stall-"));
  });

  afterEach(async function () {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  after(async function () {
    sp?.destroy();
    tp?.destroy();
    await S?.stop();
    await T?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function sender(index: number, policy: Partial<FeePolicy> = {}, provider?: JsonRpcProvider) {
    const events: FeeEvent[] = [];
    const fees: FeePolicy = { ...POLICY, ...policy, onEvent: (e) => events.push(e) };
    const p = provider ?? sp;
    const adapter = await HubAdapter.connect(hubS, new Wallet(accountKey(index), p), { fees, landingDepth: 0 });
    return { adapter, events };
  }

  /** Lets every call of account `index` on S land (the chain quiet and mining), for the next test. */
  function drainOnExit(calls: { promise: Promise<unknown> }[]) {
    cleanups.push(async () => {
      await S.rpc("evm_setIntervalMining", [1]);
      await Promise.race([Promise.allSettled(calls.map((c) => c.promise)), new Promise((r) => setTimeout(r, 30_000))]);
    });
  }

  it("a call with a deadline gives up once its deadline has passed even when the chain stopped making blocks", async function () {
    const { adapter } = await sender(13);
    await S.rpc("evm_setIntervalMining", [0]); // the RPC's node stops following the chain: its head and time stand still
    const deadline = (await adapter.now()) + 3n;
    const call = track(adapter.reveal(hexlify(randomBytes(32)) as Hex, { deadline }));
    drainOnExit([call]);
    // 3 s of chain time is 3 s of wall time on this chain; a caller's loop must get control back to do its other duties.
    await waitFor("the call to give up", () => call.done, 30_000);
    expect(message(call.failed)).to.match(/deadline/);
  });

  it("a node that refuses every send costs a few requests, not a climb to the cap (an account with no coin for gas)", async function () {
    const tapped = new TappedProvider(S.url);
    cleanups.push(async () => tapped.destroy());
    const broke = Wallet.createRandom().connect(tapped);
    const adapter = await HubAdapter.connect(hubS, broke, { fees: { ...POLICY, maxFeePerGasCap: 500n * GWEI } });
    const before = tapped.total();
    const call = track(adapter.reveal(hexlify(randomBytes(32)) as Hex, { deadline: (await adapter.now()) + 600n }));
    await waitFor("the call to fail", () => call.done);
    const made = tapped.total() - before;
    const sends = tapped.counts.get("eth_sendRawTransaction") ?? 0;
    expect(message(call.failed), "refused").to.match(/insufficient funds|refused/i);
    // One tick of a node with a due call; the tick loop repeats it every tickMs (1 s by default).
    expect(made, `${made} requests (${sends} sends) for one call: ${message(call.failed).slice(0, 160)}`).to.be.at.most(20);
  });

  /** A native channel on S between accounts `me` (index 0, deposits `amount`) and `other`. */
  async function channel(me: number, other: number, amount: bigint) {
    const params: ChannelParams = {
      participants: [new Wallet(accountKey(me)).address as Hex, new Wallet(accountKey(other)).address as Hex],
      payees: [ZeroAddress as Hex, ZeroAddress as Hex],
      asset: ZeroAddress as Hex,
      challengePeriod: 300n,
      nonce: BigInt(hexlify(randomBytes(8))),
    };
    const mine = await HubAdapter.connect(hubS, localWallet(me, sp));
    const channelId = await mine.openAndDeposit(params, 0, amount);
    return { params, channelId };
  }

  it("a deposit whose receipt the RPC shows late is not sent twice", async function () {
    const tapped = new TappedProvider(S.url);
    cleanups.push(async () => tapped.destroy());
    const { params, channelId } = await channel(14, 15, 10n ** 15n);
    const { adapter, events } = await sender(14, {}, tapped);
    // A load-balanced RPC: the backend answering receipts is a few blocks behind the one answering nonces.
    const firstSeen = new Map<string, number>();
    tapped.tap = (p) => {
      if (p.method !== "eth_getTransactionReceipt") return undefined;
      const hash = String((p.params as unknown[])[0]).toLowerCase();
      if (!firstSeen.has(hash)) firstSeen.set(hash, Date.now());
      return Date.now() - firstSeen.get(hash)! < 4_000 ? { result: null } : undefined;
    };
    const amount = 10n ** 15n;
    const outcome = await adapter.deposit(params, channelId as Hex, 0, amount).then(() => "done", (e: unknown) => message(e));
    tapped.tap = undefined;
    await new Promise((r) => setTimeout(r, 2_000)); // anything still in the pool is mined
    const info = await adapter.channelInfo(channelId as Hex);
    const asked = 10n ** 15n + amount; // the opening deposit and this one
    expect(info.deposits[0], `deposited ${(info.deposits[0] - 10n ** 15n) / amount} times what was asked; the call: ${outcome}; events ${events.map((e) => e.kind).join(",")}`).to.equal(asked);
  });

  /** A watchtower for account `me` on S (and T), its fee events collected. */
  async function tower(me: number, claimWindowSeconds: bigint, sProvider: JsonRpcProvider = sp, confirmations = 0) {
    const store = new Store(join(dir, `tower-${me}-${Date.now()}.sqlite`));
    const events: FeeEvent[] = [];
    const fees: FeePolicy = { ...POLICY, onEvent: (e) => events.push(e) };
    const onS = await HubAdapter.connect(hubS, new Wallet(accountKey(me), sProvider), { fees, confirmations: 0 });
    const onT = await HubAdapter.connect(hubT, localWallet(me, tp), { fees, confirmations: 0 });
    const watch = (chain: HubAdapter) => ({ chain, confirmations, clockSkewSeconds: 5n, claimWindowSeconds });
    const t = new Watchtower(store, [watch(onS), watch(onT)]);
    cleanups.push(async () => store.close());
    return { t, store, events, onS, onT };
  }

  /** Polls like the node's heartbeat: every `ms`, skipped while one is in flight. Returns the stop. */
  function heartbeat(t: Watchtower, ms: number) {
    let polling: Promise<void> | undefined;
    let polls = 0;
    const timer = setInterval(() => {
      if (polling !== undefined) return;
      polling = t.poll().catch(() => undefined).finally(() => {
        polling = undefined;
        polls++;
      });
    }, ms);
    const stop = async () => {
      clearInterval(timer);
      await Promise.race([polling, new Promise((r) => setTimeout(r, 30_000))]);
    };
    cleanups.push(stop);
    return { stop, polls: () => polls };
  }

  /** On T, a guarded channel whose newest state holds a lock paying the tower's participant, its secret known. */
  async function owedOnT(t: Watchtower, store: Store, params: ChannelParams, expiresIn: bigint) {
    const secret = hexlify(randomBytes(32)) as Hex;
    const hashlock = hashlockOf(secret);
    const tId = hexlify(randomBytes(32)) as Hex;
    const expiry = BigInt((await tp.getBlock("latest"))!.timestamp) + expiresIn;
    const tParams: ChannelParams = { ...params, nonce: params.nonce + 1n };
    t.guard({ ref: { chainId: 31_422n, hub: hubT as Hex, channelId: tId }, params: tParams, myIndex: 0, openingDeposits: [0n, 10n ** 15n] });
    store.saveCoSigned({
      state: { channelId: tId, seq: 1n, deposits: [0n, 10n ** 15n], balances: [0n, 0n], locks: [{ sender: 1, amount: 10n ** 15n, hashlock, expiry }], isFinal: false },
      signatures: ["0x", "0x"],
    });
    t.addSecret(hashlock, secret);
    return { hashlock, expiry };
  }

  it("the watchtower carries a secret on T before its lock expires while S's RPC does not answer", async function () {
    const me = 20;
    const { params, channelId } = await channel(me, 17, 10n ** 15n);
    const tapped = new TappedProvider(S.url);
    cleanups.push(async () => tapped.destroy());
    const { t, store } = await tower(me, 60n, tapped);
    t.guard({ ref: { chainId: 31_421n, hub: hubS as Hex, channelId: channelId as Hex }, params, myIndex: 0, openingDeposits: [10n ** 15n, 0n] });
    // T's lock is inside the claim window: the secret is due on T now.
    const { hashlock, expiry } = await owedOnT(t, store, params, 40n);
    tapped.tap = () => new Error("connect ECONNREFUSED (S's RPC is down)");
    for (let i = 0; i < 3; i++) await t.poll().catch(() => undefined);
    const revealed = await (await HubAdapter.connect(hubT, localWallet(0, tp))).revealedAt(hashlock);
    expect(revealed, "revealed on T while S is unreachable").to.be.within(1n, expiry);
  });

  it("the watchtower carries a secret on T before its lock expires while a transaction on S cannot be mined", async function () {
    const me = 16;
    const other = 17;
    const { params, channelId } = await channel(me, other, 10n ** 15n);
    const { t, store } = await tower(me, 60n);
    // On S: the other party force-closes with the opening deposits; the period passes: a settle is due.
    await (await HubAdapter.connect(hubS, localWallet(other, sp))).forceClose(params, undefined);
    await S.rpc("evm_increaseTime", [301]);
    await S.rpc("evm_mine", []);
    t.guard({ ref: { chainId: 31_421n, hub: hubS as Hex, channelId: channelId as Hex }, params, myIndex: 0, openingDeposits: [10n ** 15n, 0n] });
    // On T: a lock that pays me, its secret known, 200 s from expiry (outside the claim window of 60 s).
    const { hashlock, expiry } = await owedOnT(t, store, params, 200n);
    // S's RPC stops following its chain (no new block): the settle sent there is never mined.
    await S.rpc("evm_setIntervalMining", [0]);
    const beat = heartbeat(t, 500);
    cleanups.push(async () => void (await S.rpc("evm_setIntervalMining", [1]))); // before the heartbeat's stop
    const address = new Wallet(accountKey(me)).address;
    await waitFor("a first poll to reach the settle on S", async () => (await sp.getTransactionCount(address, "pending")) > (await sp.getTransactionCount(address, "latest")), 20_000);
    // T's lock enters the claim window: the tower must register its secret on T before it expires.
    await T.rpc("evm_increaseTime", [150]);
    await T.rpc("evm_mine", []);
    let revealed = 0n;
    await waitFor("the secret registered on T", async () => (revealed = await (await HubAdapter.connect(hubT, localWallet(0, tp))).revealedAt(hashlock)) > 0n, 20_000).catch(() => undefined);
    const tNow = BigInt((await tp.getBlock("latest"))!.timestamp);
    expect(revealed, `not revealed on T (${expiry - tNow} s of the lock left, ${beat.polls()} polls ended)`).to.be.greaterThan(0n);
    expect(revealed).to.be.at.most(expiry);
  });

  it("the watchtower settles again a channel whose settle a reorganisation took out", async function () {
    const me = 18;
    const other = 19;
    const { params, channelId } = await channel(me, other, 10n ** 15n);
    // A finality of two blocks: a reorganisation of the newest blocks is one the tower must ride out.
    const { t, events } = await tower(me, 60n, sp, 2);
    await (await HubAdapter.connect(hubS, localWallet(other, sp))).forceClose(params, undefined);
    await S.rpc("evm_increaseTime", [301]);
    await S.rpc("evm_mine", []);
    t.guard({ ref: { chainId: 31_421n, hub: hubS as Hex, channelId: channelId as Hex }, params, myIndex: 0, openingDeposits: [10n ** 15n, 0n] });
    const reader = await HubAdapter.connect(hubS, localWallet(0, sp));
    await t.poll(); // settles; the dispute counts as resolved only once the settle is two blocks deep
    const mined = events.find((e): e is Extract<FeeEvent, { kind: "mined" }> => e.kind === "mined" && e.call === "settle");
    expect(mined, "the settle mined").to.not.equal(undefined);
    expect((await reader.channelInfo(channelId as Hex)).status).to.equal("closed");
    await S.reorg((await sp.getBlockNumber()) - mined!.blockNumber + 1);
    expect((await reader.channelInfo(channelId as Hex)).status, "disputed again after the reorganisation").to.equal("disputed");
    for (let i = 0; i < 5 && (await reader.channelInfo(channelId as Hex)).status !== "closed"; i++) {
      await t.poll();
      await new Promise((r) => setTimeout(r, 1_500));
    }
    expect((await reader.channelInfo(channelId as Hex)).status, "settled again by a later poll").to.equal("closed");
  });
});
