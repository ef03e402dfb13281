/**
 * The node's signing key: an encrypted JSON keystore (Web3 Secret Storage, the format geth and ethers write:
 * scrypt + AES-128-CTR), unlocked with a password from the environment, or a raw key from the environment for
 * local chains. Neither the key nor the password appears in any message.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { encryptKeystoreJson, Wallet } from "ethers";

import type { Hex } from "../core/types.js";
import { ConfigError, EnvVarError, UsageError } from "./errors.js";
import { fileProblem, own } from "./config.js";
import { privateKeyFromEnv } from "./keys.js";
import type { NodeConfig } from "./node-config.js";

/** The key a node configuration names. */
export async function loadNodeKey(
  config: NodeConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
  ask?: (variable: string) => Promise<string>,
): Promise<Hex> {
  if ("env" in config.key) return privateKeyFromEnv(config.key.env, env);
  let password = own(env, config.key.passwordEnv);
  if ((password === undefined || password === "") && ask !== undefined) password = await ask(config.key.passwordEnv);
  if (password === undefined || password === "") throw new EnvVarError(config.key.passwordEnv, "not set; give the keystore's password");
  let json: string;
  try {
    json = readFileSync(config.key.keystore, "utf8");
  } catch (error) {
    throw new ConfigError(config.file, [{ field: "key.keystore", message: `cannot read ${config.key.keystore}: ${fileProblem(error)}` }]);
  }
  try {
    const wallet = await Wallet.fromEncryptedJson(json, password);
    // Registered with the key guard so that a message repeating it would be redacted.
    return privateKeyFromEnv("keystore", { keystore: wallet.privateKey });
  } catch {
    throw new UsageError(`${config.key.keystore}: cannot unlock the keystore (wrong password in ${config.key.passwordEnv}, or not a keystore)`);
  }
}

/** Writes `key` encrypted with `password` to `file` (mode 0600); refuses to overwrite. Returns the address. */
export async function writeKeystore(file: string, key: Hex, password: string, scryptN?: number): Promise<string> {
  if (existsSync(file)) throw new UsageError(`${file} exists already; not overwritten`);
  const wallet = new Wallet(key);
  const account = { address: wallet.address, privateKey: wallet.privateKey };
  const json = await encryptKeystoreJson(account, password, scryptN === undefined ? {} : { scrypt: { N: scryptN } });
  writeFileSync(file, json, { mode: 0o600, flag: "wx" });
  return wallet.address;
}
