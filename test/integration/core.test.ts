import { expect } from "chai";
import { hexlify, randomBytes, Signature, SigningKey, Wallet } from "ethers";

import {
  addLock,
  checkClockAgreement,
  checkTermsShape,
  checkSwapTiming,
  decode,
  decodeEnvelope,
  DeltaTable,
  encode,
  finalize,
  hashlockOf,
  hubDomain,
  InsufficientBalanceError,
  InvalidMessageError,
  InvalidNumberError,
  InvalidSignatureError,
  InvalidStateError,
  LockNotFoundError,
  MAX_LOCKS,
  openingState,
  recoverSigner,
  receivedSigner,
  requiredDelta,
  resolveLock,
  seal,
  signDigest,
  stateDigest,
  checkState,
  DEFAULT_TIMING_BOUNDS,
  TimingBoundError,
  TimingRuleError,
  transfer,
  unseal,
  withDeposits,
  type ChainTiming,
  type ChannelState,
  type Envelope,
  type Hex,
  type Lock,
  type SwapBody,
} from "../../sdk/index.js";
import { coSign, deploySuite, locksArg, nativeParams, paramsArg, source } from "../helpers/chains.js";
import { channelIdOf } from "../../sdk/index.js";

const ID = ("0x" + "11".repeat(32)) as Hex;
const secret = (): Hex => hexlify(randomBytes(32)) as Hex;
const lock = (sender: 0 | 1, amount: bigint, expiry = 10_000n): Lock => ({
  sender,
  amount,
  hashlock: hashlockOf(secret()),
  expiry,
});
const total = (s: ChannelState) => s.balances[0] + s.balances[1] + s.locks.reduce((a, l) => a + l.amount, 0n);

describe("core: state transitions", function () {
  const opening = openingState(ID, [100n, 50n]);

  it("adds a lock from the sender's free balance and bumps the sequence number", function () {
    const l = lock(0, 30n);
    const s = addLock(opening, l);
    expect(s.seq).to.equal(1n);
    expect(s.balances).to.deep.equal([70n, 50n]);
    expect(s.locks).to.deep.equal([l]);
    expect(total(s)).to.equal(150n);
  });

  it("pays a resolved lock to its receiver or refunds it to its sender", function () {
    const l = lock(1, 20n);
    const locked = addLock(opening, l);
    expect(resolveLock(locked, l.hashlock, "paid").balances).to.deep.equal([120n, 30n]);
    expect(resolveLock(locked, l.hashlock, "refunded").balances).to.deep.equal([100n, 50n]);
    expect(resolveLock(locked, l.hashlock, "paid").locks).to.have.length(0);
    expect(() => resolveLock(locked, hashlockOf(secret()), "paid")).to.throw(LockNotFoundError);
  });

  it("refuses to lock or send more than the free balance", function () {
    expect(() => addLock(opening, lock(1, 51n))).to.throw(InsufficientBalanceError, "has 50 free");
    expect(() => transfer(opening, 0, 101n)).to.throw(InsufficientBalanceError);
    expect(() => transfer(opening, 0, 0n)).to.throw(InvalidStateError, "positive");
  });

  it("credits later on-chain deposits to the participant they were made for", function () {
    const s = withDeposits(transfer(opening, 0, 10n), [100n, 80n]);
    expect(s.balances).to.deep.equal([90n, 90n]);
    expect(() => withDeposits(s, [99n, 80n])).to.throw(InvalidStateError, "never decrease");
  });

  it("never builds a state with more locks than the hub settles in one call", function () {
    let s = openingState(ID, [10_000n, 0n]);
    for (let i = 0; i < MAX_LOCKS; i++) s = addLock(s, lock(0, 1n));
    expect(s.locks).to.have.length(MAX_LOCKS);
    expect(() => addLock(s, lock(0, 1n))).to.throw(InvalidStateError, "at most 256");
  });

  it("finalizes only a state without locks, and nothing follows a final state", function () {
    expect(() => finalize(addLock(opening, lock(0, 1n)))).to.throw(InvalidStateError, "resolve every lock");
    const f = finalize(opening);
    expect(f.isFinal).to.equal(true);
    expect(() => transfer(f, 0, 1n)).to.throw(InvalidStateError, "final");
  });

  it("rejects duplicate hashlocks in one state", function () {
    const l = lock(0, 1n);
    expect(() => addLock(addLock(opening, l), { ...l, amount: 2n })).to.throw(InvalidStateError, "two locks");
  });
});

