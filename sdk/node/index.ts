export * from "./errors.js";
export * from "./config.js";
export * from "./keys.js";
export * from "./main.js";
export * from "./watch-config.js";
export * from "./watch.js";
