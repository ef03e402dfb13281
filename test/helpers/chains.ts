import { network } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { sha256, ZeroAddress, type Signer } from "ethers";

import ChannelHubModule from "../../ignition/modules/ChannelHub.js";
import {
  ChannelHub__factory,
  SecretRegistry__factory,
  type ChannelHub,
  type SecretRegistry,
} from "../../typechain-types/index.js";
import { hubDomain, lockArg, STATE_TYPES, stateArg } from "../../sdk/index.js";
export { paramsArg, stateArg } from "../../sdk/index.js";
import type { ChannelParams, ChannelState, Hex, Lock, ParticipantIndex } from "../../sdk/index.js";

/** The two in-process chains every cross-chain test uses: S (source) and T (target). */
export const source = await network.create("source");
export const target = await network.create("target");
export type Chain = typeof source;

export type Suite = {
  chain: Chain;
  chainId: bigint;
  hub: ChannelHub;
  registry: SecretRegistry;
  deployer: HardhatEthersSigner;
  alice: HardhatEthersSigner;
  bob: HardhatEthersSigner;
  other: HardhatEthersSigner;
};

/** Deploys the suite with the production Ignition module. */
export async function deploySuite(chain: Chain): Promise<Suite> {
  const [deployer, alice, bob, other] = await chain.ethers.getSigners();
  if (!deployer || !alice || !bob || !other) throw new Error("the simulated chain has too few accounts");
  const deployed = await chain.ignition.deploy(ChannelHubModule);
  const hub = ChannelHub__factory.connect(await deployed.hub.getAddress(), deployer);
  const registry = SecretRegistry__factory.connect(await deployed.registry.getAddress(), deployer);
  const chainId = (await chain.ethers.provider.getNetwork()).chainId;
  return { chain, chainId, hub, registry, deployer, alice, bob, other };
}

export function nativeParams(suite: Suite, nonce: bigint, challengePeriod = 3600n): ChannelParams {
  return {
    participants: [suite.alice.address, suite.bob.address],
    payees: [ZeroAddress, ZeroAddress],
    asset: ZeroAddress,
    challengePeriod,
    nonce,
  };
}

/** Both participants sign `state` for the hub of `suite` (EIP-712, as wallets sign it). */
export async function coSign(suite: Suite, state: ChannelState, signers: readonly [Signer, Signer] = [suite.alice, suite.bob]) {
  const domain = hubDomain(suite.chainId, await suite.hub.getAddress());
  const signatures = (await Promise.all(signers.map((s) => s.signTypedData(domain, STATE_TYPES, state)))) as [
    string,
    string,
  ];
  return { state: stateArg(state), signatures };
}

export function locksArg(locks: readonly Lock[]) {
  return locks.map(lockArg);
}

export function lockOf(sender: ParticipantIndex, amount: bigint, secret: Hex, expiry: bigint): Lock {
  return { sender, amount, hashlock: sha256(secret) as Hex, expiry };
}

export async function now(chain: Chain): Promise<bigint> {
  return BigInt(await chain.networkHelpers.time.latest());
}
