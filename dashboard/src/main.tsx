/**
 * The node's dashboard: sign in with the API token (kept in sessionStorage only), then the node's overview, channels,
 * swaps and events, read from the control API and its event stream; actions are the API's POST routes.
 */
import { Fragment, render } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";

import { Api, ApiError, type Channel, type Info, type NodeEvent, type Peer, type Refusal, type Swap } from "./api.js";
import { ago, duration, localTime, parseAmount, relative, short, units, when } from "./format.js";

const TOKEN_KEY = "channels.apiToken";
const VIEWS = ["overview", "channels", "swaps", "events"] as const;
type View = (typeof VIEWS)[number];

type State = { info?: Info; channels: Channel[]; swaps: Swap[]; peers: Peer[]; refusals: Refusal[] };
type Notice = { kind: "ok" | "error"; text: string } | undefined;

function App() {
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_KEY));
  const signOut = useCallback(() => {
    sessionStorage.removeItem(TOKEN_KEY);
    setToken(null);
  }, []);
  if (token === null) {
    return (
      <SignIn
        onToken={(t) => {
          sessionStorage.setItem(TOKEN_KEY, t);
          setToken(t);
        }}
      />
    );
  }
  return <Dashboard api={new Api(token)} signOut={signOut} />;
}

function SignIn({ onToken }: { onToken: (token: string) => void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const input = (e.currentTarget as HTMLFormElement).elements.namedItem("token") as HTMLInputElement;
    const token = input.value.trim();
    if (token === "") return setError("Paste the node's API token.");
    setBusy(true);
    try {
      await new Api(token).call("GET", "/info");
      input.value = "";
      onToken(token);
    } catch (error) {
      setError(error instanceof ApiError && error.status === 401 ? "The node refused this token (401): paste the one in the file the node's api.tokenFile names." : `The node did not answer: ${(error as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>channels node</h1>
      <form onSubmit={submit}>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} required />
        <p class="hint">The token in the file the node's <code>api.tokenFile</code> names. It stays in this tab (sessionStorage) and goes only into the Authorization header.</p>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error !== undefined && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function viewOfHash(): View {
  const h = location.hash.slice(1);
  return (VIEWS as readonly string[]).includes(h) ? (h as View) : "overview";
}

function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

function Dashboard({ api, signOut }: { api: Api; signOut: () => void }) {
  const [view, setView] = useState<View>(viewOfHash);
  const [state, setState] = useState<State>({ channels: [], swaps: [], peers: [], refusals: [] });
  const [events, setEvents] = useState<NodeEvent[]>([]);
  const [live, setLive] = useState(false);
  const [notice, setNotice] = useState<Notice>();
  const [followed, setFollowed] = useState<string>();
  const now = useNow();
  const refreshing = useRef(false);

  const refresh = useCallback(async () => {
    if (refreshing.current) return;
    refreshing.current = true;
    try {
      const [info, channels, swaps, peers, refusals] = await Promise.all([
        api.call<Info>("GET", "/info"),
        api.call<Channel[]>("GET", "/channels"),
        api.call<Swap[]>("GET", "/swaps"),
        api.call<Peer[]>("GET", "/peers"),
        api.call<Refusal[]>("GET", "/refusals"),
      ]);
      setState({ info, channels, swaps, peers, refusals });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) signOut();
      else setNotice({ kind: "error", text: `Reading the node failed: ${(error as Error).message}` });
    } finally {
      refreshing.current = false;
    }
  }, [api, signOut]);

  useEffect(() => {
    void refresh();
    const t = setInterval(() => void refresh(), 2000);
    return () => clearInterval(t);
  }, [refresh]);

  // The event stream: read while signed in, read again 3 s after it ends or fails.
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const follow = () => {
      setLive(true);
      api
        .events((e) => {
          if (e.type === "hello") return;
          setEvents((old) => [e, ...old].slice(0, 200));
          void refresh();
        }, controller.signal)
        .catch((error: unknown) => {
          if (error instanceof ApiError && error.status === 401) signOut();
        })
        .finally(() => {
          setLive(false);
          if (!controller.signal.aborted) timer = setTimeout(follow, 3000);
        });
    };
    follow();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [api, refresh, signOut]);

  useEffect(() => {
    const onHash = () => setView(viewOfHash());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  /** Runs an action: its outcome in the status line, then a fresh read. */
  const act = useCallback(
    async <T,>(what: string, run: () => Promise<T>): Promise<T | undefined> => {
      setNotice({ kind: "ok", text: `${what}…` });
      try {
        const result = await run();
        setNotice({ kind: "ok", text: `${what}: done` });
        void refresh();
        return result;
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) signOut();
        setNotice({ kind: "error", text: `${what}: ${(error as Error).message}` });
        return undefined;
      }
    },
    [refresh, signOut],
  );

  const ctx: Ctx = { api, state, now, act, events, followed, setFollowed };
  const standby = state.info?.role === "standby";
  return (
    <div class="shell">
      <header>
        <h1>channels node</h1>
        <span class="address" title={state.info?.address}>
          {state.info === undefined ? "…" : short(state.info.address)}
        </span>
        <span class={live ? "live on" : "live"}>{standby ? "standby" : live ? "live" : "reconnecting"}</span>
        <button type="button" class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      {standby && <StandbyBanner info={state.info!} now={now} />}
      <nav aria-label="Views">
        {VIEWS.map((v) => (
          <a key={v} href={`#${v}`} aria-current={v === view ? "page" : undefined}>
            {v[0]!.toUpperCase() + v.slice(1)}
          </a>
        ))}
      </nav>
      <p class={`notice ${notice?.kind ?? ""}`} role="status" aria-live="polite">
        {notice?.text ?? ""}
      </p>
      <main>
        {view === "overview" && <Overview {...ctx} />}
        {view === "channels" && <Channels {...ctx} />}
        {view === "swaps" && <Swaps {...ctx} />}
        {view === "events" && <Events {...ctx} />}
      </main>
    </div>
  );
}

