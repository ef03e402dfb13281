/**
 * The node's start: the chains, the store (with its lock and its watchtower's store), the peer endpoint and the
 * SwapClient wired together, each thing started undone again if a later one fails.
 */
import { existsSync } from "node:fs";
import type { Logger } from "pino";

import { type JsonRpcError, type JsonRpcProvider, type JsonRpcResult, parseUnits, Wallet } from "ethers";
import type { FeeEvent, FeePolicy } from "../chain/fees.js";
import { HubAdapter } from "../chain/hub.js";
import { rpcProvider } from "../chain/provider.js";
import { EnvelopeAuth } from "../core/envelope-auth.js";
import { ChannelSdkError } from "../core/errors.js";
import type { SwapTerms } from "../core/swap.js";
import { DeltaTable } from "../core/timing.js";
import type { Address, Hex } from "../core/types.js";
import type { ClientEvent } from "../coordinator/phases.js";
import { keySigner, type StateSigner } from "../coordinator/signer.js";
import { SwapClient, type PolicyContext } from "../coordinator/swap-client.js";
import type { Transport } from "../coordinator/transport.js";
import { redactUrl, type PgDatabase } from "../store/postgres.js";
import { Store } from "../store/store.js";
import { Watchtower } from "../watchtower/watchtower.js";
import { UsageError } from "./errors.js";
import { plain } from "./events.js";
import type { NodeConfig } from "./node-config.js";
import { PeerFailures } from "./peer-failures.js";
import { DESCRIPTORS_KEPT, PeerLink, type ProposalAnswer, type SignedProposal } from "./peer.js";
import type { Routed } from "./peer-book.js";
import { lockStore, unlockStore, type StoreLock } from "./store-lock.js";
import { filesBeside, requireNewStore } from "./store-health.js";
import { AssetBook } from "./units.js";
import { ChainHealth } from "./chain-health.js";

export type StartOptions = Readonly<{
  /**
   * Start with a new, empty store although the files beside it or the chains say this node had channels
   * (`channels node start --allow-empty-store`): those channels are then defended only on chain, by the watchtower.
   */
  allowEmptyStore?: boolean;
  /**
   * A node kept in PostgreSQL (`store` a postgres:// URL): the database, and the term this process leads it under
   * (`PgDatabase.tryLead`). Both stores load the database's rows and commit there first, under that term.
   */
  leadership?: Readonly<{ db: PgDatabase; term: number }>;
}>;

/** How long a chain's time reading is reused (moved on by the wall clock) before the chain is asked again. */
const CHAIN_TIME_CACHE_MS = 1_000;

/** What a start made, for the node: each part of the node takes what it needs of these. */
export type NodeParts = Readonly<{
  config: NodeConfig;
  address: Address;
  signer: StateSigner;
  log: Logger;
  providers: JsonRpcProvider[];
  store: Store;
  towerStore: Store;
  tower: Watchtower;
  link: PeerLink;
  client: SwapClient;
  assets: AssetBook;
  /** This node's lock of its store's file (`lockStore`), given up by `stop`; none for a store in PostgreSQL (its lead is the lock). */
  storeLock: StoreLock | undefined;
  /** Chain ids by the configuration's chain names. */
  chainIds: ReadonlyMap<string, bigint>;
  adapters: ReadonlyMap<bigint, HubAdapter>;
  /** Each chain's health; what every path asks before it signs anything new that depends on a chain. */
  chainHealth: ChainHealth;
  /** The term this process leads its database under (a store in PostgreSQL), else undefined. */
  term: number | undefined;
}>;

/** What the start calls on the node it made: the handlers the signer, the peer endpoint and the client are given, and its loops. */
export type NodeHooks = Readonly<{
  requireStore: () => void;
  peerUrlFor: (e: Routed) => string | undefined;
  onChannelProposal: (signed: SignedProposal) => Promise<ProposalAnswer>;
  swapPolicy: (terms: SwapTerms, context: PolicyContext) => string | undefined;
  onClientEvent: (e: ClientEvent) => void;
  /** Progress of a deadline transaction on chain `chain` (logged already): for the event stream. */
  onFeeEvent: (chain: string, e: FeeEvent) => void;
  /** Reads the node's files beside the store, starts the tick loop and the heartbeat's interval. */
  run: () => void;
  /** The first heartbeat. */
  beat: () => void;
}>;

