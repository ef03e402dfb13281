/**
 * Group commit: protocol steps run one at a time, each as a savepoint of one shared transaction, and a group of
 * steps is committed with one disk sync before any of its messages go out or its events are reported.
 */
import { ChannelSdkError } from "../core/errors.js";
import type { Envelope } from "../core/messages.js";
import type { Store } from "../store/store.js";
import type { ClientEvent } from "./phases.js";

/** Steps per group commit unless `groupCommitSteps` says otherwise. */
export const DEFAULT_GROUP_STEPS = 64;

/** What a step produced that must wait for its group to be on disk. */
type StepOutput = { envelopes: Envelope[]; events: ClientEvent[]; after: (() => void)[] };

/** Protocol steps committed together: one transaction, one log sync, one send. */
class StepGroup {
  /** The messages of the group's steps, taken when each step finished. */
  readonly envelopes: Envelope[] = [];
  readonly events: ClientEvent[] = [];
  /** Work to run once the group is on disk, before its messages leave (the watchtower's feed). */
  readonly after: (() => void)[] = [];
  steps = 0;
  resolve!: () => void;
  reject!: (error: unknown) => void;
  readonly done = new Promise<void>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor() {
    this.done.catch(() => undefined); // a group whose steps all failed has no one waiting on it
  }
}

/** How a committed group reaches the world, and what to drop when a step or a group fails. */
export type GroupCommitHooks = Readonly<{
  /** Sends envelopes in order (a failed send is left to the next resend). */
  transmit(envelopes: readonly Envelope[]): Promise<void>;
  /** Reports one event. */
  report(event: ClientEvent): void;
  /** Runs a committed group's `after` work, all of it at once (before the group's messages are sent). */
  committed(work: readonly (() => void)[]): void;
  /**
   * Drops whatever was cached of uncommitted work (the committed messages are read back from the store): one
   * failed step ("step", rolled back to its savepoint) or the whole open group ("group").
   */
  discard(scope: "step" | "group"): void;
}>;

export class GroupCommit {
  /** Messages and events of the step in progress, sent and reported once its group is on disk. */
  private held: StepOutput | undefined;
  /** Sends of the groups released so far, in order: a group's messages never overtake an earlier group's. */
  private sent: Promise<void> = Promise.resolve();
  /** The group of steps whose transaction is open, if any. */
  private group: StepGroup | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  /** @param maxSteps Most steps in one group: a full group is committed at once. */
  constructor(
    private readonly store: Store,
    private readonly maxSteps: number,
    private readonly hooks: GroupCommitHooks,
  ) {}

  /** Holds messages of the step in progress until its group is on disk; false outside a step (send them now). */
  holdEnvelopes(envelopes: readonly Envelope[]): boolean {
    if (this.held === undefined) return false;
    this.held.envelopes.push(...envelopes);
    return true;
  }

  /**
   * Holds work of the step in progress until its group is on disk (run then, before the group's messages leave);
   * dropped with the step if it fails. False outside a step (run it now).
   */
  holdAfterCommit(work: () => void): boolean {
    if (this.held === undefined) return false;
    this.held.after.push(work);
    return true;
  }

  /** Holds an event of the step in progress until its group is on disk; false outside a step (report it now). */
  holdEvent(event: ClientEvent): boolean {
    if (this.held === undefined) return false;
    this.held.events.push(event);
    return true;
  }

  /** Runs `fn` after every task queued before it: steps, ticks and commits never interleave. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs one protocol step (inside `serial`) as a savepoint of the open group's transaction: a failed step rolls
   * back its own writes and sends nothing. Returns the step's result and a promise that resolves once its group is
   * on disk and the group's messages are sent.
   */
  async atomically<T>(step: () => Promise<T>): Promise<{ result: T; durable: Promise<void> }> {
    if (this.held !== undefined) throw new ChannelSdkError("a protocol step cannot start inside another");
    const { store } = this;
    if (this.group === undefined) {
      store.begin();
      this.group = new StepGroup();
      const group = this.group;
      // The steps that finish before this group's turn in the event loop join it.
      setImmediate(() => this.serial(async () => this.release(group)).catch(group.reject));
    }
    const group = this.group;
    store.savepoint();
    const held: StepOutput = (this.held = { envelopes: [], events: [], after: [] });
    let result: T;
    try {
      result = await step();
      store.releaseSavepoint();
    } catch (error) {
      this.held = undefined;
      this.hooks.discard("step");
      try {
        store.rollbackToSavepoint();
      } catch (rollbackError) {
        this.abandon(group, rollbackError);
      }
      throw error;
    }
    group.envelopes.push(...held.envelopes);
    group.events.push(...held.events);
    group.after.push(...held.after);
    this.held = undefined;
    if (++group.steps >= this.maxSteps) this.release(group);
    return { result, durable: group.done };
  }

  /**
   * Commits the open group (on disk on return) and sends what it releases. Work that is not a step (ticks, new
   * channels) calls this inside `serial` first, then runs on its own with every write committed as it goes.
   */
  async settleGroup(): Promise<void> {
    const group = this.group;
    if (group !== undefined) this.release(group);
    await this.sent; // the messages of the groups released before
    await group?.done; // rejects if the group could not be committed
  }

  /**
   * Commits the open group now (inside `serial`, between steps) and queues its messages without waiting for them to
   * be sent: for work that goes on with the chain next and must not wait on a stalled peer.
   */
  commitOpen(): void {
    if (this.group !== undefined) this.release(this.group);
  }

  /**
   * Commits `group` (inside `serial`, between steps), on disk when `commit` returns, and sends its messages after
   * those of the groups before it. The sync blocks this thread for its length (0.7 ms for a full group on the
   * disk docs/BENCHMARKS.md was measured on), which measured faster than handing it to libuv's thread pool: there, the completion waits for
   * a turn of a busy event loop and every message of the group waits with it.
   */
  private release(group: StepGroup) {
    if (this.group !== group) return; // already released or abandoned
    this.group = undefined;
    try {
      this.store.commit();
    } catch (error) {
      this.abandon(group, error);
      return;
    }
    if (group.after.length > 0) this.hooks.committed(group.after);
    this.sent = this.sent.then(() => this.deliver(group)).then(group.resolve, group.reject);
  }

  /**
   * Gives up a group whose transaction failed or may have been ended under it: nothing of it is sent, its steps'
   * callers see the error, and the store starts clean (its steps' messages were never sent, so the protocol goes
   * on from the last committed state).
   */
  private abandon(group: StepGroup, error: unknown) {
    if (this.group === group) this.group = undefined;
    this.hooks.discard("group");
    try {
      this.store.abandon();
    } catch {
      // a closed store has nothing left to roll back
    }
    group.reject(error);
  }

  /** Sends a committed group's messages, then reports its events. */
  private async deliver(group: StepGroup) {
    await this.hooks.transmit(group.envelopes);
    for (const event of group.events) this.hooks.report(event);
  }
}
