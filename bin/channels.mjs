#!/usr/bin/env node
// The `channels` command. The SDK is TypeScript whose imports name `.js` files: tsx runs it until a build step
// compiles it (then this file points at the compiled main instead).
import { register } from "tsx/esm/api";

// node:sqlite (the store) warns that it is experimental on every start; the CLI's output stays its own.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const text = typeof warning === "string" ? warning : warning?.message ?? "";
  if (/SQLite is an experimental feature/.test(text)) return;
  emitWarning(warning, ...rest);
};

register();
const { main } = await import("../sdk/cli/main.ts");
process.exit(await main(process.argv.slice(2)));
