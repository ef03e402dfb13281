/** The node's control API as the page calls it: same origin, the bearer token in a header, never in a URL. */
import { readLines } from "./lines.js";

export type ChainHealth = {
  healthy: boolean;
  reachable?: boolean;
  holding?: string;
  head?: number;
  headAgeSeconds?: number;
  lastError?: string;
  feeAccount: { address: string; balance?: string; enough?: boolean };
};
/** The process that leads a node kept in PostgreSQL, as a standby names it. */
export type Active = { holder: string; api: string | null; term: number; since: string };
export type Info = {
  address: string;
  /** "standby": a process of a node kept in PostgreSQL that does not lead: it shows the database's rows as of `asOf` and changes nothing. */
  role?: "active" | "standby";
  active?: Active | null;
  asOf?: string;
  startedAt: string;
  /** A standby reads no chain: its chains have no `health`, and a chain whose id it could not read has no `chainId`. */
  chains: { name: string; chainId?: string; assets: { symbol: string; decimals: number }[]; health?: ChainHealth }[];
  channels: number;
  activeSwaps: number;
};
export type Pair = { mine: string; theirs: string };
export type Channel = {
  id: string;
  chain: string;
  peer: string;
  asset: string;
  status: "agreed" | "open" | "closing" | "forceClosing" | "disputed" | "closed";
  challengePeriodSeconds: number;
  balance?: Pair & { locked: string };
  deposits?: Pair;
  onChainDeposits?: Pair;
  payouts?: Pair;
  challengeDeadline?: string;
  /** Once closed: what the hub holds for this node in the channel's asset (POST .../withdraw pulls it). */
  withdrawable?: string;
  base?: { balances: string[]; deposits: string[]; onChainDeposits?: string[]; payouts?: string[]; withdrawable?: string; myIndex: number };
};
export type Swap = {
  id: string;
  role: "initiator" | "responder";
  peer: string;
  phase: string;
  outcome?: string;
  reason?: string;
  give: string;
  take: string;
  sourceExpiry: string;
  targetExpiry: string;
  since: string;
};
/** A configured peer; `link` as the node last saw it (GET /peers: up, down, or unknown before any exchange). */
export type Peer = { name: string; address: string; url: string; channels: number; link: "up" | "down" | "unknown"; lastExchange?: string; lastFailure?: string };
export type Refusal = { time: string; kind: string; peer: string; id: string; reason: string };
export type NodeEvent = { time: string; type: string; [k: string]: unknown };

/** An answer other than 2xx: its status and the API's `error`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Api {
  constructor(private readonly token: string) {}

  private headers(json: boolean): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...(json ? { "content-type": "application/json" } : {}) };
  }

  async call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    const res = await fetch(`/api/v1${path}`, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const error = typeof json === "object" && json !== null && "error" in json ? String(json.error) : `HTTP ${res.status}`;
      throw new ApiError(res.status, error);
    }
    return json as T;
  }

  /**
   * GET /events, read as NDJSON with a stream reader (EventSource cannot send the token): `onEvent` per line until
   * `signal` aborts or the stream ends (resolves) or fails (rejects; also on a line past MAX_EVENT_LINE, `readLines`).
   */
  async events(onEvent: (e: NodeEvent) => void, signal: AbortSignal): Promise<void> {
    const res = await fetch("/api/v1/events", { headers: this.headers(false), signal, cache: "no-store", credentials: "omit" });
    if (!res.ok || res.body === null) throw new ApiError(res.status, `event stream: HTTP ${res.status}`);
    await readLines(res.body.pipeThrough(new TextDecoderStream()), (line) => {
      if (line.trim() === "") return; // keep-alive
      try {
        onEvent(JSON.parse(line) as NodeEvent);
      } catch {
        // a line cut short: skipped
      }
    });
  }
}
