/**
 * Every OS process a test starts is started here, so that none outlives the test run, pass or fail: a `hardhat
 * node` left behind by a failed run holds its port and a core until someone notices.
 *
 * Each child runs in a process group of its own (`detached`), so stopping it reaches what it started in turn (npm
 * or npx start node, which may start more). A registry of the children still running is kept in this process, and
 * every group in it is killed:
 * - by the suite that started it (`stopChild` in its `after` hook: SIGTERM, then SIGKILL after a grace period);
 * - by mocha's root `after` hook (`stopAllChildren`, in test/helpers/root-hooks.ts, which each test worker loads), once
 *   a test file has run, for a suite whose `after` hook failed, timed out or never had the handle (one of two chains
 *   started in a `Promise.all` that failed);
 * - when this process exits, however it exits: an error nothing caught, `process.exit`, or SIGINT, SIGTERM or SIGHUP
 *   (SIGKILL cannot be caught: what a killed test run started stays up).
 *
 * The registry lives on `globalThis`, so the root hooks and the test files share it even when they load this module
 * apart. It holds this module's own state only: nothing here is read from outside the test run.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readFileSync } from "node:fs";

type Registry = { children: Set<ChildProcess>; installed: boolean };

const KEY = Symbol.for("crosschain-channels.test.children");
const holder = globalThis as typeof globalThis & { [KEY]?: Registry };
const registry: Registry = (holder[KEY] ??= { children: new Set(), installed: false });

/** How long a child has to exit after SIGTERM before it gets SIGKILL. */
export const STOP_GRACE_MS = 10_000;

/**
 * Starts `command` as a child in a process group of its own and keeps it in the registry until it exits; once it has
 * exited, what it left in its group is killed too. Options as `spawn`'s (`detached` is always set).
 */
export function spawnChild(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  installSafetyNet();
  const child = spawn(command, args, { ...options, detached: true });
  if (child.pid === undefined) return child; // did not start: `error` is emitted, nothing to stop
  registry.children.add(child);
  child.once("exit", () => {
    registry.children.delete(child);
    signalGroup(child, "SIGKILL"); // a grandchild that outlived its parent (none, mostly: ESRCH)
  });
  return child;
}

/** Whether the child has exited (or was never started). */
export function exited(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/**
 * Stops a child started by `spawnChild` and its process group: `signal` (SIGTERM by default), then SIGKILL if it has
 * not exited after `graceMs`. Resolves with its exit code once it exited.
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = STOP_GRACE_MS): Promise<number | null> {
  if (exited(child)) return child.exitCode;
  const gone = new Promise<number | null>((ok) => child.once("exit", (code) => ok(code)));
  signalGroup(child, signal);
  const timer = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
  try {
    return await gone;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every child still running (mocha's root `after` hook): each as `stopChild` does, all at once. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...registry.children].map((c) => stopChild(c)));
}

/** The children started here still running (their pids): for a test of this module. */
export function runningChildren(): number[] {
  return [...registry.children].filter((c) => !exited(c)).map((c) => c.pid!);
}

/**
 * Whether a process is still running: false once it is gone (ESRCH) or dead and waiting to be reaped (a zombie: an
 * orphan's new parent, pid 1, may not reap it at once, or at all in some containers).
 */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces or parentheses, the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc (not Linux): kill(pid, 0) said it exists
  }
}

/** Sends `signal` to the child's process group (to the child alone if the group is gone). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      if (!exited(child)) process.kill(child.pid, signal);
    } catch {
      // gone already
    }
  }
}

function killAll(): void {
  for (const child of registry.children) signalGroup(child, "SIGKILL");
  registry.children.clear();
}

/**
 * Once per process: kills every child left when the process exits, and on SIGINT, SIGTERM or SIGHUP (after which the
 * signal takes its usual course, unless someone else listens for it).
 */
function installSafetyNet(): void {
  if (registry.installed) return;
  registry.installed = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAll();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal); // our listener is gone: the default
    });
  }
}
