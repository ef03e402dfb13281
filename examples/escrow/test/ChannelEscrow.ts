import { expect } from "chai";
import { parseEther, randomBytes, hexlify, ZeroAddress } from "ethers";
import { network } from "hardhat";

import {
  addLock,
  channelIdOf,
  hashlockOf,
  hubDomain,
  lockArg,
  openingState,
  paramsArg,
  STATE_TYPES,
  stateArg,
  TransferOutcome,
  type ChannelParams,
  type ChannelState,
  type Hex,
} from "crosschain-channels";
import { ChannelHub__factory, SecretRegistry__factory } from "crosschain-channels/typechain-types";

const { ethers, networkHelpers } = await network.create();

/** A SecretRegistry and a ChannelHub from the package's bytecode, and the escrow compiled here, on a fresh chain. */
async function deployed() {
  const [deployer, sponsor, alice, bob] = await ethers.getSigners();
  const registry = await new SecretRegistry__factory(deployer!).deploy();
  const hub = await new ChannelHub__factory(deployer!).deploy(await registry.getAddress());
  const escrow = await ethers.deployContract("ChannelEscrow", [await hub.getAddress()]);
  const params: ChannelParams = {
    participants: [alice!.address, bob!.address],
    payees: [ZeroAddress, ZeroAddress],
    asset: ZeroAddress,
    challengePeriod: 3600n,
    nonce: 1n,
  };
  const { chainId } = await ethers.provider.getNetwork();
  return { hub, registry, escrow, params, chainId, sponsor: sponsor!, alice: alice!, bob: bob! };
}

describe("ChannelEscrow", function () {
  it("opens a channel and funds the user's side in one call, under the id the SDK computes", async function () {
    const { hub, escrow, params, chainId, sponsor, alice } = await networkHelpers.loadFixture(deployed);
    const id = channelIdOf(chainId, await hub.getAddress(), params);
    await expect(escrow.connect(sponsor).getFunction("openFor")(paramsArg(params), 0, { value: parseEther("1") }))
      .to.emit(escrow, "ChannelFunded")
      .withArgs(id, alice.address, sponsor.address, parseEther("1"));
    const info = await hub.getChannel(id);
    expect(info.status).to.equal(1n); // Open
    expect(info.deposits).to.deep.equal([parseEther("1"), 0n]);
    expect(await escrow.getFunction("sponsorOf")(id)).to.equal(sponsor.address);
  });

  it("funds native-coin channels only, and only with something sent", async function () {
    const { escrow, params, sponsor } = await networkHelpers.loadFixture(deployed);
    const token = "0x000000000000000000000000000000000000dEaD";
    await expect(escrow.connect(sponsor).getFunction("openFor")(paramsArg({ ...params, asset: token }), 0, { value: 1n }))
      .to.be.revertedWithCustomError(escrow, "NotNative")
      .withArgs(token);
    await expect(escrow.connect(sponsor).getFunction("openFor")(paramsArg(params), 0)).to.be.revertedWithCustomError(escrow, "NothingSent");
  });

  it("tells a lock paid once its channel settles with the secret revealed in time, and one refunded apart", async function () {
    const { hub, registry, escrow, params, chainId, sponsor, alice, bob } = await networkHelpers.loadFixture(deployed);
    await escrow.connect(sponsor).getFunction("openFor")(paramsArg(params), 0, { value: parseEther("1") });
    const id = channelIdOf(chainId, await hub.getAddress(), params);

    // Two hash-locked payments from Alice to Bob, co-signed off chain; Bob will learn the first secret only.
    const now = BigInt(await networkHelpers.time.latest());
    const secret = hexlify(randomBytes(32)) as Hex;
    const paid = { sender: 0, amount: parseEther("0.4"), hashlock: hashlockOf(secret), expiry: now + 7200n } as const;
    const refunded = { sender: 0, amount: parseEther("0.1"), hashlock: hashlockOf(hexlify(randomBytes(32)) as Hex), expiry: now + 600n } as const;
    const state: ChannelState = addLock(addLock(openingState(id, [parseEther("1"), 0n]), paid), refunded);
    const domain = hubDomain(chainId, await hub.getAddress());
    const [byAlice, byBob] = await Promise.all([alice, bob].map((s) => s.signTypedData(domain, STATE_TYPES, state)));

    // Alice registers it on chain; Bob reveals his secret before its lock expires.
    await hub.connect(alice).forceClose(paramsArg(params), { state: stateArg(state), signatures: [byAlice!, byBob!] });
    await registry.connect(bob).reveal(secret);
    expect(await escrow.getFunction("secretRevealedInTime")(paid.hashlock, paid.expiry)).to.equal(true);
    expect(await escrow.getFunction("secretRevealedInTime")(refunded.hashlock, refunded.expiry)).to.equal(false);
    expect(await escrow.getFunction("lockPaid")(id, 0)).to.equal(false, "not settled yet");
    expect(await hub.transferOutcome(id, 0)).to.equal(TransferOutcome.Unresolved);

    // After the challenge period and both expiries, anyone settles: the first lock pays Bob, the second goes back.
    await networkHelpers.time.increase(7200 + 1);
    await expect(hub.settle(paramsArg(params), stateArg(state), state.locks.map(lockArg), 0n)).to.changeEtherBalances(
      ethers,
      [alice, bob],
      [parseEther("0.6"), parseEther("0.4")],
    );
    expect(await escrow.getFunction("lockPaid")(id, 0)).to.equal(true);
    expect(await escrow.getFunction("lockPaid")(id, 1)).to.equal(false);
    // The same from JavaScript: the hub's outcome of each lock, as the package's TransferOutcome names it.
    expect(await hub.transferOutcome(id, 0)).to.equal(TransferOutcome.Paid);
    expect(await hub.transferOutcome(id, 1)).to.equal(TransferOutcome.Refunded);
  });
});
