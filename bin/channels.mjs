#!/usr/bin/env node
// The `channels` command: the compiled CLI (dist/, built by `npm run build:package`, and shipped in the package),
// run by Node with no TypeScript loader.

// node:sqlite (the store) warns that it is experimental on every start; the CLI's output stays its own.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const text = typeof warning === "string" ? warning : warning?.message ?? "";
  if (/SQLite is an experimental feature/.test(text)) return;
  emitWarning(warning, ...rest);
};

let main;
try {
  ({ main } = await import("../dist/sdk/cli/main.js"));
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND") throw error;
  console.error("error: the CLI is not built yet; run `npm run build:package` in this checkout first");
  process.exit(1);
}
process.exit(await main(process.argv.slice(2)));
