import { expect } from "chai";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { z } from "zod";

import { Store } from "../../sdk/index.js";
import {
  address,
  ConfigError,
  describeValue,
  hex,
  loadWatchConfig,
  parseConfig,
  positiveInt,
  PrivateKeyError,
  privateKeyFromEnv,
  readJsonFile,
  WatchConfigSchema,
} from "../../sdk/node/index.js";
import { accountKey } from "../../scripts/lib/local.js";
import { PROJECT_ROOT, runHardhatProcess, type ProcessResult } from "../helpers/nodes.js";

const EXAMPLE = join(PROJECT_ROOT, "docs", "examples", "watch.json");
/** Words no output of this project uses, as a mnemonic (valid or not does not matter: it must never be echoed). */
const MNEMONIC = "zebra wolf violin tunnel squirrel rhythm quantum pyramid oyster nephew marble lizard";
const KEY = accountKey(3);
/** 63 of a real key's 64 digits: malformed, and still secret. */
const SHORT_KEY = KEY.slice(0, -1);

/** Hex slices of 8 digits of a key: none of them may appear in any output. */
const slices = (key: string) =>
  Array.from({ length: key.length - 9 }, (_, i) => key.slice(2 + i, 10 + i).toLowerCase());
const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

describe("watch configuration", function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "watch-config-"));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts the example of docs/examples/watch.json, and the docs point at it", function () {
    const config = parseConfig(WatchConfigSchema, "watch.json", readJsonFile(EXAMPLE));
    expect(config.chains).to.have.length(2);
    expect(config.importFrom).to.equal("alice.sqlite");
    // Loaded where its client store exists: relative paths are read from the config file's folder.
    copyFileSync(EXAMPLE, join(dir, "watch.json"));
    new Store(join(dir, "alice.sqlite")).close();
    const loaded = loadWatchConfig(join(dir, "watch.json"));
    expect(loaded.store).to.equal(join(dir, "tower.sqlite"));
    expect(loaded.importFrom).to.equal(join(dir, "alice.sqlite"));
    expect(loaded.chains[0]).to.deep.equal({
      rpcUrl: "http://127.0.0.1:8545",
      hub: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
      confirmations: 2,
      clockSkewSeconds: 30,
      claimWindowSeconds: 900,
      fees: { maxFeePerGasGwei: "500", bumpPercent: 12.5, bumpAfterSeconds: 24 },
    });
    for (const doc of ["README.md", "scripts/watch.ts"]) {
      expect(readFileSync(join(PROJECT_ROOT, doc), "utf8")).to.include("docs/examples/watch.json", doc);
    }
  });

  it("fills in the defaults and refuses unknown fields", function () {
    const minimal = {
      store: "t.sqlite",
      chains: [{ rpcUrl: "https://rpc.example.org", hub: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512" }],
    };
    const config = parseConfig(WatchConfigSchema, "w.json", minimal);
    expect(config).to.deep.include({ intervalSeconds: 5, once: false });
    expect(config.chains[0]).to.deep.include({ hub: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", confirmations: 2 });
    expect(() => parseConfig(WatchConfigSchema, "w.json", { ...minimal, interval: 5 }))
      .to.throw(ConfigError)
      .with.property("message", "w.json: interval: unknown field");
  });

  it("names every problem with its field, and never repeats a value longer than an address", function () {
    const data = {
      importFrom: 7,
      intervalSeconds: 0,
      chains: [
        { rpcUrl: "ftp://x", hub: KEY, confirmations: 1.5 },
        { rpcUrl: MNEMONIC, hub: "0x12" },
      ],
    };
    let error: unknown;
    try {
      parseConfig(WatchConfigSchema, "watch.json", data);
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).file).to.equal("watch.json");
    expect((error as ConfigError).message.split("\n")).to.have.members([
      "watch.json: store: missing",
      "watch.json: importFrom: expected a file path, got 7",
      "watch.json: intervalSeconds: expected a whole number, from 1 to 86400, got 0",
      'watch.json: chains[0].rpcUrl: expected an http(s) URL, got "ftp://x"',
      "watch.json: chains[0].hub: expected an address, got a string of 66 characters (not shown)",
      "watch.json: chains[0].confirmations: expected a whole number, 0 or more, got 1.5",
      `watch.json: chains[1].rpcUrl: expected an http(s) URL, got a string of ${MNEMONIC.length} characters (not shown)`,
      'watch.json: chains[1].hub: expected an address, got "0x12"',
    ]);
    expect(describeValue("x".repeat(43))).to.equal("a string of 43 characters (not shown)");
  });

  it("field types for the node's other configs: hex (of a length), positive whole numbers, addresses", function () {
    const schema = z.strictObject({ data: hex(), word: hex(4), n: positiveInt(10), who: address() });
    expect(
      parseConfig(schema, "c.json", {
        data: "0xAB",
        word: "0x0102030A",
        n: 10,
        who: "0xE7F1725E7734CE288F8367E1BB143E90BB3F0512",
      }),
    ).to.deep.equal({ data: "0xab", word: "0x0102030a", n: 10, who: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512" });
    expect(() =>
      parseConfig(schema, "c.json", {
        data: "0xabc",
        word: "0x01",
        n: 11,
        who: "0xE7f1725E7734CE288F8367e1Bb143E90bb3F0512",
      }),
    )
      .to.throw(ConfigError)
      .with.property("message")
      .that.equals(
        [
          'c.json: data: expected hex data (0x and hex digits), got "0xabc"',
          'c.json: word: expected 4 bytes of hex (0x and 8 hex digits), got "0x01"',
          "c.json: n: expected a whole number, from 1 to 10, got 11",
          "c.json: who: the address 0xE7f1725E7734CE288F8367e1Bb143E90bb3F0512 has a wrong checksum (mistyped?)",
        ].join("\n"),
      );
  });

  it("reads a private key from a named variable, and says what is wrong with anything else without repeating it", function () {
    expect(privateKeyFromEnv("K", { K: ` ${KEY.toUpperCase().replace("0X", "0x")}\n` })).to.equal(KEY);
    expect(privateKeyFromEnv("K", { K: KEY.slice(2) })).to.equal(KEY);
    const cases: [string | undefined, string][] = [
      [undefined, "K: not set"],
      [MNEMONIC, "K: looks like a mnemonic (12 words), not a private key"],
      [SHORT_KEY, "K: has 63 hex digits, not 64"],
      ["0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", "K: looks like an address, not a private key"],
      [`${KEY.slice(0, -1)}g`, "K: is not hexadecimal"],
      [`0x${"0".repeat(64)}`, "K: is out of range for a secp256k1 private key"],
      [`0x${"f".repeat(64)}`, "K: is out of range for a secp256k1 private key"],
    ];
    for (const [value, start] of cases) {
      let error: unknown;
      try {
        privateKeyFromEnv("K", { K: value });
      } catch (e) {
        error = e;
      }
      expect(error, String(value)).to.be.instanceOf(PrivateKeyError).with.property("variable", "K");
      const message = (error as Error).message;
      expect(message.startsWith(`${start}; give the account's private key`), message).to.equal(true);
      for (const word of MNEMONIC.split(" ")) expect(message).not.to.include(word);
      for (const slice of slices(KEY)) expect(message.toLowerCase()).not.to.include(slice);
    }
  });
});

describe("watch command: configuration and key errors, in a child process", function () {
  let dir: string;
  const results = new Map<string, ProcessResult>();
  const path = (name: string) => join(dir, name);
  const valid = () => ({
    store: "tower.sqlite",
    once: true,
    chains: [{ rpcUrl: "http://127.0.0.1:1", hub: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", confirmations: 0 }],
  });

  /** Each case in its own `hardhat run` (in parallel: each one takes a few seconds to start). */
  before(async function () {
    dir = mkdtempSync(join(tmpdir(), "watch-cmd-config-"));
    writeFileSync(path("bad-json.json"), '{\n  "store": "tower.sqlite",\n  "once": yes\n}\n');
    writeFileSync(
      path("bad-fields.json"),
      JSON.stringify({
        ...valid(),
        store: undefined,
        once: "yes",
        chains: [{ rpcUrl: "http://127.0.0.1:1", hub: "0x12" }],
      }),
    );
    writeFileSync(path("valid.json"), JSON.stringify(valid()));
    writeFileSync(
      path("api-key.json"),
      JSON.stringify({
        ...valid(),
        chains: [{ ...valid().chains[0], rpcUrl: "http://127.0.0.1:1/v3/apikey0123456789" }],
      }),
    );
    const cases: Record<string, Record<string, string | undefined>> = {
      badJson: { WATCH_CONFIG: path("bad-json.json"), WATCHTOWER_PRIVATE_KEY: KEY },
      badFields: { WATCH_CONFIG: path("bad-fields.json"), WATCHTOWER_PRIVATE_KEY: KEY },
      mnemonic: { WATCH_CONFIG: path("valid.json"), WATCHTOWER_PRIVATE_KEY: MNEMONIC },
      shortKey: { WATCH_CONFIG: path("valid.json"), WATCHTOWER_PRIVATE_KEY: SHORT_KEY },
      noConfig: { WATCH_CONFIG: undefined, WATCHTOWER_PRIVATE_KEY: KEY },
      noChain: { WATCH_CONFIG: path("api-key.json"), WATCHTOWER_PRIVATE_KEY: KEY },
    };
    // Node's note that SQLite is experimental is not ours: without it, stderr holds exactly what the command says.
    const quiet = { NODE_OPTIONS: "--disable-warning=ExperimentalWarning" };
    await Promise.all(
      Object.entries(cases).map(async ([name, env]) => {
        results.set(name, await runHardhatProcess(["run", "--no-compile", "scripts/watch.ts"], { ...quiet, ...env }));
      }),
    );
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  /** The case's result, checked to be an error report and nothing else: `error:` lines only, no stack, no bug banner. */
  function report(name: string, code: number): string[] {
    const { code: actual, stdout, stderr } = results.get(name)!;
    const all = `${stdout}\n${stderr}`;
    expect(actual, all).to.equal(code);
    expect(all).not.to.match(/^\s+at /m, "no stack trace");
    expect(all).not.to.match(/report-bug|unexpected error/i, "no Hardhat bug banner");
    for (const line of lines(stderr)) expect(line, all).to.match(/^error: /);
    expect(lines(stdout), all).to.deep.equal([]);
    return lines(stderr);
  }

  it("malformed JSON: one line naming the file and the place, exit code 2", function () {
    expect(report("badJson", 2)).to.deep.equal([
      `error: ${path("bad-json.json")}: not valid JSON: unexpected character (line 3, column 11)`,
    ]);
  });

  it("missing field and wrong types: one line per problem naming the file and the field, exit code 2", function () {
    expect(report("badFields", 2)).to.have.members([
      `error: ${path("bad-fields.json")}: store: missing`,
      `error: ${path("bad-fields.json")}: once: expected true or false, got "yes"`,
      `error: ${path("bad-fields.json")}: chains[0].hub: expected an address, got "0x12"`,
    ]);
  });

  it("a mnemonic as the key: says so, and prints none of its words", function () {
    const out = report("mnemonic", 2);
    expect(out).to.deep.equal([
      "error: WATCHTOWER_PRIVATE_KEY: looks like a mnemonic (12 words), not a private key; give the account's private key (0x and 64 hex digits)",
    ]);
    const { stdout, stderr } = results.get("mnemonic")!;
    for (const word of MNEMONIC.split(" ")) expect(`${stdout}${stderr}`).not.to.include(word);
  });

  it("a malformed key: names the variable, prints no part of it", function () {
    expect(report("shortKey", 2)).to.deep.equal([
      "error: WATCHTOWER_PRIVATE_KEY: has 63 hex digits, not 64; give the account's private key (0x and 64 hex digits)",
    ]);
    const { stdout, stderr } = results.get("shortKey")!;
    for (const slice of slices(KEY)) expect(`${stdout}${stderr}`.toLowerCase()).not.to.include(slice);
  });

  it("no config named: says which variable to set, exit code 2", function () {
    expect(report("noConfig", 2)).to.deep.equal([
      "error: WATCH_CONFIG: not set; give the path of the watchtower's JSON config (example: docs/examples/watch.json)",
    ]);
  });

  it("a chain that does not answer: a run-time failure (exit code 1), its URL shown without path or query", function () {
    const out = report("noChain", 1);
    expect(out).to.have.length(1);
    expect(out[0]).to.match(/^error: chains\[0\]: no answer from http:\/\/127\.0\.0\.1:1: /);
    expect(out[0]).not.to.include("apikey");
  });
});
