/**
 * A JSON-RPC provider (as `rpcProvider` sets it up) whose answers a test can replace, one request at a time, and
 * whose requests it counts per method: an RPC endpoint that fails, lags or lies, in front of a real chain.
 */
import { JsonRpcProvider, type JsonRpcPayload, type JsonRpcResult } from "ethers";

type Tapped = { result: unknown } | Error | undefined;

export class TappedProvider extends JsonRpcProvider {
  /** Answers `p` itself (a result, or an error to throw), or undefined to pass it on to the chain. */
  tap: ((p: JsonRpcPayload) => Tapped | Promise<Tapped>) | undefined;
  readonly counts = new Map<string, number>();

  constructor(url: string) {
    super(url, undefined, { cacheTimeout: -1, batchMaxCount: 1, batchStallTime: 0 });
  }

  /** Requests made so far, all methods. */
  total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    const list = Array.isArray(payload) ? payload : [payload];
    for (const p of list) this.counts.set(p.method, (this.counts.get(p.method) ?? 0) + 1);
    const one = list.length === 1 ? list[0]! : undefined;
    const tapped = one === undefined ? undefined : await this.tap?.(one);
    if (tapped instanceof Error) throw tapped;
    if (tapped !== undefined) return [{ id: one!.id, result: tapped.result }];
    return (await super._send(payload)) as JsonRpcResult[];
  }
}
