import { ZeroAddress, type Signer } from "ethers";

import {
  DeltaTable,
  HubAdapter,
  keySigner,
  Store,
  SwapClient,
  type ChannelParams,
  type ClientEvent,
  type Hex,
  type StateSigner,
  type Transport,
} from "../../sdk/index.js";
import { accountKey } from "./local.js";

/** Channel pairs (one on S, one on T) between accounts 1 (Alice) and 2 (Bob), as both the bench and its peer see them. */
export type PairSpec = { nonce: string; sourceParams: ChannelParams; targetParams: ChannelParams };

export function pairSpecs(count: number, alice: string, bob: string, runId: bigint): PairSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const base = { participants: [alice, bob] as const, payees: [ZeroAddress, ZeroAddress] as const, asset: ZeroAddress, challengePeriod: 3600n };
    const nonce = runId * 1_000_000n + BigInt(i);
    return { nonce: nonce.toString(), sourceParams: { ...base, nonce }, targetParams: { ...base, nonce } };
  });
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
  const signer: StateSigner = { address: inner.address, sign: (d: Hex) => (countSigns(1), inner.sign(d)) };
  const store = new Store(storePath, { durability });
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
