import { expect } from "chai";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

import { PROJECT_ROOT } from "../helpers/nodes.js";

/** The folders below the node layer (STYLE.md: imports only point down). */
const LOWER = ["core", "chain", "store", "coordinator", "watchtower"];

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(folder, e.name)) : e.name.endsWith(".ts") ? [join(folder, e.name)] : [],
  );
}

describe("sdk layers", function () {
  it("nothing below sdk/node imports it, or zod (the node layer's dependency)", function () {
    const offenders = LOWER.flatMap((layer) => sources(join(PROJECT_ROOT, "sdk", layer)))
      .filter((file) => /from\s+["'](\.\.\/)+(node|cli)\/|from\s+["']zod["']/.test(readFileSync(file, "utf8")))
      .map((file) => relative(PROJECT_ROOT, file));
    expect(offenders).to.deep.equal([]);
  });
});
