/**
 * One cross-chain swap between two local chains, then a cooperative close of both channels, with nothing but the
 * `crosschain-channels` package (and ethers). Start the two chains first, each in its own terminal:
 *
 *   npm run chain:s     # chain 31337 on http://127.0.0.1:8545 ("S", the source)
 *   npm run chain:t     # chain 31338 on http://127.0.0.1:8546 ("T", the target)
 *
 * then `npm run swap`. CHAIN_S_URL and CHAIN_T_URL point it at other nodes (two different chains). It deploys a hub on each chain from the
 * package's bytecode, opens and funds a native-coin channel on each between Alice and Bob, runs both parties' clients
 * in this process (over HTTP on loopback, as two machines would), swaps, closes, and prints one JSON line.
 */
import { formatEther, parseEther, Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";
import {
  DeltaTable,
  DuplicateChainError,
  HttpTransport,
  HubAdapter,
  keySigner,
  rpcProvider,
  Store,
  SwapClient,
  type ChainTiming,
  type ChannelParams,
  type Hex,
} from "crosschain-channels";
import { ChannelHub__factory, SecretRegistry__factory } from "crosschain-channels/typechain-types";

// Accounts 0, 1 and 2 of every `hardhat node` (its well-known test mnemonic: never use these keys for real funds).
const DEPLOYER = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ALICE = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const BOB = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
/** How long each wait below may take before it fails, saying what is missing (rather than hanging). */
const WAIT = { timeoutMs: 30_000 };

const [urlS, urlT] = [process.env.CHAIN_S_URL ?? "http://127.0.0.1:8545", process.env.CHAIN_T_URL ?? "http://127.0.0.1:8546"];
// A chain that is not running is said at once, with what to do (ethers alone would retry, then fail deep inside a call).
for (const [url, name, script] of [[urlS, "CHAIN_S_URL", "chain:s"], [urlT, "CHAIN_T_URL", "chain:t"]]) {
  if (!/^https?:\/\//i.test(url)) {
    console.error(`error: ${name}=${url} needs http:// or https:// (e.g. http://${url})`);
    process.exit(1);
  }
  const ask = { method: "POST", headers: { "content-type": "application/json" }, body: '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' };
  await fetch(url, ask).catch(() => {
    console.error(`error: no chain answers at ${url}: start it first (npm run ${script}, in a terminal of its own)`);
    process.exit(1);
  });
}
// rpcProvider: a JsonRpcProvider without ethers' 250 ms cache, so chain time, nonces and channels are read fresh.
const [S, T] = [rpcProvider(urlS), rpcProvider(urlT)];

/** A SecretRegistry and a ChannelHub bound to it, from the package's bytecode; returns the hub's address. */
async function deployHub(provider: JsonRpcProvider): Promise<string> {
  const deployer = new Wallet(DEPLOYER, provider);
  const registry = await (await new SecretRegistry__factory(deployer).deploy()).waitForDeployment();
  const hub = await (await new ChannelHub__factory(deployer).deploy(await registry.getAddress())).waitForDeployment();
  return hub.getAddress();
}
const [hubS, hubT] = [await deployHub(S), await deployHub(T)];

// One adapter per party and chain: typed hub calls, sent from that party's account. A deposit counts once it is
// `confirmations` blocks deep: by default 0 on the local chains (31337 and 31338, which mine a block only when a
// transaction arrives), DEFAULT_CONFIRMATIONS (64) elsewhere: set your chain's.
const alice = { S: await HubAdapter.connect(hubS, new Wallet(ALICE, S)), T: await HubAdapter.connect(hubT, new Wallet(ALICE, T)) };
const bob = { S: await HubAdapter.connect(hubS, new Wallet(BOB, S)), T: await HubAdapter.connect(hubT, new Wallet(BOB, T)) };
const [aliceAddress, bobAddress] = [new Wallet(ALICE).address, new Wallet(BOB).address];

// What each chain promises, in seconds (docs/TIMING.md): the swap's lock expiries keep a safe distance from them.
const timing = (chainId: bigint): ChainTiming => ({ chainId, finalitySeconds: 60n, inclusionSeconds: 300n, clockSkewSeconds: 60n });
const deltas = () => new DeltaTable(new Map([[alice.S.chainId, timing(alice.S.chainId)], [alice.T.chainId, timing(alice.T.chainId)]]));

/** One party's client: its key, a store, an HTTP transport, its adapters on both chains. */
async function party(name: string, key: string, chains: HubAdapter[]) {
  const transport = await HttpTransport.start(); // serves POST / on 127.0.0.1, on a free port
  const store = new Store(":memory:"); // a file path in an application: what it signed must survive a crash
  const client = new SwapClient({
    signer: keySigner(key),
    store,
    transport,
    chains,
    deltas: deltas(),
    minTargetWindow: 600n, // least time left on the target lock when the swap is agreed and when the secret goes out
    onChainMargin: 300n, // a lock's receiver goes on chain this close to its expiry
    resendIntervalMs: 1_000,
    confirmationTimeoutMs: 30_000,
    // As responder: every proposal passes here first (a reason refuses it, and the swap ends "aborted" with it).
    policy: (terms) => (terms.take > parseEther("0.5") ? "more than 0.5 in one swap" : undefined),
    // A message that cannot leave is resent by the next tick, and reported here.
    onEvent: (e) => (e.type === "sendFailed" ? console.error(`${name}: ${e.error}`) : undefined),
  });
  return { client, transport, store };
}
/** CHAIN_S_URL and CHAIN_T_URL at one chain: the client refuses two adapters for one chain id (DuplicateChainError). */
function sameChain(error: unknown): never {
  if (!(error instanceof DuplicateChainError)) throw error;
  console.error(`error: CHAIN_S_URL (${urlS}) and CHAIN_T_URL (${urlT}) are both chain ${error.chainId}: the swap needs two different chains`);
  process.exit(1);
}
const a = await party("alice", ALICE, [alice.S, alice.T]).catch(sameChain);
const b = await party("bob", BOB, [bob.S, bob.T]).catch(sameChain);
a.transport.connect(b.transport.url); // without it nothing reaches Bob: sendFailed events, and the waits below fail
b.transport.connect(a.transport.url);

// A native-coin channel on each chain, Alice participant 0 and Bob 1. Whoever opens it funds a side in the same
// transaction: Alice hers on S, Bob his on T.
const params: ChannelParams = {
  participants: [aliceAddress, bobAddress],
  payees: [ZeroAddress, ZeroAddress], // payouts to the participants themselves
  asset: ZeroAddress, // the native coin (or an ERC-20 token's address)
  challengePeriod: 3600n,
  nonce: BigInt(Date.now()), // any number that makes the channel id new
};
const channelS = await alice.S.openAndDeposit(params, 0, parseEther("1"));
const channelT = await bob.T.openAndDeposit(params, 1, parseEther("1"));

// Ticks resend, count deposits, time out, and go on chain when a counterparty stops answering.
const ticks = setInterval(() => {
  for (const p of [a, b]) p.client.tick().catch(() => undefined); // a failed tick is a tickError event; the next one retries
}, 500);

// Both join both channels, each checking the terms: it is a participant, the other is who it expects, the asset.
for (const [p, counterparty] of [[a, bobAddress], [b, aliceAddress]] as const) {
  await p.client.addChannel(alice.S.chainId, params, { counterparty, asset: ZeroAddress });
  await p.client.addChannel(alice.T.chainId, params, { counterparty, asset: ZeroAddress });
}
// A deposit enters the ledger through a state both sign: participant 0 proposes the count, participant 1 checks it.
for (const id of [channelS, channelT]) await Promise.all([a.client.syncDeposits(id, WAIT), b.client.syncDeposits(id, WAIT)]);

// The swap: Alice gives 0.3 on S for 0.2 of Bob's on T, both locks under one hashlock: both happen or neither.
const swapId = await a.client.propose({ source: channelS, target: channelT, give: parseEther("0.3"), take: parseEther("0.2") });
// Done: "swapped", "aborted" (with the reason: Bob's policy above refuses more than 0.5) or "settledOnChain".
const { outcome, reason } = await a.client.whenDone(swapId, WAIT);

// Close both channels cooperatively: the final states are co-signed, then Alice lands them on chain.
await a.client.requestClose(channelS);
await a.client.requestClose(channelT);
await Promise.all([a.client.whenClosed(channelS, WAIT), a.client.whenClosed(channelT, WAIT)]);

/**
 * What a closed channel paid each participant, from its ChannelClosed event. A cooperative close records no lock
 * outcomes (only `settle`, after a dispute, does): the hub's `transferOutcome(channelId, i)` is
 * `TransferOutcome.Unresolved` for every lock index of these channels, and the contract's `lockPaid` false.
 */
async function payouts(adapter: HubAdapter, channelId: Hex): Promise<string[]> {
  const [closed] = await adapter.hub.queryFilter(adapter.hub.filters.ChannelClosed(channelId));
  return (closed?.args.payouts ?? []).map((p) => formatEther(p));
}
console.log(JSON.stringify({ swapId, outcome, reason, paidOnS: await payouts(alice.S, channelS), paidOnT: await payouts(alice.T, channelT) }));

clearInterval(ticks);
for (const p of [a, b]) {
  await p.client.idle(); // every step on disk and its messages sent
  await p.transport.close();
  p.store.close();
}
S.destroy();
T.destroy();
