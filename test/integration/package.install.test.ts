import { expect } from "chai";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

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
  devDependencies: Record<string, string>;
};

describe("the npm package, installed into a fresh Hardhat 3 project", function () {
  let dir: string;
  let files: string[];
  let node: LocalNode;

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
    cpSync(join(PROJECT_ROOT, "test/fixtures/package-consumer"), dir, { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "package-consumer", private: true, type: "module" }));
    // Everything but the tarball comes from the npm registry, at the versions this project uses.
    await run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, packed[0]!.filename), `hardhat@${ours.devDependencies.hardhat}`, `solc@${ours.devDependencies.solc}`],
      dir,
    );
    node = await startHardhatNode(31337n);
  });

  after(async function () {
    await node?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("ships the compiled SDK and CLI with types, the Solidity sources, ABIs and TypeChain types, and no tests", function () {
    for (const f of ["dist/sdk/index.js", "dist/sdk/index.d.ts", "dist/sdk/contracts.d.ts", "contracts/interfaces/IChannelHub.sol", "abi/ChannelHub.json", "abi/SecretRegistry.json", "CHANGELOG.md"]) {
      expect(files).to.include(f);
    }
    expect(files.filter((f) => f.startsWith("test/") || f.startsWith("contracts/test/") || f.endsWith(".ts") && !f.endsWith(".d.ts"))).to.deep.equal([]);
    expect(files.filter((f) => f.startsWith("dist/typechain-types/test/") || f.includes("factories/test/"))).to.deep.equal([]);
  });

  it("compiles a contract that imports IChannelHub.sol by package path and calls transferOutcome", async function () {
    const cli = join(dir, "node_modules/hardhat/dist/src/cli.js");
    await run(process.execPath, [cli, "build"], dir);
    const artifact = JSON.parse(readFileSync(join(dir, "artifacts/contracts/Escrow.sol/Escrow.json"), "utf8")) as { abi: { name?: string }[] };
    expect(artifact.abi.map((f) => f.name)).to.include("paid");
  });

  it("runs the SDK from plain JavaScript, and its state digest equals the hub's on a local chain", async function () {
    const out = await run(process.execPath, ["digest.mjs"], dir, { RPC_URL: node.url, DEPLOYER_KEY: accountKey(0) });
    const line = out.split("\n").find((l) => l.startsWith("{"));
    const { local, onChain } = JSON.parse(line ?? "{}") as { local?: string; onChain?: string };
    expect(local).to.match(/^0x[0-9a-f]{64}$/);
    expect(local).to.equal(onChain);
  });

  it("runs the channels CLI from the installed package with no TypeScript loader", async function () {
    const out = await run(join(dir, "node_modules/.bin/channels"), ["--help"], dir);
    expect(out).to.match(/^Usage: channels/m);
    for (const command of ["init", "node", "channel", "swap", "watch"]) expect(out).to.match(new RegExp(`^  ${command}\\b`, "m"));
    expect(files).to.include("bin/channels.mjs");
    expect(files).to.include("dist/sdk/cli/main.js");
  });

  it("falls back to pure JavaScript when the native add-ons are missing, says so once for each, and still agrees with the hub", async function () {
    for (const addOn of ["keccak", "secp256k1"]) rmSync(join(dir, "node_modules", addOn), { recursive: true, force: true });
    const out = await run(process.execPath, ["digest.mjs"], dir, { RPC_URL: node.url, DEPLOYER_KEY: accountKey(0) });
    const warnings = out.split("\n").filter((l) => l.includes("ChannelsPureJsCrypto"));
    expect(warnings).to.have.length(2);
    expect(warnings.join("\n")).to.match(/keccak: the native add-on did not load/).and.match(/secp256k1: the native add-on did not load/);
    const { local, onChain } = JSON.parse(out.split("\n").find((l) => l.startsWith("{")) ?? "{}") as { local?: string; onChain?: string };
    expect(local).to.match(/^0x[0-9a-f]{64}$/);
    expect(local).to.equal(onChain);
  });
});
