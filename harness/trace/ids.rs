//! Trace and span identifiers, and the generators that mint them (seeded for replays).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::hex::{decode_hex, encode_hex, write_hex};

/// A W3C trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// A W3C span id (`parent-id` on the wire): 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// `None` for the all-zero id, which W3C Trace Context forbids.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }
    /// The id of two draws, `high` first, big-endian: how generators make one.
    fn from_halves(high: u64, low: u64) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(bytes)
    }
    /// The id's 16 bytes, as the wire and OTLP carry them.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }
    /// 32 lowercase hex digits, as `traceparent` and log prefixes write the id; `None` for any
    /// other text and for the all-zero id.
    pub fn from_hex(text: &str) -> Option<Self> {
        Self::from_bytes(decode_hex(text.as_bytes())?)
    }
    /// The id as 32 lowercase hex digits, on the stack: what `to_string` gives, unallocated.
    pub fn to_hex(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        encode_hex(&self.0, &mut out);
        out
    }
}

impl SpanId {
    /// `None` for the all-zero id, which W3C Trace Context forbids.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(Self(bytes))
    }
    /// The id's 8 bytes, as the wire and OTLP carry them.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }
    /// 16 lowercase hex digits, as `traceparent` and log prefixes write the id; `None` for any
    /// other text and for the all-zero id.
    pub fn from_hex(text: &str) -> Option<Self> {
        Self::from_bytes(decode_hex(text.as_bytes())?)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// How far apart on a seeded generator's counter two generations of a service start: 2^40
/// draws, some 10^11 spans per process.
pub const GENERATION_STRIDE: u64 = 1 << 40;

/// Mints trace and span ids.
///
/// `Seeded` is what replays use: ids are a pure function of the seed and of the order in which
/// they are asked for, so the same scenario yields the same ids on every machine. It is a
/// counter run through SplitMix64 rather than a locked RNG, so minting stays lock-free on the
/// capture hot path, and its output never changes with a dependency's version.
#[derive(Debug)]
pub enum IdGenerator {
    /// Ids drawn in order from `seed`: the same ids on every run.
    Seeded {
        /// What the ids are drawn from.
        seed: u64,
        /// How many values were drawn so far (handed out in blocks, see [`IdBlock`]).
        counter: AtomicU64,
        /// Which run of draws the counter is in: unique in the process, and renewed when the
        /// counter is moved, so that a block reserved before is not drawn from after.
        epoch: AtomicU64,
    },
    /// Ids from the thread's random generator: for serving, not replays.
    Random,
}

impl IdGenerator {
    /// A seeded generator that has drawn nothing yet.
    pub fn seeded(seed: u64) -> Self {
        IdGenerator::seeded_generation(seed, 0)
    }

    /// A seeded generator for the process that is `generation` on its database (0 first, +1 per
    /// restart): it draws from counter `generation × GENERATION_STRIDE`, so a restarted process
    /// never repeats the ids its predecessors drew (unless one drew 2^40 values). A service the
    /// harness restarts in-process ([`start_id_generation`](crate::trace::start_id_generation))
    /// draws exactly what a process started separately with the same seed and generation draws.
    pub fn seeded_generation(seed: u64, generation: u64) -> Self {
        IdGenerator::Seeded {
            seed,
            counter: AtomicU64::new(generation.wrapping_mul(GENERATION_STRIDE)),
            epoch: AtomicU64::new(new_epoch()),
        }
    }

    /// Continues a seeded generator as [`IdGenerator::seeded_generation`] starts: what a
    /// service restarted in-process draws from. A random generator is unchanged.
    pub(crate) fn start_generation(&self, generation: u64) {
        if let IdGenerator::Seeded { counter, epoch, .. } = self {
            counter.store(
                generation.wrapping_mul(GENERATION_STRIDE),
                Ordering::Relaxed,
            );
            epoch.store(new_epoch(), Ordering::Relaxed);
        }
    }

    /// The next nonzero value.
    fn next_u64(&self) -> u64 {
        loop {
            let value = match self {
                IdGenerator::Seeded { seed, counter, .. } => {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    seeded_value(*seed, n)
                }
                IdGenerator::Random => rand::random(),
            };
            if value != 0 {
                return value;
            }
        }
    }

    /// A new span id.
    pub(crate) fn span_id(&self) -> SpanId {
        SpanId(self.next_u64().to_be_bytes())
    }

    /// A new trace id, from two draws.
    pub fn trace_id(&self) -> TraceId {
        let (high, low) = match self {
            // Both halves from one counter step of two: the same ids as two `next_u64` calls,
            // for one atomic instead of two.
            IdGenerator::Seeded { seed, counter, .. } => {
                let n = counter.fetch_add(2, Ordering::Relaxed);
                let mix = |n| seeded_value(*seed, n);
                let (high, low) = (mix(n), mix(n.wrapping_add(1)));
                if high != 0 && low != 0 {
                    (high, low)
                } else {
                    (self.next_u64(), self.next_u64())
                }
            }
            IdGenerator::Random => (self.next_u64(), self.next_u64()),
        };
        TraceId::from_halves(high, low)
    }
}

/// How many draws a block reserves.
const BLOCK: u64 = 64;

/// Draws reserved from a seeded generator's counter, for one shard of a store: a thread mints
/// from its own block and meets the other threads on the shared counter once per [`BLOCK`]
/// draws, not on every id. One thread's blocks follow one another on the counter, so it draws
/// exactly what one shared counter would give it.
#[derive(Debug, Default)]
pub(crate) struct IdBlock {
    /// The generator's epoch when the block was reserved; 0 for none (epochs start at 1).
    epoch: u64,
    next: u64,
    end: u64,
}

/// A fresh [`IdGenerator::Seeded`] epoch.
fn new_epoch() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl IdGenerator {
    /// A new span's id, and a trace id first if it starts a trace: the same ids, in the same
    /// order, as [`IdGenerator::trace_id`] then [`IdGenerator::span_id`] (but for a zero draw,
    /// once in 2^64, which is skipped alone), drawn from `block` while it lasts.
    #[inline]
    pub(crate) fn mint(&self, block: &mut IdBlock, trace: bool) -> (Option<TraceId>, SpanId) {
        let IdGenerator::Seeded {
            seed,
            counter,
            epoch,
        } = self
        else {
            return (trace.then(|| self.trace_id()), self.span_id());
        };
        let epoch = epoch.load(Ordering::Relaxed);
        // The common case, a block of this epoch that holds every draw, in one check; what the
        // loop below would draw, unless a draw is zero.
        let draws = if trace { 3 } else { 1 };
        if block.epoch == epoch && block.end.wrapping_sub(block.next) >= draws {
            let n = block.next;
            let mix = |i: u64| seeded_value(*seed, n.wrapping_add(i));
            let span = mix(draws - 1);
            let trace_halves = trace.then(|| (mix(0), mix(1)));
            if span != 0 && trace_halves.is_none_or(|(high, low)| high != 0 && low != 0) {
                block.next = n.wrapping_add(draws);
                let trace_id = trace_halves.map(|(high, low)| TraceId::from_halves(high, low));
                return (trace_id, SpanId(span.to_be_bytes()));
            }
        }
        let mut draw = || loop {
            if block.epoch != epoch || block.next == block.end {
                let start = counter.fetch_add(BLOCK, Ordering::Relaxed);
                *block = IdBlock {
                    epoch,
                    next: start,
                    end: start.wrapping_add(BLOCK),
                };
            }
            let n = block.next;
            block.next = n.wrapping_add(1);
            match seeded_value(*seed, n) {
                0 => continue,
                value => return value,
            }
        };
        let trace_id = trace.then(|| {
            let (high, low) = (draw(), draw());
            TraceId::from_halves(high, low)
        });
        (trace_id, SpanId(draw().to_be_bytes()))
    }
}

/// The `n`th value a generator seeded with `seed` draws (before zeros are skipped).
#[inline]
fn seeded_value(seed: u64, n: u64) -> u64 {
    splitmix64(seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective mixer, so distinct counters
/// give distinct outputs.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_for_the_same_seed_and_differ_across_seeds() {
        let a = IdGenerator::seeded(7);
        let b = IdGenerator::seeded(7);
        let c = IdGenerator::seeded(8);
        let first: Vec<_> = (0..4).map(|_| a.span_id()).collect();
        let again: Vec<_> = (0..4).map(|_| b.span_id()).collect();
        let other: Vec<_> = (0..4).map(|_| c.span_id()).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert!(first.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn minting_gives_the_ids_of_trace_id_then_span_id_in_order() {
        let (apart, together) = (IdGenerator::seeded(3), IdGenerator::seeded(3));
        let mut block = IdBlock::default();
        // Past a block's end, and across a move to another generation.
        for round in 0..100 {
            if round == 70 {
                apart.start_generation(1);
                together.start_generation(1);
            }
            let trace = round % 3 == 0;
            let expected = (trace.then(|| apart.trace_id()), apart.span_id());
            assert_eq!(together.mint(&mut block, trace), expected, "round {round}");
        }
    }

    #[test]
    fn a_generation_draws_what_a_generator_moved_to_it_draws_and_not_what_generation_0_drew() {
        let first = IdGenerator::seeded(7);
        let before: Vec<_> = (0..4).map(|_| first.span_id()).collect();
        first.start_generation(1);
        let moved: Vec<_> = (0..4).map(|_| first.span_id()).collect();
        let started = IdGenerator::seeded_generation(7, 1);
        let fresh: Vec<_> = (0..4).map(|_| started.span_id()).collect();
        assert_eq!(moved, fresh);
        assert!(moved.iter().all(|id| !before.contains(id)));
        let zero = IdGenerator::seeded_generation(7, 0);
        assert_eq!(
            zero.span_id(),
            before[0],
            "generation 0 is the plain seeded generator"
        );
    }

    #[test]
    fn zero_ids_are_unrepresentable() {
        assert!(TraceId::from_bytes([0; 16]).is_none());
        assert!(SpanId::from_bytes([0; 8]).is_none());
        assert_eq!(
            SpanId::from_bytes([0, 0, 0, 0, 0, 0, 0, 0xab])
                .unwrap()
                .to_string(),
            "00000000000000ab"
        );
    }
}
