/**
 * Anvil (Foundry's EVM node) as the second client the chain-fault tests run against: it mines on an interval,
 * reorganises on request (`anvil_reorg`), drops a pending transaction (`anvil_dropTransaction`), sets the next
 * block's base fee, and dumps and reloads its state, none of which Hardhat's simulated chain does. The binary ships
 * in the npm package `@foundry-rs/anvil-<os>-<arch>` (a dev dependency through `@foundry-rs/anvil`), so nothing is
 * downloaded. Every anvil runs as a child of `processes.ts`: none outlives the test run.
 */
import type { ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { toQuantity } from "ethers";

import { rpcProvider } from "../../sdk/index.js";
import { spawnChild, stopChild } from "./processes.js";

/** The anvil binary of this platform, from its npm package; throws naming the package when it is missing. */
export function anvilBinary(): string {
  const os = { linux: "linux", darwin: "darwin", win32: "win32" }[process.platform as string];
  const arch = { x64: "amd64", arm64: "arm64" }[process.arch as string];
  const pkg = `@foundry-rs/anvil-${os}-${arch}`;
  try {
    return createRequire(import.meta.url).resolve(`${pkg}/bin/anvil${process.platform === "win32" ? ".exe" : ""}`);
  } catch {
    throw new Error(`anvil: the package ${pkg} is not installed (npm install installs it with @foundry-rs/anvil on ${process.platform}/${process.arch})`);
  }
}

export type AnvilOptions = Readonly<{
  chainId: number;
  /** Seconds between blocks (interval mining); without it, a block per transaction. */
  blockTime?: number;
  /**
   * The EVM's fork (default "prague", what the hub is compiled for). "berlin" makes a chain without EIP-1559 fees
   * (blocks with no base fee, legacy gas prices), on which the hub's bytecode does not run.
   */
  hardfork?: string;
  /** Listen on this port (0: any free one, the default). */
  port?: number;
  /** Start from a state `dump` or `dumpOnStop` wrote. */
  loadState?: string;
  /**
   * Write the chain to this file when `stop` ends the process (`--dump-state`), with the state at every block: an
   * anvil started from it (`loadState`, the same `port`) is the same chain brought back after an outage, whose older
   * blocks still answer reads (`eth_call` at a final block) and keep their hashes.
   */
  dumpOnStop?: string;
}>;

export type Anvil = Readonly<{
  url: string;
  port: number;
  chainId: number;
  /** One JSON-RPC call; throws with the node's message on an error answer. */
  rpc: <T = unknown>(method: string, params?: readonly unknown[]) => Promise<T>;
  /** The next block's base fee (wei). */
  setNextBaseFee: (wei: bigint) => Promise<void>;
  /** Replaces the newest `depth` blocks with as many empty ones: what they held leaves the chain. */
  reorg: (depth: number) => Promise<void>;
  /**
   * Writes the chain's state to `file` (anvil_dumpState), for `startAnvil({ loadState })`: blocks, hashes, accounts,
   * but not the state at older blocks (a reloaded chain refuses reads at blocks before its head until new ones are
   * mined) nor pending transactions. For an outage, `dumpOnStop` keeps the older states.
   */
  dump: (file: string) => Promise<void>;
  /** Stops the process (SIGTERM; it writes `dumpOnStop` first): an RPC outage until another anvil is started on `port`. */
  stop: () => Promise<void>;
  child: ChildProcess;
}>;

/** Starts anvil on loopback and resolves once it listens. */
export async function startAnvil(o: AnvilOptions): Promise<Anvil> {
  const args = ["--host", "127.0.0.1", "--port", String(o.port ?? 0), "--chain-id", String(o.chainId), "--hardfork", o.hardfork ?? "prague"];
  if (o.blockTime !== undefined) args.push("--block-time", String(o.blockTime));
  if (o.loadState !== undefined) args.push("--load-state", o.loadState);
  // The state at every block is kept for dumps, so a chain brought back answers reads at its older blocks.
  if (o.dumpOnStop !== undefined) args.push("--dump-state", o.dumpOnStop, "--preserve-historical-states");
  const child = spawnChild(anvilBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  const port = await new Promise<number>((ok, fail) => {
    let out = "";
    const look = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /Listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m === null) return;
      child.stdout!.off("data", look);
      child.stdout!.resume(); // its log is not read from here on
      ok(Number(m[1]));
    };
    child.stdout!.on("data", look);
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    child.once("exit", (code) => fail(new Error(`anvil exited with ${code} before it listened: ${out.slice(-400)}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  let id = 0;
  const rpc = async <T>(method: string, params: readonly unknown[] = []): Promise<T> => {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) });
    const body = (await res.json()) as { result?: T; error?: { message: string } };
    if (body.error !== undefined) throw new Error(`anvil ${method}: ${body.error.message}`);
    return body.result as T;
  };
  return {
    url,
    port,
    chainId: o.chainId,
    rpc,
    setNextBaseFee: async (wei) => void (await rpc("anvil_setNextBlockBaseFeePerGas", [toQuantity(wei)])),
    reorg: async (depth) => void (await rpc("anvil_reorg", [depth, []])),
    dump: async (file) => {
      const { writeFileSync } = await import("node:fs");
      writeFileSync(file, await decodeDump(await rpc<string>("anvil_dumpState")));
    },
    stop: async () => void (await stopChild(child)),
    child,
  };
}

/** anvil_dumpState answers hex of gzipped JSON; `--load-state` reads the JSON. */
async function decodeDump(hex: string): Promise<string> {
  const { gunzipSync } = await import("node:zlib");
  return gunzipSync(Buffer.from(hex.replace(/^0x/, ""), "hex")).toString("utf8");
}

/** A provider for `anvil` that reads every block anew (no block-number cache: see `rpcProvider`). */
export function anvilProvider(anvil: Anvil) {
  return rpcProvider(anvil.url);
}
