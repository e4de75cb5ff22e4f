'use strict';
// Request ids and booking uids drawn the way the harness's in-process service draws them, so
// that a replay of the same scenario gives the same `booking_uid` attributes and
// `[Request ID: …]` lines. The Rust service (harness/booking/mod.rs, `ServiceIds`) seeds one
// ChaCha8 stream per kind of id with `splitmix64(seed ^ salt ^ restarted)` (rand_chacha 0.10,
// `SeedableRng::seed_from_u64`) and draws each character with `random_range(0..36)` (rand 0.10,
// Canon's method on 32-bit words). This file is that arithmetic, nothing more: no id is
// security-relevant. Without TRACE_HARNESS_SEED the streams are seeded from node:crypto.

const crypto = require('node:crypto');

const MASK64 = (1n << 64n) - 1n;
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * SplitMix64's finaliser, as harness/trace/ids.rs `splitmix64`.
 * @param {bigint} z
 * @returns {bigint}
 */
function splitmix64(z) {
  z = (z + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The 32 seed bytes `SeedableRng::seed_from_u64` makes from `state` (PCG32, rand_core 0.10).
 * @param {bigint} state
 * @returns {Uint8Array}
 */
function seedFromU64(state) {
  const MUL = 0x5851f42d4c957f2dn;
  const INC = 0xa17654e46fbe17f3n;
  const seed = new Uint8Array(32);
  for (let i = 0; i < 32; i += 4) {
    state = (state * MUL + INC) & MASK64;
    const xorshifted = Number((((state >> 18n) ^ state) >> 27n) & 0xffffffffn);
    const rot = Number(state >> 59n);
    const x = ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0;
    seed[i] = x & 0xff;
    seed[i + 1] = (x >>> 8) & 0xff;
    seed[i + 2] = (x >>> 16) & 0xff;
    seed[i + 3] = (x >>> 24) & 0xff;
  }
  return seed;
}

/** ChaCha with 8 rounds, a 64-bit block counter and stream 0: rand_chacha's `ChaCha8Rng`. */
class ChaCha8 {
  /** @param {Uint8Array} key 32 bytes */
  constructor(key) {
    const k = new DataView(key.buffer, key.byteOffset, 32);
    /** @type {Uint32Array} */
    this.input = new Uint32Array(16);
    this.input.set([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
    for (let i = 0; i < 8; i++) this.input[4 + i] = k.getUint32(i * 4, true);
    // Words 12-13: the block counter; 14-15: the stream id. All start at zero.
    this.block = new Uint32Array(16);
    this.index = 16;
  }

  /** @returns {number} the next 32-bit word of the key stream */
  nextU32() {
    if (this.index === 16) {
      this.refill();
      this.index = 0;
    }
    return this.block[this.index++];
  }

  refill() {
    const x = Uint32Array.from(this.input);
    /** @param {number} a @param {number} b @param {number} c @param {number} d */
    const quarter = (a, b, c, d) => {
      x[a] += x[b]; x[d] ^= x[a]; x[d] = (x[d] << 16) | (x[d] >>> 16);
      x[c] += x[d]; x[b] ^= x[c]; x[b] = (x[b] << 12) | (x[b] >>> 20);
      x[a] += x[b]; x[d] ^= x[a]; x[d] = (x[d] << 8) | (x[d] >>> 24);
      x[c] += x[d]; x[b] ^= x[c]; x[b] = (x[b] << 7) | (x[b] >>> 25);
    };
    for (let round = 0; round < 8; round += 2) {
      quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15);
      quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14);
    }
    for (let i = 0; i < 16; i++) this.block[i] = x[i] + this.input[i];
    // The 64-bit block counter, little end first.
    this.input[12] += 1;
    if (this.input[12] === 0) this.input[13] += 1;
  }

  /**
   * `rng.random_range(0..n)` for a `usize` range below 2^32 (rand 0.10, biased Canon).
   * @param {number} n
   * @returns {number}
   */
  below(n) {
    const range = BigInt(n);
    const product = BigInt(this.nextU32()) * range;
    let result = Number(product >> 32n);
    const lo = product & 0xffffffffn;
    if (lo > ((1n << 32n) - range)) {
      const hi = (BigInt(this.nextU32()) * range) >> 32n;
      if (lo + hi > 0xffffffffn) result += 1;
    }
    return result;
  }

  /**
   * `len` characters of `[0-9a-z]`.
   * @param {number} len
   * @returns {string}
   */
  draw(len) {
    let s = '';
    for (let i = 0; i < len; i++) s += ALPHABET[this.below(ALPHABET.length)];
    return s;
  }
}

/**
 * The service's id streams for `seed` (undefined: random) and `generation`.
 * @param {bigint | undefined} seed
 * @param {bigint} generation
 */
function serviceIds(seed, generation) {
  const restarted = generation === 0n ? 0n : splitmix64(generation ^ 0x47454e45n);
  const base = seed ?? crypto.randomBytes(8).readBigUInt64LE();
  /** @param {bigint} salt */
  const stream = (salt) => new ChaCha8(seedFromU64(splitmix64(base ^ salt ^ restarted)));
  const requests = stream(0x52455155n);
  const uids = stream(0x55494453n);
  return {
    /** @returns {string} a request id: 10 characters */
    requestId: () => requests.draw(10),
    /** @returns {string} a booking uid: 16 characters */
    bookingUid: () => uids.draw(16),
  };
}

/** How far apart two generations of a service start on the span-id counter: 2^40 draws. */
const GENERATION_STRIDE = 1n << 40n;

/**
 * Trace and span ids as the harness's seeded generator mints them (harness/trace/ids.rs
 * `IdGenerator::Seeded`): the `n`th value is `splitmix64(seed + n · 0x9E3779B97F4A7C15)`, the
 * counter starting at `generation · 2^40`. A span with no local parent (a new trace, or one
 * continuing a remote context) takes three values — the trace id's halves, then its span id —
 * and a local child one. OpenTelemetry's tracer asks for the span id before the trace id, and
 * not at all for a trace id under a remote parent, so `inSpan` says beforehand which kind of
 * span comes next (`plan`), and the generator hands out what was planned.
 * An OpenTelemetry `IdGenerator`.
 */
class SeededIdGenerator {
  /**
   * @param {bigint} seed
   * @param {bigint} generation
   */
  constructor(seed, generation) {
    this.seed = seed;
    this.counter = (generation * GENERATION_STRIDE) & MASK64;
    /** @type {{traceId?: string, spanId: string} | undefined} */
    this.planned = undefined;
  }

  /** @returns {string} the next nonzero value as 16 hex digits */
  draw() {
    for (;;) {
      const value = splitmix64((this.seed + this.counter * 0x9e3779b97f4a7c15n) & MASK64);
      this.counter = (this.counter + 1n) & MASK64;
      if (value !== 0n) return value.toString(16).padStart(16, '0');
    }
  }

  /**
   * Draws the next span's ids: a trace id first if the span has no local parent.
   * @param {boolean} root
   */
  plan(root) {
    const traceId = root ? this.draw() + this.draw() : undefined;
    this.planned = { traceId, spanId: this.draw() };
  }

  generateSpanId() {
    const planned = this.planned;
    if (!planned) return this.draw();
    return planned.spanId;
  }

  generateTraceId() {
    const planned = this.planned;
    this.planned = undefined;
    return planned?.traceId ?? this.draw() + this.draw();
  }

  /** Forgets a plan the tracer did not use up (a span under a remote parent draws no trace id). */
  settle() {
    this.planned = undefined;
  }
}

module.exports = { serviceIds, splitmix64, SeededIdGenerator };
