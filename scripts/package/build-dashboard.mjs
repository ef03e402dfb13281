// The node's dashboard (dashboard/): its TSX bundled with esbuild into dist/dashboard/app.js, next to its index.html
// and app.css. Three files, no inline script or style (the API's Content-Security-Policy forbids both), nothing
// fetched from elsewhere at run time. The node serves them on its API port (sdk/node/api.ts). Plain JavaScript: it
// runs where the package is packed, with no TypeScript loader (types are checked by `tsc -p dashboard`).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const source = join(root, "dashboard");
const out = join(root, "dist", "dashboard");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(source, "src", "main.tsx")],
  outfile: join(out, "app.js"),
  tsconfig: join(source, "tsconfig.json"),
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2022",
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  logLevel: "warning",
});
for (const file of ["index.html", "app.css"]) copyFileSync(join(source, file), join(out, file));
console.log("dist/dashboard/: index.html, app.js, app.css");
