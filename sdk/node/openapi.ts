/**
 * The control API's OpenAPI 3.1 document, served at GET /api/v1/openapi.json, built from the API's route table
 * (api.ts `apiRoutes`): each route's path, summary and answer, and its request body's JSON Schema generated from the
 * same zod schema that checks the body (zod's `toJSONSchema`). Nothing here is written twice.
 */
import { z } from "zod";

/** What a route answers with, as the document describes it. */
export type ResponseDoc =
  | Readonly<{ kind: "json"; description: string; schema?: object }>
  | Readonly<{ kind: "stream"; description: string; contentType: string }>;

/** One route as the document needs it. */
export type RouteDoc = Readonly<{
  method: "get" | "post";
  /** Hono's form (`/channels/:id`), under `base`. */
  path: string;
  /** "/api/v1", or "" for a route outside it (GET /metrics). */
  base: string;
  summary: string;
  body?: z.ZodType;
  status: 200 | 201;
  response: ResponseDoc;
  /** A read of stored data that a standby serves too, from its snapshot of the database (its answers say when it was read). */
  standby?: boolean;
}>;

const PARAMETERS: Record<string, string> = {
  id: "id, or a unique prefix of at least 6 hex digits",
  name: "the chain's name in the configuration",
};
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (description: string, schema: object = { type: "object" }) => ({ description, content: { "application/json": { schema } } });
const ERRORS = {
  "400": json("bad input; `error` names the field", ref("Error")),
  "401": json("no or wrong bearer token", ref("Error")),
  "404": json("unknown channel, swap or chain", ref("Error")),
  "409": json("refused as things stand (free balance, channel busy or closed, peer refused, a chain that does not answer or reorganised deeper than its confirmations)", ref("Error")),
  "413": json("a body over 1 MiB", ref("Error")),
  "421": { description: "a Host the API does not listen as (no body)" },
  "503": json(
    "the node's store is lost (deleted, replaced or unwritable under it): it signs nothing until restarted with its store back; or this process is a standby of a node kept in PostgreSQL and the request is a write or the event stream (`active` names the process that leads), or its database does not answer",
    ref("Error"),
  ),
};
/** The header of a standby's answers (docs/NODE.md, "PostgreSQL and a standby"). */
const AS_OF = {
  "X-Channels-As-Of": {
    description: "only from a standby: when its snapshot of the database was read (it holds every commit before; at most 2 s before the request)",
    schema: { type: "string", format: "date-time" },
  },
};

export const CHANNEL_DOC = ref("Channel");
export const SWAP_DOC = ref("Swap");
export const PEER_DOC = ref("Peer");

/** A request body's JSON Schema from the zod schema that checks it (what a client may send: defaults optional). */
function bodySchema(schema: z.ZodType): object {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
  return rest;
}

export type OpenApiDocument = Readonly<{ paths: Readonly<Record<string, Readonly<Record<string, unknown>>>> }> & Readonly<Record<string, unknown>>;

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly RouteDoc[]): OpenApiDocument {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:([a-zA-Z]+)/g, "{$1}");
    const entry = (paths[path] ??= r.base === "/api/v1" ? {} : { servers: [{ url: r.base === "" ? "/" : r.base }] });
    const names = [...r.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => m[1]!);
    entry[r.method] = {
      summary: r.summary,
      ...(names.length === 0 ? {} : { parameters: names.map((n) => ({ name: n, in: "path", required: true, description: PARAMETERS[n] ?? n, schema: { type: "string" } })) }),
      ...(r.body === undefined ? {} : { requestBody: { required: true, content: { "application/json": { schema: bodySchema(r.body) } } } }),
      responses: {
        [String(r.status)]: {
          ...(r.response.kind === "json" ? json(r.response.description, r.response.schema) : { description: r.response.description, content: { [r.response.contentType]: {} } }),
          ...(r.standby === true ? { headers: AS_OF } : {}),
        },
        ...ERRORS,
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "channels node control API", version: "1" },
    servers: [{ url: "/api/v1" }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: {
          type: "object",
          properties: {
            error: { type: "string" },
            active: {
              type: ["object", "null"],
              description: "a standby's 503: the process that leads (null before any did)",
              properties: { holder: { type: "string" }, api: { type: ["string", "null"] }, term: { type: "integer" }, since: { type: "string", format: "date-time" } },
            },
          },
          required: ["error"],
        },
        Channel: {
          type: "object",
          properties: {
            id: { type: "string" }, chain: { type: "string" }, peer: { type: "string" }, asset: { type: "string" },
            status: { enum: ["agreed", "open", "closing", "forceClosing", "disputed", "closed"] },
            balance: { type: "object" }, deposits: { type: "object" }, payouts: { type: "object" },
            challengeDeadline: { type: "string", description: "while disputed: when the challenge period ends" },
            frozenSince: { type: "string", description: "the channel came from a restored copy of the store, taken then: nothing is signed on it until it catches up from its peer" },
            catchUp: { type: "object", description: "while frozen: askedAt, when it last asked its peer for the newest state both signed; problem, why it cannot catch up (then force-close it)" },
            withdrawable: { type: "string", description: "once closed: what the hub holds for this node in the channel's asset (a payout it could not push), for POST /channels/{id}/withdraw" },
          },
        },
        Peer: {
          type: "object",
          properties: {
            name: { type: "string" }, address: { type: "string" }, url: { type: "string" }, channels: { type: "integer", description: "channels with this peer, any status" },
            link: {
              enum: ["up", "down", "unknown"],
              description: "up: the last exchange with the peer went through (an envelope came from it, or a request to it was answered) after any failed request; down: a request to it failed since; unknown: nothing exchanged since the process started (always, from a standby: it exchanges nothing with peers). The node asks a peer nothing unprompted: one that went away shows down at the next request to it",
            },
            lastExchange: { type: "string", description: "when the last exchange that went through happened" },
            lastFailure: { type: "string", description: "when the last request to the peer failed" },
          },
          required: ["name", "address", "url", "channels", "link"],
        },
        Swap: {
          type: "object",
          properties: {
            id: { type: "string" }, role: { enum: ["initiator", "responder"] }, peer: { type: "string" }, phase: {
              enum: ["proposed", "agreed", "locked", "revealed", "cancelling", "settlingOnChain", "done"],
              description: "negotiation: proposed, agreed (locks being added); execution: locked (both co-signed), revealed (the secret out, both being paid), cancelling (undone off chain); batch settlement: settlingOnChain; asset settlement: done (with outcome)",
            },
            outcome: { type: "string" }, give: { type: "string" }, take: { type: "string" }, sourceExpiry: { type: "string" }, targetExpiry: { type: "string" },
          },
        },
      },
    },
  };
}
