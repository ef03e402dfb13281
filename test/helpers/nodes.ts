import { createServer } from "node:net";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { ZeroAddress, type JsonRpcProvider } from "ethers";

import { accountKey, deployHub, localWallet } from "../../scripts/lib/local.js";
import {
  DeltaTable,
  HubAdapter,
  keySigner,
  rpcProvider,
  Store,
  SwapClient,
  type ChannelParams,
  type Transport,
} from "../../sdk/index.js";
import { expectedChannel } from "../../scripts/lib/swap-setup.js";
import { spawnChild, stopChild } from "./processes.js";

const require = createRequire(import.meta.url);
/** The Hardhat CLI of this project, run with the same Node binary as the tests. */
export const HARDHAT_CLI = resolve(require.resolve("hardhat/package.json"), "..", "dist/src/cli.js");
export const PROJECT_ROOT = resolve(import.meta.dirname, "..", "..");

/** A free TCP port on the loopback interface. */
/**
 * Ports a test hands to a process to listen on are taken below the kernel's range for outgoing connections (32768 and
 * up on Linux): a port the kernel picked as free (`listen(0)`) and that was closed again could be the source port of
 * any connection a moment later, and with test files running in parallel workers, of another worker's. Each process
 * walks the range from a random place; a port is handed out once it could be bound, and never twice by one process.
 */
const PORT_RANGE = { from: 20_000, to: 32_000 } as const;
let nextPort = PORT_RANGE.from + Math.floor(Math.random() * (PORT_RANGE.to - PORT_RANGE.from));

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORT_RANGE.to - PORT_RANGE.from; tries++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= PORT_RANGE.to ? PORT_RANGE.from : nextPort + 1;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${PORT_RANGE.from} and ${PORT_RANGE.to}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const server = createServer();
    server.once("error", () => ok(false));
    server.listen(port, "127.0.0.1", () => server.close(() => ok(true)));
  });
}

export type LocalNode = { url: string; chainId: bigint; pid: number; stop: () => Promise<void> };

/**
 * Starts `hardhat node` as a separate process on a loopback port and waits until it serves JSON-RPC. The process is
 * stopped by `stop`, and in any case by the end of the test run (processes.ts); one that does not start in time is
 * killed before this rejects.
 */
export async function startHardhatNode(chainId: bigint, timeoutMs = 60_000): Promise<LocalNode> {
  const port = await freePort();
  const child = spawnChild(
    process.execPath,
    [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId)],
    { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  try {
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`hardhat node did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Started HTTP and WebSocket JSON-RPC server")) {
          clearTimeout(timer);
          ok();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("error", (error) => {
        clearTimeout(timer);
        fail(error);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        fail(new Error(`hardhat node exited with code ${code}:\n${output}`));
      });
    });
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, chainId, pid: child.pid!, stop: async () => void (await stopChild(child)) };
}

export type ProcessResult = { code: number | null; stdout: string; stderr: string };

/**
 * Runs a Node script of this project in a child process (`env` over this process's; undefined unsets) and returns
 * its exit code and output.
 */
export async function runNodeProcess(script: string, args: readonly string[], env: Record<string, string | undefined> = {}): Promise<ProcessResult> {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  for (const [name, value] of Object.entries(merged)) if (value === undefined) delete merged[name]; // unset it
  const child = spawnChild(process.execPath, [script, ...args], { cwd: PROJECT_ROOT, env: merged, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((ok, fail) => {
    child.once("error", fail);
    child.once("exit", ok);
  });
  return { code, stdout, stderr };
}

/** Runs a Hardhat task in a child process (`env` over this process's; undefined unsets) and returns its exit code and output. */
export function runHardhatProcess(args: readonly string[], env: Record<string, string | undefined>): Promise<ProcessResult> {
  return runNodeProcess(HARDHAT_CLI, args, env);
}

/** Runs a Hardhat task in a child process and returns its stdout; rejects with its output on failure. */
export async function runHardhat(args: readonly string[], env: Record<string, string>): Promise<string> {
  const { code, stdout, stderr } = await runHardhatProcess(args, env);
  if (code !== 0) throw new Error(`hardhat ${args.join(" ")} exited with ${code}:\n${stdout}\n${stderr}`);
  return stdout;
}

/**
 * On two running nodes: a hub on each, Alice (account 1) funding a native channel on S and Bob (account 2) one on
 * T (5 coins each), and a client maker for either party over the given transport and store.
 */
export async function fundedPairOnNodes(nodes: readonly LocalNode[], nonce: bigint) {
  const [S, T] = nodes.map((n) => rpcProvider(n.url)) as [JsonRpcProvider, JsonRpcProvider];
  const [hubS, hubT] = [await deployHub(S), await deployHub(T)];
  const params: ChannelParams = {
    participants: [localWallet(1, S).address, localWallet(2, S).address],
    payees: [ZeroAddress, ZeroAddress],
    asset: ZeroAddress,
    challengePeriod: 3600n,
    nonce,
  };
  const adapters = async (who: 1 | 2) => ({
    S: await HubAdapter.connect(hubS, localWallet(who, S)),
    T: await HubAdapter.connect(hubT, localWallet(who, T)),
  });
  const [a, b] = [await adapters(1), await adapters(2)];
  const sId = await a.S.openAndDeposit(params, 0, 5n * 10n ** 18n);
  const tId = await b.T.openAndDeposit(params, 1, 5n * 10n ** 18n);
  const timing = (chainId: bigint) => ({ chainId, finalitySeconds: 12n, inclusionSeconds: 60n, clockSkewSeconds: 30n });
  const deltas = new DeltaTable(new Map([[31337n, timing(31337n)], [31338n, timing(31338n)]]));
  /** A client for Alice (1) or Bob (2) with both channels added. */
  const client = async (who: 1 | 2, transport: Transport, store: Store) => {
    const c = new SwapClient({
      deltas,
      minTargetWindow: 600n,
      onChainMargin: 120n,
      resendIntervalMs: 1_000,
      confirmationTimeoutMs: 30_000,
      signer: keySigner(accountKey(who)),
      store,
      transport,
      chains: who === 1 ? [a.S, a.T] : [b.S, b.T],
    });
    await c.addChannel(31337n, params, expectedChannel(params, c.address));
    await c.addChannel(31338n, params, expectedChannel(params, c.address));
    return c;
  };
  const close = () => {
    S.destroy();
    T.destroy();
  };
  return { S, T, hubS, hubT, params, a, b, sId, tId, client, close };
}

/** Polls `probe` every 200 ms (a failing probe counts as not yet) until it gives a value; throws after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
