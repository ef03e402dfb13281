/**
 * Loads an optional native add-on (the `keccak` and `secp256k1` packages' prebuilt bindings): undefined when
 * CHANNELS_PURE_JS_CRYPTO=1 asks for the pure-JavaScript path, or when the add-on cannot load on this platform, in
 * which case the process is told once per add-on (a `ChannelsPureJsCrypto` warning) that the slower path is used.
 */
export function loadNative<T>(what: string, load: () => T): T | undefined {
  if (process.env.CHANNELS_PURE_JS_CRYPTO === "1") return undefined;
  try {
    return load();
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    process.emitWarning(`${what}: the native add-on did not load (${reason}); using the pure-JavaScript path, which is slower.`, {
      type: "ChannelsPureJsCrypto",
    });
    return undefined;
  }
}