/** A node as made from its parts, with its hooks. */
export type Made<N> = Readonly<{ node: N; hooks: NodeHooks }>;

/**
 * Connects to every chain, opens the store (refusing to start a new one where this node had one, see
 * `requireNewStore`, and to run on a store another node runs on), starts the peer endpoint and the tick loop; `make`
 * builds the node from what was started, with the hooks the endpoint, the client and this start call.
 */
export async function openNode<N>(config: NodeConfig, key: Hex, log: Logger, options: StartOptions, make: (parts: NodeParts) => Made<N>): Promise<N> {
  let hooks: NodeHooks | undefined;
  const keyed = keySigner(key);
  // Every signature of this node (states, messages, swap terms, channel proposals) goes through here: once its
  // store is lost, none is made.
  const signer: StateSigner = {
    address: keyed.address,
    publicKey: keyed.publicKey,
    sign: (digest) => {
      hooks?.requireStore();
      return keyed.sign(digest);
    },
    agree: (publicKey) => {
      hooks?.requireStore();
      return keyed.agree(publicKey);
    },
  };
  const providers: JsonRpcProvider[] = [];
  const chains: { name: string; adapter: HubAdapter }[] = [];
  for (const [name, c] of Object.entries(config.chains)) {
    const provider = rpcProvider(c.rpcUrl);
    providers.push(provider);
    await answering(name, c.rpcUrl, provider, log);
    let adapter: HubAdapter;
    if ((await provider.getCode(c.hub).catch(() => undefined)) === "0x") {
      for (const p of providers) p.destroy();
      throw new UsageError(`chains.${name}.hub: no contract at ${c.hub} on ${new URL(c.rpcUrl).origin} (deployed to another chain, or the chain was restarted?)`);
    }
    try {
      // A chain's time read within the last second is reused, moved on by the wall clock: every proposal, envelope
      // of terms and acceptance checks the timing rules against both chains' times, and a JSON-RPC round trip for
      // each was most of a swap's latency through the node (the rules' skew bounds are tens of seconds).
      adapter = await HubAdapter.connect(c.hub, new Wallet(key, provider), {
        confirmations: c.confirmations,
        timeCacheMs: CHAIN_TIME_CACHE_MS,
        fees: feePolicy(name, c.fees, log, (e) => hooks?.onFeeEvent(name, e)),
        // A transaction waiting to be mined goes on in the background after 2 s: the tick (and with it every peer
        // message) never waits on one; the next tick decides again from the chain, and joins it if still under way.
        detachAfterMs: 2_000,
      });
    } catch (error) {
      for (const p of providers) p.destroy();
      throw new ChannelSdkError(`chains.${name}: cannot use the hub ${c.hub} at ${new URL(c.rpcUrl).origin}: ${(error as Error).message.split("\n")[0]}`);
    }
    chains.push({ name, adapter });
  }
  // Undone in reverse if the start fails after this point.
  const undo: (() => unknown)[] = [() => providers.forEach((p) => p.destroy())];
  try {
    return await openStores(config, log, options, signer, providers, chains, undo, make, (h) => (hooks = h));
  } catch (error) {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        // the start failed already: that error is the one to report
      }
    }
    throw error;
  }
}

