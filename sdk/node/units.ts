/**
 * Amounts as users write them: `10 SRC@source` (a decimal in token units, a symbol, a chain name of the node's
 * configuration), turned into base units and back, in one place for the API, the CLI and the logs.
 */
import { formatUnits, parseUnits } from "ethers";

import { sameAddress } from "../core/types.js";
import { own } from "./config.js";
import { UsageError } from "./errors.js";
import { ASSET_REF, type NodeChainConfig } from "./node-config.js";

export type AssetInfo = Readonly<{ chain: string; chainId: bigint; symbol: string; address: string; decimals: number }>;
export type AmountSpec = Readonly<{ amount: bigint; asset: AssetInfo }>;

/** What a node knows of chains and assets, by name. */
export class AssetBook {
  constructor(private readonly chains: Readonly<Record<string, NodeChainConfig & { chainId: bigint }>>) {}

  /** `SYMBOL@chain`; a UsageError naming `field` if the chain or the symbol is unknown. */
  asset(ref: string, field: string): AssetInfo {
    const m = ASSET_REF.exec(ref);
    if (m === null) throw new UsageError(`${field}: expected SYMBOL@chain, e.g. ETH@target, got ${JSON.stringify(ref.slice(0, 42))}`);
    const [, symbol, chain] = m as unknown as [string, string, string];
    // Own names only: `ETH@constructor` or `toString@source` is an unknown chain or asset like any other.
    const c = own(this.chains, chain);
    if (c === undefined) throw new UsageError(`${field}: no chain ${chain} (known: ${Object.keys(this.chains).join(", ")})`);
    const a = own(c.assets, symbol);
    if (a === undefined) throw new UsageError(`${field}: no asset ${symbol} on ${chain} (known: ${Object.keys(c.assets).join(", ")})`);
    return { chain, chainId: c.chainId, symbol, address: a.address, decimals: a.decimals };
  }

  /** `10 SRC@source` (or `10SRC@source`); a UsageError naming `field` if malformed. */
  amount(text: string, field: string): AmountSpec {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z].*)$/.exec(text);
    if (m === null) throw new UsageError(`${field}: expected an amount like "10 ETH@source", got ${JSON.stringify(text.slice(0, 42))}`);
    const asset = this.asset(m[2]!.trim(), field);
    return { amount: units(m[1]!, asset.decimals, field), asset };
  }

  /** The asset at `address` on the chain `chainId`, if the configuration names it. */
  byAddress(chainId: bigint, address: string): AssetInfo | undefined {
    for (const [chain, c] of Object.entries(this.chains)) {
      if (c.chainId !== chainId) continue;
      for (const [symbol, a] of Object.entries(c.assets)) {
        if (sameAddress(a.address, address)) return { chain, chainId, symbol, address: a.address, decimals: a.decimals };
      }
    }
    return undefined;
  }

  chainName(chainId: bigint): string {
    return Object.entries(this.chains).find(([, c]) => c.chainId === chainId)?.[0] ?? chainId.toString();
  }
}

/** A decimal in token units as base units; a UsageError naming `field` if it has more decimals than the token. */
export function units(text: string, decimals: number, field: string): bigint {
  if (!/^\d+(\.\d+)?$/.test(text)) throw new UsageError(`${field}: expected a decimal number, got ${JSON.stringify(text.slice(0, 42))}`);
  const fraction = text.split(".")[1] ?? "";
  if (fraction.length > decimals) throw new UsageError(`${field}: ${text} has more than ${decimals} decimals`);
  return parseUnits(text, decimals);
}

/** Base units as `1.5 ETH@target` (no trailing zeros). */
export function formatAmount(amount: bigint, asset: AssetInfo | undefined): string {
  if (asset === undefined) return `${amount} (base units)`;
  let text = formatUnits(amount, asset.decimals);
  if (text.endsWith(".0")) text = text.slice(0, -2);
  return `${text} ${asset.symbol}@${asset.chain}`;
}
