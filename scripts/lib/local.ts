import { HDNodeWallet, JsonRpcProvider, Mnemonic, Wallet } from "ethers";

import { ChannelHub__factory, SecretRegistry__factory } from "../../typechain-types/index.js";

/** Private key of account `index` of local Hardhat chains (the well-known test mnemonic: never use it for real funds). */
export function accountKey(index: number): string {
  const mnemonic = Mnemonic.fromPhrase("test test test test test test test test test test test junk");
  return HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${index}`).privateKey;
}

/** A wallet of a local chain, with its own nonce tracking per provider. */
export function localWallet(index: number, provider: JsonRpcProvider): Wallet {
  return new Wallet(accountKey(index), provider);
}

/** Moves a local chain's clock forward and mines a block (Hardhat's evm_increaseTime / evm_mine). */
export async function advanceChain(provider: JsonRpcProvider, seconds: number): Promise<void> {
  await provider.send("evm_increaseTime", [seconds]);
  await provider.send("evm_mine", []);
}

/** Deploys a SecretRegistry and a ChannelHub bound to it from local account 0; returns the hub's address. */
export async function deployHub(provider: JsonRpcProvider): Promise<string> {
  const deployer = localWallet(0, provider);
  const registry = await new SecretRegistry__factory(deployer).deploy();
  const hub = await new ChannelHub__factory(deployer).deploy(await registry.getAddress());
  await hub.waitForDeployment();
  return hub.getAddress();
}
