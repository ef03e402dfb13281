/** Refused proposals of configured peers, kept for `swap list --refused` and the API (a file beside the store). */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

import { isPostgresUrl } from "../store/postgres.js";
import type { Emit } from "./events.js";
import type { NodeParts } from "./start.js";

export type Refusal = Readonly<{ time: string; kind: "swap" | "channel"; peer: string; id: string; reason: string }>;
/** Refused proposals kept for `swap list --refused` and the API. */
const MAX_REFUSALS = 1_000;

/** A node kept in a database keeps each refusal as a row of its store, under a number of this many digits. */
const ROW_DIGITS = 12;

export class Refusals {
  private refusals: Refusal[] = [];
  /** The number of the next refusal row (a node kept in a database) and of the oldest row still there. */
  private next = 0;
  private oldest = 0;

  constructor(private readonly d: Pick<NodeParts, "config" | "log" | "store"> & Readonly<{ emit: Emit }>) {}

  /** Whether refusals are rows of the store (a node kept in PostgreSQL: nothing beside it on disk). */
  private get inStore(): boolean {
    return isPostgresUrl(this.d.config.store);
  }

  all(): readonly Refusal[] {
    return this.refusals;
  }

  /**
   * Records a refused proposal of a configured peer (the last MAX_REFUSALS are kept, in memory and in a file beside
   * the store); a stranger's is only logged at debug level, so nobody can grow the disk or the log.
   */
  refuse(kind: "swap" | "channel", peer: string | undefined, id: string, reason: string): void {
    if (peer === undefined) {
      this.d.log.debug({ event: "refusedStranger", kind, reason }, "refused a proposal from outside the configured peers");
      return;
    }
    const r: Refusal = { time: new Date().toISOString(), kind, peer, id, reason };
    this.refusals.push(r);
    if (this.inStore) this.keepRow(r);
    else this.keepLine(r);
    const { time: _time, ...fields } = r; // the log line has its own time
    this.d.log.warn({ event: "refused", ...fields }, `refused a ${kind} proposal from ${peer}: ${reason}`);
    this.d.emit("refused", r);
  }

  /** Keeps a refusal as a row of the store; the oldest rows beyond 2 * MAX_REFUSALS are removed in the same commit. */
  private keepRow(r: Refusal): void {
    const row = (n: number) => String(n).padStart(ROW_DIGITS, "0");
    this.d.store.transaction(() => {
      this.d.store.saveBatched("refusal", row(this.next), r);
      while (this.next + 1 - this.oldest > 2 * MAX_REFUSALS) this.d.store.deleteBatched("refusal", row(this.oldest++));
    });
    this.next++;
    if (this.refusals.length > 2 * MAX_REFUSALS) this.refusals = this.refusals.slice(-MAX_REFUSALS);
  }

  /** Keeps a refusal as a line of the file beside the store. */
  private keepLine(r: Refusal): void {
    const file = `${this.d.config.store}.refusals.jsonl`;
    if (this.refusals.length > 2 * MAX_REFUSALS) {
      this.refusals = this.refusals.slice(-MAX_REFUSALS);
      writeFileSync(`${file}.tmp`, this.refusals.map((x) => JSON.stringify(x) + "\n").join(""));
      renameSync(`${file}.tmp`, file);
    } else {
      appendFileSync(file, JSON.stringify(r) + "\n");
    }
  }

  /** Reads the refusals kept: the store's rows, or the file beside the store, if any. */
  load(): void {
    if (this.inStore) {
      const rows = [...this.d.store.batched<Refusal>("refusal")];
      this.oldest = rows.length === 0 ? 0 : Number(rows[0]![0]);
      this.next = rows.length === 0 ? 0 : Number(rows.at(-1)![0]) + 1;
      this.refusals = rows.map(([, r]) => r).slice(-MAX_REFUSALS);
      return;
    }
    const refusals = `${this.d.config.store}.refusals.jsonl`;
    if (existsSync(refusals)) {
      // Advisory: a line torn by a crash or a full disk is skipped, never a reason not to start.
      const text = readFileSync(refusals, "utf8");
      // A torn last line is ended, so that the next refusal is appended on a line of its own.
      if (text !== "" && !text.endsWith("\n")) appendFileSync(refusals, "\n");
      this.refusals = text
        .split("\n")
        .flatMap((l) => {
          try {
            return l === "" ? [] : [JSON.parse(l) as Refusal];
          } catch {
            return [];
          }
        })
        .slice(-MAX_REFUSALS);
    }
  }
}