/** The rest of `open`, from the store on: each thing started pushes its undoing onto `undo`. */
async function openStores<N>(
  config: NodeConfig,
  log: Logger,
  options: StartOptions,
  signer: StateSigner,
  providers: JsonRpcProvider[],
  chains: readonly { name: string; adapter: HubAdapter }[],
  undo: (() => unknown)[],
  make: (parts: NodeParts) => Made<N>,
  made: (hooks: NodeHooks) => void,
): Promise<N> {
  const allow = options.allowEmptyStore === true;
  const lead = options.leadership;
  let storeLock: StoreLock | undefined;
  let store: Store;
  let towerStore: Store;
  if (lead === undefined) {
    if (!existsSync(config.store)) await requireNewStore(config, signer.address as Address, chains, log, allow, filesBeside(config.store));
    // One node per store: two processes signing from one store could sign two states with one sequence number.
    const lock = lockStore(config.store);
    storeLock = lock;
    undo.push(() => unlockStore(lock));
    store = new Store(config.store);
    undo.push(() => store.close());
    // The tower's store is fed by the client (after each group of the client's store is on disk) and filled again
    // from the client's store at every start (`importFrom` below): it need not sync every write of its own. A power
    // cut loses at most its last writes, which the next start brings back from the client's synced store; a crash of
    // the process loses nothing (SQLite's log is in the file system's cache).
    towerStore = new Store(`${config.store}.tower`, { durability: "crash" });
    undo.push(() => towerStore.close());
  } else {
    // In PostgreSQL: one process leads (the lock and the term, taken before this), and both stores are its rows.
    if (lead.db.isEmpty("node")) {
      const evidence = lead.db.isEmpty("tower") ? [] : [`its watchtower's rows (schema tower of ${redactUrl(config.store)}) are there`];
      await requireNewStore(config, signer.address as Address, chains, log, allow, evidence);
    }
    store = new Store(":memory:", { mirror: lead.db.mirror("node", lead.term) });
    undo.push(() => store.close());
    towerStore = new Store(":memory:", { mirror: lead.db.mirror("tower", lead.term) });
    undo.push(() => towerStore.close());
  }
  const tower = new Watchtower(
    towerStore,
    chains.map(({ name, adapter }) => ({
      chain: adapter,
      confirmations: adapter.confirmations, // the chain's default when the config names none
      clockSkewSeconds: BigInt(config.chains[name]!.clockSkewSeconds),
      claimWindowSeconds: 900n,
    })),
    (e) => log.info({ event: "watchtower", ...(plain(e) as object) }, `watchtower: ${e.type}`),
  );
  let hooks: NodeHooks | undefined;
  const peers = new Set(Object.values(config.peers).map((p) => p.address.toLowerCase()));
  /** Opens envelopes peers authenticated with the key each shares with this node (at the door and in failures). */
  const envelopeAuth = new EnvelopeAuth(signer);
  const link = await PeerLink.start({
    host: config.peer.host,
    port: config.peer.port,
    publicUrl: config.peer.publicUrl,
    limits: config.peer.limits,
    isPeer: (address) => peers.has(address),
    auth: envelopeAuth,
    route: (e) => hooks?.peerUrlFor(e),
    onProposal: async (p) => (hooks === undefined ? { accepted: false, reason: "starting" } : hooks.onChannelProposal(p)),
  });
  undo.push(() => link.close());
  if (link.connectionCap < config.peer.limits.maxConnections) {
    log.warn(
      { event: "peerLimits", maxConnections: link.connectionCap },
      `peer endpoint: at most ${link.connectionCap} connections (peer.limits.maxConnections ${config.peer.limits.maxConnections}), so that ${DESCRIPTORS_KEPT} of this process's open-files limit stay for the chains, the store and the API; raise the limit (ulimit -n) for more`,
    );
  }
  const deltas = new DeltaTable(
    new Map(
      chains.map(({ name, adapter }) => {
        const c = config.chains[name]!;
        return [adapter.chainId, { chainId: adapter.chainId, finalitySeconds: BigInt(c.finalitySeconds), inclusionSeconds: BigInt(c.inclusionSeconds), clockSkewSeconds: BigInt(c.clockSkewSeconds) }];
      }),
    ),
  );
  const t = config.timing;
  // Every failure to handle a received message is counted per configured peer (peer-failures.ts): the envelope is
  // seen here, around the client's handler, and a line that never decoded comes through the link's onError.
  const failures = new PeerFailures(log, new Map(Object.entries(config.peers).map(([name, p]) => [p.address.toLowerCase(), name])), Date.now, envelopeAuth);
  link.onError = (error) => failures.failed(error);
  const transport: Transport = {
    send: (e) => link.send(e),
    sendMany: (es) => link.sendMany(es),
    listen: (handler) =>
      link.listen(async (e) => {
        try {
          await handler(e);
        } catch (error) {
          failures.failed(error, e);
          return;
        }
        failures.handled(e);
      }),
    close: () => link.close(),
  };
  const chainIds = new Map<string, bigint>();
  const adapters = new Map<bigint, HubAdapter>();
  for (const { name, adapter } of chains) {
    chainIds.set(name, adapter.chainId);
    adapters.set(adapter.chainId, adapter);
  }
  const address = signer.address as Address;
  const chainHealth = new ChainHealth({ config, log, address, store, chainIds, adapters });
  const client = new SwapClient({
    auth: envelopeAuth, // one key cache for the port, the failure count and the client
    signer,
    store,
    transport,
    chains: chains.map((c) => c.adapter),
    deltas,
    minTargetWindow: BigInt(t.minTargetWindowSeconds),
    onChainMargin: BigInt(t.onChainMarginSeconds),
    resendIntervalMs: t.resendMs,
    confirmationTimeoutMs: t.confirmationTimeoutMs,
    channelPolicy: {
      minChallengePeriod: BigInt(config.policy.channels.minChallengePeriodSeconds),
      maxChallengePeriod: BigInt(config.policy.channels.maxChallengePeriodSeconds),
    },
    policy: (terms, context) => (hooks === undefined ? "starting" : hooks.swapPolicy(terms, context)),
    onEvent: (e) => hooks?.onClientEvent(e),
    watchtower: tower,
    chainGuard: chainHealth,
  });
  const withIds: Record<string, (typeof config.chains)[string] & { chainId: bigint }> = {};
  for (const { name, adapter } of chains) withIds[name] = { ...config.chains[name]!, chainId: adapter.chainId };
  const built = make({ config, address, signer, log, providers, store, towerStore, tower, link, client, assets: new AssetBook(withIds), storeLock, chainIds, adapters, chainHealth, term: lead?.term });
  hooks = built.hooks;
  made(hooks);
  link.onLimit = (turnedAway) => {
    const total = Object.values(turnedAway).reduce((x, y) => x + y, 0);
    const which = Object.entries(turnedAway).map(([limit, n]) => `${limit} ${n}`).join(", ");
    log.warn({ event: "peerLimits", turnedAway }, `peer endpoint: turned away ${total} connections or requests at its limits (${which}; peer.limits)`);
  };
  tower.importFrom(store);
  // Secrets its store kept from before reveal rules that the client's store does not know: never revealed by the
  // tower unless a chain shows them revealed. Said once per start.
  const held = tower.heldWithoutWord(store);
  if (held > 0) {
    log.warn(
      { event: "towerSecretsHeld", secrets: held },
      `watchtower: ${held} secret(s) in ${config.store}.tower have no word from the client's store; held (revealed only once a chain shows them)`,
    );
  }
  hooks.run();
  log.info(
    { event: "started", address, peerUrl: link.url, chains: Object.fromEntries(chainIds), channels: store.channels().length, activeSwaps: store.activeSwapIds().length },
    "node started",
  );
  hooks.beat();
  return built.node;
}

