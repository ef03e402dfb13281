import { ZeroAddress, type Signer } from "ethers";

import {
  DeltaTable,
  HubAdapter,
  keySigner,
  Store,
  SwapClient,
  sameAddress,
  type ChannelParams,
  type ClientEvent,
  type ExpectedChannel,
  type Hex,
  type StateSigner,
  type Transport,
} from "../../sdk/index.js";
import { accountKey } from "./local.js";
import { isPostgresUrl, PgDatabase } from "../../sdk/store/postgres.js";

/** Channel pairs (one on S, one on T) between accounts 1 (Alice) and 2 (Bob), as both the bench and its peer see them. */
export type PairSpec = { nonce: string; sourceParams: ChannelParams; targetParams: ChannelParams };

export function pairSpecs(count: number, alice: string, bob: string, runId: bigint): PairSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const base = { participants: [alice, bob] as const, payees: [ZeroAddress, ZeroAddress] as const, asset: ZeroAddress, challengePeriod: 3600n };
    const nonce = runId * 1_000_000n + BigInt(i);
    return { nonce: nonce.toString(), sourceParams: { ...base, nonce }, targetParams: { ...base, nonce } };
  });
}

/**
 * What a party that chose `params` itself expects of the channel when it joins: the other participant and the
 * asset named there. (A party joining a channel someone else proposed states its own expectations instead.)
 */
export function expectedChannel(params: ChannelParams, me: string): ExpectedChannel {
  const counterparty = params.participants.find((p) => !sameAddress(p, me)) ?? params.participants[0];
  return { counterparty, asset: params.asset };
}

/**
 * Brings every channel's ledger up to the deposits final on chain, on both clients at once (participant 0 proposes,
 * participant 1 checks): what a swap needs after its channels were funded. Both clients must be connected.
 */
export async function syncDeposits(clients: readonly SwapClient[], channelIds: readonly Hex[]): Promise<void> {
  for (const id of channelIds) await Promise.all(clients.map((c) => c.syncDeposits(id)));
}

/** Timing assumed for a local chain: a minute to finality, five to inclusion, a minute of clock skew. */
export const timing = (chainId: bigint) => ({ chainId, finalitySeconds: 60n, inclusionSeconds: 300n, clockSkewSeconds: 60n });

/** A client for `who` with a file store, over `transport`, with both chains' adapters sending from `signers`. */
export async function benchClient(
  who: 1 | 2,
  hubs: { source: string; target: string },
  signers: { source: Signer; target: Signer },
  transport: Transport,
  storePath: string,
  onEvent: (e: ClientEvent) => void,
  countSigns: (n: number) => void = () => {},
  durability: "power" | "crash" = "power",
): Promise<{ client: SwapClient; store: Store; chains: [HubAdapter, HubAdapter] }> {
  const chains: [HubAdapter, HubAdapter] = [
    await HubAdapter.connect(hubs.source, signers.source, { timeCacheMs: 1_000 }),
    await HubAdapter.connect(hubs.target, signers.target, { timeCacheMs: 1_000 }),
  ];
  const inner = keySigner(accountKey(who));
  const signer: StateSigner = { ...inner, sign: (d: Hex) => (countSigns(1), inner.sign(d)) };
  // A postgres:// URL: the store kept in PostgreSQL (its commits there first, under this process's term).
  let store: Store;
  if (isPostgresUrl(storePath)) {
    const db = PgDatabase.open(storePath);
    const term = db.tryLead(inner.address, `bench ${who}`, undefined);
    if (term === undefined) throw new Error(`${storePath}: another process leads it`);
    store = new Store(":memory:", { mirror: db.mirror("node", term) });
  } else {
    store = new Store(storePath, { durability });
  }
  const client = new SwapClient({
    signer,
    store,
    transport,
    chains,
    deltas: new DeltaTable(new Map(chains.map((c) => [c.chainId, timing(c.chainId)]))),
    minTargetWindow: 600n,
    onChainMargin: 300n,
    resendIntervalMs: 5_000,
    confirmationTimeoutMs: 60_000,
    onEvent,
  });
  return { client, store, chains };
}
