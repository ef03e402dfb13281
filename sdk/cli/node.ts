/**
 * `channels node start`, `channels info`, `channels peer list`, `channels chain release`, `channels backup`,
 * `channels store move`, `channels store freeze`.
 */
import { Command } from "commander";

import { api, globals, print } from "./context.js";
import { table, when } from "./format.js";

type Health = {
  healthy: boolean; holding?: string; reachable?: boolean; unreachableSince?: string; lastError?: string;
  head?: number; headAgeSeconds?: number; confirmations: number;
  deepReorg?: { block: number; trusted: string; found?: string; at: string };
  feeAccount: { balance?: string; reserve?: string; enough?: boolean };
};
type Info = {
  role?: "active" | "standby"; active?: { holder: string; api: string | null; term: number } | null; store?: { kind: string; term?: number }; asOf?: string;
  address: string; startedAt: string; peerUrl: string; channels: number; activeSwaps: number; frozenChannels: number;
  chains: { name: string; chainId: string; hub: string; assets: { symbol: string; address: string }[]; health?: Health }[];
};

/** A chain's health in one line: healthy, or what is wrong first. */
function healthLine(h: Health, native: string): string {
  const head = h.head === undefined ? "head not read yet" : `block ${h.head} (${h.headAgeSeconds} s old)`;
  const fees =
    h.feeAccount.balance === undefined ? "" : `, fee account ${h.feeAccount.balance} ${native}${h.feeAccount.enough === false ? ` (SHORT: its channels may need ${h.feeAccount.reserve})` : ""}`;
  const state =
    h.deepReorg !== undefined
      ? `DEEP REORG: block ${h.deepReorg.block} taken as final was replaced (${when(h.deepReorg.at)}); nothing new is signed on it until released (channels chain release)`
      : h.reachable === false
        ? `UNREACHABLE since ${when(h.unreachableSince!)}: ${h.lastError}`
        : h.reachable === undefined
          ? "not checked yet"
          : h.healthy
            ? "healthy"
            : "unhealthy";
  return `    ${state}; ${head}, finality ${h.confirmations} block(s)${fees}`;
}
type Peer = { name: string; address: string; url: string; channels: number; link?: string; lastExchange?: string };

