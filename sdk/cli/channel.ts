/** `channels channel list|show|open|deposit|close|withdraw`. */
import { Command } from "commander";

import { UsageError } from "../node/errors.js";
import { api, idPath, print, sleep } from "./context.js";
import { duration, parseDuration, Progress, short, table, when } from "./format.js";

export type ChannelView = {
  id: string; chain: string; peer: string; asset: string; status: string; seq?: string; challengePeriodSeconds: number;
  /** Set when the channel came from a restored backup copy: nothing is signed on it, its balances may be old. */
  frozenSince?: string;
  /** While frozen: when it last asked its peer for the newest state both signed, and why it cannot catch up. */
  catchUp?: { askedAt?: string; problem?: string };
  balance?: { mine: string; theirs: string; locked: string }; deposits?: { mine: string; theirs: string };
  payouts?: { mine: string; theirs: string }; onChainDeposits?: { mine: string; theirs: string };
  base?: { deposits: string[]; onChainDeposits?: string[]; myIndex: number };
};

/** Whether our deposit on chain is counted in the co-signed ledger (final, and folded in by both nodes). */
function counted(c: ChannelView): boolean {
  const b = c.base;
  if (c.status !== "open" || b?.onChainDeposits === undefined) return false;
  return BigInt(b.deposits[b.myIndex]!) >= BigInt(b.onChainDeposits[b.myIndex]!);
}

/** A channel's status, marked when it came frozen from a backup copy and is not closed. */
function statusText(c: ChannelView): string {
  return c.frozenSince !== undefined && c.status !== "closed" ? `${c.status} (frozen)` : c.status;
}

/** Polls the channel until our deposit counts, showing what it waits for; gives up after `timeoutMs`. */
async function waitCounted(cmd: Command, id: string, timeoutMs: number): Promise<ChannelView> {
  const client = api(cmd);
  const p = new Progress();
  const started = Date.now();
  for (;;) {
    const c = await client.get<ChannelView>(idPath("channel", id));
    if (counted(c)) {
      p.done();
      return c;
    }
    const waited = (Date.now() - started) / 1000;
    if (waited * 1000 > timeoutMs) {
      p.done();
      throw new UsageError(`--wait: the deposit of ${short(c.id)} is not counted after ${duration(waited)}; see \`channels channel show ${short(c.id)}\``);
    }
    p.show(
      c.status !== "open"
        ? `channel ${short(c.id)}: ${c.status}, waiting for it to open at the chain's final block (${duration(waited)})`
        : `channel ${short(c.id)}: on chain ${c.onChainDeposits?.mine ?? "?"}, counted ${c.deposits?.mine ?? "?"}; waiting until final and co-signed (${duration(waited)})`,
    );
    await sleep(500);
  }
}

/** A peer's link as `GET /peers` shows it. */
type PeerLinkView = { name: string; link?: "up" | "down" | "unknown"; lastFailure?: string };

/** Whether the channel waits to catch up from its peer (frozen, nothing keeping it from catching up). */
function waitsForPeer(c: ChannelView): boolean {
  return c.frozenSince !== undefined && c.status !== "closed" && c.catchUp?.problem === undefined;
}

/** A channel in lines; `peer`: its peer's link, told when a frozen channel waits for a peer that does not answer. */
function describe(c: ChannelView, peer?: PeerLinkView): string {
  const lines = [`channel ${c.id}`, `  chain ${c.chain}, asset ${c.asset}, peer ${c.peer}, status ${statusText(c)}, challenge period ${duration(c.challengePeriodSeconds)}`];
  if (c.frozenSince !== undefined && c.status !== "closed") {
    const why = c.catchUp?.problem;
    const silent =
      peer?.link === "down"
        ? `; the peer ${c.peer} does not answer${peer.lastFailure !== undefined ? `, last failed ${when(peer.lastFailure)}` : ""}: start its node, or force-close this channel (channels channel close ${short(c.id)} --force)`
        : "";
    lines.push(
      `  FROZEN since ${when(c.frozenSince)} (the store is a copy: a restored backup, or one frozen with channels store freeze); the balances below may be older than the peer's, and nothing is signed on it ` +
        (why !== undefined
          ? `(it cannot catch up: ${why})`
          : `until the peer shows the newest state both signed${c.catchUp?.askedAt !== undefined ? `, last asked ${when(c.catchUp.askedAt)}` : ""}${silent}`),
    );
  }
  if (c.balance) lines.push(`  balance: mine ${c.balance.mine}, theirs ${c.balance.theirs}, locked ${c.balance.locked} (state ${c.seq})`);
  if (c.deposits) lines.push(`  deposits counted: mine ${c.deposits.mine}, theirs ${c.deposits.theirs}`);
  if (c.payouts) lines.push(`  paid out: mine ${c.payouts.mine}, theirs ${c.payouts.theirs}`);
  return lines.join("\n");
}

