/** Amounts in token units, times as local times with how far away they are. */

/** `raw` base units as a decimal in token units, trailing zeros dropped. */
export function units(raw: bigint, decimals: number): string {
  const negative = raw < 0n;
  const abs = negative ? -raw : raw;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  const frac = (abs % scale).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${frac === "" ? "" : `.${frac}`}`;
}

/** "1.5 ETH@source" (as the API formats amounts) back to base units; undefined if it is not one. */
export function parseAmount(text: string | undefined, decimals: number): bigint | undefined {
  const m = /^(-?)(\d+)(?:\.(\d+))?/.exec(text ?? "");
  if (m === null) return undefined;
  const frac = (m[3] ?? "").slice(0, decimals).padEnd(decimals, "0");
  const value = BigInt(m[2]!) * 10n ** BigInt(decimals) + BigInt(frac === "" ? "0" : frac);
  return m[1] === "-" ? -value : value;
}

/** "in 12 min", "3 s ago". */
export function relative(iso: string, now: number): string {
  const ms = Date.parse(iso) - now;
  const s = Math.round(Math.abs(ms) / 1000);
  const text = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60 < 10 ? "0" : ""}${s % 60} s` : s < 86_400 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** "12 s ago" for a time past; a time a moment ahead (this page's clock a second behind) reads "0 s ago". */
export function ago(iso: string, now: number): string {
  return relative(new Date(Math.min(Date.parse(iso), now - 1)).toISOString(), now);
}

/** A local time, with the date when it is not today. */
export function localTime(iso: string, now: number): string {
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date(now).toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

/** "14:02:10 (in 4 min 10 s)". */
export function when(iso: string, now: number): string {
  return `${localTime(iso, now)} (${relative(iso, now)})`;
}

export function short(id: string): string {
  return id.length > 14 ? `${id.slice(0, 10)}…` : id;
}

/** Seconds as "5 min", "2 h 30 min". */
export function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
