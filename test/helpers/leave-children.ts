/**
 * A test process that fails while processes it started still run, for test/integration/test.processes.test.ts: it
 * starts a `hardhat node` and a process that starts one of its own (as npx starts node) through the test helpers,
 * prints their pids as one JSON line `{ "hardhat": n, "parent": n, "grandchild": n }`, then, once a line comes on its
 * stdin (signal: at once), fails as its argument says:
 * - `throw`: an error nothing catches;
 * - `exit`: `process.exit(3)`;
 * - `signal`: waits until it is sent SIGTERM.
 * Run with the tsx loader (as fault-party.ts is).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { runNodeProcess, startHardhatNode } from "./nodes.js";

const mode = process.argv[2];
if (mode !== "throw" && mode !== "exit" && mode !== "signal") throw new Error("usage: leave-children.ts throw|exit|signal");

const chain = await startHardhatNode(31337n);
const dir = mkdtempSync(join(tmpdir(), "leave-children-"));
const pids = join(dir, "pids");
// A parent that starts a child of its own and writes both pids; both stay up until killed.
const parent = [
  'const { spawn } = require("node:child_process");',
  'const c = spawn(process.execPath, ["-e", "setInterval(() => {}, 60000)"], { stdio: "ignore" });',
  `require("node:fs").writeFileSync(${JSON.stringify(pids)}, process.pid + " " + c.pid);`,
  "setInterval(() => {}, 60000);",
].join("\n");
void runNodeProcess("-e", [parent]);
for (let i = 0; i < 600 && !existsSync(pids); i++) await new Promise((r) => setTimeout(r, 50));
const [parentPid, grandchild] = readFileSync(pids, "utf8").split(" ").map(Number);
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ hardhat: chain.pid, parent: parentPid, grandchild }));

// Fails once told to on stdin (a line), so that the test can see all three running first.
if (mode !== "signal") await new Promise<void>((go) => process.stdin.once("data", () => go()));
if (mode === "throw") {
  setImmediate(() => {
    throw new Error("a test failed with its processes still running");
  });
} else if (mode === "exit") {
  process.exit(3);
} else {
  setInterval(() => {}, 60_000); // until SIGTERM
}
