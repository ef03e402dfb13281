/**
 * Faults with real OS processes: two `hardhat node` chains (S and T), Alice and Bob each a SwapClient in a process of
 * its own (test/helpers/fault-party.ts) with a store file, talking HTTP through a lossy relay in this process that
 * drops, duplicates, delays and reorders envelopes at random. Either party is killed with SIGKILL at random moments
 * and restarted from its store file. At the end a cooperative close whose closeRequest is lost is followed by a
 * swap proposed on that channel, then every channel is closed cooperatively under the lossy link, and whatever went
 * on chain is settled.
 *
 * Checked from both stores (read after the processes exited) and from both chains:
 *   (1) atomicity: every swap's two transfers end the same way for both parties (paid/paid or refunded/refunded);
 *   (2) conservation: per channel, payouts add up to deposits and match the swaps' outcomes; the hubs keep nothing
 *       of closed channels; the participants' accounts moved by payouts minus their fees;
 *   (3) healthy pairs are never closed on chain for no reason: no channel force-closed and no swap that one party
 *       finished off chain while the other took it on chain.
 *
 * A party is kept down longer than the confirmation timeout only while the other one has no reason to give up on
 * it: as soon as the live party waits for an answer it could time out on (initiator: sourceLockSent, revealed;
 * responder: accepted, resolveSent), the dead one is restarted. So a correct client never has to go on chain here,
 * and (3) counts needless closes only.
 *
 * Run: `npx hardhat test mocha test/integration/faults.processes.test.ts` (about a minute; Node 22). Each party is
 * `node --import tsx test/helpers/fault-party.ts` (tsx as Hardhat itself depends on it), with a warm stand-by so a
 * restart takes the store and chain set-up only. Chain time is moved on only at the end, to settle what went on chain.
 *
 * FAULTS_SEED=<uint32> replays the relay's and the killer's random choices (printed at the start): the same kill
 * schedule (victims, pauses, planned downtimes) and the same sequence of per-envelope fates, though which envelope
 * meets which fate still depends on message timing. FAULTS_SWAPS (default 60) and FAULTS_PAIRS (default 3) size the
 * run; FAULTS_KEEP=1 keeps the temporary folder with the stores and each party's stderr. Control runs:
 * FAULTS_LONG_KILLS=0 (no kill longer than the confirmation timeout) and FAULTS_CLOSE_SCENARIO=0.
 */
import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { ZeroAddress, type JsonRpcProvider } from "ethers";

import { deployHub, localWallet } from "../../scripts/lib/local.js";
import { readLines } from "../../sdk/coordinator/transport.js";
import {
  channelOpenings,
  encode,
  HubAdapter,
  rpcProvider,
  Store,
  type ChannelParams,
  type ChannelState,
  type Hex,
  type SwapProgress,
  type SwapTerms,
  type TransferRecord,
} from "../../sdk/index.js";
import { ChannelHub__factory, SecretRegistry__factory, type ChannelHub } from "../../typechain-types/index.js";
import type { PairConfig, PartyConfig } from "../helpers/fault-party.js";
import { startAnvil, type Anvil } from "../helpers/anvil.js";
import { ChainFaults, RpcProxy, type ChainFaultStats } from "../helpers/chain-faults.js";
import { PROJECT_ROOT, startHardhatNode, type LocalNode } from "../helpers/nodes.js";
import { spawnChild } from "../helpers/processes.js";
import { prng } from "../helpers/prng.js";

const ONE = 10n ** 18n;
const DEPOSIT = 2n * ONE;
const SEED = process.env.FAULTS_SEED !== undefined ? Number(process.env.FAULTS_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
/** FAULTS_CHAIN=anvil (below) sizes the run by its minutes: about 50 swaps a minute keep the soak busy to its end. */
const SWAPS = Number(process.env.FAULTS_SWAPS ?? (process.env.FAULTS_CHAIN === "anvil" ? Math.round(50 * Number(process.env.FAULTS_SOAK_MINUTES ?? 3)) : 60));
const PAIRS = Number(process.env.FAULTS_PAIRS ?? 3);
const KEEP = process.env.FAULTS_KEEP === "1";
/** Share of kills that keep a party down longer than the confirmation timeout (0 for a control run). */
const LONG_KILLS = Number(process.env.FAULTS_LONG_KILLS ?? 0.5);
/** FAULTS_CLOSE_SCENARIO=0 skips the lost-closeRequest scenario (a control run). */
const CLOSE_SCENARIO = process.env.FAULTS_CLOSE_SCENARIO !== "0";
/**
 * FAULTS_CHAIN=anvil (`npm run soak`): the chains are anvil processes mining a block a second, the parties read at a
 * finality of 2 blocks with fee escalation, and chain faults run beside the others (chain-faults.ts): reorganisations
 * of the newest block, pending transactions dropped, base fee spikes and RPC outages.
 */
const ON_ANVIL = process.env.FAULTS_CHAIN === "anvil";
/** FAULTS_SOAK_MINUTES: the faulty phase's length on anvil (default 3 minutes). */
const SOAK_MS = Number(process.env.FAULTS_SOAK_MINUTES ?? 3) * 60_000;

/** Client timers: short, so faults show within seconds. */
const RESEND_MS = 300;
const CONFIRM_MS = 2_500;
const TICK_MS = 150;
/** The relay: chance per envelope of being dropped, duplicated, delayed (by 20-420 ms, so later ones overtake it). */
const RATES = { drop: 0.08, duplicate: 0.05, delay: 0.1 };
/** Wall-clock bound of the faulty phase; the run goes on to the closes after it whatever was done. */
const FAULT_PHASE_MS = ON_ANVIL ? SOAK_MS : 75_000;

const require = createRequire(import.meta.url);
/** tsx, as Hardhat itself depends on it: runs the party script (TypeScript importing `.js` paths) in plain Node. */
const TSX_LOADER = pathToFileURL(createRequire(require.resolve("hardhat/package.json")).resolve("tsx/esm")).href;
const PARTY_SCRIPT = resolve(PROJECT_ROOT, "test/helpers/fault-party.ts");

type PartyName = "alice" | "bob";
const other = (p: PartyName): PartyName => (p === "alice" ? "bob" : "alice");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


/** Polls `done` every 20 ms until it holds or `ms` passed; returns whether it held. */
async function until(done: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= end) return false;
    await sleep(20);
  }
}

