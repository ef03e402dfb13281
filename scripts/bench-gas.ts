/**
 * Gas of every on-chain step of a channel's life, measured from transaction receipts on a simulated chain.
 *
 *   npm run bench:gas        # prints a table, rewrites the gas section of docs/BENCHMARKS.md, docs/bench-gas.json
 */
import { writeFileSync } from "node:fs";
import { hexlify, randomBytes, sha256, ZeroAddress, type ContractTransactionResponse } from "ethers";
import { network } from "hardhat";

import {
  addLock,
  hubDomain,
  lockArg,
  openingState,
  paramsArg,
  signedArg,
  stateArg,
  STATE_TYPES,
  transfer,
  type ChannelParams,
  type ChannelState,
  type Hex,
  type Lock,
} from "../sdk/index.js";
import { ChannelHub__factory, SecretRegistry__factory, TestToken__factory } from "../typechain-types/index.js";
import { replaceSection } from "./lib/bench-doc.js";

const chain = await network.create("source");
const { ethers, networkHelpers } = chain;
const signers = await ethers.getSigners();
const [deployer, alice, bob, other] = [0, 1, 2, 3].map((i) => {
  const s = signers[i];
  if (s === undefined) throw new Error("not enough accounts");
  return s;
}) as [(typeof signers)[0], (typeof signers)[0], (typeof signers)[0], (typeof signers)[0]];
const registry = await new SecretRegistry__factory(deployer).deploy();
const hub = await new ChannelHub__factory(deployer).deploy(await registry.getAddress());
const token = await new TestToken__factory(deployer).deploy("Bench", "BCH");
const domain = hubDomain((await ethers.provider.getNetwork()).chainId, await hub.getAddress());
const ONE = 10n ** 18n;
let nonce = 0n;

const results: { step: string; gas: bigint; note?: string }[] = [];
async function gasOf(tx: Promise<ContractTransactionResponse>): Promise<bigint> {
  const receipt = await (await tx).wait();
  if (receipt === null) throw new Error("no receipt");
  return receipt.gasUsed;
}
async function record(step: string, tx: Promise<ContractTransactionResponse>, note?: string) {
  const gas = await gasOf(tx);
  results.push({ step, gas, ...(note === undefined ? {} : { note }) });
  return gas;
}
async function coSign(state: ChannelState) {
  const sigs = await Promise.all([alice, bob].map((s) => s.signTypedData(domain, STATE_TYPES, state)));
  return signedArg({ state, signatures: [sigs[0] as Hex, sigs[1] as Hex] });
}
function params(asset = ZeroAddress): ChannelParams {
  return { participants: [alice.address, bob.address], payees: [ZeroAddress, ZeroAddress], asset, challengePeriod: 3600n, nonce: ++nonce };
}
async function openNative(a0: bigint, a1: bigint, label = false) {
  const p = params();
  const tx = hub.open(paramsArg(p));
  if (label) await record("open (native channel)", tx);
  else await tx;
  const id = (await hub.channelId(paramsArg(p))) as Hex;
  if (label) {
    await record("deposit native, first (participant 0)", hub.connect(alice).deposit(id, 0, a0, { value: a0 }));
    await record("deposit native, second (participant 1)", hub.connect(bob).deposit(id, 1, a1, { value: a1 }));
  } else {
    await hub.connect(alice).deposit(id, 0, a0, { value: a0 });
    await hub.connect(bob).deposit(id, 1, a1, { value: a1 });
  }
  return { p, id };
}

// ---------------------------------------------------------------- funding
const { p: p1, id: id1 } = await openNative(ONE, ONE, true);
const tp = params(await token.getAddress());
await record("open (token channel)", hub.open(paramsArg(tp)));
const tid = (await hub.channelId(paramsArg(tp))) as Hex;
await token.mint(alice.address, 10n * ONE);
await record("token approve", token.connect(alice).approve(await hub.getAddress(), ONE));
await record("deposit token (first)", hub.connect(alice).deposit(tid, 0, ONE));
await record("open and deposit native in one call", hub.connect(alice).openAndDeposit(paramsArg(params()), 0, ONE, { value: ONE }));
await token.connect(alice).approve(await hub.getAddress(), ONE);
await record("open and deposit token in one call", hub.connect(alice).openAndDeposit(paramsArg(params(await token.getAddress())), 0, ONE));

