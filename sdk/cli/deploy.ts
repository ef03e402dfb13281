/** `channels deploy`: runs scripts/deploy.ts (Ignition, SecretRegistry + ChannelHub) through Hardhat. */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { Command } from "commander";

import { ChannelSdkError } from "../core/errors.js";
import { EXIT_USAGE } from "../node/main.js";
import { globals } from "./context.js";
import { projectRoot } from "./project.js";


export function deployCommand(): Command {
  return new Command("deploy")
    .description("deploy the hub and registry to the local chains (or --networks of hardhat.config.ts)")
    .option("--source-rpc <url>", "the local source chain (default http://127.0.0.1:8545)")
    .option("--target-rpc <url>", "the local target chain (default http://127.0.0.1:8546)")
    .option("--networks <names>", "comma-separated networks of hardhat.config.ts", "localSource,localTarget")
    .action(async (o: { sourceRpc?: string; targetRpc?: string; networks: string }, cmd: Command) => {
      const PROJECT_ROOT = projectRoot();
      if (PROJECT_ROOT === undefined) {
        throw new ChannelSdkError("channels deploy runs from a checkout of the project (it deploys with Hardhat Ignition); from the package, deploy abi/ChannelHub.json and abi/SecretRegistry.json with your own tooling");
      }
      const hardhat = resolve(createRequire(import.meta.url).resolve("hardhat/package.json"), "..", "dist/src/cli.js");
      const env: NodeJS.ProcessEnv = { ...process.env, NETWORKS: o.networks, NODE_NO_WARNINGS: "1" };
      if (o.sourceRpc) env.SOURCE_RPC_URL = o.sourceRpc;
      if (o.targetRpc) env.TARGET_RPC_URL = o.targetRpc;
      const child = spawn(process.execPath, [hardhat, "run", "scripts/deploy.ts"], { cwd: PROJECT_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      // The script's own `error:` lines are the ones to read: passed on, and not followed by another saying it failed.
      let said = false;
      child.stderr.on("data", (c: Buffer) => {
        said ||= /^error: /m.test(c.toString());
        process.stderr.write(c);
      });
      const code = await new Promise<number | null>((ok) => child.once("exit", ok));
      const lines = out.split("\n").filter((l) => l.startsWith("{"));
      if (globals(cmd).json) process.stdout.write(JSON.stringify(lines.map((l) => JSON.parse(l) as unknown), null, 2) + "\n");
      else for (const l of lines) {
        const d = JSON.parse(l) as { network: string; chainId: string; hub: string; registry: string };
        process.stdout.write(`${d.network} (chain ${d.chainId}): hub ${d.hub}, registry ${d.registry}\n`);
      }
      if (code === EXIT_USAGE) process.exitCode = EXIT_USAGE;
      else if (code !== 0 && said) process.exitCode = 1;
      else if (code !== 0) throw new ChannelSdkError(`deploy failed (exit code ${code})`);
    });
}