/**
 * A chain's fee policy from its configuration: every deadline transaction of the node goes through it (fees.ts).
 * Its progress is logged (a warning for what an operator must act on: the market above the cap, the cap reached, a
 * transaction reorganised out or its nonce taken by another process) and told to `onEvent` (the event stream).
 */
export function feePolicy(chain: string, fees: NodeConfig["chains"][string]["fees"], log: Logger, onEvent: (e: FeeEvent) => void): FeePolicy {
  const gwei = (wei: bigint) => `${Number(wei) / 1e9} gwei`;
  const setting = `chains.${chain}.fees.maxFeePerGasGwei`;
  let lastCapWarning = 0;
  const report = (e: FeeEvent) => {
    const fields = { event: "chainTx", chain, ...(plain(e) as object) };
    switch (e.kind) {
      case "capBelowMarket": {
        // Said at warn once in ten minutes per chain: a call made again every tick would say it every tick.
        const warnNow = Date.now() - lastCapWarning >= 600_000;
        if (warnNow) lastCapWarning = Date.now();
        log[warnNow ? "warn" : "debug"](fields, `chain ${chain}: ${e.call}: the chain asks ${gwei(e.marketMaxFeePerGas)} per gas, above ${setting} (${gwei(e.maxFeePerGasCap)}): it may not land before its deadline; raise the cap`);
        break;
      }
      case "capReached":
        log.warn(fields, `chain ${chain}: ${e.call} (nonce ${e.nonce}) offers the cap of ${gwei(e.maxFeePerGas)} per gas (${setting}) and is not mined yet`);
        break;
      case "reorgedOut":
        log.warn(fields, `chain ${chain}: ${e.call} (nonce ${e.nonce}) left the chain in a reorganisation (was in block ${e.blockNumber}); sent again`);
        break;
      case "nonceTaken":
        log.warn(fields, `chain ${chain}: ${e.call}: another transaction from this node's account took nonce ${e.nonce} (another process with this key?); sent again under the next`);
        break;
      case "resent":
        log.warn(fields, `chain ${chain}: ${e.call} (nonce ${e.nonce}) was no longer in the node's pool; sent again`);
        break;
      case "failed":
        log.warn(fields, `chain ${chain}: ${e.call} ended without landing (${e.reason}); the next tick decides again from the chain`);
        break;
      case "rpcError":
      case "sendRefused":
      case "replacementRefused":
        log.debug(fields, `chain ${chain}: ${e.call}: a version was refused (${e.reason})`);
        break;
      case "sent":
        log.info(fields, `chain ${chain}: ${e.call} ${e.replaces === undefined ? "sent" : "replaced"} (nonce ${e.nonce}, up to ${gwei(e.maxFeePerGas)} per gas)`);
        break;
      case "mined":
      case "landed":
        log.info(fields, `chain ${chain}: ${e.call} (nonce ${e.nonce}) ${e.kind} in block ${e.blockNumber}`);
        break;
    }
    onEvent(e);
  };
  return {
    maxFeePerGasCap: parseUnits(fees.maxFeePerGasGwei, 9),
    bumpPercent: fees.bumpPercent,
    bumpAfterMs: fees.bumpAfterSeconds * 1000,
    onEvent: report,
  };
}

