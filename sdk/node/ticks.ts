/** The node's loops: the client's tick (joining agreed channels first) and the heartbeat per chain. */
import type { NodeParts } from "./start.js";
import type { StoreHealth } from "./store-health.js";

export type TickDeps = Pick<NodeParts, "config" | "log" | "client" | "store" | "tower" | "chainIds" | "adapters" | "chainHealth"> &
  Readonly<{ health: StoreHealth; joinPending: () => Promise<void> }>;

export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private chainCheck: NodeJS.Timeout | undefined;
  /** The heartbeat in flight: the next one is skipped until it ends, and stop() waits for it. */
  private beating: Promise<void> | undefined;
  private ticking: Promise<void> | undefined;
  private stopping = false;
  private lastTickError = "";

  constructor(private readonly d: TickDeps) {}

  /** Starts the tick loop and the heartbeat's interval. */
  start(): void {
    this.schedule();
    this.heartbeat = setInterval(() => this.startBeat(), this.d.config.timing.heartbeatSeconds * 1000);
    void this.d.chainHealth.check();
    this.chainCheck = setInterval(() => void this.d.chainHealth.check(), this.d.config.timing.chainCheckSeconds * 1000);
  }

  /** Stops both loops and waits for the tick and the heartbeat in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    clearInterval(this.chainCheck);
    await this.ticking;
    await this.beating; // the store and the providers stay open until it ends
    await this.d.chainHealth.idle(); // the chain check in flight ends before the providers close
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tickOnce().finally(() => {
        this.ticking = undefined;
        this.schedule();
      });
    }, this.d.config.timing.tickMs);
  }

  private async tickOnce(): Promise<void> {
    this.d.health.checkStore(false);
    const t0 = Date.now();
    await this.d.joinPending();
    const t1 = Date.now();
    try {
      await this.d.client.tick();
      if (Date.now() - t0 > 2_000) this.d.log.debug({ event: "slowTick", joinMs: t1 - t0, tickMs: Date.now() - t1 }, "slow tick");
      this.lastTickError = "";
    } catch (error) {
      const text = (error as Error).message?.split("\n")[0] ?? String(error);
      if (text !== this.lastTickError) this.d.log.warn({ event: "tickError", error: text }, "tick failed (retrying)");
      this.lastTickError = text;
    }
  }

  startBeat(): void {
    if (this.beating !== undefined || this.stopping) return;
    this.beating = this.beat().finally(() => (this.beating = undefined));
  }

  private async beat(): Promise<void> {
    this.d.health.beat();
    try {
      // The client tells the tower of every channel, state and secret as it stores them (imported once at start).
      await this.d.tower.poll();
    } catch (error) {
      this.d.log.warn({ event: "watchtowerError", error: (error as Error).message.split("\n")[0] }, "watchtower poll failed");
    }
    const records = this.d.store.channels();
    for (const [name, chainId] of this.d.chainIds) {
      try {
        const adapter = this.d.adapters.get(chainId)!;
        // The providers ask the chain id once (rpcProvider): an endpoint that now serves another chain is said here.
        const served = await adapter.servedChainId();
        if (served !== chainId) {
          this.d.log.error(
            { event: "heartbeat", chain: name, chainId, servedChainId: served },
            `chain ${name}: the endpoint now serves chain id ${served}, not ${chainId}: check chains.${name}.rpcUrl and restart the node`,
          );
        }
        const block = await adapter.provider.getBlock("latest");
        const channels = records.filter((c) => c.ref.chainId === chainId).length;
        const lag = block === null ? undefined : Math.round(Date.now() / 1000 - block.timestamp);
        this.d.log.info({ event: "heartbeat", chain: name, chainId, block: block?.number, blockAgeSeconds: lag, channels }, `heartbeat ${name}`);
      } catch (error) {
        this.d.log.warn({ event: "heartbeat", chain: name, error: (error as Error).message.split("\n")[0] }, `chain ${name} does not answer`);
      }
    }
  }
}