// ------------------------------------------------------------------ the lossy relay

/** One request kept open to a party's transport; lines written while the party is down are lost. */
class Forwarder {
  private url: string | undefined;
  private req: ClientRequest | undefined;

  setTarget(url: string | undefined): void {
    this.url = url;
    this.req?.destroy();
    this.req = undefined;
  }

  /** Writes one line; false when the party is down (no address). */
  write(line: string): boolean {
    if (this.url === undefined) return false;
    if (this.req === undefined) {
      const req = request(this.url, { method: "POST", headers: { "content-type": "application/x-ndjson" } });
      const forget = () => {
        if (this.req === req) this.req = undefined;
      };
      req.on("error", forget);
      req.on("close", forget);
      req.on("response", (res) => {
        res.on("error", forget);
        res.resume();
        if (res.statusCode !== 200) req.destroy();
      });
      req.flushHeaders();
      this.req = req;
    }
    this.req.write(line + "\n");
    return true;
  }

  close(): void {
    this.setTarget(undefined);
  }
}

type RelayStats = {
  lines: number;
  forwarded: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  reordered: number;
  lostPartyDown: number;
  droppedByRule: number;
};

/**
 * Sits between the parties: each party's transport sends to its own port here, and every envelope line is passed on
 * to the other party, or dropped, duplicated, delayed (and so reordered) as a seeded PRNG decides, in arrival order.
 */
class LossyRelay {
  readonly stats: RelayStats = { lines: 0, forwarded: 0, dropped: 0, duplicated: 0, delayed: 0, reordered: 0, lostPartyDown: 0, droppedByRule: 0 };
  /** Steps seen per direction, for the report. */
  readonly steps = new Map<string, number>();
  /** A targeted fault on top of the random ones (the close scenario). */
  rule: ((step: string, sessionId: string, from: PartyName) => boolean) | undefined;
  readonly urls = {} as Record<PartyName, string>;
  private readonly servers: Server[] = [];
  private readonly out: Record<PartyName, Forwarder> = { alice: new Forwarder(), bob: new Forwarder() };
  private readonly arrival: Record<PartyName, number> = { alice: 0, bob: 0 };
  private readonly newestForwarded: Record<PartyName, number> = { alice: -1, bob: -1 };
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly random: () => number) {}

  async start(): Promise<void> {
    for (const from of ["alice", "bob"] as const) {
      const server = createServer((req, res) => this.receive(from, req, res));
      server.requestTimeout = 0;
      await new Promise<void>((ok, fail) => {
        server.once("error", fail);
        server.listen(0, "127.0.0.1", () => ok());
      });
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("relay has no port");
      this.urls[from] = `http://127.0.0.1:${address.port}`;
      this.servers.push(server);
    }
  }

  /** Where lines for `party` go now; undefined while it is down. */
  setPeer(party: PartyName, url: string | undefined): void {
    this.out[party].setTarget(url);
  }

  private receive(from: PartyName, req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.flushHeaders();
    readLines(req, { line: (line) => this.pass(from, line), end: () => res.end() });
    req.on("error", () => undefined); // the sender was killed: what it had not sent is lost
    res.on("error", () => undefined);
  }

  private pass(from: PartyName, line: string): void {
    if (this.closed) return;
    const to = other(from);
    this.stats.lines++;
    let step = "?";
    let sessionId = "?";
    try {
      const parsed = JSON.parse(line) as { swapId?: string; body?: { step?: string } };
      step = parsed.body?.step ?? "?";
      sessionId = parsed.swapId ?? "?";
    } catch {
      // passed on as it is: the receiver refuses it
    }
    this.steps.set(`${from}:${step}`, (this.steps.get(`${from}:${step}`) ?? 0) + 1);
    if (this.rule?.(step, sessionId, from)) {
      this.stats.droppedByRule++;
      return;
    }
    const r = this.random();
    if (r < RATES.drop) {
      this.stats.dropped++;
      return;
    }
    const copies = r < RATES.drop + RATES.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const seq = this.arrival[to]++;
      const delayed = this.random() < RATES.delay;
      if (!delayed) {
        this.forward(to, line, seq);
        continue;
      }
      this.stats.delayed++;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.forward(to, line, seq);
      }, 20 + Math.floor(this.random() * 400));
      this.timers.add(timer);
    }
  }

  private forward(to: PartyName, line: string, seq: number): void {
    if (this.closed) return;
    if (seq < this.newestForwarded[to]) this.stats.reordered++;
    else this.newestForwarded[to] = seq;
    if (this.out[to].write(line)) this.stats.forwarded++;
    else this.stats.lostPartyDown++;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.out.alice.close();
    this.out.bob.close();
    for (const s of this.servers) {
      s.closeAllConnections();
      await new Promise<void>((ok) => s.close(() => ok()));
    }
  }
}

// ------------------------------------------------------------------ party processes

type PartyEvent = Record<string, unknown> & { ev: string };

/** Children of this test, so `after` kills whatever is left. */
const children = new Set<ChildProcess>();

/**
 * A party as a series of OS processes over one store file. A stand-by process (modules loaded, store not opened)
 * is kept ready, so a restart is the store, chain and transport set-up only.
 */
class PartyProcess {
  /** The latest phase of each swap this party reported, whichever of its processes reported it. */
  readonly phases = new Map<string, { role: string; kind: string; outcome?: string }>();
  readonly events: PartyEvent[] = [];
  readonly handlerErrors = new Map<string, number>();
  readonly kills: { plannedMs: number; downMs: number; cutShort: boolean; restartMs: number }[] = [];
  /** Each time a swap of this party left the off-chain path: from which phase, why, how long after a restart. */
  readonly exits: { swapId: string; from: string; reason: string; afterStartMs: number; downBeforeMs: number | undefined }[] = [];
  private startedAt = 0;
  private child: ChildProcess | undefined;
  private standby: ChildProcess | undefined;
  private readonly ready = new Map<ChildProcess, string>();
  private readonly stderr = new Map<ChildProcess, string>();
  /** Processes that died before they were ready, with the end of their stderr. */
  readonly failedStarts: string[] = [];

  constructor(
    readonly name: PartyName,
    private readonly config: PartyConfig,
    private readonly relay: LossyRelay,
    private readonly logPath: string,
  ) {}

  has(ev: string): boolean {
    return this.events.some((e) => e.ev === ev);
  }

