import { keccak256, toUtf8Bytes } from "ethers";

import type { Hex } from "./types.js";

/**
 * Canonical JSON for protocol values: object keys sorted, bigints as `{"$n":"123"}`. Two equal values always
 * encode to the same bytes, so the encoding can be hashed and signed, and it round-trips through `decode`.
 */
export function encode(value: unknown): string {
  return JSON.stringify(toCanonical(value));
}

export function decode<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const n = (v as Record<string, unknown>)["$n"];
      if (keys.length === 1 && typeof n === "string") return BigInt(n);
    }
    return v;
  }) as T;
}

export function hashOf(value: unknown): Hex {
  return keccak256(toUtf8Bytes(encode(value))) as Hex;
}

function toCanonical(value: unknown): unknown {
  if (typeof value === "bigint") return { $n: value.toString() };
  if (Array.isArray(value)) return value.map(toCanonical);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = toCanonical(v);
    }
    return out;
  }
  return value;
}
