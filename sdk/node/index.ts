export * from "./errors.js";
export * from "./config.js";
export * from "./keys.js";
export * from "./main.js";
