/**
 * The node's configuration file (`channels node start --config node.json`; reference: docs/NODE.md). Unknown
 * fields are errors; everything that lets someone else move funds or lock ours defaults to "no": no peers, no
 * channel terms accepted, no swaps answered.
 */
import { dirname, resolve } from "node:path";
import { z } from "zod";

import { address, expected, filePath, httpUrl, loadConfigFile, own, positiveInt, wholeNumber } from "./config.js";
import { isPostgresUrl, urlHasPassword } from "../store/postgres.js";
import { ConfigError, type ConfigProblem } from "./errors.js";
import { DEFAULT_PEER_LIMITS } from "./peer.js";

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/** `SYMBOL@chain`, e.g. `ETH@target`. */
export const ASSET_REF = /^([A-Za-z][A-Za-z0-9_-]{0,31})@([A-Za-z][A-Za-z0-9_-]{0,31})$/;
const assetRef = () => z.string().refine((s) => ASSET_REF.test(s), { error: "expected SYMBOL@chain, e.g. ETH@target" });
/** A decimal amount in token units, as a string ("0.5"). */
const decimal = () => z.string().refine((s) => /^\d+(\.\d+)?$/.test(s), { error: 'expected a decimal number as a string, e.g. "0.5"' });
const port = () => wholeNumber(0, 65_535);

/** A chain's fee policy for deadline transactions (docs/CHAINS.md): the node's and the watchtower's. */
export const FeesSchema = z.strictObject({
  /** The most this node offers per gas (max fee, gwei). */
  maxFeePerGasGwei: decimal().default("500"),
  bumpPercent: z.number().min(12.5).max(100).default(12.5),
  /** How long a version waits for inclusion before it is replaced when no deadline presses. */
  bumpAfterSeconds: positiveInt(3_600).default(24),
});

export const NodeChainSchema = z.strictObject({
  rpcUrl: httpUrl(),
  hub: address(),
  /**
   * Blocks a deposit must be under before it counts; left out, the SDK's default for the chain id
   * (`defaultConfirmations`: 0 on local chains, DEFAULT_CONFIRMATIONS elsewhere). Set your chain's.
   */
  confirmations: wholeNumber().optional(),
  finalitySeconds: wholeNumber().default(60),
  inclusionSeconds: wholeNumber().default(300),
  clockSkewSeconds: wholeNumber().default(60),
  /**
   * Fees of the transactions that race a deadline (force closes, challenges, reveals, settles): replaced with fees
   * raised by `bumpPercent` until one is mined, paced to reach the cap before the deadline, never above it
   * (docs/CHAINS.md).
   */
  fees: FeesSchema.prefault({}),
  /** The assets this node names on the chain: symbol -> token address (zero address: the native coin). */
  assets: z.record(z.string(), z.strictObject({ address: address(), decimals: wholeNumber(0, 36).default(18) })),
});

export const SwapPairSchema = z.strictObject({
  /** What the initiator gives (we receive), e.g. "ETH@source". */
  give: assetRef(),
  /** What the initiator takes (we pay), e.g. "ETH@target". */
  take: assetRef(),
  /** Least and most `take` per unit of `give`, in token units; `maxRate` is required (defaults deny any price). */
  minRate: decimal().optional(),
  maxRate: decimal(),
  /** Most we pay (`take`, in token units) in one swap; required (defaults deny any size). */
  maxAmount: decimal(),
});

