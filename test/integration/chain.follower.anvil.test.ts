/**
 * Following a chain by its heads and logs (sdk/chain/follower.ts), against anvil mining only when asked: what a step
 * costs (requests counted by a proxy between the follower and the chain), which channels a step names, and a log
 * taken out by a reorganisation within the window named again.
 */
import { expect } from "chai";
import { hexlify, randomBytes, Wallet, ZeroAddress, type JsonRpcProvider } from "ethers";

import { ChainFollower, hashlockOf, HubAdapter, rpcProvider, type ChannelParams, type Hex } from "../../sdk/index.js";
import { accountKey, deployHub } from "../../scripts/lib/local.js";
import { RpcCounter } from "../../scripts/lib/rpc-counter.js";
import { Following } from "../../sdk/coordinator/following.js";
import { anvilProvider, startAnvil, type Anvil } from "../helpers/anvil.js";

describe("following a chain by its heads and its hub's logs (anvil)", function () {
  this.timeout(60_000);
  let anvil: Anvil;
  let deployer: JsonRpcProvider;
  let counter: RpcCounter;
  let provider: JsonRpcProvider;
  let alice: HubAdapter;
  let follower: ChainFollower;
  const channels: Hex[] = [];
  const params: ChannelParams[] = [];

  const mine = (n = 1) => anvil.rpc("anvil_mine", [n]);
  /** What one follower step cost, by method, and what it found. */
  async function counted() {
    const before = counter.snapshot();
    const step = await follower.step();
    return { step, cost: RpcCounter.between(before, counter.snapshot()) };
  }

  before(async function () {
    anvil = await startAnvil({ chainId: 31_431 });
    deployer = anvilProvider(anvil);
    const hub = await deployHub(deployer);
    counter = await RpcCounter.start(anvil.url);
    provider = rpcProvider(counter.url);
    alice = await HubAdapter.connect(hub, new Wallet(accountKey(1), provider), { confirmations: 2 });
    const bob = new Wallet(accountKey(2)).address;
    for (let i = 0; i < 3; i++) {
      const p: ChannelParams = { participants: [new Wallet(accountKey(1)).address as Hex, bob as Hex], payees: [ZeroAddress as Hex, ZeroAddress as Hex], asset: ZeroAddress as Hex, challengePeriod: 3600n, nonce: BigInt(i + 1) };
      params.push(p);
      channels.push(await alice.openAndDeposit(p, 0, 10n ** 15n));
    }
    follower = new ChainFollower(alice);
  });

  after(async function () {
    provider?.destroy();
    deployer?.destroy();
    await counter?.close();
    await anvil?.stop();
  });

  it("costs one request a step without a new block and two with one, whatever the number of channels", async function () {
    const first = await counted();
    expect(first.step.all, "the first step knows nothing of before").to.equal(true);
    const idle = await counted();
    expect(idle.cost.byMethod, "no new block: the head only").to.deep.equal({ eth_getBlockByNumber: 1 });
    expect(idle.step.channels.size).to.equal(0);
    await mine(3);
    const moved = await counted();
    expect(moved.cost.byMethod, "new blocks: the head and one eth_getLogs").to.deep.equal({ eth_getBlockByNumber: 1, eth_getLogs: 1 });
    expect(moved.step.all).to.equal(false);
    expect(moved.step.channels.size, "empty blocks concern no channel").to.equal(0);
    expect(alice.lastNow()! >= moved.step.head.timestamp, "the head's time is the adapter's clock").to.equal(true);
  });

  it("names the channel a new log concerns, and only that one", async function () {
    await alice.deposit(params[1]!, channels[1]!, 0, 1n);
    const { step, cost } = await counted();
    expect([...step.channels]).to.deep.equal([channels[1]!.toLowerCase()]);
    expect(cost.byMethod).to.deep.equal({ eth_getBlockByNumber: 1, eth_getLogs: 1 });
    // Read again in the window at the next block, the same log is not news.
    await mine();
    expect((await counted()).step.channels.size).to.equal(0);
  });

  it("names again a channel whose log a reorganisation within the window took out", async function () {
    await alice.deposit(params[2]!, channels[2]!, 0, 1n);
    expect([...(await counted()).step.channels]).to.deep.equal([channels[2]!.toLowerCase()]);
    // The block with the deposit and the one after it are replaced by empty ones: the chain is as long as before.
    await mine();
    await anvil.reorg(2);
    const { step } = await counted();
    expect(step.reorganised, "a log seen before is gone").to.equal(true);
    expect([...step.channels]).to.deep.equal([channels[2]!.toLowerCase()]);
    expect((await alice.channelInfo(channels[2]!)).deposits[0], "the deposit left the chain").to.equal(10n ** 15n);
  });

  it("reports a secret the registry logged", async function () {
    const secret = hexlify(randomBytes(32)) as Hex;
    await alice.reveal(secret);
    const { step } = await counted();
    expect(step.reveals.map((r) => [r.hashlock, r.secret])).to.deep.equal([[hashlockOf(secret), secret]]);
    expect(step.channels.size).to.equal(0);
  });

  it("reads a channel once for overlapping ticks, and again only once a log concerns it", async function () {
    // Ticks may overlap (a client's timer does not wait for the last tick): each asks for every channel it follows.
    const following = new Following(() => alice);
    const chainId = alice.chainId;
    // Two steps: the second one's window (sized from the blocks' times) takes in the earlier tests' logs.
    await following.step([chainId]);
    await mine();
    await following.step([chainId]);
    const before = counter.snapshot();
    const reads = await Promise.all([0, 1, 2, 3].flatMap(() => channels.map((id) => following.info(chainId, id))));
    expect(RpcCounter.between(before, counter.snapshot()).byMethod.eth_call, "one read per channel, however many ticks ask").to.equal(channels.length);
    expect(reads.slice(0, channels.length)).to.deep.equal(reads.slice(channels.length, 2 * channels.length));
    await alice.deposit(params[0]!, channels[0]!, 0, 1n);
    await following.step([chainId]);
    const after = counter.snapshot();
    const again = await Promise.all(channels.map((id) => following.info(chainId, id)));
    expect(RpcCounter.between(after, counter.snapshot()).byMethod.eth_call, "only the channel the deposit's log names").to.equal(1);
    expect(again[0]!.deposits[0]).to.equal(reads[0]!.deposits[0] + 1n);
  });

  it("starts over (every channel read again) after a gap longer than it reads logs for", async function () {
    const short = new ChainFollower(alice, { window: 2, maxRange: 3, maxRequests: 3 });
    await short.step();
    await mine(10);
    const before = counter.snapshot();
    const step = await short.step();
    expect(step.all, "ten blocks behind, nine readable").to.equal(true);
    expect(RpcCounter.between(before, counter.snapshot()).byMethod.eth_getLogs, "only the window is read").to.equal(1);
  });
});
