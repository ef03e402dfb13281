/**
 * The control API as an OpenAPI 3.1 document, served at GET /api/v1/openapi.json. A test checks that its paths
 * and methods are exactly the routes the server answers (test/integration/node.api.test.ts).
 */
const json = (description: string, schema: object = { type: "object" }) => ({ description, content: { "application/json": { schema } } });
const errors = {
  "400": json("bad input; `error` names the field", { $ref: "#/components/schemas/Error" }),
  "401": json("no or wrong bearer token", { $ref: "#/components/schemas/Error" }),
  "404": json("unknown channel or swap", { $ref: "#/components/schemas/Error" }),
  "409": json("refused as things stand (free balance, channel busy or closed, peer refused, a chain that does not answer or reorganised deeper than its confirmations)", { $ref: "#/components/schemas/Error" }),
  "413": json("a body over 1 MiB", { $ref: "#/components/schemas/Error" }),
  "421": { description: "a Host the API does not listen as (no body)" },
  "503": json("the node's store is lost (deleted, replaced or unwritable under it): it signs nothing until restarted with its store back", { $ref: "#/components/schemas/Error" }),
};
const id = [{ name: "id", in: "path", required: true, description: "id, or a unique prefix of at least 6 hex digits", schema: { type: "string" } }];
const body = (properties: object, required: string[]) => ({
  required: true,
  content: { "application/json": { schema: { type: "object", additionalProperties: false, properties, required } } },
});
const channel = { $ref: "#/components/schemas/Channel" };
const swap = { $ref: "#/components/schemas/Swap" };

export const OPENAPI = {
  openapi: "3.1.0",
  info: { title: "channels node control API", version: "1" },
  servers: [{ url: "/api/v1" }],
  security: [{ bearer: [] }],
  paths: {
    "/openapi.json": { get: { summary: "This document", responses: { "200": json("the document"), ...errors } } },
    "/info": { get: { summary: "Address, chains (with each one's health: head and its age, finality depth, fee account, deep reorganisation), assets, policy; 503 once the node's store is lost (a health check)", responses: { "200": json("node info"), ...errors } } },
    "/metrics": {
      servers: [{ url: "/" }],
      get: {
        summary: "The node's metrics in the Prometheus text format (docs/NODE.md, \"Metrics\"); without the token when api.metricsPublic is true",
        responses: { "200": { description: "metrics", content: { "text/plain; version=0.0.4": {} } }, ...errors },
      },
    },
    "/chains/{name}/release": {
      post: {
        summary: "End the hold a reorganisation deeper than its confirmations put on a chain (after checking the chain, its channels' deposits and the confirmations); 409 if not held",
        parameters: [{ name: "name", in: "path", required: true, description: "the chain's name in the configuration", schema: { type: "string" } }],
        responses: { "200": json("the chain's health"), ...errors },
      },
    },
    "/peers": { get: { summary: "Configured peers", responses: { "200": json("peers", { type: "array" }), ...errors } } },
    "/channels": {
      get: { summary: "Every channel, agreed or open or closed", responses: { "200": json("channels", { type: "array", items: channel }), ...errors } },
      post: {
        summary: "Open a channel with a peer (negotiated with its node, then opened and funded on chain)",
        requestBody: body({ peer: { type: "string" }, asset: { type: "string", example: "ETH@source" }, deposit: { type: "string", example: "5" }, challengePeriodSeconds: { type: "integer" } }, ["peer", "asset", "deposit"]),
        responses: { "201": json("the channel", channel), ...errors },
      },
    },
    "/channels/{id}": { get: { summary: "One channel", parameters: id, responses: { "200": json("the channel", channel), ...errors } } },
    "/channels/{id}/deposit": {
      post: { summary: "Deposit more (token units); refused on a closing channel", parameters: id, requestBody: body({ amount: { type: "string", example: "2.5" } }, ["amount"]), responses: { "200": json("the channel", channel), ...errors } },
    },
    "/channels/{id}/close": {
      post: { summary: "Close cooperatively (the swaps using it undone or completed first), or force close (with every channel a swap in flight ties to it)", parameters: id, requestBody: body({ force: { type: "boolean" } }, []), responses: { "200": json("the channel", channel), ...errors } },
    },
    "/channels/{id}/withdraw": {
      post: { summary: "Pull a payout the hub holds for us", parameters: id, responses: { "200": json("the channel", channel), ...errors } },
    },
    "/swaps": {
      get: { summary: "Every swap", responses: { "200": json("swaps", { type: "array", items: swap }), ...errors } },
      post: {
        summary: "Propose a swap to a peer",
        requestBody: body({ peer: { type: "string" }, give: { type: "string", example: "10 SRC@source" }, take: { type: "string", example: "0.5 ETH@target" }, source: { type: "string" }, target: { type: "string" } }, ["peer", "give", "take"]),
        responses: { "201": json("the swap", swap), ...errors },
      },
    },
    "/swaps/{id}": { get: { summary: "One swap", parameters: id, responses: { "200": json("the swap", swap), ...errors } } },
    "/refusals": { get: { summary: "Proposals this node refused, with the reason", responses: { "200": json("refusals", { type: "array" }), ...errors } } },
    "/events": { get: { summary: "Event stream: one JSON object per line (NDJSON)", responses: { "200": { description: "events", content: { "application/x-ndjson": {} } }, ...errors } } },
  },
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    schemas: {
      Error: { type: "object", properties: { error: { type: "string" } }, required: ["error"] },
      Channel: {
        type: "object",
        properties: {
          id: { type: "string" }, chain: { type: "string" }, peer: { type: "string" }, asset: { type: "string" },
          status: { enum: ["agreed", "open", "closing", "forceClosing", "disputed", "closed"] },
          balance: { type: "object" }, deposits: { type: "object" }, payouts: { type: "object" },
        },
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
} as const;
