//! `Chunked`, the store's arena: items in chunks that never move once allocated, with slices
//! kept side by side, and emptied chunks reused after a clear.

/// Items in chunks that never move once allocated: pushing never copies what is already
/// stored (no reallocation of one large `Vec` mid-replay). Chunks double from `FIRST` items up
/// to `MAX`, so a short replay stays small and a long one wastes at most one partly filled
/// chunk (and, with [`Chunked::push_slice`], the tail of a chunk a slice did not fit in).
#[derive(Debug)]
pub(super) struct Chunked<T, const FIRST: usize = 16, const MAX: usize = 1024> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// Emptied chunks kept by [`Chunked::clear`] for reuse, as `Vec::clear` keeps capacity.
    spare: Vec<Vec<T>>,
}

impl<T, const FIRST: usize, const MAX: usize> Default for Chunked<T, FIRST, MAX> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
            spare: Vec::new(),
        }
    }
}

/// Where [`Chunked::push`] put an item: chunk, index in the chunk.
pub(super) type At = (u32, u32);

/// Where [`Chunked::push_slice`] put a slice.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stretch {
    chunk: u32,
    start: u32,
    len: u32,
}

impl<T, const FIRST: usize, const MAX: usize> Chunked<T, FIRST, MAX> {
    /// Appends `item`, starting a new chunk when the last one is full.
    ///
    /// The common case, a chunk with room, is a branch of its own: there `Vec::push` is known
    /// not to grow, so `item` is written straight into the chunk rather than first copied
    /// aside for a reallocation that cannot happen (a `memcpy` of a span or line each push).
    #[inline(always)]
    pub(super) fn push(&mut self, item: T) -> At {
        self.len += 1;
        let at = self.chunks.len().wrapping_sub(1);
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => {
                chunk.push(item);
                (at as u32, (chunk.len() - 1) as u32)
            }
            _ => self.push_into_new_chunk(item),
        }
    }

    /// [`Chunked::push`] when the last chunk is full (or there is none).
    #[cold]
    #[inline(never)]
    fn push_into_new_chunk(&mut self, item: T) -> At {
        self.new_chunk(1).push(item);
        ((self.chunks.len() - 1) as u32, 0)
    }

    /// The item [`Chunked::push`] put at `at`.
    #[inline]
    pub(super) fn get_mut(&mut self, (chunk, index): At) -> Option<&mut T> {
        self.chunks.get_mut(chunk as usize)?.get_mut(index as usize)
    }

    /// Starts a chunk with room for at least `room` items.
    fn new_chunk(&mut self, room: usize) -> &mut Vec<T> {
        let wanted = self.len.next_power_of_two().clamp(FIRST, MAX).max(room);
        let chunk = match self.spare.pop() {
            Some(chunk) if chunk.capacity() >= wanted => chunk,
            _ => Vec::with_capacity(wanted),
        };
        self.chunks.push(chunk);
        self.chunks.last_mut().expect("just pushed")
    }

    /// Copies `items` side by side into one chunk; see [`Chunked::push_n`].
    #[inline]
    pub(super) fn push_slice(&mut self, items: &[T]) -> Stretch
    where
        T: Copy,
    {
        self.push_n(items.len(), |chunk| chunk.extend_from_slice(items))
    }

    /// Puts `n` items side by side into one chunk, so that [`Chunked::slice`] gives them back
    /// whole: `fill` appends them to the chunk, which has room for `n` more. More than `MAX`
    /// items get a chunk of their own size.
    #[inline]
    pub(super) fn push_n(&mut self, n: usize, fill: impl FnOnce(&mut Vec<T>)) -> Stretch {
        if n == 0 {
            return Stretch::default();
        }
        let fits = (self.chunks.last()).is_some_and(|c| c.capacity() - c.len() >= n);
        if !fits {
            self.new_chunk(n);
        }
        let at = self.chunks.len() - 1;
        let chunk = &mut self.chunks[at];
        let start = chunk.len();
        fill(chunk);
        debug_assert_eq!(chunk.len() - start, n, "`fill` pushes exactly `n` items");
        self.len += n;
        Stretch {
            chunk: at as u32,
            start: start as u32,
            len: (chunk.len() - start) as u32,
        }
    }

    /// The items [`Chunked::push_n`] put at `stretch`.
    pub(super) fn slice(&self, stretch: Stretch) -> &[T] {
        let Stretch { chunk, start, len } = stretch;
        let start = start as usize;
        (self.chunks.get(chunk as usize))
            .and_then(|chunk| chunk.get(start..start + len as usize))
            .unwrap_or_default()
    }

    /// [`Chunked::slice`], to change in place.
    pub(super) fn slice_mut(&mut self, stretch: Stretch) -> &mut [T] {
        let Stretch { chunk, start, len } = stretch;
        let start = start as usize;
        (self.chunks.get_mut(chunk as usize))
            .and_then(|chunk| chunk.get_mut(start..start + len as usize))
            .unwrap_or_default()
    }

    /// Empties the arena, keeping its chunks for reuse as `Vec::clear` keeps capacity.
    pub(super) fn clear(&mut self) {
        for mut chunk in self.chunks.drain(..) {
            chunk.clear();
            self.spare.push(chunk);
        }
        // Largest last, so the next pushes reuse the biggest chunks first.
        self.spare.sort_by_key(Vec::capacity);
        self.len = 0;
    }

    /// Empties the arena as [`Chunked::clear`] does and hands back the items `keep` picks, in
    /// push order, for the caller to push again.
    pub(super) fn clear_keeping(&mut self, keep: impl FnMut(&T) -> bool) -> Vec<T> {
        let kept = (self.chunks.iter_mut())
            .flat_map(|chunk| chunk.drain(..))
            .filter(keep)
            .collect();
        self.clear();
        kept
    }

    /// How many items were pushed since the last [`Chunked::clear`].
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every item, in push order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_push_order_across_growth_and_clear() {
        let mut items: Chunked<i32> = Chunked::default();
        for i in 0..3_000 {
            items.push(i);
        }
        assert_eq!(items.len(), 3_000);
        assert!(items.iter().copied().eq(0..3_000));
        // Chunks double from the first one, then stay at the maximum.
        let lens: Vec<usize> = items.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(lens[..3], [16, 32, 64]);
        assert!(lens.iter().all(|&n| n <= 1024));

        items.clear();
        assert_eq!(items.len(), 0);
        assert_eq!(items.iter().count(), 0);
        for i in 0..100 {
            items.push(i);
        }
        assert!(items.iter().copied().eq(0..100));
        // The largest spare chunk is reused first, so 100 items fit in one.
        assert_eq!(items.chunks.len(), 1);
    }

    #[test]
    fn a_slice_comes_back_whole_even_when_it_does_not_fit_the_last_chunk() {
        let mut bytes: Chunked<u8, 4, 8> = Chunked::default();
        let a = bytes.push_slice(b"abc");
        // Two bytes are left in the first chunk: the next slice starts a new one.
        let b = bytes.push_slice(b"defg");
        // Longer than `MAX`: a chunk of its own size.
        let long = bytes.push_slice(b"0123456789");
        assert_eq!(bytes.slice(a), b"abc");
        assert_eq!(bytes.slice(b), b"defg");
        assert_eq!(bytes.slice(long), b"0123456789");
        assert_eq!(bytes.len(), 17);
        let empty = bytes.push_slice(b"");
        assert_eq!(bytes.slice(empty), b"");

        bytes.slice_mut(b).copy_from_slice(b"DEFG");
        assert_eq!(bytes.slice(b), b"DEFG");
        assert!(bytes
            .iter()
            .copied()
            .eq(b"abcDEFG0123456789".iter().copied()));
    }

    #[test]
    fn after_a_clear_old_places_find_nothing_until_items_are_pushed_again() {
        let mut items: Chunked<u32, 4, 8> = Chunked::default();
        let stretch = items.push_n(3, |chunk| chunk.extend([1, 2, 3]));
        let at = items.push(4);
        items.clear();
        assert_eq!(items.slice(stretch), &[] as &[u32]);
        assert_eq!(items.get_mut(at), None);
        assert_eq!(items.push(5), (0, 0));
        assert_eq!(items.get_mut((0, 0)), Some(&mut 5));
    }

    #[test]
    fn clear_keeping_hands_back_the_kept_items_in_order_and_empties_the_rest() {
        let mut items: Chunked<u32, 4, 8> = Chunked::default();
        for i in 0..20 {
            items.push(i);
        }
        let kept = items.clear_keeping(|i| i % 7 == 0);
        assert_eq!(kept, [0, 7, 14]);
        assert_eq!(items.len(), 0);
        assert_eq!(items.iter().count(), 0);
    }
}