/** How often a chain that does not answer at start is asked again. */
const START_RETRY_MS = 5_000;

/**
 * Waits until the chain answers: a node started during an RPC outage (a restart by its service manager, say) waits
 * for its endpoint instead of failing, and says so at warn, once a minute, naming the chain and the endpoint.
 */
async function answering(name: string, rpcUrl: string, provider: JsonRpcProvider, log: Logger): Promise<void> {
  let warnedAt = 0;
  for (;;) {
    try {
      // Asked with the provider's primitive request, which does not start the provider: one started before its chain
      // answers retries its network detection every second, printing a line on stdout (this node's JSON-lines log)
      // each time. Once the chain answered here, the provider starts on its first call and detects it at once.
      const [answer] = (await provider._send({ id: 1, jsonrpc: "2.0", method: "eth_blockNumber", params: [] })) as (JsonRpcResult | JsonRpcError)[];
      if (answer === undefined || "error" in answer) throw new Error(`eth_blockNumber: ${answer?.error.message ?? "no answer"}`);
      if (warnedAt !== 0) log.info({ event: "chainAnswers", chain: name }, `chain ${name} answers at ${new URL(rpcUrl).origin}; starting`);
      return;
    } catch (error) {
      if (Date.now() - warnedAt >= 60_000) {
        warnedAt = Date.now();
        const why = (error as Error).message.split("\n")[0];
        log.warn({ event: "chainWaiting", chain: name, error: why }, `chain ${name} does not answer at ${new URL(rpcUrl).origin} (${why}); the node starts once it does`);
      }
      await new Promise((r) => setTimeout(r, START_RETRY_MS));
    }
  }
}
