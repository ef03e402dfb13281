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