describe("core: timing rules", function () {
  const chain = (chainId: bigint, skew: bigint): ChainTiming => ({
    chainId,
    finalitySeconds: 60n,
    inclusionSeconds: 120n,
    clockSkewSeconds: skew,
  });

  it("derives delta from both chains' finality, inclusion and clock skew", function () {
    expect(requiredDelta(chain(1n, 15n), chain(2n, 3600n))).to.equal(60n + 120n + 15n + 60n + 120n + 3600n);
    const table = new DeltaTable(new Map([[1n, chain(1n, 15n)], [2n, chain(2n, 15n)]])).set(1n, 2n, 999n);
    expect(table.delta(1n, 2n)).to.equal(999n);
    expect(table.delta(2n, 1n)).to.equal(390n);
    expect(() => table.delta(1n, 3n)).to.throw(TimingRuleError, "no timing known");
  });

  it("refuses to rely on two chain clocks further apart than their skew bounds", function () {
    const table = new DeltaTable(new Map([[1n, chain(1n, 15n)], [2n, chain(2n, 3600n)]]));
    expect(table.skewBound(1n, 2n)).to.equal(3615n);
    expect(table.skewBound(1n, 9n)).to.equal(undefined);
    expect(() => checkClockAgreement({ sourceNow: 10_000n, targetNow: 6_385n, bound: 3615n })).to.not.throw();
    expect(() => checkClockAgreement({ sourceNow: 10_000n, targetNow: 6_384n, bound: 3615n })).to.throw(TimingRuleError, "3616s apart");
  });

  it("refuses tT >= tS, tS - tT < delta, and a target lock too close to now", function () {
    const ok = { sourceExpiry: 10_000n, targetExpiry: 6_000n, now: 1_000n, delta: 4_000n, minTargetWindow: 600n };
    expect(() => checkSwapTiming(ok)).to.not.throw();
    expect(() => checkSwapTiming({ ...ok, targetExpiry: 10_000n })).to.throw(TimingRuleError, "before the source");
    expect(() => checkSwapTiming({ ...ok, targetExpiry: 6_001n })).to.throw(TimingRuleError, "at least 4000s");
    expect(() => checkSwapTiming({ ...ok, now: 5_500n })).to.throw(TimingRuleError, "needs at least 600s");
  });

  it("bounds lock lifetimes above as in the worked example of docs/TIMING.md", function () {
    const c = (chainId: bigint) => ({ chainId, finalitySeconds: 60n, inclusionSeconds: 300n, clockSkewSeconds: 60n });
    const table = new DeltaTable(new Map([[1n, c(1n)], [2n, c(2n)]]));
    const delta = table.delta(1n, 2n);
    expect(delta).to.equal(840n);
    const now = 1_000_000n;
    const check = (targetExpiry: bigint, sourceExpiry: bigint) => () =>
      checkSwapTiming({ sourceExpiry, targetExpiry, now, delta, minTargetWindow: 600n, bounds: table.bounds(1n, 2n) });
    const bound = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return e instanceof TimingBoundError ? e.bound : e instanceof TimingRuleError ? "lower" : "other";
      }
      return "accepted";
    };
    expect(bound(check(1_001_800n, 1_002_640n))).to.equal("accepted");
    expect(bound(check(1_014_400n, 1_018_840n))).to.equal("accepted");
    expect(bound(check(1_014_401n, 1_018_841n))).to.equal("maxTargetLockSeconds");
    expect(bound(check(1_003_600n, 1_008_041n))).to.equal("slackSeconds");
    const year = 365n * 24n * 3600n;
    expect(bound(check(now + year, now + 100n * year))).to.equal("maxTargetLockSeconds");
    expect(bound(check(1_003_600n, 1_004_000n))).to.equal("lower");
    // The horizon adds the pair's skew bound: S's clock may lag T's, on which the bounds were checked.
    expect(table.maxLockSeconds(1n)).to.equal(DEFAULT_TIMING_BOUNDS.maxTargetLockSeconds + 840n + DEFAULT_TIMING_BOUNDS.slackSeconds + 120n);
    // A pair with bounds of its own.
    table.setBounds(1n, 2n, { maxTargetLockSeconds: 600n, slackSeconds: 0n });
    expect(bound(check(1_001_800n, 1_002_640n))).to.equal("maxTargetLockSeconds");
  });

  it("refuses a state whose lock expires after the lock horizon", function () {
    const state = addLock(openingState(`0x${"11".repeat(32)}`, [10n, 0n]), { sender: 0, amount: 1n, hashlock: `0x${"22".repeat(32)}`, expiry: 5_000n });
    expect(() => checkState(state, 5_000n)).to.not.throw();
    expect(() => checkState(state, 4_999n)).to.throw(TimingBoundError, "after 4999");
  });
});

