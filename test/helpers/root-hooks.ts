/**
 * Mocha's root hooks, loaded by each test worker (`test.mocha.require` in hardhat.config.ts): whatever process a
 * test file started and did not stop (its suite's `after` failed or never ran) is stopped once the file has run.
 */
import { stopAllChildren } from "./processes.js";

export const mochaHooks = { afterAll: stopAllChildren };