// ---------------------------------------------------------------- cooperative close
{
  const s = { ...transfer(openingState(id1, [ONE, ONE]), 0, ONE / 3n), isFinal: true };
  await record("cooperative close, native, both paid", hub.connect(other).closeCooperatively(paramsArg(p1), await coSign(s)));
}
{
  await token.mint(bob.address, ONE);
  await token.connect(bob).approve(await hub.getAddress(), ONE);
  await hub.connect(bob).deposit(tid, 1, ONE);
  const s = { ...transfer(openingState(tid, [ONE, ONE]), 0, ONE / 3n), isFinal: true };
  await record("cooperative close, token, both paid", hub.connect(other).closeCooperatively(paramsArg(tp), await coSign(s)));
}

// ---------------------------------------------------------------- unilateral path
{
  const { p, id } = await openNative(ONE, ONE);
  const older = transfer(openingState(id, [ONE, ONE]), 0, ONE / 4n);
  const newer = transfer(older, 0, ONE / 4n);
  const a = await record("force close (older state)", hub.connect(alice).forceClose(paramsArg(p), await coSign(older)));
  const b = await record("challenge (newer state)", hub.connect(bob).challenge(paramsArg(p), await coSign(newer)));
  await networkHelpers.time.increase(3600);
  const c = await record("settle, no locks, both paid", hub.connect(other).settle(paramsArg(p), stateArg(newer), [], 0n));
  results.push({ step: "unilateral close total (force close + challenge + settle with both payouts)", gas: a + b + c });
}
{
  const { p } = await openNative(ONE, ONE);
  await record("force close with opening deposits", hub.connect(alice).forceCloseWithDeposits(paramsArg(p)));
}

// ---------------------------------------------------------------- settle with many locks
// Each state has n locks, alternately from participant 0 and 1. "revealed" picks the locks whose secrets are revealed
// before their expiry (paid); the others expire unrevealed (refunded). The paid ones' secrets are revealed in one
// revealMany call in lock order, as a settler does before settling, and named to `settle` as revealed together
// unless `named` is false (then each lock's reveal time is read on its own, as for secrets revealed one by one).
// `frontRun`: someone reveals the first of those secrets alone just before the revealMany, so no batch is recorded,
// and settle still names the locks (the hub then reads each on its own).
async function settleWithLocks(n: number, revealed: (i: number) => boolean, named: boolean, frontRun = false): Promise<bigint> {
  const { p, id } = await openNative(ONE, ONE);
  const now = BigInt(await networkHelpers.time.latest());
  let s = openingState(id, [ONE, ONE]);
  const secrets: Hex[] = [];
  let mask = 0n;
  for (let i = 0; i < n; i++) {
    const secret = hexlify(randomBytes(32)) as Hex;
    const lock: Lock = { sender: (i % 2) as 0 | 1, amount: 1000n, hashlock: sha256(secret) as Hex, expiry: now + 7200n };
    s = addLock(s, lock);
    if (revealed(i)) {
      secrets.push(secret);
      mask |= 1n << BigInt(i);
    }
  }
  if (frontRun && secrets[0] !== undefined) await registry.connect(other).reveal(secrets[0]);
  if (secrets.length > 0) await registry.revealMany(secrets);
  await hub.connect(alice).forceClose(paramsArg(p), await coSign(s));
  await networkHelpers.time.increase(7201);
  return gasOf(hub.connect(other).settle(paramsArg(p), stateArg(s), s.locks.map(lockArg), named ? mask : 0n));
}
const lockCounts = [1, 10, 100, 256];
const settleGas = new Map<number, bigint>();
const half = (i: number) => i % 2 === 0;
for (const n of [0, ...lockCounts]) {
  // Half of the locks revealed in time (paid, named as revealed together), the rest refunded.
  const gas = await settleWithLocks(n, half, true);
  settleGas.set(n, gas);
  if (n > 0) results.push({ step: `settle with ${n} lock${n === 1 ? "" : "s"}`, gas, note: `${(gas - settleGas.get(0)!) / BigInt(n)} per lock` });
}
// The same 256 locks settled other ways, to show what a lock costs by how it is decided.
const perExtra = (gas: bigint) => (gas - settleGas.get(1)!) / 255n;
const settleVariants = [
  { step: "settle with 256 locks, half paid, each read on its own", gas: await settleWithLocks(256, half, false) },
  { step: "settle with 256 locks, half paid, named but a front-run reveal left no batch", gas: await settleWithLocks(256, half, true, true) },
  { step: "settle with 256 locks, all refunded", gas: await settleWithLocks(256, () => false, false) },
  { step: "settle with 256 locks, all paid, revealed together", gas: await settleWithLocks(256, () => true, true) },
];
for (const v of settleVariants) results.push({ ...v, note: `${perExtra(v.gas)} per extra lock` });

