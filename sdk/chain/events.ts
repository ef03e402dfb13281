import { dataSlice, getAddress, toBigInt, ZeroAddress } from "ethers";

import { channelIdOf } from "../core/eip712.js";
import { ChannelSdkError } from "../core/errors.js";
import type { ChannelParams, Hex } from "../core/types.js";
import type { ChannelHub } from "../contracts.js";

/** A channel's opening as its hub logged it: the parameters, and the deposit made in the same call. */
export type ChannelOpening = Readonly<{
  channelId: Hex;
  params: ChannelParams;
  /** The on-chain deposit totals the channel opened with (`openAndDeposit`; both zero for `open`). */
  deposits: readonly [bigint, bigint];
  blockNumber: number;
  transactionHash: Hex;
}>;

/** ChannelOpened's flags (the byte after the nonce): which participant the opening deposit is for. */
const FLAG_SECOND_PARTICIPANT = 1;
/** Set when ChannelOpenedWith (payees, asset) follows; unset, both payees and the asset are the zero address. */
const FLAG_WITH = 2;

/** The fields of ChannelOpened's `packed` data (IChannelHub, docs/PROTOCOL.md "Events"). */
export type PackedOpening = Readonly<{
  participants: readonly [string, string];
  challengePeriod: bigint;
  nonce: bigint;
  /** Whether a ChannelOpenedWith event with the payees and the asset follows. */
  hasPayeesOrAsset: boolean;
  deposits: readonly [bigint, bigint];
}>;

/**
 * Reads ChannelOpened's data: `abi.encodePacked(participants[0], participants[1], uint64 challengePeriod, nonce,
 * uint8 flags, uint120 deposit)`, 96 bytes (given as its three words or as one hex string).
 */
export function decodePackedOpening(packed: readonly string[] | string): PackedOpening {
  const data = typeof packed === "string" ? packed : `0x${packed.map((w) => w.slice(2)).join("")}`;
  if (data.length !== 2 + 96 * 2) throw new ChannelSdkError(`ChannelOpened data must be 96 bytes, got ${(data.length - 2) / 2}`);
  const flags = Number(toBigInt(dataSlice(data, 80, 81)));
  const deposit = toBigInt(dataSlice(data, 81, 96));
  const second = (flags & FLAG_SECOND_PARTICIPANT) !== 0;
  return {
    participants: [getAddress(dataSlice(data, 0, 20)), getAddress(dataSlice(data, 20, 40))],
    challengePeriod: toBigInt(dataSlice(data, 40, 48)),
    nonce: toBigInt(dataSlice(data, 48, 80)),
    hasPayeesOrAsset: (flags & FLAG_WITH) !== 0,
    deposits: second ? [0n, deposit] : [deposit, 0n],
  };
}

/**
 * Every channel opened on `hub` between two blocks, with its parameters rebuilt from the hub's events alone
 * (ChannelOpened, and ChannelOpenedWith for payees and asset) and checked against its id. A ChannelOpened that says
 * ChannelOpenedWith follows, without one in the range, throws: the range cut the opening in two, or the log is
 * not this hub's.
 */
export async function channelOpenings(
  hub: ChannelHub,
  chainId: bigint,
  fromBlock: number | string = 0,
  toBlock: number | string = "latest",
): Promise<ChannelOpening[]> {
  const hubAddress = getAddress(await hub.getAddress());
  const [opened, openedWith] = await Promise.all([
    hub.queryFilter(hub.filters.ChannelOpened(), fromBlock, toBlock),
    hub.queryFilter(hub.filters.ChannelOpenedWith(), fromBlock, toBlock),
  ]);
  const extras = new Map(
    openedWith.map((e) => [
      e.args.channelId.toLowerCase(),
      { payees: [getAddress(e.args.payees[0]), getAddress(e.args.payees[1])] as const, asset: getAddress(e.args.asset) },
    ]),
  );
  return opened.map((e) => {
    const channelId = e.args.channelId as Hex;
    const packed = decodePackedOpening(e.args.packed);
    const extra = packed.hasPayeesOrAsset ? extras.get(channelId.toLowerCase()) : undefined;
    if (packed.hasPayeesOrAsset && extra === undefined) {
      throw new ChannelSdkError(`channel ${channelId}: ChannelOpened names a ChannelOpenedWith event that is not in the range read`);
    }
    const params: ChannelParams = {
      participants: packed.participants,
      payees: extra?.payees ?? [ZeroAddress, ZeroAddress],
      asset: extra?.asset ?? ZeroAddress,
      challengePeriod: packed.challengePeriod,
      nonce: packed.nonce,
    };
    if (channelIdOf(chainId, hubAddress, params).toLowerCase() !== channelId.toLowerCase()) {
      throw new ChannelSdkError(`channel ${channelId}: the parameters in its ChannelOpened event do not hash to its id`);
    }
    return { channelId, params, deposits: packed.deposits, blockNumber: e.blockNumber, transactionHash: e.transactionHash as Hex };
  });
}
