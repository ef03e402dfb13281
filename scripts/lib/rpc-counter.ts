/**
 * A counting JSON-RPC proxy: an HTTP server on loopback that forwards every POST to one chain's endpoint and counts
 * the JSON-RPC calls it carried (each element of a batch), by method. Put one between each node and each chain to
 * see what following the chain costs that node there.
 */
import { createServer, request, Agent, type Server } from "node:http";

export type RpcCounts = Readonly<{ calls: number; byMethod: Readonly<Record<string, number>> }>;

export class RpcCounter {
  private calls = 0;
  private readonly byMethod = new Map<string, number>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  private constructor(
    private readonly server: Server,
    /** The proxy's URL: give it to the node as the chain's rpcUrl. */
    readonly url: string,
  ) {}

  /** Starts a proxy to `target` (an http:// JSON-RPC URL) on a free loopback port. */
  static async start(target: string): Promise<RpcCounter> {
    const to = new URL(target);
    let counter: RpcCounter | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        counter?.count(body);
        const out = request(
          { agent: counter?.agent, host: to.hostname, port: to.port, path: to.pathname, method: "POST", headers: { "content-type": "application/json", "content-length": body.length } },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, { "content-type": answer.headers["content-type"] ?? "application/json" });
            answer.pipe(res);
          },
        );
        out.on("error", (error) => {
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(`proxy: ${error.message}`);
        });
        out.end(body);
      });
    });
    server.keepAliveTimeout = 60_000;
    const port = await new Promise<number>((ok, fail) => {
      server.once("error", fail);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        ok(typeof address === "object" && address !== null ? address.port : 0);
      });
    });
    counter = new RpcCounter(server, `http://127.0.0.1:${port}`);
    return counter;
  }

  private count(body: Buffer) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return;
    }
    for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
      const method = typeof call === "object" && call !== null ? String((call as { method?: unknown }).method) : "?";
      this.calls++;
      this.byMethod.set(method, (this.byMethod.get(method) ?? 0) + 1);
    }
  }

  /** The calls counted so far. */
  snapshot(): RpcCounts {
    return { calls: this.calls, byMethod: Object.fromEntries(this.byMethod) };
  }

  /** What was counted between two snapshots. */
  static between(a: RpcCounts, b: RpcCounts): RpcCounts {
    const byMethod: Record<string, number> = {};
    for (const [m, n] of Object.entries(b.byMethod)) {
      const d = n - (a.byMethod[m] ?? 0);
      if (d > 0) byMethod[m] = d;
    }
    return { calls: b.calls - a.calls, byMethod };
  }

  async close(): Promise<void> {
    this.agent.destroy();
    (this.server as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}