/**
 * A standby's page: it shows the database's rows as of its last read and changes nothing; actions and the live
 * events are the active process's (its API is named, when it gave one).
 */
function StandbyBanner({ info, now }: { info: Info; now: number }) {
  const a = info.active;
  return (
    <p class="standby" role="status" data-testid="standby">
      <b>Standby.</b> This process does not lead the node: it shows what the database holds
      {info.asOf === undefined ? "" : ` (read ${ago(info.asOf, now)})`} and changes nothing; actions and live events are the active process's.{" "}
      {a === null || a === undefined ? (
        "No process leads yet."
      ) : (
        <>
          The active process is <b>{a.holder}</b> (term {a.term}
          {a.api === null ? "" : <>, API <code>{a.api}</code></>}).
        </>
      )}
    </p>
  );
}

type Ctx = {
  api: Api;
  state: State;
  now: number;
  act: <T>(what: string, run: () => Promise<T>) => Promise<T | undefined>;
  events: NodeEvent[];
  followed: string | undefined;
  setFollowed: (id: string | undefined) => void;
};

/** An asset's decimals ("ETH@source"), from /info. */
function decimalsOf(info: Info | undefined, asset: string): number {
  const [symbol, chain] = asset.split("@");
  return info?.chains.find((c) => c.name === chain)?.assets.find((a) => a.symbol === symbol)?.decimals ?? 18;
}

const IN_FLIGHT = (s: Swap) => s.phase !== "done";

const LINK_TEXT: Record<Peer["link"], string> = { up: "up", down: "down", unknown: "no exchange yet" };

