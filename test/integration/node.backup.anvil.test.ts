/**
 * `channels backup` and a node restored from the copy: two nodes in this process with their control APIs on real
 * ports, over two anvil chains mining a block a second (finality 1 block). Alice's node writes a copy of its store
 * while it runs, swaps on, and is then restarted from the copy while Bob's node is stopped: it signs nothing on the
 * channels the copy holds (it may have signed newer states of them) and refuses swaps and deposits on them. Once
 * Bob's node is back, each channel catches up from it (the newest state both signed, checked against Alice's key),
 * Alice's node signs again only at numbers above every one it may have used after the copy, swaps on, and a force
 * close pays out what the newest state says.
 */
import { expect } from "chai";
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Wallet } from "ethers";

import { accountKey } from "../../scripts/lib/local.js";
import { HubAdapter, type Hex } from "../../sdk/index.js";
import { Store } from "../../sdk/store/store.js";
import { CHALLENGE_PERIOD, anvilNodes, startAnvilNodes, stopAnvilNodes, type Who } from "../helpers/anvil-nodes.js";
import { channels } from "../helpers/cli.js";
import { until } from "../helpers/nodes.js";

const CHAIN_IDS = [31_441, 31_442] as const;
type Channel = { id: string; status: string; frozenSince?: string; base: { balances: string[]; deposits: string[]; onChainDeposits?: string[]; payouts?: string[] } };

