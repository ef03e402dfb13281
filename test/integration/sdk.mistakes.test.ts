import { expect } from "chai";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { getAddress, JsonRpcProvider, parseEther } from "ethers";
import { network } from "hardhat";

import {
  ChannelBusyError,
  ChannelClosingError,
  ChannelTermsError,
  DEFAULT_CONFIRMATIONS,
  defaultConfirmations,
  DuplicateChainError,
  HttpTransport,
  HubAdapter,
  HubAddressError,
  HubNotDeployedError,
  InMemoryLink,
  InsufficientBalanceError,
  LOCAL_CHAIN_IDS,
  rpcProvider,
  TransferOutcome,
  TransportNotConnectedError,
  WaitAbortedError,
  type ClientEvent,
  type Transport,
} from "../../sdk/index.js";
import { deployHub, localWallet } from "../../scripts/lib/local.js";
import { expectedChannel } from "../../scripts/lib/swap-setup.js";
import { ChannelHub__factory } from "../../typechain-types/index.js";
import { PROJECT_ROOT } from "../helpers/nodes.js";
import { addChannels, fundedChannels, makeParty, ManualClock, ONE, twoParties, type Setup } from "../helpers/swapHarness.js";

/** The `sendFailed` events among `events`. */
const sendFailures = (events: readonly ClientEvent[]) => events.filter((e): e is Extract<ClientEvent, { type: "sendFailed" }> => e.type === "sendFailed");

/** Alice and Bob with both channels added, over `transports` (else an in-memory link), their deposits not counted yet. */
async function joined(setup: Setup, transports?: readonly [Transport, Transport]) {
  const clock = new ManualClock();
  const [a, b] = transports ?? (({ a, b }) => [a, b] as const)(new InMemoryLink());
  const alice = makeParty(setup, "alice", a, clock);
  const bob = makeParty(setup, "bob", b, clock);
  await addChannels(setup, [alice, bob]);
  return { alice, bob, clock };
}

