/**
 * The `channels` binary as separate OS processes: one-shot commands, long-running nodes, and a relay in front of a
 * node's peer endpoint that can hold messages (to kill a node at a chosen protocol step).
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { join } from "node:path";

import { PROJECT_ROOT, freePort, runNodeProcess, type ProcessResult } from "./nodes.js";
import { spawnChild, stopChild } from "./processes.js";

export const CHANNELS_BIN = join(PROJECT_ROOT, "bin", "channels.mjs");

/** Runs `channels ...args` and returns its exit code and output. */
export function channels(args: readonly string[], env: Record<string, string> = {}): Promise<ProcessResult> {
  return runNodeProcess(CHANNELS_BIN, args, env);
}

/** Runs `channels --json ...args`, expects exit 0 and returns the parsed output. */
export async function channelsJson<T = unknown>(args: readonly string[], env: Record<string, string> = {}): Promise<T> {
  const r = await channels(["--json", ...args], env);
  if (r.code !== 0) throw new Error(`channels ${args.join(" ")} exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A running `channels node start` process, with its JSON log lines. */
export class NodeProcess {
  readonly lines: Record<string, unknown>[] = [];
  stderr = "";
  private constructor(readonly child: ChildProcess) {}

  /**
   * Starts `channels --config <config> node start ...args` and resolves once its control API listens (or, with
   * `ready` "standby", once it stands by on a database another process leads).
   */
  static async start(config: string, env: Record<string, string>, args: readonly string[] = [], ready: "api" | "standby" = "api"): Promise<NodeProcess> {
    const child = spawnChild(process.execPath, [CHANNELS_BIN, "--config", config, "node", "start", ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const node = new NodeProcess(child);
    let partial = "";
    child.stdout!.on("data", (c: Buffer) => {
      const parts = (partial + c.toString()).split("\n");
      partial = parts.pop()!;
      for (const l of parts) if (l.trim() !== "") node.lines.push(JSON.parse(l) as Record<string, unknown>);
    });
    child.stderr!.on("data", (c: Buffer) => (node.stderr += c.toString()));
    try {
      await node.waitFor((l) => l.event === ready, 60_000);
    } catch (error) {
      await stopChild(child); // not started in time: not left running
      throw error;
    }
    return node;
  }

  /** Resolves with the first log line `match` accepts (already logged or to come). */
  async waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found !== undefined) return found;
      if (this.child.exitCode !== null) throw new Error(`the node exited with ${this.child.exitCode}:\n${this.stderr}`);
      if (Date.now() > end) throw new Error(`no such log line within ${timeoutMs} ms:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` and resolves with the exit code once the node exited (SIGKILL after a grace period: processes.ts). */
  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    return stopChild(this.child, signal);
  }
}

/**
 * An HTTP relay in front of a node's peer endpoint. `hold(text)`: the first request whose body contains `text` (e.g.
 * `"kind":"pay"`, the batch or request that carries a secret) is never forwarded, and `onHeld` runs (the test kills
 * the node behind it there).
 */
export class PeerRelay {
  held: string | undefined;
  onHeld: () => void = () => {};
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(targetUrl: () => string): Promise<PeerRelay> {
    const port = await freePort();
    let relay: PeerRelay | undefined;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const r = relay!;
        if (r.held !== undefined && body.includes(r.held)) {
          r.held = undefined;
          r.onHeld();
          res.destroy();
          return;
        }
        // The node answers only to its own name (Host), as it would behind a proxy that forwards to it.
        const target = new URL(req.url ?? "/", targetUrl());
        const out = request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        out.on("error", () => res.destroy());
        out.end(body);
      });
    });
    await new Promise<void>((ok) => server.listen(port, "127.0.0.1", () => ok()));
    relay = new PeerRelay(server, `http://127.0.0.1:${port}`);
    return relay;
  }

  hold(text: string): void {
    this.held = text;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

/** Edits a JSON file in place. */
export function editJson(file: string, edit: (data: Record<string, unknown>) => void): void {
  const data = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  edit(data);
  writeFileSync(file, JSON.stringify(data, null, 2));
}
