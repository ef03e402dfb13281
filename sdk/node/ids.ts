/** Channel and swap ids as a person gives them, checked the same way by the CLI and the node. */
import { UsageError } from "./errors.js";

/**
 * An id as a person gives it: whole, or a prefix of at least 6 hex digits after 0x, as the CLI prints it shortened
 * (a trailing "…" or "..." is dropped). Lower case; throws UsageError naming what was expected.
 */
export function idPrefix(id: string, what: "channel" | "swap"): string {
  const lower = id.toLowerCase().replace(/(…|\.\.\.)$/, "");
  if (!/^0x[0-9a-f]{6,64}$/.test(lower)) {
    throw new UsageError(`${what}: expected a ${what} id, or its first 6 or more hex digits after 0x, got ${JSON.stringify(id.slice(0, 66))}`);
  }
  return lower;
}
