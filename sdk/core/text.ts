/** Free text from a peer (a refusal's reason), as this side keeps and shows it. */

/** The most characters of a peer's free text kept. */
export const MAX_PEER_TEXT = 300;

/**
 * Characters a terminal or a log viewer acts on rather than shows: C0 and C1 controls (escape sequences, newlines
 * that would forge a line), the line and paragraph separators, and the bidirectional overrides (text shown in
 * another order than it reads).
 */
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A peer's free text as kept and shown: each unshowable character a space, cut at `max` characters, never inside one
 * (a character outside the Basic Multilingual Plane stays whole or goes).
 */
export function peerText(text: string, max = MAX_PEER_TEXT): string {
  return Array.from(text.slice(0, 2 * max).replace(UNSHOWABLE, " ")).slice(0, max).join("");
}
