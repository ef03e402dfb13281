import { getBytes, id, sha256, TypedDataEncoder, type TypedDataField } from "ethers";

import { InvalidMessageError } from "./errors.js";
import { keccak } from "./keccak.js";
import type { Address, Hex } from "./types.js";
import { putHex, putWord, typedDataDigest } from "./words.js";

/** One channel of a swap: which hub on which chain. */
export type ChannelRef = Readonly<{ chainId: bigint; hub: Address; channelId: Hex }>;

/**
 * What both parties sign before any lock: the initiator gives `give` on the source channel, the responder gives
 * `take` on the target channel, both locked under `hashlock`; the source lock expires at `sourceExpiry` (tS), the
 * target lock at `targetExpiry` (tT < tS).
 */
export type SwapTerms = Readonly<{
  swapId: Hex;
  source: ChannelRef;
  target: ChannelRef;
  initiator: Address;
  responder: Address;
  give: bigint;
  take: bigint;
  hashlock: Hex;
  sourceExpiry: bigint;
  targetExpiry: bigint;
}>;

/** Swap terms span two chains, so their EIP-712 domain names no chain; each channel ref names its own. */
export const SWAP_DOMAIN = { name: "CrossChainSwap", version: "1" } as const;

export const SWAP_TYPES: Record<string, TypedDataField[]> = {
  SwapTerms: [
    { name: "swapId", type: "bytes32" },
    { name: "source", type: "ChannelRef" },
    { name: "target", type: "ChannelRef" },
    { name: "initiator", type: "address" },
    { name: "responder", type: "address" },
    { name: "give", type: "uint128" },
    { name: "take", type: "uint128" },
    { name: "hashlock", type: "bytes32" },
    { name: "sourceExpiry", type: "uint64" },
    { name: "targetExpiry", type: "uint64" },
  ],
  ChannelRef: [
    { name: "chainId", type: "uint256" },
    { name: "hub", type: "address" },
    { name: "channelId", type: "bytes32" },
  ],
};

const SWAP_DOMAIN_SEPARATOR = getBytes(TypedDataEncoder.hashDomain(SWAP_DOMAIN));
const TERMS_TYPEHASH = getBytes(id(TypedDataEncoder.from(SWAP_TYPES).encodeType("SwapTerms")));
const REF_TYPEHASH = getBytes(id(TypedDataEncoder.from({ ChannelRef: SWAP_TYPES.ChannelRef! }).encodeType("ChannelRef")));

function refHash(ref: ChannelRef): Uint8Array {
  const buf = new Uint8Array(4 * 32);
  buf.set(REF_TYPEHASH, 0);
  putWord(buf, 32, ref.chainId);
  putHex(buf, 64, ref.hub);
  putHex(buf, 96, ref.channelId);
  return keccak(buf);
}

/** The digest both parties sign to agree on `terms` (EIP-712, written directly; tested against ethers' encoder). */
export function termsDigest(terms: SwapTerms): Hex {
  const buf = new Uint8Array(11 * 32);
  buf.set(TERMS_TYPEHASH, 0);
  putHex(buf, 32, terms.swapId);
  buf.set(refHash(terms.source), 64);
  buf.set(refHash(terms.target), 96);
  putHex(buf, 128, terms.initiator);
  putHex(buf, 160, terms.responder);
  putWord(buf, 192, terms.give);
  putWord(buf, 224, terms.take);
  putHex(buf, 256, terms.hashlock);
  putWord(buf, 288, terms.sourceExpiry);
  putWord(buf, 320, terms.targetExpiry);
  return typedDataDigest(SWAP_DOMAIN_SEPARATOR, keccak(buf));
}

/** Most secrets whose hashlocks `hashlockOf` remembers; past it, it starts over. */
const HASHLOCKS_KEPT = 4096;
/** Hashlocks of the secrets hashed lately: each step that looks at a payment hashes its secret again. */
const hashlocks = new Map<string, Hex>();

/** sha256 of a 32-byte secret: the hashlock of the swap (Bitcoin/Lightning compatible). */
export function hashlockOf(secret: Hex): Hex {
  const known = hashlocks.get(secret);
  if (known !== undefined) return known;
  // The registry reveals bytes32 secrets only: a preimage of another length would settle off chain and never on it.
  if (!/^0x[0-9a-fA-F]{64}$/.test(secret)) throw new InvalidMessageError("a secret is 32 bytes of hex");
  const hashlock = sha256(secret) as Hex;
  if (hashlocks.size >= HASHLOCKS_KEPT) hashlocks.clear();
  hashlocks.set(secret, hashlock);
  return hashlock;
}

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/**
 * Throws InvalidMessageError unless every field of terms from a peer has its type: 32-byte hex ids and hashlock,
 * 20-byte hex addresses, bigint chain ids, amounts and expiries. The digests read hex as bytes and would silently
 * stop at a bad character, so nothing malformed may reach them.
 */
export function checkTermsShape(terms: SwapTerms): void {
  const fail = (what: string) => {
    throw new InvalidMessageError(`malformed swap terms: ${what}`);
  };
  for (const [what, v] of [["swapId", terms.swapId], ["hashlock", terms.hashlock], ["source channel", terms.source?.channelId], ["target channel", terms.target?.channelId]] as const) {
    if (typeof v !== "string" || !BYTES32.test(v)) fail(`${what} is not 32 bytes of hex`);
  }
  for (const [what, v] of [["initiator", terms.initiator], ["responder", terms.responder], ["source hub", terms.source?.hub], ["target hub", terms.target?.hub]] as const) {
    if (typeof v !== "string" || !ADDRESS.test(v)) fail(`${what} is not an address`);
  }
  for (const [what, v] of [["source chain", terms.source?.chainId], ["target chain", terms.target?.chainId], ["give", terms.give], ["take", terms.take], ["source expiry", terms.sourceExpiry], ["target expiry", terms.targetExpiry]] as const) {
    if (typeof v !== "bigint") fail(`${what} is not a number`);
  }
}

/**
 * Whether a stored secret may be revealed, on or off chain: "may" (the initiator revealed it, or this party learned
 * it from the other or a chain), "held" (the initiator's own, before its reveal: the swap may still be undone), or
 * "never" (the initiator undid the swap before revealing: the other may hold a co-signed state that refunds the lock
 * the secret would claim, and the secret would let it claim the source lock). Stored with the secret, so that every
 * component that reads secrets from a store obeys it.
 */
export type RevealRule = "may" | "held" | "never";