// ---------------------------------------------------------------- secrets
await record("reveal one secret", registry.reveal(hexlify(randomBytes(32))));
await record("reveal 10 secrets in one call", registry.revealMany(Array.from({ length: 10 }, () => hexlify(randomBytes(32)))));

// ---------------------------------------------------------------- a cross-chain swap that has to go on chain
{
  // Both legs of one swap, on chain: each channel is force-closed with its lock state, the secret is revealed on
  // each chain, and each channel is settled (the same hub code runs on S and T; measured here on one chain).
  let total = 0n;
  const now = BigInt(await networkHelpers.time.latest());
  const secret = hexlify(randomBytes(32)) as Hex;
  for (const [sender, expiry] of [[0, now + 7200n], [1, now + 5400n]] as const) {
    const { p, id } = await openNative(ONE, ONE);
    const s = addLock(openingState(id, [ONE, ONE]), { sender, amount: ONE / 2n, hashlock: sha256(secret) as Hex, expiry });
    total += await gasOf(hub.connect(alice).forceClose(paramsArg(p), await coSign(s)));
    total += await gasOf(registry.reveal(secret).then((tx) => tx));
    await networkHelpers.time.increase(3600);
    total += await gasOf(hub.connect(other).settle(paramsArg(p), stateArg(s), s.locks.map(lockArg), 0n));
  }
  results.push({ step: "cross-chain swap forced on chain (both legs: force close, reveal, settle)", gas: total });
}

// ---------------------------------------------------------------- amortised cost of N swaps through channels
const HTLC_LEG = 103_000n; // an on-chain HTLC swap leg (lock + claim), per published measurements
const coop = results.find((r) => r.step === "cooperative close, native, both paid")!.gas;
const open = results.find((r) => r.step === "open (native channel)")!.gas;
const dep0 = results.find((r) => r.step === "deposit native, first (participant 0)")!.gas;
const dep1 = results.find((r) => r.step === "deposit native, second (participant 1)")!.gas;
const openAndDeposit = results.find((r) => r.step === "open and deposit native in one call")!.gas;
// Both parties fund each channel: open, two deposits and a cooperative close, on each chain.
const channelLife = 2n * (open + dep0 + dep1 + coop);
// Each side funds only the channel it gives on (Alice on S, Bob on T): open-and-deposit, cooperative close.
const oneFunderLife = 2n * (openAndDeposit + coop);
const amortised = [1, 2, 3, 10, 100, 1000].map((n) => ({
  n,
  perSwap: channelLife / BigInt(n),
  perSwapOneFunder: oneFunderLife / BigInt(n),
  htlc: 2n * HTLC_LEG,
}));

// ---------------------------------------------------------------- report
const gasOfStep = (step: string) => {
  const r = results.find((x) => x.step === step);
  if (r === undefined) throw new Error(`no measurement for ${step}`);
  return r.gas;
};
const perExtraLock = (settleGas.get(256)! - settleGas.get(1)!) / 255n;
const targets: { what: string; gas: bigint; target: bigint; atMost?: boolean }[] = [
  { what: "cooperative close, both paid", gas: gasOfStep("cooperative close, native, both paid"), target: 110_000n },
  { what: "unilateral close to both paid", gas: gasOfStep("unilateral close total (force close + challenge + settle with both payouts)"), target: 230_000n },
  { what: "native deposit, first", gas: gasOfStep("deposit native, first (participant 0)"), target: 45_000n },
  { what: "native deposit, second", gas: gasOfStep("deposit native, second (participant 1)"), target: 30_000n },
  { what: "settle, per extra lock (1 -> 256 locks, half paid and revealed together)", gas: perExtraLock, target: 2_900n },
  // What statechannels Nitro's first deposit costs (no open transaction there), at or below.
  { what: "open and deposit native (a channel's first funding)", gas: gasOfStep("open and deposit native in one call"), target: 48_040n, atMost: true },
  { what: "per swap through channels at N = 3, one funder per channel", gas: amortised.find((a) => a.n === 3)!.perSwapOneFunder, target: HTLC_LEG },
  { what: "per swap through channels at N = 3, both parties fund both", gas: amortised.find((a) => a.n === 3)!.perSwap, target: 2n * HTLC_LEG },
];

