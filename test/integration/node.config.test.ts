/** The node's configuration file, amounts in token units, and the CLI's durations: pure checks, no chain. */
import { expect } from "chai";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZeroAddress } from "ethers";

import { duration, parseDuration, when } from "../../sdk/cli/format.js";
import { channels, CHANNELS_BIN } from "../helpers/cli.js";
import { freePort, PROJECT_ROOT, until } from "../helpers/nodes.js";
import { spawnChild, stopChild } from "../helpers/processes.js";
import { requiredEnv } from "../../sdk/node/config.js";
import { ConfigError, EnvVarError, PrivateKeyError, UsageError } from "../../sdk/node/errors.js";
import { privateKeyFromEnv } from "../../sdk/node/keys.js";
import { keystoreScryptN, STANDARD_SCRYPT_N } from "../../sdk/node/keystore.js";
import { moveStore } from "../../sdk/node/move.js";
import { loadNodeConfig, type NodeConfig } from "../../sdk/node/node-config.js";
import { AssetBook, formatAmount } from "../../sdk/node/units.js";
import { Store } from "../../sdk/store/store.js";

const HUB = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
const minimal = {
  key: { env: "NODE_KEY" },
  store: "node.sqlite",
  peer: { port: 9701 },
  api: { port: 9702 },
  chains: { source: { rpcUrl: "http://127.0.0.1:8545", hub: HUB, assets: { ETH: { address: ZeroAddress } } } },
};

