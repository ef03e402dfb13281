import { expect } from "chai";
import { anyValue } from "@nomicfoundation/hardhat-ethers-chai-matchers/withArgs";
import { hexlify, randomBytes, ZeroAddress } from "ethers";

import {
  channelIdOf,
  channelOpenings,
  HubAdapter,
  hubDomain,
  locksHash,
  stateDigest,
  STATE_TYPE_STRING,
  type ChannelState,
  type Hex,
} from "../../sdk/index.js";
import { BlocklistToken__factory, TestToken__factory } from "../../typechain-types/index.js";
import {
  coSign,
  deploySuite,
  lockOf,
  locksArg,
  nativeParams,
  now,
  paramsArg,
  source,
  stateArg,
  target,
  type Suite,
} from "../helpers/chains.js";

const ONE = 10n ** 18n;

// Named fixtures, one per chain: each chain is reverted to its own snapshot before every test.
async function deploySource() {
  return deploySuite(source);
}
async function deployTarget() {
  return deploySuite(target);
}
async function deployBoth() {
  return {
    S: await source.networkHelpers.loadFixture(deploySource),
    T: await target.networkHelpers.loadFixture(deployTarget),
  };
}

async function openAndFund(suite: Suite, nonce: bigint, a0: bigint, a1: bigint) {
  const params = nativeParams(suite, nonce);
  await suite.hub.open(paramsArg(params));
  const id = channelIdOf(suite.chainId, await suite.hub.getAddress(), params);
  if (a0 > 0n) await suite.hub.connect(suite.alice).deposit(id, 0, a0, { value: a0 });
  if (a1 > 0n) await suite.hub.connect(suite.bob).deposit(id, 1, a1, { value: a1 });
  return { params, id };
}

