import { getAddress, recoverAddress, Signature, SigningKey } from "ethers";

import { InvalidSignatureError } from "./errors.js";
import type { Hex } from "./types.js";

const SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** Signs a 32-byte digest (an EIP-712 hash) with a private key; always a canonical low-s 65-byte signature. */
export function signDigest(key: SigningKey, digest: Hex): Hex {
  return key.sign(digest).serialized as Hex;
}

/** The address that signed `digest`, or undefined for a malformed or malleable (high-s) signature. */
export function recoverSigner(digest: Hex, signature: string): string | undefined {
  try {
    if (signature.length !== 132) return undefined; // 0x + 65 bytes
    const sig = Signature.from(signature);
    if (BigInt(sig.s) > SECP256K1_HALF_N) return undefined;
    return recoverAddress(digest, sig);
  } catch {
    return undefined;
  }
}

/** Throws InvalidSignatureError unless `expected` signed `digest`. */
export function requireSignedBy(what: string, expected: string, digest: Hex, signature: string): void {
  const recovered = recoverSigner(digest, signature);
  if (recovered === undefined || getAddress(recovered) !== getAddress(expected)) {
    throw new InvalidSignatureError(what, expected, recovered);
  }
}
