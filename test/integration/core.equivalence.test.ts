import { expect } from "chai";
import fc from "fast-check";
import { getAddress, hexlify, keccak256, recoverAddress, SigningKey, toBeHex, TypedDataEncoder } from "ethers";

import {
  cryptoBackend,
  encode,
  hashBackend,
  hubDomain,
  keccak,
  locksHash,
  recoverSigner,
  signDigest,
  stateDigest,
  STATE_TYPES,
  SWAP_DOMAIN,
  SWAP_TYPES,
  termsDigest,
  type ChannelState,
  type Hex,
  type Lock,
} from "../../sdk/index.js";

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hexlify(b) as Hex);
const uint = (bits: number) => fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n });
const lock: fc.Arbitrary<Lock> = fc.record({
  sender: fc.constantFrom<0 | 1>(0, 1),
  amount: uint(128),
  hashlock: bytes32,
  expiry: uint(64),
});
const state: fc.Arbitrary<ChannelState> = fc.record({
  channelId: bytes32,
  seq: uint(64),
  deposits: fc.tuple(uint(128), uint(128)),
  balances: fc.tuple(uint(128), uint(128)),
  locks: fc.array(lock, { maxLength: 6 }),
  isFinal: fc.boolean(),
});
const address = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => getAddress(hexlify(b)));

import { putWord } from "../../sdk/core/words.js";

describe("core: the fast paths agree with ethers' generic ones", function () {
  it("writes every 256-bit value as the same 32-byte word as ethers, whatever its width", function () {
    const width = fc.integer({ min: 0, max: 256 });
    fc.assert(
      fc.property(width.chain((bits) => uint(bits === 0 ? 1 : bits)), fc.integer({ min: 0, max: 32 }), (value, offset) => {
        const out = new Uint8Array(offset + 32);
        putWord(out, offset, value);
        expect(hexlify(out.subarray(offset))).to.equal(toBeHex(value, 32));
        expect(out.subarray(0, offset).every((b) => b === 0)).to.equal(true);
      }),
      { numRuns: 2000 },
    );
    expect(() => putWord(new Uint8Array(32), 0, -1n)).to.throw(RangeError, "negative");
  });

  it("hashes states and lock lists exactly as the generic EIP-712 encoder does", function () {
    fc.assert(
      fc.property(state, fc.bigInt({ min: 1n, max: 1n << 64n }), address, (s, chainId, hub) => {
        const domain = hubDomain(chainId, hub);
        expect(stateDigest(domain, s)).to.equal(TypedDataEncoder.hash(domain, STATE_TYPES, s));
        const generic = TypedDataEncoder.from(STATE_TYPES).encodeData("Lock[]", s.locks);
        expect(locksHash(s.locks)).to.equal(generic);
      }),
      { numRuns: 300 },
    );
  });

  it("hashes swap terms exactly as the generic EIP-712 encoder does", function () {
    const ref = fc.record({ chainId: uint(256), hub: address, channelId: bytes32 });
    const terms = fc.record({
      swapId: bytes32,
      source: ref,
      target: ref,
      initiator: address,
      responder: address,
      give: uint(128),
      take: uint(128),
      hashlock: bytes32,
      sourceExpiry: uint(64),
      targetExpiry: uint(64),
    });
    fc.assert(
      fc.property(terms, (t) => {
        expect(termsDigest(t)).to.equal(TypedDataEncoder.hash(SWAP_DOMAIN, SWAP_TYPES, t));
      }),
      { numRuns: 300 },
    );
  });

  it(`signs and recovers exactly as ethers does (backend: ${cryptoBackend})`, function () {
    fc.assert(
      fc.property(bytes32, bytes32, (seed, digest) => {
        fc.pre(BigInt(seed) > 0n && BigInt(seed) < 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n);
        const key = new SigningKey(seed);
        const sig = signDigest(key, digest);
        expect(sig).to.equal(key.sign(digest).serialized, "same deterministic low-s signature");
        expect(recoverSigner(digest, sig)).to.equal(recoverAddress(digest, sig).toLowerCase());
      }),
      { numRuns: 200 },
    );
  });

  it(`hashes any bytes exactly as ethers' keccak256 does (backend: ${hashBackend})`, function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (data) => {
        expect(hexlify(keccak(data))).to.equal(keccak256(data));
        expect(hexlify(keccak(data))).to.equal(keccak256(data), "the reused sponge starts clean");
      }),
      { numRuns: 300 },
    );
  });

  it("encodes any JSON-like value with bigints exactly as JSON.stringify of its key-sorted copy", function () {
    const sortedCopy = (v: unknown): unknown => {
      if (typeof v === "bigint") return { $n: v.toString() };
      if (Array.isArray(v)) return v.map(sortedCopy);
      if (v === null || typeof v !== "object") return v;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined) out[k] = sortedCopy(x);
      }
      return out;
    };
    const value = fc.anything({
      // Integer-like keys are left out: JS objects enumerate them first, whatever order they were added in.
      key: fc.string().filter((k) => k !== "__proto__" && !/^(0|[1-9][0-9]*)$/.test(k)),
      withBigInt: true,
      withNullPrototype: false,
      maxDepth: 4,
    });
    fc.assert(
      fc.property(value, (v) => {
        expect(encode(v)).to.equal(JSON.stringify(sortedCopy(v)) ?? "null");
      }),
      { numRuns: 500 },
    );
    expect(encode({ b: 1, "10": 2, "9": 3, a: 4 })).to.equal('{"10":2,"9":3,"a":4,"b":1}', "keys sort as strings");
  });
});