  /**
   * Whether this party waits for an answer it would give up on after the confirmation timeout: on chain
   * (initiator: sourceLockSent, revealed; responder: resolveSent), or by an abort that leaves the initiator's signed
   * source lock unanswered (responder: accepted; the initiator would then go on chain on a correct timeout).
   */
  waitingOnPeer(): boolean {
    for (const p of this.phases.values()) {
      if (p.role === "initiator" && (p.kind === "sourceLockSent" || p.kind === "revealed")) return true;
      if (p.role === "responder" && (p.kind === "accepted" || p.kind === "resolveSent")) return true;
    }
    return false;
  }

  /** Swaps of this party still on the off-chain path. */
  offChainActive(): number {
    let n = 0;
    for (const p of this.phases.values()) if (p.kind !== "done" && p.kind !== "settlingOnChain") n++;
    return n;
  }

  private spawnProcess(): ChildProcess {
    const child = spawnChild(process.execPath, ["--disable-warning=ExperimentalWarning", "--import", TSX_LOADER, PARTY_SCRIPT], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, FAULT_PARTY: encode(this.config) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.add(child);
    child.once("exit", () => children.delete(child));
    child.stdin!.on("error", () => undefined); // writes to a killed process
    child.stderr!.on("data", (c: Buffer) => {
      appendFileSync(this.logPath, c);
      this.stderr.set(child, (this.stderr.get(child) ?? "") + c.toString());
    });
    createInterface({ input: child.stdout! }).on("line", (line) => this.onLine(child, line));
    return child;
  }

  private onLine(child: ChildProcess, line: string): void {
    let e: PartyEvent;
    try {
      e = JSON.parse(line) as PartyEvent;
    } catch {
      appendFileSync(this.logPath, `stdout: ${line}\n`);
      return;
    }
    this.events.push(e);
    if (e.ev === "ready") {
      this.ready.set(child, e.url as string);
      this.startedAt = Date.now();
    }
    if (e.ev === "phase") {
      const previous = this.phases.get(e.swapId as string);
      if (e.kind === "settlingOnChain") {
        this.exits.push({
          swapId: e.swapId as string,
          from: previous?.kind ?? "?",
          reason: String(e.reason),
          afterStartMs: Date.now() - this.startedAt,
          downBeforeMs: this.kills.at(-1)?.downMs,
        });
      }
      this.phases.set(e.swapId as string, { role: e.role as string, kind: e.kind as string, outcome: e.outcome as string | undefined });
    }
    if (e.ev === "handlerError") {
      const key = String(e.message).replace(/0x[0-9a-fA-F]{8,}/g, "0x…").replace(/\d{3,}/g, "N");
      this.handlerErrors.set(key, (this.handlerErrors.get(key) ?? 0) + 1);
    }
  }

  prepare(): void {
    this.standby ??= this.spawnProcess();
  }

  /**
   * Starts the stand-by process on the store and points the relay at it. A process that dies before it is ready is
   * replaced (up to twice) and reported in `failedStarts`: the run measures the clients, not process start-up.
   */
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      this.prepare();
      const child = this.standby!;
      this.standby = undefined;
      this.child = child;
      child.stdin!.write(JSON.stringify({ cmd: "go" }) + "\n");
      const up = await until(() => this.ready.has(child) || child.exitCode !== null, 60_000);
      if (up && this.ready.has(child)) {
        this.relay.setPeer(this.name, this.ready.get(child));
        this.prepare(); // the next process loads its modules now, ready for the next restart
        return;
      }
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
        child.kill("SIGKILL"); // not ready within a minute: never two processes on one store
        await exited;
      }
      const failure = `exit code ${child.exitCode}; stderr: ${(this.stderr.get(child) ?? "").slice(-1_500) || "(none)"}`;
      this.failedStarts.push(failure);
      if (attempt === 2) throw new Error(`${this.name} did not start three times; last: ${failure}`);
    }
  }

  /** SIGKILL: the process ends at once, mid-step or not. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.relay.setPeer(this.name, undefined);
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
      child.kill("SIGKILL");
      await exited;
    }
    this.prepare();
  }

  send(command: Record<string, unknown>): void {
    this.child?.stdin!.write(JSON.stringify(command) + "\n");
  }

  /** Asks the process to stop, close its transport and store; kills it if it does not within 15 s. */
  async exit(): Promise<void> {
    for (const child of [this.child, this.standby]) {
      if (child === undefined || child.exitCode !== null) continue;
      const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
      child.stdin!.write(JSON.stringify({ cmd: "exit" }) + "\n");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    this.child = undefined;
    this.standby = undefined;
  }
}

// ------------------------------------------------------------------ chain reads

type Closing = { kind: "cooperative" | "settled"; seq: bigint; payouts: [bigint, bigint]; paidMask: bigint; lockCount: number };
type ChainView = {
  name: "S" | "T";
  provider: JsonRpcProvider;
  hub: ChannelHub;
  hubAddress: string;
  deposits: Map<string, [bigint, bigint]>;
  closings: Map<string, Closing>;
  /** Channel ids force-closed, one entry per ChannelForceClosed event, with who sent it. */
  forceClosed: { id: string; by: string }[];
  deferred: number;
};

async function readChain(name: "S" | "T", provider: JsonRpcProvider, hubAddress: string): Promise<ChainView> {
  const hub = ChannelHub__factory.connect(hubAddress, provider);
  const view: ChainView = { name, provider, hub, hubAddress, deposits: new Map(), closings: new Map(), forceClosed: [], deferred: 0 };
  // A channel's opening deposits are in ChannelOpened (openAndDeposit), later ones in Deposited.
  for (const o of await channelOpenings(hub, (await provider.getNetwork()).chainId)) {
    view.deposits.set(o.channelId.toLowerCase(), [o.deposits[0], o.deposits[1]]);
  }
  for (const e of await hub.queryFilter(hub.filters.Deposited(), 0)) {
    const id = e.args.channelId.toLowerCase();
    const d = view.deposits.get(id) ?? [0n, 0n];
    if (Number(e.args.participant) === 0) d[0] += e.args.amount;
    else d[1] += e.args.amount;
    view.deposits.set(id, d);
  }
  for (const e of await hub.queryFilter(hub.filters.ChannelClosed(), 0)) {
    view.closings.set(e.args.channelId.toLowerCase(), {
      kind: "cooperative",
      seq: e.args.seq,
      payouts: [e.args.payouts[0], e.args.payouts[1]],
      paidMask: 0n,
      lockCount: 0,
    });
  }
  for (const e of await hub.queryFilter(hub.filters.ChannelSettled(), 0)) {
    view.closings.set(e.args.channelId.toLowerCase(), {
      kind: "settled",
      seq: e.args.seq,
      payouts: [e.args.payouts[0], e.args.payouts[1]],
      paidMask: e.args.paidMask,
      lockCount: Number(e.args.lockCount),
    });
  }
  for (const e of await hub.queryFilter(hub.filters.ChannelForceClosed(), 0)) {
    view.forceClosed.push({ id: e.args.channelId.toLowerCase(), by: e.args.by.toLowerCase() });
  }
  view.deferred = (await hub.queryFilter(hub.filters.PayoutDeferred(), 0)).length;
  return view;
}

