/**
 * Chain faults at random, for runs against anvil (test/helpers/anvil.ts): reorganisations shallower than the
 * parties' finality depth, pending transactions dropped from the pool, base fee spikes, and RPC outages (a proxy in
 * front of each chain that resets every connection while it is down, as an endpoint that went away does).
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

import type { Anvil } from "./anvil.js";

/** A JSON-RPC proxy in front of one chain; `down(ms)` resets every connection for that long. */
export class RpcProxy {
  private downUntil = 0;
  private readonly sockets = new Set<Socket>();
  requests = 0;

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(target: string): Promise<RpcProxy> {
    let proxy: RpcProxy | undefined;
    const server = createServer((req, res) => {
      const p = proxy!;
      if (Date.now() < p.downUntil) {
        req.socket.destroy();
        return;
      }
      p.requests++;
      const out = request(target, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on("error", () => req.socket.destroy());
      req.pipe(out);
    });
    server.on("connection", (s: Socket) => {
      proxy?.sockets.add(s);
      s.once("close", () => proxy?.sockets.delete(s));
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    proxy = new RpcProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return proxy;
  }

  /** Unreachable for `ms`: open connections are cut, new ones reset. */
  down(ms: number): void {
    this.downUntil = Date.now() + ms;
    for (const s of this.sockets) s.destroy();
  }

  get isDown(): boolean {
    return Date.now() < this.downUntil;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

export type ChainFaultStats = { reorgs: number; dropped: number; spikes: number; outages: number; errors: number };

/**
 * Every 1-4 s, one fault on one chain at random: a reorganisation of the newest block (shallower than a finality of
 * 2 blocks), every pending transaction dropped, the base fee raised 10-20 fold for 2-6 s, or the chain's proxy down
 * for 2-6 s. `stop()` ends the stretch and leaves every chain quiet and reachable.
 */
export class ChainFaults {
  readonly stats: ChainFaultStats = { reorgs: 0, dropped: 0, spikes: 0, outages: 0, errors: 0 };
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly spiking = new Set<number>();

  constructor(
    private readonly chains: readonly Readonly<{ anvil: Anvil; proxy: RpcProxy; quietBaseFee: bigint }>[],
    private readonly random: () => number,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    for (const c of this.chains) await c.anvil.setNextBaseFee(c.quietBaseFee).catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (this.running) {
      await sleep(1_000 + Math.floor(this.random() * 3_000));
      if (!this.running) return;
      const i = Math.floor(this.random() * this.chains.length);
      const c = this.chains[i]!;
      const pick = this.random();
      try {
        if (pick < 0.35) {
          await c.anvil.reorg(1);
          this.stats.reorgs++;
        } else if (pick < 0.6) {
          const pool = await c.anvil.rpc<{ pending: Record<string, Record<string, { hash: string }>> }>("txpool_content");
          for (const byNonce of Object.values(pool.pending)) {
            for (const tx of Object.values(byNonce)) {
              await c.anvil.rpc("anvil_dropTransaction", [tx.hash]);
              this.stats.dropped++;
            }
          }
        } else if (pick < 0.8) {
          if (!this.spiking.has(i)) void this.spike(i, 10n + BigInt(Math.floor(this.random() * 11)), 2_000 + Math.floor(this.random() * 4_000));
        } else {
          c.proxy.down(2_000 + Math.floor(this.random() * 4_000));
          this.stats.outages++;
        }
      } catch {
        this.stats.errors++;
      }
    }
  }

  private async spike(i: number, times: bigint, ms: number): Promise<void> {
    const c = this.chains[i]!;
    this.spiking.add(i);
    this.stats.spikes++;
    const end = Date.now() + ms;
    try {
      while (Date.now() < end && this.running) {
        await c.anvil.setNextBaseFee(c.quietBaseFee * times);
        await sleep(200);
      }
      await c.anvil.setNextBaseFee(c.quietBaseFee);
    } catch {
      this.stats.errors++;
    } finally {
      this.spiking.delete(i);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
