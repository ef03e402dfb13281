/**
 * What mocha's root hook (test/helpers/root-hooks.ts, hardhat.config.ts) must do however the mocha files run: a
 * process a test file started and did not stop is stopped by it (SIGTERM, `stopChild`) once that file has run in its
 * worker (MOCHA_JOBS > 1), or once the run ends in one process (MOCHA_JOBS=1), and the run then ends. A `hardhat test`
 * of a fixture file that leaves a process which notes the signal it gets. (processes.cleanup.test.ts proves the other
 * half: whatever way a test process ends, its children end with it, by SIGKILL.)
 */
import { expect } from "chai";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HARDHAT_CLI, PROJECT_ROOT } from "../helpers/nodes.js";
import { spawnChild, stopChild } from "../helpers/processes.js";

const FIXTURE = "test/fixtures/worker-cleanup/leaves-a-process.test.ts";
/** A run that has not ended by then hangs on what the file left (mocha waits for it). */
const RUN_LIMIT_MS = 90_000;

describe("a process a test file leaves running", function () {
  this.timeout(2 * RUN_LIMIT_MS);
  let dir: string;
  before(function () {
    dir = mkdtempSync(join(tmpdir(), "worker-cleanup-"));
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  /** `hardhat test mocha FIXTURE` with MOCHA_JOBS=`jobs`: its exit code (undefined: stopped at RUN_LIMIT_MS), output, and the signal the left process noted. */
  async function run(jobs: string): Promise<{ code: number | null | undefined; output: string; mark: string | undefined }> {
    const mark = join(dir, `mark-${jobs}`);
    const child = spawnChild(process.execPath, [HARDHAT_CLI, "test", "mocha", FIXTURE], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, MOCHA_JOBS: jobs, LEFT_MARK: mark },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    for (const s of [child.stdout!, child.stderr!]) s.on("data", (c: Buffer) => (output += c.toString()));
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      new Promise<number | null>((ok) => child.once("exit", ok)),
      new Promise<undefined>((ok) => (timer = setTimeout(() => ok(undefined), RUN_LIMIT_MS))),
    ]);
    clearTimeout(timer);
    if (code === undefined) await stopChild(child, "SIGKILL"); // its group, the left process with it
    return { code, output, mark: existsSync(mark) ? readFileSync(mark, "utf8") : undefined };
  }

  it("is stopped by the root hook once the file has run in its mocha worker", async function () {
    const r = await run("2");
    expect(r.code, r.output).to.equal(0);
    expect(r.mark, "the signal it got").to.equal("SIGTERM");
  });

  it("is stopped by the root hook when the files run one after another in one process (MOCHA_JOBS=1), and the run ends", async function () {
    const r = await run("1");
    expect(r.code, `the run ended by itself\n${r.output}`).to.equal(0);
    expect(r.mark, "the signal it got").to.equal("SIGTERM");
  });
});
