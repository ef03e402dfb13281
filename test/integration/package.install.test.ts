import { expect } from "chai";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

import { accountKey } from "../../scripts/lib/local.js";
import { PROJECT_ROOT, startHardhatNode, type LocalNode } from "../helpers/nodes.js";
import { spawnChild } from "../helpers/processes.js";

/** Runs a command to its end; resolves with its output, rejects with it on a non-zero exit. */
function run(command: string, args: readonly string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    // The npm and node on PATH after this Node's own directory, so a child runs the same Node as the tests.
    const path = `${dirname(process.execPath)}:${process.env.PATH ?? ""}`;
    // Nothing of this project's Hardhat run (its config path, its options) leaks into the consumer's.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HARDHAT_")));
    const child = spawnChild(command, args, { cwd, env: { ...inherited, PATH: path, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(" ")} exited with ${code}:\n${out}`))));
  });
}

const ours = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const EXAMPLE = join(PROJECT_ROOT, "examples/escrow");
type Manifest = { dependencies: Record<string, string>; devDependencies: Record<string, string> };

/**
 * The package, packed once, installed into a copy of examples/escrow (a complete consumer project: a contract on
 * IChannelHub, its tests, a swap script), where each test runs something a consumer runs. Everything but the tarball
 * comes from the npm registry, at the versions the example pins (the same as this project's).
 */
describe("the npm package, installed into the example project examples/escrow", function () {
  let dir: string;
  let example: string;
  let files: string[];
  let chains: LocalNode[] = [];

  before(async function () {
    // `npm test` builds dist/ and abi/ before the tests run (`prepack` does the same for `npm pack` alone).
    for (const built of ["dist/sdk/index.js", "dist/sdk/index.d.ts", "abi/ChannelHub.json"]) {
      if (!existsSync(join(PROJECT_ROOT, built))) throw new Error(`${built} is missing: run npm run build:package first`);
    }
    dir = mkdtempSync(join(tmpdir(), "package-consumer-"));
    const packed = JSON.parse(await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], PROJECT_ROOT)) as {
      filename: string;
      files: { path: string }[];
    }[];
    files = packed[0]!.files.map((f) => f.path);
    // The example as a newcomer copies it (what a local run of it left behind stays out), the tarball by its path.
    example = join(dir, "escrow");
    const leftOut = new Set(["node_modules", "artifacts", "cache", "types", "package-lock.json"]);
    cpSync(EXAMPLE, example, { recursive: true, filter: (src) => !leftOut.has(basename(src)) || dirname(src) !== EXAMPLE });
    cpSync(join(PROJECT_ROOT, "test/fixtures/package-consumer/digest.mjs"), join(example, "digest.mjs"));
    const manifest = JSON.parse(readFileSync(join(example, "package.json"), "utf8")) as Manifest;
    manifest.dependencies[ours.name] = `file:${join(dir, packed[0]!.filename)}`;
    writeFileSync(join(example, "package.json"), JSON.stringify(manifest, null, 2));
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], example);
    chains = await Promise.all([startHardhatNode(31337n), startHardhatNode(31338n)]);
  });

  after(async function () {
    await Promise.all(chains.map((c) => c.stop()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("is the example as committed: the tarball of this version, and this project's versions of what both use", function () {
    const manifest = JSON.parse(readFileSync(join(EXAMPLE, "package.json"), "utf8")) as Manifest;
    expect(manifest.dependencies[ours.name]).to.equal(`file:../../${ours.name}-${ours.version}.tgz`);
    expect(ours.dependencies.ethers).to.equal(`^${manifest.dependencies.ethers}`);
    for (const [name, version] of Object.entries(manifest.devDependencies)) {
      expect(version, name).to.equal(ours.devDependencies[name]);
    }
  });

  it("ships the compiled SDK and CLI with types, the Solidity sources, ABIs and TypeChain types, and no tests", function () {
    for (const f of ["dist/sdk/index.js", "dist/sdk/index.d.ts", "dist/sdk/contracts.d.ts", "contracts/interfaces/IChannelHub.sol", "abi/ChannelHub.json", "abi/SecretRegistry.json", "CHANGELOG.md"]) {
      expect(files).to.include(f);
    }
    expect(files.filter((f) => f.startsWith("test/") || f.startsWith("contracts/test/") || f.endsWith(".ts") && !f.endsWith(".d.ts"))).to.deep.equal([]);
    expect(files.filter((f) => f.startsWith("dist/typechain-types/test/") || f.includes("factories/test/"))).to.deep.equal([]);
  });

  it("compiles, type-checks and tests the example's contract on IChannelHub, imported by package path", async function () {
    const out = await run("npm", ["test"], example);
    expect(out).to.match(/3 passing \(3 mocha\)/);
    // What it compiled is said, and nothing says there was nothing to compile (a second compile did, before).
    expect(out).to.match(/Compiled 1 Solidity file/).and.not.to.include("No contracts to compile");
    const artifact = JSON.parse(readFileSync(join(example, "artifacts/contracts/ChannelEscrow.sol/ChannelEscrow.json"), "utf8")) as { abi: { name?: string }[] };
    expect(artifact.abi.map((f) => f.name)).to.include.members(["openFor", "lockPaid", "secretRevealedInTime"]);
  });

  it("runs the example's swap script: one swap between two local chains, then both channels closed cooperatively", async function () {
    const [s, t] = chains;
    const out = await run("npm", ["run", "--silent", "swap"], example, { CHAIN_S_URL: s!.url, CHAIN_T_URL: t!.url });
    const line = out.split("\n").find((l) => l.startsWith("{"));
    expect(JSON.parse(line ?? "{}")).to.deep.include({ outcome: "swapped", paidOnS: ["0.7", "0.3"], paidOnT: ["0.2", "0.8"] });
    expect(out, "nothing else printed").to.equal(`${line}\n`);
  });

  it("prints the reason of a swap Bob's policy refuses, as the example's README says", async function () {
    const [s, t] = chains;
    // What a newcomer tries first: take 0.6, above the 0.5 Bob's policy in the script allows in one swap.
    const script = readFileSync(join(example, "scripts/swap.ts"), "utf8");
    const more = script.replace('take: parseEther("0.2")', 'take: parseEther("0.6")');
    expect(more, "the script's take").not.to.equal(script);
    writeFileSync(join(example, "scripts/swap-more.ts"), more);
    const flags = ["--experimental-strip-types", "--disable-warning=ExperimentalWarning"];
    const out = await run(process.execPath, [...flags, "scripts/swap-more.ts"], example, { CHAIN_S_URL: s!.url, CHAIN_T_URL: t!.url });
    const line = out.split("\n").find((l) => l.startsWith("{"));
    const reason = "counterparty: more than 0.5 in one swap";
    expect(JSON.parse(line ?? "{}")).to.deep.include({ outcome: "aborted", reason, paidOnS: ["1.0", "0.0"], paidOnT: ["0.0", "1.0"] });
    const readme = readFileSync(join(EXAMPLE, "README.md"), "utf8").replace(/\s+/g, " ");
    expect(readme).to.include(`"outcome":"aborted","reason":"${reason}"`).and.include("The limit is the `policy` option in the script's `party()`");
  });

  it("refuses, in one line naming the variable, a chain URL without http:// and two URLs at one chain", async function () {
    const [s, t] = chains;
    /** The swap script's output when it exits with an error (one line), or a failure when it does not. */
    const refusal = (env: Record<string, string>) =>
      run("npm", ["run", "--silent", "swap"], example, env).then(
        (out) => expect.fail(`the script ran: ${out}`),
        (error: Error) => error.message.slice(error.message.indexOf(":\n") + 2),
      );
    const bare = s!.url.replace(/^http:\/\//, "");
    expect(await refusal({ CHAIN_S_URL: bare, CHAIN_T_URL: t!.url })).to.equal(`error: CHAIN_S_URL=${bare} needs http:// or https:// (e.g. http://${bare})\n`);
    // Both at chain 31338: the client refuses two adapters for one chain id (DuplicateChainError), before any channel.
    expect(await refusal({ CHAIN_S_URL: t!.url, CHAIN_T_URL: t!.url })).to.equal(
      `error: CHAIN_S_URL (${t!.url}) and CHAIN_T_URL (${t!.url}) are both chain 31338: the swap needs two different chains\n`,
    );
  });

  it("imports the package without Node's SQLite warning when no store is opened", async function () {
    const out = await run(process.execPath, ["--input-type=module", "-e", `await import("${ours.name}"); console.log("imported");`], example);
    expect(out).to.equal("imported\n");
  });

  it("runs the SDK from plain JavaScript, and its state digest equals the hub's on a local chain", async function () {
    const out = await run(process.execPath, ["digest.mjs"], example, { RPC_URL: chains[0]!.url, DEPLOYER_KEY: accountKey(0) });
    const line = out.split("\n").find((l) => l.startsWith("{"));
    const { local, onChain } = JSON.parse(line ?? "{}") as { local?: string; onChain?: string };
    expect(local).to.match(/^0x[0-9a-f]{64}$/);
    expect(local).to.equal(onChain);
  });

  it("runs the channels CLI from the installed package with no TypeScript loader", async function () {
    const out = await run(join(example, "node_modules/.bin/channels"), ["--help"], example);
    expect(out).to.match(/^Usage: channels/m);
    for (const command of ["init", "node", "channel", "swap", "watch"]) expect(out).to.match(new RegExp(`^  ${command}\\b`, "m"));
    expect(files).to.include("bin/channels.mjs");
    expect(files).to.include("dist/sdk/cli/main.js");
  });

  it("falls back to pure JavaScript when the native add-ons are missing, says so once for each, and still agrees with the hub", async function () {
    for (const addOn of ["keccak", "secp256k1"]) rmSync(join(example, "node_modules", addOn), { recursive: true, force: true });
    const out = await run(process.execPath, ["digest.mjs"], example, { RPC_URL: chains[0]!.url, DEPLOYER_KEY: accountKey(0) });
    const warnings = out.split("\n").filter((l) => l.includes("ChannelsPureJsCrypto"));
    expect(warnings).to.have.length(2);
    expect(warnings.join("\n")).to.match(/keccak: the native add-on did not load/).and.match(/secp256k1: the native add-on did not load/);
    const { local, onChain } = JSON.parse(out.split("\n").find((l) => l.startsWith("{")) ?? "{}") as { local?: string; onChain?: string };
    expect(local).to.match(/^0x[0-9a-f]{64}$/);
    expect(local).to.equal(onChain);
  });
});
