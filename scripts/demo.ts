/**
 * The main job: a cross-chain swap between two local chains, through the four phases.
 *
 *   npm run demo
 *
 * Starts two JSON-RPC chains (ids 31337 and 31338) on loopback ports, deploys a SecretRegistry and a ChannelHub on
 * each, opens a token channel on S and a native channel on T between Alice and Bob, and runs two SDK clients that
 * talk over HTTP and keep their state in SQLite files. Then: one swap phase by phase, many swaps off chain, the
 * timeout path (Bob goes silent once both locks are co-signed: once her T lock nears expiry Alice reveals on chain,
 * force-closes and batch-settles; Bob comes back and
 * claims with the secret she revealed), and the payouts. Every balance is checked at the end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatEther, JsonRpcProvider, ZeroAddress } from "ethers";
import { network } from "hardhat";

import {
  DeltaTable,
  HttpTransport,
  HubAdapter,
  keySigner,
  Store,
  SwapClient,
  type ChannelParams,
  type ClientEvent,
  type EnforcementStep,
  type Hex,
  rpcProvider,
  type SwapPhase,
} from "../sdk/index.js";
import { TestToken__factory } from "../typechain-types/index.js";
import { accountKey, advanceChain, deployHub, localWallet } from "./lib/local.js";
import { timing, expectedChannel, syncDeposits } from "./lib/swap-setup.js";

const ONE = 10n ** 18n;
const fmt = (v: bigint) => formatEther(v);
const line = (s = "") => console.log(s);
const title = (s: string) => line(`\n=== ${s} ${"=".repeat(Math.max(0, 72 - s.length))}`);

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  line(`  ok  ${what}`);
}

// ---------------------------------------------------------------------------- 1. two chains, two hubs
title("1. Two local chains");
const servers = await Promise.all([
  network.createServer("source", "127.0.0.1", 0),
  network.createServer("target", "127.0.0.1", 0),
]);
const urls = await Promise.all(servers.map(async (s) => {
  const { address, port } = await s.listen();
  return `http://${address}:${port}`;
}));
const [S, T] = urls.map((url) => rpcProvider(url)) as [JsonRpcProvider, JsonRpcProvider];
const chainIdS = (await S.getNetwork()).chainId;
const chainIdT = (await T.getNetwork()).chainId;
line(`  S (source) chain ${chainIdS} at ${urls[0]}`);
line(`  T (target) chain ${chainIdT} at ${urls[1]}`);

const hubS = await deployHub(S);
const hubT = await deployHub(T);
line(`  ChannelHub on S ${hubS}, on T ${hubT}`);

const aliceWalletS = localWallet(1, S);
const bobWalletS = localWallet(2, S);
const aliceWalletT = localWallet(1, T);
const bobWalletT = localWallet(2, T);
const token = await new TestToken__factory(localWallet(0, S)).deploy("Source Token", "SRC");
await (await token.mint(aliceWalletS.address, 1_000n * ONE)).wait();
await (await token.mint(bobWalletS.address, 1_000n * ONE)).wait();
line(`  SRC token on S ${await token.getAddress()}`);

// ---------------------------------------------------------------------------- 2. channels
title("2. Channels: SRC tokens on S, native coin on T");
const adapters = {
  aliceS: await HubAdapter.connect(hubS, aliceWalletS),
  bobS: await HubAdapter.connect(hubS, bobWalletS),
  aliceT: await HubAdapter.connect(hubT, aliceWalletT),
  bobT: await HubAdapter.connect(hubT, bobWalletT),
};
const base = { participants: [aliceWalletS.address, bobWalletS.address], payees: [ZeroAddress, ZeroAddress], challengePeriod: 3600n, nonce: BigInt(Date.now()) } as const;
const sParams: ChannelParams = { ...base, asset: await token.getAddress() };
const tParams: ChannelParams = { ...base, asset: ZeroAddress };
const sId = await adapters.aliceS.open(sParams);
await adapters.aliceS.deposit(sParams, sId, 0, 100n * ONE);
await adapters.bobS.deposit(sParams, sId, 1, 10n * ONE);
const tId = await adapters.bobT.open(tParams);
await adapters.aliceT.deposit(tParams, tId, 0, 1n * ONE);
await adapters.bobT.deposit(tParams, tId, 1, 20n * ONE);
line(`  S channel ${sId.slice(0, 18)}…  deposits: Alice 100 SRC, Bob 10 SRC`);
line(`  T channel ${tId.slice(0, 18)}…  deposits: Alice 1 ETH,   Bob 20 ETH`);

// ---------------------------------------------------------------------------- 3. two clients over HTTP
const dir = mkdtempSync(join(tmpdir(), "channel-demo-"));
const deltas = () => new DeltaTable(new Map([[chainIdS, timing(chainIdS)], [chainIdT, timing(chainIdT)]]));
const quiet = new Set(["alice", "bob"]);
const lastChainLine = new Map<string, string>();
/** Swaps each client has reported done (a client reports a phase once it is on disk and its messages are sent). */
const reportedDone = new Set<string>();
function printer(who: string) {
  return (e: ClientEvent) => {
    if (e.type === "phase" && e.phase.kind === "done") reportedDone.add(`${who} ${e.swapId}`);
    if (quiet.has(who)) return;
    if (e.type === "phase") line(`  ${who.padEnd(5)} ${e.role.padEnd(9)} -> ${describePhase(e.phase)}`);
    if (e.type === "chain") {
      const text = `  ${who.padEnd(5)} on chain ${e.channelId === sId ? "S" : "T"}: ${describeStep(e.step)}`;
      if (lastChainLine.get(who + e.channelId) !== text) line(text);
      lastChainLine.set(who + e.channelId, text);
    }
    if (e.type === "closed") line(`  ${who.padEnd(5)} closed channel ${e.channelId === sId ? "S" : "T"} ${e.cooperative ? "cooperatively" : "by settlement on chain"}`);
  };
}
function describePhase(p: SwapPhase): string {
  switch (p.kind) {
    case "proposed": return "proposed the terms (phase 1: negotiation)";
    case "agreed": return "terms signed by both; hash-locked transfers being co-signed on S and T";
    case "locked": return "both locks co-signed (phase 2: execution)";
    case "revealed": return "secret revealed; resolved states being co-signed on both channels";
    case "cancelling": return "timed out before the secret reached it: asks to undo the swap off chain";
    case "settlingOnChain": return `going on chain for ${p.channels.map((c) => (c === sId ? "S" : "T")).join(" and ")}: ${p.reason} (phase 3: batch settlement)`;
    case "done": return p.outcome === "swapped" ? "done: swapped, both transfers confirmed in co-signed states" : `done: ${p.outcome}${p.outcome === "settledOnChain" ? " (phase 4: asset settlement)" : ""}`;
  }
}
function describeStep(s: EnforcementStep): string {
  switch (s.kind) {
    case "forceClosed": return `${s.revealed.length > 0 ? `registered the secret of ${s.revealed.map((h) => `${h.slice(0, 10)}…`).join(", ")}, then ` : ""}force-closed with state ${s.seq}`;
    case "challenged": return `challenged stale state ${s.stale} with ${s.seq}`;
    case "revealed": return `registered the secret${s.hashlocks.length === 1 ? "" : "s"} of ${s.hashlocks.map((h) => `${h.slice(0, 10)}…`).join(", ")}`;
    case "settled": return `settled state ${s.seq} with all its locks (payouts sent)`;
    case "waiting": return `waiting until ${s.until} (${s.why})`;
    case "closed": return "closed";
  }
}

