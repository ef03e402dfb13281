import { keccak_256 } from "@noble/hashes/sha3.js";
import { createRequire } from "node:module";
import { dirname } from "node:path";

import { loadNative } from "./native.js";

/** The sponge of the `keccak` package's prebuilt native add-on (the reference Keccak code). */
type NativeSponge = {
  initialize(rate: number, capacity: number): void;
  absorb(data: Uint8Array): void;
  absorbLastFewBits(bits: number): void;
  squeeze(length: number): Uint8Array;
};

/**
 * One reusable native sponge when the add-on loads on this platform (and CHANNELS_PURE_JS_CRYPTO is not 1), else
 * undefined and @noble/hashes is used. Both compute the same keccak-256 (property-tested); the native one is faster.
 */
const sponge: NativeSponge | undefined = loadNative("keccak", () => {
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve("keccak/package.json");
  const Sponge = createRequire(packageJson)("node-gyp-build")(dirname(packageJson)) as new () => NativeSponge;
  return new Sponge();
});

/** Which keccak implementation hashes in this process. */
export const hashBackend: "native" | "js" = sponge === undefined ? "js" : "native";

/** keccak-256 (Ethereum's hash) of `data`. */
export function keccak(data: Uint8Array): Uint8Array {
  if (sponge === undefined) return keccak_256(data);
  // Rate 1088 bits, capacity 512, Keccak's original padding (0x01): keccak-256, not SHA3-256.
  sponge.initialize(1088, 512);
  sponge.absorb(data);
  sponge.absorbLastFewBits(0x01);
  return sponge.squeeze(32);
}
