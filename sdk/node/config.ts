/**
 * Reading configuration files and environment variables: JSON checked against a zod schema, every problem reported
 * as one line naming the file and the field. Values longer than an address are never repeated in a message, so a
 * private key (64 hex digits) or a mnemonic (12 or more words) put in the wrong place cannot reach the output.
 */
import { readFileSync } from "node:fs";
import { getAddress } from "ethers";
import { z } from "zod";

import type { Address, Hex } from "../core/types.js";
import { ConfigError, EnvVarError, type ConfigProblem } from "./errors.js";

/** The longest value a message repeats: an address with its 0x. */
const SHOWN_MAX = 42;

/** A value as a message may show it: short strings and numbers quoted, anything else only by its kind and size. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") {
    return value.length <= SHOWN_MAX ? JSON.stringify(value) : `a string of ${value.length} characters (not shown)`;
  }
  if (typeof value === "number" || typeof value === "boolean") {
    const text = String(value);
    return text.length <= SHOWN_MAX ? text : "a number too long to show";
  }
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** A field's path as written in JavaScript: `chains[0].hub`; "" for the whole document. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** The message of a value that is not what a field takes: "missing" when there is none. */
export function expected(what: string): (issue: { input?: unknown }) => string {
  return (issue) => (issue.input === undefined ? "missing" : `expected ${what}, got ${describeValue(issue.input)}`);
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "an object",
  array: "a list",
  null: "null",
};

/** Messages for the issues a field type of this module does not word itself (plain booleans, lists, objects). */
export function defaultMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return expected(TYPE_NAMES[issue.expected] ?? issue.expected)(issue);
    case "unrecognized_keys":
      return "unknown field";
    case "too_small":
      return issue.origin === "array"
        ? `expected at least ${issue.minimum} ${issue.minimum === 1 ? "entry" : "entries"}, got ${describeValue(
            issue.input,
          )}`
        : `expected at least ${issue.minimum}, got ${describeValue(issue.input)}`;
    case "too_big":
      return `expected at most ${issue.maximum}, got ${describeValue(issue.input)}`;
    default:
      return `invalid value ${describeValue(issue.input)}`;
  }
}

/** One problem per issue, and one per unknown field (zod reports all of an object's unknown keys as one issue). */
export function problemsOf(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((k) => ({ field: fieldPath([...issue.path, k]), message: issue.message }))
      : [{ field: fieldPath(issue.path), message: issue.message }],
  );
}

/** Checks parsed JSON against a schema: its typed, defaulted value, or a ConfigError listing every problem. */
export function parseConfig<S extends z.ZodType>(schema: S, file: string, data: unknown): z.output<S> {
  const result = schema.safeParse(data, { error: defaultMessage });
  if (!result.success) throw new ConfigError(file, problemsOf(result.error.issues));
  return result.data;
}

/** Reads a JSON file: a ConfigError if it cannot be read or is not JSON (with the line and column, never the text). */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(file, [{ field: "", message: `cannot read it: ${fileProblem(error)}` }]);
  }
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ConfigError(file, [{ field: "", message: `not valid JSON: ${jsonProblem(text, error)}` }]);
  }
}

/** A JSON configuration file checked against a schema. */
export function loadConfigFile<S extends z.ZodType>(schema: S, file: string): z.output<S> {
  return parseConfig(schema, file, readJsonFile(file));
}

/** What went wrong opening a file, in words (never the system's message, which repeats the path). */
export function fileProblem(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a folder";
  return typeof code === "string" ? code : "unknown error";
}

/**
 * Where a JSON text goes wrong. V8's messages either give the position ("... in JSON at position 12 (line 2 column
 * 3)") or quote the text around the error ('Unexpected token 'a', "{"store": ab"... is not valid JSON'), which could
 * repeat a secret: only the first kind is used as is; for the second, the position is found from prefixes of the text.
 */