export function nodeCommands(): Command[] {
  const node = new Command("node").description("the long-running node");
  node
    .command("start")
    .description("start the node: key, store, swaps, watchtower, peer endpoint, control API (JSON-lines log on stdout)")
    .option("--log-level <level>", "trace, debug, info, warn, error")
    .option("--allow-empty-store", "start with a new store although the files beside it or the chains say this node had channels (they are then defended only on chain, by the watchtower)")
    .action(async (o: { logLevel?: string; allowEmptyStore?: boolean }, cmd: Command) => {
      const { runNode } = await import("../node/service.js");
      const { password } = await import("./prompt.js");
      await runNode(globals(cmd).config, o.logLevel, password, { allowEmptyStore: o.allowEmptyStore === true });
    });
  const info = new Command("info").description("the node's address, chains and counts").action(async (_o, cmd: Command) => {
    const i = await api(cmd).get<Info>("/info");
    print(cmd, i, (d) =>
      d.role === "standby"
        ? `node ${d.address}: this process stands by; ${d.active === null || d.active === undefined ? "no process leads yet" : `the active one is ${d.active.holder} (term ${d.active.term}${d.active.api === null ? "" : `, API ${d.active.api}`})`}` +
          (d.asOf === undefined ? "" : `\n  the database as of ${when(d.asOf)}: ${d.channels} channel(s), ${d.activeSwaps} swap(s) in flight`)
        : [
        `node ${d.address}, peer endpoint ${d.peerUrl}, started ${when(d.startedAt)}`,
        ...d.chains.flatMap((c) => [
          `  chain ${c.name} (${c.chainId}) hub ${c.hub}, assets ${c.assets.map((a) => a.symbol).join(", ")}`,
          ...(c.health === undefined ? [] : [healthLine(c.health, c.assets.find((a) => /^0x0{40}$/.test(a.address))?.symbol ?? "(native coin)")]),
        ]),
        `  ${d.channels} channel(s), ${d.activeSwaps} swap(s) in flight`,
        ...(d.frozenChannels > 0 ? [`  ${d.frozenChannels} channel(s) FROZEN: the store is a copy (a restored backup, or one frozen with channels store freeze); nothing is signed on them until each catches up from its peer (channel show says why one cannot; force-close that one; docs/NODE.md, Backups)`] : []),
        ...(d.store?.kind === "postgres" ? [`  store in PostgreSQL, led by this process under term ${d.store.term}`] : []),
      ].join("\n"),
    );
  });
  const peer = new Command("peer").description("peers of the node's configuration");
  peer
    .command("list")
    .description("configured peers, with their link state (up, down or unknown)")
    .action(async (_o, cmd: Command) => {
      const list = await api(cmd).get<Peer[]>("/peers");
      print(cmd, list, (l) => (l.length === 0 ? "no peers configured" : table(["NAME", "ADDRESS", "URL", "CHANNELS", "LINK"], l.map((p) => [p.name, p.address, p.url, String(p.channels), p.link ?? "unknown"]))));
    });
  const backup = new Command("backup")
    .description("write a consistent copy of the running node's store to a new file (relative to the configuration's folder); a node started from the copy signs nothing on the channels in it (docs/NODE.md, Backups)")
    .argument("<file>", "the copy to write; never overwritten")
    .action(async (file: string, _o, cmd: Command) => {
      const b = await api(cmd).post<{ file: string; frozenChannels: number }>("/backup", { file });
      print(cmd, b, (v) => `store copied to ${v.file} (${v.frozenChannels} channel(s) frozen in the copy)`);
    });
  const chain = new Command("chain").description("the node's chains");
  chain
    .command("release <name>")
    .description("end the hold a reorganisation deeper than its confirmations put on a chain: check the chain, its channels' deposits and chains.<name>.confirmations first")
    .action(async (name: string, _o, cmd: Command) => {
      const h = await api(cmd).post<Health>(`/chains/${encodeURIComponent(name)}/release`);
      print(cmd, h, (v) => `chain ${name} released: ${v.healthy ? "healthy" : (v.holding ?? "unhealthy")}`);
    });
  const store = new Command("store").description("the node's store");
  store
    .command("move <url>")
    .description("move the stopped node's SQLite store (with its watchtower's store, agreements and refusals) into an empty PostgreSQL database (postgres://user@host:port/database; the password from PGPASSWORD or ~/.pgpass); the files are left as they were")
    .action(async (url: string, _o, cmd: Command) => {
      const { loadNodeConfig } = await import("../node/node-config.js");
      const { loadNodeKey } = await import("../node/keystore.js");
      const { moveStore } = await import("../node/move.js");
      const { password } = await import("./prompt.js");
      const config = loadNodeConfig(globals(cmd).config);
      const moved = moveStore(config, await loadNodeKey(config, process.env, password), url);
      print(cmd, moved, (m) =>
        [
          `moved ${config.store} into ${m.to}: ${m.channels} channel(s), ${m.swaps} swap(s), the watchtower's ${m.towerChannels} channel(s), ${m.pending} agreement(s), ${m.refusals} refusal(s)`,
          `now set "store": "${m.to}" in ${config.file} and start the node; keep the SQLite files until it runs, never start a node on them again`,
        ].join("\n"),
      );
    });
  store
    .command("freeze [store]")
    .description("mark every channel of a store restored by other means than channels backup (a cp or disk snapshot of the SQLite file, a database restored from a dump) frozen, before any node starts on it: the node then signs nothing on them; [store] is a SQLite file (relative to here) or a postgres:// URL, by default node.json's store")
    .action(async (given: string | undefined, _o, cmd: Command) => {
      const { freezeStore } = await import("../node/freeze.js");
      let target = given;
      if (target === undefined) {
        const { loadNodeConfig } = await import("../node/node-config.js");
        target = loadNodeConfig(globals(cmd).config).store;
      }
      const f = freezeStore(target);
      print(cmd, f, (v) =>
        [
          `froze ${v.froze} channel(s) in ${v.store}${v.frozenBefore > 0 ? ` (${v.frozenBefore} frozen before keep their time)` : ""}`,
          `now start the node${v.kind === "postgres" ? "'s processes" : ""} (channels node start): it signs nothing on these channels until each catches up from its peer (the newest state both signed); force-close one that cannot (channels channel close <id> --force), the peer answers with any newer state; channels opened from now on are not frozen`,
        ].join("\n"),
      );
    });
  return [node, info, peer, chain, backup, store];
}
