import { expect } from "chai";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

import { sha256 } from "ethers";

import { InMemoryLink, rpcProvider, Store, type Hex } from "../../sdk/index.js";
import { accountKey, deployHub, localWallet } from "../../scripts/lib/local.js";
import { syncDeposits } from "../../scripts/lib/swap-setup.js";
import { ChannelHub__factory } from "../../typechain-types/index.js";
import { fundedPairOnNodes, runHardhat, runHardhatProcess, startHardhatNode, type LocalNode } from "../helpers/nodes.js";

const ONE = 10n ** 18n;

describe("watch command against two hardhat node processes", function () {
  let nodes: LocalNode[] = [];
  let dir: string;

  before(async function () {
    nodes = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
    dir = mkdtempSync(join(tmpdir(), "watch-cmd-"));
  });
  after(async function () {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes Bob's channels from his client's store and answers Alice's stale force close", async function () {
    const { hubS, hubT, params, a, sId, tId, client, close } = await fundedPairOnNodes(nodes, 7n);
    const link = new InMemoryLink();
    const bobStorePath = join(dir, "bob.sqlite");
    const alice = await client(1, link.a, new Store(":memory:"));
    const bobStore = new Store(bobStorePath);
    await syncDeposits([alice, await client(2, link.b, bobStore)], [sId, tId]);
    for (let i = 0; i < 2; i++) {
      await alice.propose({ source: sId, target: tId, give: ONE, take: ONE / 2n });
      await link.settled();
    }
    bobStore.close(); // Bob's client goes offline
    await a.S.forceClose(params, undefined); // Alice registers the opening deposits on S: stale

    const config = {
      store: join(dir, "tower.sqlite"),
      importFrom: bobStorePath,
      once: true,
      chains: [
        { rpcUrl: nodes[0]!.url, hub: hubS, confirmations: 0 },
        { rpcUrl: nodes[1]!.url, hub: hubT, confirmations: 0 },
      ],
    };
    writeFileSync(join(dir, "watch.json"), JSON.stringify(config));
    const out = await runHardhat(["run", "scripts/watch.ts"], {
      WATCH_CONFIG: join(dir, "watch.json"),
      WATCHTOWER_PRIVATE_KEY: accountKey(3),
    });
    expect(out).to.match(/guarding 2 channel\(s\), 1 open dispute\(s\)/);
    expect(out).to.match(/challenged/);
    expect((await a.S.channelInfo(sId)).seq).to.equal(alice.book.head(sId).seq, "the newest state is registered");
    close();
  });

  it("refuses an importFrom that does not exist, with everything else right, and creates neither store", async function () {
    const S = rpcProvider(nodes[0]!.url);
    const hub = await deployHub(S);
    S.destroy();
    const file = join(dir, "no-import.json");
    writeFileSync(file, JSON.stringify({ store: "no-import-tower.sqlite", importFrom: "carol.sqlite", once: true, chains: [{ rpcUrl: nodes[0]!.url, hub }] }));
    const { code, stdout, stderr } = await runHardhatProcess(["run", "--no-compile", "scripts/watch.ts"], {
      WATCH_CONFIG: file,
      WATCHTOWER_PRIVATE_KEY: accountKey(3),
      NODE_OPTIONS: "--disable-warning=ExperimentalWarning",
    });
    expect(code, stdout + stderr).to.equal(2);
    expect(stderr.trim().split("\n")).to.deep.equal([`error: ${file}: importFrom: no such file: ${join(dir, "carol.sqlite")}`]);
    expect(existsSync(join(dir, "carol.sqlite"))).to.equal(false, "the client's store is never created");
    expect(existsSync(join(dir, "no-import-tower.sqlite"))).to.equal(false);
  });

  it("says once how many secrets its store, written before reveal rules, holds without its client's word", async function () {
    const S = rpcProvider(nodes[0]!.url);
    const hub = await deployHub(S);
    S.destroy();
    const secrets = [1, 2, 3].map((i) => `0x${String(i).repeat(64)}` as Hex);
    // The tower's store as 0.2.x left it (every secret of its client, no rules); the client's store knows two of them.
    const tower = join(dir, "old-tower.sqlite");
    new Store(tower).close();
    const db = new DatabaseSync(tower);
    db.exec("DROP TABLE secrets; CREATE TABLE secrets (hashlock TEXT PRIMARY KEY, secret TEXT NOT NULL)");
    for (const secret of secrets) db.prepare("INSERT INTO secrets VALUES (?, ?)").run(sha256(secret), secret);
    db.close();
    const clientPath = join(dir, "old-tower-client.sqlite");
    const client = new Store(clientPath);
    client.saveSecret(sha256(secrets[0]!) as Hex, secrets[0]!, "may");
    client.saveSecret(sha256(secrets[1]!) as Hex, secrets[1]!, "never");
    client.close();
    const file = join(dir, "old-tower.json");
    writeFileSync(file, JSON.stringify({ store: tower, importFrom: clientPath, once: true, chains: [{ rpcUrl: nodes[0]!.url, hub }] }));
    const { code, stdout, stderr } = await runHardhatProcess(["run", "--no-compile", "scripts/watch.ts"], {
      WATCH_CONFIG: file,
      WATCHTOWER_PRIVATE_KEY: accountKey(3),
      NODE_OPTIONS: "--disable-warning=ExperimentalWarning",
    });
    expect(code, stdout + stderr).to.equal(0);
    expect(stderr.trim().split("\n")).to.deep.equal([
      `${tower}: 1 secret(s) held without the client's word (${clientPath} does not know them); revealed only once a chain shows them`,
    ]);
    const after = new Store(tower);
    expect(secrets.map((x) => after.knownSecret(sha256(x) as Hex)?.reveal)).to.deep.equal(["may", "never", "held"]);
    after.close();
  });

  it("refuses, before the first poll, an address with no contract, a contract that is no hub and a chain named twice", async function () {
    const T = rpcProvider(nodes[1]!.url);
    const registry = await ChannelHub__factory.connect(await deployHub(T), T).secretRegistry();
    T.destroy();
    const nobody = localWallet(9, T).address;
    const config = {
      store: "wrong-hubs.sqlite",
      once: true,
      chains: [
        { rpcUrl: nodes[0]!.url, hub: nobody },
        { rpcUrl: nodes[1]!.url, hub: registry },
        { rpcUrl: nodes[0]!.url, hub: nobody },
      ],
    };
    const file = join(dir, "wrong-hubs.json");
    writeFileSync(file, JSON.stringify(config));
    const { code, stdout, stderr } = await runHardhatProcess(["run", "--no-compile", "scripts/watch.ts"], {
      WATCH_CONFIG: file,
      WATCHTOWER_PRIVATE_KEY: accountKey(3),
      NODE_OPTIONS: "--disable-warning=ExperimentalWarning",
    });
    expect(code, stdout + stderr).to.equal(2);
    expect(stderr.trim().split("\n")).to.deep.equal([
      `error: ${file}: chains[0].hub: no contract at ${nobody} on chain 31337`,
      `error: ${file}: chains[1].hub: the contract at ${registry} on chain 31338 is not a ChannelHub`,
      `error: ${file}: chains[2]: chain 31337 is already chains[0]`,
    ]);
    expect(existsSync(join(dir, "wrong-hubs.sqlite"))).to.equal(false, "the tower's store is created only once the chains check out");
  });
});
