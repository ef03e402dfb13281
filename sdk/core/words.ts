import { keccak } from "./keccak.js";

import type { Hex } from "./types.js";

// EIP-712 encodings written straight into byte buffers (no hex round trips): a digest is computed for every
// signature made or checked, so these run on the hot path. Tested against ethers' generic encoder.

/** Writes `value` as a 32-byte big-endian word at `offset` (callers range-check values). */
export function putWord(out: Uint8Array, offset: number, value: bigint): void {
  let v = value;
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/** Writes a 0x-prefixed hex value right-aligned in the word at `offset` (an address or a bytes32). */
export function putHex(out: Uint8Array, offset: number, hex: string): void {
  const bytes = Buffer.from(hex.slice(2), "hex");
  out.set(bytes, offset + 32 - bytes.length);
}

export function toHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}` as Hex;
}

/** The bytes of a 0x-prefixed hex string this process produced (callers validate untrusted input first). */
export function fromHex(hex: string): Uint8Array {
  return Buffer.from(hex.slice(2), "hex");
}

/** The EIP-712 digest: keccak256(0x1901 ‖ domain separator ‖ struct hash). */
export function typedDataDigest(domainSeparator: Uint8Array, structHash: Uint8Array): Hex {
  const buf = new Uint8Array(66);
  buf[0] = 0x19;
  buf[1] = 0x01;
  buf.set(domainSeparator, 2);
  buf.set(structHash, 34);
  return toHex(keccak(buf));
}
