export * from "./core/types.js";
export * from "./core/eip712.js";
