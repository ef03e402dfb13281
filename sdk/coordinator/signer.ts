import { computeAddress, SigningKey } from "ethers";

import type { KeyAgreement } from "../core/envelope-auth.js";
import { signDigest } from "../core/signing.js";
import type { Hex } from "../core/types.js";

/**
 * Signs state and message digests as one participant (an EOA key: disputes need signatures that cannot be revoked),
 * and agrees a key with another party's public key (ECDH) so that envelopes between them are authenticated without
 * a signature each (core/envelope-auth.ts).
 */
export interface StateSigner extends KeyAgreement {
  readonly address: string;
  sign(digest: Hex): Hex;
}

/** A StateSigner over a private key held in this process. */
export function keySigner(privateKey: string): StateSigner {
  const key = new SigningKey(privateKey);
  return {
    address: computeAddress(key.publicKey),
    publicKey: key.compressedPublicKey as Hex,
    sign: (digest) => signDigest(key, digest),
    agree: (publicKey) => key.computeSharedSecret(publicKey) as Hex,
  };
}
