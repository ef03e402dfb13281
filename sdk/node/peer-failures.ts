/**
 * Messages from peers that could not be handled, as the node's log tells them. A configured peer whose messages
 * keep failing is a problem its operator must see (a version mismatch, a store lost on one side, a bug): said at
 * warn once they fail several times in a row, at most once a minute per peer, with the count and the last error.
 * Anything else (a line that does not decode, an envelope not signed by a configured peer's key, whoever it claims
 * to come from) is anyone's to send: counted together and said at debug at most once a minute, so a stranger can
 * neither grow the log without bound nor pass its junk off as a peer's.
 */
import type { EnvelopeAuth } from "../core/envelope-auth.js";
import type { Logger } from "pino";

import { openedBy, receivedSigner, type Envelope } from "../core/messages.js";
import { InvalidSignatureError } from "../core/errors.js";

/** Failures in a row, with no message of the peer handled between them, before a peer's failures are said at warn. */
export const PERSISTENT_FAILURES = 3;
/** At most one log line per peer (and one for all others together) in this time. */
export const FAILURE_LOG_INTERVAL_MS = 60_000;
/** An error's text in a log line: its first line, cut to this many characters (a stranger's message can be long). */
const MAX_ERROR_CHARS = 200;

/** Failures since the last line said, failures since a message was last handled, when the last line was said. */
type Tally = { failures: number; inARow: number; loggedAt: number };

export class PeerFailures {
  private readonly peers = new Map<string, Tally>();
  private readonly others: Tally = { failures: 0, inARow: 0, loggedAt: -Infinity };

  /**
   * @param names configured peers by lower-case address
   * @param now the clock (milliseconds), for tests of the interval
   * @param auth opens envelopes a peer authenticated with the key it shares with this node (envelope-auth.ts)
   */
  constructor(
    private readonly log: Logger,
    private readonly names: ReadonlyMap<string, string>,
    private readonly now: () => number = Date.now,
    private readonly auth?: EnvelopeAuth,
  ) {}

  /** A received envelope was handled: a configured peer's run of failures, if it signed it, ends. */
  handled(envelope: Envelope): void {
    // Only a signer `unseal` verified counts (free to know): a success never costs a signature recovery.
    const name = this.nameOf(openedBy(envelope));
    if (name !== undefined) this.tally(name).inARow = 0;
  }

  /** A received line failed: as a decoded envelope (`envelope`), or before it was one. */
  failed(error: unknown, envelope?: Envelope): void {
    const text = errorText(error);
    // Anything may arrive as a line: a decoded "envelope" may be null, a number or an array.
    const name = envelope !== null && typeof envelope === "object" ? this.nameOf(this.signer(envelope, error)) : undefined;
    if (name === undefined) {
      this.count(this.others, (failures) =>
        this.log.debug({ event: "peerMessageError", failures, error: text }, "messages from outside the configured peers were not handled"),
      );
      return;
    }
    const tally = this.tally(name);
    tally.inARow++;
    this.count(tally, (failures, t) => {
      if (t.inARow < PERSISTENT_FAILURES) return false;
      this.log.warn(
        { event: "peerMessageFailures", peer: name, failures, inARow: t.inARow, error: text },
        `messages from peer ${name} keep failing (${t.inARow} in a row): ${text}`,
      );
      return true;
    });
  }

  /**
   * Who signed a failed envelope, among the configured peers: the signer `unseal` verified, else (when it claims a
   * configured peer) the one its signature recovers to, or whose authenticator opens with the key shared with it. A failed check of its own signature is a stranger's.
   */
  private signer(envelope: Envelope, error: unknown): string | undefined {
    const verified = openedBy(envelope);
    if (verified !== undefined) return verified;
    if (error instanceof InvalidSignatureError || typeof envelope.from !== "string") return undefined;
    if (!this.names.has(envelope.from.toLowerCase())) return undefined; // not a peer's claim: no recovery spent
    return receivedSigner(envelope, this.auth);
  }

  private nameOf(address: string | undefined): string | undefined {
    return address === undefined ? undefined : this.names.get(address);
  }

  private tally(name: string): Tally {
    let t = this.peers.get(name);
    if (t === undefined) this.peers.set(name, (t = { failures: 0, inARow: 0, loggedAt: -Infinity }));
    return t;
  }

  /** Counts a failure; `say` logs it (returning false if it did not) once the interval since the last line is over. */
  private count(t: Tally, say: (failures: number, t: Tally) => boolean | void): void {
    t.failures++;
    const now = this.now();
    if (now - t.loggedAt < FAILURE_LOG_INTERVAL_MS) return;
    if (say(t.failures, t) === false) return;
    t.loggedAt = now;
    t.failures = 0;
  }
}

function errorText(error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_CHARS + 1).split("\n")[0] ?? "";
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}
