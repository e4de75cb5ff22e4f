//! Creation numbers across a store's shards: each shard numbers its own items, in order, and a
//! shared high-water mark keeps the shards' numbers close to one another.

use std::sync::atomic::{AtomicU32, Ordering};

use super::model::Seq;

/// How far a shard's numbers may run ahead of the mark while another thread captures at the
/// same time: the mark's cache line then moves between the two threads' cores once per this
/// many items rather than on every one, as a shared counter's would.
const SLACK: Seq = 32;

/// How close together (in this shard's numbers) two sightings of another shard's mark must be
/// for the shards to count as capturing at the same time.
const BUSY: Seq = 4 * SLACK;

/// The highest creation number published by any shard of one store. On a cache line of its
/// own: every shard reads it on every item.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct SeqMark(AtomicU32);

/// One shard's creation numbers.
///
/// **Invariant:** a shard's numbers only grow, so one thread's items are numbered exactly in
/// creation order (a store one thread writes numbers them 0, 1, 2, …). A number is at least
/// the mark, and a child's is past its parent's and a line's past its span's. While one thread
/// captures at a time its shard publishes every number (a store to a line its core already
/// holds), so a thread that takes over continues exactly after the last one: the order is
/// exact. While two capture at once, each publishes every [`SLACK`] numbers, so their items
/// interleave to within that many numbers of their real order (equal numbers sort by shard).
#[derive(Debug, Default)]
pub(super) struct ShardClock {
    next: Seq,
    /// What this shard last stored into the mark.
    published: Seq,
    /// Where (in this shard's numbers) it last saw a mark another shard had stored; `None`
    /// before it saw one.
    sighting: Option<Seq>,
    /// That last sighting, if it came within [`BUSY`] numbers of the one before: the shard is
    /// busy until its numbers run [`BUSY`] past it. Worked out when a sighting happens, so
    /// that a draw with nothing new in the mark only compares.
    busy_since: Option<Seq>,
}

impl ShardClock {
    /// The next creation number, past `after` (a parent's or a span's number) if given.
    ///
    /// While `busy_since` is `None` a shard publishes every number it draws, so `published`
    /// is `next`: if the mark still holds it, no other shard stored since, and the draw is
    /// this shard's next number (past `after`), published at once, with nothing to decide.
    #[inline]
    pub(super) fn draw(&mut self, mark: &SeqMark, after: Option<Seq>) -> Seq {
        let seen = mark.0.load(Ordering::Relaxed);
        if self.busy_since.is_none() && seen == self.next {
            let seq = after.map_or(self.next, |after| self.next.max(after.wrapping_add(1)));
            self.next = seq.wrapping_add(1);
            mark.0.store(self.next, Ordering::Relaxed);
            self.published = self.next;
            return seq;
        }
        self.draw_seen(mark, seen, after)
    }

    /// [`ShardClock::draw`] when another shard stored into the mark since this one last did,
    /// or this one has been busy: `seen` is what the mark held.
    #[inline(never)]
    fn draw_seen(&mut self, mark: &SeqMark, seen: Seq, after: Option<Seq>) -> Seq {
        let mut seq = self.next.max(seen);
        if let Some(after) = after {
            seq = seq.max(after.wrapping_add(1));
        }
        self.next = seq.wrapping_add(1);
        let near = |a: Option<Seq>, b: Seq| a.is_some_and(|a| b.wrapping_sub(a) < BUSY);
        if seen != self.published {
            self.busy_since = near(self.sighting, seq).then_some(seq);
            self.sighting = Some(seq);
        }
        if !near(self.busy_since, seq) {
            mark.0.store(self.next, Ordering::Relaxed);
            self.published = self.next;
        } else if self.next.wrapping_sub(self.published) >= SLACK {
            // Also what tells a shard still publishing every number that it is not alone.
            mark.0.fetch_max(self.next, Ordering::Relaxed);
            self.published = self.next;
        }
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_numbers_its_items_in_order_from_zero() {
        let (mark, mut clock) = (SeqMark::default(), ShardClock::default());
        let drawn: Vec<Seq> = (0..5).map(|_| clock.draw(&mark, None)).collect();
        assert_eq!(drawn, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_shard_taking_over_continues_where_the_last_one_stopped() {
        let mark = SeqMark::default();
        let (mut a, mut b) = (ShardClock::default(), ShardClock::default());
        let draw = |clock: &mut ShardClock, n| -> Vec<Seq> {
            (0..n).map(|_| clock.draw(&mark, None)).collect()
        };
        assert_eq!(draw(&mut a, 100), (0..100).collect::<Vec<_>>());
        assert_eq!(draw(&mut b, 3), [100, 101, 102]);
        assert_eq!(draw(&mut a, 2), [103, 104], "and back again");
        assert_eq!(draw(&mut b, 200), (105..305).collect::<Vec<_>>());
        assert_eq!(draw(&mut a, 1), [305]);
    }

    #[test]
    fn shards_drawing_at_once_stay_within_slack_of_each_other() {
        let mark = SeqMark::default();
        let (mut a, mut b) = (ShardClock::default(), ShardClock::default());
        let mut last_b = 0;
        let mut stores = 0;
        for _ in 0..1_000 {
            let before = mark.0.load(Ordering::Relaxed);
            let last_a = a.draw(&mark, None);
            last_b = b.draw(&mark, None);
            stores += usize::from(mark.0.load(Ordering::Relaxed) != before);
            assert!(last_a.abs_diff(last_b) <= SLACK, "{last_a} and {last_b}");
        }
        // Once both count as busy, the mark moves once per `SLACK` numbers or so, not on
        // every draw.
        assert!(stores < 1_000 / 10, "{stores} stores");
        assert!(b.draw(&mark, None) > last_b);
    }

    #[test]
    fn a_number_drawn_after_another_shards_item_comes_after_it() {
        let mark = SeqMark::default();
        let (mut a, mut b) = (ShardClock::default(), ShardClock::default());
        // Both busy: b is not told of every one of a's numbers.
        for _ in 0..50 {
            a.draw(&mark, None);
            b.draw(&mark, None);
        }
        let parent = (0..40).map(|_| a.draw(&mark, None)).last().unwrap();
        assert!(b.draw(&mark, Some(parent)) > parent);
    }
}
