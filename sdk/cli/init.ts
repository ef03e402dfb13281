/**
 * `channels init`: a starter node.json and an encrypted keystore for the two local chains (ids 31337 and 31338).
 * The starter policy accepts nothing: no channel terms, no swaps, until the user names them.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { HDNodeWallet, Mnemonic, Wallet, ZeroAddress } from "ethers";

import type { Hex } from "../core/types.js";
import { address as addressField, httpUrl } from "../node/config.js";
import { UsageError } from "../node/errors.js";
import { privateKeyFromEnv } from "../node/keys.js";
import { keystoreScryptN, STANDARD_SCRYPT_N, writeKeystore } from "../node/keystore.js";
import { print } from "./context.js";
import { projectRoot } from "./project.js";
import { password } from "./prompt.js";

/** The well-known Hardhat test mnemonic: its accounts hold coins on local chains. Never for real funds. */
const TEST_MNEMONIC = "test test test test test test test test test test test junk";

/** The hub Ignition recorded for a local chain (`channels deploy`), if any. */
function deployedHub(chainId: number): string | undefined {
  const PROJECT_ROOT = projectRoot();
  if (PROJECT_ROOT === undefined) return undefined;
  const file = join(PROJECT_ROOT, "ignition", "deployments", `local-${chainId}`, "deployed_addresses.json");
  if (!existsSync(file)) return undefined;
  return (JSON.parse(readFileSync(file, "utf8")) as Record<string, string>)["ChannelHubModule#ChannelHub"];
}

/** An option's address, checked as the configuration checks one (given back checksummed). */
function address(text: string, field: string): string {
  const result = addressField().safeParse(text);
  if (!result.success) throw new UsageError(`${field}: ${result.error.issues[0]!.message}`);
  return result.data;
}

/** Whether `url` names this machine (localhost, 127.0.0.0/8 or ::1); false for anything that is not a URL. */
function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === "localhost" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
  } catch {
    return false;
  }
}