describe("a client that cannot reach its peer says so", function () {
  it("reports a transport never connected on the first send, and syncDeposits rejects with TransportNotConnectedError", async function () {
    const setup = await fundedChannels();
    const [aliceHttp, bobHttp] = [await HttpTransport.start(), await HttpTransport.start()]; // connect() forgotten
    try {
      const { alice } = await joined(setup, [aliceHttp, bobHttp]);
      let error: unknown;
      await alice.client.syncDeposits(setup.sId).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(TransportNotConnectedError);
      expect(String(error)).to.match(/no peer URL.*call transport\.connect\(peerUrl\)/);
      const [failed] = sendFailures(alice.events);
      expect(failed, "a sendFailed event").to.deep.include({ notConnected: true, channelIds: [setup.sId] });
    } finally {
      await aliceHttp.close();
      await bobHttp.close();
    }
  });

  it("reports a peer it cannot reach, and a wait with a timeout or a signal ends naming the channel, what is missing and the failed send", async function () {
    const setup = await fundedChannels();
    const aliceHttp = await HttpTransport.start(0, "http://127.0.0.1:1"); // nothing listens there
    const bobHttp = await HttpTransport.start();
    try {
      const { alice, bob } = await joined(setup, [aliceHttp, bobHttp]);
      let error: unknown;
      await alice.client.syncDeposits(setup.sId, { timeoutMs: 200 }).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(WaitAbortedError).with.property("timedOut", true);
      const text = String(error);
      expect(text).to.include(`channel ${setup.sId} on chain ${setup.S.chainId}`);
      expect(text).to.match(/has not co-signed it/).and.match(/failed to leave: cannot reach the peer at http:\/\/127\.0\.0\.1:1/);
      expect(sendFailures(alice.events)[0]).to.deep.include({ notConnected: false, channelIds: [setup.sId] });

      // Bob (participant 1) waits for Alice's proposal of the count; his own abort ends his wait.
      const abort = new AbortController();
      const waiting = bob.client.syncDeposits(setup.sId, { signal: abort.signal }).catch((e: unknown) => e);
      abort.abort();
      const aborted = await waiting;
      expect(aborted).to.be.instanceOf(WaitAbortedError).with.property("timedOut", false);
      expect(String(aborted)).to.match(/\(aborted\): participant 0 \(0x[0-9a-fA-F]{40}\) proposes the count/);
    } finally {
      await aliceHttp.close();
      await bobHttp.close();
    }
  });

  it("ends whenDone at its timeout with the swap's phase, and the swap goes on", async function () {
    const setup = await fundedChannels();
    const { link, alice } = await twoParties(setup);
    link.fault = () => "drop"; // Bob hears nothing from now on
    const swapId = await alice.client.propose({ source: setup.sId, target: setup.tId, give: ONE, take: ONE / 10n });
    let error: unknown;
    await alice.client.whenDone(swapId, { timeoutMs: 50 }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(WaitAbortedError);
    expect(String(error)).to.match(new RegExp(`swap ${swapId} to be done after 50 ms: it is proposed \\(we are its initiator\\)`));
    expect(alice.client.swap(swapId).progress.phase.kind).to.equal("proposed");
  });
});

describe("errors say what to do next", function () {
  it("refuses a swap beyond the counted deposits naming the channel, the chain and the amounts, and says to count them", async function () {
    const setup = await fundedChannels();
    const { alice } = await joined(setup);
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: 3n * ONE, take: ONE / 10n }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(InsufficientBalanceError).with.property("channelId", setup.sId);
    expect(String(error)).to.include(
      `Participant 0 has 0.0 free in channel ${setup.sId} on chain ${setup.S.chainId} but 3.0 is needed (token ${await setup.token.getAddress()}). ` +
        `The hub holds 100.0 more for participant 0 at the final block than the channel's co-signed state counts: count it with syncDeposits(${setup.sId}) on both clients`,
    );
  });

  it("says a deposit is not final yet, and that more is needed once all is counted", async function () {
    const setup = await fundedChannels();
    const deep = await HubAdapter.connect(setup.adapters.aliceT.hubAddress, setup.T.alice, { confirmations: 3 });
    await setup.T.chain.networkHelpers.mine(3);
    const { alice, bob } = await joined({ ...setup, adapters: { ...setup.adapters, aliceT: deep } });
    await Promise.all([alice.client.syncDeposits(setup.tId), bob.client.syncDeposits(setup.tId)]);
    await setup.adapters.aliceT.deposit(setup.tParams, setup.tId, 0, ONE / 2n);
    let error: unknown;
    await alice.client.propose({ source: setup.tId, target: setup.sId, give: 2n * ONE, take: ONE }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/has 1\.0 free in channel .* but 2\.0 is needed \(native coin\)\. A deposit of 0\.5 for participant 0 is on chain but not final yet: it counts once 3 blocks deep/);
    await setup.T.chain.networkHelpers.mine(3);
    await Promise.all([alice.client.syncDeposits(setup.tId), bob.client.syncDeposits(setup.tId)]);
    await alice.client.propose({ source: setup.tId, target: setup.sId, give: 50n * ONE, take: ONE }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/Deposit more for participant 0 \(HubAdapter\.deposit, then syncDeposits\) or swap less/);
  });

  it("refuses to join a channel under the wrong chain id, saying the chain or the hub may be the wrong one", async function () {
    const setup = await fundedChannels();
    const { alice } = await joined(setup);
    let error: unknown;
    await alice.client.addChannel(setup.T.chainId, { ...setup.sParams, nonce: 99n }, expectedChannel(setup.sParams, alice.client.address)).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(ChannelTermsError).with.property("field", "status");
    expect(String(error)).to.match(new RegExp(`no channel 0x[0-9a-f]{64} on chain ${setup.T.chainId} \\(hub 0x[0-9a-fA-F]{40}\\) at block \\d+\\. Its id is computed from the chain id, the hub address and the parameters`));
    expect(String(error)).to.match(new RegExp(`check that chain ${setup.T.chainId} and hub 0x[0-9a-fA-F]{40} are where it was opened`));
  });

  it("names a hub with no code at the final block, and an address with no hub, as HubNotDeployedError; a contract that is not a hub as HubAddressError", async function () {
    const server = await network.createServer("source", "127.0.0.1", 0);
    const { address, port } = await server.listen();
    const url = `http://${address}:${port}`;
    const fresh = rpcProvider(url); // sends: a cached nonce would be stale
    const cached = new JsonRpcProvider(url); // reads: a plain provider, its 250 ms cache on
    try {
      const hub = await deployHub(fresh);
      const reader = localWallet(1, cached);
      // Two confirmations on an auto-mining chain: the final block predates the hub, and none comes by itself.
      const deep = await HubAdapter.connect(hub, reader, { confirmations: 2 });
      let error: unknown;
      await deep.channelInfo(`0x${"ab".repeat(32)}`, await deep.finalBlock()).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(HubNotDeployedError).with.nested.property("notYet.local", true);
      expect(String(error)).to.match(/has no code at block \d+, the final block \(the head \d+ less 2 confirmations\)/).and.match(/mines a block only when a transaction arrives.*use confirmations 0/);

      let missing: unknown;
      await HubAdapter.connect(reader.address, reader).catch((e: unknown) => (missing = e)); // an account, not a hub
      expect(missing).to.be.instanceOf(HubNotDeployedError).with.property("notYet", undefined);
      expect(String(missing)).to.match(/No contract at the hub address 0x[0-9a-fA-F]{40} on chain 31337: check the hub address for chain 31337/);

      // The head is asked of the node, past the provider's cache: a block mined a moment after a cached read counts.
      const adapter = await HubAdapter.connect(hub, reader);
      // Over JSON-RPC, the registry's address (ethers alone: "execution reverted (no data present; ...)").
      const notHub = await HubAdapter.connect(adapter.registryAddress, reader).catch((e: unknown) => e);
      expect(notHub).to.be.instanceOf(HubAddressError).with.property("problem", "notAHub");
      expect(String(notHub)).to.match(/on chain 31337 is not a ChannelHub of this version: the hub's secretRegistry\(\) and eip712Domain\(\) fail there \(execution reverted/);
      const before = await cached.getBlockNumber();
      const sender = localWallet(2, fresh);
      await (await sender.sendTransaction({ to: sender.address, value: parseEther("1") })).wait();
      expect(await cached.getBlockNumber(), "the plain provider's cached answer").to.equal(before);
      expect(await adapter.finalBlock()).to.equal(before + 1);
    } finally {
      for (const p of [fresh, cached]) p.destroy();
      await server.close();
    }
  });

  it("refuses a hub address that is cut short, mistyped, or a contract that is not a hub, naming the address, the chain and what to do", async function () {
    const setup = await fundedChannels();
    const { chainId } = setup.S;
    const wallet = setup.S.alice;
    const refusal = (hub: string) => HubAdapter.connect(hub, wallet).then(() => undefined, (e: unknown) => e);

    const short = await refusal("0x1234"); // ethers alone: "network does not support ENS"
    expect(short).to.be.instanceOf(HubAddressError).and.deep.include({ problem: "notAnAddress", chainId, hub: "0x1234" });
    expect(String(short)).to.include(`The hub address "0x1234" given for chain ${chainId} is not an address: an address is 20 bytes, 0x and 40 hex digits`);

    // One letter of a checksummed address in the other case: ethers alone throws a bare "bad address checksum".
    const hub = getAddress(await setup.S.hub.getAddress());
    const i = [...hub].findIndex((c, k) => k > 1 && /[a-f]/i.test(c));
    const mistyped = hub.slice(0, i) + (hub[i] === hub[i]!.toUpperCase() ? hub[i]!.toLowerCase() : hub[i]!.toUpperCase()) + hub.slice(i + 1);
    const checksum = await refusal(mistyped);
    expect(checksum).to.be.instanceOf(HubAddressError).and.deep.include({ problem: "badChecksum", chainId, hub: mistyped });
    expect(String(checksum)).to.include(`The hub address ${mistyped} given for chain ${chainId} has a wrong checksum`).and.include("Copy the hub's address");

    // The SecretRegistry: a contract, but not a hub (ethers alone: "execution reverted (no data present ...)").
    const registry = await setup.S.registry.getAddress();
    const notHub = await refusal(registry);
    expect(notHub).to.be.instanceOf(HubAddressError).and.deep.include({ problem: "notAHub", chainId, hub: registry });
    expect(String(notHub)).to.include(`The contract at ${registry} on chain ${chainId} is not a ChannelHub of this version`).and.include("not the SecretRegistry's");

    expect((await HubAdapter.connect(hub.toLowerCase(), wallet)).hubAddress, "an address in lower case: no checksum to check").to.equal(hub);
  });

  it("refuses two adapters for one chain id with DuplicateChainError naming the chain and both hubs, printed without an empty docs field", async function () {
    const setup = await fundedChannels();
    const { chainId } = setup.T;
    const registry = await setup.T.registry.getAddress();
    const second = await (await new ChannelHub__factory(setup.T.deployer).deploy(registry)).waitForDeployment();
    const other = await HubAdapter.connect(await second.getAddress(), setup.T.alice); // e.g. both RPC URLs at chain T
    let error: unknown;
    try {
      makeParty(setup, "alice", new InMemoryLink().a, new ManualClock(), { chains: [setup.adapters.aliceT, other] });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(DuplicateChainError).and.deep.include({ chainId, hubs: [setup.adapters.aliceT.hubAddress, other.hubAddress] });
    expect(String(error)).to.include(`Two adapters for chain ${chainId} (hubs ${setup.adapters.aliceT.hubAddress} and ${other.hubAddress})`);
    // Node prints an uncaught error's own fields after its stack: no "docs: undefined" there.
    expect(inspect(error)).not.to.include("docs");
    expect(inspect(new HubNotDeployedError({ chainId, hub: registry }))).to.include("docs: 'docs/TIMING.md#local-chains'");
  });

  it("exports the hub's lock outcomes in the order of the contract's enum, and README says a cooperative close leaves them Unresolved", function () {
    const source = readFileSync(join(PROJECT_ROOT, "contracts/types/ChannelTypes.sol"), "utf8");
    const members = /enum TransferOutcome \{([^}]*)\}/.exec(source)![1]!.replace(/\/\/\/[^\n]*/g, "").split(",").map((m) => m.trim());
    expect(Object.entries(TransferOutcome)).to.deep.equal(members.map((m, i) => [m, BigInt(i)]));
    expect(readFileSync(join(PROJECT_ROOT, "README.md"), "utf8").replace(/\s+/g, " ")).to.match(/after a cooperative close.{0,120}Unresolved/i);
  });

  it("refuses a swap on a channel with a deposit count of an older version in progress as busy, not closing", async function () {
    const setup = await fundedChannels();
    const { alice } = await twoParties(setup);
    alice.store.saveChannelOp(setup.sId, { kind: "deposits", role: "requester", seq: 1n, since: 0, sentAt: 0 });
    let error: unknown;
    await alice.client.propose({ source: setup.sId, target: setup.tId, give: ONE, take: ONE / 10n }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(ChannelBusyError).and.not.be.instanceOf(ChannelClosingError);
    expect(String(error)).to.match(/a deposit count in progress; propose again once syncDeposits has resolved on both clients/);
  });
});

describe("one confirmations default", function () {
  it("is 0 on the local chains and DEFAULT_CONFIRMATIONS elsewhere, and README and docs/TIMING.md say the same", function () {
    expect([...LOCAL_CHAIN_IDS]).to.deep.equal([31337n, 31338n]);
    for (const id of LOCAL_CHAIN_IDS) expect(defaultConfirmations(id)).to.equal(0);
    expect(defaultConfirmations(1n)).to.equal(DEFAULT_CONFIRMATIONS);
    const ids = [...LOCAL_CHAIN_IDS].join(" and ");
    for (const doc of ["README.md", "docs/TIMING.md", "docs/NODE.md"]) {
      const text = readFileSync(join(PROJECT_ROOT, doc), "utf8").replace(/\s+/g, " ").replaceAll("`", "");
      expect(text, doc).to.include(`DEFAULT_CONFIRMATIONS (${DEFAULT_CONFIRMATIONS}`);
      expect(text, doc).to.include(`0 on the local chains (${ids}`);
      expect(text, doc).not.to.match(/DEFAULT_CONFIRMATIONS = \d/);
    }
  });
});
