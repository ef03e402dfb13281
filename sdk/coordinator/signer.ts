import { computeAddress, SigningKey } from "ethers";

import { signDigest } from "../core/signing.js";
import type { Hex } from "../core/types.js";

/** Signs state and message digests as one participant (an EOA key: disputes need signatures that cannot be revoked). */
export interface StateSigner {
  readonly address: string;
  sign(digest: Hex): Hex;
}

/** A StateSigner over a private key held in this process. */
export function keySigner(privateKey: string): StateSigner {
  const key = new SigningKey(privateKey);
  return { address: computeAddress(key.publicKey), sign: (digest) => signDigest(key, digest) };
}