const width = Math.max(...results.map((r) => r.step.length));
console.log(`${"step".padEnd(width)}  gas`);
for (const r of results) console.log(`${r.step.padEnd(width)}  ${r.gas.toString().padStart(9)}${r.note ? `  (${r.note})` : ""}`);
console.log("\nTargets:");
const met = (t: (typeof targets)[number]) => (t.atMost === true ? t.gas <= t.target : t.gas < t.target);
const bound = (t: (typeof targets)[number]) => (t.atMost === true ? "<=" : "<");
for (const t of targets) console.log(`  ${met(t) ? "met " : "MISS"} ${t.what}: ${t.gas} (target ${bound(t)} ${t.target})`);
console.log("\nN swaps through two channels (open + 2 deposits + cooperative close, on each chain) vs on-chain HTLC swaps:");
for (const a of amortised) {
  console.log(`  N = ${String(a.n).padStart(4)}: ${a.perSwapOneFunder} (one funder) / ${a.perSwap} (both fund) gas per swap; on-chain HTLC swap ${a.htlc}, one leg ${HTLC_LEG}`);
}

const json = {
  evm: "prague",
  solc: "0.8.37",
  optimizerRuns: 10_000,
  steps: results.map((r) => ({ ...r, gas: Number(r.gas) })),
  settlePerExtraLock: Number(perExtraLock),
  settlePerExtraLockByOutcome: Object.fromEntries(settleVariants.map((v) => [v.step, Number(perExtra(v.gas))])),
  targets: targets.map((t) => ({ what: t.what, gas: Number(t.gas), target: Number(t.target), bound: bound(t), met: met(t) })),
  amortised: amortised.map((a) => ({ n: a.n, perSwapOneFunder: Number(a.perSwapOneFunder), perSwapBothFund: Number(a.perSwap), onChainHtlcSwap: Number(a.htlc) })),
};
writeFileSync(new URL("../docs/bench-gas.json", import.meta.url), JSON.stringify(json, null, 2) + "\n");
const fmt = (g: bigint) => g.toLocaleString("en-US");
const section = [
  "Measured by `npm run bench:gas` from transaction receipts (intrinsic 21,000 and calldata included) on a",
  "simulated `prague` chain, solc 0.8.37, optimizer 10,000 runs. Raw numbers: `docs/bench-gas.json`.",
  "",
  "| step | measured | target |",
  "| --- | ---: | ---: |",
  ...targets.map((t) => `| ${t.what} | ${fmt(t.gas)} | ${bound(t)} ${fmt(t.target)} |`),
  "",
  "| step | gas | note |",
  "| --- | ---: | --- |",
  ...results.map((r) => `| ${r.step} | ${fmt(r.gas)} | ${r.note ?? ""} |`),
  "",
  "N swaps through a channel on each chain, against on-chain HTLC swaps (two legs of about",
  `${fmt(HTLC_LEG)} gas each). One funder: each side funds the channel it gives on (open-and-deposit, cooperative`,
  `close: ${fmt(oneFunderLife)} gas for both chains). Both fund: open, two deposits, cooperative close on each`,
  `chain (${fmt(channelLife)} gas).`,
  "",
  "| swaps N | per swap, one funder | per swap, both fund | on-chain HTLC swap | one HTLC leg |",
  "| ---: | ---: | ---: | ---: | ---: |",
  ...amortised.map((a) => `| ${a.n} | ${fmt(a.perSwapOneFunder)} | ${fmt(a.perSwap)} | ${fmt(a.htlc)} | ${fmt(HTLC_LEG)} |`),
].join("\n");
replaceSection("gas", section);

