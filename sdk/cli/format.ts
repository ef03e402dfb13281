/**
 * How the CLI shows things: durations ("58 min"), dates, tables, progress lines with the time left. Amounts come
 * from the node already in token units with their symbol (`1.5 ETH@target`, sdk/node/units.ts), so the API, the
 * CLI's `--json` and the text output carry the same fields.
 */

/** Seconds as "45 s", "58 min", "2 h 5 min", "3 d 4 h". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

/** Parses "90s", "10m", "2h", "1d" or a number of seconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)\s*(s|sec|m|min|h|d)?$/.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  switch (m[2]) {
    case "m":
    case "min":
      return n * 60;
    case "h":
      return n * 3600;
    case "d":
      return n * 86_400;
    default:
      return n;
  }
}

/** An ISO date as "2026-12-01 03:17 UTC (in 58 min)" or "(4 min ago)". */
export function when(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const text = new Date(t).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const delta = (t - now) / 1000;
  return delta >= 0 ? `${text} (in ${duration(delta)})` : `${text} (${duration(-delta)} ago)`;
}

/** Rows as aligned columns under a header. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** A short id: 0x and 10 hex digits. */
export function short(id: string): string {
  return id.length > 14 ? `${id.slice(0, 12)}…` : id;
}

/** One progress line on stderr, rewritten in place on a terminal; a new line per change otherwise. */
export class Progress {
  private last = "";

  show(text: string): void {
    if (text === this.last) return;
    this.last = text;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
    else process.stderr.write(`${text}\n`);
  }

  done(): void {
    if (process.stderr.isTTY && this.last !== "") process.stderr.write("\n");
  }
}
