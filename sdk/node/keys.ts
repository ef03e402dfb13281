/**
 * Private keys from the environment. A key is checked here, before any library sees it: ethers' and Hardhat's
 * errors about a malformed key repeat the value, and a mnemonic given by mistake would be printed in full. Errors
 * name the variable and what is wrong, never the value or a part of it.
 */
import type { Hex } from "../core/types.js";
import { own } from "./config.js";
import { PrivateKeyError } from "./errors.js";

/** Order of the secp256k1 group: a private key is a number from 1 to N - 1. */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const GIVE = "give the account's private key (0x and 64 hex digits)";

/** Every key this process has read, as lower-case hex without 0x, so that errors can be scrubbed of them. */
const keysRead = new Set<string>();

/**
 * The private key held by an environment variable: 0x (optional) and 64 hex digits, surrounding white space
 * ignored. Throws PrivateKeyError naming the variable if it is unset or holds anything else; a value that looks
 * like a mnemonic or an address says so.
 */
export function privateKeyFromEnv(
  variable: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Hex {
  const value = (own(env, variable) ?? "").trim();
  if (value === "") throw new PrivateKeyError(variable, `not set; ${GIVE}`);
  const problem = keyProblem(value);
  if (problem !== undefined) throw new PrivateKeyError(variable, `${problem}; ${GIVE}`);
  const digits = value.replace(/^0x/i, "").toLowerCase();
  keysRead.add(digits);
  return `0x${digits}`;
}

/** What is wrong with a value meant as a private key, in words that repeat nothing of it; undefined if nothing. */
function keyProblem(value: string): string | undefined {
  const words = value.split(/\s+/);
  if (words.length > 1) {
    return words.every((w) => /^\p{L}+$/u.test(w))
      ? `looks like a mnemonic (${words.length} words), not a private key`
      : "contains spaces";
  }
  const digits = /^0x/i.test(value) ? value.slice(2) : value;
  if (!/^[0-9a-fA-F]+$/.test(digits)) return "is not hexadecimal";
  if (digits.length === 40) return "looks like an address, not a private key";
  if (digits.length !== 64) return `has ${digits.length} hex digits, not 64`;
  const k = BigInt(`0x${digits}`);
  if (k === 0n || k >= SECP256K1_N) return "is out of range for a secp256k1 private key";
  return undefined;
}

/**
 * The text with every run of 8 or more hex digits that is part of a key read by `privateKeyFromEnv` (or contains
 * one) replaced by "[redacted]": a last guard on what a command prints.
 */
export function redactKeys(text: string): string {
  if (keysRead.size === 0) return text;
  return text.replace(/(0x)?[0-9a-fA-F]{8,}/g, (run) => {
    const digits = run.replace(/^0x/, "").toLowerCase();
    for (const key of keysRead) if (key.includes(digits) || digits.includes(key)) return "[redacted]";
    return run;
  });
}
