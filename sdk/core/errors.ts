/** Base of every error the SDK throws: a message a person understands, and where to read more. */
export class ChannelSdkError extends Error {
  /**
   * Where to read more, when there is a page. Set only then: an own property `docs: undefined` would be printed
   * under every uncaught error (Node shows an error's own properties after its stack).
   */
  declare readonly docs: string | undefined;

  constructor(message: string, options: { docs?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (options.docs !== undefined) this.docs = options.docs;
  }
}

/** A state breaks an invariant the hub enforces (amounts, lock count, lock fields). */
export class InvalidStateError extends ChannelSdkError {
  constructor(reason: string) {
    super(`Invalid channel state: ${reason}`, { docs: "docs/PROTOCOL.md#data-layouts" });
  }
}

/** Where a balance falls short, as far as the thrower knows it, and what to do about it. */
export type BalanceContext = Readonly<{
  channelId?: string;
  chainId?: bigint;
  /** Shows an amount in the asset's units (base units when its decimals are not known). */
  format?: (amount: bigint) => string;
  /** What the amounts are counted in, e.g. "native coin", shown once after them. */
  unit?: string;
  /** The next step: count a deposit, wait for it to be final, deposit more. */
  hint?: string;
}>;

/** A participant's free balance does not cover an amount it is asked to lock or send. */
export class InsufficientBalanceError extends ChannelSdkError {
  /** The channel, when the thrower knows it. */
  readonly channelId: string | undefined;

  constructor(
    readonly participant: number,
    readonly available: bigint,
    readonly needed: bigint,
    context: BalanceContext = {},
  ) {
    const where = context.channelId === undefined ? "in the channel" : `in channel ${context.channelId}`;
    const chain = context.chainId === undefined ? "" : ` on chain ${context.chainId}`;
    const f = context.format ?? ((a: bigint) => a.toString());
    const unit = context.unit === undefined ? "" : ` (${context.unit})`;
    const hint = context.hint === undefined ? "" : ` ${context.hint}`;
    super(`Participant ${participant} has ${f(available)} free ${where}${chain} but ${f(needed)} is needed${unit}.${hint}`);
    this.channelId = context.channelId;
  }
}

/** Swap expiries that break the timing rules of docs/TIMING.md. */
export class TimingRuleError extends ChannelSdkError {
  constructor(reason: string) {
    super(`Unsafe swap timing: ${reason}`, { docs: "docs/TIMING.md" });
  }
}

/** A lock that would live longer than an upper bound of the timing rules allows; `bound` names the bound. */
export class TimingBoundError extends TimingRuleError {
  constructor(
    readonly bound: "maxTargetLockSeconds" | "slackSeconds" | "lockHorizon",
    readonly limit: bigint,
    reason: string,
  ) {
    super(reason);
  }
}

/** A signature that does not verify for the expected signer. */
export class InvalidSignatureError extends ChannelSdkError {
  constructor(what: string, readonly expected: string, readonly recovered: string | undefined) {
    super(`Invalid signature on ${what}: expected ${expected}, recovered ${recovered ?? "nothing"}.`);
  }
}

/** A counterparty message that is well-formed but not what the protocol allows at this point. */
export class UnexpectedMessageError extends ChannelSdkError {
  constructor(reason: string) {
    super(`Unexpected message: ${reason}`, { docs: "docs/SWAP.md" });
  }
}

/** A counterparty message whose content does not match what was agreed. */
export class InvalidMessageError extends ChannelSdkError {
  constructor(reason: string) {
    super(`Rejected counterparty message: ${reason}`, { docs: "docs/SWAP.md" });
  }
}

/**
 * A number in encoded protocol data (`{"$n": "…"}`) that no protocol value can hold: not a canonical decimal
 * integer, or beyond ±(2^256 - 1). Refused on its text, before it is converted.
 */
export class InvalidNumberError extends ChannelSdkError {
  constructor(reason: string) {
    super(`Invalid number: ${reason}`, { docs: "docs/SWAP.md#messages" });
  }
}

/** The client was asked to sign a second, different state with a sequence number it already signed. */
export class DoubleSignError extends ChannelSdkError {
  constructor(readonly channelId: string, readonly seq: bigint) {
    super(`Refusing to sign a second state with sequence number ${seq} on channel ${channelId}.`);
  }
}

/** No pending lock with that hashlock in the state. */
export class LockNotFoundError extends ChannelSdkError {
  constructor(readonly hashlock: string) {
    super(`No pending lock with hashlock ${hashlock}.`);
  }
}

/** Channel parameters that do not match what this client expects of a channel it joins; `field` names which. */
export class ChannelTermsError extends ChannelSdkError {
  constructor(
    readonly field: "participants" | "counterparty" | "payee" | "asset" | "challengePeriod" | "status",
    reason: string,
  ) {
    super(`Refusing the channel: ${field}: ${reason}`);
  }
}

/** Swap terms that cannot be carried out safely as stated (one channel named twice, a channel of someone else). */
export class InvalidTermsError extends ChannelSdkError {
  constructor(reason: string) {
    super(`Invalid swap terms: ${reason}`, { docs: "docs/SWAP.md" });
  }
}

/**
 * No hub code at the address a chain adapter reads: the address is not the hub on that chain (`notYet` undefined),
 * or the hub was deployed after the block read, the final block `confirmations` below the head (`notYet`).
 */
export class HubNotDeployedError extends ChannelSdkError {
  readonly chainId: bigint;
  readonly hub: string;
  readonly notYet: Readonly<{ block: number; head: number; confirmations: number; local: boolean }> | undefined;

