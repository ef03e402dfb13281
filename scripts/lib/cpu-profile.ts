/**
 * Reads a V8 CPU profile (`node --cpu-prof`) and sums its samples inside a time window: self time per function
 * (name, file and line), and inclusive time for the functions that match a filter. Times are the process's
 * monotonic clock in microseconds, the clock `process.hrtime` reads in every process of the machine, so a window
 * taken in another process can be applied here.
 */
import { readFileSync } from "node:fs";

type Frame = { functionName: string; url: string; lineNumber: number };
type ProfileNode = { id: number; callFrame: Frame; children?: number[] };
type Profile = { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] };

export type ProfileLine = Readonly<{ name: string; where: string; samples: number; share: number }>;
export type ProfileSummary = Readonly<{
  /** Samples in the window, and how many of them were the process idle (waiting in the event loop). */
  samples: number;
  idle: number;
  /** Self time, the top functions first; `share` of the busy (non-idle) samples. */
  self: readonly ProfileLine[];
  /** Self time summed per file (package or module), the top first; `share` of the busy samples. */
  files: readonly ProfileLine[];
  /** Inclusive time of the functions `inclusive` matched (a function counted once per sample however deep it recurses). */
  inclusive: readonly ProfileLine[];
  /** Self time of native functions (a syscall, a write) by the nearest caller of the project's own code. */
  native: readonly ProfileLine[];
}>;

/** A file's short name: `node_modules/<package>` for a dependency, else its path from `dist/` or `node:` on. */
function fileOf(url: string): string {
  if (url === "") return "(native or V8)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return `node_modules/${rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, "");
}

export function summariseProfile(
  file: string,
  window: readonly (readonly [number, number])[],
  inclusive: (frame: Frame) => boolean = () => false,
  top = 30,
): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (f: Frame) => `${f.functionName || "(anonymous)"}\t${fileOf(f.url)}:${f.lineNumber + 1}`;
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  const incl = new Map<string, number>();
  const native = new Map<string, number>();
  let t = p.startTime;
  let samples = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    if (!window.some(([a, b]) => t >= a && t <= b)) continue;
    samples++;
    const node = byId.get(p.samples[i]!)!;
    const f = node.callFrame;
    if (f.functionName === "(idle)") {
      idle++;
      continue;
    }
    self.set(key(f), (self.get(key(f)) ?? 0) + 1);
    const fk = f.functionName.startsWith("(") ? f.functionName : fileOf(f.url);
    files.set(fk, (files.get(fk) ?? 0) + 1);
    if (f.url === "" && !f.functionName.startsWith("(")) {
      let caller = "";
      for (let id = parent.get(node.id); id !== undefined && caller === ""; id = parent.get(id)) {
        const cf = byId.get(id)!.callFrame;
        if (cf.url.includes("/dist/sdk/")) caller = key(cf).replace("\t", " ");
      }
      const nk = `${f.functionName} < ${caller || "(no project caller)"}\t`;
      native.set(nk, (native.get(nk) ?? 0) + 1);
    }
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      if (!inclusive(cf)) continue;
      const k = key(cf);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + 1);
    }
  }
  const busy = Math.max(1, samples - idle);
  const lines = (m: Map<string, number>, n: number): ProfileLine[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, s]) => {
        const [name, where] = k.split("\t");
        return { name: name!, where: where ?? "", samples: s, share: s / busy };
      });
  return { samples, idle, self: lines(self, top), files: lines(files, top), inclusive: lines(incl, top), native: lines(native, top) };
}
