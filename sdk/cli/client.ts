/** The CLI's side of the control API: the node's URL and token from its configuration, JSON in and out. */
import { readFileSync } from "node:fs";

import { ChannelSdkError } from "../core/errors.js";
import { UsageError } from "../node/errors.js";
import { fileProblem } from "../node/config.js";
import { AS_OF_HEADER } from "../node/headers.js";
import { loadNodeConfig } from "../node/node-config.js";
import { isPostgresUrl, redactUrl } from "../store/postgres.js";

/** The API answered 404: an unknown channel or swap (exit 1). */
export class NotFound extends ChannelSdkError {}

export class ApiClient {
  private constructor(
    readonly base: string,
    private readonly token: string,
    private readonly tokenFile: string,
    /** The database the node is kept in, fit to print, if it is kept in PostgreSQL (another process may lead it). */
    private readonly database: string | undefined,
  ) {}

  static fromConfig(file: string): ApiClient {
    const config = loadNodeConfig(file);
    let token: string;
    try {
      token = readFileSync(config.api.tokenFile, "utf8").trim();
    } catch (error) {
      throw new UsageError(`${config.api.tokenFile}: cannot read the API token (${fileProblem(error)}); has the node been started once?`);
    }
    const host = config.api.host.includes(":") ? `[${config.api.host}]` : config.api.host;
    return new ApiClient(`http://${host}:${config.api.port}/api/v1`, token, config.api.tokenFile, isPostgresUrl(config.store) ? redactUrl(config.store) : undefined);
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      // Kept in PostgreSQL, the node may run in another process (a standby that took over): this api is only this one's.
      const elsewhere =
        this.database === undefined
          ? ""
          : `; the node is kept in ${this.database}, so the active process may be another one (after a takeover): ask a standby's API (channels --config <its node.json> info) or read the api column of channels_meta.leader in the database`;
      throw new ChannelSdkError(`cannot reach the node at ${this.base}: is \`channels node start\` running?${elsewhere}`);
    }
    const data = (await res.json().catch(() => ({}))) as { error?: string };
    if (res.ok) {
      noteSnapshot(res.headers.get(AS_OF_HEADER));
      return data as T;
    }
    const message = data.error ?? `${res.status} ${res.statusText}`;
    if (res.status === 400) throw new UsageError(message);
    if (res.status === 404) throw new NotFound(message);
    // The node at this address does not take this token: say which token file and which node, the two to compare.
    if (res.status === 401) throw new ChannelSdkError(`the node at ${this.base} refused the token in ${this.tokenFile}: is it this node's api.tokenFile, and this node's api.port?`);
    throw new ChannelSdkError(message);
  }
}

let snapshotNoted = false;

/**
 * Says once per command, on stderr (stdout stays the answer, `--json` included), that what it shows is a standby's
 * snapshot of the database, and how old: a standby serves the reads of a node kept in PostgreSQL, the active process
 * the writes.
 */
function noteSnapshot(asOf: string | null): void {
  if (asOf === null || snapshotNoted) return;
  const at = Date.parse(asOf);
  if (Number.isNaN(at)) return; // not a time: nothing to say of it
  snapshotNoted = true;
  const age = Math.max(0, Math.round((Date.now() - at) / 1000));
  asOf = new Date(at).toISOString();
  process.stderr.write(`note: this process is a standby; what follows is its snapshot of the database as of ${asOf} (${age} s ago); the active process answers writes (channels info names it)\n`);
}