describe("ChannelHub on two chains", function () {
  it("deploys the same suite on both chains with their own chain ids", async function () {
    const { S, T } = await deployBoth();
    expect(S.chainId).to.equal(31337n);
    expect(T.chainId).to.equal(31338n);
    expect(await S.hub.secretRegistry()).to.equal(await S.registry.getAddress());
    expect(await T.hub.secretRegistry()).to.equal(await T.registry.getAddress());
  });

  it("computes the same EIP-712 digest, lock hash and channel id as the hub", async function () {
    const { S } = await deployBoth();
    const { params, id } = await openAndFund(S, 1n, ONE, ONE);
    expect(await S.hub.channelId(paramsArg(params))).to.equal(id);
    const t = await now(S.chain);
    const state: ChannelState = {
      channelId: id,
      seq: 42n,
      deposits: [ONE, ONE],
      balances: [ONE / 2n, ONE / 4n],
      locks: [lockOf(0, ONE / 8n, hexlify(randomBytes(32)) as Hex, t + 600n), lockOf(1, ONE / 8n, hexlify(randomBytes(32)) as Hex, t + 900n)],
      isFinal: false,
    };
    expect(await S.hub.hashLocks(locksArg(state.locks))).to.equal(locksHash(state.locks));
    const domain = hubDomain(S.chainId, await S.hub.getAddress());
    expect(await S.hub.stateDigest(stateArg(state))).to.equal(stateDigest(domain, state));
    expect(STATE_TYPE_STRING).to.equal(
      "State(bytes32 channelId,uint64 seq,uint128[2] deposits,uint128[2] balances,Lock[] locks,bool isFinal)" +
        "Lock(uint8 sender,uint128 amount,bytes32 hashlock,uint64 expiry)",
    );
  });

  it("rejects on the target chain a state co-signed for the source channel (guarantee 5)", async function () {
    const { S, T } = await deployBoth();
    const s = await openAndFund(S, 7n, ONE, ONE);
    const t = await openAndFund(T, 7n, ONE, ONE); // same participants, same parameters
    expect(s.id).to.not.equal(t.id, "the chain id is part of the channel id");

    const sourceState: ChannelState = { channelId: s.id, seq: 5n, deposits: [ONE, ONE], balances: [0n, 2n * ONE], locks: [], isFinal: false };
    const signedForS = await coSign(S, sourceState);
    await expect(T.hub.connect(T.bob).forceClose(paramsArg(t.params), signedForS))
      .to.be.revertedWithCustomError(T.hub, "WrongChannel")
      .withArgs(t.id, s.id);

    // Even with T's channel id swapped in, S-domain signatures do not verify on T.
    const relabelled = { ...signedForS, state: { ...signedForS.state, channelId: t.id } };
    await expect(T.hub.connect(T.bob).forceClose(paramsArg(t.params), relabelled))
      .to.be.revertedWithCustomError(T.hub, "InvalidSignature")
      .withArgs(t.id, 0);
  });

  it("emits events a watcher can follow through open, deposit, force close, challenge and settle", async function () {
    const { S } = await deployBoth();
    const params = nativeParams(S, 11n);
    const id = channelIdOf(S.chainId, await S.hub.getAddress(), params);
    const opening = await S.hub.open(paramsArg(params));
    await expect(opening).to.emit(S.hub, "ChannelOpened").withArgs(id, anyValue);
    await expect(opening).not.to.emit(S.hub, "ChannelOpenedWith");
    const other = nativeParams(S, 12n);
    await expect(S.hub.connect(S.bob).openAndDeposit(paramsArg(other), 1, ONE, { value: ONE }))
      .to.emit(S.hub, "ChannelOpened")
      .withArgs(channelIdOf(S.chainId, await S.hub.getAddress(), other), anyValue)
      .and.not.to.emit(S.hub, "Deposited");
    // Payees and the asset, when set, follow in ChannelOpenedWith (a token channel always has one).
    const token = await new TestToken__factory(S.deployer).deploy("Follow", "FLW");
    await token.mint(S.alice.address, ONE);
    await token.connect(S.alice).approve(await S.hub.getAddress(), ONE);
    const withPayee = { ...nativeParams(S, 13n), payees: [S.other.address, ZeroAddress] as const, asset: await token.getAddress() };
    await expect(S.hub.connect(S.alice).openAndDeposit(paramsArg(withPayee), 0, ONE))
      .to.emit(S.hub, "ChannelOpenedWith")
      .withArgs(channelIdOf(S.chainId, await S.hub.getAddress(), withPayee), [S.other.address, ZeroAddress], await token.getAddress());
    const nativeWithPayee = { ...nativeParams(S, 14n, 7200n), payees: [ZeroAddress, S.other.address] as const };
    await S.hub.connect(S.bob).openAndDeposit(paramsArg(nativeWithPayee), 1, 5n, { value: 5n });
    // A follower rebuilds each channel's parameters and opening deposits from the events alone.
    const openings = await channelOpenings(S.hub, S.chainId);
    expect(openings.map((o) => [o.params, o.deposits])).to.deep.equal([
      [params, [0n, 0n]],
      [other, [0n, ONE]],
      [withPayee, [ONE, 0n]],
      [nativeWithPayee, [0n, 5n]],
    ]);
    await expect(S.hub.connect(S.other).deposit(id, 0, ONE, { value: ONE }))
      .to.emit(S.hub, "Deposited")
      .withArgs(id, 0, ONE, ONE);
    await S.hub.connect(S.bob).deposit(id, 1, ONE, { value: ONE });

    const base = { channelId: id, deposits: [ONE, ONE] as const, locks: [], isFinal: false };
    const older = await coSign(S, { ...base, seq: 1n, balances: [2n * ONE, 0n] });
    const newer = await coSign(S, { ...base, seq: 2n, balances: [ONE / 2n, ONE + ONE / 2n] });
    const tx = S.hub.connect(S.alice).forceClose(paramsArg(params), older);
    await expect(tx).to.emit(S.hub, "ChannelForceClosed");
    const deadline = (await S.hub.getChannel(id)).deadline;
    await expect(S.hub.connect(S.other).challenge(paramsArg(params), newer))
      .to.emit(S.hub, "ChannelChallenged")
      .withArgs(id, S.other.address, anyValue, deadline);
    await S.chain.networkHelpers.time.increaseTo(deadline);
    await expect(S.hub.connect(S.other).settle(paramsArg(params), newer.state, [], 0n)).to.changeEtherBalances(
      S.chain.ethers,
      [S.alice, S.bob, S.hub],
      [ONE / 2n, ONE + ONE / 2n, -2n * ONE],
    );
    expect((await S.hub.getChannel(id)).status).to.equal(3n); // Closed
  });

  it("lets a blocklisted payee collect its deferred payout to another address through the SDK", async function () {
    const { S } = await deployBoth();
    const token = await new BlocklistToken__factory(S.deployer).deploy();
    const params = { ...nativeParams(S, 31n), asset: await token.getAddress() };
    const bob = await HubAdapter.connect(await S.hub.getAddress(), S.bob);
    await token.mint(S.bob.address, 100n);
    const id = await bob.openAndDeposit(params, 1, 100n);
    await token.setBlocked(S.bob.address, true);
    const final: ChannelState = { channelId: id, seq: 1n, deposits: [0n, 100n], balances: [0n, 100n], locks: [], isFinal: true };
    await bob.closeCooperatively(params, { state: final, signatures: (await coSign(S, final)).signatures as [Hex, Hex] });
    expect(await S.hub.deferredPayout(await token.getAddress(), S.bob.address)).to.equal(100n);
    await bob.withdraw(await token.getAddress(), S.other.address);
    expect(await token.balanceOf(S.other.address)).to.equal(100n);
    expect(await S.hub.deferredPayout(await token.getAddress(), S.bob.address)).to.equal(0n);
  });

  it("settles a swap on both chains when the responder goes silent: Alice reveals on T, Bob carries the secret to S", async function () {
    const { S, T } = await deployBoth();
    const token = await new TestToken__factory(T.deployer).deploy("Target Token", "TT");
    // S: native channel, Alice gives 1 ETH. T: token channel, Bob gives 500 TT.
    const s = await openAndFund(S, 21n, 3n * ONE, ONE);
    const tParams = { ...nativeParams(T, 21n), asset: await token.getAddress() };
    await T.hub.open(paramsArg(tParams));
    const tId = channelIdOf(T.chainId, await T.hub.getAddress(), tParams);
    for (const [who, i] of [[T.alice, 0], [T.bob, 1]] as const) {
      await token.mint(who.address, 1000n);
      await token.connect(who).approve(await T.hub.getAddress(), 1000n);
      await T.hub.connect(who).deposit(tId, i, 1000n);
    }

    const secret = hexlify(randomBytes(32)) as Hex;
    const nowS = await now(S.chain);
    const tS = nowS + 4n * 3600n;
    const tT = nowS + 2n * 3600n; // tT < tS with a delta of two hours
    const sState: ChannelState = { channelId: s.id, seq: 3n, deposits: [3n * ONE, ONE], balances: [2n * ONE, ONE], locks: [lockOf(0, ONE, secret, tS)], isFinal: false };
    const tState: ChannelState = { channelId: tId, seq: 3n, deposits: [1000n, 1000n], balances: [1000n, 500n], locks: [lockOf(1, 500n, secret, tT)], isFinal: false };
    const signedS = await coSign(S, sState);
    const signedT = await coSign(T, tState);

    // Bob goes silent. Alice force-closes T and reveals the secret on T's registry before tT.
    await T.hub.connect(T.alice).forceClose(paramsArg(tParams), signedT);
    await T.registry.connect(T.alice).reveal(secret);
    // Bob's client sees the reveal on T (from the event) and registers it on S before tS, then force-closes S.
    const [revealed] = await T.registry.queryFilter(T.registry.filters.SecretRevealed());
    expect(revealed?.args.secret).to.equal(secret);
    await S.registry.connect(S.bob).reveal(revealed!.args.secret);
    await S.hub.connect(S.bob).forceClose(paramsArg(s.params), signedS);

    for (const chain of [S.chain, T.chain]) await chain.networkHelpers.time.increase(3601);
    await T.hub.settle(paramsArg(tParams), signedT.state, locksArg(tState.locks), 0n);
    await S.hub.settle(paramsArg(s.params), signedS.state, locksArg(sState.locks), 0n);

    expect(await token.balanceOf(T.alice.address)).to.equal(1500n, "Alice got take on T");
    expect(await token.balanceOf(T.bob.address)).to.equal(500n);
    expect(await T.hub.transferOutcome(tId, 0)).to.equal(1n); // Paid
    expect(await S.hub.transferOutcome(s.id, 0)).to.equal(1n); // Paid: Bob got give on S
    expect(await S.chain.ethers.provider.getBalance(await S.hub.getAddress())).to.equal(0n);
  });

  it("reveals a channel's secrets together through the SDK and settles naming those locks, with the same outcome", async function () {
    const { S } = await deployBoth();
    const { params, id } = await openAndFund(S, 41n, 2n * ONE, 2n * ONE);
    const secrets = [0, 1, 2, 3].map(() => hexlify(randomBytes(32)) as Hex);
    const expiry = (await now(S.chain)) + 3600n;
    // Locks 0, 1 and 3 are paid (their secrets revealed together, in lock order); lock 2 is refunded.
    const locks = secrets.map((secret, i) => lockOf((i % 2) as 0 | 1, 100n, secret, expiry));
    const state: ChannelState = { channelId: id, seq: 5n, deposits: [2n * ONE, 2n * ONE], balances: [2n * ONE - 200n, 2n * ONE - 200n], locks, isFinal: false };
    const bob = await HubAdapter.connect(await S.hub.getAddress(), S.bob);
    await bob.forceClose(params, { state, signatures: (await coSign(S, state)).signatures as [Hex, Hex] });
    await bob.revealMany([secrets[0]!, secrets[1]!, secrets[3]!]);
    expect(await bob.revealedTogether(locks)).to.equal(0b1011n);
    await S.chain.networkHelpers.time.increase(3601);
    const balance = (who: { address: string }) => S.chain.ethers.provider.getBalance(who.address);
    const before = [await balance(S.alice), await balance(S.bob)];
    await (await HubAdapter.connect(await S.hub.getAddress(), S.other)).settle(params, state);
    // Alice: her balance, lock 1 and lock 3 paid to her, lock 2 refunded; Bob: his balance and lock 0.
    expect((await balance(S.alice)) - before[0]!).to.equal(2n * ONE + 100n);
    expect((await balance(S.bob)) - before[1]!).to.equal(2n * ONE - 100n);
    for (const [i, outcome] of [[0, 1n], [1, 1n], [2, 2n], [3, 1n]] as const) {
      expect(await S.hub.transferOutcome(id, i)).to.equal(outcome);
    }
  });

  it("names no locks when their secrets were revealed one by one", async function () {
    const { S } = await deployBoth();
    const bob = await HubAdapter.connect(await S.hub.getAddress(), S.bob);
    const secrets = [0, 1].map(() => hexlify(randomBytes(32)) as Hex);
    const expiry = (await now(S.chain)) + 3600n;
    const locks = secrets.map((secret) => lockOf(0, 1n, secret, expiry));
    for (const secret of secrets) await bob.reveal(secret);
    expect(await bob.revealedTogether(locks)).to.equal(0n);
  });
});
