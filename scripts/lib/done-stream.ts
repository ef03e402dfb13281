/** A node's event stream (`GET /api/v1/events`) as the benchmarks read it: each swap's outcome once it is done. */

/** What a stream is opened on: the node's control API base (`.../api/v1`) and its token. */
export type ApiNode = Readonly<{ api: string; token: string }>;

/** Resolves swaps by id as their `done` comes on the event stream; a `done` may come before its POST answers. */
export class DoneStream {
  private readonly waiting = new Map<string, (outcome: string) => void>();
  private readonly early = new Map<string, string>();
  private readonly abort = new AbortController();
  lines = 0;

  async open(node: ApiNode): Promise<void> {
    const r = await fetch(`${node.api}/events`, { headers: { authorization: `Bearer ${node.token}` }, signal: this.abort.signal });
    if (!r.ok || r.body === null) throw new Error(`GET /events: ${r.status}`);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let partial = "";
    const hello = new Promise<void>((ok) => {
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            const parts = (partial + decoder.decode(value, { stream: true })).split("\n");
            partial = parts.pop()!;
            for (const l of parts) {
              if (l === "") continue;
              this.lines++;
              if (l.includes('"type":"hello"')) ok();
              if (!l.includes('"type":"phase"') || !l.includes('"kind":"done"')) continue;
              const e = JSON.parse(l) as { swapId: string; phase: { outcome: string } };
              const id = e.swapId.toLowerCase();
              const w = this.waiting.get(id);
              if (w === undefined) this.early.set(id, e.phase.outcome);
              else {
                this.waiting.delete(id);
                w(e.phase.outcome);
              }
            }
          }
        } catch {
          // aborted at the end
        }
      })();
    });
    await hello;
  }

  constructor(private readonly timeoutMs: number) {}

  /** The swap's outcome once done, or "timeout" after the stream's timeout. */
  done(id: string): Promise<string> {
    const key = id.toLowerCase();
    const seen = this.early.get(key);
    if (seen !== undefined) {
      this.early.delete(key);
      return Promise.resolve(seen);
    }
    return new Promise((ok) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        ok("timeout");
      }, this.timeoutMs);
      this.waiting.set(key, (outcome) => {
        clearTimeout(timer);
        ok(outcome);
      });
    });
  }

  close(): void {
    this.abort.abort();
  }
}