export function channelCommands(): Command {
  const channel = new Command("channel").description("open, fund, inspect and close channels");
  channel
    .command("list")
    .description("every channel of this node")
    .action(async (_o, cmd: Command) => {
      const list = await api(cmd).get<ChannelView[]>("/channels");
      print(cmd, list, (l) =>
        l.length === 0
          ? "no channels"
          : table(
              ["ID", "CHAIN", "PEER", "ASSET", "STATUS", "MINE", "THEIRS", "PAID OUT (MINE/THEIRS)"],
              l.map((c) => [short(c.id), c.chain, c.peer, c.asset, statusText(c), c.balance?.mine ?? "-", c.balance?.theirs ?? "-", c.payouts ? `${c.payouts.mine} / ${c.payouts.theirs}` : "-"]),
            ),
      );
    });
  channel
    .command("show <id>")
    .description("one channel (id or a unique prefix)")
    .action(async (id: string, _o, cmd: Command) => {
      const path = idPath("channel", id);
      const client = api(cmd);
      const c = await client.get<ChannelView>(path);
      // A frozen channel waiting for its peer: say whether that peer answers at all.
      const peer = waitsForPeer(c) ? (await client.get<PeerLinkView[]>("/peers")).find((p) => p.name === c.peer) : undefined;
      print(cmd, c, (v) => describe(v, peer));
    });
  channel
    .command("open")
    .description("negotiate a channel with a peer's node, then open and fund it on chain")
    .requiredOption("--peer <name>", "a peer of the node's configuration")
    .requiredOption("--asset <SYMBOL@chain>", "e.g. ETH@source")
    .requiredOption("--deposit <amount>", "our opening deposit in token units, e.g. 5")
    .option("--challenge-period <duration>", "e.g. 1h (default: the node's timing.challengePeriodSeconds)")
    .option("--wait", "wait until the channel is open and our deposit counts in it (final on chain, co-signed)")
    .action(async (o: { peer: string; asset: string; deposit: string; challengePeriod?: string; wait?: boolean }, cmd: Command) => {
      let challengePeriodSeconds: number | undefined;
      if (o.challengePeriod !== undefined) {
        challengePeriodSeconds = parseDuration(o.challengePeriod);
        if (challengePeriodSeconds === undefined) throw new UsageError(`--challenge-period: expected a duration like 1h, got ${JSON.stringify(o.challengePeriod)}`);
      }
      const c = await api(cmd).post<ChannelView>("/channels", { peer: o.peer, asset: o.asset, deposit: o.deposit, challengePeriodSeconds });
      print(cmd, o.wait ? await waitCounted(cmd, c.id, 10 * 60_000) : c, describe);
    });
  channel
    .command("deposit <id> <amount>")
    .description("deposit more into a channel (token units)")
    .option("--wait", "wait until the deposit counts in the channel (final on chain, co-signed)")
    .action(async (id: string, amount: string, o: { wait?: boolean }, cmd: Command) => {
      const path = idPath("channel", id);
      const c = await api(cmd).post<ChannelView>(`${path}/deposit`, { amount });
      print(cmd, o.wait ? await waitCounted(cmd, c.id, 10 * 60_000) : c, describe);
    });
  channel
    .command("close <id>")
    .description("close cooperatively: no new swap on it, the swaps using it undone or completed, then its final state (or --force: on chain, after the challenge period, with every channel a swap in flight ties to it)")
    .option("--force", "force close on chain without the peer")
    .option("--wait", "wait until the channel is closed on chain")
    .action(async (id: string, o: { force?: boolean; wait?: boolean }, cmd: Command) => {
      const path = idPath("channel", id);
      const client = api(cmd);
      let c = await client.post<ChannelView>(`${path}/close`, { force: o.force === true });
      if (o.wait) {
        const p = new Progress();
        const started = Date.now();
        while (c.status !== "closed") {
          const waited = (Date.now() - started) / 1000;
          p.show(
            o.force
              ? `closing ${short(c.id)}: ${c.status}; the challenge period (${duration(c.challengePeriodSeconds)}) runs, about ${duration(c.challengePeriodSeconds - waited)} left`
              : `closing ${short(c.id)}: ${c.status}, waiting for the peer and the chain (${duration(waited)})`,
          );
          await sleep(500);
          c = await client.get<ChannelView>(`/channels/${encodeURIComponent(c.id)}`);
        }
        p.done();
      }
      print(cmd, c, describe);
    });
  channel
    .command("withdraw <id>")
    .description("pull a payout the hub holds for us (one it could not push)")
    .action(async (id: string, _o, cmd: Command) => {
      const path = idPath("channel", id);
      print(cmd, await api(cmd).post<ChannelView>(`${path}/withdraw`), describe);
    });
  return channel;
}
