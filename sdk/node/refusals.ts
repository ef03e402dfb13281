/** Refused proposals of configured peers, kept for `swap list --refused` and the API (a file beside the store). */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

import type { Emit } from "./events.js";
import type { NodeParts } from "./start.js";

export type Refusal = Readonly<{ time: string; kind: "swap" | "channel"; peer: string; id: string; reason: string }>;
/** Refused proposals kept for `swap list --refused` and the API. */
const MAX_REFUSALS = 1_000;

export class Refusals {
  private refusals: Refusal[] = [];

  constructor(private readonly d: Pick<NodeParts, "config" | "log"> & Readonly<{ emit: Emit }>) {}

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
    const file = `${this.d.config.store}.refusals.jsonl`;
    if (this.refusals.length > 2 * MAX_REFUSALS) {
      this.refusals = this.refusals.slice(-MAX_REFUSALS);
      writeFileSync(`${file}.tmp`, this.refusals.map((x) => JSON.stringify(x) + "\n").join(""));
      renameSync(`${file}.tmp`, file);
    } else {
      appendFileSync(file, JSON.stringify(r) + "\n");
    }
    const { time: _time, ...fields } = r; // the log line has its own time
    this.d.log.warn({ event: "refused", ...fields }, `refused a ${kind} proposal from ${peer}: ${reason}`);
    this.d.emit("refused", r);
  }

  /** Reads the refusals file beside the store, if any. */
  load(): void {
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
