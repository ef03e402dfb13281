/**
 * The store's in-memory caches of decoded rows, so the reads every protocol step makes do not decode JSON again.
 * They only ever hold what is in the database (or about to be, in the open transaction); anything that undoes
 * writes clears them all.
 */
import type { ChannelOp, ChannelRecord, CoSignedState, SwapEntry } from "./rows.js";

/** The most entries a decoded-row cache keeps; past it, it starts over (the store has every row anyway). */
const CACHE_LIMIT = 10_000;

export class RowCache {
  /** Decoded channel records (they never change once saved, except through saveChannel). */
  readonly records = new Map<string, ChannelRecord>();
  /** Whether `records` holds every channel of the store (read whole once, then kept up by saveChannel). */
  allRecords = false;
  /** The newest co-signed state per channel, as last read or written. */
  readonly latest = new Map<string, CoSignedState | null>();
  /** Decoded swaps, as last read or written. */
  readonly swaps = new Map<string, SwapEntry>();
  /** Session numbers by session id, as last read or given. */
  readonly sessionNumbers = new Map<string, number>();
  /** Decoded channel operations by channel id (null: none); every swap step asks whether its channels have one. */
  readonly ops = new Map<string, ChannelOp | null>();

  /** Forgets every cached row (after a rollback, or when the store closes). */
  clear(): void {
    this.latest.clear();
    this.records.clear();
    this.allRecords = false;
    this.swaps.clear();
    this.sessionNumbers.clear();
    this.ops.clear();
  }
}

/** Caches `value` under `k`, starting the cache over once it holds CACHE_LIMIT entries. */
export function remember<V>(cache: Map<string, V>, k: string, value: V): void {
  if (cache.size >= CACHE_LIMIT && !cache.has(k)) cache.clear();
  cache.set(k, value);
}
