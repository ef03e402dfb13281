/**
 * A benchmark's peer in a process of its own: a script run with Hardhat (its TypeScript loader), configured through
 * the environment, answering on stdout with `NAME=value` lines that the benchmark waits for.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";

export type PeerProcess = Readonly<{
  child: ChildProcessWithoutNullStreams;
  /** The first match of `pattern` in what the peer printed since the last match (rejects if the peer exits first). */
  says(pattern: RegExp): Promise<RegExpExecArray>;
}>;

/** Starts `hardhat run <script>` with `env` added to this process's environment; its stderr goes to ours. */
export function startPeer(script: string, env: Readonly<Record<string, string>>): PeerProcess {
  const hardhatCli = join(process.cwd(), "node_modules", "hardhat", "dist", "src", "cli.js");
  // BENCH_PEER_NODE_ARGS: node flags for the peer process (`--cpu-prof --cpu-prof-dir=<dir>` to profile it).
  const flags = (process.env.BENCH_PEER_NODE_ARGS ?? "").split(" ").filter((f) => f !== "");
  const child = spawn(process.execPath, [...flags, hardhatCli, "run", script], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const says = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const exited = (code: number | null) => reject(new Error(`the peer exited with ${code}: ${out}`));
      const look = () => {
        const m = pattern.exec(out);
        if (m === null) return;
        out = out.slice(m.index + m[0].length);
        child.stdout.off("data", look);
        child.off("exit", exited);
        resolve(m);
      };
      child.stdout.on("data", look);
      child.once("exit", exited);
      look();
    });
  // stderr is inherited, so the child's streams type says null there; the other two are pipes.
  return { child: child as unknown as ChildProcessWithoutNullStreams, says };
}