/** A URL as it may be shown: its origin, without the path or query that may hold an API key. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return JSON.stringify(url.slice(0, 40));
  }
}

export function initCommand(): Command {
  return new Command("init")
    .description("write a starter node.json and an encrypted keystore for the two local chains")
    .option("--dir <folder>", "where to write them", ".")
    .option("--local-account <n>", "use account n of the local chains' test mnemonic (it holds coins there)")
    .option("--key-env <variable>", "take the key from this environment variable instead of a new random one")
    .option("--password-env <variable>", "the keystore password's variable (asked on the terminal if unset)", "CHANNELS_PASSWORD")
    .option("--source-rpc <url>", "chain 31337", "http://127.0.0.1:8545")
    .option("--target-rpc <url>", "chain 31338", "http://127.0.0.1:8546")
    .option("--source-hub <address>", "default: the hub `channels deploy` recorded")
    .option("--target-hub <address>", "default: the hub `channels deploy` recorded")
    .option("--peer-port <port>", "the peer endpoint's port", "9701")
    .option("--api-port <port>", "the control API's port", "9702")
    .option("--peer <name=address@url...>", "a peer node, e.g. bob=0x3C44…@http://127.0.0.1:9711")
    .option("--scrypt-n <n>", `keystore scrypt cost (default ${STANDARD_SCRYPT_N}, geth's standard; lower only for tests on local chains)`)
    .action(async (o: Record<string, string | string[] | undefined>, cmd: Command) => {
      const dir = resolve(String(o.dir));
      const configFile = join(dir, "node.json");
      if (existsSync(configFile)) throw new UsageError(`${configFile} exists already; not overwritten`);
      let key: Hex;
      if (o.localAccount !== undefined && o.keyEnv !== undefined) {
        throw new UsageError("--local-account and --key-env: give one of them, not both");
      }
      if (o.localAccount !== undefined) {
        const n = Number(o.localAccount);
        if (!Number.isInteger(n) || n < 0 || n > 1000) throw new UsageError(`--local-account: expected a number from 0 to 1000, got ${JSON.stringify(o.localAccount)}`);
        key = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(TEST_MNEMONIC), `m/44'/60'/0'/0/${n}`).privateKey as Hex;
      } else if (o.keyEnv !== undefined) key = privateKeyFromEnv(String(o.keyEnv));
      else key = Wallet.createRandom().privateKey as Hex;
      const rpcs = { source: String(o.sourceRpc), target: String(o.targetRpc) };
      for (const [chain, url] of Object.entries(rpcs)) {
        const result = httpUrl().safeParse(url);
        if (!result.success) throw new UsageError(`--${chain}-rpc: ${result.error.issues[0]!.message}`);
      }
      // The local deployment's hubs are the local chains' only: a chain elsewhere has its hub named.
      const hubs = {
        source: o.sourceHub ?? (isLoopbackUrl(rpcs.source) ? deployedHub(31337) : undefined),
        target: o.targetHub ?? (isLoopbackUrl(rpcs.target) ? deployedHub(31338) : undefined),
      };
      for (const [chain, hub] of Object.entries(hubs)) {
        const rpc = rpcs[chain as keyof typeof rpcs];
        if (hub === undefined && !isLoopbackUrl(rpc)) {
          throw new UsageError(`--${chain}-hub: required for a chain not on this machine (${originOf(rpc)}): the hub deployed on it (npm run deploy prints it)`);
        }
        if (hub === undefined) throw new UsageError(`--${chain}-hub: not given and no local deployment recorded; run \`channels deploy\` first`);
        address(String(hub), `--${chain}-hub`);
      }
      const peers: Record<string, { address: string; url: string }> = {};
      for (const spec of (o.peer as string[] | undefined) ?? []) {
        const m = /^([A-Za-z][A-Za-z0-9_-]*)=(0x[0-9a-fA-F]*)@(https?:\/\/.+)$/.exec(spec);
        if (m === null) throw new UsageError(`--peer: expected name=address@url, got ${JSON.stringify(spec.slice(0, 80))}`);
        peers[m[1]!] = { address: address(m[2]!, `--peer ${m[1]}`), url: m[3]! };
      }
      const ports = [o.peerPort, o.apiPort].map((p, i) => {
        const n = Number(p);
        if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new UsageError(`--${i === 0 ? "peer" : "api"}-port: expected a port number, got ${JSON.stringify(p)}`);
        return n;
      });
      // Local: both chains' RPC on this machine (the local chains init is for); a weak keystore is refused elsewhere.
      const remote = Object.entries(rpcs).filter(([, url]) => !isLoopbackUrl(url));
      const local = remote.length === 0;
      const { n: scryptN, warning } = keystoreScryptN(o.scryptN === undefined ? undefined : String(o.scryptN), local);
      if (o.localAccount !== undefined && !local) {
        throw new UsageError(
          `--local-account: the test mnemonic's keys are public (anyone can take what its accounts hold), for the local chains only, and ${originOf(remote[0]![1])} is not on this machine; give --key-env, or neither for a new random key`,
        );
      }
      if (warning !== undefined) process.stderr.write(`warning: ${warning}\n`);
      const passwordEnv = String(o.passwordEnv);
      const pw = await password(passwordEnv);
      if (pw.length < 8) throw new UsageError(`${passwordEnv}: a keystore password has at least 8 characters`);
      mkdirSync(dir, { recursive: true });
      const nodeAddress = await writeKeystore(join(dir, "keystore.json"), key, pw, scryptN);
      const chain = (rpcUrl: string, hub: string) => ({
        rpcUrl,
        hub,
        confirmations: 0,
        finalitySeconds: 12,
        inclusionSeconds: 60,
        clockSkewSeconds: 30,
        assets: { ETH: { address: ZeroAddress, decimals: 18 } },
      });
      const config = {
        key: { keystore: "keystore.json", passwordEnv },
        store: "node.sqlite",
        peer: { host: "127.0.0.1", port: ports[0] },
        api: { host: "127.0.0.1", port: ports[1], tokenFile: "api.token" },
        chains: { source: chain(String(o.sourceRpc), String(hubs.source)), target: chain(String(o.targetRpc), String(hubs.target)) },
        peers,
        policy: { channels: { accept: [] }, swaps: { pairs: [], maxInFlight: 0 } },
      };
      writeFileSync(configFile, JSON.stringify(config, null, 2) + "\n", { flag: "wx" });
      for (const [chain, url] of remote) {
        process.stderr.write(
          `warning: chains.${chain} (${originOf(url)}) is not on this machine: node.json gives it the local chains' confirmations 0, finalitySeconds 12 and inclusionSeconds 60; set that chain's own before the node starts (docs/CHAINS.md)\n`,
        );
      }
      print(cmd, { config: configFile, keystore: join(dir, "keystore.json"), address: nodeAddress }, (r) =>
        [`wrote ${r.config} and ${r.keystore}`, `node address ${r.address}`, "the policy accepts nothing yet: edit policy in node.json to accept channels and swaps"].join("\n"),
      );
    });
}
