import { InvalidNumberError } from "./errors.js";
import { keccak } from "./keccak.js";
import type { Hex } from "./types.js";
import { toHex } from "./words.js";

/**
 * The largest magnitude of a protocol number: 2^256 - 1, a uint256 (an int256 fits too). Its 78 decimal digits bound
 * a `$n`'s text before BigInt reads it: BigInt's decimal parse and print grow faster than the text, so a peer's
 * million-digit number would hold the event loop for a large fraction of a second before any signature is checked.
 */
export const MAX_MAGNITUDE = (1n << 256n) - 1n;
const MAX_DIGITS = MAX_MAGNITUDE.toString().length; // 78
/** The canonical decimal text of a bigint (as `toString` writes it): no sign on 0, no leading zeros, no spaces. */
const DECIMAL = /^(?:0|-?[1-9][0-9]*)$/;

/**
 * Canonical JSON for protocol values: object keys sorted, bigints as `{"$n":"123"}`. Two equal values always
 * encode to the same bytes, so the encoding can be hashed and signed, and it round-trips through `decode`.
 * Throws InvalidNumberError for a bigint beyond ±MAX_MAGNITUDE, which `decode` would refuse.
 */
export function encode(value: unknown): string {
  return write(value) ?? "null";
}

/**
 * The value `encode` wrote. Throws InvalidNumberError for a `{"$n": …}` that is not a number's canonical decimal
 * text within ±MAX_MAGNITUDE (checked on the text, before BigInt reads it), SyntaxError for text that is not JSON.
 */
export function decode<T>(text: string): T {
  return revive(JSON.parse(text)) as T;
}

/**
 * The deepest nesting of arrays and objects a received protocol value may have. The protocol's deepest (a batched
 * envelope's terms) is under 10; a line of a million `[` makes JSON.parse and the reviver recurse until the stack
 * overflows, about 70 ms of the event loop per MiB, so received text is scanned for it before it is parsed.
 */
export const MAX_NESTING = 64;

const OPEN_BRACE = 0x7b, OPEN_BRACKET = 0x5b, CLOSE_BRACE = 0x7d, CLOSE_BRACKET = 0x5d, QUOTE = 0x22, BACKSLASH = 0x5c;

/**
 * Tracks the nesting of JSON text fed to it piece by piece, as UTF-8 bytes or as characters (the structural
 * characters are ASCII, which never occur inside a multi-byte UTF-8 sequence), skipping strings. One pass, no
 * allocation: a receiver can refuse a line as it arrives, before holding or parsing all of it.
 */
export class NestingScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly max = MAX_NESTING) {}

  /** Feeds the next piece; false once the text has nested deeper than `max` (it stays false). */
  feed(piece: Uint8Array | string): boolean {
    if (this.depth > this.max) return false;
    if (typeof piece === "string") {
      for (let i = 0; i < piece.length; i++) if (!this.step(piece.charCodeAt(i))) return false;
    } else {
      for (let i = 0; i < piece.length; i++) if (!this.step(piece[i]!)) return false;
    }
    return true;
  }

  private step(c: number): boolean {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (c === BACKSLASH) this.escaped = true;
      else if (c === QUOTE) this.inString = false;
      return true;
    }
    if (c === QUOTE) this.inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) return ++this.depth <= this.max;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) this.depth--;
    return true;
  }
}

/** Whether JSON text nests arrays and objects at most `max` deep (strings skipped); O(length), no allocation. */
export function nestingWithin(text: string, max = MAX_NESTING): boolean {
  return new NestingScanner(max).feed(text);
}

/** Turns every `{"$n": "…"}` of a parsed JSON value back into a bigint (in place, bottom up). */
function revive(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  const object = value as Record<string, unknown>;
  let keys = 0;
  for (const key of Object.keys(object)) {
    keys++;
    const v = object[key];
    const revived = revive(v);
    if (revived !== v) object[key] = revived; // only a bigint replaces a value (objects are revived in place)
  }
  return keys === 1 && Object.hasOwn(object, "$n") ? number(object["$n"]) : object;
}

/** The bigint of a `$n`'s text; its length and form are checked before BigInt reads it. */
function number(text: unknown): bigint {
  if (typeof text !== "string") {
    const kind = text === null ? "null" : Array.isArray(text) ? "an array" : typeof text === "object" ? "an object" : `a ${typeof text}`;
    throw new InvalidNumberError(`{"$n": …} holds ${kind}, not a decimal string`);
  }
  const digits = text.startsWith("-") ? text.length - 1 : text.length;
  if (digits > MAX_DIGITS) throw new InvalidNumberError(`{"$n": …} has ${digits} digits; protocol numbers have at most ${MAX_DIGITS} (below 2^256)`);
  if (!DECIMAL.test(text)) throw new InvalidNumberError(`{"$n": ${JSON.stringify(text)}} is not a canonical decimal integer`);
  return inRange(BigInt(text));
}

function inRange(n: bigint): bigint {
  if (n > MAX_MAGNITUDE || n < -MAX_MAGNITUDE) throw new InvalidNumberError(`a number beyond ±(2^256 - 1) is not a protocol number`);
  return n;
}

export function hashOf(value: unknown): Hex {
  return toHex(keccak(Buffer.from(encode(value), "utf8")));
}

/** JSON text of `value` in canonical form, or undefined where JSON.stringify would leave the value out. */
function write(value: unknown): string | undefined {
  switch (typeof value) {
    case "string":
    case "number":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return `{"$n":"${inRange(value).toString()}"}`;
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + (write(value[i]) ?? "null");
        return out + "]";
      }
      let out = "{";
      for (const key of Object.keys(value).sort()) {
        const v = write((value as Record<string, unknown>)[key]);
        if (v !== undefined) out += (out.length === 1 ? "" : ",") + JSON.stringify(key) + ":" + v;
      }
      return out + "}";
    }
    default:
      return undefined; // undefined, functions and symbols, as JSON leaves them out
  }
}