const aliceHttp = await HttpTransport.start();
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const bobHttp = await HttpTransport.start();
aliceHttp.connect(bobHttp.url);
bobHttp.connect(aliceHttp.url);
const options = { deltas: deltas(), minTargetWindow: 600n, onChainMargin: 300n, resendIntervalMs: 300, confirmationTimeoutMs: 1_500 };
const alice = new SwapClient({ ...options, signer: keySigner(accountKey(1)), store: new Store(join(dir, "alice.sqlite")), transport: aliceHttp, chains: [adapters.aliceS, adapters.aliceT], onEvent: printer("alice") });
/** Bob's event sink, swapped in the timeout section to take him off the network at a chosen phase. */
const bobEvents: { on: (e: ClientEvent) => void } = { on: printer("bob") };
const bob = new SwapClient({ ...options, signer: keySigner(accountKey(2)), store: new Store(join(dir, "bob.sqlite")), transport: bobHttp, chains: [adapters.bobS, adapters.bobT], onEvent: (e) => bobEvents.on(e) });
for (const c of [alice, bob]) {
  await c.addChannel(chainIdS, sParams, expectedChannel(sParams, c.address));
  await c.addChannel(chainIdT, tParams, expectedChannel(tParams, c.address));
}
// Each channel's ledger starts from no deposits: Alice (participant 0) proposes the deposits final on chain, Bob
// checks them at the same block, and both sign; nothing touches a chain.
await syncDeposits([alice, bob], [sId, tId]);
line(`  Alice's client at ${aliceHttp.url}, Bob's at ${bobHttp.url} (stores in ${dir})`);

