//! A counting global allocator: heap bytes allocated minus freed, per thread. Shared by
//! `benches/memory.rs` and `tests/load_isolation.rs` (included with `#[path]`): a store is
//! dropped on the measuring thread, while mock servers tidy up on theirs and must not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use trace_harness::trace::TraceStore;

struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: allocations after this thread's locals are gone go uncounted.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes freed by dropping `store`, its last owner: what the captured telemetry occupies.
pub fn store_bytes(store: Arc<TraceStore>) -> usize {
    assert_eq!(Arc::strong_count(&store), 1, "the store has one owner left");
    let before = LIVE_BYTES.with(Cell::get);
    drop(store);
    (before - LIVE_BYTES.with(Cell::get)).max(0) as usize
}
