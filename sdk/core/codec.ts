import { keccak } from "./keccak.js";
import type { Hex } from "./types.js";
import { toHex } from "./words.js";

/**
 * Canonical JSON for protocol values: object keys sorted, bigints as `{"$n":"123"}`. Two equal values always
 * encode to the same bytes, so the encoding can be hashed and signed, and it round-trips through `decode`.
 */
export function encode(value: unknown): string {
  return write(value) ?? "null";
}

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
  const n = object["$n"];
  return keys === 1 && typeof n === "string" ? BigInt(n) : object;
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
      return `{"$n":"${value.toString()}"}`;
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
