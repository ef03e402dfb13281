import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(import.meta.url);
/** The Hardhat CLI of this project, run with the same Node binary as the tests. */
export const HARDHAT_CLI = resolve(require.resolve("hardhat/package.json"), "..", "dist/src/cli.js");
export const PROJECT_ROOT = resolve(import.meta.dirname, "..", "..");

/** A free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => ok(port));
    });
  });
}

export type LocalNode = { url: string; chainId: bigint; stop: () => Promise<void> };

/** Starts `hardhat node` as a separate process on a loopback port and waits until it serves JSON-RPC. */
export async function startHardhatNode(chainId: bigint, timeoutMs = 60_000): Promise<LocalNode> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId)],
    { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
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
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`hardhat node exited with code ${code}:\n${output}`));
    });
  });
  return { url: `http://127.0.0.1:${port}`, chainId, stop: () => stopProcess(child) };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.removeAllListeners("exit");
  await new Promise<void>((ok) => {
    child.once("exit", () => ok());
    child.kill("SIGTERM");
  });
}

/** Runs a Hardhat task in a child process and returns its stdout; rejects with its output on failure. */
export async function runHardhat(args: readonly string[], env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, [HARDHAT_CLI, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((ok) => child.once("exit", ok));
  if (code !== 0) throw new Error(`hardhat ${args.join(" ")} exited with ${code}:\n${stdout}\n${stderr}`);
  return stdout;
}
