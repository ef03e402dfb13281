/**
 * `channels node` in this process, as the node tests run it: a ChannelNode from its config file, its control API on
 * a real port, its log lines and event stream kept per node (across restarts), and one call to the API at a time.
 */
import { Writable } from "node:stream";
import type { ServerType } from "@hono/node-server";
import { pino } from "pino";

import type { Hex } from "../../sdk/index.js";
import { apiApp, apiToken, serveApi } from "../../sdk/node/api.js";
import { ChannelNode, type NodeEvent } from "../../sdk/node/node.js";
import { loadNodeConfig } from "../../sdk/node/node-config.js";

export type RunningNode = { node: ChannelNode; server: ServerType; base: string; token: string };

export class InProcessNodes<Who extends string> {
  readonly run: Partial<Record<Who, RunningNode>> = {};
  /** Each node's log lines (JSON) and events, kept across restarts. */
  readonly logs = {} as Record<Who, Record<string, unknown>[]>;
  readonly events = {} as Record<Who, NodeEvent[]>;

  /** `file(who)`: the node's config file; `key(who)`: its private key. */
  constructor(
    private readonly file: (who: Who) => string,
    private readonly key: (who: Who) => Hex,
  ) {}

  async start(who: Who): Promise<RunningNode> {
    const config = loadNodeConfig(this.file(who));
    const lines = (this.logs[who] ??= []);
    const log = pino({ level: "info", base: undefined }, new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }));
    const node = await ChannelNode.start(config, this.key(who), log);
    const events = (this.events[who] ??= []);
    node.subscribe((e) => events.push(e));
    const token = apiToken(config.api.tokenFile);
    const { server, url } = await serveApi(apiApp(node, token), config.api.host, config.api.port);
    return (this.run[who] = { node, server, base: `${url}/api/v1`, token });
  }

  async stop(who: Who): Promise<void> {
    const r = this.run[who];
    if (r === undefined) return;
    delete this.run[who];
    r.server.close();
    (r.server as { closeAllConnections?: () => void }).closeAllConnections?.();
    await r.node.stop();
  }

  async stopAll(): Promise<void> {
    for (const who of Object.keys(this.run) as Who[]) await this.stop(who);
  }

  /** One call to a node's control API: the status and the JSON answer. */
  api<T = unknown>(who: Who, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    return callApi<T>(this.run[who]!, method, path, body);
  }
}

/** One call to the control API at `base` (…/api/v1) with `token`: the status and the JSON answer. */
export async function callApi<T = unknown>(r: Readonly<{ base: string; token: string }>, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(r.base + path, {
    method,
    headers: { authorization: `Bearer ${r.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}
