/** The store's SQL: every statement it runs, named after what it does, and compiled once per connection. */
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** Statement texts by name; placeholders in the order the store passes its values. */
export const SQL = {
  // channels and their operations
  saveChannel:
    "INSERT INTO channels (channel_id, record) VALUES (?, ?) ON CONFLICT (channel_id) DO UPDATE SET record = excluded.record",
  channel: "SELECT record FROM channels WHERE channel_id = ?",
  channels: "SELECT record FROM channels ORDER BY channel_id",
  channelOp: "SELECT body FROM channel_ops WHERE channel_id = ?",
  saveChannelOp:
    "INSERT INTO channel_ops (channel_id, body) VALUES (?, ?) ON CONFLICT (channel_id) DO UPDATE SET body = excluded.body",
  endChannelOp: "DELETE FROM channel_ops WHERE channel_id = ?",
  channelOps: "SELECT channel_id, body FROM channel_ops ORDER BY channel_id",
  // states and signatures
  saveCoSigned: "INSERT OR IGNORE INTO cosigned (channel_id, seq, seq_num, body) VALUES (?, ?, ?, ?)",
  latestCoSigned: "SELECT body FROM cosigned WHERE channel_id = ? ORDER BY seq_num DESC LIMIT 1",
  coSignedAt: "SELECT body FROM cosigned WHERE channel_id = ? AND seq = ?",
  ownDigestAt: "SELECT digest, signature FROM own_signatures WHERE channel_id = ? AND seq = ?",
  saveOwnSignature: "INSERT INTO own_signatures (channel_id, seq, digest, signature, state) VALUES (?, ?, ?, ?, ?)",
  ownSignedAt: "SELECT state, signature FROM own_signatures WHERE channel_id = ? AND seq = ?",
  highestOwnSeq: "SELECT MAX(CAST(seq AS INTEGER)) AS seq FROM own_signatures WHERE channel_id = ?",
  // secrets
  // A rule only moves forward: "held" becomes "may" or "never"; "may" (revealed, or public) wins over "never".
  saveSecret: `INSERT INTO secrets (hashlock, secret, reveal) VALUES (?, ?, ?) ON CONFLICT (hashlock) DO UPDATE SET reveal =
           CASE WHEN excluded.reveal = 'may' OR secrets.reveal = 'held' THEN excluded.reveal ELSE secrets.reveal END`,
  secrets: "SELECT hashlock, secret, reveal FROM secrets ORDER BY hashlock",
  secret: "SELECT secret, reveal FROM secrets WHERE hashlock = ?",
  // A watchtower's copy: the rule is worked out in Store.adoptSecret / publicSecret and written as it is.
  towerSecret: "SELECT reveal, on_chain FROM secrets WHERE hashlock = ?",
  setTowerSecret: `INSERT INTO secrets (hashlock, secret, reveal, on_chain) VALUES (?, ?, ?, ?) ON CONFLICT (hashlock) DO UPDATE SET
           reveal = excluded.reveal, on_chain = excluded.on_chain`,
  heldSecrets: "SELECT hashlock FROM secrets WHERE reveal = 'held' ORDER BY hashlock",
  // event following (watchtower)
  cursor: "SELECT block FROM cursors WHERE chain_id = ?",
  saveCursor: "INSERT INTO cursors (chain_id, block) VALUES (?, ?) ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block",
  frozen: "SELECT channel_id, since FROM frozen",
  freezeAll: "INSERT OR IGNORE INTO frozen (channel_id, since) SELECT channel_id, ? FROM channels",
  thaw: "DELETE FROM frozen WHERE channel_id = ?",
  chainHolds: "SELECT chain_id, body FROM chain_holds ORDER BY chain_id",
  saveChainHold: "INSERT INTO chain_holds (chain_id, body) VALUES (?, ?) ON CONFLICT (chain_id) DO UPDATE SET body = excluded.body",
  endChainHold: "DELETE FROM chain_holds WHERE chain_id = ?",
  markDisputed: "INSERT OR IGNORE INTO disputes (channel_id) VALUES (?)",
  markResolved: "UPDATE disputes SET resolved = 1 WHERE channel_id = ?",
  openDisputes: "SELECT channel_id FROM disputes WHERE resolved = 0 ORDER BY channel_id",
  // sessions, swaps, transfers
  sessionNumber: "SELECT n FROM sessions WHERE session_id = ?",
  newSession: "INSERT INTO sessions (session_id) VALUES (?)",
  updateSwapProgress: "UPDATE swaps SET phase = ?, updated_at = ?, active = ? WHERE n = ?",
  saveSwap: `INSERT INTO swaps (n, role, terms, phase, updated_at, active, source, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (n) DO UPDATE SET phase = excluded.phase, updated_at = excluded.updated_at, active = excluded.active`,
  activeSwapIds: "SELECT s.session_id FROM swaps w JOIN sessions s ON s.n = w.n WHERE w.active = 1 ORDER BY w.updated_at",
  channelBusy: "SELECT 1 FROM swaps WHERE active = 1 AND (source = ? OR target = ?) LIMIT 1",
  swap: "SELECT role, terms, phase FROM swaps WHERE n = ?",
  swapIds: "SELECT s.session_id FROM swaps w JOIN sessions s ON s.n = w.n ORDER BY w.updated_at",
  saveTransfer: `INSERT INTO transfers (n, channel_id, body) VALUES (?, ?, ?)
         ON CONFLICT (n, channel_id) DO UPDATE SET body = excluded.body`,
  transfers: "SELECT body FROM transfers WHERE n = ? ORDER BY channel_id",
  // batched updates (docs/SWAP.md, "Channel updates")
  saveBatched: "INSERT INTO batched (kind, key, body) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
  batched: "SELECT key, body FROM batched WHERE kind = ? ORDER BY key",
  deleteBatched: "DELETE FROM batched WHERE kind = ? AND key = ?",
} as const;

/** The prepared statements of one connection, each compiled on first use. */
export class Statements {
  private readonly compiled = new Map<string, StatementSync>();

  constructor(private readonly db: DatabaseSync) {}

  /** The prepared statement of `sql` (one of SQL's texts). */
  get(sql: string): StatementSync {
    let statement = this.compiled.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.compiled.set(sql, statement);
    }
    return statement;
  }

  /** Forgets every prepared statement (the connection is closing). */
  clear(): void {
    this.compiled.clear();
  }
}
