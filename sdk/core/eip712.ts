import { AbiCoder, keccak256, concat, TypedDataEncoder, type TypedDataDomain, type TypedDataField } from "ethers";

import type { Address, ChannelParams, ChannelState, Hex, Lock, OnChainState } from "./types.js";

/** EIP-712 domain name and version of every hub. */
export const HUB_DOMAIN_NAME = "ChannelHub";
export const HUB_DOMAIN_VERSION = "1";

/** EIP-712 types of a channel state; must match contracts/libraries/StateHashing.sol byte for byte. */
export const STATE_TYPES: Record<string, TypedDataField[]> = {
  State: [
    { name: "channelId", type: "bytes32" },
    { name: "seq", type: "uint64" },
    { name: "deposits", type: "uint128[2]" },
    { name: "balances", type: "uint128[2]" },
    { name: "locks", type: "Lock[]" },
    { name: "isFinal", type: "bool" },
  ],
  Lock: [
    { name: "sender", type: "uint8" },
    { name: "amount", type: "uint128" },
    { name: "hashlock", type: "bytes32" },
    { name: "expiry", type: "uint64" },
  ],
};

const LOCK_ENCODER = TypedDataEncoder.from({ Lock: STATE_TYPES.Lock! });
const STATE_ENCODER = TypedDataEncoder.from(STATE_TYPES);

/** The EIP-712 type string the hub hashes (`StateHashing.STATE_TYPE`). */
export const STATE_TYPE_STRING: string = STATE_ENCODER.encodeType("State");

/** The domain of the hub at `hub` on chain `chainId`: a signature is valid there and nowhere else. */
export function hubDomain(chainId: bigint, hub: Address): TypedDataDomain {
  return { name: HUB_DOMAIN_NAME, version: HUB_DOMAIN_VERSION, chainId, verifyingContract: hub };
}

/** EIP-712 encoding of a lock list, as carried on chain in `State.locksHash`. */
export function locksHash(locks: readonly Lock[]): Hex {
  return keccak256(concat(locks.map((lock) => LOCK_ENCODER.hash(lock)))) as Hex;
}

/** The state as the hub's functions take it. */
export function toOnChainState(state: ChannelState): OnChainState {
  const { locks, ...rest } = state;
  return { ...rest, locksHash: locksHash(locks) };
}

/** The digest both participants sign for `state` on the hub of `domain`. */
export function stateDigest(domain: TypedDataDomain, state: ChannelState): Hex {
  return TypedDataEncoder.hash(domain, STATE_TYPES, state) as Hex;
}

const PARAMS_TUPLE = "tuple(address[2] participants,address[2] payees,address asset,uint64 challengePeriod,uint256 nonce)";

/** The id of the channel with `params` on the hub at `hub` on chain `chainId` (`StateHashing.channelId`). */
export function channelIdOf(chainId: bigint, hub: Address, params: ChannelParams): Hex {
  const encoded = AbiCoder.defaultAbiCoder().encode(
    ["uint256", "address", PARAMS_TUPLE],
    [chainId, hub, [params.participants, params.payees, params.asset, params.challengePeriod, params.nonce]],
  );
  return keccak256(encoded) as Hex;
}