function Overview({ state, now }: Ctx) {
  const { info, channels, swaps, peers } = state;
  if (info === undefined) return <p>Reading the node…</p>;
  const deadlines = [
    ...channels.filter((c) => c.challengeDeadline !== undefined).map((c) => ({ at: c.challengeDeadline!, what: `challenge period of channel ${short(c.id)} (${c.chain}) ends` })),
    ...swaps.filter(IN_FLIGHT).flatMap((s) => [
      { at: s.sourceExpiry, what: `swap ${short(s.id)}: the source lock expires` },
      { at: s.targetExpiry, what: `swap ${short(s.id)}: the target lock expires` },
    ]),
  ]
    .filter((d) => Date.parse(d.at) > now)
    .sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const next = deadlines[0];
  return (
    <section aria-labelledby="overview-h">
      <h2 id="overview-h">Overview</h2>
      <p class="deadline" data-testid="nearest-deadline">
        {next === undefined ? "No on-chain deadline ahead." : <>Nearest on-chain deadline: {next.what} at {when(next.at, now)}</>}
      </p>
      <div class="cards">
        {info.chains.map((chain) => {
          const mine = channels.filter((c) => c.chain === chain.name && c.status !== "closed" && c.base !== undefined);
          const held = new Map<string, bigint>();
          const locked = new Map<string, bigint>();
          for (const c of mine) {
            const d = decimalsOf(info, c.asset);
            held.set(c.asset, (held.get(c.asset) ?? 0n) + BigInt(c.base!.balances[c.base!.myIndex] ?? "0"));
            locked.set(c.asset, (locked.get(c.asset) ?? 0n) + (parseAmount(c.balance?.locked, d) ?? 0n));
          }
          const h = chain.health;
          const list = (m: Map<string, bigint>) => (m.size === 0 ? "none" : [...m].map(([a, v]) => `${units(v, decimalsOf(info, a))} ${a}`).join(", "));
          return (
            <article class="card" key={chain.name} data-chain={chain.name}>
              <h3>
                {chain.name} {chain.chainId !== undefined && <small>chain {chain.chainId}</small>}
              </h3>
              {h === undefined ? (
                <p class="small">health: read by the active process</p>
              ) : (
                <p class={h.healthy ? "ok" : "bad"}>{h.healthy ? "healthy" : h.reachable === false ? "unreachable" : h.holding !== undefined ? `held: ${h.holding}` : "not healthy"}</p>
              )}
              <dl>
                <dt>In channels</dt>
                <dd>{list(held)}</dd>
                <dt>Locked in swaps in flight</dt>
                <dd>{list(locked)}</dd>
                {h !== undefined && (
                  <>
                    <dt>On chain (fee account)</dt>
                    <dd>{h.feeAccount.balance === undefined ? "unknown" : `${h.feeAccount.balance.replace(/(\.\d{6})\d+$/, "$1")} (native coin)`}</dd>
                    <dt>Head</dt>
                    <dd>{h.head === undefined ? "not read yet" : `#${h.head}, ${h.headAgeSeconds ?? "?"} s old`}</dd>
                    <dt>Reachable</dt>
                    <dd>{h.reachable === undefined ? "not checked yet" : h.reachable ? "yes" : `no${h.lastError === undefined ? "" : `: ${h.lastError}`}`}</dd>
                  </>
                )}
              </dl>
            </article>
          );
        })}
      </div>
      <h3>Peers</h3>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Address</th>
              <th>Channels</th>
              <th>Link</th>
            </tr>
          </thead>
          <tbody>
            {peers.map((p) => (
              <tr key={p.name} data-peer={p.name} data-link={p.link}>
                <td>{p.name}</td>
                <td title={p.address}>{short(p.address)}</td>
                <td>{p.channels}</td>
                <td data-testid="peer-link">
                  <span class={`peer-link ${p.link}`}>{LINK_TEXT[p.link]}</span>
                  {p.link === "down" && p.lastFailure !== undefined ? (
                    <span class="small"> since {localTime(p.lastFailure, now)}</span>
                  ) : p.lastExchange !== undefined ? (
                    <span class="small"> last exchange {ago(p.lastExchange, now)}</span>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="small">
        {info.channels} channels, {info.activeSwaps} swaps in flight; {info.role === "standby" ? "standing by since" : "node started"} {localTime(info.startedAt, now)}.
      </p>
    </section>
  );
}

function field(form: HTMLFormElement, name: string): string {
  return (form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement).value.trim();
}

/** A form's submission, not sent by the browser: the form and its named fields, trimmed. */
function submitted<K extends string>(e: Event, names: readonly K[]): { form: HTMLFormElement; body: Record<K, string> } {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  return { form, body: Object.fromEntries(names.map((n) => [n, field(form, n)])) as Record<K, string> };
}

function Channels(ctx: Ctx) {
  const { state, api, act } = ctx;
  const assets = (state.info?.chains ?? []).flatMap((c) => c.assets.map((a) => `${a.symbol}@${c.name}`));
  const open = async (e: Event) => {
    const { form, body } = submitted(e, ["peer", "asset", "deposit"]);
    const done = await act(`Open a channel with ${body.peer} (${body.deposit} ${body.asset})`, () => api.call<Channel>("POST", "/channels", body));
    if (done !== undefined) form.reset();
  };
  return (
    <section aria-labelledby="channels-h">
      <h2 id="channels-h">Channels</h2>
      <form class="inline" onSubmit={open} aria-label="Open a channel">
        <PeerSelect peers={state.peers} />
        <label>
          Asset
          <select name="asset" required>
            {assets.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Deposit
          <input name="deposit" inputMode="decimal" placeholder="1.5" required pattern="[0-9]+(\.[0-9]+)?" />
        </label>
        <button type="submit">Open channel</button>
      </form>
      {state.channels.length === 0 && <p>No channels yet.</p>}
      <div class="cards">
        {state.channels.map((c) => (
          <ChannelCard key={c.id} channel={c} {...ctx} />
        ))}
      </div>
    </section>
  );
}

const STATUS_TEXT: Record<Channel["status"], string> = {
  agreed: "agreed, opening on chain",
  open: "open",
  closing: "closing cooperatively",
  forceClosing: "force close sent",
  disputed: "force closed: challenge period",
  closed: "closed",
};

function ChannelCard({ channel: c, state, now, api, act }: Ctx & { channel: Channel }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [amount, setAmount] = useState("");
  const d = decimalsOf(state.info, c.asset);
  const b = c.base;
  const mine = b === undefined ? 0n : BigInt(b.balances[b.myIndex] ?? "0");
  const theirs = b === undefined ? 0n : BigInt(b.balances[1 - b.myIndex] ?? "0");
  const total = mine + theirs;
  const share = total === 0n ? 0 : Number((mine * 1000n) / total) / 10;
  const counted = b === undefined ? 0n : BigInt(b.deposits[b.myIndex] ?? "0");
  const onChain = b?.onChainDeposits === undefined ? undefined : BigInt(b.onChainDeposits[b.myIndex] ?? "0");
  const uncounted = onChain === undefined ? 0n : onChain - counted;
  const deadlineAt = useMemo(() => new Date(now + c.challengePeriodSeconds * 1000).toISOString(), [c.challengePeriodSeconds, Math.floor(now / 60_000)]);
  const path = `/channels/${c.id}`;
  const barLeft = useRef<HTMLSpanElement>(null);
  // The bar's split through the CSSOM (no style attribute: the page's CSP allows no inline style).
  useEffect(() => {
    barLeft.current?.style.setProperty("width", `${share}%`);
  }, [share]);
  return (
    <article class="card channel" data-channel={c.id} data-status={c.status}>
      <h3>
        {c.peer} <small>{c.asset}</small>
      </h3>
      <p>
        <span class={`status ${c.status}`}>{STATUS_TEXT[c.status]}</span> <span class="small" title={c.id}>{short(c.id)}</span>
      </p>
      {c.balance !== undefined && (
        <>
          <div class="bar" role="img" aria-label={`mine ${c.balance.mine}, theirs ${c.balance.theirs}`}>
            <span class="mine" ref={barLeft} />
          </div>
          <p class="split">
            <span>mine {units(mine, d)}</span>
            <span>theirs {units(theirs, d)}</span>
          </p>
          {c.balance.locked !== undefined && parseAmount(c.balance.locked, d) !== 0n && <p class="small">locked in swaps: {c.balance.locked}</p>}
        </>
      )}
      {uncounted > 0n && <p class="small">deposited on chain, not counted yet: {units(uncounted, d)}</p>}
      {c.challengeDeadline !== undefined && (
        <p class="deadline" data-testid="challenge-deadline">
          challenge period ends {when(c.challengeDeadline, now)}
        </p>
      )}
      {c.payouts !== undefined && (
        <p class="payout" data-testid="payout">
          paid out: mine {c.payouts.mine}, theirs {c.payouts.theirs}
        </p>
      )}
      <div class="actions">
        {c.status === "open" && (
          <>
            <form
              class="inline"
              onSubmit={(e) => {
                e.preventDefault();
                void act(`Deposit ${amount} into ${short(c.id)}`, () => api.call("POST", `${path}/deposit`, { amount })).then(() => setAmount(""));
              }}
            >
              <label>
                Amount
                <input inputMode="decimal" value={amount} onInput={(e) => setAmount(e.currentTarget.value)} required pattern="[0-9]+(\.[0-9]+)?" />
              </label>
              <button type="submit">Deposit</button>
            </form>
            <button type="button" onClick={() => void act(`Close ${short(c.id)}`, () => api.call("POST", `${path}/close`, { force: false }))}>
              Close
            </button>
            <button type="button" class="danger" onClick={() => dialog.current?.showModal()}>
              Force close
            </button>
          </>
        )}
        {c.status === "closed" && b?.withdrawable !== undefined && BigInt(b.withdrawable) > 0n && (
          <button type="button" onClick={() => void act(`Withdraw ${c.withdrawable} from the hub`, () => api.call("POST", `${path}/withdraw`, {}))}>
            Withdraw {units(BigInt(b.withdrawable), d)}
          </button>
        )}
        {c.status === "closed" && b?.withdrawable === "0" && (
          <p class="small" data-testid="nothing-held">
            Nothing held to withdraw: the hub paid this node's account directly.
          </p>
        )}
      </div>
      <dialog ref={dialog} aria-labelledby={`fc-${c.id}`}>
        <h3 id={`fc-${c.id}`}>Force close this channel?</h3>
        <p>
          It sends a transaction on <b>{c.chain}</b> (its gas paid from this node's account there) registering the latest co-signed state, without {c.peer}'s
          consent. Your balance stays locked for the challenge period, <b>{duration(c.challengePeriodSeconds)}</b>, until about {localTime(deadlineAt, now)}; any swap
          in flight on it settles on chain; then the node settles and the payout can be withdrawn (another transaction). A cooperative close costs less and is quicker.
        </p>
        <form
          method="dialog"
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            dialog.current?.close();
            void act(`Force close ${short(c.id)}`, () => api.call("POST", `${path}/close`, { force: true }));
          }}
        >
          <button type="button" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" class="danger">
            Force close
          </button>
        </form>
      </dialog>
    </article>
  );
}

const PHASES = ["proposed", "agreed", "locked", "revealed", "done"] as const;

function Swaps(ctx: Ctx) {
  const { state, api, act, followed, setFollowed } = ctx;
  const propose = async (e: Event) => {
    const { form, body } = submitted(e, ["peer", "give", "take"]);
    const swap = await act(`Propose ${body.give} for ${body.take} to ${body.peer}`, () => api.call<Swap>("POST", "/swaps", body));
    if (swap !== undefined) {
      setFollowed(swap.id);
      form.reset();
    }
  };
  const follow = state.swaps.find((s) => s.id === followed);
  const inFlight = state.swaps.filter((s) => IN_FLIGHT(s) && s.id !== followed);
  const done = state.swaps.filter((s) => !IN_FLIGHT(s) && s.id !== followed);
  return (
    <section aria-labelledby="swaps-h">
      <h2 id="swaps-h">Swaps</h2>
      <form class="inline" onSubmit={propose} aria-label="Propose a swap">
        <PeerSelect peers={state.peers} />
        <label>
          Give
          <input name="give" placeholder="0.5 ETH@source" required />
        </label>
        <label>
          Take
          <input name="take" placeholder="0.25 ETH@target" required />
        </label>
        <button type="submit">Propose swap</button>
      </form>
      {follow !== undefined && (
        <>
          <h3>Following</h3>
          <SwapCard swap={follow} {...ctx} />
        </>
      )}
      <h3>In flight</h3>
      {inFlight.length === 0 ? <p>None.</p> : <div class="cards">{inFlight.map((s) => <SwapCard key={s.id} swap={s} {...ctx} />)}</div>}
      <h3>Done</h3>
      {done.length === 0 ? <p>None.</p> : <div class="cards">{done.map((s) => <SwapCard key={s.id} swap={s} {...ctx} />)}</div>}
    </section>
  );
}

/** The peer a form's action goes to: one of the configured peers. */
function PeerSelect({ peers }: { peers: readonly { name: string }[] }) {
  return (
    <label>
      Peer
      <select name="peer" required>
        {peers.map((p) => (
          <option key={p.name}>{p.name}</option>
        ))}
      </select>
    </label>
  );
}

function SwapCard({ swap: s, now }: Ctx & { swap: Swap }) {
  const reached = PHASES.indexOf(s.phase as (typeof PHASES)[number]);
  const extra = reached === -1 ? s.phase : undefined; // cancelling, settlingOnChain
  return (
    <article class="card swap" data-swap={s.id} data-phase={s.phase} data-outcome={s.outcome ?? ""}>
      <h3>
        {s.give} → {s.take}
      </h3>
      <p class="small">
        {s.role === "initiator" ? `proposed to ${s.peer}` : `proposed by ${s.peer}`} · <span title={s.id}>{short(s.id)}</span> · since {localTime(s.since, now)}
      </p>
      <ol class="timeline" aria-label="Phases">
        {PHASES.map((p, i) => (
          <li key={p} class={i < reached || (p === "done" && s.phase === "done") ? "past" : i === reached ? "now" : ""} aria-current={i === reached ? "step" : undefined}>
            {p === "done" && s.outcome !== undefined ? s.outcome : p}
          </li>
        ))}
        {extra !== undefined && (
          <li class="now" aria-current="step">
            {extra}
          </li>
        )}
      </ol>
      {s.phase !== "done" ? (
        <p class="small">
          source lock expires {when(s.sourceExpiry, now)}; target lock expires {when(s.targetExpiry, now)}
        </p>
      ) : (
        <p class={s.outcome === "swapped" ? "ok" : "bad"} data-testid="outcome">
          {s.outcome}
          {s.reason !== undefined ? `: ${s.reason}` : ""}
        </p>
      )}
    </article>
  );
}

function Events({ state, events, now }: Ctx) {
  return (
    <section aria-labelledby="events-h">
      <h2 id="events-h">Events</h2>
      <h3>Refused proposals</h3>
      {state.refusals.length === 0 ? (
        <p>None.</p>
      ) : (
        <ul class="log" data-testid="refusals">
          {[...state.refusals].reverse().map((r) => (
            <li key={`${r.time}${r.id}`}>
              <time dateTime={r.time}>{localTime(r.time, now)}</time> {r.kind} from {r.peer}: {r.reason}
            </li>
          ))}
        </ul>
      )}
      <h3>Live events</h3>
      {events.length === 0 ? (
        <p>None since this page opened.</p>
      ) : (
        <ul class="log" data-testid="events">
          {events.map((e, i) => (
            <li key={`${e.time}-${i}`}>
              <time dateTime={e.time} title={relative(e.time, now)}>
                {localTime(e.time, now)}
              </time>{" "}
              <b>{e.type}</b> <EventLine e={e} state={state} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Fields holding amounts of the channel's asset (base units: one, or one per participant). */
const ASSET_AMOUNTS = new Set(["amount", "deposits", "balances", "payouts", "deposit"]);
/** Fields holding amounts of the chain's native coin (a transaction's fee, wei). */
const NATIVE_AMOUNTS = new Set(["fee"]);
/** Fields holding a gas price (wei per gas): shown in gwei. */
const GAS_PRICES = new Set(["maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerGasCap", "marketMaxFeePerGas"]);

const isBase = (v: unknown): v is string => typeof v === "string" && /^-?\d+$/.test(v);

/**
 * An event's fields in one line, ids shortened; amounts in token units where the event names a channel or asset the
 * page knows (the channels list gives the asset, /info its decimals), fees in the chain's native coin and gas prices
 * in gwei. Each converted field keeps its raw text in its title; the whole line's raw JSON is the line's title.
 */
function describe(e: NodeEvent, state: State): { raw: string; parts: { text: string; raw?: string }[] } {
  const fields = Object.entries(e).filter(([k]) => k !== "time" && k !== "type");
  const channelId = typeof e.channelId === "string" ? e.channelId.toLowerCase() : undefined;
  const asset = typeof e.asset === "string" ? e.asset : state.channels.find((c) => c.id.toLowerCase() === channelId)?.asset;
  const chainName = typeof e.chain === "string" ? e.chain : asset?.split("@")[1];
  const convert = (k: string, v: unknown): string | undefined => {
    if (ASSET_AMOUNTS.has(k) && asset !== undefined) {
      const d = decimalsOf(state.info, asset);
      if (isBase(v)) return `${units(BigInt(v), d)} ${asset}`;
      if (Array.isArray(v) && v.length > 0 && v.every(isBase)) return `[${v.map((x) => units(BigInt(x), d)).join(", ")}] ${asset}`;
    }
    if (NATIVE_AMOUNTS.has(k) && isBase(v) && chainName !== undefined) return `${units(BigInt(v), 18)} (${chainName}'s coin)`;
    if (GAS_PRICES.has(k) && isBase(v)) return `${units(BigInt(v), 9)} gwei`;
    return undefined;
  };
  const plain = (v: unknown) => (typeof v === "string" ? (v.startsWith("0x") ? short(v) : v) : JSON.stringify(v));
  const parts = fields.map(([k, v]) => {
    const converted = convert(k, v);
    return converted === undefined ? { text: `${k}=${plain(v)}`.slice(0, 300) } : { text: `${k}=${converted}`, raw: `${k}=${JSON.stringify(v)}` };
  });
  return { raw: JSON.stringify(Object.fromEntries(fields)), parts };
}

function EventLine({ e, state }: { e: NodeEvent; state: State }) {
  const { raw, parts } = describe(e, state);
  return (
    <span class="fields" title={raw.length > 2000 ? `${raw.slice(0, 2000)}…` : raw}>
      {parts.map((p, i) => (
        <Fragment key={i}>
          {i > 0 && " "}
          {p.raw === undefined ? (
            p.text
          ) : (
            <span class="amount" title={p.raw}>
              {p.text}
            </span>
          )}
        </Fragment>
      ))}
    </span>
  );
}

const root = document.getElementById("app")!;
root.replaceChildren(); // the "Loading…" line shown until the script runs
render(<App />, root);
