/** `channels swap propose|list|show`, with `--wait`. */
import { Command } from "commander";

import { ChannelSdkError } from "../core/errors.js";
import { UsageError } from "../node/errors.js";
import type { ApiClient } from "./client.js";
import { api, idPath, print, sleep } from "./context.js";
import { duration, parseDuration, Progress, short, table, when } from "./format.js";

export type SwapView = {
  id: string; role: string; peer: string; phase: string; outcome?: string; reason?: string; give: string; take: string;
  source: string; target: string; sourceExpiry: string; targetExpiry: string; since: string;
};
type Refusal = { time: string; kind: string; peer: string; id: string; reason: string };

/** What this node gives and gets in a swap: the terms' give and take are the initiator's. */
function sides(s: SwapView): { gives: string; gets: string } {
  return s.role === "initiator" ? { gives: s.give, gets: s.take } : { gives: s.take, gets: s.give };
}

/** Which of the protocol's four phases each phase of a swap belongs to (docs/SWAP.md). */
const STAGES: Readonly<Record<string, string>> = {
  proposed: "1 negotiation",
  agreed: "1 negotiation",
  locked: "2 execution",
  revealed: "2 execution",
  cancelling: "2 execution, undone",
  settlingOnChain: "3 batch settlement",
  done: "4 settled",
};

/** The phase with the protocol phase it belongs to: "locked (2 execution)". */
function phaseOf(s: SwapView): string {
  const stage = STAGES[s.phase];
  return stage === undefined ? s.phase : `${s.phase} (${stage})`;
}

function describe(s: SwapView): string {
  const { gives, gets } = sides(s);
  return [
    `swap ${s.id} (${s.role}, peer ${s.peer})`,
    `  you give ${gives} for ${gets}`,
    `  phase ${phaseOf(s)}${s.outcome ? `: ${s.outcome}` : ""}${s.reason ? ` (${s.reason})` : ""}`,
    ...(s.phase === "done" ? [] : [`  target lock expires ${when(s.targetExpiry)}, source lock ${when(s.sourceExpiry)}`]),
  ].join("\n");
}

/** Polls the swap until it is done; progress with the time left before the target lock expires. */
async function waitFor(client: ApiClient, swap: SwapView, timeoutSeconds: number): Promise<SwapView> {
  const p = new Progress();
  const deadline = Date.now() + timeoutSeconds * 1000;
  let s = swap;
  while (s.phase !== "done") {
    if (Date.now() > deadline) {
      p.done();
      throw new ChannelSdkError(`swap ${s.id} not done after ${duration(timeoutSeconds)} (phase ${phaseOf(s)}); it goes on in the node: channels swap show ${short(s.id)} --wait`);
    }
    const left = (Date.parse(s.targetExpiry) - Date.now()) / 1000;
    p.show(`swap ${short(s.id)}: ${phaseOf(s)}${left > 0 ? `, target lock expires in ${duration(left)}` : ""}`);
    await sleep(300);
    s = await client.get<SwapView>(`/swaps/${s.id}`);
  }
  p.done();
  return s;
}

function finish(cmd: Command, s: SwapView): void {
  print(cmd, s, describe);
  if (s.phase === "done" && s.outcome === "aborted") process.exitCode = 1;
}

function timeoutOf(text: string): number {
  const t = parseDuration(text);
  if (t === undefined) throw new UsageError(`--timeout: expected a duration like 5m, got ${JSON.stringify(text)}`);
  return t;
}

export function swapCommands(): Command {
  const swap = new Command("swap").description("propose and follow swaps");
  swap
    .command("propose")
    .description("propose a swap to a peer: give on one channel, take on another")
    .requiredOption("--peer <name>", "a peer of the node's configuration")
    .requiredOption("--give <amount>", 'what we give, e.g. "10 SRC@source"')
    .requiredOption("--take <amount>", 'what we take, e.g. "0.5 ETH@target"')
    .option("--source <channel>", "the channel we give on (default: our open channel with the peer in that asset)")
    .option("--target <channel>", "the channel we take on")
    .option("--wait", "wait until the swap is done")
    .option("--timeout <duration>", "longest wait with --wait", "10m")
    .action(async (o: { peer: string; give: string; take: string; source?: string; target?: string; wait?: boolean; timeout: string }, cmd: Command) => {
      const timeout = timeoutOf(o.timeout);
      const client = api(cmd);
      let s = await client.post<SwapView>("/swaps", { peer: o.peer, give: o.give, take: o.take, source: o.source, target: o.target });
      if (o.wait) s = await waitFor(client, s, timeout);
      finish(cmd, s);
    });
  swap
    .command("list")
    .description("every swap (--refused: proposals this node refused, with the reason)")
    .option("--refused", "list refused proposals instead")
    .action(async (o: { refused?: boolean }, cmd: Command) => {
      if (o.refused) {
        const list = await api(cmd).get<Refusal[]>("/refusals");
        print(cmd, list, (l) => (l.length === 0 ? "no refused proposals" : table(["TIME", "KIND", "PEER", "REASON"], l.map((r) => [r.time, r.kind, r.peer, r.reason]))));
        return;
      }
      const list = await api(cmd).get<SwapView[]>("/swaps");
      print(cmd, list, (l) =>
        l.length === 0 ? "no swaps" : table(["ID", "ROLE", "PEER", "YOU GIVE", "YOU GET", "PHASE"], l.map((s) => [short(s.id), s.role, s.peer, sides(s).gives, sides(s).gets, s.outcome ?? phaseOf(s)])),
      );
    });
  swap
    .command("show <id>")
    .description("one swap (id or a unique prefix)")
    .option("--wait", "wait until the swap is done")
    .option("--timeout <duration>", "longest wait with --wait", "10m")
    .action(async (id: string, o: { wait?: boolean; timeout: string }, cmd: Command) => {
      const timeout = timeoutOf(o.timeout);
      const path = idPath("swap", id);
      const client = api(cmd);
      let s = await client.get<SwapView>(path);
      if (o.wait) s = await waitFor(client, s, timeout);
      finish(cmd, s);
    });
  return swap;
}