/** Fees paid by each of `accounts` in blocks after `fromBlock` (eth_getBlockByNumber with full transactions). */
async function feesSince(provider: JsonRpcProvider, fromBlock: number, accounts: readonly string[]): Promise<Map<string, bigint>> {
  const fees = new Map(accounts.map((a) => [a.toLowerCase(), 0n]));
  const latest = await provider.getBlockNumber();
  for (let n = fromBlock + 1; n <= latest; n++) {
    const block = (await provider.send("eth_getBlockByNumber", [`0x${n.toString(16)}`, true])) as { transactions: { hash: string; from: string }[] };
    for (const tx of block.transactions) {
      const from = tx.from.toLowerCase();
      if (!fees.has(from)) continue;
      const receipt = (await provider.send("eth_getTransactionReceipt", [tx.hash])) as { gasUsed: string; effectiveGasPrice: string };
      fees.set(from, fees.get(from)! + BigInt(receipt.gasUsed) * BigInt(receipt.effectiveGasPrice));
    }
  }
  return fees;
}

// ------------------------------------------------------------------ the run

type Leg = "source" | "target";
type Outcome = "paid" | "refunded" | "unresolved";

describe("faults with real processes: healthy channel pairs are never closed on chain for no reason", function () {
  this.timeout(ON_ANVIL ? SOAK_MS + 600_000 : 300_000);

  let nodes: LocalNode[] = [];
  let relay: LossyRelay | undefined;
  const anvils: Anvil[] = [];
  let chainFaults: ChainFaultStats | undefined;

  /** Two anvil chains mining a block a second (chain ids outside the local ones: nothing is final at once). */
  async function anvilChains(): Promise<[LocalNode, LocalNode]> {
    const started: LocalNode[] = [];
    for (const chainId of [31_431, 31_432]) {
      const anvil = await startAnvil({ chainId, blockTime: 1 });
      anvils.push(anvil);
      started.push({ url: anvil.url, chainId: BigInt(chainId), pid: anvil.child.pid!, stop: anvil.stop });
    }
    return [started[0]!, started[1]!];
  }
  const parties: PartyProcess[] = [];
  let dir = "";
  const cleanups: (() => void | Promise<void>)[] = [];

  /** What the checks read, filled by `before`. */
  const result = {
    atomicity: [] as string[],
    conservation: [] as string[],
    forceClosedChannels: 0,
    needlessOnChainSwaps: 0,
    summary: "",
  };

  after(async function () {
    for (const c of [...children]) c.kill("SIGKILL");
    await relay?.close();
    for (const f of cleanups.reverse()) await f();
    await Promise.all(nodes.map((n) => n.stop()));
    if (dir !== "" && !KEEP) rmSync(dir, { recursive: true, force: true });
  });

  before(async function () {
    console.log(`      faults: FAULTS_SEED=${SEED} swaps=${SWAPS} pairs=${PAIRS}`);
    dir = mkdtempSync(join(tmpdir(), "faults-"));
    const [nodeS, nodeT] = ON_ANVIL ? await anvilChains() : await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    nodes = [nodeS, nodeT];
    const [S, T] = [rpcProvider(nodeS.url), rpcProvider(nodeT.url)];
    cleanups.push(() => S.destroy(), () => T.destroy());
    // On anvil the parties reach each chain through a proxy that can go down (an RPC outage).
    const proxies = ON_ANVIL ? [await RpcProxy.start(nodeS.url), await RpcProxy.start(nodeT.url)] : [];
    for (const p of proxies) cleanups.push(() => p.close());
    const [hubS, hubT] = [await deployHub(S), await deployHub(T)];
    const alice = localWallet(1, S).address;
    const bob = localWallet(2, S).address;

    // Channel pairs, each funded by both participants on both chains.
    const pairs: PairConfig[] = [];
    const adapter = async (who: 1 | 2, chain: "S" | "T") =>
      HubAdapter.connect(chain === "S" ? hubS : hubT, localWallet(who, chain === "S" ? S : T));
    const [aS, aT, bS, bT] = [await adapter(1, "S"), await adapter(1, "T"), await adapter(2, "S"), await adapter(2, "T")];
    for (let i = 0; i < PAIRS; i++) {
      const params: ChannelParams = { participants: [alice, bob], payees: [ZeroAddress, ZeroAddress], asset: ZeroAddress, challengePeriod: 3600n, nonce: BigInt(i + 1) };
      const sId = await aS.openAndDeposit(params, 0, DEPOSIT);
      await bS.deposit(params, sId, 1, DEPOSIT);
      const tId = await aT.openAndDeposit(params, 0, DEPOSIT);
      await bT.deposit(params, tId, 1, DEPOSIT);
      pairs.push({ sParams: params, tParams: params, sId, tId });
    }
    const startBlocks = { S: await S.getBlockNumber(), T: await T.getBlockNumber() };
    const startBalances: Record<"S" | "T", [bigint, bigint]> = {
      S: [await S.getBalance(alice), await S.getBalance(bob)],
      T: [await T.getBalance(alice), await T.getBalance(bob)],
    };
    // Both chains' clocks follow the wall clock (the clients refuse swaps on clocks further apart than the skew bound);
    // anvil mines a block a second by itself.
    const heartbeat = setInterval(() => {
      if (!ON_ANVIL) for (const p of [S, T]) p.send("evm_mine", []).catch(() => undefined);
    }, 2_000);
    cleanups.push(() => clearInterval(heartbeat));

    const relayRandom = prng(SEED ^ 0x9e3779b9);
    const killRandom = prng(SEED + 1);
    relay = new LossyRelay(relayRandom);
    await relay.start();
    const base = {
      rpc: ON_ANVIL ? { S: proxies[0]!.url, T: proxies[1]!.url } : { S: nodeS.url, T: nodeT.url },
      hubs: { S: hubS, T: hubT },
      chainIds: { S: nodeS.chainId, T: nodeT.chainId },
      ...(ON_ANVIL ? { chain: { confirmations: 2, maxFeePerGasGwei: 500 } } : {}),
      pairs,
      resendIntervalMs: RESEND_MS,
      confirmationTimeoutMs: CONFIRM_MS,
      tickMs: TICK_MS,
    };
    const storePath = (n: PartyName) => join(dir, `${n}.sqlite`);
    const A = new PartyProcess("alice", { ...base, who: 1, storePath: storePath("alice"), relayUrl: relay.urls.alice, swaps: SWAPS, seed: SEED + 2 }, relay, join(dir, "alice.log"));
    const B = new PartyProcess("bob", { ...base, who: 2, storePath: storePath("bob"), relayUrl: relay.urls.bob, swaps: 0, seed: SEED + 3 }, relay, join(dir, "bob.log"));
    parties.push(A, B);
    await Promise.all([A.start(), B.start()]);

    // ---------------------------------------------------------------- faulty phase: swaps under kills and a lossy link
    const faults = ON_ANVIL
      ? new ChainFaults(
          await Promise.all(anvils.map(async (anvil, i) => ({ anvil, proxy: proxies[i]!, quietBaseFee: (await [S, T][i]!.getBlock("latest"))!.baseFeePerGas! }))),
          prng(SEED + 4),
        )
      : undefined;
    faults?.start();
    const t0 = Date.now();
    const aliceFinished = () => A.has("swapsDone") || A.has("stuck");
    const killed = { alice: 0, bob: 0 };
    for (let round = 0; round < 200; round++) {
      if (Date.now() - t0 > FAULT_PHASE_MS) break;
      if (aliceFinished() && killed.alice > 0 && killed.bob > 0) break;
      const pause = 1_000 + Math.floor(killRandom() * 2_500);
      await until(() => aliceFinished() && killed.alice > 0 && killed.bob > 0, pause);
      const victim = killed.alice === 0 ? A : killed.bob === 0 ? B : killRandom() < 0.5 ? A : B;
      const live = victim === A ? B : A;
      const long = killRandom() < LONG_KILLS;
      const plannedMs = long ? CONFIRM_MS + 500 + Math.floor(killRandom() * 2_000) : 50 + Math.floor(killRandom() * 550);
      // A long kill waits (up to 2 s) for a moment when the other party does not wait on the victim.
      if (long) await until(() => !live.waitingOnPeer(), 2_000);
      await victim.kill();
      killed[victim.name]++;
      const down = Date.now();
      // Down for the planned time, unless the live party starts waiting on it: then back at once.
      await until(() => live.waitingOnPeer(), plannedMs);
      const downMs = Date.now() - down;
      const kill = { plannedMs, downMs, cutShort: downMs < plannedMs - 30, restartMs: 0 };
      victim.kills.push(kill);
      const restarting = Date.now();
      await victim.start();
      kill.restartMs = Date.now() - restarting;
    }
    A.send({ cmd: "stopSwaps" });
    const faultPhaseMs = Date.now() - t0;
    // Let the swap in progress end (off the off-chain path one way or the other).
    await until(() => A.offChainActive() === 0 && B.offChainActive() === 0, 4 * CONFIRM_MS + 5_000);

    // ---------------------------------------------------------------- the close scenario
    const chainS = await readChainStatus(S, hubS);
    const chainT = await readChainStatus(T, hubT);
    const openPair = async () => {
      for (const p of pairs) if ((await chainS(p.sId)) === "open" && (await chainT(p.tId)) === "open") return p;
      return undefined;
    };
    let scenario = CLOSE_SCENARIO ? "skipped (no pair left open)" : "skipped (FAULTS_CLOSE_SCENARIO=0)";
    let scenarioIds: Hex[] = [];
    const scenarioPair = CLOSE_SCENARIO ? await openPair() : undefined;
    if (scenarioPair !== undefined) {
      const sId = scenarioPair.sId.toLowerCase();
      relay.rule = (step, session, from) => from === "alice" && step === "closeRequest" && session.toLowerCase() === sId;
      A.send({ cmd: "close", channel: scenarioPair.sId });
      await until(() => relay!.stats.droppedByRule > 0 || A.events.some((e) => e.ev === "error" && e.where === "close"), 5_000);
      const before = new Set(B.phases.keys());
      B.send({ cmd: "propose", source: scenarioPair.tId, target: scenarioPair.sId, give: (ONE / 100n).toString(), take: (ONE / 100n).toString() });
      const bobSwap = () => [...B.phases.keys()].find((k) => !before.has(k) && B.phases.get(k)!.role === "initiator");
      await until(() => {
        const id = bobSwap();
        const kind = id === undefined ? undefined : B.phases.get(id)!.kind;
        return kind === "done" || kind === "settlingOnChain" || B.events.some((e) => e.ev === "error" && e.where === "propose");
      }, 4 * CONFIRM_MS + 10_000);
      const id = bobSwap();
      const proposeError = B.events.find((e) => e.ev === "error" && e.where === "propose");
      const bobPhase = id === undefined ? undefined : B.phases.get(id);
      const alicePhase = id === undefined ? undefined : A.phases.get(id);
      scenario =
        id === undefined
          ? `Bob could not propose: ${String(proposeError?.message ?? "no answer")}`
          : `closeRequest dropped x${relay.stats.droppedByRule}; then Bob's swap on the channel: Bob ${bobPhase?.kind}` +
            `${bobPhase?.outcome ? `/${bobPhase.outcome}` : ""}, Alice ${alicePhase?.kind ?? "never saw it"}` +
            `${alicePhase?.outcome ? `/${alicePhase.outcome}` : ""}`;
      scenarioIds = [scenarioPair.sId, scenarioPair.tId];
      relay.rule = undefined;
    }

    // ---------------------------------------------------------------- cooperative closes under the lossy link
    // The client resends a close request itself; one refused because the channel was busy (a swap or a deposit update
    // in flight, or a close already under way: ChannelClosingError) is asked again until the channel is closed.
    for (let round = 0; round < 25; round++) {
      let open = 0;
      for (const p of pairs) {
        if ((await chainS(p.sId)) === "open") {
          open++;
          A.send({ cmd: "close", channel: p.sId });
        }
        if ((await chainT(p.tId)) === "open") {
          open++;
          B.send({ cmd: "close", channel: p.tId });
        }
      }
      if (open === 0) break;
      await sleep(1_500);
    }

    // The chains behave from here on: what is left to check is that everything settles.
    await faults?.stop();
    chainFaults = faults?.stats;

    // ---------------------------------------------------------------- settle whatever went on chain
    // Chain time passes in steps shorter than delta until every lock has expired, and a secret newly revealed on one
    // chain gets a few seconds to be revealed on the other one, as it would have in real time: one jump past the
    // expiries would refund a lock whose receiver had no chance to claim it. Then past every challenge deadline.
    const allIds = pairs.flatMap((p) => [
      { id: p.sId, status: chainS },
      { id: p.tId, status: chainT },
    ]);
    const anyDisputed = async () => {
      for (const c of allIds) if ((await c.status(c.id)) === "disputed") return true;
      return false;
    };
    const revealed = await revealedSecrets(S, hubS, T, hubT);
    let oneSided = new Set<string>();
    const settleReveals = async () => {
      const now = await revealed();
      const fresh = [...now.oneSided].filter((h) => !oneSided.has(h));
      await until(async () => {
        const current = (await revealed()).oneSided;
        return fresh.every((h) => !current.has(h));
      }, 3_000);
      oneSided = (await revealed()).oneSided;
    };
    const advance = async (seconds: number) => {
      for (const p of [S, T]) {
        await p.send("evm_increaseTime", [seconds]);
        await p.send("evm_mine", []);
      }
    };
    if (await anyDisputed()) {
      await settleReveals();
      for (let step = 0; step < 15; step++) {
        await advance(150); // delta here is 204 s; every lock expires within 1,800 + 204 s of its proposal
        await sleep(300);
        await settleReveals();
      }
      await advance(2 * 24 * 3600);
    }
    const settling = (p: PartyProcess) => [...p.phases.values()].some((x) => x.kind === "settlingOnChain");
    // Until every channel is settled and each swap taken on chain has recorded how it ended.
    await until(async () => !(await anyDisputed()) && !settling(A) && !settling(B), 60_000);
    await Promise.all([A.exit(), B.exit()]);
    clearInterval(heartbeat);

    // ---------------------------------------------------------------- read back: stores and chains
    const checkDir = join(dir, "check");
    mkdirSync(checkDir);
    const snapshot = (path: string) => {
      const copy = join(checkDir, basename(path));
      for (const suffix of ["", "-wal"]) if (existsSync(path + suffix)) copyFileSync(path + suffix, copy + suffix);
      return new Store(copy);
    };
    const stores = { alice: snapshot(storePath("alice")), bob: snapshot(storePath("bob")) };
    cleanups.push(() => stores.alice.close(), () => stores.bob.close());
    const views = { S: await readChain("S", S, hubS), T: await readChain("T", T, hubT) };
    const viewOf = (channelId: string) => (pairs.some((p) => p.sId.toLowerCase() === channelId.toLowerCase()) ? views.S : views.T);

    /** A state of a channel at `seq` from either store (co-signed, or signed by that party alone). */
    const stateAt = (channelId: Hex, seq: bigint): ChannelState | undefined => {
      for (const st of [stores.alice, stores.bob]) {
        const s = st.coSignedAt(channelId, seq)?.state ?? st.ownSignedAt(channelId, seq)?.state;
        if (s !== undefined) return s;
      }
      return undefined;
    };

    /** What became of a lock on chain or off it, from the closing of its channel and the states both stores hold. */
    const lockOutcome = (t: TransferRecord, receiver: 0 | 1, amount: bigint): Outcome => {
      const closing = viewOf(t.channelId).closings.get(t.channelId.toLowerCase());
      if (closing === undefined) return "unresolved";
      if (closing.seq < t.lockSeq) return "refunded"; // the lock's state never counted
      const final = stateAt(t.channelId, closing.seq);
      if (final === undefined) return "unresolved";
      const index = final.locks.findIndex((l) => l.hashlock.toLowerCase() === t.hashlock.toLowerCase());
      if (index >= 0) return closing.kind === "settled" && ((closing.paidMask >> BigInt(index)) & 1n) === 1n ? "paid" : "refunded";
      // Resolved off chain: the first later state without the lock says to whom the amount went.
      const locked = stateAt(t.channelId, t.lockSeq);
      for (let seq = t.lockSeq + 1n; seq <= closing.seq; seq++) {
        const s = stateAt(t.channelId, seq);
        if (s === undefined || s.locks.some((l) => l.hashlock.toLowerCase() === t.hashlock.toLowerCase())) continue;
        if (locked === undefined) return "unresolved";
        return s.balances[receiver] - locked.balances[receiver] === amount ? "paid" : "refunded";
      }
      return "unresolved";
    };

    // (1) atomicity, and each paid leg for the ledger check of (2)
    const ids = new Set([...stores.alice.swapIds(), ...stores.bob.swapIds()].map((x) => x.toLowerCase() as Hex));
    const paidLegs: { channelId: string; sender: 0 | 1; amount: bigint }[] = [];
    const outcomes = { alice: new Map<string, string>(), bob: new Map<string, string>() };
    let needless = 0;
    let onChainSwaps = 0;
    let unconfirmedRecords = 0;
    let lockedSwaps = 0;
    for (const id of ids) {
      const seen = { alice: stores.alice.swap<SwapProgress>(id), bob: stores.bob.swap<SwapProgress>(id) };
      const terms: SwapTerms = (seen.alice ?? seen.bob)!.terms;
      for (const p of ["alice", "bob"] as const) {
        const ph = seen[p]?.phase.phase;
        outcomes[p].set(id, ph === undefined ? "unknown" : ph.kind === "done" ? ph.outcome : ph.kind);
      }
      const [oa, ob] = [outcomes.alice.get(id), outcomes.bob.get(id)];
      const onChain = (o: string | undefined) => o === "settledOnChain" || o === "settlingOnChain";
      if ((oa === "swapped" && onChain(ob)) || (onChain(oa) && ob === "swapped")) needless++;
      if (onChain(oa) || onChain(ob)) onChainSwaps++;

      const legOf = (t: TransferRecord): Leg => (t.channelId.toLowerCase() === terms.source.channelId.toLowerCase() ? "source" : "target");
      const records = [
        ...stores.alice.transfers(id).map((t) => ({ party: "alice", t })),
        ...stores.bob.transfers(id).map((t) => ({ party: "bob", t })),
      ];
      if (records.length === 0) {
        if (oa === "swapped" || ob === "swapped") result.atomicity.push(`${id}: swapped (${oa}/${ob}) with no transfer recorded`);
        continue;
      }
      lockedSwaps++;
      const legs: Record<Leg, { sender: 0 | 1; amount: bigint; channelId: string; outcomes: Set<Outcome> }> = {
        source: { sender: indexIn(pairs, terms.source.channelId, terms.initiator), amount: terms.give, channelId: terms.source.channelId, outcomes: new Set() },
        target: { sender: indexIn(pairs, terms.target.channelId, terms.responder), amount: terms.take, channelId: terms.target.channelId, outcomes: new Set() },
      };
      const detail: string[] = [];
      let disagrees = false;
      for (const { party, t } of records) {
        const leg = legs[legOf(t)];
        const onChain = lockOutcome(t, leg.sender === 0 ? 1 : 0, leg.amount);
        const outcome: Outcome = t.outcome === "pending" ? onChain : t.outcome;
        if (t.outcome === "pending") unconfirmedRecords++;
        else if (onChain !== "unresolved" && onChain !== t.outcome) {
          disagrees = true;
          detail.push(`${party} recorded ${t.outcome} on ${legOf(t)}, chain/states say ${onChain}`);
        }
        leg.outcomes.add(outcome);
        detail.push(`${party} ${legOf(t)} ${t.outcome}${t.outcome === "pending" ? `->${outcome}` : ""}`);
      }
      const all = new Set([...legs.source.outcomes, ...legs.target.outcomes]);
      const oneLegOnly = (legs.source.outcomes.size === 0 || legs.target.outcomes.size === 0) && all.has("paid");
      if (all.size !== 1 || all.has("unresolved") || oneLegOnly || disagrees) {
        result.atomicity.push(`${id} (${oa}/${ob}): ${detail.join(", ")}`);
      }
      for (const leg of Object.values(legs)) if (leg.outcomes.has("paid")) paidLegs.push(leg);
    }

    // (2) conservation
    const c = result.conservation;
    const payoutsTo: Record<"S" | "T", [bigint, bigint]> = { S: [0n, 0n], T: [0n, 0n] };
    for (const view of [views.S, views.T]) {
      if (view.deferred > 0) c.push(`${view.name}: ${view.deferred} payouts deferred`);
      let held = 0n;
      for (const [id, deposits] of view.deposits) {
        const closing = view.closings.get(id);
        if (closing === undefined) {
          held += deposits[0] + deposits[1];
          c.push(`${view.name} ${id}: never closed`);
          continue;
        }
        if (closing.payouts[0] + closing.payouts[1] !== deposits[0] + deposits[1]) {
          c.push(`${view.name} ${id}: payouts ${closing.payouts.join("+")} != deposits ${deposits.join("+")}`);
        }
        // What the swaps' outcomes say each participant ends with on this channel.
        const expected: [bigint, bigint] = [deposits[0], deposits[1]];
        for (const leg of paidLegs) {
          if (leg.channelId.toLowerCase() !== id) continue;
          const moved = leg.sender === 0 ? leg.amount : -leg.amount;
          expected[0] -= moved;
          expected[1] += moved;
        }
        if (expected[0] !== closing.payouts[0] || expected[1] !== closing.payouts[1]) {
          c.push(`${view.name} ${id}: payouts ${closing.payouts.join("/")}, swap outcomes imply ${expected.join("/")}`);
        }
        payoutsTo[view.name][0] += closing.payouts[0];
        payoutsTo[view.name][1] += closing.payouts[1];
      }
      const hubBalance = await view.provider.getBalance(view.hubAddress);
      if (hubBalance !== held) c.push(`${view.name}: hub holds ${hubBalance}, open channels hold ${held}`);
      const fees = await feesSince(view.provider, startBlocks[view.name], [alice, bob]);
      for (const [i, who] of [[0, alice], [1, bob]] as const) {
        const moved = (await view.provider.getBalance(who)) - startBalances[view.name][i];
        const expectedMove = payoutsTo[view.name][i] - fees.get(who.toLowerCase())!;
        if (moved !== expectedMove) c.push(`${view.name}: ${i === 0 ? "Alice" : "Bob"} moved ${moved}, payouts minus fees ${expectedMove}`);
      }
    }

    // (3) needless closes
    const forceEvents = [...views.S.forceClosed, ...views.T.forceClosed];
    const forceClosed = new Set(forceEvents.map((f) => f.id));
    const inScenario = [...forceClosed].filter((id) => scenarioIds.some((x) => x.toLowerCase() === id)).length;
    const forcedBy = (who: string) => forceEvents.filter((f) => f.by === who.toLowerCase()).length;
    result.forceClosedChannels = forceClosed.size;
    result.needlessOnChainSwaps = needless;

    const count = (p: PartyName, o: string) => [...outcomes[p].values()].filter((x) => x === o).length;
    const kills = [...A.kills, ...B.kills];
    const coop = [...views.S.closings.values(), ...views.T.closings.values()].filter((x) => x.kind === "cooperative").length;
    const s = relay.stats;
    result.summary =
      `seed=${SEED} swaps done=${count("alice", "swapped")}/${SWAPS} (of ${ids.size} proposed; aborted ${count("alice", "aborted")}, ` +
      `on chain ${onChainSwaps}) | envelopes=${s.lines} drops=${s.dropped} dups=${s.duplicated} delayed=${s.delayed} ` +
      `reorders=${s.reordered} lostWhileDown=${s.lostPartyDown} | kills alice=${A.kills.length} bob=${B.kills.length} ` +
      `(long ${kills.filter((k) => k.downMs > CONFIRM_MS).length}, cut short ${kills.filter((k) => k.cutShort).length}) ` +
      `in ${Math.round(faultPhaseMs / 1000)}s | force closes=${forceClosed.size} channels (${inScenario} in the close scenario; ` +
      `by Alice ${forcedBy(alice)}, Bob ${forcedBy(bob)}) ` +
      `needless on-chain swaps=${needless} | cooperative closes=${coop}/${2 * PAIRS} | swaps with locks checked=${lockedSwaps}, transfer records still pending=${unconfirmedRecords} | ` +
      `failed process starts=${A.failedStarts.length + B.failedStarts.length}` +
      (chainFaults === undefined
        ? ""
        : ` | chain faults: reorgs=${chainFaults.reorgs} dropped txs=${chainFaults.dropped} fee spikes=${chainFaults.spikes} rpc outages=${chainFaults.outages}`);
    console.log(`      faults summary: ${result.summary}`);
    if (ON_ANVIL) {
      // The soak's record: what ran and what the checks found (the three tests below read the same result).
      const checks = { atomicity: result.atomicity.length, conservation: result.conservation.length, forceClosedChannels: result.forceClosedChannels, needlessOnChainSwaps: needless };
      const passed = Object.values(checks).filter((n) => n === 0).length;
      const record = {
        date: new Date().toISOString(), seed: SEED, minutes: SOAK_MS / 60_000, faultPhaseSeconds: Math.round(faultPhaseMs / 1000), swapsAsked: SWAPS, pairs: PAIRS,
        swapped: count("alice", "swapped"), aborted: count("alice", "aborted"), onChainSwaps, chainFaults, envelopes: s,
        kills: { alice: A.kills.length, bob: B.kills.length }, checks, passed, failed: Object.keys(checks).length - passed,
      };
      writeFileSync(resolve(PROJECT_ROOT, "docs/soak.json"), JSON.stringify(record, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
      console.log(`      soak: ${record.passed} passed, ${record.failed} failed (docs/soak.json)`);
    }
    const endedAs = (id: Hex) => {
      const view = viewOf(id);
      const forced = view.forceClosed.some((f) => f.id === id.toLowerCase()) ? "force-closed, " : "";
      return `${view.name} ${forced}${view.closings.get(id.toLowerCase())?.kind ?? "not closed"}`;
    };
    console.log(`      close scenario: ${scenario}; channels ended: ${scenarioIds.map(endedAs).join(", ") || "-"}`);
    for (const p of parties) {
      const kinds = p.kills.map((k) => `${k.downMs}${k.cutShort ? "*" : ""}+${k.restartMs}`).join(" ");
      console.log(`      ${p.name}: kills (ms down, * cut short, + restart) ${kinds || "none"}`);
      for (const x of p.exits) {
        const theirs = outcomes[other(p.name)].get(x.swapId.toLowerCase()) ?? "unknown";
        console.log(
          `      ${p.name} went on chain: swap ${x.swapId.slice(0, 10)} ${x.from} -> ${x.reason}, ${x.afterStartMs} ms after ` +
            `its last start${x.downBeforeMs === undefined || x.afterStartMs > 1_000 ? "" : ` (down ${x.downBeforeMs} ms before it)`}; ` +
            `${other(p.name)}: ${theirs}`,
        );
      }
      for (const f of p.failedStarts) console.log(`      ${p.name} process failed to start: ${f}`);
      for (const [m, n] of p.handlerErrors) console.log(`      ${p.name} refused x${n}: ${m.slice(0, 160)}`);
      const errors = p.events.filter((e) => e.ev === "error").map((e) => `${String(e.where)}: ${String(e.message).slice(0, 120)}`);
      for (const m of new Set(errors)) console.log(`      ${p.name} error x${errors.filter((x) => x === m).length}: ${m}`);
    }
    if (KEEP) console.log(`      stores and logs kept in ${dir}`);
  });

  it("(1) atomicity: both transfers of every swap end the same way for both parties", function () {
    expect(result.atomicity).to.deep.equal([]);
  });

  it("(2) conservation: payouts add up to deposits, match the swaps, and reach the accounts", function () {
    expect(result.conservation).to.deep.equal([]);
  });

  it("(3) no healthy channel pair is closed on chain: no force close, no swap one party took on chain needlessly", function () {
    expect({ forceClosedChannels: result.forceClosedChannels, needlessOnChainSwaps: result.needlessOnChainSwaps }).to.deep.equal({
      forceClosedChannels: 0,
      needlessOnChainSwaps: 0,
    });
  });
});

/** Index of `who` among the participants of a channel of `pairs` (all pairs have Alice at 0, Bob at 1). */
function indexIn(pairs: readonly PairConfig[], channelId: string, who: string): 0 | 1 {
  const pair = pairs.find((p) => [p.sId, p.tId].some((x) => x.toLowerCase() === channelId.toLowerCase()));
  if (pair === undefined) throw new Error(`unknown channel ${channelId}`);
  const i = pair.sParams.participants.findIndex((p) => p.toLowerCase() === who.toLowerCase());
  if (i < 0) throw new Error(`${who} is not in channel ${channelId}`);
  return i as 0 | 1;
}

/** Reads which hashlocks were revealed on the registries of S's and T's hubs, and which of them on one chain only. */
async function revealedSecrets(S: JsonRpcProvider, hubS: string, T: JsonRpcProvider, hubT: string) {
  const registry = async (provider: JsonRpcProvider, hub: string) =>
    SecretRegistry__factory.connect(await ChannelHub__factory.connect(hub, provider).secretRegistry(), provider);
  const [rS, rT] = [await registry(S, hubS), await registry(T, hubT)];
  const hashlocks = async (r: typeof rS) => new Set((await r.queryFilter(r.filters.SecretRevealed(), 0)).map((e) => e.args.hashlock.toLowerCase()));
  return async () => {
    const [onS, onT] = [await hashlocks(rS), await hashlocks(rT)];
    const oneSided = new Set([...onS].filter((h) => !onT.has(h)).concat([...onT].filter((h) => !onS.has(h))));
    return { onS, onT, oneSided };
  };
}

/** A reader of channel status on one hub. */
async function readChainStatus(provider: JsonRpcProvider, hubAddress: string): Promise<(channelId: Hex) => Promise<string>> {
  const hub = ChannelHub__factory.connect(hubAddress, provider);
  const names = ["none", "open", "disputed", "closed"];
  return async (channelId) => names[Number((await hub.getChannel(channelId)).status)] ?? "none";
}
