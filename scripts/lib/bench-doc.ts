import { readFileSync, writeFileSync } from "node:fs";

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` in docs/BENCHMARKS.md: a benchmark's record. */
export function replaceSection(name: string, body: string): void {
  const file = new URL("../../docs/BENCHMARKS.md", import.meta.url);
  const text = readFileSync(file, "utf8");
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`docs/BENCHMARKS.md has no ${name} section markers`);
  writeFileSync(file, text.slice(0, i + start.length) + "\n" + body + "\n" + text.slice(j));
}