export const NodeConfigSchema = z.strictObject({
  /** The signing key: an encrypted JSON keystore (password from `passwordEnv`), or a key in an environment variable. */
  key: z.union(
    [z.strictObject({ keystore: filePath(), passwordEnv: z.string().default("CHANNELS_PASSWORD") }), z.strictObject({ env: z.string() })],
    { error: expected('{ "keystore": "<file>", "passwordEnv"?: "<VARIABLE>" } or { "env": "<VARIABLE>" }') },
  ),
  /**
   * Where the node keeps its state: a SQLite file, relative to this file (with `.tower`, `.pending.json` and
   * `.refusals.jsonl` beside it), or a PostgreSQL database (`postgres://user@host:port/database`; the password from
   * PGPASSWORD or ~/.pgpass, never in this file), which holds everything and lets standby processes take over.
   */
  store: filePath(),
  /** Where peers reach this node (the peer endpoint). */
  peer: z.strictObject({
    host: z.string().default("127.0.0.1"),
    port: port(),
    /** The URL peers reach this node at when it is not http://host:port (a DNS name, a proxy): advertised, and its name taken as Host. */
    publicUrl: httpUrl().optional(),
    /** What the endpoint takes from the network at once (docs/NODE.md, "Limits on the peer port"). */
    limits: z
      .strictObject({
        maxConnections: positiveInt().default(DEFAULT_PEER_LIMITS.maxConnections),
        maxConnectionsPerAddress: positiveInt().default(DEFAULT_PEER_LIMITS.maxConnectionsPerAddress),
        maxRequests: positiveInt().default(DEFAULT_PEER_LIMITS.maxRequests),
        maxBufferedBytes: positiveInt().default(DEFAULT_PEER_LIMITS.maxBufferedBytes),
        requestTimeoutMs: positiveInt(600_000).default(DEFAULT_PEER_LIMITS.requestTimeoutMs),
        maxQueuedPerPeer: positiveInt().default(DEFAULT_PEER_LIMITS.maxQueuedPerPeer),
        maxQueuedChars: positiveInt().default(DEFAULT_PEER_LIMITS.maxQueuedChars),
      })
      .prefault({}),
  }),
  /** The control API: loopback only unless `allowRemote` is true. */
  api: z
    .strictObject({
      host: z.string().default("127.0.0.1"),
      port: port(),
      tokenFile: filePath().default("api.token"),
      allowRemote: z.boolean().default(false),
      /** GET /metrics without the token (for a Prometheus that cannot send one); everything else still needs it. */
      metricsPublic: z.boolean().default(false),
    }),
  chains: z.record(z.string(), NodeChainSchema).refine((c) => Object.keys(c).length > 0, { error: "expected at least one chain" }),
  peers: z.record(z.string(), z.strictObject({ address: address(), url: httpUrl() })).default({}),
  policy: z
    .strictObject({
      channels: z
        .strictObject({
          /** Channels a peer may open with us: `SYMBOL@chain`. */
          accept: z.array(assetRef()).default([]),
          minChallengePeriodSeconds: positiveInt().default(3600),
          maxChallengePeriodSeconds: positiveInt().default(7 * 24 * 3600),
        })
        .prefault({}),
      swaps: z.strictObject({ pairs: z.array(SwapPairSchema).default([]), maxInFlight: wholeNumber().default(0) }).prefault({}),
    })
    .prefault({}),
  timing: z
    .strictObject({
      tickMs: positiveInt(60_000).default(1_000),
      heartbeatSeconds: positiveInt(86_400).default(60),
      /** How often each chain's health is checked: its head, a deep reorganisation, the fee account (docs/NODE.md, "Chain health"). */
      chainCheckSeconds: positiveInt(3_600).default(10),
      resendMs: positiveInt().default(2_000),
      confirmationTimeoutMs: positiveInt().default(30_000),
      minTargetWindowSeconds: positiveInt().default(600),
      onChainMarginSeconds: positiveInt().default(300),
      /** Challenge period of channels this node opens. */
      challengePeriodSeconds: positiveInt().default(3600),
    })
    .prefault({}),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

export type NodeConfig = Readonly<z.output<typeof NodeConfigSchema> & { file: string; folder: string }>;
export type NodeChainConfig = z.output<typeof NodeChainSchema>;
export type SwapPair = z.output<typeof SwapPairSchema>;

/** Reads and checks a node configuration; paths in it are made absolute from the file's folder. */
export function loadNodeConfig(file: string): NodeConfig {
  const parsed = loadConfigFile(NodeConfigSchema, file);
  const folder = dirname(resolve(file));
  const problems: ConfigProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });
  if (!parsed.api.allowRemote && !["127.0.0.1", "::1", "localhost"].includes(parsed.api.host)) {
    problem("api.host", `${JSON.stringify(parsed.api.host)} is not loopback; set api.allowRemote to true to serve the API there`);
  }
  for (const n of Object.keys(parsed.chains)) if (!NAME.test(n)) problem(`chains.${n}`, "a chain name is a letter, then letters, digits, _ or -");
  for (const n of Object.keys(parsed.peers)) if (!NAME.test(n)) problem(`peers.${n}`, "a peer name is a letter, then letters, digits, _ or -");
  for (const [c, chain] of Object.entries(parsed.chains)) {
    for (const s of Object.keys(chain.assets)) if (!NAME.test(s)) problem(`chains.${c}.assets.${s}`, "a symbol is a letter, then letters, digits, _ or -");
  }
  const known = (ref: string) => {
    const m = ASSET_REF.exec(ref);
    const chain = m === null ? undefined : own(parsed.chains, m[2]!);
    return chain !== undefined && own(chain.assets, m![1]!) !== undefined;
  };
  parsed.policy.channels.accept.forEach((ref, i) => {
    if (!known(ref)) problem(`policy.channels.accept[${i}]`, `no asset ${ref} in chains`);
  });
  parsed.policy.swaps.pairs.forEach((p, i) => {
    if (!known(p.give)) problem(`policy.swaps.pairs[${i}].give`, `no asset ${p.give} in chains`);
    if (!known(p.take)) problem(`policy.swaps.pairs[${i}].take`, `no asset ${p.take} in chains`);
  });
  if (isPostgresUrl(parsed.store)) {
    let url: URL | undefined;
    try {
      url = new URL(parsed.store);
    } catch {
      problem("store", "not a readable postgres:// URL");
    }
    if (url !== undefined && urlHasPassword(parsed.store)) problem("store", "a password in the URL; give it in PGPASSWORD or ~/.pgpass instead, so that it is in no file the node prints or copies");
    if (url !== undefined && url.pathname.length <= 1) problem("store", "the URL names no database (postgres://user@host:port/database)");
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return {
    ...parsed,
    store: isPostgresUrl(parsed.store) ? parsed.store : resolve(folder, parsed.store),
    key: "keystore" in parsed.key ? { ...parsed.key, keystore: resolve(folder, parsed.key.keystore) } : parsed.key,
    api: { ...parsed.api, tokenFile: resolve(folder, parsed.api.tokenFile) },
    file,
    folder,
  };
}
