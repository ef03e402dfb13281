import { AbiCoder, getBytes, id, keccak256, TypedDataEncoder, type TypedDataDomain, type TypedDataField } from "ethers";

import { keccak } from "./keccak.js";
import type { Address, ChannelParams, ChannelState, Hex, Lock, OnChainState } from "./types.js";
import { putHex, putWord, toHex, typedDataDigest } from "./words.js";

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

const LOCK_TYPEHASH = getBytes(id(LOCK_ENCODER.encodeType("Lock")));
const STATE_TYPEHASH = getBytes(id(STATE_TYPE_STRING));
const EMPTY_LOCKS = keccak(new Uint8Array(0));

/** EIP-712 struct hash of a lock (the same bytes as `TypedDataEncoder.hashStruct`, written directly). */
export function lockHash(lock: Lock): Uint8Array {
  const buf = new Uint8Array(5 * 32);
  buf.set(LOCK_TYPEHASH, 0);
  putWord(buf, 32, BigInt(lock.sender));
  putWord(buf, 64, lock.amount);
  putHex(buf, 96, lock.hashlock);
  putWord(buf, 128, lock.expiry);
  return keccak(buf);
}

function locksHashBytes(locks: readonly Lock[]): Uint8Array {
  if (locks.length === 0) return EMPTY_LOCKS;
  const buf = new Uint8Array(locks.length * 32);
  locks.forEach((lock, i) => buf.set(lockHash(lock), i * 32));
  return keccak(buf);
}

/** EIP-712 encoding of a lock list, as carried on chain in `State.locksHash`. */
export function locksHash(locks: readonly Lock[]): Hex {
  return toHex(locksHashBytes(locks));
}

function pairHash(pair: readonly [bigint, bigint]): Uint8Array {
  const buf = new Uint8Array(64);
  putWord(buf, 0, pair[0]);
  putWord(buf, 32, pair[1]);
  return keccak(buf);
}

/** Hashes of deposit pairs seen lately: a channel's deposits stay the same across all its off-chain states. */
const depositHashes = new Map<string, Uint8Array>();

function depositsHash(deposits: readonly [bigint, bigint]): Uint8Array {
  const key = `${deposits[0]}:${deposits[1]}`;
  let hash = depositHashes.get(key);
  if (hash === undefined) {
    hash = pairHash(deposits);
    if (depositHashes.size >= 4096) depositHashes.clear();
    depositHashes.set(key, hash);
  }
  return hash;
}

function stateStructHashBytes(state: ChannelState): Uint8Array {
  const buf = new Uint8Array(7 * 32);
  buf.set(STATE_TYPEHASH, 0);
  putHex(buf, 32, state.channelId);
  putWord(buf, 64, state.seq);
  buf.set(depositsHash(state.deposits), 96);
  buf.set(pairHash(state.balances), 128);
  buf.set(locksHashBytes(state.locks), 160);
  putWord(buf, 192, state.isFinal ? 1n : 0n);
  return keccak(buf);
}

const domainSeparators = new Map<string, Uint8Array>();

function domainSeparator(domain: TypedDataDomain): Uint8Array {
  const key = `${String(domain.chainId)}:${String(domain.verifyingContract).toLowerCase()}:${domain.name}:${domain.version}`;
  let separator = domainSeparators.get(key);
  if (separator === undefined) {
    separator = getBytes(TypedDataEncoder.hashDomain(domain));
    domainSeparators.set(key, separator);
  }
  return separator;
}

/** The EIP-712 struct hash of `state`: what the hub keeps of a registered state (`StateHashing.hashState`). */
export function stateStructHash(state: ChannelState): Hex {
  return toHex(stateStructHashBytes(state));
}

/** The state as the hub's functions take it. */
export function toOnChainState(state: ChannelState): OnChainState {
  const { locks, ...rest } = state;
  return { ...rest, locksHash: locksHash(locks) };
}

/** The digest both participants sign for `state` on the hub of `domain` (EIP-712: 0x1901, domain, struct hash). */
export function stateDigest(domain: TypedDataDomain, state: ChannelState): Hex {
  return typedDataDigest(domainSeparator(domain), stateStructHashBytes(state));
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