async function until(done: () => boolean | Promise<boolean>, what: string, step?: () => Promise<void>) {
  for (let i = 0; i < 20_000; i++) {
    if (await done()) return;
    if (step) await step();
    await new Promise((r) => setTimeout(r, step ? 20 : 1));
  }
  throw new Error(`timed out waiting for ${what}`);
}
const bothDone = (id: Hex) => reportedDone.has(`alice ${id}`) && reportedDone.has(`bob ${id}`);
function ledger(c: SwapClient) {
  const s = c.book.head(sId).balances;
  const t = c.book.head(tId).balances;
  return `S: Alice ${fmt(s[0])} SRC, Bob ${fmt(s[1])} SRC | T: Alice ${fmt(t[0])} ETH, Bob ${fmt(t[1])} ETH`;
}

// ---------------------------------------------------------------------------- 4. one swap, phase by phase
title("3. One swap: Alice gives 10 SRC on S for 0.5 ETH on T");
quiet.clear();
const blocksBefore = [await S.getBlockNumber(), await T.getBlockNumber()];
const first = await alice.propose({ source: sId, target: tId, give: 10n * ONE, take: ONE / 2n });
await until(() => bothDone(first), "the first swap");
line(`  ledger: ${ledger(alice)}`);
check(ledger(alice) === ledger(bob), "Alice and Bob hold the same co-signed states");
check(alice.transfers(first).every((t) => t.confirmed), "both transfers confirmed");

// ---------------------------------------------------------------------------- 5. many swaps
title("4. Many more swaps, off chain");
quiet.add("alice").add("bob");
const n = 50;
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  const id = await alice.propose({ source: sId, target: tId, give: ONE, take: ONE / 100n });
  await until(() => bothDone(id), `swap ${i}`);
}
const seconds = (performance.now() - t0) / 1000;
line(`  ${n} swaps in ${seconds.toFixed(2)} s (${(n / seconds).toFixed(1)} swaps/s, persisted, over HTTP)`);
line(`  ledger: ${ledger(alice)}`);
check((await S.getBlockNumber()) === blocksBefore[0] && (await T.getBlockNumber()) === blocksBefore[1], "no transaction on either chain since the channels were funded");