describe("node configuration, amounts and durations", function () {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "node-config-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (data: unknown) => {
    const file = join(dir, "node.json");
    writeFileSync(file, JSON.stringify(data));
    return loadNodeConfig(file);
  };
  const problems = (data: unknown): string[] => {
    try {
      load(data);
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      return (error as Error).message.split("\n").map((l) => l.replace(/^.*node\.json: /, ""));
    }
    return expect.fail("expected a ConfigError");
  };

  it("defaults deny: no peers, no channel terms, no swaps", function () {
    const c = load(minimal);
    expect(c.peers).to.deep.equal({});
    expect(c.policy.channels.accept).to.deep.equal([]);
    expect(c.policy.swaps).to.deep.equal({ pairs: [], maxInFlight: 0 });
    expect(c.api.host).to.equal("127.0.0.1");
    expect(c.store).to.equal(join(dir, "node.sqlite"));
    // What the peer port takes from the network at once (docs/NODE.md, "Limits on the peer port").
    expect(c.peer.limits).to.deep.equal({ maxConnections: 256, maxConnectionsPerAddress: 16, maxRequests: 32, maxBufferedBytes: 32 << 20, requestTimeoutMs: 5000, maxQueuedPerPeer: 4096, maxQueuedChars: 16 << 20 });
    expect(c.peer.publicUrl).to.equal(undefined);
  });

  it("reports every problem, one line each, naming the field", function () {
    expect(
      problems({
        ...minimal,
        peer: { port: "9" },
        api: { port: 9702, host: "0.0.0.0" },
        chains: { source: { ...minimal.chains.source, hub: "0x12" } },
        policy: { swaps: { pairs: [{ give: "ETH@source", take: "DOGE@target", maxRate: "1", maxAmount: "1" }] } },
        extra: 1,
      }),
    ).to.have.members([
      'peer.port: expected a whole number, from 0 to 65535, got "9"',
      'chains.source.hub: expected an address, got "0x12"',
      "extra: unknown field",
    ]);
    // Once the shape is right, what depends on other fields: a public API address, an asset no chain names.
    expect(
      problems({ ...minimal, api: { port: 9702, host: "0.0.0.0" }, policy: { swaps: { pairs: [{ give: "ETH@source", take: "DOGE@target", maxRate: "1", maxAmount: "1" }] } } }),
    ).to.deep.equal([
      'api.host: "0.0.0.0" is not loopback; set api.allowRemote to true to serve the API there',
      "policy.swaps.pairs[0].take: no asset DOGE@target in chains",
    ]);
    expect(load({ ...minimal, api: { port: 9702, host: "0.0.0.0", allowRemote: true } }).api.host).to.equal("0.0.0.0");
  });

  it("names a missing key as missing, and a key of another shape with the two shapes it takes", function () {
    const { key: _, ...keyless } = minimal;
    expect(problems(keyless)).to.deep.equal(["key: missing"]);
    const shapes = 'expected { "keystore": "<file>", "passwordEnv"?: "<VARIABLE>" } or { "env": "<VARIABLE>" }';
    expect(problems({ ...minimal, key: `0x${"11".repeat(32)}` })).to.deep.equal([`key: ${shapes}, got a string of 66 characters (not shown)`]);
    expect(problems({ ...minimal, key: {} })).to.deep.equal([`key: ${shapes}, got an object`]);
    expect(problems({ ...minimal, key: { keystore: 5 } })).to.deep.equal([`key: ${shapes}, got an object`]);
    // One shape matched but for a field: that field is named.
    expect(problems({ ...minimal, key: { env: "NODE_KEY", passwordEnv: "X" } })).to.deep.equal(["key.passwordEnv: unknown field"]);
  });

  it("refuses a database URL that carries a password, in its user part or in its query (the driver reads both), in node.json and in store move", function () {
    const line = "store: a password in the URL; give it in PGPASSWORD or ~/.pgpass instead, so that it is in no file the node prints or copies";
    for (const store of ["postgres://alice:secret@db:5432/alice", "postgres://alice@db:5432/alice?password=secret", "postgresql://alice@db/alice?sslmode=require&sslpassword=secret"]) {
      expect(problems({ ...minimal, store }), store).to.deep.equal([line]);
      expect(() => moveStore({ store: join(dir, "node.sqlite") } as unknown as NodeConfig, `0x${"11".repeat(32)}`, store), store).to.throw(UsageError, /^<url>: a password in the URL/);
    }
    expect(load({ ...minimal, store: "postgres://alice@db:5432/alice?sslmode=require" }).store).to.equal("postgres://alice@db:5432/alice?sslmode=require");
  });

  it("store move to a server that does not answer: says so, without telling to create a database", async function () {
    const file = join(dir, "move-nowhere.sqlite");
    new Store(file).close();
    const url = `postgres://channels@127.0.0.1:${await freePort()}/alice`; // nothing listens there
    expect(() => moveStore({ store: file } as unknown as NodeConfig, `0x${"11".repeat(32)}`, url))
      .to.throw(/^<url>: cannot use the database postgres:\/\/channels@127\.0\.0\.1:\d+\/alice: .*ECONNREFUSED[^()]*\)$/);
  });

  it("refuses a swap pair without maxRate or maxAmount: naming a pair never means any price or any size", function () {
    const lines = problems({ ...minimal, policy: { swaps: { pairs: [{ give: "ETH@source", take: "ETH@target" }] } } });
    expect(lines.some((l) => l.startsWith("policy.swaps.pairs[0].maxRate:"))).to.equal(true, lines.join("\n"));
    expect(lines.some((l) => l.startsWith("policy.swaps.pairs[0].maxAmount:"))).to.equal(true, lines.join("\n"));
  });

  it("reads amounts in token units with their symbol and chain, and writes them back", function () {
    const book = new AssetBook({ source: { ...load(minimal).chains.source!, chainId: 31337n } });
    const a = book.amount("10.5 ETH@source", "give");
    expect(a.amount).to.equal(105n * 10n ** 17n);
    expect(formatAmount(a.amount, a.asset)).to.equal("10.5 ETH@source");
    expect(() => book.amount("1 DOGE@source", "give")).to.throw(UsageError, /^give: no asset DOGE on source \(known: ETH\)$/);
    expect(() => book.amount("1 ETH@moon", "take")).to.throw(UsageError, /^take: no chain moon/);
    expect(() => book.amount("0.0000000000000000001 ETH@source", "give")).to.throw(UsageError, /more than 18 decimals/);
    expect(() => book.amount("ten ETH@source", "give")).to.throw(UsageError, /expected an amount/);
  });

  it("takes constructor, toString and other names every object inherits as unknown, like any other name", function () {
    const book = new AssetBook({ source: { ...load(minimal).chains.source!, chainId: 31337n } });
    for (const name of ["constructor", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf"]) {
      expect(() => book.amount(`1 ETH@${name}`, "give"), name).to.throw(UsageError, new RegExp(`^give: no chain ${name} \\(known: source\\)$`));
      expect(() => book.asset(`${name}@source`, "asset"), name).to.throw(UsageError, new RegExp(`^asset: no asset ${name} on source \\(known: ETH\\)$`));
      const lines = problems({ ...minimal, policy: { channels: { accept: [`ETH@${name}`, `${name}@source`] } } });
      expect(lines, name).to.deep.equal([`policy.channels.accept[0]: no asset ETH@${name} in chains`, `policy.channels.accept[1]: no asset ${name}@source in chains`]);
      expect(() => requiredEnv(name, "a value", {}), name).to.throw(EnvVarError, "not set");
      expect(() => privateKeyFromEnv(name, {}), name).to.throw(PrivateKeyError, "not set");
    }
  });

  it("writes keystores at geth's standard scrypt cost, and a weaker one only for local chains, with a warning", function () {
    expect(STANDARD_SCRYPT_N).to.equal(262_144);
    expect(keystoreScryptN(undefined, false)).to.deep.equal({ n: 262_144 });
    expect(keystoreScryptN(undefined, true)).to.deep.equal({ n: 262_144 });
    expect(keystoreScryptN("1048576", false)).to.deep.equal({ n: 1_048_576 });
    for (const weak of ["2", "1024", "131072"]) {
      expect(() => keystoreScryptN(weak, false), weak).to.throw(UsageError, new RegExp(`^--scrypt-n: ${weak} is below 262144 \\(geth's standard\\)`));
      expect(keystoreScryptN(weak, true).warning, weak).to.match(/^--scrypt-n \d+ makes a keystore that is cheap to crack/);
    }
    for (const bad of ["1000", "0", "-4", "2097152", "1e3", "0x400"]) expect(() => keystoreScryptN(bad, true), bad).to.throw(UsageError, /^--scrypt-n: expected a power of two/);
  });

  it("shows durations and dates as people read them", function () {
    expect([duration(45), duration(58 * 60 + 20), duration(2 * 3600 + 5 * 60), duration(3 * 86_400 + 4 * 3600)]).to.deep.equal(["45 s", "58 min", "2 h 5 min", "3 d 4 h"]);
    expect([parseDuration("90s"), parseDuration("10m"), parseDuration("1h"), parseDuration("2d"), parseDuration("soon")]).to.deep.equal([90, 600, 3600, 172_800, undefined]);
    expect(when("2026-12-01T04:00:00Z", Date.parse("2026-12-01T03:02:00Z"))).to.equal("2026-12-01 04:00 UTC (in 58 min)");
  });

  it("the binary: a bad configuration is one line and exit 2, the stack only with --verbose", async function () {
    const bad = join(dir, "watch.json");
    writeFileSync(bad, JSON.stringify({ store: "t.sqlite", chains: [{ rpcUrl: "ftp://x", hub: HUB }] }));
    const r = await channels(["watch", "--watch-config", bad]);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim()).to.match(/^error: .*watch\.json: chains\[0\]\.rpcUrl: expected an http\(s\) URL, got "ftp:\/\/x"$/);
    const verbose = await channels(["--verbose", "--config", join(dir, "missing.json"), "info"]);
    expect(verbose.code).to.equal(2);
    expect(verbose.stderr).to.match(/^error: .*missing\.json: cannot read it: no such file\n/);
    expect(verbose.stderr).to.match(/\n\s+at /);
  });

  it("the binary: a node whose chain does not answer at start waits, saying so in its log, which stays JSON lines", async function () {
    // ethers' provider printed "JsonRpcProvider failed to detect network ..." on stdout every second meanwhile.
    const closed = await freePort(); // nothing listens there
    const config = join(dir, "silent-chain.json");
    writeFileSync(config, JSON.stringify({ ...minimal, store: "silent.sqlite", peer: { port: await freePort() }, api: { port: await freePort() }, chains: { source: { ...minimal.chains.source, rpcUrl: `http://127.0.0.1:${closed}` } } }));
    const child = spawnChild(process.execPath, [CHANNELS_BIN, "--config", config, "node", "start"], { cwd: PROJECT_ROOT, env: { ...process.env, NODE_KEY: `0x${"11".repeat(32)}` }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
    try {
      await until("the chainWaiting line", async () => (stdout.includes('"event":"chainWaiting"') ? true : undefined), 30_000);
      // ethers retried its detection every second: a few of its rounds after the node's line.
      await new Promise((r) => setTimeout(r, 2_500));
    } finally {
      await stopChild(child);
    }
    const lines = stdout.split("\n").filter((l) => l.trim() !== "");
    for (const line of lines) expect(() => JSON.parse(line) as unknown, line).not.to.throw();
    expect(lines.map((l) => (JSON.parse(l) as { event?: string }).event)).to.include("chainWaiting");
  });

  it("the binary: an empty channel or swap id is named as such, not sent to the node as a path it has no route for", async function () {
    for (const args of [["channel", "show", ""], ["channel", "close", "  "], ["channel", "withdraw", ""], ["channel", "deposit", "", "1"], ["swap", "show", ""]]) {
      const what = args[0];
      const r = await channels(["--config", join(dir, "missing.json"), ...args]);
      expect([r.code, r.stderr], args.join(" ")).to.deep.equal([2, `error: ${what}: expected a ${what} id, or its first 6 or more hex digits after 0x, got ${JSON.stringify(args[2])}\n`]);
    }
  });

  it("the binary: a misspelt option is named as unknown, with the option meant, not reported as a required one missing", async function () {
    const typo = await channels(["swap", "propose", "--peer", "bob", "--gve", "1 ETH@source", "--take", "1 ETH@target"]);
    expect([typo.code, typo.stderr]).to.deep.equal([2, "error: unknown option '--gve' (Did you mean --give?)\n"]);
    const missing = await channels(["swap", "propose", "--peer", "bob", "--take", "1 ETH@target"]);
    expect([missing.code, missing.stderr]).to.deep.equal([2, "error: required option '--give <amount>' not specified\n"]);
  });

  it("the binary: init refuses two key sources at once and a short keystore password, writing nothing", async function () {
    const both = await channels(["init", "--dir", join(dir, "both"), "--local-account", "3", "--key-env", "NOPE", "--source-hub", HUB, "--target-hub", HUB], { CHANNELS_PASSWORD: "long enough" });
    expect(both.code).to.equal(2);
    expect(both.stderr.trim()).to.equal("error: --local-account and --key-env: give one of them, not both");
    const short = await channels(["init", "--dir", join(dir, "short"), "--local-account", "3", "--scrypt-n", "1024", "--source-hub", HUB, "--target-hub", HUB], { CHANNELS_PASSWORD: "x" });
    expect(short.code).to.equal(2);
    expect(short.stderr).to.match(/^error: CHANNELS_PASSWORD: a keystore password has at least 8 characters$/m);
    expect(existsSync(join(dir, "short", "keystore.json"))).to.equal(false);
  });

  it("the binary: init for a chain off this machine takes no hub of the local deployment and no test account, and names what to set", async function () {
    const remote = ["--source-rpc", "https://rpc.example.org/v2/secret", "--target-rpc", "http://127.0.0.1:8546"];
    const env = { CHANNELS_PASSWORD: "long enough", REAL_KEY: `0x${"11".repeat(32)}` };
    const noHub = await channels(["init", "--dir", join(dir, "remote-nohub"), "--key-env", "REAL_KEY", ...remote, "--target-hub", HUB], env);
    expect([noHub.code, noHub.stderr]).to.deep.equal([
      2,
      "error: --source-hub: required for a chain not on this machine (https://rpc.example.org): the hub deployed on it (npm run deploy prints it)\n",
    ]);
    const testAccount = await channels(["init", "--dir", join(dir, "remote-test-account"), "--local-account", "1", ...remote, "--source-hub", HUB, "--target-hub", HUB], env);
    expect([testAccount.code, testAccount.stderr]).to.deep.equal([
      2,
      "error: --local-account: the test mnemonic's keys are public (anyone can take what its accounts hold), for the local chains only, and https://rpc.example.org is not on this machine; give --key-env, or neither for a new random key\n",
    ]);
    const noScheme = await channels(["init", "--dir", join(dir, "remote-no-scheme"), "--key-env", "REAL_KEY", "--source-rpc", "rpc.example.org", "--source-hub", HUB, "--target-hub", HUB], env);
    expect([noScheme.code, noScheme.stderr]).to.deep.equal([2, 'error: --source-rpc: expected an http(s) URL, got "rpc.example.org"\n']);
    for (const folder of ["remote-nohub", "remote-test-account", "remote-no-scheme"]) expect(existsSync(join(dir, folder)), folder).to.equal(false);
    const written = await channels(["init", "--dir", join(dir, "remote"), "--key-env", "REAL_KEY", ...remote, "--source-hub", HUB, "--target-hub", HUB], env);
    expect(written.code, written.stderr).to.equal(0);
    expect(written.stderr).to.equal(
      "warning: chains.source (https://rpc.example.org) is not on this machine: node.json gives it the local chains' confirmations 0, finalitySeconds 12 and inclusionSeconds 60; set that chain's own before the node starts (docs/CHAINS.md)\n",
    );
    expect(existsSync(join(dir, "remote", "node.json"))).to.equal(true);
  });

  it("the binary: init refuses a keystore below the standard scrypt cost for chains off this machine, writing nothing", async function () {
    for (const n of ["1024", "131072"]) {
      const folder = join(dir, `weak-${n}`);
      const r = await channels(
        ["init", "--dir", folder, "--local-account", "3", "--scrypt-n", n, "--source-rpc", "https://rpc.example.org", "--source-hub", HUB, "--target-hub", HUB],
        { CHANNELS_PASSWORD: "long enough" },
      );
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stderr.trim()).to.match(new RegExp(`^error: --scrypt-n: ${n} is below 262144 \\(geth's standard\\) .*local chains only`));
      expect(r.stderr.trim().split("\n")).to.have.length(1);
      expect(existsSync(join(folder, "keystore.json"))).to.equal(false);
      expect(existsSync(join(folder, "node.json"))).to.equal(false);
    }
  });
});
