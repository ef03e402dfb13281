import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * The project checkout this CLI runs from (the folder with hardhat.config.ts), whether it runs from sdk/cli as
 * TypeScript or from dist/sdk/cli compiled; undefined when it runs from an installed package.
 */
export function projectRoot(): string | undefined {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "hardhat.config.ts")) && existsSync(join(dir, "contracts", "ChannelHub.sol"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}
