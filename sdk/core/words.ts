import { keccak } from "./keccak.js";

import type { Hex } from "./types.js";

// EIP-712 encodings written straight into byte buffers (no hex round trips): a digest is computed for every
// signature made or checked, so these run on the hot path. Tested against ethers' generic encoder.

const MASK_32 = 0xffffffffn;
const MASK_64 = 0xffffffffffffffffn;
const MASK_128 = (1n << 128n) - 1n;

/** Writes the low 64 bits of `value` big-endian at `out[end - 8 .. end)`, as two 32-bit halves (no byte loop). */
function putU64(out: Uint8Array, end: number, value: bigint): void {
  let lo = Number(value & MASK_32);
  let hi = Number((value >> 32n) & MASK_32);
  for (let i = 1; i <= 4; i++) {
    out[end - i] = lo & 0xff;
    out[end - 4 - i] = hi & 0xff;
    lo >>>= 8;
    hi >>>= 8;
  }
}

/**
 * Writes `value` as a 32-byte big-endian word at `offset` of a zeroed buffer (callers range-check values). Values up
 * to 128 bits, every amount, sequence number and time the protocol hashes, take two or four 32-bit writes.
 */
export function putWord(out: Uint8Array, offset: number, value: bigint): void {
  if (value < 0n) throw new RangeError(`a negative value (${value}) has no unsigned word`);
  if (value <= MASK_64) {
    putU64(out, offset + 32, value);
    return;
  }
  if (value <= MASK_128) {
    putU64(out, offset + 32, value);
    putU64(out, offset + 24, value >> 64n);
    return;
  }
  let v = value;
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/** Writes a 0x-prefixed hex value right-aligned in the word at `offset` (an address or a bytes32). */
export function putHex(out: Uint8Array, offset: number, hex: string): void {
  const bytes = fromHex(hex);
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