  constructor(
    o: Readonly<{
      chainId: bigint;
      hub: string;
      notYet?: Readonly<{ block: number; head: number; confirmations: number; local: boolean }>;
    }>,
  ) {
    const { chainId, hub, notYet } = o;
    super(
      notYet === undefined
        ? `No contract at the hub address ${hub} on chain ${chainId}: check the hub address for chain ${chainId} ` +
            "(deployed to another chain, or the chain restarted since it was deployed?)."
        : `The hub ${hub} on chain ${chainId} has no code at block ${notYet.block}, the final block (the head ${notYet.head} ` +
            `less ${notYet.confirmations} confirmations): it was deployed fewer than ${notYet.confirmations} blocks ago. ` +
            (notYet.local
              ? `Chain ${chainId} is a local chain: it mines a block only when a transaction arrives, so no block comes by ` +
                "itself; use confirmations 0 there (its default when none is given)."
              : `Wait until it is ${notYet.confirmations} blocks deep.`),
      { docs: "docs/TIMING.md#local-chains" },
    );
    this.chainId = chainId;
    this.hub = hub;
    this.notYet = notYet;
  }
}

/**
 * An address given as a hub's that cannot be one: not an address at all (`notAnAddress`: not 0x and 40 hex digits,
 * e.g. cut short), an address whose mixed-case checksum is wrong (`badChecksum`: a mistyped letter), or the address of
 * a contract that is not a ChannelHub of this version (`notAHub`: it does not answer the hub's calls, or signs for
 * another EIP-712 domain). An address with no code at all is a HubNotDeployedError.
 */
export class HubAddressError extends ChannelSdkError {
  constructor(
    readonly problem: "notAnAddress" | "badChecksum" | "notAHub",
    readonly chainId: bigint,
    readonly hub: string,
    /** For `notAHub`: what the contract answered. */
    detail = "",
    cause?: unknown,
  ) {
    super(
      problem === "notAnAddress"
        ? `The hub address "${hub}" given for chain ${chainId} is not an address: an address is 20 bytes, 0x and 40 hex ` +
            `digits. Copy the hub's address for chain ${chainId} again, whole.`
        : problem === "badChecksum"
          ? `The hub address ${hub} given for chain ${chainId} has a wrong checksum (the mix of upper- and lower-case ` +
            `letters does not match): a letter is mistyped. Copy the hub's address for chain ${chainId} again.`
          : `The contract at ${hub} on chain ${chainId} is not a ChannelHub of this version: ${detail}. Check the hub ` +
            `address for chain ${chainId} (the ChannelHub's, not the SecretRegistry's or a token's), and that the hub ` +
            "was deployed from this package's version.",
      { cause },
    );
  }
}

/**
 * A transport with no address for its peer: nothing it is given can leave. Raised by the send itself, reported by
 * the client as a `sendFailed` event (`notConnected`), and the error `syncDeposits`, `whenDone` and `whenClosed`
 * reject with when their channel's messages fail for it.
 */
export class TransportNotConnectedError extends ChannelSdkError {
  constructor(what = "The HTTP transport") {
    super(
      `${what} has no peer URL, so no message reaches the counterparty: call transport.connect(peerUrl) with its URL ` +
        "(or pass it to HttpTransport.start). The client resends what failed on its next tick.",
    );
  }
}

/** A send the peer did not take: it refused the request, did not answer in time, or could not be reached. */
export class PeerUnreachableError extends ChannelSdkError {
  constructor(
    /** Where the message was to go (the peer's URL). */
    readonly peer: string,
    reason: string,
    cause?: unknown,
  ) {
    super(reason, { cause });
  }
}

/**
 * A wait (`syncDeposits`, `whenDone`, `whenClosed`) given up before what it waited for happened: its timeout passed
 * (`timedOut`) or its AbortSignal fired. The client goes on with the channel or swap in the background (its ticks);
 * the message says what was awaited and what to check.
 */
export class WaitAbortedError extends ChannelSdkError {
  /** Whether the wait's timeout ended it (else its AbortSignal). */
  readonly timedOut: boolean;

  constructor(
    /** What was awaited, e.g. "the count of deposits of channel 0x…". */
    readonly waitingFor: string,
    /** The timeout that passed, or undefined when the signal aborted the wait. */
    timeoutMs: number | undefined,
    hint: string,
    cause?: unknown,
  ) {
    super(`Gave up waiting for ${waitingFor} ${timeoutMs === undefined ? "(aborted)" : `after ${timeoutMs} ms`}: ${hint}`, { cause });
    this.timedOut = timeoutMs !== undefined;
  }
}
