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

/**
 * The scrypt cost of a keystore: geth's standard (`StandardScryptN`, 2^18), twice ethers' default. A stolen
 * keystore is attacked offline, password guess after password guess, and this is what each guess costs.
 */
export const STANDARD_SCRYPT_N = 262_144;
/** The most `--scrypt-n` accepts (2^20: 1 GiB of memory to unlock). */
const MAX_SCRYPT_N = 1_048_576;

/**
 * The scrypt cost for `init`'s `--scrypt-n` (`given`, as typed; undefined: the standard). Below the standard only
 * for a node on local chains (`local`), where tests make many keystores, and then with a warning to print; elsewhere
 * a UsageError naming the option.
 */
export function keystoreScryptN(given: string | undefined, local: boolean): { n: number; warning?: string } {
  if (given === undefined) return { n: STANDARD_SCRYPT_N };
  const n = Number(given);
  if (!/^\d+$/.test(given) || !Number.isSafeInteger(n) || n < 2 || n > MAX_SCRYPT_N || (n & (n - 1)) !== 0) {
    throw new UsageError(`--scrypt-n: expected a power of two up to ${MAX_SCRYPT_N}, got ${JSON.stringify(given.slice(0, 20))}`);
  }
  if (n >= STANDARD_SCRYPT_N) return { n };
  if (!local) {
    throw new UsageError(`--scrypt-n: ${n} is below ${STANDARD_SCRYPT_N} (geth's standard) and makes a keystore cheap to crack; a lower cost is for local chains only (--source-rpc and --target-rpc on this machine)`);
  }
  return { n, warning: `--scrypt-n ${n} makes a keystore that is cheap to crack; use it for tests on local chains only` };
}

/**
 * Writes `key` encrypted with `password` to `file` (mode 0600) at scrypt cost `scryptN` (default: the standard);
 * refuses to overwrite. Returns the address.
 */
export async function writeKeystore(file: string, key: Hex, password: string, scryptN = STANDARD_SCRYPT_N): Promise<string> {
  if (existsSync(file)) throw new UsageError(`${file} exists already; not overwritten`);
  const wallet = new Wallet(key);
  const account = { address: wallet.address, privateKey: wallet.privateKey };
  const json = await encryptKeystoreJson(account, password, { scrypt: { N: scryptN } });
  writeFileSync(file, json, { mode: 0o600, flag: "wx" });
  return wallet.address;
}