describe("core: signatures and messages", function () {
  const key = new SigningKey(hexlify(randomBytes(32)));
  const address = new Wallet(key.privateKey).address;
  /** A message body of the protocol: the responder's answer refusing one proposal, with its reason. */
  const refusal = (swapId: Hex, reason: string): SwapBody => ({ step: "acceptances", items: [{ swapId, refusal: reason }] });

  it("signs canonical low-s signatures and refuses malleable or truncated ones", function () {
    const digest = hexlify(randomBytes(32)) as Hex;
    const sig = signDigest(key, digest);
    expect(recoverSigner(digest, sig)).to.equal(address.toLowerCase());
    const parsed = Signature.from(sig);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const highS = "0x" + parsed.r.slice(2) + (n - BigInt(parsed.s)).toString(16).padStart(64, "0") + (parsed.v === 27 ? "1c" : "1b");
    expect(recoverSigner(digest, highS)).to.equal(undefined);
    expect(recoverSigner(digest, sig.slice(0, -2))).to.equal(undefined);
  });

  it("round-trips protocol values through the canonical encoding, whatever the key order", function () {
    const v = { b: 2n ** 200n, a: [1n, { z: "x", y: -3n }] };
    expect(decode<typeof v>(encode(v))).to.deep.equal(v);
    expect(encode({ a: 1, b: 2 })).to.equal(encode({ b: 2, a: 1 }));
  });

  it("refuses swap terms whose ids, hashlock or addresses are not well-formed hex", function () {
    const ref = { chainId: 1n, hub: Wallet.createRandom().address, channelId: hexlify(randomBytes(32)) as Hex };
    const terms = {
      swapId: hexlify(randomBytes(32)) as Hex,
      source: ref,
      target: { ...ref, chainId: 2n },
      initiator: Wallet.createRandom().address,
      responder: Wallet.createRandom().address,
      give: 1n,
      take: 2n,
      hashlock: hashlockOf(hexlify(randomBytes(32)) as Hex),
      sourceExpiry: 2000n,
      targetExpiry: 1000n,
    };
    expect(() => checkTermsShape(terms)).to.not.throw();
    // Hex with a bad character would be read as bytes only up to it: a different hashlock than the one signed.
    const badHashlock = `${terms.hashlock.slice(0, 40)}zz${terms.hashlock.slice(42)}` as Hex;
    expect(() => checkTermsShape({ ...terms, hashlock: badHashlock })).to.throw(InvalidMessageError, "hashlock");
    expect(() => checkTermsShape({ ...terms, responder: "0x1234" })).to.throw(InvalidMessageError, "responder");
    expect(() => checkTermsShape({ ...terms, give: 5 as unknown as bigint })).to.throw(InvalidMessageError, "give");
  });

  it("opens a sealed message only from its signer and only untampered", function () {
    const swapId = hexlify(randomBytes(32)) as Hex;
    const env = seal((d) => signDigest(key, d), address, swapId, refusal(swapId, "changed my mind"));
    expect(unseal(env, address)).to.deep.equal(refusal(swapId, "changed my mind"));
    expect(() => unseal(env, Wallet.createRandom().address)).to.throw(InvalidMessageError, "expected");
    const tampered = { ...env, body: refusal(swapId, "other") };
    expect(() => unseal(tampered, address)).to.throw(InvalidSignatureError);
  });

  /** Runs `fn` with the global BigInt wrapped to count its calls (bigint literals and arithmetic never call it). */
  const countingBigInt = (fn: () => unknown): { calls: number; error: unknown } => {
    const real = globalThis.BigInt;
    let calls = 0;
    globalThis.BigInt = new Proxy(real, {
      apply: (target, self, args: [string]) => {
        calls++;
        return Reflect.apply(target, self, args);
      },
    });
    try {
      fn();
      return { calls, error: undefined };
    } catch (error) {
      return { calls, error };
    } finally {
      globalThis.BigInt = real;
    }
  };

  it("refuses a number longer than 2^256 needs before BigInt reads it, with InvalidNumberError", function () {
    const millionDigits = `{"body":{"message":{"kind":"ack","seq":{"$n":"${"9".repeat(1_000_000)}"},"signature":"0x"},"step":"batch"},"from":"${address}","signature":"0x","swapId":"${ID}"}`;
    const started = performance.now();
    const { error, calls } = countingBigInt(() => decode(millionDigits));
    const ms = performance.now() - started; // measured, not asserted (no test asserts a time)
    expect(error, `decoded in ${ms.toFixed(1)} ms`).to.be.instanceOf(InvalidNumberError);
    expect((error as Error).message).to.match(/1000000 digits; protocol numbers have at most 78/);
    expect(calls, "BigInt calls").to.equal(0);
    expect(() => decodeEnvelope(millionDigits)).to.throw(InvalidNumberError);
    // 79 digits, and a sign on top of 78: refused on their length too.
    for (const text of ["1".repeat(79), `-${"1".repeat(79)}`]) {
      const r = countingBigInt(() => decode(`{"$n":"${text}"}`));
      expect(r.error, text).to.be.instanceOf(InvalidNumberError);
      expect(r.calls).to.equal(0);
    }
  });

  it("round-trips every protocol number up to 2^256 - 1 and down to -(2^256 - 1), and refuses the rest", function () {
    const max = 2n ** 256n - 1n;
    const values = [0n, 1n, -1n, 9n, 10n, 2n ** 64n, 2n ** 128n - 1n, 2n ** 255n, -(2n ** 255n), 10n ** 77n, max - 1n, max, -max];
    for (let bits = 1n; bits <= 256n; bits++) values.push(2n ** bits - 1n, -(2n ** bits - 1n)); // every length of digits
    for (const v of values) {
      expect(decode<bigint>(encode(v)), v.toString()).to.equal(v);
      expect(decode<{ n: bigint[] }>(encode({ n: [v] })).n[0]).to.equal(v);
    }
    expect(max.toString()).to.have.length(78);
    for (const text of [(max + 1n).toString(), (-(max + 1n)).toString(), "9".repeat(78)]) {
      expect(() => decode(`{"$n":"${text}"}`), text).to.throw(InvalidNumberError, "2^256");
    }
    // Only the canonical decimal text bigint.toString() writes: what a signer hashed is what the receiver reads.
    for (const text of ["", "-0", "01", "+1", " 1", "1 ", "1e3", "0x10", "1.0", "--1", "١"]) {
      expect(() => decode(`{"$n":${JSON.stringify(text)}}`), JSON.stringify(text)).to.throw(InvalidNumberError);
    }
    for (const v of ["5", "null", "[]", "{}"]) expect(() => decode(`{"$n":${v}}`), v).to.throw(InvalidNumberError, "not a decimal string");
    expect(decode(`{"$n":"5","other":1}`)).to.deep.equal({ $n: "5", other: 1 }); // two keys: an object, as encode writes one
    expect(() => encode({ amount: max + 1n })).to.throw(InvalidNumberError); // never written, as it could not be read back
  });

  it("refuses an unsigned or badly signed envelope with a huge body on the node's path, without hashing an unsigned one", function () {
    const huge = refusal(ID, "x".repeat(900_000));
    const signed = seal((d) => signDigest(key, d), address, ID, huge);
    const other = new SigningKey(hexlify(randomBytes(32)));
    const badlySigned = { ...signed, signature: seal((d) => signDigest(other, d), address, ID, huge).signature };
    for (const [what, env] of [["unsigned", { ...signed, signature: "0x" as Hex }], ["badly signed", badlySigned]] as const) {
      // As a node receives it: one line of the peer endpoint, decoded, then opened for the channel's counterparty.
      const received = decodeEnvelope(encode(env));
      expect(() => unseal(received, address), what).to.throw(InvalidSignatureError);
      expect(receivedSigner(received), what).to.equal(undefined);
    }
    expect(unseal(decodeEnvelope(encode(signed)), address)).to.deep.equal(huge);
    // An unsigned envelope is refused before its body is encoded or hashed (this body cannot be encoded at all).
    const unhashable = { step: "acceptances", get items(): never { throw new Error("the body was encoded"); } };
    expect(() => unseal({ swapId: ID, from: address, body: unhashable, signature: "0x" } as unknown as Envelope, address)).to.throw(InvalidSignatureError);
  });

  it("verifies a received envelope over the bytes received: the body is not encoded again", function () {
    const body = refusal(ID, "changed my mind");
    const line = encode(seal((d) => signDigest(key, d), address, ID, body));
    const received = decodeEnvelope(line);
    expect(receivedSigner(received)).to.equal(address.toLowerCase());
    // Would throw if unseal encoded the body again to hash it.
    Object.defineProperty(received.body, "zz", { enumerable: true, get: () => { throw new Error("the body was encoded again"); } });
    expect(unseal(received, address).step).to.equal("acceptances");
    // A body re-formatted in transit is not what the sender hashed: refused, though it parses to the same value.
    expect(() => unseal(decodeEnvelope(line.replace('"refusal":', '"refusal": ')), address)).to.throw(InvalidSignatureError);
    // Any other layout of the envelope (keys in another order) is checked on its encoding, as before.
    const reordered = JSON.stringify({ swapId: ID, signature: JSON.parse(line).signature, from: address, body });
    expect(unseal(decodeEnvelope(reordered), address)).to.deep.equal(body);
  });

  it("produces signatures the hub accepts for states built by the transitions", async function () {
    const S = await deploySuite(source);
    const params = nativeParams(S, 99n);
    await S.hub.open(paramsArg(params));
    const id = channelIdOf(S.chainId, await S.hub.getAddress(), params);
    await S.hub.connect(S.alice).deposit(id, 0, 1000n, { value: 1000n });
    const now = BigInt(await S.chain.networkHelpers.time.latest());
    const l = lock(0, 400n, now + 7200n);
    const state = addLock(openingState(id, [1000n, 0n]), l);
    const digest = stateDigest(hubDomain(S.chainId, await S.hub.getAddress()), state);
    const viaWallet = await coSign(S, state);
    // The same digest signed with the SDK's raw signer, as the coordinator does.
    const aliceKey = new SigningKey("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
    expect(signDigest(aliceKey, digest)).to.equal(viaWallet.signatures[0]);
    await S.hub.connect(S.alice).forceClose(paramsArg(params), viaWallet);
    await S.chain.networkHelpers.time.increaseTo(now + 7201n);
    await expect(S.hub.settle(paramsArg(params), viaWallet.state, locksArg(state.locks), 0n)).to.changeEtherBalances(
      S.chain.ethers,
      [S.alice],
      [1000n],
    );
  });
});
