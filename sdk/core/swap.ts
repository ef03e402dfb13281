import { sha256, TypedDataEncoder, type TypedDataField } from "ethers";

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

/** The digest both parties sign to agree on `terms`. */
export function termsDigest(terms: SwapTerms): Hex {
  return TypedDataEncoder.hash(SWAP_DOMAIN, SWAP_TYPES, terms) as Hex;
}

/** sha256 of a 32-byte secret: the hashlock of the swap (Bitcoin/Lightning compatible). */
export function hashlockOf(secret: Hex): Hex {
  return sha256(secret) as Hex;
}