function jsonProblem(text: string, error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const positioned = /^(.*) in JSON at position (\d+)/.exec(message);
  if (positioned !== null) return `${positioned[1]} (${lineAndColumn(text, Number(positioned[2]))})`;
  if (message.startsWith("Unexpected end of JSON input")) return "the file ends too early";
  // The shortest prefix that fails other than by ending early ends with the unexpected character.
  const failsInside = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n));
      return false;
    } catch (e) {
      return !(
        e instanceof Error &&
        (e.message.startsWith("Unexpected end") || / at position (\d+)/.exec(e.message)?.[1] === String(n))
      );
    }
  };
  let [low, high] = [0, text.length];
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    if (failsInside(mid)) high = mid;
    else low = mid + 1;
  }
  return `unexpected character (${lineAndColumn(text, Math.max(0, low - 1))})`;
}

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position).split("\n");
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

/**
 * `record[key]` if `key` is the record's own: a name a person gives (a peer, a chain, an asset, a variable) is looked
 * up in a map read from a file or the environment, and `constructor`, `toString` or `__proto__` must be as unknown
 * as any other name, not the object's inherited members.
 */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** The value of a required environment variable; an EnvVarError saying what it should hold if it is unset or empty. */
export function requiredEnv(
  variable: string,
  what: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const value = own(env, variable);
  if (value === undefined || value.trim() === "") throw new EnvVarError(variable, `not set; give ${what}`);
  return value;
}

// ------------------------------------------------------------------ field types

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** An address (0x and 40 hex digits; a mixed-case one must have a valid checksum), given back checksummed. */
export function address() {
  const message = expected("an address");
  return z.string({ error: message }).transform((value, ctx): Address => {
    if (!ADDRESS.test(value)) {
      ctx.issues.push({ code: "custom", input: value, message: message({ input: value }) });
      return z.NEVER;
    }
    const mixedCase =
      value.slice(2) !== value.slice(2).toLowerCase() && value.slice(2) !== value.slice(2).toUpperCase();
    if (mixedCase && getAddress(value.toLowerCase()) !== value) {
      ctx.issues.push({
        code: "custom",
        input: value,
        message: `the address ${value} has a wrong checksum (mistyped?)`,
      });
      return z.NEVER;
    }
    return getAddress(value.toLowerCase());
  });
}

/** Hex data (0x and an even number of hex digits, `bytes` bytes of it if given), given back in lower case. */
export function hex(bytes?: number) {
  const what =
    bytes === undefined ? "hex data (0x and hex digits)" : `${bytes} bytes of hex (0x and ${bytes * 2} hex digits)`;
  const message = expected(what);
  const pattern = bytes === undefined ? /^0x([0-9a-fA-F]{2})*$/ : new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`);
  return z.string({ error: message }).transform((value, ctx): Hex => {
    if (pattern.test(value)) return value.toLowerCase() as Hex;
    ctx.issues.push({ code: "custom", input: value, message: message({ input: value }) });
    return z.NEVER;
  });
}

/** A whole number from `min` (default 0) to `max` (default the largest safe integer). */
export function wholeNumber(min = 0, max = Number.MAX_SAFE_INTEGER) {
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
  const message = expected(`a whole number, ${range}`);
  return z.number({ error: message }).refine((n) => Number.isInteger(n) && n >= min && n <= max, { error: message });
}

/** A whole number from 1 to `max`. */
export function positiveInt(max?: number) {
  return wholeNumber(1, max);
}

/** An http:// or https:// URL. */
export function httpUrl() {
  const message = expected("an http(s) URL");
  return z.string({ error: message }).refine(
    (value) => {
      try {
        const { protocol } = new URL(value);
        return protocol === "http:" || protocol === "https:";
      } catch {
        return false;
      }
    },
    { error: message },
  );
}

/** A file path (not empty). */
export function filePath() {
  const message = expected("a file path");
  return z.string({ error: message }).min(1, { error: message });
}
