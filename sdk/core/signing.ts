import { createRequire } from "node:module";
import { computeAddress, getBytes, Signature, SigningKey } from "ethers";

import { learnPublicKey } from "./envelope-auth.js";
import { InvalidSignatureError } from "./errors.js";
import { keccak } from "./keccak.js";
import type { Hex } from "./types.js";
import { fromHex, toHex } from "./words.js";
import { loadNative } from "./native.js";

const SIGNATURE_HEX = /^0x[0-9a-fA-F]{130}$/;
const SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** The libsecp256k1 calls used here (the `secp256k1` package's native bindings). */
type NativeSecp256k1 = {
  ecdsaSign(message: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recid: number };
  ecdsaRecover(signature: Uint8Array, recid: number, message: Uint8Array, compressed: boolean): Uint8Array;
};

/**
 * libsecp256k1 through the `secp256k1` package's prebuilt native bindings when they load on this platform,
 * else undefined and the pure-JS path of ethers is used. Both produce the same deterministic (RFC 6979),
 * low-s signatures; the native one is an order of magnitude faster.
 */
const native: NativeSecp256k1 | undefined = loadNative(
  "secp256k1",
  () => createRequire(import.meta.url)("secp256k1/bindings") as NativeSecp256k1,
);

/** Which secp256k1 implementation signs and recovers in this process. */
export const cryptoBackend: "libsecp256k1" | "js" = native === undefined ? "js" : "libsecp256k1";

const keyBytes = new WeakMap<SigningKey, Uint8Array>();

/** Signs a 32-byte digest (an EIP-712 hash) with a private key; always a canonical low-s 65-byte signature. */
export function signDigest(key: SigningKey, digest: Hex): Hex {
  if (native === undefined) return key.sign(digest).serialized as Hex;
  let privateKey = keyBytes.get(key);
  if (privateKey === undefined) {
    privateKey = getBytes(key.privateKey);
    keyBytes.set(key, privateKey);
  }
  const { signature, recid } = native.ecdsaSign(fromHex(digest), privateKey);
  const out = new Uint8Array(65);
  out.set(signature, 0);
  out[64] = 27 + recid;
  return toHex(out);
}

/** Whether `signature` is 65 bytes of hex (`0x` and 130 digits), the only form `recoverSigner` reads. */
export function isSignatureShaped(signature: unknown): signature is Hex {
  return typeof signature === "string" && signature.length === 132 && SIGNATURE_HEX.test(signature);
}

/** Who signed `digest`: the address (lower-case hex) and the public key it recovers to. */
type Recovered = Readonly<{ address: string; publicKey: Uint8Array | Hex }>;

/** The signer of `digest`, or undefined for a malformed or malleable (high-s) signature. */
function recover(digest: Hex, signature: string): Recovered | undefined {
  try {
    if (!isSignatureShaped(signature)) return undefined;
    const bytes = fromHex(signature);
    const s = BigInt(`0x${signature.slice(66, 130)}`);
    if (s > SECP256K1_HALF_N) return undefined;
    const v = bytes[64]!;
    if (native === undefined) {
      const publicKey = SigningKey.recoverPublicKey(digest, Signature.from(signature)) as Hex;
      return { address: computeAddress(publicKey).toLowerCase(), publicKey };
    }
    const recid = v >= 27 ? v - 27 : v;
    if (recid !== 0 && recid !== 1) return undefined;
    const publicKey = native.ecdsaRecover(bytes.subarray(0, 64), recid, fromHex(digest), false);
    return { address: toHex(keccak(publicKey.subarray(1)).subarray(12)), publicKey };
  } catch {
    return undefined;
  }
}

/**
 * The address that signed `digest` (lower-case hex), or undefined for a malformed or malleable (high-s)
 * signature.
 */
export function recoverSigner(digest: Hex, signature: string): string | undefined {
  return recover(digest, signature)?.address;
}

/**
 * Whether `expected` signed `digest`, and who did. On success its public key is remembered for authenticating
 * envelopes to it (envelope-auth.ts), once per address: only a key a check confirmed is ever learned.
 */
function check(expected: string, digest: Hex, signature: string): { ok: boolean; recovered: string | undefined } {
  const found = recover(digest, signature);
  if (found === undefined || found.address !== expected.toLowerCase()) return { ok: false, recovered: found?.address };
  learnPublicKey(found.address, found.publicKey);
  return { ok: true, recovered: found.address };
}

/** Whether `expected` signed `digest` (its public key is then remembered: `check`). */
export function signedBy(expected: string, digest: Hex, signature: string): boolean {
  return check(expected, digest, signature).ok;
}

/** Throws InvalidSignatureError unless `expected` signed `digest`. */
export function requireSignedBy(what: string, expected: string, digest: Hex, signature: string): void {
  const { ok, recovered } = check(expected, digest, signature);
  if (!ok) throw new InvalidSignatureError(what, expected, recovered);
}
