/**
 * Envelopes between two parties authenticated with a key only the two of them can derive (ECDH over their
 * secp256k1 keys), instead of a signature each: an HMAC-SHA256 tag costs about a microsecond against tens for a
 * signature and as many for its recovery, and envelopes need no third party to believe them (the states and swap
 * terms they carry keep their signatures: those are what a chain or a dispute reads).
 *
 * An authenticator is 66 bytes: the version byte 0x01, the sender's compressed public key (33 bytes) and the tag over
 * the envelope's digest (32 bytes). The digest names the sender, so a tag can never pass for one the other party sent;
 * the public key must be the sender's address's, so nobody else's key opens the shared secret. A sender uses one once
 * it knows the recipient's public key (from any signature of the recipient's it verified); before that, and toward a
 * party it never heard from, it signs the envelope as before. The receiver derives the key from its own private key
 * and the sender's public key in the authenticator, so it needs nothing in advance.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { computeAddress, SigningKey } from "ethers";

import { keccak } from "./keccak.js";
import type { Hex } from "./types.js";
import { fromHex } from "./words.js";

/** Version byte, compressed public key, tag: `0x` and 132 hex digits. */
const AUTHENTICATOR_HEX = /^0x01(02|03)[0-9a-fA-F]{128}$/;
/** Domain of the key derived from the shared secret: the key of nothing else. */
const KEY_DOMAIN = Buffer.from("cross-chain-swap-envelope-key/1", "utf8");
/** Most public keys remembered per process (learned from signatures; evicted oldest first). */
const MAX_KNOWN_KEYS = 4096;

/** What a party needs to authenticate envelopes with a shared key: its compressed public key and ECDH. */
export interface KeyAgreement {
  /** The compressed (33-byte) public key of the signing key. */
  readonly publicKey: Hex;
  /** The ECDH shared secret with `publicKey` (another party's, compressed or not), as `SigningKey.computeSharedSecret`. */
  agree(publicKey: Hex): Hex;
}

/** Whether `value` has the form of an authenticator (version 1, a compressed key and a tag). */
export function isAuthenticatorShaped(value: unknown): value is Hex {
  return typeof value === "string" && value.length === 134 && AUTHENTICATOR_HEX.test(value);
}

/**
 * Public keys (compressed) by lower-case address, learned from signatures and authenticators that verified as their
 * claimed signer's (never from a recovery nobody checked: a stranger's junk cannot evict a peer's key).
 */
const known = new Map<string, Hex>();
/** Address (lower case) of a compressed public key, for keys already seen. */
const addresses = new Map<string, string>();

function remember<K, V>(map: Map<K, V>, key: K, value: V) {
  if (map.get(key) === value) return;
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_KNOWN_KEYS) map.delete(map.keys().next().value as K);
}

/** Records `address`'s public key (uncompressed 65 bytes from a recovery, or compressed), once per address. */
export function learnPublicKey(address: string, publicKey: Uint8Array | Hex): void {
  const a = address.toLowerCase();
  if (known.has(a)) return;
  const compressed = SigningKey.computePublicKey(publicKey, true) as Hex;
  remember(known, a, compressed);
  remember(addresses, compressed.toLowerCase(), a);
}

/** The public key of `address` if this process has verified a signature of it. */
export function knownPublicKey(address: string): Hex | undefined {
  return known.get(address.toLowerCase());
}

/** The lower-case address of a compressed public key. */
function addressOf(compressed: Hex): string {
  const k = compressed.toLowerCase();
  let a = addresses.get(k);
  if (a === undefined) {
    a = computeAddress(compressed).toLowerCase();
    remember(addresses, k, a);
  }
  return a;
}

/**
 * Whether `authenticator` could be `from`'s, from what costs nothing: its shape, and (an address having one public key)
 * the key in it is `from`'s known one, when that is known. A receiver asks this before it hashes the envelope.
 */
export function plausible(authenticator: string, from: string): boolean {
  if (!isAuthenticatorShaped(authenticator)) return false;
  const known = knownPublicKey(from);
  return known === undefined || known.slice(2).toLowerCase() === authenticator.slice(4, 70).toLowerCase();
}

/**
 * Authenticates envelope digests for one party: derives and keeps (in memory only, per counterparty key) the
 * shared keys its `agreement` gives. The keys are secrets: never printed, logged or put in an error.
 */
export class EnvelopeAuth {
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly agreement: KeyAgreement) {}

  /** The shared key with the holder of `publicKey` (compressed), derived once. */
  private keyFor(publicKey: Hex): Buffer {
    const k = publicKey.toLowerCase();
    let key = this.keys.get(k);
    if (key === undefined) {
      const secret = fromHex(this.agreement.agree(publicKey));
      // The x coordinate of the shared point, bound to the domain.
      key = Buffer.from(keccak(Buffer.concat([KEY_DOMAIN, secret.subarray(1, 33)])));
      remember(this.keys, k, key);
    }
    return key;
  }

  /** An authenticator of `digest` for the party whose public key is `recipient` (compressed). */
  tag(digest: Hex, recipient: Hex): Hex {
    const mac = createHmac("sha256", this.keyFor(recipient)).update(fromHex(digest)).digest();
    return `0x01${this.agreement.publicKey.slice(2)}${mac.toString("hex")}` as Hex;
  }

  /**
   * Whether `authenticator` on `digest` comes from `from`: its public key is `from`'s, and the tag is the one the
   * key shared with it gives. The cheap checks come first; the key is derived only for the sender's own public key.
   */
  verify(digest: Hex, authenticator: string, from: string): boolean {
    if (!plausible(authenticator, from)) return false;
    const publicKey = `0x${authenticator.slice(4, 70)}` as Hex;
    let sender: string;
    try {
      sender = addressOf(publicKey);
    } catch {
      return false; // not a point on the curve
    }
    if (sender !== from.toLowerCase()) return false;
    const expected = createHmac("sha256", this.keyFor(publicKey)).update(fromHex(digest)).digest();
    const got = Buffer.from(authenticator.slice(70), "hex");
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) return false;
    learnPublicKey(sender, publicKey);
    return true;
  }
}