describe("a node restored from a backup copy of its store (two anvil chains)", function () {
  this.timeout(180_000);
  const env = anvilNodes("node-backup");
  const { dir, file, nodes, providers, hubs } = env;
  const api = <T = unknown>(who: Who, method: string, path: string, body?: unknown) => nodes.api<T>(who, method, path, body);
  const channel = async (who: Who, id: string) => (await api<Channel>(who, "GET", `/channels/${id}`)).json;
  const counted = (c: Channel) => c.status === "open" && c.base.onChainDeposits !== undefined && c.base.deposits.join() === c.base.onChainDeposits.join();
  async function swap(): Promise<void> {
    const p = await api<{ id: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target", source: s, target: t });
    expect(p.status, JSON.stringify(p.json)).to.equal(201);
    await until(`swap ${p.json.id} swapped`, async () => ((await api<{ outcome?: string }>("alice", "GET", `/swaps/${p.json.id}`)).json.outcome === "swapped" ? true : undefined));
  }
  /** What a store holds of a channel: its newest co-signed state's number and the numbers its key signed. */
  function held(path: string, id: string) {
    const store = new Store(path, { readOnly: true });
    try {
      return { newest: store.latestCoSigned(id as Hex)!.state.seq, ownHighest: store.highestOwnSeq(id as Hex) };
    } finally {
      store.close();
    }
  }
  /** Every number a store's key signed on a channel (its double-sign guard). */
  function ownNumbers(path: string, id: string): bigint[] {
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      return (db.prepare("SELECT seq FROM own_signatures WHERE channel_id = ?").all(id.toLowerCase()) as { seq: string }[]).map((r) => BigInt(r.seq));
    } finally {
      db.close();
    }
  }
  let s: string;
  let t: string;

  before(async function () {
    await startAnvilNodes(env, {
      chainIds: CHAIN_IDS, confirmations: 1, finalitySeconds: 6,
      timing: { tickMs: 250, heartbeatSeconds: 5, chainCheckSeconds: 1, resendMs: 1_000, confirmationTimeoutMs: 60_000, onChainMarginSeconds: 600 },
    });
    s = (await nodes.run.alice!.node.openChannel({ peer: "bob", asset: "ETH@source", deposit: "2", challengePeriodSeconds: CHALLENGE_PERIOD })).id;
    t = (await nodes.run.bob!.node.openChannel({ peer: "alice", asset: "ETH@target", deposit: "2", challengePeriodSeconds: CHALLENGE_PERIOD })).id;
    for (const who of ["alice", "bob"] as const) {
      for (const id of [s, t]) await until(`${who}: ${id} counted`, async () => (counted(await channel(who, id)) ? true : undefined));
    }
  });

  after(async function () {
    await stopAnvilNodes(env);
  });

  it("signs nothing on the copy's channels while its peer is away, catches up once the peer shows the newest state, and swaps and closes on from there", async function () {
    await swap();
    const made = await channels(["--config", file("alice"), "backup", "backups/alice.sqlite"]); // the folder made too
    expect(made.code, made.stderr).to.equal(0);
    const copy = join(dir, "backups", "alice.sqlite");
    expect(made.stdout.trim()).to.equal(`store copied to ${copy} (2 channel(s) frozen in the copy)`);
    expect(readdirSync(join(dir, "backups")), "the copy alone: no partial file, no log beside it").to.deep.equal(["alice.sqlite"]);
    const again = await channels(["--config", file("alice"), "backup", "backups/alice.sqlite"]);
    expect([again.code, again.stderr.trim()]).to.deep.equal([1, `error: file: ${copy} exists already; a backup never overwrites a file`]);
    const atCopy = held(copy, s);
    // A token that is not this node's: the CLI names the token file and the node it asked.
    const config = JSON.parse(readFileSync(file("alice"), "utf8")) as { api: Record<string, unknown> };
    writeFileSync(join(dir, "stale.token"), "0".repeat(64) + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "stale.json"), JSON.stringify({ ...config, api: { ...config.api, tokenFile: "stale.token" } }));
    const refusedToken = await channels(["--config", join(dir, "stale.json"), "info"]);
    expect([refusedToken.code, refusedToken.stderr.trim()]).to.deep.equal([1, `error: the node at ${nodes.run.alice!.base} refused the token in ${join(dir, "stale.token")}: is it this node's api.tokenFile, and this node's api.port?`]);
    writeFileSync(join(dir, "not-a-folder"), "");
    const nowhere = await channels(["--config", file("alice"), "backup", "not-a-folder/alice.sqlite"]);
    expect([nowhere.code, nowhere.stderr.trim().split("\n").length]).to.deep.equal([1, 1]);
    expect(nowhere.stderr.trim()).to.equal(`error: file: ${join(dir, "not-a-folder")} is a file, not a folder; ${join(dir, "not-a-folder", "alice.sqlite")} cannot be made under it`);
    const folder = await channels(["--config", file("alice"), "backup", "backups"]);
    expect([folder.code, folder.stderr.trim()]).to.deep.equal([1, `error: file: ${join(dir, "backups")} is a folder; name a new file in it`]);
    const noName = await channels(["--config", file("alice"), "backup", ""]);
    expect([noName.code, noName.stderr.trim()]).to.deep.equal([2, "error: file: name the file to write the copy to"]);

    // Alice's node swaps on after the copy: it signs newer states of S and T.
    await swap();
    await swap();
    await nodes.stop("alice");
    const live = held(join(dir, "alice.sqlite"), s);
    expect(live.ownHighest, "Alice signed newer states of S after the copy").to.be.greaterThan(atCopy.ownHighest);

    // The operator puts the copy in place and starts the node, its peer's node stopped for now.
    await nodes.stop("bob");
    for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, `alice.sqlite${suffix}`), { force: true });
    copyFileSync(copy, join(dir, "alice.sqlite"));
    await nodes.start("alice");
    expect(nodes.logs.alice.some((l) => l.event === "frozenChannels" && l.channels === 2 && l.level === 50), "said at error level").to.equal(true);
    expect((await api<{ frozenChannels: number }>("alice", "GET", "/info")).json.frozenChannels).to.equal(2);
    expect((await channel("alice", s)).frozenSince).to.be.a("string");
    const refused = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target", source: s, target: t });
    expect(refused.status, refused.json.error).to.equal(409);
    expect(refused.json.error).to.match(new RegExp(`^Channel ${s} is frozen since .* \\(its store is a copy: a restored backup, or one frozen with channels store freeze\\): this node may have signed newer states of it since, so it signs nothing on it until its peer shows it the newest state both signed`, "i"));
    // Without channels named, the node picks none of the frozen ones, and says that they are frozen (not "no channel").
    const unnamed = await api<{ error: string }>("alice", "POST", "/swaps", { peer: "bob", give: "0.2 ETH@source", take: "0.1 ETH@target" });
    expect(unnamed.status, unnamed.json.error).to.equal(409);
    expect(unnamed.json.error).to.equal(
      `give: every open channel of ETH@source with this peer is frozen, its store being a copy (${s}): nothing is signed on it until it catches up from the peer's node, ` +
        "which it asks every few seconds (channels channel show <id> says what it waits for)",
    );

    const deposit = await api<{ error: string }>("alice", "POST", `/channels/${t}/deposit`, { amount: "1" });
    expect([deposit.status, deposit.json.error], "a deposit it could never count").to.deep.equal([409, deposit.json.error]);
    expect(deposit.json.error).to.match(/is frozen since .*its store is a copy/);
    const shown = await channels(["--config", file("alice"), "info"]);
    expect(shown.stdout).to.include("2 channel(s) FROZEN: the store is a copy (a restored backup, or one frozen with channels store freeze)");
    const listed = await channels(["--config", file("alice"), "channel", "list"]);
    expect(listed.stdout.split("\n").filter((l) => l.includes("open (frozen)"))).to.have.length(2);
    const described = await channels(["--config", file("alice"), "channel", "show", s]);
    expect(described.stdout).to.match(/FROZEN since .* \(the store is a copy: a restored backup, or one frozen with channels store freeze\); .*nothing is signed on it until the peer shows the newest state both signed/);
    // Bob's node is stopped: `channel show` says that the peer does not answer, once a request to it has failed.
    const silent = await until("channel show naming the silent peer", async () => {
      const shown = await channels(["--config", file("alice"), "channel", "show", s]);
      return shown.stdout.includes("the peer bob does not answer") ? shown.stdout : undefined;
    }, 30_000);
    expect(silent, silent).to.match(/the peer bob does not answer, last failed .* \(\d+ s ago\): start its node, or force-close this channel \(channels channel close 0x[0-9a-f]{10}… --force\)/);

    // Bob's node comes back: each channel catches up from it (both idle), and Alice's node signs again above every
    // number it may have used after the copy.
    const copyHighest = { [s]: held(copy, s).ownHighest, [t]: held(copy, t).ownHighest };
    await nodes.start("bob");
    await until("both channels caught up", async () => ((await api<{ frozenChannels: number }>("alice", "GET", "/info")).json.frozenChannels === 0 ? true : undefined), 60_000);
    const caught = nodes.logs.alice.filter((l) => l.event === "caughtUp");
    expect(caught.map((l) => String(l.channelId).toLowerCase()).sort()).to.deep.equal([s, t].map((x) => x.toLowerCase()).sort());
    // Each line names the channel's chain and peer, and the balances it took in token units.
    expect(caught.map((l) => [l.chain, l.peer]).sort()).to.deep.equal([["source", "bob"], ["target", "bob"]]);
    for (const l of caught) expect(String(l.msg)).to.match(/ on (source|target) with bob caught up from its peer: it took the newest state both signed \(number \d+: mine [\d.]+ ETH@\w+, theirs [\d.]+ ETH@\w+\)/);
    const floor = BigInt(String(caught[0]!.floor));
    // Bob's operator is told, once per channel and floor, at warn.
    const answered = nodes.logs.bob.filter((l) => l.event === "peerResumed");
    expect([...new Set(answered.map((l) => String(l.channelId).toLowerCase()))].sort(), "Bob's node says it answered").to.deep.equal([s, t].map((x) => x.toLowerCase()).sort());
    expect(answered.every((l) => l.level === 40 && l.peer === "alice")).to.equal(true);
    for (const id of [s, t]) {
      const [a, b] = [await channel("alice", id), await channel("bob", id)];
      expect(a.frozenSince).to.equal(undefined);
      expect(a.base.balances, `${id}: Alice's view is Bob's newest`).to.deep.equal(b.base.balances);
    }
    await swap();
    for (const id of [s, t]) {
      const signed = ownNumbers(join(dir, "alice.sqlite"), id).filter((n) => n > copyHighest[id]!);
      expect(signed.length, `${id}: Alice signed again`).to.be.greaterThan(0);
      expect(signed.every((n) => n >= floor), `${id}: every number since the restore at or above the floor ${floor}: ${signed.join(", ")}`).to.equal(true);
    }

    // Force-closed by Alice with her newest state: four swaps of 0.2 ETH, paid out as it says.
    const closing = await api<{ error?: string }>("alice", "POST", `/channels/${s}/close`, { force: true });
    expect(closing.status, closing.json.error).to.equal(200);
    const onS = await HubAdapter.connect(hubs[0]!, new Wallet(accountKey(3), providers[0]!));
    await until("Alice's newest state of S registered", async () => ((await onS.channelInfo(s as Hex)).seq >= floor ? true : undefined), 60_000);
    for (const method of ["evm_increaseTime", "evm_mine"] as const) await providers[0]!.send(method, method === "evm_increaseTime" ? [CHALLENGE_PERIOD + 60] : []);
    const closed = await until("S closed and paid out", async () => {
      const c = await channel("alice", s);
      return c.status === "closed" && c.base.payouts !== undefined ? c : undefined;
    }, 90_000);
    expect(closed.base.payouts, "paid as the newest state says: four swaps of 0.2").to.deep.equal([(2n * 10n ** 18n - 8n * 10n ** 17n).toString(), (8n * 10n ** 17n).toString()]);
    expect(existsSync(copy)).to.equal(true);
  });
});
