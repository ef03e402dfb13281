/**
 * A deep reorganisation's hold is kept in the store (ChainHealth, sdk/node/chain-health.ts) even when the chain check
 * that sees it runs while the client has a transaction open on the same store: a protocol step is a savepoint of the
 * open group's transaction and awaits chain reads (a count of deposits reads the hub at the final block), so the check,
 * on its own timer, writes in the middle of it. A step that then fails rolls back to its savepoint, and a write made
 * there goes with it. The operator's release, likewise, must not come back after a restart. A chain stands in for the
 * endpoint: block hashes a test can change.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";

import type { HubAdapter } from "../../sdk/index.js";
import { ChainHealth } from "../../sdk/node/chain-health.js";
import type { NodeConfig } from "../../sdk/node/node-config.js";
import { Store } from "../../sdk/store/store.js";

const CHAIN_ID = 31_471n;
const CONFIRMATIONS = 2;

/** A chain of `head + 1` blocks whose hashes a test can change (a reorganisation), as an endpoint shows it. */
class FakeChain {
  head = 20;
  private readonly forks = new Map<number, string>();
  hash(n: number): string {
    return this.forks.get(n) ?? `0x${n.toString(16).padStart(64, "0")}`;
  }
  /** Replaces blocks `from` and above with other ones. */
  reorganise(from: number): void {
    for (let n = from; n <= this.head; n++) this.forks.set(n, `0x${"f".repeat(56)}${n.toString(16).padStart(8, "0")}`);
  }
  readonly provider = {
    getBlock: async (tag: number | "latest") => {
      const n = tag === "latest" ? this.head : tag;
      return n > this.head ? null : { number: n, hash: this.hash(n), timestamp: 1_700_000_000 + n, baseFeePerGas: 1n };
    },
    getBalance: async () => 10n ** 18n,
  };
}

describe("a deep reorganisation's hold in the store", function () {
  let dir: string;
  let store: Store;
  let chain: FakeChain;
  const config = { timing: { chainCheckSeconds: 5 }, chains: { s: { rpcUrl: "http://127.0.0.1:1" } } } as unknown as NodeConfig;
  const healthOf = () =>
    new ChainHealth({
      config, log: pino({ level: "silent" }), address: `0x${"11".repeat(20)}`, store,
      chainIds: new Map([["s", CHAIN_ID]]),
      adapters: new Map([[CHAIN_ID, { provider: chain.provider, confirmations: CONFIRMATIONS } as unknown as HubAdapter]]),
    });

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "chain-holds-"));
    store = new Store(join(dir, "node.sqlite"));
    chain = new FakeChain();
  });

  afterEach(function () {
    if (store.isOpen()) store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** What a protocol step does around its work (group-commit.ts, `atomically`): a savepoint, then a rollback to it. */
  async function insideFailedStep(work: () => Promise<void>): Promise<void> {
    store.begin();
    store.savepoint();
    await work();
    store.rollbackToSavepoint(); // the step failed (a chain read that threw): its writes are undone
    store.commit(); // the group's other steps commit
  }

  it("is kept across a restart when the check that saw it ran inside a client's step that then rolled back", async function () {
    const health = healthOf();
    await health.check(); // the final block (head - 2) is kept
    chain.reorganise(10);
    await insideFailedStep(() => health.check());
    expect(health.hold(CHAIN_ID), "held now").to.match(/reorganised deeper than its 2 confirmations/);
    chain.head++;
    await health.check(); // the next check, no step open
    store.close();
    store = new Store(join(dir, "node.sqlite"));
    expect(healthOf().hold(CHAIN_ID), "held after a restart").to.match(/until the operator releases it/);
  });

  it("stays released across a restart when the operator released it while a client's step was open that then rolled back", async function () {
    const health = healthOf();
    await health.check();
    chain.reorganise(10);
    await health.check();
    expect(healthOf().hold(CHAIN_ID), "kept in the store").to.not.equal(undefined);
    await insideFailedStep(async () => void health.release("s"));
    expect(health.hold(CHAIN_ID), "released now").to.equal(undefined);
    await health.check();
    store.close();
    store = new Store(join(dir, "node.sqlite"));
    expect(healthOf().hold(CHAIN_ID), "still released after a restart").to.equal(undefined);
  });

  it("is kept once the store takes writes again when the write failed when the reorganisation was seen", async function () {
    const health = healthOf();
    await health.check();
    chain.reorganise(10);
    const save = store.saveChainHold.bind(store);
    store.saveChainHold = () => {
      throw new Error("database is locked");
    };
    await health.check();
    store.saveChainHold = save;
    expect(health.hold(CHAIN_ID), "held in memory").to.not.equal(undefined);
    await health.check();
    store.close();
    store = new Store(join(dir, "node.sqlite"));
    expect(healthOf().hold(CHAIN_ID), "held after a restart").to.not.equal(undefined);
  });
});
