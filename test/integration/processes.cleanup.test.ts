/**
 * The processes a test starts never outlive the test process, however it ends (test/helpers/processes.ts): a test
 * process (test/helpers/leave-children.ts) starts a `hardhat node` and a process with a child of its own through the
 * helpers, then fails; afterwards none of the three runs any more.
 */
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { PROJECT_ROOT } from "../helpers/nodes.js";
import { processRunning } from "../helpers/processes.js";

const require = createRequire(import.meta.url);
const TSX_LOADER = pathToFileURL(createRequire(require.resolve("hardhat/package.json")).resolve("tsx/esm")).href;
const SCRIPT = resolve(PROJECT_ROOT, "test/helpers/leave-children.ts");

type Pids = { hardhat: number; parent: number; grandchild: number };

describe("processes a test starts do not outlive it, pass or fail", function () {
  /** Every test process and every pid one printed: killed in `after` whatever the test found, so a failing run leaves nothing either. */
  const seen: number[] = [];

  after(function () {
    for (const pid of seen) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone, as it should be
      }
    }
  });

  /** Runs the failing test process in `mode` until it has printed its children's pids; `exit` resolves with its exit code. */
  async function failingRun(mode: "throw" | "exit" | "signal"): Promise<{ child: ChildProcess; pids: Pids; exit: Promise<number | null>; output: () => string }> {
    // Not through spawnChild: its group kill would reach the test process's own children and prove nothing.
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--import", TSX_LOADER, SCRIPT, mode], {
      cwd: PROJECT_ROOT,
      stdio: ["pipe", "pipe", "pipe"],
    });
    seen.push(child.pid!);
    let out = "";
    let err = "";
    const exit = new Promise<number | null>((ok) => child.once("exit", (code) => ok(code)));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    const pids = await new Promise<Pids>((ok, fail) => {
      child.stdout!.on("data", (c: Buffer) => {
        out += c.toString();
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (line !== undefined && out.includes("}\n")) ok(JSON.parse(line) as Pids);
      });
      void exit.then((code) => fail(new Error(`the test process exited with ${code} before printing its children:\n${err}`)));
    });
    seen.push(pids.hardhat, pids.parent, pids.grandchild);
    return { child, pids, exit, output: () => err };
  }

  /** The pids still running once the failed process is gone, polled a bounded number of times. */
  async function survivors(pids: Pids): Promise<string[]> {
    const running = () => Object.entries(pids).filter(([, pid]) => processRunning(pid)).map(([name, pid]) => `${name} (pid ${pid})`);
    for (let i = 0; i < 100 && running().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    return running();
  }

  it("a test process that dies of an error nothing caught takes its hardhat node and its children's children with it", async function () {
    const run = await failingRun("throw");
    expect(Object.values(run.pids).every(processRunning), "all three ran").to.equal(true);
    run.child.stdin!.write("fail\n");
    expect(await run.exit).to.equal(1);
    expect(run.output()).to.include("a test failed with its processes still running");
    expect(await survivors(run.pids)).to.deep.equal([]);
  });

  it("a test process that calls process.exit with an error code leaves none of its processes", async function () {
    const run = await failingRun("exit");
    run.child.stdin!.write("fail\n");
    expect(await run.exit).to.equal(3);
    expect(await survivors(run.pids)).to.deep.equal([]);
  });

  it("a test process stopped by SIGTERM (its own pid only, as `kill` does) leaves none of its processes", async function () {
    const run = await failingRun("signal");
    process.kill(run.child.pid!, "SIGTERM");
    await run.exit;
    expect(run.child.signalCode, "it died of the signal, as it would have without the helpers").to.equal("SIGTERM");
    expect(await survivors(run.pids)).to.deep.equal([]);
  });
});