// ---------------------------------------------------------------------------- 6. the timeout path
title("5. Timeout path: Bob goes silent after locking");
quiet.clear();
const bobOffline = { on: false, swap: "" };
const silent = await (async () => {
  // Bob drops off the network as soon as he holds both locks co-signed: Alice's reveal never reaches him, and
  // nothing he signs after that reaches her.
  const original = bobHttp.sendMany.bind(bobHttp);
  bobHttp.sendMany = async (envelopes) => {
    if (!bobOffline.on) await original(envelopes);
  };
  const printBob = printer("bob");
  bobEvents.on = (e) => {
    printBob(e);
    if (e.type === "phase" && e.swapId === bobOffline.swap && e.phase.kind === "locked") bobOffline.on = true;
  };
  bobHttp.listen(async (envelope) => {
    if (!bobOffline.on) await bob.handle(envelope);
  });
  const id = await alice.propose({ source: sId, target: tId, give: 5n * ONE, take: ONE / 4n });
  bobOffline.swap = id;
  return id;
})();
await until(() => bobOffline.on && alice.swap(silent).progress.phase.kind === "revealed", "Alice's reveal");
line("  Bob stops answering. Alice resends; her reveal cannot be undone, so once her T lock nears its expiry");
line("  (within onChainMargin) she enforces on chain:");
const advanceBoth = async (s: number) => {
  await advanceChain(S, s);
  await advanceChain(T, s);
};
await until(() => alice.swap(silent).progress.phase.kind !== "revealed", "Alice's timeout", async () => {
  await alice.tick();
  await advanceBoth(60);
});
check(alice.swap(silent).progress.phase.kind === "settlingOnChain", "Alice went on chain for the swap Bob left hanging");
const { terms } = alice.swap(silent);
await until(async () => (await adapters.aliceT.revealedAt(terms.hashlock)) !== 0n, "Alice's reveal on T", () => alice.tick());
line("  Bob comes back online before the S lock expires (tS), finds the secret Alice registered on T, and claims on S:");
await until(() => bothDone(silent), "both settlements", async () => {
  await bob.tick();
  await alice.tick();
  await advanceBoth(300);
});

// ---------------------------------------------------------------------------- 7. payouts and checks
title("6. Asset settlement: every payout checked");
async function payouts(adapter: HubAdapter, id: Hex) {
  const settled = await adapter.hub.queryFilter(adapter.hub.filters.ChannelSettled(id));
  const e = settled[0];
  if (e === undefined) throw new Error("not settled");
  return [e.args.payouts[0], e.args.payouts[1]] as const;
}
const [ps, pt] = [await payouts(adapters.aliceS, sId), await payouts(adapters.aliceT, tId)];
// Expected: 51 swaps of (10 + 50 * 1) SRC and (0.5 + 50 * 0.01) ETH, plus the 5 SRC / 0.25 ETH swap on chain.
const expS = [100n * ONE - 60n * ONE - 5n * ONE, 10n * ONE + 60n * ONE + 5n * ONE];
const expT = [ONE + ONE + ONE / 4n, 20n * ONE - ONE - ONE / 4n];
// (ledger after the off-chain swaps: S 40/70, T 2.0/19.0; then 5 SRC to Bob and 0.25 ETH to Alice on chain)
line(`  S paid: Alice ${fmt(ps[0])} SRC, Bob ${fmt(ps[1])} SRC`);
line(`  T paid: Alice ${fmt(pt[0])} ETH, Bob ${fmt(pt[1])} ETH`);
check(ps[0] === expS[0] && ps[1] === expS[1], "S payouts match the last co-signed state plus the claimed lock");
check(pt[0] === expT[0] && pt[1] === expT[1], "T payouts match the last co-signed state plus the claimed lock");
check(ps[0] + ps[1] === 110n * ONE && pt[0] + pt[1] === 21n * ONE, "payouts add up to the deposits on both chains");
check((await token.balanceOf(hubS)) === 0n && (await T.getBalance(hubT)) === 0n, "both hubs are empty");
check((await token.balanceOf(aliceWalletS.address)) === 900n * ONE + ps[0], "Alice received her SRC payout");
check((await adapters.aliceS.transferOutcome(sId, 0)) === "paid" && (await adapters.aliceT.transferOutcome(tId, 0)) === "paid", "both locks of the on-chain swap were paid (atomicity)");

await Promise.all([aliceHttp.close(), bobHttp.close()]);
S.destroy();
T.destroy();
await Promise.all(servers.map((s) => s.close()));
line("\nDone.");
