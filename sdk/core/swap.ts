import { keccak_256 } from "@noble/hashes/sha3.js";
import { getBytes, hexlify, id, sha256, TypedDataEncoder, type TypedDataField } from "ethers";

import type { Address, Hex } from "./types.js";

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

function word(out: Uint8Array, offset: number, value: bigint): void {
  let v = value;
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function hexInto(out: Uint8Array, end: number, hex: string): void {
  const bytes = getBytes(hex);
  out.set(bytes, end - bytes.length);
}

function refHash(ref: ChannelRef): Uint8Array {
  const buf = new Uint8Array(4 * 32);
  buf.set(REF_TYPEHASH, 0);
  word(buf, 32, ref.chainId);
  hexInto(buf, 96, ref.hub);
  hexInto(buf, 128, ref.channelId);
  return keccak_256(buf);
}

/** The digest both parties sign to agree on `terms` (EIP-712, written directly; tested against ethers' encoder). */
export function termsDigest(terms: SwapTerms): Hex {
  const buf = new Uint8Array(11 * 32);
  buf.set(TERMS_TYPEHASH, 0);
  hexInto(buf, 64, terms.swapId);
  buf.set(refHash(terms.source), 64);
  buf.set(refHash(terms.target), 96);
  hexInto(buf, 160, terms.initiator);
  hexInto(buf, 192, terms.responder);
  word(buf, 192, terms.give);
  word(buf, 224, terms.take);
  hexInto(buf, 288, terms.hashlock);
  word(buf, 288, terms.sourceExpiry);
  word(buf, 320, terms.targetExpiry);
  const out = new Uint8Array(66);
  out[0] = 0x19;
  out[1] = 0x01;
  out.set(SWAP_DOMAIN_SEPARATOR, 2);
  out.set(keccak_256(buf), 34);
  return hexlify(keccak_256(out)) as Hex;
}

/** sha256 of a 32-byte secret: the hashlock of the swap (Bitcoin/Lightning compatible). */
export function hashlockOf(secret: Hex): Hex {
  return sha256(secret) as Hex;
}
