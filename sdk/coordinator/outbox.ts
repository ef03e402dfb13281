/**
 * The outbox: each message a step sends is sealed (signed) and stored with the step's writes, and sent from the
 * store: once the step's group is committed, again on a tick's resend, or when a duplicate shows an answer was lost.
 */
import { seal, type Envelope, type SwapBody, type SwapStep } from "../core/messages.js";
import type { Hex } from "../core/types.js";
import type { Store } from "../store/store.js";
import type { GroupCommit } from "./group-commit.js";
import type { StateSigner } from "./signer.js";
import type { Transport } from "./transport.js";

/** The steps whose messages answer each step: what to send again when that step comes twice. */
const ANSWERS: Partial<Record<SwapStep, SwapStep[]>> = {
  propose: ["accept", "abort"],
  accept: ["sourceLock"],
  sourceLock: ["targetLock"],
  targetLock: ["targetLockAck", "reveal"],
  reveal: ["resolve"],
  resolve: ["resolveAck"],
};

export class Outbox {
  /** Envelopes sealed by `keep` and not sent yet (saves reading back what was just stored). */
  private readonly sealed = new Map<string, Envelope>();

  /** @param groupCommit Holds the messages of a step in progress until its group is on disk. */
  constructor(
    private readonly o: Readonly<{ store: Store; signer: StateSigner; transport: Transport }>,
    private readonly address: string,
    private readonly groupCommit: GroupCommit,
  ) {}

  /** Seals and stores the message of `step` (in the caller's transaction, if any); `send` sends it. */
  keep(sessionId: Hex, step: SwapStep, body: SwapBody) {
    const envelope = this.seal(sessionId, body);
    this.o.store.saveOutgoing(sessionId, step, envelope);
    this.sealed.set(`${sessionId}/${step}`, envelope);
  }

  /** Drops the sealed copies of `steps` (their transaction failed: nothing of them was stored). */
  forget(sessionId: Hex, steps: readonly SwapStep[]) {
    for (const step of steps) this.sealed.delete(`${sessionId}/${step}`);
  }

  /** Drops every sealed copy (cached envelopes only: the committed ones are read back from the store). */
  forgetAll() {
    this.sealed.clear();
  }

  /** A message this client answered before came again: the answer was lost, so send it again. */
  async answerDuplicate(swapId: Hex, step: SwapStep) {
    await this.send(swapId, ANSWERS[step] ?? []);
  }

  /** Sends the stored messages of `steps`: inside a step once its group is committed, outside one right away. */
  async send(sessionId: Hex, steps: readonly SwapStep[]) {
    const envelopes = this.collect(sessionId, steps);
    if (this.groupCommit.holdEnvelopes(envelopes)) return;
    // Outside a step (a tick's resend): handed to the transport without waiting, so a stalled peer never holds up
    // the rest of the tick, such as going on chain before a lock expires.
    void this.transmit(envelopes);
  }

  /** Sends envelopes in order; a failed send is left to the next tick's resend. */
  async transmit(envelopes: readonly Envelope[]) {
    const { transport } = this.o;
    try {
      if (transport.sendMany !== undefined && envelopes.length > 1) await transport.sendMany(envelopes);
      else for (const envelope of envelopes) await transport.send(envelope);
    } catch {
      // The messages are in the store; the next tick resends them.
    }
  }

  private seal(sessionId: Hex, body: SwapBody): Envelope {
    return seal((d) => this.o.signer.sign(d), this.address, sessionId, body);
  }

  /** The stored envelopes of `steps`, as they are now (a later step may store a newer one under the same key). */
  private collect(sessionId: Hex, steps: readonly SwapStep[]): Envelope[] {
    const envelopes: Envelope[] = [];
    for (const step of steps) {
      const k = `${sessionId}/${step}`;
      const envelope = this.sealed.get(k) ?? this.o.store.outgoing<Envelope>(sessionId, step);
      this.sealed.delete(k);
      if (envelope !== undefined) envelopes.push(envelope);
    }
    return envelopes;
  }
}
